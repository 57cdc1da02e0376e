"""One Host shared by threads, a Host used across fork(), and backpressure."""

import os
import threading
import time

import pytest

import jshost
from conftest import write


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    with jshost.Host(main_config) as h:
        yield h


def test_eight_threads_times_500_calls_on_one_host(host):
    errors = []
    wrong = []

    def worker(k):
        try:
            for i in range(500):
                n = k * 1000 + i
                r = host.call("double", number=n)
                if r != 2 * n:
                    wrong.append((n, r))
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert wrong == []


def test_threads_are_pipelined_not_serialized(host):
    # Four calls that each wait 300 ms in JS (a timer, not a busy loop) finish
    # together when sent together: the GIL is released and one connection
    # carries them all.
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        host.call("slow", {"ms": 300}, timeout=10))) for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert results == ["done"] * 4
    assert elapsed < 4 * 0.3, elapsed


def test_fork_child_reconnects_on_first_call(host):
    assert host.call("double", number=1) == 2
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            if host.call("double", number=21) == 42 and host.call("hello_world", name="child") == "Hello, child!":
                code = 0
        except BaseException:  # noqa: B902
            code = 2
        os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.call("double", number=5) == 10  # the parent's connection is intact


def test_fork_child_can_make_its_own_vm(host):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with jshost.VM() as vm:
                if vm.create_context().eval("40 + 2") == 42:
                    code = 0
        except BaseException:  # noqa: B902
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("what", ["call", "eval"])
def test_gil_is_released_while_waiting(host, what):
    ctx = host.context()
    entered = []

    def wait_in_js():
        entered.append(time.monotonic())
        if what == "call":
            host.call("slow", {"ms": 1200}, timeout=10)
        else:
            ctx.eval("new Promise(r => setTimeout(() => r(1), 1200))", timeout=10)

    t = threading.Thread(target=wait_in_js)
    t.start()
    while not entered:
        time.sleep(0.001)
    # Were the GIL held through the other thread's 1.2 s wait, this thread
    # would only run again after `end` and never tick.
    end = entered[0] + 0.8
    ticks = 0
    while time.monotonic() < end:
        ticks += 1
    t.join(15)
    ctx.close()
    assert ticks > 1000


def test_fork_while_another_thread_waits_in_a_call(host):
    entered = []

    def busy():
        entered.append(1)
        host.call("slow", {"ms": 1000}, timeout=10)

    t = threading.Thread(target=busy)
    t.start()
    while not entered:
        time.sleep(0.001)
    time.sleep(0.1)  # the thread now waits inside libjshost
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if host.call("double", number=2, timeout=10) == 4:
                code = 0
            host._conn.close()
        except BaseException:  # noqa: B902
            code = 2
        os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    t.join(15)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.call("double", number=6) == 12
