/* require() resolution as Node does it, Node built-ins refused, and ES module
 * configs with static imports. */
#include "engine_test.h"

static void
test_require_forms(void **state)
{
    struct fx *f = *state;
    put(f, "lib/a.js",
        "exports.name = 'a'; exports.file = __filename; exports.dir = "
        "__dirname;\n");
    put(f, "lib/data.json", "{\"n\": 5, \"list\": [1, 2]}\n");
    put(f, "lib/dir/index.js", "module.exports = 'index of dir';\n");
    put(f, "node_modules/up/package.json", "{\"main\": \"./src/main\"}\n");
    put(f, "node_modules/up/src/main.js",
        "module.exports = {pkg: 'up', dep: require('dep')};\n");
    put(f, "node_modules/dep/index.js", "module.exports = 'dep index';\n");
    put(f, "node_modules/exp-str/package.json",
        "{\"main\": \"wrong.js\", \"exports\": \"./right.js\"}\n");
    put(f, "node_modules/exp-str/right.js",
        "module.exports = 'exports string';\n");
    put(f, "node_modules/exp-cond/package.json",
        "{\"exports\": {\".\": {\"import\": \"./esm.mjs\", \"require\": "
        "\"./cjs.js\"},"
        " \"./feature\": {\"node\": \"./feature-node.js\", \"default\": "
        "\"./feature.js\"},"
        " \"./sub/*\": \"./lib/*.js\"}}\n");
    put(f, "node_modules/exp-cond/cjs.js",
        "module.exports = 'conditional require';\n");
    put(f, "node_modules/exp-cond/feature-node.js",
        "module.exports = 'feature for node';\n");
    put(f, "node_modules/exp-cond/feature.js",
        "module.exports = 'feature by default';\n");
    put(f, "node_modules/exp-cond/lib/x.js", "module.exports = 'pattern x';\n");
    put(f, "node_modules/@scope/pkg/index.js", "module.exports = 'scoped';\n");
    put(f, "cycle/a.js",
        "exports.early = 'a-early'; const b = require('./b'); exports.fromB = "
        "b.seen; exports.late = 'a-late';\n");
    put(f, "cycle/b.js",
        "const a = require('./a'); exports.seen = JSON.stringify(a);\n");
    put(f, "deep/er/x.js",
        "module.exports = require('up').pkg + '/' + "
        "require('../../lib/a').name;\n");
    put(f, "counter.js", "let n = 0; module.exports = () => ++n;\n");
    put(f, "c.js",
        "const a = require('./lib/a');\n"
        "module.exports = {functions: {\n"
        "  rel() { return [a.name, a.file === __dirname + '/lib/a.js', a.dir "
        "=== __dirname + '/lib']; },\n"
        "  json() { return require('./lib/data.json'); },\n"
        "  index() { return require('./lib/dir'); },\n"
        "  upward() { return require('./deep/er/x'); },\n"
        "  pkg() { return require('up'); },\n"
        "  expStr() { return require('exp-str'); },\n"
        "  expCond() { return [require('exp-cond'), "
        "require('exp-cond/feature'), require('exp-cond/sub/x')]; },\n"
        "  notExported() { return require('exp-cond/hidden'); },\n"
        "  scoped() { return require('@scope/pkg'); },\n"
        "  cycle() { return require('./cycle/a'); },\n"
        "  cached() { return [require('./counter')(), "
        "require('./counter.js')(), require.resolve('./counter') === __dirname "
        "+ '/counter.js']; },\n"
        "  missing() { return require('./nope'); },\n"
        "  missingPkg() { return require('nope-pkg'); },\n"
        "  fs() { return require('fs'); },\n"
        "  nodeFs() { return require('node:child_process'); },\n"
        "  main() { return [require.main === module, module.id, typeof "
        "exports]; },\n"
        "}};\n");
    load(f, "c.js");
    struct result r;
    call(f, "rel", &r);
    expect_ok(&r, "[\"a\", true, true]");
    result_free(&r);
    call(f, "json", &r);
    expect_ok(&r, "{\"n\"=>5, \"list\"=>[1, 2]}");
    result_free(&r);
    call(f, "index", &r);
    expect_ok(&r, "\"index of dir\"");
    result_free(&r);
    call(f, "upward", &r);
    expect_ok(&r, "\"up/a\"");
    result_free(&r);
    call(f, "pkg", &r);
    expect_ok(&r, "{\"pkg\"=>\"up\", \"dep\"=>\"dep index\"}");
    result_free(&r);
    call(f, "expStr", &r);
    expect_ok(&r, "\"exports string\"");
    result_free(&r);
    call(f, "expCond", &r);
    /* jshost is not Node: the `node` condition does not match
     * (docs/modules.md) */
    expect_ok(&r, "[\"conditional require\", \"feature by default\", "
                  "\"pattern x\"]");
    result_free(&r);
    call(f, "notExported", &r);
    assert_false(r.ok);
    assert_non_null(strstr(r.err.message, "not defined by \"exports\""));
    result_free(&r);
    call(f, "scoped", &r);
    expect_ok(&r, "\"scoped\"");
    result_free(&r);
    call(f, "cycle", &r);
    expect_ok(&r,
              "{\"early\"=>\"a-early\", "
              "\"fromB\"=>\"{\"early\":\"a-early\"}\", \"late\"=>\"a-late\"}");
    result_free(&r);
    call(f, "cached", &r);
    expect_ok(&r, "[1, 2, true]");
    result_free(&r);
    call(f, "missing", &r);
    assert_false(r.ok);
    assert_int_equal(r.err.type, PROTO_ERR_JS);
    assert_non_null(strstr(r.err.message, "Cannot find module './nope'"));
    result_free(&r);
    call(f, "missingPkg", &r);
    assert_false(r.ok);
    assert_non_null(strstr(r.err.message, "Cannot find module 'nope-pkg'"));
    result_free(&r);
    call(f, "fs", &r);
    assert_false(r.ok);
    /* the message says where the config asked for it */
    char want[2048];
    snprintf(want, sizeof want,
             "Node built-in module 'fs' is not available in jshost "
             "(required from %s:16)",
             path_of(f, "c.js"));
    assert_string_equal(r.err.message, want);
    result_free(&r);
    call(f, "nodeFs", &r);
    assert_false(r.ok);
    snprintf(want, sizeof want,
             "Node built-in module 'child_process' is not available in "
             "jshost (required from %s:17)",
             path_of(f, "c.js"));
    assert_string_equal(r.err.message, want);
    result_free(&r);
    call(f, "main", &r);
    expect_ok(&r, "[true, \".\", \"object\"]");
    result_free(&r);
}

static void
test_require_errors_in_stack(void **state)
{
    struct fx *f = *state;
    put(f, "lib/thrower.js",
        "\nexports.go = function () {\n  throw new Error('deep');\n};\n");
    put(f, "c.js",
        "const t = require('./lib/thrower');\nmodule.exports = {functions: "
        "{go() { t.go(); }}};\n");
    load(f, "c.js");
    struct result r;
    call(f, "go", &r);
    assert_false(r.ok);
    char where[2048];
    snprintf(where, sizeof where, "%s:3:9", path_of(f, "lib/thrower.js"));
    if (strstr(r.err.stack, where) == NULL)
        fprintf(stderr, "stack: %s\n", r.err.stack);
    assert_non_null(strstr(r.err.stack, where));
    result_free(&r);
}

static void
test_context_require(void **state)
{
    struct fx *f = *state;
    put(f, "helper.js", "module.exports = (x) => x * 3;\n");
    load(f, NULL);
    uint32_t ctx = new_context(f);
    expect_eval(f, ctx, "require('./helper')(5)", "15");
    put(f, "m.mjs",
        "export const v = await Promise.resolve('esm');\nexport default 1;\n");
    expect_eval(f, ctx, "import('./helper.js').then((m) => m.default(2))", "6");
    expect_eval(f, ctx, "import('./m.mjs').then((m) => [m.v, m.default])",
                "[\"esm\", 1]");
    expect_eval(f, ctx,
                "import('./none.mjs').then(() => 'no', (e) => "
                "e.message.startsWith(\"Cannot find module './none.mjs'\"))",
                "true");
    expect_eval(f, ctx, "import('fs').then(() => 'no', (e) => e.message)",
                "\"Node built-in module 'fs' is not available in jshost "
                "(imported from test.js:1)\"");
    struct result r;
    /* a relative cwd is taken from the process's */
    char rel[512];
    assert_int_equal(chdir("/tmp"), 0);
    snprintf(rel, sizeof rel, "%s", f->dir + strlen("/tmp/"));
    uint32_t relctx = 0;
    struct js_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(js_context_create(f->e, rel, &relctx, &err), 0);
    expect_eval(f, relctx, "require('./helper')(2)", "6");
    eval(f, ctx, "require('os')", &r);
    assert_false(r.ok);
    assert_string_equal(r.err.message,
                        "Node built-in module 'os' is not available in jshost "
                        "(required from test.js:1)");
    result_free(&r);
}

static void
test_esm_config(void **state)
{
    struct fx *f = *state;
    put(f, "lib/util.mjs",
        "export const greet = (n) => `hi ${n}`;\nexport default 7;\n");
    put(f, "lib/data.cjs.js", "module.exports = {answer: 42};\n");
    put(f, "node_modules/cjs-pkg/index.js", "exports.fromPkg = 'pkg';\n");
    put(f, "c.mjs",
        "import seven, { greet } from './lib/util.mjs';\n"
        "import data from './lib/data.cjs.js';\n"
        "import { fromPkg } from 'cjs-pkg';\n"
        "const base = await Promise.resolve(100);\n"
        "export default {\n"
        "  functions: {\n"
        "    hello(d) { return greet(d); },\n"
        "    sum() { return base + seven + data.answer; },\n"
        "    pkg() { return fromPkg; },\n"
        "    meta() { return import.meta.url.endsWith('/c.mjs'); },\n"
        "  },\n"
        "  timeout: 1234,\n"
        "  extra: 'esm',\n"
        "};\n");
    load(f, "c.mjs");
    struct result r;
    struct js_config c;
    js_engine_config(f->e, &c);
    assert_int_equal(c.timeout_ms, 1234);
    msgpack_object s;
    memset(&s, 0, sizeof s);
    s.type = MSGPACK_OBJECT_STR;
    s.via.str.ptr = "you";
    s.via.str.size = 3;
    call_obj(f, "hello", &s, 0, &r);
    expect_ok(&r, "\"hi you\"");
    result_free(&r);
    call(f, "sum", &r);
    expect_ok(&r, "149");
    result_free(&r);
    call(f, "pkg", &r);
    expect_ok(&r, "\"pkg\"");
    result_free(&r);
    call(f, "meta", &r);
    expect_ok(&r, "true");
    result_free(&r);
}

/* In a "type": "module" package, .js files are ES modules. */
static void
test_esm_type_module(void **state)
{
    struct fx *f = *state;
    put(f, "app/package.json", "{\"type\": \"module\"}\n");
    put(f, "app/lib.js", "export const twice = (x) => x * 2;\n");
    put(f, "app/old.cjs", "module.exports = {three: 3};\n");
    put(f, "app/c.js",
        "import { twice } from './lib.js';\n"
        "import old from './old.cjs';\n"
        "export default {functions: {go() { return twice(old.three); }}, "
        "extra: 'x'};\n");
    load(f, "app/c.js");
    struct result r;
    call(f, "go", &r);
    expect_ok(&r, "6");
    result_free(&r);
}

static void
test_esm_errors(void **state)
{
    struct fx *f = *state;
    put(f, "syn.mjs",
        "export default {\n  functions: {\n    a() { return 1 + ; }\n  "
        "}\n};\n");
    assert_int_equal(load_opts(f, "syn.mjs", 0, 0), -EINVAL);
    assert_int_equal(f->err.type, PROTO_ERR_CONFIG);
    assert_int_equal(f->err.line, 3);
    assert_non_null(strstr(f->err.file, "syn.mjs"));

    put(f, "nodef.mjs", "export const functions = {};\n");
    assert_int_equal(load_opts(f, "nodef.mjs", 0, 0), -EINVAL);
    assert_non_null(strstr(f->err.message, "no default export"));

    put(f, "badimp.mjs",
        "import x from './missing.mjs';\nexport default {functions: {}};\n");
    assert_int_equal(load_opts(f, "badimp.mjs", 0, 0), -EINVAL);
    assert_non_null(
        strstr(f->err.message, "Cannot find module './missing.mjs'"));

    put(f, "dep.mjs", "\nthrow new Error('dep failed');\n");
    put(f, "throws.mjs",
        "import './dep.mjs';\nexport default {functions: {}};\n");
    assert_int_equal(load_opts(f, "throws.mjs", 0, 0), -EINVAL);
    assert_non_null(strstr(f->err.message, "dep failed"));
    assert_non_null(strstr(f->err.file, "dep.mjs"));
    assert_int_equal(f->err.line, 2);

    put(f, "fsimp.mjs",
        "import fs from 'fs';\nexport default {functions: {}};\n");
    assert_int_equal(load_opts(f, "fsimp.mjs", 0, 0), -EINVAL);
    assert_non_null(
        strstr(f->err.message,
               "Node built-in module 'fs' is not available in jshost"));
}

int
main(void)
{
    js_engine_global_init("test_modules");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_require_forms, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_require_errors_in_stack, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_context_require, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_esm_config, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_esm_type_module, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_esm_errors, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
