// An ES module config: export default, as docs/config.md allows.
import { shout } from './lib/shout.mjs';

export default {
  functions: {
    shout(data) {
      return shout(data.s);
    },
  },
  memory: 128,
};
