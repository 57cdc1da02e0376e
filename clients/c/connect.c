/* Connecting: options, socket path, the tmux-style auto-start of the manager
 * (docs/lifecycle.md), the hello handshake and attaching again after a
 * reconnect. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jshost_defs.h"
#include "jshost_priv.h"
#include "unixsock.h"
#include "locate.h"
#include "rundir.h"
#include "startlock.h"

extern char **environ;

void
jshost_options_init(struct jshost_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->spawn = 1;
    opts->direct = 1;
}

/* An environment switch set to 0 (or "no", "false", "off"). */
static bool
env_says_no(const char *name)
{
    const char *v = getenv(name);

    return v != NULL &&
           (strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
            strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0);
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Works out the socket (and runtime dir when auto-starting). */
static int
resolve_paths(jshost *c)
{
    jshost_priv *p = c->priv;
    char dir[PATH_MAX], sock[PATH_MAX];
    const char *env = getenv("JSHOST_SOCKET");
    char *cause = NULL;
    struct stat st;
    int r;

    if (p->socket_path != NULL) {
        /* given explicitly (option or JSHOST_SOCKET): never spawn */
    } else if (env != NULL && env[0] != '\0') {
        p->socket_path = strdup(env);
        p->spawn = 0;
    } else {
        if (p->runtime_dir != NULL) {
            if (stat(p->runtime_dir, &st) < 0 && errno == ENOENT &&
                mkdir(p->runtime_dir, 0700) < 0 && errno != EEXIST)
                return jshost__seterr(c, JSHOST_ERR_RUNTIME,
                                      "runtime dir %s: cannot create: %s",
                                      p->runtime_dir, strerror(errno));
            r = rundir_check(p->runtime_dir, &cause);
            if (r == 0 && snprintf(dir, sizeof(dir), "%s", p->runtime_dir) >=
                              (int)sizeof(dir))
                r = -ENAMETOOLONG;
        } else {
            r = rundir_resolve(dir, sizeof(dir), &cause);
        }
        if (r < 0) {
            jshost__seterr(c, JSHOST_ERR_RUNTIME, "runtime dir: %s",
                           cause != NULL ? cause : strerror(-r));
            free(cause);
            return -1;
        }
        if (rundir_join(sock, sizeof(sock), dir, JSHOST_MANAGER_SOCK) < 0)
            return jshost__seterr(c, JSHOST_ERR_RUNTIME,
                                  "runtime dir %s: path too long", dir);
        if (p->runtime_dir == NULL && (p->runtime_dir = strdup(dir)) == NULL)
            return jshost__seterr(c, JSHOST_ERR_OOM, "out of memory");
        p->socket_path = strdup(sock);
    }
    if (p->socket_path == NULL)
        return jshost__seterr(c, JSHOST_ERR_OOM, "out of memory");
    return 0;
}

/* One connect attempt, through the one connect and peer check every jshost
 * program uses (unixsock.h). 0 with *fdp, or a negative errno. */
static int
connect_once(const char *path, int64_t deadline, int *fdp)
{
    char *cause = NULL;
    int fd, r;

    for (;;) {
        r = unixsock_connect(path, SOCK_NONBLOCK, &fd);
        /* A Unix socket's backlog is full: the server is busy, not gone. */
        if (r == -EAGAIN && jshost__now_ms() < deadline) {
            sleep_ms(2);
            continue;
        }
        if (r < 0)
            return r;
        break;
    }
    /* A peer of another uid is refused, both ways (docs/lifecycle.md). */
    r = unixsock_check_peer(fd, NULL, NULL, &cause);
    free(cause);
    if (r < 0) {
        close(fd);
        return r;
    }
    /* A big request then goes in one write (unixsock.h). */
    (void)unixsock_grow_sndbuf(fd);
    *fdp = fd;
    return 0;
}

/* An address inside libjshost: the manager is found relative to the file
 * that holds it (libjshost.so, or the Python extension it is linked into). */
static const char locate_anchor;

/* The manager binary: the option, else the one way to find a daemon
 * (locate.h). 0 with path (PATH_MAX bytes), or -1 with c's error. */
static int
find_manager(jshost *c, char *path)
{
    jshost_priv *p = c->priv;
    const char *env = locate_env(LOCATE_MANAGER);
    int r;

    if (p->manager_path != NULL) {
        snprintf(path, PATH_MAX, "%s", p->manager_path);
        return 0;
    }
    r = locate_daemon(LOCATE_MANAGER, &locate_anchor, path, PATH_MAX);
    if (r == 0)
        return 0;
    if (getenv(env) != NULL && getenv(env)[0] != '\0')
        return jshost__seterr(c, JSHOST_ERR_SPAWN,
                              "cannot run the manager %s (from %s): %s", path,
                              env, strerror(-r));
    return jshost__seterr(c, JSHOST_ERR_SPAWN,
                          "cannot find the manager %s (not beside libjshost, "
                          "in its build tree or install prefix, nor on PATH; "
                          "set %s)",
                          path, env);
}

/* environ with JSHOST_START_LOCK_FD and JSHOST_RUNTIME_DIR set, built before
 * fork() because the child may only make async-signal-safe calls. */
static char **
make_env(char *lockvar, char *rtvar)
{
    size_t n = 0, i, j = 0;
    char **env;

    while (environ != NULL && environ[n] != NULL)
        n++;
    env = calloc(n + 3, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (strncmp(environ[i], "JSHOST_START_LOCK_FD=", 21) == 0 ||
            (rtvar != NULL &&
             strncmp(environ[i], "JSHOST_RUNTIME_DIR=", 19) == 0))
            continue;
        env[j++] = environ[i];
    }
    env[j++] = lockvar;
    if (rtvar != NULL)
        env[j++] = rtvar;
    env[j] = NULL;
    return env;
}

/* Child side of spawn_manager: async-signal-safe calls only. */
static void __attribute__((noreturn))
spawn_child(const char *path, char **argv, char **envp, int nullfd, int logfd,
            int lockfd, int maxfd)
{
    sigset_t all;
    int n, l, k;

    /* Move the three out of the way first: any of them may be 0..3 already. */
    n = fcntl(nullfd, F_DUPFD, 10);
    l = fcntl(logfd, F_DUPFD, 10);
    k = fcntl(lockfd, F_DUPFD, 10);
    if (n < 0 || l < 0 || k < 0 || dup2(n, 0) < 0 || dup2(n, 1) < 0 ||
        dup2(l, 2) < 0 || dup2(k, 3) < 0)
        _exit(127);
    /* The caller's other descriptors (a Python pipe, a listening socket) must
     * not live on in a daemon. */
    if (close_range(4, ~0U, 0) != 0) {
        for (int fd = 4; fd < maxfd; fd++)
            close(fd); /* kernels before 5.9 have no close_range */
    }
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execve(path, argv, envp);
    _exit(127);
}

/*
 * Starts the manager while holding the start lock. The manager daemonizes: its
 * first process exits once the daemon listens, and the daemon drops the lock
 * (passed as fd 3, JSHOST_START_LOCK_FD) after listen().
 */
static int
spawn_manager(jshost *c, int lockfd, int64_t deadline)
{
    jshost_priv *p = c->priv;
    char logpath[PATH_MAX], lockvar[64], *rtvar = NULL, path[PATH_MAX], **envp;
    char *argv[2];
    int nullfd, logfd, st, wait_ms = 1, maxfd;
    pid_t pid, r;

    if (find_manager(c, path) < 0)
        return -1;
    snprintf(lockvar, sizeof(lockvar), "JSHOST_START_LOCK_FD=3");
    if (p->runtime_dir != NULL &&
        asprintf(&rtvar, "JSHOST_RUNTIME_DIR=%s", p->runtime_dir) < 0)
        rtvar = NULL;
    envp = make_env(lockvar, rtvar);
    if (rundir_join(logpath, sizeof(logpath), p->runtime_dir,
                    JSHOST_MANAGER_LOG) < 0)
        snprintf(logpath, sizeof(logpath), "/dev/null");
    nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (envp == NULL || nullfd < 0 || logfd < 0) {
        jshost__seterr(c, JSHOST_ERR_SPAWN, "cannot start %s: %s", path,
                       envp == NULL ? "out of memory" : strerror(errno));
        goto out_fail;
    }
    argv[0] = path;
    argv[1] = NULL;
    maxfd = (int)sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    pid = fork();
    if (pid < 0) {
        jshost__seterr(c, JSHOST_ERR_SPAWN, "cannot start %s: fork: %s", path,
                       strerror(errno));
        goto out_fail;
    }
    if (pid == 0)
        spawn_child(path, argv, envp, nullfd, logfd, lockfd, maxfd);
    close(nullfd);
    close(logfd);
    nullfd = logfd = -1;
    /* Wait for the first process without touching SIGCHLD: WNOHANG polls. If
     * the caller reaps children itself (ECHILD), connecting will tell. */
    for (;;) {
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                break;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
                jshost__seterr(c, JSHOST_ERR_SPAWN,
                               "cannot run the manager %s (not found or not "
                               "executable; set JSHOST_MANAGER); see %s",
                               path, logpath);
            else if (WIFEXITED(st))
                jshost__seterr(c, JSHOST_ERR_SPAWN,
                               "the manager %s exited with status %d while "
                               "starting; see %s",
                               path, WEXITSTATUS(st), logpath);
            else
                jshost__seterr(c, JSHOST_ERR_SPAWN,
                               "the manager %s died of signal %d while "
                               "starting; see %s",
                               path, WTERMSIG(st), logpath);
            goto out_fail;
        }
        if (r < 0 && errno != EINTR)
            break;
        if (jshost__now_ms() >= deadline) {
            jshost__seterr(
                c, JSHOST_ERR_SPAWN,
                "the manager %s did not become ready in time; see %s", path,
                logpath);
            goto out_fail;
        }
        sleep_ms(wait_ms);
        if (wait_ms < 20)
            wait_ms *= 2;
    }
    free(envp);
    free(rtvar);
    return 0;
out_fail:
    if (nullfd >= 0)
        close(nullfd);
    if (logfd >= 0)
        close(logfd);
    free(envp);
    free(rtvar);
    return -1;
}

static int
connect_error(jshost *c, int r)
{
    jshost_priv *p = c->priv;

    if (r == -EPERM)
        return jshost__seterr(c, JSHOST_ERR_IO,
                              "connect %s: the server runs as another user",
                              p->socket_path);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return jshost__seterr(
            c, JSHOST_ERR_IO, "connect %s: %s (no manager running%s)",
            p->socket_path, strerror(-r), p->spawn ? "" : "; not starting one");
    return jshost__seterr(c, JSHOST_ERR_IO, "connect %s: %s", p->socket_path,
                          strerror(-r));
}

/* Connects, starting the manager when allowed (tmux's client_connect). */
static int
open_socket(jshost *c, int64_t deadline)
{
    jshost_priv *p = c->priv;
    char lockpath[PATH_MAX];
    char *cause = NULL;
    int r, lockfd, fd = -1;

    /* Checked before connect: libuv servers truncate long paths silently. */
    if ((r = rundir_check_sockpath(p->socket_path, &cause)) < 0) {
        jshost__seterr(c, JSHOST_ERR_RUNTIME, "%s",
                       cause != NULL ? cause : strerror(-r));
        free(cause);
        return -1;
    }
    r = connect_once(p->socket_path, deadline, &fd);
    if (r == 0)
        goto done;
    if (!(r == -ENOENT || r == -ECONNREFUSED) || !p->spawn ||
        p->runtime_dir == NULL)
        return connect_error(c, r);
    if (rundir_join(lockpath, sizeof(lockpath), p->runtime_dir,
                    JSHOST_MANAGER_LOCK) < 0)
        return jshost__seterr(c, JSHOST_ERR_RUNTIME, "%s: path too long",
                              p->runtime_dir);
    lockfd = startlock_acquire(lockpath);
    if (lockfd == -EAGAIN) {
        /* Someone else started it while we waited: always retry once. */
        r = connect_once(p->socket_path, deadline, &fd);
        if (r == 0)
            goto done;
        return connect_error(c, r);
    }
    if (lockfd < 0)
        return jshost__seterr(c, JSHOST_ERR_SPAWN, "start lock %s: %s",
                              lockpath, strerror(-lockfd));
    r = connect_once(p->socket_path, deadline, &fd);
    if (r == 0) {
        startlock_release(lockfd);
        goto done;
    }
    /* Still refused while we hold the lock: the socket is stale. */
    if (unlink(p->socket_path) < 0 && errno != ENOENT) {
        startlock_release(lockfd);
        return jshost__seterr(c, JSHOST_ERR_SPAWN, "unlink stale %s: %s",
                              p->socket_path, strerror(errno));
    }
    r = spawn_manager(c, lockfd, deadline);
    startlock_release(lockfd);
    if (r < 0)
        return -1;
    /* The daemon listens before the first process exits; a caller that reaps
     * children itself hides that exit from us, so keep trying to the deadline.
     */
    for (;;) {
        r = connect_once(p->socket_path, deadline, &fd);
        if (r == 0)
            break;
        if (jshost__now_ms() >= deadline)
            return connect_error(c, r);
        sleep_ms(5);
    }
done:
    p->fd = fd;
    p->reader = proto_reader_new(0);
    if (p->reader == NULL) {
        jshost__disconnect(p);
        return jshost__seterr(c, JSHOST_ERR_OOM, "out of memory");
    }
    return 0;
}

/* A call on a fresh connection, with the lock held all along (nobody else
 * may talk on it before hello and the re-attach are done). */
static int
connect_request(jshost *c, const char *method, msgpack_sbuffer *params,
                int64_t deadline, jshost_value *result)
{
    jshost_priv *p = c->priv;
    struct jshost__call call;
    struct iovec part = {params->data, params->size};
    char what[PATH_MAX + 64];
    int r;

    snprintf(what, sizeof(what), "%s on %s", method, p->socket_path);
    jshost__call_init(&call, false);
    if (jshost__call_send(p, &call, method, &part, 1) == -ENOMEM)
        return jshost__seterr(c, JSHOST_ERR_OOM, "out of memory");
    r = jshost__call_wait(p, &call, deadline, true);
    if (r == -ETIMEDOUT) {
        /* What it would answer now is anyone's guess: start over. */
        jshost__conn_lost(p, "timed out");
        return jshost__seterr(c, JSHOST_ERR_TIMEOUT, "%s: no answer in time",
                              what);
    }
    return jshost__call_result(c, &call, what, result);
}

static int
hello(jshost *c, int64_t deadline)
{
    jshost_priv *p = c->priv;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v = {0};
    msgpack_unpacked u;
    const msgpack_object *proto;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    proto_pack_cstr(&pk, "client");
    proto_pack_cstr(&pk, p->client_name);
    proto_pack_cstr(&pk, "protocol");
    msgpack_pack_uint32(&pk, PROTO_VERSION);
    r = connect_request(c, "hello", &sb, deadline, &v);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        if (c->err == JSHOST_ERR_REMOTE)
            c->err = JSHOST_ERR_PROTOCOL;
        jshost__disconnect(p);
        return -1;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
        MSGPACK_UNPACK_SUCCESS) {
        proto = proto_map_get(&u.data, "protocol");
        if (proto != NULL && proto->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            proto->via.u64 != PROTO_VERSION) {
            jshost__seterr(c, JSHOST_ERR_PROTOCOL,
                           "%s speaks protocol %llu, libjshost %d",
                           p->socket_path, (unsigned long long)proto->via.u64,
                           PROTO_VERSION);
            r = -1;
        }
    }
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&v);
    if (r < 0)
        jshost__disconnect(p);
    return r;
}

/* Attaches again every host this handle held on its lost connection. */
static int
reattach(jshost *c, int64_t deadline)
{
    jshost_priv *p = c->priv;
    struct jshost__held *h;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v = {0};
    msgpack_unpacked u;
    const msgpack_object *id;
    char *s;
    int r, i;

    for (h = p->held; h != NULL; h = h->next) {
        for (i = 0; i < h->count; i++) {
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 2);
            proto_pack_cstr(&pk, h->config);
            msgpack_pack_map(&pk, 0);
            r = connect_request(c, "attach", &sb, deadline, &v);
            msgpack_sbuffer_destroy(&sb);
            if (r < 0) {
                jshost__disconnect(p);
                return -1;
            }
            msgpack_unpacked_init(&u);
            if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
                    MSGPACK_UNPACK_SUCCESS &&
                (id = proto_map_get(&u.data, "host")) != NULL &&
                (s = proto_obj_strdup(id)) != NULL) {
                free(h->host);
                h->host = s;
            }
            msgpack_unpacked_destroy(&u);
            jshost_value_free(&v);
        }
    }
    return 0;
}

int
jshost__reconnect_locked(jshost *c)
{
    jshost_priv *p = c->priv;
    int64_t deadline = jshost__now_ms() + p->connect_timeout_ms;

    if (p->fd >= 0)
        return 0;
    if (p->socket_path == NULL && resolve_paths(c) < 0)
        return -1;
    if (open_socket(c, deadline) < 0)
        return -1;
    if (hello(c, deadline) < 0) {
        /* A manager exiting on idle can accept us and then close: once more,
         * which finds the socket gone and starts a new one. */
        if (c->err != JSHOST_ERR_IO || jshost__now_ms() >= deadline)
            return -1;
        sleep_ms(10);
        if (open_socket(c, deadline) < 0 || hello(c, deadline) < 0)
            return -1;
    }
    if (reattach(c, deadline) < 0)
        return -1;
    c->err = JSHOST_ERR_NONE;
    c->errstr[0] = '\0';
    return 0;
}

jshost *
jshost_connect(const struct jshost_options *opts)
{
    struct jshost_options defaults;
    jshost_priv *p;
    jshost *c;

    if (opts == NULL) {
        jshost_options_init(&defaults);
        opts = &defaults;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        free(c);
        return NULL;
    }
    c->priv = p;
    p->self = c;
    p->wake_fd = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->errlock, NULL);
    pthread_mutex_init(&p->dlock, NULL);
    jshost__cond_init(&p->pipe_cond);
    jshost__fork_watch();
    atomic_store(&p->gen, jshost__fork_gen());
    p->fd = -1;
    msgpack_sbuffer_init(&p->wbuf);
    p->next_msgid = 1;
    p->spawn = opts->spawn ? 1 : 0;
    p->direct = opts->direct != 0 && !env_says_no("JSHOST_DIRECT");
    /* A JSHOST_SPIN_US that is not a number leaves the default: a library
     * has nowhere to say so (the daemons log it). */
    (void)spin_init(&p->spin);
    p->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
    p->socket_path = dup_or_null(opts->socket);
    p->runtime_dir = dup_or_null(opts->runtime_dir);
    p->manager_path = dup_or_null(opts->manager_path);
    p->client_name =
        strdup(opts->client_name ? opts->client_name : "libjshost");
    if ((opts->socket != NULL && p->socket_path == NULL) ||
        (opts->runtime_dir != NULL && p->runtime_dir == NULL) ||
        (opts->manager_path != NULL && p->manager_path == NULL) ||
        p->client_name == NULL) {
        jshost_free(c);
        return NULL;
    }
    if (p->socket_path != NULL)
        p->spawn = 0;
    pthread_mutex_lock(&p->lock);
    jshost__reconnect_locked(c);
    jshost__unlock(p);
    return c;
}

int
jshost_reconnect(jshost *c)
{
    jshost_priv *p = c->priv;
    int r;

    jshost__enter(c);
    if (p->driving) {
        jshost__leave(c);
        return jshost__seterr(c, JSHOST_ERR_ARG,
                              "reconnect while another thread is reading");
    }
    if (p->fd >= 0)
        jshost__conn_lost(p, "reconnect asked");
    r = jshost__reconnect_locked(c);
    jshost__leave(c);
    return r;
}

void
jshost_free(jshost *c)
{
    jshost_priv *p;
    struct jshost__qreply *q, *next;

    if (c == NULL)
        return;
    p = c->priv;
    jshost__enter(c); /* after fork: only closes the inherited socket */
    jshost__disconnect(p);
    for (q = p->qhead; q != NULL; q = next) {
        next = q->next;
        jshost_reply_free(&q->reply);
        free(q);
    }
    jshost__held_free(p);
    free(p->inv_rids);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    jshost__unlock(p);
    /* The worker connections are handles of their own, closed here. */
    jshost__direct_free(p);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->errlock);
    pthread_mutex_destroy(&p->dlock);
    pthread_cond_destroy(&p->pipe_cond);
    msgpack_sbuffer_destroy(&p->wbuf);
    free(p->socket_path);
    free(p->runtime_dir);
    free(p->manager_path);
    free(p->client_name);
    free(p);
    jshost_error_clear(&c->remote);
    free(c);
}
