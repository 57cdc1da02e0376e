// date-fns from CommonJS (its index.cjs build).
const { eachDayOfInterval, format } = require('date-fns');

module.exports = {
  functions: {
    days(data) {
      return eachDayOfInterval({ start: new Date(data.start), end: new Date(data.end) }).map((d) => format(d, 'EEE d'));
    },
  },
  compat: {
    package: 'date-fns',
    calls: [['days', { start: '2024-01-30T00:00:00Z', end: '2024-02-02T00:00:00Z' }]],
  },
};
