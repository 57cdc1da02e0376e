// marked through require(): require() of an ES module without top-level
// await, as Node 22 (and Node 20.19+) allow.
const { marked } = require('marked');

module.exports = {
  functions: {
    parse(data) { return marked.parse(data.markdown); },
  },
  compat: {
    package: 'marked',
    calls: [['parse', { markdown: 'Plain _text_ with <span>html</span>.' }]],
  },
};
