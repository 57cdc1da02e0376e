"""Direct calls (docs/protocol.md, "Direct connections"): a Host's calls go to
its workers' own sockets, balanced over the pool; a restart drains them with
no call failing; a worker that died while idle costs the next call nothing;
one killed under a call answers HostCrashed in the manager's words."""

import os
import signal
import threading

import pytest

import jshost
from conftest import WAIT, finish_within, frozen, manager_pid, wait_until, write

POOL_CONFIG = r"""
let n = 0;
module.exports = {
  functions: {
    pid() { return process.pid === undefined ? null : process.pid; },
    count() { return ++n; },
    slow(d, cb) { setTimeout(() => cb(null, 'done'), d.ms); },
    spin() { console.log('spin started'); for (;;) {} },
  },
  workers: 2,
  timeout: 10000,
};
"""


@pytest.fixture(scope="module")
def pool_config(workdir):
    return write(workdir, "pool.config.js", POOL_CONFIG)


def worker_pids(host):
    return sorted(w["pid"] for w in host.status()["workers"] if w["state"] == "ready")


def worker_calls(host):
    return {w["pid"]: w["calls"] for w in host.status()["workers"]}


def test_calls_skip_the_manager(runtime_dir, pool_config):
    with jshost.Host(pool_config) as host:
        assert wait_until(lambda: len(worker_pids(host)) == 2, WAIT)
        host.call("count")
        with frozen(manager_pid(runtime_dir)):
            # The manager is frozen: only a direct call can be answered.
            for _ in range(20):
                assert finish_within(lambda: host.call("count", timeout=2)) > 0


def test_calls_are_spread_over_the_pool(pool_config):
    with jshost.Host(pool_config) as host:
        assert wait_until(lambda: len(worker_pids(host)) == 2, WAIT)
        before = worker_calls(host)
        errors = []

        def run():
            try:
                for _ in range(5):
                    assert host.call("slow", {"ms": 50}) == "done"
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert errors == []
        after = worker_calls(host)
        # Four calls at a time, each on the connection with the fewest: both
        # workers served some.
        assert all(after[p] - before.get(p, 0) > 0 for p in after), (before, after)


def test_restart_loses_no_call(pool_config):
    with jshost.Host(pool_config) as host:
        assert wait_until(lambda: len(worker_pids(host)) == 2, WAIT)
        old = worker_pids(host)
        stop = threading.Event()
        results, errors = [], []

        def run():
            while not stop.is_set():
                try:
                    results.append(host.call("slow", {"ms": 20}))
                except Exception as e:  # reported below
                    errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            assert wait_until(lambda: len(results) >= 10, WAIT)
            host.restart()
            # New workers serve (the old ones drained and went) ...
            assert wait_until(
                lambda: len(worker_pids(host)) == 2
                and not set(worker_pids(host)) & set(old), WAIT)
            n = len(results)
            assert wait_until(lambda: len(results) >= n + 10, WAIT)
        finally:
            stop.set()
            for t in threads:
                t.join(WAIT)
        # ... and no call failed on the way.
        assert errors == []


def test_a_worker_gone_while_idle_costs_the_next_call_nothing(pool_config):
    with jshost.Host(pool_config) as host:
        assert wait_until(lambda: len(worker_pids(host)) == 2, WAIT)
        for _ in range(4):
            host.call("count")  # connections to both workers
        old = worker_pids(host)
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        # Gone for good (replaced), while this handle kept their sockets.
        assert wait_until(
            lambda: len(worker_pids(host)) == 2
            and not set(worker_pids(host)) & set(old), WAIT)
        # The dead sockets take nothing of the call: it goes to the new
        # workers, and is answered.
        assert finish_within(lambda: host.call("slow", {"ms": 1})) == "done"
        assert finish_within(lambda: host.call("count")) >= 1


def test_a_worker_killed_under_a_call_is_host_crashed(pool_config, runtime_dir):
    with jshost.Host(pool_config) as host:
        assert wait_until(lambda: len(worker_pids(host)) == 2, WAIT)
        out = {}

        def run():
            try:
                host.call("spin", timeout=30)
            except jshost.Error as e:
                out["error"] = e

        t = threading.Thread(target=run)
        t.start()
        log = host.logfile

        def started():
            with open(log, encoding="utf-8") as f:
                return "spin started" in f.read()

        assert wait_until(started, WAIT)
        # The spinning worker answers no stats: the other one does.
        busy = [w["pid"] for w in host.status()["workers"]
                if w["state"] == "ready"]
        for pid in busy:
            os.kill(pid, signal.SIGKILL)
        t.join(WAIT)
        e = out.get("error")
        assert isinstance(e, jshost.HostCrashedError), e
        assert "signal 9" in str(e)
        assert e.logfile == log
