/*
 * Helpers for process-level tests (testutil.h). They assert with cmocka where
 * a failure can only mean the test itself failed (no temp dir, no fork), and
 * report where a test may want to see the failure (EOF, timeouts, refused
 * connections).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpjson.h"
#include "rundir.h"

#ifndef JSHOST_BUILD_ROOT
#error "JSHOST_BUILD_ROOT must be set by meson"
#endif
#ifndef JSHOST_SOURCE_ROOT
#error "JSHOST_SOURCE_ROOT must be set by meson"
#endif

/* --------------------------------------------------------------- paths */

/* A ring of buffers, so a few results can be used together in one call. */
static const char *
tu__path(const char *root, const char *rel)
{
    static char ring[8][PATH_MAX];
    static unsigned next;
    char *buf = ring[next++ % 8];

    if (rel == NULL || *rel == '\0')
        snprintf(buf, PATH_MAX, "%s", root);
    else
        snprintf(buf, PATH_MAX, "%s/%s", root, rel);
    return buf;
}

const char *
tu_build_path(const char *rel)
{
    return tu__path(JSHOST_BUILD_ROOT, rel);
}

const char *
tu_source_path(const char *rel)
{
    return tu__path(JSHOST_SOURCE_ROOT, rel);
}

/* ------------------------------------------------------------- files */

char *
tu_tmpdir(void)
{
    char *d = strdup("/tmp/jtu-XXXXXX");

    assert_non_null(d);
    if (mkdtemp(d) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    return d;
}

static int
tu__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
tu_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    /* Only ever below /tmp: a bug in a test must not remove anything else. */
    if (strncmp(dir, "/tmp/", 5) == 0 && strstr(dir, "..") == NULL)
        nftw(dir, tu__rm, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

char *
tu_write_file(const char *dir, const char *name, const char *text)
{
    char *path, *slash;
    size_t len = strlen(text);
    FILE *f;

    if (asprintf(&path, "%s/%s", dir, name) < 0)
        fail_msg("out of memory");
    /* "node_modules/x/index.js": make the folders on the way. */
    for (slash = strchr(path + strlen(dir) + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0700) == -1 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
        fail_msg("cannot write %s", path);
    return path;
}

/* Appends n bytes to the NUL-terminated *buf of *len bytes. */
static void
tu__append(char **buf, size_t *len, const char *data, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);

    if (b == NULL)
        fail_msg("out of memory");
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

char *
tu_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf, chunk[4096];
    size_t len = 0, n;

    if (f == NULL)
        return NULL;
    buf = calloc(1, 1);
    assert_non_null(buf);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tu__append(&buf, &len, chunk, n);
    if (ferror(f))
        fail_msg("cannot read %s", path);
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------- processes */

static long
tu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
tu__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* In a forked child, before exec: no cmocka crash reporting, env additions. */
static void
tu__child_prepare(char *const envadd[])
{
    int i;
    char *eq, *name;

    /* cmocka's handlers must not report a crash of the child as a test of
     * ours; exec resets them; this covers the way to it. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    for (i = 0; envadd != NULL && envadd[i] != NULL; i++) {
        eq = strchr(envadd[i], '=');
        if (eq == NULL) {
            unsetenv(envadd[i]);
            continue;
        }
        /* The strings may be literals: copy the name, never write into it. */
        name = strndup(envadd[i], (size_t)(eq - envadd[i]));
        if (name != NULL)
            setenv(name, eq + 1, 1);
        free(name);
    }
}

/* fork(), with what the test printed so far flushed so that the child never
 * prints it twice. */
static pid_t
tu__fork(void)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == -1)
        fail_msg("fork: %s", strerror(errno));
    return pid;
}

/* In the child: exec argv, or say why not (on its stderr) and exit 127. */
static _Noreturn void
tu__exec(char *const argv[], const char *who)
{
    execv(argv[0], argv);
    dprintf(2, "%s: cannot run %s: %s\n", who, argv[0], strerror(errno));
    _exit(127);
}

pid_t
tu_spawn(char *const argv[], char *const envadd[], const char *logpath)
{
    pid_t pid;
    int fd;

    pid = tu__fork();
    if (pid != 0)
        return pid;

    tu__child_prepare(envadd);
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != 0) {
        dup2(fd, 0);
        close(fd);
    }
    if (logpath != NULL) {
        fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd == -1) {
            dprintf(2, "tu_spawn: cannot open %s: %s\n", logpath,
                    strerror(errno));
            _exit(127);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    tu__exec(argv, "tu_spawn");
}

int
tu_wait(pid_t pid, int timeout_ms)
{
    long deadline = tu__now_ms() + timeout_ms;
    int status;
    pid_t r;

    for (;;) {
        r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid)
            return status;
        if (r == -1 && errno != EINTR)
            fail_msg("waitpid %ld: %s", (long)pid, strerror(errno));
        if (timeout_ms >= 0 && tu__now_ms() >= deadline)
            return -1;
        if (r == 0)
            tu__sleep_ms(5);
    }
}

void
tu_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    if (kill(pid, SIGTERM) == -1 && errno == ESRCH) {
        /* Already gone; still reap it if it is our zombie. */
        waitpid(pid, NULL, WNOHANG);
        return;
    }
    if (tu_wait(pid, 2000) != -1)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
        ;
}

int
tu_run(char *const argv[], char *const envadd[], const char *input, char **out,
       char **err, int timeout_ms)
{
    long deadline = timeout_ms < 0 ? -1 : tu__now_ms() + timeout_ms, left;
    size_t ilen = input != NULL ? strlen(input) : 0, ioff = 0;
    size_t lens[2] = {0, 0};
    char **bufs[2] = {out, err}, chunk[4096];
    int pin[2], pout[2], perr[2], fds[2], i, r, status;
    struct sigaction ign, old;
    struct pollfd pfd[3];
    ssize_t n;
    pid_t pid;

    *out = calloc(1, 1);
    *err = calloc(1, 1);
    assert_non_null(*out);
    assert_non_null(*err);
    if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 ||
        pipe2(perr, O_CLOEXEC) == -1)
        fail_msg("pipe: %s", strerror(errno));
    pid = tu__fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        tu__child_prepare(envadd);
        tu__exec(argv, "tu_run");
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    /* Never block on the child's stdin while it waits for us to read its
     * full stdout: that would hang both. */
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    if (ilen == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    /* A child that exits without reading all of its stdin must not kill the
     * test with SIGPIPE; the test's own disposition comes back at the end
     * (the child has inherited it already). */
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    fds[0] = pout[0];
    fds[1] = perr[0];
    while (fds[0] >= 0 || fds[1] >= 0) {
        left = deadline < 0 ? -1 : deadline - tu__now_ms();
        if (deadline >= 0 && left <= 0)
            break;
        for (i = 0; i < 2; i++) {
            pfd[i].fd = fds[i];
            pfd[i].events = POLLIN;
        }
        pfd[2].fd = pin[1];
        pfd[2].events = POLLOUT;
        r = poll(pfd, 3, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            fail_msg("poll: %s", strerror(errno));
        if (r == 0)
            break;
        if (pin[1] >= 0 && pfd[2].revents != 0) {
            n = write(pin[1], input + ioff, ilen - ioff);
            if (n > 0)
                ioff += (size_t)n;
            /* Done, or the child closed its stdin: it gets no more. */
            if (ioff == ilen ||
                (n == -1 && errno != EINTR && errno != EAGAIN)) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        for (i = 0; i < 2; i++) {
            if (fds[i] < 0 || pfd[i].revents == 0)
                continue;
            n = read(fds[i], chunk, sizeof chunk);
            if (n > 0) {
                tu__append(bufs[i], &lens[i], chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (pin[1] >= 0)
        close(pin[1]);
    sigaction(SIGPIPE, &old, NULL);
    /* Its output has ended; a child on its way out still gets a moment. */
    left = deadline < 0 ? -1 : deadline - tu__now_ms();
    if (deadline >= 0 && left < 100)
        left = 100;
    status = tu_wait(pid, (int)left);
    if (status == -1) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
        return -1;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int
tu_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd, err;

    if (rundir_check_sockpath(path, NULL) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

bool
tu_wait_socket(const char *path, int timeout_ms)
{
    long deadline = tu__now_ms() + timeout_ms;
    int fd;

    for (;;) {
        fd = tu_connect(path);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        if (errno == ENAMETOOLONG || tu__now_ms() >= deadline)
            return false;
        tu__sleep_ms(10);
    }
}

/* ----------------------------------------------------------------- RPC */

struct tu_rpc {
    int fd;
    struct proto_reader *reader;
    uint32_t next_msgid;
    /* Messages read while waiting for another msgid, in arrival order. */
    struct proto_msg *queue;
    size_t nqueue;
    size_t capqueue;
    bool broken;
    char cause[PROTO_CAUSE_MAX];
};

struct tu_rpc *
tu_rpc_from_fd(int fd)
{
    struct tu_rpc *c = calloc(1, sizeof *c);

    assert_non_null(c);
    c->fd = fd;
    c->reader = proto_reader_new(0);
    assert_non_null(c->reader);
    c->next_msgid = 1;
    return c;
}

struct tu_rpc *
tu_rpc_connect(const char *path)
{
    int fd = tu_connect(path);

    return fd >= 0 ? tu_rpc_from_fd(fd) : NULL;
}

void
tu_rpc_close(struct tu_rpc *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nqueue; i++)
        proto_msg_release(&c->queue[i]);
    free(c->queue);
    proto_reader_free(c->reader);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

int
tu_rpc_fd(const struct tu_rpc *c)
{
    return c->fd;
}

const char *
tu_rpc_error(const struct tu_rpc *c)
{
    return c->cause;
}

uint32_t
tu_rpc_next_msgid(struct tu_rpc *c)
{
    return c->next_msgid++;
}

/* Writes everything; a peer that went away is seen on the next read, and never
 * kills the test with SIGPIPE. */
static void
tu__send_all(struct tu_rpc *c, const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n == -1 && errno == ENOTSOCK)
            n = write(c->fd, buf, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            /* Not fatal here: what the peer said before it went (an error
             * notification) is still readable, and the read reports EOF. */
            snprintf(c->cause, sizeof c->cause, "send: %s", strerror(errno));
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void
tu_rpc_send_raw(struct tu_rpc *c, const void *buf, size_t len)
{
    tu__send_all(c, buf, len);
}

uint32_t
tu_rpc_send(struct tu_rpc *c, const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[256];
    uint32_t msgid = tu_rpc_next_msgid(c);
    size_t at;
    unsigned char first;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* The head by hand: proto_write_request wants the params count first,
     * and here the params come as one JSON array. */
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, PROTO_REQUEST);
    msgpack_pack_uint32(&pk, msgid);
    proto_pack_cstr(&pk, method);
    at = sb.size;
    /* params sits one level above the values in it, which may nest
     * PROTO_VALUE_MAX_DEPTH: the whole request then nests PROTO_MAX_DEPTH. */
    if (mpjson_pack_depth(&pk, params_json, strlen(params_json),
                          PROTO_MAX_DEPTH - 1, cause) != 0)
        fail_msg("tu_rpc_send %s: params %s: %s", method, params_json, cause);
    first = (unsigned char)sb.data[at];
    if (!((first >= 0x90 && first <= 0x9f) || first == 0xdc || first == 0xdd))
        fail_msg("tu_rpc_send %s: params must be a JSON array, not %s", method,
                 params_json);
    tu__send_all(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return msgid;
}

/* The next message from the stream itself (not the queue). */
static int
tu__read_stream(struct tu_rpc *c, struct proto_msg *msg, long deadline)
{
    struct pollfd pfd;
    char *buf;
    size_t len;
    ssize_t n;
    long left;
    int r;

    for (;;) {
        r = proto_reader_next(c->reader, msg, c->cause);
        if (r == 1)
            return 1;
        if (r < 0) {
            c->broken = true;
            return -1;
        }
        if (c->broken)
            return -1;
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        left = deadline < 0 ? -1 : deadline - tu__now_ms();
        if (deadline >= 0 && left < 0)
            left = 0;
        r = poll(&pfd, 1, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == 0)
            return 0;
        assert_int_equal(proto_reader_buffer(c->reader, 65536, &buf, &len), 0);
        n = read(c->fd, buf, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(c->cause, sizeof c->cause, "%s",
                     n == 0 ? "end of stream" : strerror(errno));
            c->broken = true;
            /* Whole messages that came before EOF are still handed out. */
            r = proto_reader_next(c->reader, msg, NULL);
            return r == 1 ? 1 : -1;
        }
        proto_reader_fill(c->reader, (size_t)n);
    }
}

static long
tu__deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : tu__now_ms() + timeout_ms;
}

static void
tu__unqueue(struct tu_rpc *c, size_t i, struct proto_msg *msg)
{
    *msg = c->queue[i];
    memmove(&c->queue[i], &c->queue[i + 1],
            (c->nqueue - i - 1) * sizeof *c->queue);
    c->nqueue--;
}

int
tu_rpc_read(struct tu_rpc *c, struct proto_msg *msg, int timeout_ms)
{
    if (c->nqueue > 0) {
        tu__unqueue(c, 0, msg);
        return 1;
    }
    return tu__read_stream(c, msg, tu__deadline(timeout_ms));
}

int
tu_rpc_wait(struct tu_rpc *c, uint32_t msgid, struct proto_msg *msg,
            int timeout_ms)
{
    long deadline = tu__deadline(timeout_ms);
    size_t i;
    int r;

    for (i = 0; i < c->nqueue; i++) {
        if (c->queue[i].kind == PROTO_RESPONSE && c->queue[i].msgid == msgid) {
            tu__unqueue(c, i, msg);
            return 1;
        }
    }
    for (;;) {
        r = tu__read_stream(c, msg, deadline);
        if (r != 1)
            return r;
        if (msg->kind == PROTO_RESPONSE && msg->msgid == msgid)
            return 1;
        if (c->nqueue == c->capqueue) {
            c->capqueue = c->capqueue ? c->capqueue * 2 : 8;
            c->queue = realloc(c->queue, c->capqueue * sizeof *c->queue);
            assert_non_null(c->queue);
        }
        c->queue[c->nqueue++] = *msg;
        memset(msg, 0, sizeof *msg);
    }
}

char *
tu_rpc_result(const struct proto_msg *msg)
{
    struct proto_error err;
    char *s;

    if (msg->kind != PROTO_RESPONSE)
        return NULL;
    if (msg->error.type == MSGPACK_OBJECT_NIL) {
        s = mpjson_dump(&msg->result, 0);
        assert_non_null(s);
        return s;
    }
    assert_int_equal(proto_error_from_object(&msg->error, &err), 0);
    if (asprintf(&s, "!%s: %.*s", proto_errtype_name(err.type),
                 (int)err.message_len, err.message ? err.message : "") < 0)
        fail_msg("out of memory");
    return s;
}

char *
tu_rpc_call(struct tu_rpc *c, const char *method, const char *params_json,
            int timeout_ms)
{
    struct proto_msg msg;
    uint32_t id;
    char *s;

    id = tu_rpc_send(c, method, params_json);
    if (tu_rpc_wait(c, id, &msg, timeout_ms) != 1)
        return NULL;
    s = tu_rpc_result(&msg);
    proto_msg_release(&msg);
    return s;
}
