// escape-html (CommonJS).
const escapeHtml = require('escape-html');

module.exports = {
  functions: { run(data) { return escapeHtml(data.text); } },
  compat: { package: 'escape-html', calls: [['run', { text: `<a href="x" title='y'>&</a>` }]] },
};
