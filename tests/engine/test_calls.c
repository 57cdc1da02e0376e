/* The engine through engine.h: config loading, calls in every style, errors,
 * contexts. */
#include "engine_test.h"

static const char *kConfig =
    "let count = 0;\n"
    "module.exports = {\n"
    "  functions: {\n"
    "    hello(data, cb) { cb(null, 'Hello, ' + (data && data.name || 'World') "
    "+ '!'); },\n"
    "    double(data) { return data * 2; },\n"
    "    async later(data) { await null; return data + 1; },\n"
    "    count() { return ++count; },\n"
    "    whoami() { return [this.name, this.host.config.extra, typeof "
    "this.host.config.functions]; },\n"
    "    twice(data, cb) { cb(null, 1); cb(null, 2); },\n"
    "    returnThenCb(data, cb) { setTimeout(() => cb(null, 'cb'), 1); return "
    "'ignored'; },\n"
    "    promiseThenCb(data, cb) { setTimeout(() => cb(null, 'late'), 5); "
    "return Promise.resolve('promise'); },\n"
    "    asyncCb: async function (data, cb) { setTimeout(() => cb(null, 'from "
    "cb'), 1); },\n"
    "    throws() {\n"
    "      const e = new TypeError('bad thing');\n"
    "      throw e;\n"
    "    },\n"
    "    rejects: async function () { throw new RangeError('too far'); },\n"
    "    cbErr(data, cb) { cb(new SyntaxError('cb says no')); },\n"
    "    throwString() { throw 'just a string'; },\n"
    "    throwObject() { throw {code: 7}; },\n"
    "    rejectNumber() { return Promise.reject(42); },\n"
    "    custom() { class MyError extends Error { constructor(m) { super(m); "
    "this.name = 'MyError'; } } throw new MyError('mine'); },\n"
    "    undef() {},\n"
    "    bad() { return {f: 1n << 70n, g: Symbol('x')}; },\n"
    "    cyclic() { const a = {}; a.a = a; return a; },\n"
    "    chainThrows(data, cb) { setTimeout(() => Promise.resolve().then(() "
    "=> { throw new Error('chain boom'); }), 1); },\n"
    "    microThrows(data, cb) { queueMicrotask(() => { throw new "
    "Error('micro boom'); }); },\n"
    "    timerThrows(data, cb) { setTimeout(() => setImmediate(() => { throw "
    "new Error('async boom'); }), 1); },\n"
    "    marks() { const fresh = this.mark === undefined; this.mark = 1; "
    "this.host.marks = (this.host.marks || 0) + 1; this.name = 'x'; "
    "return [fresh, this.host.marks]; },\n"
    "  },\n"
    "  timeout: 3000,\n"
    "  workers: 2,\n"
    "  linger: 100,\n"
    "  extra: 'X',\n"
    "  nested: {a: [1, 2]},\n"
    "};\n";

static void
test_cb_return_promise(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    call(f, "hello", &r);
    expect_ok(&r, "\"Hello, World!\"");
    result_free(&r);
    call_int(f, "double", 21, &r);
    expect_ok(&r, "42");
    result_free(&r);
    call_int(f, "later", 1, &r);
    expect_ok(&r, "2");
    result_free(&r);
    call(f, "undef", &r);
    expect_ok(&r, "nil");
    result_free(&r);
    call(f, "asyncCb", &r);
    expect_ok(&r, "\"from cb\"");
    result_free(&r);
}

static void
test_config_settings(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct js_config c;
    js_engine_config(f->e, &c);
    assert_int_equal(c.timeout_ms, 3000);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.linger_ms, 100);
    assert_int_equal(c.memory_mb, 512);
    const char *const *names;
    size_t n = js_engine_functions(f->e, &names);
    assert_true(n >= 10);
    assert_string_equal(names[0], "hello");
    assert_string_equal(names[1], "double");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(js_engine_pack_extras(f->e, &pk), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    char text[256];
    msgpack_object_print_buffer(text, sizeof text, u.data);
    assert_string_equal(text,
                        "{\"extra\"=>\"X\", \"nested\"=>{\"a\"=>[1, 2]}}");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* Calls fn n times: the i-th (from 1) must answer fmt with i in it. */
static void
expect_counting(struct fx *f, const char *fn, const char *fmt, int n)
{
    struct result r;
    char want[32];

    for (int i = 1; i <= n; i++) {
        call(f, fn, &r);
        snprintf(want, sizeof want, fmt, i);
        expect_ok(&r, want);
        result_free(&r);
    }
}

static void
test_state_and_this(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    expect_counting(f, "count", "%d", 3);
    call(f, "whoami", &r);
    expect_ok(&r, "[\"whoami\", \"X\", \"object\"]");
    result_free(&r);
    /* Each call's `this` is its own; `this.host` is the worker's, shared. */
    expect_counting(f, "marks", "[true, %d]", 2);
    call(f, "whoami", &r);
    expect_ok(&r, "[\"whoami\", \"X\", \"object\"]");
    result_free(&r);
}

static void
test_first_settlement_wins(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    call(f, "twice", &r);
    expect_ok(&r, "1");
    result_free(&r);
    /* fn.length == 2: a plain return does not count, the cb does */
    call(f, "returnThenCb", &r);
    expect_ok(&r, "\"cb\"");
    result_free(&r);
    call(f, "promiseThenCb", &r);
    expect_ok(&r, "\"promise\"");
    result_free(&r);
    /* the late cb fires on the loop and is ignored (logged) */
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

static void
expect_js_error(struct result *r, const char *name, const char *message)
{
    assert_true(r->done);
    assert_false(r->ok);
    assert_int_equal(r->err.type, PROTO_ERR_JS);
    assert_non_null(r->err.name);
    assert_string_equal(r->err.name, name);
    assert_string_equal(r->err.message, message);
    assert_non_null(r->err.stack);
}

static void
test_errors(void **state)
{
    struct fx *f = *state;
    put(f, "c.js", kConfig);
    load(f, "c.js");
    struct result r;
    call(f, "throws", &r);
    expect_js_error(&r, "TypeError", "bad thing");
    assert_non_null(strstr(r.err.stack, "TypeError: bad thing"));
    /* the stack points into the config at the line of `new TypeError` */
    char where[2048];
    snprintf(where, sizeof where, "%s:14:", path_of(f, "c.js"));
    assert_non_null(strstr(r.err.stack, where));
    result_free(&r);

    call(f, "rejects", &r);
    expect_js_error(&r, "RangeError", "too far");
    result_free(&r);
    call(f, "cbErr", &r);
    expect_js_error(&r, "SyntaxError", "cb says no");
    assert_non_null(strstr(r.err.stack, "c.js:18"));
    result_free(&r);
    call(f, "throwString", &r);
    expect_js_error(&r, "Error", "just a string");
    result_free(&r);
    call(f, "throwObject", &r);
    expect_js_error(&r, "Error", "{\"code\":7}");
    result_free(&r);
    call(f, "rejectNumber", &r);
    expect_js_error(&r, "Error", "42");
    result_free(&r);
    call(f, "custom", &r);
    expect_js_error(&r, "MyError", "mine");
    result_free(&r);

    call(f, "nope", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_NOT_FOUND);
    assert_non_null(strstr(r.err.message, "no function 'nope' in "));
    assert_non_null(strstr(r.err.message, "c.js"));
    result_free(&r);

    /* data that cannot cross: an unknown ext type */
    msgpack_object ext;
    memset(&ext, 0, sizeof ext);
    ext.type = MSGPACK_OBJECT_EXT;
    ext.via.ext.type = 42;
    ext.via.ext.ptr = "x";
    ext.via.ext.size = 1;
    call_obj(f, "double", &ext, 0, &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_INVALID_ARGUMENT);
    result_free(&r);

    call(f, "cyclic", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_INVALID_ARGUMENT);
    result_free(&r);

    /* an uncaught error in a timer the call made fails that call */
    call(f, "timerThrows", &r);
    expect_js_error(&r, "Error", "async boom");
    result_free(&r);

    /* so does an unhandled rejection in a promise chain it started */
    call(f, "chainThrows", &r);
    expect_js_error(&r, "Error", "chain boom");
    result_free(&r);

    call(f, "microThrows", &r);
    expect_js_error(&r, "Error", "micro boom");
    result_free(&r);

    /* the worker lives on */
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);

    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_int_equal(st.calls, 14);
    assert_int_equal(st.errors, 13);
    assert_int_equal(st.in_flight, 0);
    assert_true(st.heap_used > 0);
    assert_true(st.heap_limit >= st.heap_used);
    assert_true(st.uptime_s >= 0);
}

static void
expect_config_error(struct fx *f, const char *file, int line,
                    const char *needle)
{
    assert_null(f->e);
    assert_int_equal(f->err.type, PROTO_ERR_CONFIG);
    assert_non_null(f->err.message);
    if (strstr(f->err.message, needle) == NULL)
        fprintf(stderr, "message: %s\n", f->err.message);
    assert_non_null(strstr(f->err.message, needle));
    assert_non_null(f->err.file);
    if (file != NULL) {
        char want[2048];
        snprintf(want, sizeof want, "%s", path_of(f, file));
        assert_string_equal(f->err.file, want);
    }
    if (line > 0) {
        assert_int_equal(f->err.line, line);
        assert_true(f->err.column > 0);
    }
}

static void
test_config_errors(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load_opts(f, "missing.js", 0, 0), -EINVAL);
    expect_config_error(f, NULL, 0, "missing.js");

    put(f, "syntax.js",
        "module.exports = {\n  functions: {\n    a() { return 1 +; }\n  "
        "}\n};\n");
    assert_int_equal(load_opts(f, "syntax.js", 0, 0), -EINVAL);
    expect_config_error(f, "syntax.js", 3, "SyntaxError");
    assert_int_equal(f->err.column, 21);

    put(f, "throws.js", "const x = 1;\nthrow new Error('at load');\n");
    assert_int_equal(load_opts(f, "throws.js", 0, 0), -EINVAL);
    expect_config_error(f, "throws.js", 2, "Error: at load");
    assert_non_null(f->err.stack);
    assert_non_null(strstr(f->err.stack, "throws.js:2"));

    put(f, "lib/bad.js", "\n\nfoo(;\n");
    put(f, "req.js",
        "require('./lib/bad');\nmodule.exports = {functions: {}};\n");
    assert_int_equal(load_opts(f, "req.js", 0, 0), -EINVAL);
    expect_config_error(f, "lib/bad.js", 3, "SyntaxError");

    put(f, "num.js", "module.exports = 42;\n");
    assert_int_equal(load_opts(f, "num.js", 0, 0), -EINVAL);
    expect_config_error(f, "num.js", 0, "must export an object");

    put(f, "nofn.js", "module.exports = {workers: 1};\n");
    assert_int_equal(load_opts(f, "nofn.js", 0, 0), -EINVAL);
    expect_config_error(f, "nofn.js", 0, "no `functions`");

    put(f, "fnarr.js", "module.exports = {functions: 'x'};\n");
    assert_int_equal(load_opts(f, "fnarr.js", 0, 0), -EINVAL);
    expect_config_error(f, "fnarr.js", 0, "`functions` must be an object");

    put(f, "notfn.js", "module.exports = {functions: {ok() {}, broken: 3}};\n");
    assert_int_equal(load_opts(f, "notfn.js", 0, 0), -EINVAL);
    expect_config_error(f, "notfn.js", 0, "functions.broken is not a function");

    put(f, "badset.js", "module.exports = {functions: {}, timeout: -5};\n");
    assert_int_equal(load_opts(f, "badset.js", 0, 0), -EINVAL);
    expect_config_error(f, "badset.js", 0, "`timeout`");

    put(f, "badset2.js", "module.exports = {functions: {}, workers: 1.5};\n");
    assert_int_equal(load_opts(f, "badset2.js", 0, 0), -EINVAL);
    expect_config_error(f, "badset2.js", 0, "`workers`");

    put(f, "badset3.js", "module.exports = {functions: {}, memory: '5'};\n");
    assert_int_equal(load_opts(f, "badset3.js", 0, 0), -EINVAL);
    expect_config_error(f, "badset3.js", 0, "`memory`");
}

static void
test_contexts(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t a = new_context(f), b = new_context(f);
    assert_true(a != b);
    expect_eval(f, a, "1 + 1", "2");
    expect_eval(f, a, "var x = 'in a'; x", "\"in a\"");
    expect_eval(f, b, "typeof x", "\"undefined\"");
    expect_eval(f, a, "Promise.resolve(5).then(v => v * 2)", "10");
    expect_eval(f, a, "new Promise(r => setTimeout(() => r('timer'), 5))",
                "\"timer\"");
    expect_eval(f, a, "new Intl.NumberFormat('de').format(1234.5)",
                "\"1.234,5\"");
    expect_eval(f, a, "typeof require + typeof console.log + typeof setTimeout",
                "\"functionfunctionfunction\"");

    struct result r;
    eval_t(f, a, "\n\nthrow new Error('boom')", "page.js", 0, &r);
    expect_js_error(&r, "Error", "boom");
    assert_non_null(strstr(r.err.stack, "page.js:3"));
    result_free(&r);
    eval_t(f, a, "1 +", "syn.js", 0, &r);
    assert_false(r.ok);
    assert_string_equal(r.err.name, "SyntaxError");
    assert_non_null(strstr(r.err.stack, "syn.js:1"));
    result_free(&r);
    eval_t(f, a, "Promise.reject(new Error('async no'))", "rej.js", 0, &r);
    expect_js_error(&r, "Error", "async no");
    assert_non_null(strstr(r.err.stack, "rej.js:1"));
    result_free(&r);

    /* call: plain names get the global as this; members their object */
    expect_eval(f, a,
                "var obj = {k: 3, get(n) { return this.k + n; }}; function "
                "glob() { return this === globalThis; }; 0",
                "0");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 4);
    msgpack_pack_int(&pk, 9);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "Math.max", 8,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    expect_ok(&r, "9");
    result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "obj.get", 7,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    expect_ok(&r, "7");
    result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "glob", 4,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    expect_ok(&r, "true");
    result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "obj?.get", 8,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    expect_ok(&r, "7"); /* this = obj through ?. too */
    result_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "nothing.here", 12,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    assert_false(r.ok);
    assert_string_equal(r.err.name, "ReferenceError");
    result_free(&r);
    /* args that are not an array */
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_call(f->e, a, "glob", 4,
                                     (struct proto_span){"\xc3", 1}, 0, done_cb,
                                     &r),
                     0);
    wait_for(f, &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_INVALID_ARGUMENT);
    result_free(&r);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);

    /* load: files in order, relative to the context's cwd */
    put(f, "lib1.js", "var lib = {n: 1};\n");
    put(f, "lib2.js",
        "lib.n += 1; function libfail() { throw new Error('in lib2'); }\n");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "lib1.js", 7);
    msgpack_pack_str_with_body(&pk, "lib2.js", 7);
    msgpack_unpacked_init(&u);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_load(f->e, a,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    expect_ok(&r, "nil");
    result_free(&r);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    expect_eval(f, a, "lib.n", "2");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "nope.js", 7);
    msgpack_unpacked_init(&u);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    memset(&r, 0, sizeof r);
    assert_int_equal(js_context_load(f->e, a,
                                     (struct proto_span){sb.data, sb.size}, 0,
                                     done_cb, &r),
                     0);
    wait_for(f, &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_NOT_FOUND);
    assert_non_null(strstr(r.err.message, "nope.js"));
    result_free(&r);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    eval(f, a, "libfail()", &r);
    expect_js_error(&r, "Error", "in lib2");
    assert_non_null(strstr(r.err.stack, "lib2.js:1"));
    result_free(&r);

    struct js_stats st;
    js_engine_stats(f->e, &st);
    assert_int_equal(st.contexts, 2);
    assert_int_equal(js_context_destroy(f->e, a), 0);
    assert_int_equal(js_context_destroy(f->e, a), -ENOENT);
    eval(f, a, "1", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_NOT_FOUND);
    result_free(&r);
    expect_eval(f, b, "'still here'", "\"still here\"");
}

int
main(void)
{
    js_engine_global_init("test_calls");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cb_return_promise, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_settings, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_state_and_this, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_first_settlement_wins, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_contexts, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
