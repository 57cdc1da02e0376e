// big.js (ES module build).
import Big from 'big.js';

export default {
  functions: { run(data) { return [Big(data.a).times(data.b).toString(), Big(1).div(3).toFixed(20), Big('1e+30').plus(1).toFixed()]; } },
  compat: { package: 'big.js', calls: [['run', { a: '123.456', b: '0.001' }]] },
};
