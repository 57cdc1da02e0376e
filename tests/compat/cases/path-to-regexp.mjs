// path-to-regexp 9 (ES module only): route matching and compiling.
import { match, compile } from 'path-to-regexp';

export default {
  functions: {
    run(data) {
      const m = match('/users/:id{/:tab}');
      return { hits: data.paths.map((p) => { const r = m(p); return r && { path: r.path, params: { ...r.params } }; }), built: compile('/files/*path')({ path: ['a', 'b c'] }) };
    },
  },
  compat: { package: 'path-to-regexp', calls: [['run', { paths: ['/users/7', '/users/7/posts', '/nope'] }]] },
};
