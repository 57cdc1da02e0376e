// lodash (CommonJS): collections, strings and _.template (which compiles
// with Function).
const _ = require('lodash');

module.exports = {
  functions: {
    run(data) {
      return {
        chunk: _.chunk(data.list, 2),
        grouped: _.groupBy(data.words, 'length'),
        camel: _.camelCase('Foo Bar-baz_qux'),
        merged: _.merge({ a: { b: 1 } }, { a: { c: 2 } }),
        picked: _.pick({ a: 1, b: 2, c: 3 }, ['a', 'c']),
        template: _.template('hi <%= user %>! <%- html %>')({ user: 'fred', html: '<b>' }),
        uniq: _.uniqBy([{ x: 1 }, { x: 2 }, { x: 1 }], 'x'),
      };
    },
  },
  compat: {
    package: 'lodash',
    calls: [['run', { list: [1, 2, 3, 4, 5], words: ['one', 'two', 'three', 'four'] }]],
  },
};
