// terser (ES module build): minify with mangling and compression.
import { minify } from 'terser';

export default {
  functions: {
    async minify(data) {
      const out = await minify(data.code, { mangle: { toplevel: true }, compress: { passes: 2 } });
      return out.code;
    },
  },
  compat: {
    package: 'terser',
    calls: [['minify', {
      code: 'function add(first, second) { const total = first + second; return total; }\n' +
            'export const result = add(1, 2) * 10; if (false) { console.log("dead"); }',
    }]],
  },
};
