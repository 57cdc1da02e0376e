/*
 * Callbacks and cancellation on a worker started with --listen, its client
 * played by the test: callables (ext 2) in a call's data and a context's
 * args, the reverse calls (invoke) they make answered here, errors both
 * ways, expiry and release; cancel of a running, a queued and an awaiting
 * call; a closed connection, a destroyed context and SIGTERM stopping the
 * JavaScript they are about.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpjson.h"
#include "tu_daemon.h"

/* ext 2 for callback ids 7 and 5, as mpjson spells them. */
#define CB7 "{\"$ext\": [2, \"AAAABw==\"]}"
#define CB5 "{\"$ext\": [2, \"AAAABQ==\"]}"

/* A minute: a test that sees an answer within TU_WAIT_MS (30 s) knows the
 * JS was stopped, not timed out. */
#define LONG_MS "60000"

static const char config[] =
    "let n = 0;\n"
    "module.exports = { functions: {\n"
    "  async callOnce(d) { return await d.f(...d.args); },\n"
    "  async loop(d) { let s = 0;\n"
    "    for (let i = 0; i < d.n; i++) s += await d.f(i);\n"
    "    return s; },\n"
    "  async parallel(d) {\n"
    "    const r = await Promise.all(\n"
    "      Array.from({length: d.n}, (_, i) => d.f(i)));\n"
    "    return r.reduce((a, b) => a + b, 0); },\n"
    "  async catchIt(d) {\n"
    "    try { await d.f(); return 'no error'; }\n"
    "    catch (e) { return {name: e.name, message: e.message,\n"
    "                        stack: e.stack, isError: e instanceof Error}; }\n"
    "  },\n"
    "  async rethrow(d) { await d.f(); },\n"
    "  async throwAfter(d) { await d.f();\n"
    "    throw new RangeError('after the callback'); },\n"
    "  keep(d) { globalThis.kept = d.f; return 'kept'; },\n"
    "  async useKept() {\n"
    "    try { await globalThis.kept(1); return 'called'; }\n"
    "    catch (e) { return e.message; } },\n"
    "  async keepAndWait(d) { globalThis.kept = d.f;\n"
    "    await new Promise(() => {}); },\n"
    "  async waitRecord(d) {\n"
    "    try { globalThis.outcome = 'resolved ' + await d.f(); }\n"
    "    catch (e) { globalThis.outcome = 'rejected ' + e.message; } },\n"
    "  outcome() { return globalThis.outcome || null; },\n"
    "  spin() { console.log('spinning'); for (;;) {} },\n"
    "  count() { return ++n; },\n"
    "}};\n";

static void
start(struct tu_daemon *f)
{
    static const char *const extra[] = {"--timeout", LONG_MS, NULL};

    tu_daemon_init(f);
    tu_daemon_worker(f, tu_daemon_file(f, "cb.config.js", config), extra);
}

/* An invoke request's params as JSON: [callback, args]. */
static char *
invoke_params(const struct proto_msg *req)
{
    char *s;

    assert_int_equal(req->kind, PROTO_REQUEST);
    assert_true(proto_msg_is(req, "invoke"));
    s = mpjson_dump(&req->params, 0);
    assert_non_null(s);
    return s;
}

/* Answers every invoke with args[0] * 2. */
static void
double_it(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    const msgpack_object *args = &req->params.via.array.ptr[1];
    char text[32];
    unsigned *count = arg;

    assert_int_equal(req->params.via.array.size, 2);
    assert_int_equal(args->type, MSGPACK_OBJECT_ARRAY);
    snprintf(text, sizeof text, "%llu",
             (unsigned long long)args->via.array.ptr[0].via.u64 * 2);
    tu_rpc_respond(c, req->msgid, text);
    if (count != NULL)
        (*count)++;
}

static void
no_invoke(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    (void)arg;
    (void)c;
    fail_msg("an invoke came: %s", invoke_params(req));
}

/* A call answered while invokes are served by fn; the result as text. */
static char *
call_serving(struct tu_rpc *c, const char *params, tu_rpc_request_fn fn,
             void *arg)
{
    return tu_rpc_call_serving(c, "call", params, fn, arg);
}

static void
check_serving(struct tu_rpc *c, const char *params, tu_rpc_request_fn fn,
              void *arg, const char *expect)
{
    char *got = call_serving(c, params, fn, arg);

    assert_string_equal(got, expect);
    free(got);
}

static void
test_invoke_roundtrip(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg req;
    uint32_t id;
    char *p;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    id = tu_rpc_send(c, "call",
                     "[\"local\", \"callOnce\", {\"f\": " CB7
                     ", \"args\": [1, \"two\", {\"$bin\": \"AAE=\"}]}]");
    /* The invoke comes on this connection: [callback, args], no owner. */
    assert_int_equal(tu_rpc_read(c, &req, TU_WAIT_MS), 1);
    p = invoke_params(&req);
    assert_string_equal(p, "[7,[1,\"two\",{\"$bin\":\"AAE=\"}]]");
    free(p);
    tu_rpc_respond(c, req.msgid, "{\"got\": [1, 2], \"$no\": null}");
    proto_msg_release(&req);
    assert_int_equal(tu_rpc_wait(c, id, &req, TU_WAIT_MS), 1);
    p = tu_rpc_result(&req);
    assert_string_equal(p, "{\"got\":[1,2],\"$no\":null}");
    free(p);
    proto_msg_release(&req);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
answer_error(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    (void)arg;
    tu_rpc_respond_error(c, req->msgid, "JSError", "ValueError", "bad value",
                         "Traceback (most recent call last):\n"
                         "  File \"app.py\", line 3, in f");
}

static void
test_errors_both_ways(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    struct proto_error pe;
    json_t *v;
    const char *stack;
    char *s;
    uint32_t id;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    /* The client's error, seen by JS: an Error with its name and message,
     * the JS stack where it was called, then the client's. */
    s = call_serving(c, "[\"local\", \"catchIt\", {\"f\": " CB7 "}]",
                     answer_error, NULL);
    v = json_loads(s, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "name")),
                        "ValueError");
    assert_string_equal(json_string_value(json_object_get(v, "message")),
                        "bad value");
    assert_true(json_is_true(json_object_get(v, "isError")));
    stack = json_string_value(json_object_get(v, "stack"));
    assert_non_null(stack);
    if (strncmp(stack, "ValueError: bad value\n    at ", 29) != 0 ||
        strstr(stack, "cb.config.js:") == NULL ||
        strstr(stack, "\nTraceback (most recent call last):\n  File "
                      "\"app.py\", line 3, in f") == NULL)
        fail_msg("stack: %s", stack);
    json_decref(v);
    free(s);
    /* Not caught, it fails the call as a JSError that keeps all three. */
    id = tu_rpc_send(c, "call", "[\"local\", \"rethrow\", {\"f\": " CB7 "}]");
    assert_int_equal(
        tu_rpc_wait_serving(c, id, &msg, TU_WAIT_MS, answer_error, NULL), 1);
    assert_int_equal(proto_error_from_object(&msg.error, &pe), 0);
    assert_int_equal(pe.type, PROTO_ERR_JS);
    assert_memory_equal(pe.name, "ValueError", pe.name_len);
    assert_memory_equal(pe.message, "bad value", pe.message_len);
    assert_non_null(memmem(pe.stack, pe.stack_len, "Traceback", 9));
    assert_non_null(memmem(pe.stack, pe.stack_len, "cb.config.js:", 13));
    proto_msg_release(&msg);
    /* A JS error after the callback keeps its own type, message and
     * stack. */
    id =
        tu_rpc_send(c, "call", "[\"local\", \"throwAfter\", {\"f\": " CB7 "}]");
    assert_int_equal(
        tu_rpc_wait_serving(c, id, &msg, TU_WAIT_MS, double_it, NULL), 1);
    assert_int_equal(proto_error_from_object(&msg.error, &pe), 0);
    assert_int_equal(pe.type, PROTO_ERR_JS);
    assert_memory_equal(pe.name, "RangeError", pe.name_len);
    assert_memory_equal(pe.message, "after the callback", pe.message_len);
    assert_non_null(memmem(pe.stack, pe.stack_len, "cb.config.js:18", 15));
    proto_msg_release(&msg);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

/* Holds 100 invokes, then answers them last first. */
struct held {
    uint32_t msgid[100];
    unsigned long long arg[100];
    unsigned n;
};

static void
hold_then_answer(void *arg, struct tu_rpc *c, const struct proto_msg *req)
{
    struct held *h = arg;
    char text[32];

    assert_true(h->n < 100);
    h->msgid[h->n] = req->msgid;
    h->arg[h->n] = req->params.via.array.ptr[1].via.array.ptr[0].via.u64;
    if (++h->n < 100)
        return;
    while (h->n > 0) {
        h->n--;
        snprintf(text, sizeof text, "%llu", h->arg[h->n] * 2);
        tu_rpc_respond(c, h->msgid[h->n], text);
    }
}

static void
test_many_in_flight(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct held h = {.n = 0};

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    /* 100 at once, answered in reverse order: 2 * (0 + ... + 99). */
    check_serving(c, "[\"local\", \"parallel\", {\"f\": " CB7 ", \"n\": 100}]",
                  hold_then_answer, &h, "9900");
    /* The loop is not blocked meanwhile: the same worker, another call. */
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_ten_thousand(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    unsigned count = 0;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    /* One after another: 2 * (0 + ... + 9999). */
    check_serving(c,
                  "[\"local\", \"loop\", {\"f\": " CB7 ", \"n\": 10000}, "
                  "{\"timeout_ms\": " LONG_MS "}]",
                  double_it, &count, "99990000");
    assert_int_equal(count, 10000);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_call_scoped_expires(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    check_serving(c, "[\"local\", \"keep\", {\"f\": " CB7 "}]", no_invoke, NULL,
                  "\"kept\"");
    /* After its call, the callable rejects at once, sending nothing. */
    check_serving(c, "[\"local\", \"useKept\", null]", no_invoke, NULL,
                  "\"callback expired: the call that passed it has ended\"");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_context_callable_release(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    json_t *ctx;
    char params[256], *s;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    ctx = tu_rpc_ok(c, "context.create", "[]");
    snprintf(params, sizeof params,
             "[%lld, \"(f) => { globalThis.g = f; return typeof f; }\", "
             "[" CB5 "]]",
             json_integer_value(ctx));
    tu_rpc_check(c, "context.call", params, "\"function\"");
    /* It lives on after that call: a later eval calls it. */
    snprintf(params, sizeof params, "[%lld, \"g(21)\", null]",
             json_integer_value(ctx));
    s = tu_rpc_call_serving(c, "context.eval", params, double_it, NULL);
    assert_string_equal(s, "42");
    free(s);
    /* Released, it rejects at once. */
    tu_rpc_notify(c, "release", "[[5]]");
    snprintf(params, sizeof params,
             "[%lld, \"g(1).then(() => 'called', (e) => e.message)\", null]",
             json_integer_value(ctx));
    s = tu_rpc_call_serving(c, "context.eval", params, no_invoke, NULL);
    assert_string_equal(s, "\"callback expired: it was released\"");
    free(s);
    json_decref(ctx);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_client_closes_with_invokes(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *a, *b;
    struct proto_msg req;
    char *s = NULL;

    (void)state;
    start(&f);
    a = tu_daemon_connect(&f);
    b = tu_daemon_connect(&f);
    tu_rpc_send(a, "call", "[\"local\", \"waitRecord\", {\"f\": " CB7 "}]");
    assert_int_equal(tu_rpc_read(a, &req, TU_WAIT_MS), 1);
    assert_true(proto_msg_is(&req, "invoke"));
    proto_msg_release(&req);
    /* Gone without an answer: the promise rejects, the worker serves on. */
    tu_rpc_close(a);
    TU_UNTIL((free(s),
              s = tu_rpc_call(b, "call", "[\"local\", \"outcome\", null]"),
              strcmp(s, "null") != 0),
             TU_WAIT_MS);
    assert_string_equal(s, "\"rejected callback expired: its client closed "
                           "the connection\"");
    free(s);
    tu_rpc_check(b, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(b);
    tu_daemon_stop(&f);
}

static long long
worker_pid(struct tu_rpc *c)
{
    json_t *v = tu_rpc_ok(c, "hello", "[{\"protocol\": 1}]");
    long long pid = json_integer_value(json_object_get(v, "pid"));

    json_decref(v);
    return pid;
}

/* Sends a call of `spin` on c and waits until f's JavaScript spins; its
 * msgid. */
static uint32_t
start_spin(struct tu_daemon *f, struct tu_rpc *c)
{
    uint32_t id = tu_rpc_send(
        c, "call",
        "[\"local\", \"spin\", null, {\"timeout_ms\": " LONG_MS "}]");

    TU_UNTIL(tu_file_contains(f->log, "spinning"), TU_WAIT_MS);
    return id;
}

static void
test_cancel_running(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    long long pid;
    uint32_t id;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    pid = worker_pid(c);
    id = start_spin(&f, c);
    tu_rpc_cancel(c, id);
    tu_rpc_expect_cancelled(c, id);
    /* The same process serves the next call. */
    assert_int_equal(worker_pid(c), pid);
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    /* A cancel for nothing (done, or never sent) is ignored. */
    tu_rpc_cancel(c, id);
    tu_rpc_notify(c, "cancel", "[99999]");
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "2");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

/* A worker answers ping and stats while its JavaScript runs (the manager
 * must not take a long run for a hung worker; status sees it busy), each
 * once: the early answers are not given again when the run ends. */
static void
test_ping_while_running(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    uint32_t spin, pings[3], stats, after;
    int r;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    spin = start_spin(&f, c);
    for (int i = 0; i < 3; i++) {
        pings[i] = tu_rpc_send(c, "ping", "[]");
        tu_rpc_expect_result(c, pings[i], &msg);
        assert_int_equal(msg.result.type, MSGPACK_OBJECT_STR);
        proto_msg_release(&msg);
    }
    stats = tu_rpc_send(c, "stats", "[]");
    tu_rpc_expect_result(c, stats, &msg);
    assert_int_equal(tu_rpc_field(&msg.result, "in_flight")->via.u64, 1);
    proto_msg_release(&msg);
    tu_rpc_cancel(c, spin);
    tu_rpc_expect_cancelled(c, spin);
    /* The next message is this ping's answer: none of those above twice. */
    after = tu_rpc_send(c, "ping", "[]");
    r = tu_rpc_read(c, &msg, TU_WAIT_MS);
    assert_int_equal(r, 1);
    assert_int_equal(msg.kind, PROTO_RESPONSE);
    assert_int_equal(msg.msgid, after);
    proto_msg_release(&msg);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_cancel_queued(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    uint32_t spin, queued;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    spin = start_spin(&f, c);
    /* Behind the spinning call, unread: cancelled before it runs. */
    queued = tu_rpc_send(c, "call", "[\"local\", \"count\", null]");
    tu_rpc_cancel(c, queued);
    tu_rpc_cancel(c, spin);
    tu_rpc_expect_cancelled(c, spin);
    tu_rpc_expect_cancelled(c, queued);
    /* It never ran. */
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_cancel_awaiting(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    uint32_t id;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    id = tu_rpc_send(c, "call",
                     "[\"local\", \"keepAndWait\", {\"f\": " CB7
                     "}, {\"timeout_ms\": " LONG_MS "}]");
    /* Answered once it awaits: the cancel finds it waiting. */
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_cancel(c, id);
    tu_rpc_expect_cancelled(c, id);
    /* Its callables expired with it. */
    check_serving(c, "[\"local\", \"useKept\", null]", no_invoke, NULL,
                  "\"callback expired: the call that passed it has ended\"");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_close_stops_spin(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *a, *b;

    (void)state;
    start(&f);
    a = tu_daemon_connect(&f);
    b = tu_daemon_connect(&f);
    start_spin(&f, a);
    tu_rpc_close(a);
    /* Answered long before the spin's minute: its JS was stopped. */
    tu_rpc_check(b, "ping", "[]", "\"pong\"");
    tu_rpc_check(b, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(b);
    tu_daemon_stop(&f);
}

static void
test_destroy_stops_timer(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    struct proto_msg msg;
    struct proto_error pe;
    json_t *ctx;
    char params[256];
    uint32_t id;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    ctx = tu_rpc_ok(c, "context.create", "[]");
    snprintf(params, sizeof params,
             "[%lld, \"setTimeout(() => { console.log('timer spins'); "
             "for (;;) {} }, 0); 1\", null]",
             json_integer_value(ctx));
    tu_rpc_check(c, "context.eval", params, "1");
    TU_UNTIL(tu_file_contains(f.log, "timer spins"), TU_WAIT_MS);
    snprintf(params, sizeof params, "[%lld]", json_integer_value(ctx));
    tu_rpc_check(c, "context.destroy", params, "null");
    json_decref(ctx);
    /* An eval spinning in a context it destroys: NotFound, at once. */
    ctx = tu_rpc_ok(c, "context.create", "[]");
    snprintf(params, sizeof params,
             "[%lld, \"console.log('eval spins'); for (;;) {}\", null]",
             json_integer_value(ctx));
    id = tu_rpc_send(c, "context.eval", params);
    TU_UNTIL(tu_file_contains(f.log, "eval spins"), TU_WAIT_MS);
    snprintf(params, sizeof params, "[%lld]", json_integer_value(ctx));
    tu_rpc_check(c, "context.destroy", params, "null");
    tu_rpc_expect_error(c, id, "NotFound", &msg, &pe);
    assert_non_null(memmem(pe.message, pe.message_len, "destroyed", 9));
    proto_msg_release(&msg);
    json_decref(ctx);
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_sigterm_stops_spin(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;
    int st;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    start_spin(&f, c);
    kill(f.pid, SIGTERM);
    st = tu_daemon_wait(&f, TU_WAIT_MS);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

static void
test_bad_notifications(void **state)
{
    struct tu_daemon f;
    struct tu_rpc *c;

    (void)state;
    start(&f);
    c = tu_daemon_connect(&f);
    /* Notifications get no answer, whatever is wrong with them. */
    tu_rpc_notify(c, "cancel", "[\"x\"]");
    tu_rpc_notify(c, "cancel", "[]");
    tu_rpc_notify(c, "release", "[[\"x\"]]");
    tu_rpc_notify(c, "release", "[[1], [99]]");
    tu_rpc_notify(c, "frobnicate", "[]");
    /* A response to nothing this connection was asked is ignored. */
    tu_rpc_respond(c, 12345, "1");
    tu_rpc_check(c, "call", "[\"local\", \"count\", null]", "1");
    tu_rpc_close(c);
    tu_daemon_stop(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invoke_roundtrip),
        cmocka_unit_test(test_errors_both_ways),
        cmocka_unit_test(test_many_in_flight),
        cmocka_unit_test(test_ten_thousand),
        cmocka_unit_test(test_call_scoped_expires),
        cmocka_unit_test(test_context_callable_release),
        cmocka_unit_test(test_client_closes_with_invokes),
        cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_cancel_queued),
        cmocka_unit_test(test_ping_while_running),
        cmocka_unit_test(test_cancel_awaiting),
        cmocka_unit_test(test_close_stops_spin),
        cmocka_unit_test(test_destroy_stops_timer),
        cmocka_unit_test(test_sigterm_stops_spin),
        cmocka_unit_test(test_bad_notifications),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
