// Markdown to HTML with marked (current marked is ES modules only), for the
// jshost command and for Python (see README.md).
import { Marked } from 'marked';

const marked = new Marked({ gfm: true });

export default {
  functions: {
    // data: {markdown: str, inline?: bool}: the HTML, as a string.
    html(data) {
      if (typeof data.markdown !== 'string') throw new TypeError('html: data.markdown must be a string');
      return data.inline ? marked.parseInline(data.markdown) : marked.parse(data.markdown);
    },
  },
};
