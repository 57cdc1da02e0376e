// mustache from an ES module: the package's "import" build (mustache.mjs).
import Mustache from 'mustache';

export default {
  functions: { render(data) { return Mustache.render('{{#list}}{{name}},{{/list}}', data); } },
  compat: { package: 'mustache', calls: [['render', { list: [{ name: 'x' }, { name: 'y' }] }]] },
};
