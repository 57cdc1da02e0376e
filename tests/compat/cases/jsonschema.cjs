// jsonschema (CommonJS): it requires url at load time for $ref resolution.
const { Validator } = require('jsonschema');

const v = new Validator();
const schema = { id: '/Person', type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } }, required: ['name'] };

module.exports = {
  functions: {
    run(data) { return data.values.map((x) => v.validate(x, schema).errors.map((e) => e.stack)); },
  },
  compat: { package: 'jsonschema', calls: [['run', { values: [{ name: 'a', age: 1 }, { age: -1 }] }]] },
};
