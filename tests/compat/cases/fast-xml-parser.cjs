// fast-xml-parser (CommonJS build): parse and build.
const { XMLParser, XMLBuilder, XMLValidator } = require('fast-xml-parser');

module.exports = {
  functions: {
    run(data) {
      const parsed = new XMLParser({ ignoreAttributes: false }).parse(data.xml);
      return { parsed, built: new XMLBuilder({ ignoreAttributes: false }).build(parsed), valid: XMLValidator.validate('<a><b></a>') === true };
    },
  },
  compat: { package: 'fast-xml-parser', calls: [['run', { xml: '<root a="1"><item id="x">one</item><item id="y">2</item><empty/></root>' }]] },
};
