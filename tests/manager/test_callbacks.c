/*
 * Callbacks and cancellation through the manager, with real workers: a
 * worker's invoke reaches the client that owns the callable (a call's or a
 * context's) with the client's own msgid, the answer goes back; a client
 * that closes with reverse calls in flight; cancel of a running and of a
 * queued call; a client that closes stops its running JavaScript; stop and
 * shutdown cancel what runs past their grace; a private VM's worker whose
 * timer spins stops when its client goes; a call the manager answers
 * TimeoutError itself (its worker late) is cancelled at the worker, and one
 * waiting on a reverse call is held to its deadline.
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

#include "mpjson.h"
#include "tu_daemon.h"

#define CB7 "{\"$ext\": [2, \"AAAABw==\"]}"
#define CB5 "{\"$ext\": [2, \"AAAABQ==\"]}"

/* The host's deadline: a minute. Answers that come within TU_WAIT_MS (30 s)
 * come from cancellation, not from a deadline; and JSHOST_KILL_GRACE_MS is a
 * minute too, so that no SIGKILL stands in for it. */
static const char config_js[] =
    "let n = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    async callOnce(d) { return await d.f(...d.args); },\n"
    "    async loop(d) { let s = 0;\n"
    "      for (let i = 0; i < d.n; i++) s += await d.f(i);\n"
    "      return s; },\n"
    "    async catchIt(d) {\n"
    "      try { await d.f(); return 'no error'; }\n"
    "      catch (e) { return [e.name, e.message, e.stack]; } },\n"
    "    async waitRecord(d) {\n"
    "      try { globalThis.outcome = 'resolved ' + await d.f(); }\n"
    "      catch (e) { globalThis.outcome = 'rejected ' + e.message; } },\n"
    "    outcome() { return globalThis.outcome || null; },\n"
    "    spin() { console.log('spinning'); for (;;) {} },\n"
    "    count() { return ++n; },\n"
    "  },\n"
    "  workers: 1,\n"
    "  timeout: 60000,\n"
    "  linger: 60000,\n"
    "};\n";

/* A config that takes a while to load: calls wait in the host's queue. */
static const char slow_js[] =
    "const t = Date.now(); while (Date.now() - t < 2000) {}\n"
    "let n = 0;\n"
    "module.exports = { functions: { count() { return ++n; } } };\n";

static struct tu_daemon m;
static char *cfg, *id, *logfile;

static int
setup(void **state)
{
    static const char *const env[] = {"JSHOST_DRAIN_GRACE_MS=300",
                                      "JSHOST_KILL_GRACE_MS=60000", NULL};
    struct tu_rpc *c;
    json_t *h;

    (void)state;
    tu_daemon_init(&m);
    m.real = true;
    cfg = strdup(tu_daemon_file(&m, "host.config.js", config_js));
    id = tu_daemon_manager_host(&m, cfg, env, &c);
    h = tu_rpc_host(c, id);
    logfile = strdup(json_string_value(json_object_get(h, "logfile")));
    json_decref(h);
    /* The host lingers a minute after this holder goes. */
    tu_rpc_close(c);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (m.pid > 0)
        tu_daemon_stop(&m);
    else
        tu_daemon_cleanup(&m);
    free(cfg);
    free(id);
    free(logfile);
    return 0;
}

static void
double_it(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    const msgpack_object *args = &req->params.via.array.ptr[1];
    unsigned *count = arg;
    char text[32];

    /* The client sees DESIGN's two params: the owner stays between the
     * manager and the worker. */
    assert_true(proto_msg_is(req, "invoke"));
    assert_int_equal(req->params.via.array.size, 2);
    snprintf(text, sizeof text, "%llu",
             (unsigned long long)args->via.array.ptr[0].via.u64 * 2);
    tu_rpc_respond(c, req->msgid, text);
    if (count != NULL)
        (*count)++;
}

static char *
call_serving(struct tu_rpc *c, const char *fn, const char *data,
             tu_rpc_request_fn serve, void *arg)
{
    char params[512];

    snprintf(params, sizeof params, "[\"%s\", \"%s\", %s]", id, fn, data);
    return tu_rpc_call_serving(c, "call", params, serve, arg);
}

static pid_t
the_worker(struct tu_rpc *c)
{
    pid_t pid;

    assert_int_equal(tu_rpc_worker_pids(c, id, "ready", &pid, 1), 1);
    return pid;
}

/* Sends a call of `spin` on c and waits until its worker spins; its msgid. */
static uint32_t
start_spin(struct tu_rpc *c)
{
    char params[256];
    uint32_t mid;

    snprintf(params, sizeof params, "[\"%s\", \"spin\", null]", id);
    mid = tu_rpc_send(c, "call", params);
    TU_UNTIL(tu_file_contains(logfile, "spinning"), TU_WAIT_MS);
    return mid;
}

/* Asserts the worker that served on is still pid and that this count is its
 * first: the call stopped before it never ran on. */
static void
expect_first_count(struct tu_rpc *c, pid_t pid)
{
    char *s = tu_rpc_call_fn(c, id, "count", "null", NULL);

    assert_string_equal(s, "1");
    free(s);
    assert_int_equal(the_worker(c), pid);
}

static void
test_invoke_routed_both_ways(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    struct proto_msg ra, rb, msg;
    char params[512], *s;
    uint32_t ia, ib;

    (void)state;
    /* Two clients, the same callback id: each invoke goes to its own. */
    snprintf(params, sizeof params,
             "[\"%s\", \"callOnce\", {\"f\": " CB7 ", \"args\": [\"a\"]}]", id);
    ia = tu_rpc_send(a, "call", params);
    snprintf(params, sizeof params,
             "[\"%s\", \"callOnce\", {\"f\": " CB7 ", \"args\": [\"b\"]}]", id);
    ib = tu_rpc_send(b, "call", params);
    assert_int_equal(tu_rpc_read(a, &ra, TU_WAIT_MS), 1);
    assert_int_equal(tu_rpc_read(b, &rb, TU_WAIT_MS), 1);
    s = mpjson_dump(&ra.params, 0);
    assert_string_equal(s, "[7,[\"a\"]]");
    free(s);
    s = mpjson_dump(&rb.params, 0);
    assert_string_equal(s, "[7,[\"b\"]]");
    free(s);
    /* Each client's own msgid space: both may well be 1. */
    tu_rpc_respond(b, rb.msgid, "\"for b\"");
    tu_rpc_respond(a, ra.msgid, "\"for a\"");
    proto_msg_release(&ra);
    proto_msg_release(&rb);
    assert_int_equal(tu_rpc_wait(a, ia, &msg, TU_WAIT_MS), 1);
    s = tu_rpc_result(&msg);
    assert_string_equal(s, "\"for a\"");
    free(s);
    proto_msg_release(&msg);
    assert_int_equal(tu_rpc_wait(b, ib, &msg, TU_WAIT_MS), 1);
    s = tu_rpc_result(&msg);
    assert_string_equal(s, "\"for b\"");
    free(s);
    proto_msg_release(&msg);
    /* An answer to nothing is dropped. */
    tu_rpc_respond(a, 4242, "1");
    tu_rpc_close(a);
    tu_rpc_close(b);
}

static void
answer_error(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    (void)arg;
    tu_rpc_respond_error(c, req->msgid, "JSError", "KeyError", "'k'",
                         "Traceback (most recent call last):\n  in f");
}

static void
test_invoke_error_and_loop(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&m);
    unsigned count = 0;
    json_t *v;
    char *s;

    (void)state;
    s = call_serving(c, "catchIt", "{\"f\": " CB7 "}", answer_error, NULL);
    v = json_loads(s, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "KeyError");
    assert_string_equal(json_string_value(json_array_get(v, 1)), "'k'");
    assert_non_null(strstr(json_string_value(json_array_get(v, 2)),
                           "KeyError: 'k'\n    at "));
    assert_non_null(strstr(json_string_value(json_array_get(v, 2)),
                           "\nTraceback (most recent call last):\n  in f"));
    json_decref(v);
    free(s);
    s = call_serving(c, "loop", "{\"f\": " CB7 ", \"n\": 10000}", double_it,
                     &count);
    assert_string_equal(s, "99990000");
    assert_int_equal(count, 10000);
    free(s);
    tu_rpc_close(c);
}

static void
test_context_callable(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&m);
    json_t *ctx;
    char params[512], *s;

    (void)state;
    snprintf(params, sizeof params, "[\"%s\"]", id);
    ctx = tu_rpc_ok(c, "context.create", params);
    snprintf(params, sizeof params,
             "[%lld, \"(f) => { globalThis.g = f; return 1; }\", [" CB5 "]]",
             json_integer_value(ctx));
    tu_rpc_check(c, "context.call", params, "1");
    snprintf(params, sizeof params, "[%lld, \"g(21)\", null]",
             json_integer_value(ctx));
    s = tu_rpc_call_serving(c, "context.eval", params, double_it, NULL);
    assert_string_equal(s, "42");
    free(s);
    /* release, through the manager to the context's worker. */
    tu_rpc_notify(c, "release", "[[5]]");
    snprintf(params, sizeof params,
             "[%lld, \"g(1).then(() => 'called', (e) => e.message)\", null]",
             json_integer_value(ctx));
    tu_rpc_check(c, "context.eval", params,
                 "\"callback expired: it was released\"");
    json_decref(ctx);
    tu_rpc_close(c);
}

static void
test_client_closes_with_invokes(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    struct proto_msg req;
    char params[256], *s = NULL;
    pid_t pid = the_worker(b);

    (void)state;
    snprintf(params, sizeof params,
             "[\"%s\", \"waitRecord\", {\"f\": " CB7 "}]", id);
    tu_rpc_send(a, "call", params);
    assert_int_equal(tu_rpc_read(a, &req, TU_WAIT_MS), 1);
    assert_true(proto_msg_is(&req, "invoke"));
    proto_msg_release(&req);
    tu_rpc_close(a);
    /* The worker's promise rejects; the worker lives and serves others. */
    TU_UNTIL((free(s), s = tu_rpc_call_fn(b, id, "outcome", "null", NULL),
              strcmp(s, "null") != 0),
             TU_WAIT_MS);
    assert_string_equal(s, "\"rejected callback expired: its client closed "
                           "the connection\"");
    free(s);
    assert_int_equal(the_worker(b), pid);
    tu_rpc_close(b);
}

static void
test_cancel_running(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&m);
    char *s;
    pid_t pid = the_worker(c);
    uint32_t mid;

    (void)state;
    mid = start_spin(c);
    tu_rpc_cancel(c, mid);
    tu_rpc_expect_cancelled(c, mid);
    /* The same worker serves on. */
    assert_int_equal(the_worker(c), pid);
    s = tu_rpc_call_fn(c, id, "count", "null", NULL);
    assert_string_equal(s, "1");
    free(s);
    tu_rpc_close(c);
}

static void
test_close_stops_spin(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    pid_t pid = the_worker(b);

    (void)state;
    start_spin(a);
    tu_rpc_close(a);
    /* Long before the host's minute-long deadline. */
    expect_first_count(b, pid);
    tu_rpc_close(b);
}

static void
test_cancel_queued(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    struct proto_msg msg;
    struct proto_error pe;
    const char *slow = tu_daemon_file(&m, "slow.config.js", slow_js);
    char params[600];
    uint32_t attach, mid;

    (void)state;
    snprintf(params, sizeof params, "[\"%s\", {}]", slow);
    attach = tu_rpc_send(a, "attach", params);
    TU_UNTIL(tu_rpc_host_in(b, slow, "starting"), TU_WAIT_MS);
    /* Queued in the host while its worker loads the config. */
    snprintf(params, sizeof params, "[\"%s\", \"count\", null]", slow);
    mid = tu_rpc_send(b, "call", params);
    tu_rpc_cancel(b, mid);
    tu_rpc_expect_error(b, mid, "Cancelled", &msg, &pe);
    assert_non_null(memmem(pe.message, pe.message_len, "before it ran", 13));
    proto_msg_release(&msg);
    tu_rpc_expect_result(a, attach, &msg);
    proto_msg_release(&msg);
    /* It never ran. */
    snprintf(params, sizeof params, "[\"%s\", \"count\", null]", slow);
    tu_rpc_check(b, "call", params, "1");
    tu_rpc_close(a);
    tu_rpc_close(b);
}

static void
test_stop_grace(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    char params[256];
    uint32_t mid;
    json_t *j;

    (void)state;
    free(tu_rpc_attach(b, cfg));
    mid = start_spin(a);
    /* The grace (300 ms here) passes, then the spin is cancelled and the
     * stop completes, long before the call's minute. */
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(b, "stop", params);
    assert_string_equal(json_string_value(json_object_get(j, "state")),
                        "stopped");
    json_decref(j);
    tu_rpc_expect_cancelled(a, mid);
    /* Attached again, it starts anew. */
    free(tu_rpc_attach(b, cfg));
    snprintf(params, sizeof params, "[\"%s\", \"count\", null]", id);
    tu_rpc_check(b, "call", params, "1");
    tu_rpc_close(a);
    tu_rpc_close(b);
}

static void
test_restart_grace(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    char params[256];
    pid_t old = the_worker(b);
    uint32_t mid;
    json_t *j;

    (void)state;
    mid = start_spin(a);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(b, "restart", params);
    json_decref(j);
    /* The old worker drains: its spin is cancelled after the grace, and it
     * goes. */
    tu_rpc_expect_cancelled(a, mid);
    TU_UNTIL(tu_pid_gone(old), TU_WAIT_MS);
    assert_int_not_equal(the_worker(b), old);
    tu_rpc_close(a);
    tu_rpc_close(b);
}

/* CPU seconds pid has used (utime + stime), from /proc. */
static double
cpu_seconds(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    if (p == NULL || (p = strrchr(buf, ')')) == NULL)
        return -1;
    /* After ") state": fields 4.. ; utime and stime are the 14th and 15th. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
test_vm_close_stops_timer(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    char params[256];
    json_t *ctx, *all, *h;
    pid_t pid = 0;
    double cpu0;
    size_t i;

    (void)state;
    ctx = tu_rpc_ok(a, "context.create", "[null, {\"timeout_ms\": 60000}]");
    /* The VM's worker, found in the status before it spins. */
    all = tu_rpc_ok(b, "status", "[null]");
    json_array_foreach(json_object_get(all, "hosts"), i, h)
    {
        json_t *w = json_array_get(json_object_get(h, "workers"), 0);

        if (strncmp(json_string_value(json_object_get(h, "id")), "vm-", 3) ==
                0 &&
            w != NULL)
            pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(all);
    assert_true(pid > 0);
    cpu0 = cpu_seconds(pid);
    snprintf(params, sizeof params,
             "[%lld, \"setTimeout(() => { for (;;) {} }, 0); 1\", null]",
             json_integer_value(ctx));
    tu_rpc_check(a, "context.eval", params, "1");
    /* Spinning: its CPU time grows by a quarter second. */
    TU_UNTIL(cpu_seconds(pid) > cpu0 + 0.25, TU_WAIT_MS);
    json_decref(ctx);
    tu_rpc_close(a);
    /* Gone long before the timer's minute (or a SIGKILL's). */
    TU_UNTIL(tu_pid_gone(pid), TU_WAIT_MS);
    tu_rpc_close(b);
}

static void
test_shutdown_stops_spin(void **state)
{
    struct tu_rpc *a = tu_daemon_connect(&m), *b = tu_daemon_connect(&m);
    pid_t pid = the_worker(b);
    int st;

    (void)state;
    start_spin(a);
    tu_rpc_check(b, "shutdown", "[]", "null");
    st = tu_daemon_wait(&m, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(tu_pid_gone(pid));
    tu_rpc_close(a);
    tu_rpc_close(b);
}

/* Asserts that the error is the manager's own TimeoutError (the worker gave
 * no answer by the deadline), not the worker's. */
static void
expect_manager_timeout(struct tu_rpc *c, uint32_t mid)
{
    struct proto_msg msg;
    struct proto_error pe;

    tu_rpc_expect_error(c, mid, "TimeoutError", &msg, &pe);
    if (pe.message == NULL || memmem(pe.message, pe.message_len,
                                     "gave no answer by then", 22) == NULL)
        fail_msg("not the manager's TimeoutError: %.*s", (int)pe.message_len,
                 pe.message ? pe.message : "");
    proto_msg_release(&msg);
}

/* A call stuck behind a spin at its worker: the manager answers it
 * TimeoutError at its deadline and cancels it there, so that it never runs
 * once the spin ends. */
static void
test_late_call_cancelled_at_worker(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&m);
    char params[256];
    pid_t pid = the_worker(c);
    uint32_t spin, late;

    (void)state;
    spin = start_spin(c);
    snprintf(params, sizeof params,
             "[\"%s\", \"count\", null, {\"timeout_ms\": 300}]", id);
    late = tu_rpc_send(c, "call", params);
    expect_manager_timeout(c, late);
    tu_rpc_cancel(c, spin);
    tu_rpc_expect_cancelled(c, spin);
    /* The late call never ran: this is the first count. */
    expect_first_count(c, pid);
    tu_rpc_close(c);
}

/* A call waiting on a reverse call nobody answers, its worker frozen: the
 * manager's deadline answers it all the same; the worker, thawed, drops the
 * call and serves on. */
static void
test_invoke_wait_bounded(void **state)
{
    struct tu_rpc *c = tu_daemon_connect(&m);
    struct proto_msg req;
    char params[256];
    pid_t pid = the_worker(c);
    uint32_t mid;

    (void)state;
    snprintf(params, sizeof params,
             "[\"%s\", \"waitRecord\", {\"f\": " CB7
             "}, {\"timeout_ms\": 500}]",
             id);
    mid = tu_rpc_send(c, "call", params);
    assert_int_equal(tu_rpc_read(c, &req, TU_WAIT_MS), 1);
    assert_true(proto_msg_is(&req, "invoke"));
    /* Frozen, it can neither end the call itself nor answer. */
    assert_int_equal(kill(pid, SIGSTOP), 0);
    expect_manager_timeout(c, mid);
    assert_int_equal(kill(pid, SIGCONT), 0);
    /* The callback's answer comes after the call ended: harmless. */
    tu_rpc_respond(c, req.msgid, "1");
    proto_msg_release(&req);
    /* The worker, thawed, serves on (its late answer dropped). */
    expect_first_count(c, pid);
    tu_rpc_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_invoke_routed_both_ways, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invoke_error_and_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_context_callable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_closes_with_invokes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_stops_spin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_close_stops_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_stops_spin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_late_call_cancelled_at_worker,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoke_wait_bounded, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
