// require(): a CommonJS loader with Node's resolution (relative files,
// node_modules upward, package.json `main` and `exports` with the require,
// node and default conditions, JSON files) and its module objects. Node's
// built-in modules are refused with an error that names them.
//
// The engine (js_modules.cc) runs this once per realm with four natives that
// stay in this closure (user code reaches require(), never them):
//   readFile(path)          the text, or undefined when there is no such file
//   stat(path)              0 nothing, 1 a file, 2 a directory
//   realpath(path)          the real path, or undefined
//   compile(text, filename) the module wrapper function
//   (exports, require, module, __filename, __dirname), named after the file
// and keeps the entry points it returns (load, requireAt, requireFrom,
// resolveFrom); ES modules import CommonJS through the last two.
(function (natives) {
'use strict';
const readFile = natives.readFile, statPath = natives.stat,
      realpath = natives.realpath, compile = natives.compile;
const apply = Reflect.apply, parseJSON = JSON.parse, keys = Object.keys;
const hasOwn = Object.prototype.hasOwnProperty, isArray = Array.isArray;
const builtins = new Set([
  'assert', 'assert/strict', 'async_hooks', 'buffer', 'child_process',
  'cluster', 'console', 'constants', 'crypto', 'dgram',
  'diagnostics_channel', 'dns', 'dns/promises', 'domain', 'events', 'fs',
  'fs/promises', 'http', 'http2', 'https', 'inspector', 'module', 'net', 'os',
  'path', 'path/posix', 'path/win32', 'perf_hooks', 'process', 'punycode',
  'querystring', 'readline', 'readline/promises', 'repl', 'stream',
  'stream/consumers', 'stream/promises', 'stream/web', 'string_decoder',
  'sys', 'timers', 'timers/promises', 'tls', 'trace_events', 'tty', 'url',
  'util', 'util/types', 'v8', 'vm', 'wasi', 'worker_threads', 'zlib']);
const cache = Object.create(null);
let mainModule;

function normalize(p) {
  const out = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop(); else out.push(seg);
  }
  return '/' + out.join('/');
}
function dirname(p) {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}
function isPathLike(r) {
  return r === '.' || r === '..' || r.startsWith('./') ||
         r.startsWith('../') || r.startsWith('/');
}
function builtinError(name) {
  const e = new Error(`Node built-in module '${name}' is not available in jshost`);
  e.code = 'ERR_JSHOST_BUILTIN';
  return e;
}
function notFound(request, from) {
  const e = new Error(`Cannot find module '${request}' from '${from}'`);
  e.code = 'MODULE_NOT_FOUND';
  return e;
}
function isFile(p) { return statPath(p) === 1 ? p : undefined; }
function withExtensions(p) {
  return isFile(p) || isFile(p + '.js') || isFile(p + '.json') ||
         isFile(p + '.cjs');
}
function withIndex(p) {
  return isFile(p + '/index.js') || isFile(p + '/index.json') ||
         isFile(p + '/index.cjs');
}
function readPackage(dir) {
  const text = readFile(dir + '/package.json');
  if (text === undefined) return undefined;
  try {
    return parseJSON(text);
  } catch (err) {
    err.message = dir + '/package.json: ' + err.message;
    throw err;
  }
}
function asDirectory(p) {
  if (statPath(p) !== 2) return undefined;
  const pkg = readPackage(p);
  if (pkg && typeof pkg.main === 'string' && pkg.main !== '') {
    const m = normalize(p + '/' + pkg.main);
    const f = withExtensions(m) || withIndex(m);
    if (f) return f;
  }
  return withIndex(p);
}
const conditions = ['require', 'node', 'default'];
function exportTarget(pkgDir, target, star) {
  if (typeof target === 'string') {
    if (!target.startsWith('./')) return undefined;
    if (star !== undefined) target = target.split('*').join(star);
    return normalize(pkgDir + '/' + target);
  }
  if (isArray(target)) {
    for (const t of target) {
      const r = exportTarget(pkgDir, t, star);
      if (r !== undefined && isFile(r)) return r;
    }
    return undefined;
  }
  if (target !== null && typeof target === 'object') {
    for (const k of keys(target)) {
      if (!conditions.includes(k)) continue;
      const r = exportTarget(pkgDir, target[k], star);
      if (r !== undefined) return r;
    }
  }
  return undefined;
}
function viaExports(pkgDir, subpath, field, request) {
  let map = field;
  if (typeof map === 'string' || isArray(map) ||
      (map !== null && typeof map === 'object' &&
       !keys(map).some((k) => k.startsWith('.'))))
    map = {'.': map};
  let target, star;
  if (map !== null && typeof map === 'object') {
    if (hasOwn.call(map, subpath)) {
      target = map[subpath];
    } else {
      let best = '';
      for (const k of keys(map)) {
        const i = k.indexOf('*');
        if (i < 0) continue;
        const pre = k.slice(0, i), post = k.slice(i + 1);
        if (subpath.length >= k.length - 1 && subpath.startsWith(pre) &&
            subpath.endsWith(post) && k.length > best.length) {
          best = k;
          target = map[k];
          star = subpath.slice(pre.length, subpath.length - post.length);
        }
      }
    }
  }
  if (target === undefined || target === null) {
    const e = new Error(`Package subpath '${subpath}' is not defined by ` +
                        `"exports" in ${pkgDir}/package.json`);
    e.code = 'ERR_PACKAGE_PATH_NOT_EXPORTED';
    throw e;
  }
  const file = exportTarget(pkgDir, target, star);
  if (file === undefined || !isFile(file)) throw notFound(request, pkgDir);
  return file;
}
function nodeModulesDirs(from) {
  const dirs = [];
  let d = from;
  for (;;) {
    if (!d.endsWith('/node_modules'))
      dirs.push((d === '/' ? '' : d) + '/node_modules');
    if (d === '/') break;
    d = dirname(d);
  }
  return dirs;
}
function resolve(request, fromDir) {
  if (typeof request !== 'string' || request === '')
    throw new TypeError('require() needs a module name (a non-empty string)');
  if (request.startsWith('node:')) throw builtinError(request.slice(5));
  if (builtins.has(request)) throw builtinError(request);
  let file;
  if (isPathLike(request)) {
    const p = normalize(request.startsWith('/') ? request
                                                : fromDir + '/' + request);
    file = (request.endsWith('/') ? undefined : withExtensions(p)) ||
           asDirectory(p);
  } else {
    const parts = request.split('/');
    const n = request.startsWith('@') ? 2 : 1;
    const name = parts.slice(0, n).join('/'), sub = parts.slice(n).join('/');
    for (const nm of nodeModulesDirs(fromDir)) {
      const pkgDir = nm + '/' + name;
      if (statPath(pkgDir) !== 2) continue;
      const pkg = readPackage(pkgDir);
      if (pkg && pkg.exports !== undefined && pkg.exports !== null) {
        file = viaExports(pkgDir, sub ? './' + sub : '.', pkg.exports, request);
        break;
      }
      file = sub ? withExtensions(pkgDir + '/' + sub) ||
                   asDirectory(pkgDir + '/' + sub)
                 : asDirectory(pkgDir);
      if (file) break;
    }
  }
  if (file === undefined) throw notFound(request, fromDir);
  return realpath(file) || file;
}
function Module(filename, parent) {
  this.id = parent ? filename : '.';
  this.filename = filename;
  this.path = dirname(filename);
  this.exports = {};
  this.parent = parent;
  this.loaded = false;
  this.children = [];
  this.paths = nodeModulesDirs(this.path);
}
function makeRequire(mod, dir) {
  const require = function require(request) {
    return load(resolve(request, dir), mod);
  };
  require.resolve = function resolve_(request) { return resolve(request, dir); };
  require.cache = cache;
  Object.defineProperty(require, 'main', {get() { return mainModule; }});
  return require;
}
function load(filename, parent) {
  const cached = cache[filename];
  if (cached !== undefined) return cached.exports;
  if (filename.endsWith('.mjs')) {
    const e = new Error(`cannot require() the ES module ${filename}`);
    e.code = 'ERR_REQUIRE_ESM';
    throw e;
  }
  const mod = new Module(filename, parent);
  if (mainModule === undefined && !parent) mainModule = mod;
  cache[filename] = mod;
  let done = false;
  try {
    let text = readFile(filename);
    if (text === undefined) throw notFound(filename, dirname(filename));
    if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1);
    if (filename.endsWith('.json')) {
      try {
        mod.exports = parseJSON(text);
      } catch (err) {
        err.message = filename + ': ' + err.message;
        throw err;
      }
    } else {
      if (text.startsWith('#!')) text = '//' + text.slice(2);
      const fn = compile(text, filename);
      const dir = dirname(filename);
      apply(fn, mod.exports,
            [mod.exports, makeRequire(mod, dir), mod, filename, dir]);
    }
    done = true;
  } finally {
    if (!done) delete cache[filename];
  }
  mod.loaded = true;
  if (parent) parent.children.push(mod);
  return mod.exports;
}
return {
  load(filename) { return load(filename, null); },
  requireAt(dir) { return makeRequire(null, dir); },
  requireFrom(dir, request) { return load(resolve(request, dir), null); },
  resolveFrom(dir, request) { return resolve(request, dir); },
};
});
