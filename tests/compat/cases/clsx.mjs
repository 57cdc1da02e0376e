// clsx (ES module build).
import { clsx } from 'clsx';

export default {
  functions: { run(data) { return clsx('a', data.flags, ['b', { c: true, d: false }], null, 0, 'e'); } },
  compat: { package: 'clsx', calls: [['run', { flags: { on: true, off: false } }]] },
};
