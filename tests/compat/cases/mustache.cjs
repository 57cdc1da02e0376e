// Mustache templates (CommonJS build).
const Mustache = require('mustache');

module.exports = {
  functions: {
    render(data) { return Mustache.render(data.template, data.view); },
  },
  compat: {
    package: 'mustache',
    calls: [['render', {
      template: 'Hi {{name}}! {{#items}}<{{.}}>{{/items}}{{^none}} empty{{/none}} {{{raw}}} {{raw}}',
      view: { name: 'Ann', items: ['a', 'b'], raw: '<b>' },
    }]],
  },
};
