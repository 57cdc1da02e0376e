// The engine's insides, shared by its files (C++ only; the outside sees
// engine.h, whose top comment follows a call through them):
//   engine.cc     the C surface of engine.h; the isolate, its heap limit and
//                 V8's platform tasks
//   js_call.cc    calls: their start, settlement, cancellation and one answer
//   js_callable.cc callables (ext 2): the async functions they become, and
//                 the reverse calls (invoke) JS makes through them
//   js_entry.cc   entries into JS: the deadline watchdog, ticks and
//                 microtasks, uncaught errors and unhandled rejections, and
//                 the embedder's poll while JS runs long (termination)
//   js_realm.cc   realms (a v8::Context with jshost's globals); the preludes
//   js_config.cc  loading the config: its functions, settings and extras
//   js_error.cc   js_error from JS exceptions and from words; logged errors
//   js_modules.cc require() and ES modules
//   js_world.cc   console, timers, process, the nextTick queue
// js_value.h, js_builtins.h and js_alloc.h have their own headers (and
// js_value_internal.h, js_builtins_internal.h list the files behind them).
#ifndef JSHOST_JS_INTERNAL_H
#define JSHOST_JS_INTERNAL_H

#include <atomic>
#include <climits>
#include <cstdarg>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <uv.h>
#include <v8.h>

#include "engine.h"
#include "jshost_defs.h"
#include "js_preludes.h"

namespace jse
{

struct World;

// A synthetic module's value (its default export) and its other names.
struct Synthetic {
    v8::Global<v8::Value> value;
    std::vector<std::string> names;
};

// One v8::Context and what hangs off it: the config's (id 0) or a context's.
struct Realm {
    js_engine *engine = nullptr;
    uint32_t id = 0;
    std::string cwd; // where require() starts
    // What its JavaScript may read (real directory paths; js_modules.cc)
    std::vector<std::string> trees;
    v8::Global<v8::Context> context;
    v8::Global<v8::Object> loader;      // require.js's entry points
    v8::Global<v8::Function> read_file; // its readFile native
    // settle.js's two: (id, name, arity) => cb, and (promise, id, name,
    // arity) that settles the call with the promise
    v8::Global<v8::Function> make_callback;
    v8::Global<v8::Function> await_call;
    // ES modules of this realm: path -> module, and identity hash -> path
    std::unordered_map<std::string, v8::Global<v8::Module>> esm;
    std::unordered_multimap<int, std::string> esm_paths;
    std::unordered_map<std::string, Synthetic> esm_synthetic;
    // "referrer path\nspecifier" -> the key of the module it resolved to
    std::unordered_map<std::string, std::string> esm_links;
    // process.js's drain of process.nextTick's queue, and whether that queue
    // has work (the realm is then on the world's list).
    v8::Global<v8::Function> run_ticks;
    bool ticks_queued = false;
    bool ticks_dropped = false; // terminated in them: drop the rest
    // Callback ids of the callables set in this context (a context.call's
    // args) and not released: a callable whose id is not here rejects.
    std::unordered_set<uint32_t> callables;
};

// The embedder data slot of a context holding its Realm.
constexpr int kRealmSlot = 1;

// A function of the config.
struct Fn {
    std::string name;
    v8::Global<v8::String> name_str;
    v8::Global<v8::Function> fn;
    // Its calls' `this`, {name, host: {config}}: each call gets a shallow
    // copy (Object::Clone copies the shape whole; building it anew with two
    // Sets reshaped it twice, a tenth of a trivial call's time).
    v8::Global<v8::Object> self;
    int arity = 0;
};

// One call of the engine (js_call, js_context_eval, js_context_call or
// js_context_load) from its start to its one answer. Owned by e->calls while
// unanswered; CallDone erases it, then frees it (after its timer closes).
struct Call {
    js_engine *e = nullptr;
    uint64_t id = 0;
    js_done_cb cb = nullptr;
    void *arg = nullptr;
    Realm *realm = nullptr; // nullptr until known
    std::string what;       // for messages: "function 'x'", "eval 'id'"
    std::string name;       // the function's name (late-callback log)
    uint64_t deadline_ns = 0;
    uint32_t timeout_ms = 0;
    uv_timer_t timer; // started only when the call outlives its entry
    bool timer_on = false;
    bool settled = false;   // a settlement won; its answer is pending
    bool cancelled = false; // cancelled while JS ran: answered Cancelled
    bool ok = false;
    bool as_string = false;      // the result crosses as String(result)
    v8::Global<v8::Value> value; // the result, or what it failed with
    v8::Global<v8::Message> message;
};

// Who the callables (ext 2) decoded now belong to: a call (its callables
// expire when it is answered) or a context (until released or destroyed).
// Neither: a callable cannot cross there.
struct CallableOwner {
    uint64_t call = 0;
    uint32_t context = 0;
};

// A reverse call: JS called a callable; its promise waits for the answer.
struct Invoke {
    v8::Global<v8::Promise::Resolver> resolver;
    v8::Global<v8::Value> error; // made where JS called it: its stack
    uint64_t call = 0;           // the call whose JS called it (deadline)
    CallableOwner owner;         // the callable's: callables in the answer
    uint32_t realm = 0;          // where the promise lives
    uint64_t peer = 0;           // the embedder's connection it went out on
};

// Why JS was terminated other than by its deadline or the heap limit, the
// strongest reason winning.
enum Termination {
    kTermNone = 0,
    kTermCancel,  // the running call was cancelled
    kTermContext, // its context is being destroyed
    kTermStop,    // the worker is stopping
};

// A promise rejected with no handler (yet), reported when the entry ends.
struct Rejection {
    v8::Global<v8::Promise> promise;
    v8::Global<v8::Value> value;
    uint64_t call = 0; // the call whose JS rejected it, if any
};

// Wakes at the armed deadline and terminates the isolate; while polling is
// on, it also asks the isolate for an interrupt every kPollNs of one entry
// (the embedder then reads its sockets: a cancel must reach running JS).
// Nothing else of V8 is touched from its thread. Arming is a mutex, not a
// wake-up, unless the thread sleeps past the new deadline or poll.
class Watchdog
{
  public:
    static constexpr uint64_t kPollNs = 10 * 1000000ull;

    void Start(v8::Isolate *isolate);
    void Stop();
    // Polling: cb(isolate, data) as a V8 interrupt while an entry runs long.
    void SetPoll(v8::InterruptCallback cb, void *data);
    // now_ns: the uv_hrtime clock, to the millisecond.
    void Arm(uint64_t deadline_ns, uint64_t now_ns);
    // True when it fired since Arm().
    bool Fired();
    // Disarms; true when it fired since Arm().
    bool Disarm();

  private:
    void Loop();

    v8::Isolate *isolate_ = nullptr;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool armed_ = false;
    std::atomic<bool> fired_{false};
    uint64_t deadline_ = 0;
    uint64_t wake_at_ = 0;
    v8::InterruptCallback poll_cb_ = nullptr;
    void *poll_data_ = nullptr;
    uint64_t next_poll_ = 0;
};

// How an entry into JS ended. kTerminated: by the embedder's poll
// (js_engine->term_reason says why).
enum Outcome { kFinished, kTimedOut, kOutOfMemory, kTerminated };

// One entry into JS from the loop (a macrotask): arms the watchdog for
// `deadline_ns` (uv_hrtime clock) when outermost, and on Leave() runs the
// ticks and microtasks, disarms, and clears a termination so the next entry
// can run. Left by a C++ exception, it runs no JS (see ~Entry).
class Entry
{
  public:
    Entry(js_engine *e, uint64_t deadline_ns);
    ~Entry();
    Outcome Leave();

  private:
    js_engine *e_;
    bool outer_;
    bool left_ = false;
    bool was_doomed_;
    int uncaught_; // std::uncaught_exceptions() when entered
};

} // namespace jse

struct js_engine {
    uv_loop_t *loop = nullptr;
    v8::Isolate *isolate = nullptr;
    v8::ArrayBuffer::Allocator *allocator = nullptr;
    jse::Watchdog watchdog;
    jse::World *world = nullptr;
    jse::Realm *main = nullptr;
    std::map<uint32_t, jse::Realm *> contexts;
    uint32_t next_context = 1;
    std::string cwd;
    std::string config_path;
    // The config's `roots` (real paths) and `env` (names), read from its
    // source before it runs (ConfigPrescan); the environment process.env
    // takes those names from (the client's; js_engine_options.env).
    std::vector<std::string> roots;
    std::vector<std::string> roots_written; // as the config says them
    std::vector<std::string> env_names;
    std::vector<std::string> env;
    // V8's code cache of each prelude (by its jsp::Source), made when the
    // first realm ran it: later realms (contexts) skip parsing them.
    std::unordered_map<const void *, std::string> prelude_cache;

    v8::Global<v8::Object> exports;
    std::unordered_map<std::string, jse::Fn> functions;
    std::vector<std::string> names;
    std::vector<const char *> name_ptrs;
    // Files the config loaded, and what loading it warned about.
    std::vector<std::string> loaded, warnings;
    std::vector<const char *> loaded_ptrs, warning_ptrs;
    js_config config = {JSHOST_DEFAULT_WORKERS, JSHOST_DEFAULT_TIMEOUT_MS,
                        JSHOST_DEFAULT_MEMORY_MB, JSHOST_DEFAULT_LINGER_MS, -1};
    uint32_t timeout_ms = JSHOST_DEFAULT_TIMEOUT_MS;
    uint32_t memory_mb = JSHOST_DEFAULT_MEMORY_MB;

    js_engine_hooks hooks = {}; // the embedder's: invoke, poll, console
    std::map<uint64_t, jse::Call *> calls; // unanswered, by id
    uint64_t next_call = 1;
    std::deque<jse::Call *> settled; // settled, their answers not yet given
    std::vector<jse::Rejection> rejections;
    msgpack_sbuffer *spare = nullptr; // a scratch buffer kept between calls

    int depth = 0; // nested Entries
    bool pumping = false;
    uint64_t current_call = 0; // see CurrentCallScope
    bool doomed = false;       // the heap limit was reached
    bool stopping = false;     // js_engine_stop: no more calls
    // How calls a stop cuts short are answered (js_engine_stop_cancels).
    enum proto_errtype stop_type = PROTO_ERR_HOST_UNAVAILABLE;
    const char *stop_words = "the worker is stopping";
    bool polling = false;            // inside the embedder's poll
    int terminated = 0;              // jse::Termination asked during this entry
    int term_reason = 0;             // ...and of the entry that just ended
    std::vector<uint64_t> cancelled; // calls flagged cancelled, unanswered

    jse::CallableOwner callable_owner; // of callables decoded now
    std::unordered_map<uint32_t, jse::Invoke> invokes; // awaiting answers
    uint32_t next_invoke = 1;
    int heap_grants = 0;
    bool freeing = false;
    unsigned fault_in = 0; // js_engine_test_fault: throw at this conversion

    uint64_t answered = 0, failed = 0; // calls answered; of those, failed
    uint64_t start_ns = 0;
};

namespace jse
{

inline js_engine *
EngineOf(v8::Isolate *isolate)
{
    return static_cast<js_engine *>(isolate->GetData(0));
}

// Strings: V8 <-> std::string (UTF-8); an empty Local on failure.
inline v8::Local<v8::String>
Str(v8::Isolate *isolate, const char *s, size_t len)
{
    if (len > (size_t)INT_MAX)
        return v8::Local<v8::String>();
    v8::Local<v8::String> out;
    if (!v8::String::NewFromUtf8(isolate, s ? s : "",
                                 v8::NewStringType::kNormal, s ? (int)len : 0)
             .ToLocal(&out))
        return v8::Local<v8::String>();
    return out;
}

inline v8::Local<v8::String>
Str(v8::Isolate *isolate, const std::string &s)
{
    return Str(isolate, s.data(), s.size());
}

inline std::string
Utf8(v8::Isolate *isolate, v8::Local<v8::Value> value)
{
    if (value.IsEmpty())
        return std::string();
    v8::String::Utf8Value u(isolate, value);
    if (*u == nullptr)
        return std::string();
    return std::string(*u, u.length());
}

// The call whose JS is executing (e->current_call) for the scope's life:
// timers made meanwhile belong to it, and an uncaught error in them fails it.
class CurrentCallScope
{
  public:
    CurrentCallScope(js_engine *e, uint64_t id) : e_(e), prev_(e->current_call)
    {
        e->current_call = id;
    }
    ~CurrentCallScope()
    {
        e_->current_call = prev_;
    }

  private:
    js_engine *e_;
    uint64_t prev_;
};

// Callables decoded for the scope's life belong to `owner`.
class CallableScope
{
  public:
    CallableScope(js_engine *e, uint64_t call, uint32_t context)
        : e_(e), prev_(e->callable_owner)
    {
        e->callable_owner.call = call;
        e->callable_owner.context = context;
    }
    ~CallableScope()
    {
        e_->callable_owner = prev_;
    }

  private:
    js_engine *e_;
    CallableOwner prev_;
};

// --- js_call.cc: calls ----------------------------------------------------

// Registers a call and returns it; or answers cb at once (HostUnavailable:
// the worker is stopping, doomed, or out of memory) and returns nullptr.
Call *CallStart(js_engine *e, uint32_t timeout_ms, js_done_cb cb,
                void *arg) noexcept;
// Run a started call: functions[name](data, cb) in the config's realm; a
// script; expression(...args); files in order. Each answers the call, or
// leaves it settled or waiting. They may throw std::bad_alloc: then the
// caller hands the call's id to CallAbandon.
void CallFunction(Call *call, const std::string &name, proto_span data);
void CallEval(Call *call, Realm *realm, const std::string &source,
              const std::string &identifier);
void CallExpression(Call *call, Realm *realm, const std::string &expression,
                    proto_span args);
void CallLoad(Call *call, Realm *realm, proto_span paths);
// After a C++ exception: the call `id`, if still unanswered, is answered
// HostUnavailable.
void CallAbandon(js_engine *e, uint64_t id) noexcept;
// A settlement from JS (a result when ok, else what it failed with); the
// first one wins. False when the call is gone or already settled.
bool CallSettle(js_engine *e, uint64_t id, bool ok, v8::Local<v8::Value> value,
                v8::Local<v8::Message> message);
// After every entry into JS (for call `id`, or 0 for a timer, an immediate, a
// V8 task): a timeout fails that call, the heap limit fails every call; then
// settled calls are answered, and a call still waiting gets its deadline
// timer. `what` names a callless entry in the log.
void CallsAfterEntry(js_engine *e, uint64_t id, Outcome outcome,
                     const char *what);
// Answers with an error now.
void CallFail(Call *call, enum proto_errtype type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Fails every unanswered call (of one realm when `only` is given).
void CallsFailAll(js_engine *e, const Realm *only, enum proto_errtype type,
                  const char *message);
// Every call fails MemoryError: the heap limit was reached.
void CallsFailMemory(js_engine *e);
// Installs settle.js in a new realm.
bool CallSettleInstall(Realm *realm, v8::Local<v8::Context> context);
// Test hook (js_engine_test_fault): throws std::bad_alloc at the armed value
// conversion.
void CallFaultPoint(js_engine *e);
// The unanswered call `id`, or nullptr.
Call *CallById(js_engine *e, uint64_t id);
// Cancels a call: from the loop it is answered Cancelled now; from inside
// JS (the embedder's poll) it is flagged, its JS terminated if it is the one
// running, and answered as the entry ends.
void CallCancel(Call *call);
// Answers the calls flagged cancelled (noexcept: allocates nothing).
void CallsAnswerCancelled(js_engine *e) noexcept;

// --- js_callable.cc: callables and reverse calls ---------------------------

// The answer to reverse call `id` from `peer` (error: an error map, else the
// result; each one msgpack item, len 0 = none), or, with `fail` set, its
// failure in those words. -ENOENT when no such call waits for that peer.
// Runs JS: the promise's reactions.
int InvokeAnswer(js_engine *e, uint32_t id, uint64_t peer, proto_span error,
                 proto_span result, const char *fail);
// Every reverse call that went out on `peer` fails in those words.
void InvokesFailPeer(js_engine *e, uint64_t peer, const char *message);
// A context is going: its reverse calls are forgotten unanswered.
void InvokesForgetRealm(js_engine *e, uint32_t realm);

// --- js_entry.cc: entries into JS -----------------------------------------

// The engine-wide default deadline for JS not belonging to a call (timers).
uint64_t DefaultDeadline(js_engine *e);
// Terminates the running JS for `why` (from inside it: the embedder's poll);
// the entry then ends kTerminated. Nothing when no JS runs.
void Terminate(js_engine *e, Termination why);
// The realm whose JS runs now (from inside it), or nullptr.
Realm *RunningRealm(js_engine *e);
// The watchdog's interrupt while JS runs long: calls the embedder's poll.
void PollInterrupt(v8::Isolate *isolate, void *data);
// Isolate callbacks: an uncaught exception (logged; fails the current call)
// and promise rejections (the unhandled ones are reported when the entry
// ends, failing the call they were made in).
void OnUncaught(v8::Local<v8::Message> message, v8::Local<v8::Value> exception);
void OnPromiseReject(v8::PromiseRejectMessage msg);

// --- engine.cc ------------------------------------------------------------

// Runs V8's pending foreground tasks (a macrotask of their own).
void PumpTasks(js_engine *e);

// --- js_realm.cc: realms --------------------------------------------------

Realm *RealmOf(v8::Local<v8::Context> context);
// A context with jshost's globals (settle.js, the world, require() when
// global_require); nullptr with *err set on failure.
Realm *RealmNew(js_engine *e, uint32_t id, const std::string &cwd,
                bool global_require, struct js_error *err);
void RealmFree(js_engine *e, Realm *realm);
// Compiles an embedded prelude as a script named `origin` (the name its
// frames show in stack traces), runs it, and calls the function it evaluates
// to with argv; *result is what that returns. false with a JS exception
// pending (or terminated) on failure.
bool RunPrelude(v8::Local<v8::Context> context, const jsp::Source &source,
                const char *origin, int argc, v8::Local<v8::Value> argv[],
                v8::Local<v8::Value> *result);

// --- js_config.cc: the config ---------------------------------------------

// The real path of a config file; -EINVAL with *err a ConfigError when it
// cannot be opened or is not a regular file, another negative errno else.
int ConfigResolve(const char *path, std::string *real, struct js_error *err);
// Reads `roots` and `env` from the config's source before it runs (they
// decide what its loading may read and see); a ConfigError when they are
// not literal arrays of strings.
int ConfigPrescan(js_engine *e, const std::string &real, struct js_error *err);
// Loads the config at `real` into e->main: functions, settings, exports.
int ConfigLoad(js_engine *e, const std::string &real, struct js_error *err);
// Packs every export but the settings and functions, as a map.
int ConfigPackExtras(js_engine *e, msgpack_packer *pk);

// --- js_error.cc: errors --------------------------------------------------

// *err = {type, message}; any former content is freed. Nothing on NULL err.
void ErrorSet(struct js_error *err, enum proto_errtype type, const char *fmt,
              ...) __attribute__((format(printf, 3, 4)));
// vsnprintf into a malloc'd string; NULL when out of memory.
char *ErrorFormat(const char *fmt, va_list ap);
// A JS exception as a js_error of `type`: name, message, stack, position.
void ErrorFromException(v8::Isolate *isolate, v8::Local<v8::Context> context,
                        v8::Local<v8::Value> exception,
                        v8::Local<v8::Message> message, enum proto_errtype type,
                        struct js_error *out);
// A ConfigError naming `file`; returns -EINVAL.
int ErrorConfig(struct js_error *err, const std::string &file, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
// What loading the config threw (tc), as a ConfigError whose message starts
// "file:line:column: "; returns -EINVAL.
int ErrorConfigFromJs(v8::Isolate *isolate, v8::Local<v8::Context> context,
                      v8::TryCatch &tc, const std::string &path,
                      struct js_error *err);
// Error.prepareStackTrace's default: the stack without jshost's own frames
// (IsOwnScript), as Node's format; a user's Error.prepareStackTrace is
// called with those frames.
v8::MaybeLocal<v8::Value> ErrorPrepareStackTrace(v8::Local<v8::Context> context,
                                                 v8::Local<v8::Value> error,
                                                 v8::Local<v8::Array> sites);
// Logs an exception with its stack to stderr ("<prefix> <stack>").
void LogException(v8::Isolate *isolate, v8::Local<v8::Context> context,
                  const char *prefix, v8::Local<v8::Value> exception,
                  v8::Local<v8::Message> message);

// --- js_world.cc: console, timers, queueMicrotask, process ----------------

bool WorldInstall(Realm *realm, v8::Local<v8::Context> context);
World *WorldNew(js_engine *e);
// Cancels and closes every timer and handle (the loop then runs their
// close callbacks); timers of one realm only when realm is given.
void WorldClearRealm(World *w, Realm *realm);
void WorldClose(World *w);
// Runs the nextTick queues of every realm (Node runs them after each
// macrotask, before the promise microtasks); false when terminated.
bool WorldRunTicks(World *w);
bool WorldTicksPending(World *w);
// Empties the queues whose ticks were terminated; after the termination is
// cancelled (runs a line of JS).
void WorldDropTicks(World *w);

// --- js_modules.cc: the CommonJS loader and ES modules ---------------------

bool ModulesInstall(Realm *realm, v8::Local<v8::Context> context,
                    bool global_require);
// Loads `path` (absolute, real) as the config; the exports object, or empty
// with a JS exception pending.
v8::MaybeLocal<v8::Value> ModulesLoadConfig(Realm *realm,
                                            v8::Local<v8::Context> context,
                                            const std::string &path);
// Whether a script name is one of jshost's preludes ("jshost:..."). Stack
// traces leave those frames out.
bool IsOwnScript(const std::string &name);

} // namespace jse

#endif
