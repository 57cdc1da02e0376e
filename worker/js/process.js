// process and global: what Node programs read from them (env, platform,
// pid, hrtime, nextTick, ...). process.env is frozen: NODE_ENV (default
// 'production') and the variables the config lists in `env`, from the
// environment of the client that started the host (docs/config.md).
// process.browser is true, as bundlers' process shims say: packages that
// test it (TypeScript, readable-stream) then take the paths that need no
// fs, os or child_process (docs/modules.md). The nextTick queue is
// drained by the engine (WorldRunTicks) through the function handed to
// natives.setRunTicks.
(function (natives, global) {
'use strict';
const write = natives.write, define = natives.define;
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
  browser: true,
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
});
