/*
 * The engine's side of callbacks and cancellation (engine.h): the invoke
 * hook's view of a callable called, settling and failing reverse calls by
 * peer, a connection that has gone, cancel from the loop and from the poll
 * hook (JS that spins is terminated), the context interrupt and the stop.
 */
#include "engine_test.h"

static const char config[] =
    "module.exports = { functions: {\n"
    "  async callOnce(d) {\n"
    "    try { return 'ok ' + await d.f(1, 'two'); }\n"
    "    catch (e) { return e.name + ': ' + e.message; } },\n"
    "  async wait() { await new Promise(() => {}); },\n"
    "  spin() { for (;;) {} },\n"
    "  count() { return globalThis.n = (globalThis.n || 0) + 1; },\n"
    "}};\n";

/* What the hooks saw and do. */
struct hooks {
    struct fx *f;
    int rc; /* what invoke answers */
    int invokes;
    struct js_invoke last;
    char args[256];
    void *cancel_arg;   /* poll: cancel this call */
    uint32_t interrupt; /* poll: interrupt this context */
    int stop;           /* poll: stop */
    int polls;
};

static int
on_invoke(void *arg, struct js_invoke *inv)
{
    struct hooks *h = arg;
    msgpack_unpacked u;
    size_t off = 0;

    h->invokes++;
    h->last = *inv;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, inv->args, inv->args_len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    msgpack_object_print_buffer(h->args, sizeof h->args, u.data);
    msgpack_unpacked_destroy(&u);
    h->last.args = NULL;
    inv->peer = 77;
    return h->rc;
}

static void
on_poll(void *arg)
{
    struct hooks *h = arg;

    h->polls++;
    if (h->cancel_arg != NULL)
        assert_int_equal(js_cancel(h->f->e, h->cancel_arg), 0);
    if (h->interrupt != 0)
        js_context_interrupt(h->f->e, h->interrupt);
    if (h->stop)
        js_engine_stop(h->f->e);
}

static void
setup_hooks(struct fx *f, struct hooks *h)
{
    memset(h, 0, sizeof *h);
    h->f = f;
    put(f, "c.js", config);
    load(f, "c.js");
    js_engine_set_hooks(f->e, &(struct js_engine_hooks){
                                  .invoke = on_invoke,
                                  .poll = on_poll,
                                  .arg = h,
                              });
}

/* {"f": callable 7} as an object (pointing into static bytes; its zone
 * kept in *u). */
static const msgpack_object *
with_callable(msgpack_unpacked *u)
{
    static const char bytes[] = "\x81\xa1\x66\xd6\x02\x00\x00\x00\x07";
    size_t off = 0;

    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, bytes, sizeof bytes - 1, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void
start_call(struct fx *f, const char *name, const msgpack_object *data,
           struct result *r)
{
    start_obj(f, name, data, 0, r);
}

static const msgpack_object nil_obj = {.type = MSGPACK_OBJECT_NIL};

static void
test_invoke_settle(void **state)
{
    struct fx *f = *state;
    struct hooks h;
    struct result r;
    msgpack_unpacked u;
    msgpack_object ans = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};

    setup_hooks(f, &h);
    start_call(f, "callOnce", with_callable(&u), &r);
    /* The hook saw it at once: the call's own arg, its args packed. */
    assert_int_equal(h.invokes, 1);
    assert_int_equal(h.last.callback_id, 7);
    assert_ptr_equal(h.last.call_arg, &r);
    assert_int_equal(h.last.context, 0);
    assert_string_equal(h.args, "[1, \"two\"]");
    assert_false(r.done);
    /* Only the peer it went to, and only once. */
    ans.via.u64 = 3;
    struct proto_span nil_s = packed(&nil_obj), ans_s = packed(&ans);
    assert_int_equal(js_invoke_settle(f->e, h.last.id, 78, nil_s, ans_s),
                     -ENOENT);
    assert_int_equal(js_invoke_settle(f->e, h.last.id, 77, nil_s, ans_s), 0);
    assert_int_equal(js_invoke_settle(f->e, h.last.id, 77, nil_s, ans_s),
                     -ENOENT);
    span_free(nil_s);
    span_free(ans_s);
    wait_for(f, &r);
    expect_ok(&r, "\"ok 3\"");
    result_free(&r);
    msgpack_unpacked_destroy(&u);
}

static void
test_invoke_fails(void **state)
{
    struct fx *f = *state;
    struct hooks h;
    struct result r;
    msgpack_unpacked u;

    setup_hooks(f, &h);
    /* No connection to send it on: rejected at once. */
    h.rc = -ENOTCONN;
    start_call(f, "callOnce", with_callable(&u), &r);
    wait_for(f, &r);
    expect_ok(&r, "\"Error: callback expired: its client is gone\"");
    result_free(&r);
    /* Its peer gone: every reverse call sent there fails. */
    h.rc = 0;
    start_call(f, "callOnce", &u.data, &r);
    assert_false(r.done);
    js_invoke_fail_peer(f->e, 76, "not this one");
    assert_false(r.done);
    js_invoke_fail_peer(f->e, 77, "callback expired: gone");
    wait_for(f, &r);
    expect_ok(&r, "\"Error: callback expired: gone\"");
    result_free(&r);
    msgpack_unpacked_destroy(&u);
}

static void
test_cancel_from_loop(void **state)
{
    struct fx *f = *state;
    struct hooks h;
    struct result r;

    setup_hooks(f, &h);
    start_call(f, "wait", &nil_obj, &r);
    assert_false(r.done);
    assert_int_equal(js_cancel(f->e, &h), -ENOENT);
    assert_int_equal(js_cancel(f->e, &r), 0);
    /* Answered at once, exactly once. */
    assert_true(r.done);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_CANCELLED);
    assert_non_null(strstr(r.err.message, "was cancelled"));
    result_free(&r);
    assert_int_equal(js_cancel(f->e, &r), -ENOENT);
}

static void
test_cancel_from_poll(void **state)
{
    struct fx *f = *state;
    struct hooks h;
    struct result r;

    setup_hooks(f, &h);
    /* The poll comes while spin() runs, and stops it. */
    h.cancel_arg = &r;
    memset(&r, 0, sizeof r);
    assert_int_equal(js_call(f->e, "spin", 4, (struct proto_span){"\xc0", 1},
                             60000, done_cb, &r),
                     0);
    wait_for(f, &r);
    assert_true(h.polls > 0);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_CANCELLED);
    result_free(&r);
    /* The engine serves on. */
    h.cancel_arg = NULL;
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

static void
test_context_interrupt_and_stop(void **state)
{
    struct fx *f = *state;
    struct hooks h;
    struct result r, d;
    uint32_t ctx;

    setup_hooks(f, &h);
    ctx = new_context(f);
    /* Terminated, the eval waits for its context's destruction. */
    h.interrupt = ctx;
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_eval(f->e, ctx, "for (;;) {}", 11, "x", 1,
                                     60000, 0, done_cb, &r),
                     0);
    assert_true(h.polls > 0);
    assert_false(r.done);
    assert_int_equal(js_context_destroy(f->e, ctx), 0);
    assert_true(r.done);
    assert_int_equal(r.err.type, PROTO_ERR_NOT_FOUND);
    result_free(&r);
    /* A stop: what spins fails, and so does every later call. */
    h.interrupt = 0;
    h.stop = 1;
    memset(&d, 0, sizeof d);
    assert_int_equal(js_call(f->e, "spin", 4, (struct proto_span){"\xc0", 1},
                             60000, done_cb, &d),
                     0);
    wait_for(f, &d);
    assert_int_equal(d.err.type, PROTO_ERR_HOST_UNAVAILABLE);
    result_free(&d);
    call(f, "count", &r);
    assert_int_equal(r.err.type, PROTO_ERR_HOST_UNAVAILABLE);
    assert_non_null(strstr(r.err.message, "stopping"));
    result_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_invoke_settle, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_invoke_fails, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_loop, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_poll, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_interrupt_and_stop,
                                        fx_setup, fx_teardown),
    };

    js_engine_global_init("test_callbacks");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
