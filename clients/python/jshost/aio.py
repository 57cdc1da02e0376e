"""jshost for asyncio: :class:`Host`, :class:`VM`, :class:`Context` and
:class:`Function` as in :mod:`jshost`, with ``async`` methods and ``async
with``.

::

    import jshost.aio
    async with jshost.aio.Host("host.config.js") as host:
        await host.call("double", number=21)
        await asyncio.wait_for(host.call("slow"), 0.5)   # stops the JavaScript too
        async with host.context() as ctx:
            await ctx.eval("1 + 1")

Each Host and VM has one connection, read by the event loop (its socket is
watched with ``loop.add_reader``): no thread per call. Requests are pipelined
on it and their replies taken as they come. Cancelling a task that awaits a
call (``asyncio.wait_for``, ``task.cancel()``) sends ``cancel`` for it: the
worker stops its JavaScript and serves the next call; the task sees
``asyncio.CancelledError``. Only connecting and attaching run in the loop's
default executor (they may start the manager and the host's workers).

Python callables cross as in :mod:`jshost` (docs/values.md, "Callables"):
``async def`` ones run on the event loop, others in the loop's default
executor. An async callable may itself await calls into the same context.
Objects here belong to the event loop that opened them.
"""

import asyncio
import functools
import inspect
import os

from . import _callbacks
from . import _MISSING, _call_data, _connect, _timeout_ms, DEFAULT_IDENTIFIER
from . import _ContextBase, _HostInfo, _script_text, _vm_options, _worker_lost
from ._callbacks import PyFunction
from .errors import Error, HostCrashedError, HostUnavailableError, MemoryError, \
    NotFoundError, TimeoutError

__all__ = ["Host", "VM", "Context", "Function"]

# How long past its deadline a call waits for the server's answer (as
# libjshost's blocking calls do).
_MARGIN_S = 2.0


def _wait(timeout_ms, default_ms=0):
    """The client's guard for a run with that deadline (seconds, or None)."""
    ms = timeout_ms or default_ms
    return None if ms <= 0 else ms / 1000.0 + _MARGIN_S


def _opts(timeout_ms):
    return {"timeout_ms": timeout_ms} if timeout_ms > 0 else {}


class _Core:
    """One connection driven by an event loop: requests sent pipelined,
    replies read when the socket is readable, invokes run on the loop."""

    def __init__(self, conn, loop):
        self.conn = conn
        self.loop = loop
        self.futures = {}  # msgid -> future of its reply
        self.tasks = set()  # callables running
        self.fd = -1
        self.writing = False
        self.flush_soon = False
        self.closed = False
        self._watch()

    def _watch(self):
        # The socket changes when the connection was made again (send()).
        fd = self.conn.fileno()
        if fd == self.fd:
            return
        self._unwatch()
        self.fd = fd
        if fd >= 0:
            self.loop.add_reader(fd, self._readable)

    def _unwatch(self):
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            if self.writing:
                self.loop.remove_writer(self.fd)
        self.writing = False
        self.fd = -1

    def flush(self):
        """Writes what is queued once this loop iteration is done (requests
        sent meanwhile go in one write)."""
        if not self.flush_soon and not self.closed:
            self.flush_soon = True
            self.loop.call_soon(self._flush)

    def _flush(self):
        self.flush_soon = False
        if self.closed:
            return
        try:
            self.conn.flush()
        except (Error, ValueError) as exc:
            self._lost(exc)
            return
        pending = self.conn.pending_write() > 0
        if pending and not self.writing and self.fd >= 0:
            self.writing = True
            self.loop.add_writer(self.fd, self._flush)
        elif not pending and self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)

    async def request(self, method, params, wait=None, keep=None, release=False):
        """Sends a request and awaits its reply (wait: the client's guard in
        seconds). Callables in params live as long as the request, or join
        `keep` (a list) to live on; with `release`, the server is told they
        are withdrawn once it is answered."""
        if self.closed:
            raise ValueError("jshost connection is closed")
        msgid, temps = self.conn.send(method, params)
        self._watch()
        self.flush()
        future = self.loop.create_future()
        self.futures[msgid] = future
        try:
            if wait is None:
                return await future
            try:
                return await asyncio.wait_for(future, wait)
            except asyncio.TimeoutError:
                if future.cancelled():
                    raise TimeoutError("%s: no reply within %d ms"
                                       % (method, wait * 1000)) from None
                raise
        finally:
            self.futures.pop(msgid, None)
            if not future.done() or future.cancelled():
                # cancelled (the task, wait_for, the guard): so is the call
                self._cancel(msgid)
            if temps:
                self._settle(temps, keep, release)

    def _cancel(self, msgid):
        if self.closed:
            return
        try:
            self.conn.cancel(msgid)
        except (Error, ValueError):
            return  # the connection is gone, and the call with it
        self.flush()

    def _settle(self, temps, keep, release):
        if keep is not None:
            keep.extend(temps)
            return
        if release and not self.closed:
            try:
                self.conn.release(temps)
                self.flush()
                return
            except (Error, ValueError):
                pass
        self.conn.unregister(temps)

    def _readable(self):
        try:
            replies = self.conn.read()
        except (Error, ValueError) as exc:
            self._lost(exc)
            return
        for msgid, ok, value in replies:
            future = self.futures.pop(msgid, None)
            if future is None or future.done():
                continue  # cancelled meanwhile: its answer is dropped
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for inv in self.conn.take_invokes():
            self._invoke(inv)
        self._watch()
        if self.conn.pending_write() > 0:
            self.flush()

    def _lost(self, exc):
        # Every request in flight fails; the next send connects again.
        self._unwatch()
        futures, self.futures = self.futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(exc)

    def _invoke(self, inv):
        fn = self.conn.lookup(inv.callback_id)
        if fn is None:
            _callbacks.expired(inv)
            self.flush()
            return
        task = self.loop.create_task(self._run(inv, fn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, inv, fn):
        try:
            args = inv.args()
            if _callbacks.is_async(fn):
                result = await fn(*args)
            else:
                result = await self.loop.run_in_executor(None, functools.partial(fn, *args))
                if inspect.isawaitable(result):
                    result = await result
        except asyncio.CancelledError as exc:
            _callbacks.answer_error(inv, exc)
            self.flush()
            raise
        except BaseException as exc:  # JavaScript is waiting either way
            _callbacks.answer_error(inv, exc)
        else:
            _callbacks.answer(inv, result)
        self.flush()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._unwatch()
        for task in list(self.tasks):
            task.cancel()
        for future in self.futures.values():
            if not future.done():
                future.cancel()
        self.futures = {}
        self.conn.close()


class _Opening:
    """What :meth:`Host.context` and :meth:`VM.create_context` return: await
    it for the :class:`Context`, or use it with ``async with`` (which closes
    the context at the end)."""

    def __init__(self, coro):
        self._coro = coro
        self._ctx = None

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self):
        self._ctx = await self._coro
        return self._ctx

    async def __aexit__(self, *exc):
        await self._ctx.close()


class _Owner:
    """What Host and VM share: the connection, opened on first use."""

    _core = None
    _closed = False

    async def _connect_in_executor(self, connect):
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(None, connect)
        self._core = _Core(conn, loop)

    def _live(self):
        if self._closed:
            raise ValueError("%s is closed" % self.__class__.__name__)
        if self._core is None:
            raise ValueError("%s is not open: await it or use async with"
                             % self.__class__.__name__)
        return self._core

    def __await__(self):
        return self.open().__await__()

    async def __aenter__(self):
        return await self.open()

    async def __aexit__(self, *exc):
        await self.close()

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed


class Host(_Owner, _HostInfo):
    """One config file's functions, as :class:`jshost.Host`, for asyncio.

    ``host = await jshost.aio.Host(config)`` or ``async with
    jshost.aio.Host(config) as host:`` attaches (starting the manager and the
    host's workers when needed, in the loop's executor). Same arguments as
    :class:`jshost.Host`.
    """

    def __init__(self, config, *, socket=None, spawn=True):
        self._path = os.path.abspath(os.fspath(config))
        self._socket = socket
        self._spawn = spawn
        self._id = None
        self._info = {}

    async def open(self):
        """Attaches (once); returns the Host."""
        if self._core is None and not self._closed:
            def connect():
                conn = _connect(self._socket, self._spawn)
                try:
                    self._id, self._info = conn.attach(self._path)
                except BaseException:
                    conn.close()
                    raise
                return conn
            await self._connect_in_executor(connect)
        return self

    async def call(self, name, data=_MISSING, /, *, timeout=None, **kwargs):
        """Calls the config's function ``name`` and returns its result, as
        :meth:`jshost.Host.call`. Cancelling the awaiting task stops the
        call's JavaScript on the worker."""
        data = _call_data(name, data, kwargs)
        ms = _timeout_ms(timeout)
        return await self._live().request(
            "call", [self._id, name, data, _opts(ms)], _wait(ms))

    def function(self, name):
        """A callable for the function ``name``: ``await host.function("f")(x=1)``."""
        return Function(self, name)

    def context(self):
        """A fresh JavaScript global scope on this host's worker: ``ctx =
        await host.context()`` or ``async with host.context() as ctx:``."""
        return _Opening(self._context())

    async def _context(self):
        ctx = await self._live().request("context.create", [self._id, {"cwd": os.getcwd()}])
        return Context(self._core, ctx, self)

    async def status(self):
        """This host's figures, as :meth:`jshost.Host.status`."""
        return await self._live().request("status", [self._id])

    async def restart(self):
        """Restarts the host's workers; returns the host's status."""
        return await self._live().request("restart", [self._id])

    async def stop(self):
        """Stops the host's workers once their calls are done; returns the
        host's status."""
        return await self._live().request("stop", [self._id])

    async def close(self):
        """Releases the host and closes the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        core = self._core
        if core is None:
            return
        try:
            await core.request("detach", [self._id], _wait(10000))
        except (Error, ValueError):
            pass  # the connection is going anyway, which releases the host
        finally:
            core.close()

    def __repr__(self):
        return "<jshost.aio.Host %s %r%s>" % (self._id, self.config,
                                              " closed" if self._closed else "")


class Function:
    """A host's function as an async callable (from :meth:`Host.function`):
    ``await f(data)`` or ``await f(**kwargs)``, with ``timeout=``."""

    def __init__(self, host, name):
        self.host = host
        self.name = name

    async def __call__(self, data=_MISSING, /, *, timeout=None, **kwargs):
        """Calls the function; see :meth:`Host.call`."""
        return await self.host.call(self.name, data, timeout=timeout, **kwargs)

    def __repr__(self):
        return "<jshost.aio.Function %r of %r>" % (self.name, self.host)


class Context(_ContextBase):
    """A fresh JavaScript global scope, as :class:`jshost.Context`, with
    async methods; ``async with`` closes it."""

    def __init__(self, core, ctx_id, owner):
        self._core = core
        super().__init__(ctx_id, owner)

    async def _request(self, method, params, ms, **kw):
        if self._closed:
            raise ValueError("jshost context is closed")
        try:
            return await self._core.request(method, params, _wait(ms, self._default_ms), **kw)
        except (MemoryError, HostCrashedError, HostUnavailableError):
            _worker_lost(self._owner, self._id)
            raise

    async def eval(self, source, *, timeout=None):
        """Runs ``source``; returns the value of its last expression (a
        promise is awaited)."""
        return await self.run_script(source, DEFAULT_IDENTIFIER, timeout=timeout)

    async def run_script(self, script, identifier=DEFAULT_IDENTIFIER, *, timeout=None):
        """Runs ``script`` with ``identifier`` as its file name in stack
        traces; returns its value."""
        script, identifier = _script_text(script, identifier)
        ms = _timeout_ms(timeout)
        return await self._request("context.eval", [self._id, script, identifier, _opts(ms)], ms)

    async def call(self, expression, *args, timeout=None):
        """Calls the function ``expression`` evaluates to with ``args``;
        callables among them live as long as the call."""
        ms = _timeout_ms(timeout)
        return await self._request("context.call", [self._id, expression, list(args), _opts(ms)],
                                   ms, release=True)

    async def load_libs(self, paths, *, timeout=None):
        """Runs the script files in order (paths relative to the working
        directory)."""
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        ms = _timeout_ms(timeout)
        await self._request("context.load", [self._id, paths, _opts(ms)], ms)

    async def set_global(self, name, value, *, timeout=None):
        """``globalThis[name] = value``; callables in value live as long as
        the context."""
        ms = _timeout_ms(timeout)
        await self._request("context.call",
                            [self._id, _callbacks.SET_GLOBAL, [name, value], _opts(ms)],
                            ms, keep=self._kept)

    async def expose(self, name, fn, *, timeout=None):
        """Makes ``fn`` the global async function ``name`` of this context
        until it closes (an ``async def`` runs on the event loop)."""
        if not callable(fn):
            raise TypeError("expose() needs a callable, not %s" % type(fn).__name__)
        await self.set_global(name, fn, timeout=timeout)

    def wrap_py_function(self, fn):
        """A :class:`jshost.PyFunction` for ``fn`` until released: ``async
        with ctx.wrap_py_function(fn) as js_fn: await ctx.set_global("f",
        js_fn)`` (PyMiniRacer's spelling)."""
        if not callable(fn):
            raise TypeError("wrap_py_function() needs a callable, not %s"
                            % type(fn).__name__)
        if self._closed:
            raise ValueError("jshost context is closed")
        conn = self._core.conn

        def released(pf):
            self._functions.remove(pf)
            self._core.flush()
        pf = PyFunction(fn, conn, conn.register(fn), released)
        self._functions.append(pf)
        return pf

    async def close(self):
        """Destroys the context (stopping whatever JavaScript it runs).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        for pf in list(self._functions):
            pf.release()
        if self._core.closed:
            return
        try:
            await self._core.request("context.destroy", [self._id], _wait(60000))
        except (Error, ValueError):
            pass  # its worker or connection is gone, and the context with it
        finally:
            self._core.conn.unregister(self._kept)
            self._kept = []

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __repr__(self):
        return "<jshost.aio.Context %d%s>" % (self._id, " closed" if self._closed else "")


class VM(_Owner):
    """A private worker process owned by this object, as :class:`jshost.VM`:
    ``async with jshost.aio.VM(memory=256, timeout=5) as vm:``. Closing it
    stops the worker (and whatever JavaScript it runs, timers included)."""

    def __init__(self, memory=None, timeout=None, *, socket=None, spawn=True):
        if memory is not None and (int(memory) != memory or memory <= 0):
            raise ValueError("memory must be a positive number of MiB, not %r" % (memory,))
        self.memory = None if memory is None else int(memory)
        self.timeout = timeout
        self._timeout_ms = max(_timeout_ms(timeout), 0)
        self._socket = socket
        self._spawn = spawn
        self._anchor = None
        self._lock = asyncio.Lock()

    async def open(self):
        """Connects (once); returns the VM. Its worker starts with the first
        context."""
        if self._core is None and not self._closed:
            await self._connect_in_executor(lambda: _connect(self._socket, self._spawn))
        return self

    async def _vm_id(self):
        # as jshost.VM: a hidden first context anchors the worker
        async with self._lock:
            if self._anchor is None:
                self._anchor = await self._live().request(
                    "context.create", [None, _vm_options(self)])
            return self._anchor

    def _worker_lost(self, ctx_id):
        self._anchor = None

    def create_context(self):
        """A fresh JavaScript global scope on this VM's worker: ``ctx = await
        vm.create_context()`` or ``async with vm.create_context() as ctx:``."""
        return _Opening(self._create_context())

    async def _create_context(self):
        await self.open()
        vm = await self._vm_id()
        try:
            ctx = await self._live().request("context.create", [None, {"vm": vm, "cwd": os.getcwd()}])
        except (NotFoundError, HostUnavailableError):
            if self._anchor == vm:
                self._anchor = None
            vm = await self._vm_id()
            ctx = await self._live().request("context.create", [None, {"vm": vm, "cwd": os.getcwd()}])
        return Context(self._core, ctx, self)

    async def close(self):
        """Stops the worker and closes the connection. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._core is not None:
                self._core.close()

    def __repr__(self):
        return "<jshost.aio.VM memory=%r timeout=%r%s>" % (
            self.memory, self.timeout, " closed" if self._closed else "")
