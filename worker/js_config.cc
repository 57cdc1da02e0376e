// Loading the config (docs/config.md): the file's real path, its `roots` and
// `env` read from its source before it runs, its exports checked (an object
// with a `functions` object of functions, settings that are positive
// integers, `reload` a boolean), the functions kept for calls, the other
// exports (the extras) packed for the manager, a warning for an extra that
// looks like a misspelt setting, and the files it loaded (the manager
// watches them to reload the host).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
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

// The exports that are settings (or the functions), not extras; a misspelt
// extra is compared with these too.
static const char *const kSettingNames[] = {"functions", "workers", "timeout",
                                            "memory",    "linger",  "reload",
                                            "env",       "roots"};

static bool
IsSetting(const std::string &k)
{
    for (const char *name : kSettingNames)
        if (k == name)
            return true;
    return false;
}

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

namespace
{

// Finds `key: [...]` in the object literals at the top level of a config's
// source (`module.exports = {...}`, `export default {...}`, `const config =
// {...}`), skipping comments, strings, template literals and regular
// expressions. Each string of the array goes to *out; *found says whether the
// key was there; false when the key's value is not an array of string
// literals.
class Scanner
{
  public:
    explicit Scanner(const std::string &src) : s_(src)
    {
    }

    bool Find(const std::string &key, std::vector<std::string> *out,
              bool *found)
    {
        *found = false;
        size_t i = 0;
        int depth = 0;
        char prev = '{'; // the last significant character
        while (i < s_.size()) {
            char c = s_[i];
            if (c == '/' && At(i + 1) == '/') {
                i = s_.find('\n', i);
                if (i == std::string::npos)
                    break;
                continue;
            }
            if (c == '/' && At(i + 1) == '*') {
                i = s_.find("*/", i + 2);
                if (i == std::string::npos)
                    break;
                i += 2;
                continue;
            }
            if (c == '\'' || c == '"' || c == '`') {
                size_t start = i;
                i = SkipString(i);
                if (depth == 1 && (prev == '{' || prev == ',') &&
                    s_.compare(start + 1, i - start - 2, key) == 0 &&
                    i - start - 2 == key.size() && Next(i) == ':') {
                    if (!Value(Colon(i) + 1, out, &i))
                        return false;
                    *found = true;
                }
                prev = c;
                continue;
            }
            if (c == '/' && strchr("(,=:[!&|?{};+-*%<>~^", prev)) {
                i = SkipRegex(i);
                prev = '/';
                continue;
            }
            if (IsIdent(c)) {
                size_t start = i;
                while (i < s_.size() && IsIdent(s_[i]))
                    i++;
                if (depth == 1 && (prev == '{' || prev == ',') &&
                    s_.compare(start, i - start, key) == 0 &&
                    i - start == key.size() && Next(i) == ':') {
                    if (!Value(Colon(i) + 1, out, &i))
                        return false;
                    *found = true;
                }
                prev = 'a';
                continue;
            }
            if (c == '{')
                depth++;
            else if (c == '}')
                depth--;
            if (!isspace((unsigned char)c))
                prev = c;
            i++;
        }
        return true;
    }

  private:
    static bool IsIdent(char c)
    {
        return isalnum((unsigned char)c) || c == '_' || c == '$' ||
               (unsigned char)c >= 0x80;
    }
    char At(size_t i) const
    {
        return i < s_.size() ? s_[i] : '\0';
    }
    size_t SkipSpace(size_t i) const
    {
        for (;;) {
            while (i < s_.size() && isspace((unsigned char)s_[i]))
                i++;
            if (At(i) == '/' && At(i + 1) == '/') {
                i = s_.find('\n', i);
                if (i == std::string::npos)
                    return s_.size();
            } else if (At(i) == '/' && At(i + 1) == '*') {
                i = s_.find("*/", i + 2);
                if (i == std::string::npos)
                    return s_.size();
                i += 2;
            } else {
                return i;
            }
        }
    }
    char Next(size_t i) const
    {
        return At(SkipSpace(i));
    }
    size_t Colon(size_t i) const
    {
        return SkipSpace(i);
    }
    size_t SkipString(size_t i) const
    {
        char q = s_[i++];
        while (i < s_.size() && s_[i] != q) {
            if (s_[i] == '\\')
                i++;
            i++;
        }
        return i + 1 < s_.size() ? i + 1 : s_.size();
    }
    size_t SkipRegex(size_t i) const
    {
        bool in_class = false;
        i++;
        while (i < s_.size() && s_[i] != '\n') {
            char c = s_[i];
            if (c == '\\')
                i++;
            else if (c == '[')
                in_class = true;
            else if (c == ']')
                in_class = false;
            else if (c == '/' && !in_class)
                return i + 1;
            i++;
        }
        return i;
    }
    // An array of string literals at i: its strings, *end past it.
    bool Value(size_t i, std::vector<std::string> *out, size_t *end) const
    {
        i = SkipSpace(i);
        if (At(i) != '[')
            return false;
        i = SkipSpace(i + 1);
        while (At(i) != ']') {
            char q = At(i);
            if (q != '\'' && q != '"')
                return false;
            size_t close = SkipString(i);
            std::string raw = s_.substr(i + 1, close - i - 2);
            if (raw.find('\\') != std::string::npos)
                return false;
            out->push_back(raw);
            i = SkipSpace(close);
            if (At(i) == ',')
                i = SkipSpace(i + 1);
            else if (At(i) != ']')
                return false;
        }
        *end = i + 1;
        return true;
    }

    const std::string &s_;
};

// The strings of an exported array setting, compared with what the source
// said before the config ran.
int
CheckPrescanned(Isolate *isolate, Local<Context> context, Local<Object> exports,
                const char *key, const std::vector<std::string> &scanned,
                const std::string &file, struct js_error *err)
{
    Local<Value> v;
    if (!exports->Get(context, Str(isolate, key, strlen(key))).ToLocal(&v))
        return ErrorConfig(err, file, "reading `%s` of the config threw", key);
    std::vector<std::string> got;
    if (!v->IsUndefined()) {
        if (!v->IsArray())
            return ErrorConfig(err, file,
                               "config setting `%s` must be an array of "
                               "strings, got %s",
                               key, TypeName(v));
        Local<Array> a = v.As<Array>();
        for (uint32_t i = 0; i < a->Length(); i++) {
            Local<Value> x;
            if (!a->Get(context, i).ToLocal(&x) || !x->IsString())
                return ErrorConfig(err, file,
                                   "config setting `%s` must be an array of "
                                   "strings",
                                   key);
            got.push_back(Utf8(isolate, x));
        }
    }
    if (got != scanned)
        return ErrorConfig(err, file,
                           "config setting `%s` must be written as an array "
                           "of string literals in the exported object "
                           "(`%s: ['...']`): jshost reads it from the file "
                           "before the config runs",
                           key, key);
    return 0;
}

} // namespace

int
ConfigPrescan(js_engine *e, const std::string &real, struct js_error *err)
{
    FILE *f = fopen(real.c_str(), "rb");
    if (f == nullptr)
        return ErrorConfig(err, real, "cannot read config %s: %s", real.c_str(),
                           strerror(errno));
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, n);
    fclose(f);
    Scanner scan(text);
    std::vector<std::string> roots;
    bool found;
    for (const char *key : {"roots", "env"}) {
        std::vector<std::string> *out =
            strcmp(key, "env") == 0 ? &e->env_names : &roots;
        out->clear();
        if (!scan.Find(key, out, &found))
            return ErrorConfig(err, real,
                               "config setting `%s` must be written as an "
                               "array of string literals (`%s: ['...']`): "
                               "jshost reads it from the file before the "
                               "config runs",
                               key, key);
    }
    e->roots.clear();
    std::string dir = real.substr(0, real.rfind('/'));
    if (dir.empty())
        dir = "/";
    for (const std::string &r : roots) {
        std::string p = !r.empty() && r[0] == '/' ? r : dir + "/" + r;
        char *rp = realpath(p.c_str(), nullptr);
        if (rp == nullptr)
            return ErrorConfig(err, real, "config setting `roots`: %s: %s",
                               r.c_str(), strerror(errno));
        e->roots.push_back(rp);
        free(rp);
    }
    e->roots_written = roots;
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
    rc = CheckPrescanned(isolate, context, exports, "roots", e->roots_written,
                         path, err);
    if (rc == 0)
        rc = CheckPrescanned(isolate, context, exports, "env", e->env_names,
                             path, err);
    if (rc != 0)
        return rc;
    e->config = c;
    WarnMisspelt(e, context, exports, path);
    ListLoaded(e, context, path);
    e->exports.Reset(isolate, exports);
    Local<Object> host = Object::New(isolate);
    if (!host->Set(context, String::NewFromUtf8Literal(isolate, "config"),
                   exports)
             .FromMaybe(false))
        return ErrorConfigFromJs(isolate, context, tc, path, err);
    Local<String> key_name = String::NewFromUtf8Literal(isolate, "name");
    Local<String> key_host = String::NewFromUtf8Literal(isolate, "host");
    for (auto &kv : e->functions) {
        Fn &fn = kv.second;
        Local<Object> self = Object::New(isolate);
        if (!self->Set(context, key_name, fn.name_str.Get(isolate))
                 .FromMaybe(false) ||
            !self->Set(context, key_host, host).FromMaybe(false))
            return ErrorConfigFromJs(isolate, context, tc, path, err);
        fn.self.Reset(isolate, self);
    }
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
