"""python-js-host's functions: ``Function('hello_world').call(name='Foo')``."""

from .exceptions import ConfigError
from .conf import settings

__all__ = ["Function"]


class Function:
    """A function of the configured host (python-js-host's ``Function``).

    ``Function(name)`` names a function of the config; ``call(**kwargs)``
    sends the keyword arguments as its data and returns the result (a str
    when the JavaScript produced one; other values as Python values, where
    python-js-host gave their JSON text). Subclasses may set ``name``,
    ``host`` and ``timeout`` as class attributes, as they could before.
    """

    name = None
    host = None
    timeout = None  # seconds; None: settings.FUNCTION_TIMEOUT

    def __init__(self, name=None, host=None, cacheable=None):
        if name is not None:
            self.name = name
        if host is not None:
            self.host = host
        self.cacheable = cacheable  # python-js-host's cache: accepted, unused
        if not self.name or not isinstance(self.name, str):
            raise ConfigError("Functions require a `name`")

    def get_host(self):
        """The host the function runs on (the configured one by default)."""
        if self.host is None:
            from .host import host
            self.host = host
        return self.host

    def get_name(self):
        """The function's name."""
        return self.name

    def call(self, **kwargs):
        """Calls the function with the keyword arguments as its data."""
        timeout = self.timeout if self.timeout is not None else settings.FUNCTION_TIMEOUT
        return self.get_host().call_function(self.name, kwargs, timeout=timeout)

    def __repr__(self):
        return "<js_host.Function %r>" % (self.name,)
