// sanitize-html (CommonJS): htmlparser2 plus postcss, whose source-map code
// requires fs, path and url at load time.
const sanitizeHtml = require('sanitize-html');

module.exports = {
  functions: {
    run(data) {
      return [sanitizeHtml(data.html), sanitizeHtml(data.html, { allowedTags: ['b', 'a'], allowedAttributes: { a: ['href'] }, allowedStyles: {} })];
    },
  },
  compat: { package: 'sanitize-html', calls: [['run', { html: '<p onclick="x()">Hi <b>there</b><script>evil()</script><a href="javascript:alert(1)">a</a><a href="/ok" style="color:red">b</a></p>' }]] },
};
