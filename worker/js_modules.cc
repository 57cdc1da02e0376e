// Modules (docs/config.md): a CommonJS loader with Node's resolution
// (relative files, node_modules upward, package.json main and exports), and
// ES modules: configs, static imports and import(). The loader is JavaScript
// (worker/js/require.js) holding four natives of this file (read a file,
// stat, realpath, compile a module wrapper) in its closure only: user code
// reaches require(), never the natives.
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
    Local<Value> loader;
    Local<Value> argv[] = {natives};
    if (!RunPrelude(context, jsp::kRequire, "jshost:modules", 1, argv,
                    &loader) ||
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
