// V8 -> msgpack (ToMsgpack; docs/values.md, the choices in js_value.cc):
// JSON.stringify's walk, toJSON and boxed primitives included, each value
// written straight into the sbuffer (Out, js_value_internal.h). Strings go
// out as UTF-8 and a lone surrogate is refused; plain objects' keys and
// values are read by a small JavaScript walk (worker/js/values-walk.js).
#include "js_value_internal.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ext.h"
#include "js_preludes.h"
#include "proto.h"

namespace jsv
{
namespace
{

constexpr double kTwo63 = 9223372036854775808.0;

// ---------------------------------------------------------------------------
// UTF-8

// UTF-16 to UTF-8, appended to out. A lone surrogate stops it (its index is
// returned) unless `replace`, which writes U+FFFD instead (for messages).
size_t
EncodeUtf16(const uint16_t *u, size_t n, bool replace, std::string *out)
{
    out->reserve(out->size() + n * 3);
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xd800 && c <= 0xdfff) {
            if (c <= 0xdbff && i + 1 < n && u[i + 1] >= 0xdc00 &&
                u[i + 1] <= 0xdfff) {
                c = 0x10000 + ((c - 0xd800) << 10) + (u[i + 1] - 0xdc00);
                i++;
            } else if (replace) {
                c = 0xfffd;
            } else {
                return i;
            }
        }
        if (c < 0x80) {
            out->push_back((char)c);
        } else if (c < 0x800) {
            out->push_back((char)(0xc0 | (c >> 6)));
            out->push_back((char)(0x80 | (c & 0x3f)));
        } else if (c < 0x10000) {
            out->push_back((char)(0xe0 | (c >> 12)));
            out->push_back((char)(0x80 | ((c >> 6) & 0x3f)));
            out->push_back((char)(0x80 | (c & 0x3f)));
        } else {
            out->push_back((char)(0xf0 | (c >> 18)));
            out->push_back((char)(0x80 | ((c >> 12) & 0x3f)));
            out->push_back((char)(0x80 | ((c >> 6) & 0x3f)));
            out->push_back((char)(0x80 | (c & 0x3f)));
        }
    }
    return SIZE_MAX;
}

// ---------------------------------------------------------------------------
// BigInt to sign and magnitude (proto_ext_bigint_pack codes ext 1 from those)

// A BigInt's sign and magnitude, big-endian.
std::vector<unsigned char>
BigIntMagnitude(Local<v8::BigInt> big, bool *neg)
{
    int count = big->WordCount();
    int sign = 0;
    std::vector<uint64_t> w(count > 0 ? count : 1, 0);
    big->ToWordsArray(&sign, &count, w.data());
    std::vector<unsigned char> out;
    out.reserve((size_t)count * 8);
    for (int i = count; i-- > 0;)
        for (int k = 8; k-- > 0;)
            out.push_back((unsigned char)(w[i] >> (8 * k)));
    *neg = sign != 0;
    return out;
}

// ---------------------------------------------------------------------------
// Strings, written in place (the rest of msgpack's forms are Out's)

// How many bytes of p[0..n) are past 0x7f, eight at a time.
size_t
CountHigh(const uint8_t *p, size_t n)
{
    size_t high = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w &= 0x8080808080808080ull;
        if (w)
            high += (size_t)__builtin_popcountll(w);
    }
    for (; i < n; i++)
        high += p[i] >> 7;
    return high;
}

// Latin-1 at src[0..n) as UTF-8 at dst (n + high bytes), where dst >= src:
// from the end, so the two may overlap.
void
WidenLatin1(const uint8_t *src, size_t n, uint8_t *dst, size_t high)
{
    uint8_t *d = dst + n + high;
    for (size_t i = n; i-- > 0;) {
        uint8_t c = src[i];
        if (c < 0x80) {
            *--d = c;
        } else {
            *--d = (uint8_t)(0x80 | (c & 0x3f));
            *--d = (uint8_t)(0xc0 | (c >> 6));
        }
    }
}

// UTF-8 bytes that UTF-16 u[0..n) takes, or SIZE_MAX with *bad the index of
// a lone surrogate.
size_t
Utf8Length(const uint16_t *u, size_t n, size_t *bad)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c < 0x80) {
            len += 1;
        } else if (c < 0x800) {
            len += 2;
        } else if (c < 0xd800 || c > 0xdfff) {
            len += 3;
        } else if (c <= 0xdbff && i + 1 < n && u[i + 1] >= 0xdc00 &&
                   u[i + 1] <= 0xdfff) {
            len += 4;
            i++;
        } else {
            *bad = i;
            return SIZE_MAX;
        }
    }
    return len;
}

// UTF-16 without lone surrogates (Utf8Length said so) as UTF-8 at out.
void
PutUtf16(const uint16_t *u, size_t n, char *out)
{
    uint8_t *d = (uint8_t *)out;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c < 0x80) {
            *d++ = (uint8_t)c;
        } else if (c < 0x800) {
            *d++ = (uint8_t)(0xc0 | (c >> 6));
            *d++ = (uint8_t)(0x80 | (c & 0x3f));
        } else if (c < 0xd800 || c > 0xdfff) {
            *d++ = (uint8_t)(0xe0 | (c >> 12));
            *d++ = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
            *d++ = (uint8_t)(0x80 | (c & 0x3f));
        } else {
            c = 0x10000 + ((c - 0xd800) << 10) + (u[i + 1] - 0xdc00);
            i++;
            *d++ = (uint8_t)(0xf0 | (c >> 18));
            *d++ = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
            *d++ = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
            *d++ = (uint8_t)(0x80 | (c & 0x3f));
        }
    }
}

// ---------------------------------------------------------------------------
// V8 -> msgpack

// The walk itself is worker/js/values-walk.js (jsp::kValuesWalk).

// Where the walk is kept on each context's global object (v8::Private).
constexpr char kWalkPrivate[] = "jshost.values.walk";

// One step of the path from the top value down to the one being converted.
struct Step {
    enum Kind { kIndex, kKey, kMapKey, kMapValue } kind;
    uint32_t index;
    Local<Value> key; // kKey: a string; kMapValue: the Map's key
};

// Handles are let go of every this many array elements or object keys, so
// that a long array does not hold one per element until its end (a smaller
// container lives in the handle scope Pack opened for it).
constexpr uint32_t kChunk = 256;

class Writer
{
  public:
    Writer(Local<v8::Context> context, msgpack_sbuffer *sb, std::string *why)
        : context_(context), isolate_(context->GetIsolate()), out_(sb),
          why_(why), outer_(current_)
    {
        current_ = this;
    }
    ~Writer()
    {
        current_ = outer_;
    }

    Status Top(Local<Value> value);

  private:
    // What a value turned into once toJSON and boxing were applied.
    enum Shape { kSkip, kValue };

    // An object being walked (worker/js/values-walk.js): its entries so far,
    // its depth, and how the conversion of one of them failed.
    struct Frame {
        Status st;
        uint32_t count;
        int depth;
    };

    static void WalkEntry(const v8::FunctionCallbackInfo<Value> &info);
    bool Entry(Local<Value> k, Local<Value> v);
    Local<v8::Function> Walk();
    void Prepare();
    Status PackObjectWalked(Local<v8::Object> obj, int depth);

    Status Resolve(Local<Value> *v, const Step &where, Shape *shape);
    inline Status PackItem(Local<Value> v, const Step &where, int depth);
    Status Pack(Local<Value> v, int depth);
    Status PackString(Local<v8::String> s);
    Status PackKey(Local<v8::String> k, bool cache);
    Status PackNumber(double d);
    Status PackBigInt(Local<v8::BigInt> b);
    Status PackDate(Local<v8::Date> d);
    Status PackBytes(const void *p, size_t n);
    Status PackArray(Local<v8::Object> arr, uint32_t n, int depth);
    Status PackMap(Local<v8::Map> map, int depth);
    Status PackSet(Local<v8::Set> set, int depth);
    Status PackObject(Local<v8::Object> obj, int depth, bool error = false);
    Status PackRegExp(Local<v8::RegExp> re);
    Status Enter(Local<v8::Object> obj, int depth);
    void Leave()
    {
        stack_.pop_back();
    }

    Status Invalid(const std::string &what);
    std::string Printable(Local<v8::String> s);
    Status Thrown();
    Status NoRoom()
    {
        if (why_)
            *why_ = "out of memory while packing a value";
        return kInvalid;
    }

    Local<v8::Context> context_;
    v8::Isolate *isolate_;
    Out out_;
    std::string *why_;
    Local<v8::String> to_json_;       // set by Prepare(), as the next two
    Local<v8::Function> object_keys_; // the original Object.keys, if kept
    Local<v8::Function> walk_;        // values-walk.js's walk, if there is one
    std::vector<Frame> frames_;       // the objects being walked
    Writer *outer_;                   // the conversion this one runs inside
    std::vector<Step> path_;
    std::vector<Local<v8::Object>> stack_; // the containers on the path
    std::vector<uint16_t> utf16_;          // scratch for two-byte strings
    CachedKey keys_[kKeyCacheSize];
    // The conversion WalkEntry feeds: the innermost one on this thread (a
    // getter may convert another value, in the middle of one).
    static thread_local Writer *current_;
};

thread_local Writer *Writer::current_ = nullptr;

#define PACK(call)                                                             \
    do {                                                                       \
        if (!(call))                                                           \
            return NoRoom();                                                   \
    } while (0)

// JS threw or was terminated; the caller's TryCatch holds the exception.
Status
Writer::Thrown()
{
    if (why_)
        *why_ = isolate_->IsExecutionTerminating()
                    ? "execution terminated while converting a value"
                    : "exception while converting a value";
    return kException;
}

// A string for a message: UTF-8 with U+FFFD for lone surrogates, at most
// 200 UTF-16 units of it.
std::string
Writer::Printable(Local<v8::String> s)
{
    int n = std::min(s->Length(), 200);
    std::vector<uint16_t> u((size_t)n);
    s->Write(isolate_, u.data(), 0, n, v8::String::NO_NULL_TERMINATION);
    std::string out;
    EncodeUtf16(u.data(), u.size(), true, &out);
    return out;
}

Status
Writer::Invalid(const std::string &what)
{
    if (!why_)
        return kInvalid;
    std::string p = "value";
    for (const Step &s : path_) {
        switch (s.kind) {
        case Step::kIndex:
            AppendIndex(&p, "[", s.index);
            break;
        case Step::kKey: {
            std::string k = Printable(s.key.As<v8::String>());
            AppendKey(&p, k.data(), k.size());
            break;
        }
        case Step::kMapKey:
            AppendIndex(&p, ".keys()[", s.index);
            break;
        case Step::kMapValue:
            // Reading a string or a number runs no JS.
            if (s.key->IsString()) {
                std::string k = Printable(s.key.As<v8::String>());
                std::string quoted;
                AppendKey(&quoted, k.data(), k.size()); // .k or ["k"]
                if (quoted[0] == '.')
                    quoted = "[\"" + quoted.substr(1) + "\"]";
                p += ".get(" + quoted.substr(1, quoted.size() - 2) + ")";
            } else if (s.key->IsNumber()) {
                char num[32];
                snprintf(num, sizeof num, "%.17g",
                         s.key.As<v8::Number>()->Value());
                p += ".get(" + std::string(num) + ")";
            } else {
                AppendIndex(&p, ".values()[", s.index);
            }
            break;
        }
    }
    *why_ = p + ": " + what;
    return kInvalid;
}

// SerializeJSONProperty's steps 2-4: toJSON, then boxed primitives. *shape
// says whether anything is left to write.
Status
Writer::Resolve(Local<Value> *v, const Step &where, Shape *shape)
{
    Local<Value> value = *v;
    if (value->IsString()) { // the commonest, and nothing to do
        *shape = kValue;
        return kOk;
    }
    if (value->IsObject() && !value->IsDate() && !value->IsArrayBufferView() &&
        !value->IsArrayBuffer() && !value->IsSharedArrayBuffer()) {
        Local<v8::Object> obj = value.As<v8::Object>();
        Local<Value> fn;
        if (!obj->Get(context_, to_json_).ToLocal(&fn))
            return Thrown();
        if (fn->IsFunction()) {
            // The key as JSON.stringify passes it: a string ("" at the top).
            Local<Value> key;
            switch (where.kind) {
            case Step::kKey:
            case Step::kMapValue:
                key = where.key;
                break;
            case Step::kIndex:
            case Step::kMapKey: {
                std::string s =
                    path_.empty() ? std::string() : std::to_string(where.index);
                Local<v8::String> ks;
                if (!v8::String::NewFromUtf8(isolate_, s.data(),
                                             v8::NewStringType::kNormal,
                                             (int)s.size())
                         .ToLocal(&ks))
                    return Thrown();
                key = ks;
                break;
            }
            }
            if (!fn.As<v8::Function>()
                     ->Call(context_, obj, 1, &key)
                     .ToLocal(&value))
                return Thrown();
        }
    }
    if (value->IsObject()) {
        if (value->IsNumberObject())
            value = v8::Number::New(isolate_,
                                    value.As<v8::NumberObject>()->ValueOf());
        else if (value->IsStringObject())
            value = value.As<v8::StringObject>()->ValueOf();
        else if (value->IsBooleanObject())
            value = v8::Boolean::New(isolate_,
                                     value.As<v8::BooleanObject>()->ValueOf());
        else if (value->IsBigIntObject())
            value = value.As<v8::BigIntObject>()->ValueOf();
    }
    *shape = (value->IsUndefined() || value->IsFunction() || value->IsSymbol())
                 ? kSkip
                 : kValue;
    *v = value;
    return kOk;
}

Status
Writer::Top(Local<Value> value)
{
    v8::HandleScope scope(isolate_);
    if (value->IsObject()) // else there is no object in it
        Prepare();
    Step top{Step::kIndex, 0, Local<Value>()};
    return PackItem(value, top, -1);
}

// The top value, an array's element or a Map's key or value, one level below
// depth: toJSON and boxing applied, then packed; nil where that leaves
// nothing (as JSON says an array's undefined).
inline Status
Writer::PackItem(Local<Value> v, const Step &where, int depth)
{
    Shape shape;
    Status st = Resolve(&v, where, &shape);
    if (st != kOk)
        return st;
    if (shape == kSkip) {
        PACK(out_.Byte(0xc0));
        return kOk;
    }
    return Pack(v, depth + 1);
}

// What only objects need, in Top's handle scope: a result that is a number
// or a string does without the lookups.
void
Writer::Prepare()
{
    to_json_ = v8::String::NewFromUtf8Literal(isolate_, "toJSON",
                                              v8::NewStringType::kInternalized);
    Local<Value> keys;
    if (context_->Global()
            ->GetPrivate(context_,
                         v8::Private::ForApi(isolate_,
                                             v8::String::NewFromUtf8Literal(
                                                 isolate_, kObjectKeysPrivate)))
            .ToLocal(&keys) &&
        keys->IsFunction()) {
        object_keys_ = keys.As<v8::Function>();
        walk_ = Walk();
    }
}

Status
Writer::PackBytes(const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return Invalid("binary data longer than 4 GiB");
    PACK(out_.Bin(p, n));
    return kOk;
}

Status
Writer::PackNumber(double d)
{
    if (std::isfinite(d) && d == std::trunc(d) && d >= -kTwo63 && d < kTwo63 &&
        !(d == 0 && std::signbit(d))) {
        PACK(out_.Int((int64_t)d));
    } else {
        PACK(out_.Double(d));
    }
    return kOk;
}

Status
Writer::PackBigInt(Local<v8::BigInt> b)
{
    bool neg;
    std::vector<unsigned char> mag = BigIntMagnitude(b, &neg);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out_.Buffer(), msgpack_sbuffer_write);
    PACK(proto_ext_bigint_pack(&pk, neg, mag.data(), mag.size()) == 0);
    return kOk;
}

Status
Writer::PackDate(Local<v8::Date> date)
{
    double ms = date->ValueOf();
    if (std::isnan(ms))
        return Invalid("invalid Date");
    int64_t t = (int64_t)ms; // TimeClip made it an integer within ±8.64e15
    int64_t sec = t / 1000;
    int64_t rem = t % 1000;
    if (rem < 0) {
        sec -= 1;
        rem += 1000;
    }
    uint32_t nsec = (uint32_t)rem * 1000000u;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out_.Buffer(), msgpack_sbuffer_write);
    PACK(proto_ext_timestamp_pack(&pk, sec, nsec) == 0);
    return kOk;
}

// UTF-8 written from the string's own Latin-1 or UTF-16 data, so that a lone
// surrogate is seen and refused instead of becoming U+FFFD. Latin-1 goes
// straight into the buffer behind a header for its length in UTF-8 if it is
// ASCII, and is widened in place when it is not.
Status
Writer::PackString(Local<v8::String> s)
{
    size_t n = (size_t)s->Length();
    if (s->IsOneByte()) {
        PACK(out_.Reserve(5 + 2 * n));
        size_t hdr = StrHeaderSize(n);
        uint8_t *body = (uint8_t *)out_.Tail() + hdr;
        if (n > 0)
            s->WriteOneByte(isolate_, body, 0, (int)n,
                            v8::String::NO_NULL_TERMINATION);
        size_t len = n + CountHigh(body, n);
        if (len > UINT32_MAX)
            return Invalid("string longer than 4 GiB in UTF-8");
        if (len != n) {
            hdr = StrHeaderSize(len);
            WidenLatin1(body, n, (uint8_t *)out_.Tail() + hdr, len - n);
        }
        PutStrHeader(out_.Tail(), len);
        out_.Advance(hdr + len);
        return kOk;
    }
    if (utf16_.size() < n)
        utf16_.resize(n);
    s->Write(isolate_, utf16_.data(), 0, (int)n,
             v8::String::NO_NULL_TERMINATION);
    size_t bad = 0;
    size_t len = Utf8Length(utf16_.data(), n, &bad);
    if (len == SIZE_MAX) {
        char what[80];
        snprintf(what, sizeof what,
                 "string has a lone surrogate (U+%04X at index %zu)",
                 (unsigned)utf16_[bad], bad);
        return Invalid(what);
    }
    if (len > UINT32_MAX)
        return Invalid("string longer than 4 GiB in UTF-8");
    PACK(out_.Reserve(5 + len));
    PutStrHeader(out_.Tail(), len);
    out_.Advance(StrHeaderSize(len));
    PutUtf16(utf16_.data(), n, out_.Tail());
    out_.Advance(len);
    return kOk;
}

// An object's key: the bytes written the last time this very string was,
// when it is in the cache (see CachedKey); `cache` says whether to keep it.
Status
Writer::PackKey(Local<v8::String> k, bool cache)
{
    uint32_t h = (uint32_t)k->GetIdentityHash();
    CachedKey &e = keys_[h % kKeyCacheSize];
    if (e.hash == h && e.str == k) {
        PACK(out_.Str(e.bytes, e.len));
        return kOk;
    }
    size_t at = out_.Size();
    Status st = PackString(k);
    if (st != kOk || !cache)
        return st;
    size_t written = out_.Size() - at; // a one-byte header, then the key
    if (written <= kMaxCachedKeyBytes) {
        e.str.Reset(isolate_, k);
        e.hash = h;
        e.len = (uint32_t)(written - 1);
        memcpy(e.bytes, out_.At(at + 1), written - 1);
    }
    return kOk;
}

// Pushes a container on the path, refusing cycles and excess depth.
Status
Writer::Enter(Local<v8::Object> obj, int depth)
{
    for (const Local<v8::Object> &o : stack_)
        if (o == obj)
            return Invalid("cycle (an object contains itself)");
    if (depth >= kMaxDepth)
        return Invalid(
            "nested deeper than " JSV_STR(PROTO_VALUE_MAX_DEPTH) " levels");
    stack_.push_back(obj);
    return kOk;
}

// An Array, or a Proxy whose target is one: `length` elements, holes and
// what JSON cannot say as nil.
Status
Writer::PackArray(Local<v8::Object> arr, uint32_t n, int depth)
{
    if (n > kMaxArrayLength)
        return Invalid("array longer than " + std::to_string(kMaxArrayLength) +
                       " elements");
    PACK(out_.ArrayHeader(n));
    path_.push_back(Step{Step::kIndex, 0, Local<Value>()});
    for (uint32_t i = 0; i < n;) {
        std::optional<v8::HandleScope> scope;
        if (n > kChunk)
            scope.emplace(isolate_);
        for (uint32_t end = std::min(n, i + kChunk); i < end; i++) {
            path_.back().index = i;
            Local<Value> v;
            if (!arr->Get(context_, i).ToLocal(&v))
                return Thrown();
            Status st = PackItem(v, path_.back(), depth);
            if (st != kOk)
                return st;
        }
    }
    path_.pop_back();
    return kOk;
}

Status
Writer::PackMap(Local<v8::Map> map, int depth)
{
    Local<v8::Array> flat = map->AsArray(); // [k0, v0, k1, v1, ...]
    uint32_t n = flat->Length() / 2;
    PACK(out_.MapHeader(n));
    for (uint32_t i = 0; i < n; i++) {
        v8::HandleScope scope(isolate_);
        Local<Value> k, v;
        if (!flat->Get(context_, 2 * i).ToLocal(&k) ||
            !flat->Get(context_, 2 * i + 1).ToLocal(&v))
            return Thrown();
        Local<Value> key = k;
        for (int half = 0; half < 2; half++) {
            Local<Value> x = half == 0 ? k : v;
            path_.push_back(half == 0 ? Step{Step::kMapKey, i, Local<Value>()}
                                      : Step{Step::kMapValue, i, key});
            Status st = PackItem(x, path_.back(), depth);
            if (st != kOk)
                return st;
            path_.pop_back();
        }
    }
    return kOk;
}

Status
Writer::PackSet(Local<v8::Set> set, int depth)
{
    Local<v8::Array> items = set->AsArray();
    return PackArray(items, items->Length(), depth);
}

// "/source/flags", as String(re) without calling anything of the script's.
Status
Writer::PackRegExp(Local<v8::RegExp> re)
{
    static const struct {
        int flag;
        char c;
    } kFlags[] = {
        {v8::RegExp::kHasIndices, 'd'}, {v8::RegExp::kGlobal, 'g'},
        {v8::RegExp::kIgnoreCase, 'i'}, {v8::RegExp::kMultiline, 'm'},
        {v8::RegExp::kDotAll, 's'},     {v8::RegExp::kUnicode, 'u'},
        {v8::RegExp::kSticky, 'y'},
    };
    char flags[8];
    size_t nf = 0;
    int f = re->GetFlags();
    for (const auto &k : kFlags)
        if (f & k.flag)
            flags[nf++] = k.c;
    Local<v8::String> text = v8::String::Concat(
        isolate_, v8::String::NewFromUtf8Literal(isolate_, "/"),
        re->GetSource());
    Local<v8::String> tail;
    std::string t = "/" + std::string(flags, nf);
    if (!v8::String::NewFromUtf8(isolate_, t.data(), v8::NewStringType::kNormal,
                                 (int)t.size())
             .ToLocal(&tail))
        return Thrown();
    return PackString(v8::String::Concat(isolate_, text, tail));
}

// Own enumerable string keys, as JSON.stringify, each value converted as soon
// as it is read (JSON.stringify's order). The map's size is known only at
// the end (undefined, functions and symbols are left out): the header is
// written for every key and made smaller afterwards if that changes its size.
// An Error (`error`) starts with its name, message and stack, each its string
// value or nil, whether they are own, enumerable or not.
Status
Writer::PackObject(Local<v8::Object> obj, int depth, bool error)
{
    static const char *const kErrorKeys[] = {"name", "message", "stack"};
    if (!walk_.IsEmpty() && !error)
        return PackObjectWalked(obj, depth);
    Local<v8::Array> keys;
    if (!object_keys_.IsEmpty()) {
        // Object.keys is EnumerableOwnPropertyNames(O, key), what
        // JSON.stringify uses, and unlike the API it uses V8's enum cache.
        Local<Value> arg = obj, list;
        if (!object_keys_->Call(context_, v8::Undefined(isolate_), 1, &arg)
                 .ToLocal(&list))
            return Thrown();
        if (!list->IsArray())
            return Invalid("Object.keys did not give an array");
        keys = list.As<v8::Array>();
    } else if (!obj->GetOwnPropertyNames(
                       context_,
                       static_cast<v8::PropertyFilter>(v8::ONLY_ENUMERABLE |
                                                       v8::SKIP_SYMBOLS),
                       v8::KeyConversionMode::kConvertToString)
                    .ToLocal(&keys)) {
        return Thrown();
    }
    uint32_t n = keys->Length();
    uint32_t total = n + (error ? 3 : 0);
    size_t at = out_.Size(), hdr = MapHeaderSize(total);
    PACK(out_.MapHeader(total));
    bool cache = n <= kMaxCachedMapSize;
    uint32_t count = 0;
    path_.push_back(Step{Step::kKey, 0, Local<Value>()});
    for (const char *name : kErrorKeys) {
        if (!error)
            break;
        Local<v8::String> k =
            v8::String::NewFromUtf8(isolate_, name).ToLocalChecked();
        Local<Value> v;
        path_.back().key = k;
        if (!obj->Get(context_, k).ToLocal(&v))
            return Thrown();
        if (!v->IsUndefined() && !v->IsNull() && !v->IsString()) {
            Local<v8::String> str;
            if (!v->ToString(context_).ToLocal(&str))
                return Thrown();
            v = str;
        }
        Status st;
        if ((st = PackKey(k, false)) != kOk || (st = Pack(v, depth + 1)) != kOk)
            return st;
        count++;
    }
    for (uint32_t i = 0; i < n;) {
        std::optional<v8::HandleScope> scope;
        if (n > kChunk)
            scope.emplace(isolate_);
        for (uint32_t end = std::min(n, i + kChunk); i < end; i++) {
            Local<Value> k, v;
            if (!keys->Get(context_, i).ToLocal(&k))
                return Thrown();
            if (error && k->IsString()) {
                v8::String::Utf8Value ku(isolate_, k);
                if (*ku &&
                    (strcmp(*ku, "name") == 0 || strcmp(*ku, "message") == 0 ||
                     strcmp(*ku, "stack") == 0))
                    continue;
            }
            path_.back().key = k;
            if (!obj->Get(context_, k).ToLocal(&v))
                return Thrown();
            Shape shape;
            Status st = Resolve(&v, path_.back(), &shape);
            if (st != kOk)
                return st;
            if (shape == kSkip)
                continue;
            if ((st = PackKey(k.As<v8::String>(), cache)) != kOk ||
                (st = Pack(v, depth + 1)) != kOk)
                return st;
            count++;
        }
    }
    path_.pop_back();
    if (count != total) {
        size_t fit = MapHeaderSize(count);
        if (fit != hdr) {
            size_t body = out_.Size() - at - hdr;
            memmove(out_.At(at + fit), out_.At(at + hdr), body);
            out_.Shrink(at + fit + body);
        }
        PutContainerHeader(out_.At(at), 0x80, 0xde, count);
    }
    return kOk;
}

// The context's walk (worker/js/values-walk.js), made the first time a value of
// this context is converted; empty if it cannot be made (the caller then reads
// properties through the API, and an exception that stopped it stays
// pending for that to meet).
Local<v8::Function>
Writer::Walk()
{
    Local<v8::Private> name = v8::Private::ForApi(
        isolate_, v8::String::NewFromUtf8Literal(isolate_, kWalkPrivate));
    Local<v8::Object> global = context_->Global();
    Local<Value> kept;
    if (global->GetPrivate(context_, name).ToLocal(&kept) && kept->IsFunction())
        return kept.As<v8::Function>();
    v8::ScriptOrigin origin(
        isolate_, v8::String::NewFromUtf8Literal(isolate_, "jshost:values"));
    Local<v8::Script> script;
    Local<Value> factory, walk;
    Local<v8::Function> entry;
    if (!v8::Script::Compile(
             context_,
             v8::String::NewFromUtf8(
                 isolate_,
                 reinterpret_cast<const char *>(jsp::kValuesWalk.text),
                 v8::NewStringType::kNormal,
                 static_cast<int>(jsp::kValuesWalk.len))
                 .ToLocalChecked(),
             &origin)
             .ToLocal(&script) ||
        !script->Run(context_).ToLocal(&factory) || !factory->IsFunction() ||
        !v8::Function::New(context_, WalkEntry, Local<Value>(), 2,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&entry))
        return Local<v8::Function>();
    Local<Value> args[] = {object_keys_, entry};
    if (!factory.As<v8::Function>()
             ->Call(context_, v8::Undefined(isolate_), 2, args)
             .ToLocal(&walk) ||
        !walk->IsFunction() ||
        !global->SetPrivate(context_, name, walk).FromMaybe(false))
        return Local<v8::Function>();
    return walk.As<v8::Function>();
}

void
Writer::WalkEntry(const v8::FunctionCallbackInfo<Value> &info)
{
    Writer *w = current_;
    info.GetReturnValue().Set(w != nullptr && !w->frames_.empty() &&
                              w->Entry(info[0], info[1]));
}

// One key and its value from the walk: toJSON, then packed, unless it is
// left out. False when the conversion failed (the frame says how).
bool
Writer::Entry(Local<Value> k, Local<Value> v)
{
    Frame &f = frames_.back();
    Step &step = path_.back();
    step.key = k;
    Shape shape;
    Status st = Resolve(&v, step, &shape);
    if (st == kOk && shape == kSkip)
        return true;
    if (st == kOk && !k->IsString())
        st = Invalid("Object.keys gave a key that is not a string");
    if (st == kOk)
        st = PackKey(k.As<v8::String>(), f.count < kMaxCachedMapSize);
    if (st == kOk)
        st = Pack(v, f.depth + 1);
    if (st != kOk) {
        frames_.back().st = st;
        return false;
    }
    frames_.back().count++;
    return true;
}

// PackObject through the walk. The map's size is known once the walk is
// done: a map16 header is written first and made smaller or larger after.
Status
Writer::PackObjectWalked(Local<v8::Object> obj, int depth)
{
    size_t at = out_.Size();
    PACK(out_.Reserve(3));
    out_.Advance(3);
    frames_.push_back(Frame{kOk, 0, depth});
    path_.push_back(Step{Step::kKey, 0, Local<Value>()});
    Local<Value> arg = obj;
    bool ran =
        !walk_->Call(context_, v8::Undefined(isolate_), 1, &arg).IsEmpty();
    Frame f = frames_.back();
    frames_.pop_back();
    if (f.st != kOk)
        return f.st;
    if (!ran)
        return Thrown();
    path_.pop_back();
    size_t body = out_.Size() - at - 3;
    size_t fit = MapHeaderSize(f.count);
    if (fit > 3) {
        PACK(out_.Reserve(fit - 3));
        out_.Advance(fit - 3);
    }
    if (fit != 3) {
        memmove(out_.At(at + fit), out_.At(at + 3), body);
        out_.Shrink(at + fit + body);
    }
    PutContainerHeader(out_.At(at), 0x80, 0xde, f.count);
    return kOk;
}

// A resolved value (not undefined, a function or a symbol).
Status
Writer::Pack(Local<Value> v, int depth)
{
    if (v->IsString())
        return PackString(v.As<v8::String>());
    if (v->IsNumber())
        return PackNumber(v.As<v8::Number>()->Value());
    if (v->IsNull() || v->IsUndefined()) {
        PACK(out_.Byte(0xc0));
        return kOk;
    }
    if (v->IsBoolean()) {
        PACK(out_.Byte(v->IsTrue() ? 0xc3 : 0xc2));
        return kOk;
    }
    if (v->IsBigInt())
        return PackBigInt(v.As<v8::BigInt>());
    if (!v->IsObject()) // symbols, resolved away; nothing else is left
        return Invalid("value of an unknown kind");
    if (v->IsDate())
        return PackDate(v.As<v8::Date>());
    if (v->IsRegExp())
        return PackRegExp(v.As<v8::RegExp>());
    if (v->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
        size_t n = view->ByteLength();
        if (n == 0)
            return PackBytes(nullptr, 0);
        return PackBytes(
            (const char *)view->Buffer()->Data() + view->ByteOffset(), n);
    }
    if (v->IsArrayBuffer()) {
        Local<v8::ArrayBuffer> ab = v.As<v8::ArrayBuffer>();
        size_t n = ab->ByteLength();
        return PackBytes(n ? ab->Data() : nullptr, n);
    }
    if (v->IsSharedArrayBuffer()) {
        Local<v8::SharedArrayBuffer> ab = v.As<v8::SharedArrayBuffer>();
        size_t n = ab->ByteLength();
        return PackBytes(n ? ab->Data() : nullptr, n);
    }
    Local<v8::Object> obj = v.As<v8::Object>();
    Status st = Enter(obj, depth);
    if (st != kOk)
        return st;
    v8::HandleScope scope(isolate_);
    if (v->IsArray()) {
        st = PackArray(obj, v.As<v8::Array>()->Length(), depth);
    } else if (v->IsMap()) {
        st = PackMap(v.As<v8::Map>(), depth);
    } else if (v->IsSet()) {
        st = PackSet(v.As<v8::Set>(), depth);
    } else if (v->IsProxy() && v.As<v8::Proxy>()->GetTarget()->IsArray()) {
        // JSON.stringify's IsArray sees through proxies; so does this.
        Local<Value> len;
        uint32_t n = 0;
        if (!obj->Get(context_,
                      v8::String::NewFromUtf8Literal(isolate_, "length"))
                 .ToLocal(&len) ||
            !len->Uint32Value(context_).To(&n))
            return Thrown();
        st = PackArray(obj, n, depth);
    } else {
        st = PackObject(obj, depth, v->IsNativeError());
    }
    if (st == kOk)
        Leave();
    return st;
}

} // namespace

Status
ToMsgpack(v8::Local<v8::Context> context, v8::Local<v8::Value> value,
          msgpack_sbuffer *sb, std::string *why)
{
    try {
        Writer w(context, sb, why);
        return w.Top(value);
    } catch (...) {
        if (why)
            *why = "out of memory while converting a value";
        return kInvalid;
    }
}

Status
ToMsgpack(v8::Local<v8::Context> context, v8::Local<v8::Value> value,
          msgpack_packer *pk, std::string *why)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    Status st = ToMsgpack(context, value, &sb, why);
    if (st == kOk && pk->callback(pk->data, sb.data, sb.size) != 0) {
        if (why)
            *why = "out of memory while packing a value";
        st = kInvalid;
    }
    msgpack_sbuffer_destroy(&sb);
    return st;
}

} // namespace jsv
