// slugify (CommonJS).
const slugify = require('slugify');

module.exports = {
  functions: {
    run(data) { return data.texts.map((t) => [slugify(t), slugify(t, { lower: true, strict: true })]); },
  },
  compat: { package: 'slugify', calls: [['run', { texts: ['Héllo Wörld!', 'some  thing & other', 'Ça va? 100%'] }]] },
};
