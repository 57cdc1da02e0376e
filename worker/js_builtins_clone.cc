// structuredClone, with V8's own serializer as Node and browsers use it
// (Node.js 20's messages and error codes), except:
// - structuredClone's transfer list takes ArrayBuffers only (no ports); an
//   object made from a C++ template clones as {} (as Node's JS classes do).
#include "js_builtins_internal.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace jsb
{
namespace
{

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

} // namespace

bool
InstallClone(Local<Context> context)
{
    return InstallFunction(context, "structuredClone", Guard<StructuredClone>,
                           0);
}

} // namespace jsb
