// Preact from CommonJS: preact-render-to-string's require build, which in
// turn require()s preact 11, an ES module (require of ES modules, as Node 22).
const { h } = require('preact');
const { renderToString } = require('preact-render-to-string');

module.exports = {
  functions: {
    render(data) { return renderToString(h('p', { title: data.title }, data.text)); },
  },
  compat: {
    package: 'preact',
    calls: [['render', { title: 'x"y', text: 'Hello & bye' }]],
  },
};
