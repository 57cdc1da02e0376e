"""Polling before sleeping (docs/performance.md): an idle jshost sleeps, and
JSHOST_SPIN_US=0 makes every wait sleep at once. Neither figure is a speed:
one is CPU that an idle process must not burn, the other a count of sleeps."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import jshost

from conftest import WAIT, child_env, manager_pid

# How long the processes are watched doing nothing, and the CPU they may use
# meanwhile: a process that kept polling would use all of it.
IDLE_S = 1.0
IDLE_CPU_S = 0.2


def cpu_seconds(pid):
    """CPU of every thread of pid so far (schedstat, nanoseconds)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def test_idle_processes_sleep(runtime_dir, main_config):
    os.environ["JSHOST_DIRECT"] = "0"
    try:
        relayed = jshost.Host(main_config)
    finally:
        del os.environ["JSHOST_DIRECT"]
    with jshost.Host(main_config) as direct, relayed:
        # Quick calls, one after another: every process learns to poll.
        for i in range(300):
            assert direct.call("double", number=i) == 2 * i
            assert relayed.call("double", number=i) == 2 * i
        pids = [manager_pid(runtime_dir), direct.status()["workers"][0]["pid"]]
        before = [cpu_seconds(p) for p in pids]
        time.sleep(IDLE_S)
        used = [cpu_seconds(p) - b for p, b in zip(pids, before)]
        assert max(used) < IDLE_CPU_S, "CPU used while idle (manager, worker): %r" % used
        # And they still answer at once.
        assert direct.call("double", number=4) == 8
        assert relayed.call("double", number=5) == 10


CHILD = r"""
import json, os, sys, time
import jshost

def switches(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])

out = {}
for direct in ("1", "0"):
    os.environ["JSHOST_DIRECT"] = direct
    with jshost.Host(sys.argv[1]) as h:
        h.call("double", number=1)
        pid = h.status()["workers"][0]["pid"]
        before = switches(pid)
        for i in range(int(sys.argv[2])):
            assert h.call("double", number=i) == 2 * i
            time.sleep(0.001)
        out[direct] = switches(pid) - before
jshost.shutdown()
print(json.dumps(out))
"""


def worker_sleeps(config, spin_us, calls):
    """Voluntary context switches of the worker over `calls` sequential calls,
    direct and relayed, with JSHOST_SPIN_US=spin_us for every process (a
    child Python with a runtime dir of its own, so a manager of its own)."""
    rundir = tempfile.mkdtemp(prefix="jshsp-", dir="/tmp")
    env = dict(child_env(), JSHOST_RUNTIME_DIR=rundir, JSHOST_SPIN_US=str(spin_us))
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, config, str(calls)],
                              env=env, capture_output=True, text=True, timeout=WAIT)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="one CPU: jshost never polls there")
def test_spin_setting_is_followed(main_config):
    # Calls 1 ms apart: with JSHOST_SPIN_US=0 the worker sleeps in every gap;
    # polling 10 ms it hardly ever does (polling yields the CPU, which counts
    # as an involuntary switch). Under load the worker may also be preempted
    # through a gap, hence the margins.
    calls = 100
    off = worker_sleeps(main_config, 0, calls)
    on = worker_sleeps(main_config, 10000, calls)
    for path in ("1", "0"):
        assert off[path] > calls // 2, (off, on)
        assert on[path] < calls // 4, (off, on)


def test_spin_setting_not_a_number_is_named(main_config):
    # Ignored (the default is used), and said in the daemons' logs.
    rundir = tempfile.mkdtemp(prefix="jshsp-", dir="/tmp")
    env = dict(child_env(), JSHOST_RUNTIME_DIR=rundir, JSHOST_SPIN_US="fast")
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, main_config, "3"],
                              env=env, capture_output=True, text=True, timeout=WAIT)
        assert done.returncode == 0, done.stderr
        logs = [os.path.join(rundir, "manager.log")]
        hosts = os.path.join(rundir, "hosts")
        logs += [os.path.join(hosts, f) for f in os.listdir(hosts)]
        said = []
        for path in logs:
            with open(path, encoding="utf-8") as f:
                said += [line for line in f if "JSHOST_SPIN_US: 'fast'" in line]
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    # The manager, and the host's worker.
    assert len(said) >= 2, said
