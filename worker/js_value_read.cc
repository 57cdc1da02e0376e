// msgpack -> V8 (FromMsgpack; docs/values.md, the choices in js_value.cc):
// msgpack bytes read with proto's pull cursor (no object tree, no zone) made
// into V8 values, running no JavaScript. Strings
// must be strict UTF-8; ext -1, 1 and 2 become a Date, a BigInt and a
// callable (js_callable.cc).
#include "js_value_internal.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ext.h"
#include "proto.h"

namespace jsv
{
namespace
{

constexpr double kMaxSafe = 9007199254740992.0; // 2^53
constexpr double kMaxDateMs = 8.64e15;

// ---------------------------------------------------------------------------
// UTF-8

// Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). Sets
// *ascii when every byte is below 0x80.
bool
ValidUtf8(const unsigned char *s, size_t n, bool *ascii)
{
    size_t i = 0;
    bool all_ascii = true;
    while (i < n) {
        // Eight ASCII bytes at a time: most keys and texts are ASCII.
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        all_ascii = false;
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f; // U+D800..U+DFFF are not characters
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += need + 1;
    }
    *ascii = all_ascii;
    return true;
}

// ---------------------------------------------------------------------------
// BigInt from sign and magnitude (proto_ext_bigint_decode gives those)

// A big-endian magnitude (len bytes) and a sign as a BigInt.
MaybeLocal<v8::BigInt>
BigIntFromMagnitude(Local<v8::Context> context, bool neg,
                    const unsigned char *mag, size_t len)
{
    size_t words = (len + 7) / 8;
    if (words == 0)
        words = 1;
    std::vector<uint64_t> w(words, 0);
    for (size_t i = 0; i < len; i++) {
        size_t from_end = len - 1 - i; // byte significance
        w[from_end / 8] |= (uint64_t)mag[i] << (8 * (from_end % 8));
    }
    return v8::BigInt::NewFromWords(context, neg ? 1 : 0, (int)words, w.data());
}

// The key cache's hash (CachedKey, js_value_internal.h).
uint32_t
HashBytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

// ---------------------------------------------------------------------------
// msgpack -> V8

class Reader
{
  public:
    Reader(Local<v8::Context> context, std::string *why)
        : context_(context), isolate_(context->GetIsolate()), why_(why),
          // In the caller's handle scope, so it outlives every map's own.
          object_proto_(v8::Object::New(isolate_)->GetPrototype())
    {
    }

    // Reads one whole item at c and moves past it.
    Status Convert(proto_cur *c, int depth, Local<Value> *out);
    // The bytes end at `end` (for the words of an error's path).
    void SetEnd(const uint8_t *end)
    {
        end_ = (const char *)end;
    }

  private:
    struct Step {
        const char *key; // map entry: where its key's bytes start, else
                         // nullptr (read again only for the words)
        uint32_t index;  // array element
    };

    Status Invalid(const std::string &what)
    {
        if (why_) {
            std::string p = "value";
            for (const Step &s : path_) {
                proto_cur kc;
                proto_item k;
                k.type = PROTO_T_NIL;
                if (s.key != nullptr) {
                    proto_cur_init(&kc, s.key, (size_t)(end_ - s.key));
                    if (proto_cur_next(&kc, &k) != 0)
                        k.type = PROTO_T_NIL;
                }
                if (!s.key) {
                    AppendIndex(&p, "[", s.index);
                } else if (k.type == PROTO_T_STR) {
                    AppendKey(&p, k.ptr, k.len);
                } else if (k.type == PROTO_T_UINT) {
                    AppendIndex(&p, "[", k.v.u);
                } else if (k.type == PROTO_T_INT) {
                    p += "[" + std::to_string(k.v.i) + "]";
                } else {
                    p += "[?]";
                }
            }
            *why_ = p + ": " + what;
        }
        return kInvalid;
    }

    // An empty handle from V8 (sizes were checked before): an exception or
    // a termination is pending in the caller's TryCatch.
    Status Thrown()
    {
        if (why_)
            *why_ = "exception while converting a value";
        return kException;
    }

    Status TooDeep()
    {
        return Invalid(
            "nested deeper than " JSV_STR(PROTO_VALUE_MAX_DEPTH) " levels");
    }

    // Bytes that end early or are not msgpack (a message's values were
    // checked by proto's reader: only bytes from elsewhere get here).
    Status NotMsgpack()
    {
        return Invalid("not msgpack");
    }

    Status String(const char *s, size_t n, bool key, Local<Value> *out);
    Status Key(const proto_item &k, bool cache, Local<v8::Name> *out);
    Status Ext(const proto_item &it, Local<Value> *out);
    Status Array(proto_cur *c, uint32_t n, int depth, Local<Value> *out);
    Status Map(proto_cur *c, uint32_t n, int depth, Local<Value> *out);

    Local<v8::Context> context_;
    v8::Isolate *isolate_;
    std::string *why_;
    Local<Value> object_proto_; // Object.prototype: every map's prototype
    const char *end_ = nullptr; // where the bytes being read end
    std::vector<Step> path_;
    // Arrays' items and maps' keys and values while their container is
    // being made, every level on the same stacks (no allocation per map).
    std::vector<Local<Value>> values_;
    std::vector<Local<v8::Name>> names_;
    CachedKey keys_[kKeyCacheSize];
};

// Keys are internalized: V8 would do it on the first property lookup anyway.
Status
Reader::String(const char *s, size_t n, bool key, Local<Value> *out)
{
    bool ascii = false;
    if (!ValidUtf8((const unsigned char *)s, n, &ascii))
        return Invalid(key ? "invalid UTF-8 in a map key" : "invalid UTF-8");
    if (n > (size_t)v8::String::kMaxLength)
        return Invalid("string too long");
    v8::NewStringType type =
        key ? v8::NewStringType::kInternalized : v8::NewStringType::kNormal;
    MaybeLocal<v8::String> str =
        ascii ? v8::String::NewFromOneByte(isolate_, (const uint8_t *)s, type,
                                           (int)n)
              : v8::String::NewFromUtf8(isolate_, s, type, (int)n);
    Local<v8::String> v;
    if (!str.ToLocal(&v))
        return Thrown();
    *out = v;
    return kOk;
}

Status
Reader::Key(const proto_item &k, bool cache, Local<v8::Name> *out)
{
    Local<Value> v;
    if (k.type == PROTO_T_STR) {
        const char *s = k.ptr;
        uint32_t n = k.len;
        if (!cache || n > kMaxCachedKeyBytes) {
            Status st = String(s, n, true, &v);
            if (st != kOk)
                return st;
            *out = v.As<v8::Name>();
            return kOk;
        }
        uint32_t h = HashBytes(s, n);
        CachedKey &e = keys_[h % kKeyCacheSize];
        if (e.hash == h && e.len == n && !e.str.IsEmpty() &&
            (n == 0 || memcmp(e.bytes, s, n) == 0)) {
            *out = Local<v8::String>::New(isolate_, e.str);
            return kOk;
        }
        Status st = String(s, n, true, &v);
        if (st != kOk)
            return st;
        e.str.Reset(isolate_, v.As<v8::String>());
        e.hash = h;
        e.len = n;
        if (n > 0)
            memcpy(e.bytes, s, n);
    } else if (k.type == PROTO_T_UINT || k.type == PROTO_T_INT) {
        std::string s = k.type == PROTO_T_UINT ? std::to_string(k.v.u)
                                               : std::to_string(k.v.i);
        Status st = String(s.data(), s.size(), true, &v);
        if (st != kOk)
            return st;
    } else {
        const char *type = "?";
        switch (k.type) {
        case PROTO_T_NIL:
            type = "nil";
            break;
        case PROTO_T_BOOL:
            type = "boolean";
            break;
        case PROTO_T_FLOAT32:
            type = "float32";
            break;
        case PROTO_T_FLOAT64:
            type = "float64";
            break;
        case PROTO_T_BIN:
            type = "bin";
            break;
        case PROTO_T_ARRAY:
            type = "array";
            break;
        case PROTO_T_MAP:
            type = "map";
            break;
        case PROTO_T_EXT:
            type = "ext";
            break;
        default:
            break;
        }
        return Invalid(std::string("map key of type ") + type +
                       " (keys must be strings or integers)");
    }
    *out = v.As<v8::Name>();
    return kOk;
}

Status
Reader::Ext(const proto_item &it, Local<Value> *out)
{
    const char *p = it.ptr;
    uint32_t n = it.len;
    char cause[PROTO_CAUSE_MAX];
    if (it.ext_type == PROTO_EXT_TIMESTAMP) {
        int64_t sec;
        uint32_t nsec;
        if (proto_ext_timestamp_decode(p, n, &sec, &nsec, cause) != 0)
            return Invalid(cause);
        // Dates hold milliseconds (sub-millisecond digits are dropped, toward
        // negative infinity so that a date never moves into the next ms).
        if (sec > 8640000000000ll || sec < -8640000000000ll)
            return Invalid("timestamp out of the range of Date");
        double ms = (double)sec * 1000.0 + (double)(nsec / 1000000u);
        if (ms > kMaxDateMs || ms < -kMaxDateMs)
            return Invalid("timestamp out of the range of Date");
        Local<Value> d;
        if (!v8::Date::New(context_, ms).ToLocal(&d))
            return Thrown();
        *out = d;
        return kOk;
    }
    if (it.ext_type == PROTO_EXT_BIGINT) {
        std::vector<unsigned char> mag(n > 0 ? n : 1);
        size_t len;
        bool neg;
        if (proto_ext_bigint_decode(p, n, &neg, mag.data(), &len, cause) != 0)
            return Invalid(cause);
        Local<v8::BigInt> b;
        if (!BigIntFromMagnitude(context_, neg, mag.data(), len).ToLocal(&b))
            return Thrown();
        *out = b;
        return kOk;
    }
    if (it.ext_type == PROTO_EXT_CALLABLE) {
        uint32_t id;
        std::string why;
        if (proto_ext_callable_decode(p, n, &id, cause) != 0)
            return Invalid(cause);
        Status st = CallableFromId(context_, id, out, &why);
        return st == kInvalid ? Invalid(why) : st == kException ? Thrown() : st;
    }
    char what[64];
    snprintf(what, sizeof what, "unknown ext type %d", (int)it.ext_type);
    return Invalid(what);
}

// The bytes left at c: every item takes at least one.
static size_t
Left(const proto_cur *c)
{
    return (size_t)(c->end - c->p);
}

Status
Reader::Array(proto_cur *c, uint32_t n, int depth, Local<Value> *out)
{
    if (depth >= kMaxDepth)
        return TooDeep();
    if (n > kMaxArrayLength) // V8 would abort on an array this long
        return Invalid("array longer than " + std::to_string(kMaxArrayLength) +
                       " elements");
    if (n > Left(c))
        return NotMsgpack();
    v8::EscapableHandleScope scope(isolate_);
    size_t base = values_.size();
    values_.reserve(base + n);
    path_.push_back(Step{nullptr, 0});
    for (uint32_t i = 0; i < n; i++) {
        path_.back().index = i;
        Local<Value> v;
        Status st = Convert(c, depth + 1, &v);
        if (st != kOk)
            return st;
        values_.push_back(v); // what the item pushed is popped again
    }
    path_.pop_back();
    Local<v8::Array> a = v8::Array::New(isolate_, values_.data() + base, n);
    values_.resize(base);
    *out = scope.Escape(a);
    return kOk;
}

Status
Reader::Map(proto_cur *c, uint32_t n, int depth, Local<Value> *out)
{
    if (depth >= kMaxDepth)
        return TooDeep();
    if ((uint64_t)n * 2 > Left(c))
        return NotMsgpack();
    v8::EscapableHandleScope scope(isolate_);
    // The root map's keys come once per conversion: caching them (a Global
    // each) would cost a call's data more than it saves.
    bool cache = depth > 0 && n <= kMaxCachedMapSize;
    size_t base = values_.size(), nbase = names_.size();
    values_.reserve(base + n);
    names_.reserve(nbase + n);
    for (uint32_t i = 0; i < n; i++) {
        proto_item key;
        const char *key_at = (const char *)c->p;
        if (proto_cur_next(c, &key) != 0)
            return NotMsgpack();
        Local<v8::Name> k;
        Status st = Key(key, cache, &k); // a bad key is the map's fault
        if (st != kOk)
            return st;
        path_.push_back(Step{key_at, 0});
        Local<Value> v;
        st = Convert(c, depth + 1, &v);
        if (st != kOk)
            return st;
        path_.pop_back();
        names_.push_back(k); // what the value pushed is popped again
        values_.push_back(v);
    }
    // One Object::New with every property, rather than a CreateDataProperty
    // each: ten times faster on a 1000-key map (each define reshapes the
    // object). It defines data properties as JSON.parse does: "__proto__" is
    // an own property, setters on Object.prototype never see the data, and a
    // repeated key keeps its last value.
    Local<v8::Object> obj =
        v8::Object::New(isolate_, object_proto_, names_.data() + nbase,
                        values_.data() + base, n);
    values_.resize(base);
    names_.resize(nbase);
    *out = scope.Escape(obj);
    return kOk;
}

Status
Reader::Convert(proto_cur *c, int depth, Local<Value> *out)
{
    proto_item it;
    if (proto_cur_next(c, &it) != 0)
        return NotMsgpack();
    switch (it.type) {
    case PROTO_T_NIL:
        *out = v8::Null(isolate_);
        return kOk;
    case PROTO_T_BOOL:
        *out = v8::Boolean::New(isolate_, it.v.b);
        return kOk;
    case PROTO_T_UINT:
        if (it.v.u <= INT32_MAX)
            *out = v8::Integer::New(isolate_, (int32_t)it.v.u);
        else if (it.v.u <= (uint64_t)kMaxSafe)
            *out = v8::Number::New(isolate_, (double)it.v.u);
        else
            *out = v8::BigInt::NewFromUnsigned(isolate_, it.v.u);
        return kOk;
    case PROTO_T_INT:
        if (it.v.i >= INT32_MIN)
            *out = v8::Integer::New(isolate_, (int32_t)it.v.i);
        else if (it.v.i >= -(int64_t)kMaxSafe)
            *out = v8::Number::New(isolate_, (double)it.v.i);
        else
            *out = v8::BigInt::New(isolate_, it.v.i);
        return kOk;
    case PROTO_T_FLOAT32:
    case PROTO_T_FLOAT64:
        *out = v8::Number::New(isolate_, it.v.f);
        return kOk;
    case PROTO_T_STR:
        return String(it.ptr, it.len, false, out);
    case PROTO_T_BIN: {
        size_t n = it.len;
        Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate_, n);
        if (n > 0)
            memcpy(ab->Data(), it.ptr, n);
        *out = v8::Uint8Array::New(ab, 0, n);
        return kOk;
    }
    case PROTO_T_EXT:
        return Ext(it, out);
    case PROTO_T_ARRAY:
        return Array(c, it.len, depth, out);
    case PROTO_T_MAP:
        return Map(c, it.len, depth, out);
    }
    return Invalid("unknown msgpack type");
}

} // namespace

Status
FromMsgpack(v8::Local<v8::Context> context, proto_cur *cur,
            v8::Local<v8::Value> *out, std::string *why)
{
    v8::EscapableHandleScope scope(context->GetIsolate());
    // No C++ exception may unwind into V8's frames (built without them).
    try {
        Reader r(context, why);
        r.SetEnd(cur->end);
        Local<Value> v;
        Status st = r.Convert(cur, 0, &v);
        if (st == kOk)
            *out = scope.Escape(v);
        return st;
    } catch (...) {
        if (why)
            *why = "out of memory while converting a value";
        return kInvalid;
    }
}

} // namespace jsv
