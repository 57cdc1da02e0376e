#!/usr/bin/env python3
"""Deadlines and failures, timed: how soon jshost answers when a call runs out
of time, when its worker or its manager goes, and when calls wait together.

    PYTHONPATH=build/clients/python /usr/bin/python3 bench/bench_deadlines.py build

The tests assert that each of these ends, with the error it must; how soon is
measured here, never asserted. Every figure is the median of five runs
(JSHOST_BENCH_SCALE, bench_scale.py, scales that number) with a ratio against
a baseline measured in the same run:

- a call past its deadline against a call that waits as long in a timer and
  returns: 1.00x means ending a run at its deadline costs no more than the
  wait itself (direct to a worker, through the manager, in a private VM);
- the first of three 1 s spinning calls sent in one write, against one such
  call alone: about 1x when each reply goes out as its run ends, 3x were
  replies held back for the batch;
- four 300 ms timer calls from four threads on one Host, against one: about
  1x when they are pipelined, 4x were they serialized;
- a call in flight whose worker or manager is SIGKILLed (from the kill to
  the error), and one sent to a frozen (SIGSTOPped) manager with a 1 s
  deadline, against a plain call or the 1 s wait;
- the first call after the manager was killed between calls (a new manager,
  the host attached again), against a cold start in a fresh runtime dir.

Everything started here is stopped here; the runtime dirs are removed.
"""

import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time

from bench_calls import JshostDirect, fail, manager_pid, shutdown_manager, wait_pid_gone
from bench_scale import scaled

CONFIG_TEXT = """
module.exports = {
  functions: {
    double(data) { return data.number * 2; },
    spin() { for (;;) {} },
    never() { return new Promise(() => {}); },
    slow(data, cb) { setTimeout(() => cb(null, 'done'), data.ms); },
  },
  timeout: 10000,
};
"""

REPEATS = 5  # at JSHOST_BENCH_SCALE 1
WAIT = 30.0  # seconds anything may take before the bench gives up on it
clock = time.perf_counter


def median_ms(run, repeats):
    return statistics.median(run() for _ in range(repeats)) * 1e3


def timed(fn, *exc):
    """Seconds fn() takes; it must raise one of exc when exc are given."""
    t0 = clock()
    try:
        fn()
    except exc:
        return clock() - t0
    if exc:
        fail("%s did not raise %s" % (fn, exc))
    return clock() - t0


def row(label, ms, base_ms):
    print("  %-56s %9.1f %8.2fx" % (label, ms, ms / base_ms))


def wait_for(pred, what):
    deadline = time.monotonic() + WAIT
    while not pred():
        if time.monotonic() > deadline:
            fail("waited %.0f s for %s" % (WAIT, what))
        time.sleep(0.002)


def in_flight(host):
    return sum(w.get("in_flight", 0) for w in host.status()["workers"])


def deadlines(jshost, host, route, repeats):
    """A 500 ms deadline met by a spin and by a promise that never settles."""
    base = median_ms(lambda: timed(lambda: host.call("slow", {"ms": 500})), repeats)
    row("%s: a 500 ms timer call (baseline)" % route, base, base)
    for fn, what in (("spin", "sync loop"), ("never", "unsettled promise")):
        ms = median_ms(lambda: timed(lambda: host.call(fn, timeout=0.5),
                                     jshost.TimeoutError), repeats)
        row("%s: %s, 500 ms deadline" % (route, what), ms, base)


def vm_deadline(jshost, repeats):
    with jshost.VM(timeout=0.5) as vm, vm.create_context() as ctx:
        base = median_ms(lambda: timed(
            lambda: ctx.eval("new Promise(r => setTimeout(r, 500))")), repeats)
        row("private VM: a 500 ms timer eval (baseline)", base, base)
        ms = median_ms(lambda: timed(lambda: ctx.eval("for (;;) {}"),
                                     jshost.TimeoutError), repeats)
        row("private VM: sync loop, its default 500 ms deadline", ms, base)


def spin_request(msgid):
    """[0, msgid, "call", ["local", "spin", {}, {"timeout_ms": 1000}]], packed."""
    return (b"\x94\x00" + bytes([msgid]) + b"\xa4call\x94\xa5local\xa4spin\x80"
            b"\x81\xaatimeout_ms\xcd\x03\xe8")


def first_of(sock_path, n):
    """Seconds until the first reply to n spinning calls sent in one write."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.connect(sock_path)
    t0 = clock()
    s.sendall(b"".join(spin_request(i + 1) for i in range(n)))
    head = s.recv(3)
    t = clock() - t0
    if head != b"\x94\x01\x01":
        fail("the first reply is not to request 1: %r" % head)
    s.close()
    return t


def not_held(direct, repeats):
    """The first of three 1 s runs arriving together, against one alone."""
    results = {}
    for n in (1, 3):
        runs = []
        for _ in range(repeats):
            runs.append(first_of(direct.sock, n))
            # The runs left behind end within 3 s; the worker is free after.
            direct.call("double", {"number": 1}, timeout=WAIT)
        results[n] = statistics.median(runs) * 1e3
    row("direct: one 1 s spin alone (baseline)", results[1], results[1])
    row("direct: first of three 1 s spins in one write", results[3], results[1])


def pipelined(host, repeats):
    def together(k):
        threads = [threading.Thread(target=lambda: host.call("slow", {"ms": 300}))
                   for _ in range(k)]
        t0 = clock()
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        return clock() - t0
    base = median_ms(lambda: together(1), repeats)
    row("manager: one 300 ms timer call (baseline)", base, base)
    row("manager: four of them from four threads", median_ms(lambda: together(4), repeats), base)


def victim_call(host, out, timeout):
    def run():
        try:
            host.call("slow", {"ms": 60000}, timeout=timeout)
        except Exception as e:  # noqa: B902 - its time and type are the figure
            out["error"] = e
        out["t"] = clock()
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: in_flight(host) >= 1, "the call in flight")
    return t


def crash_answered(jshost, host):
    """From SIGKILL of the worker to the HostCrashedError of its call."""
    out = {}
    t = victim_call(host, out, 30)
    # the worker that holds it (after a restart, the old one may still show)
    pid = next(w["pid"] for w in host.status()["workers"]
               if w["state"] == "ready" and w.get("in_flight"))
    t0 = clock()
    os.kill(pid, signal.SIGKILL)
    t.join(WAIT)
    if not isinstance(out.get("error"), jshost.HostCrashedError):
        fail("the call on the killed worker ended with %r" % out.get("error"))
    host.call("double", {"number": 1}, timeout=WAIT)  # served by the replacement
    # Five crashes in 30 s quarantine a host (docs/lifecycle.md): the kills
    # here are ours, so each run starts the crash window afresh.
    host.restart()
    return out["t"] - t0


def worker_pids(host):
    return [w["pid"] for w in host.status()["workers"]]


def gone_with_it(pids):
    """The workers of a killed manager gone (each exits once it sees its
    manager go): nothing a bench started outlives it."""
    for pid in pids:
        if not wait_pid_gone(pid, WAIT):
            fail("worker pid %d outlived its killed manager by %.0f s" % (pid, WAIT))


def manager_death_answered(jshost, host, rundir):
    """From SIGKILL of the manager to the error of the call in flight."""
    out = {}
    t = victim_call(host, out, 5)
    pid = manager_pid(rundir)
    workers = worker_pids(host)
    t0 = clock()
    os.kill(pid, signal.SIGKILL)
    t.join(WAIT)
    if not isinstance(out.get("error"), jshost.Error):
        fail("the call through the killed manager ended with %r" % out.get("error"))
    wait_pid_gone(pid, WAIT)
    host.call("double", {"number": 1}, timeout=20)  # a new manager for the next run
    gone_with_it(workers)
    return out["t"] - t0


def frozen_answered(jshost, host, rundir, *exc):
    """A call with a 1 s deadline while the manager is SIGSTOPped: a Host's
    direct call is answered by its worker; a relayed one must end in
    TimeoutError (pass it as exc)."""
    pid = manager_pid(rundir)
    os.kill(pid, signal.SIGSTOP)
    try:
        return timed(lambda: host.call("double", {"number": 2}, timeout=1), *exc)
    finally:
        os.kill(pid, signal.SIGCONT)


def relayed_host(jshost, config):
    """A Host whose calls all go through the manager (JSHOST_DIRECT=0 is read
    when its connection is made)."""
    os.environ["JSHOST_DIRECT"] = "0"
    try:
        return jshost.Host(config)
    finally:
        del os.environ["JSHOST_DIRECT"]


def restarted(host, rundir):
    """The first call after the manager was killed between calls."""
    pid = manager_pid(rundir)
    workers = worker_pids(host)
    os.kill(pid, signal.SIGKILL)
    if not wait_pid_gone(pid, WAIT):
        fail("the killed manager (pid %d) did not go" % pid)
    t = timed(lambda: host.call("double", {"number": 2}, timeout=20))
    gone_with_it(workers)
    return t


def cold(jshost, config):
    """A fresh runtime dir to a first answered call."""
    saved = os.environ["JSHOST_RUNTIME_DIR"]
    rundir = tempfile.mkdtemp(prefix="jshbench-cold-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    try:
        t0 = clock()
        h = jshost.Host(config)
        h.call("double", {"number": 1})
        t = clock() - t0
        h.close()
        shutdown_manager(jshost, rundir)
        return t
    finally:
        os.environ["JSHOST_RUNTIME_DIR"] = saved
        shutil.rmtree(rundir, ignore_errors=True)


def failures(jshost, host, config, rundir, repeats):
    plain = median_ms(lambda: timed(lambda: host.call("double", {"number": 1})), repeats)
    row("manager: a plain call (baseline)", plain, plain)
    row("manager: worker SIGKILLed mid-call, to HostCrashed",
        median_ms(lambda: crash_answered(jshost, host), repeats), plain)
    row("manager: manager SIGKILLed mid-call, to the error",
        median_ms(lambda: manager_death_answered(jshost, host, rundir), repeats), plain)
    wait = median_ms(lambda: timed(lambda: host.call("slow", {"ms": 1000})), repeats)
    row("manager: a 1 s timer call (baseline)", wait, wait)
    row("manager: frozen manager, 1 s deadline, Host: answered",
        median_ms(lambda: frozen_answered(jshost, host, rundir), repeats), wait)
    with relayed_host(jshost, config) as relayed:
        row("manager: frozen manager, 1 s deadline, relayed: TimeoutError",
            median_ms(lambda: frozen_answered(jshost, relayed, rundir, jshost.TimeoutError),
                      repeats), wait)
    base = median_ms(lambda: cold(jshost, config), repeats)
    row("cold start, fresh runtime dir (baseline)", base, base)
    row("first call after the manager was killed",
        median_ms(lambda: restarted(host, rundir), repeats), base)


def main():
    if len(sys.argv) < 2:
        fail("usage: bench_deadlines.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    repeats = scaled(REPEATS, 1)
    worker = os.path.join(build, "worker", "jshost-worker")
    os.environ.setdefault("JSHOST_MANAGER", os.path.join(build, "manager", "jshost-manager"))
    os.environ.setdefault("JSHOST_WORKER", worker)
    os.environ.pop("JSHOST_SOCKET", None)
    sys.path.insert(0, os.path.join(build, "clients", "python"))
    import jshost

    rundir = tempfile.mkdtemp(prefix="jshbench-dl-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    config = os.path.join(rundir, "deadlines.config.js")
    with open(config, "w") as f:
        f.write(CONFIG_TEXT)
    direct = host = None
    print("bench_deadlines: median of %d, ms (ratio = this / the baseline above it)"
          % repeats)
    try:
        direct = JshostDirect(jshost, worker, rundir, config=config)
        host = jshost.Host(config)
        print("%-58s %9s %9s" % ("A call past its deadline", "ms", "x"))
        deadlines(jshost, direct.host, "direct", repeats)
        deadlines(jshost, host, "manager", repeats)
        vm_deadline(jshost, repeats)
        print("Replies as their runs end, calls in flight together")
        not_held(direct, repeats)
        pipelined(host, repeats)
        print("Failures answered")
        failures(jshost, host, config, rundir, repeats)
    finally:
        if direct is not None:
            direct.close()
        if host is not None:
            host.close()
        shutdown_manager(jshost, rundir)
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
