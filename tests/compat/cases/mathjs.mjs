// math.js (ES modules): expression parsing, units, fractions, derivatives.
import { create, all } from 'mathjs';

const math = create(all, { number: 'number' });

export default {
  functions: {
    run(data) {
      return {
        values: data.exprs.map((e) => math.format(math.evaluate(e), { precision: 14 })),
        derivative: math.derivative('x^3 + 2x', 'x').toString(),
        simplified: math.simplify('2x + 3x - x').toString(),
        fraction: math.format(math.fraction(1, 3).add(math.fraction(1, 6))),
      };
    },
  },
  compat: { package: 'mathjs', calls: [['run', { exprs: ['sqrt(3^2 + 4^2)', '12.7 cm to inch', 'det([1, 2; 3, 4])', 'sin(pi / 6)'] }]] },
};
