/*
 * The worker's limits and lifecycle: deadlines, the heap limit and its
 * replace-me exit, config errors in both modes, the manager's --fd start-up
 * and command-line errors; what the clients of its listening socket may hold
 * (connections, unfinished messages across them and left idle).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "jshost_defs.h"
#include "tu_daemon.h"

static void
test_timeout_keeps_state(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    struct proto_error pe;
    int64_t t0;
    uint32_t id;

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("basic.config.js"), NULL);
    c = tu_daemon_connect(&f);
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    t0 = tu_now_ms();
    id = tu_rpc_send(c, "call",
                     "[\"local\", \"spin\", {}, {\"timeout_ms\": 500}]");
    tu_rpc_expect_error(c, id, "TimeoutError", &msg, &pe);
    /* The per-call deadline (not the config's 10 s) ended it, never early.
     * How soon after it the answer comes is bench/'s to measure. */
    assert_true(tu_now_ms() - t0 >= 450);
    assert_non_null(pe.message);
    if (memmem(pe.message, pe.message_len, "within 500 ms", 13) == NULL)
        fail_msg("not the call's own deadline: %.*s", (int)pe.message_len,
                 pe.message);
    proto_msg_release(&msg);
    /* The same worker serves the next call with its state intact. */
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "2");
    /* An async call unsettled at its deadline is a TimeoutError too. */
    id = tu_rpc_send(
        c, "call",
        "[\"local\", \"later\", {\"ms\": 20000}, {\"timeout_ms\": 300}]");
    tu_rpc_expect_error(c, id, "TimeoutError", &msg, &pe);
    proto_msg_release(&msg);
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "3");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

/* Replies are not held back for a whole read's batch: with three spinning calls
 * arriving in one write, the first TimeoutError comes out when its own run
 * ends, a second before the next one can (bench/ measures how soon). */
static void
test_replies_not_held_behind_slow_runs(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    struct proto_error pe;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t ids[3];

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("basic.config.js"), NULL);
    c = tu_daemon_connect(&f);
    for (int i = 0; i < 3; i++) {
        if (i == 0) {
            ids[i] = tu_rpc_request_begin(c, &sb, &pk, "call", 4);
        } else {
            ids[i] = tu_rpc_next_msgid(c);
            proto_write_request(&pk, ids[i], "call", 4);
        }
        proto_pack_cstr(&pk, "local");
        proto_pack_cstr(&pk, "spin");
        msgpack_pack_map(&pk, 0);
        msgpack_pack_map(&pk, 1);
        proto_pack_cstr(&pk, "timeout_ms");
        msgpack_pack_uint32(&pk, 1000);
    }
    tu_rpc_request_send(c, &sb);
    tu_rpc_expect_error(c, ids[0], "TimeoutError", &msg, &pe);
    proto_msg_release(&msg);
    /* Held back, the three would have come in one write: the others would be
     * here now, read or readable. */
    assert_int_equal(tu_rpc_read(c, &msg, 0), 0);
    for (int i = 1; i < 3; i++) {
        tu_rpc_expect_error(c, ids[i], "TimeoutError", &msg, &pe);
        proto_msg_release(&msg);
    }
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_heap_bomb_recycles(void **state)
{
    static const char *const extra[] = {"--memory", "64", NULL};
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    struct proto_error pe;
    char *log;
    int status;

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("basic.config.js"), extra);
    c = tu_daemon_connect(&f);
    tu_rpc_check(c, "call", "[\"local\", \"double\", {\"number\": 2}]", "4");
    tu_rpc_expect_error(c, tu_rpc_send(c, "call", "[\"local\", \"bomb\", {}]"),
                        "MemoryError", &msg, &pe);
    proto_msg_release(&msg);
    /* Replace me, not a crash: exit status 75, never a signal (V8's fatal
     * OOM would abort). */
    status = tu_daemon_wait(&f, TU_WAIT_MS);
    log = tu_daemon_log(&f);
    if (status == -1 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != JSHOST_EXIT_RECYCLE)
        fail_msg("expected exit status %d, got wait status %#x; log:\n%s",
                 JSHOST_EXIT_RECYCLE, status, log);
    free(log);
    tu_rpc_close(c);
    tu_daemon_cleanup(&f);
}

/* Runs the worker on a config that fails; asserts exit 78 and that its
 * stderr names `where`. */
static void
check_bad_config(const char *config, const char *where)
{
    struct tu_daemon f;
    char *log;
    int status;

    tu_daemon_init(&f);
    tu_daemon_spawn_worker(&f, config, NULL);
    status = tu_daemon_wait(&f, TU_WAIT_MS);
    log = tu_daemon_log(&f);
    if (status == -1 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != JSHOST_EXIT_CONFIG)
        fail_msg("%s: expected exit status %d, got wait status %#x; log:\n%s",
                 config, JSHOST_EXIT_CONFIG, status, log);
    if (strstr(log, where) == NULL)
        fail_msg("%s: the error does not name %s:\n%s", config, where, log);
    free(log);
    tu_daemon_cleanup(&f);
}

static void
test_bad_configs(void **state)
{
    (void)state;
    check_bad_config(tu_daemon_worker_config("bad/syntax.config.js"),
                     "syntax.config.js:3:");
    check_bad_config(tu_daemon_worker_config("bad/throws.config.js"),
                     "throws.config.js:3:");
    check_bad_config(tu_daemon_worker_config("bad/notobject.config.js"),
                     "notobject.config.js");
    check_bad_config(tu_daemon_worker_config("bad/nofunctions.config.js"),
                     "nofunctions.config.js");
    check_bad_config(tu_daemon_worker_config("bad/missing.config.js"),
                     "missing.config.js");
}

/* Starts the worker as the manager does: a socketpair end as its fd 3. */
static pid_t
spawn_fd_worker_args(const char *config, const char *memory, int *peer,
                     const char *logpath)
{
    const char *argv[8];
    char fd[16];
    int sv[2], n = 0;
    pid_t pid;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snprintf(fd, sizeof fd, "%d", JSHOST_WORKER_FD);
    argv[n++] = tu_build_path(TU_WORKER);
    argv[n++] = "--fd";
    argv[n++] = fd;
    if (memory != NULL) {
        argv[n++] = "--memory";
        argv[n++] = memory;
    }
    argv[n++] = config;
    argv[n] = NULL;
    pid = tu_spawn_fd((char *const *)argv, NULL, logpath, sv[1],
                      JSHOST_WORKER_FD);
    close(sv[1]);
    *peer = sv[0];
    return pid;
}

static pid_t
spawn_fd_worker(const char *config, int *peer, const char *logpath)
{
    return spawn_fd_worker_args(config, NULL, peer, logpath);
}

static void
test_fd_mode_heap_bomb(void **state)
{
    struct proto_msg msg;
    struct proto_error pe;
    struct tu_rpc *c;
    char *dir = tu_tmpdir(), *logpath;
    uint32_t first, bomb;
    int peer, status;
    pid_t pid;

    (void)state;
    assert_true(asprintf(&logpath, "%s/worker.log", dir) > 0);
    pid = spawn_fd_worker_args(tu_daemon_worker_config("basic.config.js"), "64",
                               &peer, logpath);
    c = tu_rpc_from_fd(peer);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), 1);
    assert_true(proto_msg_is(&msg, "ready"));
    assert_int_equal(
        tu_rpc_field(tu_rpc_field(&msg.params.via.array.ptr[0], "config"),
                     "memory")
            ->via.u64,
        64);
    proto_msg_release(&msg);
    /* The replies owed are written before the worker goes: the bomb's
     * MemoryError, and a sync call answered in the same batch before it. */
    first = tu_rpc_send(c, "call", "[0, \"double\", {\"number\": 4}]");
    bomb = tu_rpc_send(c, "call", "[0, \"bomb\", {}]");
    tu_rpc_expect_result(c, first, &msg);
    assert_int_equal(msg.result.via.u64, 8);
    proto_msg_release(&msg);
    tu_rpc_expect_error(c, bomb, "MemoryError", &msg, &pe);
    proto_msg_release(&msg);
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), JSHOST_EXIT_RECYCLE);
    tu_rpc_close(c);
    free(logpath);
    tu_rmtree(dir);
}

static void
test_fd_mode_ready_and_eof(void **state)
{
    struct proto_msg msg;
    const msgpack_object *info, *fns, *cfg;
    struct tu_rpc *c;
    char *dir = tu_tmpdir(), *logpath;
    bool found = false;
    int peer, status;
    pid_t pid;

    (void)state;
    assert_true(asprintf(&logpath, "%s/worker.log", dir) > 0);
    pid = spawn_fd_worker(tu_daemon_worker_config("basic.config.js"), &peer,
                          logpath);
    c = tu_rpc_from_fd(peer);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "ready"));
    assert_int_equal(msg.params.via.array.size, 1);
    info = &msg.params.via.array.ptr[0];
    assert_int_equal(tu_rpc_field(info, "pid")->via.u64, (uint64_t)pid);
    fns = tu_rpc_field(info, "functions");
    assert_int_equal(fns->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < fns->via.array.size; i++)
        found |= proto_obj_streq(&fns->via.array.ptr[i], "hello_world");
    assert_true(found);
    assert_true(proto_obj_streq(
        tu_rpc_field(tu_rpc_field(info, "extras"), "anything"), "else"));
    cfg = tu_rpc_field(info, "config");
    assert_int_equal(tu_rpc_field(cfg, "timeout")->via.u64, 10000);
    assert_int_equal(tu_rpc_field(cfg, "workers")->via.u64, 1);
    assert_int_equal(tu_rpc_field(cfg, "memory")->via.u64,
                     JSHOST_DEFAULT_MEMORY_MB);
    assert_int_equal(tu_rpc_field(cfg, "linger")->via.u64,
                     JSHOST_DEFAULT_LINGER_MS);
    proto_msg_release(&msg);

    tu_rpc_check(c, "call", "[0, \"double\", {\"number\": 21}]", "42");
    tu_rpc_expect_result(c, tu_rpc_send(c, "stats", "[]"), &msg);
    assert_int_equal(tu_rpc_field(&msg.result, "pid")->via.u64, (uint64_t)pid);
    assert_true(tu_rpc_field(&msg.result, "calls")->via.u64 >= 1);
    assert_true(tu_rpc_field(&msg.result, "rss")->via.u64 > 0);
    assert_true(tu_rpc_field(&msg.result, "heap_limit")->via.u64 > 0);
    proto_msg_release(&msg);
    /* The manager is gone: the worker exits at once, status 0. */
    tu_rpc_close(c);
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(logpath);
    tu_rmtree(dir);
}

static void
test_fd_mode_config_error(void **state)
{
    const msgpack_object *info;
    struct proto_msg msg;
    struct tu_rpc *c;
    char *dir = tu_tmpdir(), *logpath;
    int peer, status;
    pid_t pid;

    (void)state;
    assert_true(asprintf(&logpath, "%s/worker.log", dir) > 0);
    pid = spawn_fd_worker(tu_daemon_worker_config("bad/throws.config.js"),
                          &peer, logpath);
    c = tu_rpc_from_fd(peer);
    assert_int_equal(tu_rpc_read(c, &msg, TU_WAIT_MS), 1);
    assert_int_equal(msg.kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&msg, "config_error"));
    info = &msg.params.via.array.ptr[0];
    assert_true(proto_obj_streq(tu_rpc_field(info, "type"), "ConfigError"));
    {
        /* The place travels in file/line/column, not again in the words (the
         * manager puts the two together). */
        char *m = proto_obj_strdup(tu_rpc_field(info, "message"));

        assert_non_null(m);
        assert_non_null(strstr(m, "config exploded"));
        assert_null(strstr(m, "throws.config.js"));
        free(m);
    }
    assert_int_equal(tu_rpc_field(info, "line")->via.u64, 3);
    assert_true(tu_rpc_field(info, "column")->via.u64 > 0);
    {
        const msgpack_object *file = tu_rpc_field(info, "file");
        char *s = proto_obj_strdup(file);

        assert_non_null(s);
        assert_non_null(strstr(s, "throws.config.js"));
        free(s);
    }
    proto_msg_release(&msg);
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), JSHOST_EXIT_CONFIG);
    tu_rpc_close(c);
    free(logpath);
    tu_rmtree(dir);
}

/* Runs the worker with argv; returns its exit status (asserting it exited). */
static int
run_worker(const char *const *args, const char *logpath)
{
    const char *argv[8];
    int n = 0, status;
    pid_t pid;

    argv[n++] = tu_build_path(TU_WORKER);
    for (int i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = tu_spawn((char *const *)argv, NULL, logpath);
    status = tu_wait(pid, TU_WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void
test_command_line(void **state)
{
    static const char *const none[] = {NULL};
    static const char *const badnum[] = {"--listen", "/tmp/x.sock", "--memory",
                                         "lots", NULL};
    static const char *const unknown[] = {"--frobnicate", NULL};
    static const char *const version[] = {"--version", NULL};
    char longpath[300], sock[PATH_MAX];
    const char *toolong[] = {"--listen", longpath, NULL};
    /* Both is the manager's worker with a socket for direct calls: it
     * listens first, then fails on an fd that is not open, and leaves no
     * socket behind. */
    const char *both[] = {"--fd", "999", "--listen", sock, NULL};
    char *dir = tu_tmpdir(), *logpath, *log;

    (void)state;
    assert_true(asprintf(&logpath, "%s/out.log", dir) > 0);
    snprintf(sock, sizeof(sock), "%s/both.sock", dir);
    assert_int_equal(run_worker(none, logpath), 2);
    assert_int_equal(run_worker(both, logpath), 1);
    assert_false(tu_exists(sock));
    log = tu_read_text(logpath);
    assert_non_null(strstr(log, "cannot serve: fd 999"));
    free(log);
    assert_int_equal(run_worker(badnum, logpath), 2);
    assert_int_equal(run_worker(unknown, logpath), 2);
    assert_int_equal(run_worker(version, logpath), 0);
    memset(longpath, 'a', sizeof(longpath));
    memcpy(longpath, "/tmp/", 5);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_not_equal(run_worker(toolong, logpath), 0);
    log = tu_read_text(logpath);
    assert_non_null(strstr(log, "usage:"));
    assert_non_null(strstr(log, JSHOST_VERSION));
    free(log);
    free(logpath);
    tu_rmtree(dir);
}

/* A ping's answer (true), or the connection refused (false). */
static bool
pinged(struct tu_rpc *c)
{
    struct proto_msg msg;
    uint32_t id = tu_rpc_send(c, "ping", "[]");
    bool ok;

    if (tu_rpc_read(c, &msg, TU_WAIT_MS) != 1)
        return false;
    ok = msg.kind == PROTO_RESPONSE && msg.msgid == id &&
         msg.error.type == MSGPACK_OBJECT_NIL;
    proto_msg_release(&msg);
    return ok;
}

/* A connection that gets its ping answered; the probe that saw the worker
 * listen may still hold a place for a moment, so a refusal is tried again. */
static struct tu_rpc *
connect_pinged(struct tu_daemon *f)
{
    struct tu_deadline dl = tu_deadline_start(TU_WAIT_MS);
    struct tu_rpc *c;

    for (;;) {
        c = tu_daemon_connect(f);
        if (pinged(c))
            return c;
        tu_rpc_close(c);
        if (!tu_deadline_wait(&dl))
            tu_deadline_fail(&dl, __FILE__, __LINE__, "a ping answered");
    }
}

/* Bytes c sent that the worker has not read yet. */
static int
unread(struct tu_rpc *c)
{
    int n = -1;

    assert_int_equal(ioctl(tu_rpc_fd(c), SIOCOUTQ, &n), 0);
    return n;
}

/* The listening socket's clients are held as the manager's are: a cap on
 * connections, on the bytes of unfinished messages across them, and on how
 * long one may sit without a byte. The manager's own connection (--fd) takes
 * none of them. */
static void
test_direct_limits(void **state)
{
    enum { LEN = 700 * 1024, SENT = 600 * 1024 };
    static const char *const extra[] = {"--max-clients",
                                        "2",
                                        "--max-partial-total",
                                        "1048576",
                                        "--partial-idle-ms",
                                        "300",
                                        NULL};
    struct tu_daemon f;
    struct tu_rpc *a, *b, *c;
    struct proto_msg msg;
    unsigned char head[32];
    char *body;
    size_t n;
    uint32_t ida, idb;

    (void)state;
    tu_daemon_init(&f);
    tu_daemon_worker(&f, tu_daemon_worker_config("basic.config.js"), extra);
    /* Connections: two, then a third is told why and closed. */
    a = connect_pinged(&f);
    b = connect_pinged(&f);
    c = tu_daemon_connect(&f);
    tu_rpc_expect_refused(c, "too many connections");
    tu_rpc_close(c);

    /* Unfinished messages across connections: b's bytes pass the total and
     * b is closed; a, under it, finishes its message. */
    body = malloc(LEN);
    memset(body, 'x', LEN);
    n = tu_rpc_ping_head(a, head, LEN, &ida);
    tu_rpc_send_raw(a, head, n);
    tu_rpc_send_raw(a, body, SENT);
    TU_UNTIL(unread(a) == 0, TU_WAIT_MS);
    n = tu_rpc_ping_head(b, head, LEN, &idb);
    tu_rpc_send_raw(b, head, n);
    tu_rpc_send_raw(b, body, SENT);
    tu_rpc_expect_refused(b, "unfinished messages");
    tu_rpc_close(b);
    tu_rpc_send_raw(a, body, LEN - SENT);
    assert_int_equal(tu_rpc_wait(a, ida, &msg, TU_WAIT_MS), 1);
    proto_msg_release(&msg);
    free(body);

    /* Half a message, then silence: closed after the idle time. */
    n = tu_rpc_ping_head(a, head, 200, &ida);
    tu_rpc_send_raw(a, head, n);
    tu_rpc_send_raw(a, "xx", 2);
    tu_rpc_expect_refused(a, "unfinished message got no byte");
    tu_rpc_close(a);

    /* The places are free again. */
    a = connect_pinged(&f);
    b = connect_pinged(&f);
    tu_rpc_close(a);
    tu_rpc_close(b);
    tu_daemon_stop(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_keeps_state),
        cmocka_unit_test(test_replies_not_held_behind_slow_runs),
        cmocka_unit_test(test_heap_bomb_recycles),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_fd_mode_ready_and_eof),
        cmocka_unit_test(test_fd_mode_config_error),
        cmocka_unit_test(test_fd_mode_heap_bomb),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_direct_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
