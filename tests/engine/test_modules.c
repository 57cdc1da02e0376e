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

/* ES-module packages, conditions, require() of ES modules, the imports
 * field, self-reference, JSON modules, import.meta, syntax detection. */
static void
test_esm_packages(void **state)
{
    struct fx *f = *state;
    put(f, "node_modules/esm-only/package.json",
        "{\"name\": \"esm-only\", \"type\": \"module\", \"exports\": "
        "{\".\": \"./index.js\", \"./self\": \"./self.js\"}, \"imports\": "
        "{\"#dep\": \"./dep.js\"}}\n");
    put(f, "node_modules/esm-only/index.js",
        "import dep from '#dep';\nexport let count = 0;\n"
        "export function bump() { count++; }\nexport default dep;\n");
    put(f, "node_modules/esm-only/dep.js", "export default 'dep';\n");
    put(f, "node_modules/esm-only/self.js",
        "export { count } from 'esm-only';\n");
    put(f, "node_modules/dual/package.json",
        "{\"exports\": {\".\": {\"node\": \"./node.cjs\", \"worker\": "
        "{\"import\": \"./w.mjs\", \"require\": \"./w.cjs\"}, \"default\": "
        "\"./d.cjs\"}}}\n");
    put(f, "node_modules/dual/node.cjs", "module.exports = 'node';\n");
    put(f, "node_modules/dual/w.mjs", "export const kind = 'worker import';\n");
    put(f, "node_modules/dual/w.cjs", "exports.kind = 'worker require';\n");
    put(f, "node_modules/tla/package.json", "{\"type\": \"module\"}\n");
    put(f, "node_modules/tla/index.js",
        "export const v = await Promise.resolve(5);\n");
    put(f, "node_modules/detect/package.json", "{\"main\": \"m.js\"}\n");
    put(f, "node_modules/detect/m.js", "export const detected = 'esm';\n");
    put(f, "data.json", "{\"n\": 7}\n");
    put(f, "c.mjs",
        "import { count, bump } from 'esm-only';\n"
        "import dep from 'esm-only';\n"
        "import { count as selfCount } from 'esm-only/self';\n"
        "import { kind } from 'dual';\n"
        "import data from './data.json';\n"
        "import { detected } from 'detect';\n"
        "import { createRequire } from 'node:module';\n"
        "const require = createRequire(import.meta.url);\n"
        "export default {functions: {\n"
        "  live() { const a = count; bump(); return [a, count, selfCount, "
        "dep]; },\n"
        "  cond() { return [kind, require('dual').kind]; },\n"
        "  json() { return data.n; },\n"
        "  meta() { return [import.meta.url === 'file://' + "
        "import.meta.filename, import.meta.dirname + '/c.mjs' === "
        "import.meta.filename, import.meta.resolve('esm-only').endsWith("
        "'/node_modules/esm-only/index.js')]; },\n"
        "  reqEsm() { const ns = require('esm-only'); return [ns.default, "
        "typeof ns.bump]; },\n"
        "  tla() { try { require('tla'); return 'loaded'; } catch (e) { "
        "return e.code; } },\n"
        "  tlaImport() { return import('tla').then((m) => m.v); },\n"
        "  detected() { return [detected, require('detect').detected]; },\n"
        "}};\n");
    load(f, "c.mjs");
    struct result r;
    call(f, "live", &r);
    expect_ok(&r, "[0, 1, 1, \"dep\"]");
    result_free(&r);
    call(f, "cond", &r);
    expect_ok(&r, "[\"worker import\", \"worker require\"]");
    result_free(&r);
    call(f, "json", &r);
    expect_ok(&r, "7");
    result_free(&r);
    call(f, "meta", &r);
    expect_ok(&r, "[true, true, true]");
    result_free(&r);
    call(f, "reqEsm", &r);
    expect_ok(&r, "[\"dep\", \"function\"]");
    result_free(&r);
    call(f, "tla", &r);
    expect_ok(&r, "\"ERR_REQUIRE_ASYNC_MODULE\"");
    result_free(&r);
    call(f, "tlaImport", &r);
    expect_ok(&r, "5");
    result_free(&r);
    call(f, "detected", &r);
    expect_ok(&r, "[\"esm\", \"esm\"]");
    result_free(&r);
}

/* Node's built-ins: the embedded ones, and stubs for packages that probe. */
static void
test_node_builtins(void **state)
{
    struct fx *f = *state;
    put(f, "node_modules/prober/index.js",
        "const fs = require('fs');\nconst { readFileSync } = "
        "require('node:fs');\n"
        "exports.has = typeof fs.existsSync;\n"
        "exports.read = () => readFileSync('/etc/passwd');\n");
    put(f, "node_modules/esm-prober/package.json", "{\"type\": \"module\"}\n");
    put(f, "node_modules/esm-prober/index.js",
        "import { readFile } from 'node:fs/promises';\nimport os from 'os';\n"
        "export const kind = typeof readFile + ' ' + typeof os.cpus;\n");
    put(f, "c.js",
        "const prober = require('prober');\n"
        "module.exports = {functions: {\n"
        "  builtins() {\n"
        "    const path = require('path'), util = require('node:util');\n"
        "    const { EventEmitter } = require('events');\n"
        "    const e = new EventEmitter(); let got; e.on('x', (v) => { got = "
        "v; }); e.emit('x', 3);\n"
        "    return [path.join('/a/b', '../c'), util.format('%s:%d', 'n', 4), "
        "got, require('buffer').Buffer.from('hi').toString('hex'),\n"
        "      Buffer.isBuffer(Buffer.alloc(1)), require('url').parse("
        "'http://x.org/p?q=1').pathname, require('querystring').stringify({a: "
        "[1, 2]}),\n"
        "      require('string_decoder').StringDecoder.name, "
        "typeof require('assert').deepStrictEqual, "
        "require('punycode').toASCII('bücher.de'),\n"
        "      typeof require('stream').Readable, require('process') === "
        "process, util.isDeepStrictEqual({a: [1]}, {a: [1]}),\n"
        "      require('util/types').isDate(new Date())];\n"
        "  },\n"
        "  probe() { return prober.has; },\n"
        "  useFs() { return prober.read(); },\n"
        "  esmProbe() { return import('esm-prober').then((m) => m.kind); },\n"
        "}};\n");
    load(f, "c.js");
    struct result r;
    call(f, "builtins", &r);
    expect_ok(&r, "[\"/a/c\", \"n:4\", 3, \"6869\", true, \"/p\", "
                  "\"a=1&a=2\", \"StringDecoder\", \"function\", "
                  "\"xn--bcher-kva.de\", \"function\", true, true, true]");
    result_free(&r);
    call(f, "probe", &r);
    expect_ok(&r, "\"function\"");
    result_free(&r);
    call(f, "useFs", &r);
    assert_false(r.ok);
    assert_string_equal(r.err.message,
                        "fs.readFileSync() is not available in jshost (Node "
                        "built-in module 'fs')");
    result_free(&r);
    call(f, "esmProbe", &r);
    expect_ok(&r, "\"function function\"");
    result_free(&r);
}

/* The loader reads nothing outside the config's tree and the node_modules
 * above it, and never says what a refused file holds. */
static void
test_confinement(void **state)
{
    struct fx *f = *state;
    put(f, "outside/secret.js", "SECRETWORD\n");
    put(f, "outside/secret.json", "{\"s\": \"SECRETWORD\"}\n");
    put(f, "app/ok.json", "{\"ok\": 1}\n");
    char target[1024], link[1024];
    snprintf(target, sizeof target, "%s", path_of(f, "outside/secret.js"));
    snprintf(link, sizeof link, "%s", path_of(f, "app/link.js"));
    assert_int_equal(symlink(target, link), 0);
    snprintf(target, sizeof target, "%s", path_of(f, "outside"));
    snprintf(link, sizeof link, "%s", path_of(f, "app/dirlink"));
    assert_int_equal(symlink(target, link), 0);
    put(f, "node_modules/above/index.js", "module.exports = 'above';\n");
    char conf[4096];
    snprintf(conf, sizeof conf,
             "const t = (p) => { try { require(p); return 'loaded'; } catch "
             "(e) { return e.code + (e.message.includes('SECRETWORD') ? ' "
             "LEAK' : ''); } };\n"
             "module.exports = {functions: {\n"
             "  go() { return [t('%s'), t('../outside/secret.js'), "
             "t('../outside/secret.json'), t('./link.js'), "
             "t('./dirlink/secret.js'), t('/etc/hostname'), "
             "t('./../app/../../outside/secret'), t('./ok.json'), "
             "require('above')]; },\n"
             "  imp() { return import('../outside/secret.js').then(() => "
             "'loaded', (e) => e.code); },\n"
             "}};\n",
             path_of(f, "outside/secret.js"));
    put(f, "app/c.js", conf);
    load(f, "app/c.js");
    struct result r;
    call(f, "go", &r);
    expect_ok(&r, "[\"ERR_JSHOST_CONFINED\", \"ERR_JSHOST_CONFINED\", "
                  "\"ERR_JSHOST_CONFINED\", \"ERR_JSHOST_CONFINED\", "
                  "\"ERR_JSHOST_CONFINED\", \"ERR_JSHOST_CONFINED\", "
                  "\"ERR_JSHOST_CONFINED\", \"loaded\", \"above\"]");
    result_free(&r);
    call(f, "imp", &r);
    expect_ok(&r, "\"ERR_JSHOST_CONFINED\"");
    result_free(&r);
    js_engine_free(f->e);
    f->e = NULL;

    /* roots widen the tree, from the config's loading on */
    put(f, "lib/shared.js", "module.exports = 'shared';\n");
    put(f, "app/roots.js",
        "const s = require('../lib/shared');\n"
        "module.exports = {roots: ['../lib'], functions: {go() { return [s, "
        "(() => { try { require('../outside/secret'); } catch (e) { return "
        "e.code; } })()]; }}};\n");
    load(f, "app/roots.js");
    call(f, "go", &r);
    expect_ok(&r, "[\"shared\", \"ERR_JSHOST_CONFINED\"]");
    result_free(&r);
}

/* Stacks show the user's frames, never jshost's own. */
static void
test_stack_frames(void **state)
{
    struct fx *f = *state;
    put(f, "c.js",
        "module.exports = {functions: {\n"
        "  cb(d, cb) { setTimeout(() => { try { null.x; } catch (e) { "
        "cb(null, e.stack); } }, 1); },\n"
        "  req() { try { require('./nope'); } catch (e) { return e.stack; } "
        "},\n"
        "}};\n");
    load(f, "c.js");
    struct result r;
    call(f, "cb", &r);
    assert_true(r.ok);
    assert_null(strstr(r.text, "jshost:"));
    assert_non_null(strstr(r.text, "c.js:2"));
    result_free(&r);
    call(f, "req", &r);
    assert_true(r.ok);
    assert_null(strstr(r.text, "jshost:"));
    assert_non_null(strstr(r.text, "required from"));
    result_free(&r);
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
        cmocka_unit_test_setup_teardown(test_esm_packages, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_node_builtins, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_confinement, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_stack_frames, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
