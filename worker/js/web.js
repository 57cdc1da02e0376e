// Web APIs that server-side packages assume (docs/modules.md): Event,
// EventTarget, AbortController, AbortSignal, DOMException, MessageChannel
// (react-dom's server build schedules work with one). As Node's, minus
// what needs a browser (no capture phase, no DOM tree: an event reaches its
// target's listeners only).
//
// The engine (js_world.cc) runs this once per realm with the world's natives
// and the realm's global, after timers.js (MessageChannel delivers on
// setImmediate). The classes are made on first use of any of them: a realm
// that never touches them (most contexts) never pays for them.
(function (natives, global) {
'use strict';
const define = natives.define;
const names = ['DOMException', 'Event', 'EventTarget', 'AbortSignal',
               'AbortController', 'MessageEvent', 'MessagePort', 'MessageChannel'];
let made;
for (const name of names) {
  if (global[name] !== undefined) continue;
  Object.defineProperty(global, name, {
    configurable: true, enumerable: false,
    get() {
      if (made === undefined) made = make();
      for (const n of names)
        if (Object.getOwnPropertyDescriptor(global, n).get !== undefined)
          define(global, n, made[n]);
      return made[name];
    },
    set(v) { define(global, name, v); },
  });
}

function make() {
const apply = Reflect.apply;

const domCodes = {
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4,
  InvalidCharacterError: 5, NoModificationAllowedError: 7, NotFoundError: 8,
  NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12,
  InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
  TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20,
  URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23,
  InvalidNodeTypeError: 24, DataCloneError: 25,
};
class DOMException extends Error {
  constructor(message = '', options = 'Error') {
    super(String(message));
    const name = options !== null && typeof options === 'object'
      ? String(options.name === undefined ? 'Error' : options.name) : String(options);
    Object.defineProperty(this, 'name', {value: name, configurable: true, writable: true});
    if (options !== null && typeof options === 'object' && 'cause' in options)
      Object.defineProperty(this, 'cause', {value: options.cause, configurable: true, writable: true});
  }
  get code() { return domCodes[this.name] || 0; }
}
for (const [name, code] of Object.entries(domCodes)) {
  const constant = name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()
    .replace(/_ERROR$/, '_ERR');
  Object.defineProperty(DOMException, constant, {value: code, enumerable: true});
}

const kStop = Symbol('stop'), kTarget = Symbol('target'), kListeners = Symbol('listeners');
class Event {
  constructor(type, init = {}) {
    if (arguments.length === 0) throw new TypeError('The "type" argument must be specified');
    this.type = String(type);
    this.bubbles = !!(init && init.bubbles);
    this.cancelable = !!(init && init.cancelable);
    this.composed = !!(init && init.composed);
    this.defaultPrevented = false;
    this.timeStamp = global.performance ? global.performance.now() : 0;
    this.isTrusted = false;
    this[kTarget] = null;
    this[kStop] = 0;
  }
  get target() { return this[kTarget]; }
  get currentTarget() { return this[kTarget]; }
  get srcElement() { return this[kTarget]; }
  get eventPhase() { return this[kTarget] ? 2 : 0; }
  get cancelBubble() { return this[kStop] > 0; }
  set cancelBubble(v) { if (v) this.stopPropagation(); }
  get returnValue() { return !this.defaultPrevented; }
  composedPath() { return this[kTarget] ? [this[kTarget]] : []; }
  preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
  stopPropagation() { if (this[kStop] === 0) this[kStop] = 1; }
  stopImmediatePropagation() { this[kStop] = 2; }
}
Event.NONE = 0; Event.CAPTURING_PHASE = 1; Event.AT_TARGET = 2; Event.BUBBLING_PHASE = 3;

class EventTarget {
  constructor() { Object.defineProperty(this, kListeners, {value: new Map()}); }
  addEventListener(type, listener, options) {
    if (listener === null || listener === undefined) return;
    const once = typeof options === 'object' && options !== null && !!options.once;
    const capture = typeof options === 'boolean' ? options
      : !!(options && options.capture);
    const signal = options && typeof options === 'object' ? options.signal : undefined;
    if (signal && signal.aborted) return;
    const map = listenersOf(this);
    let list = map.get(String(type));
    if (!list) map.set(String(type), list = []);
    if (list.some((l) => l.listener === listener && l.capture === capture)) return;
    const entry = {listener, capture, once, removed: false};
    list.push(entry);
    if (signal) signal.addEventListener('abort', () => this.removeEventListener(type, listener, {capture}), {once: true});
  }
  removeEventListener(type, listener, options) {
    const capture = typeof options === 'boolean' ? options : !!(options && options.capture);
    const list = listenersOf(this).get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.listener === listener && l.capture === capture);
    if (i >= 0) { list[i].removed = true; list.splice(i, 1); }
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError('The "event" argument must be an instance of Event');
    event[kTarget] = this;
    const handler = this['on' + event.type];
    const list = (listenersOf(this).get(event.type) || []).slice();
    for (const l of list) {
      if (l.removed) continue;
      if (l.once) this.removeEventListener(event.type, l.listener, {capture: l.capture});
      callListener(this, l.listener, event);
      if (event[kStop] === 2) break;
    }
    if (typeof handler === 'function' && event[kStop] !== 2 && !handlesOwn(this)) callListener(this, handler, event);
    return !event.defaultPrevented;
  }
}
function listenersOf(t) {
  if (!t[kListeners]) Object.defineProperty(t, kListeners, {value: new Map()});
  return t[kListeners];
}
function handlesOwn(t) { return t instanceof AbortSignal || t instanceof MessagePort; }
function callListener(target, listener, event) {
  try {
    if (typeof listener === 'function') apply(listener, target, [event]);
    else if (listener && typeof listener.handleEvent === 'function') listener.handleEvent(event);
  } catch (err) {
    // As in Node: reported as uncaught, the dispatch goes on.
    queueMicrotask(() => { throw err; });
  }
}

const kAborted = Symbol('aborted'), kReason = Symbol('reason');
class AbortSignal extends EventTarget {
  constructor(key) {
    if (key !== kAborted) throw new TypeError('Illegal constructor');
    super();
    this[kAborted] = false;
    this[kReason] = undefined;
    this.onabort = null;
  }
  get aborted() { return this[kAborted]; }
  get reason() { return this[kReason]; }
  throwIfAborted() { if (this[kAborted]) throw this[kReason]; }
  static abort(reason) {
    const s = new AbortSignal(kAborted);
    s[kAborted] = true;
    s[kReason] = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    return s;
  }
  static timeout(ms) {
    const s = new AbortSignal(kAborted);
    const t = setTimeout(() => abortSignal(s, new DOMException(
      'The operation was aborted due to timeout', 'TimeoutError')), ms);
    if (t && typeof t.unref === 'function') t.unref();
    return s;
  }
  static any(signals) {
    const s = new AbortSignal(kAborted);
    for (const x of signals) {
      if (x.aborted) { abortSignal(s, x.reason); return s; }
    }
    for (const x of signals) x.addEventListener('abort', () => abortSignal(s, x.reason), {once: true});
    return s;
  }
  dispatchEvent(event) {
    const r = super.dispatchEvent(event);
    if (event.type === 'abort' && typeof this.onabort === 'function') callListener(this, this.onabort, event);
    return r;
  }
}
function abortSignal(s, reason) {
  if (s[kAborted]) return;
  s[kAborted] = true;
  s[kReason] = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
  s.dispatchEvent(new Event('abort'));
}
class AbortController {
  constructor() { this._signal = new AbortSignal(kAborted); }
  get signal() { return this._signal; }
  abort(reason) { abortSignal(this._signal, reason); }
}

class MessageEvent extends Event {
  constructor(type, init = {}) {
    super(type, init);
    this.data = init && init.data !== undefined ? init.data : null;
    this.origin = ''; this.lastEventId = ''; this.source = null; this.ports = [];
  }
}
const kPeer = Symbol('peer'), kQueue = Symbol('queue'), kStarted = Symbol('started'),
      kClosed = Symbol('closed'), kOnMessage = Symbol('onmessage');
class MessagePort extends EventTarget {
  constructor(key) {
    if (key !== kPeer) throw new TypeError('Illegal constructor');
    super();
    this[kPeer] = null; this[kQueue] = []; this[kStarted] = false; this[kClosed] = false;
    this[kOnMessage] = null;
  }
  get onmessage() { return this[kOnMessage]; }
  set onmessage(fn) { this[kOnMessage] = fn; this.start(); }
  postMessage(data) {
    const peer = this[kPeer];
    if (this[kClosed] || !peer || peer[kClosed]) return;
    peer[kQueue].push(structuredClone(data));
    if (peer[kStarted]) deliverSoon(peer);
  }
  start() {
    if (this[kStarted]) return;
    this[kStarted] = true;
    if (this[kQueue].length) deliverSoon(this);
  }
  close() {
    this[kClosed] = true;
    if (this[kPeer]) this[kPeer][kClosed] = true;
  }
  ref() { return this; }
  unref() { return this; }
}
function deliverSoon(port) {
  setImmediate(() => {
    while (port[kQueue].length && !port[kClosed]) {
      const event = new MessageEvent('message', {data: port[kQueue].shift()});
      port.dispatchEvent(event);
      if (typeof port[kOnMessage] === 'function') callListener(port, port[kOnMessage], event);
    }
  });
}
class MessageChannel {
  constructor() {
    const a = new MessagePort(kPeer), b = new MessagePort(kPeer);
    a[kPeer] = b; b[kPeer] = a;
    Object.defineProperty(this, 'port1', {value: a, enumerable: true});
    Object.defineProperty(this, 'port2', {value: b, enumerable: true});
  }
}

return {DOMException, Event, EventTarget, AbortSignal, AbortController,
        MessageEvent, MessagePort, MessageChannel};
}
});
