// valibot 1 (ES modules): pipes, transforms, flattened issues.
import * as v from 'valibot';

const Login = v.object({
  email: v.pipe(v.string(), v.email('bad email')),
  password: v.pipe(v.string(), v.minLength(8, 'too short')),
  remember: v.optional(v.boolean(), false),
});

export default {
  functions: {
    run(data) {
      return data.inputs.map((i) => {
        const r = v.safeParse(Login, i);
        return r.success ? { ok: r.output } : { errors: v.flatten(r.issues) };
      });
    },
  },
  compat: { package: 'valibot', calls: [['run', { inputs: [{ email: 'a@b.co', password: '12345678' }, { email: 'x', password: '1' }] }]] },
};
