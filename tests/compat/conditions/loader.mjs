// ES module hooks for measure.py (registered by hooks.mjs): resolve with the
// measured condition set instead of Node's, turn Node built-ins jshost will
// not have into errors or lazy stubs, and apply the "browser" field.
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { browserMap, EMPTY } from './resolve.mjs';

let opts;
export function initialize(data) {
  opts = data;
}

const builtins = new Set(builtinModules);
function builtinName(s) {
  const n = s.startsWith('node:') ? s.slice(5) : s;
  return builtins.has(n) || s.startsWith('node:') ? n : undefined;
}

export async function resolve(specifier, context, next) {
  const parentFile = context.parentURL && context.parentURL.startsWith('file:')
    ? fileURLToPath(context.parentURL) : undefined;
  if (opts.browserField && parentFile) {
    const mapped = browserMap(specifier, parentFile, undefined);
    if (mapped === EMPTY) return { url: 'jshost-empty:' + specifier, shortCircuit: true };
    if (mapped) return { url: pathToFileURL(mapped).href, shortCircuit: true };
  }
  const b = builtinName(specifier);
  if (b !== undefined) {
    if (opts.allowed.includes(b)) return next(specifier, context);
    if (opts.stubs) return { url: 'jshost-stub:' + b, shortCircuit: true };
    throw new Error(`Node built-in module '${b}' is not available in jshost`);
  }
  const kind = context.conditions && context.conditions.includes('require') ? 'require' : 'import';
  const r = await next(specifier, { ...context, conditions: [...opts.conditions, kind] });
  if (opts.browserField && parentFile && r.url.startsWith('file:')) {
    const mapped = browserMap(specifier, parentFile, fileURLToPath(r.url));
    if (mapped === EMPTY) return { url: 'jshost-empty:' + specifier, shortCircuit: true };
    return { ...r, url: pathToFileURL(mapped).href };
  }
  return r;
}

export async function load(url, context, next) {
  if (url.startsWith('jshost-empty:')) {
    return { format: 'module', source: 'export default {};', shortCircuit: true };
  }
  if (url.startsWith('jshost-stub:')) {
    const name = url.slice('jshost-stub:'.length);
    // Not import(): that would go through these hooks again and wait on itself.
    const real = createRequire(import.meta.url)('node:' + name);
    const names = Object.keys(real).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k));
    const src = [
      `const stub = (f) => function () { throw new Error("${name}." + f + "() is not available in jshost"); };`,
      `export default new Proxy({}, { get: (_, k) => typeof k === 'string' ? stub(k) : undefined });`,
      ...names.map((k) => `export const ${k} = stub(${JSON.stringify(k)});`),
    ].join('\n');
    return { format: 'module', source: src, shortCircuit: true };
  }
  return next(url, context);
}
