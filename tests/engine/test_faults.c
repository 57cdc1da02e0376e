/* An allocation failing inside the engine (std::bad_alloc, made to happen by
 * js_engine_test_fault) while a call runs: every kind of call is still
 * answered exactly once, HostUnavailable, and the engine serves the next
 * call. done_cb fails the test on a second answer; teardown frees the engine
 * and runs the loop dry, so an answer given twice late is caught too. */
#include "engine_test.h"

static const char *kConfig =
    "module.exports = {functions: {\n"
    "  double(data) { return data * 2; },\n"
    "  later(data, cb) { setTimeout(() => cb(null, data + 1), 1); },\n"
    "}};\n";

/* Runs the loop until r is answered; fails as soon as nothing is left that
 * could answer it (an abandoned call holds no handle). */
static void
wait_answered(struct fx *f, struct result *r)
{
    while (!r->done)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && !r->done)
            fail_msg("the call was never answered");
}

/* js_call with an int as data, waited for with wait_answered. */
static void
call_answered(struct fx *f, const char *name, int n, struct result *r)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = (uint64_t)n;
    struct proto_span s = packed(&o);
    memset(r, 0, sizeof *r);
    assert_int_equal(js_call(f->e, name, strlen(name), s, 0, done_cb, r), 0);
    span_free(s);
    wait_answered(f, r);
}

/* One answer, a HostUnavailable saying what ran out of memory, and nothing
 * left in flight. */
static void
expect_unavailable(struct fx *f, struct result *r, const char *what)
{
    assert_int_equal(r->done, 1);
    assert_false(r->ok);
    assert_int_equal(r->err.type, PROTO_ERR_HOST_UNAVAILABLE);
    assert_non_null(r->err.message);
    assert_non_null(strstr(r->err.message, "out of memory"));
    assert_non_null(strstr(r->err.message, what));
    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_int_equal(st.in_flight, 0);
    result_free(r);
}

/* The engine still serves calls, and counted the failed one. */
static void
expect_recovered(struct fx *f, uint64_t failed_before)
{
    struct result r;
    call_int(f, "double", 21, &r);
    expect_ok(&r, "42");
    result_free(&r);
    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_int_equal(st.errors, failed_before + 1);
    assert_int_equal(st.in_flight, 0);
}

static void
test_call_data(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    js_engine_test_fault(f->e, 1);
    call_answered(f, "double", 21, &r);
    expect_unavailable(f, &r, "function 'double'");
    expect_recovered(f, 0);
}

static void
test_call_result(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    /* 1: the data, 2: the result */
    js_engine_test_fault(f->e, 2);
    call_answered(f, "double", 21, &r);
    expect_unavailable(f, &r, "function 'double'");
    expect_recovered(f, 0);
}

static void
test_call_result_from_timer(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    /* answered from a setTimeout callback, a macrotask of its own */
    js_engine_test_fault(f->e, 2);
    call_answered(f, "later", 1, &r);
    expect_unavailable(f, &r, "function 'later'");
    expect_recovered(f, 0);
}

static void
test_context_eval(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    struct result r;
    js_engine_test_fault(f->e, 1);
    memset(&r, 0, sizeof r);
    assert_int_equal(
        js_context_eval(f->e, ctx, "1 + 1", 5, "test.js", 7, 0, 0, done_cb, &r),
        0);
    wait_answered(f, &r);
    expect_unavailable(f, &r, "eval 'test.js'");
    expect_eval(f, ctx, "2 + 2", "4");
}

static void
test_context_call(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    msgpack_object args[2];
    memset(args, 0, sizeof args);
    args[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    args[0].via.u64 = 3;
    args[1].type = MSGPACK_OBJECT_ARRAY;
    args[1].via.array.size = 1;
    args[1].via.array.ptr = &args[0];
    struct proto_span args_s = packed(&args[1]);
    struct result r;
    js_engine_test_fault(f->e, 1);
    memset(&r, 0, sizeof r);
    assert_int_equal(
        js_context_call(f->e, ctx, "Math.abs", 8, args_s, 0, done_cb, &r), 0);
    wait_for(f, &r);
    expect_unavailable(f, &r, "call 'Math.abs'");
    memset(&r, 0, sizeof r);
    assert_int_equal(
        js_context_call(f->e, ctx, "Math.abs", 8, args_s, 0, done_cb, &r), 0);
    wait_for(f, &r);
    expect_ok(&r, "3");
    result_free(&r);
    span_free(args_s);
}

static void
test_context_load(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    put(f, "lib.js", "var loaded = 'yes';\n");
    uint32_t ctx = new_context(f);
    msgpack_object paths[2];
    memset(paths, 0, sizeof paths);
    paths[0].type = MSGPACK_OBJECT_STR;
    paths[0].via.str.ptr = "lib.js";
    paths[0].via.str.size = 6;
    paths[1].type = MSGPACK_OBJECT_ARRAY;
    paths[1].via.array.size = 1;
    paths[1].via.array.ptr = &paths[0];
    struct proto_span paths_s = packed(&paths[1]);
    struct result r;
    js_engine_test_fault(f->e, 1);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_load(f->e, ctx, paths_s, 0, done_cb, &r), 0);
    wait_for(f, &r);
    expect_unavailable(f, &r, "load");
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_load(f->e, ctx, paths_s, 0, done_cb, &r), 0);
    wait_for(f, &r);
    expect_ok(&r, "nil");
    result_free(&r);
    span_free(paths_s);
    expect_eval(f, ctx, "loaded", "\"yes\"");
}

int
main(void)
{
    js_engine_global_init("test_faults");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_data, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_call_result, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_call_result_from_timer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_eval, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_call, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_load, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
