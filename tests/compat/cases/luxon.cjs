// Luxon (CommonJS): time zones and formatting through Intl.
const { DateTime, Duration, Interval } = require('luxon');

module.exports = {
  functions: {
    run(data) {
      const d = DateTime.fromISO(data.date, { zone: 'utc' });
      return {
        iso: d.plus({ days: 3, hours: 5 }).toISO(),
        ny: d.setZone('America/New_York').toFormat('yyyy-LL-dd HH:mm ZZZZ'),
        duration: Duration.fromObject({ hours: 26, minutes: 5 }).shiftTo('days', 'hours', 'minutes').toObject(),
        length: Interval.fromDateTimes(d, d.plus({ weeks: 2 })).length('days'),
        local: d.setLocale('en-US').toLocaleString(DateTime.DATE_FULL),
      };
    },
  },
  compat: { package: 'luxon', calls: [['run', { date: '2024-03-09T23:30:00Z' }]] },
};
