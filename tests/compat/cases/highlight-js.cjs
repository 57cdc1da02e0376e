// highlight.js 11 (CommonJS): syntax highlighting to HTML.
const hljs = require('highlight.js');

module.exports = {
  functions: {
    run(data) {
      return { js: hljs.highlight(data.js, { language: 'javascript' }).value, auto: hljs.highlightAuto(data.py, ['python', 'ruby']).language };
    },
  },
  compat: { package: 'highlight.js', calls: [['run', { js: 'const x = `a${1}`; // hi\nfunction f(a) { return a <= 2; }', py: 'def f(x):\n    return [i for i in range(x)]\n' }]] },
};
