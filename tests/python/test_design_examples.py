"""The Python client's examples (docs/python.md, the jshost package's docs), as
written there."""

import os
import time

import pytest

import jshost
from conftest import write


@pytest.fixture(scope="module")
def here(workdir, main_config):
    write(workdir, "lib.js", "var foo = {render: function (s) { return '<p>' + s + '</p>'; }};")
    old = os.getcwd()
    os.chdir(workdir)  # the examples use paths relative to the working directory
    yield workdir
    os.chdir(old)


def test_design_section_9(here):
    host = jshost.Host("host.config.js")          # attach; starts manager and workers if needed
    assert host.call("hello_world", name="Foo") == 'Hello, Foo!'
    assert host.call("double", {"number": 20}) == 40
    t0 = time.monotonic()
    with pytest.raises(jshost.TimeoutError):
        host.call("slow", timeout=0.5)            # raises jshost.TimeoutError after 0.5 s
    assert time.monotonic() - t0 >= 0.4           # how soon after: bench/bench_deadlines.py
    hello = host.function("hello_world")
    assert hello(name="Foo") == 'Hello, Foo!'
    assert host.status()["id"] == host.id
    host.restart()
    assert host.call("hello_world", name="Foo") == 'Hello, Foo!'
    assert os.path.exists(host.logfile)
    ctx = host.context()                          # fresh global scope on that host's worker
    assert ctx.eval("1 + 1") == 2
    assert ctx.call("Math.max", 1, 2) == 2
    ctx.load_libs(["./lib.js"])
    assert ctx.run_script("foo.render('hola')", identifier="page.js") == '<p>hola</p>'
    vm = jshost.VM(memory=256, timeout=5)         # a private worker (v8-cffi's VM)
    vctx = vm.create_context()
    assert vctx.eval("[1, 2].map(x => x * 2)") == [2, 4]
    vm.close()
    host.stop()
    host.close()


def test_with_statements(here):
    with jshost.VM() as vm:
        with vm.create_context() as ctx:
            assert ctx.eval("'ok'") == "ok"
    with jshost.Host("host.config.js") as host, host.context() as ctx:
        assert ctx.eval("typeof require") == "function"
        assert host.call("double", number=1) == 2
