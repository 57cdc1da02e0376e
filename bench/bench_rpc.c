/*
 * Calls from C (libjshost), without Python in the way, against their floors
 * measured in the same run: a blocking echo over a socketpair (one hop: what a
 * direct worker call cannot beat) and the same echo behind a blocking relay
 * process (two hops: what a call through the manager cannot beat), and both
 * again with every read polling first as jshost's processes do (spin.h: what
 * polling alone gives a plain echo). Then
 * pipelined calls (a window of requests in flight on one connection), which an
 * HTTP/1.1 keep-alive client cannot do.
 *
 *     JSHOST_MANAGER=... JSHOST_WORKER=... bench_rpc CONFIG
 *
 * CONFIG must export `double(data) -> data.number * 2`. Everything runs in a
 * fresh directory under /tmp; the worker and the manager started here are
 * stopped here (the manager by a shutdown request, then its pid is watched
 * until it is gone). Asserts nothing about speed.
 */
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

#include "jshost.h"
#include "spin.h"

#define NSEQ 2000    /* sequential round trips per round */
#define NPIPE 10000  /* pipelined calls per round */
#define WINDOW 64    /* pipelined requests in flight */
#define ROUNDS 9     /* best of */
#define MSG_BYTES 24 /* the floor's message: about a small call's size */
#define START_MS 20000

static char tmpdir[] = "/tmp/jshbench-rpc-XXXXXX";

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

/* Reads len bytes; with sp, each read polls first (sp NULL: it blocks). */
static void
read_full(int fd, char *buf, size_t len, struct spin *sp)
{
    while (len > 0) {
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
        buf += n;
        len -= (size_t)n;
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

/* A child that echoes MSG_BYTES messages on fd until EOF. */
static pid_t
spawn_echo(int fd, int close_fd, struct spin *sp)
{
    pid_t pid = fork();
    char buf[MSG_BYTES];

    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    close(close_fd);
    for (;;) {
        read_full(fd, buf, sizeof buf, sp);
        write_full(fd, buf, sizeof buf);
    }
}

/* A child that relays each message from left to right and the answer back. */
static pid_t
spawn_relay(int left, int right, int close_fd, struct spin *sp)
{
    pid_t pid = fork();
    char buf[MSG_BYTES];

    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    close(close_fd);
    for (;;) {
        read_full(left, buf, sizeof buf, sp);
        write_full(right, buf, sizeof buf);
        read_full(right, buf, sizeof buf, sp);
        write_full(left, buf, sizeof buf);
    }
}

/* Seconds per round trip over fd, one round. */
static double
floor_round(int fd, struct spin *sp)
{
    char buf[MSG_BYTES];
    double t0 = now();

    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < NSEQ; i++) {
        write_full(fd, buf, sizeof buf);
        read_full(fd, buf, sizeof buf, sp);
    }
    return (now() - t0) / NSEQ;
}

static void
reap(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* The floors' helpers: fds[0] talks to an echo, fds[1] to an echo behind a
 * relay; pids[] are the three children, which poll first with sp. */
static void
floors_start(int fds[2], pid_t pids[3], struct spin *sp)
{
    int a[2], b[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0)
        die("socketpair: %s", strerror(errno));
    pids[0] = spawn_echo(a[1], a[0], sp);
    close(a[1]);
    fds[0] = a[0];

    /* Each child must hold only its own ends (fds[0] included), or an end left
     * open in the wrong process keeps the others from ever seeing EOF. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0)
        die("socketpair: %s", strerror(errno));
    pids[1] = spawn_echo(b[1], b[0], sp);
    close(b[1]);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0)
        die("socketpair: %s", strerror(errno));
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
    for (uint32_t i = 0; i < NSEQ; i++) {
        jshost_value v;

        pack_data(&sb, i);
        if (jshost_call(c, host, "double", sb.data, sb.size, 10000, &v) < 0)
            die("%s: call: %s", what, c->errstr);
        check_double(&v, i, what);
        jshost_value_free(&v);
    }
    msgpack_sbuffer_destroy(&sb);
    return (now() - t0) / NSEQ;
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
    while (done < NPIPE) {
        while (sent < NPIPE && sent - done < WINDOW) {
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
    *cpu = (cpu_now() - c0) / NPIPE;
    return NPIPE / (now() - t0);
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

static pid_t
manager_pid(void)
{
    char path[PATH_MAX];
    FILE *f;
    int pid = -1;

    snprintf(path, sizeof path, "%s/run/manager.pid", tmpdir);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
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
    char config[PATH_MAX], sock[PATH_MAX], rundir[PATH_MAX];
    double floor1 = 1e9, floor2 = 1e9, seq_direct = 1e9, seq_manager = 1e9;
    double pfloor1 = 1e9, pfloor2 = 1e9;
    struct spin sp;
    double seq_host = 1e9;
    double pipe_direct = 0, pipe_manager = 0, rate, cpu;
    double cpu_direct = 1e9, cpu_manager = 1e9;
    struct jshost_options o;
    char *hd = NULL, *hm = NULL, *hh = NULL;
    jshost *cd, *cm, *ch;
    pid_t wpid, mpid, fpids[3], ppids[3];
    int ffds[2], pfds[2];

    if (argc != 2)
        die("usage: JSHOST_MANAGER=... JSHOST_WORKER=... bench_rpc CONFIG");
    if (manager == NULL || worker == NULL)
        die("set JSHOST_MANAGER and JSHOST_WORKER to the built binaries");
    if (realpath(argv[1], config) == NULL)
        die("%s: %s", argv[1], strerror(errno));
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
    jshost_options_init(&o);
    o.runtime_dir = rundir;
    o.manager_path = manager;
    o.spawn = 1;
    o.direct = 0; /* every call relayed: the manager's cost shows */
    cm = jshost_connect(&o);
    if (cm == NULL || cm->err != 0)
        die("connect (manager): %s", cm ? cm->errstr : "out of memory");
    mpid = manager_pid();
    if (jshost_attach(cm, config, &hm, NULL) < 0)
        die("attach (manager): %s", cm->errstr);
    /* A handle as a program gets it: attached through the manager, its
     * calls go to the worker's own socket. */
    o.direct = 1;
    ch = jshost_connect(&o);
    if (ch == NULL || ch->err != 0)
        die("connect (host): %s", ch ? ch->errstr : "out of memory");
    if (jshost_attach(ch, config, &hh, NULL) < 0)
        die("attach (host): %s", ch->errstr);

    calls_sequential(cd, hd, "direct"); /* warm up */
    calls_sequential(cm, hm, "manager");
    calls_sequential(ch, hh, "host");
    for (int r = 0; r < ROUNDS; r++) {
        floor1 = min_of(floor1, floor_round(ffds[0], NULL));
        floor2 = min_of(floor2, floor_round(ffds[1], NULL));
        pfloor1 = min_of(pfloor1, floor_round(pfds[0], &sp));
        pfloor2 = min_of(pfloor2, floor_round(pfds[1], &sp));
        seq_direct = min_of(seq_direct, calls_sequential(cd, hd, "direct"));
        seq_manager = min_of(seq_manager, calls_sequential(cm, hm, "manager"));
        seq_host = min_of(seq_host, calls_sequential(ch, hh, "host"));
        rate = calls_pipelined(cd, hd, "direct", &cpu);
        pipe_direct = max_of(pipe_direct, rate);
        cpu_direct = min_of(cpu_direct, cpu);
        rate = calls_pipelined(cm, hm, "manager", &cpu);
        pipe_manager = max_of(pipe_manager, rate);
        cpu_manager = min_of(cpu_manager, cpu);
    }

    free(hh);
    jshost_free(ch);
    free(hm);
    if (jshost_shutdown(cm) < 0)
        die("shutdown: %s", cm->errstr);
    jshost_free(cm);
    if (mpid > 0)
        wait_gone(mpid, "the manager");
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
           ROUNDS);
    printf("  sequential, %d per round            us/call   x floor\n", NSEQ);
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
           WINDOW, NPIPE);
    printf("  jshost direct to worker              %7.0f   %6.2f  %8.2f\n",
           pipe_direct, pipe_direct * seq_direct, cpu_direct * 1e6);
    printf("  jshost via manager (relayed)         %7.0f   %6.2f  %8.2f\n",
           pipe_manager, pipe_manager * seq_manager, cpu_manager * 1e6);

    if (nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        fprintf(stderr, "bench_rpc: could not remove %s\n", tmpdir);
    return 0;
}
