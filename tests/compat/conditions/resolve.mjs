// Package resolution with a chosen set of export conditions, for measuring
// which set loads the most packages (measure.py). Node's algorithm
// (PACKAGE_EXPORTS_RESOLVE / PACKAGE_IMPORTS_RESOLVE): a condition set, not a
// list; among the conditions in the set, the package's own key order decides.
// Optionally the package.json "browser" field as bundlers read it (a string
// replaces "main"; an object maps files and modules, `false` to an empty
// module).
import fs from 'node:fs';
import path from 'node:path';

export const EMPTY = '\0empty';

function readJSON(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

const pkgCache = new Map();
export function packageAt(dir) {
  if (!pkgCache.has(dir)) pkgCache.set(dir, readJSON(path.join(dir, 'package.json')));
  return pkgCache.get(dir);
}

// The directory of the package.json nearest to file (upwards).
export function packageRootOf(file) {
  let d = path.dirname(file);
  for (;;) {
    if (packageAt(d) !== undefined) return d;
    const up = path.dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function target(pkgDir, t, star, conds) {
  if (typeof t === 'string') {
    if (!t.startsWith('./')) return undefined;
    return path.join(pkgDir, star === undefined ? t : t.split('*').join(star));
  }
  if (Array.isArray(t)) {
    for (const x of t) {
      const r = target(pkgDir, x, star, conds);
      if (r !== undefined) return r;
    }
    return undefined;
  }
  if (t !== null && typeof t === 'object') {
    for (const k of Object.keys(t)) {
      if (k === 'default' || conds.has(k)) {
        const r = target(pkgDir, t[k], star, conds);
        if (r !== undefined) return r;
      }
    }
  }
  return undefined;
}

function matchMap(map, key) {
  if (Object.prototype.hasOwnProperty.call(map, key) && !key.includes('*')) return [map[key], undefined];
  let best, star;
  for (const k of Object.keys(map)) {
    const i = k.indexOf('*');
    if (i < 0) continue;
    const pre = k.slice(0, i), post = k.slice(i + 1);
    if (key.length >= k.length - 1 && key.startsWith(pre) && key.endsWith(post) &&
        (best === undefined || pre.length > best.indexOf('*'))) {
      best = k;
      star = key.slice(pre.length, key.length - post.length);
    }
  }
  return best === undefined ? [undefined, undefined] : [map[best], star];
}

export function exportsResolve(pkgDir, subpath, exportsField, conds) {
  let map = exportsField;
  if (typeof map === 'string' || Array.isArray(map) ||
      (map && typeof map === 'object' && !Object.keys(map).some((k) => k.startsWith('.')))) {
    map = { '.': map };
  }
  const [t, star] = matchMap(map, subpath);
  if (t === undefined || t === null) return undefined;
  return target(pkgDir, t, star, conds);
}

function nodeModulesPackage(name, fromDir) {
  let d = fromDir;
  for (;;) {
    if (path.basename(d) !== 'node_modules') {
      const p = path.join(d, 'node_modules', name);
      if (packageAt(p) !== undefined || fs.existsSync(p)) return p;
    }
    const up = path.dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

// A bare or '#' specifier resolved with `conds` (which holds "import" or
// "require"); undefined when the package has no exports (the caller then
// uses main / index, which no condition changes).
export function resolveBare(request, parentFile, conds) {
  const fromDir = path.dirname(parentFile);
  if (request.startsWith('#')) {
    const root = packageRootOf(parentFile);
    const pkg = root && packageAt(root);
    if (!pkg || !pkg.imports) return undefined;
    const [t, star] = matchMap(pkg.imports, request);
    return t === undefined ? undefined : target(root, t, star, conds);
  }
  const parts = request.split('/');
  const n = request.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, n).join('/');
  const sub = parts.length > n ? './' + parts.slice(n).join('/') : '.';
  // Self-reference first, as Node does.
  const selfRoot = packageRootOf(parentFile);
  const self = selfRoot && packageAt(selfRoot);
  let pkgDir;
  if (self && self.name === name && self.exports !== undefined) pkgDir = selfRoot;
  else pkgDir = nodeModulesPackage(name, fromDir);
  if (pkgDir === undefined) return undefined;
  const pkg = packageAt(pkgDir);
  if (!pkg || pkg.exports === undefined || pkg.exports === null) return undefined;
  return exportsResolve(pkgDir, sub, pkg.exports, conds);
}

// The package.json "browser" field applied to a resolution: request as
// written, from parentFile, resolved by the normal rules to resolved.
export function browserMap(request, parentFile, resolved) {
  // A module name mapped by the requiring package ("fs": false).
  const root = packageRootOf(parentFile);
  const pkg = root && packageAt(root);
  if (pkg && pkg.browser && typeof pkg.browser === 'object') {
    const name = request.startsWith('node:') ? request.slice(5) : request;
    if (Object.prototype.hasOwnProperty.call(pkg.browser, name)) {
      const to = pkg.browser[name];
      if (to === false) return EMPTY;
      if (typeof to === 'string') return to.startsWith('.') ? path.join(root, to) : undefined;
    }
  }
  if (resolved === undefined || resolved === EMPTY || !path.isAbsolute(resolved)) return resolved;
  // A file mapped by the package it belongs to ("./lib/node.js": "./lib/browser.js").
  const owner = packageRootOf(resolved);
  const opkg = owner && packageAt(owner);
  if (!opkg || !opkg.browser) return resolved;
  if (typeof opkg.browser === 'string') {
    // The string form replaces "main"; a package with "exports" is entered
    // through them instead, as bundlers do.
    if (opkg.exports !== undefined) return resolved;
    const main = opkg.main ? path.join(owner, opkg.main) : path.join(owner, 'index.js');
    const same = [main, main + '.js', path.join(main, 'index.js')].includes(resolved);
    if (!same) return resolved;
    const to = path.join(owner, opkg.browser);
    for (const f of [to, to + '.js', path.join(to, 'index.js')]) if (isFile(f)) return f;
    return resolved;
  }
  const rel = './' + path.relative(owner, resolved);
  for (const key of [rel, rel.replace(/\.js$/, ''), rel.replace(/\/index\.js$/, '')]) {
    if (Object.prototype.hasOwnProperty.call(opkg.browser, key)) {
      const to = opkg.browser[key];
      if (to === false) return EMPTY;
      const file = path.join(owner, to);
      for (const f of [file, file + '.js', path.join(file, 'index.js')]) if (isFile(f)) return f;
    }
  }
  return resolved;
}
