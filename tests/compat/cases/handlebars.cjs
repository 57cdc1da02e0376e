// Handlebars templates with a helper and a partial (CommonJS).
const Handlebars = require('handlebars');

const hb = Handlebars.create();
hb.registerHelper('upper', (s) => String(s).toUpperCase());
hb.registerPartial('item', '<li>{{upper name}} ({{qty}})</li>');
const tpl = hb.compile('<h1>{{title}}</h1><ul>{{#each items}}{{> item}}{{/each}}</ul>' +
                       '{{#if note}}<p>{{note}}</p>{{else}}<p>none</p>{{/if}}');

module.exports = {
  functions: {
    render(data) { return tpl(data); },
    precompile(data) { return typeof hb.precompile(data.source); },
  },
  compat: {
    package: 'handlebars',
    calls: [
      ['render', { title: 'Cart & co', items: [{ name: 'tea', qty: 2 }, { name: 'milk', qty: 1 }] }],
      ['render', { title: 'x', items: [], note: '<i>escaped</i>' }],
      ['precompile', { source: '{{a}}' }],
    ],
  },
};
