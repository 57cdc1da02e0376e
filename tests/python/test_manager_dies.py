"""A manager killed between two calls: the next call starts a new one and
attaches the host again, and no call hangs past its deadline."""

import os
import signal
import time

import pytest

import jshost
from conftest import manager_pid, pid_alive, wait_until


def test_next_call_after_the_manager_was_killed(runtime_dir, main_config):
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        old = manager_pid(runtime_dir)
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(old), 10)
        t0 = time.monotonic()
        assert host.call("double", number=2, timeout=20) == 4
        assert time.monotonic() - t0 < 20
        new = manager_pid(runtime_dir)
        assert new != old and pid_alive(new)
        assert host.call("hello_world", name="again") == "Hello, again!"


def test_call_in_flight_when_the_manager_dies_fails_in_time(runtime_dir, main_config):
    import threading
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        result = {}

        def victim():
            t0 = time.monotonic()
            try:
                host.call("slow", {"ms": 60000}, timeout=5)
            except BaseException as e:  # noqa: B902
                result["error"] = e
            result["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=victim)
        t.start()
        time.sleep(0.3)
        os.kill(manager_pid(runtime_dir), signal.SIGKILL)
        t.join(15)
        assert not t.is_alive()
        assert isinstance(result.get("error"), jshost.Error), result
        assert result["elapsed"] < 5 + 3
        assert host.call("double", number=3, timeout=20) == 6


def test_a_frozen_manager_cannot_hold_a_call_past_its_deadline(runtime_dir, main_config):
    with jshost.Host(main_config) as host:
        assert host.call("double", number=1) == 2
        pid = manager_pid(runtime_dir)
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(jshost.TimeoutError):
                host.call("double", number=2, timeout=1)
            elapsed = time.monotonic() - t0
        finally:
            os.kill(pid, signal.SIGCONT)
        assert elapsed < 1 + 3, elapsed  # the deadline plus libjshost's margin
        assert host.call("double", number=3, timeout=20) == 6
