"""The host python-js-host's functions talk to: ``from jshost.js_host.host import host``.

A lazy wrapper over one :class:`jshost.Host` for the configured
``CONFIG_FILE``, made on first use (or at ``configure`` time).
"""

import threading

import jshost

from . import exceptions
from .conf import settings

__all__ = ["JSHost", "host"]


class JSHost:
    """python-js-host's host object, backed by a :class:`jshost.Host`."""

    def __init__(self, config_file=None):
        self.config_file = config_file
        self._host = None
        self._lock = threading.Lock()

    @property
    def has_connected(self):
        """True once the host was attached."""
        return self._host is not None

    def connect(self):
        """Attaches the config (starting the manager when USE_MANAGER allows)."""
        self.get_host()

    def get_host(self):
        """The :class:`jshost.Host`, attached on first use."""
        with self._lock:
            if self._host is None:
                path = self.config_file or settings.get_config_file()
                try:
                    self._host = jshost.Host(path, socket=settings.SOCKET,
                                             spawn=bool(settings.USE_MANAGER))
                except jshost.Error as e:
                    raise exceptions.translate(e) from e
            return self._host

    def get_name(self):
        """The config file this host runs."""
        return self.config_file or settings.get_config_file()

    def call_function(self, function, data=None, timeout=None, **_ignored):
        """Calls ``function`` with ``data`` (a dict) and returns its result."""
        if timeout is None:
            timeout = settings.FUNCTION_TIMEOUT
        h = self.get_host()
        try:
            return h.call(function, {} if data is None else data, timeout=timeout)
        except jshost.Error as e:
            raise exceptions.translate(e) from e

    def restart(self):
        """Restarts the host's workers."""
        return self.get_host().restart()

    def stop(self):
        """Stops the host's workers."""
        return self.get_host().stop()

    @property
    def logfile(self):
        """The host's log file."""
        return self.get_host().logfile

    def reset(self):
        """Forgets the attached host (settings changed); the next use attaches again."""
        with self._lock:
            old, self._host = self._host, None
        if old is not None:
            old.close()


#: The host of the configured CONFIG_FILE.
host = JSHost()
