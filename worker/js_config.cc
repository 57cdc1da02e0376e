// Loading the config (docs/config.md): the file's real path, its exports
// checked (an object with a `functions` object of functions, settings that
// are positive integers, `reload` a boolean), the functions kept for calls,
// the other exports (the extras) packed for the manager, a warning for an
// extra that looks like a misspelt setting, and the files it loaded (the
// manager watches them to reload the host).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <sys/stat.h>

#include "js_internal.h"
#include "js_value.h"
#include "log.h"

using v8::Array;
using v8::Context;
using v8::Function;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace jse
{

static const char *
TypeName(Local<Value> v)
{
    if (v->IsUndefined())
        return "undefined";
    if (v->IsNull())
        return "null";
    if (v->IsFunction())
        return "a function";
    if (v->IsArray())
        return "an array";
    if (v->IsString())
        return "a string";
    if (v->IsNumber())
        return "a number";
    if (v->IsBoolean())
        return "a boolean";
    if (v->IsObject())
        return "an object";
    return "a primitive";
}

// The exports that are settings (or the functions), not extras.
static bool
IsSetting(const std::string &k)
{
    return k == "functions" || k == "workers" || k == "timeout" ||
           k == "memory" || k == "linger" || k == "reload";
}

// The names a misspelt extra is compared with: the settings, and the module
// settings env and roots (docs/config.md).
static const char *const kSettingNames[] = {"functions", "workers", "timeout",
                                            "memory",    "linger",  "reload",
                                            "env",       "roots"};

// Edit distance (insertions, deletions, substitutions and swaps of two
// neighbours each count 1), case-insensitive.
static size_t
EditDistance(const std::string &a, const std::string &b)
{
    size_t n = a.size(), m = b.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) !=
                          tolower((unsigned char)b[j - 1]);
            d[i][j] = std::min(
                {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 &&
                tolower((unsigned char)a[i - 1]) ==
                    tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) ==
                    tolower((unsigned char)b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[n][m];
}

// The setting an extra's name looks like a misspelling of (`timout`,
// `Workers`, `lingr`), or nullptr: within one edit of a short name, two of a
// longer one.
static const char *
MisspeltSetting(const std::string &key)
{
    if (key.size() > 12)
        return nullptr;
    for (const char *name : kSettingNames) {
        size_t len = strlen(name);
        size_t allowed = len <= 5 ? 1 : 2;
        if (key != name && EditDistance(key, name) <= allowed)
            return name;
    }
    return nullptr;
}

// Warns (in the log, and in the list `ready` carries to the manager) about
// each extra whose name looks like a misspelt setting: it is taken as an
// extra, so the setting keeps its default.
static void
WarnMisspelt(js_engine *e, Local<Context> context, Local<Object> exports,
             const std::string &path)
{
    Isolate *isolate = e->isolate;
    Local<Array> keys;
    if (!exports->GetOwnPropertyNames(context).ToLocal(&keys))
        return;
    for (uint32_t i = 0; i < keys->Length(); i++) {
        Local<Value> k;
        if (!keys->Get(context, i).ToLocal(&k))
            return;
        std::string key = Utf8(isolate, k);
        const char *like = IsSetting(key) ? nullptr : MisspeltSetting(key);
        if (like == nullptr)
            continue;
        std::string msg = path + ": `" + key + "` looks like a misspelt `" +
                          like +
                          "`: it is not a setting, so it is kept as an "
                          "extra and `" +
                          like + "` keeps its default";
        log_line(2, "warn", msg.data(), msg.size());
        e->warnings.push_back(msg);
    }
    for (const std::string &w : e->warnings)
        e->warning_ptrs.push_back(w.c_str());
}

// `reload`: absent (-1), or a boolean.
static int
ReadReload(Isolate *isolate, Local<Context> context, Local<Object> exports,
           int *out, const std::string &file, struct js_error *err)
{
    Local<Value> v;
    if (!exports->Get(context, String::NewFromUtf8Literal(isolate, "reload"))
             .ToLocal(&v))
        return ErrorConfig(err, file, "reading `reload` of the config threw");
    if (v->IsUndefined())
        return 0;
    if (!v->IsBoolean())
        return ErrorConfig(err, file,
                           "config setting `reload` must be true or false, "
                           "got %s",
                           TypeName(v));
    *out = v->IsTrue() ? 1 : 0;
    return 0;
}

// The files loading the config read: the config, the CommonJS modules in
// require.cache and the ES modules (by real path) of the config's realm.
static void
ListLoaded(js_engine *e, Local<Context> context, const std::string &path)
{
    Isolate *isolate = e->isolate;
    TryCatch tc(isolate);
    e->loaded.push_back(path);
    for (const auto &m : e->main->esm)
        if (!m.first.empty() && m.first[0] == '/' && m.first != path)
            e->loaded.push_back(m.first);
    Local<Value> at, req, cache;
    Local<Array> keys;
    Local<Value> dir = Str(isolate, path.substr(0, path.rfind('/') + 1));
    if (!e->main->loader.IsEmpty() &&
        e->main->loader.Get(isolate)
            ->Get(context, String::NewFromUtf8Literal(isolate, "requireAt"))
            .ToLocal(&at) &&
        at->IsFunction() &&
        at.As<Function>()
            ->Call(context, e->main->loader.Get(isolate), 1, &dir)
            .ToLocal(&req) &&
        req->IsObject() &&
        req.As<Object>()
            ->Get(context, String::NewFromUtf8Literal(isolate, "cache"))
            .ToLocal(&cache) &&
        cache->IsObject() &&
        cache.As<Object>()->GetOwnPropertyNames(context).ToLocal(&keys)) {
        for (uint32_t i = 0; i < keys->Length(); i++) {
            Local<Value> k;
            if (!keys->Get(context, i).ToLocal(&k))
                break;
            std::string file = Utf8(isolate, k);
            if (!file.empty() && file[0] == '/' &&
                std::find(e->loaded.begin(), e->loaded.end(), file) ==
                    e->loaded.end())
                e->loaded.push_back(file);
        }
    }
    for (const std::string &f : e->loaded)
        e->loaded_ptrs.push_back(f.c_str());
}

int
ConfigResolve(const char *path, std::string *real, struct js_error *err)
{
    char *r = realpath(path, nullptr);
    if (r == nullptr) {
        int rc = -errno;
        ErrorConfig(err, path, "cannot open config %s: %s", path,
                    strerror(errno));
        return rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES ? -EINVAL : rc;
    }
    *real = r;
    free(r);
    struct stat st;
    if (stat(real->c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return ErrorConfig(err, *real, "config %s is not a regular file",
                           real->c_str());
    return 0;
}

// A setting: absent, or a positive integer that fits uint32.
static int
ReadSetting(Isolate *isolate, Local<Context> context, Local<Object> exports,
            const char *key, uint32_t *out, const std::string &file,
            struct js_error *err)
{
    Local<Value> v;
    if (!exports->Get(context, Str(isolate, key, strlen(key))).ToLocal(&v))
        return ErrorConfig(err, file, "reading `%s` of the config threw", key);
    if (v->IsUndefined())
        return 0;
    if (!v->IsNumber()) {
        return ErrorConfig(err, file,
                           "config setting `%s` must be a positive integer, "
                           "got %s",
                           key, TypeName(v));
    }
    double d = v.As<v8::Number>()->Value();
    if (!(d >= 1 && d <= (double)UINT32_MAX && std::floor(d) == d))
        return ErrorConfig(err, file,
                           "config setting `%s` must be a positive integer, "
                           "got %g",
                           key, d);
    *out = (uint32_t)d;
    return 0;
}

// Keeps each of functions' own properties, which must all be functions.
static int
ReadFunctions(js_engine *e, Local<Context> context, TryCatch &tc,
              Local<Object> fobj, const std::string &path, struct js_error *err)
{
    Isolate *isolate = e->isolate;
    Local<Array> keys;
    if (!fobj->GetOwnPropertyNames(context).ToLocal(&keys))
        return ErrorConfigFromJs(isolate, context, tc, path, err);
    for (uint32_t i = 0; i < keys->Length(); i++) {
        Local<Value> k, v;
        if (!keys->Get(context, i).ToLocal(&k) ||
            !fobj->Get(context, k).ToLocal(&v))
            return ErrorConfigFromJs(isolate, context, tc, path, err);
        std::string name = Utf8(isolate, k);
        if (!v->IsFunction())
            return ErrorConfig(err, path,
                               "functions.%s is not a function (got %s)",
                               name.c_str(), TypeName(v));
        Local<Function> f = v.As<Function>();
        Fn fn;
        fn.name = name;
        fn.name_str.Reset(isolate,
                          k->IsString() ? k.As<String>() : Str(isolate, name));
        fn.fn.Reset(isolate, f);
        Local<Value> len;
        if (f->Get(context, String::NewFromUtf8Literal(isolate, "length"))
                .ToLocal(&len) &&
            len->IsInt32())
            fn.arity = len.As<Integer>()->Value();
        e->names.push_back(name);
        e->functions.emplace(name, std::move(fn));
    }
    for (const std::string &n : e->names)
        e->name_ptrs.push_back(n.c_str());
    return 0;
}

int
ConfigLoad(js_engine *e, const std::string &path, struct js_error *err)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = e->main->context.Get(isolate);
    Context::Scope cs(context);
    Local<Value> exv;
    Outcome out;
    int rc = 0;
    {
        Entry en(e, DefaultDeadline(e));
        TryCatch tc(isolate);
        MaybeLocal<Value> m = ModulesLoadConfig(e->main, context, path);
        if (!m.ToLocal(&exv))
            rc = ErrorConfigFromJs(isolate, context, tc, path, err);
        out = en.Leave();
    }
    if (out == kOutOfMemory)
        return ErrorConfig(
            err, path, "loading the config reached the heap limit of %u MiB",
            e->memory_mb);
    if (out == kTimedOut)
        return ErrorConfig(err, path,
                           "loading the config did not finish within %u ms",
                           e->timeout_ms);
    if (rc != 0)
        return rc;
    if (!exv->IsObject() || exv->IsFunction() || exv->IsArray())
        return ErrorConfig(err, path,
                           "the config must export an object "
                           "({functions: {...}}), got %s",
                           TypeName(exv));
    Local<Object> exports = exv.As<Object>();
    TryCatch tc(isolate);
    Entry en(e, DefaultDeadline(e));
    Local<Value> fv;
    if (!exports->Get(context, String::NewFromUtf8Literal(isolate, "functions"))
             .ToLocal(&fv))
        return ErrorConfigFromJs(isolate, context, tc, path, err);
    if (fv->IsUndefined())
        return ErrorConfig(err, path,
                           "the config exports no `functions` object");
    if (!fv->IsObject() || fv->IsFunction() || fv->IsArray())
        return ErrorConfig(err, path,
                           "the config's `functions` must be an object, got %s",
                           TypeName(fv));
    rc = ReadFunctions(e, context, tc, fv.As<Object>(), path, err);
    if (rc != 0)
        return rc;
    js_config c = e->config;
    if (ReadSetting(isolate, context, exports, "workers", &c.workers, path,
                    err) ||
        ReadSetting(isolate, context, exports, "timeout", &c.timeout_ms, path,
                    err) ||
        ReadSetting(isolate, context, exports, "memory", &c.memory_mb, path,
                    err) ||
        ReadSetting(isolate, context, exports, "linger", &c.linger_ms, path,
                    err) ||
        ReadReload(isolate, context, exports, &c.reload, path, err))
        return -EINVAL;
    e->config = c;
    WarnMisspelt(e, context, exports, path);
    ListLoaded(e, context, path);
    e->exports.Reset(isolate, exports);
    Local<Object> host = Object::New(isolate);
    if (!host->Set(context, String::NewFromUtf8Literal(isolate, "config"),
                   exports)
             .FromMaybe(false))
        return ErrorConfigFromJs(isolate, context, tc, path, err);
    e->host.Reset(isolate, host);
    e->self_template.Reset(isolate, v8::ObjectTemplate::New(isolate));
    e->key_name.Reset(isolate, String::NewFromUtf8Literal(isolate, "name"));
    e->key_host.Reset(isolate, String::NewFromUtf8Literal(isolate, "host"));
    return 0;
}

int
ConfigPackExtras(js_engine *e, msgpack_packer *pk)
{
    if (e->exports.IsEmpty() || e->doomed)
        return msgpack_pack_map(pk, 0);
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = e->main->context.Get(isolate);
    Context::Scope cs(context);
    Local<Object> exports = e->exports.Get(isolate);
    // Freed however this ends (an allocation may throw).
    using Buffer =
        std::unique_ptr<msgpack_sbuffer, void (*)(msgpack_sbuffer *)>;
    Buffer sb_owner(msgpack_sbuffer_new(), msgpack_sbuffer_free);
    Buffer item_owner(msgpack_sbuffer_new(), msgpack_sbuffer_free);
    msgpack_sbuffer *sb = sb_owner.get(), *item = item_owner.get();
    if (sb == nullptr || item == nullptr)
        return -ENOMEM;
    size_t count = 0;
    {
        Entry en(e, DefaultDeadline(e));
        TryCatch tc(isolate);
        Local<Array> keys;
        if (exports->GetOwnPropertyNames(context).ToLocal(&keys)) {
            msgpack_packer ipk;
            msgpack_packer_init(&ipk, item, msgpack_sbuffer_write);
            for (uint32_t i = 0; i < keys->Length(); i++) {
                Local<Value> k, v;
                if (!keys->Get(context, i).ToLocal(&k) ||
                    !exports->Get(context, k).ToLocal(&v))
                    break;
                std::string key = Utf8(isolate, k);
                if (IsSetting(key) || v->IsFunction() || v->IsUndefined() ||
                    v->IsSymbol())
                    continue;
                msgpack_sbuffer_clear(item);
                std::string why;
                if (jsv::ToMsgpack(context, v, &ipk, &why) != jsv::kOk) {
                    std::string msg = "config extra `" + key +
                                      "` cannot cross and is left out: " + why;
                    log_line(2, "warn", msg.data(), msg.size());
                    tc.Reset();
                    continue;
                }
                msgpack_packer spk;
                msgpack_packer_init(&spk, sb, msgpack_sbuffer_write);
                msgpack_pack_str_with_body(&spk, key.data(), key.size());
                msgpack_sbuffer_write(sb, item->data, item->size);
                count++;
            }
        }
        Outcome out = en.Leave();
        if (out != kFinished) {
            if (out == kOutOfMemory)
                CallsFailMemory(e);
            count = 0;
            msgpack_sbuffer_clear(sb);
        }
    }
    int rc = msgpack_pack_map(pk, count);
    if (rc == 0 && sb->size > 0)
        rc = pk->callback(pk->data, sb->data, sb->size);
    return rc == 0 ? 0 : -ENOMEM;
}

} // namespace jse
