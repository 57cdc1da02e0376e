"""A manager killed between two calls: the next call starts a new one and
attaches the host again, and no call hangs past its deadline. (How long each
takes is a figure of bench/bench_deadlines.py.)"""

import os
import signal
import threading

import pytest

import jshost
from conftest import (WAIT, finish_within, frozen, in_flight, manager_pid, pid_alive,
                      wait_until, write)


def test_next_call_after_the_manager_was_killed(runtime_dir, main_config):
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        old = manager_pid(runtime_dir)
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(old), 10)
        assert host.call("double", number=2, timeout=20) == 4
        new = manager_pid(runtime_dir)
        assert new != old and pid_alive(new)
        assert host.call("hello_world", name="again") == "Hello, again!"


def test_call_in_flight_when_the_manager_dies_fails(runtime_dir, main_config):
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        result = {}

        def victim():
            try:
                host.call("slow", {"ms": 60000}, timeout=5)
            except BaseException as e:  # noqa: B902
                result["error"] = e

        t = threading.Thread(target=victim)
        t.start()
        # Killed with the call in flight, not before it got there.
        assert wait_until(lambda: in_flight(host) >= 1, WAIT)
        os.kill(manager_pid(runtime_dir), signal.SIGKILL)
        t.join(WAIT)
        assert not t.is_alive()
        assert isinstance(result.get("error"), jshost.Error), result
        assert host.call("double", number=3, timeout=20) == 6


def test_a_frozen_manager_cannot_hold_a_call_past_its_deadline(runtime_dir, main_config,
                                                                monkeypatch):
    # Through the manager (JSHOST_DIRECT=0): the call cannot get past it.
    monkeypatch.setenv("JSHOST_DIRECT", "0")
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        pid = manager_pid(runtime_dir)
        with frozen(pid):
            # Were libjshost to wait on the frozen manager, this would hang.
            with pytest.raises(jshost.TimeoutError):
                finish_within(lambda: host.call("double", number=2, timeout=1))
        assert host.call("double", number=3, timeout=20) == 6


def test_a_frozen_manager_is_not_in_the_way_of_direct_calls(runtime_dir, main_config):
    # Direct calls (the default) go to the worker's own socket: the frozen
    # manager does not see them.
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        pid = manager_pid(runtime_dir)
        with frozen(pid):
            assert finish_within(lambda: host.call("double", number=2, timeout=1)) == 4
        assert host.call("double", number=3, timeout=20) == 6


SHORT_CONFIG = """
module.exports = { functions: { double(d) { return d.number * 2; } }, timeout: 1000 };
"""


def test_a_call_without_timeout_waits_its_hosts_deadline_not_more(runtime_dir, workdir,
                                                                 monkeypatch):
    # No timeout given: the host's (1 s, from its config) is the call's, and
    # the client's own guard is that plus its margin, even when the manager
    # holding the call is frozen (relayed, JSHOST_DIRECT=0).
    monkeypatch.setenv("JSHOST_DIRECT", "0")
    config = write(workdir, "short.config.js", SHORT_CONFIG)
    with jshost.Host(config) as host:
        assert host.call("double", number=1) == 2
        pid = manager_pid(runtime_dir)
        with frozen(pid):
            with pytest.raises(jshost.TimeoutError):
                finish_within(lambda: host.call("double", number=2))
        assert host.call("double", number=3) == 6
