// yaml (CommonJS build): parse, stringify, documents with comments.
const YAML = require('yaml');

module.exports = {
  functions: {
    parse(data) { return YAML.parse(data.text); },
    stringify(data) { return YAML.stringify(data.value); },
    doc(data) { const d = YAML.parseDocument(data.text); d.set('added', true); return d.toString(); },
  },
  compat: {
    package: 'yaml',
    calls: [
      ['parse', { text: 'a: 1\nb: [x, "y", 3.5]\nc:\n  d: null\n  e: |\n    multi\n    line\n' }],
      ['stringify', { value: { list: [1, 'two', { three: 3 }], s: 'x: y' } }],
      ['doc', { text: '# comment\nkey: value # trailing\n' }],
    ],
  },
};
