/* The JavaScript world: timers and microtasks in Node's order, console lines
 * (captured by pointing stdout/stderr at files), process.env, uncaught errors
 * in timers and unhandled rejections logged while the worker lives on. */
#include <fcntl.h>

#include "engine_test.h"

static void
test_timer_order(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(
        f, ctx,
        "new Promise((resolve) => {\n"
        "  const log = [];\n"
        "  setTimeout(() => log.push('t10'), 10);\n"
        "  setTimeout((a, b) => log.push('t0:' + a + b), 0, 'x', 'y');\n"
        "  setImmediate(() => { log.push('imm'); queueMicrotask(() => "
        "log.push('imm-micro')); });\n"
        "  queueMicrotask(() => log.push('micro'));\n"
        "  Promise.resolve().then(() => log.push('then'));\n"
        "  process.nextTick(() => log.push('tick'));\n"
        "  const gone = setTimeout(() => log.push('cleared'), 1);\n"
        "  clearTimeout(gone);\n"
        "  const goneImm = setImmediate(() => log.push('cleared imm'));\n"
        "  clearImmediate(goneImm);\n"
        "  log.push('sync');\n"
        "  setTimeout(() => setImmediate(() => resolve([log.filter((x) => "
        "!x.startsWith('imm')), log.indexOf('imm-micro') - log.indexOf('imm'), "
        "log.includes('imm')])), 30);\n"
        "})",
        "[[\"sync\", \"micro\", \"then\", \"tick\", \"t0:xy\", \"t10\"], 1, "
        "true]");
    expect_eval(f, ctx,
                "new Promise((resolve) => {\n"
                "  let n = 0;\n"
                "  const id = setInterval(function (step) { n += step; if (n "
                ">= 3) { clearInterval(id); setTimeout(() => resolve([n, "
                "typeof id, this === globalThis]), 20); } }, 2, 1);\n"
                "})",
                "[3, \"number\", true]");
    struct result r;
    eval(f, ctx, "setTimeout('not a function')", &r);
    assert_false(r.ok);
    assert_string_equal(r.err.name, "TypeError");
    result_free(&r);
}

static void
test_timers_do_not_outlive_engine(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(f, ctx,
                "setInterval(() => {}, 1000); setTimeout(() => {}, 100000); "
                "setImmediate(() => {}); 1",
                "1");
    uint32_t other = new_context(f);
    expect_eval(f, other, "setInterval(() => {}, 5); 2", "2");
    assert_int_equal(js_context_destroy(f->e, other), 0);
    /* the teardown frees the engine and checks uv_loop_close() == 0 */
}

struct capture {
    int saved;
    char path[1024];
};

static void
capture_start(struct fx *f, struct capture *c, int fd, const char *name)
{
    fflush(NULL);
    snprintf(c->path, sizeof c->path, "%s/%s", f->dir, name);
    int out = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(out, fd) >= 0);
    close(out);
}

static char *
capture_end(struct capture *c, int fd)
{
    fflush(NULL);
    assert_true(dup2(c->saved, fd) >= 0);
    close(c->saved);
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    static char buf[3][16384];
    static int which;
    char *b = buf[which++ % 3];
    size_t n = fread(b, 1, sizeof buf[0] - 1, fp);
    b[n] = 0;
    fclose(fp);
    return b;
}

/* The line after the "<timestamp> [pid] level: " prefix, checked too. */
static const char *
after_prefix(const char *line, const char *level)
{
    /* 2026-11-21T23:30:46.123Z */
    assert_true(strlen(line) > 30);
    assert_true(line[4] == '-' && line[10] == 'T' && line[23] == 'Z');
    char want[64];
    snprintf(want, sizeof want, " [%d] %s ", (int)getpid(), level);
    const char *p = strstr(line, want);
    assert_non_null(p);
    assert_true(p == line + 24);
    return p + strlen(want);
}

static void
test_console(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    struct capture out, err;
    capture_start(f, &out, 1, "out.txt");
    capture_start(f, &err, 2, "err.txt");
    struct result r;
    eval(f, ctx,
         "console.log('plain', 1, true, null, undefined);\n"
         "console.info({a: 1, b: 'two', c: [1, 2, {d: 3}], 'e-f': {g: {h: {i: "
         "1}}}});\n"
         "console.log('%s is %d years and %i, %f, %j %o %%', 'Bob', 42.5, "
         "42.5, '1.5', {j: 1}, [1]);\n"
         "console.debug(new Map([[1, 'a']]), new Set([1]), [undefined, null], "
         "10n, Symbol('s'));\n"
         "const o = {name: 'loop'}; o.self = o; console.log(o);\n"
         "console.warn('careful', function named() {});\n"
         "console.error(new Error('bad'));\n"
         "console.log('multi\\nline');\n"
         "0",
         &r);
    char *o = capture_end(&out, 1);
    char *e = capture_end(&err, 2);
    expect_ok(&r, "0");
    result_free(&r);
    char *lines[16];
    int n = 0;
    for (char *save = NULL, *l = strtok_r(o, "\n", &save); l && n < 16;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_true(n >= 6);
    assert_string_equal(after_prefix(lines[0], "LOG"),
                        "plain 1 true null undefined");
    assert_string_equal(after_prefix(lines[1], "INFO"),
                        "{ a: 1, b: 'two', c: [ 1, 2, { d: 3 } ], 'e-f': { g: "
                        "{ h: [Object] } } }");
    assert_string_equal(after_prefix(lines[2], "LOG"),
                        "Bob is 42.5 years and 42, 1.5, {\"j\":1} [ 1 ] %");
    assert_string_equal(
        after_prefix(lines[3], "DEBUG"),
        "Map(1) { 1 => 'a' } Set(1) { 1 } [ undefined, null ] 10n Symbol(s)");
    assert_string_equal(after_prefix(lines[4], "LOG"),
                        "{ name: 'loop', self: [Circular] }");
    assert_string_equal(after_prefix(lines[5], "LOG"), "multi");
    assert_string_equal(lines[6], "  line");
    assert_non_null(strstr(e, "WARN careful [Function: named]\n"));
    assert_non_null(strstr(e, "ERROR Error: bad\n      at test.js:7:"));
}

static void
test_process_env(void **state)
{
    struct fx *f = *state;
    setenv("JSHOST_TEST_VAR", "hello env", 1);
    unsetenv("NODE_ENV");
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(f, ctx,
                "[process.env.JSHOST_TEST_VAR, process.env.NODE_ENV, "
                "process.platform, Object.isFrozen(process.env)]",
                "[\"hello env\", \"production\", \"linux\", true]");
    expect_eval(f, ctx, "process.env.X = 1; process.env.X", "nil");
    expect_eval(f, ctx,
                "typeof globalThis === 'object' && global === globalThis && "
                "typeof process.nextTick",
                "\"function\"");
}

static void
test_uncaught_in_timer(void **state)
{
    struct fx *f = *state;
    put(f, "c.js",
        "let n = 0;\n"
        "module.exports = {functions: {\n"
        "  arm() { setTimeout(() => { throw new Error('timer boom'); }, 1); "
        "Promise.reject(new Error('nobody cares')); queueMicrotask(() => { "
        "throw new Error('micro boom'); }); return 'ok'; },\n"
        "  count() { return ++n; },\n"
        "}};\n");
    load(f, "c.js");
    struct capture err;
    capture_start(f, &err, 2, "err.txt");
    struct result r;
    call(f, "arm", &r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    char *e = capture_end(&err, 2);
    expect_ok(&r, "\"ok\"");
    result_free(&r);
    assert_non_null(strstr(e, "Uncaught Error: timer boom\n      at "));
    assert_non_null(strstr(e, "c.js:3:"));
    assert_non_null(
        strstr(e, "Unhandled promise rejection: Error: nobody cares"));
    assert_non_null(strstr(e, "Uncaught Error: micro boom"));
    call(f, "count", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

static void
test_builtins_present(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(f, ctx,
                "typeof setTimeout + typeof setInterval + typeof setImmediate "
                "+ typeof clearTimeout + typeof clearInterval + typeof "
                "clearImmediate + typeof queueMicrotask",
                "\"functionfunctionfunctionfunctionfunctionfunctionfunction\"");
    expect_eval(f, ctx, "typeof performance.now()", "\"number\"");
    /* V8's own foreground tasks run (async wasm compilation finishes) */
    expect_eval(f, ctx,
                "WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, "
                "0, 0])).then((m) => m instanceof WebAssembly.Module)",
                "true");
    expect_eval(
        f, ctx,
        "[new TextDecoder().decode(new TextEncoder().encode('h\u00e9')), "
        "atob(btoa('ab')), structuredClone({a: [1]}).a[0]]",
        "[\"h\u00e9\", \"ab\", 1]");
}

int
main(void)
{
    js_engine_global_init("test_world");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timer_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_timers_do_not_outlive_engine,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_console, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_process_env, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_uncaught_in_timer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_builtins_present, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
