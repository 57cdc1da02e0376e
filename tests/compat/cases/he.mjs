// he 2 (ES module only): HTML entity encode and decode.
import { encode, decode, escape } from 'he';

export default {
  functions: {
    run(data) {
      return { enc: encode(data.text), named: encode(data.text, { useNamedReferences: true }), esc: escape(data.text), dec: decode(data.encoded) };
    },
  },
  compat: {
    package: 'he',
    calls: [['run', { text: 'foo © bar ≠ baz 𝌆 qux <>', encoded: 'foo &copy; bar &ne; baz &#x1D306; &amp' }]],
  },
};
