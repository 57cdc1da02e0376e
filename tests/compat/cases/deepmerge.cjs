// deepmerge (CommonJS).
const deepmerge = require('deepmerge');

module.exports = {
  functions: {
    run(data) { return [deepmerge(data.a, data.b), deepmerge.all([data.a, data.b, { z: 1 }], { arrayMerge: (_, src) => src })]; },
  },
  compat: { package: 'deepmerge', calls: [['run', { a: { k: [1], o: { x: 1 } }, b: { k: [2], o: { y: 2 } } }]] },
};
