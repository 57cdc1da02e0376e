// Modules (DESIGN §5): a CommonJS loader with Node's resolution (relative
// files, node_modules upward, package.json main and exports), and ES module
// configs with static imports. The loader is JavaScript holding four natives
// (read a file, stat, realpath, compile a module wrapper) in its closure only:
// user code reaches require(), never the natives.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>

#include "js_internal.h"

using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Module;
using v8::Object;
using v8::Promise;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace
{

const char kLoaderSource[] = R"JS(
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
})
)JS";

Isolate *
Iso(const FunctionCallbackInfo<Value> &info)
{
    return info.GetIsolate();
}

void
ThrowError(Isolate *isolate, const std::string &msg)
{
    Local<String> s = jse::Str(isolate, msg);
    if (!s.IsEmpty())
        isolate->ThrowException(v8::Exception::Error(s));
}

// readFile(path): the text, or undefined when there is no such file.
void
NativeReadFile(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    std::string path = jse::Utf8(isolate, info[0]);
    FILE *f = fopen(path.c_str(), "rb");
    if (f == nullptr) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            return;
        ThrowError(isolate, "cannot read " + path + ": " + strerror(errno));
        return;
    }
    // V8 strings stop near 512 MiB; a module that large is a mistake.
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 256 * 1024 * 1024) {
        fclose(f);
        ThrowError(isolate, path + " is too large to load");
        return;
    }
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        // reading a directory gives EISDIR here
        if (errno == EISDIR)
            return;
        ThrowError(isolate, "cannot read " + path + ": " + strerror(errno));
        return;
    }
    Local<String> s = jse::Str(isolate, text);
    if (s.IsEmpty()) {
        ThrowError(isolate, path + " is too large");
        return;
    }
    info.GetReturnValue().Set(s);
}

// stat(path): 0 nothing, 1 a file, 2 a directory.
void
NativeStat(const FunctionCallbackInfo<Value> &info)
{
    std::string path = jse::Utf8(Iso(info), info[0]);
    struct stat st;
    int kind = 0;
    if (stat(path.c_str(), &st) == 0)
        kind = S_ISDIR(st.st_mode) ? 2 : S_ISREG(st.st_mode) ? 1 : 0;
    info.GetReturnValue().Set(kind);
}

void
NativeRealpath(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    std::string path = jse::Utf8(isolate, info[0]);
    char *r = realpath(path.c_str(), nullptr);
    if (r == nullptr)
        return;
    Local<String> s = jse::Str(isolate, r, strlen(r));
    free(r);
    if (!s.IsEmpty())
        info.GetReturnValue().Set(s);
}

// compile(source, filename): the module wrapper, compiled with the file's
// own name and lines so stack traces point into it.
void
NativeCompile(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    Local<Context> context = isolate->GetCurrentContext();
    if (!info[0]->IsString() || !info[1]->IsString())
        return;
    v8::ScriptOrigin origin(isolate, info[1]);
    v8::ScriptCompiler::Source source(info[0].As<String>(), origin);
    Local<String> params[] = {String::NewFromUtf8Literal(isolate, "exports"),
                              String::NewFromUtf8Literal(isolate, "require"),
                              String::NewFromUtf8Literal(isolate, "module"),
                              String::NewFromUtf8Literal(isolate, "__filename"),
                              String::NewFromUtf8Literal(isolate, "__dirname")};
    Local<Function> fn;
    if (v8::ScriptCompiler::CompileFunction(context, &source, 5, params)
            .ToLocal(&fn))
        info.GetReturnValue().Set(fn);
}

bool
SetFn(Local<Context> context, Local<Object> obj, const char *name,
      v8::FunctionCallback cb)
{
    Isolate *isolate = context->GetIsolate();
    Local<Function> f;
    return Function::New(context, cb).ToLocal(&f) &&
           obj->Set(context, jse::Str(isolate, name, strlen(name)), f)
               .FromMaybe(false);
}

Local<Value>
LoaderGet(jse::Realm *realm, Local<Context> context, const char *name)
{
    Isolate *isolate = context->GetIsolate();
    Local<Value> v;
    if (!realm->loader.Get(isolate)
             ->Get(context, jse::Str(isolate, name, strlen(name)))
             .ToLocal(&v))
        return Local<Value>();
    return v;
}

MaybeLocal<Value>
LoaderCall(jse::Realm *realm, Local<Context> context, const char *name,
           int argc, Local<Value> argv[])
{
    Local<Value> f = LoaderGet(realm, context, name);
    if (f.IsEmpty() || !f->IsFunction())
        return MaybeLocal<Value>();
    return f.As<Function>()->Call(
        context, realm->loader.Get(context->GetIsolate()), argc, argv);
}

std::string
DirOf(const std::string &path)
{
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return "/";
    return path.substr(0, slash);
}

// --- ES modules ----------------------------------------------------------

bool
EndsWith(const std::string &s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

const std::string *
PathOfModule(jse::Realm *realm, Isolate *isolate, Local<Module> module)
{
    auto range = realm->esm_paths.equal_range(module->GetIdentityHash());
    for (auto it = range.first; it != range.second; ++it) {
        auto m = realm->esm.find(it->second);
        if (m != realm->esm.end() && m->second.Get(isolate) == module)
            return &it->second;
    }
    return nullptr;
}

bool
IsIdentifierName(const std::string &s)
{
    if (s.empty() || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '$'))
            return false;
    return true;
}

MaybeLocal<Value>
SyntheticEvaluate(Local<Context> context, Local<Module> module)
{
    Isolate *isolate = context->GetIsolate();
    jse::Realm *realm = jse::RealmOf(context);
    const std::string *key = PathOfModule(realm, isolate, module);
    if (key == nullptr)
        return MaybeLocal<Value>();
    auto it = realm->esm_synthetic.find(*key);
    if (it == realm->esm_synthetic.end())
        return MaybeLocal<Value>();
    Local<Value> exports = it->second.Get(isolate);
    if (module
            ->SetSyntheticModuleExport(
                isolate, String::NewFromUtf8Literal(isolate, "default"),
                exports)
            .IsNothing())
        return MaybeLocal<Value>();
    if (exports->IsObject() && !exports->IsFunction()) {
        // Names that appeared after the import was linked are not exports.
        TryCatch tc(isolate);
        Local<v8::Array> names;
        Local<Object> o = exports.As<Object>();
        if (o->GetOwnPropertyNames(context).ToLocal(&names)) {
            for (uint32_t i = 0; i < names->Length(); i++) {
                Local<Value> k, v;
                if (!names->Get(context, i).ToLocal(&k) || !k->IsString() ||
                    jse::Utf8(isolate, k) == "default" ||
                    !IsIdentifierName(jse::Utf8(isolate, k)) ||
                    !o->Get(context, k).ToLocal(&v))
                    continue;
                if (module->SetSyntheticModuleExport(isolate, k.As<String>(), v)
                        .IsNothing())
                    tc.Reset();
            }
        }
    }
    Local<Promise::Resolver> r;
    if (!Promise::Resolver::New(context).ToLocal(&r) ||
        r->Resolve(context, v8::Undefined(isolate)).IsNothing())
        return MaybeLocal<Value>();
    return r->GetPromise();
}

void
Remember(jse::Realm *realm, Isolate *isolate, const std::string &key,
         Local<Module> module)
{
    realm->esm[key].Reset(isolate, module);
    realm->esm_paths.emplace(module->GetIdentityHash(), key);
}

MaybeLocal<Module> LoadEsm(jse::Realm *realm, Local<Context> context,
                           const std::string &path, int depth);

// The module `specifier` names from `dir`: .mjs files are ES modules; anything
// else is required (CommonJS) and wrapped as a synthetic module.
MaybeLocal<Module>
LinkImport(jse::Realm *realm, Local<Context> context,
           const std::string &referrer, const std::string &specifier, int depth)
{
    Isolate *isolate = context->GetIsolate();
    std::string dir = DirOf(referrer);
    std::string key;
    bool path_like = specifier.rfind("./", 0) == 0 ||
                     specifier.rfind("../", 0) == 0 || specifier[0] == '/';
    std::string real;
    if (path_like) {
        std::string p = specifier[0] == '/' ? specifier : dir + "/" + specifier;
        char *r = realpath(p.c_str(), nullptr);
        if (r != nullptr) {
            real = r;
            free(r);
        } else if (EndsWith(specifier, ".mjs")) {
            ThrowError(isolate, "Cannot find module '" + specifier +
                                    "' imported from " + referrer);
            return MaybeLocal<Module>();
        }
    }
    if (!real.empty() && jse::IsEsmFile(context, real)) {
        key = real;
        Local<Module> m;
        if (!LoadEsm(realm, context, key, depth + 1).ToLocal(&m))
            return MaybeLocal<Module>();
        realm->esm_links[referrer + "\n" + specifier] = key;
        return m;
    }
    Local<Value> argv[] = {jse::Str(isolate, dir),
                           jse::Str(isolate, specifier)};
    Local<Value> resolved;
    if (!LoaderCall(realm, context, "resolveFrom", 2, argv).ToLocal(&resolved))
        return MaybeLocal<Module>();
    std::string file = jse::Utf8(isolate, resolved);
    key = "cjs:" + file;
    auto have = realm->esm.find(key);
    if (have == realm->esm.end()) {
        Local<Value> exports;
        if (!LoaderCall(realm, context, "requireFrom", 2, argv)
                 .ToLocal(&exports))
            return MaybeLocal<Module>();
        std::vector<Local<String>> names;
        names.push_back(String::NewFromUtf8Literal(isolate, "default"));
        if (exports->IsObject() && !exports->IsFunction()) {
            Local<v8::Array> own;
            if (exports.As<Object>()->GetOwnPropertyNames(context).ToLocal(
                    &own)) {
                for (uint32_t i = 0; i < own->Length(); i++) {
                    Local<Value> k;
                    if (!own->Get(context, i).ToLocal(&k) || !k->IsString())
                        continue;
                    std::string n = jse::Utf8(isolate, k);
                    if (n != "default" && IsIdentifierName(n))
                        names.push_back(k.As<String>());
                }
            }
        }
        Local<Module> m = Module::CreateSyntheticModule(
            isolate, jse::Str(isolate, file), names, SyntheticEvaluate);
        realm->esm_synthetic[key].Reset(isolate, exports);
        Remember(realm, isolate, key, m);
    }
    realm->esm_links[referrer + "\n" + specifier] = key;
    return realm->esm[key].Get(isolate);
}

MaybeLocal<Module>
LoadEsm(jse::Realm *realm, Local<Context> context, const std::string &path,
        int depth)
{
    Isolate *isolate = context->GetIsolate();
    auto have = realm->esm.find(path);
    if (have != realm->esm.end())
        return have->second.Get(isolate);
    if (depth > 200) {
        ThrowError(isolate, "imports nest too deep at " + path);
        return MaybeLocal<Module>();
    }
    FILE *f = fopen(path.c_str(), "rb");
    if (f == nullptr) {
        ThrowError(isolate, "Cannot find module " + path);
        return MaybeLocal<Module>();
    }
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n);
    fclose(f);
    Local<String> src = jse::Str(isolate, text);
    if (src.IsEmpty()) {
        ThrowError(isolate, path + " is too large");
        return MaybeLocal<Module>();
    }
    v8::ScriptOrigin origin(isolate, jse::Str(isolate, path), 0, 0, false, -1,
                            Local<Value>(), false, false, true);
    v8::ScriptCompiler::Source source(src, origin);
    Local<Module> module;
    if (!v8::ScriptCompiler::CompileModule(isolate, &source).ToLocal(&module))
        return MaybeLocal<Module>();
    Remember(realm, isolate, path, module);
    Local<v8::FixedArray> requests = module->GetModuleRequests();
    for (int i = 0; i < requests->Length(); i++) {
        Local<v8::ModuleRequest> req =
            requests->Get(context, i).As<v8::ModuleRequest>();
        std::string spec = jse::Utf8(isolate, req->GetSpecifier());
        Local<Module> dep;
        if (!LinkImport(realm, context, path, spec, depth).ToLocal(&dep))
            return MaybeLocal<Module>();
    }
    return module;
}

MaybeLocal<Module>
ResolveImport(Local<Context> context, Local<String> specifier,
              Local<v8::FixedArray> assertions, Local<Module> referrer)
{
    (void)assertions;
    Isolate *isolate = context->GetIsolate();
    jse::Realm *realm = jse::RealmOf(context);
    const std::string *from = PathOfModule(realm, isolate, referrer);
    if (from != nullptr) {
        auto link =
            realm->esm_links.find(*from + "\n" + jse::Utf8(isolate, specifier));
        if (link != realm->esm_links.end()) {
            auto m = realm->esm.find(link->second);
            if (m != realm->esm.end())
                return m->second.Get(isolate);
        }
    }
    ThrowError(isolate,
               "cannot resolve import '" + jse::Utf8(isolate, specifier) + "'");
    return MaybeLocal<Module>();
}

void
InitImportMeta(Local<Context> context, Local<Module> module, Local<Object> meta)
{
    Isolate *isolate = context->GetIsolate();
    jse::Realm *realm = jse::RealmOf(context);
    const std::string *path = PathOfModule(realm, isolate, module);
    if (path == nullptr)
        return;
    if (meta->Set(context, String::NewFromUtf8Literal(isolate, "url"),
                  jse::Str(isolate, "file://" + *path))
            .IsNothing())
        return;
}

void
ReturnData(const FunctionCallbackInfo<Value> &info)
{
    info.GetReturnValue().Set(info.Data());
}

// import(specifier) from any script or module: .mjs files as ES modules,
// anything else through require() as a synthetic module.
MaybeLocal<Promise>
DynamicImport(Local<Context> context, Local<v8::Data> options,
              Local<Value> resource_name, Local<String> specifier,
              Local<v8::FixedArray> assertions)
{
    (void)options;
    (void)assertions;
    Isolate *isolate = context->GetIsolate();
    jse::Realm *realm = jse::RealmOf(context);
    Local<Promise::Resolver> resolver;
    if (realm == nullptr || !Promise::Resolver::New(context).ToLocal(&resolver))
        return MaybeLocal<Promise>();
    std::string from = jse::Utf8(isolate, resource_name);
    // Scripts named by an identifier import relative to the context's cwd.
    if (from.empty() || from[0] != '/')
        from = realm->cwd + "/[eval]";
    std::string spec = jse::Utf8(isolate, specifier);
    TryCatch tc(isolate);
    Local<Module> m;
    Local<Value> evaluated, settled = v8::Undefined(isolate);
    bool ok = !spec.empty() &&
              LinkImport(realm, context, from, spec, 0).ToLocal(&m) &&
              m->InstantiateModule(context, ResolveImport).FromMaybe(false) &&
              m->Evaluate(context).ToLocal(&evaluated);
    if (ok && m->GetStatus() == Module::kErrored) {
        isolate->ThrowException(m->GetException());
        ok = false;
    }
    if (ok) {
        Local<Value> ns = m->GetModuleNamespace();
        if (evaluated->IsPromise()) {
            Local<Function> give;
            Local<Promise> after;
            ok = Function::New(context, ReturnData, ns).ToLocal(&give) &&
                 evaluated.As<Promise>()->Then(context, give).ToLocal(&after);
            if (ok)
                settled = after;
        } else {
            settled = ns;
        }
    }
    if (tc.HasTerminated())
        return MaybeLocal<Promise>();
    if (!ok) {
        Local<Value> why =
            tc.HasCaught()
                ? tc.Exception()
                : Local<Value>(v8::Exception::Error(
                      String::NewFromUtf8Literal(isolate, "import() failed")));
        tc.Reset();
        if (resolver->Reject(context, why).IsNothing())
            return MaybeLocal<Promise>();
        return resolver->GetPromise();
    }
    if (resolver->Resolve(context, settled).IsNothing())
        return MaybeLocal<Promise>();
    return resolver->GetPromise();
}

MaybeLocal<Value>
LoadEsmConfig(jse::Realm *realm, Local<Context> context,
              const std::string &path)
{
    Isolate *isolate = context->GetIsolate();
    Local<Module> module;
    if (!LoadEsm(realm, context, path, 0).ToLocal(&module))
        return MaybeLocal<Value>();
    if (!module->InstantiateModule(context, ResolveImport).FromMaybe(false))
        return MaybeLocal<Value>();
    Local<Value> result;
    if (!module->Evaluate(context).ToLocal(&result))
        return MaybeLocal<Value>();
    // Top-level await may need microtasks; timers cannot run during a load.
    isolate->PerformMicrotaskCheckpoint();
    if (result->IsPromise()) {
        Local<Promise> p = result.As<Promise>();
        // Its rejection is the config's error, reported as such; not an
        // unhandled rejection besides.
        Local<Function> ignore;
        Local<Promise> caught;
        if (!Function::New(context, [](const FunctionCallbackInfo<Value> &) {})
                 .ToLocal(&ignore) ||
            !p->Catch(context, ignore).ToLocal(&caught))
            return MaybeLocal<Value>();
        if (p->State() == Promise::kRejected) {
            isolate->ThrowException(p->Result());
            return MaybeLocal<Value>();
        }
        if (p->State() == Promise::kPending) {
            ThrowError(isolate, path + ": top-level await did not settle "
                                       "while the config loaded");
            return MaybeLocal<Value>();
        }
    }
    if (module->GetStatus() == Module::kErrored) {
        isolate->ThrowException(module->GetException());
        return MaybeLocal<Value>();
    }
    Local<Value> ns = module->GetModuleNamespace();
    Local<Value> def;
    if (!ns.As<Object>()
             ->Get(context, String::NewFromUtf8Literal(isolate, "default"))
             .ToLocal(&def))
        return MaybeLocal<Value>();
    if (def->IsUndefined()) {
        ThrowError(isolate, path + ": the ES module config has no default "
                                   "export (export default {functions: ...})");
        return MaybeLocal<Value>();
    }
    return def;
}

} // namespace

namespace jse
{

// .mjs, or .js under a package.json saying "type": "module" (the nearest
// package.json decides, as in Node).
bool
IsEsmFile(Local<Context> context, const std::string &path)
{
    if (EndsWith(path, ".mjs"))
        return true;
    if (!EndsWith(path, ".js"))
        return false;
    Isolate *isolate = context->GetIsolate();
    std::string dir = DirOf(path);
    for (;;) {
        std::string pkg = dir + "/package.json";
        FILE *f = fopen(pkg.c_str(), "rb");
        if (f != nullptr) {
            std::string text;
            char buf[8192];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, f)) > 0 &&
                   text.size() < (1 << 20))
                text.append(buf, n);
            fclose(f);
            TryCatch tc(isolate);
            Local<String> src = Str(isolate, text);
            Local<Value> v, type;
            return !src.IsEmpty() &&
                   v8::JSON::Parse(context, src).ToLocal(&v) && v->IsObject() &&
                   v.As<Object>()
                       ->Get(context,
                             String::NewFromUtf8Literal(isolate, "type"))
                       .ToLocal(&type) &&
                   type->IsString() && Utf8(isolate, type) == "module";
        }
        if (dir == "/" || dir.empty())
            return false;
        dir = DirOf(dir);
    }
}

bool
ModulesInstall(Realm *realm, Local<Context> context, bool global_require)
{
    Isolate *isolate = context->GetIsolate();
    isolate->SetHostInitializeImportMetaObjectCallback(InitImportMeta);
    isolate->SetHostImportModuleDynamicallyCallback(DynamicImport);
    Local<Object> natives = Object::New(isolate);
    if (!SetFn(context, natives, "readFile", NativeReadFile) ||
        !SetFn(context, natives, "stat", NativeStat) ||
        !SetFn(context, natives, "realpath", NativeRealpath) ||
        !SetFn(context, natives, "compile", NativeCompile))
        return false;
    v8::ScriptOrigin origin(
        isolate, String::NewFromUtf8Literal(isolate, "jshost:modules"));
    v8::ScriptCompiler::Source source(
        String::NewFromUtf8Literal(isolate, kLoaderSource), origin);
    Local<v8::Script> script;
    Local<Value> factory, loader;
    Local<Value> argv[] = {natives};
    if (!v8::ScriptCompiler::Compile(context, &source).ToLocal(&script) ||
        !script->Run(context).ToLocal(&factory) || !factory->IsFunction() ||
        !factory.As<Function>()
             ->Call(context, v8::Undefined(isolate), 1, argv)
             .ToLocal(&loader) ||
        !loader->IsObject())
        return false;
    realm->loader.Reset(isolate, loader.As<Object>());
    if (!global_require)
        return true;
    Local<Value> rargv[] = {Str(isolate, realm->cwd)};
    Local<Value> req;
    if (!LoaderCall(realm, context, "requireAt", 1, rargv).ToLocal(&req))
        return false;
    return context->Global()
        ->Set(context, String::NewFromUtf8Literal(isolate, "require"), req)
        .FromMaybe(false);
}

MaybeLocal<Value>
ModulesLoadConfig(Realm *realm, Local<Context> context, const std::string &path)
{
    if (IsEsmFile(context, path))
        return LoadEsmConfig(realm, context, path);
    Local<Value> argv[] = {Str(context->GetIsolate(), path)};
    return LoaderCall(realm, context, "load", 1, argv);
}

} // namespace jse
