// Calls a config function the way js-host did and docs/config.md says:
// fn.call({name, host: {config}}, data, cb); whichever comes first wins of
// cb(err, result), a plain returned value (fn takes < 2 params) or a promise.
'use strict';

function callFunction(config, name, data, done) {
  const fns = config.functions || {};
  const fn = Object.prototype.hasOwnProperty.call(fns, name) ? fns[name] : undefined;
  if (typeof fn !== 'function') {
    done({type: 'NotFound', message: 'no function ' + name});
    return;
  }
  let settled = false;
  const once = (err, result) => {
    if (settled) return;
    settled = true;
    if (err) done({type: 'JSError', message: String(err && err.message || err),
                   name: err && err.name, stack: err && err.stack});
    else done(null, result);
  };
  let ret;
  try {
    ret = fn.call({name, host: {config}}, data, once);
  } catch (e) {
    once(e);
    return;
  }
  if (ret && typeof ret.then === 'function')
    ret.then((v) => once(null, v), (e) => once(e || new Error('rejected')));
  else if (fn.length < 2)
    once(null, ret);
}

module.exports = {callFunction};
