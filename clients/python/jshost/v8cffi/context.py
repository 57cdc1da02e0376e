"""v8-cffi's Context: ``load_libs`` and ``run_script`` returning a str."""

import jshost

from . import exceptions

__all__ = ["Context"]

_DEFAULT_SCRIPT_NAME = "<anonymous>"


def _read_file(path):
    with open(path, "rb") as fh:
        return fh.read()


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
        as v8-cffi did: JavaScript's own ``String(value)``, taken in the VM
        (``"[object Object]"`` for a plain object, ``"undefined"`` for a
        statement, a function's source, ``"/re/g"``, an Error's ``"Error:
        message"``, what a ``toString()`` returns). Raises :class:`V8JSError`
        when the script throws (or its ``toString()`` does).

        Difference from v8-cffi: a returned promise is awaited (the string of
        its value is returned).
        """
        assert self._ctx is not None, "context is not set up"
        if isinstance(script, (bytes, bytearray)):
            script = bytes(script).decode("utf-8")
        if isinstance(identifier, (bytes, bytearray)):
            identifier = bytes(identifier).decode("utf-8")
        ctx = self._ctx
        try:
            return ctx._run(ctx._conn.context_eval, ctx.id, script, identifier,
                            0, ctx._default_ms, True)
        except jshost.Error as e:
            raise exceptions.translate(e) from e
