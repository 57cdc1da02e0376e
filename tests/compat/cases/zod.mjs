// zod 4 (ES module): parsing, defaults, transforms and error issues.
import { z } from 'zod';

const User = z.object({
  name: z.string().min(2),
  email: z.email(),
  age: z.number().int().positive().optional(),
  tags: z.array(z.string()).default([]),
}).transform((u) => ({ ...u, display: `${u.name} <${u.email}>` }));

export default {
  functions: {
    parse(data) {
      const r = User.safeParse(data);
      return r.success ? { ok: r.data } : { issues: r.error.issues.map((i) => ({ path: i.path, code: i.code, message: i.message })) };
    },
  },
  compat: {
    package: 'zod',
    calls: [
      ['parse', { name: 'Ann', email: 'ann@example.com', age: 30 }],
      ['parse', { name: 'A', email: 'nope', age: -1.5 }],
    ],
  },
};
