// yaml from an ES module: which build is taken depends on the "node" export
// condition (dist/, CommonJS) or "default" (browser/, ES modules).
import { parse, stringify } from 'yaml';

export default {
  functions: {
    round(data) { return stringify(parse(data.text)); },
  },
  compat: {
    package: 'yaml',
    calls: [['round', { text: '{a: 1, b: [true, ~, 0x10]}' }]],
  },
};
