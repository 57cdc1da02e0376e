// marked (current: "type": "module", ES modules only), imported statically.
import { marked, Marked } from 'marked';

const doc = '# Title\n\nSome *emphasis*, `code` and a [link](https://example.com).\n\n' +
  '- one\n- two\n\n```js\nconst x = 1 < 2;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n';

export default {
  functions: {
    parse(data) { return marked.parse(data.markdown); },
    inline(data) { return new Marked({ gfm: true, breaks: true }).parseInline(data.markdown); },
  },
  compat: {
    package: 'marked',
    calls: [['parse', { markdown: doc }], ['inline', { markdown: '**bold**\nline <b>' }]],
  },
};
