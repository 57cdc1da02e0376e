// The C surface of engine.h, and the isolate behind it: global init, the
// isolate and its heap limit, V8's platform tasks. Each function that starts
// a call hands it to js_call.cc and answers it itself if a C++ exception
// comes back: no exception crosses engine.h, and every call is answered once.
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <libplatform/libplatform.h>
#include <unistd.h>

#include "engine.h"
#include "js_alloc.h"
#include "js_internal.h"

extern char **environ;

using jse::Realm;
using v8::HandleScope;
using v8::Isolate;

namespace
{

constexpr size_t kMiB = 1024 * 1024;
// Headroom granted at the heap limit so the terminated call can unwind.
constexpr size_t kHeapGrant = 32 * kMiB;

std::unique_ptr<v8::Platform> g_platform;

size_t
NearHeapLimit(void *data, size_t current, size_t initial)
{
    (void)initial;
    js_engine *e = static_cast<js_engine *>(data);
    e->doomed = true;
    e->heap_grants++;
    e->isolate->TerminateExecution();
    // Room for the terminated JS to unwind; the worker is then replaced, so
    // the grant never needs to be given back. A builtin in the middle of one
    // huge allocation (Array.prototype.fill, join) does not stop at the
    // termination: the grant doubles each time so that its allocation fits
    // rather than V8 aborting the process with its fatal OOM.
    int shift = e->heap_grants - 1 < 7 ? e->heap_grants - 1 : 7;
    // A single allocation may already have pushed the heap past the limit
    // (V8 allocates it anyway): grant from what is in use, or V8 aborts.
    v8::HeapStatistics hs;
    e->isolate->GetHeapStatistics(&hs);
    size_t base = current;
    if (hs.total_heap_size() > base)
        base = hs.total_heap_size();
    return base + (kHeapGrant << shift);
}

void
EngineDestroy(js_engine *e)
{
    if (e->isolate != nullptr) {
        {
            v8::Isolate::Scope is(e->isolate);
            for (auto &kv : e->contexts)
                jse::RealmFree(e, kv.second);
            e->contexts.clear();
            jse::RealmFree(e, e->main);
            e->main = nullptr;
            if (e->world != nullptr)
                jse::WorldClose(e->world);
            e->world = nullptr;
            e->functions.clear();
            e->exports.Reset();
            e->rejections.clear();
            e->invokes.clear();
        }
        e->watchdog.Stop();
        e->isolate->Dispose();
    }
    delete e->allocator;
    if (e->spare != nullptr)
        msgpack_sbuffer_free(e->spare);
    delete e;
}

std::string
DirOf(const std::string &path)
{
    size_t slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    if (slash == 0)
        return "/";
    return path.substr(0, slash);
}

// require() resolves from absolute directories only.
std::string
AbsoluteDir(const char *dir)
{
    char *r = realpath(dir, nullptr);
    if (r != nullptr) {
        std::string out = r;
        free(r);
        return out;
    }
    if (dir[0] == '/')
        return dir;
    char buf[PATH_MAX];
    std::string base = getcwd(buf, sizeof buf) ? buf : "/";
    return base + "/" + dir;
}

int
EngineNew(uv_loop_t *loop, const struct js_engine_options *opts,
          uint32_t memory_mb, js_engine **out, struct js_error *err)
{
    js_engine *e = new (std::nothrow) js_engine();
    if (e == nullptr)
        return -ENOMEM;
    e->loop = loop;
    e->start_ns = uv_hrtime();
    e->memory_mb = memory_mb;
    e->timeout_ms =
        opts->timeout_ms ? opts->timeout_ms : JSHOST_DEFAULT_TIMEOUT_MS;
    if (opts->cwd != nullptr) {
        e->cwd = AbsoluteDir(opts->cwd);
    } else {
        char buf[PATH_MAX];
        e->cwd = getcwd(buf, sizeof buf) ? buf : "/";
    }
    for (const char *const *p = opts->env ? opts->env : environ;
         p != nullptr && *p != nullptr; p++)
        e->env.push_back(*p);
    if (opts->config_path != nullptr) {
        int rc = jse::ConfigResolve(opts->config_path, &e->config_path, err);
        if (rc == 0)
            rc = jse::ConfigPrescan(e, e->config_path, err);
        if (rc != 0) {
            delete e;
            return rc;
        }
    }
    const std::string &real = e->config_path;

    // ArrayBuffers get a budget of their own, as large as the heap's.
    e->allocator = jsa::NewCapped((size_t)memory_mb * kMiB);
    Isolate::CreateParams params;
    params.array_buffer_allocator = e->allocator;
    params.constraints.ConfigureDefaultsFromHeapSize(0,
                                                     (size_t)memory_mb * kMiB);
    e->isolate = Isolate::New(params);
    if (e->isolate == nullptr) {
        jse::ErrorSet(err, PROTO_ERR_MEMORY, "cannot create a V8 isolate");
        delete e->allocator;
        delete e;
        return -ENOMEM;
    }
    Isolate *isolate = e->isolate;
    isolate->SetData(0, e);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    isolate->AddNearHeapLimitCallback(NearHeapLimit, e);
    isolate->SetPromiseRejectCallback(jse::OnPromiseReject);
    isolate->AddMessageListenerWithErrorLevel(
        jse::OnUncaught, Isolate::kMessageError | Isolate::kMessageWarning);
    isolate->SetCaptureStackTraceForUncaughtExceptions(true, 16);
    e->watchdog.Start(isolate);

    int rc = 0;
    try {
        e->world = jse::WorldNew(e);
        v8::Isolate::Scope is(isolate);
        std::string root = real.empty() ? e->cwd : DirOf(real);
        e->main = jse::RealmNew(e, 0, root, false, err);
        if (e->main == nullptr)
            rc = -ENOMEM;
        else if (!real.empty())
            rc = jse::ConfigLoad(e, real, err);
    } catch (...) {
        EngineDestroy(e);
        throw;
    }
    if (rc != 0) {
        EngineDestroy(e);
        return rc;
    }
    if (!real.empty() && opts->timeout_ms == 0)
        e->timeout_ms = e->config.timeout_ms;
    else
        e->config.timeout_ms = e->timeout_ms;
    if (opts->memory_mb != 0)
        e->config.memory_mb = memory_mb;
    *out = e;
    return 0;
}

// The context `id`, or nullptr with the call answered NotFound.
Realm *
FindContext(jse::Call *call, uint32_t id)
{
    auto it = call->e->contexts.find(id);
    if (it != call->e->contexts.end())
        return it->second;
    jse::CallFail(call, PROTO_ERR_NOT_FOUND, "no context %u", id);
    return nullptr;
}

} // namespace

namespace jse
{

void
PumpTasks(js_engine *e)
{
    if (e->doomed || e->freeing || e->pumping || e->depth > 0)
        return;
    e->pumping = true;
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Outcome out;
    {
        Entry en(e, DefaultDeadline(e));
        v8::TryCatch tc(isolate);
        // Bounded: a task may post another.
        for (int n = 0; n < 64 && !e->doomed; n++) {
            if (!v8::platform::PumpMessageLoop(g_platform.get(), isolate))
                break;
        }
        out = en.Leave();
    }
    e->pumping = false;
    CallsAfterEntry(e, 0, out, "a V8 task");
}

} // namespace jse

// ---------------------------------------------------------------------------
// The engine

extern "C" void
js_engine_global_init(const char *argv0)
{
    if (g_platform)
        return;
    v8::V8::InitializeICUDefaultLocation(argv0 ? argv0 : "jshost-worker");
    g_platform = v8::platform::NewDefaultPlatform();
    v8::V8::InitializePlatform(g_platform.get());
    v8::V8::Initialize();
}

extern "C" int
js_engine_new(uv_loop_t *loop, const struct js_engine_options *opts,
              js_engine **out, struct js_error *err)
{
    *out = nullptr;
    struct js_error unused;
    if (err == nullptr)
        err = &unused;
    memset(err, 0, sizeof *err);
    if (!g_platform) {
        jse::ErrorSet(err, PROTO_ERR_HOST_UNAVAILABLE,
                      "js_engine_global_init was not called");
        return -EINVAL;
    }
    try {
        uint32_t mem =
            opts->memory_mb ? opts->memory_mb : JSHOST_DEFAULT_MEMORY_MB;
        js_engine *e = nullptr;
        int rc = EngineNew(loop, opts, mem, &e, err);
        if (rc != 0) {
            if (err == &unused)
                js_error_free(err);
            return rc;
        }
        // The heap limit is fixed when the isolate is made, before the config
        // can say it: a config asking for another one is loaded again.
        if (opts->memory_mb == 0 && e->config.memory_mb != mem) {
            uint32_t want = e->config.memory_mb;
            // Its handles close on the caller's loop; nothing there refers
            // back to the engine.
            js_engine_free(e);
            struct js_engine_options o = *opts;
            o.memory_mb = want;
            rc = EngineNew(loop, &o, want, &e, err);
            if (rc != 0) {
                if (err == &unused)
                    js_error_free(err);
                return rc;
            }
        }
        *out = e;
        return 0;
    } catch (...) {
        jse::ErrorSet(err, PROTO_ERR_MEMORY,
                      "out of memory creating the engine");
        if (err == &unused)
            js_error_free(err);
        return -ENOMEM;
    }
}

extern "C" void
js_engine_free(js_engine *e)
{
    if (e == nullptr)
        return;
    e->freeing = true;
    jse::CallsFailAll(e, nullptr, e->stop_type, e->stop_words);
    EngineDestroy(e);
}

extern "C" void
js_engine_config(const js_engine *e, struct js_config *out)
{
    *out = e->config;
}

extern "C" size_t
js_engine_functions(const js_engine *e, const char *const **names)
{
    *names = e->name_ptrs.empty() ? nullptr : e->name_ptrs.data();
    return e->name_ptrs.size();
}

extern "C" size_t
js_engine_loaded_files(const js_engine *e, const char *const **paths)
{
    *paths = e->loaded_ptrs.empty() ? nullptr : e->loaded_ptrs.data();
    return e->loaded_ptrs.size();
}

extern "C" size_t
js_engine_config_warnings(const js_engine *e, const char *const **warnings)
{
    *warnings = e->warning_ptrs.empty() ? nullptr : e->warning_ptrs.data();
    return e->warning_ptrs.size();
}

extern "C" int
js_engine_pack_extras(js_engine *e, msgpack_packer *pk)
{
    try {
        return jse::ConfigPackExtras(e, pk);
    } catch (...) {
        return -ENOMEM;
    }
}

extern "C" void
js_engine_stats(js_engine *e, struct js_stats *out)
{
    memset(out, 0, sizeof *out);
    v8::HeapStatistics hs;
    e->isolate->GetHeapStatistics(&hs);
    out->heap_used = hs.used_heap_size();
    out->heap_limit = hs.heap_size_limit();
    out->calls = e->answered;
    out->errors = e->failed;
    out->in_flight = e->calls.size();
    out->contexts = e->contexts.size();
    out->uptime_s = (double)(uv_hrtime() - e->start_ns) / 1e9;
}

extern "C" int
js_engine_doomed(const js_engine *e)
{
    return e->doomed ? 1 : 0;
}

extern "C" void
js_engine_test_fault(js_engine *e, unsigned n)
{
    e->fault_in = n;
}

// ---------------------------------------------------------------------------
// Errors

extern "C" void
js_error_free(struct js_error *err)
{
    if (err == nullptr)
        return;
    free(err->message);
    free(err->name);
    free(err->stack);
    free(err->file);
    memset(err, 0, sizeof *err);
}

extern "C" void
js_error_view(const struct js_error *err, struct proto_error *out)
{
    memset(out, 0, sizeof *out);
    out->type = err->type;
    out->message = err->message ? err->message : "";
    out->message_len = strlen(out->message);
    out->name = err->name;
    out->name_len = err->name ? strlen(err->name) : 0;
    out->stack = err->stack;
    out->stack_len = err->stack ? strlen(err->stack) : 0;
}

// ---------------------------------------------------------------------------
// Calls: CallStart registers the call (or answers it at once); js_call.cc
// runs it; an exception coming back is an allocation that failed: the call
// is answered HostUnavailable if it was not answered yet (CallAbandon).

extern "C" int
js_call(js_engine *e, const char *name, size_t name_len, struct proto_span data,
        uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    jse::Call *call = jse::CallStart(e, timeout_ms, cb, arg);
    if (call == nullptr)
        return 0;
    uint64_t id = call->id;
    try {
        jse::CallFunction(call, std::string(name, name_len), data);
    } catch (...) {
        jse::CallAbandon(e, id);
    }
    return 0;
}

extern "C" int
js_context_eval(js_engine *e, uint32_t id, const char *source,
                size_t source_len, const char *identifier,
                size_t identifier_len, uint32_t timeout_ms, unsigned flags,
                js_done_cb cb, void *arg)
{
    jse::Call *call = jse::CallStart(e, timeout_ms, cb, arg);
    if (call == nullptr)
        return 0;
    uint64_t call_id = call->id;
    call->as_string = (flags & JS_EVAL_STRING) != 0;
    try {
        if (Realm *realm = FindContext(call, id))
            jse::CallEval(call, realm, std::string(source, source_len),
                          identifier && identifier_len
                              ? std::string(identifier, identifier_len)
                              : std::string("<eval>"));
    } catch (...) {
        jse::CallAbandon(e, call_id);
    }
    return 0;
}

extern "C" int
js_context_call(js_engine *e, uint32_t id, const char *expression,
                size_t expression_len, struct proto_span args,
                uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    jse::Call *call = jse::CallStart(e, timeout_ms, cb, arg);
    if (call == nullptr)
        return 0;
    uint64_t call_id = call->id;
    try {
        if (Realm *realm = FindContext(call, id))
            jse::CallExpression(call, realm,
                                std::string(expression, expression_len), args);
    } catch (...) {
        jse::CallAbandon(e, call_id);
    }
    return 0;
}

extern "C" int
js_context_load(js_engine *e, uint32_t id, struct proto_span paths,
                uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    jse::Call *call = jse::CallStart(e, timeout_ms, cb, arg);
    if (call == nullptr)
        return 0;
    uint64_t call_id = call->id;
    try {
        if (Realm *realm = FindContext(call, id))
            jse::CallLoad(call, realm, paths);
    } catch (...) {
        jse::CallAbandon(e, call_id);
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Contexts

extern "C" int
js_context_create(js_engine *e, const char *cwd, uint32_t *id,
                  struct js_error *err)
{
    if (err != nullptr)
        memset(err, 0, sizeof *err);
    if (e->doomed || e->freeing) {
        jse::ErrorSet(err, PROTO_ERR_HOST_UNAVAILABLE,
                      "the worker is stopping");
        return -EAGAIN;
    }
    try {
        v8::Isolate::Scope is(e->isolate);
        uint32_t nid = e->next_context++;
        if (nid == 0)
            nid = e->next_context++;
        Realm *realm =
            jse::RealmNew(e, nid, cwd ? AbsoluteDir(cwd) : e->cwd, true, err);
        if (realm == nullptr)
            return -ENOMEM;
        try {
            e->contexts[nid] = realm;
        } catch (...) {
            jse::RealmFree(e, realm);
            throw;
        }
        *id = nid;
        return 0;
    } catch (...) {
        jse::ErrorSet(err, PROTO_ERR_MEMORY, "out of memory");
        return -ENOMEM;
    }
}

extern "C" int
js_context_destroy(js_engine *e, uint32_t id)
{
    auto it = e->contexts.find(id);
    if (it == e->contexts.end())
        return -ENOENT;
    Realm *realm = it->second;
    e->contexts.erase(it);
    // Calls still waiting in that context are answered now; its reverse
    // calls will never be.
    char msg[64];
    snprintf(msg, sizeof msg, "context %u was destroyed", id);
    jse::CallsFailAll(e, realm, PROTO_ERR_NOT_FOUND, msg);
    jse::InvokesForgetRealm(e, id);
    v8::Isolate::Scope is(e->isolate);
    jse::RealmFree(e, realm);
    return 0;
}

// ---------------------------------------------------------------------------
// Callables, reverse calls, cancellation

extern "C" void
js_engine_set_hooks(js_engine *e, const struct js_engine_hooks *hooks)
{
    e->hooks = *hooks;
    e->watchdog.SetPoll(hooks->poll != nullptr ? jse::PollInterrupt : nullptr,
                        e);
}

extern "C" int
js_invoke_settle(js_engine *e, uint32_t id, uint64_t peer,
                 struct proto_span error, struct proto_span result)
{
    try {
        return jse::InvokeAnswer(e, id, peer, error, result, nullptr);
    } catch (...) {
        // Out of memory: the promise waits on, under its call's deadline.
        return -ENOMEM;
    }
}

extern "C" void
js_invoke_fail_peer(js_engine *e, uint64_t peer, const char *message)
{
    try {
        jse::InvokesFailPeer(e, peer, message);
    } catch (...) {
    }
}

extern "C" void
js_context_release(js_engine *e, uint32_t id, const uint32_t *callbacks,
                   size_t n)
{
    auto it = e->contexts.find(id);
    if (it == e->contexts.end())
        return;
    for (size_t i = 0; i < n; i++)
        it->second->callables.erase(callbacks[i]);
}

extern "C" int
js_cancel(js_engine *e, void *arg)
{
    for (auto &kv : e->calls) {
        if (kv.second->arg == arg) {
            jse::CallCancel(kv.second);
            return 0;
        }
    }
    return -ENOENT;
}

extern "C" int
js_context_interrupt(js_engine *e, uint32_t id)
{
    Realm *realm = jse::RunningRealm(e);
    if (realm == nullptr || realm->id != id || id == 0)
        return 0;
    jse::Terminate(e, jse::kTermContext);
    return 1;
}

extern "C" void
js_engine_stop_cancels(js_engine *e)
{
    e->stop_type = PROTO_ERR_CANCELLED;
    e->stop_words = "cancelled: the host stopped or restarted, and the call "
                    "outlasted its grace";
}

extern "C" void
js_engine_stop(js_engine *e)
{
    e->stopping = true;
    jse::Terminate(e, jse::kTermStop);
}
