"""jshost's exceptions (the error types of docs/protocol.md as classes).

Every exception jshost raises for a failure on its side of the boundary is a
:class:`jshost.Error`. Values that cannot be sent are plain ``TypeError`` /
``ValueError`` raised before anything is sent. The server's error types map as:

==================  =================================================
server type         exception
==================  =================================================
JSError             :class:`JSError` (``.name``, ``.message``, ``.stack``)
TimeoutError        :class:`TimeoutError` (also a builtin ``TimeoutError``)
MemoryError         :class:`MemoryError` (the *worker's* heap: deliberately
                    not a builtin ``MemoryError``, which means this process
                    is out of memory)
ConfigError         :class:`ConfigError` (``.logfile``)
HostCrashed         :class:`HostCrashedError` (``.logfile``)
HostUnavailable     :class:`HostUnavailableError`
Overloaded          :class:`OverloadedError`, a :class:`HostUnavailableError`
                    (both mean: the host cannot take this call now)
NotFound            :class:`NotFoundError`
InvalidArgument     :class:`InvalidArgumentError`, also a ``ValueError``
ProtocolError       :class:`ProtocolError`
Cancelled           :class:`CancelledError` (the call was cancelled: a
                    stop or restart past its grace; Ctrl-C raises
                    ``KeyboardInterrupt`` and a cancelled asyncio task
                    ``asyncio.CancelledError`` instead)
==================  =================================================

Failures of the client itself: a lost or refused connection, a manager that
cannot be started or an unsafe runtime directory are :class:`ConnectionError`
(also a builtin ``ConnectionError``); a client-side deadline is
:class:`TimeoutError`.
"""

import builtins
import os
import re

# TimeoutError, MemoryError and ConnectionError are left out: a star import
# must not shadow the builtins of those names (use jshost.TimeoutError...).
__all__ = [
    "Error", "JSError", "ConfigError",
    "HostCrashedError", "HostUnavailableError", "OverloadedError",
    "NotFoundError", "InvalidArgumentError", "ProtocolError",
    "CancelledError",
]

# A stack frame's place: "    at f (file:line:col)" or "    at file:line:col".
_FRAME_AT = re.compile(r"^\s+at (?:.*\()?(?P<file>[^()]*?):(?P<line>\d+):(?P<col>\d+)\)?$")


def _thrown_at(stack):
    """Where a JS error was thrown: "file:line:col" of the stack's first frame
    in the user's code (jshost's own preludes skipped), the file by its base
    name; None when the stack says nowhere."""
    for line in (stack or "").splitlines():
        m = _FRAME_AT.match(line)
        if m is None:
            continue
        file = m.group("file")
        if file.startswith(("jshost:", "node:")):
            continue
        return "%s:%s:%s" % (os.path.basename(file) or file, m.group("line"), m.group("col"))
    return None


def _stack_frames(stack, header):
    """The stack without its first lines when they repeat the header (the
    error's "Name: message"): what a traceback's note shows."""
    if stack and header and stack.startswith(header + "\n"):
        return stack[len(header) + 1:]
    return stack


class Error(Exception):
    """Base class of every jshost failure.

    Attributes (``None`` when the server did not say): ``type`` the server's
    error type (``"JSError"``, ``"HostCrashed"``...), ``message``, ``name``
    and ``stack`` (of a JavaScript error), ``logfile`` (the host's log).
    """

    def __init__(self, message="", *, type=None, name=None, stack=None, logfile=None):
        super().__init__(message)
        self.message = message
        self.type = type
        self.name = name
        self.stack = stack
        self.logfile = logfile
        if stack:
            # PEP 678: a traceback prints the JavaScript stack under the
            # exception's line
            header = "%s: %s" % (name, message) if name else message
            self.add_note(_stack_frames(stack, header))

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.type, self.name,
                           self.stack, self.logfile))


def _rebuild(cls, message, type_, name, stack, logfile):
    return cls(message, type=type_, name=name, stack=stack, logfile=logfile)


class JSError(Error):
    """The JavaScript threw, rejected, or called ``cb(err)``.

    ``.name`` is the JS error's name (``"TypeError"``), ``.message`` its
    message and ``.stack`` its stack trace. ``str()`` gives the name, the
    message and where it was thrown (``TypeError: bad input (at
    host.config.js:26:13)``); a traceback shows the JavaScript stack as the
    exception's note.
    """

    def __str__(self):
        text = "%s: %s" % (self.name, self.message) if self.name else self.message
        at = _thrown_at(self.stack)
        if at is not None:
            text = "%s (at %s)" % (text, at)
        return text

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, str(self))


class TimeoutError(Error, builtins.TimeoutError):
    """The call passed its deadline (the JavaScript was stopped; the worker
    lives on). Also a builtin ``TimeoutError``."""


class MemoryError(Error):
    """The worker's V8 heap hit its limit; the call failed and the worker is
    replaced. Not a builtin ``MemoryError``: this process is fine."""


class ConfigError(Error):
    """The config file is missing, does not parse, throws, or does not export
    an object. ``.logfile`` names the host's log when there is one."""


class HostCrashedError(Error):
    """The worker died with this call in flight; ``.logfile`` is its log."""


class HostUnavailableError(Error):
    """The host is stopping, or quarantined after repeated crashes."""


class OverloadedError(HostUnavailableError):
    """The queue for that host or this client is full (backpressure)."""


class NotFoundError(Error):
    """No such function, context, host or method."""


class InvalidArgumentError(Error, ValueError):
    """The server refused the arguments (wrong shape, or a value that cannot
    cross, such as a string with a lone surrogate). Also a ``ValueError``."""


class ConnectionError(Error, builtins.ConnectionError):
    """jshost could not reach the manager (or lost it with the call sent), could
    not start it, or the runtime directory is unsafe. Also a builtin
    ``ConnectionError``."""


class ProtocolError(Error):
    """The peer broke the msgpack-RPC protocol."""


class CancelledError(Error):
    """The call was cancelled on the server before it finished: the host was
    stopped or restarted and the call ran past its grace, or it was
    cancelled from elsewhere. (Ctrl-C during a call raises
    ``KeyboardInterrupt``, and a cancelled asyncio task
    ``asyncio.CancelledError``; the call is cancelled on the worker either
    way.)"""


_BY_TYPE = {
    "JSError": JSError,
    "TimeoutError": TimeoutError,
    "MemoryError": MemoryError,
    "ConfigError": ConfigError,
    "HostCrashed": HostCrashedError,
    "HostUnavailable": HostUnavailableError,
    "Overloaded": OverloadedError,
    "NotFound": NotFoundError,
    "InvalidArgument": InvalidArgumentError,
    "ProtocolError": ProtocolError,
    "Cancelled": CancelledError,
}

# libjshost's enum jshost_err (clients/c/jshost.h)
_ERR_IO, _ERR_PROTOCOL, _ERR_TIMEOUT, _ERR_REMOTE, _ERR_ARG = 1, 2, 3, 4, 5
_ERR_OOM, _ERR_SPAWN, _ERR_RUNTIME = 6, 7, 8
_ERR_CANCELLED = 9

_BY_CODE = {
    _ERR_IO: ConnectionError,
    _ERR_PROTOCOL: ProtocolError,
    _ERR_TIMEOUT: TimeoutError,
    _ERR_ARG: InvalidArgumentError,
    _ERR_SPAWN: ConnectionError,
    _ERR_RUNTIME: ConnectionError,
    _ERR_CANCELLED: CancelledError,
}


def _make(code, errstr, type_, message, name, stack, logfile):
    """Called by _jshost for every failed libjshost call: builds the exception."""
    if code == _ERR_REMOTE or (code == _ERR_CANCELLED and type_ is not None):
        cls = _BY_TYPE.get(type_, Error)
        text = message if message is not None else errstr
    else:
        cls = _BY_CODE.get(code, Error)
        text = errstr
    if cls is HostCrashedError and logfile and logfile not in text:
        text = "%s (log: %s)" % (text, logfile)
    return cls(text, type=type_, name=name, stack=stack, logfile=logfile)
