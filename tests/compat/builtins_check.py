"""Runs the built-ins collected by scripts/gen-node-builtins on jshost's V8 and
compares what they answer with Node's own built-ins.

    scripts/gen-node-builtins fetch-npm /tmp/b && \\
      scripts/gen-node-builtins collect /tmp/b/node_modules /tmp/b.json
    PYTHONPATH=build/clients/python JSHOST_MANAGER=build/manager/jshost-manager \\
      JSHOST_WORKER=build/worker/jshost-worker python3 tests/compat/builtins_check.py /tmp/b.json

A prototype's check, not a test of jshost: the collected files are loaded in a
jshost VM by a few lines of CommonJS over the (virtual path, source) list and
each module's resolved requires, the way the worker would embed them; the
same calls then run in Node on its real built-ins. Prints, per built-in,
whether it loads on jshost and whether each answer equals Node's.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

# A loader over gen-node-builtins' data: what the worker's would do, in short.
LOADER = r"""
(function (data) {
  const cache = Object.create(null);
  function load(vpath) {
    if (vpath === null) return {};
    if (cache[vpath]) return cache[vpath].exports;
    const m = data.modules[vpath];
    const module = { exports: {} };
    cache[vpath] = module;
    if (vpath.endsWith('.json')) { module.exports = JSON.parse(m.source); return module.exports; }
    const fn = (0, eval)('(function (exports, require, module, __filename, __dirname) {' +
                         m.source + '\n})\n//# sourceURL=' + vpath);
    const require = (req) => {
      const t = m.requires[req];
      if (t === undefined) throw new Error('cannot find ' + req + ' from ' + vpath);
      if (t === null) return {};
      if (t.startsWith('builtin:')) return load(data.builtins[t.slice(8)]);
      if (t.startsWith('missing:'))
        throw new Error("Node built-in module '" + t.slice(8) + "' is not available in jshost");
      return load(t);
    };
    fn.call(module.exports, module.exports, require, module, vpath,
            vpath.slice(0, vpath.lastIndexOf('/')));
    return module.exports;
  }
  globalThis.nodeBuiltin = (name) => load(data.builtins[name]);
})
"""

# name -> an async function body using `B` (the built-in); its value is compared.
CHECKS = {
    "path": "return [B.join('/a/b', '../c', './d.txt'), B.resolve('/x', 'y', '..', 'z'), "
            "B.basename('/a/b.txt', '.txt'), B.extname('x.tar.gz'), B.relative('/a/b/c', '/a/d'), "
            "B.parse('/home/u/f.txt'), B.normalize('a//b/../c/'), B.sep, B.isAbsolute('./x')];",
    "util": "const u = B; return [u.format('%s=%d %j %%', 'a', 42, {x: 1}), "
            "u.inspect({a: [1, {b: 2}], s: 'x', n: null}), u.inspect('str'), "
            "u.types.isDate(new Date()), u.isDeepStrictEqual ? 'has isDeepStrictEqual' : 'none', "
            "await u.promisify((x, cb) => cb(null, x * 2))(21), typeof u.inherits, "
            "typeof u.TextEncoder, typeof u.deprecate];",
    "buffer": "const b = B.Buffer.from('h\u00e9llo w\u00f6rld \u20ac'); return [b.toString('base64'), "
              "b.toString('hex'), b.length, B.Buffer.byteLength('\u20ac'), "
              "B.Buffer.concat([B.Buffer.from([1, 2]), B.Buffer.alloc(2, 255)]).readUInt32BE(0), "
              "B.Buffer.from('aGk=', 'base64').toString(), B.Buffer.isBuffer(b), "
              "b.slice(1, 3).toString('latin1'), B.Buffer.compare(B.Buffer.from('a'), B.Buffer.from('b'))];",
    "events": "const e = new B(); const seen = []; e.on('x', (v) => seen.push('on ' + v)); "
              "e.once('x', (v) => seen.push('once ' + v)); e.emit('x', 1); e.emit('x', 2); "
              "const p = B.once(e, 'y'); e.emit('y', 'done'); "
              "return [seen, e.listenerCount('x'), await p, B.defaultMaxListeners];",
    "url": "const u = B.parse('http://user:pw@host.example:8080/p/a/t/h?query=string&a=1#hash', true); "
           "return [u.protocol, u.auth, u.host, u.port, u.pathname, u.query, u.hash, u.href, "
           "B.resolve('http://a/b/c/d', '../e'), B.format({protocol: 'https', host: 'x.org', pathname: '/y', "
           "query: {q: 'a b'}}), typeof B.URL, typeof B.fileURLToPath];",
    "querystring": "return [B.stringify({a: [1, 2], b: 'x y', c: '\u00e9'}), B.parse('a=1&a=2&b=x%20y&c'), "
                   "B.escape('a b&c'), B.unescape('%E2%82%AC')];",
    "string_decoder": "const d = new B.StringDecoder('utf8'); const euro = [0xe2, 0x82, 0xac]; "
                      "const Buf = nodeBuiltin('buffer').Buffer; "
                      "return [d.write(Buf.from(euro.slice(0, 1))), d.write(Buf.from(euro.slice(1))), "
                      "d.end(Buf.from([0x61]))];",
    "assert": "const out = []; B.deepStrictEqual({a: [1, 2]}, {a: [1, 2]}); out.push('deep ok'); "
              "try { B.strictEqual(1, 2); } catch (e) { out.push([e.name, e.code, e.actual, e.expected, e.operator]); } "
              "try { B.deepStrictEqual({a: 1}, {a: '1'}); } catch (e) { out.push(e.code); } "
              "out.push(typeof B.strict, typeof B.rejects); return out;",
    "punycode": "return [B.toASCII('ma\u00f1ana.com'), B.toUnicode('xn--maana-pta.com'), "
                "B.encode('\u00fc'), B.ucs2.decode('\\ud834\\udf06').length];",
    "stream": "const t = new B.Transform({ transform(chunk, enc, cb) { cb(null, String(chunk).toUpperCase()); } }); "
              "const got = []; t.on('data', (c) => got.push(String(c))); "
              "const done = new Promise((r) => t.on('end', r)); "
              "t.write('ab'); t.write('cd'); t.end('e'); await done; "
              "return [got.join(''), typeof B.Readable, typeof B.pipeline, typeof B.PassThrough];",
}


def node_answers(node):
    script = "(async () => { const out = {}; for (const [name, body] of Object.entries(%s)) {" \
             " const B = require(name); const nodeBuiltin = require;" \
             " try { out[name] = {ok: await (new Function('B', 'nodeBuiltin', 'return (async () => {' + body + '})()'))(B, nodeBuiltin)}; }" \
             " catch (e) { out[name] = {error: String(e)}; } }" \
             " process.stdout.write(JSON.stringify(out)); })()" % json.dumps(CHECKS)
    p = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def jshost_answers(data_path):
    import jshost

    with open(data_path, encoding="utf-8") as f:
        data = f.read()
    out = {}
    with jshost.VM() as vm:
        with vm.create_context() as ctx:
            ctx.eval(LOADER + "(" + data + ")")
            for name, body in CHECKS.items():
                src = ("(async () => { const B = nodeBuiltin(%s); return JSON.stringify(await (async () => {%s})()); })()"
                       % (json.dumps(name), body))
                try:
                    out[name] = {"ok": json.loads(ctx.eval(src, timeout=30))}
                except jshost.Error as err:
                    out[name] = {"error": "%s: %s" % (getattr(err, "name", None) or err.type,
                                                      str(err.message).splitlines()[0])}
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    node = shutil.which("node")
    ref = node_answers(node)
    os.environ.setdefault("JSHOST_RUNTIME_DIR", tempfile.mkdtemp(prefix="jshost-builtins."))
    got = jshost_answers(sys.argv[1])
    with open(sys.argv[1], encoding="utf-8") as f:
        source = json.load(f)["source"]
    same = 0
    for name in CHECKS:
        g, r = got[name], ref[name]
        if "error" in g:
            print("%-15s FAILS on jshost: %s" % (name, g["error"]))
        elif g == r:
            same += 1
            print("%-15s equal to Node" % name)
        else:
            diffs = [i for i, (a, b) in enumerate(zip(g["ok"], r.get("ok", []))) if a != b]
            print("%-15s differs from Node at %s:" % (name, diffs))
            for i in diffs:
                print("    jshost %s\n    node   %s" % (json.dumps(g["ok"][i], ensure_ascii=False),
                                                     json.dumps(r["ok"][i], ensure_ascii=False)))
    print("%s: %d of %d built-ins answer as Node's" % (source, same, len(CHECKS)))
    import jshost
    jshost.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
