// superstruct 2 (ES modules).
import { object, string, number, array, optional, validate, defaulted, create } from 'superstruct';

const Article = object({ id: number(), title: string(), tags: array(string()), rating: optional(number()) });
const WithDefault = defaulted(object({ n: number() }), { n: 1 });

export default {
  functions: {
    run(data) {
      const [err, value] = validate(data.good, Article);
      const [bad] = validate(data.bad, Article);
      return { ok: !err && value, bad: bad && bad.failures().map((f) => [f.path.join('.'), f.message]), def: create({}, WithDefault) };
    },
  },
  compat: { package: 'superstruct', calls: [['run', { good: { id: 1, title: 't', tags: ['a'] }, bad: { id: 'x', title: 2, tags: [1] } }]] },
};
