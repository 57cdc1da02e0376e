// The config every peer of bench_calls.py loads, unchanged: js-host's format
// (functions (data, cb)), with one plain-return function as DESIGN §5 allows.
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
    // Structured data in: an object of 1000 keys, a small answer out.
    count(data) {
      let n = 0;
      for (const k in data) n += typeof data[k] === 'number' ? data[k] : 1;
      return n;
    },
  },
};
