"""v8-cffi's VM, backed by a :class:`jshost.VM` (a private worker process).

Unlike v8-cffi's isolates, VMs run truly in parallel (one process each) and a
crash in one cannot take this process down.
"""

import jshost

from . import exceptions
from .context import Context

__all__ = ["VM"]


class VM:
    """A VM of ``platform``; ``with vm:`` or ``set_up()`` starts it.

    ``memory`` (MiB) and ``timeout`` (seconds) are jshost's additions; v8-cffi
    had neither.
    """

    def __init__(self, platform, memory=None, timeout=None):
        self._platform = platform
        self._memory = memory
        self._timeout = timeout
        self._vm = None

    def __enter__(self):
        return self.set_up()

    def __exit__(self, *_):
        self.tear_down()

    def set_up(self):
        """Starts the VM; returns it."""
        assert self._vm is None, "VM already set up"
        try:
            self._vm = jshost.VM(memory=self._memory, timeout=self._timeout)
        except jshost.Error as e:
            raise exceptions.translate(e) from e
        return self

    def tear_down(self):
        """Stops the VM's worker."""
        if self._vm is not None:
            self._vm.close()
            self._vm = None

    def is_alive(self):
        """True between set_up and tear_down."""
        return self._vm is not None

    def create_context(self):
        """A new :class:`Context`, set up by ``with`` or ``set_up()``."""
        assert self.is_alive(), "VM is not set up"
        return Context(self)

    def _new_context(self):
        try:
            return self._vm.create_context()
        except jshost.Error as e:
            raise exceptions.translate(e) from e
