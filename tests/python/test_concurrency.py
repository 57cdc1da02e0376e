"""One Host shared by threads, a Host used across fork(), and backpressure."""

import os
import threading

import pytest

import jshost
from conftest import WAIT, in_flight, wait_child, wait_until, write


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
    # Four calls that each wait a second in JS (a timer, not a busy loop) are
    # in flight together when sent together: the GIL is released and one
    # connection carries them all. (How long they take together is a figure
    # of bench/bench_deadlines.py.)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        host.call("slow", {"ms": 1000}, timeout=10))) for _ in range(4)]
    for t in threads:
        t.start()
    assert wait_until(lambda: in_flight(host) == 4, WAIT)
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert results == ["done"] * 4


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
    assert wait_child(pid) == 0
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
    assert wait_child(pid) == 0


@pytest.mark.parametrize("what", ["call", "eval"])
def test_gil_is_released_while_waiting(host, what):
    ctx = host.context()

    def wait_in_js():
        if what == "call":
            host.call("slow", {"ms": 2000}, timeout=10)
        else:
            ctx.eval("new Promise(r => setTimeout(() => r(1), 2000))", timeout=10)

    t = threading.Thread(target=wait_in_js)
    t.start()
    # Were the GIL held through the other thread's wait, this thread would
    # only run again once it is over, and never see it in flight.
    assert wait_until(lambda: in_flight(host) >= 1, WAIT)
    assert t.is_alive()
    t.join(WAIT)
    ctx.close()


def test_fork_while_another_thread_waits_in_a_call(host):
    def busy():
        host.call("slow", {"ms": 2000}, timeout=10)

    t = threading.Thread(target=busy)
    t.start()
    # The thread waits inside libjshost once its call is in flight.
    assert wait_until(lambda: in_flight(host) >= 1, WAIT)
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
    assert wait_child(pid) == 0
    t.join(WAIT)
    assert not t.is_alive()
    assert host.call("double", number=6) == 12
