// The builtins' insides, shared by their files (C++ only; the rest of the
// engine sees js_builtins.h):
//   js_builtins.cc           Install; what every part uses: Node's coded
//                            errors, the DOMException stand-in, arguments,
//                            globals and classes defined as Web IDL does
//   js_builtins_encoding.cc  TextEncoder, TextDecoder (UTF-8), atob, btoa
//   js_builtins_clone.cc     structuredClone (V8's serializer)
//   js_builtins_crypto.cc    crypto: getRandomValues, randomUUID,
//                            subtle.digest (OpenSSL's libcrypto)
#ifndef JSHOST_JS_BUILTINS_INTERNAL_H
#define JSHOST_JS_BUILTINS_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <string>

#include <v8.h>

#include "js_builtins.h"

namespace jsb
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

// --- js_builtins.cc: errors and arguments ---------------------------------

// Our own ASCII text (a literal) as a V8 string.
Local<String> Str(Isolate *isolate, const char *s);

enum ErrorKind { kError, kTypeError, kRangeError };

// An error as Node makes them: a TypeError or RangeError with a `code`.
void ThrowCoded(Isolate *isolate, ErrorKind kind, const char *code,
                const std::string &message);
// A DOMException stand-in: an Error whose name and code are the
// DOMException's, not enumerable (JSON.stringify shows {} as for the real one).
void ThrowDOMException(Isolate *isolate, Local<String> message,
                       const char *name, int code);
// Node's wording for "Received ..." in ERR_INVALID_ARG_TYPE, for primitives.
std::string Received(Isolate *isolate, Local<Value> v);
// The bytes of an ArrayBuffer, SharedArrayBuffer or view, or false.
bool BufferSource(Local<Value> v, const uint8_t **data, size_t *len);

// --- js_builtins.cc: installation -----------------------------------------

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
bool SetGlobal(Local<Context> context, const char *name, Local<Value> value,
               v8::PropertyAttribute attr);
bool InstallFunction(Local<Context> context, const char *name,
                     v8::FunctionCallback cb, int length);
void AddMethod(Isolate *isolate, Local<FunctionTemplate> cls, const char *name,
               v8::FunctionCallback cb, int length);
void AddGetter(Isolate *isolate, Local<FunctionTemplate> cls, const char *name,
               v8::FunctionCallback cb);
Local<FunctionTemplate> Class(Isolate *isolate, const char *name,
                              v8::FunctionCallback ctor, int fields);
bool InstallClass(Local<Context> context, const char *name,
                  Local<FunctionTemplate> cls);

// --- each part's globals ---------------------------------------------------
// Installed on the context's global object in this order; false with a JS
// exception pending when something failed.

bool InstallEncoding(Local<Context> context); // js_builtins_encoding.cc
bool InstallClone(Local<Context> context);    // js_builtins_clone.cc
bool InstallCrypto(Local<Context> context);   // js_builtins_crypto.cc

} // namespace jsb

#endif
