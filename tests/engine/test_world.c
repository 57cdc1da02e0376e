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
        "[[\"sync\", \"tick\", \"micro\", \"then\", \"t0:xy\", \"t10\"], 1, "
        "true]");
    expect_eval(f, ctx,
                "new Promise((resolve) => {\n"
                "  let n = 0;\n"
                "  const id = setInterval(function (step) { n += step; if (n "
                ">= 3) { clearInterval(id); setTimeout(() => resolve([n, "
                "typeof id, this === globalThis]), 20); } }, 2, 1);\n"
                "})",
                "[3, \"object\", true]");
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
    setenv("JSHOST_TEST_SECRET", "not for JS", 1);
    unsetenv("NODE_ENV");
    /* no config (a private VM): NODE_ENV alone */
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(f, ctx,
                "[process.env.JSHOST_TEST_VAR, process.env.NODE_ENV, "
                "process.platform, Object.isFrozen(process.env), "
                "Object.keys(process.env)]",
                "[nil, \"production\", \"linux\", true, [\"NODE_ENV\"]]");
    expect_eval(f, ctx, "process.env.X = 1; process.env.X", "nil");
    expect_eval(f, ctx,
                "typeof globalThis === 'object' && global === globalThis && "
                "typeof process.nextTick",
                "\"function\"");
    js_engine_free(f->e);
    f->e = NULL;

    /* a config: NODE_ENV and the names it lists, from its loading on */
    put(f, "c.js",
        "const seen = process.env.JSHOST_TEST_VAR;\n"
        "module.exports = {env: ['JSHOST_TEST_VAR', 'JSHOST_TEST_UNSET'],\n"
        "  functions: {env() { return [seen, Object.keys(process.env).sort(), "
        "process.env.JSHOST_TEST_SECRET]; }}};\n");
    load(f, "c.js");
    struct result r;
    call(f, "env", &r);
    expect_ok(&r, "[\"hello env\", [\"JSHOST_TEST_VAR\", \"NODE_ENV\"], nil]");
    result_free(&r);
    js_engine_free(f->e);
    f->e = NULL;

    /* the environment given (the client's), not the process's */
    const char *client_env[] = {"JSHOST_TEST_VAR=from the client",
                                "NODE_ENV=development",
                                "JSHOST_TEST_SECRET=client secret", NULL};
    struct js_engine_options o;
    memset(&o, 0, sizeof o);
    o.config_path = path_of(f, "c.js");
    o.cwd = f->dir;
    o.env = client_env;
    assert_int_equal(js_engine_new(&f->loop, &o, &f->e, &f->err), 0);
    call(f, "env", &r);
    expect_ok(&r, "[\"from the client\", [\"JSHOST_TEST_VAR\", \"NODE_ENV\"], "
                  "nil]");
    result_free(&r);

    /* `env` must be a literal the loader can read before the config runs */
    js_engine_free(f->e);
    f->e = NULL;
    put(f, "computed.js",
        "const names = ['JSHOST_TEST_VAR'];\n"
        "module.exports = {env: names, functions: {}};\n");
    assert_int_equal(load_opts(f, "computed.js", 0, 0), -EINVAL);
    assert_int_equal(f->err.type, PROTO_ERR_CONFIG);
    assert_non_null(strstr(f->err.message, "array of string literals"));
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
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
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

/* Timers give Node's Timeout and Immediate objects; the expected values are
 * what Node 20 prints for the same script. */
static void
test_timeout_objects(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(
        f, ctx,
        "new Promise((resolve) => {\n"
        "  const out = [], fired = [];\n"
        "  const t = setTimeout(() => {}, 1000);\n"
        "  out.push(typeof t, typeof +t, +t === t[Symbol.toPrimitive](), +t > "
        "0, `${t}` === String(+t),\n"
        "           t.hasRef(), t.unref() === t, t.hasRef(), "
        "t.ref().hasRef());\n"
        "  clearTimeout(t);\n"
        "  const a = setTimeout(() => fired.push('a'), 1); clearTimeout(+a);\n"
        "  const b = setTimeout(() => fired.push('b'), 1); "
        "clearTimeout(String(+b));\n"
        "  const c = setInterval(() => fired.push('c'), 1); clearInterval(c);\n"
        "  const d = setTimeout(() => fired.push('d'), 1); clearInterval(d);\n"
        "  const e = setTimeout(() => fired.push('e'), 1); e.close();\n"
        "  const im = setImmediate(() => fired.push('im'));\n"
        "  out.push(typeof im, im.hasRef(), im.unref().hasRef(), "
        "im.ref().hasRef(), typeof im.refresh);\n"
        "  clearImmediate(im);\n"
        "  setTimeout(() => fired.push('unref'), 2).unref();\n"
        "  setImmediate(() => fired.push('unref-imm')).unref();\n"
        "  let n = 0;\n"
        "  const r = setTimeout(() => { n++; if (n === 1) r.refresh(); }, 2);\n"
        "  const cl = setTimeout(() => fired.push('cl'), 1); clearTimeout(cl); "
        "cl.refresh();\n"
        "  setTimeout(() => resolve(JSON.stringify([out, fired.sort(), n])), "
        "40);\n"
        "});\n",
        "\"[[\"object\",\"number\",true,true,true,true,true,false,true,"
        "\"object\",true,false,true,\"undefined\"],[\"unref\",\"unref-imm\"],"
        "2]\"");
    /* clearImmediate reaches an immediate of the batch being run (Node) */
    expect_eval(
        f, ctx,
        "new Promise((r) => { const log = []; let b; setImmediate(() "
        "=> { log.push('a'); clearImmediate(b); }); b = setImmediate(() "
        "=> log.push('b')); setImmediate(() => r(log)); })",
        "[\"a\"]");
    /* a run waiting on an unref'd timer still gets it: the worker lives */
    expect_eval(f, ctx,
                "new Promise((r) => setTimeout(() => r('late'), 5).unref())",
                "\"late\"");
}

/* unref'd timers and immediates do not keep the loop alive; ref'd ones do. */
static void
test_unref_loop(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_alive(&f->loop), 0);
    expect_eval(f, ctx,
                "globalThis.t = setTimeout(() => {}, 100000).unref(); "
                "globalThis.i = setInterval(() => {}, 100000); i.unref(); "
                "globalThis.im = setImmediate(() => {}).unref(); 1",
                "1");
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_alive(&f->loop), 0);
    expect_eval(f, ctx, "t.ref().hasRef()", "true");
    assert_int_not_equal(uv_loop_alive(&f->loop), 0);
    expect_eval(f, ctx, "t.unref().hasRef()", "false");
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_alive(&f->loop), 0);
    expect_eval(f, ctx, "globalThis.j = setImmediate(() => {}); 2", "2");
    assert_int_not_equal(uv_loop_alive(&f->loop), 0);
    expect_eval(f, ctx, "clearImmediate(j); 3", "3");
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_alive(&f->loop), 0);
}

/* process.nextTick runs before the promise microtasks after each macrotask,
 * in the order Node 20 prints for the same script. */
static void
test_next_tick_order(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(
        f, ctx,
        "new Promise((resolve) => {\n"
        "  const log = [];\n"
        "  setTimeout(() => {\n"
        "    setImmediate(() => {\n"
        "      log.push('imm1');\n"
        "      process.nextTick(() => log.push('imm1-tick'));\n"
        "      Promise.resolve().then(() => log.push('imm1-then'));\n"
        "    });\n"
        "    setImmediate(() => {\n"
        "      log.push('imm2');\n"
        "      setTimeout(() => {\n"
        "        log.push('t1');\n"
        "        process.nextTick(() => log.push('t1-tick'));\n"
        "        Promise.resolve().then(() => log.push('t1-then'));\n"
        "      }, 0);\n"
        "      setTimeout(() => log.push('t2'), 0);\n"
        "    });\n"
        "    Promise.resolve().then(() => {\n"
        "      log.push('then1');\n"
        "      process.nextTick(() => log.push('then1-tick'));\n"
        "      Promise.resolve().then(() => log.push('then1-then'));\n"
        "    });\n"
        "    queueMicrotask(() => log.push('micro'));\n"
        "    process.nextTick((a, b) => {\n"
        "      log.push('tick1:' + a + b);\n"
        "      process.nextTick(() => log.push('tick1-tick'));\n"
        "      Promise.resolve().then(() => log.push('tick1-then'));\n"
        "    }, 'x', 'y');\n"
        "    process.nextTick(() => log.push('tick2'));\n"
        "    log.push('sync');\n"
        "    setTimeout(() => resolve(log.join(' ')), 20);\n"
        "  }, 1);\n"
        "});\n",
        "\"sync tick1:xy tick2 tick1-tick then1 micro tick1-then then1-then "
        "then1-tick imm1 imm1-tick imm1-then imm2 t1 t1-tick t1-then t2\"");
    /* and right after a run's synchronous part */
    expect_eval(f, ctx,
                "const l = []; Promise.resolve().then(() => l.push('then')); "
                "process.nextTick(() => l.push('tick')); "
                "new Promise((r) => setTimeout(() => r(l), 1))",
                "[\"tick\", \"then\"]");
}

/* A nextTick that re-queues itself forever ends at the deadline, and the
 * rest of its queue is dropped: the context serves the next eval. A throwing
 * tick fails the run it belongs to; the ticks after it still run. */
static void
test_next_tick_limits(void **state)
{
    struct fx *f = *state;
    put(f, "c.js",
        "module.exports = {functions: {\n"
        "  tickThrows(data, cb) { process.nextTick(() => { throw new "
        "Error('tick boom'); }); process.nextTick(() => { globalThis.after = "
        "1; }); },\n"
        "  after() { return globalThis.after; },\n"
        "}};\n");
    load(f, "c.js");
    uint32_t ctx = new_context(f);
    struct result r;
    eval_t(f, ctx, "(function f() { process.nextTick(f); })(); 1", "spin.js",
           300, &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_TIMEOUT);
    result_free(&r);
    expect_eval(f, ctx,
                "new Promise((r) => process.nextTick(() => r('served')))",
                "\"served\"");
    call(f, "tickThrows", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_JS);
    assert_string_equal(r.err.message, "tick boom");
    result_free(&r);
    call(f, "after", &r);
    expect_ok(&r, "1");
    result_free(&r);
}

/* The Web APIs packages assume (docs/modules.md). */
static void
test_web_apis(void **state)
{
    struct fx *f = *state;
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(
        f, ctx,
        "const u = new URL('../x?a=1&b=%20#h', 'https://user@example."
        "org:8080/p/q/');\n"
        "u.searchParams.append('c', 'd e');\n"
        "[u.href, u.host, u.pathname, [...new URLSearchParams('a=1&a=2')"
        ".getAll('a')], URL.canParse('nope'), new URL('HTTP://EX.com"
        "/%7e').href]",
        "[\"https://user@example.org:8080/p/x?a=1&b=+&c=d+e#h\", "
        "\"example.org:8080\", \"/p/x\", [\"1\", \"2\"], false, "
        "\"http://ex.com/%7e\"]");
    expect_eval(
        f, ctx,
        "const ac = new AbortController(); const seen = [];\n"
        "ac.signal.addEventListener('abort', (e) => seen.push(e.type));\n"
        "ac.signal.onabort = () => seen.push('on');\n"
        "ac.abort(); const t = new EventTarget(); t.addEventListener("
        "'x', (e) => seen.push(e.type + e.cancelable), {once: true});\n"
        "t.dispatchEvent(new Event('x', {cancelable: true})); "
        "t.dispatchEvent(new Event('x'));\n"
        "[seen, ac.signal.aborted, ac.signal.reason.name, "
        "AbortSignal.abort().reason instanceof DOMException, "
        "new DOMException('m', 'AbortError').code]",
        "[[\"abort\", \"on\", \"xtrue\"], true, \"AbortError\", true, "
        "20]");
    expect_eval(
        f, ctx,
        "const a = new Uint8Array(16); crypto.getRandomValues(a);\n"
        "[a.some((x) => x !== 0), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}"
        "-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()), "
        "(() => { try { crypto.getRandomValues(new Float64Array(1)); } "
        "catch (e) { return e.name; } })()]",
        "[true, true, \"TypeMismatchError\"]");
    expect_eval(f, ctx,
                "Promise.all(['SHA-1', 'SHA-256', 'sha-384', {name: 'SHA-512'}]"
                ".map((alg) => crypto.subtle.digest(alg, new TextEncoder()"
                ".encode('abc')).then((b) => Buffer.from(b).toString('hex')"
                ".slice(0, 16))))",
                "[\"a9993e364706816a\", \"ba7816bf8f01cfea\", "
                "\"cb00753f45a35e8b\", \"ddaf35a193617aba\"]");
    expect_eval(
        f, ctx,
        "crypto.subtle.digest('MD5', new Uint8Array(1)).then(() => 'no',"
        " (e) => e.name)",
        "\"NotSupportedError\"");
    expect_eval(f, ctx,
                "new Promise((resolve) => { const c = new MessageChannel(); "
                "c.port1.onmessage = (e) => resolve([e.data, typeof "
                "performance.now()]); c.port2.postMessage({x: [1]}); })",
                "[{\"x\"=>[1]}, \"number\"]");
    expect_eval(f, ctx,
                "[typeof fetch, typeof Buffer, Buffer.from('aGk=', 'base64')"
                ".toString(), process.browser]",
                "[\"undefined\", \"function\", \"hi\", true]");
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
        cmocka_unit_test_setup_teardown(test_web_apis, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_uncaught_in_timer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_builtins_present, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_objects, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_unref_loop, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_next_tick_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_next_tick_limits, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
