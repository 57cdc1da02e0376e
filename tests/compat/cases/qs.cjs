// qs (CommonJS): nested query strings. Its dependencies (side-channel,
// object-inspect) reach for util.inspect at load time.
const qs = require('qs');

module.exports = {
  functions: {
    parse(data) { return qs.parse(data.query, { allowDots: true }); },
    stringify(data) { return qs.stringify(data.value, { encodeValuesOnly: true }); },
  },
  compat: {
    package: 'qs',
    calls: [
      ['parse', { query: 'a[b][c]=d&e[]=1&e[]=2&f.g=h&s=%E2%9C%93' }],
      ['stringify', { value: { a: { b: ['x', 'y'] }, c: 'é &' } }],
    ],
  },
};
