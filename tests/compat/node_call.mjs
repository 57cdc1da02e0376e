// node node_call.mjs CONFIG: the Node.js side of the compatibility suite.
// Loads a jshost config with Node, calls each function its `compat.calls`
// lists the way jshost's worker calls it (fn.call({name, host: {config}},
// data, cb); whichever comes first of cb, a plain return when the function
// takes fewer than two parameters, or the settlement of a returned promise),
// and prints one JSON document: the answers as they would come out of jshost
// (objects as maps, Date, bytes, BigInt, Error and RegExp as jshost converts
// them), so run.py can compare them with jshost's.
import { pathToFileURL } from 'node:url';

const configPath = process.argv[2];

// A value as it leaves jshost: what the value table turns it into, written
// as JSON with the tags the jshost command uses ($bin, $date, $bigint), plus
// $float for the numbers JSON cannot hold. `stack` is masked: Node's and
// jshost's stacks name different frames by design.
function toWire(v, depth = 0) {
  if (depth > 64) throw new Error('value nests too deep to compare');
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $float: 'NaN' };
    if (v === Infinity) return { $float: 'Infinity' };
    if (v === -Infinity) return { $float: '-Infinity' };
    if (Object.is(v, -0)) return { $float: '-0' };
    return v;
  }
  if (typeof v === 'bigint') {
    return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : { $bigint: String(v) };
  }
  if (typeof v === 'function' || typeof v === 'symbol') return null;
  if (v instanceof Date) return { $date: v.toISOString() };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString('base64') };
  if (ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  }
  if (v instanceof RegExp) return String(v);
  if (v instanceof Error) {
    const out = { name: v.name, message: v.message, stack: '<stack>' };
    for (const k of Object.keys(v)) out[k] = toWire(v[k], depth + 1);
    return out;
  }
  if (typeof v.toJSON === 'function') return toWire(v.toJSON(), depth + 1);
  if (Array.isArray(v)) return v.map((x) => toWire(x, depth + 1));
  if (v instanceof Map) {
    const out = {};
    for (const [k, x] of v) out[String(k)] = toWire(x, depth + 1);
    return out;
  }
  const out = {};
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    out[k] = toWire(x, depth + 1);
  }
  return out;
}

function firstLine(err) {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.split('\n')[0];
}

function callLikeJshost(fn, name, config, data) {
  return new Promise((resolve, reject) => {
    let done = false;
    const settle = (err, value) => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(value);
    };
    let ret;
    try {
      ret = fn.call({ name, host: { config } }, data, (err, value) => settle(err, value));
    } catch (err) {
      settle(err);
      return;
    }
    if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
      ret.then((value) => settle(null, value), (err) => settle(err));
    } else if (fn.length < 2) {
      settle(null, ret);
    }
  });
}

async function main() {
  const out = { config: configPath, answers: [] };
  let config;
  try {
    const ns = await import(pathToFileURL(configPath).href);
    config = ns.default;
    if (config === null || typeof config !== 'object' || typeof config.functions !== 'object') {
      throw new Error('the config exports no object with functions');
    }
  } catch (err) {
    out.load_error = firstLine(err);
    return out;
  }
  const compat = config.compat || {};
  out.package = compat.package;
  for (const [fn, data] of compat.calls || []) {
    // The data crosses as JSON from run.py to jshost: give Node the same.
    const sent = JSON.parse(JSON.stringify(data === undefined ? {} : data));
    const entry = { function: fn, data: sent };
    try {
      if (typeof config.functions[fn] !== 'function') throw new Error(`no function ${fn}`);
      entry.answer = toWire(await callLikeJshost(config.functions[fn], fn, config, sent));
    } catch (err) {
      entry.error = firstLine(err);
    }
    out.answers.push(entry);
  }
  return out;
}

main().then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    // Packages may leave timers behind; the answers are written.
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`node_call: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
