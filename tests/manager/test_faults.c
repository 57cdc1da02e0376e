/*
 * Faults and their handling (docs/lifecycle.md): workers killed with calls in
 * flight, crash loops and quarantine, the heap-limit recycle, unresponsive
 * workers, full queues, clients that leave mid-call, restart under load, stop,
 * and contexts (sticky, private VMs). The fake worker plays the faulty peer.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu_daemon.h"

static void
test_kill9_with_calls_in_flight(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256], *res;
    uint32_t ids[10];
    struct proto_msg msg;
    pid_t pid, pid2;
    int i, crashed = 0, ok = 0;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "slow_ms=300\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    pid = tu_rpc_serving_pid(c, id);
    for (i = 0; i < 10; i++) {
        snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id, i);
        ids[i] = tu_rpc_send(c, "call", params);
    }
    /* Killed with a call in flight on it, not before it has one. */
    TU_UNTIL(tu_rpc_busy_worker(c, id) == pid, TU_WAIT_MS);
    kill(pid, SIGKILL);
    for (i = 0; i < 10; i++) {
        assert_int_equal(tu_rpc_wait(c, ids[i], &msg, TU_WAIT_MS), 1);
        res = tu_rpc_result(&msg);
        if (res[0] == '!') {
            assert_true(strncmp(res, "!HostCrashed", 12) == 0);
            assert_non_null(strstr(res, "signal 9"));
            assert_non_null(strstr(res, "/hosts/"));
            crashed++;
        } else {
            assert_int_equal(atoi(res), i);
            ok++;
        }
        free(res);
        proto_msg_release(&msg);
    }
    assert_true(crashed >= 1);
    assert_int_equal(crashed + ok, 10);
    /* Replaced at once: the next call is served by a new worker. */
    pid2 = tu_rpc_serving_pid(c, id);
    assert_int_not_equal(pid, pid2);
    assert_int_equal(tu_rpc_host_figure(c, id, "crashes"), 1);
    tu_daemon_expect_host_log(&m, id, "crashed: killed by signal 9");
    tu_daemon_stop_host(&m, c, id);
}

static void
test_crash_loop_quarantine(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c, *c2;
    const char *cfg;
    char *id, *r, params[600];
    pid_t pids[4];
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "loop.conf",
                         "crash_after_ready_ms=30\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    TU_UNTIL(tu_rpc_host_in(c, id, "quarantined"), TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    assert_non_null(strstr(r, "quarantined"));
    free(r);
    c2 = tu_daemon_connect(&m);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_call(c2, "attach", params);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    free(r);
    /* No respawning while quarantined: no worker is left and none is on its
     * way, for none was scheduled after the fifth crash (the log below). */
    assert_int_equal(tu_rpc_host_figure(c, id, "crashes"), 5);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 4), 0);
    /* Replacements backed off: 0, 100, 200, 300 ms, then quarantine. */
    {
        char *log = tu_read_text(tu_daemon_host_log(&m, id, 0));

        assert_non_null(strstr(log, "replacing it in 0 ms"));
        assert_non_null(strstr(log, "replacing it in 300 ms"));
        assert_null(strstr(log, "replacing it in 400 ms"));
        assert_non_null(strstr(log, "quarantined after 5 crashes"));
        free(log);
    }

    /* The config is fixed; restart clears the quarantine. */
    tu_daemon_file(&m, "loop.conf", "linger=60000\n");
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "restart", params);
    assert_string_equal(json_string_value(json_object_get(j, "state")),
                        "ready");
    json_decref(j);
    r = tu_rpc_call_fn(c, id, "echo", "7", NULL);
    assert_string_equal(r, "7");
    free(r);
    tu_rpc_close(c2);
    tu_daemon_stop_host(&m, c, id);
}

static void
test_recycle_is_not_a_crash(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;
    int i;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    for (i = 0; i < 7; i++) {
        r = tu_rpc_call_fn(c, id, "exit75", "null", NULL);
        assert_true(strncmp(r, "!MemoryError", 12) == 0);
        free(r);
        r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
        assert_string_equal(r, "1");
        free(r);
    }
    assert_int_equal(tu_rpc_host_figure(c, id, "crashes"), 0);
    tu_daemon_stop_host(&m, c, id);
}

static void
test_unresponsive_worker_killed(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_PING_MS=100", "JSHOST_PING_TIMEOUT_MS=300",
                         NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id;
    pid_t pids[2];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "no_pong=1\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    assert_int_equal(tu_rpc_worker_pids(c, id, NULL, pids, 2), 1);
    TU_UNTIL(tu_pid_gone(pids[0]), TU_WAIT_MS);
    tu_daemon_expect_host_log(&m, id, "no answer to ping");
    tu_daemon_stop_host(&m, c, id);
}

/* Sends n pipelined echo calls; counts results and Overloaded errors. */
static void
pipeline(struct tu_rpc *c, const char *id, int n, int *ok, int *over)
{
    uint32_t ids[64];
    char params[256], *res;
    struct proto_msg msg;
    int i;

    for (i = 0; i < n; i++) {
        snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id, i);
        ids[i] = tu_rpc_send(c, "call", params);
    }
    for (i = 0; i < n; i++) {
        assert_int_equal(tu_rpc_wait(c, ids[i], &msg, TU_WAIT_MS), 1);
        res = tu_rpc_result(&msg);
        if (strncmp(res, "!Overloaded", 11) == 0)
            (*over)++;
        else if (atoi(res) == i)
            (*ok)++;
        else
            fail_msg("unexpected reply %s", res);
        free(res);
        proto_msg_release(&msg);
    }
}

static void
test_overloaded(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_MAX_CLIENT_INFLIGHT=4",
                         "JSHOST_MAX_HOST_INFLIGHT=6", NULL};
    struct tu_rpc *a, *b;
    const char *cfg;
    char *id;
    int ok = 0, over = 0;
    uint32_t ids[5];
    char params[256], *res;
    struct proto_msg msg;
    int i;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "slow_ms=200\nlinger=60000\n");
    tu_daemon_manager(&m, NULL, env);
    a = tu_daemon_connect(&m);
    b = tu_daemon_connect(&m);
    id = tu_rpc_attach(a, cfg);
    /* Per client: four in flight, the rest refused, none lost. */
    pipeline(a, id, 12, &ok, &over);
    assert_true(ok >= 4);
    assert_true(over >= 1);
    assert_int_equal(ok + over, 12);
    /* Per host: b's four plus a's four pass the host's six. */
    for (i = 0; i < 4; i++) {
        snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id, i);
        ids[i] = tu_rpc_send(b, "call", params);
    }
    ok = over = 0;
    pipeline(a, id, 4, &ok, &over);
    for (i = 0; i < 4; i++) {
        assert_int_equal(tu_rpc_wait(b, ids[i], &msg, TU_WAIT_MS), 1);
        res = tu_rpc_result(&msg);
        if (strncmp(res, "!Overloaded", 11) == 0)
            over++;
        else
            ok++;
        free(res);
        proto_msg_release(&msg);
    }
    assert_true(over >= 1);
    assert_int_equal(ok + over, 8);
    tu_rpc_close(a);
    tu_daemon_stop_host(&m, b, id);
}

/* Whether the host's one worker has answered `calls` calls and has none in
 * flight, and the host none queued. */
static bool
drained(struct tu_rpc *c, const char *id, long calls)
{
    json_t *h = tu_rpc_host(c, id), *w;
    bool ok;

    w = json_array_get(json_object_get(h, "workers"), 0);
    ok = json_integer_value(json_object_get(w, "calls")) >= calls &&
         json_integer_value(json_object_get(w, "in_flight")) == 0 &&
         json_integer_value(json_object_get(h, "queued")) == 0;
    json_decref(h);
    return ok;
}

static void
test_client_leaves_mid_call(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *a, *b;
    const char *cfg;
    char *id, params[256];
    pid_t pid;
    json_t *j;
    int i;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "slow_ms=20\nlinger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    a = tu_daemon_connect(&m);
    b = tu_daemon_connect(&m);
    id = tu_rpc_attach(b, cfg);
    pid = tu_rpc_serving_pid(b, id);
    free(tu_rpc_attach(a, cfg));
    for (i = 0; i < 20; i++) {
        snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id, i);
        tu_rpc_send(a, "call", params);
    }
    tu_rpc_close(a);
    /* The worker finishes a's calls (and b's pid call), answers go nowhere,
     * nothing leaks. */
    TU_UNTIL(drained(b, id, 1 + 20), TU_WAIT_MS);
    assert_int_equal(tu_rpc_serving_pid(b, id), pid);
    j = tu_rpc_ok(b, "status", "[]");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(j, "manager"), "clients")),
                     1);
    json_decref(j);
    j = tu_rpc_host(b, id);
    assert_int_equal(json_integer_value(json_object_get(j, "holders")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "crashes")), 0);
    json_decref(j);
    tu_daemon_stop_host(&m, b, id);
}

/* A client making n calls; it writes a byte on `started` after the first. */
static void
load_child(const char *sock, const char *id, int n, int started)
{
    struct tu_rpc *c = tu_rpc_connect(sock);
    char params[256], *r;
    int i;

    if (c == NULL)
        _exit(10);
    for (i = 0; i < n; i++) {
        snprintf(params, sizeof params, "[\"%s\", \"echo\", %d]", id, i);
        r = tu_rpc_call(c, "call", params);
        if (r == NULL)
            _exit(11);
        if (atoi(r) != i || r[0] == '!') {
            fprintf(stderr, "call %d: %s\n", i, r);
            _exit(12);
        }
        free(r);
        if (i == 0 && write(started, "s", 1) != 1)
            _exit(13);
    }
    tu_rpc_close(c);
    _exit(0);
}

static void
test_restart_under_load(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256];
    pid_t kids[4], before[4], after[4];
    json_t *j;
    int i, st, na, started[2];
    char buf[4];

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\nslow_ms=2\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", before, 4) == 2, TU_WAIT_MS);
    assert_int_equal(pipe(started), 0);
    for (i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            load_child(m.sock, id, 150, started[1]);
    }
    close(started[1]);
    /* The restart comes once all four clients have calls answered. */
    assert_int_equal(tu_read_full(started[0], buf, 4, TU_WAIT_MS), 4);
    close(started[0]);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "restart", params);
    assert_string_equal(json_string_value(json_object_get(j, "state")),
                        "ready");
    json_decref(j);
    na = tu_rpc_worker_pids(c, id, "ready", after, 4);
    assert_int_equal(na, 2);
    for (i = 0; i < 2; i++)
        assert_true(after[i] != before[0] && after[i] != before[1]);
    /* Not one call lost or failed. */
    for (i = 0; i < 4; i++) {
        st = tu_wait(kids[i], 60000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    TU_UNTIL(tu_pid_gone(before[0]), TU_WAIT_MS);
    TU_UNTIL(tu_pid_gone(before[1]), TU_WAIT_MS);
    tu_daemon_stop_host(&m, c, id);
}

static void
test_stop_then_attach_again(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r, params[256];
    pid_t pid, pid2;
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    pid = tu_rpc_serving_pid(c, id);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "stop", params);
    assert_string_equal(json_string_value(json_object_get(j, "state")),
                        "stopped");
    json_decref(j);
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    free(r);
    free(tu_rpc_attach(c, cfg));
    pid2 = tu_rpc_serving_pid(c, id);
    assert_int_not_equal(pid, pid2);
    tu_daemon_stop_host(&m, c, id);
}

static void
test_contexts_sticky_and_private(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c, *other;
    const char *cfg;
    char *id, *r, params[256];
    json_t *j;
    long ctx[4], pid[4], vm, vmpid;
    int i, k;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\nlinger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    other = tu_daemon_connect(&m);
    id = tu_rpc_attach(c, cfg);
    for (i = 0; i < 4; i++) {
        snprintf(params, sizeof params, "[\"%s\", {}]", id);
        j = tu_rpc_ok(c, "context.create", params);
        ctx[i] = (long)json_integer_value(j);
        assert_true(ctx[i] > 0);
        json_decref(j);
    }
    for (k = 0; k < 3; k++) {
        for (i = 0; i < 4; i++) {
            snprintf(params, sizeof params, "[%ld, \"1+1\", \"x.js\"]", ctx[i]);
            j = tu_rpc_ok(c, "context.eval", params);
            if (k == 0)
                pid[i] = (long)json_integer_value(json_array_get(j, 0));
            else
                assert_int_equal(json_integer_value(json_array_get(j, 0)),
                                 pid[i]);
            json_decref(j);
        }
    }
    /* Someone else's context is not found; a destroyed one neither. */
    snprintf(params, sizeof params, "[%ld, \"1\", \"x.js\"]", ctx[0]);
    r = tu_rpc_call(other, "context.eval", params);
    assert_true(strncmp(r, "!NotFound", 9) == 0);
    free(r);
    snprintf(params, sizeof params, "[%ld]", ctx[0]);
    r = tu_rpc_call(c, "context.destroy", params);
    assert_string_equal(r, "null");
    free(r);
    snprintf(params, sizeof params, "[%ld, \"1\", \"x.js\"]", ctx[0]);
    r = tu_rpc_call(c, "context.eval", params);
    assert_true(strncmp(r, "!NotFound", 9) == 0);
    free(r);

    /* A private VM: its own worker, gone with its last context. */
    j = tu_rpc_ok(c, "context.create", "[null, {\"memory\": 64}]");
    vm = (long)json_integer_value(j);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld, \"2\", \"vm.js\"]", vm);
    j = tu_rpc_ok(c, "context.eval", params);
    vmpid = (long)json_integer_value(json_array_get(j, 0));
    json_decref(j);
    assert_true(vmpid != pid[0] && vmpid != pid[1]);
    snprintf(params, sizeof params, "[null, {\"vm\": %ld}]", vm);
    j = tu_rpc_ok(c, "context.create", params);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld]", vm);
    r = tu_rpc_call(c, "context.destroy", params);
    free(r);
    /* One context left on it: the VM lives. */
    assert_false(tu_pid_gone((pid_t)vmpid));
    /* Its owner leaves: the VM goes. */
    j = tu_rpc_ok(other, "context.create", "[null, {}]");
    vm = (long)json_integer_value(j);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld, \"2\", \"vm.js\"]", vm);
    j = tu_rpc_ok(other, "context.eval", params);
    {
        pid_t p2 = (pid_t)json_integer_value(json_array_get(j, 0));
        pid_t p1 = (pid_t)vmpid;

        json_decref(j);
        tu_rpc_close(other);
        TU_UNTIL(tu_pid_gone(p2), TU_WAIT_MS);
        tu_rpc_close(c);
        TU_UNTIL(tu_pid_gone(p1), TU_WAIT_MS);
    }
    free(id);
    tu_daemon_stop(&m);
}

static void
test_stubborn_worker_gets_sigkill(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_KILL_GRACE_MS=200", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256];
    pid_t pid;
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "ignore_term=1\nlinger=100\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    pid = tu_rpc_serving_pid(c, id);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "detach", params);
    json_decref(j);
    /* Linger, SIGTERM ignored, SIGKILL after the grace. */
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    tu_daemon_expect_host_log(&m, id, "did not stop after SIGTERM: SIGKILL");
    tu_daemon_stop_host(&m, c, id);
}

/* Bytes that came on a socket and are not read yet. */
static int
unread(int fd)
{
    int n = 0;

    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/*
 * A client that sends a lot and reads nothing: the manager stops reading it
 * instead of buffering without bound, serves everyone else meanwhile, and
 * loses nothing once the client reads again.
 */
static void
test_slow_reader_backpressure(void **state)
{
    enum { N = 24, SIZE = 1 << 20 };
    struct tu_daemon m;
    struct tu_rpc *slow, *other;
    const char *cfg;
    char *id, *big, *params, *r;
    struct proto_msg msg;
    pid_t writer;
    uint32_t first;
    int i, st, n;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    slow = tu_daemon_connect(&m);
    other = tu_daemon_connect(&m);
    id = tu_rpc_attach(other, cfg);
    big = malloc(SIZE + 1);
    memset(big, 'x', SIZE);
    big[SIZE] = '\0';
    params = malloc(SIZE + 256);
    snprintf(params, SIZE + 256, "[\"%s\", \"echo\", \"%s\"]", id, big);
    first = tu_rpc_next_msgid(slow) + 1;
    writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        for (i = 0; i < N; i++)
            tu_rpc_send(slow, "call", params);
        _exit(0);
    }
    /* Once its replies pile up unread, the others are served meanwhile. */
    TU_UNTIL(unread(tu_rpc_fd(slow)) >= 64 * 1024, TU_WAIT_MS);
    r = tu_rpc_call(other, "call", "[\"x\", \"echo\", 1]");
    free(r);
    snprintf(params, SIZE + 256, "[\"%s\", \"echo\", 5]", id);
    r = tu_rpc_call(other, "call", params);
    assert_string_equal(r, "5");
    free(r);
    /* Now the slow one reads: every reply arrives, whole. */
    for (n = 0; n < N; n++) {
        assert_int_equal(tu_rpc_wait(slow, first + (uint32_t)n, &msg, 60000),
                         1);
        assert_int_equal(msg.error.type, MSGPACK_OBJECT_NIL);
        assert_int_equal(msg.result.type, MSGPACK_OBJECT_STR);
        assert_int_equal(msg.result.via.str.size, SIZE);
        proto_msg_release(&msg);
    }
    st = tu_wait(writer, TU_WAIT_MS);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(big);
    free(params);
    tu_rpc_close(slow);
    tu_daemon_stop_host(&m, other, id);
}

/* A busy worker does not hold status up: its figures are just older. */
static void
test_status_not_held_by_busy_worker(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256], *res;
    uint32_t call, st;
    struct proto_msg msg;
    int rc;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    snprintf(params, sizeof params, "[\"%s\", \"sleep\", 3000]", id);
    /* The manager reads the call before the status (one connection, in
     * order): the worker is busy with it when asked for its figures. */
    call = tu_rpc_send(c, "call", params);
    st = tu_rpc_send(c, "status", "[null]");
    rc = tu_rpc_read(c, &msg, TU_WAIT_MS);
    assert_int_equal(rc, 1);
    /* The status answer comes first, with the worker in it. */
    assert_int_equal(msg.msgid, st);
    res = tu_rpc_result(&msg);
    assert_non_null(strstr(res, "\"in_flight\":1"));
    free(res);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_wait(c, call, &msg, TU_WAIT_MS), 1);
    proto_msg_release(&msg);
    tu_daemon_stop_host(&m, c, id);
}

/* A worker that never gets ready is killed; attach is answered, not held. */
static void
test_never_ready(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_START_TIMEOUT_MS=200", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char params[600], *r;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "ready_delay_ms=100000\n");
    tu_daemon_manager(&m, NULL, env);
    c = tu_daemon_connect(&m);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    r = tu_rpc_call(c, "attach", params);
    assert_non_null(r);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    assert_non_null(strstr(r, "not ready in time"));
    free(r);
    tu_rpc_close(c);
    tu_daemon_stop(&m);
}

/* A worker that breaks the protocol is killed and replaced like a crash. */
static void
test_worker_speaks_garbage(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;
    pid_t pid;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "garbage_on_call=2\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    pid = tu_rpc_serving_pid(c, id);
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_true(strncmp(r, "!HostCrashed", 12) == 0);
    free(r);
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    assert_int_not_equal(tu_rpc_serving_pid(c, id), pid);
    assert_int_equal(tu_rpc_host_figure(c, id, "crashes"), 1);
    tu_daemon_stop_host(&m, c, id);
}

/* A private VM whose worker dies: its contexts answer, new ones on it are
 * refused, a new VM can be made. */
static void
test_private_vm_crash(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    char params[256], *r;
    json_t *j;
    long vm;
    pid_t pid;

    (void)state;
    tu_daemon_init(&m);
    tu_daemon_manager(&m, NULL, NULL);
    c = tu_daemon_connect(&m);
    j = tu_rpc_ok(c, "context.create", "[null, {}]");
    vm = (long)json_integer_value(j);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld, \"1\", \"vm.js\"]", vm);
    j = tu_rpc_ok(c, "context.eval", params);
    pid = (pid_t)json_integer_value(json_array_get(j, 0));
    json_decref(j);
    kill(pid, SIGKILL);
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    /* Sent before or after the manager saw the death; either way, once it
     * is answered the manager knows, which the rest relies on. */
    r = tu_rpc_call(c, "context.eval", params);
    assert_true(strncmp(r, "!HostCrashed", 12) == 0 ||
                strncmp(r, "!NotFound", 9) == 0 ||
                strncmp(r, "!HostUnavailable", 16) == 0);
    free(r);
    snprintf(params, sizeof params, "[null, {\"vm\": %ld}]", vm);
    r = tu_rpc_call(c, "context.create", params);
    assert_true(strncmp(r, "!NotFound", 9) == 0 ||
                strncmp(r, "!HostUnavailable", 16) == 0);
    free(r);
    j = tu_rpc_ok(c, "context.create", "[null, {}]");
    assert_true(json_integer_value(j) > vm);
    json_decref(j);
    tu_rpc_close(c);
    tu_daemon_stop(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_with_calls_in_flight),
        cmocka_unit_test(test_crash_loop_quarantine),
        cmocka_unit_test(test_recycle_is_not_a_crash),
        cmocka_unit_test(test_unresponsive_worker_killed),
        cmocka_unit_test(test_overloaded),
        cmocka_unit_test(test_client_leaves_mid_call),
        cmocka_unit_test(test_restart_under_load),
        cmocka_unit_test(test_stop_then_attach_again),
        cmocka_unit_test(test_contexts_sticky_and_private),
        cmocka_unit_test(test_stubborn_worker_gets_sigkill),
        cmocka_unit_test(test_slow_reader_backpressure),
        cmocka_unit_test(test_status_not_held_by_busy_worker),
        cmocka_unit_test(test_never_ready),
        cmocka_unit_test(test_worker_speaks_garbage),
        cmocka_unit_test(test_private_vm_crash),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
