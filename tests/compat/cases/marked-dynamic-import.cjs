// marked from a CommonJS config through import(): an ES-module-only package
// loaded lazily, the way CommonJS code reaches ES modules.
let markedP;

module.exports = {
  functions: {
    async parse(data) {
      markedP = markedP || import('marked');
      const { marked } = await markedP;
      return marked.parse(data.markdown);
    },
  },
  compat: {
    package: 'marked',
    calls: [['parse', { markdown: '## Sub\n\n> quote\n\n1. a\n2. b\n' }]],
  },
};
