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


def test_callbacks_and_asyncio(here):
    import asyncio
    import jshost.aio
    write(here, "cb.config.js", """module.exports = { functions: {
      async render(d) { await d.log('x'); return d.tree.length; },
      slow(d, cb) { setTimeout(() => cb(null, 'done'), 60000); },
      double(d) { return d.number * 2; } } };""")
    with jshost.Host("cb.config.js") as host, host.context() as ctx:
        logs = []
        t = [1, 2, 3]
        assert host.call("render", {"tree": t, "log": logs.append}) == 3
        assert logs == ["x"]
        ctx.expose("fetch", lambda url: "<%s>" % url)   # global async function
        ctx.set_global("limit", 10)                     # any crossing value
        assert ctx.eval("fetch('u')") == "<u>"
        assert ctx.eval("limit") == 10
        fn = logs.append
        with ctx.wrap_py_function(fn) as js_fn:         # withdrawn on exit
            ctx.set_global("log", js_fn)
            ctx.eval("(async () => { await log('a'); })()")
        assert logs == ["x", "a"]

    async def async_log(s):
        logs.append(s)

    async def main():
        async with jshost.aio.Host("cb.config.js") as host:
            assert await host.call("double", number=21) == 42
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(host.call("slow"), 0.5)   # cancels it on the worker
            async with host.context() as ctx:
                assert await ctx.eval("1 + 1") == 2
        async with jshost.aio.VM() as vm:
            async with vm.create_context() as ctx:
                async with ctx.wrap_py_function(async_log) as log_js:
                    await ctx.set_global("log", log_js)
                    await ctx.eval("log('b')")
    asyncio.run(main())
    assert logs[-1] == "b"
