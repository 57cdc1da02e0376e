// ms (CommonJS).
const ms = require('ms');

module.exports = {
  functions: { run(data) { return [data.texts.map((t) => ms(t)), ms(90061000), ms(90061000, { long: true })]; } },
  compat: { package: 'ms', calls: [['run', { texts: ['2 days', '1.5h', '10s', '100', '-3m'] }]] },
};
