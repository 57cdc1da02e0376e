// entities (ES modules only): HTML and XML encoding and decoding.
import { encodeHTML, decodeHTML, encodeXML, escapeUTF8 } from 'entities';

export default {
  functions: {
    run(data) {
      return { html: encodeHTML(data.text), xml: encodeXML(data.text), utf8: escapeUTF8(data.text), back: decodeHTML(data.encoded) };
    },
  },
  compat: {
    package: 'entities',
    calls: [['run', { text: '<a href="x">café & ünï</a>', encoded: '&lt;&eacute;&#x263A;&nbsp;&amp' }]],
  },
};
