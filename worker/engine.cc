// The worker's V8 isolate behind engine.h: global init, the isolate and its
// limits, config loading and validation, runs (calls, evals, context calls,
// loads) with first-settlement-wins, the deadline watchdog, stats.
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include <libplatform/libplatform.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "js_alloc.h"
#include "js_builtins.h"
#include "js_internal.h"
#include "js_value.h"

#include "../common/jshost_defs.h"

using v8::Array;
using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::Global;
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

namespace
{

constexpr size_t kMiB = 1024 * 1024;
// Headroom granted at the heap limit so the terminated run can unwind.
constexpr size_t kHeapGrant = 32 * kMiB;

std::unique_ptr<v8::Platform> g_platform;

// Wakes at the armed deadline and terminates the isolate; nothing else of V8
// is touched from this thread. Arming is a mutex, not a wake-up, unless the
// new deadline is earlier than the thread's next wake.
class Watchdog
{
  public:
    void Start(Isolate *isolate)
    {
        isolate_ = isolate;
        thread_ = std::thread([this] { Loop(); });
    }
    void Stop()
    {
        {
            std::lock_guard<std::mutex> l(mu_);
            stop_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable())
            thread_.join();
    }
    void Arm(uint64_t deadline_ns)
    {
        bool wake;
        {
            std::lock_guard<std::mutex> l(mu_);
            armed_ = true;
            fired_ = false;
            deadline_ = deadline_ns;
            wake = deadline_ns < wake_at_;
        }
        if (wake)
            cv_.notify_one();
    }
    // True when it fired since Arm() (and is armed no more).
    bool Fired()
    {
        std::lock_guard<std::mutex> l(mu_);
        return fired_;
    }
    // True when it fired since Arm().
    bool Disarm()
    {
        std::lock_guard<std::mutex> l(mu_);
        armed_ = false;
        bool f = fired_;
        fired_ = false;
        return f;
    }

  private:
    void Loop()
    {
        std::unique_lock<std::mutex> l(mu_);
        while (!stop_) {
            uint64_t now = uv_hrtime();
            if (armed_ && now >= deadline_) {
                isolate_->TerminateExecution();
                fired_ = true;
                armed_ = false;
                continue;
            }
            if (armed_) {
                wake_at_ = deadline_;
                cv_.wait_for(l, std::chrono::nanoseconds(deadline_ - now));
            } else {
                wake_at_ = UINT64_MAX;
                cv_.wait(l);
            }
            wake_at_ = 0;
        }
    }

    Isolate *isolate_ = nullptr;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool armed_ = false;
    bool fired_ = false;
    uint64_t deadline_ = 0;
    uint64_t wake_at_ = 0;
};

struct Fn {
    std::string name;
    Global<String> name_str;
    Global<Function> fn;
    int arity = 0;
};

} // namespace

namespace jse
{

// One call, eval, context call or load, from start to its single answer.
struct Run {
    js_engine *e = nullptr;
    uint64_t id = 0;
    js_done_cb cb = nullptr;
    void *arg = nullptr;
    Realm *realm = nullptr;
    std::string what; // for messages: "function 'x'", "eval 'id'"
    std::string name; // the function name (late-callback log)
    uint64_t deadline_ns = 0;
    uint32_t timeout_ms = 0;
    uv_timer_t timer; // started only when the run outlives its entry
    bool timer_on = false;
    bool settled = false;   // a settlement won (answer pending or given)
    bool completed = false; // the answer was given
    bool ok = false;
    Global<Value> value;
    Global<Message> message;
};

} // namespace jse

using jse::Entry;
using jse::Outcome;
using jse::Realm;
using jse::Run;

struct Rejection {
    Global<Promise> promise;
    Global<Value> value;
    uint64_t run = 0; // the run whose JS rejected it, if any
};

struct js_engine {
    uv_loop_t *loop = nullptr;
    Isolate *isolate = nullptr;
    v8::ArrayBuffer::Allocator *allocator = nullptr;
    Watchdog watchdog;
    jse::World *world = nullptr;
    Realm *main = nullptr;
    std::map<uint32_t, Realm *> contexts;
    uint32_t next_context = 1;
    std::string cwd;
    std::string config_path;

    Global<Object> exports;
    Global<Object> host; // {config: exports}, the `host` of every call's this
    Global<v8::ObjectTemplate> self_template; // every call's this: {name, host}
    Global<String> key_name, key_host;
    std::unordered_map<std::string, Fn> functions;
    std::vector<std::string> names;
    std::vector<const char *> name_ptrs;
    js_config config = {JSHOST_DEFAULT_WORKERS, JSHOST_DEFAULT_TIMEOUT_MS,
                        JSHOST_DEFAULT_MEMORY_MB, JSHOST_DEFAULT_LINGER_MS};
    uint32_t timeout_ms = JSHOST_DEFAULT_TIMEOUT_MS;
    uint32_t memory_mb = JSHOST_DEFAULT_MEMORY_MB;

    std::map<uint64_t, Run *> runs;
    uint64_t next_run = 1;
    std::deque<Run *> settled;
    std::vector<Rejection> rejections;
    msgpack_sbuffer *spare = nullptr; // a scratch buffer kept between runs

    int depth = 0;
    bool pumping = false;
    uint64_t current_run = 0;
    bool doomed = false;
    int heap_grants = 0;
    bool freeing = false;

    uint64_t calls = 0, errors = 0;
    uint64_t start_ns = 0;
};

// ---------------------------------------------------------------------------
// Small helpers shared with js_modules.cc and js_world.cc

namespace jse
{

Local<String>
Str(Isolate *isolate, const char *s, size_t len)
{
    if (len > (size_t)INT_MAX)
        return Local<String>();
    MaybeLocal<String> m = String::NewFromUtf8(
        isolate, s ? s : "", v8::NewStringType::kNormal, s ? (int)len : 0);
    Local<String> out;
    if (!m.ToLocal(&out))
        return Local<String>();
    return out;
}

Local<String>
Str(Isolate *isolate, const std::string &s)
{
    return Str(isolate, s.data(), s.size());
}

std::string
Utf8(Isolate *isolate, Local<Value> value)
{
    if (value.IsEmpty())
        return std::string();
    String::Utf8Value u(isolate, value);
    if (*u == nullptr)
        return std::string();
    return std::string(*u, u.length());
}

Realm *
RealmOf(Local<Context> context)
{
    return static_cast<Realm *>(
        context->GetAlignedPointerFromEmbedderData(kRealmSlot));
}

Isolate *
IsolateOf(js_engine *e)
{
    return e->isolate;
}
World *
WorldOf(js_engine *e)
{
    return e->world;
}
uv_loop_t *
LoopOf(js_engine *e)
{
    return e->loop;
}

uint64_t
DefaultDeadline(js_engine *e)
{
    return uv_hrtime() + (uint64_t)e->timeout_ms * 1000000ull;
}

void
WriteLine(int fd, const char *level, const char *text, size_t len)
{
    char ts[96];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (long)(now.tv_nsec / 1000000) % 1000);
    std::string line;
    line.reserve(len + 64);
    line += ts;
    line += " [";
    line += std::to_string((long)getpid());
    line += "] ";
    for (const char *l = level; *l; l++)
        line += (char)toupper((unsigned char)*l);
    line += ' ';
    // As common/log.c: continuation lines are indented, so every line that
    // starts with a timestamp starts an event.
    while (len > 0 && text[len - 1] == '\n')
        len--;
    for (size_t i = 0; i < len; i++) {
        line += text[i];
        if (text[i] == '\n')
            line += "  ";
    }
    line += '\n';
    // One write per line so lines of a pool's workers never interleave.
    const char *p = line.data();
    size_t left = line.size();
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
}

static std::string
StackOrString(Isolate *isolate, Local<Context> context, Local<Value> exception,
              Local<Message> message)
{
    TryCatch tc(isolate);
    std::string text;
    if (exception->IsObject()) {
        Local<Value> stack;
        if (exception.As<Object>()
                ->Get(context, String::NewFromUtf8Literal(isolate, "stack"))
                .ToLocal(&stack) &&
            stack->IsString())
            text = Utf8(isolate, stack);
    }
    if (text.empty()) {
        Local<String> s;
        if (exception->ToDetailString(context).ToLocal(&s))
            text = Utf8(isolate, s);
        if (!message.IsEmpty()) {
            std::string file = Utf8(isolate, message->GetScriptResourceName());
            int line = message->GetLineNumber(context).FromMaybe(0);
            text += "\n    at " + file + ":" + std::to_string(line);
        }
    }
    return text;
}

void
LogException(Isolate *isolate, Local<Context> context, const char *prefix,
             Local<Value> exception, Local<Message> message)
{
    std::string text = prefix;
    text += " ";
    text += StackOrString(isolate, context, exception, message);
    WriteLine(2, "error", text.data(), text.size());
}

// ---------------------------------------------------------------------------
// Entries into JS

Entry::Entry(js_engine *e, uint64_t deadline_ns)
    : e_(e), outer_(e->depth == 0), was_doomed_(e->doomed)
{
    e->depth++;
    if (outer_) {
        // One clock reading per macrotask: timers set during it count from the
        // same "now" (as in Node), so setTimeout(f, 0) after setTimeout(g, 10)
        // still fires first however long the JS in between takes; and a
        // loop whose clock went stale outside a turn does not fire them early.
        uv_update_time(e->loop);
        e->watchdog.Arm(deadline_ns);
    }
}

Entry::~Entry()
{
    Leave();
}

static void ReportRejections(js_engine *e);

Outcome
Entry::Leave()
{
    if (left_)
        return kFinished;
    left_ = true;
    // Once the deadline has fired nothing more runs here: the deadline is
    // spent, and queued microtasks wait for the next entry and its deadline.
    bool spent = outer_ && (e_->doomed || e_->watchdog.Fired());
    // As Node: the nextTick queue, then the promise microtasks, again until
    // both are empty; all under this entry's deadline.
    while (outer_ && !spent) {
        if (!jse::WorldRunTicks(e_->world) || e_->doomed ||
            e_->watchdog.Fired())
            break;
        e_->isolate->PerformMicrotaskCheckpoint();
        if (!jse::WorldTicksPending(e_->world) || e_->doomed ||
            e_->watchdog.Fired())
            break;
    }
    // Logging reads the errors' stacks (getters, maybe): still under the
    // deadline.
    if (outer_ && !spent && !e_->rejections.empty() && !e_->watchdog.Fired())
        ReportRejections(e_);
    e_->depth--;
    if (!outer_)
        return kFinished;
    bool fired = e_->watchdog.Disarm();
    bool oom = e_->doomed && !was_doomed_;
    // A termination requested while the run was ending would hit the next
    // entry: clear it whatever it met.
    if (fired || oom)
        e_->isolate->CancelTerminateExecution();
    if (fired && !e_->doomed)
        jse::WorldDropTicks(e_->world);
    if (oom)
        e_->rejections.clear();
    if (oom)
        return kOutOfMemory;
    if (fired)
        return kTimedOut;
    return kFinished;
}

} // namespace jse

// ---------------------------------------------------------------------------
// Errors

static char *
Dup(const std::string &s)
{
    return strdup(s.c_str());
}

static void ErrorSet(struct js_error *err, enum proto_errtype type,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
ErrorSet(struct js_error *err, enum proto_errtype type, const char *fmt, ...)
{
    if (err == nullptr)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    js_error_free(err);
    err->type = type;
    err->message = strdup(buf);
}

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

static bool
GetString(Isolate *isolate, Local<Context> context, Local<Object> obj,
          const char *key, std::string *out)
{
    Local<Value> v;
    Local<String> k;
    if (!String::NewFromUtf8(isolate, key).ToLocal(&k))
        return false;
    if (!obj->Get(context, k).ToLocal(&v) || v->IsUndefined() || v->IsNull())
        return false;
    if (!v->IsString()) {
        Local<String> s;
        if (!v->ToString(context).ToLocal(&s))
            return false;
        v = s;
    }
    *out = jse::Utf8(isolate, v);
    return true;
}

// A JS exception as a js_error: an Error (or an error-like object) keeps
// name, message and stack; any other value is an Error whose message is its
// string form. Position from `message` (or where the error was made).
static void
ErrorFromException(Isolate *isolate, Local<Context> context,
                   Local<Value> exception, Local<Message> message,
                   enum proto_errtype type, struct js_error *out)
{
    TryCatch tc(isolate);
    std::string name = "Error", text, stack;
    bool have_stack = false;
    bool errorish = exception->IsNativeError();
    if (!errorish && exception->IsObject()) {
        Local<Object> o = exception.As<Object>();
        std::string tmp;
        errorish = GetString(isolate, context, o, "stack", &tmp) &&
                   GetString(isolate, context, o, "message", &tmp);
    }
    if (errorish) {
        Local<Object> o = exception.As<Object>();
        if (!GetString(isolate, context, o, "name", &name) || name.empty())
            name = "Error";
        GetString(isolate, context, o, "message", &text);
        have_stack = GetString(isolate, context, o, "stack", &stack);
    } else if (exception->IsString()) {
        text = jse::Utf8(isolate, exception);
    } else {
        Local<String> s;
        // Plain objects read better as JSON than "[object Object]".
        if (exception->IsObject() && !exception->IsFunction() &&
            v8::JSON::Stringify(context, exception).ToLocal(&s))
            text = jse::Utf8(isolate, s);
        else if (exception->ToDetailString(context).ToLocal(&s))
            text = jse::Utf8(isolate, s);
        else
            text = "(unprintable value)";
    }
    tc.Reset();
    if (message.IsEmpty() && exception->IsObject())
        message = v8::Exception::CreateMessage(isolate, exception);
    std::string file;
    int line = 0, column = 0;
    if (!message.IsEmpty()) {
        file = jse::Utf8(isolate, message->GetScriptResourceName());
        line = message->GetLineNumber(context).FromMaybe(0);
        column = message->GetStartColumn(context).FromMaybe(-1) + 1;
    }
    if (!have_stack || stack.empty())
        stack = name + ": " + text;
    // A SyntaxError's stack has no frame: say where the code is wrong.
    if (!file.empty() && line > 0 &&
        stack.find("\n    at ") == std::string::npos)
        stack += "\n    at " + file + ":" + std::to_string(line) + ":" +
                 std::to_string(column);
    js_error_free(out);
    out->type = type;
    out->name = Dup(name);
    out->message = Dup(text);
    out->stack = Dup(stack);
    if (!file.empty())
        out->file = Dup(file);
    out->line = line;
    out->column = column;
}

// ---------------------------------------------------------------------------
// Runs

static void
RunClosed(uv_handle_t *h)
{
    delete static_cast<Run *>(h->data);
}

static void
RunComplete(Run *run, const char *value, size_t len,
            const struct js_error *error)
{
    js_engine *e = run->e;
    run->settled = true;
    run->completed = true;
    run->value.Reset();
    run->message.Reset();
    e->runs.erase(run->id);
    e->calls++;
    if (error != nullptr)
        e->errors++;
    for (auto it = e->settled.begin(); it != e->settled.end(); ++it) {
        if (*it == run) {
            e->settled.erase(it);
            break;
        }
    }
    js_done_cb cb = run->cb;
    void *arg = run->arg;
    if (run->timer_on) {
        uv_timer_stop(&run->timer);
        uv_close(reinterpret_cast<uv_handle_t *>(&run->timer), RunClosed);
    } else {
        delete run;
    }
    cb(arg, value, len, error);
}

static void RunFail(Run *run, enum proto_errtype type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
RunFail(Run *run, enum proto_errtype type, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    struct js_error err;
    memset(&err, 0, sizeof err);
    err.type = type;
    err.message = buf;
    RunComplete(run, nullptr, 0, &err);
}

static void
RunTimedOut(uv_timer_t *t)
{
    Run *run = static_cast<Run *>(t->data);
    if (run->settled)
        return;
    RunFail(run, PROTO_ERR_TIMEOUT, "%s did not finish within %u ms",
            run->what.c_str(), run->timeout_ms);
}

static Run *
RunNew(js_engine *e, Realm *realm, uint32_t timeout_ms, js_done_cb cb,
       void *arg)
{
    Run *run = new Run();
    run->e = e;
    run->id = e->next_run++;
    run->cb = cb;
    run->arg = arg;
    run->realm = realm;
    run->timeout_ms = timeout_ms ? timeout_ms : e->timeout_ms;
    run->deadline_ns = uv_hrtime() + (uint64_t)run->timeout_ms * 1000000ull;
    e->runs[run->id] = run;
    return run;
}

// A settlement from JS: the first wins, later ones are reported by the caller.
static bool
Settle(js_engine *e, uint64_t id, bool ok, Local<Value> value,
       Local<Message> message)
{
    auto it = e->runs.find(id);
    if (it == e->runs.end() || it->second->settled)
        return false;
    Run *run = it->second;
    run->settled = true;
    run->ok = ok;
    run->value.Reset(e->isolate, value);
    if (!message.IsEmpty())
        run->message.Reset(e->isolate, message);
    e->settled.push_back(run);
    return true;
}

// Ids, not pointers: each answer may end other runs (a run is freed when
// answered).
static std::vector<uint64_t>
RunIds(js_engine *e, Realm *only)
{
    std::vector<uint64_t> ids;
    for (auto &kv : e->runs)
        if (only == nullptr || kv.second->realm == only)
            ids.push_back(kv.first);
    return ids;
}

static Run *
RunById(js_engine *e, uint64_t id)
{
    auto it = e->runs.find(id);
    return it == e->runs.end() ? nullptr : it->second;
}

static void
FailAllMemory(js_engine *e)
{
    for (uint64_t id : RunIds(e, nullptr))
        if (Run *run = RunById(e, id))
            RunFail(run, PROTO_ERR_MEMORY,
                    "JavaScript heap limit of %u MiB reached; the worker will "
                    "be replaced",
                    e->memory_mb);
}

static msgpack_sbuffer *
TakeBuffer(js_engine *e)
{
    msgpack_sbuffer *sb = e->spare;
    e->spare = nullptr;
    if (sb == nullptr)
        sb = msgpack_sbuffer_new();
    else
        msgpack_sbuffer_clear(sb);
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

// Converts a settled run's value (under its deadline) and answers it.
static void
Finalize(js_engine *e, Run *run)
{
    if (run->completed)
        return;
    if (e->doomed) {
        FailAllMemory(e);
        return;
    }
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = run->realm->context.Get(isolate);
    Context::Scope cs(context);
    Local<Value> value = run->value.Get(isolate);
    Local<Message> message;
    if (!run->message.IsEmpty())
        message = run->message.Get(isolate);
    if (run->ok) {
        msgpack_sbuffer *sb = TakeBuffer(e);
        std::string why;
        jsv::Status st;
        Outcome out;
        struct js_error err;
        memset(&err, 0, sizeof err);
        {
            Entry en(e, run->deadline_ns);
            TryCatch tc(isolate);
            st = jsv::ToMsgpack(context, value, sb, &why);
            if (st == jsv::kException && tc.HasCaught() && !tc.HasTerminated())
                ErrorFromException(isolate, context, tc.Exception(),
                                   tc.Message(), PROTO_ERR_JS, &err);
            out = en.Leave();
        }
        if (out == jse::kOutOfMemory) {
            js_error_free(&err);
            GiveBuffer(e, sb);
            FailAllMemory(e);
            return;
        }
        if (st == jsv::kOk) {
            RunComplete(run, sb->data, sb->size, nullptr);
        } else if (out == jse::kTimedOut || st == jsv::kException) {
            if (err.type == PROTO_ERR_JS) {
                RunComplete(run, nullptr, 0, &err);
            } else {
                RunFail(run, PROTO_ERR_TIMEOUT,
                        "%s: converting the result passed the deadline of "
                        "%u ms",
                        run->what.c_str(), run->timeout_ms);
            }
        } else {
            RunFail(run, PROTO_ERR_INVALID_ARGUMENT,
                    "%s: the result cannot cross: %s", run->what.c_str(),
                    why.c_str());
        }
        js_error_free(&err);
        GiveBuffer(e, sb);
        return;
    }
    struct js_error err;
    memset(&err, 0, sizeof err);
    Outcome out;
    {
        // The failure came in time: reading its name and stack gets a short
        // grace even when the deadline is just past.
        uint64_t floor = uv_hrtime() + 50 * 1000000ull;
        Entry en(e, run->deadline_ns > floor ? run->deadline_ns : floor);
        ErrorFromException(isolate, context, value, message, PROTO_ERR_JS,
                           &err);
        out = en.Leave();
    }
    if (out == jse::kOutOfMemory) {
        js_error_free(&err);
        FailAllMemory(e);
        return;
    }
    RunComplete(run, nullptr, 0, &err);
    js_error_free(&err);
}

static void
DrainSettled(js_engine *e)
{
    while (!e->settled.empty()) {
        Run *run = e->settled.front();
        e->settled.pop_front();
        Finalize(e, run);
    }
}

// After an entry that served `run` (or none): a timeout fails that run, the
// heap limit fails them all; then settled runs are answered.
static void
AfterEntry(js_engine *e, Run *run, Outcome out, const char *what)
{
    uint64_t id = run != nullptr ? run->id : 0;
    if (out == jse::kOutOfMemory) {
        jse::WriteLine(2, "error",
                       "JavaScript heap limit reached; failing "
                       "every run, the worker must be replaced",
                       strlen("JavaScript heap limit reached; failing every "
                              "run, the worker must be replaced"));
        FailAllMemory(e);
        e->settled.clear();
        return;
    }
    if (out == jse::kTimedOut) {
        if (run != nullptr && !run->completed) {
            // Its settlement, if queued, is dropped: the deadline won.
            RunFail(run, PROTO_ERR_TIMEOUT,
                    "%s did not finish within %u ms (terminated)",
                    run->what.c_str(), run->timeout_ms);
        } else if (run == nullptr) {
            std::string msg =
                std::string(what) + " ran past its deadline and was terminated";
            jse::WriteLine(2, "error", msg.data(), msg.size());
        }
    }
    DrainSettled(e);
    if (id == 0)
        return;
    // Still unsettled after its synchronous part: the loop answers it at the
    // deadline (most runs finish before and never need a timer).
    auto it = e->runs.find(id);
    if (it == e->runs.end() || it->second->timer_on)
        return;
    run = it->second;
    uint64_t now = uv_hrtime();
    uint64_t left_ms = run->deadline_ns > now
                           ? (run->deadline_ns - now + 999999) / 1000000
                           : 0;
    uv_timer_init(e->loop, &run->timer);
    run->timer.data = run;
    run->timer_on = true;
    // The loop's clock may be stale (a run started outside a loop turn).
    uv_update_time(e->loop);
    uv_timer_start(&run->timer, RunTimedOut, left_ms, 0);
}

namespace jse
{
void
AfterMacrotask(js_engine *e, Outcome outcome, const char *what)
{
    AfterEntry(e, nullptr, outcome, what);
}
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
        TryCatch tc(isolate);
        // Bounded: a task may post another.
        for (int n = 0; n < 64 && !e->doomed; n++) {
            if (!v8::platform::PumpMessageLoop(g_platform.get(), isolate))
                break;
        }
        out = en.Leave();
    }
    e->pumping = false;
    AfterEntry(e, nullptr, out, "a V8 task");
}

uint64_t
CurrentRun(js_engine *e)
{
    return e->current_run;
}
void
SetCurrentRun(js_engine *e, uint64_t id)
{
    e->current_run = id;
}
void
FailRun(js_engine *e, uint64_t id, Local<Value> exception,
        Local<Message> message)
{
    Settle(e, id, false, exception, message);
}
} // namespace jse

// Marks the run whose JS is about to execute, for the timers it makes.
class CurrentRunScope
{
  public:
    CurrentRunScope(js_engine *e, uint64_t id) : e_(e), prev_(e->current_run)
    {
        e->current_run = id;
    }
    ~CurrentRunScope()
    {
        e_->current_run = prev_;
    }

  private:
    js_engine *e_;
    uint64_t prev_;
};

static js_engine *
EngineOf(Isolate *isolate)
{
    return static_cast<js_engine *>(isolate->GetData(0));
}

// Closures made in JS (cheap) carry the run's id to one native per realm:
// settle(kind, id, name, arity, a, b) with kind 0 = cb(a, b), 1 = the promise
// fulfilled with a, 2 = rejected with a.
const char kGlueSource[] = R"JS(
(function (settle) {
'use strict';
const apply = Reflect.apply, then = Promise.prototype.then;
return [
  (id, name, arity) => (err, result) => settle(0, id, name, arity, err, result),
  (p, id, name, arity) => {
    apply(then, p, [(v) => settle(1, id, name, arity, v),
                    (e) => settle(2, id, name, arity, e)]);
  },
];
})
)JS";

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
        bool won = failed ? Settle(e, id, false, err, Local<Message>())
                          : Settle(e, id, true, info[5], Local<Message>());
        if (!won) {
            std::string msg = "late callback for '" +
                              jse::Utf8(isolate, info[2]) + "' ignored";
            jse::WriteLine(2, "warn", msg.data(), msg.size());
        }
        return;
    }
    bool ok = kind == 1;
    // An async function that takes cb resolves with undefined when it
    // returns; its answer is the cb's.
    if (ok && arity >= 2 && info[4]->IsUndefined())
        return;
    if (!Settle(e, id, ok, info[4], Local<Message>())) {
        std::string msg =
            "late result for '" + jse::Utf8(isolate, info[2]) + "' ignored";
        jse::WriteLine(2, "warn", msg.data(), msg.size());
    }
}

static bool
GlueInstall(Realm *realm, Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Function> settle;
    v8::ScriptOrigin origin(isolate,
                            String::NewFromUtf8Literal(isolate, "jshost:runs"));
    v8::ScriptCompiler::Source source(
        String::NewFromUtf8Literal(isolate, kGlueSource), origin);
    Local<v8::Script> script;
    Local<Value> factory, pair, a, b;
    if (!Function::New(context, SettleFromJs).ToLocal(&settle))
        return false;
    Local<Value> argv[] = {settle};
    if (!v8::ScriptCompiler::Compile(context, &source).ToLocal(&script) ||
        !script->Run(context).ToLocal(&factory) || !factory->IsFunction() ||
        !factory.As<Function>()
             ->Call(context, v8::Undefined(isolate), 1, argv)
             .ToLocal(&pair) ||
        !pair->IsArray() || !pair.As<Array>()->Get(context, 0).ToLocal(&a) ||
        !pair.As<Array>()->Get(context, 1).ToLocal(&b) || !a->IsFunction() ||
        !b->IsFunction())
        return false;
    realm->make_cb.Reset(isolate, a.As<Function>());
    realm->await_run.Reset(isolate, b.As<Function>());
    return true;
}

static Local<Value>
RunName(Isolate *isolate, Run *run)
{
    Local<String> s =
        jse::Str(isolate, run->name.empty() ? run->what : run->name);
    if (s.IsEmpty())
        return v8::Undefined(isolate);
    return s;
}

// Waits for `promise` on behalf of run.
static bool
AwaitPromise(js_engine *e, Run *run, Local<Context> context,
             Local<Promise> promise, int arity)
{
    Isolate *isolate = e->isolate;
    Local<Value> argv[] = {promise, v8::Number::New(isolate, (double)run->id),
                           RunName(isolate, run), Integer::New(isolate, arity)};
    Local<Value> r;
    return run->realm->await_run.Get(isolate)
        ->Call(context, v8::Undefined(isolate), 4, argv)
        .ToLocal(&r);
}

// The value of a script or a function: promises are awaited; anything else
// settles now.
static void
SettleWith(js_engine *e, Run *run, Local<Context> context, TryCatch &tc,
           MaybeLocal<Value> result, int arity, bool plain_return_counts)
{
    Local<Value> v;
    if (!result.ToLocal(&v)) {
        if (tc.HasCaught() && !tc.HasTerminated())
            Settle(e, run->id, false, tc.Exception(), tc.Message());
        return;
    }
    if (v->IsPromise()) {
        if (!AwaitPromise(e, run, context, v.As<Promise>(), arity) &&
            tc.HasCaught() && !tc.HasTerminated())
            Settle(e, run->id, false, tc.Exception(), tc.Message());
        return;
    }
    if (plain_return_counts)
        Settle(e, run->id, true, v, Local<Message>());
}

// ---------------------------------------------------------------------------
// Isolate callbacks

static size_t
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

static void
OnPromiseReject(v8::PromiseRejectMessage msg)
{
    Local<Promise> promise = msg.GetPromise();
    Isolate *isolate = promise->GetIsolate();
    js_engine *e = EngineOf(isolate);
    if (e == nullptr)
        return;
    if (msg.GetEvent() == v8::kPromiseRejectWithNoHandler) {
        Rejection r;
        r.promise.Reset(isolate, promise);
        Local<Value> v = msg.GetValue();
        if (!v.IsEmpty())
            r.value.Reset(isolate, v);
        r.run = e->current_run;
        e->rejections.push_back(std::move(r));
    } else if (msg.GetEvent() == v8::kPromiseHandlerAddedAfterReject) {
        for (auto it = e->rejections.begin(); it != e->rejections.end(); ++it) {
            if (it->promise.Get(isolate) == promise) {
                e->rejections.erase(it);
                break;
            }
        }
    }
}

namespace jse
{
static void
ReportRejections(js_engine *e)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    std::vector<Rejection> list;
    list.swap(e->rejections);
    for (Rejection &r : list) {
        Local<Promise> p = r.promise.Get(isolate);
        Local<Context> context;
        if (!p->GetCreationContext().ToLocal(&context))
            continue;
        Context::Scope cs(context);
        Local<Value> v = r.value.IsEmpty()
                             ? Local<Value>(v8::Undefined(isolate))
                             : r.value.Get(isolate);
        LogException(isolate, context, "Unhandled promise rejection:", v,
                     Local<Message>());
        // The run it happened in, still waiting, fails with it.
        if (r.run != 0)
            Settle(e, r.run, false, v, Local<Message>());
    }
}
} // namespace jse

static void
OnMessage(Local<Message> message, Local<Value> exception)
{
    Isolate *isolate = message->GetIsolate();
    HandleScope hs(isolate);
    Local<Context> context = isolate->GetCurrentContext();
    if (context.IsEmpty())
        return;
    jse::LogException(isolate, context, "Uncaught", exception, message);
    // Thrown by a microtask of a waiting run: that run fails with it.
    js_engine *e = EngineOf(isolate);
    if (e != nullptr && e->current_run != 0)
        Settle(e, e->current_run, false, exception, message);
}

// ---------------------------------------------------------------------------
// Realms

static void RealmFree(js_engine *e, Realm *realm);

static Realm *
RealmNew(js_engine *e, uint32_t id, const std::string &cwd, bool global_require,
         struct js_error *err)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = Context::New(isolate);
    if (context.IsEmpty()) {
        ErrorSet(err, PROTO_ERR_MEMORY, "cannot create a V8 context");
        return nullptr;
    }
    Realm *realm = new Realm();
    realm->engine = e;
    realm->id = id;
    realm->cwd = cwd;
    realm->context.Reset(isolate, context);
    context->SetAlignedPointerInEmbedderData(jse::kRealmSlot, realm);
    Context::Scope cs(context);
    bool ok;
    Outcome out;
    {
        Entry en(e, jse::DefaultDeadline(e));
        TryCatch tc(isolate);
        ok = jsb::Install(context) && GlueInstall(realm, context) &&
             jse::WorldInstall(realm, context) &&
             jse::ModulesInstall(realm, context, global_require);
        if (!ok && tc.HasCaught() && !tc.HasTerminated())
            ErrorFromException(isolate, context, tc.Exception(), tc.Message(),
                               PROTO_ERR_JS, err);
        out = en.Leave();
    }
    if (!ok || out != jse::kFinished) {
        if (err != nullptr && err->message == nullptr)
            ErrorSet(err, PROTO_ERR_MEMORY, "cannot set up a V8 context");
        RealmFree(e, realm);
        return nullptr;
    }
    return realm;
}

static void
RealmFree(js_engine *e, Realm *realm)
{
    if (realm == nullptr)
        return;
    jse::WorldClearRealm(e->world, realm);
    realm->esm.clear();
    realm->esm_synthetic.clear();
    realm->loader.Reset();
    realm->make_cb.Reset();
    realm->await_run.Reset();
    realm->run_ticks.Reset();
    realm->context.Reset();
    delete realm;
}

// ---------------------------------------------------------------------------
// Config

static const char *
TypeName(Local<Value> v)
{
    if (v->IsUndefined())
        return "undefined";
    if (v->IsNull())
        return "null";
    if (v->IsFunction())
        return "a function";
    if (v->IsArray())
        return "an array";
    if (v->IsString())
        return "a string";
    if (v->IsNumber())
        return "a number";
    if (v->IsBoolean())
        return "a boolean";
    if (v->IsObject())
        return "an object";
    return "a primitive";
}

static int ConfigFail(struct js_error *err, const std::string &file,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
ConfigFail(struct js_error *err, const std::string &file, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    js_error_free(err);
    err->type = PROTO_ERR_CONFIG;
    err->message = strdup(buf);
    err->file = Dup(file);
    return -EINVAL;
}

// A setting: absent, or a positive integer that fits uint32.
static int
ReadSetting(Isolate *isolate, Local<Context> context, Local<Object> exports,
            const char *key, uint32_t *out, const std::string &file,
            struct js_error *err)
{
    Local<Value> v;
    if (!exports->Get(context, jse::Str(isolate, key, strlen(key))).ToLocal(&v))
        return ConfigFail(err, file, "reading `%s` of the config threw", key);
    if (v->IsUndefined())
        return 0;
    if (!v->IsNumber()) {
        return ConfigFail(err, file,
                          "config setting `%s` must be a positive integer, "
                          "got %s",
                          key, TypeName(v));
    }
    double d = v.As<v8::Number>()->Value();
    if (!(d >= 1 && d <= (double)UINT32_MAX && std::floor(d) == d))
        return ConfigFail(err, file,
                          "config setting `%s` must be a positive integer, "
                          "got %g",
                          key, d);
    *out = (uint32_t)d;
    return 0;
}

static bool
IsSetting(const std::string &k)
{
    return k == "functions" || k == "workers" || k == "timeout" ||
           k == "memory" || k == "linger";
}

static int
ConfigFromException(Isolate *isolate, Local<Context> context, TryCatch &tc,
                    const std::string &path, struct js_error *err)
{
    if (!tc.HasCaught() || tc.HasTerminated())
        return ConfigFail(err, path, "loading the config was terminated");
    ErrorFromException(isolate, context, tc.Exception(), tc.Message(),
                       PROTO_ERR_CONFIG, err);
    std::string where = err->file ? err->file : path;
    std::string msg = std::string(err->name ? err->name : "Error") + ": " +
                      (err->message ? err->message : "");
    if (err->line > 0)
        msg = where + ":" + std::to_string(err->line) + ":" +
              std::to_string(err->column) + ": " + msg;
    else
        msg = where + ": " + msg;
    free(err->message);
    err->message = Dup(msg);
    if (err->file == nullptr)
        err->file = Dup(path);
    return -EINVAL;
}

static int
LoadConfig(js_engine *e, const std::string &path, struct js_error *err)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = e->main->context.Get(isolate);
    Context::Scope cs(context);
    Local<Value> exv;
    Outcome out;
    int rc = 0;
    {
        Entry en(e, jse::DefaultDeadline(e));
        TryCatch tc(isolate);
        MaybeLocal<Value> m = jse::ModulesLoadConfig(e->main, context, path);
        if (!m.ToLocal(&exv))
            rc = ConfigFromException(isolate, context, tc, path, err);
        out = en.Leave();
    }
    if (out == jse::kOutOfMemory)
        return ConfigFail(err, path,
                          "loading the config reached the heap limit of %u MiB",
                          e->memory_mb);
    if (out == jse::kTimedOut)
        return ConfigFail(err, path,
                          "loading the config did not finish within %u ms",
                          e->timeout_ms);
    if (rc != 0)
        return rc;
    if (!exv->IsObject() || exv->IsFunction() || exv->IsArray())
        return ConfigFail(err, path,
                          "the config must export an object "
                          "({functions: {...}}), got %s",
                          TypeName(exv));
    Local<Object> exports = exv.As<Object>();
    TryCatch tc(isolate);
    Entry en(e, jse::DefaultDeadline(e));
    Local<Value> fv;
    if (!exports->Get(context, String::NewFromUtf8Literal(isolate, "functions"))
             .ToLocal(&fv))
        return ConfigFromException(isolate, context, tc, path, err);
    if (fv->IsUndefined())
        return ConfigFail(err, path,
                          "the config exports no `functions` object");
    if (!fv->IsObject() || fv->IsFunction() || fv->IsArray())
        return ConfigFail(err, path,
                          "the config's `functions` must be an object, got %s",
                          TypeName(fv));
    Local<Object> fobj = fv.As<Object>();
    Local<Array> keys;
    if (!fobj->GetOwnPropertyNames(context).ToLocal(&keys))
        return ConfigFromException(isolate, context, tc, path, err);
    for (uint32_t i = 0; i < keys->Length(); i++) {
        Local<Value> k, v;
        if (!keys->Get(context, i).ToLocal(&k) ||
            !fobj->Get(context, k).ToLocal(&v))
            return ConfigFromException(isolate, context, tc, path, err);
        std::string name = jse::Utf8(isolate, k);
        if (!v->IsFunction())
            return ConfigFail(err, path,
                              "functions.%s is not a function (got %s)",
                              name.c_str(), TypeName(v));
        Local<Function> f = v.As<Function>();
        Fn fn;
        fn.name = name;
        fn.name_str.Reset(isolate, k->IsString() ? k.As<String>()
                                                 : jse::Str(isolate, name));
        fn.fn.Reset(isolate, f);
        Local<Value> len;
        if (f->Get(context, String::NewFromUtf8Literal(isolate, "length"))
                .ToLocal(&len) &&
            len->IsInt32())
            fn.arity = len.As<Integer>()->Value();
        e->names.push_back(name);
        e->functions.emplace(name, std::move(fn));
    }
    for (const std::string &n : e->names)
        e->name_ptrs.push_back(n.c_str());
    js_config c = e->config;
    if (ReadSetting(isolate, context, exports, "workers", &c.workers, path,
                    err) ||
        ReadSetting(isolate, context, exports, "timeout", &c.timeout_ms, path,
                    err) ||
        ReadSetting(isolate, context, exports, "memory", &c.memory_mb, path,
                    err) ||
        ReadSetting(isolate, context, exports, "linger", &c.linger_ms, path,
                    err))
        return -EINVAL;
    e->config = c;
    e->exports.Reset(isolate, exports);
    Local<Object> host = Object::New(isolate);
    if (!host->Set(context, String::NewFromUtf8Literal(isolate, "config"),
                   exports)
             .FromMaybe(false))
        return ConfigFromException(isolate, context, tc, path, err);
    e->host.Reset(isolate, host);
    e->self_template.Reset(isolate, v8::ObjectTemplate::New(isolate));
    e->key_name.Reset(isolate, String::NewFromUtf8Literal(isolate, "name"));
    e->key_host.Reset(isolate, String::NewFromUtf8Literal(isolate, "host"));
    return 0;
}

// ---------------------------------------------------------------------------
// The C interface

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

static void
EngineDestroy(js_engine *e)
{
    if (e->isolate != nullptr) {
        {
            v8::Isolate::Scope is(e->isolate);
            for (auto &kv : e->contexts)
                RealmFree(e, kv.second);
            e->contexts.clear();
            RealmFree(e, e->main);
            e->main = nullptr;
            if (e->world != nullptr)
                jse::WorldClose(e->world);
            e->world = nullptr;
            e->functions.clear();
            e->exports.Reset();
            e->host.Reset();
            e->self_template.Reset();
            e->key_name.Reset();
            e->key_host.Reset();
            e->rejections.clear();
        }
        e->watchdog.Stop();
        e->isolate->Dispose();
    }
    delete e->allocator;
    if (e->spare != nullptr)
        msgpack_sbuffer_free(e->spare);
    delete e;
}

static std::string
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
static std::string
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

static int
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

    std::string real;
    if (opts->config_path != nullptr) {
        char *r = realpath(opts->config_path, nullptr);
        if (r == nullptr) {
            int rc = -errno;
            ConfigFail(err, opts->config_path, "cannot open config %s: %s",
                       opts->config_path, strerror(errno));
            delete e;
            return rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES ? -EINVAL
                                                                    : rc;
        }
        real = r;
        free(r);
        struct stat st;
        if (stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            ConfigFail(err, real, "config %s is not a regular file",
                       real.c_str());
            delete e;
            return -EINVAL;
        }
        e->config_path = real;
    }

    // ArrayBuffers get a budget of their own, as large as the heap's.
    e->allocator = jsa::NewCapped((size_t)memory_mb * kMiB);
    Isolate::CreateParams params;
    params.array_buffer_allocator = e->allocator;
    params.constraints.ConfigureDefaultsFromHeapSize(0,
                                                     (size_t)memory_mb * kMiB);
    e->isolate = Isolate::New(params);
    if (e->isolate == nullptr) {
        ErrorSet(err, PROTO_ERR_MEMORY, "cannot create a V8 isolate");
        delete e->allocator;
        delete e;
        return -ENOMEM;
    }
    Isolate *isolate = e->isolate;
    isolate->SetData(0, e);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    isolate->AddNearHeapLimitCallback(NearHeapLimit, e);
    isolate->SetPromiseRejectCallback(OnPromiseReject);
    isolate->AddMessageListenerWithErrorLevel(
        OnMessage, Isolate::kMessageError | Isolate::kMessageWarning);
    isolate->SetCaptureStackTraceForUncaughtExceptions(true, 16);
    e->watchdog.Start(isolate);
    e->world = jse::WorldNew(e);

    int rc = 0;
    {
        v8::Isolate::Scope is(isolate);
        std::string root = real.empty() ? e->cwd : DirOf(real);
        e->main = RealmNew(e, 0, root, false, err);
        if (e->main == nullptr)
            rc = -ENOMEM;
        else if (!real.empty())
            rc = LoadConfig(e, real, err);
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
        ErrorSet(err, PROTO_ERR_HOST_UNAVAILABLE,
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
        ErrorSet(err, PROTO_ERR_MEMORY, "out of memory creating the engine");
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
    e->settled.clear();
    for (uint64_t id : RunIds(e, nullptr))
        if (Run *run = RunById(e, id))
            RunFail(run, PROTO_ERR_HOST_UNAVAILABLE, "the worker is stopping");
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

extern "C" int
js_engine_pack_extras(js_engine *e, msgpack_packer *pk)
{
    if (e->exports.IsEmpty() || e->doomed)
        return msgpack_pack_map(pk, 0);
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = e->main->context.Get(isolate);
    Context::Scope cs(context);
    Local<Object> exports = e->exports.Get(isolate);
    msgpack_sbuffer *sb = msgpack_sbuffer_new();
    msgpack_sbuffer *item = msgpack_sbuffer_new();
    size_t count = 0;
    {
        Entry en(e, jse::DefaultDeadline(e));
        TryCatch tc(isolate);
        Local<Array> keys;
        if (exports->GetOwnPropertyNames(context).ToLocal(&keys)) {
            msgpack_packer ipk;
            msgpack_packer_init(&ipk, item, msgpack_sbuffer_write);
            for (uint32_t i = 0; i < keys->Length(); i++) {
                Local<Value> k, v;
                if (!keys->Get(context, i).ToLocal(&k) ||
                    !exports->Get(context, k).ToLocal(&v))
                    break;
                std::string key = jse::Utf8(isolate, k);
                if (IsSetting(key) || v->IsFunction() || v->IsUndefined() ||
                    v->IsSymbol())
                    continue;
                msgpack_sbuffer_clear(item);
                std::string why;
                if (jsv::ToMsgpack(context, v, &ipk, &why) != jsv::kOk) {
                    std::string msg = "config extra `" + key +
                                      "` cannot cross and is left out: " + why;
                    jse::WriteLine(2, "warn", msg.data(), msg.size());
                    tc.Reset();
                    continue;
                }
                msgpack_packer spk;
                msgpack_packer_init(&spk, sb, msgpack_sbuffer_write);
                msgpack_pack_str_with_body(&spk, key.data(), key.size());
                msgpack_sbuffer_write(sb, item->data, item->size);
                count++;
            }
        }
        Outcome out = en.Leave();
        if (out != jse::kFinished) {
            if (out == jse::kOutOfMemory)
                FailAllMemory(e);
            count = 0;
            msgpack_sbuffer_clear(sb);
        }
    }
    int rc = msgpack_pack_map(pk, count);
    if (rc == 0 && sb->size > 0)
        rc = pk->callback(pk->data, sb->data, sb->size);
    msgpack_sbuffer_free(sb);
    msgpack_sbuffer_free(item);
    return rc == 0 ? 0 : -ENOMEM;
}

static bool
Unavailable(js_engine *e, js_done_cb cb, void *arg)
{
    if (!e->doomed && !e->freeing)
        return false;
    struct js_error err;
    memset(&err, 0, sizeof err);
    err.type = PROTO_ERR_HOST_UNAVAILABLE;
    err.message = const_cast<char *>(
        e->doomed ? "the worker reached its heap limit and is being replaced"
                  : "the worker is stopping");
    e->calls++;
    e->errors++;
    cb(arg, nullptr, 0, &err);
    return true;
}

static void
FailNow(js_engine *e, js_done_cb cb, void *arg, enum proto_errtype type,
        const std::string &msg)
{
    struct js_error err;
    memset(&err, 0, sizeof err);
    err.type = type;
    err.message = const_cast<char *>(msg.c_str());
    e->calls++;
    e->errors++;
    cb(arg, nullptr, 0, &err);
}

static int
CallImpl(js_engine *e, const char *name, size_t name_len,
         const msgpack_object *data, uint32_t timeout_ms, js_done_cb cb,
         void *arg)
{
    std::string fname(name, name_len);
    auto it = e->functions.find(fname);
    if (it == e->functions.end()) {
        FailNow(e, cb, arg, PROTO_ERR_NOT_FOUND,
                "no function '" + fname + "' in " +
                    (e->config_path.empty()
                         ? std::string("this worker (no config)")
                         : e->config_path));
        return 0;
    }
    Fn &fn = it->second;
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = e->main->context.Get(isolate);
    Context::Scope cs(context);
    Run *run = RunNew(e, e->main, timeout_ms, cb, arg);
    run->what = "function '" + fname + "'";
    run->name = fname;
    Outcome out;
    {
        Entry en(e, run->deadline_ns);
        CurrentRunScope current(e, run->id);
        TryCatch tc(isolate);
        Local<Value> argv[2];
        std::string why;
        jsv::Status st = jsv::kOk;
        if (data == nullptr)
            argv[0] = v8::Null(isolate);
        else
            st = jsv::FromMsgpack(context, *data, &argv[0], &why);
        if (st == jsv::kInvalid) {
            en.Leave();
            RunFail(run, PROTO_ERR_INVALID_ARGUMENT, "data: %s", why.c_str());
            return 0;
        }
        Local<Object> self;
        Local<Value> cbf;
        Local<Value> name = fn.name_str.Get(isolate);
        Local<Value> cbargv[] = {v8::Number::New(isolate, (double)run->id),
                                 name, Integer::New(isolate, fn.arity)};
        if (st == jsv::kOk &&
            e->self_template.Get(isolate)->NewInstance(context).ToLocal(
                &self) &&
            self->Set(context, e->key_name.Get(isolate), name)
                .FromMaybe(false) &&
            self->Set(context, e->key_host.Get(isolate), e->host.Get(isolate))
                .FromMaybe(false) &&
            e->main->make_cb.Get(isolate)
                ->Call(context, v8::Undefined(isolate), 3, cbargv)
                .ToLocal(&cbf)) {
            argv[1] = cbf;
            MaybeLocal<Value> r =
                fn.fn.Get(isolate)->Call(context, self, 2, argv);
            SettleWith(e, run, context, tc, r, fn.arity, fn.arity < 2);
        } else if (tc.HasCaught() && !tc.HasTerminated()) {
            Settle(e, run->id, false, tc.Exception(), tc.Message());
        }
        out = en.Leave();
    }
    AfterEntry(e, run, out, "");
    return 0;
}

extern "C" int
js_call(js_engine *e, const char *name, size_t name_len,
        const msgpack_object *data, uint32_t timeout_ms, js_done_cb cb,
        void *arg)
{
    if (Unavailable(e, cb, arg))
        return 0;
    try {
        return CallImpl(e, name, name_len, data, timeout_ms, cb, arg);
    } catch (...) {
        jse::WriteLine(2, "error", "out of memory in js_call", 24);
        return 0;
    }
}

extern "C" int
js_context_create(js_engine *e, const char *cwd, uint32_t *id,
                  struct js_error *err)
{
    if (err != nullptr)
        memset(err, 0, sizeof *err);
    if (e->doomed || e->freeing) {
        ErrorSet(err, PROTO_ERR_HOST_UNAVAILABLE, "the worker is stopping");
        return -EAGAIN;
    }
    try {
        v8::Isolate::Scope is(e->isolate);
        uint32_t nid = e->next_context++;
        if (nid == 0)
            nid = e->next_context++;
        Realm *realm =
            RealmNew(e, nid, cwd ? AbsoluteDir(cwd) : e->cwd, true, err);
        if (realm == nullptr)
            return -ENOMEM;
        e->contexts[nid] = realm;
        *id = nid;
        return 0;
    } catch (...) {
        ErrorSet(err, PROTO_ERR_MEMORY, "out of memory");
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
    // Runs still waiting in that context are answered now.
    for (uint64_t rid : RunIds(e, realm))
        if (Run *run = RunById(e, rid))
            RunFail(run, PROTO_ERR_NOT_FOUND, "context %u was destroyed", id);
    v8::Isolate::Scope is(e->isolate);
    RealmFree(e, realm);
    return 0;
}

static Realm *
FindContext(js_engine *e, uint32_t id, js_done_cb cb, void *arg)
{
    auto it = e->contexts.find(id);
    if (it != e->contexts.end())
        return it->second;
    FailNow(e, cb, arg, PROTO_ERR_NOT_FOUND,
            "no context " + std::to_string(id));
    return nullptr;
}

static int
EvalImpl(js_engine *e, Realm *realm, const std::string &source,
         const std::string &ident, uint32_t timeout_ms, js_done_cb cb,
         void *arg)
{
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Run *run = RunNew(e, realm, timeout_ms, cb, arg);
    run->what = "eval '" + ident + "'";
    Outcome out;
    {
        Entry en(e, run->deadline_ns);
        CurrentRunScope current(e, run->id);
        TryCatch tc(isolate);
        Local<String> src = jse::Str(isolate, source);
        Local<String> name = jse::Str(isolate, ident);
        if (src.IsEmpty() || name.IsEmpty()) {
            en.Leave();
            RunFail(run, PROTO_ERR_INVALID_ARGUMENT,
                    "source or identifier is too long");
            return 0;
        }
        v8::ScriptOrigin origin(isolate, name);
        v8::ScriptCompiler::Source s(src, origin);
        Local<v8::Script> script;
        if (!v8::ScriptCompiler::Compile(context, &s).ToLocal(&script)) {
            if (tc.HasCaught() && !tc.HasTerminated())
                Settle(e, run->id, false, tc.Exception(), tc.Message());
        } else {
            SettleWith(e, run, context, tc, script->Run(context), 0, true);
        }
        out = en.Leave();
    }
    AfterEntry(e, run, out, "");
    return 0;
}

extern "C" int
js_context_eval(js_engine *e, uint32_t id, const char *source,
                size_t source_len, const char *identifier,
                size_t identifier_len, uint32_t timeout_ms, js_done_cb cb,
                void *arg)
{
    if (Unavailable(e, cb, arg))
        return 0;
    Realm *realm = FindContext(e, id, cb, arg);
    if (realm == nullptr)
        return 0;
    try {
        std::string ident = identifier && identifier_len
                                ? std::string(identifier, identifier_len)
                                : std::string("<eval>");
        return EvalImpl(e, realm, std::string(source, source_len), ident,
                        timeout_ms, cb, arg);
    } catch (...) {
        return 0;
    }
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

static int
ContextCallImpl(js_engine *e, Realm *realm, const std::string &expr,
                const msgpack_object *args, uint32_t timeout_ms, js_done_cb cb,
                void *arg)
{
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Run *run = RunNew(e, realm, timeout_ms, cb, arg);
    run->what = "call '" + expr + "'";
    Outcome out;
    {
        Entry en(e, run->deadline_ns);
        CurrentRunScope current(e, run->id);
        TryCatch tc(isolate);
        std::vector<Local<Value>> argv;
        std::string why;
        if (args != nullptr && args->type != MSGPACK_OBJECT_NIL) {
            if (args->type != MSGPACK_OBJECT_ARRAY) {
                en.Leave();
                RunFail(run, PROTO_ERR_INVALID_ARGUMENT,
                        "args must be an array");
                return 0;
            }
            for (uint32_t i = 0; i < args->via.array.size; i++) {
                Local<Value> v;
                jsv::Status st =
                    jsv::FromMsgpack(context, args->via.array.ptr[i], &v, &why);
                if (st != jsv::kOk) {
                    en.Leave();
                    if (st == jsv::kInvalid)
                        RunFail(run, PROTO_ERR_INVALID_ARGUMENT, "args[%u]: %s",
                                i, why.c_str());
                    else
                        RunFail(run, PROTO_ERR_INVALID_ARGUMENT,
                                "args[%u] cannot be converted", i);
                    return 0;
                }
                argv.push_back(v);
            }
        }
        std::string recv_src, key;
        bool optional;
        SplitMember(expr, &recv_src, &key, &optional);
        Local<Value> self = context->Global(), fv;
        bool ok = false;
        v8::ScriptOrigin origin(isolate,
                                String::NewFromUtf8Literal(isolate, "<call>"));
        if (!recv_src.empty()) {
            v8::ScriptCompiler::Source s(jse::Str(isolate, recv_src), origin);
            Local<v8::Script> script;
            Local<Value> recv;
            if (v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) &&
                script->Run(context).ToLocal(&recv)) {
                Local<Object> o;
                if (optional && recv->IsNullOrUndefined()) {
                    // a?.f() is undefined when a is nullish
                    en.Leave();
                    Settle(e, run->id, true, v8::Undefined(isolate),
                           Local<Message>());
                    AfterEntry(e, run, jse::kFinished, "");
                    return 0;
                }
                if (recv->ToObject(context).ToLocal(&o) &&
                    o->Get(context, jse::Str(isolate, key)).ToLocal(&fv)) {
                    self = recv;
                    ok = true;
                }
            }
        } else {
            v8::ScriptCompiler::Source s(jse::Str(isolate, expr), origin);
            Local<v8::Script> script;
            ok = v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) &&
                 script->Run(context).ToLocal(&fv);
        }
        if (!ok) {
            if (tc.HasCaught() && !tc.HasTerminated())
                Settle(e, run->id, false, tc.Exception(), tc.Message());
        } else if (!fv->IsFunction()) {
            en.Leave();
            RunFail(run, PROTO_ERR_JS, "TypeError: %s is not a function",
                    expr.c_str());
            return 0;
        } else {
            MaybeLocal<Value> r = fv.As<Function>()->Call(
                context, self, (int)argv.size(), argv.data());
            SettleWith(e, run, context, tc, r, 0, true);
        }
        out = en.Leave();
    }
    AfterEntry(e, run, out, "");
    return 0;
}

extern "C" int
js_context_call(js_engine *e, uint32_t id, const char *expression,
                size_t expression_len, const msgpack_object *args,
                uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    if (Unavailable(e, cb, arg))
        return 0;
    Realm *realm = FindContext(e, id, cb, arg);
    if (realm == nullptr)
        return 0;
    try {
        return ContextCallImpl(e, realm,
                               std::string(expression, expression_len), args,
                               timeout_ms, cb, arg);
    } catch (...) {
        return 0;
    }
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

static int
LoadImpl(js_engine *e, Realm *realm, const msgpack_object *paths,
         uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    if (paths == nullptr || paths->type != MSGPACK_OBJECT_ARRAY) {
        FailNow(e, cb, arg, PROTO_ERR_INVALID_ARGUMENT,
                "paths must be an array of strings");
        return 0;
    }
    std::vector<std::string> files;
    for (uint32_t i = 0; i < paths->via.array.size; i++) {
        const msgpack_object &p = paths->via.array.ptr[i];
        if (p.type != MSGPACK_OBJECT_STR) {
            FailNow(e, cb, arg, PROTO_ERR_INVALID_ARGUMENT,
                    "paths[" + std::to_string(i) + "] is not a string");
            return 0;
        }
        std::string s(p.via.str.ptr, p.via.str.size);
        if (s.empty() || s[0] != '/')
            s = realm->cwd + "/" + s;
        files.push_back(s);
    }
    Isolate *isolate = e->isolate;
    v8::Isolate::Scope is(isolate);
    HandleScope hs(isolate);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    Run *run = RunNew(e, realm, timeout_ms, cb, arg);
    run->what = "load";
    Outcome out;
    {
        Entry en(e, run->deadline_ns);
        CurrentRunScope current(e, run->id);
        TryCatch tc(isolate);
        bool failed = false;
        for (const std::string &file : files) {
            std::string src;
            int errnum = 0;
            if (!ReadWholeFile(file, &src, &errnum)) {
                en.Leave();
                RunFail(run, PROTO_ERR_NOT_FOUND, "cannot read %s: %s",
                        file.c_str(), strerror(errnum));
                return 0;
            }
            v8::ScriptOrigin origin(isolate, jse::Str(isolate, file));
            v8::ScriptCompiler::Source s(jse::Str(isolate, src), origin);
            Local<v8::Script> script;
            Local<Value> v;
            if (!v8::ScriptCompiler::Compile(context, &s).ToLocal(&script) ||
                !script->Run(context).ToLocal(&v)) {
                if (tc.HasCaught() && !tc.HasTerminated())
                    Settle(e, run->id, false, tc.Exception(), tc.Message());
                failed = true;
                break;
            }
        }
        if (!failed)
            Settle(e, run->id, true, v8::Null(isolate), Local<Message>());
        out = en.Leave();
    }
    AfterEntry(e, run, out, "");
    return 0;
}

extern "C" int
js_context_load(js_engine *e, uint32_t id, const msgpack_object *paths,
                uint32_t timeout_ms, js_done_cb cb, void *arg)
{
    if (Unavailable(e, cb, arg))
        return 0;
    Realm *realm = FindContext(e, id, cb, arg);
    if (realm == nullptr)
        return 0;
    try {
        return LoadImpl(e, realm, paths, timeout_ms, cb, arg);
    } catch (...) {
        return 0;
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
    out->calls = e->calls;
    out->errors = e->errors;
    out->in_flight = e->runs.size();
    out->contexts = e->contexts.size();
    out->uptime_s = (double)(uv_hrtime() - e->start_ns) / 1e9;
}

extern "C" int
js_engine_doomed(const js_engine *e)
{
    return e->doomed ? 1 : 0;
}
