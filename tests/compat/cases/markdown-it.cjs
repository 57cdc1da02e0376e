// markdown-it (CommonJS build): it requires punycode at load time.
const MarkdownIt = require('markdown-it');

const md = new MarkdownIt({ linkify: true, typographer: true });

module.exports = {
  functions: { render(data) { return md.render(data.markdown); } },
  compat: { package: 'markdown-it', calls: [['render', { markdown: '# Title\n\n"Quotes" -- and https://example.com\n\n* a\n* b\n\n<i>x</i>' }]] },
};
