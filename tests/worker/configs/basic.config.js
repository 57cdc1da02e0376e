// A js-host-style config for the worker's process-level tests. Line numbers
// matter: test_calls.c checks that the stack of `fail` names line 22.
const helper = require('./lib/helper');
const somepkg = require('somepkg');
const exportspkg = require('exportspkg');

let counter = 0;

module.exports = {
  functions: {
    hello_world(data, cb) {
      cb(null, 'Hello, ' + (data.name || 'World') + '!');
    },
    double(data) {
      return data.number * 2;
    },
    async later(data) {
      await new Promise((resolve) => setTimeout(resolve, data.ms || 10));
      return 'later ' + (data.tag || '');
    },
    fail(data) {
      throw new TypeError('bad thing: ' + data.why);
    },
    fail_cb(data, cb) {
      cb(new RangeError('out of range'));
    },
    reject() {
      return Promise.reject(new Error('rejected'));
    },
    echo(data) {
      return data;
    },
    count() {
      counter += 1;
      return counter;
    },
    spin() {
      for (;;) {}
    },
    bomb() {
      const keep = [];
      for (;;) keep.push(new Array(100000).fill(1.5));
    },
    log(data) {
      console.log('stdout-line', data.tag);
      console.error('stderr-line', data.tag);
      return true;
    },
    helper(data) {
      return helper.shout(data.s);
    },
    pkg() {
      return [somepkg.describe(), exportspkg.kind];
    },
    timer(data, cb) {
      setTimeout(() => cb(null, 'fired'), 20);
    },
    // as a js-host (Node) config writes it: unref'd timers, nextTick
    nodeTimers(data, cb) {
      const log = [];
      const keepalive = setInterval(() => log.push('never'), 100000);
      keepalive.unref();
      Promise.resolve().then(() => log.push('then'));
      process.nextTick(() => log.push('tick'));
      const t = setTimeout(() => {
        clearInterval(keepalive);
        cb(null, [log, typeof t, +t > 0, t.hasRef()]);
      }, 5).unref();
    },
    interval(data, cb) {
      let n = 0;
      const id = setInterval(() => {
        n += 1;
        if (n === 3) {
          clearInterval(id);
          cb(null, n);
        }
      }, 5);
    },
    immediate(data, cb) {
      const cancelled = setTimeout(() => cb(null, 'wrong'), 0);
      clearTimeout(cancelled);
      setImmediate(() => cb(null, 'immediate'));
    },
    extras() {
      return [this.name, this.host.config.anything];
    },
    big(data) {
      return 'x'.repeat(data.size);
    },
    types() {
      return {
        date: new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 678)),
        big: 2n ** 70n,
        small_big: 12n,
        bytes: new Uint8Array([1, 2, 3]),
        map: new Map([['k', 'v']]),
        nan: NaN,
        negzero: -0,
        inf: -Infinity,
        skipped: undefined,
        fn: function () {},
        arr: [undefined, function () {}, 1],
        json: { toJSON() { return 'from toJSON'; } },
      };
    },
    throw_later(data, cb) {
      setTimeout(() => {
        throw new Error('late boom ' + data.tag);
      }, 5);
      cb(null, 'thrown later');
    },
    twice(data, cb) {
      cb(null, 'first');
      cb(null, 'second');
      return 'third';
    },
    cycle() {
      const a = {};
      a.self = a;
      return a;
    },
  },
  timeout: 10000,
  anything: 'else',
};
