// V8 -> msgpack (ToMsgpack; docs/values.md, the choices in js_value.cc).
// Objects are walked by a JavaScript encoder (worker/js/values-encode.js),
// made once per context with the builtins EncoderInstall kept: it writes
// msgpack into a scratch Uint8Array of its own, with no call into native code
// per key, value or object in the common case, and the bytes are copied into
// the sbuffer once. Here: a top-level primitive, Date, BigInt or bytes (no
// JavaScript runs for those), what the encoder asks of native code
// (Writer::Native: the kinds of object JavaScript cannot tell apart, packing
// the leaves among them, long strings), and the words of a conversion that
// failed.
#include "js_value_internal.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

// Where each context's encoder, and the builtins it is made with, are kept
// on its global object (v8::Private).
constexpr char kEncoderPrivate[] = "jshost.values.encoder";
constexpr char kBuiltinsPrivate[] = "jshost.values.builtins";

// The builtins values-encode.js calls, in the order it takes them; "^" is
// the prototype of what comes before it. Object.keys comes first, from
// kObjectKeysPrivate when the context has it.
const char *const kBuiltins[] = {
    "Array.isArray",
    "Object.getPrototypeOf",
    "Object.prototype",
    "Reflect.apply",
    "Math.floor",
    "Function.prototype.bind",
    "Function.prototype.call",
    "String.prototype.charCodeAt",
    "Uint8Array",
    "ArrayBuffer",
    "Float64Array",
    "Uint8Array.prototype.^.copyWithin",
    "Uint8Array.prototype.^.set",
};

// A scratch bigger than this is not written into again after the value that
// grew it (values-encode.js drops it, Encode detaches it): one big result
// does not keep its memory for the life of the context.
constexpr size_t kKeepScratch = 1u << 20;

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

// One step of the path from the top value down to the one that failed.
struct Step {
    enum Kind { kIndex, kKey, kMapKey, kMapValue } kind; // encoder's S_ codes
    uint32_t index;
    Local<Value> key; // kKey: a string; kMapValue: the Map's key
};

// The encoder's scratch (a Uint8Array) at a position the encoder gave.
struct Scratch {
    char *base = nullptr;
    size_t cap = 0;
    size_t pos = 0;
};

bool
ScratchAt(Local<Value> buf, Local<Value> pos, Scratch *s)
{
    if (!buf->IsUint8Array() || !pos->IsNumber())
        return false;
    Local<v8::Uint8Array> u = buf.As<v8::Uint8Array>();
    double p = pos.As<v8::Number>()->Value();
    s->cap = u->ByteLength();
    if (!(p >= 0 && p <= (double)s->cap))
        return false;
    s->pos = (size_t)p;
    if (s->cap > 0)
        s->base = (char *)u->Buffer()->Data() + u->ByteOffset();
    return true;
}

class Writer
{
  public:
    Writer(Local<v8::Context> context, msgpack_sbuffer *sb, std::string *why)
        : context_(context), isolate_(context->GetIsolate()), out_(sb),
          why_(why), outer_(current_)
    {
        msgpack_sbuffer_init(&leaf_);
        current_ = this;
    }
    ~Writer()
    {
        current_ = outer_;
        msgpack_sbuffer_destroy(&leaf_);
    }

    Status Top(Local<Value> value);

    // What values-encode.js asks: native(op, ...); see Op.
    static void Native(const v8::FunctionCallbackInfo<Value> &info);

  private:
    // The encoder's OP_ codes.
    enum Op {
        kOpKind,    // (obj): its Kind
        kOpUnbox,   // (boxed primitive): the primitive
        kOpLeaf,    // (leaf, buf, pos): packed at pos; new pos, -1 failed,
                    // or -2 - n: n bytes wait for room (kOpTake)
        kOpTake,    // (buf, pos): the waiting leaf at pos; new pos or -1
        kOpStr,     // (string, buf, pos): packed at pos; new pos or -1
        kOpEntries, // (Map): [k0, v0, k1, v1, ...]
        kOpItems,   // (Set): its values
    };
    // The encoder's kinds of object (kArray and kFunc it finds itself).
    enum Kind {
        kPlain, // own enumerable keys
        kArray,
        kFunc,
        kLeaf, // RegExp: toJSON applies, then packed here
        kRaw,  // Date, ArrayBuffer and views: packed here, no toJSON
        kMap,
        kSet,
        kError, // {name, message, stack} first
        kBoxed, // Number, String, Boolean, BigInt objects
    };
    // The encoder's E_ codes: why it stopped.
    enum Stop {
        kStopNative = 1, // a native op failed; what_ says why
        kStopCycle,
        kStopDepth,
        kStopSurrogate, // a: the unit, b: its index
        kStopLongArray,
        kStopNoRoom,
    };

    Status TopValue(Local<Value> value);
    Status Encode(Local<v8::Object> value);
    Status Failed(Local<Value> report);
    int KindOf(Local<Value> v);
    Local<Value> Unbox(Local<Value> v);
    double Take(Local<Value> buf, Local<Value> pos, bool wait);
    double Str(Local<Value> s, Local<Value> buf, Local<Value> pos);

    Status PackLeaf(Out &out, Local<Value> v);
    Status PackString(Out &out, Local<v8::String> s);
    Status PackNumber(Out &out, double d);
    Status PackBigInt(Out &out, Local<v8::BigInt> b);
    Status PackDate(Out &out, Local<v8::Date> d);
    Status PackBytes(Out &out, const void *p, size_t n);
    Status PackRegExp(Out &out, Local<v8::RegExp> re);

    Status Invalid(const std::string &what)
    {
        what_ = what;
        return kInvalid;
    }
    std::string Where();
    std::string Printable(Local<v8::String> s);
    Status Thrown();
    Status NoRoom()
    {
        no_room_ = true;
        return kInvalid;
    }

    Local<v8::Context> context_;
    v8::Isolate *isolate_;
    Out out_;
    std::string *why_;
    Writer *outer_;               // the conversion this one runs inside
    std::string what_;            // why it is kInvalid, unless no_room_
    bool no_room_ = false;        // out of memory
    std::vector<Step> path_;      // to the value that failed
    std::vector<uint16_t> utf16_; // scratch for two-byte strings
    msgpack_sbuffer leaf_;        // a leaf packed for the encoder
    // The conversion Native serves: the innermost one on this thread (a
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
    size_t bad = 0, len;
    while ((len = Utf8Length(u.data(), u.size(), &bad)) == SIZE_MAX)
        u[bad] = 0xfffd;
    std::string out(len, '\0');
    PutUtf16(u.data(), u.size(), &out[0]);
    return out;
}

// The path to the value that failed: "value.a[3]".
std::string
Writer::Where()
{
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
    return p;
}

Status
Writer::Top(Local<Value> value)
{
    v8::HandleScope scope(isolate_);
    Status st = TopValue(value);
    if (st == kInvalid && why_)
        *why_ = no_room_ ? "out of memory while packing a value"
                         : Where() + ": " + what_;
    return st;
}

// An object goes to the encoder (toJSON included), unless it is a Date, an
// ArrayBuffer or a view, which never consult toJSON; the rest is packed here.
Status
Writer::TopValue(Local<Value> v)
{
    if (v->IsObject() && !v->IsDate() && !v->IsArrayBufferView() &&
        !v->IsArrayBuffer() && !v->IsSharedArrayBuffer())
        return Encode(v.As<v8::Object>());
    if (v->IsString())
        return PackString(out_, v.As<v8::String>());
    if (v->IsNumber())
        return PackNumber(out_, v.As<v8::Number>()->Value());
    if (v->IsBoolean()) {
        PACK(out_.Byte(v->IsTrue() ? 0xc3 : 0xc2));
        return kOk;
    }
    if (v->IsNull() || v->IsUndefined() || v->IsSymbol()) {
        PACK(out_.Byte(0xc0));
        return kOk;
    }
    return PackLeaf(out_, v);
}

MaybeLocal<v8::Function> MakeEncoder(Local<v8::Context> context);

// The context's encoder, made on the first conversion of an object; empty
// with the exception pending if it cannot be made.
MaybeLocal<v8::Function>
Encoder(Local<v8::Context> context)
{
    v8::Isolate *isolate = context->GetIsolate();
    Local<Value> kept;
    if (!context->Global()
             ->GetPrivate(context, v8::Private::ForApi(
                                       isolate, v8::String::NewFromUtf8Literal(
                                                    isolate, kEncoderPrivate)))
             .ToLocal(&kept))
        return MaybeLocal<v8::Function>();
    if (kept->IsFunction())
        return kept.As<v8::Function>();
    return MakeEncoder(context);
}

// The encoder gives a view of the bytes it wrote, or why it stopped.
Status
Writer::Encode(Local<v8::Object> value)
{
    Local<v8::Function> encode;
    if (!Encoder(context_).ToLocal(&encode))
        return Thrown();
    bool fresh = true;
    for (Writer *w = outer_; w != nullptr; w = w->outer_)
        if (w->context_ == context_)
            fresh = false;
    Local<Value> args[] = {value, v8::Boolean::New(isolate_, fresh)};
    Local<Value> r;
    if (!encode->Call(context_, v8::Undefined(isolate_), 2, args).ToLocal(&r))
        return Thrown();
    if (!r->IsUint8Array())
        return Failed(r);
    Local<v8::Uint8Array> bytes = r.As<v8::Uint8Array>();
    Local<v8::ArrayBuffer> ab = bytes->Buffer();
    size_t n = bytes->ByteLength();
    bool room = out_.Reserve(n);
    if (room && n > 0) {
        memcpy(out_.Tail(), (const char *)ab->Data() + bytes->ByteOffset(), n);
        out_.Advance(n);
    }
    if (ab->ByteLength() > kKeepScratch && ab->IsDetachable())
        ab->Detach();
    PACK(room);
    return kOk;
}

// [stop, a, b, steps, count]: steps holds count / 3 (kind, a, b) from the
// value that failed up to the top.
Status
Writer::Failed(Local<Value> report)
{
    if (!report->IsArray())
        return Invalid("value of an unknown kind");
    Local<v8::Array> r = report.As<v8::Array>();
    Local<Value> f[5];
    for (uint32_t i = 0; i < 5; i++)
        if (!r->Get(context_, i).ToLocal(&f[i]) ||
            (i != 3 && !f[i]->IsNumber()))
            return Invalid("value of an unknown kind");
    auto num = [](Local<Value> v) { return v.As<v8::Number>()->Value(); };
    uint32_t count = (uint32_t)num(f[4]);
    if (!f[3]->IsObject() || count % 3 != 0)
        return Invalid("value of an unknown kind");
    Local<v8::Object> steps = f[3].As<v8::Object>();
    for (uint32_t i = count; i >= 3; i -= 3) {
        Local<Value> k, a, b;
        if (!steps->Get(context_, i - 3).ToLocal(&k) ||
            !steps->Get(context_, i - 2).ToLocal(&a) ||
            !steps->Get(context_, i - 1).ToLocal(&b) || !k->IsNumber() ||
            !b->IsNumber())
            return Invalid("value of an unknown kind");
        Step s{(Step::Kind)(int)num(k), 0, Local<Value>()};
        switch (s.kind) {
        case Step::kIndex:
        case Step::kMapKey:
            s.index = a->IsNumber() ? (uint32_t)num(a) : 0;
            break;
        case Step::kKey:
            if (!a->IsString())
                return Invalid("value of an unknown kind");
            s.key = a;
            break;
        case Step::kMapValue:
            s.key = a;
            s.index = (uint32_t)num(b);
            break;
        default:
            return Invalid("value of an unknown kind");
        }
        path_.push_back(s);
    }
    switch ((int)num(f[0])) {
    case kStopNative:
        return kInvalid;
    case kStopCycle:
        return Invalid("cycle (an object contains itself)");
    case kStopDepth:
        return Invalid(
            "nested deeper than " JSV_STR(PROTO_VALUE_MAX_DEPTH) " levels");
    case kStopSurrogate: {
        char what[80];
        snprintf(what, sizeof what,
                 "string has a lone surrogate (U+%04X at index %.0f)",
                 (unsigned)num(f[1]), num(f[2]));
        return Invalid(what);
    }
    case kStopLongArray:
        return Invalid("array longer than " + std::to_string(kMaxArrayLength) +
                       " elements");
    case kStopNoRoom:
        return NoRoom();
    }
    return Invalid("value of an unknown kind");
}

void
Writer::Native(const v8::FunctionCallbackInfo<Value> &info)
{
    Writer *w = current_;
    // Only the encoder holds this function, and it runs inside Encode; an
    // answer of undefined stops it all the same.
    if (w == nullptr || !info[0]->IsInt32())
        return;
    Local<Value> v = info[1];
    v8::ReturnValue<Value> rv = info.GetReturnValue();
    switch (info[0].As<v8::Int32>()->Value()) {
    case kOpKind:
        rv.Set(w->KindOf(v));
        return;
    case kOpUnbox:
        rv.Set(w->Unbox(v));
        return;
    case kOpLeaf: {
        w->leaf_.size = 0;
        Out out(&w->leaf_);
        if (w->PackLeaf(out, v) != kOk)
            rv.Set(-1);
        else
            rv.Set(w->Take(info[2], info[3], true));
        return;
    }
    case kOpTake:
        rv.Set(w->Take(v, info[2], false));
        return;
    case kOpStr:
        rv.Set(w->Str(v, info[2], info[3]));
        return;
    case kOpEntries:
        if (v->IsMap())
            rv.Set(v.As<v8::Map>()->AsArray());
        else
            rv.Set(v8::Array::New(w->isolate_));
        return;
    case kOpItems:
        if (v->IsSet())
            rv.Set(v.As<v8::Set>()->AsArray());
        else
            rv.Set(v8::Array::New(w->isolate_));
        return;
    }
}

// Plain unless its internal slots say otherwise (a Proxy never does).
int
Writer::KindOf(Local<Value> v)
{
    if (v->IsDate() || v->IsArrayBufferView() || v->IsArrayBuffer() ||
        v->IsSharedArrayBuffer())
        return kRaw;
    if (v->IsRegExp())
        return kLeaf;
    if (v->IsMap())
        return kMap;
    if (v->IsSet())
        return kSet;
    if (v->IsNativeError())
        return kError;
    if (v->IsNumberObject() || v->IsStringObject() || v->IsBooleanObject() ||
        v->IsBigIntObject())
        return kBoxed;
    return kPlain;
}

// Through the internal slot: no valueOf or toString of the script's runs.
Local<Value>
Writer::Unbox(Local<Value> v)
{
    if (v->IsNumberObject())
        return v8::Number::New(isolate_, v.As<v8::NumberObject>()->ValueOf());
    if (v->IsStringObject())
        return v.As<v8::StringObject>()->ValueOf();
    if (v->IsBooleanObject())
        return v8::Boolean::New(isolate_, v.As<v8::BooleanObject>()->ValueOf());
    if (v->IsBigIntObject())
        return v.As<v8::BigIntObject>()->ValueOf();
    return v8::Null(isolate_);
}

// The leaf in leaf_ copied into the scratch at pos: the new pos; when it
// does not fit, -2 - its size if `wait` (the encoder makes room and asks
// again), else -1.
double
Writer::Take(Local<Value> buf, Local<Value> pos, bool wait)
{
    Scratch s;
    size_t n = leaf_.size;
    if (!ScratchAt(buf, pos, &s)) {
        Invalid("value of an unknown kind");
        return -1;
    }
    if (s.cap - s.pos < n) {
        if (wait)
            return -2 - (double)n;
        NoRoom();
        return -1;
    }
    if (n > 0)
        memcpy(s.base + s.pos, leaf_.data, n);
    return (double)(s.pos + n);
}

// A long string straight into the scratch, where the encoder made room for
// 5 + 3 bytes a unit: the new pos, or -1.
double
Writer::Str(Local<Value> str, Local<Value> buf, Local<Value> pos)
{
    Scratch s;
    if (!str->IsString() || !ScratchAt(buf, pos, &s)) {
        Invalid("value of an unknown kind");
        return -1;
    }
    msgpack_sbuffer sb;
    sb.data = s.base;
    sb.size = s.pos;
    sb.alloc = s.cap;
    Out out(&sb, true);
    if (PackString(out, str.As<v8::String>()) != kOk)
        return -1;
    return (double)sb.size;
}

// What has no keys to walk: a BigInt, Date, RegExp, ArrayBuffer or view.
Status
Writer::PackLeaf(Out &out, Local<Value> v)
{
    if (v->IsBigInt())
        return PackBigInt(out, v.As<v8::BigInt>());
    if (v->IsDate())
        return PackDate(out, v.As<v8::Date>());
    if (v->IsRegExp())
        return PackRegExp(out, v.As<v8::RegExp>());
    if (v->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
        size_t n = view->ByteLength();
        if (n == 0)
            return PackBytes(out, nullptr, 0);
        return PackBytes(
            out, (const char *)view->Buffer()->Data() + view->ByteOffset(), n);
    }
    if (v->IsArrayBuffer()) {
        Local<v8::ArrayBuffer> ab = v.As<v8::ArrayBuffer>();
        size_t n = ab->ByteLength();
        return PackBytes(out, n ? ab->Data() : nullptr, n);
    }
    if (v->IsSharedArrayBuffer()) {
        Local<v8::SharedArrayBuffer> ab = v.As<v8::SharedArrayBuffer>();
        size_t n = ab->ByteLength();
        return PackBytes(out, n ? ab->Data() : nullptr, n);
    }
    return Invalid("value of an unknown kind");
}

Status
Writer::PackBytes(Out &out, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return Invalid("binary data longer than 4 GiB");
    PACK(out.Bin(p, n));
    return kOk;
}

Status
Writer::PackNumber(Out &out, double d)
{
    if (std::isfinite(d) && d == std::trunc(d) && d >= -kTwo63 && d < kTwo63 &&
        !(d == 0 && std::signbit(d))) {
        PACK(out.Int((int64_t)d));
    } else {
        PACK(out.Double(d));
    }
    return kOk;
}

Status
Writer::PackBigInt(Out &out, Local<v8::BigInt> b)
{
    bool neg;
    std::vector<unsigned char> mag = BigIntMagnitude(b, &neg);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out.Buffer(), msgpack_sbuffer_write);
    PACK(proto_ext_bigint_pack(&pk, neg, mag.data(), mag.size()) == 0);
    return kOk;
}

Status
Writer::PackDate(Out &out, Local<v8::Date> date)
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
    msgpack_packer_init(&pk, out.Buffer(), msgpack_sbuffer_write);
    PACK(proto_ext_timestamp_pack(&pk, sec, nsec) == 0);
    return kOk;
}

// UTF-8 written from the string's own Latin-1 or UTF-16 data, so that a lone
// surrogate is seen and refused instead of becoming U+FFFD. Latin-1 goes
// straight into the buffer behind a header for its length in UTF-8 if it is
// ASCII, and is widened in place when it is not.
Status
Writer::PackString(Out &out, Local<v8::String> s)
{
    size_t n = (size_t)s->Length();
    if (s->IsOneByte()) {
        PACK(out.Reserve(5 + 2 * n));
        size_t hdr = StrHeaderSize(n);
        uint8_t *body = (uint8_t *)out.Tail() + hdr;
        if (n > 0)
            s->WriteOneByte(isolate_, body, 0, (int)n,
                            v8::String::NO_NULL_TERMINATION);
        size_t len = n + CountHigh(body, n);
        if (len > UINT32_MAX)
            return Invalid("string longer than 4 GiB in UTF-8");
        if (len != n) {
            hdr = StrHeaderSize(len);
            WidenLatin1(body, n, (uint8_t *)out.Tail() + hdr, len - n);
        }
        PutStrHeader(out.Tail(), len);
        out.Advance(hdr + len);
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
    PACK(out.Reserve(5 + len));
    PutStrHeader(out.Tail(), len);
    out.Advance(StrHeaderSize(len));
    PutUtf16(utf16_.data(), n, out.Tail());
    out.Advance(len);
    return kOk;
}

// "/source/flags", as String(re) without calling anything of the script's.
Status
Writer::PackRegExp(Out &out, Local<v8::RegExp> re)
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
    return PackString(out, v8::String::Concat(isolate_, text, tail));
}

// Compiled whole: it all runs on the first conversion anyway, and compiling
// each function when it is first called costs more in all.
MaybeLocal<v8::Script>
CompileEncoder(Local<v8::Context> context, Local<v8::String> text,
               const v8::ScriptOrigin &origin)
{
    v8::ScriptCompiler::Source source(text, origin);
    return v8::ScriptCompiler::Compile(context, &source,
                                       v8::ScriptCompiler::kEagerCompile);
}

// values-encode.js run with the builtins EncoderInstall kept (kept now in a
// context made without it), and kept in turn. Not when the context is made:
// compiling it costs about 0.5 ms, which a worker whose results are not
// objects never needs to pay.
MaybeLocal<v8::Function>
MakeEncoder(Local<v8::Context> context)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::EscapableHandleScope scope(isolate);
    Local<v8::Object> global = context->Global();
    Local<v8::Private> kept = v8::Private::ForApi(
        isolate, v8::String::NewFromUtf8Literal(isolate, kBuiltinsPrivate));
    Local<Value> builtins;
    if (!global->GetPrivate(context, kept).ToLocal(&builtins))
        return MaybeLocal<v8::Function>();
    if (!builtins->IsArray() &&
        (!EncoderInstall(context) ||
         !global->GetPrivate(context, kept).ToLocal(&builtins) ||
         !builtins->IsArray()))
        return MaybeLocal<v8::Function>();
    v8::ScriptOrigin origin(
        isolate, v8::String::NewFromUtf8Literal(isolate, "jshost:values"));
    Local<v8::String> source;
    Local<v8::Script> script;
    Local<Value> factory, encode;
    Local<v8::Function> native;
    if (!v8::String::NewFromUtf8(
             isolate, reinterpret_cast<const char *>(jsp::kValuesEncode.text),
             v8::NewStringType::kNormal,
             static_cast<int>(jsp::kValuesEncode.len))
             .ToLocal(&source) ||
        !CompileEncoder(context, source, origin).ToLocal(&script) ||
        !script->Run(context).ToLocal(&factory) || !factory->IsFunction() ||
        !v8::Function::New(context, Writer::Native, Local<Value>(), 4,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&native))
        return MaybeLocal<v8::Function>();
    Local<Value> args[] = {
        native,
        builtins,
        v8::Integer::New(isolate, kMaxDepth),
        v8::Number::New(isolate, kMaxArrayLength),
        v8::Number::New(isolate, (double)kKeepScratch),
    };
    if (!factory.As<v8::Function>()
             ->Call(context, v8::Undefined(isolate), 5, args)
             .ToLocal(&encode) ||
        !encode->IsFunction() ||
        !global
             ->SetPrivate(
                 context,
                 v8::Private::ForApi(isolate, v8::String::NewFromUtf8Literal(
                                                  isolate, kEncoderPrivate)),
                 encode)
             .FromMaybe(false))
        return MaybeLocal<v8::Function>();
    return scope.Escape(encode.As<v8::Function>());
}

} // namespace

bool
EncoderInstall(v8::Local<v8::Context> context)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::HandleScope scope(isolate);
    Local<v8::Object> global = context->Global();
    constexpr size_t n = 1 + sizeof kBuiltins / sizeof kBuiltins[0];
    Local<Value> found[n];
    if (!global
             ->GetPrivate(
                 context,
                 v8::Private::ForApi(isolate, v8::String::NewFromUtf8Literal(
                                                  isolate, kObjectKeysPrivate)))
             .ToLocal(&found[0]))
        return false;
    const char *keys = "Object.keys";
    for (size_t i = found[0]->IsFunction() ? 1 : 0; i < n; i++) {
        std::string path = i == 0 ? keys : kBuiltins[i - 1];
        Local<Value> v = global;
        for (size_t at = 0; at <= path.size();) {
            size_t end = std::min(path.find('.', at), path.size());
            std::string name = path.substr(at, end - at);
            at = end + 1;
            if (!v->IsObject())
                return false;
            Local<v8::Object> o = v.As<v8::Object>();
            if (name == "^") {
                v = o->GetPrototype();
                continue;
            }
            Local<v8::String> key;
            if (!v8::String::NewFromUtf8(isolate, name.c_str(),
                                         v8::NewStringType::kInternalized)
                     .ToLocal(&key) ||
                !o->Get(context, key).ToLocal(&v))
                return false;
        }
        if (!v->IsObject())
            return false;
        found[i] = v;
    }
    return global
        ->SetPrivate(
            context,
            v8::Private::ForApi(isolate, v8::String::NewFromUtf8Literal(
                                             isolate, kBuiltinsPrivate)),
            v8::Array::New(isolate, found, n))
        .FromMaybe(false);
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
