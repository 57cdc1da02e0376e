"""jshost.v8cffi: code written for v8-cffi runs with only its imports changed."""

import os
import subprocess
import sys

import pytest

from conftest import write, child_env

USER_CODE = """
from jshost.v8cffi.platform import platform
from jshost.v8cffi import exceptions

with platform as p:
    with p.create_vm() as vm:
        with vm.create_context() as ctx:
            ctx.load_libs(['./foo_bundled.js'])
            print(ctx.run_script('foo.render("hola mundo");'))
            print(ctx.run_script('({a: 1})', identifier='obj.js'))
            print(ctx.run_script('[1, 2, 3]'))
            print(ctx.run_script('var nothing = 1;'))
            try:
                ctx.run_script('foo.missing()', identifier='page.js')
            except exceptions.V8JSError as e:
                print('V8JSError', 'page.js' in str(e))

from jshost.v8cffi import shortcuts
shortcuts.set_up()
ctx = shortcuts.get_context()
ctx.load_libs(['./foo_bundled.js'])
print(ctx.run_script('foo.render("shortcut");'))
"""


@pytest.fixture(scope="module")
def project(workdir, runtime_dir):
    root = os.path.join(workdir, "v8project")
    os.makedirs(root, exist_ok=True)
    write(root, "foo_bundled.js", "var foo = {render: function (s) { return '<h1>' + s + '</h1>'; }};")
    write(root, "app.py", USER_CODE)
    return root


def test_v8cffi_user_code_runs_unchanged(project):
    out = subprocess.run([sys.executable, "app.py"], capture_output=True, text=True,
                         timeout=60, cwd=project, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "<h1>hola mundo</h1>", "[object Object]", "1,2,3", "undefined",
        "V8JSError True", "<h1>shortcut</h1>"]


def test_lifecycle_and_errors(project, monkeypatch):
    from jshost.v8cffi.platform import platform
    from jshost.v8cffi import exceptions
    monkeypatch.chdir(project)
    platform.set_up()
    assert platform.is_alive()
    vm = platform.create_vm()
    assert not vm.is_alive()
    vm.set_up()
    ctx = vm.create_context()
    ctx.set_up()
    assert ctx.is_alive()
    ctx.load_libs(["foo_bundled.js"])
    assert ctx.run_script(b'foo.render("bytes")', identifier=b"b.js") == "<h1>bytes</h1>"
    assert ctx.run_script("1 + 1") == "2"
    assert ctx.run_script("0.1 + 0.2") == "0.30000000000000004"
    assert ctx.run_script("true") == "true"
    with pytest.raises(exceptions.V8JSError):
        ctx.run_script("throw new Error('x')")
    with pytest.raises(exceptions.V8Error):
        ctx.run_script("this is not javascript")
    with pytest.raises(OSError):
        ctx.load_libs(["missing.js"])
    ctx.tear_down()
    vm.tear_down()
    assert not vm.is_alive()
    platform.tear_down()
    assert not platform.is_alive()


def test_memory_error(project):
    from jshost.v8cffi.platform import platform
    from jshost.v8cffi import exceptions
    with platform as p:
        with p.create_vm(memory=32, timeout=60) as vm:
            with vm.create_context() as ctx:
                with pytest.raises(exceptions.V8MemoryError):
                    ctx.run_script("var k = []; for (;;) k.push(new Array(100000).fill(1.5));")


def test_run_script_is_javascripts_string(project, monkeypatch):
    # v8-cffi returned String(value), taken in V8: the same strings here, for
    # values that do not cross as themselves
    from jshost.v8cffi.platform import platform
    from jshost.v8cffi import exceptions
    monkeypatch.chdir(project)
    with platform as p, p.create_vm() as vm, vm.create_context() as ctx:
        assert ctx.run_script("(function f(a){})") == "function f(a){}"
        assert ctx.run_script("({toString(){return 'custom'}})") == "custom"
        assert ctx.run_script("/re/g") == "/re/g"
        assert ctx.run_script("new Error('e')") == "Error: e"
        assert ctx.run_script("null") == "null"
        assert ctx.run_script("undefined") == "undefined"
        assert ctx.run_script("-0") == "0"
        assert ctx.run_script("1e21") == "1e+21"
        assert ctx.run_script("Symbol('s')") == "Symbol(s)"
        assert ctx.run_script("[1, [2, null], {}]") == "1,2,,[object Object]"
        assert ctx.run_script("new Map([[1, 2]])") == "[object Map]"
        assert ctx.run_script("Promise.resolve({})") == "[object Object]"
        # top-level let/const stay shared between scripts, as in a script
        ctx.run_script("const kept = 'shared'")
        assert ctx.run_script("kept") == "shared"
        with pytest.raises(exceptions.V8JSError, match="toString blew up"):
            ctx.run_script("({toString() { throw new Error('toString blew up'); }})")
        with pytest.raises(exceptions.V8JSError, match="page.js"):
            ctx.run_script("this is not javascript", identifier="page.js")
