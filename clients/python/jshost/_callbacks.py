"""Python callables crossing to JavaScript (docs/values.md, "Callables").

A callable in the data of a call (``host.call``, ``ctx.call``) or set on a
context (``ctx.set_global``, ``ctx.expose``, ``ctx.wrap_py_function``) is
registered on its connection under a callback id; JavaScript receives an async
function, and calling it sends the connection an ``invoke``, which _jshost
queues. Here: the :class:`PyFunction` handle, how one invoke is run and
answered, and the callback threads of the blocking API (jshost.aio runs them on
its event loop instead).

The callback threads never read the socket: the thread of a blocking call
does, or, while no call runs, the connection's serve thread (started once a
context holds callables, which JavaScript may call at any time). So a
callback may itself call into the same context or host: JavaScript awaits it,
and the reply path needs nothing the callback holds.
"""

import asyncio
import inspect
import os
import threading
import traceback
import weakref

#: Callback threads wait this long for an invoke before the spare ones end.
IDLE_SECONDS = 5.0
#: At most this many callbacks of one connection run at once (deeper nesting
#: waits for one to finish).
MAX_THREADS = 64

#: What ctx.set_global runs: ``globalThis[name] = value``.
SET_GLOBAL = "(function (name, value) { globalThis[name] = value; })"


class PyFunction:
    """A Python callable as JavaScript sees it: an async function, for as long
    as this handle is not released.

    Made by :meth:`jshost.Context.wrap_py_function` (PyMiniRacer's spelling)
    and usable as a value anywhere (``ctx.set_global("log", js_fn)``,
    ``ctx.call("f", js_fn)``, a call's data). A context manager, sync or async:
    leaving the block releases it, after which JavaScript calls to it reject
    at once. Calling the handle from Python calls the function.
    """

    def __init__(self, func, conn, callback_id, on_release=None):
        self.func = func
        self._conn = conn
        self._id = callback_id
        self._on_release = on_release

    @property
    def callback_id(self):
        """The id JavaScript calls it by on its connection."""
        return self._id

    @property
    def released(self):
        """True once :meth:`release` was called (or its context closed)."""
        return self._conn is None

    def release(self):
        """Withdraws it: JavaScript calls to it reject at once from now on
        ("callback expired"). Idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.release([self._id])
        except Exception:
            conn.unregister([self._id])  # the connection is gone, and its contexts
        if self._on_release is not None:
            self._on_release(self)

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<jshost.PyFunction %d %r%s>" % (self._id, self.func,
                                                " released" if self.released else "")


def is_async(fn):
    """True when calling fn makes a coroutine (async def, or an object whose
    __call__ is one)."""
    if isinstance(fn, PyFunction):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or \
        inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def error_fields(exc):
    """(name, message, stack) of an exception, as JavaScript gets them: its
    class name, str(exc) and the traceback (from the callable's own frame)."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable %s>" % name
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") in (__name__, "jshost.aio"):
        tb = tb.tb_next
    stack = "".join(traceback.format_exception(type(exc), exc, tb))
    return name, message, stack


def answer_error(inv, exc):
    """Answers inv with exc as the Error JavaScript's promise rejects with."""
    inv.error("JSError", *error_fields(exc))


def answer(inv, result):
    """Answers inv with result, or with the error of a result that cannot
    cross (a TypeError naming its type)."""
    try:
        inv.reply(result)
    except Exception as exc:
        answer_error(inv, exc)


def expired(inv):
    """Answers an invoke of a callback id this connection no longer holds."""
    inv.error("NotFound", None,
              "callback expired: callback %s is not held by this client (its call "
              "ended, or it was released)" % inv.callback_id, None)


async def _awaited(awaitable):
    return await awaitable


def run(conn, inv):
    """Runs one invoke on this thread and answers it: the callable with the
    arguments JavaScript passed; a coroutine it returns runs to its end on an
    event loop of its own (the blocking API has none running)."""
    fn = conn.lookup(inv.callback_id)
    if fn is None:
        expired(inv)
        return
    try:
        result = fn(*inv.args())
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
    except BaseException as exc:  # even SystemExit: JavaScript is waiting
        answer_error(inv, exc)
        return
    answer(inv, result)


class Invoker:
    """The callback threads of one blocking connection: one waits for invokes
    while others run them (a new one starts when none is left waiting, up to
    MAX_THREADS), spare ones end after IDLE_SECONDS; and the serve thread,
    which reads the connection while no call does, once a context holds
    callables. The threads hold the Invoker weakly: when its Host or VM goes
    away unclosed, they end."""

    def __init__(self, conn):
        self._conn = conn
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._threads = 0
        self._idle = 0
        self._serving = False
        ref = weakref.ref(self)

        def on_callable(permanent):
            me = ref()
            if me is not None:
                me.ensure(permanent)
        conn.set_on_callable(on_callable)

    def ensure(self, permanent=False):
        """Callables are registered: threads to run them (and, for
        permanent ones, to read while no call does) are there."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of them
                self._pid = os.getpid()
                self._threads = self._idle = 0
                self._serving = False
            if self._idle == 0 and self._threads < MAX_THREADS:
                self._spawn()
            if permanent and not self._serving:
                self._serving = True
                threading.Thread(target=_serve, args=(weakref.ref(self),),
                                 name="jshost-serve", daemon=True).start()

    def _spawn(self):
        # lock held
        self._threads += 1
        self._idle += 1
        threading.Thread(target=_work, args=(weakref.ref(self),),
                         name="jshost-callback", daemon=True).start()


def _conn_of(ref):
    """The connection of the Invoker behind ref, None once it is gone; the
    Invoker itself is not kept (a thread must not keep it alive)."""
    me = ref()
    return None if me is None else me._conn


def _work(ref):
    """A callback thread: takes invokes and runs them."""
    while True:
        conn = _conn_of(ref)
        if conn is None:
            return
        inv = None if conn.closed else conn.next_invoke(IDLE_SECONDS)
        me = ref()
        if me is None:
            return  # inv, if any, is answered as it goes
        with me._lock:
            if inv is None:
                # the last one stays for the connection's life
                if conn.closed or me._threads > 1:
                    me._threads -= 1
                    me._idle -= 1
                    return
                continue
            me._idle -= 1
            if me._idle == 0 and me._threads < MAX_THREADS:
                me._spawn()
        try:
            run(conn, inv)
        finally:
            with me._lock:
                me._idle += 1
        del me, inv, conn


def _serve(ref):
    """The serve thread: reads the connection for invokes while no call
    does (a context's callables may be called by a timer, any time)."""
    while True:
        conn = _conn_of(ref)
        if conn is None:
            return
        try:
            if conn.closed:
                raise ValueError("closed")
            conn.serve(int(IDLE_SECONDS * 1000))
        except Exception:
            # closed, or the connection was lost (its contexts with it): the
            # next callable a context keeps starts it again
            me = ref()
            if me is not None:
                with me._lock:
                    me._serving = False
            return
        del conn
