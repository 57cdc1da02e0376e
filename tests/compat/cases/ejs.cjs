// EJS templates rendered from strings (the package loads fs and path for its
// file API; rendering a string does not use them).
const ejs = require('ejs');

module.exports = {
  functions: {
    render(data) { return ejs.render(data.template, data.locals); },
  },
  compat: {
    package: 'ejs',
    calls: [['render', {
      template: '<ul><% items.forEach(function (it) { %><li><%= it %></li><% }) %></ul><%- raw %>',
      locals: { items: ['a', '<b>'], raw: '<hr>' },
    }]],
  },
};
