"""jshost.js_host: code written for python-js-host runs with only its imports
changed."""

import os
import subprocess
import sys
import textwrap

import pytest

import jshost
from conftest import write, child_env

USER_CODE = """
import os
from jshost.js_host.conf import settings
from jshost.js_host.function import Function
from jshost.js_host.exceptions import FunctionError

settings.configure(
    SOURCE_ROOT=os.path.dirname(os.path.abspath(__file__)),
    # Set the default config file
    CONFIG_FILE=os.path.join('config_files', 'host.config.js'),
    # Let the manager spin up instances for us
    USE_MANAGER=True,
    # Force the managed hosts to stop when the python process has stopped
    ON_EXIT_STOP_MANAGED_HOSTS_AFTER=0,
)

hello_world = Function('hello_world')
print(hello_world.call(name='Foo'))

class Greeter(Function):
    name = 'hello_world'

print(Greeter().call())

try:
    Function('throws').call()
except FunctionError as e:
    print('FunctionError', e.message)
"""


@pytest.fixture(scope="module")
def project(workdir, runtime_dir):
    root = os.path.join(workdir, "project")
    os.makedirs(os.path.join(root, "config_files"), exist_ok=True)
    write(os.path.join(root, "config_files"), "host.config.js", """
        module.exports = {functions: {
          hello_world(data, cb) { cb(null, 'Hello, ' + (data.name || 'World') + '!'); },
          throws() { throw new Error('kaput'); },
          spin() { for (;;) {} },
          add(data) { return data.a + data.b; },
        }};""")
    write(root, "app.py", USER_CODE)
    yield root
    from jshost.js_host import host
    host.host.reset()


def test_python_js_host_user_code_runs_unchanged(project):
    out = subprocess.run([sys.executable, os.path.join(project, "app.py")],
                         capture_output=True, text=True, timeout=60, cwd=project, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Hello, Foo!", "Hello, World!", "FunctionError kaput"]


def test_in_process_settings_function_and_errors(project):
    from jshost.js_host.conf import settings
    from jshost.js_host.function import Function
    from jshost.js_host.exceptions import FunctionError, FunctionTimeout
    from jshost.js_host.host import host

    settings.configure(SOURCE_ROOT=project, CONFIG_FILE="config_files/host.config.js",
                       USE_MANAGER=True, FUNCTION_TIMEOUT=0.5)
    assert host.has_connected  # CONNECT_ONCE_CONFIGURED
    assert Function("add").call(a=2, b=3) == 5
    with pytest.raises(FunctionTimeout) as e:
        Function("spin").call()
    assert isinstance(e.value, TimeoutError)
    with pytest.raises(FunctionError):
        Function("no_such_function").call()
    assert os.path.exists(host.logfile)


def test_process_error_when_no_manager_may_start(project, runtime_dir):
    from jshost.js_host.conf import settings
    from jshost.js_host.exceptions import ProcessError
    with pytest.raises(ProcessError):
        settings.configure(SOURCE_ROOT=project, CONFIG_FILE="config_files/host.config.js",
                           USE_MANAGER=False, SOCKET=os.path.join(runtime_dir, "none.sock"))
    settings.configure(SOCKET=None, USE_MANAGER=True, CONNECT_ONCE_CONFIGURED=False)


def test_config_error_for_a_missing_config(project):
    from jshost.js_host.conf import settings
    from jshost.js_host.exceptions import ConfigError
    with pytest.raises(ConfigError):
        settings.configure(SOURCE_ROOT=project, CONFIG_FILE="nope.config.js",
                           USE_MANAGER=True, CONNECT_ONCE_CONFIGURED=True)
    with pytest.raises(ConfigError):
        from jshost.js_host.function import Function
        Function()


def test_django_js_host_settings(project):
    from jshost.js_host.conf import settings
    from jshost.js_host.function import Function

    class DjangoSettings:
        configured = True
        JS_HOST = {"SOURCE_ROOT": project, "CONFIG_FILE": "config_files/host.config.js",
                   "USE_MANAGER": True}

    assert settings.configure_from_django(DjangoSettings())
    assert Function("hello_world").call(name="Django") == "Hello, Django!"
