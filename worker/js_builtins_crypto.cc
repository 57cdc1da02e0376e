// crypto: getRandomValues, randomUUID, subtle.digest (OpenSSL's libcrypto,
// which libnode links already), with Node.js 20's messages and error codes.
// The rest of SubtleCrypto is not there.
#include "js_builtins_internal.h"

#include <cstdint>
#include <cstring>
#include <string>

#include <openssl/evp.h>
#include <openssl/rand.h>

namespace jsb
{
namespace
{

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

} // namespace

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

} // namespace jsb
