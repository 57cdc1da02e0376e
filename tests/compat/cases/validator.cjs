// validator.js (CommonJS): string validators and sanitizers.
const validator = require('validator');

module.exports = {
  functions: {
    run(data) {
      return data.inputs.map((s) => ({
        email: validator.isEmail(s), url: validator.isURL(s), uuid: validator.isUUID(s),
        ip: validator.isIP(s), escaped: validator.escape(s),
      })).concat([validator.normalizeEmail('Foo.Bar+tag@GMAIL.com')]);
    },
  },
  compat: {
    package: 'validator',
    calls: [['run', { inputs: ['a@b.co', 'https://x.org/p?q=1', '10.0.0.1', '<script>&'] }]],
  },
};
