// zod from CommonJS (its "require" build).
const { z } = require('zod');

const Schema = z.union([z.string().regex(/^[a-z]+$/), z.number().max(10)]);

module.exports = {
  functions: {
    check(data) { return data.values.map((v) => Schema.safeParse(v).success); },
  },
  compat: {
    package: 'zod',
    calls: [['check', { values: ['abc', 'ABC', 5, 11, null] }]],
  },
};
