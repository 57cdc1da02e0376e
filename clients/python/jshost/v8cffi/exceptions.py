"""v8-cffi's exceptions: ``from jshost.v8cffi import exceptions``.

- :class:`V8Error`: the base of them all (also a :class:`jshost.Error`).
- :class:`V8JSError`: the script threw or did not compile.
- :class:`V8MemoryError`: the VM's heap limit was hit (the VM's worker is
  replaced; its contexts are gone).
- :class:`V8UnknownError`: anything else jshost reports (a crashed worker, a
  deadline, a lost manager); the jshost exception is its ``__cause__``.
"""

import jshost

__all__ = ["V8Error", "V8JSError", "V8MemoryError", "V8UnknownError", "translate"]


class V8Error(jshost.Error):
    """Base error for everything V8 related."""


class V8JSError(V8Error):
    """A script failed to compile or run; the message says why."""


class V8MemoryError(V8Error):
    """The VM ran out of heap."""


class V8UnknownError(V8Error):
    """Any other failure (see ``__cause__``)."""


def translate(exc):
    """The v8cffi exception for a jshost exception (same fields)."""
    if isinstance(exc, jshost.JSError):
        cls = V8JSError
    elif isinstance(exc, jshost.MemoryError):
        cls = V8MemoryError
    else:
        cls = V8UnknownError
    message = exc.message
    if isinstance(exc, jshost.JSError) and exc.stack:
        message = exc.stack  # v8-cffi put the location in the message
    elif isinstance(exc, jshost.JSError) and exc.name:
        message = "%s: %s" % (exc.name, exc.message)
    return cls(message, type=exc.type, name=exc.name, stack=exc.stack,
               logfile=exc.logfile)
