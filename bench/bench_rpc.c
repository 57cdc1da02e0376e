/*
 * Calls from C (libjshost), without Python in the way, against their floors
 * measured in the same run: a blocking echo over a socketpair (one hop: what a
 * direct worker call cannot beat) and the same echo behind a blocking relay
 * process (two hops: what a call through the manager cannot beat), and both
 * again with every read polling first as jshost's processes do (spin.h: what
 * polling alone gives a plain echo). Then
 * pipelined calls (a window of requests in flight on one connection), which an
 * HTTP/1.1 keep-alive client cannot do. Then the manager's CPU per relayed
 * call of inc, nested_out and string_1m beside the relay's CPU per round trip
 * when the echo answers with a reply of the same size (the relay reads what
 * is there and writes it out, as any process forwarding bytes must) and
 * beside a memcpy of that reply: what the manager spends beyond the bare
 * relay is its own work, and whether that grows with the reply is the point.
 *
 *     JSHOST_MANAGER=... JSHOST_WORKER=... bench_rpc CONFIG
 *
 * CONFIG must export `double(data) -> data.number * 2` and bench.config.js's
 * inc, nested_out and string_1m. Everything runs in a fresh directory under
 * /tmp; the worker and the manager started here are stopped here (the
 * manager by a shutdown request, then its pid is watched until it is gone).
 * Asserts nothing about speed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "bench_scale.h"
#include "jshost.h"
#include "spin.h"
#include "unixsock.h"

#define WINDOW 64    /* pipelined requests in flight */
#define MSG_BYTES 24 /* the floor's request: about a small call's size */
/* A relay's read asks for this much, as the manager's do (rpcstream.c). */
#define RELAY_CHUNK ((size_t)64 * 1024)
/* What a response adds to the value libjshost hands back: [1, msgid, nil,
 * value] with a 16-bit msgid. */
#define REPLY_ENVELOPE 6
#define START_MS 20000

static char tmpdir[] = "/tmp/jshbench-rpc-XXXXXX";

/* Sequential round trips per round, pipelined calls per round, rounds (best
 * of), memcpys of a reply per round: 2000, 10000, 9 and 2000 at
 * JSHOST_BENCH_SCALE 1 (set in main). */
static int nseq, npipe, rounds, memcpy_iters;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench_rpc: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This process's CPU seconds (all threads). */
static double
cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One read of up to len bytes, at least one; with sp it polls first (sp
 * NULL: it blocks). */
static size_t
read_some(int fd, char *buf, size_t len, struct spin *sp)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (sp != NULL)
            spin_wait(sp, &pfd, 1, UINT64_MAX);
        n = read(fd, buf, len);
        if (sp != NULL)
            spin_end(sp);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0); /* the other end is gone: the floor's helpers just stop */
        return (size_t)n;
    }
}

/* Reads len bytes; with sp, each read polls first (sp NULL: it blocks). */
static void
read_full(int fd, char *buf, size_t len, struct spin *sp)
{
    while (len > 0) {
        size_t n = read_some(fd, buf, len, sp);

        buf += n;
        len -= n;
    }
}

static void
write_full(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            _exit(0);
        buf += n;
        len -= (size_t)n;
    }
}

/* A floor's request is MSG_BYTES whose first four say the size of the reply
 * wanted: one echo and one relay then serve every reply size. */
static void
request_init(char *req, size_t reply_bytes)
{
    uint32_t n = (uint32_t)reply_bytes;

    memset(req, 'x', MSG_BYTES);
    memcpy(req, &n, sizeof n);
}

static size_t
request_reply_bytes(const char *req)
{
    uint32_t n;

    memcpy(&n, req, sizeof n);
    return n;
}

/* A child that answers each request on fd with the reply it asks for, until
 * EOF. */
static pid_t
spawn_echo(int fd, int close_fd, struct spin *sp)
{
    pid_t pid = fork();
    char req[MSG_BYTES];
    char *reply = NULL;
    size_t cap = 0;

    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    close(close_fd);
    for (;;) {
        size_t len;

        read_full(fd, req, sizeof req, sp);
        len = request_reply_bytes(req);
        if (len > cap) {
            free(reply);
            reply = malloc(len);
            if (reply == NULL)
                _exit(1);
            memset(reply, 'x', len);
            cap = len;
        }
        write_full(fd, reply, len);
    }
}

/* Moves len bytes from one fd to the other as any forwarder must: each read
 * takes what is there (up to RELAY_CHUNK), all of it is written out. */
static void
forward(int from, int to, size_t len, char *buf, struct spin *sp)
{
    while (len > 0) {
        size_t n =
            read_some(from, buf, len < RELAY_CHUNK ? len : RELAY_CHUNK, sp);

        write_full(to, buf, n);
        len -= n;
    }
}

/* A child that relays each request from left to right and its reply back.
 * The request is read whole (it says how long the reply is), as the manager
 * reads a message to its end. */
static pid_t
spawn_relay(int left, int right, int close_fd, struct spin *sp)
{
    pid_t pid = fork();
    static char buf[RELAY_CHUNK];
    char req[MSG_BYTES];

    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    close(close_fd);
    for (;;) {
        read_full(left, req, sizeof req, sp);
        write_full(right, req, sizeof req);
        forward(right, left, request_reply_bytes(req), buf, sp);
    }
}

/* CPU seconds of every thread of pid so far, from schedstat (nanoseconds;
 * /proc/PID/stat counts 10 ms ticks, too coarse for one call). */
static double
proc_cpu(pid_t pid)
{
    char dir[64];
    unsigned long long total = 0;
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    d = opendir(dir);
    if (d == NULL)
        die("%s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        unsigned long long ns;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/schedstat", dir, e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue; /* a thread that ended since readdir */
        if (fscanf(f, "%llu", &ns) == 1)
            total += ns;
        fclose(f);
    }
    closedir(d);
    return total / 1e9;
}

/* Seconds per round trip over fd, one round of n: a request, then its whole
 * reply of reply_bytes. With relay > 0, *cpu gets that process's CPU seconds
 * per round trip. */
static double
floor_round(int fd, struct spin *sp, size_t reply_bytes, int n, pid_t relay,
            double *cpu)
{
    char req[MSG_BYTES];
    char *reply = malloc(reply_bytes);
    double t0, t, c0 = 0;

    if (reply == NULL)
        die("out of memory");
    request_init(req, reply_bytes);
    if (relay > 0)
        c0 = proc_cpu(relay);
    t0 = now();
    for (int i = 0; i < n; i++) {
        write_full(fd, req, sizeof req);
        read_full(fd, reply, reply_bytes, sp);
    }
    t = (now() - t0) / n;
    if (relay > 0)
        *cpu = (proc_cpu(relay) - c0) / n;
    free(reply);
    return t;
}

static void
reap(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* A socketpair as jshost's sockets are: send buffers grown (unixsock.h),
 * so that a big reply crosses a floor in as many pieces as it crosses
 * jshost. */
static void
floor_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    (void)unixsock_grow_sndbuf(sv[0]);
    (void)unixsock_grow_sndbuf(sv[1]);
}

/* The floors' helpers: fds[0] talks to an echo, fds[1] to an echo behind a
 * relay; pids[] are the three children (pids[2] the relay), which poll
 * first with sp. */
static void
floors_start(int fds[2], pid_t pids[3], struct spin *sp)
{
    int a[2], b[2];

    floor_pair(a);
    pids[0] = spawn_echo(a[1], a[0], sp);
    close(a[1]);
    fds[0] = a[0];

    /* Each child must hold only its own ends (fds[0] included), or an end left
     * open in the wrong process keeps the others from ever seeing EOF. */
    floor_pair(b);
    pids[1] = spawn_echo(b[1], b[0], sp);
    close(b[1]);
    floor_pair(a);
    pids[2] = spawn_relay(a[1], b[0], a[0], sp);
    close(a[1]);
    close(b[0]);
    fds[1] = a[0];
}

static void
floors_stop(int fds[2], pid_t pids[3])
{
    close(fds[0]);
    close(fds[1]);
    for (int i = 0; i < 3; i++)
        reap(pids[i]);
}

static void
pack_data(msgpack_sbuffer *sb, uint32_t i)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "number", 6);
    msgpack_pack_uint32(&pk, i);
}

static void
pack_params(msgpack_sbuffer *sb, const char *host, uint32_t i)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, host, strlen(host));
    msgpack_pack_str_with_body(&pk, "double", 6);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "number", 6);
    msgpack_pack_uint32(&pk, i);
    msgpack_pack_map(&pk, 0);
}

static void
check_double(const jshost_value *v, uint32_t i, const char *what)
{
    msgpack_unpacked res;
    size_t off = 0;
    bool ok;

    msgpack_unpacked_init(&res);
    ok = msgpack_unpack_next(&res, v->data, v->len, &off) ==
             MSGPACK_UNPACK_SUCCESS &&
         res.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         res.data.via.u64 == 2 * (uint64_t)i;
    msgpack_unpacked_destroy(&res);
    if (!ok)
        die("%s: double(%u) answered something else", what, i);
}

/* Seconds per sequential call, one round. */
static double
calls_sequential(jshost *c, const char *host, const char *what)
{
    msgpack_sbuffer sb;
    double t0 = now();

    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; i < (uint32_t)nseq; i++) {
        jshost_value v;

        pack_data(&sb, i);
        if (jshost_call(c, host, "double", sb.data, sb.size, 10000, &v) < 0)
            die("%s: call: %s", what, c->errstr);
        check_double(&v, i, what);
        jshost_value_free(&v);
    }
    msgpack_sbuffer_destroy(&sb);
    return (now() - t0) / nseq;
}

/* Calls per second with WINDOW requests in flight, one round, and this
 * process's CPU per call. The loop an event loop would run: top the window
 * up, then take a reply (jshost_read writes the requests queued meanwhile,
 * all in one go, before it waits). */
static double
calls_pipelined(jshost *c, const char *host, const char *what, double *cpu)
{
    msgpack_sbuffer sb;
    uint32_t sent = 0, done = 0;
    /* msgids are the library's: remember each one's argument to check it */
    static uint32_t arg_of[WINDOW * 4];
    double t0 = now(), c0 = cpu_now();

    msgpack_sbuffer_init(&sb);
    while (done < (uint32_t)npipe) {
        while (sent < (uint32_t)npipe && sent - done < WINDOW) {
            uint32_t msgid;

            pack_params(&sb, host, sent);
            if (jshost_send(c, "call", sb.data, sb.size, &msgid) < 0)
                die("%s: send: %s", what, c->errstr);
            arg_of[msgid % (WINDOW * 4)] = sent++;
        }

        jshost_reply rep;
        int n = jshost_read(c, &rep, 10000);

        if (n < 0)
            die("%s: read: %s", what, c->errstr);
        if (n == 0)
            die("%s: no reply within 10 s", what);
        if (!rep.ok)
            die("%s: call failed: %s", what,
                rep.error.message ? rep.error.message : "?");
        check_double(&rep.value, arg_of[rep.msgid % (WINDOW * 4)], what);
        jshost_reply_free(&rep);
        done++;
    }
    msgpack_sbuffer_destroy(&sb);
    *cpu = (cpu_now() - c0) / npipe;
    return npipe / (now() - t0);
}

/* A relayed call whose reply a floor round trip matches in size: its
 * function in bench.config.js, its data (bench_cpu.py's), and the figures. */
struct reply_case {
    const char *fn;
    const char *small; /* the same work, a small answer (NULL: fn itself) */
    const char *json;  /* the data */
    int n;             /* calls, and floor round trips, per round */
    jshost_value data;
    size_t value_len; /* the result's: every call checks it */
    size_t reply;     /* bytes of the response: value_len + REPLY_ENVELOPE */
    double floor_cpu, floor_wall;   /* blocking relay, per round trip */
    double pfloor_cpu, pfloor_wall; /* polling relay */
    double manager_cpu, call_wall;  /* per call through the manager */
    double quiet_cpu, small_cpu;    /* a manager that never polls: fn's,
                                       and `small`'s */
    size_t small_len;
    double copy; /* one memcpy of the reply */
};

/* Seconds per relayed call of rc's function (its small twin when
 * `small`), one round; *cpu gets the manager's CPU seconds per call. */
static double
calls_case(jshost *c, const char *host, const struct reply_case *rc, bool small,
           pid_t mpid, double *cpu)
{
    const char *fn = small ? rc->small : rc->fn;
    size_t want = small ? rc->small_len : rc->value_len;
    double t0, t, c0 = proc_cpu(mpid);

    t0 = now();
    for (int i = 0; i < rc->n; i++) {
        jshost_value v;

        if (jshost_call(c, host, fn, rc->data.data, rc->data.len, 10000, &v) <
            0)
            die("%s: call: %s", fn, c->errstr);
        if (v.len != want)
            die("%s: a result of %zu bytes, %zu before", fn, v.len, want);
        jshost_value_free(&v);
    }
    t = (now() - t0) / rc->n;
    *cpu = (proc_cpu(mpid) - c0) / rc->n;
    return t;
}

/* Seconds per memcpy of len bytes, one round of memcpy_iters. */
static double
memcpy_round(char *dst, const char *src, size_t len)
{
    double t0 = now();

    for (int i = 0; i < memcpy_iters; i++) {
        memcpy(dst, src, len);
        /* nothing reads dst: the copy must not be dropped */
        __asm__ volatile("" : : "r"(dst) : "memory");
    }
    return (now() - t0) / memcpy_iters;
}

/* "inc (7 B)": the function and its reply's size, for the table. */
static void
case_label(char *buf, size_t len, const struct reply_case *rc)
{
    if (rc->reply < 1024)
        snprintf(buf, len, "%s (%zu B)", rc->fn, rc->reply);
    else if (rc->reply < 1024 * 1024)
        snprintf(buf, len, "%s (%.1f KiB)", rc->fn, rc->reply / 1024.0);
    else
        snprintf(buf, len, "%s (%.2f MiB)", rc->fn,
                 rc->reply / (1024.0 * 1024));
}

static pid_t
spawn_worker(const char *worker, const char *sock, const char *config)
{
    char log[PATH_MAX];
    pid_t pid;

    snprintf(log, sizeof log, "%s/worker.log", tmpdir);
    pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        /* If the bench dies (die() exits), the worker must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(worker, worker, "--listen", sock, config, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Connects to sock, retrying until the worker listens (it binds once loaded).
 */
static jshost *
connect_worker(const char *sock, pid_t pid)
{
    struct jshost_options o;
    double deadline = now() + START_MS / 1000.0;

    jshost_options_init(&o);
    o.socket = sock;
    o.spawn = 0;
    for (;;) {
        jshost *c = jshost_connect(&o);

        if (c == NULL)
            die("out of memory");
        if (c->err == 0)
            return c;
        jshost_free(c);
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("jshost-worker exited; see %s/worker.log", tmpdir);
        if (now() > deadline)
            die("jshost-worker did not listen within %d ms", START_MS);
        usleep(1000);
    }
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

/* The pid in DIR/manager.pid, DIR a runtime dir. */
static pid_t
manager_pid(const char *rundir)
{
    char path[PATH_MAX];
    FILE *f;
    int pid = -1;

    snprintf(path, sizeof path, "%s/manager.pid", rundir);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
}

/* A handle on the manager in rundir (spawned if need be), attached to
 * config: every call relayed by the manager (its cost shows), or, `direct`,
 * sent to the worker's own socket as a program's calls are. *pid (may be
 * NULL) gets the manager's pid. */
static jshost *
start_manager(const char *manager, const char *rundir, const char *config,
              bool direct, char **host, pid_t *pid)
{
    struct jshost_options o;
    jshost *c;

    jshost_options_init(&o);
    o.runtime_dir = rundir;
    o.manager_path = manager;
    o.spawn = 1;
    o.direct = direct;
    c = jshost_connect(&o);
    if (c == NULL || c->err != 0)
        die("connect (manager): %s", c ? c->errstr : "out of memory");
    if (pid != NULL && (*pid = manager_pid(rundir)) <= 0)
        die("no pid in %s/manager.pid", rundir);
    if (jshost_attach(c, config, host, NULL) < 0)
        die("attach (manager): %s", c->errstr);
    return c;
}

static void
wait_gone(pid_t pid, const char *what)
{
    for (int i = 0; i < 1000; i++) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return;
        usleep(10000);
    }
    die("%s (pid %d) still runs 10 s after it was stopped", what, (int)pid);
}

/* Stops the manager behind c, waits until it is gone, frees c. */
static void
stop_manager(jshost *c, pid_t pid)
{
    if (jshost_shutdown(c) < 0)
        die("shutdown: %s", c->errstr);
    jshost_free(c);
    wait_gone(pid, "the manager");
}

static double
min_of(double a, double b)
{
    return a < b ? a : b;
}

static double
max_of(double a, double b)
{
    return a > b ? a : b;
}

int
main(int argc, char **argv)
{
    const char *manager = getenv("JSHOST_MANAGER");
    const char *worker = getenv("JSHOST_WORKER");
    char config[PATH_MAX], sock[PATH_MAX], rundir[PATH_MAX], rundir0[PATH_MAX];
    double floor1 = 1e9, floor2 = 1e9, seq_direct = 1e9, seq_manager = 1e9;
    double pfloor1 = 1e9, pfloor2 = 1e9;
    struct spin sp;
    double seq_host = 1e9;
    double pipe_direct = 0, pipe_manager = 0, rate, cpu;
    double cpu_direct = 1e9, cpu_manager = 1e9;
    char *hd = NULL, *hm = NULL, *hh = NULL, *h0 = NULL;
    jshost *cd, *cm, *ch, *c0;
    pid_t wpid, mpid, mpid0, fpids[3], ppids[3];
    int ffds[2], pfds[2];
    /* Fewer calls a round where each takes long: about 1 s a round in all
     * (at JSHOST_BENCH_SCALE 1). */
    struct reply_case cases[] = {
        {.fn = "inc", .json = "{\"n\": 41}", .n = 1000},
        {.fn = "nested_out",
         .small = "nested_small",
         .json = "{\"seed\": 0}",
         .n = 400},
        {.fn = "string_1m",
         .small = "string_1m_small",
         .json = "{\"c\": \"x\"}",
         .n = 200},
    };
    size_t ncases = sizeof cases / sizeof cases[0], copy_max = 0;
    char *copy_src, *copy_dst;

    if (argc != 2)
        die("usage: JSHOST_MANAGER=... JSHOST_WORKER=... bench_rpc CONFIG");
    if (manager == NULL || worker == NULL)
        die("set JSHOST_MANAGER and JSHOST_WORKER to the built binaries");
    if (realpath(argv[1], config) == NULL)
        die("%s: %s", argv[1], strerror(errno));
    nseq = (int)bench_scaled(2000, 10);
    npipe = (int)bench_scaled(10000, 2 * WINDOW);
    rounds = (int)bench_scaled(9, 1);
    memcpy_iters = (int)bench_scaled(2000, 10);
    for (size_t k = 0; k < ncases; k++)
        cases[k].n = (int)bench_scaled(cases[k].n, 1);
    if (mkdtemp(tmpdir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    /* Everything up at once, so that the rounds can take turns: a busy spell
     * of the machine then hurts every figure alike. */
    spin_init(&sp);
    floors_start(ffds, fpids, NULL);
    floors_start(pfds, ppids, &sp);

    /* A worker of its own, no manager. */
    snprintf(sock, sizeof sock, "%s/w.sock", tmpdir);
    wpid = spawn_worker(worker, sock, config);
    cd = connect_worker(sock, wpid);
    if (jshost_attach(cd, config, &hd, NULL) < 0)
        die("attach (worker): %s", cd->errstr);

    /* A manager started for us in a fresh runtime dir. */
    snprintf(rundir, sizeof rundir, "%s/run", tmpdir);
    cm = start_manager(manager, rundir, config, false, &hm, &mpid);
    /* Another that never polls (nor does its handle): every wait sleeps,
     * so a call costs it the same wake-ups however long the JavaScript
     * takes, and what the reply's bytes cost shows alone. */
    snprintf(rundir0, sizeof rundir0, "%s/run0", tmpdir);
    setenv("JSHOST_SPIN_US", "0", 1);
    c0 = start_manager(manager, rundir0, config, false, &h0, &mpid0);
    unsetenv("JSHOST_SPIN_US");
    /* A handle as a program gets it: attached through the manager, its
     * calls go to the worker's own socket. */
    ch = start_manager(manager, rundir, config, true, &hh, NULL);

    /* The replies' sizes, from the first call of each (a warm-up too). */
    for (size_t k = 0; k < ncases; k++) {
        struct reply_case *rc = &cases[k];
        jshost_value v;

        if (jshost_json_pack(rc->json, strlen(rc->json), &rc->data, NULL, 0) <
            0)
            die("%s: cannot pack %s", rc->fn, rc->json);
        if (jshost_call(cm, hm, rc->fn, rc->data.data, rc->data.len, 10000,
                        &v) < 0)
            die("%s: call: %s", rc->fn, cm->errstr);
        rc->value_len = v.len;
        rc->reply = v.len + REPLY_ENVELOPE;
        jshost_value_free(&v);
        if (rc->small != NULL) {
            if (jshost_call(cm, hm, rc->small, rc->data.data, rc->data.len,
                            10000, &v) < 0)
                die("%s: call: %s", rc->small, cm->errstr);
            rc->small_len = v.len;
            jshost_value_free(&v);
        }
        rc->quiet_cpu = rc->small_cpu = 1e9;
        rc->floor_cpu = rc->floor_wall = rc->pfloor_cpu = rc->pfloor_wall = 1e9;
        rc->manager_cpu = rc->call_wall = rc->copy = 1e9;
        if (rc->reply > copy_max)
            copy_max = rc->reply;
    }
    copy_src = malloc(copy_max);
    copy_dst = malloc(copy_max);
    if (copy_src == NULL || copy_dst == NULL)
        die("out of memory");
    memset(copy_src, 'x', copy_max);
    memset(copy_dst, 'y', copy_max);

    calls_sequential(cd, hd, "direct"); /* warm up */
    calls_sequential(cm, hm, "manager");
    calls_sequential(ch, hh, "host");
    for (int r = 0; r < rounds; r++) {
        floor1 = min_of(floor1,
                        floor_round(ffds[0], NULL, MSG_BYTES, nseq, 0, NULL));
        floor2 = min_of(floor2,
                        floor_round(ffds[1], NULL, MSG_BYTES, nseq, 0, NULL));
        pfloor1 = min_of(pfloor1,
                         floor_round(pfds[0], &sp, MSG_BYTES, nseq, 0, NULL));
        pfloor2 = min_of(pfloor2,
                         floor_round(pfds[1], &sp, MSG_BYTES, nseq, 0, NULL));
        seq_direct = min_of(seq_direct, calls_sequential(cd, hd, "direct"));
        seq_manager = min_of(seq_manager, calls_sequential(cm, hm, "manager"));
        seq_host = min_of(seq_host, calls_sequential(ch, hh, "host"));
        rate = calls_pipelined(cd, hd, "direct", &cpu);
        pipe_direct = max_of(pipe_direct, rate);
        cpu_direct = min_of(cpu_direct, cpu);
        rate = calls_pipelined(cm, hm, "manager", &cpu);
        pipe_manager = max_of(pipe_manager, rate);
        cpu_manager = min_of(cpu_manager, cpu);
        for (size_t k = 0; k < ncases; k++) {
            struct reply_case *rc = &cases[k];
            double t;

            t = floor_round(pfds[1], &sp, rc->reply, rc->n, ppids[2], &cpu);
            rc->pfloor_wall = min_of(rc->pfloor_wall, t);
            rc->pfloor_cpu = min_of(rc->pfloor_cpu, cpu);
            t = floor_round(ffds[1], NULL, rc->reply, rc->n, fpids[2], &cpu);
            rc->floor_wall = min_of(rc->floor_wall, t);
            rc->floor_cpu = min_of(rc->floor_cpu, cpu);
            t = calls_case(cm, hm, rc, false, mpid, &cpu);
            rc->call_wall = min_of(rc->call_wall, t);
            rc->manager_cpu = min_of(rc->manager_cpu, cpu);
            calls_case(c0, h0, rc, false, mpid0, &cpu);
            rc->quiet_cpu = min_of(rc->quiet_cpu, cpu);
            if (rc->small != NULL) {
                calls_case(c0, h0, rc, true, mpid0, &cpu);
                rc->small_cpu = min_of(rc->small_cpu, cpu);
            }
            t = memcpy_round(copy_dst, copy_src, rc->reply);
            rc->copy = min_of(rc->copy, t);
        }
    }
    free(copy_src);
    free(copy_dst);
    for (size_t k = 0; k < ncases; k++)
        jshost_value_free(&cases[k].data);

    free(hh);
    jshost_free(ch);
    free(hm);
    stop_manager(cm, mpid);
    free(h0);
    stop_manager(c0, mpid0);
    free(hd);
    jshost_free(cd);
    kill(wpid, SIGTERM);
    reap(wpid);
    /* The polling floors' children hold the blocking ones' fds (forked
     * later): they go first, or the blocking echoes never see EOF. */
    floors_stop(pfds, ppids);
    floors_stop(ffds, fpids);

    printf("bench_rpc: calls of double() from C (libjshost), best of %d "
           "interleaved rounds\n",
           rounds);
    printf("  sequential, %d per round            us/call   x floor\n", nseq);
    printf("  floor, 1 hop (socketpair echo)       %7.1f\n", floor1 * 1e6);
    printf("  floor, 2 hops (echo behind a relay)  %7.1f\n", floor2 * 1e6);
    printf("  floor, 1 hop, polling first          %7.1f\n", pfloor1 * 1e6);
    printf("  floor, 2 hops, polling first         %7.1f\n", pfloor2 * 1e6);
    printf("  jshost direct to worker              %7.1f   %6.2f  (of 1 hop)\n",
           seq_direct * 1e6, seq_direct / floor1);
    printf(
        "  jshost via manager (relayed)         %7.1f   %6.2f  (of 2 hops)\n",
        seq_manager * 1e6, seq_manager / floor2);
    printf("  jshost attached, direct calls        %7.1f   %6.2f  (of 1 hop)\n",
           seq_host * 1e6, seq_host / floor1);
    printf("  the manager's cost per call          %7.1f   (floor: %.1f)\n",
           (seq_manager - seq_direct) * 1e6, (floor2 - floor1) * 1e6);
    printf("  pipelined, %d in flight, %d calls   calls/s   x sequential  "
           "client CPU us/call\n",
           WINDOW, npipe);
    printf("  jshost direct to worker              %7.0f   %6.2f  %8.2f\n",
           pipe_direct, pipe_direct * seq_direct, cpu_direct * 1e6);
    printf("  jshost via manager (relayed)         %7.0f   %6.2f  %8.2f\n",
           pipe_manager, pipe_manager * seq_manager, cpu_manager * 1e6);
    /* The manager's CPU against the relay's: what it spends beyond them is
     * its own work, which should not grow with the reply beyond a memcpy. */
    printf("  the manager against a bare relay, by reply size (CPU per call, "
           "us; %d, %d and %d per round)\n",
           cases[0].n, cases[1].n, cases[2].n);
    printf("  reply                 relay floor (polling)  relay floor "
           "(blocking)   manager  manager / floor(polling)  memcpy of the "
           "reply\n");
    for (size_t k = 0; k < ncases; k++) {
        const struct reply_case *rc = &cases[k];
        char label[64];

        case_label(label, sizeof label, rc);
        printf("  %-20s  %21.1f  %22.1f  %8.1f  %24.2f  %19.2f\n", label,
               rc->pfloor_cpu * 1e6, rc->floor_cpu * 1e6, rc->manager_cpu * 1e6,
               rc->manager_cpu / rc->pfloor_cpu, rc->copy * 1e6);
    }
    /* A manager that sleeps in every wait, against itself running the same
     * JavaScript with a small answer: what the answer's bytes cost it, beside
     * what they cost a bare relay that blocks. */
    printf("  what the reply's bytes cost: CPU per call, never polling, less "
           "the same JavaScript's with a small reply (us)\n");
    printf("  reply                   manager  small reply    growth  bare "
           "relay's growth  memcpy of the reply\n");
    for (size_t k = 0; k < ncases; k++) {
        const struct reply_case *rc = &cases[k];
        double small = rc->small != NULL ? rc->small_cpu : rc->quiet_cpu;
        char label[64];

        case_label(label, sizeof label, rc);
        printf("  %-20s  %9.1f  %11.1f  %8.1f  %20.1f  %19.2f\n", label,
               rc->quiet_cpu * 1e6, small * 1e6, (rc->quiet_cpu - small) * 1e6,
               (rc->floor_cpu - cases[0].floor_cpu) * 1e6, rc->copy * 1e6);
    }
    printf("  the same, wall time per call (us)\n");
    printf("  reply                 relay floor (polling)  relay floor "
           "(blocking)  via manager\n");
    for (size_t k = 0; k < ncases; k++) {
        const struct reply_case *rc = &cases[k];
        char label[64];

        case_label(label, sizeof label, rc);
        printf("  %-20s  %21.1f  %22.1f  %11.1f\n", label,
               rc->pfloor_wall * 1e6, rc->floor_wall * 1e6,
               rc->call_wall * 1e6);
    }

    if (nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        fprintf(stderr, "bench_rpc: could not remove %s\n", tmpdir);
    return 0;
}
