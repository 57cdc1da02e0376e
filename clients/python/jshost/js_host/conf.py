"""python-js-host's settings: ``from jshost.js_host.conf import settings``.

``settings.configure(...)`` takes python-js-host's names:

- ``SOURCE_ROOT``: the folder relative ``CONFIG_FILE`` paths start from
  (default: the working directory).
- ``CONFIG_FILE``: the host's config (default ``host.config.js``).
- ``USE_MANAGER``: True lets jshost start its manager when none runs (the
  development setup python-js-host's manager gave). False (the default, as in
  python-js-host) expects one to be running already: ``jshost manager`` under
  a supervisor, reached through ``SOCKET`` or ``$JSHOST_SOCKET``.
- ``FUNCTION_TIMEOUT``: seconds a function may take (default 10.0).
- ``CONNECT_ONCE_CONFIGURED``: attach the host as soon as ``configure`` is
  called, so that a broken setup fails at start-up (default True).
- ``SOCKET`` (jshost's own): a manager socket to talk to.

python-js-host's settings that meant something only for Node and HTTP
(``PATH_TO_NODE``, ``BIN_PATH``, ``ROOT_URL``, ``VERBOSITY``, ``CACHE``,
``ON_EXIT_STOP_MANAGED_HOSTS_AFTER``...) are accepted and ignored. Under
Django, the ``JS_HOST`` dict of Django's settings is read the same way (add
``"jshost.js_host"`` to ``INSTALLED_APPS``).
"""

import os

from .exceptions import ConfigError

__all__ = ["Conf", "settings"]

_KNOWN = {
    "SOURCE_ROOT": None,
    "CONFIG_FILE": "host.config.js",
    "USE_MANAGER": False,
    "FUNCTION_TIMEOUT": 10.0,
    "CONNECT_ONCE_CONFIGURED": True,
    "SOCKET": None,
}

_IGNORED = {"PATH_TO_NODE", "BIN_PATH", "ROOT_URL", "VERBOSITY", "CACHE",
            "ON_EXIT_STOP_MANAGED_HOSTS_AFTER", "ON_EXIT_MANAGED_HOSTS_STOP_TIMEOUT",
            "PATH_TO_NODE_MODULES"}


class Conf:
    """The settings object; read them as attributes (``settings.CONFIG_FILE``)."""

    def __init__(self):
        self._values = dict(_KNOWN)
        self._configured = False
        self._django_checked = False

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__["_values"]
        if name in values:
            self._check_django()
            return values[name]
        raise AttributeError("js_host has no setting %r" % name)

    def configure(self, **kwargs):
        """Sets the given settings; connects at once when
        ``CONNECT_ONCE_CONFIGURED`` (the default)."""
        for key, value in kwargs.items():
            if key in _KNOWN:
                self._values[key] = value
            elif key not in _IGNORED:
                raise ConfigError("unknown js_host setting %r" % key)
        timeout = self._values["FUNCTION_TIMEOUT"]
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigError("FUNCTION_TIMEOUT must be a positive number of seconds")
        self._configured = True
        self._django_checked = True  # explicit settings win over Django's
        from . import host
        host.host.reset()
        if self._values["CONNECT_ONCE_CONFIGURED"]:
            host.host.connect()

    def configure_from_django(self, django_settings):
        """Reads ``JS_HOST`` (a dict) from a Django settings object; nothing
        happens when it has none."""
        options = getattr(django_settings, "JS_HOST", None)
        self._django_checked = True
        if options is None:
            return False
        if not isinstance(options, dict):
            raise ConfigError("settings.JS_HOST must be a dict")
        self.configure(**options)
        return True

    def _check_django(self):
        # Outside an app registry (plain scripts importing a Django project's
        # code), JS_HOST is still honoured on first use.
        if self.__dict__["_django_checked"]:
            return
        self.__dict__["_django_checked"] = True
        try:
            from django.conf import settings as django_settings
        except ImportError:
            return
        try:
            if django_settings.configured:
                self.configure_from_django(django_settings)
        except ConfigError:
            raise
        except Exception:
            pass  # Django present but not set up: nothing to read

    @property
    def configured(self):
        """True once ``configure`` was called (directly or from Django)."""
        return self._configured

    def get_config_file(self):
        """CONFIG_FILE as an absolute path (relative ones under SOURCE_ROOT)."""
        path = self.CONFIG_FILE
        if not path:
            raise ConfigError("CONFIG_FILE is not set")
        path = os.fspath(path)
        if not os.path.isabs(path):
            path = os.path.join(self.SOURCE_ROOT or os.getcwd(), path)
        return os.path.normpath(path)


#: The settings, configured with ``settings.configure(...)`` or Django's JS_HOST.
settings = Conf()
