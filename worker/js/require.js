// Modules (docs/modules.md): Node's resolution for require() and import
// (relative files, node_modules upward, package.json `main`, `type`,
// `exports` and `imports` with conditions, self-reference, `node:` names),
// CommonJS module objects, Node's pure built-ins (embedded at build time) and
// lazy stubs for the others.
//
// The engine (js_modules.cc) runs this once per realm with its natives, which
// stay in this closure (user code reaches require(), never them):
//   readFile(path)          the text, or undefined when there is no such file;
//                           throws (ERR_JSHOST_CONFINED) outside the tree
//   stat(path)              0 nothing, 1 a file, 2 a directory, -1 outside
//                           the directories JavaScript may read
//   realpath(path)          the real path, or undefined
//   compile(text, filename, detect)
//                           the module wrapper function (exports, require,
//                           module, __filename, __dirname), named after the
//                           file; with detect, null when the text is an ES
//                           module by its syntax
//   requireEsm(path)        an ES module's namespace, evaluated synchronously
//   builtinEntry(name)      a built-in's entry file, or undefined
//   builtinFile(path)       [source, requires JSON] of an embedded file
//   callerPosition()        "file:line" of the nearest frame of user code
// and keeps the entry points it returns: load (the config), requireAt
// (contexts), importTarget and importValue (ES modules import through them).
(function (natives) {
'use strict';
const readFile = natives.readFile, statPath = natives.stat,
      realpath = natives.realpath, compile = natives.compile;
const apply = Reflect.apply, parseJSON = JSON.parse, keys = Object.keys;
const hasOwn = Object.prototype.hasOwnProperty, isArray = Array.isArray;
const defineProperty = Object.defineProperty, freeze = Object.freeze;
const captureStackTrace = Error.captureStackTrace;
const global = globalThis;

// Node 20's built-in module names.
const nodeBuiltins = new Set([
  'assert', 'assert/strict', 'async_hooks', 'buffer', 'child_process',
  'cluster', 'console', 'constants', 'crypto', 'dgram',
  'diagnostics_channel', 'dns', 'dns/promises', 'domain', 'events', 'fs',
  'fs/promises', 'http', 'http2', 'https', 'inspector', 'module', 'net', 'os',
  'path', 'path/posix', 'path/win32', 'perf_hooks', 'process', 'punycode',
  'querystring', 'readline', 'readline/promises', 'repl', 'stream',
  'stream/consumers', 'stream/promises', 'stream/web', 'string_decoder',
  'sys', 'timers', 'timers/promises', 'tls', 'trace_events', 'tty', 'url',
  'util', 'util/types', 'v8', 'vm', 'wasi', 'worker_threads', 'zlib']);
// Export conditions (docs/modules.md says why these): a package's `exports`
// keys are walked in the package's order, and the first one in the set wins.
const requireConditions = new Set(['worker', 'browser', 'require', 'default']);
const importConditions = new Set(['worker', 'browser', 'import', 'default']);

const cache = Object.create(null);
let mainModule;

// --- errors ---------------------------------------------------------------

function coded(e, code) {
  e.code = code;
  return e;
}
function builtinError(name) {
  return coded(new Error(`Node built-in module '${name}' is not available in jshost`),
               'ERR_JSHOST_BUILTIN');
}
function notFound(request) {
  return coded(new Error(`Cannot find module '${request}'`), 'MODULE_NOT_FOUND');
}
function confined(request) {
  return coded(new Error(`Cannot load '${request}': it is outside the directories ` +
                         "jshost lets JavaScript read (the config's directory, the " +
                         "node_modules above it and the config's `roots`)"),
               'ERR_JSHOST_CONFINED');
}
// Where a failed require() or import() was called from, said in its message
// and shown as the top of its stack (the loader's own frames never are).
const placed = new Set(['MODULE_NOT_FOUND', 'ERR_JSHOST_BUILTIN', 'ERR_JSHOST_CONFINED',
                        'ERR_PACKAGE_PATH_NOT_EXPORTED', 'ERR_PACKAGE_IMPORT_NOT_DEFINED',
                        'ERR_REQUIRE_ASYNC_MODULE', 'ERR_INVALID_PACKAGE_TARGET',
                        'ERR_UNSUPPORTED_DIR_IMPORT']);
function place(err, verb, from, callee) {
  if (err === null || typeof err !== 'object' || !placed.has(err.code) ||
      err.jshostPlaced)
    return err;
  const at = natives.callerPosition() || from;
  if (at) err.message += ` (${verb} from ${at})`;
  defineProperty(err, 'jshostPlaced', {value: true});
  if (callee) captureStackTrace(err, callee);
  return err;
}

// --- paths ----------------------------------------------------------------

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
function fileURLToPath(u) {
  let s = String(u && u.href !== undefined ? u.href : u);
  if (!s.startsWith('file://'))
    throw coded(new TypeError('The URL must be of scheme file'), 'ERR_INVALID_URL_SCHEME');
  s = s.slice(7);
  if (!s.startsWith('/')) s = s.slice(s.indexOf('/'));
  const q = s.search(/[?#]/);
  if (q >= 0) s = s.slice(0, q);
  return decodeURIComponent(s);
}
function pathToFileURL(p) {
  let s = normalize(String(p).startsWith('/') ? String(p) : natives.cwd + '/' + p);
  if (String(p).endsWith('/') && s !== '/') s += '/';
  s = s.replace(/%/g, '%25').replace(/\\/g, '%5C').replace(/\n/g, '%0A')
       .replace(/\r/g, '%0D').replace(/\t/g, '%09').replace(/#/g, '%23')
       .replace(/\?/g, '%3F');
  return new URL('file://' + encodeURI(s).replace(/%25([0-9A-F]{2})/gi, '%$1'));
}

// A stat that refuses paths outside the tree with the request's name.
function kind(p, request) {
  const k = statPath(p);
  if (k < 0) throw confined(request);
  return k;
}
function isFile(p, request) { return kind(p, request) === 1 ? p : undefined; }
function withExtensions(p, request) {
  return isFile(p, request) || isFile(p + '.js', request) ||
         isFile(p + '.json', request) || isFile(p + '.cjs', request) ||
         isFile(p + '.mjs', request);
}
function withIndex(p, request) {
  return isFile(p + '/index.js', request) || isFile(p + '/index.json', request) ||
         isFile(p + '/index.cjs', request) || isFile(p + '/index.mjs', request);
}

const packages = Object.create(null);
function readPackage(dir) {
  const have = packages[dir];
  if (have !== undefined) return have || undefined;
  let pkg = null;
  if (statPath(dir + '/package.json') === 1) {
    const text = readFile(dir + '/package.json');
    if (text !== undefined) {
      try {
        pkg = parseJSON(text);
      } catch (err) {
        err.message = dir + '/package.json: ' + err.message;
        throw err;
      }
      if (pkg === null || typeof pkg !== 'object') pkg = null;
    }
  }
  packages[dir] = pkg || false;
  return pkg || undefined;
}
// The nearest package.json above a file: [dir, pkg] or undefined.
function packageScope(file) {
  let d = dirname(file);
  for (;;) {
    if (d.endsWith('/node_modules')) return undefined;
    // (package.json files above the trees are readable, for this)
    const pkg = readPackage(d);
    if (pkg) return [d, pkg];
    if (d === '/') return undefined;
    d = dirname(d);
  }
}
function asDirectory(p, request) {
  if (kind(p, request) !== 2) return undefined;
  const pkg = readPackage(p);
  if (pkg && typeof pkg.main === 'string' && pkg.main !== '') {
    const m = normalize(p + '/' + pkg.main);
    const f = withExtensions(m, request) || withIndex(m, request);
    if (f) return f;
  }
  return withIndex(p, request);
}

// What a file is: 'esm', 'cjs' or 'json'. Node's rules: the extension, else
// the nearest package.json's "type", else (no "type") its syntax, as Node
// 20.19 and 22 detect it: a file that does not compile as CommonJS because of
// import/export statements, import.meta or top-level await is an ES module
// (builds that `browser` conditions name are often such files).
const formats = Object.create(null);
const compiled = Object.create(null);
function formatOf(file) {
  if (file.endsWith('.mjs')) return 'esm';
  if (file.endsWith('.cjs')) return 'cjs';
  if (file.endsWith('.json')) return 'json';
  const have = formats[file];
  if (have !== undefined) return have;
  let format = 'cjs';
  const scope = file.endsWith('.js') || !/\.[^/]*$/.test(file) ? packageScope(file) : undefined;
  const type = scope && scope[1].type;
  if (type === 'module' && file.endsWith('.js')) format = 'esm';
  else if (type !== 'commonjs' && compileCommonJS(file) === undefined) format = 'esm';
  formats[file] = format;
  return format;
}
// The wrapper of a CommonJS file (kept for load()), or undefined when it is
// an ES module by its syntax.
function compileCommonJS(file) {
  if (compiled[file] !== undefined) return compiled[file];
  let text = readFile(file);
  if (text === undefined) throw notFound(file);
  if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1);
  if (text.startsWith('#!')) text = '//' + text.slice(2);
  const fn = compile(text, file, true);
  if (fn === null) return undefined;
  compiled[file] = fn;
  return fn;
}

// --- exports and imports fields --------------------------------------------

function packageTarget(pkgDir, target, star, conditions, request, internal) {
  if (typeof target === 'string') {
    if (!target.startsWith('./')) {
      if (internal && !isPathLike(target)) return {bare: target.split('*').join(star || '')};
      throw coded(new Error(`Invalid "exports" target ${JSON.stringify(target)} in ` +
                            `${pkgDir}/package.json`), 'ERR_INVALID_PACKAGE_TARGET');
    }
    if (star !== undefined) target = target.split('*').join(star);
    const p = normalize(pkgDir + '/' + target);
    if (p !== pkgDir && !p.startsWith(pkgDir + '/'))
      throw coded(new Error(`Invalid "exports" target ${JSON.stringify(target)} in ` +
                            `${pkgDir}/package.json`), 'ERR_INVALID_PACKAGE_TARGET');
    return p;
  }
  if (isArray(target)) {
    let lastErr;
    for (const t of target) {
      try {
        const r = packageTarget(pkgDir, t, star, conditions, request, internal);
        if (r !== undefined && r !== null) return r;
      } catch (err) {
        lastErr = err;
      }
    }
    if (lastErr) throw lastErr;
    return undefined;
  }
  if (target !== null && typeof target === 'object') {
    for (const k of keys(target)) {
      if (!conditions.has(k)) continue;
      const r = packageTarget(pkgDir, target[k], star, conditions, request, internal);
      if (r !== undefined) return r;
    }
    return undefined;
  }
  return null;
}
// The matching key of an exports or imports map: [target, star].
function matchKey(map, subpath) {
  if (hasOwn.call(map, subpath) && !subpath.includes('*')) return [map[subpath], undefined];
  let best = '', target, star;
  for (const k of keys(map)) {
    const i = k.indexOf('*');
    if (i < 0 || k.indexOf('*', i + 1) >= 0) continue;
    const pre = k.slice(0, i), post = k.slice(i + 1);
    if (subpath.length >= k.length && subpath.startsWith(pre) &&
        (post === '' || subpath.endsWith(post)) && patternLonger(k, best)) {
      best = k;
      target = map[k];
      star = subpath.slice(pre.length, subpath.length - post.length);
    }
  }
  return best === '' ? [undefined, undefined] : [target, star];
}
function patternLonger(a, b) {
  if (b === '') return true;
  const ai = a.indexOf('*'), bi = b.indexOf('*');
  if (ai !== bi) return ai > bi;
  return a.length > b.length;
}
function viaExports(pkgDir, subpath, field, conditions, request) {
  let map = field;
  if (typeof map === 'string' || isArray(map) ||
      (map !== null && typeof map === 'object' &&
       !keys(map).some((k) => k.startsWith('.'))))
    map = {'.': map};
  let target, star;
  if (map !== null && typeof map === 'object') [target, star] = matchKey(map, subpath);
  const file = target === undefined ? undefined
             : packageTarget(pkgDir, target, star, conditions, request, false);
  if (file === undefined || file === null) {
    throw coded(new Error(`Package subpath '${subpath}' is not defined by "exports" in ` +
                          `${pkgDir}/package.json`), 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  }
  if (!isFile(file, request)) throw notFound(request);
  return file;
}
function viaImports(request, fromFile, conditions) {
  const scope = packageScope(fromFile);
  const map = scope && scope[1].imports;
  let target, star;
  if (map !== null && typeof map === 'object' && !isArray(map))
    [target, star] = matchKey(map, request);
  const r = target === undefined ? undefined
          : packageTarget(scope[0], target, star, conditions, request, true);
  if (r === undefined || r === null) {
    throw coded(new Error(`Package import specifier '${request}' is not defined` +
                          (scope ? ` in ${scope[0]}/package.json` : '')),
                'ERR_PACKAGE_IMPORT_NOT_DEFINED');
  }
  if (typeof r === 'object') return resolve(r.bare, fromFile, conditions);
  if (!isFile(r, request)) throw notFound(request);
  return r;
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

// --- resolution -------------------------------------------------------------

// What `request` names from `fromFile` (a file, or a directory + '/'): an
// absolute real path, or 'builtin:X' / 'stub:X' for Node's built-ins.
function resolve(request, fromFile, conditions) {
  if (typeof request !== 'string' || request === '')
    throw new TypeError('require() needs a module name (a non-empty string)');
  const bare = request.startsWith('node:') ? request.slice(5) : request;
  if (request.startsWith('node:') || nodeBuiltins.has(request)) {
    if (!nodeBuiltins.has(bare)) throw notFound(request);
    if (isProvided(bare)) return 'builtin:' + bare;
    // Packages that merely probe for fs, os, crypto... at load time still
    // load: they get a stub that throws when used. The config's own code
    // gets the error at once.
    if (fromFile.includes('/node_modules/')) return 'stub:' + bare;
    throw builtinError(bare);
  }
  const fromDir = fromFile.endsWith('/') ? fromFile.slice(0, -1) || '/' : dirname(fromFile);
  let file;
  if (request.startsWith('#')) {
    file = viaImports(request, fromFile, conditions);
  } else if (isPathLike(request)) {
    const p = normalize(request.startsWith('/') ? request : fromDir + '/' + request);
    file = (request.endsWith('/') ? undefined : withExtensions(p, request)) ||
           asDirectory(p, request);
  } else {
    const parts = request.split('/');
    const n = request.startsWith('@') ? 2 : 1;
    const name = parts.slice(0, n).join('/'), sub = parts.slice(n).join('/');
    // A package may import itself by its name through its own exports.
    const scope = packageScope(fromFile.endsWith('/') ? fromFile + 'x' : fromFile);
    if (scope && scope[1].name === name && scope[1].exports != null)
      return realOf(viaExports(scope[0], sub ? './' + sub : '.', scope[1].exports,
                               conditions, request));
    for (const nm of nodeModulesDirs(fromDir)) {
      const pkgDir = nm + '/' + name;
      const k = statPath(pkgDir);
      if (k !== 2) continue;
      const pkg = readPackage(pkgDir);
      if (pkg && pkg.exports !== undefined && pkg.exports !== null) {
        file = viaExports(pkgDir, sub ? './' + sub : '.', pkg.exports, conditions, request);
        break;
      }
      file = sub ? withExtensions(pkgDir + '/' + sub, request) ||
                   asDirectory(pkgDir + '/' + sub, request)
                 : asDirectory(pkgDir, request);
      if (file) break;
    }
  }
  if (file === undefined) throw notFound(request);
  return realOf(file);
}
function realOf(file) {
  return realpath(file) || file;
}

// --- CommonJS modules -------------------------------------------------------

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
function makeRequire(mod, from) {
  const require = function require(request) {
    try {
      return loadResolved(resolve(request, from, requireConditions), mod, request);
    } catch (err) {
      throw place(err, 'required', undefined, require);
    }
  };
  require.resolve = function resolve_(request) {
    try {
      const r = resolve(request, from, requireConditions);
      return r.startsWith('builtin:') || r.startsWith('stub:') ? request : r;
    } catch (err) {
      throw place(err, 'resolved', undefined, resolve_);
    }
  };
  require.resolve.paths = (request) =>
    isPathLike(request) ? [dirname(from)] : nodeModulesDirs(dirname(from));
  require.cache = cache;
  defineProperty(require, 'main', {get() { return mainModule; }});
  return require;
}
function loadResolved(target, parent, request) {
  if (target.startsWith('builtin:')) return builtin(target.slice(8));
  if (target.startsWith('stub:')) return stub(target.slice(5));
  return load(target, parent, request);
}
function load(filename, parent, request) {
  const cached = cache[filename];
  if (cached !== undefined) return cached.exports;
  const format = formatOf(filename);
  if (format === 'esm') {
    // As Node 22: the namespace of an ES module without top-level await.
    return natives.requireEsm(filename);
  }
  const mod = new Module(filename, parent);
  if (mainModule === undefined && !parent) mainModule = mod;
  cache[filename] = mod;
  let done = false;
  try {
    if (format === 'json') {
      let text = readFile(filename);
      if (text === undefined) throw notFound(request === undefined ? filename : request);
      if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1);
      try {
        mod.exports = parseJSON(text);
      } catch (err) {
        err.message = filename + ': ' + err.message;
        throw err;
      }
    } else {
      const fn = compileCommonJS(filename);
      delete compiled[filename];
      apply(fn, mod.exports,
            [mod.exports, makeRequire(mod, filename), mod, filename, dirname(filename)]);
    }
    done = true;
  } finally {
    if (!done) delete cache[filename];
  }
  mod.loaded = true;
  if (parent) parent.children.push(mod);
  return mod.exports;
}

// --- built-ins ----------------------------------------------------------------

// Embedded built-ins (scripts/gen-node-builtins), and the few jshost makes
// itself from its globals.
const own = {
  process: () => global.process,
  console: () => global.console,
  timers: () => ({setTimeout, clearTimeout, setInterval, clearInterval,
                  setImmediate, clearImmediate}),
  'timers/promises': () => ({
    setTimeout: (ms, value) => new Promise((r) => setTimeout(r, ms, value)),
    setImmediate: (value) => new Promise((r) => setImmediate(r, value)),
  }),
  'util/types': () => builtin('util').types,
  'assert/strict': () => builtin('assert').strict,
  sys: () => builtin('util'),
  module: () => moduleBuiltin(),
};
// Whether jshost has built-in `name`: its own, or embedded (looked up once).
const providedCache = Object.create(null);
function isProvided(name) {
  let p = providedCache[name];
  if (p === undefined)
    p = providedCache[name] = hasOwn.call(own, name) || natives.builtinEntry(name) !== undefined;
  return p;
}

const builtins = Object.create(null);
const files = Object.create(null);
function builtin(name) {
  const have = builtins[name];
  if (have !== undefined) return have;
  let exports;
  if (hasOwn.call(own, name)) {
    exports = own[name]();
  } else {
    exports = builtinFile(natives.builtinEntry(name));
    glue(name, exports);
  }
  builtins[name] = exports;
  return exports;
}
function builtinFile(path) {
  const have = files[path];
  if (have !== undefined) return have.exports;
  const [source, requiresText] = natives.builtinFile(path);
  const requires = parseJSON(requiresText);
  const mod = {exports: {}, id: path, filename: path, loaded: false};
  files[path] = mod;
  const req = function require(r) {
    const t = requires[r];
    if (t === null) return {};
    if (t === undefined) throw notFound(r);
    if (t.startsWith('builtin:')) return builtin(t.slice(8));
    if (t.startsWith('missing:')) return stub(t.slice(8));
    return builtinFile(t);
  };
  const fn = compile(source, 'node:' + path.slice(path.indexOf('/', 2) + 1));
  apply(fn, mod.exports, [mod.exports, req, mod, path, dirname(path)]);
  mod.loaded = true;
  return mod.exports;
}
// What the browser builds lack against Node's modules of the same name.
function glue(name, m) {
  if (name === 'util') {
    m.TextEncoder = TextEncoder;
    m.TextDecoder = TextDecoder;
    m.isDeepStrictEqual = (a, b) => {
      try {
        builtin('assert').deepStrictEqual(a, b);
        return true;
      } catch (err) {
        return false;
      }
    };
  } else if (name === 'url') {
    m.URL = URL;
    m.URLSearchParams = URLSearchParams;
    m.fileURLToPath = fileURLToPath;
    m.pathToFileURL = pathToFileURL;
    const toASCII = builtin('punycode').toASCII, toUnicode = builtin('punycode').toUnicode;
    m.domainToASCII = (d) => { try { return toASCII(String(d).toLowerCase()); } catch (e) { return ''; } };
    m.domainToUnicode = (d) => { try { return toUnicode(String(d)); } catch (e) { return ''; } };
  } else if (name === 'querystring') {
    m.escape = (s) => encodeURIComponent(s).replace(/[!'()*]/g,
      (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
    m.unescape = (s) => {
      try { return decodeURIComponent(s); } catch (e) { return unescape(s); }
    };
  } else if (name === 'events') {
    if (m.EventEmitter === undefined) m.EventEmitter = m;
  }
}
function moduleBuiltin() {
  const list = [...nodeBuiltins].sort();
  return {
    builtinModules: list,
    isBuiltin: (s) => nodeBuiltins.has(String(s).startsWith('node:') ? String(s).slice(5) : s),
    createRequire(filename) {
      const f = String(filename && filename.href !== undefined ? filename.href : filename);
      return makeRequire(null, f.startsWith('file:') ? fileURLToPath(f) : f);
    },
  };
}
// A built-in jshost does not have, for a package that only probes for it:
// every property is a function that throws when called, naming itself.
const stubs = Object.create(null);
function stub(name) {
  if (stubs[name] === undefined) stubs[name] = stubPart(name, name);
  return stubs[name];
}
function stubPart(module, path) {
  const parts = Object.create(null);
  const target = function () {};
  return new Proxy(target, {
    get(t, k) {
      if (typeof k === 'symbol' || k === 'then' || k === '__esModule') return undefined;
      if (k === 'prototype') return t.prototype;
      if (k === 'default' && path === module) return stubs[module];
      if (parts[k] === undefined) parts[k] = stubPart(module, path + '.' + k);
      return parts[k];
    },
    apply() { throw stubError(module, path); },
    construct() { throw stubError(module, path); },
  });
}
function stubError(module, path) {
  return coded(new Error(`${path}() is not available in jshost (Node built-in ` +
                         `module '${module}')`), 'ERR_JSHOST_BUILTIN');
}

// Globals that are built-ins' classes, loaded on first use (a realm that
// never touches them never pays for them).
function lazyGlobal(name, get) {
  const settle = (value) => defineProperty(global, name, {
    value, writable: true, configurable: true, enumerable: false});
  defineProperty(global, name, {
    configurable: true, enumerable: false,
    get() { const v = get(); settle(v); return v; },
    set(v) { settle(v); },
  });
}
lazyGlobal('Buffer', () => builtin('buffer').Buffer);
lazyGlobal('URL', () => whatwgURL().URL);
lazyGlobal('URLSearchParams', () => whatwgURL().URLSearchParams);
function whatwgURL() {
  const m = builtin('jshost:whatwg-url');
  if (m.URL.canParse === undefined) {
    const URLClass = m.URL;
    defineProperty(URLClass, 'canParse', {
      value: function canParse(url, base) {
        try {
          new URLClass(url, base);
          return true;
        } catch (err) {
          return false;
        }
      },
      writable: true, configurable: true});
  }
  return m;
}

// --- entry points for the engine ----------------------------------------------

return {
  // The config (CommonJS).
  load(filename) { return load(filename, null); },
  // require() of a context, relative to dir.
  requireAt(dir) { return makeRequire(null, dir.endsWith('/') ? dir : dir + '/'); },
  // For import and import(): [format, id] with format 'esm', 'cjs', 'json',
  // 'builtin' or 'stub'.
  importTarget(referrer, specifier) {
    let s = specifier;
    if (s.startsWith('file://')) s = fileURLToPath(s);
    const t = resolve(s, referrer, importConditions);
    if (t.startsWith('builtin:')) return ['builtin', t.slice(8)];
    if (t.startsWith('stub:')) return ['stub', t.slice(5)];
    return [formatOf(t), t];
  },
  // The value an import of [format, id] gets as its default export.
  importValue(format, id) {
    if (format === 'builtin') return builtin(id);
    if (format === 'stub') return stub(id);
    return load(id, null);
  },
  // A failed import's message says where it was asked for.
  place(err, from) { return place(err, 'imported', from); },
  format: formatOf,
  builtin,
};
});
