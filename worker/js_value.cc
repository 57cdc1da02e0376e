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
// - An object's own keys and their toJSON results are read before its
//   children are converted (the map's size must be known before its entries):
//   getters with side effects observe a different order than JSON.stringify.
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

    Status String(const char *s, size_t n, bool key, Local<Value> *out);
    Status Key(const msgpack_object &k, Local<v8::Name> *out);
    Status Ext(const msgpack_object &o, Local<Value> *out);

    Local<v8::Context> context_;
    v8::Isolate *isolate_;
    std::string *why_;
    Local<Value> object_proto_; // Object.prototype: every map's prototype
    std::vector<Step> path_;
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
Reader::Key(const msgpack_object &k, Local<v8::Name> *out)
{
    Local<Value> v;
    if (k.type == MSGPACK_OBJECT_STR) {
        Status st = String(k.via.str.ptr, k.via.str.size, true, &v);
        if (st != kOk)
            return st;
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
    char what[64];
    snprintf(what, sizeof what, "unknown ext type %d", (int)o.via.ext.type);
    return Invalid(what);
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
        if (o.via.u64 <= (uint64_t)kMaxSafe)
            *out = v8::Number::New(isolate_, (double)o.via.u64);
        else
            *out = v8::BigInt::NewFromUnsigned(isolate_, o.via.u64);
        return kOk;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (o.via.i64 >= -(int64_t)kMaxSafe && o.via.i64 <= (int64_t)kMaxSafe)
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
    case MSGPACK_OBJECT_ARRAY: {
        if (depth >= kMaxDepth)
            return Invalid(
                "nested deeper than " JSV_STR(PROTO_VALUE_MAX_DEPTH) " levels");
        uint32_t n = o.via.array.size;
        if (n > kMaxArrayLength) // V8 would abort on an array this long
            return Invalid("array longer than " +
                           std::to_string(kMaxArrayLength) + " elements");
        v8::EscapableHandleScope scope(isolate_);
        std::vector<Local<Value>> items(n);
        path_.push_back(Step{nullptr, 0});
        for (uint32_t i = 0; i < n; i++) {
            path_.back().index = i;
            Status st = Convert(o.via.array.ptr[i], depth + 1, &items[i]);
            if (st != kOk)
                return st;
        }
        path_.pop_back();
        *out = scope.Escape(v8::Array::New(isolate_, items.data(), n));
        return kOk;
    }
    case MSGPACK_OBJECT_MAP: {
        if (depth >= kMaxDepth)
            return Invalid(
                "nested deeper than " JSV_STR(PROTO_VALUE_MAX_DEPTH) " levels");
        v8::EscapableHandleScope scope(isolate_);
        uint32_t n = o.via.map.size;
        std::vector<Local<v8::Name>> keys(n);
        std::vector<Local<Value>> vals(n);
        for (uint32_t i = 0; i < n; i++) {
            const msgpack_object_kv &kv = o.via.map.ptr[i];
            Status st = Key(kv.key, &keys[i]); // a bad key is the map's fault
            if (st != kOk)
                return st;
            path_.push_back(Step{&kv.key, 0});
            st = Convert(kv.val, depth + 1, &vals[i]);
            if (st != kOk)
                return st;
            path_.pop_back();
        }
        // One Object::New with every property, rather than a
        // CreateDataProperty each: ten times faster on a 1000-key map (each
        // define reshapes the object). It defines data properties as
        // JSON.parse does: "__proto__" is an own property, setters on
        // Object.prototype never see the data, and a repeated key keeps
        // its last value.
        *out = scope.Escape(v8::Object::New(isolate_, object_proto_,
                                            keys.data(), vals.data(), n));
        return kOk;
    }
    }
    return Invalid("unknown msgpack type");
}

// ---------------------------------------------------------------------------
// V8 -> msgpack

// One step of the path from the top value down to the one being converted.
struct Step {
    enum Kind { kIndex, kKey, kMapKey, kMapValue } kind;
    uint32_t index;
    Local<Value> key; // kKey: a string; kMapValue: the Map's key
};

class Writer
{
  public:
    Writer(Local<v8::Context> context, msgpack_packer *pk, std::string *why)
        : context_(context), isolate_(context->GetIsolate()), pk_(pk), why_(why)
    {
    }

    Status Top(Local<Value> value);

  private:
    // What a value turned into once toJSON and boxing were applied.
    enum Shape { kSkip, kValue };

    Status Resolve(Local<Value> *v, const Step &where, Shape *shape);
    Status Pack(Local<Value> v, int depth);
    Status PackString(Local<v8::String> s);
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
    msgpack_packer *pk_;
    std::string *why_;
    Local<v8::String> to_json_;
    Local<v8::Function> object_keys_; // the original Object.keys, if kept
    std::vector<Step> path_;
    std::vector<Local<v8::Object>> stack_; // the containers on the path
    std::vector<Local<Value>> pairs_;      // objects' keys and values
    std::string utf8_;                     // scratch for strings
    std::vector<uint16_t> utf16_;
};

#define PACK(call)                                                             \
    do {                                                                       \
        if ((call) != 0)                                                       \
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
    to_json_ = v8::String::NewFromUtf8Literal(isolate_, "toJSON",
                                              v8::NewStringType::kInternalized);
    Local<Value> keys;
    if (context_->Global()
            ->GetPrivate(context_,
                         v8::Private::ForApi(isolate_,
                                             v8::String::NewFromUtf8Literal(
                                                 isolate_, kObjectKeysPrivate)))
            .ToLocal(&keys) &&
        keys->IsFunction())
        object_keys_ = keys.As<v8::Function>();
    Step top{Step::kIndex, 0, Local<Value>()};
    Shape shape;
    Status st = Resolve(&value, top, &shape);
    if (st != kOk)
        return st;
    if (shape == kSkip) {
        PACK(msgpack_pack_nil(pk_));
        return kOk;
    }
    return Pack(value, 0);
}

Status
Writer::PackBytes(const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return Invalid("binary data longer than 4 GiB");
    PACK(msgpack_pack_bin(pk_, n));
    if (n > 0)
        PACK(msgpack_pack_bin_body(pk_, p, n));
    return kOk;
}

Status
Writer::PackNumber(double d)
{
    if (std::isfinite(d) && d == std::trunc(d) && d >= -kTwo63 && d < kTwo63 &&
        !(d == 0 && std::signbit(d))) {
        PACK(msgpack_pack_int64(pk_, (int64_t)d));
    } else {
        PACK(msgpack_pack_double(pk_, d));
    }
    return kOk;
}

Status
Writer::PackBigInt(Local<v8::BigInt> b)
{
    bool neg;
    std::vector<unsigned char> mag = BigIntMagnitude(b, &neg);
    PACK(proto_ext_bigint_pack(pk_, neg, mag.data(), mag.size()));
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
    PACK(proto_ext_timestamp_pack(pk_, sec, nsec));
    return kOk;
}

// UTF-8 written from the UTF-16 (or Latin-1) data itself, so that a lone
// surrogate is seen and refused instead of becoming U+FFFD.
Status
Writer::PackString(Local<v8::String> s)
{
    int len = s->Length();
    if (len == 0) {
        PACK(msgpack_pack_str(pk_, 0));
        return kOk;
    }
    utf8_.clear();
    if (s->IsOneByte()) {
        utf8_.resize((size_t)len);
        s->WriteOneByte(isolate_, (uint8_t *)&utf8_[0], 0, len,
                        v8::String::NO_NULL_TERMINATION);
        size_t high = 0;
        for (unsigned char c : utf8_)
            high += c >> 7;
        if (high > 0) {
            std::string wide;
            wide.reserve(utf8_.size() + high);
            for (unsigned char c : utf8_) {
                if (c < 0x80) {
                    wide.push_back((char)c);
                } else {
                    wide.push_back((char)(0xc0 | (c >> 6)));
                    wide.push_back((char)(0x80 | (c & 0x3f)));
                }
            }
            utf8_.swap(wide);
        }
    } else {
        utf16_.resize((size_t)len);
        s->Write(isolate_, utf16_.data(), 0, len,
                 v8::String::NO_NULL_TERMINATION);
        size_t bad = EncodeUtf16(utf16_.data(), utf16_.size(), false, &utf8_);
        if (bad != SIZE_MAX) {
            char what[80];
            snprintf(what, sizeof what,
                     "string has a lone surrogate (U+%04X at index %zu)",
                     (unsigned)utf16_[bad], bad);
            return Invalid(what);
        }
    }
    if (utf8_.size() > UINT32_MAX)
        return Invalid("string longer than 4 GiB in UTF-8");
    PACK(msgpack_pack_str(pk_, utf8_.size()));
    PACK(msgpack_pack_str_body(pk_, utf8_.data(), utf8_.size()));
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
    PACK(msgpack_pack_array(pk_, n));
    path_.push_back(Step{Step::kIndex, 0, Local<Value>()});
    for (uint32_t i = 0; i < n; i++) {
        v8::HandleScope scope(isolate_);
        path_.back().index = i;
        Local<Value> v;
        if (!arr->Get(context_, i).ToLocal(&v))
            return Thrown();
        Shape shape;
        Status st = Resolve(&v, path_.back(), &shape);
        if (st != kOk)
            return st;
        if (shape == kSkip)
            PACK(msgpack_pack_nil(pk_));
        else if ((st = Pack(v, depth + 1)) != kOk)
            return st;
    }
    path_.pop_back();
    return kOk;
}

Status
Writer::PackMap(Local<v8::Map> map, int depth)
{
    Local<v8::Array> flat = map->AsArray(); // [k0, v0, k1, v1, ...]
    uint32_t n = flat->Length() / 2;
    PACK(msgpack_pack_map(pk_, n));
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
                PACK(msgpack_pack_nil(pk_));
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

// Own enumerable string keys, as JSON.stringify; the map's size is known
// only once every value went through toJSON, so they are resolved first.
// "/source/flags", as String(re) without calling anything of the script's.
Status
Writer::PackRegExp(Local<v8::RegExp> re)
{
    Local<v8::String> src = re->GetSource();
    v8::String::Utf8Value u(isolate_, src);
    std::string text = "/";
    text.append(*u ? *u : "", *u ? u.length() : 0);
    text += "/";
    int f = re->GetFlags();
    if (f & v8::RegExp::kHasIndices)
        text += 'd';
    if (f & v8::RegExp::kGlobal)
        text += 'g';
    if (f & v8::RegExp::kIgnoreCase)
        text += 'i';
    if (f & v8::RegExp::kMultiline)
        text += 'm';
    if (f & v8::RegExp::kDotAll)
        text += 's';
    if (f & v8::RegExp::kUnicode)
        text += 'u';
    if (f & v8::RegExp::kSticky)
        text += 'y';
    PACK(msgpack_pack_str_with_body(pk_, text.data(), text.size()));
    return kOk;
}

// An Error's name, message and stack: its string value, or nil.
Status
Writer::PackObject(Local<v8::Object> obj, int depth, bool error)
{
    static const char *const kErrorKeys[] = {"name", "message", "stack"};
    std::vector<Local<Value>> head;
    if (error) {
        for (const char *k : kErrorKeys) {
            Local<v8::String> ks =
                v8::String::NewFromUtf8(isolate_, k).ToLocalChecked();
            Local<Value> v;
            if (!obj->Get(context_, ks).ToLocal(&v))
                return Thrown();
            if (!v->IsUndefined() && !v->IsNull() && !v->IsString()) {
                Local<v8::String> str;
                if (!v->ToString(context_).ToLocal(&str))
                    return Thrown();
                v = str;
            }
            head.push_back(ks);
            head.push_back(v);
        }
    }
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
    // Key, value pairs kept on one stack shared by all levels (no
    // allocation per object); this level's pairs start at `base`.
    size_t base = pairs_.size();
    pairs_.insert(pairs_.end(), head.begin(), head.end());
    path_.push_back(Step{Step::kKey, 0, Local<Value>()});
    for (uint32_t i = 0; i < n; i++) {
        Local<Value> k, v;
        if (!keys->Get(context_, i).ToLocal(&k))
            return Thrown();
        if (error) {
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
        pairs_.push_back(k);
        pairs_.push_back(v);
    }
    size_t count = (pairs_.size() - base) / 2;
    PACK(msgpack_pack_map(pk_, count));
    for (size_t i = 0; i < count; i++) {
        Local<Value> k = pairs_[base + 2 * i], v = pairs_[base + 2 * i + 1];
        path_.back().key = k;
        Status st = PackString(k.As<v8::String>());
        if (st == kOk)
            st = Pack(v, depth + 1);
        if (st != kOk)
            return st;
    }
    pairs_.resize(base);
    path_.pop_back();
    return kOk;
}

// A resolved value (not undefined, a function or a symbol).
Status
Writer::Pack(Local<Value> v, int depth)
{
    if (v->IsNull() || v->IsUndefined()) {
        PACK(msgpack_pack_nil(pk_));
        return kOk;
    }
    if (v->IsBoolean()) {
        PACK(v->IsTrue() ? msgpack_pack_true(pk_) : msgpack_pack_false(pk_));
        return kOk;
    }
    if (v->IsNumber())
        return PackNumber(v.As<v8::Number>()->Value());
    if (v->IsString())
        return PackString(v.As<v8::String>());
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
          msgpack_packer *pk, std::string *why)
{
    try {
        Writer w(context, pk, why);
        return w.Top(value);
    } catch (...) {
        if (why)
            *why = "out of memory while converting a value";
        return kInvalid;
    }
}

} // namespace jsv
