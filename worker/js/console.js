// console: Node's console methods, each writing one line through the
// engine's log writer (stdout for log, info and debug; stderr for the rest),
// with Node's format() and a small util.inspect() for the arguments.
//
// The engine (js_world.cc) runs this once per realm, as it runs process.js,
// timers.js and array-fill.js after it, each with the same two arguments:
// the world's natives (kept in these closures; user code never sees them)
// and the realm's global object.
(function (natives, global) {
'use strict';
const write = natives.write, define = natives.define;
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
define(global, 'console', con);
});
