// The config every peer of bench_calls.py loads, unchanged: js-host's format
// (functions (data, cb)), with one plain-return function as docs/config.md allows.
'use strict';

const RENDER_BYTES = 10 * 1024;

module.exports = {
  functions: {
    // The trivial call: the cost is all transport.
    double(data) {
      return data.number * 2;
    },
    // A template render: small data in, a 10 KiB string out.
    render(data, cb) {
      const rows = [];
      let size = 0;
      for (let i = 0; size < RENDER_BYTES; i++) {
        const row = '<tr><td>' + i + '</td><td>' + data.title + '</td></tr>\n';
        rows.push(row);
        size += row.length;
      }
      cb(null, rows.join('').slice(0, RENDER_BYTES));
    },
    // Structured data out: an object of 1000 keys.
    object(data, cb) {
      const out = {};
      for (let i = 0; i < 1000; i++)
        out['key' + i] = i % 3 ? data.seed + i : 'value ' + i;
      cb(null, out);
    },
    // The four cases of bench_cpu.py (the speed issue's table):
    // trivial, 1000 nested objects out, the same in, 1 MiB string out.
    inc(d) {
      return d.n + 1;
    },
    nested_out(d) {
      const out = {};
      for (let i = 0; i < 1000; i++) out['k' + i] = {i: i + d.seed, s: 's' + i};
      return out;
    },
    nested_in(d) {
      let n = 0;
      for (const k in d) n += d[k].i;
      return n;
    },
    string_1m(d) {
      return d.c.repeat(1024 * 1024);
    },
    // The same work as nested_out and string_1m with a small answer, so that
    // bench_rpc sees what the answer's bytes cost: nested_small serializes
    // its object to JSON, which takes about as long as jshost's encoder, so
    // that the waits match too.
    nested_small(d) {
      const out = {};
      for (let i = 0; i < 1000; i++) out['k' + i] = {i: i + d.seed, s: 's' + i};
      return JSON.stringify(out).length;
    },
    string_1m_small(d) {
      const s = d.c.repeat(1024 * 1024);
      return s.charCodeAt(s.length - 1);
    },
    // 10 MiB in and the same 10 MiB out: large payloads both ways.
    echo_10m(d) {
      return d.s;
    },
    // Structured data in: an object of 1000 keys, a small answer out.
    count(data) {
      let n = 0;
      for (const k in data) n += typeof data[k] === 'number' ? data[k] : 1;
      return n;
    },
  },
};
