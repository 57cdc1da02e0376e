// Values across the boundary (docs/values.md), converted directly between
// msgpack-c objects and V8 values. The ext types' bytes are proto/ext.h's.
//
// Choices beyond the table, so that they are written down once:
// - JS -> msgpack follows JSON.stringify (SerializeJSONProperty) except where
//   msgpack can say more: Date, ArrayBuffer and its views, Map, Set, BigInt,
//   NaN/±Infinity/-0. Dates and ArrayBuffer views never consult toJSON (Node's
//   Buffer.prototype.toJSON would otherwise turn a Buffer into {type, data}).
// - An Error is a map {name, message, stack} (each a string, or nil), then
//   its own enumerable string keys; a RegExp is its source string, /x/g.
//   Promise, WeakMap, ... are plain objects: their own enumerable string
//   keys, {} mostly, exactly as JSON.stringify.
// - Boxed primitives are unwrapped through their internal slot (no user
//   valueOf/toString is called, unlike JSON.stringify's ToNumber/ToString).
// - Map entries are all kept (an undefined or function value is nil there); a
//   Map key is converted as a value, whatever its type (msgpack allows it).
// - An object's values are read, passed through toJSON and converted one
//   key after the other, in JSON.stringify's order (getters with side effects
//   see the same sequence of calls). The reads run in a small JavaScript walk
//   (kWalkSource): an error a getter throws has `walk (jshost:values:...)`
//   frames under the getter's in its stack, which the worker's stack filter
//   (js_error.cc) leaves out of what users see.
// - BigInt.prototype.toJSON is not consulted: a BigInt always goes out as an
//   int or ext 1 (JSON.stringify would call it, or throw without it).
// - An invalid Date is kInvalid (JSON.stringify would write null).
// - Arrays longer than kMaxArrayLength (2^26) are kInvalid both ways: no
//   message within the default limit could carry them, filling a packer with
//   billions of nils cannot be interrupted, and V8 aborts on arrays near 2^27
//   elements.
#include "js_value.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "ext.h"
#include "proto.h"

namespace jsv
{
namespace
{

using v8::Local;
using v8::MaybeLocal;
using v8::Value;

#define JSV_STR2(x) #x
#define JSV_STR(x) JSV_STR2(x)

constexpr int kMaxDepth = PROTO_VALUE_MAX_DEPTH;
constexpr uint32_t kMaxArrayLength = 1u << 26;  // one nil each: 64 MiB
constexpr double kMaxSafe = 9007199254740992.0; // 2^53
constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kMaxDateMs = 8.64e15;

// ---------------------------------------------------------------------------
// Paths in messages ("value.a[3].b")

bool
IsIdentifier(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_' || c == '$';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

// How much of a UTF-8 string to show: at most `max` bytes, never cutting a
// character (the message itself must stay valid UTF-8).
size_t
ShownLength(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

// A key as `.name` or `["quoted"]`, cut to a readable length.
void
AppendKey(std::string *out, const char *s, size_t n)
{
    constexpr size_t kMaxShown = 64;
    if (IsIdentifier(s, n) && n <= kMaxShown) {
        out->push_back('.');
        out->append(s, n);
        return;
    }
    out->append("[\"");
    size_t shown = ShownLength(s, n, kMaxShown);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out->push_back('\\');
            out->push_back((char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out->append(buf);
        } else {
            out->push_back((char)c);
        }
    }
    if (shown < n)
        out->append("...");
    out->append("\"]");
}

void
AppendIndex(std::string *out, const char *prefix, uint64_t i)
{
    out->append(prefix);
    out->append(std::to_string(i));
    out->push_back(']');
}

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
// BigInt <-> sign and magnitude (proto_ext_bigint_* code ext 1 from those)

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
// Keys seen before in the same conversion

// The maps in one value are mostly records with the same few keys ({i, s} a
// thousand times over): each such key is made (msgpack -> V8) or written
// (V8 -> msgpack) once per conversion and found here after that. Only the
// keys of small maps are kept (a big map's keys seldom come again), and only
// short ones. Direct-mapped: a collision replaces the entry. The strings are
// Globals because the handle scope of the map that first held a key is gone
// by the time the next map needs it.
constexpr size_t kKeyCacheSize = 64;
constexpr uint32_t kMaxCachedKeyBytes = 32;
constexpr uint32_t kMaxCachedMapSize = 16;

struct CachedKey {
    v8::Global<v8::String> str;
    uint32_t hash = 0;
    uint32_t len = 0;               // bytes of UTF-8
    char bytes[kMaxCachedKeyBytes]; // the key in UTF-8
};

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

    Status Convert(const msgpack_object &o, int depth, Local<Value> *out);

  private:
    struct Step {
        const msgpack_object *key; // map entry, else nullptr
        uint32_t index;            // array element
    };

    Status Invalid(const std::string &what)
    {
        if (why_) {
            std::string p = "value";
            for (const Step &s : path_) {
                if (!s.key) {
                    AppendIndex(&p, "[", s.index);
                } else if (s.key->type == MSGPACK_OBJECT_STR) {
                    AppendKey(&p, s.key->via.str.ptr, s.key->via.str.size);
                } else if (s.key->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    AppendIndex(&p, "[", s.key->via.u64);
                } else if (s.key->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                    p += "[" + std::to_string(s.key->via.i64) + "]";
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

    Status String(const char *s, size_t n, bool key, Local<Value> *out);
    Status Key(const msgpack_object &k, bool cache, Local<v8::Name> *out);
    Status Ext(const msgpack_object &o, Local<Value> *out);
    Status Array(const msgpack_object &o, int depth, Local<Value> *out);
    Status Map(const msgpack_object &o, int depth, Local<Value> *out);

    Local<v8::Context> context_;
    v8::Isolate *isolate_;
    std::string *why_;
    Local<Value> object_proto_; // Object.prototype: every map's prototype
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
Reader::Key(const msgpack_object &k, bool cache, Local<v8::Name> *out)
{
    Local<Value> v;
    if (k.type == MSGPACK_OBJECT_STR) {
        const char *s = k.via.str.ptr;
        uint32_t n = k.via.str.size;
        if (!cache || n > kMaxCachedKeyBytes) {
            Status st = String(s, n, true, &v);
            if (st != kOk)
                return st;
            *out = v.As<v8::Name>();
            return kOk;
        }
        uint32_t h = HashBytes(s, n);
        CachedKey &e = keys_[h % kKeyCacheSize];
        // (an empty str's pointer may be null: no memcmp or memcpy of it)
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
    } else if (k.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
               k.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        std::string s = k.type == MSGPACK_OBJECT_POSITIVE_INTEGER
                            ? std::to_string(k.via.u64)
                            : std::to_string(k.via.i64);
        Status st = String(s.data(), s.size(), true, &v);
        if (st != kOk)
            return st;
    } else {
        static const char *const kTypes[] = {
            "nil",   "boolean", "int", "int", "float64", "str",
            "array", "map",     "bin", "ext", "float32"};
        std::string what = "map key of type ";
        what += (unsigned)k.type < sizeof kTypes / sizeof kTypes[0]
                    ? kTypes[k.type]
                    : "?";
        return Invalid(what + " (keys must be strings or integers)");
    }
    *out = v.As<v8::Name>();
    return kOk;
}
Status
Reader::Ext(const msgpack_object &o, Local<Value> *out)
{
    const char *p = o.via.ext.ptr;
    uint32_t n = o.via.ext.size;
    char cause[PROTO_CAUSE_MAX];
    if (o.via.ext.type == PROTO_EXT_TIMESTAMP) {
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
    if (o.via.ext.type == PROTO_EXT_BIGINT) {
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
    if (o.via.ext.type == PROTO_EXT_CALLABLE) {
        uint32_t id;
        std::string why;
        if (proto_ext_callable_decode(p, n, &id, cause) != 0)
            return Invalid(cause);
        Status st = CallableFromId(context_, id, out, &why);
        return st == kInvalid ? Invalid(why) : st == kException ? Thrown() : st;
    }
    char what[64];
    snprintf(what, sizeof what, "unknown ext type %d", (int)o.via.ext.type);
    return Invalid(what);
}

Status
Reader::Array(const msgpack_object &o, int depth, Local<Value> *out)
{
    if (depth >= kMaxDepth)
        return TooDeep();
    uint32_t n = o.via.array.size;
    if (n > kMaxArrayLength) // V8 would abort on an array this long
        return Invalid("array longer than " + std::to_string(kMaxArrayLength) +
                       " elements");
    v8::EscapableHandleScope scope(isolate_);
    size_t base = values_.size();
    values_.reserve(base + n);
    path_.push_back(Step{nullptr, 0});
    for (uint32_t i = 0; i < n; i++) {
        path_.back().index = i;
        Local<Value> v;
        Status st = Convert(o.via.array.ptr[i], depth + 1, &v);
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
Reader::Map(const msgpack_object &o, int depth, Local<Value> *out)
{
    if (depth >= kMaxDepth)
        return TooDeep();
    v8::EscapableHandleScope scope(isolate_);
    uint32_t n = o.via.map.size;
    bool cache = n <= kMaxCachedMapSize;
    size_t base = values_.size(), nbase = names_.size();
    values_.reserve(base + n);
    names_.reserve(nbase + n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object_kv &kv = o.via.map.ptr[i];
        Local<v8::Name> k;
        Status st = Key(kv.key, cache, &k); // a bad key is the map's fault
        if (st != kOk)
            return st;
        path_.push_back(Step{&kv.key, 0});
        Local<Value> v;
        st = Convert(kv.val, depth + 1, &v);
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
Reader::Convert(const msgpack_object &o, int depth, Local<Value> *out)
{
    switch (o.type) {
    case MSGPACK_OBJECT_NIL:
        *out = v8::Null(isolate_);
        return kOk;
    case MSGPACK_OBJECT_BOOLEAN:
        *out = v8::Boolean::New(isolate_, o.via.boolean);
        return kOk;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o.via.u64 <= INT32_MAX)
            *out = v8::Integer::New(isolate_, (int32_t)o.via.u64);
        else if (o.via.u64 <= (uint64_t)kMaxSafe)
            *out = v8::Number::New(isolate_, (double)o.via.u64);
        else
            *out = v8::BigInt::NewFromUnsigned(isolate_, o.via.u64);
        return kOk;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (o.via.i64 >= INT32_MIN)
            *out = v8::Integer::New(isolate_, (int32_t)o.via.i64);
        else if (o.via.i64 >= -(int64_t)kMaxSafe)
            *out = v8::Number::New(isolate_, (double)o.via.i64);
        else
            *out = v8::BigInt::New(isolate_, o.via.i64);
        return kOk;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = v8::Number::New(isolate_, o.via.f64);
        return kOk;
    case MSGPACK_OBJECT_STR:
        return String(o.via.str.ptr, o.via.str.size, false, out);
    case MSGPACK_OBJECT_BIN: {
        size_t n = o.via.bin.size;
        Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate_, n);
        if (n > 0)
            memcpy(ab->Data(), o.via.bin.ptr, n);
        *out = v8::Uint8Array::New(ab, 0, n);
        return kOk;
    }
    case MSGPACK_OBJECT_EXT:
        return Ext(o, out);
    case MSGPACK_OBJECT_ARRAY:
        return Array(o, depth, out);
    case MSGPACK_OBJECT_MAP:
        return Map(o, depth, out);
    }
    return Invalid("unknown msgpack type");
}

// ---------------------------------------------------------------------------
// msgpack bytes, written in place

void
Store16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

void
Store32(char *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

void
Store64(char *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

// Bytes a str header takes for an n-byte string.
size_t
StrHeaderSize(size_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

void
PutStrHeader(char *p, size_t n)
{
    if (n < 32) {
        p[0] = (char)(0xa0 | n);
    } else if (n < 256) {
        p[0] = (char)0xd9;
        p[1] = (char)n;
    } else if (n < 65536) {
        p[0] = (char)0xda;
        Store16(p + 1, (uint16_t)n);
    } else {
        p[0] = (char)0xdb;
        Store32(p + 1, (uint32_t)n);
    }
}

size_t
MapHeaderSize(size_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

// A map or array header (`small` is 0x80 or 0x90; 16 and 32 bits follow it
// at 0xde/0xdc and 0xdf/0xdd).
void
PutContainerHeader(char *p, uint8_t small, uint8_t big16, size_t n)
{
    if (n < 16) {
        p[0] = (char)(small | n);
    } else if (n < 65536) {
        p[0] = (char)big16;
        Store16(p + 1, (uint16_t)n);
    } else {
        p[0] = (char)(big16 + 1);
        Store32(p + 1, (uint32_t)n);
    }
}

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

// An sbuffer written in place: one check for room per item and plain
// stores, instead of a packer call (and its writer callback) per header. The
// forms are msgpack-c's (the smallest), so that what round-trips stays byte
// for byte the same.
class Out
{
  public:
    explicit Out(msgpack_sbuffer *sb) : sb_(sb)
    {
    }

    // Room for n more bytes at Tail(); false when memory ran out.
    bool Reserve(size_t n)
    {
        return sb_->alloc - sb_->size >= n || Grow(n);
    }
    char *Tail()
    {
        return sb_->data + sb_->size;
    }
    char *At(size_t off)
    {
        return sb_->data + off;
    }
    size_t Size() const
    {
        return sb_->size;
    }
    void Advance(size_t n)
    {
        sb_->size += n;
    }
    void Shrink(size_t size)
    {
        sb_->size = size;
    }
    msgpack_sbuffer *Buffer()
    {
        return sb_;
    }

    bool Byte(uint8_t b)
    {
        if (!Reserve(1))
            return false;
        sb_->data[sb_->size++] = (char)b;
        return true;
    }

    bool Int(int64_t d)
    {
        if (!Reserve(9))
            return false;
        char *p = Tail();
        size_t n;
        if (d < -(1LL << 5)) {
            if (d < -(1LL << 15)) {
                if (d < -(1LL << 31)) {
                    p[0] = (char)0xd3;
                    Store64(p + 1, (uint64_t)d);
                    n = 9;
                } else {
                    p[0] = (char)0xd2;
                    Store32(p + 1, (uint32_t)(int32_t)d);
                    n = 5;
                }
            } else if (d < -(1 << 7)) {
                p[0] = (char)0xd1;
                Store16(p + 1, (uint16_t)(int16_t)d);
                n = 3;
            } else {
                p[0] = (char)0xd0;
                p[1] = (char)d;
                n = 2;
            }
        } else if (d < (1 << 7)) {
            p[0] = (char)d;
            n = 1;
        } else if (d < (1LL << 16)) {
            if (d < (1 << 8)) {
                p[0] = (char)0xcc;
                p[1] = (char)d;
                n = 2;
            } else {
                p[0] = (char)0xcd;
                Store16(p + 1, (uint16_t)d);
                n = 3;
            }
        } else if (d < (1LL << 32)) {
            p[0] = (char)0xce;
            Store32(p + 1, (uint32_t)d);
            n = 5;
        } else {
            p[0] = (char)0xcf;
            Store64(p + 1, (uint64_t)d);
            n = 9;
        }
        Advance(n);
        return true;
    }

    bool Double(double d)
    {
        if (!Reserve(9))
            return false;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        char *p = Tail();
        p[0] = (char)0xcb;
        Store64(p + 1, bits);
        Advance(9);
        return true;
    }

    bool ArrayHeader(size_t n)
    {
        if (!Reserve(5))
            return false;
        PutContainerHeader(Tail(), 0x90, 0xdc, n);
        Advance(MapHeaderSize(n));
        return true;
    }

    bool MapHeader(size_t n)
    {
        if (!Reserve(5))
            return false;
        PutContainerHeader(Tail(), 0x80, 0xde, n);
        Advance(MapHeaderSize(n));
        return true;
    }

    // A str of n bytes: its header, then the bytes.
    bool Str(const void *s, size_t n)
    {
        if (!Reserve(5 + n))
            return false;
        PutStrHeader(Tail(), n);
        Advance(StrHeaderSize(n));
        if (n > 0)
            memcpy(Tail(), s, n);
        Advance(n);
        return true;
    }

    bool Bin(const void *p, size_t n)
    {
        if (!Reserve(5 + n))
            return false;
        char *h = Tail();
        if (n < 256) {
            h[0] = (char)0xc4;
            h[1] = (char)n;
            Advance(2);
        } else if (n < 65536) {
            h[0] = (char)0xc5;
            Store16(h + 1, (uint16_t)n);
            Advance(3);
        } else {
            h[0] = (char)0xc6;
            Store32(h + 1, (uint32_t)n);
            Advance(5);
        }
        if (n > 0)
            memcpy(Tail(), p, n);
        Advance(n);
        return true;
    }

  private:
    // Doubling, as msgpack_sbuffer_write grows it.
    bool Grow(size_t n)
    {
        size_t want = sb_->size + n;
        if (want < n)
            return false;
        size_t size = sb_->alloc ? sb_->alloc : 8192;
        while (size < want) {
            if (size > SIZE_MAX / 2)
                return false;
            size *= 2;
        }
        char *p = (char *)realloc(sb_->data, size);
        if (!p)
            return false;
        sb_->data = p;
        sb_->alloc = size;
        return true;
    }

    msgpack_sbuffer *sb_;
};

// ---------------------------------------------------------------------------
// V8 -> msgpack

// A plain object's own enumerable keys and their values are read by this
// JavaScript, compiled once per context: through the API every key read from
// Object.keys' array and every Get is a call into V8 (entry, handle scope,
// lookup), several times what the same reads cost in compiled JavaScript.
// It hands each key and value to `entry` (Writer::Entry, a native function
// only this closure holds) as call arguments, which native code reads in
// place; entry returns false to end the walk when the conversion failed, and
// an exception (a getter's, toJSON's, a termination) ends it by itself. It
// uses nothing a script can replace: the context's original Object.keys
// (kObjectKeysPrivate), own elements of the array that returns, and syntax.
const char kWalkSource[] = R"JS((function (keys, entry) {
  'use strict';
  return function walk(o) {
    const ks = keys(o);
    for (let i = 0, n = ks.length; i < n; i++) {
      const k = ks[i];
      if (!entry(k, o[k])) return;
    }
  };
}))JS";

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

    // An object being walked (kWalkSource): its entries so far, its depth,
    // and how the conversion of one of them failed.
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
    Local<v8::Function> walk_;        // kWalkSource's walk, if there is one
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
    Shape shape;
    Status st = Resolve(&value, top, &shape);
    if (st != kOk)
        return st;
    if (shape == kSkip) {
        PACK(out_.Byte(0xc0));
        return kOk;
    }
    return Pack(value, 0);
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
            Shape shape;
            Status st = Resolve(&v, path_.back(), &shape);
            if (st != kOk)
                return st;
            if (shape == kSkip)
                PACK(out_.Byte(0xc0));
            else if ((st = Pack(v, depth + 1)) != kOk)
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
            Shape shape;
            Status st = Resolve(&x, path_.back(), &shape);
            if (st != kOk)
                return st;
            if (shape == kSkip)
                PACK(out_.Byte(0xc0));
            else if ((st = Pack(x, depth + 1)) != kOk)
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

// The context's walk (kWalkSource), made the first time a value of this
// context is converted; empty if it cannot be made (the caller then reads
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
             context_, v8::String::NewFromUtf8Literal(isolate_, kWalkSource),
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
FromMsgpack(v8::Local<v8::Context> context, const msgpack_object &obj,
            v8::Local<v8::Value> *out, std::string *why)
{
    v8::EscapableHandleScope scope(context->GetIsolate());
    // No C++ exception may unwind into V8's frames (built without them).
    try {
        Reader r(context, why);
        Local<Value> v;
        Status st = r.Convert(obj, 0, &v);
        if (st == kOk)
            *out = scope.Escape(v);
        return st;
    } catch (...) {
        if (why)
            *why = "out of memory while converting a value";
        return kInvalid;
    }
}

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
