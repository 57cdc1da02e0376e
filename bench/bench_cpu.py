#!/usr/bin/env python3
"""Where a call's time goes: CPU and system calls per call in each process.

    PYTHONPATH=build/clients/python /usr/bin/python3 bench/bench_cpu.py BUILD

Five cases (bench/bench.config.js: inc, nested_out, nested_in, string_1m,
echo_10m): a trivial call, 1000 nested objects out, the same 1000 objects in,
a 1 MiB string out, a 10 MiB string in and back out. For each, a jshost Host as a user gets it (its calls go to the
worker's own socket), the same with JSHOST_DIRECT=0 (every call relayed by
the manager), and the Node.js JSON-lines child (bench/peers/jsonlines_peer.js,
the twenty-line alternative) run the same calls in interleaved rounds; per call this prints the p50 wall time and
the CPU (user + system, every thread, from /proc/PID/task/*/schedstat) of
every process taking part,
and where `perf stat` can count them the system calls of each (in one more
round of each peer, untimed: perf's tracepoint slows every system call, and
more so a process that polls before it sleeps). The manager's
CPU per call against the payload size is the figure that shows whether it
forwards bytes or translates them. JSHOST_BENCH_SCALE (bench_scale.py,
default 1) multiplies the calls and the rounds. Asserts nothing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench_calls import shutdown_manager
from bench_figures import record
from bench_scale import scaled

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "bench.config.js")
PIPE_PEER = os.path.join(HERE, "peers", "jsonlines_peer.js")
ROUNDS = 5  # at JSHOST_BENCH_SCALE 1, as the calls below

NESTED = {"k%d" % i: {"i": i, "s": "s%d" % i} for i in range(1000)}
NESTED_SUM = sum(range(1000))
TEN_MIB = "0123456789abcdef" * (10 * 1024 * 1024 // 16)

# (function, what, data, check, calls)
CASES = [
    ("inc", "trivial call (d.n + 1)", {"n": 41}, lambda r: r == 42, 4000),
    ("nested_out", "1000-key object out ({k0: {i, s}, ...})", {"seed": 0},
     lambda r: len(r) == 1000 and r["k999"]["s"] == "s999", 400),
    ("nested_in", "1000-key object in", NESTED, lambda r: r == NESTED_SUM, 400),
    ("string_1m", "1 MiB string out", {"c": "x"},
     lambda r: len(r) == 1024 * 1024, 60),
    ("echo_10m", "10 MiB string in and back out", {"s": TEN_MIB},
     lambda r: r == TEN_MIB, 10),
]


def cpu_seconds(pid):
    """CPU seconds of every thread of pid so far, from /proc's schedstat
    (nanoseconds; /proc/PID/stat counts in 10 ms ticks, too coarse for one
    call)."""
    total = 0
    task_dir = "/proc/%d/task" % pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended between listdir and open
    return total / 1e9


class SyscallCounter:
    """Counts system calls of pids with perf stat, where perf can."""

    def __init__(self, pids):
        self.procs = []
        self.files = []
        if not pids or shutil.which("perf") is None:
            return
        for pid in pids:
            out = tempfile.NamedTemporaryFile(prefix="jshbench-perf-", delete=False)
            out.close()
            p = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
                                  "-p", str(pid), "-o", out.name],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(p)
            self.files.append(out.name)
        time.sleep(0.3)  # perf attaches asynchronously

    def stop(self):
        counts = []
        for p, name in zip(self.procs, self.files):
            p.send_signal(signal.SIGINT)
            p.wait()
            n = None
            with open(name) as f:
                for line in f:
                    parts = line.split(",")
                    if len(parts) > 2 and parts[2].startswith("raw_syscalls"):
                        try:
                            n = int(parts[0])
                        except ValueError:
                            n = None
            os.unlink(name)
            counts.append(n)
        return counts


class Jshost:
    label = "jshost Host (direct)"

    def __init__(self, jshost, rundir):
        self.host = jshost.Host(CONFIG)
        self.call = self.host.call
        with open(os.path.join(rundir, "manager.pid")) as f:
            mpid = int(f.read().split()[0])
        wpid = self.host.status()["workers"][0]["pid"]
        self.pids = [("client", os.getpid()), ("manager", mpid), ("worker", wpid)]

    def close(self):
        self.host.close()


class JshostRelayed(Jshost):
    """A Host whose calls all go through the manager (JSHOST_DIRECT=0, read
    when its connection is made)."""
    label = "jshost Host, relayed"

    def __init__(self, jshost, rundir):
        os.environ["JSHOST_DIRECT"] = "0"
        try:
            super().__init__(jshost, rundir)
        finally:
            del os.environ["JSHOST_DIRECT"]


class NodeChild:
    label = "node child, JSON lines"

    def __init__(self, node):
        self.proc = subprocess.Popen([node, PIPE_PEER, CONFIG], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        if not json.loads(self.proc.stdout.readline()).get("ready"):
            raise SystemExit("bench_cpu: the JSON-lines peer did not start")
        self.pids = [("client", os.getpid()), ("node", self.proc.pid)]
        self.msgid = 0

    def call(self, fn, data):
        self.msgid += 1
        self.proc.stdin.write((json.dumps({"id": self.msgid, "fn": fn, "data": data})
                               + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def measure(peer, fn, data, check, n, count_syscalls=False):
    """n calls: (latencies, {process: cpu seconds}, {process: syscalls}, the
    last only when count_syscalls: perf's tracepoint slows every system call,
    so the rounds that are timed run without it)."""
    counter = SyscallCounter([pid for _, pid in peer.pids if pid != os.getpid()]
                             + [os.getpid()] if count_syscalls else [])
    before = {name: cpu_seconds(pid) for name, pid in peer.pids}
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = peer.call(fn, data)
        lat.append(time.perf_counter() - t0)
        if not check(r):
            raise SystemExit("bench_cpu: %s: %s answered wrong" % (peer.label, fn))
    after = {name: cpu_seconds(pid) for name, pid in peer.pids}
    counts = counter.stop()
    names = [name for name, pid in peer.pids if pid != os.getpid()] + ["client"]
    sys_counts = dict(zip(names, counts)) if counts else {}
    return lat, {k: after[k] - before[k] for k in before}, sys_counts


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    rounds = scaled(ROUNDS, 1)
    rundir = tempfile.mkdtemp(prefix="jshbench-cpu-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    os.environ.setdefault("JSHOST_MANAGER", os.path.join(build, "manager/jshost-manager"))
    os.environ.setdefault("JSHOST_WORKER", os.path.join(build, "worker/jshost-worker"))
    import jshost
    node = shutil.which("node")
    peers = [Jshost(jshost, rundir), JshostRelayed(jshost, rundir)]
    if node:
        peers.append(NodeChild(node))
    print("CPU per call in each process (us, all threads; syscalls per call "
          "where perf counts them); p50 wall; %d interleaved rounds" % rounds)
    try:
        summary = {}
        for fn, what, data, check, base_n in CASES:
            n = scaled(base_n, rounds) // rounds
            for p in peers:
                # Warm up past the JIT's first calls (the worker's value
                # encoder and the function itself run unoptimized for the
                # first ~20 calls of a fresh worker; bench_values reports
                # that cold cost): the figures are steady state, for
                # every peer alike.
                measure(p, fn, data, check, max(5, n // 5, min(50, base_n // 8)))
            lats = {p.label: [] for p in peers}
            cpu = {p.label: {} for p in peers}
            sysc = {p.label: {} for p in peers}
            for r in range(rounds):
                for p in (peers if r % 2 == 0 else list(reversed(peers))):
                    lat, c, _ = measure(p, fn, data, check, n)
                    lats[p.label].extend(lat)
                    for k, v in c.items():
                        cpu[p.label][k] = cpu[p.label].get(k, 0) + v
            # System calls: one more round of each peer, under perf, untimed.
            for p in peers:
                _, _, s = measure(p, fn, data, check, n, count_syscalls=True)
                for k, v in s.items():
                    if v is not None:
                        sysc[p.label][k] = v
            print()
            print("%s: %s" % (fn, what))
            calls = n * rounds
            for p in peers:
                lat = sorted(lats[p.label])
                p50 = lat[len(lat) // 2] * 1e6
                parts = []
                total = 0.0
                for name, _ in p.pids:
                    us = cpu[p.label][name] / calls * 1e6
                    total += us
                    sc = sysc[p.label].get(name)
                    parts.append("%s %.1f%s" % (name, us, "" if sc is None
                                                 else " (%.2f sc)" % (sc / n)))
                print("  %-24s p50 %9.1f us  cpu %8.1f us = %s" % (
                    p.label, p50, total, ", ".join(parts)))
                summary.setdefault(fn, {})[p.label] = (p50, total, cpu[p.label], calls)
                record("cpu.%s.%s.p50_us" % (fn, p.label), p50)
                record("cpu.%s.%s.cpu_us" % (fn, p.label), total)
        if node:
            print()
            print("jshost against the Node child (p50 ratio child/jshost, >1 = jshost faster)")
            print("  %-12s %10s %10s" % ("", "direct", "relayed"))
            for fn, _, _, _, _ in CASES:
                c = summary[fn][peers[2].label][0]
                ratios = [c / summary[fn][p.label][0] for p in peers[:2]]
                print("  %-12s %9.2fx %9.2fx" % (fn, *ratios))
                record("cpu.%s.vs_node.direct" % fn, ratios[0])
                record("cpu.%s.vs_node.relayed" % fn, ratios[1])
        print()
        print("The manager's CPU per call against the payload (flat = it forwards bytes)")
        print("  %-12s %10s %10s" % ("", "direct", "relayed"))
        for fn, _, _, _, _ in CASES:
            us = [summary[fn][p.label][2]["manager"] / summary[fn][p.label][3] * 1e6
                  for p in peers[:2]]
            print("  %-12s %7.1f us %7.1f us" % (fn, *us))
            record("cpu.%s.manager_us.relayed" % fn, us[1])
    finally:
        for p in peers:
            p.close()
        # Gone before this exits, the workers too: nothing outlives a bench.
        shutdown_manager(jshost, rundir, [pid for p in peers for name, pid in p.pids
                                          if name == "worker"])
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
