// uuid (ES module): name-based v5 and v3 (SHA-1 and MD5), random v4 and
// time-ordered v7 checked by shape, parse/stringify/validate.
import { v3, v4, v5, v7, validate, version, parse, stringify, NIL } from 'uuid';

export default {
  functions: {
    run(data) {
      const r = v4();
      const t = v7();
      return {
        v5: v5(data.name, v5.URL),
        v5dns: v5(data.name, v5.DNS),
        v3: v3(data.name, v3.URL),
        v4: [validate(r), version(r)],
        v7: [validate(t), version(t)],
        roundTrip: stringify(parse(data.uuid)),
        nil: NIL,
      };
    },
  },
  compat: {
    package: 'uuid',
    calls: [['run', { name: 'https://example.com/jshost', uuid: '6ba7b810-9dad-11d1-80b4-00c04fd430c8' }]],
  },
};
