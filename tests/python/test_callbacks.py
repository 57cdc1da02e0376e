"""JavaScript calling Python (docs/values.md, "Callables") and cancellation,
with the blocking API: callables in a call's data, set on a context,
PyFunction handles; exceptions both ways; callbacks after their call; a
client killed with reverse calls in flight; Ctrl-C on a blocking call; a VM
closed with a spinning timer; a stop past its grace.

Deadlines here are long (the config's timeout is two minutes) and every wait
is WAIT (30 s): an answer that comes within WAIT comes from cancellation,
never from a deadline.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import jshost
from conftest import WAIT, child_env, finish_within, pid_alive, wait_until, write

CONFIG = r"""
module.exports = {
  functions: {
    async callOnce(d) { return await d.f(...(d.args || [])); },
    async loop(d) { let s = 0; for (let i = 0; i < d.n; i++) s += await d.f(i); return s; },
    async catchIt(d) {
      try { await d.f(...(d.args || [])); return null; }
      catch (e) { return {name: e.name, message: e.message, stack: e.stack}; }
    },
    keep(d) { globalThis.kept = d.f; return 'kept'; },
    async callKept() {
      try { await globalThis.kept(); return 'called'; } catch (e) { return e.message; }
    },
    async waitRecord(d) {
      try { globalThis.outcome = 'resolved ' + await d.f(); }
      catch (e) { globalThis.outcome = 'rejected ' + e.message; }
      return globalThis.outcome;
    },
    outcome() { return globalThis.outcome || null; },
    spin() { for (;;) {} },
    pid() { return 1; },
    double(d) { return d * 2; },
  },
  timeout: 120000,
};
"""


@pytest.fixture(scope="module")
def config(workdir):
    return write(workdir, "cb.config.js", CONFIG)


@pytest.fixture
def host(config):
    with jshost.Host(config) as h:
        yield h


def worker_pid(host):
    (w,) = host.status()["workers"]
    return w["pid"]


def test_callable_in_call_data(host):
    assert host.call("callOnce", {"f": lambda a, b: a + b, "args": [2, 3]}) == 5
    # bound methods, classes with __call__, nested in lists and dicts
    seen = []
    assert host.call("callOnce", {"f": seen.append, "args": [{"x": [1, b"y"]}]}) is None
    assert seen == [{"x": [1, b"y"]}]

    class Adder:
        def __call__(self, a):
            return a + 1
    assert host.call("callOnce", {"f": Adder(), "args": [1]}) == 2
    # any crossing value back, callables' threads never the caller's
    names = []

    def where():
        names.append(threading.current_thread().name)
        return {"t": "x", "n": [1.5, None]}
    assert host.call("callOnce", {"f": where}) == {"t": "x", "n": [1.5, None]}
    assert names[0] != threading.current_thread().name


def test_10000_calls_in_a_loop(host):
    count = []

    def f(i):
        count.append(i)
        return i
    assert host.call("loop", {"f": f, "n": 10000}) == sum(range(10000))
    assert len(count) == 10000


def test_python_exception_reaches_javascript(host):
    def bad(key):
        raise KeyError(key)
    r = host.call("catchIt", {"f": bad, "args": ["k"]})
    assert r["name"] == "KeyError"
    assert r["message"] == "'k'"
    # the JavaScript stack, then the Python traceback with the raising line
    assert "catchIt" in r["stack"]
    assert "Traceback (most recent call last)" in r["stack"]
    assert "in bad" in r["stack"] and "raise KeyError(key)" in r["stack"]
    # uncaught in JavaScript: the call fails with it
    with pytest.raises(jshost.JSError) as e:
        host.call("callOnce", {"f": bad, "args": ["z"]})
    assert e.value.name == "KeyError"
    assert e.value.message == "'z'"
    assert "raise KeyError(key)" in e.value.stack


def test_javascript_exception_reaches_the_callback(host):
    ctx = host.context()
    caught = {}

    def cb():
        try:
            ctx.eval("\nthrow new RangeError('out of ' + 'range')")
        except jshost.JSError as e:
            caught.update(name=e.name, message=e.message, stack=e.stack)
            raise
    ctx.expose("cb", cb)
    r = ctx.eval("cb().then(() => null, (e) => [e.name, e.message])")
    assert caught["name"] == "RangeError"
    assert caught["message"] == "out of range"
    assert ":2" in caught["stack"]
    # the JSError went back to JavaScript under its own class name
    assert r[0] == "JSError" and "out of range" in r[1]
    ctx.close()


def test_result_that_cannot_cross_rejects(host):
    r = host.call("catchIt", {"f": lambda: {1, 2}})
    assert r["name"] == "TypeError"
    assert "cannot send a value of type set" in r["message"]


def test_callback_after_its_call_ended_rejects(host):
    assert host.call("keep", {"f": lambda: 1}) == "kept"
    assert host.call("callKept").startswith("callback expired")


def test_nested_reentry_on_the_awaiting_context(host):
    ctx = host.context()
    ctx.eval("var depth = 0")

    def again(n):
        # JavaScript awaits this: the same context runs ctx.eval meanwhile
        if n == 0:
            return ctx.eval("depth")
        return ctx.eval("depth++; again(%d)" % (n - 1))
    ctx.expose("again", again)
    assert finish_within(lambda: ctx.eval("again(5)")) == 5
    ctx.close()


def test_expose_set_global_and_timers(host):
    ctx = host.context()
    got = []
    ctx.expose("log", got.append)
    ctx.set_global("limit", 10)
    ctx.set_global("api", {"double": lambda x: x * 2, "name": "api"})
    assert ctx.eval("limit") == 10
    assert ctx.eval("api.name") == "api"
    assert ctx.eval("api.double(21)") == 42
    # called by a timer, with no call in flight: the serve thread reads it
    ctx.eval("setTimeout(() => log('from a timer'), 20); 0")
    assert wait_until(lambda: got == ["from a timer"], WAIT)
    with pytest.raises(TypeError):
        ctx.expose("x", 5)
    ctx.close()
    # closed: its callables are forgotten here too
    assert ctx._kept == []


def test_ctx_call_callables_live_as_long_as_the_call(host):
    ctx = host.context()
    assert ctx.call("(f) => { globalThis.g = f; return f(3); }", lambda x: x + 1) == 4
    assert ctx.eval("g(1).then(() => 'called', (e) => e.message)").startswith(
        "callback expired")
    ctx.close()


def test_wrap_py_function(host):
    ctx = host.context()
    with ctx.wrap_py_function(lambda s: s.upper()) as js_fn:
        assert isinstance(js_fn, jshost.PyFunction)
        assert js_fn("a") == "A"  # still a Python callable
        ctx.set_global("up", js_fn)
        assert ctx.eval("up('x')") == "X"
        # the same handle in a call's data stays its own
        assert host.call("callOnce", {"f": js_fn, "args": ["y"]}) == "Y"
    assert js_fn.released
    assert ctx.eval("up('x').then(() => 'called', (e) => e.message)").startswith(
        "callback expired")
    # a released handle sent again is a callable for that call
    assert host.call("callOnce", {"f": js_fn, "args": ["z"]}) == "Z"
    kept = ctx.wrap_py_function(len)
    ctx.set_global("len", kept)
    ctx.close()  # releases it
    assert kept.released
    with pytest.raises(TypeError):
        ctx.wrap_py_function(3)


def test_async_callable_in_the_blocking_api(host):
    async def later(x):
        return x * 3
    assert host.call("callOnce", {"f": later, "args": [5]}) == 15


def test_callables_are_not_sent_where_no_value_goes():
    with pytest.raises(TypeError):
        jshost._jshost.pack({"f": len})


CHILD_KILLED = r"""
import sys, threading, jshost
host = jshost.Host(sys.argv[1])
def blocked():
    print("in callback", flush=True)
    threading.Event().wait()
host.call("waitRecord", {"f": blocked})
"""


def test_client_killed_with_reverse_calls_in_flight(host, config, workdir):
    pid = worker_pid(host)
    script = write(workdir, "killed.py", CHILD_KILLED)
    child = subprocess.Popen([sys.executable, script, config], stdout=subprocess.PIPE,
                             env=child_env(), text=True)
    try:
        assert child.stdout.readline().strip() == "in callback"
    finally:
        child.kill()
        child.wait(WAIT)
    # the worker's promise rejects, the worker lives, this client is served
    assert wait_until(lambda: host.call("outcome"), WAIT) == \
        "rejected callback expired: its client closed the connection"
    assert host.call("double", 21) == 42
    assert worker_pid(host) == pid


CHILD_CTRL_C = r"""
import sys, time, jshost
host = jshost.Host(sys.argv[1])
pid = host.status()["workers"][0]["pid"]
print("spinning", flush=True)
try:
    host.call("spin")
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    t = time.monotonic()
    print("KeyboardInterrupt", flush=True)
print(host.call("double", 4, timeout=%d), flush=True)
print("same worker" if host.status()["workers"][0]["pid"] == pid else "another worker",
      flush=True)
"""


def test_ctrl_c_on_a_blocking_call(config, workdir):
    script = write(workdir, "ctrlc.py", CHILD_CTRL_C % (WAIT // 2))
    child = subprocess.Popen([sys.executable, script, config], stdout=subprocess.PIPE,
                             env=child_env(), text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert child.stdout.readline().strip() == "spinning"
        # once the call runs (the worker is busy with it)
        with jshost.Host(config) as other:
            assert wait_until(lambda: any(w.get("in_flight") for w in
                                          other.status()["workers"]), WAIT)
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "KeyboardInterrupt"
        assert child.stdout.readline().strip() == "8"
        assert child.stdout.readline().strip() == "same worker"
        assert child.wait(WAIT) == 0
    finally:
        child.kill()
        child.wait(WAIT)


def vm_workers(conn):
    return {w["pid"] for h in conn.request("status", [None])["hosts"]
            if h["id"].startswith("vm-") for w in h["workers"]}


def test_vm_close_stops_a_spinning_timer():
    watch = jshost._connect(None, True)
    before = vm_workers(watch)
    vm = jshost.VM(timeout=120)
    ctx = vm.create_context()
    ctx.eval("setTimeout(() => { for (;;) {} }, 50); 0")
    (pid,) = vm_workers(watch) - before
    # the timer spins: the worker burns CPU
    assert wait_until(lambda: _cpu(pid) > 0.2, WAIT)
    t = time.monotonic()
    vm.close()
    took = time.monotonic() - t
    # its worker goes (long before the timer's two-minute deadline)
    assert wait_until(lambda: not pid_alive(pid), WAIT)
    print("VM.close with a spinning timer returned in %.3f s, its worker gone in %.3f s"
          % (took, time.monotonic() - t))
    watch.close()


def _cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_stop_past_its_grace_is_cancelled(config):
    with jshost.Host(config) as h:
        out = {}

        def spin():
            try:
                h.call("spin")
            except jshost.Error as e:
                out["e"] = e
        t = threading.Thread(target=spin)
        t.start()
        assert wait_until(lambda: any(w.get("in_flight") for w in h.status()["workers"]),
                          WAIT)
        with jshost.Host(config) as other:
            other.stop()
        t.join(WAIT)
        assert isinstance(out["e"], jshost.CancelledError)
        assert out["e"].type == "Cancelled"
