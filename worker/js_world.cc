// The JavaScript world beyond ECMAScript (DESIGN §5): console (timestamped
// lines on stdout/stderr), timers and immediates on the engine's libuv loop,
// queueMicrotask, a read-only process.env. No file, network or process access.
#include <cstring>
#include <deque>

#include <unistd.h>

#include "js_internal.h"

extern char **environ;

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
    uint64_t run = 0; // the run that made it, if any
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
    uint64_t run = 0;
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

const char kPreludeSource[] = R"JS(
(function (natives, global) {
'use strict';
const write = natives.write, enqueue = natives.queueMicrotask;
const keys = Object.keys, isArray = Array.isArray, getDesc = Object.getOwnPropertyDescriptor;
const identRe = /^[A-Za-z_$][\w$]*$/;

function quote(s) {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")
                .replace(/\n/g, '\\n').replace(/\r/g, '\\r') + "'";
}
function wrap(open, items, close) {
  if (items.length === 0) return open + close;
  const flat = items.join(', ');
  if (flat.length <= 72 && !flat.includes('\n')) return open + ' ' + flat + ' ' + close;
  return open + '\n  ' + items.map((s) => s.replace(/\n/g, '\n  ')).join(',\n  ') + '\n' + close;
}
function isErrorLike(v) {
  return v instanceof Error ||
         (typeof v.stack === 'string' && typeof v.message === 'string');
}
function ctorName(v) {
  const p = Object.getPrototypeOf(v);
  if (p === null) return '[Object: null prototype]';
  const c = p.constructor;
  return typeof c === 'function' && typeof c.name === 'string' ? c.name : '';
}
function inspect(v, depth, seen, inner) {
  switch (typeof v) {
    case 'string': return inner ? quote(v) : v;
    case 'number': return Object.is(v, -0) ? '-0' : String(v);
    case 'bigint': return String(v) + 'n';
    case 'symbol': return v.toString();
    case 'undefined': return 'undefined';
    case 'boolean': return String(v);
    case 'function': {
      const src = Function.prototype.toString.call(v);
      const kind = src.startsWith('class') ? 'class' : 'Function';
      return `[${kind}: ${v.name || '(anonymous)'}]`;
    }
  }
  if (v === null) return 'null';
  if (seen.includes(v)) return '[Circular]';
  if (isErrorLike(v)) return inner ? '[' + (v.stack || String(v)) + ']' : (v.stack || String(v));
  if (v instanceof Date) return isNaN(v) ? 'Invalid Date' : v.toISOString();
  if (v instanceof RegExp) return String(v);
  if (v instanceof Promise) return 'Promise {}';
  if (v instanceof WeakMap || v instanceof WeakSet) return ctorName(v) + ' {}';
  if (depth < 0) return isArray(v) ? '[Array]' : '[' + (ctorName(v) || 'Object') + ']';
  seen.push(v);
  let out;
  try {
    if (isArray(v)) {
      const items = [];
      const n = Math.min(v.length, 100);
      for (let i = 0; i < n; i++) items.push(i in v ? inspect(v[i], depth - 1, seen, true) : '<empty>');
      if (v.length > 100) items.push(`... ${v.length - 100} more items`);
      out = wrap('[', items, ']');
    } else if (v instanceof Map) {
      const items = [];
      for (const [k, x] of v) items.push(inspect(k, depth - 1, seen, true) + ' => ' + inspect(x, depth - 1, seen, true));
      out = `Map(${v.size}) ` + wrap('{', items, '}');
    } else if (v instanceof Set) {
      const items = [];
      for (const x of v) items.push(inspect(x, depth - 1, seen, true));
      out = `Set(${v.size}) ` + wrap('{', items, '}');
    } else if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      const items = [];
      const n = Math.min(v.length, 100);
      for (let i = 0; i < n; i++) items.push(inspect(v[i], 0, seen, true));
      if (v.length > 100) items.push(`... ${v.length - 100} more items`);
      out = `${ctorName(v)}(${v.length}) ` + wrap('[', items, ']');
    } else {
      const items = [];
      for (const k of keys(v)) {
        const d = getDesc(v, k);
        let s;
        if (d && (d.get || d.set)) s = d.get && d.set ? '[Getter/Setter]' : d.get ? '[Getter]' : '[Setter]';
        else s = inspect(v[k], depth - 1, seen, true);
        items.push((identRe.test(k) ? k : quote(k)) + ': ' + s);
      }
      const name = ctorName(v);
      out = (name && name !== 'Object' ? name + ' ' : '') + wrap('{', items, '}');
    }
  } finally {
    seen.pop();
  }
  return out;
}
function formatArg(a) {
  return typeof a === 'string' ? a : inspect(a, 2, [], false);
}
function format(args) {
  if (args.length === 0) return '';
  let out, i = 1;
  const first = args[0];
  if (typeof first === 'string' && args.length > 1 && first.includes('%')) {
    out = first.replace(/%([sdifjoOc%])/g, (m, c) => {
      if (c === '%') return '%';
      if (i >= args.length) return m;
      const a = args[i++];
      switch (c) {
        case 's':
          if (typeof a === 'string') return a;
          if (typeof a === 'bigint') return a + 'n';
          if (typeof a === 'object' && a !== null) return inspect(a, 1, [], true);
          return String(a);
        case 'd': return typeof a === 'bigint' ? a + 'n' : typeof a === 'symbol' ? 'NaN' : String(Number(a));
        case 'i': return typeof a === 'bigint' ? a + 'n' : typeof a === 'symbol' ? 'NaN' : String(parseInt(a, 10));
        case 'f': return typeof a === 'symbol' ? 'NaN' : String(parseFloat(a));
        case 'j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
        case 'o': return inspect(a, 4, [], true);
        case 'O': return inspect(a, 2, [], true);
        case 'c': return '';
      }
      return m;
    });
  } else {
    out = formatArg(first);
  }
  for (; i < args.length; i++) out += ' ' + formatArg(args[i]);
  return out;
}
function safeFormat(args) {
  try {
    return format(args);
  } catch (err) {
    return '(console: cannot format the arguments: ' + String(err && err.message) + ')';
  }
}
const con = {};
for (const level of ['log', 'info', 'debug', 'warn', 'error'])
  con[level] = function (...args) { write(level, safeFormat(args)); };
con.trace = function trace(...args) {
  const e = new Error(safeFormat(args));
  e.name = 'Trace';
  write('trace', String(e.stack));
};
con.dir = function dir(v) { write('log', inspect(v, 2, [], false)); };
con.assert = function assert(cond, ...args) {
  if (!cond) write('error', 'Assertion failed' + (args.length ? ': ' + safeFormat(args) : ''));
};
const counts = new Map(), timers = new Map();
con.count = function count(label = 'default') {
  const n = (counts.get(label) || 0) + 1;
  counts.set(label, n);
  write('log', `${label}: ${n}`);
};
con.countReset = function countReset(label = 'default') { counts.delete(label); };
con.time = function time(label = 'default') { timers.set(label, natives.now()); };
con.timeLog = function timeLog(label = 'default', ...args) {
  const t = timers.get(label);
  if (t !== undefined) write('log', `${label}: ${(natives.now() - t).toFixed(3)}ms` + (args.length ? ' ' + safeFormat(args) : ''));
};
con.timeEnd = function timeEnd(label = 'default') {
  con.timeLog(label);
  timers.delete(label);
};
con.table = con.log;
con.group = con.log;
con.groupEnd = function groupEnd() {};
const define = (obj, name, value) =>
  Object.defineProperty(obj, name, {value, writable: true, configurable: true, enumerable: false});
define(global, 'console', con);
define(global, 'global', global);
const env = natives.env;
if (env.NODE_ENV === undefined) env.NODE_ENV = 'production';
Object.freeze(env);
const process = {
  env,
  platform: 'linux',
  arch: natives.arch,
  pid: natives.pid,
  argv: [],
  execArgv: [],
  versions: Object.freeze({v8: natives.v8}),
  title: 'jshost-worker',
  browser: false,
  nextTick(fn, ...args) {
    if (typeof fn !== 'function') throw new TypeError('process.nextTick needs a function');
    if (tickHead === ticks.length) natives.ticksQueued();
    ticks.push(args.length === 0 ? fn : () => fn(...args));
  },
  cwd() { return natives.cwd; },
  hrtime: Object.assign(function hrtime(prev) {
    const ns = natives.hrtime();
    let s = Math.floor(ns / 1e9), n = ns % 1e9;
    if (prev) { s -= prev[0]; n -= prev[1]; if (n < 0) { s -= 1; n += 1e9; } }
    return [s, n];
  }, {bigint() { return BigInt(natives.hrtime()); }}),
  uptime() { return natives.now() / 1000; },
  emitWarning(w) { write('warn', String(w && w.message || w)); },
  on() { return process; },
  once() { return process; },
  off() { return process; },
};
define(global, 'process', process);

// The nextTick queue, drained by the engine after each macrotask before the
// promise microtasks (as Node). `tickHead` moves past a tick before it runs,
// so a tick that throws or is terminated is not run twice.
let ticks = [], tickHead = 0;
natives.setRunTicks(function runTicks(drop) {
  // Terminated in the middle of the queue: the rest is dropped, as V8 drops
  // the microtasks, or a tick that re-queues itself would spin every entry.
  if (drop) { ticks = []; tickHead = 0; return; }
  while (tickHead < ticks.length) {
    const fn = ticks[tickHead];
    ticks[tickHead++] = undefined;
    if (tickHead === ticks.length) { ticks = []; tickHead = 0; }
    fn();
  }
});

// Timers return Node's Timeout and Immediate objects: configs written for
// Node call .unref(), .ref(), .hasRef(), .refresh() and use a Timeout as its
// numeric id. The natives keep the callback; the object keeps what refresh()
// needs to arm it again after it fired. unref() only stops the timer from
// keeping the libuv loop alive: a worker never exits for want of timers, so
// an unref'd timer still fires (where Node might have exited first), and a
// run waiting on it waits as for any other, up to its deadline.
const kId = Symbol('id'), kRefed = Symbol('refed'), kCleared = Symbol('cleared');
const kFn = Symbol('fn'), kArgs = Symbol('args'), kMs = Symbol('ms'), kRepeat = Symbol('repeat');
function checkCallback(fn) {
  if (typeof fn !== 'function')
    throw new TypeError('The "callback" argument must be a function');
}
class Timeout {
  constructor(fn, ms, repeat, args) {
    this[kFn] = fn;
    this[kMs] = ms;
    this[kRepeat] = repeat;
    this[kArgs] = args;
    this[kRefed] = true;
    this[kCleared] = false;
    this[kId] = natives.timerStart(fn, ms, repeat, args, 0, true);
  }
  ref() { this[kRefed] = true; natives.timerRef(this[kId], true); return this; }
  unref() { this[kRefed] = false; natives.timerRef(this[kId], false); return this; }
  hasRef() { return this[kRefed]; }
  // As Node: restarts the countdown; a timeout that already fired runs again.
  refresh() {
    if (!this[kCleared] && !natives.timerRefresh(this[kId]))
      natives.timerStart(this[kFn], this[kMs], this[kRepeat], this[kArgs], this[kId], this[kRefed]);
    return this;
  }
  close() { clearTimeout(this); return this; }
  [Symbol.toPrimitive]() { return this[kId]; }
}
class Immediate {
  constructor(fn, args) {
    this[kRefed] = true;
    this[kId] = natives.immediateStart(fn, args);
  }
  ref() { this[kRefed] = true; natives.immediateRef(this[kId], true); return this; }
  unref() { this[kRefed] = false; natives.immediateRef(this[kId], false); return this; }
  hasRef() { return this[kRefed]; }
}
for (const C of [Timeout, Immediate])
  Object.defineProperty(C.prototype, Symbol.toStringTag, {value: C.name, configurable: true});
// Node's delay rule: below 1 ms, above 2^31-1 or not a number is 1 ms.
function delayOf(delay) {
  const ms = delay * 1;
  return ms >= 1 && ms <= 2147483647 ? Math.trunc(ms) : 1;
}
// A Timeout, or its id as a number or numeric string (what +t gave).
function idOf(t, C) {
  if (t instanceof C) return t[kId];
  if (typeof t === 'number' || typeof t === 'string') return +t;
  return 0;
}
const timerApi = {
  setTimeout(callback, delay, ...args) {
    checkCallback(callback);
    return new Timeout(callback, delayOf(delay), false, args.length ? args : undefined);
  },
  setInterval(callback, delay, ...args) {
    checkCallback(callback);
    return new Timeout(callback, delayOf(delay), true, args.length ? args : undefined);
  },
  setImmediate(callback, ...args) {
    checkCallback(callback);
    return new Immediate(callback, args.length ? args : undefined);
  },
  clearTimeout(t) {
    if (t instanceof Timeout) t[kCleared] = true;
    natives.timerClear(idOf(t, Timeout));
  },
  clearInterval(t) {
    if (t instanceof Timeout) t[kCleared] = true;
    natives.timerClear(idOf(t, Timeout));
  },
  clearImmediate(t) { natives.immediateClear(idOf(t, Immediate)); },
};
for (const name of keys(timerApi)) define(global, name, timerApi[name]);

// Array.prototype.fill on an array too long for fast elements (a dictionary)
// takes V8's generic path: one C++ loop with no interrupt check, so neither a
// deadline nor the heap limit's termination stops it, and at the heap limit
// it kept being granted memory for tens of seconds. Filled in slices, the
// calls between them are JS, where a termination lands.
const arrayFill = Array.prototype.fill, apply = Reflect.apply, trunc = Math.trunc;
const kSlice = 1 << 16; // the generic path allocates ~120 bytes an element
function clampIndex(v, len, dflt) {
  if (v === undefined) return dflt;
  let n = +v;
  n = n !== n ? 0 : trunc(n);
  if (n < 0) return n + len > 0 ? n + len : 0;
  return n < len ? n : len;
}
// A call, not just the loop: a short loop may never check for interrupts
// in the interpreter, a function entry always does.
function fillSlice(a, value, from, to) { apply(arrayFill, a, [value, from, to]); }
define(Array.prototype, 'fill', {
  fill(value) { // length 1, as the builtin
    if (!isArray(this) || this.length <= 2 * kSlice)
      return apply(arrayFill, this, arguments);
    const len = this.length;
    const from = clampIndex(arguments[1], len, 0), to = clampIndex(arguments[2], len, len);
    for (let k = from; k < to; k += kSlice)
      fillSlice(this, value, k, to - k > kSlice ? k + kSlice : to);
    return this;
  },
}.fill);
if (typeof globalThis.performance === 'undefined')
  define(global, 'performance', {now: natives.now, timeOrigin: Date.now() - natives.now()});
})
)JS";

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

// Runs fn(...args) with this = the realm's global as one macrotask.
void
RunCallback(World *w, Realm *realm, uint64_t run, Local<Function> fn,
            Local<Array> args, const char *what)
{
    js_engine *e = w->engine;
    Isolate *isolate = jse::IsolateOf(e);
    Local<Context> context = realm->context.Get(isolate);
    Context::Scope cs(context);
    jse::Outcome out;
    {
        jse::Entry en(e, jse::DefaultDeadline(e));
        uint64_t prev = jse::CurrentRun(e);
        jse::SetCurrentRun(e, run);
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
            // The run it belongs to, still waiting, fails with it.
            if (run != 0)
                jse::FailRun(e, run, tc.Exception(), tc.Message());
        }
        // Microtasks (run by Leave) belong to the same run.
        out = en.Leave();
        jse::SetCurrentRun(e, prev);
    }
    jse::AfterMacrotask(e, out, what);
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
    Isolate *isolate = jse::IsolateOf(w->engine);
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
    RunCallback(w, realm, t->run, fn, args,
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

// timerStart(fn, ms, repeat, args|undefined, id|0, refed) -> id. The prelude
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
    t->run = jse::CurrentRun(w->engine);
    t->repeat = info[2]->IsTrue();
    t->fn.Reset(isolate, info[0].As<Function>());
    if (info[3]->IsArray())
        t->args.Reset(isolate, info[3].As<Array>());
    double ms = info[1].As<v8::Number>()->Value();
    t->ms = ms >= 1 && ms <= 2147483647.0 ? (uint64_t)ms : 1;
    uv_timer_init(jse::LoopOf(w->engine), &t->handle);
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
    Isolate *isolate = jse::IsolateOf(w->engine);
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
        uint64_t run = im->run;
        delete im;
        RunCallback(w, realm, run, fn, args, "a setImmediate callback");
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
    im->run = jse::CurrentRun(w->engine);
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

// setRunTicks(fn): the prelude's drain of this realm's nextTick queue.
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

// write(level, text): one console line.
void
ConsoleWrite(const FunctionCallbackInfo<Value> &info)
{
    Isolate *isolate = info.GetIsolate();
    std::string level = jse::Utf8(isolate, info[0]);
    std::string text = jse::Utf8(isolate, info[1]);
    int fd = (level == "log" || level == "info" || level == "debug") ? 1 : 2;
    jse::WriteLine(fd, level.c_str(), text.data(), text.size());
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

Local<Object>
EnvObject(Local<Context> context)
{
    Isolate *isolate = context->GetIsolate();
    Local<Object> env = Object::New(isolate);
    for (char **p = environ; p != nullptr && *p != nullptr; p++) {
        const char *eq = strchr(*p, '=');
        if (eq == nullptr || eq == *p)
            continue;
        Local<String> k = jse::Str(isolate, *p, (size_t)(eq - *p));
        Local<String> v = jse::Str(isolate, eq + 1, strlen(eq + 1));
        if (k.IsEmpty() || v.IsEmpty() ||
            !env->Set(context, k, v).FromMaybe(false))
            return Local<Object>();
    }
    return env;
}

World *
WorldOfRealm(Realm *realm)
{
    return jse::WorldOf(realm->engine);
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
    uv_check_init(LoopOf(e), &w->check);
    uv_idle_init(LoopOf(e), &w->idle);
    uv_timer_init(LoopOf(e), &w->pump);
    w->check.data = w;
    w->idle.data = w;
    w->pump.data = w;
    w->open_handles = 3;
    w->active = true;
    // Polling is no reason to keep the loop alive; runs waiting on such a
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
    Isolate *isolate = IsolateOf(e);
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
            // As a throwing timer: logged, the run it belongs to fails, and
            // the queue goes on.
            LogException(isolate, context, "Uncaught", tc.Exception(),
                         tc.Message());
            uint64_t run = CurrentRun(e);
            if (run != 0)
                FailRun(e, run, tc.Exception(), tc.Message());
        }
    }
    return true;
}

void
WorldDropTicks(World *w)
{
    if (w == nullptr)
        return;
    Isolate *isolate = IsolateOf(w->engine);
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
    Local<Object> env = EnvObject(context);
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
        !SetFunction(context, natives, "queueMicrotask", QueueMicrotask,
                     data) ||
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
    v8::ScriptOrigin origin(
        isolate, String::NewFromUtf8Literal(isolate, "jshost:world"));
    v8::ScriptCompiler::Source source(
        String::NewFromUtf8Literal(isolate, kPreludeSource), origin);
    Local<v8::Script> script;
    Local<Value> factory, r;
    Local<Value> argv[] = {natives, global};
    return v8::ScriptCompiler::Compile(context, &source).ToLocal(&script) &&
           script->Run(context).ToLocal(&factory) && factory->IsFunction() &&
           factory.As<Function>()
               ->Call(context, v8::Undefined(isolate), 2, argv)
               .ToLocal(&r);
}

} // namespace jse
