/*
 * The manager with real workers (jshost-worker, V8): attach answers with the
 * config's functions and extras, calls in every style, config errors with
 * their position, restart resetting state, status figures from the workers,
 * contexts on a host and on a private VM, the heap-limit recycle and deadlines.
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

static const char config_js[] =
    "let n = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    hello_world(data, cb) { cb(null, 'Hello, ' + (data.name || 'World') "
    "+ '!'); },\n"
    "    double(data) { return data.number * 2; },\n"
    "    count() { return ++n; },\n"
    "    async later(data) { return data; },\n"
    "    spin() { for (;;) {} },\n"
    "    hog() { const a = []; for (;;) a.push(new Array(100000).fill(1)); "
    "},\n"
    "  },\n"
    "  workers: 1,\n"
    "  memory: 64,\n"
    "  linger: 60000,\n"
    "  anything: 'else',\n"
    "};\n";

static struct tu_daemon m;
static struct tu_rpc *c;
static char *id;

static int
setup(void **state)
{
    const char *cfg;

    (void)state;
    tu_daemon_init(&m);
    m.real = true;
    cfg = tu_daemon_file(&m, "host.config.js", config_js);
    id = tu_daemon_manager_host(&m, cfg, NULL, &c);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tu_daemon_stop_host(&m, c, id);
    return 0;
}

static void
expect(const char *fn, const char *data, const char *want)
{
    char *r = tu_rpc_call_fn(c, id, fn, data, "{}");

    assert_non_null(r);
    if (want[0] == '!')
        assert_true(strncmp(r, want, strlen(want)) == 0);
    else
        assert_string_equal(r, want);
    free(r);
}

static void
test_attach_and_calls(void **state)
{
    char params[600];
    json_t *j, *fns;

    (void)state;
    snprintf(params, sizeof params, "[\"%s/host.config.js\", {}]", m.dir);
    j = tu_rpc_ok(c, "attach", params);
    fns = json_object_get(j, "functions");
    assert_true(json_array_size(fns) >= 6);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "extras"), "anything")),
                        "else");
    json_decref(j);
    expect("hello_world", "{\"name\": \"Foo\"}", "\"Hello, Foo!\"");
    expect("double", "{\"number\": 20}", "40");
    expect("later", "[1, \"x\"]", "[1,\"x\"]");
    expect("nope", "null", "!NotFound");
}

static void
test_restart_resets_state(void **state)
{
    char params[256], *logfile;
    json_t *j;

    (void)state;
    expect("count", "null", "1");
    expect("count", "null", "2");
    j = tu_rpc_host(c, id);
    logfile = strdup(json_string_value(json_object_get(j, "logfile")));
    json_decref(j);
    snprintf(params, sizeof params, "[\"%s\"]", id);
    j = tu_rpc_ok(c, "restart", params);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "logfile")),
                        logfile);
    assert_int_equal(json_integer_value(json_object_get(j, "holders")), 1);
    json_decref(j);
    expect("count", "null", "1");
    free(logfile);
}

static void
test_status_figures(void **state)
{
    json_t *h, *w;

    (void)state;
    expect("double", "{\"number\": 1}", "2");
    h = tu_rpc_host(c, id);
    assert_non_null(h);
    {
        /* After the restart an old worker may still be on its way out. */
        json_t *ws = json_object_get(h, "workers"), *x;
        size_t i;

        w = NULL;
        json_array_foreach(ws, i, x)
        {
            if (strcmp(json_string_value(json_object_get(x, "state")),
                       "ready") == 0)
                w = x;
        }
    }
    assert_non_null(w);
    assert_true(json_integer_value(json_object_get(w, "heap_used")) > 0);
    assert_true(json_integer_value(json_object_get(w, "heap_limit")) > 0);
    assert_true(json_integer_value(json_object_get(w, "rss")) > 0);
    assert_true(json_integer_value(json_object_get(w, "calls")) >= 1);
    assert_true(json_number_value(json_object_get(w, "p99_ms")) >=
                json_number_value(json_object_get(w, "p50_ms")));
    assert_true(json_integer_value(json_object_get(w, "pid")) > 0);
    json_decref(h);
}

static void
test_contexts(void **state)
{
    char params[256], *r;
    json_t *j;
    long ctx, vm;

    (void)state;
    snprintf(params, sizeof params, "[\"%s\", {}]", id);
    j = tu_rpc_ok(c, "context.create", params);
    ctx = (long)json_integer_value(j);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld, \"var x = 20; x + 1\", \"a.js\"]",
             ctx);
    r = tu_rpc_call(c, "context.eval", params);
    assert_string_equal(r, "21");
    free(r);
    snprintf(params, sizeof params, "[%ld, \"Math.max\", [1, 5, 2]]", ctx);
    r = tu_rpc_call(c, "context.call", params);
    assert_string_equal(r, "5");
    free(r);

    j = tu_rpc_ok(c, "context.create", "[null, {\"memory\": 64}]");
    vm = (long)json_integer_value(j);
    json_decref(j);
    snprintf(params, sizeof params, "[%ld, \"6 * 7\", \"vm.js\"]", vm);
    r = tu_rpc_call(c, "context.eval", params);
    assert_string_equal(r, "42");
    free(r);
    snprintf(params, sizeof params, "[%ld]", vm);
    r = tu_rpc_call(c, "context.destroy", params);
    assert_string_equal(r, "null");
    free(r);
    snprintf(params, sizeof params, "[%ld]", ctx);
    r = tu_rpc_call(c, "context.destroy", params);
    assert_string_equal(r, "null");
    free(r);
}

static void
test_timeout_then_serves(void **state)
{
    char *r;
    json_t *h;

    (void)state;
    r = tu_rpc_call_fn(c, id, "spin", "null", "{\"timeout_ms\": 200}");
    assert_true(strncmp(r, "!TimeoutError", 13) == 0);
    free(r);
    expect("double", "{\"number\": 4}", "8");
    h = tu_rpc_host(c, id);
    assert_int_equal(json_integer_value(json_object_get(h, "crashes")), 0);
    json_decref(h);
}

static void
test_heap_limit_recycles(void **state)
{
    char *r;
    json_t *h;

    (void)state;
    r = tu_rpc_call_fn(c, id, "hog", "null", "{\"timeout_ms\": 60000}");
    assert_true(strncmp(r, "!MemoryError", 12) == 0);
    free(r);
    /* Replaced, not counted as a crash. */
    expect("double", "{\"number\": 5}", "10");
    h = tu_rpc_host(c, id);
    assert_int_equal(json_integer_value(json_object_get(h, "crashes")), 0);
    json_decref(h);
}

static void
test_config_error_position(void **state)
{
    const char *bad;
    char params[600], *r;

    (void)state;
    bad = tu_daemon_file(
        &m, "bad.config.js",
        "module.exports = {\n  functions: {\n    x( {\n  }\n};\n");
    snprintf(params, sizeof params, "[\"%s\", {}]", bad);
    r = tu_rpc_call(c, "attach", params);
    assert_non_null(r);
    assert_true(strncmp(r, "!ConfigError", 12) == 0);
    assert_non_null(strstr(r, "bad.config.js:"));
    assert_non_null(strstr(r, "/hosts/"));
    free(r);
}

/*
 * A worker busy with long synchronous calls one after another answers no ping
 * for longer than the ping timeout, yet makes progress: it is not killed.
 */
static void
test_busy_worker_not_killed(void **state)
{
    struct tu_daemon m2;
    const char *env[] = {"JSHOST_PING_MS=100", "JSHOST_PING_TIMEOUT_MS=1000",
                         NULL};
    struct tu_rpc *c2;
    const char *cfg;
    char *id2, params[256], *res;
    uint32_t ids[3];
    struct proto_msg msg;
    pid_t pids[2], after[2];
    int i;

    (void)state;
    tu_daemon_init(&m2);
    m2.real = true;
    cfg = tu_daemon_file(&m2, "host.config.js", config_js);
    id2 = tu_daemon_manager_host(&m2, cfg, env, &c2);
    assert_int_equal(tu_rpc_worker_pids(c2, id2, "ready", pids, 2), 1);
    snprintf(params, sizeof params,
             "[\"%s\", \"spin\", null, {\"timeout_ms\": 1500}]", id2);
    for (i = 0; i < 3; i++)
        ids[i] = tu_rpc_send(c2, "call", params);
    for (i = 0; i < 3; i++) {
        assert_int_equal(tu_rpc_wait(c2, ids[i], &msg, 60000), 1);
        res = tu_rpc_result(&msg);
        if (strncmp(res, "!TimeoutError", 13) != 0)
            fail_msg("call %d: %s", i, res);
        free(res);
        proto_msg_release(&msg);
    }
    assert_int_equal(tu_rpc_worker_pids(c2, id2, "ready", after, 2), 1);
    assert_int_equal(after[0], pids[0]);
    tu_daemon_stop_host(&m2, c2, id2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_and_calls),
        cmocka_unit_test(test_restart_resets_state),
        cmocka_unit_test(test_status_figures),
        cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_timeout_then_serves),
        cmocka_unit_test(test_heap_limit_recycles),
        cmocka_unit_test(test_config_error_position),
        cmocka_unit_test(test_busy_worker_not_killed),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
