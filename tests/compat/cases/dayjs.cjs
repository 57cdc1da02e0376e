// dayjs (CommonJS) with its utc and relativeTime plugins.
const dayjs = require('dayjs');
const utc = require('dayjs/plugin/utc');
const relativeTime = require('dayjs/plugin/relativeTime');

dayjs.extend(utc);
dayjs.extend(relativeTime);

module.exports = {
  functions: {
    run(data) {
      const d = dayjs.utc(data.date);
      return {
        plus: d.add(1, 'month').format('YYYY-MM-DD HH:mm'),
        start: d.startOf('week').toISOString(),
        from: d.from(dayjs.utc(data.other)),
        valid: dayjs('not a date').isValid(),
      };
    },
  },
  compat: {
    package: 'dayjs',
    calls: [['run', { date: '2024-01-31T10:20:00Z', other: '2024-05-01T00:00:00Z' }]],
  },
};
