// TextEncoder, TextDecoder, atob, btoa, structuredClone and crypto
// (getRandomValues, randomUUID, subtle.digest), written against
// V8's API rather than as JavaScript so that a script that replaces
// Uint8Array, Array.prototype or Symbol.iterator cannot change how they work.
// They follow what Node.js 20 does (messages and error codes included),
// except where their files say otherwise, and:
// - DOMExceptions (InvalidCharacterError, DataCloneError) are Errors with the
//   DOMException's name and code; there is no DOMException class.
//
// This file installs them (Install) and holds what every part uses;
// js_builtins_internal.h lists the parts' files.
#include "js_builtins_internal.h"
#include "js_value.h"

#include <string>

namespace jsb
{

Local<String>
Str(Isolate *isolate, const char *s)
{
    // Literal ASCII text of ours: this cannot fail short of an abort anyway.
    return String::NewFromUtf8(isolate, s).ToLocalChecked();
}

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

// ---------------------------------------------------------------------------
// Installation

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

namespace
{

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
    return StashObjectKeys(context) && InstallEncoding(context) &&
           InstallClone(context) && InstallCrypto(context);
}

} // namespace jsb
