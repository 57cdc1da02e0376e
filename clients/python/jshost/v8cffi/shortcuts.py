"""v8-cffi's shortcuts: one global context for the whole application.

::

    from jshost.v8cffi import shortcuts
    shortcuts.set_up()
    ctx = shortcuts.get_context()
    ctx.load_libs(["./foo_bundled.js"])
    ctx.run_script('foo.render("hola mundo");')
"""

import threading

from .platform import platform

__all__ = ["set_up", "get_context", "tear_down"]

_lock = threading.Lock()
_vm = None
_context = None


def set_up():
    """Sets up the platform, a VM and its global context (once per process)."""
    global _vm, _context
    with _lock:
        if _context is not None:
            return
        platform.set_up()
        vm = platform.create_vm().set_up()
        try:
            ctx = vm.create_context().set_up()
        except BaseException:
            vm.tear_down()
            raise
        _vm, _context = vm, ctx


def get_context():
    """The global context made by :func:`set_up` (usable from any thread)."""
    assert _context is not None, "shortcuts.set_up() was not called"
    return _context


def tear_down():
    """Destroys the global context and its VM."""
    global _vm, _context
    with _lock:
        if _context is not None:
            _context.tear_down()
            _vm.tear_down()
        _vm = _context = None
