"""v8-cffi's Context: ``load_libs`` and ``run_script`` returning a str."""

import datetime
import math

import jshost

from . import exceptions

__all__ = ["Context"]

_DEFAULT_SCRIPT_NAME = "<anonymous>"


def _read_file(path):
    with open(path, "rb") as fh:
        return fh.read()


def _js_number(x):
    # Number.prototype.toString for the values a script can return
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e21:
        return "%d" % x
    r = repr(x)
    if "e" in r:
        mant, exp = r.split("e")
        sign = "-" if exp.startswith("-") else "+"
        r = "%se%s%d" % (mant, sign, abs(int(exp)))
    return r


def _js_string(v, top=True):
    """String(value) as V8 gives it, for the values that come back from JS."""
    if v is None:
        return "undefined" if top else ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _js_number(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return ",".join(str(b) for b in v)
    if isinstance(v, list):
        return ",".join(_js_string(x, False) for x in v)
    if isinstance(v, datetime.datetime):
        return v.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
    return "[object Object]"


class Context:
    """A JavaScript global scope of a VM; ``with ctx:`` or ``set_up()``
    creates it. Safe to use from several threads."""

    def __init__(self, vm):
        self._vm = vm
        self._ctx = None

    def __enter__(self):
        return self.set_up()

    def __exit__(self, *_):
        self.tear_down()

    def set_up(self):
        """Creates the context; returns it."""
        assert self._ctx is None, "context already set up"
        assert self._vm.is_alive(), "VM is not set up"
        self._ctx = self._vm._new_context()
        return self

    def tear_down(self):
        """Destroys the context."""
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    def is_alive(self):
        """True between set_up and tear_down."""
        return self._ctx is not None

    def load_libs(self, scripts_paths):
        """Runs script files (UTF-8) in order, each under its path as the
        identifier, like ``<script>`` tags. A missing file raises OSError."""
        for path in scripts_paths:
            self.run_script(_read_file(path), identifier=path)

    def run_script(self, script, identifier=_DEFAULT_SCRIPT_NAME):
        """Runs ``script`` (str or UTF-8 bytes) and returns its value as a str,
        as v8-cffi did (``String(value)``: ``"[object Object]"`` for objects,
        ``"undefined"`` for a statement). Raises :class:`V8JSError` when the
        script throws.

        Differences from v8-cffi: a returned promise is awaited (its value is
        returned); ``null`` comes back as ``"undefined"`` (jshost does not tell
        the two apart); a Map or class instance as ``"[object Object]"``.
        """
        assert self._ctx is not None, "context is not set up"
        if isinstance(identifier, bytes):
            identifier = identifier.decode("utf-8")
        try:
            value = self._ctx.run_script(script, identifier)
        except jshost.Error as e:
            raise exceptions.translate(e) from e
        return _js_string(value)
