"""jshost.js_host's settings and jshost.v8cffi's string conversion, without a
host: the code paths that read python-js-host settings and Django's JS_HOST,
and v8-cffi's String(value) rendering."""

import os

import pytest

from jshost.js_host import conf, exceptions
from jshost.js_host import host as js_host_host


@pytest.fixture
def settings(monkeypatch):
    s = conf.Conf()
    monkeypatch.setattr(conf, "settings", s)
    monkeypatch.setattr(js_host_host, "settings", s)
    monkeypatch.setattr(js_host_host, "host", js_host_host.JSHost())
    return s


def test_defaults(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings._django_checked = True
    assert settings.CONFIG_FILE == "host.config.js"
    assert settings.USE_MANAGER is False
    assert settings.FUNCTION_TIMEOUT == 10.0
    assert settings.CONNECT_ONCE_CONFIGURED is True
    assert settings.get_config_file() == os.path.join(str(tmp_path), "host.config.js")


def test_relative_config_file_is_under_source_root(settings):
    settings.configure(SOURCE_ROOT="/srv/app", CONFIG_FILE="js/host.config.js",
                       CONNECT_ONCE_CONFIGURED=False)
    assert settings.get_config_file() == "/srv/app/js/host.config.js"
    settings.configure(CONFIG_FILE="/etc/other.config.js", CONNECT_ONCE_CONFIGURED=False)
    assert settings.get_config_file() == "/etc/other.config.js"
    assert settings.configured


def test_old_node_settings_are_accepted_and_typos_are_not(settings):
    settings.configure(PATH_TO_NODE="node", VERBOSITY=0, CACHE=False,
                       ON_EXIT_STOP_MANAGED_HOSTS_AFTER=0, CONNECT_ONCE_CONFIGURED=False)
    with pytest.raises(exceptions.ConfigError, match="CONFG_FILE"):
        settings.configure(CONFG_FILE="x.js")
    with pytest.raises(exceptions.ConfigError, match="FUNCTION_TIMEOUT"):
        settings.configure(FUNCTION_TIMEOUT=-1, CONNECT_ONCE_CONFIGURED=False)
    with pytest.raises(AttributeError):
        settings.NOT_A_SETTING


class FakeDjangoSettings:
    configured = True
    JS_HOST = {
        "SOURCE_ROOT": "/srv/site",
        "CONFIG_FILE": "host.config.js",
        "USE_MANAGER": True,
        "FUNCTION_TIMEOUT": 2.5,
        "CONNECT_ONCE_CONFIGURED": False,
    }


def test_django_js_host_setting_is_read(settings):
    assert settings.configure_from_django(FakeDjangoSettings()) is True
    assert settings.USE_MANAGER is True
    assert settings.FUNCTION_TIMEOUT == 2.5
    assert settings.get_config_file() == "/srv/site/host.config.js"


def test_django_without_js_host_changes_nothing(settings):
    class Empty:
        configured = True
    assert settings.configure_from_django(Empty()) is False
    assert settings.CONFIG_FILE == "host.config.js"
    class Bad:
        JS_HOST = ["not", "a", "dict"]
    with pytest.raises(exceptions.ConfigError):
        settings.configure_from_django(Bad())


def test_django_app_module_imports_without_django():
    from jshost.js_host import apps
    try:
        import django  # noqa: F401
    except ImportError:
        assert apps.JsHostConfig is None
    else:
        assert apps.JsHostConfig.name == "jshost.js_host"


def test_exception_aliases_and_bases():
    import jshost
    assert exceptions.JSFunctionError is exceptions.FunctionError
    assert exceptions.JSFunctionTimeout is exceptions.FunctionTimeout
    assert exceptions.ErrorStartingProcess is exceptions.ProcessError
    assert issubclass(exceptions.FunctionError, jshost.JSError)
    assert issubclass(exceptions.FunctionTimeout, TimeoutError)
    e = exceptions.translate(jshost.JSError("boom", type="JSError", name="Error", stack="s"))
    assert type(e) is exceptions.FunctionError and e.stack == "s"
    assert type(exceptions.translate(jshost.TimeoutError("t"))) is exceptions.FunctionTimeout
    assert type(exceptions.translate(jshost.HostCrashedError("c"))) is exceptions.ProcessError
    assert type(exceptions.translate(jshost.ConnectionError("c"))) is exceptions.ProcessError
    assert type(exceptions.translate(jshost.NotFoundError("n"))) is exceptions.FunctionError


# v8-cffi's run_script gave String(value) as V8 makes it: the values Python
# once converted itself are now converted by JavaScript, in the VM.
@pytest.mark.parametrize("script, text", [
    ("'hola'", "hola"),
    ("undefined", "undefined"),
    ("true", "true"),
    ("false", "false"),
    ("42", "42"),
    ("2n ** 70n", str(2**70)),
    ("1.0", "1"),
    ("0.5", "0.5"),
    ("-0", "0"),
    ("1e21", "1e+21"),
    ("1e-7", "1e-7"),
    ("NaN", "NaN"),
    ("-Infinity", "-Infinity"),
    ("[1, null, 'a', [2, 3]]", "1,,a,2,3"),
    ("({a: 1})", "[object Object]"),
    ("new Uint8Array([1, 2])", "1,2"),
])
def test_v8cffi_string_of_values(script, text, runtime_dir):
    from jshost.v8cffi.platform import platform
    with platform as p, p.create_vm() as vm, vm.create_context() as ctx:
        assert ctx.run_script(script) == text
        # a Date as the VM's own String(date) makes it (its local time)
        assert ctx.run_script("new Date(Date.UTC(2020, 0, 2, 3, 4, 5))") == \
            ctx.run_script("new Date(Date.UTC(2020, 0, 2, 3, 4, 5)).toString()")
