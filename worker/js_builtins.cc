// TextEncoder, TextDecoder, atob, btoa, structuredClone and crypto
// (getRandomValues, randomUUID, subtle.digest), written against
// V8's API rather than as JavaScript so that a script that replaces
// Uint8Array, Array.prototype or Symbol.iterator cannot change how they work.
// They follow what Node.js 20 does (messages and error codes included),
// except:
// - TextDecoder knows UTF-8 alone: any other label is a RangeError. Its
//   decode() names its argument "input" where Node says "list".
// - DOMExceptions (InvalidCharacterError, DataCloneError) are Errors with the
//   DOMException's name and code; there is no DOMException class.
// - structuredClone's transfer list takes ArrayBuffers only (no ports); an
//   object made from a C++ template clones as {} (as Node's JS classes do).
#include "js_builtins.h"
#include "js_value.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/rand.h>

namespace jsb
{
namespace
{

using v8::Context;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Object;
using v8::String;
using v8::Value;

Local<String>
Str(Isolate *isolate, const char *s)
{
    // Literal ASCII text of ours: this cannot fail short of an abort anyway.
    return String::NewFromUtf8(isolate, s).ToLocalChecked();
}

enum ErrorKind { kError, kTypeError, kRangeError };

// An error as Node makes them: a TypeError or RangeError with a `code`.
void
ThrowCoded(Isolate *isolate, ErrorKind kind, const char *code,
           const std::string &message)
{
    Local<Context> context = isolate->GetCurrentContext();
    Local<String> msg;
    if (!String::NewFromUtf8(isolate, message.data(),
                             v8::NewStringType::kNormal, (int)message.size())
             .ToLocal(&msg))
        return;
    Local<Value> err = kind == kTypeError    ? v8::Exception::TypeError(msg)
                       : kind == kRangeError ? v8::Exception::RangeError(msg)
                                             : v8::Exception::Error(msg);
    if (code && err->IsObject() &&
        err.As<Object>()
            ->CreateDataProperty(context, Str(isolate, "code"),
                                 Str(isolate, code))
            .IsNothing())
        return;
    isolate->ThrowException(err);
}

// A DOMException stand-in: an Error whose name and code are the
// DOMException's, not enumerable (JSON.stringify shows {} as for the real one).
void
ThrowDOMException(Isolate *isolate, Local<String> message, const char *name,
                  int code)
{
    Local<Context> context = isolate->GetCurrentContext();
    Local<Value> err = v8::Exception::Error(message);
    if (err->IsObject()) {
        Local<Object> obj = err.As<Object>();
        if (obj->DefineOwnProperty(context, Str(isolate, "name"),
                                   Str(isolate, name), v8::DontEnum)
                .IsNothing() ||
            obj->DefineOwnProperty(context, Str(isolate, "code"),
                                   v8::Integer::New(isolate, code),
                                   v8::DontEnum)
                .IsNothing())
            return;
    }
    isolate->ThrowException(err);
}

void
ThrowInvalidCharacter(Isolate *isolate, const char *message)
{
    ThrowDOMException(isolate, Str(isolate, message), "InvalidCharacterError",
                      5);
}

// Node's wording for "Received ..." in ERR_INVALID_ARG_TYPE, for primitives.
std::string
Received(Isolate *isolate, Local<Value> v)
{
    if (v->IsUndefined())
        return "Received undefined";
    if (v->IsNull())
        return "Received null";
    if (v->IsFunction())
        return "Received function";
    if (v->IsObject()) {
        Local<String> name = v.As<Object>()->GetConstructorName();
        String::Utf8Value u(isolate, name);
        return std::string("Received an instance of ") + (*u ? *u : "Object");
    }
    String::Utf8Value type(isolate, v->TypeOf(isolate));
    std::string out = std::string("Received type ") + (*type ? *type : "?");
    if (!v->IsSymbol()) {
        String::Utf8Value text(isolate, v);
        std::string t = *text ? *text : "";
        if (t.size() > 28)
            t = t.substr(0, 25) + "...";
        out += v->IsString() ? " ('" + t + "')" : " (" + t + ")";
    }
    return out;
}

// The bytes of an ArrayBuffer, SharedArrayBuffer or view, or false.
bool
BufferSource(Local<Value> v, const uint8_t **data, size_t *len)
{
    if (v->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
        *len = view->ByteLength();
        *data = *len ? static_cast<const uint8_t *>(view->Buffer()->Data()) +
                           view->ByteOffset()
                     : nullptr;
        return true;
    }
    if (v->IsArrayBuffer()) {
        Local<v8::ArrayBuffer> ab = v.As<v8::ArrayBuffer>();
        *len = ab->ByteLength();
        *data = *len ? static_cast<const uint8_t *>(ab->Data()) : nullptr;
        return true;
    }
    if (v->IsSharedArrayBuffer()) {
        Local<v8::SharedArrayBuffer> ab = v.As<v8::SharedArrayBuffer>();
        *len = ab->ByteLength();
        *data = *len ? static_cast<const uint8_t *>(ab->Data()) : nullptr;
        return true;
    }
    return false;
}

// A constructor made from a FunctionTemplate is callable without `new`
// unless it refuses, as class constructors do.
bool
RequireNew(const FunctionCallbackInfo<Value> &args, const char *name)
{
    if (args.IsConstructCall())
        return true;
    ThrowCoded(args.GetIsolate(), kTypeError, nullptr,
               std::string("Class constructor ") + name +
                   " cannot be invoked without 'new'");
    return false;
}

// ---------------------------------------------------------------------------
// TextEncoder

void
TextEncoderNew(const FunctionCallbackInfo<Value> &args)
{
    RequireNew(args, "TextEncoder");
}

void
TextEncoderEncoding(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(Str(args.GetIsolate(), "utf-8"));
}

// Lone surrogates become U+FFFD (a USVString), as the standard says.
void
TextEncoderEncode(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    Local<String> s;
    if (args[0]->IsUndefined())
        s = String::Empty(isolate);
    else if (!args[0]->ToString(context).ToLocal(&s))
        return;
    int len = s->Utf8Length(isolate);
    Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, (size_t)len);
    if (len > 0)
        s->WriteUtf8(isolate, static_cast<char *>(ab->Data()), len, nullptr,
                     String::NO_NULL_TERMINATION |
                         String::REPLACE_INVALID_UTF8);
    args.GetReturnValue().Set(v8::Uint8Array::New(ab, 0, (size_t)len));
}

void
TextEncoderEncodeInto(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    Local<String> s;
    if (!args[0]->ToString(context).ToLocal(&s))
        return;
    if (!args[1]->IsUint8Array()) {
        ThrowCoded(isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
                   "The \"dest\" argument must be an instance of Uint8Array. " +
                       Received(isolate, args[1]));
        return;
    }
    Local<v8::Uint8Array> dest = args[1].As<v8::Uint8Array>();
    size_t cap = dest->ByteLength();
    int read = 0, written = 0;
    if (cap > 0) {
        char *p =
            static_cast<char *>(dest->Buffer()->Data()) + dest->ByteOffset();
        int room = cap > (size_t)INT32_MAX ? INT32_MAX : (int)cap;
        // Writes whole characters only; `read` counts UTF-16 units.
        written = s->WriteUtf8(isolate, p, room, &read,
                               String::NO_NULL_TERMINATION |
                                   String::REPLACE_INVALID_UTF8);
    }
    Local<Object> result = Object::New(isolate);
    if (result
            ->CreateDataProperty(context, Str(isolate, "read"),
                                 v8::Integer::New(isolate, read))
            .IsNothing() ||
        result
            ->CreateDataProperty(context, Str(isolate, "written"),
                                 v8::Integer::New(isolate, written))
            .IsNothing())
        return;
    args.GetReturnValue().Set(result);
}

// ---------------------------------------------------------------------------
// TextDecoder

// The WHATWG UTF-8 decoder's state, kept between calls with {stream: true}.
struct Utf8State {
    uint32_t cp = 0;
    uint32_t needed = 0;
    uint32_t seen = 0;
    uint32_t lower = 0x80;
    uint32_t upper = 0xbf;
    bool started = false; // the stream's first code point was seen (BOM check)

    // As one integer below 2^53, so that it fits a Number in an internal field.
    double Save() const
    {
        uint64_t v = (uint64_t)cp | (uint64_t)needed << 21 |
                     (uint64_t)seen << 23 | (uint64_t)lower << 25 |
                     (uint64_t)upper << 33 | (uint64_t)started << 41;
        return (double)v;
    }
    void Load(double d)
    {
        uint64_t v = (uint64_t)d;
        cp = v & 0x1fffff;
        needed = (v >> 21) & 3;
        seen = (v >> 23) & 3;
        lower = (v >> 25) & 0xff;
        upper = (v >> 33) & 0xff;
        started = (v >> 41) & 1;
    }
};

enum DecoderField { kFlags = 0, kState, kDecoderFields };
enum DecoderFlags { kFatal = 1, kIgnoreBOM = 2 };

// Feeds bytes through the decoder (WHATWG Encoding, "UTF-8 decoder"), writing
// UTF-16 to out. false on an error when fatal.
bool
DecodeUtf8(Utf8State *st, const uint8_t *p, size_t n, bool flush, bool fatal,
           bool ignore_bom, std::vector<uint16_t> *out)
{
    auto emit = [&](uint32_t c) {
        if (!st->started) {
            st->started = true;
            if (c == 0xfeff && !ignore_bom)
                return;
        }
        if (c < 0x10000) {
            out->push_back((uint16_t)c);
        } else {
            c -= 0x10000;
            out->push_back((uint16_t)(0xd800 | (c >> 10)));
            out->push_back((uint16_t)(0xdc00 | (c & 0x3ff)));
        }
    };
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        if (st->needed == 0) {
            i++;
            if (b < 0x80) {
                emit(b);
            } else if (b >= 0xc2 && b <= 0xdf) {
                st->needed = 1;
                st->cp = b & 0x1f;
            } else if (b >= 0xe0 && b <= 0xef) {
                if (b == 0xe0)
                    st->lower = 0xa0;
                if (b == 0xed)
                    st->upper = 0x9f;
                st->needed = 2;
                st->cp = b & 0xf;
            } else if (b >= 0xf0 && b <= 0xf4) {
                if (b == 0xf0)
                    st->lower = 0x90;
                if (b == 0xf4)
                    st->upper = 0x8f;
                st->needed = 3;
                st->cp = b & 0x7;
            } else {
                if (fatal)
                    return false;
                emit(0xfffd);
            }
            continue;
        }
        if (b < st->lower || b > st->upper) {
            // The sequence is cut short: an error, and this byte starts over.
            st->cp = st->needed = st->seen = 0;
            st->lower = 0x80;
            st->upper = 0xbf;
            if (fatal)
                return false;
            emit(0xfffd);
            continue;
        }
        i++;
        st->lower = 0x80;
        st->upper = 0xbf;
        st->cp = st->cp << 6 | (b & 0x3f);
        if (++st->seen == st->needed) {
            uint32_t c = st->cp;
            st->cp = st->needed = st->seen = 0;
            emit(c);
        }
    }
    if (flush && st->needed != 0) {
        st->cp = st->needed = st->seen = 0;
        st->lower = 0x80;
        st->upper = 0xbf;
        if (fatal)
            return false;
        emit(0xfffd);
    }
    return true;
}

bool
IsUtf8Label(std::string label)
{
    static const char *const kLabels[] = {
        "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8",
        "x-unicode20utf8"};
    const char *ws = " \t\n\f\r";
    size_t a = label.find_first_not_of(ws);
    size_t b = label.find_last_not_of(ws);
    label = a == std::string::npos ? "" : label.substr(a, b - a + 1);
    for (char &c : label)
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
    for (const char *l : kLabels)
        if (label == l)
            return true;
    return false;
}

// Reads a boolean option from an options bag (undefined and null: none);
// false with an exception pending when the bag is of the wrong type or a
// getter threw.
bool
BoolOption(Isolate *isolate, Local<Value> bag, const char *name, bool *out)
{
    *out = false;
    if (bag->IsUndefined() || bag->IsNull())
        return true;
    if (!bag->IsObject()) {
        ThrowCoded(isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
                   "The \"options\" argument must be of type object. " +
                       Received(isolate, bag));
        return false;
    }
    Local<Value> v;
    if (!bag.As<Object>()
             ->Get(isolate->GetCurrentContext(), Str(isolate, name))
             .ToLocal(&v))
        return false;
    *out = v->BooleanValue(isolate);
    return true;
}

void
TextDecoderNew(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    if (!RequireNew(args, "TextDecoder"))
        return;
    if (!args[0]->IsUndefined()) {
        Local<String> label;
        if (!args[0]->ToString(context).ToLocal(&label))
            return;
        String::Utf8Value u(isolate, label);
        std::string text = *u ? std::string(*u, u.length()) : "";
        if (!IsUtf8Label(text)) {
            ThrowCoded(isolate, kRangeError, "ERR_ENCODING_NOT_SUPPORTED",
                       "The \"" + text + "\" encoding is not supported");
            return;
        }
    }
    bool fatal, ignore_bom;
    if (!BoolOption(isolate, args[1], "fatal", &fatal) ||
        !BoolOption(isolate, args[1], "ignoreBOM", &ignore_bom))
        return;
    Local<Object> self = args.This();
    if (self->InternalFieldCount() < kDecoderFields)
        return; // a subclass's odd receiver; the template's own always has them
    self->SetInternalField(
        kFlags, v8::Integer::New(isolate, (fatal ? kFatal : 0) |
                                              (ignore_bom ? kIgnoreBOM : 0)));
    self->SetInternalField(kState,
                           v8::Number::New(isolate, Utf8State().Save()));
}

int
DecoderFlagsOf(const FunctionCallbackInfo<Value> &args)
{
    Local<Value> f = args.This()->GetInternalField(kFlags);
    return f->IsInt32() ? f.As<v8::Int32>()->Value() : 0;
}

void
TextDecoderEncoding(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(Str(args.GetIsolate(), "utf-8"));
}

void
TextDecoderFatal(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set((DecoderFlagsOf(args) & kFatal) != 0);
}

void
TextDecoderIgnoreBOM(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set((DecoderFlagsOf(args) & kIgnoreBOM) != 0);
}

void
TextDecoderDecode(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const uint8_t *data = nullptr;
    size_t len = 0;
    if (!args[0]->IsUndefined() && !BufferSource(args[0], &data, &len)) {
        ThrowCoded(
            isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
            "The \"input\" argument must be an instance of SharedArrayBuffer, "
            "ArrayBuffer or ArrayBufferView.");
        return;
    }
    bool stream;
    if (!BoolOption(isolate, args[1], "stream", &stream))
        return;
    // The option's getter may have detached or shrunk the buffer: look again.
    if (!args[0]->IsUndefined())
        BufferSource(args[0], &data, &len);
    int flags = DecoderFlagsOf(args);
    bool fatal = flags & kFatal, ignore_bom = flags & kIgnoreBOM;
    Utf8State st;
    Local<Value> saved = args.This()->GetInternalField(kState);
    if (saved->IsNumber())
        st.Load(saved.As<v8::Number>()->Value());

    MaybeLocal<String> result;
    bool pending = false; // V8 refused the string with an exception of its own
    size_t ascii = 0;
    while (ascii < len && data[ascii] < 0x80)
        ascii++;
    std::vector<uint16_t> out;
    bool ok = true;
    {
        v8::TryCatch tc(isolate);
        if (ascii == len && st.needed == 0) {
            // ASCII straight through (most text): there is no BOM in it.
            if (len > 0)
                st.started = true;
            if (len <= (size_t)String::kMaxLength)
                result = String::NewFromOneByte(
                    isolate, data, v8::NewStringType::kNormal, (int)len);
        } else {
            out.reserve(len);
            ok = DecodeUtf8(&st, data, len, !stream, fatal, ignore_bom, &out);
            if (ok && out.size() <= (size_t)String::kMaxLength)
                result = String::NewFromTwoByte(isolate, out.data(),
                                                v8::NewStringType::kNormal,
                                                (int)out.size());
        }
        if (result.IsEmpty() && (tc.HasCaught() || tc.HasTerminated())) {
            pending = true;
            tc.ReThrow();
        }
    }
    // A flush (or an error) starts the next decode on a new stream.
    if (!stream || !ok)
        st = Utf8State();
    args.This()->SetInternalField(kState, v8::Number::New(isolate, st.Save()));
    if (!ok) {
        ThrowCoded(isolate, kTypeError, "ERR_ENCODING_INVALID_ENCODED_DATA",
                   "The encoded data was not valid for encoding utf-8");
        return;
    }
    Local<String> s;
    if (!result.ToLocal(&s)) {
        if (!pending)
            ThrowCoded(isolate, kRangeError, "ERR_STRING_TOO_LONG",
                       "Invalid string length");
        return;
    }
    args.GetReturnValue().Set(s);
}

// ---------------------------------------------------------------------------
// atob, btoa (forgiving base64, with Node 20's messages)

const char kBase64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool
StringArg(const FunctionCallbackInfo<Value> &args, Local<String> *out)
{
    Isolate *isolate = args.GetIsolate();
    if (args.Length() == 0) {
        ThrowCoded(isolate, kTypeError, "ERR_MISSING_ARGS",
                   "The \"input\" argument must be specified");
        return false;
    }
    return args[0]->ToString(isolate->GetCurrentContext()).ToLocal(out);
}

void
Btoa(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> s;
    if (!StringArg(args, &s))
        return;
    int n = s->Length();
    std::vector<uint16_t> in((size_t)n);
    s->Write(isolate, in.data(), 0, n, String::NO_NULL_TERMINATION);
    for (uint16_t c : in) {
        if (c > 0xff) {
            ThrowInvalidCharacter(isolate, "Invalid character");
            return;
        }
    }
    std::string out;
    out.reserve(((size_t)n + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out.push_back(kBase64[v >> 18]);
        out.push_back(kBase64[(v >> 12) & 63]);
        out.push_back(kBase64[(v >> 6) & 63]);
        out.push_back(kBase64[v & 63]);
    }
    if (in.size() - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out.push_back(kBase64[v >> 18]);
        out.push_back(kBase64[(v >> 12) & 63]);
        out += "==";
    } else if (in.size() - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out.push_back(kBase64[v >> 18]);
        out.push_back(kBase64[(v >> 12) & 63]);
        out.push_back(kBase64[(v >> 6) & 63]);
        out.push_back('=');
    }
    MaybeLocal<String> r = String::NewFromOneByte(
        isolate, reinterpret_cast<const uint8_t *>(out.data()),
        v8::NewStringType::kNormal, (int)out.size());
    Local<String> rs;
    if (r.ToLocal(&rs))
        args.GetReturnValue().Set(rs);
}

int
Base64Value(uint16_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void
Atob(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> s;
    if (!StringArg(args, &s))
        return;
    int n = s->Length();
    std::vector<uint16_t> in((size_t)n);
    s->Write(isolate, in.data(), 0, n, String::NO_NULL_TERMINATION);
    // The checks in Node 20's order, so that the same input gets the same
    // message: '=' only at the end and at most two, then the length.
    size_t count = 0, equals = 0;
    std::vector<uint8_t> sextets;
    sextets.reserve(in.size());
    for (uint16_t c : in) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r')
            continue;
        count++;
        if (c == '=') {
            if (++equals > 2) {
                ThrowInvalidCharacter(isolate, "Invalid character");
                return;
            }
            continue;
        }
        int v = Base64Value(c);
        if (v < 0 || equals > 0) {
            ThrowInvalidCharacter(isolate, "Invalid character");
            return;
        }
        sextets.push_back((uint8_t)v);
    }
    size_t rem = count % 4;
    if (rem == 0) {
        rem = (count - equals) % 4;
    } else if (equals > 0) {
        ThrowInvalidCharacter(isolate, "Invalid character");
        return;
    }
    if (rem == 1) {
        ThrowInvalidCharacter(
            isolate, "The string to be decoded is not correctly encoded.");
        return;
    }
    std::vector<uint8_t> out;
    out.reserve(sextets.size() * 3 / 4 + 2);
    uint32_t acc = 0;
    int bits = 0;
    for (uint8_t v : sextets) {
        acc = acc << 6 | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((uint8_t)(acc >> bits));
            acc &= (1u << bits) - 1;
        }
    }
    MaybeLocal<String> r = String::NewFromOneByte(
        isolate, out.data(), v8::NewStringType::kNormal, (int)out.size());
    Local<String> rs;
    if (r.ToLocal(&rs))
        args.GetReturnValue().Set(rs);
}

// ---------------------------------------------------------------------------
// structuredClone (V8's own serializer, as Node and browsers use)

// libnode is built without RTTI, and a subclass of its Delegate classes needs
// their typeinfo, which it does not export: with RTTI on (as the engine is
// built today) structuredClone goes without delegates. Then a
// SharedArrayBuffer or an object with internal fields cannot be cloned, and
// V8's own DataCloneErrors (plain Errors without a delegate) are renamed
// after the fact. Built with -fno-rtti, the delegates do it all.
#ifndef __GXX_RTTI
#define JSB_CLONE_DELEGATES 1
class CloneWriter : public v8::ValueSerializer::Delegate
{
  public:
    explicit CloneWriter(Isolate *isolate) : isolate_(isolate)
    {
    }

    void ThrowDataCloneError(Local<String> message) override
    {
        ThrowDOMException(isolate_, message, "DataCloneError", 25);
    }

    // An object with internal fields (a TextDecoder): cloned as {}.
    v8::Maybe<bool> WriteHostObject(Isolate *, Local<Object>) override
    {
        return v8::Just(true);
    }

    v8::Maybe<uint32_t>
    GetSharedArrayBufferId(Isolate *, Local<v8::SharedArrayBuffer> sab) override
    {
        for (size_t i = 0; i < shared.size(); i++)
            if (shared[i] == sab)
                return v8::Just((uint32_t)i);
        shared.push_back(sab);
        return v8::Just((uint32_t)(shared.size() - 1));
    }

    std::vector<Local<v8::SharedArrayBuffer>> shared;

  private:
    Isolate *isolate_;
};

class CloneReader : public v8::ValueDeserializer::Delegate
{
  public:
    explicit CloneReader(
        const std::vector<Local<v8::SharedArrayBuffer>> &shared)
        : shared_(shared)
    {
    }

    MaybeLocal<Object> ReadHostObject(Isolate *isolate) override
    {
        return Object::New(isolate);
    }

    // The clone shares the memory (a new SharedArrayBuffer on the same store).
    MaybeLocal<v8::SharedArrayBuffer>
    GetSharedArrayBufferFromId(Isolate *isolate, uint32_t id) override
    {
        if (id >= shared_.size())
            return MaybeLocal<v8::SharedArrayBuffer>();
        return v8::SharedArrayBuffer::New(isolate,
                                          shared_[id]->GetBackingStore());
    }

  private:
    const std::vector<Local<v8::SharedArrayBuffer>> &shared_;
};

#else
#define JSB_CLONE_DELEGATES 0

// Whether an exception is V8's DataCloneError thrown without a delegate:
// an Error (not a subclass) with one of the serializer's messages.
bool
IsV8CloneError(Isolate *isolate, Local<Value> exc, Local<String> *message)
{
    if (!exc->IsNativeError())
        return false;
    Local<Context> context = isolate->GetCurrentContext();
    Local<Value> proto = exc.As<Object>()->GetPrototype();
    Local<Value> error_proto;
    Local<Value> error_ctor;
    if (!context->Global()
             ->Get(context, Str(isolate, "Error"))
             .ToLocal(&error_ctor) ||
        !error_ctor->IsObject() ||
        !error_ctor.As<Object>()
             ->Get(context, Str(isolate, "prototype"))
             .ToLocal(&error_proto) ||
        !proto->StrictEquals(error_proto))
        return false;
    Local<Value> msg;
    if (!exc.As<Object>()
             ->Get(context, Str(isolate, "message"))
             .ToLocal(&msg) ||
        !msg->IsString())
        return false;
    String::Utf8Value u(isolate, msg);
    std::string m = *u ? std::string(*u, u.length()) : "";
    const std::string tail = " could not be cloned.";
    *message = msg.As<String>();
    return (m.size() > tail.size() &&
            m.compare(m.size() - tail.size(), tail.size(), tail) == 0) ||
           m == "Data cannot be cloned, out of memory." ||
           m == "Unable to deserialize cloned data.";
}
#endif

// One entry of the transfer list: an ArrayBuffer not seen before.
bool
AddTransfer(Isolate *isolate, Local<Value> value,
            std::vector<Local<v8::ArrayBuffer>> *out)
{
    if (!value->IsArrayBuffer()) {
        ThrowCoded(isolate, kTypeError, "ERR_INVALID_TRANSFER_OBJECT",
                   "Found invalid object in transferList");
        return false;
    }
    Local<v8::ArrayBuffer> ab = value.As<v8::ArrayBuffer>();
    for (const auto &seen : *out) {
        if (seen == ab) {
            ThrowDOMException(
                isolate,
                Str(isolate, "Transfer list contains duplicate ArrayBuffer"),
                "DataCloneError", 25);
            return false;
        }
    }
    out->push_back(ab);
    return true;
}

// options.transfer: an iterable of ArrayBuffers. false with an exception
// pending when it is not one.
bool
TransferList(Isolate *isolate, Local<Value> options,
             std::vector<Local<v8::ArrayBuffer>> *out)
{
    Local<Context> context = isolate->GetCurrentContext();
    if (options->IsUndefined() || options->IsNull())
        return true;
    if (!options->IsObject()) {
        ThrowCoded(
            isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
            "The options argument must be either an object or undefined");
        return false;
    }
    Local<Value> list;
    if (!options.As<Object>()
             ->Get(context, Str(isolate, "transfer"))
             .ToLocal(&list))
        return false;
    if (list->IsUndefined())
        return true;
    if (list->IsArray()) {
        // Arrays by index: a script that replaced Array.prototype's iterator
        // does not take structuredClone down with it.
        Local<v8::Array> arr = list.As<v8::Array>();
        for (uint32_t i = 0; i < arr->Length(); i++) {
            Local<Value> value;
            if (!arr->Get(context, i).ToLocal(&value) ||
                !AddTransfer(isolate, value, out))
                return false;
        }
        return true;
    }
    Local<Value> iter_fn;
    if (list->IsObject() &&
        !list.As<Object>()
             ->Get(context, v8::Symbol::GetIterator(isolate))
             .ToLocal(&iter_fn))
        return false;
    if (!list->IsObject() || !iter_fn->IsFunction()) {
        ThrowCoded(isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
                   "Optional transferList argument must be an iterable");
        return false;
    }
    Local<Value> iter, next;
    if (!iter_fn.As<v8::Function>()
             ->Call(context, list, 0, nullptr)
             .ToLocal(&iter))
        return false;
    if (!iter->IsObject()) {
        ThrowCoded(isolate, kTypeError, nullptr,
                   "Result of the Symbol.iterator method is not an object");
        return false;
    }
    if (!iter.As<Object>()->Get(context, Str(isolate, "next")).ToLocal(&next))
        return false;
    if (!next->IsFunction()) {
        ThrowCoded(isolate, kTypeError, nullptr,
                   "iterator.next is not a function");
        return false;
    }
    for (;;) {
        Local<Value> step, done, value;
        if (!next.As<v8::Function>()
                 ->Call(context, iter, 0, nullptr)
                 .ToLocal(&step))
            return false;
        if (!step->IsObject()) {
            ThrowCoded(isolate, kTypeError, nullptr,
                       "Iterator result is not an object");
            return false;
        }
        if (!step.As<Object>()
                 ->Get(context, Str(isolate, "done"))
                 .ToLocal(&done))
            return false;
        if (done->BooleanValue(isolate))
            return true;
        if (!step.As<Object>()
                 ->Get(context, Str(isolate, "value"))
                 .ToLocal(&value) ||
            !AddTransfer(isolate, value, out))
            return false;
    }
}

// The clone of args[0], or false with an exception pending.
bool
CloneValue(const FunctionCallbackInfo<Value> &args, Local<Value> *result)
{
    Isolate *isolate = args.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    std::vector<Local<v8::ArrayBuffer>> transfer;
    if (!TransferList(isolate, args[1], &transfer))
        return false;
    for (const auto &ab : transfer) {
        if (!ab->IsDetachable() || ab->WasDetached()) {
            ThrowDOMException(
                isolate,
                Str(isolate,
                    "An ArrayBuffer is detached and could not be cloned."),
                "DataCloneError", 25);
            return false;
        }
    }
#if JSB_CLONE_DELEGATES
    CloneWriter writer(isolate);
    v8::ValueSerializer ser(isolate, &writer);
#else
    v8::ValueSerializer ser(isolate);
#endif
    ser.WriteHeader();
    for (size_t i = 0; i < transfer.size(); i++)
        ser.TransferArrayBuffer((uint32_t)i, transfer[i]);
    if (ser.WriteValue(context, args[0]).IsNothing())
        return false;
    std::pair<uint8_t *, size_t> buf = ser.Release();
    // Transferred buffers go to the clone and the originals are detached
    // (their views go to length 0). The bytes are copied rather than the
    // BackingStore handed over: a shared_ptr made inside libnode trips
    // UBSan's vptr check in a build with RTTI, and the result is the same.
    std::vector<Local<v8::ArrayBuffer>> moved;
    for (const auto &ab : transfer) {
        size_t n = ab->ByteLength();
        Local<v8::ArrayBuffer> copy = v8::ArrayBuffer::New(isolate, n);
        if (n > 0)
            memcpy(copy->Data(), ab->Data(), n);
        ab->Detach();
        moved.push_back(copy);
    }
#if JSB_CLONE_DELEGATES
    CloneReader reader(writer.shared);
    v8::ValueDeserializer des(isolate, buf.first, buf.second, &reader);
#else
    v8::ValueDeserializer des(isolate, buf.first, buf.second);
#endif
    for (size_t i = 0; i < moved.size(); i++)
        des.TransferArrayBuffer((uint32_t)i, moved[i]);
    bool ok = des.ReadHeader(context).FromMaybe(false) &&
              des.ReadValue(context).ToLocal(result);
    // From realloc: the delegate's default allocator, or V8's own without one.
    free(buf.first);
    return ok;
}

void
StructuredClone(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (args.Length() == 0) {
        ThrowCoded(isolate, kTypeError, "ERR_MISSING_ARGS",
                   "The value argument must be specified");
        return;
    }
    Local<Value> result;
#if JSB_CLONE_DELEGATES
    if (CloneValue(args, &result))
        args.GetReturnValue().Set(result);
#else
    Local<String> message;
    {
        v8::TryCatch tc(isolate);
        if (CloneValue(args, &result)) {
            args.GetReturnValue().Set(result);
            return;
        }
        if (!tc.HasCaught() || tc.HasTerminated() ||
            !IsV8CloneError(isolate, tc.Exception(), &message)) {
            tc.ReThrow();
            return;
        }
    }
    ThrowDOMException(isolate, message, "DataCloneError", 25);
#endif
}

template <v8::FunctionCallback F>
void Guard(const FunctionCallbackInfo<Value> &args);
bool SetGlobal(Local<Context> context, const char *name, Local<Value> value,
               v8::PropertyAttribute attr);

// ---------------------------------------------------------------------------
// crypto: getRandomValues, randomUUID, subtle.digest (OpenSSL's libcrypto,
// which libnode links already). The rest of SubtleCrypto is not there.

void
GetRandomValues(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<Value> v = args[0];
    if (!v->IsArrayBufferView() || v->IsDataView() || v->IsFloat32Array() ||
        v->IsFloat64Array()) {
        if (v->IsArrayBufferView())
            ThrowDOMException(isolate,
                              Str(isolate, "The data argument must be an "
                                           "integer-type TypedArray"),
                              "TypeMismatchError", 17);
        else
            ThrowCoded(isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
                       "The \"typedArray\" argument must be an instance of "
                       "Int8Array, Int16Array, Int32Array, Uint8Array, "
                       "Uint16Array, Uint32Array, or Uint8ClampedArray. " +
                           Received(isolate, v));
        return;
    }
    Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
    size_t len = view->ByteLength();
    if (len > 65536) {
        ThrowDOMException(
            isolate,
            Str(isolate,
                ("The ArrayBufferView's byte length (" + std::to_string(len) +
                 ") exceeds the number of "
                 "bytes of entropy available via this API (65536)")
                    .c_str()),
            "QuotaExceededError", 22);
        return;
    }
    if (len > 0) {
        uint8_t *p =
            static_cast<uint8_t *>(view->Buffer()->Data()) + view->ByteOffset();
        if (RAND_bytes(p, (int)len) != 1) {
            ThrowCoded(isolate, kError, nullptr,
                       "the system's random source failed");
            return;
        }
    }
    args.GetReturnValue().Set(v);
}

void
RandomUUID(const FunctionCallbackInfo<Value> &args)
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        ThrowCoded(args.GetIsolate(), kError, nullptr,
                   "the system's random source failed");
        return;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char out[37];
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    args.GetReturnValue().Set(Str(args.GetIsolate(), out));
}

// subtle.digest(algorithm, data): a promise of an ArrayBuffer; its errors
// reject it, as WebCrypto's do.
void
SubtleDigest(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    Local<v8::Promise::Resolver> resolver;
    if (!v8::Promise::Resolver::New(context).ToLocal(&resolver))
        return;
    args.GetReturnValue().Set(resolver->GetPromise());
    v8::TryCatch tc(isolate);
    Local<Value> alg = args[0];
    if (alg->IsObject()) {
        Local<Value> name;
        if (!alg.As<Object>()
                 ->Get(context, Str(isolate, "name"))
                 .ToLocal(&name))
            name = v8::Undefined(isolate);
        alg = name;
    }
    std::string name;
    if (alg->IsString()) {
        String::Utf8Value u(isolate, alg);
        name = *u ? *u : "";
        for (char &c : name)
            c = (char)toupper((unsigned char)c);
    }
    const EVP_MD *md = name == "SHA-1"     ? EVP_sha1()
                       : name == "SHA-256" ? EVP_sha256()
                       : name == "SHA-384" ? EVP_sha384()
                       : name == "SHA-512" ? EVP_sha512()
                                           : nullptr;
    const uint8_t *data = nullptr;
    size_t len = 0;
    if (md == nullptr) {
        ThrowDOMException(isolate, Str(isolate, "Unrecognized algorithm name"),
                          "NotSupportedError", 9);
    } else if (!BufferSource(args[1], &data, &len)) {
        ThrowCoded(isolate, kTypeError, "ERR_INVALID_ARG_TYPE",
                   "The \"data\" argument must be an instance of ArrayBuffer, "
                   "Buffer, TypedArray, or DataView. " +
                       Received(isolate, args[1]));
    } else {
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(data, len, out, &n, md, nullptr) != 1) {
            ThrowCoded(isolate, kError, nullptr, "the digest failed");
        } else {
            Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, n);
            memcpy(ab->Data(), out, n);
            if (resolver->Resolve(context, ab).IsNothing())
                return;
            return;
        }
    }
    if (tc.HasCaught() && !tc.HasTerminated()) {
        Local<Value> e = tc.Exception();
        tc.Reset();
        if (resolver->Reject(context, e).IsNothing())
            return;
    }
}

bool
InstallCrypto(Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Object> crypto = Object::New(isolate);
    Local<Object> subtle = Object::New(isolate);
    Local<v8::Function> grv, uuid, digest;
    if (!v8::Function::New(context, Guard<GetRandomValues>, Local<Value>(), 1,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&grv) ||
        !v8::Function::New(context, Guard<RandomUUID>, Local<Value>(), 0,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&uuid) ||
        !v8::Function::New(context, Guard<SubtleDigest>, Local<Value>(), 2,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&digest))
        return false;
    grv->SetName(Str(isolate, "getRandomValues"));
    uuid->SetName(Str(isolate, "randomUUID"));
    digest->SetName(Str(isolate, "digest"));
    return crypto->Set(context, Str(isolate, "getRandomValues"), grv)
               .FromMaybe(false) &&
           crypto->Set(context, Str(isolate, "randomUUID"), uuid)
               .FromMaybe(false) &&
           subtle->Set(context, Str(isolate, "digest"), digest)
               .FromMaybe(false) &&
           crypto->Set(context, Str(isolate, "subtle"), subtle)
               .FromMaybe(false) &&
           SetGlobal(context, "crypto", crypto, v8::DontEnum);
}

// ---------------------------------------------------------------------------
// Installation

// Every callback runs inside V8's frames, which C++ exceptions must not cross
// (V8 is built without them): a failed allocation becomes a JS RangeError.
template <v8::FunctionCallback F>
void
Guard(const FunctionCallbackInfo<Value> &args)
{
    try {
        F(args);
    } catch (...) {
        args.GetIsolate()->ThrowException(v8::Exception::RangeError(
            String::NewFromUtf8Literal(args.GetIsolate(), "Out of memory")));
    }
}

// As Web IDL and Node define them: writable and configurable; classes are
// not enumerable, functions are.
bool
SetGlobal(Local<Context> context, const char *name, Local<Value> value,
          v8::PropertyAttribute attr)
{
    Isolate *isolate = context->GetIsolate();
    return context->Global()
        ->DefineOwnProperty(context, Str(isolate, name), value, attr)
        .FromMaybe(false);
}

bool
InstallFunction(Local<Context> context, const char *name,
                v8::FunctionCallback cb, int length)
{
    Isolate *isolate = context->GetIsolate();
    Local<v8::Function> fn;
    if (!v8::Function::New(context, cb, Local<Value>(), length,
                           v8::ConstructorBehavior::kThrow)
             .ToLocal(&fn))
        return false;
    fn->SetName(Str(isolate, name));
    return SetGlobal(context, name, fn, v8::None);
}

void
AddMethod(Isolate *isolate, Local<FunctionTemplate> cls, const char *name,
          v8::FunctionCallback cb, int length)
{
    Local<v8::Signature> sig = v8::Signature::New(isolate, cls);
    Local<FunctionTemplate> m =
        FunctionTemplate::New(isolate, cb, Local<Value>(), sig, length,
                              v8::ConstructorBehavior::kThrow);
    m->SetClassName(Str(isolate, name));
    cls->PrototypeTemplate()->Set(Str(isolate, name), m, v8::DontEnum);
}

void
AddGetter(Isolate *isolate, Local<FunctionTemplate> cls, const char *name,
          v8::FunctionCallback cb)
{
    Local<v8::Signature> sig = v8::Signature::New(isolate, cls);
    Local<FunctionTemplate> g = FunctionTemplate::New(
        isolate, cb, Local<Value>(), sig, 0, v8::ConstructorBehavior::kThrow);
    cls->PrototypeTemplate()->SetAccessorProperty(
        Str(isolate, name), g, Local<FunctionTemplate>(), v8::DontEnum);
}

Local<FunctionTemplate>
Class(Isolate *isolate, const char *name, v8::FunctionCallback ctor, int fields)
{
    Local<FunctionTemplate> cls = FunctionTemplate::New(isolate, ctor);
    cls->SetClassName(Str(isolate, name));
    cls->InstanceTemplate()->SetInternalFieldCount(fields);
    cls->PrototypeTemplate()->Set(
        v8::Symbol::GetToStringTag(isolate), Str(isolate, name),
        static_cast<v8::PropertyAttribute>(v8::ReadOnly | v8::DontEnum));
    return cls;
}

bool
InstallClass(Local<Context> context, const char *name,
             Local<FunctionTemplate> cls)
{
    Local<v8::Function> fn;
    return cls->GetFunction(context).ToLocal(&fn) &&
           SetGlobal(context, name, fn, v8::DontEnum);
}

// Object.keys as it is before any script ran, for jsv::ToMsgpack.
bool
StashObjectKeys(Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Value> object, keys;
    if (!context->Global()
             ->Get(context, Str(isolate, "Object"))
             .ToLocal(&object))
        return false;
    if (!object->IsObject() ||
        !object.As<Object>()->Get(context, Str(isolate, "keys")).ToLocal(&keys))
        return !object->IsObject(); // no Object: nothing to keep
    if (!keys->IsFunction())
        return true;
    Local<v8::Private> name =
        v8::Private::ForApi(isolate, Str(isolate, jsv::kObjectKeysPrivate));
    return context->Global()->SetPrivate(context, name, keys).FromMaybe(false);
}

} // namespace

bool
Install(v8::Local<v8::Context> context)
{
    Isolate *isolate = context->GetIsolate();
    v8::HandleScope scope(isolate);

    Local<FunctionTemplate> enc =
        Class(isolate, "TextEncoder", Guard<TextEncoderNew>, 0);
    AddGetter(isolate, enc, "encoding", Guard<TextEncoderEncoding>);
    AddMethod(isolate, enc, "encode", Guard<TextEncoderEncode>, 0);
    AddMethod(isolate, enc, "encodeInto", Guard<TextEncoderEncodeInto>, 2);

    Local<FunctionTemplate> dec =
        Class(isolate, "TextDecoder", Guard<TextDecoderNew>, kDecoderFields);
    AddGetter(isolate, dec, "encoding", Guard<TextDecoderEncoding>);
    AddGetter(isolate, dec, "fatal", Guard<TextDecoderFatal>);
    AddGetter(isolate, dec, "ignoreBOM", Guard<TextDecoderIgnoreBOM>);
    AddMethod(isolate, dec, "decode", Guard<TextDecoderDecode>, 0);

    return StashObjectKeys(context) &&
           InstallClass(context, "TextEncoder", enc) &&
           InstallClass(context, "TextDecoder", dec) &&
           InstallFunction(context, "atob", Guard<Atob>, 1) &&
           InstallFunction(context, "btoa", Guard<Btoa>, 1) &&
           InstallFunction(context, "structuredClone", Guard<StructuredClone>,
                           0) &&
           InstallCrypto(context);
}

} // namespace jsb
