// lodash (CommonJS) imported from an ES module: the default export is
// module.exports.
import _ from 'lodash';

export default {
  functions: {
    run(data) { return { sorted: _.sortBy(data.people, ['age', 'name']), sum: _.sumBy(data.people, 'age') }; },
  },
  compat: {
    package: 'lodash',
    calls: [['run', { people: [{ name: 'b', age: 30 }, { name: 'a', age: 30 }, { name: 'c', age: 20 }] }]],
  },
};
