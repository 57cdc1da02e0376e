// lodash-es: the ES-module build, named imports across hundreds of modules.
import { groupBy, kebabCase, debounce, cloneDeep, isEqual } from 'lodash-es';

export default {
  functions: {
    run(data) {
      const copy = cloneDeep(data);
      return {
        grouped: groupBy(data.nums, (n) => (n % 2 ? 'odd' : 'even')),
        kebab: kebabCase('Hello World fooBar'),
        debounced: typeof debounce(() => 1, 10),
        equal: isEqual(copy, data),
      };
    },
  },
  compat: {
    package: 'lodash-es',
    calls: [['run', { nums: [1, 2, 3, 4, 5, 6] }]],
  },
};
