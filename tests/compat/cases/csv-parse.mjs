// csv-parse's sync API (ES modules).
import { parse } from 'csv-parse/sync';

export default {
  functions: {
    run(data) { return parse(data.csv, { columns: true, skip_empty_lines: true, cast: true }); },
  },
  compat: { package: 'csv-parse', calls: [['run', { csv: 'a,b\n1,"x,y"\n2,"say ""hi"""\n' }]] },
};
