// pluralize (CommonJS).
const pluralize = require('pluralize');

module.exports = {
  functions: {
    run(data) { return data.words.map((w) => [pluralize(w), pluralize.singular(w), pluralize(w, 1, true), pluralize(w, 3, true)]); },
  },
  compat: { package: 'pluralize', calls: [['run', { words: ['person', 'mouse', 'octopus', 'sheep', 'tests'] }]] },
};
