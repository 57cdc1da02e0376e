// js-yaml (CommonJS build): load and dump.
const yaml = require('js-yaml');

module.exports = {
  functions: {
    load(data) { return yaml.load(data.text); },
    dump(data) { return yaml.dump(data.value, { sortKeys: true }); },
  },
  compat: {
    package: 'js-yaml',
    calls: [
      ['load', { text: 'anchors:\n  base: &b {x: 1}\n  derived:\n    <<: *b\n    y: 2\nlist: [1, 2]\n' }],
      ['dump', { value: { z: [1, { a: 'multi\nline' }], a: null } }],
    ],
  },
};
