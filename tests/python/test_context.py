"""jshost.Context (on a host and on a private VM) and jshost.VM."""

import datetime
import os
import time

import pytest

import jshost
from conftest import write, pid_alive, wait_until


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    with jshost.Host(main_config) as h:
        yield h


def test_eval_and_call(host):
    with host.context() as ctx:
        assert ctx.eval("1 + 1") == 2
        assert ctx.call("Math.max", 1, 2) == 2
        assert ctx.eval("var x = {a: [1, 2n ** 65n]}; x") == {"a": [1, 2**65]}
        assert ctx.call("(a, b) => a.concat(b)", [1], (2, 3)) == [1, 2, 3]
        assert ctx.call("(d) => d.getUTCFullYear()",
                        datetime.datetime(1999, 12, 31, tzinfo=datetime.timezone.utc)) == 1999
        assert ctx.eval("Promise.resolve(42)") == 42  # promises are awaited


def test_contexts_are_fresh_scopes(host):
    with host.context() as a, host.context() as b:
        a.eval("globalThis.only_here = 1")
        assert a.eval("typeof only_here") == "number"
        assert b.eval("typeof only_here") == "undefined"
        assert a.id != b.id


def test_run_script_identifier_in_stack(host):
    with host.context() as ctx:
        ctx.run_script("function render(s) { return s.toUpperCase(); }", identifier="lib.js")
        assert ctx.run_script("render('hola')", identifier="page.js") == "HOLA"
        with pytest.raises(jshost.JSError) as e:
            ctx.run_script("\n\nnull.boom", identifier="page.js")
        assert e.value.name == "TypeError"
        assert "page.js:3" in e.value.stack
        assert ctx.run_script(b"'bytes ok'") == "bytes ok"


def test_call_arguments_unsendable(host):
    with host.context() as ctx:
        with pytest.raises(TypeError, match=r"at args\[1\]\['k'\]$"):
            ctx.call("Math.max", 1, {"k": {1}})


def test_load_libs_relative_to_cwd(host, workdir, monkeypatch):
    write(workdir, "lib_a.js", "var foo = {render: (s) => '<p>' + s + '</p>'};")
    write(workdir, "lib_b.js", "var bar = foo.render('b');")
    monkeypatch.chdir(workdir)
    with host.context() as ctx:
        ctx.load_libs(["./lib_a.js", "lib_b.js"])
        assert ctx.eval("bar") == "<p>b</p>"
        assert ctx.run_script("foo.render('hola')", identifier="page.js") == "<p>hola</p>"
        with pytest.raises(jshost.Error):
            ctx.load_libs(["does_not_exist.js"])


def test_context_errors_and_close(host):
    ctx = host.context()
    with pytest.raises(jshost.JSError):
        ctx.eval("throw new SyntaxError('x')")
    with pytest.raises(jshost.JSError) as e:
        ctx.eval("this is not javascript")
    assert e.value.name == "SyntaxError"
    with pytest.raises(jshost.TimeoutError):
        ctx.eval("for (;;) {}", timeout=0.5)
    assert ctx.eval("'alive'") == "alive"
    ctx.close()
    ctx.close()
    assert ctx.closed


def test_vm_is_a_private_worker(runtime_dir):
    with jshost.VM() as vm:
        with vm.create_context() as a, vm.create_context() as b:
            a.eval("globalThis.v = 1")
            assert b.eval("typeof v") == "undefined"
            assert a.call("(x) => x * 2", 21) == 42
        # closing contexts keeps the VM; a new one works
        with vm.create_context() as c:
            assert c.eval("6 * 7") == 42
    assert vm.closed
    with pytest.raises(ValueError, match="closed"):
        vm.create_context()


def test_vm_timeout_is_the_default_deadline():
    # The VM's 0.5 s, not the 10 s default, ends it (how soon: bench/).
    with jshost.VM(timeout=0.5) as vm, vm.create_context() as ctx:
        t0 = time.monotonic()
        with pytest.raises(jshost.TimeoutError, match="within 500 ms"):
            ctx.eval("for (;;) {}")
        assert time.monotonic() - t0 >= 0.4
        assert ctx.eval("1") == 1


def test_vm_memory_limit_is_a_memory_error():
    with jshost.VM(memory=32, timeout=60) as vm:
        ctx = vm.create_context()
        with pytest.raises(jshost.MemoryError) as e:
            ctx.eval("const keep = []; for (;;) keep.push(new Array(100000).fill(1.5));")
        assert not isinstance(e.value, MemoryError)  # not a builtin MemoryError
        # the worker is replaced: the VM goes on with a new one
        assert vm.create_context().eval("1 + 2") == 3


def all_worker_pids():
    conn = jshost._connect(None, True)
    try:
        st = conn.request("status", [None])
    finally:
        conn.close()
    return {w["pid"] for h in st["hosts"] for w in h.get("workers", [])}


def test_vm_close_stops_its_worker(runtime_dir):
    before = all_worker_pids()
    vm = jshost.VM()
    assert vm.create_context().eval("1") == 1
    mine = all_worker_pids() - before
    assert len(mine) == 1
    pid = mine.pop()
    vm.close()
    assert wait_until(lambda: not pid_alive(pid), 10)
    assert pid not in all_worker_pids()


def test_vm_argument_checks():
    with pytest.raises(ValueError):
        jshost.VM(memory=0)
    with pytest.raises(ValueError):
        jshost.VM(timeout=-1)


def test_vm_whose_worker_was_killed_starts_a_new_one(runtime_dir):
    before = all_worker_pids()
    with jshost.VM() as vm:
        assert vm.create_context().eval("1") == 1
        mine = all_worker_pids() - before
        assert len(mine) == 1
        pid = mine.pop()
        os.kill(pid, 9)
        assert wait_until(lambda: not pid_alive(pid), 10)
        # no call was in flight: the VM learns it on its next context
        assert wait_until(lambda: _new_context_works(vm), 10)


def _new_context_works(vm):
    try:
        return vm.create_context().eval("2 + 2") == 4
    except jshost.HostCrashedError:
        return False
