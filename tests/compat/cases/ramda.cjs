// Ramda (CommonJS): curried composition.
const R = require('ramda');

module.exports = {
  functions: {
    run(data) {
      const top = R.pipe(R.filter(R.propSatisfies(R.gt(R.__, 10), 'score')), R.sortBy(R.prop('name')), R.map(R.prop('name')));
      return { top: top(data.rows), sum: R.sum(R.pluck('score', data.rows)), zipped: R.zipObj(['a', 'b'], [1, 2]) };
    },
  },
  compat: { package: 'ramda', calls: [['run', { rows: [{ name: 'z', score: 20 }, { name: 'a', score: 15 }, { name: 'm', score: 5 }] }]] },
};
