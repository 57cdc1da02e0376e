// htmlparser2 (ES modules only): the streaming parser's callbacks.
import { Parser } from 'htmlparser2';

export default {
  functions: {
    tags(data) {
      const seen = [];
      const p = new Parser({
        onopentag(name, attrs) { seen.push(['open', name, attrs]); },
        ontext(text) { if (text.trim()) seen.push(['text', text]); },
        onclosetag(name) { seen.push(['close', name]); },
      }, { decodeEntities: true });
      p.write(data.html);
      p.end();
      return seen;
    },
  },
  compat: {
    package: 'htmlparser2',
    calls: [['tags', { html: '<div class="a"><p>Hi &amp; <b>bye</b></p><img src=x.png></div>' }]],
  },
};
