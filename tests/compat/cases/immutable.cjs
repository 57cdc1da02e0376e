// Immutable.js (CommonJS build): persistent maps and lists.
const { Map, List, fromJS, is } = require('immutable');

module.exports = {
  functions: {
    run(data) {
      const m = fromJS(data).setIn(['a', 'b'], 42).update('list', (l) => l.push(4));
      return { js: m.toJS(), equal: is(Map({ x: List([1]) }), Map({ x: List([1]) })), size: m.get('list').size };
    },
  },
  compat: { package: 'immutable', calls: [['run', { a: { b: 1 }, list: [1, 2, 3] }]] },
};
