// Callables (docs/values.md, ext 2) and the reverse calls JS makes through
// them (docs/protocol.md, "Callbacks and cancellation"). A callable decoded
// in a call's data belongs to that call and expires when it is answered; one
// decoded in a context.call's args belongs to the context until released.
// It becomes an async function: calling it packs its arguments, hands them
// to the embedder's invoke hook (which sends them to the peer that owns the
// callable) and returns a promise; the peer's answer, brought back by
// js_invoke_settle, settles the promise in a macrotask of its own, under the
// deadline of the call whose JS made the reverse call. The loop never waits
// for one.
#include <cerrno>
#include <cstring>
#include <memory>

#include "js_internal.h"
#include "js_value.h"
#include "log.h"
#include "methods.h"

using v8::Array;
using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::Promise;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace jse
{

// A callable's function carries [callback id, owner call, owner context] as
// its data.
enum { kDataId, kDataCall, kDataContext, kDataLength };

static uint64_t
DataNumber(Local<Context> context, Local<Array> data, uint32_t i)
{
    Local<Value> v;
    if (!data->Get(context, i).ToLocal(&v) || !v->IsNumber())
        return 0;
    double d = v.As<v8::Number>()->Value();
    return d >= 0 ? (uint64_t)d : 0;
}

// Why calling the callable `id` of `owner` fails at once, or nullptr while
// it lives.
static const char *
CallableExpired(js_engine *e, uint32_t id, const CallableOwner &owner)
{
    if (owner.call != 0) {
        Call *call = CallById(e, owner.call);
        if (call == nullptr || call->settled)
            return "callback expired: the call that passed it has ended";
        return nullptr;
    }
    auto it = e->contexts.find(owner.context);
    if (it == e->contexts.end())
        return "callback expired: its context is gone";
    if (it->second->callables.count(id) == 0)
        return "callback expired: it was released";
    return nullptr;
}

static void
Reject(Local<Context> context, Local<Promise::Resolver> resolver,
       Local<Value> reason)
{
    (void)resolver->Reject(context, reason).IsJust();
}

static Local<Value>
ErrorWith(Isolate *isolate, const char *message, bool type_error = false)
{
    Local<String> m = Str(isolate, message, strlen(message));
    if (m.IsEmpty())
        m = String::Empty(isolate);
    return type_error ? v8::Exception::TypeError(m) : v8::Exception::Error(m);
}

// The function a callable becomes (its data: see kData*). Async: it always
// returns a promise, rejected rather than throwing.
static void
InvokeFromJs(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    js_engine *e = EngineOf(isolate);
    Local<Context> context = isolate->GetCurrentContext();
    Local<Promise::Resolver> resolver;
    if (!Promise::Resolver::New(context).ToLocal(&resolver))
        return;
    info.GetReturnValue().Set(resolver->GetPromise());
    Local<Array> data = info.Data().As<Array>();
    uint32_t id = (uint32_t)DataNumber(context, data, kDataId);
    CallableOwner owner;
    owner.call = DataNumber(context, data, kDataCall);
    owner.context = (uint32_t)DataNumber(context, data, kDataContext);
    if (const char *why = CallableExpired(e, id, owner)) {
        Reject(context, resolver, ErrorWith(isolate, why));
        return;
    }
    std::vector<Local<Value>> argv((size_t)info.Length());
    for (int i = 0; i < info.Length(); i++)
        argv[(size_t)i] = info[i];
    Local<Array> args = Array::New(isolate, argv.data(), argv.size());
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    std::unique_ptr<msgpack_sbuffer, void (*)(msgpack_sbuffer *)> owner_sb(
        &sb, msgpack_sbuffer_destroy);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    std::string why;
    jsv::Status st;
    {
        TryCatch tc(isolate);
        st = jsv::ToMsgpack(context, args, &pk, &why);
        if (st == jsv::kException) {
            // A termination goes on unwinding once tc is gone.
            if (tc.HasCaught() && !tc.HasTerminated())
                Reject(context, resolver, tc.Exception());
            return;
        }
    }
    if (st == jsv::kInvalid) {
        std::string m = "the callback's arguments cannot cross: " + why;
        Reject(context, resolver, ErrorWith(isolate, m.c_str(), true));
        return;
    }
    // Converting the arguments ran JS (getters): is it still alive?
    if (const char *why = CallableExpired(e, id, owner)) {
        Reject(context, resolver, ErrorWith(isolate, why));
        return;
    }
    Realm *realm = RealmOf(context);
    Invoke inv;
    inv.resolver.Reset(isolate, resolver);
    // Made here, so that its stack is where JS called the callable.
    inv.error.Reset(isolate, v8::Exception::Error(String::Empty(isolate)));
    inv.call = e->current_call != 0 ? e->current_call : owner.call;
    inv.owner = owner;
    inv.realm = realm != nullptr ? realm->id : 0;
    uint32_t rid;
    do {
        rid = e->next_invoke++;
    } while (rid == 0 || e->invokes.count(rid) != 0);
    struct js_invoke ji;
    memset(&ji, 0, sizeof ji);
    ji.id = rid;
    ji.callback_id = id;
    if (owner.call != 0)
        ji.call_arg = CallById(e, owner.call)->arg;
    ji.context = owner.context;
    ji.args = sb.data;
    ji.args_len = sb.size;
    auto it = e->invokes.emplace(rid, std::move(inv)).first;
    int rc = e->hooks.invoke != nullptr ? e->hooks.invoke(e->hooks.arg, &ji)
                                        : -ENOTCONN;
    if (rc < 0) {
        e->invokes.erase(it);
        Reject(context, resolver,
               ErrorWith(isolate, "callback expired: its client is gone"));
        return;
    }
    it->second.peer = ji.peer;
}

// The Error a reverse call rejects with: the one made where JS called it,
// given the peer's name and message; its stack is the JS one under that
// header, then the peer's own (`peer_stack`, may be empty).
static Local<Value>
InvokeError(Isolate *isolate, Local<Context> context, Invoke &inv,
            const std::string &name, const std::string &message,
            const std::string &peer_stack)
{
    Local<Value> ev = inv.error.Get(isolate);
    if (!ev->IsObject())
        return ErrorWith(isolate, message.c_str());
    Local<Object> err = ev.As<Object>();
    Local<String> k_name = String::NewFromUtf8Literal(isolate, "name");
    Local<String> k_message = String::NewFromUtf8Literal(isolate, "message");
    Local<String> k_stack = String::NewFromUtf8Literal(isolate, "stack");
    Local<Value> stack;
    std::string frames;
    // Read before the name and message change: V8 formats it on first read.
    if (err->Get(context, k_stack).ToLocal(&stack) && stack->IsString()) {
        std::string s = Utf8(isolate, stack);
        size_t at = s.find("\n    at ");
        if (at != std::string::npos)
            frames = s.substr(at);
    }
    std::string text = message.empty() ? name : name + ": " + message;
    text += frames;
    if (!peer_stack.empty())
        text += "\n" + peer_stack;
    Local<String> v;
    if (!(v = Str(isolate, name)).IsEmpty())
        (void)err->Set(context, k_name, v).IsJust();
    if (!(v = Str(isolate, message)).IsEmpty())
        (void)err->Set(context, k_message, v).IsJust();
    if (!(v = Str(isolate, text)).IsEmpty())
        (void)err->Set(context, k_stack, v).IsJust();
    return err;
}

// map[key] when it is a str, else "".
static std::string
MapString(proto_span map, const char *key)
{
    proto_span v;
    proto_cur c;
    proto_item it;
    if (proto_span_map_get(map, key, &v) != 1)
        return std::string();
    proto_cur_init(&c, v.ptr, v.len);
    if (proto_cur_next(&c, &it) != 0 || it.type != PROTO_T_STR)
        return std::string();
    return std::string(it.ptr, it.len);
}

static bool
IsMap(proto_span s)
{
    proto_cur c;
    proto_item it;
    proto_cur_init(&c, s.ptr, s.len);
    return s.len > 0 && proto_cur_next(&c, &it) == 0 && it.type == PROTO_T_MAP;
}

int
InvokeAnswer(js_engine *e, uint32_t id, uint64_t peer, proto_span error,
             proto_span result, const char *fail)
{
    auto it = e->invokes.find(id);
    if (it == e->invokes.end() || it->second.peer != peer)
        return -ENOENT;
    Invoke inv = std::move(it->second);
    e->invokes.erase(it);
    Realm *realm = inv.realm == 0 ? e->main : nullptr;
    if (inv.realm != 0) {
        auto r = e->contexts.find(inv.realm);
        realm = r != e->contexts.end() ? r->second : nullptr;
    }
    if (realm == nullptr || e->doomed || e->freeing)
        return 0;
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    // Under the deadline of the call whose JS made it, as if it had run on.
    Call *call = CallById(e, inv.call);
    uint64_t call_id = call != nullptr ? call->id : 0;
    Outcome out;
    {
        Entry en(e, call != nullptr ? call->deadline_ns : DefaultDeadline(e));
        CurrentCallScope current(e, call_id);
        TryCatch tc(isolate);
        Local<Promise::Resolver> resolver = inv.resolver.Get(isolate);
        if (fail != nullptr) {
            Reject(context, resolver,
                   InvokeError(isolate, context, inv, "Error", fail, ""));
        } else if (IsMap(error)) {
            std::string name = MapString(error, PROTO_K_NAME);
            if (name.empty())
                name = MapString(error, PROTO_K_TYPE);
            if (name.empty())
                name = "Error";
            Reject(context, resolver,
                   InvokeError(isolate, context, inv, name,
                               MapString(error, PROTO_K_MESSAGE),
                               MapString(error, PROTO_K_STACK)));
        } else {
            Local<Value> v = v8::Null(isolate);
            std::string why;
            jsv::Status st = jsv::kOk;
            if (result.len > 0) {
                CallableScope owner(e, inv.owner.call, inv.owner.context);
                proto_cur c;
                proto_cur_init(&c, result.ptr, result.len);
                st = jsv::FromMsgpack(context, &c, &v, &why);
            }
            if (st == jsv::kOk) {
                (void)resolver->Resolve(context, v).IsJust();
            } else if (st == jsv::kInvalid) {
                std::string m = "the callback's result cannot cross: " + why;
                Reject(context, resolver, ErrorWith(isolate, m.c_str(), true));
            }
        }
        out = en.Leave();
    }
    CallsAfterEntry(e, call_id, out, "a callback's answer");
    return 0;
}

void
InvokesFailPeer(js_engine *e, uint64_t peer, const char *message)
{
    std::vector<uint32_t> ids;
    for (auto &kv : e->invokes)
        if (kv.second.peer == peer)
            ids.push_back(kv.first);
    // Each answer runs JS, which may make (or answer) others: by id.
    for (uint32_t id : ids)
        InvokeAnswer(e, id, peer, proto_span{nullptr, 0},
                     proto_span{nullptr, 0}, message);
}

void
InvokesForgetRealm(js_engine *e, uint32_t realm)
{
    for (auto it = e->invokes.begin(); it != e->invokes.end();) {
        if (it->second.realm == realm)
            it = e->invokes.erase(it);
        else
            ++it;
    }
}

} // namespace jse

namespace jsv
{

Status
CallableFromId(Local<Context> context, uint32_t id, Local<Value> *out,
               std::string *what)
{
    Isolate *isolate = context->GetIsolate();
    js_engine *e = jse::EngineOf(isolate);
    const jse::CallableOwner *owner =
        e != nullptr ? &e->callable_owner : nullptr;
    if (owner == nullptr || (owner->call == 0 && owner->context == 0)) {
        *what = "a callable cannot cross here";
        return kInvalid;
    }
    if (owner->context != 0) {
        auto it = e->contexts.find(owner->context);
        if (it == e->contexts.end()) {
            *what = "a callable for a context that is gone";
            return kInvalid;
        }
        it->second->callables.insert(id);
    }
    Local<Value> items[jse::kDataLength] = {
        v8::Number::New(isolate, (double)id),
        v8::Number::New(isolate, (double)owner->call),
        v8::Number::New(isolate, (double)owner->context),
    };
    Local<Array> data = Array::New(isolate, items, jse::kDataLength);
    Local<Function> fn;
    if (!Function::New(context, jse::InvokeFromJs, data, 0,
                       v8::ConstructorBehavior::kThrow)
             .ToLocal(&fn))
        return kException;
    *out = fn;
    return kOk;
}

} // namespace jsv
