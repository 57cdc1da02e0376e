"""The exception classes and how libjshost's errors map onto them (the
factory _jshost calls for every failed call)."""

import builtins
import pickle

import pytest

import jshost
from jshost import errors

REMOTE = errors._ERR_REMOTE


@pytest.mark.parametrize("type_, cls", [
    ("JSError", jshost.JSError),
    ("TimeoutError", jshost.TimeoutError),
    ("MemoryError", jshost.MemoryError),
    ("ConfigError", jshost.ConfigError),
    ("HostCrashed", jshost.HostCrashedError),
    ("HostUnavailable", jshost.HostUnavailableError),
    ("Overloaded", jshost.OverloadedError),
    ("NotFound", jshost.NotFoundError),
    ("InvalidArgument", jshost.InvalidArgumentError),
    ("ProtocolError", jshost.ProtocolError),
    ("SomethingNew", jshost.Error),
])
def test_remote_types(type_, cls):
    e = errors._make(REMOTE, "server said so", type_, "the message", None, None, None)
    assert type(e) is cls
    assert isinstance(e, jshost.Error)
    assert e.type == type_
    assert e.message == "the message"


@pytest.mark.parametrize("code, cls", [
    (errors._ERR_IO, jshost.ConnectionError),
    (errors._ERR_SPAWN, jshost.ConnectionError),
    (errors._ERR_RUNTIME, jshost.ConnectionError),
    (errors._ERR_PROTOCOL, jshost.ProtocolError),
    (errors._ERR_TIMEOUT, jshost.TimeoutError),
    (errors._ERR_ARG, jshost.InvalidArgumentError),
])
def test_client_side_codes(code, cls):
    e = errors._make(code, "connect /tmp/x/manager.sock: refused", None, None, None, None, None)
    assert type(e) is cls
    assert str(e) == "connect /tmp/x/manager.sock: refused"


def test_builtin_bases():
    assert issubclass(jshost.TimeoutError, builtins.TimeoutError)
    assert issubclass(jshost.ConnectionError, builtins.ConnectionError)
    assert issubclass(jshost.InvalidArgumentError, ValueError)
    assert issubclass(jshost.OverloadedError, jshost.HostUnavailableError)
    # the worker's heap, not ours: not a builtin MemoryError
    assert not issubclass(jshost.MemoryError, builtins.MemoryError)
    for cls in (jshost.JSError, jshost.TimeoutError, jshost.MemoryError, jshost.ConfigError,
                jshost.HostCrashedError, jshost.HostUnavailableError, jshost.NotFoundError,
                jshost.ConnectionError, jshost.ProtocolError):
        assert issubclass(cls, jshost.Error)
    with pytest.raises(TimeoutError):
        raise errors._make(errors._ERR_TIMEOUT, "late", None, None, None, None, None)


def test_js_error_fields():
    e = errors._make(REMOTE, "x", "JSError", "bad input", "TypeError",
                     "TypeError: bad input\n    at f (host.config.js:3:9)", None)
    assert (e.name, e.message) == ("TypeError", "bad input")
    assert "host.config.js:3:9" in e.stack
    # the name, the message and where it was thrown
    assert str(e) == "TypeError: bad input (at host.config.js:3:9)"
    assert repr(e) == "JSError('TypeError: bad input (at host.config.js:3:9)')"
    # PEP 678: the JS stack (its frames) is the exception's note
    assert e.__notes__ == ["    at f (host.config.js:3:9)"]


def test_js_error_place_is_the_first_frame_of_user_code():
    stack = ("RangeError: no\n"
             "    at Object.check (jshost:world:10:3)\n"
             "    at async Promise.all (index 0)\n"
             "    at /srv/app/node_modules/lib/index.js:7:11\n"
             "    at render (/srv/app/host.config.js:26:13)")
    e = errors._make(REMOTE, "x", "JSError", "no", "RangeError", stack, None)
    assert str(e) == "RangeError: no (at index.js:7:11)"
    # no frame at all: the name and the message only
    e = errors._make(REMOTE, "x", "JSError", "boom", None, None, None)
    assert str(e) == "boom" and not hasattr(e, "__notes__")
    e = errors._make(REMOTE, "x", "JSError", "m", "Error", "Error: m", None)
    assert str(e) == "Error: m"


def test_traceback_shows_the_js_stack():
    import traceback
    e = errors._make(REMOTE, "x", "JSError", "bad input", "TypeError",
                     "TypeError: bad input\n    at f (/a/host.config.js:3:9)\n"
                     "    at g (/a/lib.js:1:2)", None)
    text = "".join(traceback.format_exception(e))
    assert "jshost.errors.JSError: TypeError: bad input (at host.config.js:3:9)\n" in text
    assert "    at f (/a/host.config.js:3:9)\n    at g (/a/lib.js:1:2)" in text


def test_star_import_keeps_the_builtins():
    ns = {}
    exec("from jshost import *", ns)
    for name in ("TimeoutError", "MemoryError", "ConnectionError"):
        assert name not in ns, name
        assert name not in jshost.__all__ and name not in errors.__all__
        assert issubclass(getattr(jshost, name), jshost.Error)
    exec("from jshost import *\nfrom jshost.errors import *\nt = TimeoutError", ns)
    assert ns["t"] is builtins.TimeoutError
    assert ns["JSError"] is jshost.JSError and ns["Host"] is jshost.Host


def test_crash_names_the_log():
    e = errors._make(REMOTE, "x", "HostCrashed", "worker 123 killed by signal 9", None, None,
                     "/run/jshost/hosts/ab12.log")
    assert e.logfile == "/run/jshost/hosts/ab12.log"
    assert "/run/jshost/hosts/ab12.log" in str(e)


def test_exceptions_pickle():
    e = errors._make(REMOTE, "x", "JSError", "m", "RangeError", "stack", "log")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is jshost.JSError
    assert (e2.message, e2.name, e2.stack, e2.logfile, e2.type) == ("m", "RangeError", "stack", "log", "JSError")
    t = pickle.loads(pickle.dumps(jshost.TimeoutError("late", type="TimeoutError")))
    assert type(t) is jshost.TimeoutError and t.message == "late"


def test_timeout_argument_checks():
    assert jshost._timeout_ms(None) == 0
    assert jshost._timeout_ms(0.5) == 500
    assert jshost._timeout_ms(0.0001) == 1
    assert jshost._timeout_ms(2) == 2000
    assert jshost._timeout_ms(float("inf")) == 2**31 - 1
    assert jshost._timeout_ms(10**9) == 2**31 - 1
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            jshost._timeout_ms(bad)


def test_error_codes_match_libjshost():
    from jshost import _jshost
    for name in ("IO", "PROTOCOL", "TIMEOUT", "REMOTE", "ARG", "OOM", "SPAWN", "RUNTIME"):
        assert getattr(errors, "_ERR_" + name) == getattr(_jshost, "ERR_" + name), name
