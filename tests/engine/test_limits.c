/* Deadlines and the heap limit: terminated runs, the worker living on, and a
 * heap bomb that must end as MemoryError, never as V8's fatal OOM abort. */
#include "engine_test.h"

static const char *kConfig =
    "let calls = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    spin() { calls++; for (;;) {} },\n"
    "    spinTwice() { queueMicrotask(() => { for (;;) {} }); for (;;) {} },\n"
    "    count() { return ++calls; },\n"
    "    never() { return new Promise(() => {}); },\n"
    "    neverCb(data, cb) {},\n"
    "    getterLoops() { return {get x() { for (;;) {} }}; },\n"
    "    spinInMicrotask() { return Promise.resolve().then(() => { for (;;) {} "
    "}); },\n"
    "    spinLater() { setTimeout(() => { for (;;) {} }, 1); return 'armed'; "
    "},\n"
    "    lateCb(data, cb) { setTimeout(() => cb(null, 'too late'), 400); },\n"
    "    arrayBomb() { const a = []; for (;;) a.push({i: a.length, s: 'x' + "
    "a.length}); },\n"
    "    bufferBomb() { const a = []; for (;;) a.push(new Uint8Array(1 << "
    "20)); },\n"
    "    bigArray() { return new Array(20e6).fill(1.5).length; },\n"
    "    hugeArray() { return new Array(50e6).fill(1.5).length; },\n"
    "    bigJson() { return JSON.stringify(new Array(3e7).fill('ab')).length; "
    "},\n"
    "    stringBomb() { let s = 'xy'; const keep = []; for (;;) { s = s + s; "
    "keep.push(s.substring(1)); } },\n"
    "  },\n"
    "  timeout: 2000,\n"
    "};\n";

static void
expect_type(struct result *r, enum proto_errtype type)
{
    assert_true(r->done);
    if (r->ok)
        fprintf(stderr, "unexpected success: %s\n", r->text);
    assert_false(r->ok);
    if (r->err.type != type)
        fprintf(stderr, "error %d: %s\n", r->err.type, r->err.message);
    assert_int_equal(r->err.type, type);
}

static void
test_sync_deadline(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    msgpack_object nil;
    memset(&nil, 0, sizeof nil);
    int64_t t0 = tu_now_ms();
    call_obj(f, "spin", &nil, 500, &r);
    /* Ended by the call's own deadline, never early; how soon after it is
     * bench/bench_deadlines.py's to measure. */
    assert_true(tu_now_ms() - t0 >= 450);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    assert_non_null(strstr(r.err.message, "within 500 ms"));
    result_free(&r);
    /* state intact: spin counted once */
    call(f, "count", &r);
    expect_ok(&r, "2");
    result_free(&r);
    call_obj(f, "spin", &nil, 100, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call(f, "count", &r);
    expect_ok(&r, "4");
    result_free(&r);
    /* a microtask queued before the loop gets a deadline of its own (the
     * next entry's), never none */
    call_obj(f, "spinTwice", &nil, 200, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call_obj(f, "count", &nil, 300, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call(f, "count", &r);
    expect_ok(&r, "6");
    result_free(&r);
}

static void
test_async_deadline(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    msgpack_object nil;
    memset(&nil, 0, sizeof nil);
    call_obj(f, "never", &nil, 200, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call_obj(f, "neverCb", &nil, 200, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call_obj(f, "getterLoops", &nil, 300, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    call_obj(f, "spinInMicrotask", &nil, 300, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    /* a late cb after the deadline is ignored */
    call_obj(f, "lateCb", &nil, 100, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
    /* the default deadline comes from the config's timeout */
    struct js_config c;
    js_engine_config(f->e, &c);
    assert_int_equal(c.timeout_ms, 2000);
}

static void
test_timer_spin(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    assert_int_equal(load_opts(f, "c.js", 0, 300), 0);
    struct result r;
    call(f, "spinLater", &r);
    expect_ok(&r, "\"armed\"");
    result_free(&r);
    /* the timer's loop is terminated at the engine's default deadline */
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

static void
test_context_deadline(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    struct result r;
    expect_eval(f, ctx, "var kept = 'yes'; 1", "1");
    eval_t(f, ctx, "while (true) {}", "loop.js", 300, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    expect_eval(f, ctx, "kept", "\"yes\"");
}

static void
bomb(void **state, const char *fn)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    assert_int_equal(load_opts(f, "c.js", 64, 60000), 0);
    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_true(st.heap_limit <= 96u * 1024 * 1024);
    struct result r;
    call(f, fn, &r);
    expect_type(&r, PROTO_ERR_MEMORY);
    assert_true(js_engine_doomed(f->e));
    result_free(&r);
    /* further runs are refused, not run */
    call(f, "count", &r);
    expect_type(&r, PROTO_ERR_HOST_UNAVAILABLE);
    result_free(&r);
}

static void
test_array_bomb(void **state)
{
    bomb(state, "arrayBomb");
}
static void
test_string_bomb(void **state)
{
    bomb(state, "stringBomb");
}

/* One allocation past the limit, from inside a builtin. */
static void
test_big_array(void **state)
{
    bomb(state, "bigArray");
}

/* Array.prototype.fill is filled in slices on long arrays (see js_world.cc):
 * the same results as V8's own (as Node 20 prints them), and a deadline now
 * stops a fill of an array too long for fast elements. */
static void
test_array_fill(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(
        f, ctx,
        "const n = 300000; const a = new Array(n).fill(0);\n"
        "[a.fill(7, -5).slice(-6).join(), new Array(n).fill(1, 10, "
        "-10).reduce((s, x) => s + x, 0), Array.prototype.fill.length, "
        "Array.prototype.fill.name, [1, 2, 3].fill(9, 1).join(), "
        "Array.prototype.fill.call({length: 3}, 4)[2], new Array(n).fill(2, "
        "{valueOf() { return 1.5; }}, -Infinity).indexOf(2), new "
        "Array(n).fill(3, -Infinity, Infinity).length, Object.keys(new "
        "Array(n).fill(5, n - 2)).join()]",
        "[\"0,7,7,7,7,7\", 299980, 1, \"fill\", \"1,9,9\", 4, -1, 300000, "
        "\"299998,299999\"]");
    struct result r;
    eval_t(f, ctx, "new Array(50e6).fill(1.5); 1", "fill.js", 300, &r);
    expect_type(&r, PROTO_ERR_TIMEOUT);
    result_free(&r);
    expect_eval(f, ctx, "2", "2");
}

/* Far past the limit in one builtin: answered promptly (it once took ~37 s). */
static void
test_huge_array(void **state)
{
    bomb(state, "hugeArray");
}

static void
test_big_json(void **state)
{
    bomb(state, "bigJson");
}

/* ArrayBuffers live outside the heap: they get a budget of their own, and
 * past it allocation fails in JS (a RangeError), the worker intact. */
static void
test_buffer_bomb(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    assert_int_equal(load_opts(f, "c.js", 64, 60000), 0);
    struct result r;
    call(f, "bufferBomb", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_JS);
    assert_string_equal(r.err.name, "RangeError");
    result_free(&r);
    assert_false(js_engine_doomed(f->e));
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

static void
test_memory_from_config(void **state)
{
    struct fx *f = *state;
    put(f, "m.js", "module.exports = {functions: {}, memory: 128};\n");
    load(f, "m.js");
    struct js_config c;
    js_engine_config(f->e, &c);
    assert_int_equal(c.memory_mb, 128);
    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_true(st.heap_limit <= 160u * 1024 * 1024);
    assert_true(st.heap_limit >= 100u * 1024 * 1024);
}

static void
test_config_bomb(void **state)
{
    struct fx *f = *state;
    put(f, "b.js", "const a = [];\nfor (;;) a.push({n: a.length});\n");
    assert_int_equal(load_opts(f, "b.js", 64, 0), -EINVAL);
    assert_null(f->e);
    assert_int_equal(f->err.type, PROTO_ERR_CONFIG);
    assert_non_null(strstr(f->err.message, "heap limit"));
    put(f, "l.js", "for (;;) {}\n");
    assert_int_equal(load_opts(f, "l.js", 0, 300), -EINVAL);
    assert_int_equal(f->err.type, PROTO_ERR_CONFIG);
    assert_non_null(strstr(f->err.message, "did not finish within 300 ms"));
}

static void
test_free_with_pending(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(
        js_call(f->e, "never", 5, (struct proto_span){NULL, 0}, 0, done_cb, &r),
        0);
    assert_false(r.done);
    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_int_equal(st.in_flight, 1);
    js_engine_free(f->e);
    f->e = NULL;
    expect_type(&r, PROTO_ERR_HOST_UNAVAILABLE);
    result_free(&r);
}

int
main(void)
{
    js_engine_global_init("test_limits");
    /* one scenario at a time while working on it: TEST_FILTER=test_huge* */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_deadline, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_deadline, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_timer_spin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_deadline, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_array_bomb, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_string_bomb, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_big_array, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_bomb, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_array_fill, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_huge_array, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_big_json, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_memory_from_config, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_bomb, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
