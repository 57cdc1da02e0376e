// cookie 2 (ES module only): parse and serialize.
import { parseCookie, stringifySetCookie } from 'cookie';

export default {
  functions: {
    run(data) {
      return { parsed: { ...parseCookie(data.header) }, set: stringifySetCookie({ name: 'sid', value: 'a b;c', httpOnly: true, maxAge: 3600, path: '/', sameSite: 'lax' }) };
    },
  },
  compat: { package: 'cookie', calls: [['run', { header: 'foo=bar; equation=E%3Dmc%5E2; empty=' }]] },
};
