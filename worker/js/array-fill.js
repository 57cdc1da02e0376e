// Array.prototype.fill, made interruptible (see below). The global object
// is not used: the argument list is that of every world prelude.
(function (natives) {
'use strict';
const define = natives.define, isArray = Array.isArray;

// Array.prototype.fill on an array too long for fast elements (a dictionary)
// takes V8's generic path: one C++ loop with no interrupt check, so neither a
// deadline nor the heap limit's termination stops it, and at the heap limit
// it kept being granted memory for tens of seconds. Filled in slices, the
// calls between them are JS, where a termination lands.
const arrayFill = Array.prototype.fill, apply = Reflect.apply, trunc = Math.trunc;
const kSlice = 1 << 16; // the generic path allocates ~120 bytes an element
function clampIndex(v, len, dflt) {
  if (v === undefined) return dflt;
  let n = +v;
  n = n !== n ? 0 : trunc(n);
  if (n < 0) return n + len > 0 ? n + len : 0;
  return n < len ? n : len;
}
// A call, not just the loop: a short loop may never check for interrupts
// in the interpreter, a function entry always does.
function fillSlice(a, value, from, to) { apply(arrayFill, a, [value, from, to]); }
define(Array.prototype, 'fill', {
  fill(value) { // length 1, as the builtin
    if (!isArray(this) || this.length <= 2 * kSlice)
      return apply(arrayFill, this, arguments);
    const len = this.length;
    const from = clampIndex(arguments[1], len, 0), to = clampIndex(arguments[2], len, len);
    for (let k = from; k < to; k += kSlice)
      fillSlice(this, value, k, to - k > kSlice ? k + kSlice : to);
    return this;
  },
}.fill);
});
