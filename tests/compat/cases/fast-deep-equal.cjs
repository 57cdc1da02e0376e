// fast-deep-equal (CommonJS), with its ES2015 variant for Map and Set.
const equal = require('fast-deep-equal');
const equalEs6 = require('fast-deep-equal/es6');

module.exports = {
  functions: {
    run(data) { return [equal(data.a, data.b), equal(data.a, data.c), equalEs6(new Map([[1, { x: 1 }]]), new Map([[1, { x: 1 }]]))]; },
  },
  compat: { package: 'fast-deep-equal', calls: [['run', { a: { x: [1, { y: 2 }] }, b: { x: [1, { y: 2 }] }, c: { x: [1, { y: 3 }] } }]] },
};
