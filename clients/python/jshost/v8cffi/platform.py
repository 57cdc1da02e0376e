"""v8-cffi's platform: ``from jshost.v8cffi.platform import platform``.

In jshost there is nothing to initialise in this process (V8 runs in worker
processes), so the platform only keeps v8-cffi's life cycle: ``set_up()`` (or
``with platform``) before ``create_vm()``, ``tear_down()`` at the end.
"""

import threading

from .vm import VM

__all__ = ["platform"]


class _Platform:
    """The process-wide platform (use the ``platform`` instance)."""

    def __init__(self):
        self._alive = False
        self._lock = threading.Lock()

    def __enter__(self):
        return self.set_up()

    def __exit__(self, *_):
        self.tear_down()

    def is_alive(self):
        """True between set_up and tear_down."""
        return self._alive

    def set_up(self):
        """Initialises the platform; returns it."""
        with self._lock:
            self._alive = True
        return self

    def tear_down(self):
        """Ends the platform (VMs still open keep working until closed)."""
        with self._lock:
            self._alive = False

    def create_vm(self, memory=None, timeout=None):
        """A new :class:`VM` (a private jshost worker), set up by ``with`` or
        ``set_up()``. ``memory`` (heap MiB) and ``timeout`` (seconds) are
        jshost's additions."""
        assert self.is_alive(), "platform.set_up() was not called"
        return VM(self, memory=memory, timeout=timeout)


#: The platform (v8-cffi's singleton).
platform = _Platform()
