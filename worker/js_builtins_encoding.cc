// TextEncoder, TextDecoder, atob and btoa (forgiving base64), as Node.js 20
// has them (messages and error codes included), except:
// - TextDecoder knows UTF-8 alone: any other label is a RangeError. Its
//   decode() names its argument "input" where Node says "list".
#include "js_builtins_internal.h"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace jsb
{
namespace
{

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

void
ThrowInvalidCharacter(Isolate *isolate, const char *message)
{
    ThrowDOMException(isolate, Str(isolate, message), "InvalidCharacterError",
                      5);
}

// atob's and btoa's argument, String(input), as its UTF-16 code units.
bool
StringArg(const FunctionCallbackInfo<Value> &args, std::vector<uint16_t> *out)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> s;
    if (args.Length() == 0) {
        ThrowCoded(isolate, kTypeError, "ERR_MISSING_ARGS",
                   "The \"input\" argument must be specified");
        return false;
    }
    if (!args[0]->ToString(isolate->GetCurrentContext()).ToLocal(&s))
        return false;
    out->resize((size_t)s->Length());
    s->Write(isolate, out->data(), 0, s->Length(), String::NO_NULL_TERMINATION);
    return true;
}

void
Btoa(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    std::vector<uint16_t> in;
    if (!StringArg(args, &in))
        return;
    for (uint16_t c : in) {
        if (c > 0xff) {
            ThrowInvalidCharacter(isolate, "Invalid character");
            return;
        }
    }
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
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
    std::vector<uint16_t> in;
    if (!StringArg(args, &in))
        return;
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

} // namespace

bool
InstallEncoding(Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();

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

    return InstallClass(context, "TextEncoder", enc) &&
           InstallClass(context, "TextDecoder", dec) &&
           InstallFunction(context, "atob", Guard<Atob>, 1) &&
           InstallFunction(context, "btoa", Guard<Btoa>, 1);
}

} // namespace jsb
