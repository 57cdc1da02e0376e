// Modules (docs/modules.md): require() and ES modules with Node's resolution,
// Node's pure built-ins, and the confinement of what JavaScript may read.
// Resolution and CommonJS are JavaScript (worker/js/require.js), holding the
// natives of this file in its closure only: user code reaches require(),
// never the natives. ES modules are V8's: this file compiles and links them,
// asking require.js what each specifier names.
//
// Confinement: every file the loader reads goes through MayRead, which allows
// the realm's trees (the config's directory, the node_modules directories
// Node's lookup visits from it, the config's `roots`; for a context also its
// working directory) by real path, so `..` and symlinks cannot lead out.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>

#include "js_internal.h"
#include "node_builtins.h"

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

jse::Realm *
RealmOfInfo(const FunctionCallbackInfo<Value> &info)
{
    return jse::RealmOf(info.GetIsolate()->GetCurrentContext());
}

void
ThrowCoded(Isolate *isolate, const std::string &msg, const char *code)
{
    Local<String> s = jse::Str(isolate, msg);
    if (s.IsEmpty())
        return;
    Local<Value> err = v8::Exception::Error(s);
    if (code != nullptr && err->IsObject() &&
        err.As<Object>()
            ->Set(isolate->GetCurrentContext(),
                  String::NewFromUtf8Literal(isolate, "code"),
                  jse::Str(isolate, code, strlen(code)))
            .IsNothing())
        return;
    isolate->ThrowException(err);
}

void
ThrowError(Isolate *isolate, const std::string &msg)
{
    ThrowCoded(isolate, msg, nullptr);
}

std::string
DirOf(const std::string &path)
{
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return "/";
    return path.substr(0, slash);
}

bool
EndsWith(const std::string &s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool
StartsWith(const std::string &s, const char *prefix)
{
    return s.compare(0, strlen(prefix), prefix) == 0;
}

// --- confinement ----------------------------------------------------------

// `path` is `dir` or below it.
bool
Under(const std::string &path, const std::string &dir)
{
    if (dir == "/")
        return true;
    return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
           (path.size() == dir.size() || path[dir.size()] == '/');
}

// The real path of `path`, or for a path that does not exist, the real path
// of its longest existing parent with the rest appended. Empty when even
// that fails.
std::string
RealOrParent(const std::string &path, bool *exists)
{
    *exists = false;
    char *r = realpath(path.c_str(), nullptr);
    if (r != nullptr) {
        std::string out = r;
        free(r);
        *exists = true;
        return out;
    }
    if (path.empty() || path[0] != '/' || path == "/")
        return std::string();
    std::string rest;
    std::string p = path;
    while (p != "/") {
        size_t slash = p.rfind('/');
        rest = p.substr(slash) + rest;
        p = slash == 0 ? "/" : p.substr(0, slash);
        r = realpath(p.c_str(), nullptr);
        if (r != nullptr) {
            std::string out = r;
            free(r);
            return (out == "/" ? "" : out) + rest;
        }
    }
    return rest;
}

// Whether JavaScript of `realm` may read `real` (a real path): inside one of
// its trees, or a package.json of a directory above one (Node reads those for
// "type", "imports" and self-reference).
bool
MayRead(const jse::Realm *realm, const std::string &real)
{
    for (const std::string &t : realm->trees)
        if (Under(real, t))
            return true;
    if (EndsWith(real, "/package.json")) {
        std::string dir = DirOf(real);
        for (const std::string &t : realm->trees)
            if (Under(t, dir))
                return true;
    }
    return false;
}

std::string
ConfinedMessage(const std::string &path)
{
    return "Cannot read " + path +
           ": it is outside the directories jshost lets JavaScript read (the "
           "config's directory, the node_modules above it and the config's "
           "`roots`)";
}

// readFile(path): the text, or undefined when there is no such file.
void
NativeReadFile(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    jse::Realm *realm = RealmOfInfo(info);
    std::string path = jse::Utf8(isolate, info[0]);
    bool exists;
    std::string real = RealOrParent(path, &exists);
    if (real.empty() || !MayRead(realm, real)) {
        ThrowCoded(isolate, ConfinedMessage(path), "ERR_JSHOST_CONFINED");
        return;
    }
    if (!exists)
        return;
    FILE *f = fopen(real.c_str(), "rb");
    if (f == nullptr) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            return;
        ThrowError(isolate, "cannot read " + path + ": " + strerror(errno));
        return;
    }
    // V8 strings stop near 512 MiB; a module that large is a mistake.
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return;
    }
    if (st.st_size > 256 * 1024 * 1024) {
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

// stat(path): 0 nothing, 1 a file, 2 a directory, -1 outside the trees
// (whether it exists or not: that is not JavaScript's to learn).
void
NativeStat(const FunctionCallbackInfo<Value> &info)
{
    jse::Realm *realm = RealmOfInfo(info);
    std::string path = jse::Utf8(Iso(info), info[0]);
    bool exists;
    std::string real = RealOrParent(path, &exists);
    int kind = 0;
    if (real.empty() || !MayRead(realm, real)) {
        kind = -1;
    } else if (exists) {
        struct stat st;
        if (stat(real.c_str(), &st) == 0)
            kind = S_ISDIR(st.st_mode) ? 2 : S_ISREG(st.st_mode) ? 1 : 0;
    }
    info.GetReturnValue().Set(kind);
}

void
NativeRealpath(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    std::string path = jse::Utf8(isolate, info[0]);
    bool exists;
    std::string real = RealOrParent(path, &exists);
    if (!exists || !MayRead(RealmOfInfo(info), real))
        return;
    Local<String> s = jse::Str(isolate, real);
    if (!s.IsEmpty())
        info.GetReturnValue().Set(s);
}

// The SyntaxErrors that say a file is an ES module, not CommonJS (Node's
// syntax detection looks for the same).
bool
IsEsmSyntaxError(Isolate *isolate, Local<Value> exception)
{
    if (!exception->IsNativeError() || !exception->IsObject())
        return false;
    Local<Context> context = isolate->GetCurrentContext();
    Local<Value> msg;
    if (!exception.As<Object>()
             ->Get(context, String::NewFromUtf8Literal(isolate, "message"))
             .ToLocal(&msg))
        return false;
    std::string m = jse::Utf8(isolate, msg);
    return m == "Cannot use import statement outside a module" ||
           m == "Unexpected token 'export'" ||
           m == "Cannot use 'import.meta' outside a module" ||
           m == "await is only valid in async functions and the top level "
                "bodies of modules";
}

// compile(source, filename, detect): the module wrapper, compiled with the
// file's own name and lines so stack traces point into it; with detect,
// null when the source is an ES module by its syntax. Other SyntaxErrors
// propagate from here untouched, so they point into the file.
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
    TryCatch tc(isolate);
    Local<Function> fn;
    if (v8::ScriptCompiler::CompileFunction(context, &source, 5, params)
            .ToLocal(&fn)) {
        info.GetReturnValue().Set(fn);
        return;
    }
    if (info[2]->IsTrue() && tc.HasCaught() && !tc.HasTerminated() &&
        IsEsmSyntaxError(isolate, tc.Exception())) {
        info.GetReturnValue().SetNull();
        return;
    }
    tc.ReThrow();
}

// builtinEntry(name): the entry file of an embedded built-in, or undefined.
void
NativeBuiltinEntry(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    std::string name = jse::Utf8(isolate, info[0]);
    size_t lo = 0, hi = jsn::kBuiltinCount;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(jsn::kBuiltins[mid].name, name.c_str());
        if (c == 0) {
            info.GetReturnValue().Set(
                jse::Str(isolate, jsn::kBuiltins[mid].file,
                         strlen(jsn::kBuiltins[mid].file)));
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

// builtinFile(path): [source, requires JSON] of an embedded file.
void
NativeBuiltinFile(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    std::string path = jse::Utf8(isolate, info[0]);
    size_t lo = 0, hi = jsn::kFileCount;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const jsn::File &f = jsn::kFiles[mid];
        int c = strcmp(f.path, path.c_str());
        if (c == 0) {
            Local<Value> pair[] = {
                jse::Str(isolate, f.source, f.len),
                jse::Str(isolate, f.requires, strlen(f.requires))};
            if (pair[0].IsEmpty() || pair[1].IsEmpty())
                return;
            info.GetReturnValue().Set(v8::Array::New(isolate, pair, 2));
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    ThrowError(isolate, "no embedded file " + path);
}

// callerPosition(): "file:line" of the nearest frame that is not jshost's
// own (a prelude or an embedded built-in), or undefined.
void
NativeCallerPosition(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    Local<v8::StackTrace> st = v8::StackTrace::CurrentStackTrace(isolate, 32);
    for (int i = 0; i < st->GetFrameCount(); i++) {
        Local<v8::StackFrame> fr = st->GetFrame(isolate, i);
        std::string name = jse::Utf8(isolate, fr->GetScriptName());
        if (name.empty() || jse::IsOwnScript(name) || StartsWith(name, "node:"))
            continue;
        info.GetReturnValue().Set(jse::Str(
            isolate, name + ":" + std::to_string(fr->GetLineNumber())));
        return;
    }
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

// --- ES modules ----------------------------------------------------------

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

// A synthetic module's exports: `default` is the value; each name it was
// made with is that property of the value.
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
    Local<Value> exports = it->second.value.Get(isolate);
    if (module
            ->SetSyntheticModuleExport(
                isolate, String::NewFromUtf8Literal(isolate, "default"),
                exports)
            .IsNothing())
        return MaybeLocal<Value>();
    if (exports->IsObject()) {
        Local<Object> o = exports.As<Object>();
        for (const std::string &n : it->second.names) {
            TryCatch tc(isolate);
            Local<String> k = jse::Str(isolate, n);
            Local<Value> v;
            if (k.IsEmpty() || !o->Get(context, k).ToLocal(&v))
                v = v8::Undefined(isolate);
            if (module->SetSyntheticModuleExport(isolate, k, v).IsNothing())
                tc.Reset();
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

// The names `import {a, b as c} from 'spec'` asks of spec in `source`: what a
// stub module must offer (a package importing fs by name still loads).
std::vector<std::string>
ImportedNames(const std::string &source, const std::string &spec)
{
    std::vector<std::string> out;
    for (const char *q : {"'", "\""}) {
        std::string needle = std::string("from ") + q + spec + q;
        for (size_t at = source.find(needle); at != std::string::npos;
             at = source.find(needle, at + 1)) {
            size_t close = source.rfind('}', at);
            size_t open = close == std::string::npos ? std::string::npos
                                                     : source.rfind('{', close);
            if (open == std::string::npos || at - close > 8)
                continue;
            std::string list = source.substr(open + 1, close - open - 1);
            size_t p = 0;
            while (p < list.size()) {
                size_t comma = list.find(',', p);
                std::string item = list.substr(p, comma == std::string::npos
                                                      ? std::string::npos
                                                      : comma - p);
                p = comma == std::string::npos ? list.size() : comma + 1;
                size_t b = item.find_first_not_of(" \t\r\n");
                if (b == std::string::npos)
                    continue;
                size_t e = item.find_first_of(" \t\r\n", b);
                std::string name = item.substr(
                    b, e == std::string::npos ? std::string::npos : e - b);
                if (IsIdentifierName(name) && name != "default")
                    out.push_back(name);
            }
        }
    }
    return out;
}

MaybeLocal<Module> LoadEsm(jse::Realm *realm, Local<Context> context,
                           const std::string &path, int depth);

// The module `specifier` names from `referrer` (a file path): an ES module,
// or a synthetic one around what require.js gives for CommonJS, JSON, a
// built-in or a stub. `from` ("file:line") says where, for errors.
MaybeLocal<Module>
LinkImport(jse::Realm *realm, Local<Context> context,
           const std::string &referrer, const std::string &specifier,
           const std::string &from, const std::string *source, int depth)
{
    Isolate *isolate = context->GetIsolate();
    Local<Value> argv[] = {jse::Str(isolate, referrer),
                           jse::Str(isolate, specifier)};
    Local<Value> target, err;
    {
        TryCatch tc(isolate);
        if (!LoaderCall(realm, context, "importTarget", 2, argv)
                 .ToLocal(&target) ||
            !target->IsArray()) {
            if (!tc.HasCaught() || tc.HasTerminated()) {
                tc.ReThrow();
                return MaybeLocal<Module>();
            }
            err = tc.Exception();
        }
    }
    if (!err.IsEmpty()) {
        // Said where it was asked for, then thrown on.
        Local<Value> pargv[] = {
            err, from.empty() ? Local<Value>(v8::Undefined(isolate))
                              : Local<Value>(jse::Str(isolate, from))};
        Local<Value> placed;
        if (LoaderCall(realm, context, "place", 2, pargv).ToLocal(&placed))
            isolate->ThrowException(placed);
        return MaybeLocal<Module>();
    }
    Local<v8::Array> pair = target.As<v8::Array>();
    Local<Value> fv, iv;
    if (!pair->Get(context, 0).ToLocal(&fv) ||
        !pair->Get(context, 1).ToLocal(&iv))
        return MaybeLocal<Module>();
    std::string format = jse::Utf8(isolate, fv), id = jse::Utf8(isolate, iv);
    std::string key;
    if (format == "esm") {
        key = id;
        Local<Module> m;
        if (!LoadEsm(realm, context, id, depth + 1).ToLocal(&m))
            return MaybeLocal<Module>();
    } else {
        // A stub offers what its importer asks for, so it is its importer's.
        key = format + ":" + id;
        if (format == "stub")
            key += "\n" + referrer;
        if (realm->esm.find(key) == realm->esm.end()) {
            Local<Value> vargv[] = {fv, iv};
            Local<Value> exports;
            if (!LoaderCall(realm, context, "importValue", 2, vargv)
                     .ToLocal(&exports))
                return MaybeLocal<Module>();
            std::vector<std::string> names;
            if (format == "stub") {
                if (source != nullptr) {
                    names = ImportedNames(*source, specifier);
                }
            } else if (format != "json" && exports->IsObject()) {
                // CommonJS: the names its exports have once it has run (Node
                // finds them in the source; these are the same for the
                // packages that matter, and for a few more).
                TryCatch tc(isolate);
                Local<v8::Array> own;
                if (exports.As<Object>()
                        ->GetPropertyNames(
                            context, v8::KeyCollectionMode::kOwnOnly,
                            v8::ONLY_ENUMERABLE, v8::IndexFilter::kSkipIndices)
                        .ToLocal(&own)) {
                    for (uint32_t i = 0; i < own->Length(); i++) {
                        Local<Value> k;
                        if (!own->Get(context, i).ToLocal(&k) || !k->IsString())
                            continue;
                        std::string n = jse::Utf8(isolate, k);
                        if (n != "default" && IsIdentifierName(n))
                            names.push_back(n);
                    }
                }
            }
            std::vector<Local<String>> vnames;
            vnames.push_back(String::NewFromUtf8Literal(isolate, "default"));
            for (const std::string &n : names) {
                Local<String> s = jse::Str(isolate, n);
                if (s.IsEmpty())
                    return MaybeLocal<Module>();
                vnames.push_back(s);
            }
            Local<Module> m = Module::CreateSyntheticModule(
                isolate, jse::Str(isolate, id), vnames, SyntheticEvaluate);
            jse::Synthetic &syn = realm->esm_synthetic[key];
            syn.value.Reset(isolate, exports);
            syn.names = std::move(names);
            Remember(realm, isolate, key, m);
        }
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
    Local<Value> rargv[] = {jse::Str(isolate, path)};
    Local<Value> text;
    // Through readFile: the same confinement as require().
    Local<Function> read = realm->read_file.Get(isolate);
    if (!read->Call(context, v8::Undefined(isolate), 1, rargv).ToLocal(&text))
        return MaybeLocal<Module>();
    if (!text->IsString()) {
        ThrowCoded(isolate, "Cannot find module " + path, "MODULE_NOT_FOUND");
        return MaybeLocal<Module>();
    }
    std::string source = jse::Utf8(isolate, text);
    v8::ScriptOrigin origin(isolate, jse::Str(isolate, path), 0, 0, false, -1,
                            Local<Value>(), false, false, true);
    v8::ScriptCompiler::Source src(text.As<String>(), origin);
    Local<Module> module;
    if (!v8::ScriptCompiler::CompileModule(isolate, &src).ToLocal(&module))
        return MaybeLocal<Module>();
    Remember(realm, isolate, path, module);
    Local<v8::FixedArray> requests = module->GetModuleRequests();
    for (int i = 0; i < requests->Length(); i++) {
        Local<v8::ModuleRequest> req =
            requests->Get(context, i).As<v8::ModuleRequest>();
        std::string spec = jse::Utf8(isolate, req->GetSpecifier());
        v8::Location loc =
            module->SourceOffsetToLocation(req->GetSourceOffset());
        std::string from = path + ":" + std::to_string(loc.GetLineNumber() + 1);
        Local<Module> dep;
        if (!LinkImport(realm, context, path, spec, from, &source, depth)
                 .ToLocal(&dep)) {
            // Not linked: forget it, so that a later import tries again.
            realm->esm.erase(path);
            return MaybeLocal<Module>();
        }
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

// import.meta.resolve(specifier): what an import from this module would load.
void
MetaResolve(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    Local<Context> context = isolate->GetCurrentContext();
    jse::Realm *realm = jse::RealmOf(context);
    Local<Value> argv[] = {info.Data(), info[0]};
    Local<String> spec;
    if (!info[0]->ToString(context).ToLocal(&spec))
        return;
    argv[1] = spec;
    Local<Value> target;
    if (!LoaderCall(realm, context, "importTarget", 2, argv).ToLocal(&target) ||
        !target->IsArray())
        return;
    Local<Value> fv, iv;
    if (!target.As<v8::Array>()->Get(context, 0).ToLocal(&fv) ||
        !target.As<v8::Array>()->Get(context, 1).ToLocal(&iv))
        return;
    std::string format = jse::Utf8(isolate, fv), id = jse::Utf8(isolate, iv);
    std::string url =
        format == "builtin" || format == "stub" ? "node:" + id : "file://" + id;
    info.GetReturnValue().Set(jse::Str(isolate, url));
}

void
InitImportMeta(Local<Context> context, Local<Module> module, Local<Object> meta)
{
    Isolate *isolate = context->GetIsolate();
    jse::Realm *realm = jse::RealmOf(context);
    const std::string *path = PathOfModule(realm, isolate, module);
    if (path == nullptr)
        return;
    Local<String> p = jse::Str(isolate, *path);
    Local<Function> resolve;
    if (p.IsEmpty() ||
        meta->Set(context, String::NewFromUtf8Literal(isolate, "url"),
                  jse::Str(isolate, "file://" + *path))
            .IsNothing() ||
        meta->Set(context, String::NewFromUtf8Literal(isolate, "filename"), p)
            .IsNothing() ||
        meta->Set(context, String::NewFromUtf8Literal(isolate, "dirname"),
                  jse::Str(isolate, DirOf(*path)))
            .IsNothing() ||
        !Function::New(context, MetaResolve, p).ToLocal(&resolve) ||
        meta->Set(context, String::NewFromUtf8Literal(isolate, "resolve"),
                  resolve)
            .IsNothing())
        return;
}

void
ReturnData(const FunctionCallbackInfo<Value> &info)
{
    info.GetReturnValue().Set(info.Data());
}

// Instantiates and evaluates `m`: its namespace, or for a module with
// top-level await, a promise of it (sync: refused, as Node's require()).
MaybeLocal<Value>
EvaluateModule(Local<Context> context, Local<Module> m, bool sync,
               const std::string &path)
{
    Isolate *isolate = context->GetIsolate();
    if (m->GetStatus() == Module::kErrored) {
        isolate->ThrowException(m->GetException());
        return MaybeLocal<Value>();
    }
    if (m->GetStatus() < Module::kInstantiated &&
        !m->InstantiateModule(context, ResolveImport).FromMaybe(false))
        return MaybeLocal<Value>();
    if (sync && m->GetStatus() == Module::kInstantiated && m->IsGraphAsync()) {
        ThrowCoded(isolate,
                   "require() cannot load " + path +
                       ": it (or a module it imports) uses top-level await; "
                       "use import()",
                   "ERR_REQUIRE_ASYNC_MODULE");
        return MaybeLocal<Value>();
    }
    Local<Value> evaluated;
    if (!m->Evaluate(context).ToLocal(&evaluated))
        return MaybeLocal<Value>();
    if (m->GetStatus() == Module::kErrored) {
        isolate->ThrowException(m->GetException());
        return MaybeLocal<Value>();
    }
    Local<Value> ns = m->GetModuleNamespace();
    if (sync || !evaluated->IsPromise())
        return ns;
    Local<Function> give;
    Local<Promise> after;
    if (!Function::New(context, ReturnData, ns).ToLocal(&give) ||
        !evaluated.As<Promise>()->Then(context, give).ToLocal(&after))
        return MaybeLocal<Value>();
    return after;
}

// requireEsm(path): the namespace of an ES module loaded synchronously.
void
NativeRequireEsm(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = Iso(info);
    Local<Context> context = isolate->GetCurrentContext();
    jse::Realm *realm = jse::RealmOf(context);
    std::string path = jse::Utf8(isolate, info[0]);
    Local<Module> m;
    Local<Value> ns;
    if (!LoadEsm(realm, context, path, 0).ToLocal(&m) ||
        !EvaluateModule(context, m, true, path).ToLocal(&ns))
        return;
    info.GetReturnValue().Set(ns);
}

// import(specifier) from any script or module.
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
        from = realm->cwd + "/";
    std::string spec = jse::Utf8(isolate, specifier);
    TryCatch tc(isolate);
    Local<Module> m;
    Local<Value> settled;
    bool ok =
        LinkImport(realm, context, from, spec, "", nullptr, 0).ToLocal(&m) &&
        EvaluateModule(context, m, false, spec).ToLocal(&settled);
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
    Local<Value> result;
    if (!LoadEsm(realm, context, path, 0).ToLocal(&module) ||
        !EvaluateModule(context, module, false, path).ToLocal(&result))
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
        ThrowError(isolate, "the config has no default export: an ES "
                            "module config must `export default "
                            "{functions: {...}}`");
        return MaybeLocal<Value>();
    }
    return def;
}

// The trees of a realm whose code lives in `dir`: dir itself and the
// node_modules directories Node's lookup visits from it.
void
AddTrees(std::vector<std::string> *trees, const std::string &dir)
{
    bool exists;
    std::string real = RealOrParent(dir, &exists);
    if (real.empty())
        real = dir;
    trees->push_back(real);
    for (std::string d = DirOf(real);; d = DirOf(d)) {
        trees->push_back((d == "/" ? "" : d) + "/node_modules");
        if (d == "/")
            break;
    }
}

} // namespace

namespace jse
{

bool
IsOwnScript(const std::string &name)
{
    return StartsWith(name, "jshost:");
}

bool
ModulesInstall(Realm *realm, Local<Context> context, bool global_require)
{
    Isolate *isolate = context->GetIsolate();
    js_engine *e = realm->engine;
    isolate->SetHostInitializeImportMetaObjectCallback(InitImportMeta);
    isolate->SetHostImportModuleDynamicallyCallback(DynamicImport);
    // What JavaScript of this realm may read: the config's trees and roots,
    // and a context's own working directory.
    realm->trees.clear();
    if (!e->config_path.empty()) {
        AddTrees(&realm->trees, DirOf(e->config_path));
        for (const std::string &r : e->roots)
            AddTrees(&realm->trees, r);
    }
    if (realm->id != 0 || e->config_path.empty())
        AddTrees(&realm->trees, realm->cwd);
    Local<Object> natives = Object::New(isolate);
    Local<Function> read;
    if (!Function::New(context, NativeReadFile).ToLocal(&read) ||
        !natives
             ->Set(context, String::NewFromUtf8Literal(isolate, "readFile"),
                   read)
             .FromMaybe(false) ||
        !SetFn(context, natives, "stat", NativeStat) ||
        !SetFn(context, natives, "realpath", NativeRealpath) ||
        !SetFn(context, natives, "compile", NativeCompile) ||
        !SetFn(context, natives, "requireEsm", NativeRequireEsm) ||
        !SetFn(context, natives, "builtinEntry", NativeBuiltinEntry) ||
        !SetFn(context, natives, "builtinFile", NativeBuiltinFile) ||
        !SetFn(context, natives, "callerPosition", NativeCallerPosition) ||
        !natives
             ->Set(context, String::NewFromUtf8Literal(isolate, "cwd"),
                   Str(isolate, realm->cwd))
             .FromMaybe(false))
        return false;
    realm->read_file.Reset(isolate, read);
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
    Isolate *isolate = context->GetIsolate();
    Local<Value> argv[] = {Str(isolate, path)};
    Local<Value> format;
    if (!LoaderCall(realm, context, "format", 1, argv).ToLocal(&format))
        return MaybeLocal<Value>();
    if (Utf8(isolate, format) == "esm")
        return LoadEsmConfig(realm, context, path);
    return LoaderCall(realm, context, "load", 1, argv);
}

} // namespace jse
