"""jshost: call the JavaScript functions of a config file from Python.

::

    import jshost
    with jshost.Host("host.config.js") as host:   # starts manager and workers if needed
        host.call("hello_world", name="Foo")       # 'Hello, Foo!'
        host.call("double", {"number": 20})        # 40

A :class:`Host` is one config's functions, run by a worker process that a
detached manager shares between every client naming the same config. A
:class:`Context` is a fresh JavaScript global scope (``eval``, ``call``,
``run_script``, ``load_libs``), on a host's worker or on a :class:`VM`, a private
worker of this process.

Values cross as msgpack (docs/values.md): ``None``, ``bool``, ``int`` of any size,
``float``, ``str``, ``bytes``/``bytearray``/``memoryview`` (back as ``bytes``),
``list``/``tuple`` (back as ``list``), ``dict`` with ``str`` keys, and
``datetime`` (back as an aware UTC datetime; a naive datetime is taken as UTC).
Anything else raises ``TypeError`` naming the type and where it sits in the
value (``data['a'][3]``); values nesting deeper than 30 levels (or holding a
cycle) raise ``ValueError``. Timeouts are in seconds.

Every object here may be shared between threads: calls from many threads are
pipelined on one connection, and the GIL is released while waiting. After
``os.fork()`` the child's first call reconnects on its own (contexts do not
survive the fork: create them in the child).

Python callables cross too: JavaScript receives an async function that calls
back into this process (``host.call("render", {"log": print})``,
``ctx.expose("fetch", fetch)``, ``with ctx.wrap_py_function(fn) as js_fn:``).
Ctrl-C during a call raises ``KeyboardInterrupt`` and stops the JavaScript on
the worker. :mod:`jshost.aio` is the same API for asyncio.
"""

import logging
import os
import threading
import weakref

from . import _jshost
from . import _callbacks
from . import errors as _errors
from ._callbacks import PyFunction
from .errors import (
    Error, JSError, TimeoutError, MemoryError, ConfigError, HostCrashedError,
    HostUnavailableError, OverloadedError, NotFoundError, InvalidArgumentError,
    ConnectionError, ProtocolError, CancelledError,
)

# jshost.TimeoutError, jshost.MemoryError and jshost.ConnectionError are not
# in __all__: `from jshost import *` must not shadow the builtins of those
# names.
__all__ = [
    "Host", "Function", "Context", "VM", "shutdown",
    "Error", "JSError", "ConfigError",
    "HostCrashedError", "HostUnavailableError", "OverloadedError",
    "NotFoundError", "InvalidArgumentError", "ProtocolError",
    "CancelledError", "PyFunction",
]

__version__ = "0.1.0"

_jshost._set_error_factory(_errors._make)
# Ctrl-C interrupts the calls of the main thread only, as Python's own waits.
_jshost._set_callable_type(PyFunction, threading.main_thread().ident)

_MISSING = object()

#: The identifier scripts get in stack traces when none is given (v8-cffi's).
DEFAULT_IDENTIFIER = "<anonymous>"


#: Seconds (None: the host's default, 0; inf: no practical limit, about 24
#: days, which the server is told) to ms. In C: Host.call converts its own.
_timeout_ms = _jshost.timeout_ms


def _connect(socket, spawn):
    return _jshost.Connection(socket=None if socket is None else os.fspath(socket),
                              spawn=bool(spawn), client_name="python")


def _call_data(name, data, kwargs):
    """A call's data: one positional value or the keyword arguments (as
    Host.call, whose own check is in C)."""
    if data is not _MISSING and kwargs:
        raise TypeError("call() takes either one data argument or keyword "
                        "arguments, not both")
    if not isinstance(name, str):
        raise TypeError("call() argument 'name' must be str, not %s" % type(name).__name__)
    return data if data is not _MISSING else kwargs


#: Where a context's console output goes when no ``console`` callable was
#: given (``console.log`` at INFO, ``console.warn`` at WARNING...).
console_logger = logging.getLogger("jshost.console")
_CONSOLE_LEVELS = {"debug": logging.DEBUG, "log": logging.INFO, "info": logging.INFO,
                   "warn": logging.WARNING, "error": logging.ERROR, "trace": logging.ERROR}


def _console_sink(owner):
    """The connection's console callback: each line to the owner's callable
    for that context, else to console_logger. A weak reference, so that the
    connection does not keep its Host or VM alive."""
    ref = weakref.ref(owner)

    def sink(ctx, level, text):
        o = ref()
        fn = o._console_for(ctx) if o is not None else None
        if fn is not None:
            fn(level, text)
        else:
            console_logger.log(_CONSOLE_LEVELS.get(level, logging.INFO), "%s", text)
    return sink


class _HostInfo:
    """What attach told about a host (``_id``, ``_info``), read the same way
    on :class:`Host` and :class:`jshost.aio.Host`."""

    __slots__ = ()

    @property
    def id(self):
        """The host's id on the manager (a short hash of the config's path)."""
        return self._id

    @property
    def config(self):
        """The config file's real path, as the manager resolved it."""
        return self._info.get("config")

    @property
    def functions(self):
        """The names of the functions the config exports."""
        return list(self._info.get("functions") or [])

    @property
    def logfile(self):
        """The host's log file (console output, errors, crashes)."""
        return self._info.get("logfile")

    @property
    def extras(self):
        """The config's other top-level keys (``this.host.config`` in JS)."""
        return dict(self._info.get("extras") or {})


def _script_text(script, identifier):
    """A script and its file name as str (each may be UTF-8 bytes)."""
    if isinstance(script, (bytes, bytearray)):
        script = bytes(script).decode("utf-8")
    if isinstance(identifier, (bytes, bytearray)):
        identifier = bytes(identifier).decode("utf-8")
    return script, identifier


def _worker_lost(owner, ctx_id):
    """Tells a context's owner that its worker is gone with every context on
    it (a VM starts anew; a Host's workers are the manager's)."""
    lost = getattr(owner, "_worker_lost", None)
    if lost is not None:
        lost(ctx_id)


def _vm_options(vm):
    """context.create's options for the hidden first context that anchors a
    VM's worker."""
    opts = {"cwd": os.getcwd()}
    if vm.memory is not None:
        opts["memory"] = vm.memory
    if vm._timeout_ms > 0:
        opts["timeout_ms"] = vm._timeout_ms
    return opts


class _ContextBase:
    """What :class:`Context` and :class:`jshost.aio.Context` keep alike."""

    def __init__(self, ctx_id, owner):
        self._id = ctx_id
        self._owner = owner  # keeps the Host or VM (and its connection) alive
        # a VM's own default deadline bounds the client's wait too
        self._default_ms = getattr(owner, "_timeout_ms", 0)
        self._closed = False
        # callback ids this context holds: set_global's, and PyFunctions
        self._kept = []
        self._functions = []

    @property
    def id(self):
        """The context's id on its connection."""
        return self._id


class Host(_HostInfo, _jshost.HostBase):
    """One config file's functions, attached on the manager.

    ``Host(config)`` attaches the config (a path; relative to the working
    directory), starting the manager and the host's workers when needed.
    ``socket`` talks to that socket instead of the per-user manager (and then
    never starts one, as ``$JSHOST_SOCKET``); ``spawn=False`` never starts a
    manager either. Raises :class:`ConfigError` when the config does not load.

    A Host is a context manager; :meth:`close` (or leaving the ``with``)
    releases it, and the manager stops the host a little while after its last
    client leaves.
    """

    def __init__(self, config, *, socket=None, spawn=True):
        path = os.path.abspath(os.fspath(config))
        self._conn = _connect(socket, spawn)
        self._invoker = _callbacks.Invoker(self._conn)
        self._consoles = {}
        self._conn.set_console(_console_sink(self))
        try:
            self._id, self._info = self._conn.attach(path)
        except BaseException:
            self._conn.close()
            raise
        self._closed = False

    @property
    def warnings(self):
        """What the host warned about when this Host attached: a config
        export that looks like a misspelt setting (``timout``), a development
        reload that failed (the previous workers serve on). A list of str,
        empty when all is well; the host's log has them too."""
        return list(self._info.get("warnings") or [])

    # call(name, data=..., /, *, timeout=None, **kwargs): the hot path, all
    # in C (pyhost.c, with its docstring), on the _conn and _id kept there.
    # Callables in the data live as long as the call (docs/values.md).
    call = _jshost.HostBase.call

    def function(self, name):
        """A callable for the function ``name``: ``host.function("f")(x=1)``."""
        return Function(self, name)

    def context(self, *, console=None):
        """A fresh JavaScript global scope on this host's worker.

        ``console(level, text)`` gets what the context's code writes with
        ``console.log``, ``.warn``... (level ``"log"``, ``"warn"``...), after
        each call that returns on this Host; without it the lines go to the
        ``jshost.console`` logger. The host's log file has them either way.
        """
        ctx = self._conn.request("context.create", [self._id, {"cwd": os.getcwd()}])
        if console is not None:
            self._consoles[ctx] = console
        return Context(self._conn, ctx, self)

    def _console_for(self, ctx):
        return self._consoles.get(ctx)

    def status(self):
        """This host's figures as a dict (``status`` in docs/protocol.md):
        config, id, logfile, holders and per worker pid, state, heap,
        calls..."""
        return self._conn.request("status", [self._id])

    def restart(self):
        """Restarts the host's workers (JS state resets; id and log file stay).
        Returns the host's status after it."""
        return self._conn.request("restart", [self._id])

    def stop(self):
        """Stops the host's workers once their calls are done. Returns the
        host's status after it."""
        return self._conn.request("stop", [self._id])

    def close(self):
        """Releases the host and closes the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.detach(self._id)
        except (Error, ValueError):
            pass  # the connection is going anyway, which releases the host
        finally:
            self._conn.close()

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<jshost.Host %s %r%s>" % (self._id, self.config,
                                          " closed" if self._closed else "")


class Function:
    """A host's function as a callable (from :meth:`Host.function`).

    ``f(data)`` or ``f(**kwargs)``, with an optional ``timeout=`` in seconds,
    as :meth:`Host.call`.
    """

    def __init__(self, host, name):
        self.host = host
        self.name = name

    def __call__(self, data=_MISSING, /, *, timeout=None, **kwargs):
        """Calls the function; see :meth:`Host.call`."""
        if data is _MISSING:
            return self.host.call(self.name, timeout=timeout, **kwargs)
        return self.host.call(self.name, data, timeout=timeout, **kwargs)

    def __repr__(self):
        return "<jshost.Function %r of %r>" % (self.name, self.host)


class Context(_ContextBase):
    """A fresh JavaScript global scope (same globals and ``require`` as a
    config), from :meth:`Host.context` or :meth:`VM.create_context`.

    A context manager; :meth:`close` destroys the scope.
    """

    def __init__(self, conn, ctx_id, owner):
        self._conn = conn
        super().__init__(ctx_id, owner)

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except (MemoryError, HostCrashedError, HostUnavailableError):
            _worker_lost(self._owner, self._id)
            raise

    def eval(self, source, *, timeout=None):
        """Runs ``source`` and returns the value of its last expression
        (a promise is awaited)."""
        return self.run_script(source, DEFAULT_IDENTIFIER, timeout=timeout)

    def run_script(self, script, identifier=DEFAULT_IDENTIFIER, *, timeout=None):
        """Runs ``script`` (str, or UTF-8 bytes) with ``identifier`` as its file
        name in stack traces; returns its value (a promise is awaited)."""
        script, identifier = _script_text(script, identifier)
        return self._run(self._conn.context_eval, self._id, script, identifier,
                         _timeout_ms(timeout), self._default_ms)

    def call(self, expression, *args, timeout=None):
        """Calls the function ``expression`` evaluates to with ``args``:
        ``ctx.call("Math.max", 1, 2)`` returns 2. Python callables among the
        args are async functions to JavaScript for as long as the call runs."""
        return self._run(self._conn.context_call, self._id, expression, args,
                         _timeout_ms(timeout), self._default_ms)

    def set_global(self, name, value, *, timeout=None):
        """``globalThis[name] = value`` in this context. Python callables in
        value (at any depth) are async functions to JavaScript for as long as
        the context lives."""
        kept = []
        try:
            self._run(self._conn.context_call, self._id, _callbacks.SET_GLOBAL,
                      (name, value), _timeout_ms(timeout), self._default_ms, kept)
        finally:
            if kept:
                self._kept.extend(kept)
                # JavaScript may call them any time now: someone must read
                self._owner._invoker.ensure(True)

    def expose(self, name, fn, *, timeout=None):
        """Makes the Python callable ``fn`` the global async function
        ``name`` of this context, until the context closes:
        ``ctx.expose("fetch", fetch)`` lets scripts ``await fetch(url)``."""
        if not callable(fn):
            raise TypeError("expose() needs a callable, not %s" % type(fn).__name__)
        self.set_global(name, fn, timeout=timeout)

    def wrap_py_function(self, fn):
        """A :class:`PyFunction` for ``fn``, a value JavaScript receives as an
        async function, until it is released: ``with
        ctx.wrap_py_function(fn) as js_fn: ctx.set_global("f", js_fn)``
        (PyMiniRacer's spelling; leaving the block releases it, as does
        closing the context)."""
        if not callable(fn):
            raise TypeError("wrap_py_function() needs a callable, not %s"
                            % type(fn).__name__)
        if self._closed:
            raise ValueError("jshost context is closed")
        pf = PyFunction(fn, self._conn, self._conn.register(fn),
                        self._functions.remove)
        self._functions.append(pf)
        self._owner._invoker.ensure(True)
        return pf

    def load_libs(self, paths, *, timeout=None):
        """Runs the script files in order (paths relative to the working
        directory), as ``<script>`` tags would."""
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        self._run(self._conn.context_load, self._id, paths, _timeout_ms(timeout),
                  self._default_ms)

    def close(self):
        """Destroys the context. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for pf in list(self._functions):
            pf.release()
        try:
            if not self._conn.closed:
                self._conn.context_destroy(self._id)
        except (Error, ValueError):
            pass  # its worker or connection is gone, and the context with it
        finally:
            # destroyed with the context on the worker: forgotten here
            self._conn.unregister(self._kept)
            self._kept = []
            # after the destroy: its last console lines come with it
            getattr(self._owner, "_consoles", {}).pop(self._id, None)

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<jshost.Context %d%s>" % (self._id, " closed" if self._closed else "")


class VM:
    """A private worker process owned by this object (v8-cffi's VM).

    ``memory`` is its heap limit in MiB and ``timeout`` its default deadline in
    seconds (``None``: jshost's defaults, 512 MiB and 10 s). The worker starts
    with the first :meth:`create_context`; :meth:`close` (or leaving the
    ``with``) stops it. A script that passes the heap limit raises
    :class:`MemoryError` and the worker is replaced.

    ``console(level, text)`` gets what its contexts' code writes with
    ``console.log``, ``.warn``... (level ``"log"``, ``"warn"``...), after each
    call that returns on this VM; without it the lines go to the
    ``jshost.console`` logger (``console.log`` at INFO, ``console.warn`` at
    WARNING, ``console.error`` at ERROR).
    """

    def __init__(self, memory=None, timeout=None, *, socket=None, spawn=True,
                 console=None):
        if memory is not None and (int(memory) != memory or memory <= 0):
            raise ValueError("memory must be a positive number of MiB, not %r" % (memory,))
        if console is not None and not callable(console):
            raise TypeError("console must be callable, not %r" % (console,))
        self.memory = None if memory is None else int(memory)
        self.timeout = timeout
        self._timeout_ms = max(_timeout_ms(timeout), 0)
        self._console = console
        self._conn = _connect(socket, spawn)
        self._invoker = _callbacks.Invoker(self._conn)
        self._conn.set_console(_console_sink(self))
        self._anchor = None
        self._lock = threading.Lock()
        self._closed = False

    def _vm_id(self):
        # The manager starts a private worker for each context.create without
        # a host; further contexts name an existing context of it ("vm"). A
        # hidden first context anchors the worker, so that closing any user
        # context never takes the VM with it.
        with self._lock:
            if self._anchor is None:
                self._anchor = self._conn.request("context.create",
                                                  [None, _vm_options(self)])
            return self._anchor

    def _console_for(self, ctx):
        return self._console

    def _worker_lost(self, ctx_id):
        # Called by a context of this VM whose worker died (heap limit, crash):
        # the next create_context starts a new private worker.
        with self._lock:
            self._anchor = None

    def create_context(self):
        """A fresh JavaScript global scope on this VM's worker (started by the
        first call; after the worker hit its heap limit or crashed, a new
        one)."""
        vm = self._vm_id()
        try:
            ctx = self._conn.request("context.create", [None, {"vm": vm, "cwd": os.getcwd()}])
        except (NotFoundError, HostUnavailableError):
            # the private worker is gone (heap limit, crash, killed) and the
            # anchor context with it: start a new one
            with self._lock:
                if self._anchor == vm:
                    self._anchor = None
            vm = self._vm_id()
            ctx = self._conn.request("context.create", [None, {"vm": vm, "cwd": os.getcwd()}])
        return Context(self._conn, ctx, self)

    def close(self):
        """Stops the worker and closes the connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<jshost.VM memory=%r timeout=%r%s>" % (
            self.memory, self.timeout, " closed" if self._closed else "")


def shutdown(*, socket=None):
    """Stops every host and the manager, if one runs (never starts one).

    Returns True when a manager was told to stop, False when none was running.
    """
    try:
        conn = _connect(socket, False)
    except ConnectionError:
        return False
    try:
        conn.shutdown()
    except ConnectionError:
        pass  # it may close the connection as it goes
    finally:
        conn.close()
    return True
