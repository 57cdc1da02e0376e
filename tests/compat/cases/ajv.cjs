// Ajv 8 (CommonJS): compiles JSON Schema to JavaScript with new Function.
const Ajv = require('ajv');

const ajv = new Ajv({ allErrors: true });
const validate = ajv.compile({
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1 }, name: { type: 'string', maxLength: 5 }, tags: { type: 'array', items: { type: 'string' }, uniqueItems: true } },
  required: ['id', 'name'],
  additionalProperties: false,
});

module.exports = {
  functions: {
    check(data) {
      const ok = validate(data);
      return { ok, errors: (validate.errors || []).map((e) => [e.instancePath, e.keyword, e.message]) };
    },
  },
  compat: {
    package: 'ajv',
    calls: [['check', { id: 3, name: 'abc', tags: ['x'] }], ['check', { id: 0, name: 'toolong', tags: ['x', 'x'], extra: 1 }]],
  },
};
