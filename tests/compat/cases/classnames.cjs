// classnames (CommonJS), with its dedupe variant.
const classNames = require('classnames');
const dedupe = require('classnames/dedupe');

module.exports = {
  functions: { run(data) { return [classNames('a', data.flags, ['b', ['c']]), dedupe('x', 'x', { x: false, y: true })]; } },
  compat: { package: 'classnames', calls: [['run', { flags: { on: true, off: false } }]] },
};
