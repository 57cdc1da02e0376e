// node --import ./hooks.mjs ...: what measure.py varies, for both module
// systems. COMPAT_MEASURE (JSON): {conditions: [...], allowed: [built-ins
// that stay], stubs: bool, browserField: bool, processBrowser: bool}. ES modules go through the
// hooks of loader.mjs; require() through a wrapper of Module._load and
// Module._resolveFilename (Node 20 has no hook for require()).
import Module, { register, builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { browserMap, resolveBare, EMPTY } from './resolve.mjs';

const emptyFile = fileURLToPath(new URL('./empty.cjs', import.meta.url));

const opts = JSON.parse(process.env.COMPAT_MEASURE || '{}');
register('./loader.mjs', import.meta.url, { data: opts });
// What bundlers define and what TypeScript and readable-stream test before
// they reach for fs, os and friends.
if (opts.processBrowser) process.browser = true;

const builtins = new Set(builtinModules);
const conds = new Set([...opts.conditions, 'require']);

function stub(name) {
  return new Proxy({}, {
    get(_, k) {
      if (typeof k !== 'string') return undefined;
      return function () { throw new Error(`${name}.${k}() is not available in jshost`); };
    },
  });
}

const origLoad = Module._load;
Module._load = function (request, parent, isMain) {
  const parentFile = parent && parent.filename;
  if (opts.browserField && parentFile) {
    const mapped = browserMap(request, parentFile, undefined);
    if (mapped === EMPTY) return {};
    if (mapped) return origLoad.call(this, mapped, parent, isMain);
  }
  const name = request.startsWith('node:') ? request.slice(5) : request;
  if (builtins.has(name) || request.startsWith('node:')) {
    if (opts.allowed.includes(name)) return origLoad.call(this, request, parent, isMain);
    if (opts.stubs) return stub(name);
    throw new Error(`Node built-in module '${name}' is not available in jshost`);
  }
  return origLoad.call(this, request, parent, isMain);
};

const origResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, isMain, options) {
  const parentFile = parent && parent.filename;
  let file;
  if (parentFile && !request.startsWith('.') && !path.isAbsolute(request) &&
      !builtins.has(request) && !request.startsWith('node:')) {
    file = resolveBare(request, parentFile, conds);
  }
  if (file === undefined) file = origResolve.call(this, request, parent, isMain, options);
  if (opts.browserField && parentFile) {
    const mapped = browserMap(request, parentFile, file);
    if (mapped === EMPTY) file = emptyFile;
    else if (mapped !== undefined) file = mapped;
  }
  return file;
};
