// React server rendering for Python (see README.md). The config is an ES
// module; react and react-dom come from this folder's node_modules.
import { createElement as h, useId } from 'react';
import { renderToString } from 'react-dom/server';

function Product({ name, price }) {
  const id = useId();
  return h('li', { 'aria-labelledby': id },
    h('span', { id }, name), ' ', h('b', null, price.toFixed(2) + ' €'));
}

function Page({ title, products }) {
  return h('html', { lang: 'en' },
    h('head', null, h('meta', { charSet: 'utf-8' }), h('title', null, title)),
    h('body', null,
      h('h1', null, title),
      products.length === 0
        ? h('p', null, 'Nothing for sale.')
        : h('ul', null, products.map((p) => h(Product, { key: p.name, ...p })))));
}

export default {
  functions: {
    // data: {title: str, products: [{name: str, price: number}]}
    render(data) {
      return '<!doctype html>' + renderToString(h(Page, data));
    },
  },
};
