"""python-js-host's API on jshost, for code moving over.

Change only the imports::

    from jshost.js_host.conf import settings           # was: from js_host.conf import settings
    from jshost.js_host.function import Function       # was: from js_host.function import Function

    settings.configure(CONFIG_FILE="host.config.js", SOURCE_ROOT=here, USE_MANAGER=True)
    Function("hello_world").call(name="Foo")           # 'Hello, Foo!'

Modules: :mod:`.conf` (settings), :mod:`.function` (Function), :mod:`.host`
(the configured host), :mod:`.exceptions` (FunctionError, FunctionTimeout,
ConfigError, ProcessError) and :mod:`.apps` (the Django app reading JS_HOST).
"""
