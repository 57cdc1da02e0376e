// date-fns 4 (ES modules): formatting and arithmetic on fixed UTC dates.
import { format, addDays, differenceInCalendarDays, formatISO, parseISO, isWeekend, formatDistanceStrict } from 'date-fns';

export default {
  functions: {
    run(data) {
      const d = parseISO(data.date);
      return {
        formatted: format(d, "EEEE, d MMMM yyyy 'at' HH:mm"),
        plus10: formatISO(addDays(d, 10)),
        days: differenceInCalendarDays(parseISO(data.other), d),
        weekend: isWeekend(d),
        distance: formatDistanceStrict(d, parseISO(data.other)),
      };
    },
  },
  compat: {
    package: 'date-fns',
    calls: [['run', { date: '2024-02-25T14:30:00Z', other: '2024-03-31T00:00:00Z' }]],
  },
};
