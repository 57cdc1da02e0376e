// decimal.js (CommonJS): arbitrary-precision decimals.
const Decimal = require('decimal.js');

module.exports = {
  functions: {
    run(data) {
      Decimal.set({ precision: 40 });
      return { sum: new Decimal(data.a).plus(data.b).toString(), sqrt2: new Decimal(2).sqrt().toString(), pow: new Decimal(1.1).pow(100).toFixed(10) };
    },
  },
  compat: { package: 'decimal.js', calls: [['run', { a: '0.1', b: '0.2' }]] },
};
