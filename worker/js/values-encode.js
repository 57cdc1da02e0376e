// V8 -> msgpack for every object (jsv::ToMsgpack, js_value_write.cc): this
// JavaScript walks the value and writes msgpack into a Uint8Array scratch of
// its own; native code copies the bytes out once. Through the API every key,
// every Get and every string would be a call into V8 (entry, handle scope,
// lookup), several times what the same work costs in compiled JavaScript.
//
// Compiled and run once per context, on its first conversion of an object,
// with the builtins it calls as jsv::EncoderInstall kept them when the
// context was made, before any script ran: a script replacing Object.keys,
// String.prototype.charCodeAt, a typed array method or a getter on a
// prototype changes nothing here. It reads a value only as JSON.stringify
// does (own enumerable keys, Get, toJSON, proxy traps; and the prototype, to
// tell plain objects apart) and calls nothing through the value's prototypes
// but toJSON. What it keeps state in are null-prototype objects: a store to
// a new index of a real array would meet setters a script put on
// Array.prototype.
//
// `native(op, ...)` (Writer::Native) does what JavaScript cannot: tell a
// Date, RegExp, Map, Set, Error, ArrayBuffer or view or boxed primitive apart
// from a plain object (asked only for objects whose prototype is not
// Object.prototype or null), pack those leaves, list a Map's or a Set's
// contents, and write a long string (past SHORT UTF-16 units) straight into
// the scratch. The codes below are Writer's (js_value_write.cc): keep both
// in step.
//
// A failure (cycle, depth, lone surrogate, ...) sets `err` and every level
// returns, adding its step of the path; encode then answers [err, a, b,
// steps, count] for Writer to word the message as before. An exception (a
// getter's, toJSON's, a termination) simply unwinds through.
(function (native, B, MAX_DEPTH, MAX_ARRAY, KEEP) {
  'use strict';
  // B: the builtins as EncoderInstall kept them (kBuiltins' order)
  const keysOf = B[0];
  const isArray = B[1];
  const protoOf = B[2];
  const objectProto = B[3];
  const apply = B[4];
  const floor = B[5];
  const uncurry = apply(B[6], B[6], [B[7]]); // bind.bind(call)
  const charCodeAt = uncurry(B[8]);
  const U8 = B[9];
  const AB = B[10];
  const F64 = B[11];
  const copyWithin = uncurry(B[12]);
  const copyFrom = uncurry(B[13]);

  // Writer::Op
  const OP_KIND = 0, OP_UNBOX = 1, OP_LEAF = 2, OP_TAKE = 3, OP_STR = 4,
    OP_ENTRIES = 5, OP_ITEMS = 6;
  // Writer::Kind; ARRAY and FUNC are found here, the rest by OP_KIND
  const PLAIN = 0, ARRAY = 1, FUNC = 2, LEAF = 3, RAW = 4, MAP = 5, SET = 6,
    ERROR = 7, BOXED = 8;
  // Writer::Stop
  const E_NATIVE = 1, E_CYCLE = 2, E_DEPTH = 3, E_SURROGATE = 4,
    E_LONG_ARRAY = 5, E_NO_ROOM = 6;
  // Writer::Step::Kind
  const S_INDEX = 0, S_KEY = 1, S_MAP_KEY = 2, S_MAP_VALUE = 3;

  const INITIAL = 16384;
  const SHORT = 85; // 3 * 85 bytes of UTF-8 still fit a str8 header
  const TWO32 = 4294967296, TWO63 = 9223372036854775808;
  const ERROR_KEYS = ['name', 'message', 'stack'];

  // float64 through a view of 8 bytes, in the host's byte order
  const f64buf = new AB(8);
  const f64 = new F64(f64buf);
  const f8 = new U8(f64buf);
  f64[0] = 1;
  const LE = f8[7] === 0x3f;

  let ab, buf, cap, pos = 0; // the scratch: buf views all of ab, cap bytes
  let stack = { __proto__: null }, top = -1; // the containers on the path
  let trail = { __proto__: null }, steps = 0; // the path, innermost first
  let err = 0, errA = 0, errB = 0;
  let busy = false; // a conversion runs (a getter may start another)
  let kind = PLAIN; // what resolve() found the object it gave back to be

  // A new scratch, set only once it is whole (an allocation that throws, or
  // a termination, leaves the one before).
  function scratch() {
    const a = new AB(INITIAL);
    const b = new U8(a);
    ab = a;
    buf = b;
    cap = INITIAL;
  }
  scratch();

  function fail(code, a, b) {
    err = code;
    errA = a;
    errB = b;
  }

  function step(s, a, b) {
    if (steps > 3 * MAX_DEPTH + 6) return; // a path is never longer
    trail[steps] = s;
    trail[steps + 1] = a;
    trail[steps + 2] = b;
    steps += 3;
  }

  function room(n) {
    if (pos + n > cap) grow(pos + n);
  }

  // Doubling; a buffer that cannot be had stops the conversion (writes past
  // the end of a typed array are dropped, and nothing of it is used).
  function grow(need) {
    if (err === E_NO_ROOM) return;
    let c = cap * 2;
    while (c < need) c *= 2;
    let a, b;
    try {
      a = new AB(c);
      b = new U8(a);
    } catch (e) {
      fail(E_NO_ROOM, 0, 0);
      return;
    }
    copyFrom(b, buf);
    ab = a;
    buf = b;
    cap = c;
  }

  function nil() {
    room(1);
    buf[pos++] = 0xc0;
  }

  function put32(p, x) {
    buf[p] = x >>> 24;
    buf[p + 1] = x >>> 16;
    buf[p + 2] = x >>> 8;
    buf[p + 3] = x;
  }

  // A map (0x80, 0xde) or array (0x90, 0xdc) header at pos.
  function head(n, small, big) {
    if (n < 16) {
      buf[pos++] = small | n;
    } else if (n < 65536) {
      buf[pos] = big;
      buf[pos + 1] = n >> 8;
      buf[pos + 2] = n;
      pos += 3;
    } else {
      buf[pos] = big + 1;
      put32(pos + 1, n);
      pos += 5;
    }
  }

  function headSize(n) {
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
  }

  // A map whose header took h bytes at `at` for at most as many entries as
  // it got: the header for `count`, the entries moved up if it is smaller.
  function close(at, h, count) {
    if (h === 1) {
      buf[at] = 0x80 | count;
      return;
    }
    const hc = headSize(count);
    if (hc !== h) {
      copyWithin(buf, at + hc, at + h, pos);
      pos -= h - hc;
    }
    const end = pos;
    pos = at;
    head(count, 0x80, 0xde);
    pos = end;
  }

  // PackNumber's rule: a finite integer in [-2^63, 2^63) that is not -0 as
  // the smallest int, anything else as float64. The caller made room for 9.
  function num(d) {
    if (d >= 0 && d < 128 && (d | 0) === d) {
      if (d !== 0 || 1 / d > 0) buf[pos++] = d;
      else dbl(d);
    } else if ((d | 0) === d) {
      if (d === 0 && 1 / d < 0) dbl(d);
      else int32(d);
    } else if (d % 1 === 0 && d >= -TWO63 && d < TWO63) {
      int64(d);
    } else {
      dbl(d);
    }
  }

  function int32(d) {
    if (d >= 0) {
      if (d < 128) {
        buf[pos++] = d;
      } else if (d < 256) {
        buf[pos] = 0xcc;
        buf[pos + 1] = d;
        pos += 2;
      } else if (d < 65536) {
        buf[pos] = 0xcd;
        buf[pos + 1] = d >> 8;
        buf[pos + 2] = d;
        pos += 3;
      } else {
        buf[pos] = 0xce;
        put32(pos + 1, d);
        pos += 5;
      }
    } else if (d >= -32) {
      buf[pos++] = d;
    } else if (d >= -128) {
      buf[pos] = 0xd0;
      buf[pos + 1] = d;
      pos += 2;
    } else if (d >= -32768) {
      buf[pos] = 0xd1;
      buf[pos + 1] = d >> 8;
      buf[pos + 2] = d;
      pos += 3;
    } else {
      buf[pos] = 0xd2;
      put32(pos + 1, d);
      pos += 5;
    }
  }

  // |d| >= 2^31: uint32, uint64 or int64 (two's complement from hi and lo).
  function int64(d) {
    if (d >= 0 && d < TWO32) {
      buf[pos] = 0xce;
      put32(pos + 1, d);
      pos += 5;
      return;
    }
    const hi = floor(d / TWO32);
    buf[pos] = d >= 0 ? 0xcf : 0xd3;
    put32(pos + 1, hi);
    put32(pos + 5, d - hi * TWO32);
    pos += 9;
  }

  function dbl(d) {
    f64[0] = d;
    buf[pos] = 0xcb;
    for (let i = 0; i < 8; i++) buf[pos + 1 + i] = f8[LE ? 7 - i : i];
    pos += 9;
  }

  // A string as UTF-8: short ones here (ASCII at one store a unit), long
  // ones by OP_STR; a lone surrogate stops the conversion.
  function str(s) {
    const n = s.length;
    if (n > SHORT) return strLong(s, n);
    if (pos + 2 + 3 * n > cap) grow(pos + 2 + 3 * n);
    const h = n < 32 ? 1 : 2;
    const p = pos + h;
    for (let i = 0; i < n; i++) {
      const c = charCodeAt(s, i);
      if (c > 0x7f) return strWide(s, n, i, h);
      buf[p + i] = c;
    }
    if (h === 1) {
      buf[pos] = 0xa0 | n;
    } else {
      buf[pos] = 0xd9;
      buf[pos + 1] = n;
    }
    pos = p + n;
  }

  // str() from unit i on, the units before it ASCII and written.
  function strWide(s, n, i, h) {
    let q = pos + h + i;
    for (; i < n; i++) {
      let c = charCodeAt(s, i);
      if (c < 0x80) {
        buf[q++] = c;
      } else if (c < 0x800) {
        buf[q] = 0xc0 | (c >> 6);
        buf[q + 1] = 0x80 | (c & 0x3f);
        q += 2;
      } else if (c < 0xd800 || c > 0xdfff) {
        buf[q] = 0xe0 | (c >> 12);
        buf[q + 1] = 0x80 | ((c >> 6) & 0x3f);
        buf[q + 2] = 0x80 | (c & 0x3f);
        q += 3;
      } else {
        const c2 = c <= 0xdbff && i + 1 < n ? charCodeAt(s, i + 1) : 0;
        if (c2 < 0xdc00 || c2 > 0xdfff) return fail(E_SURROGATE, c, i);
        c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
        i++;
        buf[q] = 0xf0 | (c >> 18);
        buf[q + 1] = 0x80 | ((c >> 12) & 0x3f);
        buf[q + 2] = 0x80 | ((c >> 6) & 0x3f);
        buf[q + 3] = 0x80 | (c & 0x3f);
        q += 4;
      }
    }
    const len = q - pos - h;
    if (h === 1 && len > 31) { // the fixstr guess was too small
      copyWithin(buf, pos + 2, pos + 1, q);
      q++;
      h = 2;
    }
    if (h === 1) {
      buf[pos] = 0xa0 | len;
    } else {
      buf[pos] = 0xd9;
      buf[pos + 1] = len;
    }
    pos = q;
  }

  function strLong(s, n) {
    room(5 + 3 * n);
    const r = native(OP_STR, s, buf, pos);
    if (r >= 0) pos = r;
    else fail(E_NATIVE, 0, 0);
  }

  // A Date, RegExp, BigInt, ArrayBuffer or view, packed by native code; it
  // says how much room it needs when the scratch is short of it.
  function leaf(v) {
    let r = native(OP_LEAF, v, buf, pos);
    if (r < -1) {
      room(-2 - r);
      r = native(OP_TAKE, buf, pos);
    }
    if (r >= 0) pos = r;
    else fail(E_NATIVE, 0, 0);
  }

  function classify(v) {
    if (typeof v === 'function') return FUNC;
    if (isArray(v)) return ARRAY;
    const p = protoOf(v);
    return p === objectProto || p === null ? PLAIN : native(OP_KIND, v);
  }

  // SerializeJSONProperty's steps 2-4 for an object or function v: toJSON,
  // called with the key as JSON.stringify passes it (`key`, or the index
  // `idx` as a string when idx >= 0), then boxed primitives unwrapped. What
  // it gives back is to be written; `kind` says what kind of object it is.
  // toJSON is read first, as JSON.stringify does (a revoked proxy fails
  // there); a Date's or an ArrayBuffer's or view's is read but not called.
  function resolve(v, key, idx) {
    const f = v.toJSON;
    let k = classify(v);
    if (typeof f === 'function' && k !== RAW) {
      v = apply(f, v, [idx >= 0 ? '' + idx : key]);
      if (typeof v !== 'function' && (typeof v !== 'object' || v === null))
        return v;
      k = classify(v);
    }
    if (k === BOXED) return native(OP_UNBOX, v);
    kind = k;
    return v;
  }

  // A resolved value at depth d (an object's is `kind`).
  function pack(v, d) {
    const t = typeof v;
    if (t === 'string') {
      str(v);
    } else if (t === 'number') {
      room(9);
      num(v);
    } else if (t === 'object') {
      if (v === null) nil();
      else container(v, kind, d);
    } else if (t === 'boolean') {
      room(1);
      buf[pos++] = v ? 0xc3 : 0xc2;
    } else if (t === 'bigint') {
      leaf(v);
    } else {
      nil();
    }
  }

  // An array's element, a Map's key or value, or the top value: nil where
  // JSON has nothing to say.
  function slot(v, d, key, idx) {
    if (typeof v === 'function' || (typeof v === 'object' && v !== null))
      v = resolve(v, key, idx);
    const t = typeof v;
    if (t === 'undefined' || t === 'function' || t === 'symbol') nil();
    else pack(v, d);
  }

  // An object's key k and its value v at depth d + 1, unless JSON leaves
  // the pair out; whether it was written.
  function entry(k, v, d) {
    const t = typeof v;
    if (t === 'string') {
      str(k);
      if (err === 0) str(v);
      return true;
    }
    if (t === 'number') {
      str(k);
      if (pos + 9 > cap) grow(pos + 9);
      num(v);
      return true;
    }
    if (t === 'object' || t === 'function') {
      if (v !== null) {
        v = resolve(v, k, -1);
        const r = typeof v;
        if (r === 'object' && v !== null) {
          str(k);
          if (err === 0) container(v, kind, d + 1);
          return true;
        }
        if (r === 'undefined' || r === 'function' || r === 'symbol')
          return false;
      }
      str(k);
      if (err === 0) pack(v, d + 1);
      return true;
    }
    if (t === 'boolean' || t === 'bigint') {
      str(k);
      if (err === 0) pack(v, d + 1);
      return true;
    }
    return false; // undefined, symbol
  }

  // An object, array, Map, Set or Error: not one of its own ancestors, not
  // too deep, then its contents.
  function container(o, k, d) {
    if (k === LEAF || k === RAW) return leaf(o);
    for (let i = 0; i < d; i++)
      if (stack[i] === o) return fail(E_CYCLE, 0, 0);
    if (d >= MAX_DEPTH) return fail(E_DEPTH, 0, 0);
    stack[d] = o;
    if (d > top) top = d;
    if (k === ARRAY) {
      list(o, d, o.length >>> 0);
    } else if (k === MAP) {
      map(o, d);
    } else if (k === SET) {
      const items = native(OP_ITEMS, o);
      list(items, d, items.length);
    } else if (k === ERROR) {
      error(o, d);
    } else {
      walk(o, d);
    }
  }

  // Own enumerable string keys in Object.keys order, each value read and
  // converted before the next (JSON.stringify's order of getters). The map
  // header is written for every key, made right at the end.
  function walk(o, d) {
    const ks = keysOf(o);
    const n = ks.length;
    if (pos + 5 > cap) grow(pos + 5);
    const at = pos;
    const h = n < 16 ? 1 : n < 65536 ? 3 : 5;
    pos += h;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const k = ks[i];
      if (entry(k, o[k], d)) count++;
      if (err !== 0) return step(S_KEY, k, 0);
    }
    close(at, h, count);
  }

  // `length` elements (what JSON cannot say and holes as nil).
  function list(a, d, n) {
    if (n > MAX_ARRAY) return fail(E_LONG_ARRAY, 0, 0);
    room(5);
    head(n, 0x90, 0xdc);
    for (let i = 0; i < n; i++) {
      slot(a[i], d + 1, '', i);
      if (err !== 0) return step(S_INDEX, i, 0);
    }
  }

  // Every entry, keys converted as values (msgpack allows any key).
  function map(m, d) {
    const flat = native(OP_ENTRIES, m); // [k0, v0, k1, v1, ...]
    const n = flat.length >>> 1;
    room(5);
    head(n, 0x80, 0xde);
    for (let i = 0; i < n; i++) {
      const k = flat[2 * i];
      slot(k, d + 1, '', i);
      if (err !== 0) return step(S_MAP_KEY, i, 0);
      slot(flat[2 * i + 1], d + 1, k, -1);
      if (err !== 0) return step(S_MAP_VALUE, k, i);
    }
  }

  // {name, message, stack} (each its string, or nil), whether own,
  // enumerable or not, then the other own enumerable keys.
  function error(e, d) {
    const ks = keysOf(e);
    const n = ks.length;
    room(5);
    const at = pos;
    const h = headSize(n + 3);
    pos += h;
    let count = 0;
    for (let j = 0; j < 3; j++) {
      const k = ERROR_KEYS[j];
      let v = e[k];
      if (v !== undefined && v !== null && typeof v !== 'string') v = `${v}`;
      str(k);
      if (err === 0) {
        if (typeof v === 'string') str(v);
        else nil();
      }
      if (err !== 0) return step(S_KEY, k, 0);
      count++;
    }
    for (let i = 0; i < n; i++) {
      const k = ks[i];
      if (k === 'name' || k === 'message' || k === 'stack') continue;
      if (entry(k, e[k], d)) count++;
      if (err !== 0) return step(S_KEY, k, 0);
    }
    close(at, h, count);
  }

  // One conversion on the current scratch: the bytes (a view of them), or
  // why it failed.
  function run(v) {
    pos = 0;
    err = 0;
    steps = 0;
    top = -1;
    slot(v, 0, '', -1);
    for (let i = 0; i <= top; i++) stack[i] = undefined;
    if (err !== 0) return [err, errA, errB, trail, steps];
    const out = new U8(ab, 0, pos);
    if (cap > KEEP) scratch(); // native code detaches this one once copied
    return out;
  }

  // A conversion that a getter started in the middle of another: on
  // scratch and state of its own, the outer one's given back however it
  // ends.
  function nested(v) {
    const s = [ab, buf, cap, pos, stack, top, trail, steps, err, errA, errB];
    try {
      scratch();
      stack = { __proto__: null };
      trail = { __proto__: null };
      return run(v);
    } finally {
      ab = s[0];
      buf = s[1];
      cap = s[2];
      pos = s[3];
      stack = s[4];
      top = s[5];
      trail = s[6];
      steps = s[7];
      err = s[8];
      errA = s[9];
      errB = s[10];
    }
  }

  // `fresh`: no conversion of this context is under way. One that a
  // termination cut short left `busy` set, and maybe its state half changed:
  // the next starts from new.
  return function encode(v, fresh) {
    if (busy) {
      if (!fresh) return nested(v);
      scratch();
      stack = { __proto__: null };
      trail = { __proto__: null };
    }
    busy = true;
    const r = run(v);
    busy = false;
    return r;
  };
})
