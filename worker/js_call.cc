// Calls: one js_call, js_context_eval, js_context_call or js_context_load,
// from its start to its one answer. Read top to bottom, this file follows a
// call (engine.h's top comment draws the whole path):
//   1. start   CallStart registers it; CallFunction, CallEval,
//              CallExpression or CallLoad run its JS under its deadline.
//   2. settle  what the JS gives (a value, a promise, cb(err, result), a
//              throw) reaches CallSettle, at once or from a later macrotask
//              through settle.js; the first settlement wins.
//   3. after   once the entry into JS is left, CallsAfterEntry answers the
//              settled calls, and gives a call still waiting its deadline
//              timer.
//   4. answer  CallAnswer converts the value under the call's deadline;
//              CallDone forgets the call and calls its js_done_cb, once.
//   5. cancel  CallCancel answers a waiting call Cancelled, or flags the
//              running one, whose JS the embedder's poll terminated.
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "js_internal.h"
#include "js_value.h"
#include "log.h"

using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Message;
using v8::Object;
using v8::Promise;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace jse
{

static void SettleWith(Call *call, Local<Context> context, TryCatch &tc,
                       MaybeLocal<Value> result, int arity,
                       bool plain_return_counts);
static void CallAnswer(Call *call);
static void CallTerminated(Call *call);
static void CallDone(Call *call, const char *value, size_t len,
                     const struct js_error *error);
static void CallTimedOut(uv_timer_t *t);

// ===========================================================================
// 1. Start

// An answer given without a Call (nothing is allocated for it).
static void
AnswerNow(js_engine *e, js_done_cb cb, void *arg, const char *message)
{
    struct js_error err;
    memset(&err, 0, sizeof err);
    err.type = PROTO_ERR_HOST_UNAVAILABLE;
    err.message = const_cast<char *>(message);
    e->answered++;
    e->failed++;
    cb(arg, nullptr, 0, &err);
}

Call *
CallStart(js_engine *e, uint32_t timeout_ms, js_done_cb cb, void *arg) noexcept
{
    if (e->doomed || e->freeing || e->stopping) {
        AnswerNow(e, cb, arg,
                  e->doomed ? "the worker reached its heap limit and is being "
                              "replaced"
                            : "the worker is stopping");
        return nullptr;
    }
    Call *call = new (std::nothrow) Call();
    if (call == nullptr) {
        AnswerNow(e, cb, arg, "the worker is out of memory");
        return nullptr;
    }
    call->e = e;
    call->id = e->next_call;
    call->cb = cb;
    call->arg = arg;
    call->timeout_ms = timeout_ms ? timeout_ms : e->timeout_ms;
    call->deadline_ns = uv_hrtime() + (uint64_t)call->timeout_ms * 1000000ull;
    try {
        e->calls.emplace(call->id, call);
    } catch (...) {
        delete call;
        AnswerNow(e, cb, arg, "the worker is out of memory");
        return nullptr;
    }
    e->next_call++;
    return call;
}

void
CallFunction(Call *call, const std::string &name, proto_span data)
{
    js_engine *e = call->e;
    auto it = e->functions.find(name);
    if (it == e->functions.end()) {
        CallFail(call, PROTO_ERR_NOT_FOUND, "no function '%s' in %s",
                 name.c_str(),
                 e->config_path.empty() ? "this worker (no config)"
                                        : e->config_path.c_str());
        return;
    }
    Fn &fn = it->second;
    call->realm = e->main;
    call->what = "function '" + name + "'";
    call->name = name;
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = call->realm->context.Get(isolate);
    Context::Scope cs(context);
    Outcome out;
    {
        Entry en(e, call->deadline_ns);
        CurrentCallScope current(e, call->id);
        TryCatch tc(isolate);
        Local<Value> argv[2];
        std::string why;
        jsv::Status st = jsv::kOk;
        CallFaultPoint(e);
        if (data.len == 0) {
            argv[0] = v8::Null(isolate);
        } else {
            // Callables in a call's data live as long as the call.
            CallableScope owner(e, call->id, 0);
            proto_cur c;
            proto_cur_init(&c, data.ptr, data.len);
            st = jsv::FromMsgpack(context, &c, &argv[0], &why);
        }
        if (st == jsv::kInvalid) {
            en.Leave();
            CallFail(call, PROTO_ERR_INVALID_ARGUMENT, "data: %s", why.c_str());
            return;
        }
        Local<Value> fname = fn.name_str.Get(isolate);
        Local<Value> mkargv[] = {v8::Number::New(isolate, (double)call->id),
                                 fname, Integer::New(isolate, fn.arity)};
        Local<Object> self = fn.self.Get(isolate)->Clone();
        if (st == jsv::kOk &&
            call->realm->make_callback.Get(isolate)
                ->Call(context, v8::Undefined(isolate), 3, mkargv)
                .ToLocal(&argv[1])) {
            MaybeLocal<Value> r =
                fn.fn.Get(isolate)->Call(context, self, 2, argv);
            // A plain return answers only a function that takes no cb.
            SettleWith(call, context, tc, r, fn.arity, fn.arity < 2);
        } else if (tc.HasCaught() && !tc.HasTerminated()) {
            CallSettle(e, call->id, false, tc.Exception(), tc.Message());
        }
        out = en.Leave();
    }
    CallsAfterEntry(e, call->id, out, "");
}

void
CallEval(Call *call, Realm *realm, const std::string &source,
         const std::string &identifier)
{
    js_engine *e = call->e;
    call->realm = realm;
    call->what = "eval '" + identifier + "'";
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Outcome out;
    {
        Entry en(e, call->deadline_ns);
        CurrentCallScope current(e, call->id);
        TryCatch tc(isolate);
        CallFaultPoint(e);
        Local<String> src = Str(isolate, source);
        Local<String> name = Str(isolate, identifier);
        if (src.IsEmpty() || name.IsEmpty()) {
            en.Leave();
            CallFail(call, PROTO_ERR_INVALID_ARGUMENT,
                     "source or identifier is too long");
            return;
        }
        v8::ScriptOrigin origin(isolate, name);
        v8::ScriptCompiler::Source s(src, origin);
        Local<v8::Script> script;
        if (!v8::ScriptCompiler::Compile(context, &s).ToLocal(&script)) {
            if (tc.HasCaught() && !tc.HasTerminated())
                CallSettle(e, call->id, false, tc.Exception(), tc.Message());
        } else {
            SettleWith(call, context, tc, script->Run(context), 0, true);
        }
        out = en.Leave();
    }
    CallsAfterEntry(e, call->id, out, "");
}

static bool
IsIdentChar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '$' || (c & 0x80);
}

// Splits "a.b.c" into receiver "a.b" and key "c" when the expression ends
// in a plain member access ("a?.c" too: *optional); otherwise the receiver is
// empty.
static void
SplitMember(const std::string &expr, std::string *receiver, std::string *key,
            bool *optional)
{
    size_t end = expr.size();
    while (end > 0 && isspace((unsigned char)expr[end - 1]))
        end--;
    size_t i = end;
    while (i > 0 && IsIdentChar(expr[i - 1]))
        i--;
    receiver->clear();
    *optional = false;
    if (i == end || i < 2 || expr[i - 1] != '.' || expr[i - 2] == '.' ||
        (expr[i] >= '0' && expr[i] <= '9'))
        return;
    size_t cut = i - 1;
    if (expr[i - 2] == '?') {
        *optional = true;
        cut = i - 2;
    }
    if (cut == 0)
        return;
    *receiver = expr.substr(0, cut);
    *key = expr.substr(i, end - i);
}

// args (nil or an array) as JS values; false with *why saying what is wrong
// with them. Callables in them are set in the context (released, or gone
// with it).
static bool
ConvertArgs(js_engine *e, Realm *realm, Local<Context> context, proto_span args,
            std::vector<Local<Value>> *argv, std::string *why)
{
    proto_cur c;
    proto_item head;
    if (args.len == 0)
        return true;
    proto_cur_init(&c, args.ptr, args.len);
    if (proto_cur_next(&c, &head) != 0 ||
        (head.type != PROTO_T_NIL && head.type != PROTO_T_ARRAY)) {
        *why = "args must be an array";
        return false;
    }
    if (head.type == PROTO_T_NIL)
        return true;
    CallFaultPoint(e);
    CallableScope owner(e, 0, realm->id);
    for (uint32_t i = 0; i < head.len; i++) {
        Local<Value> v;
        std::string what;
        jsv::Status st = jsv::FromMsgpack(context, &c, &v, &what);
        if (st != jsv::kOk) {
            *why = "args[" + std::to_string(i) + "]" +
                   (st == jsv::kInvalid ? ": " + what : " cannot be converted");
            return false;
        }
        argv->push_back(v);
    }
    return true;
}

enum CalleeKind { kCallee, kNullish, kThrew };

// The function `expr` names and its receiver: for "a.b.f", a.b and a.b.f;
// else the global object and the expression's value. kNullish for "a?.f"
// when a is nullish (the call is then undefined); kThrew with a JS exception
// pending (or terminated).
static CalleeKind
Callee(Isolate *isolate, Local<Context> context, const std::string &expr,
       Local<Value> *self, Local<Value> *fv)
{
    std::string recv_src, key;
    bool optional;
    SplitMember(expr, &recv_src, &key, &optional);
    *self = context->Global();
    v8::ScriptOrigin origin(isolate,
                            String::NewFromUtf8Literal(isolate, "<call>"));
    Local<v8::Script> script;
    if (recv_src.empty()) {
        v8::ScriptCompiler::Source s(Str(isolate, expr), origin);
        return v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) &&
                       script->Run(context).ToLocal(fv)
                   ? kCallee
                   : kThrew;
    }
    v8::ScriptCompiler::Source s(Str(isolate, recv_src), origin);
    Local<Value> recv;
    Local<Object> o;
    if (!v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) ||
        !script->Run(context).ToLocal(&recv))
        return kThrew;
    if (optional && recv->IsNullOrUndefined())
        return kNullish;
    if (!recv->ToObject(context).ToLocal(&o) ||
        !o->Get(context, Str(isolate, key)).ToLocal(fv))
        return kThrew;
    *self = recv;
    return kCallee;
}

void
CallExpression(Call *call, Realm *realm, const std::string &expr,
               proto_span args)
{
    js_engine *e = call->e;
    call->realm = realm;
    call->what = "call '" + expr + "'";
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Outcome out;
    {
        Entry en(e, call->deadline_ns);
        CurrentCallScope current(e, call->id);
        TryCatch tc(isolate);
        std::vector<Local<Value>> argv;
        std::string why;
        if (!ConvertArgs(e, realm, context, args, &argv, &why)) {
            en.Leave();
            CallFail(call, PROTO_ERR_INVALID_ARGUMENT, "%s", why.c_str());
            return;
        }
        Local<Value> self, fv;
        switch (Callee(isolate, context, expr, &self, &fv)) {
        case kNullish:
            // a?.f() is undefined when a is nullish
            en.Leave();
            CallSettle(e, call->id, true, v8::Undefined(isolate),
                       Local<Message>());
            CallsAfterEntry(e, call->id, kFinished, "");
            return;
        case kThrew:
            if (tc.HasCaught() && !tc.HasTerminated())
                CallSettle(e, call->id, false, tc.Exception(), tc.Message());
            break;
        case kCallee:
            if (!fv->IsFunction()) {
                en.Leave();
                CallFail(call, PROTO_ERR_JS, "TypeError: %s is not a function",
                         expr.c_str());
                return;
            }
            SettleWith(call, context, tc,
                       fv.As<Function>()->Call(context, self, (int)argv.size(),
                                               argv.data()),
                       0, true);
            break;
        }
        out = en.Leave();
    }
    CallsAfterEntry(e, call->id, out, "");
}

static bool
ReadWholeFile(const std::string &path, std::string *out, int *errnum)
{
    FILE *f = fopen(path.c_str(), "rb");
    if (f == nullptr) {
        *errnum = errno;
        return false;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        out->append(buf, n);
    bool bad = ferror(f);
    *errnum = bad ? (errno ? errno : EIO) : 0;
    fclose(f);
    return !bad;
}

void
CallLoad(Call *call, Realm *realm, proto_span paths)
{
    js_engine *e = call->e;
    proto_cur c;
    proto_item head;
    proto_cur_init(&c, paths.ptr, paths.len);
    if (paths.len == 0 || proto_cur_next(&c, &head) != 0 ||
        head.type != PROTO_T_ARRAY) {
        CallFail(call, PROTO_ERR_INVALID_ARGUMENT,
                 "paths must be an array of strings");
        return;
    }
    std::vector<std::string> files;
    for (uint32_t i = 0; i < head.len; i++) {
        proto_item p;
        if (proto_cur_next(&c, &p) != 0 || p.type != PROTO_T_STR) {
            CallFail(call, PROTO_ERR_INVALID_ARGUMENT,
                     "paths[%u] is not a string", i);
            return;
        }
        std::string s(p.ptr, p.len);
        if (s.empty() || s[0] != '/')
            s = realm->cwd + "/" + s;
        files.push_back(s);
    }
    call->realm = realm;
    call->what = "load";
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Outcome out;
    {
        Entry en(e, call->deadline_ns);
        CurrentCallScope current(e, call->id);
        TryCatch tc(isolate);
        bool failed = false;
        for (const std::string &file : files) {
            std::string src;
            int errnum = 0;
            CallFaultPoint(e);
            if (!ReadWholeFile(file, &src, &errnum)) {
                en.Leave();
                CallFail(call, PROTO_ERR_NOT_FOUND, "cannot read %s: %s",
                         file.c_str(), strerror(errnum));
                return;
            }
            v8::ScriptOrigin origin(isolate, Str(isolate, file));
            v8::ScriptCompiler::Source s(Str(isolate, src), origin);
            Local<v8::Script> script;
            Local<Value> v;
            if (!v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) ||
                !script->Run(context).ToLocal(&v)) {
                if (tc.HasCaught() && !tc.HasTerminated())
                    CallSettle(e, call->id, false, tc.Exception(),
                               tc.Message());
                failed = true;
                break;
            }
        }
        if (!failed)
            CallSettle(e, call->id, true, v8::Null(isolate), Local<Message>());
        out = en.Leave();
    }
    CallsAfterEntry(e, call->id, out, "");
}

// ===========================================================================
// 2. Settle

bool
CallSettle(js_engine *e, uint64_t id, bool ok, Local<Value> value,
           Local<Message> message)
{
    auto it = e->calls.find(id);
    if (it == e->calls.end() || it->second->settled)
        return false;
    Call *call = it->second;
    // Called from V8's callbacks, where no exception may go: a call that
    // cannot be queued stays unsettled (its deadline answers it).
    try {
        e->settled.push_back(call);
    } catch (...) {
        return false;
    }
    call->settled = true;
    call->ok = ok;
    call->value.Reset(e->isolate, value);
    if (!message.IsEmpty())
        call->message.Reset(e->isolate, message);
    return true;
}

static Local<Value>
CallName(Isolate *isolate, Call *call)
{
    Local<String> s =
        Str(isolate, call->name.empty() ? call->what : call->name);
    if (s.IsEmpty())
        return v8::Undefined(isolate);
    return s;
}

// The value of a script or a function: a promise is awaited (settle.js);
// anything else settles now, or, for a function that takes a cb, is ignored.
static void
SettleWith(Call *call, Local<Context> context, TryCatch &tc,
           MaybeLocal<Value> result, int arity, bool plain_return_counts)
{
    js_engine *e = call->e;
    Isolate *isolate = e->isolate;
    Local<Value> v;
    if (!result.ToLocal(&v)) {
        if (tc.HasCaught() && !tc.HasTerminated())
            CallSettle(e, call->id, false, tc.Exception(), tc.Message());
        return;
    }
    if (v->IsPromise()) {
        Local<Value> argv[] = {v, v8::Number::New(isolate, (double)call->id),
                               CallName(isolate, call),
                               Integer::New(isolate, arity)};
        Local<Value> r;
        if (!call->realm->await_call.Get(isolate)
                 ->Call(context, v8::Undefined(isolate), 4, argv)
                 .ToLocal(&r) &&
            tc.HasCaught() && !tc.HasTerminated())
            CallSettle(e, call->id, false, tc.Exception(), tc.Message());
        return;
    }
    if (plain_return_counts)
        CallSettle(e, call->id, true, v, Local<Message>());
}

// settle.js's native: settle(kind, id, name, arity, a, b) with kind 0 =
// cb(a, b), 1 = the promise fulfilled with a, 2 = rejected with a.
static void
SettleFromJs(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    js_engine *e = EngineOf(isolate);
    if (!info[0]->IsInt32() || !info[1]->IsNumber())
        return;
    int kind = info[0].As<Integer>()->Value();
    uint64_t id = (uint64_t)info[1].As<v8::Number>()->Value();
    int arity = info[3]->IsInt32() ? info[3].As<Integer>()->Value() : 0;
    if (kind == 0) {
        Local<Value> err = info[4];
        bool failed = !err->IsNullOrUndefined() && err->BooleanValue(isolate);
        bool won = failed ? CallSettle(e, id, false, err, Local<Message>())
                          : CallSettle(e, id, true, info[5], Local<Message>());
        if (!won) {
            std::string msg =
                "late callback for '" + Utf8(isolate, info[2]) + "' ignored";
            log_line(2, "warn", msg.data(), msg.size());
        }
        return;
    }
    bool ok = kind == 1;
    // An async function that takes cb resolves with undefined when it
    // returns; its answer is the cb's.
    if (ok && arity >= 2 && info[4]->IsUndefined())
        return;
    if (!CallSettle(e, id, ok, info[4], Local<Message>())) {
        std::string msg =
            "late result for '" + Utf8(isolate, info[2]) + "' ignored";
        log_line(2, "warn", msg.data(), msg.size());
    }
}

bool
CallSettleInstall(Realm *realm, Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Function> settle;
    Local<Value> pair, make_callback, await_call;
    if (!Function::New(context, SettleFromJs).ToLocal(&settle))
        return false;
    Local<Value> argv[] = {settle};
    if (!RunPrelude(context, jsp::kSettle, "jshost:runs", 1, argv, &pair) ||
        !pair->IsArray() ||
        !pair.As<v8::Array>()->Get(context, 0).ToLocal(&make_callback) ||
        !pair.As<v8::Array>()->Get(context, 1).ToLocal(&await_call) ||
        !make_callback->IsFunction() || !await_call->IsFunction())
        return false;
    realm->make_callback.Reset(isolate, make_callback.As<Function>());
    realm->await_call.Reset(isolate, await_call.As<Function>());
    return true;
}

// ===========================================================================
// 3. After the entry

Call *
CallById(js_engine *e, uint64_t id)
{
    auto it = e->calls.find(id);
    return it == e->calls.end() ? nullptr : it->second;
}

// Answers every settled call; an allocation failing while one is answered
// answers that one HostUnavailable (no exception leaves).
static void
AnswerSettled(js_engine *e) noexcept
{
    while (!e->settled.empty()) {
        Call *call = e->settled.front();
        e->settled.pop_front();
        uint64_t id = call->id;
        try {
            CallAnswer(call);
        } catch (...) {
            CallAbandon(e, id);
        }
    }
}

// A call still unsettled after its synchronous part is answered by the loop
// at its deadline (most calls finish before and never need a timer).
static void
StartDeadlineTimer(js_engine *e, Call *call)
{
    uint64_t now = uv_hrtime();
    uint64_t left_ms = call->deadline_ns > now
                           ? (call->deadline_ns - now + 999999) / 1000000
                           : 0;
    uv_timer_init(e->loop, &call->timer);
    call->timer.data = call;
    call->timer_on = true;
    // The loop's clock may be stale (a call started outside a loop turn).
    uv_update_time(e->loop);
    uv_timer_start(&call->timer, CallTimedOut, left_ms, 0);
}

// Words for what terminated an entry from inside.
static const char *
TerminationWords(int why)
{
    switch (why) {
    case kTermCancel:
        return "its call was cancelled";
    case kTermContext:
        return "its context was destroyed";
    case kTermStop:
        return "the worker is stopping";
    }
    return "terminated";
}

void
CallsAfterEntry(js_engine *e, uint64_t id, Outcome out, const char *what)
{
    if (out == kTerminated) {
        if (id == 0) {
            std::string msg = std::string(what) + " was terminated: " +
                              TerminationWords(e->term_reason);
            log_line(2, "warn", msg.data(), msg.size());
        }
        // Stopping: nothing more will run; everything is answered now. A
        // destroyed context's calls are answered by its destruction, a
        // cancelled call below.
        if (e->term_reason == kTermStop)
            CallsFailAll(e, nullptr, e->stop_type, e->stop_words);
    }
    CallsAnswerCancelled(e);
    if (out == kOutOfMemory) {
        static const char msg[] = "JavaScript heap limit reached; failing "
                                  "every call, the worker must be replaced";
        log_line(2, "error", msg, sizeof msg - 1);
        CallsFailMemory(e);
        return;
    }
    if (out == kTimedOut) {
        if (Call *call = CallById(e, id)) {
            // Its settlement, if queued, is dropped: the deadline won.
            CallFail(call, PROTO_ERR_TIMEOUT,
                     "%s did not finish within %u ms (terminated)",
                     call->what.c_str(), call->timeout_ms);
        } else if (id == 0) {
            std::string msg =
                std::string(what) + " ran past its deadline and was terminated";
            log_line(2, "error", msg.data(), msg.size());
        }
    }
    AnswerSettled(e);
    Call *call = CallById(e, id);
    if (call != nullptr && !call->timer_on)
        StartDeadlineTimer(e, call);
}

static void
CallTimedOut(uv_timer_t *t)
{
    Call *call = static_cast<Call *>(t->data);
    if (call->settled)
        return;
    CallFail(call, PROTO_ERR_TIMEOUT, "%s did not finish within %u ms",
             call->what.c_str(), call->timeout_ms);
}

// ===========================================================================
// 4. Answer

static msgpack_sbuffer *
TakeBuffer(js_engine *e)
{
    msgpack_sbuffer *sb = e->spare;
    e->spare = nullptr;
    if (sb == nullptr)
        sb = msgpack_sbuffer_new();
    else
        msgpack_sbuffer_clear(sb);
    if (sb == nullptr)
        throw std::bad_alloc();
    return sb;
}

static void
GiveBuffer(js_engine *e, msgpack_sbuffer *sb)
{
    // Do not hoard a huge result's buffer.
    if (e->spare == nullptr && sb->alloc <= 1024 * 1024) {
        e->spare = sb;
        return;
    }
    msgpack_sbuffer_free(sb);
}

// String(value), as JavaScript's String() gives it (ToString would throw on
// a symbol); its toString() may run JS, or throw.
static jsv::Status
AsString(Local<Context> context, Local<Value> *value)
{
    Isolate *isolate = context->GetIsolate();
    Local<String> s;
    if ((*value)->IsSymbol()) {
        Local<Value> d = value->As<v8::Symbol>()->Description(isolate);
        std::string text =
            "Symbol(" + (d->IsUndefined() ? std::string() : Utf8(isolate, d)) +
            ")";
        s = Str(isolate, text);
    } else if (!(*value)->ToString(context).ToLocal(&s)) {
        return jsv::kException;
    }
    if (s.IsEmpty())
        return jsv::kInvalid; // a symbol's description too long for a string
    *value = s;
    return jsv::kOk;
}

// A result: converted to msgpack under the call's deadline (a getter or
// toJSON runs JS), then answered.
static void
AnswerValue(Call *call, Local<Context> context, Local<Value> value)
{
    js_engine *e = call->e;
    Isolate *isolate = e->isolate;
    msgpack_sbuffer *sb = TakeBuffer(e);
    std::unique_ptr<msgpack_sbuffer, void (*)(msgpack_sbuffer *)> owner(
        sb, msgpack_sbuffer_free);
    std::string why;
    jsv::Status st;
    Outcome out;
    struct js_error err;
    memset(&err, 0, sizeof err);
    {
        Entry en(e, call->deadline_ns);
        TryCatch tc(isolate);
        CallFaultPoint(e);
        st = call->as_string ? AsString(context, &value) : jsv::kOk;
        if (st == jsv::kOk)
            st = jsv::ToMsgpack(context, value, sb, &why);
        if (st == jsv::kException && tc.HasCaught() && !tc.HasTerminated())
            ErrorFromException(isolate, context, tc.Exception(), tc.Message(),
                               PROTO_ERR_JS, &err);
        out = en.Leave();
    }
    if (out == kOutOfMemory)
        CallsFailMemory(e);
    else if (out == kTerminated)
        CallTerminated(call);
    else if (st == jsv::kOk)
        CallDone(call, sb->data, sb->size, nullptr);
    else if (err.type == PROTO_ERR_JS)
        CallDone(call, nullptr, 0, &err);
    else if (out == kTimedOut || st == jsv::kException)
        CallFail(call, PROTO_ERR_TIMEOUT,
                 "%s: converting the result passed the deadline of %u ms",
                 call->what.c_str(), call->timeout_ms);
    else
        CallFail(call, PROTO_ERR_INVALID_ARGUMENT,
                 "%s: the result cannot cross: %s", call->what.c_str(),
                 why.c_str());
    js_error_free(&err);
    GiveBuffer(e, owner.release());
}

// A failure: its name, stack and position read (JS getters may run).
static void
AnswerError(Call *call, Local<Context> context, Local<Value> exception,
            Local<Message> message)
{
    js_engine *e = call->e;
    struct js_error err;
    memset(&err, 0, sizeof err);
    Outcome out;
    {
        // The failure came in time: reading its name and stack gets a short
        // grace even when the deadline is just past.
        uint64_t floor = uv_hrtime() + 50 * 1000000ull;
        Entry en(e, call->deadline_ns > floor ? call->deadline_ns : floor);
        ErrorFromException(e->isolate, context, exception, message,
                           PROTO_ERR_JS, &err);
        out = en.Leave();
    }
    if (out == kOutOfMemory)
        CallsFailMemory(e);
    else if (out == kTerminated)
        CallTerminated(call);
    else
        CallDone(call, nullptr, 0, &err);
    js_error_free(&err);
}

// Answers a settled call.
static void
CallAnswer(Call *call)
{
    js_engine *e = call->e;
    if (e->doomed) {
        CallsFailMemory(e);
        return;
    }
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = call->realm->context.Get(isolate);
    Context::Scope cs(context);
    Local<Value> value = call->value.Get(isolate);
    Local<Message> message;
    if (!call->message.IsEmpty())
        message = call->message.Get(isolate);
    if (call->ok)
        AnswerValue(call, context, value);
    else
        AnswerError(call, context, value, message);
}

static void
CallClosed(uv_handle_t *h)
{
    delete static_cast<Call *>(h->data);
}

// The one way out: forgets the call, then calls its js_done_cb. Allocates
// nothing.
static void
CallDone(Call *call, const char *value, size_t len,
         const struct js_error *error)
{
    js_engine *e = call->e;
    call->settled = true;
    call->value.Reset();
    call->message.Reset();
    e->calls.erase(call->id);
    e->answered++;
    if (error != nullptr)
        e->failed++;
    for (auto it = e->settled.begin(); it != e->settled.end(); ++it) {
        if (*it == call) {
            e->settled.erase(it);
            break;
        }
    }
    js_done_cb cb = call->cb;
    void *arg = call->arg;
    if (call->timer_on) {
        uv_timer_stop(&call->timer);
        uv_close(reinterpret_cast<uv_handle_t *>(&call->timer), CallClosed);
    } else {
        delete call;
    }
    cb(arg, value, len, error);
}

void
CallFail(Call *call, enum proto_errtype type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ErrorFormat(fmt, ap);
    va_end(ap);
    struct js_error err;
    memset(&err, 0, sizeof err);
    err.type = type;
    err.message = msg != nullptr ? msg : const_cast<char *>("out of memory");
    CallDone(call, nullptr, 0, &err);
    free(msg);
}

void
CallsFailAll(js_engine *e, const Realm *only, enum proto_errtype type,
             const char *message)
{
    // By id, from the lowest up: each answer may end other calls or start
    // new ones (those get higher ids, and are failed too).
    uint64_t next = 0;
    for (;;) {
        auto it = e->calls.lower_bound(next);
        while (it != e->calls.end() && only != nullptr &&
               it->second->realm != only)
            ++it;
        if (it == e->calls.end())
            return;
        next = it->first + 1;
        CallFail(it->second, type, "%s", message);
    }
}

void
CallsFailMemory(js_engine *e)
{
    char msg[128];
    snprintf(msg, sizeof msg,
             "JavaScript heap limit of %u MiB reached; the worker will be "
             "replaced",
             e->memory_mb);
    CallsFailAll(e, nullptr, PROTO_ERR_MEMORY, msg);
}

// Its answer's conversion was terminated from inside: answered as what did.
static void
CallTerminated(Call *call)
{
    js_engine *e = call->e;
    if (call->cancelled || e->term_reason == kTermCancel)
        CallFail(call, PROTO_ERR_CANCELLED, "%s was cancelled",
                 call->what.c_str());
    else if (e->term_reason == kTermStop)
        CallFail(call, e->stop_type, "%s", e->stop_words);
    else
        CallFail(call, PROTO_ERR_NOT_FOUND, "%s: its context was destroyed",
                 call->what.c_str());
    CallsAnswerCancelled(e);
}

// ===========================================================================
// 5. Cancel

void
CallCancel(Call *call)
{
    js_engine *e = call->e;
    if (e->depth == 0) {
        CallFail(call, PROTO_ERR_CANCELLED, "%s was cancelled",
                 call->what.empty() ? "the call" : call->what.c_str());
        return;
    }
    if (!call->cancelled) {
        // No allocation may fail here (inside V8's interrupt): a call that
        // cannot be listed is still terminated, and answered by its
        // deadline.
        try {
            e->cancelled.push_back(call->id);
            call->cancelled = true;
        } catch (...) {
        }
    }
    if (call->id == e->current_call)
        Terminate(e, kTermCancel);
}

void
CallsAnswerCancelled(js_engine *e) noexcept
{
    while (!e->cancelled.empty()) {
        uint64_t id = e->cancelled.back();
        e->cancelled.pop_back();
        if (Call *call = CallById(e, id))
            CallFail(call, PROTO_ERR_CANCELLED, "%s was cancelled",
                     call->what.empty() ? "the call" : call->what.c_str());
    }
}

void
CallAbandon(js_engine *e, uint64_t id) noexcept
{
    Call *call = CallById(e, id);
    if (call == nullptr)
        return;
    CallFail(call, PROTO_ERR_HOST_UNAVAILABLE,
             "the worker ran out of memory serving %s",
             call->what.empty() ? "this call" : call->what.c_str());
}

void
CallFaultPoint(js_engine *e)
{
    if (e->fault_in == 0 || --e->fault_in > 0)
        return;
    throw std::bad_alloc();
}

} // namespace jse
