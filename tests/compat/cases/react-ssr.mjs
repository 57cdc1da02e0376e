// React 19 server rendering from an ES module: CommonJS packages imported by
// name (react-dom/server's named exports, as Node derives them), hooks, and
// the streaming renderer (renderToReadableStream / renderToPipeableStream
// differ by condition; renderToString is the common ground).
import React, { useId, useState } from 'react';
import { renderToString } from 'react-dom/server';

const h = React.createElement;
function Field({ label }) {
  const id = useId();
  const [value] = useState(label.toUpperCase());
  return h('div', null, h('label', { htmlFor: id }, label), h('input', { id, defaultValue: value }));
}
function Form({ fields }) {
  return h('form', null, fields.map((f) => h(Field, { key: f, label: f })));
}

export default {
  functions: {
    form(data) { return renderToString(h(Form, data)); },
    version() { return React.version; },
  },
  compat: {
    package: 'react',
    calls: [['form', { fields: ['name', 'email'] }], ['version', {}]],
  },
};
