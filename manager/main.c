/*
 * jshost-manager: daemon life (docs/lifecycle.md). Runtime dir, start lock, the
 * stale-socket check, daemonizing with a readiness pipe (the starting client
 * returns only once the socket listens), pid file, signals, idle exit and an
 * orderly shutdown that stops every worker before the process exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "jshost_defs.h"
#include "locate.h"
#include "log.h"
#include "manager.h"
#include "rundir.h"
#include "spin_loop.h"
#include "startlock.h"
#include "unixsock.h"
#include "xmalloc.h"

struct manager mgr;

/* Memory given back after a burst, manager.log's size checked, this often. */
#define MANAGER_HOUSE_MS 5000

static uv_timer_t idle_timer, ping_timer, house_timer;
static uv_signal_t sigterm, sigint;
static bool finished;

uint64_t
manager_now(void)
{
    return uv_now(mgr.loop);
}

/*
 * The manager's limits and timings (docs/lifecycle.md, "Limits"): each one
 * is `--flag N` on the command line or the environment variable, the flag
 * winning over the variable.
 */
struct manager_option {
    const char *flag;
    const char *env;
    uint64_t *value;
    uint64_t dflt;
    const char *what;
};

static const struct manager_option options[] = {
    {"--max-clients", "JSHOST_MAX_CLIENTS", &mgr.max_clients,
     JSHOST_DEFAULT_MAX_CLIENTS, "connections open at once"},
    {"--max-client-inflight", "JSHOST_MAX_CLIENT_INFLIGHT",
     &mgr.max_client_inflight, 4096,
     "calls in flight per connection before Overloaded"},
    {"--max-host-inflight", "JSHOST_MAX_HOST_INFLIGHT", &mgr.max_host_inflight,
     65536, "calls in flight or queued per host before Overloaded"},
    {"--max-vms", "JSHOST_MAX_VMS", &mgr.max_vms, 32,
     "private VMs per manager"},
    {"--max-client-vms", "JSHOST_MAX_CLIENT_VMS", &mgr.max_client_vms, 8,
     "private VMs per connection"},
    {"--max-message", "JSHOST_MAX_MESSAGE", &mgr.max_message,
     PROTO_MAX_MESSAGE_DEFAULT,
     "bytes in one message (and so in one "
     "connection's unfinished message)"},
    {"--max-partial-total", "JSHOST_MAX_PARTIAL_TOTAL", &mgr.max_partial_total,
     JSHOST_DEFAULT_MAX_PARTIAL_TOTAL,
     "bytes of unfinished messages across connections (0: no limit)"},
    {"--partial-idle-ms", "JSHOST_PARTIAL_IDLE_MS", &mgr.partial_idle_ms,
     JSHOST_DEFAULT_PARTIAL_IDLE_MS,
     "an unfinished message with no byte for this long is refused"},
    {"--ping-ms", "JSHOST_PING_MS", &mgr.ping_ms, 3000,
     "a ping to each worker this often (0: none)"},
    {"--ping-timeout-ms", "JSHOST_PING_TIMEOUT_MS", &mgr.ping_timeout_ms, 2000,
     "silence past the longest deadline a worker holds before it is hung"},
    {"--kill-grace-ms", "JSHOST_KILL_GRACE_MS", &mgr.kill_grace_ms, 3000,
     "SIGTERM to SIGKILL"},
    {"--drain-grace-ms", "JSHOST_DRAIN_GRACE_MS", &mgr.drain_grace_ms, 5000,
     "stop/restart: calls run on at most this long (or the host's timeout), "
     "then are cancelled"},
    {"--start-timeout-ms", "JSHOST_START_TIMEOUT_MS", &mgr.start_timeout_ms,
     60000, "a worker must be ready within this"},
    {"--crash-limit", "JSHOST_CRASH_LIMIT", &mgr.crash_limit, 5,
     "young crashes in 30 s, per worker of the pool, that quarantine"},
    {"--young-ms", "JSHOST_YOUNG_MS", &mgr.young_ms, 5000,
     "a worker that dies this soon after ready (or before serving) is young"},
    {"--recycle-limit", "JSHOST_RECYCLE_LIMIT", &mgr.recycle_limit, 5,
     "heap-limit recycles a minute, per worker, before they count as crashes"},
    {"--quarantine-ms", "JSHOST_QUARANTINE_MS", &mgr.quarantine_ms, 5000,
     "the first quarantine; each one soon after the last doubles"},
    {"--quarantine-max-ms", "JSHOST_QUARANTINE_MAX_MS", &mgr.quarantine_max_ms,
     300000, "the longest quarantine"},
    {"--log-max-bytes", "JSHOST_LOG_MAX_BYTES", &mgr.log_max_bytes,
     (uint64_t)10 * 1024 * 1024, "a log's size before it is rotated"},
    {"--log-keep", "JSHOST_LOG_KEEP", &mgr.log_keep, 3,
     "rotated logs kept (<log>.1 the newest)"},
};

#define NOPTIONS (sizeof options / sizeof options[0])

static void
usage(FILE *f)
{
    size_t i;

    fprintf(f,
            "usage: jshost-manager [--foreground] [--no-idle-exit] "
            "[--reload|--no-reload] [--idle-ms N] [--runtime-dir DIR]\n"
            "       [--OPTION N ...]\n"
            "\n"
            "  --foreground     do not daemonize (production, under a "
            "supervisor)\n"
            "  --no-idle-exit   keep running with no hosts and no clients\n"
            "  --reload         restart a host when a file it loaded changes "
            "(the\n"
            "                   default, but not with --no-idle-exit)\n"
            "  --no-reload      never do (a config's `reload` still decides "
            "for its host)\n"
            "  --idle-ms N      exit after N ms with nothing to do (default "
            "%d)\n"
            "  --runtime-dir D  instead of $JSHOST_RUNTIME_DIR, "
            "$XDG_RUNTIME_DIR/jshost, /tmp/jshost-<uid>\n"
            "\n"
            "limits and timings (docs/lifecycle.md), each --OPTION N or its "
            "environment variable:\n",
            JSHOST_DEFAULT_IDLE_MS);
    for (i = 0; i < NOPTIONS; i++)
        fprintf(f, "  %-22s %-27s %s (%llu)\n", options[i].flag, options[i].env,
                options[i].what, (unsigned long long)options[i].dflt);
    fprintf(f, "\n"
               "environment:\n"
               "  JSHOST_WORKER               the worker binary (default: "
               "next to this one)\n"
               "  JSHOST_START_LOCK_FD        the start lock, handed over by "
               "an auto-starting client\n"
               "  LISTEN_PID, LISTEN_FDS      systemd's socket activation: "
               "serve fd 3\n");
}

/* A number for an option, or exit 2 saying whose it is. */
static uint64_t
option_number(const char *who, const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || errno != 0 || *end != '\0') {
        fprintf(stderr, "jshost-manager: %s: '%s' is not a number\n", who, s);
        exit(2);
    }
    return v;
}

/* Every option from its variable or its default (flags come after). */
static void
options_from_env(void)
{
    const char *v;
    size_t i;

    for (i = 0; i < NOPTIONS; i++) {
        v = getenv(options[i].env);
        *options[i].value = v != NULL && *v != '\0'
                                ? option_number(options[i].env, v)
                                : options[i].dflt;
    }
}

/* argv[*i] as an option flag with its value: true when it was one. */
static bool
option_flag(int argc, char **argv, int *i)
{
    size_t k;

    for (k = 0; k < NOPTIONS; k++) {
        if (strcmp(argv[*i], options[k].flag) != 0)
            continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "jshost-manager: %s needs a number\n",
                    options[k].flag);
            exit(2);
        }
        *options[k].value = option_number(options[k].flag, argv[++*i]);
        return true;
    }
    return false;
}

/* Room for the connections allowed and every worker's socket and pipe. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open files limit: %s", strerror(errno));
}

/* The worker binary, found the one way every jshost program finds a daemon
 * (locate.h). It runs before daemonizing: a relative JSHOST_WORKER is made
 * absolute against the cwd the client gave us, since the daemon moves to /
 * and every spawn would then fail like a crash until the host is quarantined.
 * Nothing found leaves the bare name: each spawn then fails and says so. */
static void
find_worker(void)
{
    const char *env = getenv(locate_env(LOCATE_WORKER));
    int r;

    r = locate_daemon(LOCATE_WORKER, NULL, mgr.worker_path,
                      sizeof mgr.worker_path);
    if (r < 0 && env != NULL && env[0] != '\0') {
        errno = -r;
        fatal("%s=%s", locate_env(LOCATE_WORKER), env);
    }
}

static void
write_pidfile(void)
{
    char buf[32];
    int fd, n;

    fd = open(mgr.pidpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_warn("cannot write %s: %s", mgr.pidpath, strerror(errno));
        return;
    }
    n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n)
        log_warn("cannot write %s", mgr.pidpath);
    close(fd);
}

/* Only our own: a successor may have started while we were stopping. */
static void
remove_pidfile(void)
{
    char buf[32];
    ssize_t n;
    int fd = open(mgr.pidpath, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (atoi(buf) == (int)getpid())
            unlink(mgr.pidpath);
    }
}

static void
close_walk_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Everything is stopped: let the loop run out. */
static void
manager_finish(void)
{
    if (finished)
        return;
    finished = true;
    log_info("exiting");
    server_close();
    remove_pidfile();
    /* What it still has to write goes out before the loop ends. */
    logfile_close(mgr.vmlog);
    mgr.vmlog = NULL;
    uv_close((uv_handle_t *)&idle_timer, NULL);
    uv_close((uv_handle_t *)&ping_timer, NULL);
    uv_close((uv_handle_t *)&house_timer, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void
idle_cb(uv_timer_t *t)
{
    (void)t;
    log_info("idle for %llu ms: exiting", (unsigned long long)mgr.idle_ms);
    manager_shutdown();
}

void
manager_check_idle(void)
{
    if (finished)
        return;
    if (mgr.shutting_down) {
        if (TAILQ_EMPTY(&mgr.hosts) && mgr.nclients == 0)
            manager_finish();
        return;
    }
    if (mgr.idle_exit && TAILQ_EMPTY(&mgr.hosts) && mgr.nclients == 0) {
        if (!uv_is_active((uv_handle_t *)&idle_timer))
            uv_timer_start(&idle_timer, idle_cb, mgr.idle_ms, 0);
    } else {
        uv_timer_stop(&idle_timer);
    }
}

void
manager_shutdown(void)
{
    struct host *h, *hn;
    struct client *c, *cn;

    if (mgr.shutting_down)
        return;
    mgr.shutting_down = true;
    uv_timer_stop(&idle_timer);
    /* New clients find no socket and may start a fresh manager. */
    server_close();
    for (c = TAILQ_FIRST(&mgr.clients); c != NULL; c = cn) {
        cn = TAILQ_NEXT(c, entry);
        client_close(c);
    }
    for (h = TAILQ_FIRST(&mgr.hosts); h != NULL; h = hn) {
        hn = TAILQ_NEXT(h, entry);
        host_stop_now(h);
    }
    manager_check_idle();
}

static void
signal_cb(uv_signal_t *s, int signum)
{
    (void)s;
    log_info("signal %d: stopping every host", signum);
    manager_shutdown();
}

static void
ping_cb(uv_timer_t *t)
{
    (void)t;
    worker_ping_all();
}

/* After a burst (many connections closed, big messages freed) the freed
 * memory goes back to the system; manager.log gets rotated like the rest. */
static void
house_cb(uv_timer_t *t)
{
    (void)t;
    if (mgr.trim_due) {
        mgr.trim_due = false;
        malloc_trim(0);
    }
    if (mgr.vmlog != NULL)
        logfile_check(mgr.vmlog);
}

static void
setup_paths(const char *rundir)
{
    char *cause = NULL;
    int rc;

    if (rundir != NULL && setenv("JSHOST_RUNTIME_DIR", rundir, 1) != 0)
        fatal("setenv");
    rc = rundir_resolve(mgr.rundir, sizeof mgr.rundir, &cause);
    if (rc != 0) {
        fprintf(stderr, "jshost-manager: %s\n", cause ? cause : "runtime dir");
        exit(1);
    }
    if (rundir_join(mgr.sockpath, sizeof mgr.sockpath, mgr.rundir,
                    JSHOST_MANAGER_SOCK) != 0 ||
        rundir_join(mgr.pidpath, sizeof mgr.pidpath, mgr.rundir,
                    JSHOST_MANAGER_PID) != 0 ||
        rundir_join(mgr.logpath, sizeof mgr.logpath, mgr.rundir,
                    JSHOST_MANAGER_LOG) != 0 ||
        rundir_join(mgr.hostsdir, sizeof mgr.hostsdir, mgr.rundir,
                    JSHOST_HOSTS_DIR) != 0) {
        fprintf(stderr, "jshost-manager: runtime dir path too long: %s\n",
                mgr.rundir);
        exit(1);
    }
    if (rundir_check_sockpath(mgr.sockpath, &cause) != 0) {
        fprintf(stderr, "jshost-manager: %s\n", cause);
        exit(1);
    }
    mkdir(mgr.hostsdir, 0700);
}

/*
 * Holds the start lock while checking the socket: a lock fd handed over by
 * the client that started us, or our own. Returns the lock fd.
 */
static int
take_start_lock(void)
{
    char lockpath[256];
    const char *env = getenv("JSHOST_START_LOCK_FD");
    int fd, rc;

    if (env != NULL && *env != '\0') {
        fd = atoi(env);
        unsetenv("JSHOST_START_LOCK_FD");
        if (fd > 2 && fcntl(fd, F_GETFD) >= 0) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    if (rundir_join(lockpath, sizeof lockpath, mgr.rundir,
                    JSHOST_MANAGER_LOCK) != 0)
        return -ENAMETOOLONG;
    for (;;) {
        fd = startlock_acquire(lockpath);
        if (fd != -EAGAIN)
            break;
        /* Someone else was starting one: is it serving now? */
        rc = unixsock_probe(mgr.sockpath);
        if (rc == 1) {
            fprintf(stderr, "jshost-manager: a manager already serves %s\n",
                    mgr.sockpath);
            exit(1);
        }
    }
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* The start lock held and the socket path free for us: the lock fd, or -1
 * after saying why on stderr. */
static int
take_start_lock_and_clear(void)
{
    char *cause = NULL;
    int lockfd, rc;

    lockfd = take_start_lock();
    if (lockfd < 0) {
        fprintf(stderr, "jshost-manager: cannot take the start lock: %s\n",
                strerror(-lockfd));
        return -1;
    }
    /* We hold the lock: a socket nothing answers on is stale. */
    rc = unixsock_clear_stale(mgr.sockpath, &cause);
    if (rc == -EADDRINUSE)
        fprintf(stderr, "jshost-manager: a manager already serves %s\n",
                mgr.sockpath);
    else if (rc < 0)
        fprintf(stderr, "jshost-manager: %s\n",
                cause != NULL ? cause : strerror(-rc));
    free(cause);
    return rc < 0 ? -1 : lockfd;
}

int
main(int argc, char **argv)
{
    bool foreground = false;
    int reload = -1;
    const char *rundir = NULL;
    char *cause = NULL;
    struct spin_loop *spin;
    int i, lockfd, ready_fd = -1, listen_fd = -1, rc;

    mgr.idle_ms = JSHOST_DEFAULT_IDLE_MS;
    mgr.idle_exit = true;
    options_from_env();
    for (i = 1; i < argc; i++) {
        if (option_flag(argc, argv, &i))
            continue;
        if (strcmp(argv[i], "--foreground") == 0)
            foreground = true;
        else if (strcmp(argv[i], "--no-idle-exit") == 0)
            mgr.idle_exit = false;
        else if (strcmp(argv[i], "--reload") == 0)
            reload = 1;
        else if (strcmp(argv[i], "--no-reload") == 0)
            reload = 0;
        else if (strcmp(argv[i], "--idle-ms") == 0 && i + 1 < argc)
            mgr.idle_ms = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runtime-dir") == 0 && i + 1 < argc)
            rundir = argv[++i];
        else if (strcmp(argv[i], "--version") == 0) {
            printf("jshost-manager %s\n", JSHOST_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (mgr.log_keep == 0)
        mgr.log_keep = 1;
    /* Development (a manager a client started) reloads on edits;
     * production (--no-idle-exit) only when asked. */
    mgr.reload = reload >= 0 ? reload == 1 : mgr.idle_exit;
    TAILQ_INIT(&mgr.clients);
    TAILQ_INIT(&mgr.hosts);
    find_worker();
    setup_paths(rundir);

    rc = server_activation_fd(&listen_fd, &cause);
    if (rc < 0) {
        fprintf(stderr, "jshost-manager: %s\n", cause);
        free(cause);
        return 1;
    }
    if (rc == 1) {
        /* systemd listens and started us: the socket is there and nobody
         * else starts a manager on it, so no start lock and no stale-socket
         * check (it would find systemd's socket live). Daemonizing would
         * change the pid systemd supervises. */
        foreground = true;
        lockfd = -1;
    } else {
        lockfd = take_start_lock_and_clear();
        if (lockfd < 0)
            return 1;
    }

    if (!foreground) {
        rc = daemon_start(mgr.logpath, lockfd, &ready_fd);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            fprintf(stderr, "jshost-manager: failed to start (see %s)\n",
                    mgr.logpath);
            return 1;
        }
    }
    if (log_open(mgr.logpath, "jshost-manager") != 0)
        log_open(NULL, "jshost-manager");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    raise_fd_limit();

    mgr.loop = uv_default_loop();
    uv_update_time(mgr.loop);
    rpcstream_setup(mgr.loop);
    rpcstream_set_partial_limits(mgr.max_partial_total, mgr.partial_idle_ms);
    deadline_setup(mgr.loop);
    /* Private VMs' output goes into manager.log, rotated like a host's. */
    mgr.vmlog = logfile_open(mgr.logpath, true);
    mgr.start_ms = manager_now();
    if (listen_fd >= 0)
        rc = server_listen_fd(mgr.loop, listen_fd, &cause);
    else
        rc = server_listen(mgr.loop, mgr.sockpath, &cause);
    if (rc != 0) {
        log_error("%s", cause);
        if (foreground)
            fprintf(stderr, "jshost-manager: %s\n", cause);
        if (ready_fd >= 0)
            daemon_ready(ready_fd, 0);
        return 1;
    }
    write_pidfile();
    /* Clients waiting on the lock may connect from now on. */
    if (lockfd >= 0)
        startlock_release(lockfd);
    if (ready_fd >= 0)
        daemon_ready(ready_fd, 1);
    log_info("serving %s%s (worker %s)", mgr.sockpath,
             listen_fd >= 0 ? " (the socket systemd passed)" : "",
             mgr.worker_path);

    uv_timer_init(mgr.loop, &idle_timer);
    uv_timer_init(mgr.loop, &ping_timer);
    uv_timer_init(mgr.loop, &house_timer);
    uv_timer_start(&house_timer, house_cb, MANAGER_HOUSE_MS, MANAGER_HOUSE_MS);
    uv_unref((uv_handle_t *)&house_timer);
    uv_signal_init(mgr.loop, &sigterm);
    uv_signal_init(mgr.loop, &sigint);
    uv_signal_start(&sigterm, signal_cb, SIGTERM);
    uv_signal_start(&sigint, signal_cb, SIGINT);
    if (mgr.ping_ms > 0)
        uv_timer_start(&ping_timer, ping_cb, mgr.ping_ms, mgr.ping_ms);
    manager_check_idle();
    spin = spin_loop_start(mgr.loop, rpcstream_quiet);

    uv_run(mgr.loop, UV_RUN_DEFAULT);
    spin_loop_close(spin);
    uv_walk(mgr.loop, close_walk_cb, NULL);
    uv_run(mgr.loop, UV_RUN_DEFAULT);
    context_cleanup();
    deadline_cleanup();
    rpcstream_teardown();
    /* Every handle closed means every worker and connection was reaped. */
    rc = uv_loop_close(mgr.loop);
    if (rc != 0)
        log_error("loop not empty at exit: %s", uv_strerror(rc));
    log_info("exited");
    log_close();
    return rc == 0 ? 0 : 1;
}
