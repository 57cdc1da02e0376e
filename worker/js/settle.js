// How JavaScript answers a call: closures that carry the call's id to one
// native of the engine, settle(kind, id, name, arity, a, b), with kind
// 0 = cb(a, b) was called, 1 = the returned promise fulfilled with a,
// 2 = it rejected with a. The engine (js_call.cc) runs this once per realm
// and keeps the two functions it returns: made per call, closures are cheap
// where a native function per call would not be.
(function (settle) {
  'use strict';
  const apply = Reflect.apply;
  const then = Promise.prototype.then;
  return [
    // makeCallback(id, name, arity): the `cb` a config function is given.
    (id, name, arity) => (err, result) =>
      settle(0, id, name, arity, err, result),
    // awaitCall(promise, id, name, arity): the call settles with the promise.
    (p, id, name, arity) => {
      apply(then, p, [
        (v) => settle(1, id, name, arity, v),
        (e) => settle(2, id, name, arity, e),
      ]);
    },
  ];
});
