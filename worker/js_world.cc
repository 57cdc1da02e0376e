// The JavaScript world beyond ECMAScript (docs/config.md): console
// (timestamped lines on stdout/stderr), timers and immediates on the engine's
// libuv loop, queueMicrotask, process and its nextTick queue. The JavaScript
// half is worker/js/console.js, process.js, timers.js and array-fill.js; this
// file gives them their natives. No file, network or process access.
#include <cstring>
#include <deque>

#include <unistd.h>

#include "js_internal.h"
#include "log.h"

using v8::Array;
using v8::Context;
using v8::External;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::Global;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace jse
{

struct Timer {
    World *world = nullptr;
    Realm *realm = nullptr;
    uint32_t id = 0;
    uint64_t call = 0; // the call that made it, if any
    bool repeat = false;
    bool closed = false;
    uint64_t ms = 0;
    uv_timer_t handle;
    Global<Function> fn;
    Global<Array> args;
};

struct Immediate {
    Realm *realm = nullptr;
    uint32_t id = 0;
    uint64_t call = 0; // the call that made it, if any
    bool refed = true;
    Global<Function> fn;
    Global<Array> args;
};

struct World {
    js_engine *engine = nullptr;
    std::map<uint32_t, Timer *> timers;
    std::deque<Immediate *> immediates;
    size_t refed_immediates = 0;                // of those queued, not unref'd
    std::deque<Immediate *> *running = nullptr; // the batch being run
    std::vector<Realm *> tick_realms; // realms whose nextTick queue has work
    std::vector<Realm *> tick_drops;  // terminated while running their ticks
    uint32_t next_id = 1;
    uv_check_t check;
    uv_idle_t idle; // keeps the loop from blocking while immediates wait
    // V8's own foreground tasks (wasm compilation results, FinalizationRegistry
    // cleanups) are posted from its threads without waking anyone: polled.
    uv_timer_t pump;
    bool active = false;
    int open_handles = 0;
};

} // namespace jse

namespace
{

using jse::Immediate;
using jse::Realm;
using jse::Timer;
using jse::World;

World *WorldOfRealm(Realm *realm);

Realm *
RealmOfInfo(const FunctionCallbackInfo<Value> &info)
{
    return static_cast<Realm *>(info.Data().As<External>()->Value());
}

void
TimerClosed(uv_handle_t *h)
{
    delete static_cast<Timer *>(h->data);
}

void
TimerClose(Timer *t)
{
    if (t->closed)
        return;
    t->closed = true;
    t->fn.Reset();
    t->args.Reset();
    uv_timer_stop(&t->handle);
    uv_close(reinterpret_cast<uv_handle_t *>(&t->handle), TimerClosed);
}

// Runs fn(...args) with this = the realm's global as one macrotask, on
// behalf of `call` (0 = none).
void
RunCallback(World *w, Realm *realm, uint64_t call, Local<Function> fn,
            Local<Array> args, const char *what)
{
    js_engine *e = w->engine;
    Isolate *isolate = e->isolate;
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    jse::Outcome out;
    {
        jse::Entry en(e, jse::DefaultDeadline(e));
        jse::CurrentCallScope current(e, call);
        TryCatch tc(isolate);
        std::vector<Local<Value>> argv;
        for (uint32_t i = 0; !args.IsEmpty() && i < args->Length(); i++) {
            Local<Value> v;
            if (!args->Get(context, i).ToLocal(&v))
                v = v8::Undefined(isolate);
            argv.push_back(v);
        }
        Local<Value> r;
        if (!fn->Call(context, context->Global(), (int)argv.size(), argv.data())
                 .ToLocal(&r) &&
            tc.HasCaught() && !tc.HasTerminated()) {
            jse::LogException(isolate, context, "Uncaught", tc.Exception(),
                              tc.Message());
            // The call it belongs to, still waiting, fails with it.
            if (call != 0)
                jse::CallSettle(e, call, false, tc.Exception(), tc.Message());
        }
        // Microtasks (run by Leave) belong to the same call.
        out = en.Leave();
    }
    jse::CallsAfterEntry(e, 0, out, what);
}

bool
Doomed(World *w)
{
    return js_engine_doomed(w->engine) != 0;
}

void
TimerFired(uv_timer_t *h)
{
    Timer *t = static_cast<Timer *>(h->data);
    World *w = t->world;
    if (Doomed(w))
        return;
    Isolate *isolate = w->engine->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Function> fn = t->fn.Get(isolate);
    Local<Array> args;
    if (!t->args.IsEmpty())
        args = t->args.Get(isolate);
    Realm *realm = t->realm;
    if (!t->repeat) {
        w->timers.erase(t->id);
        TimerClose(t);
    }
    RunCallback(w, realm, t->call, fn, args,
                t->repeat ? "a setInterval callback" : "a setTimeout callback");
}

// The handles of queued immediates keep the loop alive only while one of
// them is ref'd; unref'd, the idle handle still keeps the loop from blocking.
void
ImmediatesRef(World *w)
{
    auto set = [&](uv_handle_t *h) {
        if (w->refed_immediates > 0)
            uv_ref(h);
        else
            uv_unref(h);
    };
    set(reinterpret_cast<uv_handle_t *>(&w->check));
    set(reinterpret_cast<uv_handle_t *>(&w->idle));
}

uint32_t
IdArg(Local<Value> v)
{
    if (!v->IsNumber())
        return 0;
    double d = v.As<v8::Number>()->Value();
    if (!(d >= 1 && d <= 4294967295.0))
        return 0;
    return (uint32_t)d;
}

Timer *
TimerOf(const FunctionCallbackInfo<Value> &info)
{
    Realm *realm = RealmOfInfo(info);
    World *w = WorldOfRealm(realm);
    auto it = w->timers.find(IdArg(info[0]));
    if (it == w->timers.end() || it->second->realm != realm)
        return nullptr;
    return it->second;
}

// timerStart(fn, ms, repeat, args|undefined, id|0, refed) -> id. timers.js
// checked fn and clamped ms; a non-zero id re-arms a fired Timeout (refresh).
void
TimerStart(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    Realm *realm = RealmOfInfo(info);
    World *w = WorldOfRealm(realm);
    if (!info[0]->IsFunction() || !info[1]->IsNumber())
        return;
    uint32_t id = IdArg(info[4]);
    if (id != 0 && w->timers.count(id) != 0)
        return;
    Timer *t = new Timer();
    t->world = w;
    t->realm = realm;
    t->id = id != 0 ? id : w->next_id++;
    t->call = w->engine->current_call;
    t->repeat = info[2]->IsTrue();
    t->fn.Reset(isolate, info[0].As<Function>());
    if (info[3]->IsArray())
        t->args.Reset(isolate, info[3].As<Array>());
    double ms = info[1].As<v8::Number>()->Value();
    t->ms = ms >= 1 && ms <= 2147483647.0 ? (uint64_t)ms : 1;
    uv_timer_init(w->engine->loop, &t->handle);
    t->handle.data = t;
    uv_timer_start(&t->handle, TimerFired, t->ms, t->repeat ? t->ms : 0);
    if (info[5]->IsFalse())
        uv_unref(reinterpret_cast<uv_handle_t *>(&t->handle));
    w->timers[t->id] = t;
    info.GetReturnValue().Set((double)t->id);
}

// timerRefresh(id) -> whether it was still armed (and now counts anew).
void
TimerRefresh(const FunctionCallbackInfo<Value> &info)
{
    Timer *t = TimerOf(info);
    if (t != nullptr) {
        // From the macrotask's "now", as a new timer (see Entry).
        uv_timer_start(&t->handle, TimerFired, t->ms, t->repeat ? t->ms : 0);
    }
    info.GetReturnValue().Set(t != nullptr);
}

// timerRef(id, refed): an unref'd timer does not keep the loop alive.
void
TimerRef(const FunctionCallbackInfo<Value> &info)
{
    Timer *t = TimerOf(info);
    if (t == nullptr)
        return;
    if (info[1]->IsTrue())
        uv_ref(reinterpret_cast<uv_handle_t *>(&t->handle));
    else
        uv_unref(reinterpret_cast<uv_handle_t *>(&t->handle));
}

void
TimerClear(const FunctionCallbackInfo<Value> &info)
{
    Timer *t = TimerOf(info);
    if (t == nullptr)
        return;
    t->world->timers.erase(t->id);
    TimerClose(t);
}

void
RunImmediates(uv_check_t *h)
{
    World *w = static_cast<World *>(h->data);
    // Immediates queued while these run wait for the next loop turn.
    std::deque<Immediate *> batch;
    batch.swap(w->immediates);
    w->refed_immediates = 0;
    // clearImmediate() from one of them still reaches the rest of the batch
    w->running = &batch;
    uv_check_stop(&w->check);
    uv_idle_stop(&w->idle);
    Isolate *isolate = w->engine->isolate;
    while (!batch.empty()) {
        Immediate *im = batch.front();
        batch.pop_front();
        if (im->fn.IsEmpty() || Doomed(w)) {
            delete im;
            continue;
        }
        v8::Isolate::Scope is(isolate);
        HandleScope hs(isolate);
        Local<Function> fn = im->fn.Get(isolate);
        Local<Array> args;
        if (!im->args.IsEmpty())
            args = im->args.Get(isolate);
        Realm *realm = im->realm;
        uint64_t call = im->call;
        delete im;
        RunCallback(w, realm, call, fn, args, "a setImmediate callback");
        // the callback may have freed the world (js_engine_free): stop here
        if (!w->active)
            break;
    }
    for (Immediate *im : batch)
        delete im;
    if (w->active)
        w->running = nullptr;
    if (!w->immediates.empty() && w->active) {
        uv_check_start(&w->check, RunImmediates);
        uv_idle_start(&w->idle, [](uv_idle_t *) {});
        ImmediatesRef(w);
    }
}

// immediateStart(fn, args|undefined) -> id
void
ImmediateStart(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    Realm *realm = RealmOfInfo(info);
    World *w = WorldOfRealm(realm);
    if (!info[0]->IsFunction())
        return;
    Immediate *im = new Immediate();
    im->realm = realm;
    im->id = w->next_id++;
    im->call = w->engine->current_call;
    im->fn.Reset(isolate, info[0].As<Function>());
    if (info[1]->IsArray())
        im->args.Reset(isolate, info[1].As<Array>());
    if (w->immediates.empty()) {
        uv_check_start(&w->check, RunImmediates);
        uv_idle_start(&w->idle, [](uv_idle_t *) {});
    }
    w->immediates.push_back(im);
    w->refed_immediates++;
    ImmediatesRef(w);
    info.GetReturnValue().Set((double)im->id);
}

// A queued immediate; *running says whether it is in the batch being run
// (those no longer count for the loop's ref).
Immediate *
ImmediateOf(const FunctionCallbackInfo<Value> &info, bool *running)
{
    Realm *realm = RealmOfInfo(info);
    World *w = WorldOfRealm(realm);
    uint32_t id = IdArg(info[0]);
    *running = false;
    for (Immediate *im : w->immediates)
        if (im->id == id && im->realm == realm && !im->fn.IsEmpty())
            return im;
    if (w->running != nullptr)
        for (Immediate *im : *w->running)
            if (im->id == id && im->realm == realm && !im->fn.IsEmpty()) {
                *running = true;
                return im;
            }
    return nullptr;
}

void
ImmediateUnref(World *w, Immediate *im)
{
    if (!im->refed)
        return;
    im->refed = false;
    w->refed_immediates--;
    ImmediatesRef(w);
}

void
ImmediateClear(const FunctionCallbackInfo<Value> &info)
{
    bool running;
    Immediate *im = ImmediateOf(info, &running);
    if (im == nullptr)
        return;
    if (!running)
        ImmediateUnref(WorldOfRealm(im->realm), im);
    im->fn.Reset();
    im->args.Reset();
}

// immediateRef(id, refed)
void
ImmediateRef(const FunctionCallbackInfo<Value> &info)
{
    bool running;
    Immediate *im = ImmediateOf(info, &running);
    if (im == nullptr)
        return;
    World *w = WorldOfRealm(im->realm);
    if (running) {
        im->refed = info[1]->IsTrue();
    } else if (!info[1]->IsTrue()) {
        ImmediateUnref(w, im);
    } else if (!im->refed) {
        im->refed = true;
        w->refed_immediates++;
        ImmediatesRef(w);
    }
}

// ticksQueued(): the realm's nextTick queue went from empty to not empty.
void
TicksQueued(const FunctionCallbackInfo<Value> &info)
{
    Realm *realm = RealmOfInfo(info);
    if (realm->ticks_queued)
        return;
    realm->ticks_queued = true;
    WorldOfRealm(realm)->tick_realms.push_back(realm);
}

// setRunTicks(fn): process.js's drain of this realm's nextTick queue.
void
SetRunTicks(const FunctionCallbackInfo<Value> &info)
{
    if (info[0]->IsFunction())
        RealmOfInfo(info)->run_ticks.Reset(info.GetIsolate(),
                                           info[0].As<Function>());
}

void
QueueMicrotask(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    if (!info[0]->IsFunction()) {
        isolate->ThrowException(
            v8::Exception::TypeError(String::NewFromUtf8Literal(
                isolate, "The \"callback\" argument must be a function")));
        return;
    }
    isolate->EnqueueMicrotask(info[0].As<Function>());
}

// define(object, name, value): a property made as Object.defineProperty
// makes the builtins' (writable, configurable, not enumerable).
void
Define(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    Local<Context> context = isolate->GetCurrentContext();
    if (!info[0]->IsObject() || !info[1]->IsName()) {
        isolate->ThrowException(
            v8::Exception::TypeError(String::NewFromUtf8Literal(
                isolate, "define(object, name, value)")));
        return;
    }
    bool ok;
    if (!info[0]
             .As<Object>()
             ->DefineOwnProperty(context, info[1].As<v8::Name>(), info[2],
                                 v8::DontEnum)
             .To(&ok))
        return;
    if (!ok)
        isolate->ThrowException(v8::Exception::TypeError(
            String::NewFromUtf8Literal(isolate, "Cannot redefine property")));
}

// write(level, text): one console line, to the log; a context's also to the
// client that owns the context (the engine's console hook).
void
ConsoleWrite(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    std::string level = jse::Utf8(isolate, info[0]);
    std::string text = jse::Utf8(isolate, info[1]);
    int fd = (level == "log" || level == "info" || level == "debug") ? 1 : 2;
    log_line(fd, level.c_str(), text.data(), text.size());
    Realm *realm = RealmOfInfo(info);
    js_engine *e = realm->engine;
    if (realm->id != 0 && e->hooks.console != nullptr)
        e->hooks.console(e->hooks.arg, realm->id, level.c_str(), text.data(),
                         text.size());
}

void
Now(const FunctionCallbackInfo<Value> &info)
{
    static const uint64_t start = uv_hrtime();
    info.GetReturnValue().Set((double)(uv_hrtime() - start) / 1e6);
}

void
HrTime(const FunctionCallbackInfo<Value> &info)
{
    info.GetReturnValue().Set((double)uv_hrtime());
}

bool
SetValue(Local<Context> context, Local<Object> obj, const char *name,
         Local<Value> value)
{
    Isolate *isolate = context->GetIsolate();
    return !value.IsEmpty() &&
           obj->Set(context, jse::Str(isolate, name, strlen(name)), value)
               .FromMaybe(false);
}

bool
SetFunction(Local<Context> context, Local<Object> obj, const char *name,
            v8::FunctionCallback cb, Local<Value> data)
{
    Local<Function> f;
    if (!Function::New(context, cb, data).ToLocal(&f))
        return false;
    f->SetName(jse::Str(context->GetIsolate(), name, strlen(name)));
    return SetValue(context, obj, name, f);
}

// process.env: NODE_ENV and the names the config lists in `env`, from the
// environment of the client that started the host (e->env); nothing else.
Local<Object>
EnvObject(Local<Context> context, js_engine *e)
{
    Isolate *isolate = context->GetIsolate();
    Local<Object> env = Object::New(isolate);
    for (const std::string &kv : e->env) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
            continue;
        std::string name = kv.substr(0, eq);
        bool listed = name == "NODE_ENV";
        for (const std::string &n : e->env_names)
            listed = listed || n == name;
        if (!listed)
            continue;
        Local<String> k = jse::Str(isolate, name);
        Local<String> v = jse::Str(isolate, kv.substr(eq + 1));
        if (k.IsEmpty() || v.IsEmpty() ||
            !env->Set(context, k, v).FromMaybe(false))
            return Local<Object>();
    }
    return env;
}

World *
WorldOfRealm(Realm *realm)
{
    return realm->engine->world;
}

void
PumpTick(uv_timer_t *t)
{
    World *w = static_cast<World *>(t->data);
    if (w->active)
        jse::PumpTasks(w->engine);
}

void
HandleClosed(uv_handle_t *h)
{
    World *w = static_cast<World *>(h->data);
    if (--w->open_handles == 0)
        delete w;
}

} // namespace

namespace jse
{

World *
WorldNew(js_engine *e)
{
    World *w = new World();
    w->engine = e;
    uv_check_init(e->loop, &w->check);
    uv_idle_init(e->loop, &w->idle);
    uv_timer_init(e->loop, &w->pump);
    w->check.data = w;
    w->idle.data = w;
    w->pump.data = w;
    w->open_handles = 3;
    w->active = true;
    // Polling is no reason to keep the loop alive; calls waiting on such a
    // task have their own deadline timer.
    uv_timer_start(&w->pump, PumpTick, 50, 50);
    uv_unref(reinterpret_cast<uv_handle_t *>(&w->pump));
    return w;
}

void
WorldClearRealm(World *w, Realm *realm)
{
    if (w == nullptr)
        return;
    for (auto it = w->timers.begin(); it != w->timers.end();) {
        if (realm == nullptr || it->second->realm == realm) {
            TimerClose(it->second);
            it = w->timers.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = w->tick_drops.begin(); it != w->tick_drops.end();) {
        if (realm == nullptr || *it == realm)
            it = w->tick_drops.erase(it);
        else
            ++it;
    }
    for (auto it = w->tick_realms.begin(); it != w->tick_realms.end();) {
        if (realm == nullptr || *it == realm) {
            (*it)->ticks_queued = false;
            it = w->tick_realms.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = w->immediates.begin(); it != w->immediates.end();) {
        if (realm == nullptr || (*it)->realm == realm) {
            if ((*it)->refed)
                w->refed_immediates--;
            delete *it;
            it = w->immediates.erase(it);
        } else {
            ++it;
        }
    }
    ImmediatesRef(w);
    // the batch being run skips them
    if (w->running != nullptr)
        for (Immediate *im : *w->running)
            if (realm == nullptr || im->realm == realm) {
                im->fn.Reset();
                im->args.Reset();
            }
}

bool
WorldRunTicks(World *w)
{
    if (w == nullptr)
        return true;
    js_engine *e = w->engine;
    Isolate *isolate = e->isolate;
    while (!w->tick_realms.empty()) {
        if (js_engine_doomed(e))
            return false;
        Realm *realm = w->tick_realms.front();
        w->tick_realms.erase(w->tick_realms.begin());
        realm->ticks_queued = false;
        if (realm->run_ticks.IsEmpty())
            continue;
        HandleScope hs(isolate);
        Local<Context> context = realm->context.Get(isolate);
        Context::Scope cs(context);
        Local<Function> fn = realm->run_ticks.Get(isolate);
        for (;;) {
            TryCatch tc(isolate);
            Local<Value> r;
            if (fn->Call(context, v8::Undefined(isolate), 0, nullptr)
                    .ToLocal(&r))
                break;
            if (tc.HasTerminated() || !tc.HasCaught()) {
                // The rest of its queue is dropped once the termination is
                // over (WorldDropTicks).
                if (!realm->ticks_dropped)
                    w->tick_drops.push_back(realm);
                realm->ticks_dropped = true;
                return false;
            }
            // As a throwing timer: logged, the call it belongs to fails, and
            // the queue goes on.
            LogException(isolate, context, "Uncaught", tc.Exception(),
                         tc.Message());
            if (e->current_call != 0)
                CallSettle(e, e->current_call, false, tc.Exception(),
                           tc.Message());
        }
    }
    return true;
}

void
WorldDropTicks(World *w)
{
    if (w == nullptr)
        return;
    Isolate *isolate = w->engine->isolate;
    std::vector<Realm *> list;
    list.swap(w->tick_drops);
    for (Realm *realm : list) {
        realm->ticks_dropped = false;
        if (realm->run_ticks.IsEmpty())
            continue;
        HandleScope hs(isolate);
        Local<Context> context = realm->context.Get(isolate);
        Context::Scope cs(context);
        Local<Value> argv[] = {v8::True(isolate)};
        TryCatch tc(isolate);
        Local<Value> r;
        if (!realm->run_ticks.Get(isolate)
                 ->Call(context, v8::Undefined(isolate), 1, argv)
                 .ToLocal(&r))
            continue; // nothing to do about it: the queue stays
    }
}

bool
WorldTicksPending(World *w)
{
    return w != nullptr && !w->tick_realms.empty();
}

void
WorldClose(World *w)
{
    WorldClearRealm(w, nullptr);
    w->active = false;
    uv_close(reinterpret_cast<uv_handle_t *>(&w->check), HandleClosed);
    uv_close(reinterpret_cast<uv_handle_t *>(&w->pump), HandleClosed);
    uv_close(reinterpret_cast<uv_handle_t *>(&w->idle), HandleClosed);
}

bool
WorldInstall(Realm *realm, Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Object> global = context->Global();
    Local<Value> data = External::New(isolate, realm);
    if (!SetFunction(context, global, "queueMicrotask", QueueMicrotask, data))
        return false;
    Local<Object> natives = Object::New(isolate);
    Local<Object> env = EnvObject(context, realm->engine);
    if (env.IsEmpty() ||
        !SetFunction(context, natives, "timerStart", TimerStart, data) ||
        !SetFunction(context, natives, "timerRefresh", TimerRefresh, data) ||
        !SetFunction(context, natives, "timerRef", TimerRef, data) ||
        !SetFunction(context, natives, "timerClear", TimerClear, data) ||
        !SetFunction(context, natives, "immediateStart", ImmediateStart,
                     data) ||
        !SetFunction(context, natives, "immediateRef", ImmediateRef, data) ||
        !SetFunction(context, natives, "immediateClear", ImmediateClear,
                     data) ||
        !SetFunction(context, natives, "ticksQueued", TicksQueued, data) ||
        !SetFunction(context, natives, "setRunTicks", SetRunTicks, data) ||
        !SetFunction(context, natives, "write", ConsoleWrite, data) ||
        !SetFunction(context, natives, "define", Define, data) ||
        !SetFunction(context, natives, "now", Now, data) ||
        !SetFunction(context, natives, "hrtime", HrTime, data) ||
        !SetValue(context, natives, "env", env) ||
        !SetValue(context, natives, "cwd", Str(isolate, realm->cwd)) ||
        !SetValue(context, natives, "pid",
                  v8::Integer::New(isolate, getpid())) ||
        !SetValue(context, natives, "arch",
                  String::NewFromUtf8Literal(isolate,
#if defined(__x86_64__)
                                             "x64"
#elif defined(__aarch64__)
                                             "arm64"
#else
                                             "unknown"
#endif
                                             )) ||
        !SetValue(
            context, natives, "v8",
            Str(isolate, v8::V8::GetVersion(), strlen(v8::V8::GetVersion()))))
        return false;
    // Each prelude is named jshost:world in stack traces, as they were when
    // they were one script.
    Local<Value> argv[] = {natives, global};
    Local<Value> r;
    for (const jsp::Source *src : {&jsp::kConsole, &jsp::kProcess,
                                   &jsp::kTimers, &jsp::kArrayFill, &jsp::kWeb})
        if (!RunPrelude(context, *src, "jshost:world", 2, argv, &r))
            return false;
    return true;
}

} // namespace jse
