/*
 * The manager's deadlines, holds and crash policy (docs/lifecycle.md, "Calls",
 * "Holders and linger", "Crashes and quarantine"): a frozen worker's calls
 * answered TimeoutError at their deadline and the worker replaced, a call
 * waiting for a worker held to its deadline too, attach counted per attach,
 * a pool whose workers are killed after serving, young crashes scaled to the
 * pool, a quarantine that expires and backs off, and a heap-recycling loop
 * that ends in quarantine. Each scenario runs its own manager in its own
 * runtime dir; the fake worker plays the faulty peer.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu_daemon.h"

/* Waits for msgid's answer and asserts an error of `type` whose message
 * has `words`; returns how long it took from `t0`. */
static int64_t
expect_error_after(struct tu_rpc *c, uint32_t msgid, const char *type,
                   const char *words, int64_t t0)
{
    struct proto_msg msg;
    char *res;

    assert_int_equal(tu_rpc_wait(c, msgid, &msg, TU_WAIT_MS), 1);
    res = tu_rpc_result(&msg);
    if (strncmp(res + 1, type, strlen(type)) != 0 ||
        (words != NULL && strstr(res, words) == NULL))
        fail_msg("expected %s (%s), got %s", type, words ? words : "", res);
    free(res);
    proto_msg_release(&msg);
    return tu_now_ms() - t0;
}

/*
 * A frozen worker (SIGSTOP) with calls in flight: each is answered
 * TimeoutError by the manager at its own deadline (one with its own
 * timeout, one with none: the config's), never before; then, after the
 * grace, the worker is killed as hung and replaced.
 */
static void
test_sigstop_relayed_calls_time_out(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_PING_MS=100", "JSHOST_PING_TIMEOUT_MS=300",
                         NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256];
    uint32_t a, b;
    pid_t pid, pid2;
    int64_t t0;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "timeout=800\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    pid = tu_rpc_serving_pid(c, id);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    t0 = tu_now_ms();
    snprintf(params, sizeof params,
             "[\"%s\", \"echo\", 1, {\"timeout_ms\": 400}]", id);
    a = tu_rpc_send(c, "call", params);
    snprintf(params, sizeof params, "[\"%s\", \"echo\", 2]", id);
    b = tu_rpc_send(c, "call", params);
    assert_true(expect_error_after(c, a, "TimeoutError", "within 400 ms", t0) >=
                400);
    assert_true(expect_error_after(c, b, "TimeoutError", "within 800 ms", t0) >=
                800);
    /* Hung past the grace: killed (SIGKILL ends a stopped process too) and
     * replaced by a worker that serves. */
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", &pid2, 1) == 1 && pid2 != pid,
             TU_WAIT_MS);
    assert_int_not_equal(tu_rpc_serving_pid(c, id), pid);
    tu_daemon_expect_host_log(&m, id, "no answer");
    tu_daemon_stop_host(&m, c, id);
}

/*
 * A worker that was only slow (stopped, then let go before the grace ran
 * out) is not killed: its late answer is dropped, the client had its
 * TimeoutError, and it serves on.
 */
static void
test_late_answer_dropped_worker_kept(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_PING_MS=100", "JSHOST_PING_TIMEOUT_MS=60000",
                         NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, params[256], *r;
    uint32_t a;
    pid_t pid;
    json_t *h;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    pid = tu_rpc_serving_pid(c, id);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    snprintf(params, sizeof params,
             "[\"%s\", \"echo\", 1, {\"timeout_ms\": 200}]", id);
    a = tu_rpc_send(c, "call", params);
    expect_error_after(c, a, "TimeoutError", "within 200 ms", tu_now_ms());
    assert_int_equal(kill(pid, SIGCONT), 0);
    /* It answers the late call (dropped) and then this one, in order. */
    r = tu_rpc_call_fn(c, id, "echo", "7", NULL);
    assert_string_equal(r, "7");
    free(r);
    assert_int_equal(tu_rpc_serving_pid(c, id), pid);
    h = tu_rpc_host(c, id);
    assert_int_equal(json_integer_value(json_object_get(h, "queued")), 0);
    assert_int_equal(json_integer_value(json_object_get(h, "crashes")), 0);
    json_decref(h);
    tu_daemon_stop_host(&m, c, id);
}

/* A call waiting for a worker (none ready yet) is held to its deadline as
 * well: the host's queue answers TimeoutError. */
static void
test_queued_call_times_out(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *a, *b;
    const char *cfg;
    char params[600];
    uint32_t att, call;
    struct proto_msg msg;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "ready_delay_ms=3000\nlinger=60000\n");
    tu_daemon_manager(&m, NULL, NULL);
    a = tu_daemon_connect(&m);
    b = tu_daemon_connect(&m);
    snprintf(params, sizeof params, "[\"%s\", {}]", cfg);
    att = tu_rpc_send(a, "attach", params);
    /* The host exists (starting) once status shows it. */
    TU_UNTIL(tu_rpc_host_in(b, cfg, "starting"), TU_WAIT_MS);
    snprintf(params, sizeof params,
             "[\"%s\", \"echo\", 1, {\"timeout_ms\": 300}]", cfg);
    call = tu_rpc_send(b, "call", params);
    expect_error_after(b, call, "TimeoutError", "within 300 ms", tu_now_ms());
    tu_rpc_expect_result(a, att, &msg);
    proto_msg_release(&msg);
    tu_rpc_close(a);
    tu_rpc_close(b);
    tu_daemon_stop(&m);
}

static bool
lingering(struct tu_rpc *c, const char *id)
{
    return tu_rpc_host_figure(c, id, "linger_left_ms") > 0;
}

/* Holds count per attach: attach twice, detach once, and the connection
 * still holds the host; the second detach starts the linger. */
static void
test_attach_twice_detach_once(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id, *id2, params[256], *r;
    json_t *j;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "linger=100\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    id2 = tu_rpc_attach(c, cfg);
    assert_string_equal(id, id2);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "detach", params);
    /* Not the last hold: no linger. */
    assert_int_equal(json_integer_value(json_object_get(j, "linger_ms")), 0);
    json_decref(j);
    assert_false(lingering(c, id));
    assert_true(tu_rpc_host_in(c, id, "ready"));
    assert_int_equal(tu_rpc_host_figure(c, id, "holders"), 1);
    r = tu_rpc_call_fn(c, id, "echo", "3", NULL);
    assert_string_equal(r, "3");
    free(r);
    j = tu_rpc_ok(c, "detach", params);
    assert_int_equal(json_integer_value(json_object_get(j, "linger_ms")), 100);
    json_decref(j);
    TU_UNTIL(tu_rpc_host_in(c, id, "gone"), TU_WAIT_MS);
    /* A third detach finds nothing held. */
    tu_rpc_check_error(c, "detach", params, "NotFound", NULL);
    /* Closing a connection releases every hold it has. */
    free(tu_rpc_attach(c, cfg));
    free(tu_rpc_attach(c, cfg));
    {
        struct tu_rpc *w = tu_daemon_connect(&m);

        tu_rpc_close(c);
        TU_UNTIL(tu_rpc_host_in(w, id, "gone"), TU_WAIT_MS);
        tu_rpc_close(w);
    }
    free(id);
    free(id2);
    tu_daemon_stop(&m);
}

/* Pipelines calls to `pid` until both workers of a pool of two have served
 * one; their pids in pids[2]. */
static void
serve_both(struct tu_rpc *c, const char *id, pid_t pids[2])
{
    char params[256], *res;
    uint32_t ids[4];
    struct proto_msg msg;
    int i, n = 0;
    pid_t p;

    while (n < 2) {
        snprintf(params, sizeof params, "[\"%s\", \"sleep\", 50]", id);
        for (i = 0; i < 4; i++)
            ids[i] = tu_rpc_send(c, "call", params);
        for (i = 0; i < 4; i++) {
            assert_int_equal(tu_rpc_wait(c, ids[i], &msg, TU_WAIT_MS), 1);
            res = tu_rpc_result(&msg);
            if (res[0] == '!')
                fail_msg("sleep: %s", res);
            p = atoi(res);
            if (n == 0 || (n == 1 && p != pids[0]))
                pids[n++] = p;
            free(res);
            proto_msg_release(&msg);
        }
    }
}

/*
 * With workers: 2, both workers killed three times over (an OOM killer
 * under load) after they had served: not young, so not counted towards
 * quarantine; each is replaced at once and the host serves on.
 */
static void
test_pool_survives_kills_of_served_workers(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_YOUNG_MS=1", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;
    pid_t pids[2], now[2];
    int round;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf", "workers=2\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    for (round = 0; round < 3; round++) {
        TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", now, 2) == 2, TU_WAIT_MS);
        serve_both(c, id, pids);
        kill(pids[0], SIGKILL);
        kill(pids[1], SIGKILL);
        TU_UNTIL(tu_pid_gone(pids[0]) && tu_pid_gone(pids[1]), TU_WAIT_MS);
        TU_UNTIL(tu_rpc_host_figure(c, id, "crashes") == 2 * (round + 1),
                 TU_WAIT_MS);
    }
    TU_UNTIL(tu_rpc_worker_pids(c, id, "ready", now, 2) == 2, TU_WAIT_MS);
    assert_true(tu_rpc_host_in(c, id, "ready"));
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_string_equal(r, "1");
    free(r);
    assert_false(
        tu_file_contains(tu_daemon_host_log(&m, id, 0), "quarantined"));
    tu_daemon_stop_host(&m, c, id);
}

/* Workers that die young count, and the threshold scales with the pool:
 * five per worker, ten for a pool of two. */
static void
test_young_crashes_scale_with_pool(void **state)
{
    struct tu_daemon m;
    struct tu_rpc *c;
    const char *cfg;
    char *id;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf",
                         "workers=2\ncrash_after_ready_ms=30\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    TU_UNTIL(tu_rpc_host_in(c, id, "quarantined"), TU_WAIT_MS);
    tu_daemon_expect_host_log(&m, id, "quarantined after 10 crashes");
    assert_int_equal(tu_rpc_host_figure(c, id, "crashes"), 10);
    tu_daemon_stop_host(&m, c, id);
}

/*
 * The quarantine is a backoff that expires: calls meanwhile fail fast with
 * the time left; at its end the host tries again, is quarantined again for
 * twice as long, and once the config is fixed it serves without a restart.
 */
static void
test_quarantine_expires_and_backs_off(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_QUARANTINE_MS=300", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "loop.conf",
                         "crash_after_ready_ms=30\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    TU_UNTIL(tu_file_contains(tu_daemon_host_log(&m, id, 0), "for 300 ms"),
             TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    assert_non_null(strstr(r, "quarantined"));
    assert_true(strstr(r, "ms left") != NULL || strstr(r, "over") != NULL);
    free(r);
    /* Over, tried again, quarantined again for twice as long. */
    TU_UNTIL(tu_file_contains(tu_daemon_host_log(&m, id, 0), "for 600 ms"),
             TU_WAIT_MS);
    tu_daemon_expect_host_log(&m, id, "quarantine over");
    /* The config is fixed: the next try serves, with no restart. */
    tu_daemon_file(&m, "loop.conf", "linger=60000\n");
    TU_UNTIL(tu_rpc_host_in(c, id, "ready"), TU_WAIT_MS);
    r = tu_rpc_call_fn(c, id, "echo", "5", NULL);
    assert_string_equal(r, "5");
    free(r);
    tu_daemon_stop_host(&m, c, id);
}

/* A worker recycled for its heap limit again and again (a timer that
 * allocates forever) counts towards the same policy: the host ends up
 * quarantined instead of recycling forever. */
static void
test_heap_recycle_loop_quarantines(void **state)
{
    struct tu_daemon m;
    const char *env[] = {"JSHOST_RECYCLE_LIMIT=3", NULL};
    struct tu_rpc *c;
    const char *cfg;
    char *id, *r;

    (void)state;
    tu_daemon_init(&m);
    cfg = tu_daemon_file(&m, "a.conf",
                         "recycle_after_ready_ms=20\nlinger=60000\n");
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    TU_UNTIL(tu_rpc_host_in(c, id, "quarantined"), TU_WAIT_MS);
    tu_daemon_expect_host_log(&m, id, "recycled for its heap limit");
    r = tu_rpc_call_fn(c, id, "echo", "1", NULL);
    assert_true(strncmp(r, "!HostUnavailable", 16) == 0);
    free(r);
    tu_daemon_stop_host(&m, c, id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigstop_relayed_calls_time_out),
        cmocka_unit_test(test_late_answer_dropped_worker_kept),
        cmocka_unit_test(test_queued_call_times_out),
        cmocka_unit_test(test_attach_twice_detach_once),
        cmocka_unit_test(test_pool_survives_kills_of_served_workers),
        cmocka_unit_test(test_young_crashes_scale_with_pool),
        cmocka_unit_test(test_quarantine_expires_and_backs_off),
        cmocka_unit_test(test_heap_recycle_loop_quarantines),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
