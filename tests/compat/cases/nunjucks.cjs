// Nunjucks from strings only: the package requires fs, path and its file
// loaders at load time but never touches them when given no loader paths.
const nunjucks = require('nunjucks');

const env = new nunjucks.Environment(null, { autoescape: true });
env.addFilter('shout', (s) => String(s).toUpperCase() + '!');

module.exports = {
  functions: {
    render(data) { return env.renderString(data.template, data.context); },
  },
  compat: {
    package: 'nunjucks',
    calls: [['render', {
      template: '{% for u in users %}<li>{{ u.name | shout }} {{ loop.index }}</li>{% endfor %}' +
                '{% if admin %}A{% else %}{{ "<b>" }}{% endif %}',
      context: { users: [{ name: 'ann' }, { name: 'bob' }], admin: false },
    }]],
  },
};
