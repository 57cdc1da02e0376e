// Preact server rendering (ES modules): preact 11 + preact-render-to-string.
import { h, Fragment } from 'preact';
import { renderToString } from 'preact-render-to-string';

function List({ items }) {
  return h(Fragment, null, h('h2', null, `${items.length} items`),
    h('ul', { class: 'list' }, items.map((it) => h('li', { key: it, 'data-x': it }, it))));
}

export default {
  functions: {
    render(data) { return renderToString(h(List, data)); },
  },
  compat: {
    package: 'preact-render-to-string',
    calls: [['render', { items: ['a', '<b>', 'c & d'] }]],
  },
};
