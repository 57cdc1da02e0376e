// KaTeX (CommonJS): TeX to HTML and MathML.
const katex = require('katex');

module.exports = {
  functions: {
    run(data) { return data.tex.map((t) => katex.renderToString(t, { throwOnError: false, output: 'htmlAndMathml' })); },
  },
  compat: { package: 'katex', calls: [['run', { tex: ['c = \\pm\\sqrt{a^2 + b^2}', '\\frac{1}{2}\\int_0^\\infty e^{-x}\\,dx', '\\badcommand'] }]] },
};
