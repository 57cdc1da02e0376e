"""python-js-host's exceptions, as jshost raises them through jshost.js_host.

Each is also the matching :mod:`jshost` exception, so code may catch either:

- :class:`FunctionError` (a :class:`jshost.JSError`): the function threw or
  called ``cb(err)``, or no such function exists.
- :class:`FunctionTimeout` (a :class:`jshost.TimeoutError`): past
  ``FUNCTION_TIMEOUT``.
- :class:`ConfigError` (a :class:`jshost.ConfigError`): bad settings, or a
  config file that does not load.
- :class:`ProcessError` (a :class:`jshost.Error`): the host or manager could
  not be reached, started, or crashed.

python-js-host's older names are kept as aliases: ``JSFunctionError``,
``JSFunctionTimeout``, ``ErrorStartingProcess``, ``ConnectionError`` and
``UnexpectedResponse``.
"""

import jshost

__all__ = ["FunctionError", "FunctionTimeout", "ConfigError", "ProcessError",
           "JSFunctionError", "JSFunctionTimeout", "ErrorStartingProcess",
           "ConnectionError", "UnexpectedResponse"]


class FunctionError(jshost.JSError):
    """The JavaScript function failed (threw, rejected, ``cb(err)``), or the
    host has no function of that name."""


class FunctionTimeout(jshost.TimeoutError):
    """The function did not answer within ``FUNCTION_TIMEOUT`` seconds."""


class ConfigError(jshost.ConfigError):
    """The settings or the host's config file are wrong."""


class ProcessError(jshost.Error):
    """The host process (or the manager) could not be reached, started, or
    died during the call."""


class UnexpectedResponse(ProcessError):
    """The host answered something that is not a valid response."""


JSFunctionError = FunctionError
JSFunctionTimeout = FunctionTimeout
ErrorStartingProcess = ProcessError
ConnectionError = ProcessError


def translate(exc):
    """The js_host exception for a jshost exception (same fields)."""
    if isinstance(exc, (jshost.JSError, jshost.NotFoundError, jshost.InvalidArgumentError)):
        cls = FunctionError
    elif isinstance(exc, jshost.TimeoutError):
        cls = FunctionTimeout
    elif isinstance(exc, jshost.ConfigError):
        cls = ConfigError
    elif isinstance(exc, jshost.ProtocolError):
        cls = UnexpectedResponse
    else:
        cls = ProcessError
    return cls(exc.message, type=exc.type, name=exc.name, stack=exc.stack,
               logfile=exc.logfile)
