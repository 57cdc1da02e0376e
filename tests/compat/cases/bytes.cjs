// bytes (CommonJS).
const bytes = require('bytes');

module.exports = {
  functions: { run(data) { return [bytes(data.n), bytes(data.n, { unitSeparator: ' ', decimalPlaces: 3 }), bytes.parse('1.5MB'), bytes('10KB')]; } },
  compat: { package: 'bytes', calls: [['run', { n: 1234567 }]] },
};
