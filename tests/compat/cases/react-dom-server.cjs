// React 19 server rendering from CommonJS: react-dom/server's renderToString
// and renderToStaticMarkup, with a component, a list and escaping.
const React = require('react');
const { renderToString, renderToStaticMarkup } = require('react-dom/server');

const h = React.createElement;
function Page({ title, items }) {
  return h('main', { className: 'page' },
    h('h1', null, title),
    h('ul', null, items.map((it) => h('li', { key: it }, it))),
    h(React.Fragment, null, h('p', { style: { color: 'red', marginTop: 4 } }, 'a < b & c')));
}

module.exports = {
  functions: {
    render(data) { return renderToString(h(Page, data)); },
    markup(data) { return renderToStaticMarkup(h(Page, data)); },
  },
  compat: {
    package: 'react-dom',
    calls: [
      ['render', { title: 'Hello <world>', items: ['one', 'two', 'three'] }],
      ['markup', { title: 'Static', items: [] }],
    ],
  },
};
