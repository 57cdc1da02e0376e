// The engine's insides shared by engine.cc (isolate, runs, deadlines),
// js_modules.cc (require, ES modules) and js_world.cc (console, timers,
// process). C++ only; the outside sees engine.h.
#ifndef JSHOST_JS_INTERNAL_H
#define JSHOST_JS_INTERNAL_H

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <uv.h>
#include <v8.h>

#include "engine.h"

namespace jse
{

struct World;

// One v8::Context and what hangs off it: the config's (id 0) or a context's.
struct Realm {
    js_engine *engine = nullptr;
    uint32_t id = 0;
    std::string cwd; // where require() starts
    v8::Global<v8::Context> context;
    v8::Global<v8::Object> loader;      // the CommonJS loader's entry points
    v8::Global<v8::Function> make_cb;   // (id, name, arity) => cb
    v8::Global<v8::Function> await_run; // (promise, id, name, arity)
    // ES modules of this realm: path -> module, and identity hash -> path
    std::unordered_map<std::string, v8::Global<v8::Module>> esm;
    std::unordered_multimap<int, std::string> esm_paths;
    std::unordered_map<std::string, v8::Global<v8::Value>> esm_synthetic;
    // "referrer path\nspecifier" -> the key of the module it resolved to
    std::unordered_map<std::string, std::string> esm_links;
    // The prelude's drain of process.nextTick's queue, and whether that queue
    // has work (the realm is then on the world's list).
    v8::Global<v8::Function> run_ticks;
    bool ticks_queued = false;
    bool ticks_dropped = false; // terminated in them: drop the rest
};

// The embedder data slot of a context holding its Realm.
constexpr int kRealmSlot = 1;
Realm *RealmOf(v8::Local<v8::Context> context);

// How an entry into JS ended.
enum Outcome { kFinished, kTimedOut, kOutOfMemory };

// One entry into JS from the loop (a macrotask): arms the watchdog for
// `deadline_ns` (uv_hrtime clock) when outermost, and on Leave() runs the
// microtasks, disarms, and clears a termination so the next entry can run.
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
};

// The engine-wide default deadline for JS not belonging to a run (timers).
uint64_t DefaultDeadline(js_engine *e);
v8::Isolate *IsolateOf(js_engine *e);
uv_loop_t *LoopOf(js_engine *e);
// Called after every macrotask (timer, immediate): finishes settled runs and
// reacts to a termination.
void AfterMacrotask(js_engine *e, Outcome outcome, const char *what);
// Runs V8's pending foreground tasks (a macrotask of their own).
void PumpTasks(js_engine *e);
// The run whose JS is executing (0 = none): timers made meanwhile belong to
// it, and an uncaught error in them fails it.
uint64_t CurrentRun(js_engine *e);
void SetCurrentRun(js_engine *e, uint64_t id);
// Fails run `id` with an exception if it is still unsettled.
void FailRun(js_engine *e, uint64_t id, v8::Local<v8::Value> exception,
             v8::Local<v8::Message> message);
// Logs an exception with its stack to stderr ("Uncaught ...").
void LogException(v8::Isolate *isolate, v8::Local<v8::Context> context,
                  const char *prefix, v8::Local<v8::Value> exception,
                  v8::Local<v8::Message> message);
// One line to fd 1 or 2 with an ISO timestamp and the pid.
void WriteLine(int fd, const char *level, const char *text, size_t len);

// Strings: V8 <-> std::string (UTF-8); empty Local on failure.
v8::Local<v8::String> Str(v8::Isolate *isolate, const char *s, size_t len);
v8::Local<v8::String> Str(v8::Isolate *isolate, const std::string &s);
std::string Utf8(v8::Isolate *isolate, v8::Local<v8::Value> value);

// js_world.cc: console, timers, queueMicrotask, process, the builtins.
bool WorldInstall(Realm *realm, v8::Local<v8::Context> context);
World *WorldNew(js_engine *e);
World *WorldOf(js_engine *e);
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

// js_modules.cc: the CommonJS loader and ES modules.
bool ModulesInstall(Realm *realm, v8::Local<v8::Context> context,
                    bool global_require);
// Loads `path` (absolute, real) as the config; the exports object, or empty
// with a JS exception pending.
v8::MaybeLocal<v8::Value> ModulesLoadConfig(Realm *realm,
                                            v8::Local<v8::Context> context,
                                            const std::string &path);
// Whether `path` (real) is an ES module: .mjs, or .js in a "type": "module"
// package.
bool IsEsmFile(v8::Local<v8::Context> context, const std::string &path);

} // namespace jse

#endif
