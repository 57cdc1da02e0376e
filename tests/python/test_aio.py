"""jshost.aio: the asyncio API on the same core (one connection per Host or
VM, read by the event loop), Python callables run on the loop, and a
cancelled task stopping its JavaScript on the worker (the same worker serves
the next call, well before the spinning call's own deadline)."""

import asyncio
import os
import threading

import pytest

import jshost
import jshost.aio
from conftest import WAIT, pid_alive, write

CONFIG = r"""
let n = 0;
module.exports = {
  functions: {
    double(d) { return d.number * 2; },
    count() { return ++n; },
    async callOnce(d) { return await d.f(...(d.args || [])); },
    async loop(d) { let s = 0; for (let i = 0; i < d.n; i++) s += await d.f(i); return s; },
    async catchIt(d) {
      try { await d.f(); return null; }
      catch (e) { return {name: e.name, message: e.message, stack: e.stack}; }
    },
    spin() { for (;;) {} },
    fail() { throw new TypeError('bad input'); },
  },
  timeout: 120000,
};
"""


@pytest.fixture(scope="module")
def config(workdir):
    return write(workdir, "aio.config.js", CONFIG)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT))


async def worker_pid(host):
    (w,) = (await host.status())["workers"]
    return w["pid"]


def test_host_calls_and_contexts(config, workdir):
    async def main():
        host = await jshost.aio.Host(config)
        assert await host.call("double", number=21) == 42
        assert await host.call("double", {"number": 2}) == 4
        assert await host.function("double")(number=5) == 10
        assert "double" in host.functions
        with pytest.raises(jshost.JSError) as e:
            await host.call("fail")
        assert e.value.name == "TypeError"
        with pytest.raises(jshost.NotFoundError):
            await host.call("nope")
        with pytest.raises(TypeError):
            await host.call("double", {"number": 1}, number=2)
        # many at once, pipelined on the one connection
        got = await asyncio.gather(*(host.call("double", number=i) for i in range(200)))
        assert got == [2 * i for i in range(200)]
        async with host.context() as ctx:
            assert await ctx.eval("1 + 1") == 2
            assert await ctx.call("Math.max", 1, 7) == 7
            lib = write(workdir, "aio_lib.js", "globalThis.triple = (x) => x * 3;")
            await ctx.load_libs([lib])
            assert await ctx.run_script("triple(3)", identifier="t.js") == 9
            await ctx.set_global("limit", 10)
            assert await ctx.eval("limit") == 10
        assert ctx.closed
        await host.close()
        assert host.closed
        with pytest.raises(ValueError):
            await host.call("double", number=1)
    run(main())


def test_vm(config):
    async def main():
        async with jshost.aio.VM(memory=128, timeout=60) as vm:
            async with vm.create_context() as ctx:
                assert await ctx.eval("[1, 2].map((x) => x * 2)") == [2, 4]
            ctx2 = await vm.create_context()
            assert await ctx2.eval("typeof limit") == "undefined"
            await ctx2.close()
    run(main())


def test_callables(config):
    async def main():
        async with jshost.aio.Host(config) as host:
            async def add(a, b):
                await asyncio.sleep(0)
                return a + b
            assert await host.call("callOnce", {"f": add, "args": [2, 3]}) == 5
            # sync callables run in the loop's executor, not on the loop
            loop_thread = threading.current_thread()
            where = []

            def sync(x):
                where.append(threading.current_thread())
                return x * 10
            assert await host.call("callOnce", {"f": sync, "args": [4]}) == 40
            assert where[0] is not loop_thread

            async def ident(i):
                return i
            assert await host.call("loop", {"f": ident, "n": 10000}) == sum(range(10000))

            async def bad():
                raise ValueError("no good")
            r = await host.call("catchIt", {"f": bad})
            assert r["name"] == "ValueError" and r["message"] == "no good"
            assert "raise ValueError" in r["stack"]
            with pytest.raises(jshost.JSError) as e:
                await host.call("callOnce", {"f": bad})
            assert e.value.name == "ValueError"
    run(main())


def test_nested_reentry_and_expose(config):
    async def main():
        async with jshost.aio.Host(config) as host, host.context() as ctx:
            async def again(n):
                if n == 0:
                    return await ctx.eval("'bottom'")
                return await ctx.eval("again(%d)" % (n - 1))
            await ctx.expose("again", again)
            assert await ctx.eval("again(4)") == "bottom"
            got = []
            await ctx.expose("log", got.append)
            await ctx.eval("setTimeout(() => log('timer'), 10); 0")
            for _ in range(int(WAIT * 50)):
                if got:
                    break
                await asyncio.sleep(0.02)
            assert got == ["timer"]
            assert await ctx.call("(f) => { globalThis.g = f; return f(1); }",
                                  lambda x: x + 1) == 2
            assert (await ctx.eval("g(1).then(() => 'called', (e) => e.message)")
                    ).startswith("callback expired")
    run(main())


def test_pyminiracer_wrap_py_function_demo(config):
    # PyMiniRacer's README demo, with a fake get_url
    async def main():
        printed = []

        async def log(content):
            printed.append(content)

        async def get_url(url):
            await asyncio.sleep(0.01)
            return "<html>%s</html>" % url

        async with jshost.aio.VM() as vm, vm.create_context() as ctx:
            async with ctx.wrap_py_function(log) as log_js, \
                    ctx.wrap_py_function(get_url) as get_url_js:
                await ctx.set_global("log", log_js)
                await ctx.set_global("get_url", get_url_js)
                await ctx.eval("""
(async () => {
   const content = await get_url("https://xkcd.com/353/");
   await log(content);
})()""")
            assert log_js.released
            assert (await ctx.eval("log('x').then(() => 'called', (e) => e.message)")
                    ).startswith("callback expired")
        assert printed == ["<html>https://xkcd.com/353/</html>"]
    run(main())


def test_cancelled_task_stops_the_javascript(config):
    async def main():
        async with jshost.aio.Host(config) as host:
            pid = await worker_pid(host)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(host.call("spin"), 0.3)
            # the worker stopped the spin: it answers before the next call's
            # deadline, far shorter than the spin's
            assert await host.call("double", number=1, timeout=WAIT / 2) == 2
            task = asyncio.ensure_future(host.call("spin"))
            while not any(w.get("in_flight") for w in (await host.status())["workers"]):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await host.call("double", number=2, timeout=WAIT / 2) == 4
            assert await worker_pid(host) == pid
    run(main())


def test_vm_close_stops_a_spinning_timer():
    async def main():
        watch = jshost._connect(None, True)

        def vm_pids():
            return {w["pid"] for h in watch.request("status", [None])["hosts"]
                    if h["id"].startswith("vm-") for w in h["workers"]}
        before = vm_pids()
        vm = await jshost.aio.VM(timeout=120)
        ctx = await vm.create_context()
        await ctx.eval("setTimeout(() => { for (;;) {} }, 20); 0")
        (pid,) = vm_pids() - before
        await vm.close()
        for _ in range(int(WAIT * 50)):
            if not pid_alive(pid):
                break
            await asyncio.sleep(0.02)
        assert not pid_alive(pid)
        watch.close()
    run(main())
