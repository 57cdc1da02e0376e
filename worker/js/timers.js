// setTimeout, setInterval, setImmediate and their clear* functions on the
// engine's libuv loop (the natives hold the handles), and performance.now().
(function (natives, global) {
'use strict';
const define = natives.define, keys = Object.keys;

// Timers return Node's Timeout and Immediate objects: configs written for
// Node call .unref(), .ref(), .hasRef(), .refresh() and use a Timeout as its
// numeric id. The natives keep the callback; the object keeps what refresh()
// needs to arm it again after it fired. unref() only stops the timer from
// keeping the libuv loop alive: a worker never exits for want of timers, so
// an unref'd timer still fires (where Node might have exited first), and a
// call waiting on it waits as for any other, up to its deadline.
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
if (typeof globalThis.performance === 'undefined')
  define(global, 'performance', {now: natives.now, timeOrigin: Date.now() - natives.now()});
});
