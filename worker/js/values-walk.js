// A plain object's own enumerable keys and their values are read by this
// JavaScript, compiled once per context (Writer::Walk, js_value_write.cc):
// through the API every key read from Object.keys' array and every Get is a
// call into V8 (entry, handle scope, lookup), several times what the same
// reads cost in compiled JavaScript. It hands each key and value to `entry`
// (Writer::Entry, a native function only this closure holds) as call
// arguments, which native code reads in place; entry returns false to end the
// walk when the conversion failed, and an exception (a getter's, toJSON's, a
// termination) ends it by itself. It uses nothing a script can replace: the
// context's original Object.keys (`keys`, kObjectKeysPrivate), own elements
// of the array that returns, and syntax.
(function (keys, entry) {
  'use strict';
  return function walk(o) {
    const ks = keys(o);
    for (let i = 0, n = ks.length; i < n; i++) {
      const k = ks[i];
      if (!entry(k, o[k])) return;
    }
  };
})
