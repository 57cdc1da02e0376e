#!/usr/bin/env python3
"""The Python client's own cost per call, and calls/s from threads sharing a Host.

    PYTHONPATH=build/clients/python /usr/bin/python3 bench/bench_client.py BUILD

Two servers, both loading bench/bench.config.js: a worker alone
(`jshost-worker --listen PATH CONFIG`, so the manager's cost is not in the
client's figures) and the manager (auto-started in a fresh runtime dir). For
each:

- sequential trivial calls (inc, {n} in, n + 1 out) from one thread: CPU of
  this process per call (time.process_time, which is exact; its split into
  user and system is not, the kernel samples that on timer ticks, so it is
  not shown; best of rounds) and its system calls per
  call (perf stat, counted in a round of its own so that counting does not
  add to the CPU figures);
- calls/s from 1, 8 and 32 threads sharing one Host (the GIL is released
  while each waits; libjshost pipelines them on the one connection), the
  ratio to 1 thread, and this process's CPU and system calls per call.

JSHOST_BENCH_SCALE (bench_scale.py, default 1) multiplies the calls, the
rounds and the threads' seconds. Everything started here is stopped here.
Asserts nothing about speed; the targets printed are the speed issue's, for
the whole system.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from bench_calls import shutdown_manager
from bench_figures import record
from bench_scale import scaled, scaled_seconds

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "bench.config.js")
# At JSHOST_BENCH_SCALE 1: calls per round, rounds (best of), and the
# seconds each thread count runs, with a warm-up of their own.
CALLS = 20000
ROUNDS = 5
THREADS = (1, 8, 32)
THREAD_SECONDS = 2.0
WARM_SECONDS = 0.3
START_TIMEOUT = 20.0


def fail(msg):
    raise SystemExit("bench_client: " + msg)


class SyscallCounter:
    """Counts this process's system calls with perf stat, where perf can."""

    def __init__(self):
        self.proc = None
        if shutil.which("perf") is None:
            return
        fd, self.out = tempfile.mkstemp(prefix="jshbench-perf-")
        os.close(fd)
        # Threads made later are counted too only with their parent's
        # inheritance, which -p lacks: the thread benches start their
        # threads before counting.
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
             "-p", str(os.getpid()), "-o", self.out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # perf attaches asynchronously

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        n = None
        with open(self.out) as f:
            for line in f:
                parts = line.split(",")
                if len(parts) > 2 and parts[2].startswith("raw_syscalls"):
                    try:
                        n = int(parts[0])
                    except ValueError:
                        pass
        os.unlink(self.out)
        return n


def cpu():
    return time.process_time()


def sequential(host, n):
    call = host.call
    data = {"n": 41}
    for _ in range(n):
        if call("inc", data) != 42:
            fail("inc answered wrong")


def seq_figures(host, n, rounds):
    """CPU us per call, best of rounds; syscalls per call."""
    sequential(host, 200)  # warm up
    best = None
    for _ in range(rounds):
        a = cpu()
        sequential(host, n)
        b = cpu()
        f = (b - a) / n * 1e6
        if best is None or f < best:
            best = f
    counter = SyscallCounter()
    sequential(host, n)
    sc = counter.stop()
    return best, None if sc is None else sc / n


def threaded(host, nthreads, seconds, count):
    """calls/s, client CPU us per call, syscalls per call (or None)."""
    go = threading.Event()
    stop = threading.Event()
    counts = [0] * nthreads
    errors = []

    def run(k):
        call = host.call
        data = {"n": k}
        n = 0
        go.wait()
        try:
            # One call at least: a stalled machine cannot leave a run without any.
            while True:
                if call("inc", data) != k + 1:
                    raise AssertionError("inc answered wrong")
                n += 1
                if stop.is_set():
                    break
        except BaseException as e:  # reported below
            errors.append(e)
        counts[k] = n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    counter = SyscallCounter() if count else None
    a = cpu()
    t0 = time.monotonic()
    go.set()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    b = cpu()
    sc = counter.stop() if counter else None
    if errors:
        fail("a thread failed: %r" % errors[0])
    calls = sum(counts)
    us = (b - a) / calls * 1e6
    return calls / (t1 - t0), us, None if sc is None else sc / calls


def start_direct(jshost, worker, rundir):
    sock = os.path.join(rundir, "direct.sock")
    log = open(os.path.join(rundir, "direct-worker.log"), "ab")
    proc = subprocess.Popen([worker, "--listen", sock, CONFIG], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return proc, jshost.Host(CONFIG, socket=sock)
        except jshost.ConnectionError:
            if proc.poll() is not None:
                fail("jshost-worker exited with status %d" % proc.returncode)
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                fail("jshost-worker did not listen within %.0f s" % START_TIMEOUT)
            time.sleep(0.005)


def fmt_sc(sc):
    return "   n/a" if sc is None else "%6.2f" % sc


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    n = scaled(CALLS, 10)
    rounds = scaled(ROUNDS, 1)
    seconds = scaled_seconds(THREAD_SECONDS, 0.1)
    warm = scaled_seconds(WARM_SECONDS, 0.02)
    rundir = tempfile.mkdtemp(prefix="jshbench-client-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    os.environ.setdefault("JSHOST_MANAGER", os.path.join(build, "manager/jshost-manager"))
    worker = os.environ.setdefault("JSHOST_WORKER", os.path.join(build, "worker/jshost-worker"))
    import jshost

    proc = None
    hosts = []
    worker_pids = []
    try:
        proc, direct = start_direct(jshost, worker, rundir)
        hosts.append(("direct to worker", direct))
        hosts.append(("Host (direct calls)", jshost.Host(CONFIG)))
        os.environ["JSHOST_DIRECT"] = "0"  # read when the connection is made
        try:
            hosts.append(("Host, relayed", jshost.Host(CONFIG)))
        finally:
            del os.environ["JSHOST_DIRECT"]
        worker_pids = [w["pid"] for _, host in hosts[1:]
                       for w in host.status().get("workers", [])]
        print("bench_client: the Python client's own cost per trivial call "
              "(inc), %d calls per round, best of %d" % (n, rounds))
        print("  sequential, 1 thread           CPU us  syscalls/call")
        for label, host in hosts:
            t, sc = seq_figures(host, n, rounds)
            print("  %-28s %8.1f  %s" % (label, t, fmt_sc(sc)))
            record("client.seq.%s.cpu_us" % label, t)
        print("  threads sharing one Host     calls/s   x 1 thread  client us/call  "
              "syscalls/call")
        for label, host in hosts:
            threaded(host, 8, warm, False)  # warm up
            one = None
            for k in THREADS:
                # Best of two: a short stall of the shared machine swings one.
                rate, us, _ = max(threaded(host, k, seconds / 2, False)
                                  for _ in range(2))
                _, _, sc = threaded(host, k, seconds / 2, True)
                one = one or rate
                record("client.threads%d.%s.calls_per_s" % (k, label), rate)
                print("  %-17s %2d thread%s %8.0f   %8.2f   %13.1f  %s" % (
                    label, k, " " if k == 1 else "s", rate, rate / one, us, fmt_sc(sc)))
    finally:
        for _, host in hosts:
            host.close()
        if proc is not None:
            proc.terminate()
            proc.wait()
        # Gone before this exits, the workers too: nothing outlives a bench.
        shutdown_manager(jshost, rundir, worker_pids)
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
