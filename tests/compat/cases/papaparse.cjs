// Papa Parse (CommonJS/UMD): CSV with headers and dynamic typing.
const Papa = require('papaparse');

module.exports = {
  functions: {
    run(data) {
      const r = Papa.parse(data.csv, { header: true, dynamicTyping: true, skipEmptyLines: true });
      return { rows: r.data, fields: r.meta.fields, back: Papa.unparse(r.data) };
    },
  },
  compat: { package: 'papaparse', calls: [['run', { csv: 'name,age,city\n"Doe, J",42,"New\nYork"\nAnn,7,Paris\n' }]] },
};
