#!/usr/bin/env python3
"""Sequential calls and cold start: jshost against the tools it replaces.

    PYTHONPATH=build/clients/python /usr/bin/python3 bench/bench_calls.py build

The peers, all loading bench/bench.config.js unchanged, all called from this
one Python thread:

- js-host model: bench/peers/jshost_http_peer.js, a Node.js HTTP server per
  config (POST /function/<name>, JSON in and out), called with http.client
  over one keep-alive loopback connection (python-js-host used requests with
  a session, which costs more per call than http.client). The baseline.
- node child, JSON lines: bench/peers/jsonlines_peer.js over stdin/stdout
  pipes, the naive alternative a user would write.
- jshost Host: jshost.Host(config), auto-starting the manager in a fresh
  runtime dir, as a user gets it: its calls go to the worker's own socket.
- jshost Host, relayed: the same with JSHOST_DIRECT=0, every call relayed by
  the manager.
- jshost direct to worker: `jshost-worker --listen PATH CONFIG` and
  jshost.Host(config, socket=PATH), so the manager's proxy cost shows.

Every figure comes with a ratio against the js-host model measured in the same
run; the peers take turns in interleaved rounds so a busy machine hurts them
alike. Nothing is asserted about speed. Everything started here is stopped
here (the manager by a shutdown request, then its pid is watched until gone).
JSHOST_BENCH_SCALE (bench_scale.py, default 1) multiplies the number of calls
and of cold starts.
"""

import ctypes
import http.client
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_figures import record
from bench_scale import scaled

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "bench.config.js")
HTTP_PEER = os.path.join(HERE, "peers", "jshost_http_peer.js")
PIPE_PEER = os.path.join(HERE, "peers", "jsonlines_peer.js")

ROUNDS = 10  # each peer's calls are split in this many interleaved turns
COLD_REPEATS = 5  # at JSHOST_BENCH_SCALE 1, as the counts below
THREADS = 8
THREAD_CALLS = 400  # per thread
START_TIMEOUT = 20.0  # seconds a peer may take to come up before we give up

RENDER_BYTES = 10 * 1024


def fail(msg):
    raise SystemExit("bench_calls: " + msg)


# The workloads: (name, what, data for call i, check of result i, calls).
def _data_double(i):
    return {"number": i}


def _check_double(i, r):
    return r == 2 * i


def _data_render(i):
    return {"title": "row title %d" % i}


def _check_render(i, r):
    return isinstance(r, str) and len(r) == RENDER_BYTES


def _data_object(i):
    return {"seed": i}


def _check_object(i, r):
    return isinstance(r, dict) and len(r) == 1000 and r["key1"] == i + 1


# One 1000-key dict, reused: building it per call would time Python, not the peers.
_BIG = {("key%d" % k): (k if k % 3 else "value %d" % k) for k in range(1000)}
_BIG_SUM = sum(v if isinstance(v, int) else 1 for v in _BIG.values())


def _data_count(i):
    _BIG["key1"] = i + 1  # the answer depends on i, so a stale reply shows
    return _BIG


def _check_count(i, r):
    return r == _BIG_SUM - 1 + (i + 1)


WORKLOADS = [
    ("double", "trivial: {number} in, number out", _data_double, _check_double, 3000),
    ("render", "10 KiB string out", _data_render, _check_render, 1500),
    ("object", "1000-key object out", _data_object, _check_object, 600),
    ("count", "1000-key object in, number out", _data_count, _check_count, 600),
]


def read_line(proc, timeout):
    """One line of a child's stdout within timeout seconds, else fail."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        fail("%s said nothing within %.0f s" % (proc.args[1], timeout))
    line = proc.stdout.readline()
    if not line:
        fail("%s exited (status %s) before it was ready" % (proc.args[1], proc.wait()))
    return line


_libc = ctypes.CDLL(None, use_errno=True)


def die_with_us():
    """preexec_fn: the child gets SIGTERM when this process dies, so a bench
    that fails half-way leaves no worker behind (the node peers exit when their
    stdin closes, the manager on idle once our connection is gone). Not used
    for cold starts: a preexec_fn makes Python fork instead of vfork, which
    cost the worker's cold start 5-12 ms here."""
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_child(proc, sig=None):
    """Stops a child we started: its own way first, then SIGKILL."""
    if proc.poll() is None and sig is not None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class HttpPeer:
    label = "js-host model (node http)"

    def __init__(self, node):
        self.proc = subprocess.Popen([node, HTTP_PEER, CONFIG], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.port = json.loads(read_line(self.proc, START_TIMEOUT))["port"]
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.headers = {"Content-Type": "application/json"}

    def call(self, name, data, conn=None):
        conn = conn or self.conn
        # bytes, so that http.client sends headers and body in one write
        conn.request("POST", "/function/" + name, json.dumps(data).encode(),
                     self.headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("%s: HTTP %d %s" % (name, resp.status, body[:200]))
        return json.loads(body)

    def close(self):
        self.conn.close()
        self.proc.stdin.close()  # the peer exits when its stdin closes
        stop_child(self.proc, signal.SIGTERM)
        self.proc.stdout.close()


class PipePeer:
    label = "node child, JSON lines"

    def __init__(self, node):
        self.proc = subprocess.Popen([node, PIPE_PEER, CONFIG], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        if not json.loads(read_line(self.proc, START_TIMEOUT)).get("ready"):
            fail("the JSON-lines peer did not say ready")
        self.msgid = 0

    def call(self, name, data):
        self.msgid += 1
        line = json.dumps({"id": self.msgid, "fn": name, "data": data}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the JSON-lines peer exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (name, reply["error"]))
        return reply["result"]

    def close(self):
        self.proc.stdin.close()
        stop_child(self.proc, signal.SIGTERM)
        self.proc.stdout.close()


class JshostManager:
    label = "jshost Host"

    def __init__(self, jshost):
        self.host = jshost.Host(CONFIG)
        self.call = self.host.call
        # Watched after the manager's shutdown: nothing may be left running.
        self.worker_pids = [w["pid"] for w in self.host.status().get("workers", [])]

    def close(self):
        self.host.close()


class JshostRelayed(JshostManager):
    """A Host whose calls all go through the manager (JSHOST_DIRECT=0 is
    read when its connection is made)."""
    label = "jshost Host, relayed"

    def __init__(self, jshost):
        os.environ["JSHOST_DIRECT"] = "0"
        try:
            super().__init__(jshost)
        finally:
            del os.environ["JSHOST_DIRECT"]


class JshostDirect:
    label = "jshost direct to worker"

    def __init__(self, jshost, worker, rundir, guard=True, config=CONFIG):
        self.sock = os.path.join(rundir, "direct-%d.sock" % time.monotonic_ns())
        log = open(os.path.join(rundir, "direct-worker.log"), "ab")
        self.proc = subprocess.Popen([worker, "--listen", self.sock, config],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=die_with_us if guard else None)
        log.close()
        # The worker binds only once the config is loaded: poll until it answers.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.host = jshost.Host(config, socket=self.sock)
                break
            except jshost.ConnectionError:
                if self.proc.poll() is not None:
                    fail("jshost-worker exited with status %d" % self.proc.returncode)
                if time.monotonic() > deadline:
                    stop_child(self.proc, signal.SIGKILL)
                    fail("jshost-worker did not listen within %.0f s" % START_TIMEOUT)
                time.sleep(0.001)
        self.call = self.host.call

    def close(self):
        self.host.close()
        stop_child(self.proc, signal.SIGTERM)


def turn(client, fn, data_of, check, start, count):
    """count calls; returns (wall seconds, per-call latencies in seconds)."""
    lat = []
    clock = time.perf_counter
    t0 = clock()
    for i in range(start, start + count):
        data = data_of(i)
        c0 = clock()
        r = client.call(fn, data)
        lat.append(clock() - c0)
        if not check(i, r):
            fail("%s: %s(%d) answered %r" % (client.label, fn, i, str(r)[:100]))
    return clock() - t0, lat


def percentile(sorted_values, p):
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[k]


def bench_calls(clients):
    print("Sequential calls from one Python thread (each peer's calls in %d interleaved "
          "rounds; ratio = this / js-host model, >1 is better)" % ROUNDS)
    print("%-8s %-27s %6s %9s %9s %9s %9s %9s" % (
        "function", "peer", "calls", "calls/s", "p50 us", "p99 us", "x calls/s", "x p50"))
    figures = {}
    for fn, what, data_of, check, base_n in WORKLOADS:
        n = scaled(base_n, ROUNDS) // ROUNDS
        for c in clients:  # warm up: JIT, connections, caches
            turn(c, fn, data_of, check, 0, max(20, n // 10))
        wall = {c.label: 0.0 for c in clients}
        lats = {c.label: [] for c in clients}
        for r in range(ROUNDS):
            order = clients if r % 2 == 0 else list(reversed(clients))
            for c in order:
                w, lat = turn(c, fn, data_of, check, r * n, n)
                wall[c.label] += w
                lats[c.label].extend(lat)
        rows = {}
        for c in clients:
            lat = sorted(lats[c.label])
            rows[c.label] = (len(lat), len(lat) / wall[c.label],
                             percentile(lat, 50) * 1e6, percentile(lat, 99) * 1e6)
        base = rows[clients[0].label]
        for c in clients:
            count, rate, p50, p99 = rows[c.label]
            print("%-8s %-27s %6d %9.0f %9.1f %9.1f %8.2fx %8.2fx" % (
                fn, c.label, count, rate, p50, p99, rate / base[1], base[2] / p50))
            record("calls.%s.%s.p50_us" % (fn, c.label), p50)
        figures[fn] = rows
        print("%-8s (%s)" % ("", what))
    return figures


def bench_threads(clients):
    """THREADS threads calling double() at once: one keep-alive connection per
    thread for the HTTP peer (as a threaded web app with a session per thread
    would), one shared Host for jshost (its calls are pipelined). The
    JSON-lines child is left out: one pipe serves one caller at a time."""
    per_thread = scaled(THREAD_CALLS, 10)
    print()
    print("%d threads calling double() at once, %d calls each (ratio = this / "
          "js-host model)" % (THREADS, per_thread))
    print("%-27s %9s %9s" % ("peer", "calls/s", "x"))
    rates = {}
    for c in clients:
        if isinstance(c, PipePeer):
            continue
        if isinstance(c, HttpPeer):
            conns = [http.client.HTTPConnection("127.0.0.1", c.port, timeout=30)
                     for _ in range(THREADS)]
            calls = [lambda fn, d, k=k: c.call(fn, d, conns[k]) for k in range(THREADS)]
        else:
            conns = []
            calls = [c.call] * THREADS
        errors = []

        def run(k):
            try:
                for i in range(per_thread):
                    if calls[k]("double", {"number": i}) != 2 * i:
                        errors.append("%s: double(%d) answered wrong" % (c.label, i))
                        return
            except Exception as e:  # reported below, after the threads end
                errors.append("%s: %r" % (c.label, e))

        for k in range(THREADS):  # warm up every connection
            calls[k]("double", {"number": 1})
        threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rates[c.label] = THREADS * per_thread / (time.perf_counter() - t0)
        for conn in conns:
            conn.close()
        if errors:
            fail(errors[0])
    base = rates[clients[0].label]
    for label, rate in rates.items():
        print("%-27s %9.0f %8.2fx" % (label, rate, rate / base))
        record("threads.%s.calls_per_s" % label, rate)
    return rates


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def private_dirty_kib(pid):
    """Memory only this process has written: what it costs beyond the shared
    library pages every worker maps."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_memory(clients, rundir):
    """Resident memory of what serves each peer, after the calls above."""
    print()
    print("Resident memory after the calls above (ratio = js-host model / this, >1 is "
          "better)")
    rows = []
    dirty = []
    for c in clients:
        if isinstance(c, JshostRelayed):
            continue  # the same manager and worker as the Host's
        if isinstance(c, JshostManager):
            mpid = manager_pid(rundir)
            dirty = [("worker", private_dirty_kib(p)) for p in c.worker_pids[:1]]
            dirty.append(("manager", private_dirty_kib(mpid) if mpid else None))
            parts = [("worker", rss_kib(p)) for p in c.worker_pids]
            parts.append(("manager", rss_kib(mpid) if mpid else None))
        else:
            parts = [("process", rss_kib(c.proc.pid))]
        if any(kib is None for _, kib in parts):
            continue
        rows.append((c.label, sum(kib for _, kib in parts),
                     ", ".join("%s %.1f" % (n, kib / 1024) for n, kib in parts)))
    base = rows[0][1]
    print("%-27s %9s %9s  %s" % ("peer", "RSS MiB", "x", "of which (MiB)"))
    for label, kib, detail in rows:
        print("%-27s %9.1f %8.2fx  %s" % (label, kib / 1024, base / kib, detail))
    if all(kib is not None for _, kib in dirty):
        print("jshost private dirty memory after the calls (MiB): %s" % ", ".join(
            "%s %.1f" % (n, kib / 1024) for n, kib in dirty))
        for n, kib in dirty:
            record("memory.%s.private_dirty_mib" % n, kib / 1024)


def wait_pid_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def manager_pid(rundir):
    try:
        with open(os.path.join(rundir, "manager.pid")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def shutdown_manager(jshost, rundir, worker_pids=()):
    """Stops the manager of rundir (if any) and waits until it and the workers
    it ran are gone."""
    pid = manager_pid(rundir)
    jshost.shutdown()
    if pid is not None and not wait_pid_gone(pid, 10):
        os.kill(pid, signal.SIGTERM)
        if not wait_pid_gone(pid, 5):
            fail("the manager (pid %d) did not exit after shutdown" % pid)
    for wpid in worker_pids:
        if not wait_pid_gone(wpid, 10):
            fail("worker pid %d outlived its manager's shutdown" % wpid)


def cold_jshost(jshost):
    rundir = tempfile.mkdtemp(prefix="jshbench-cold-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    try:
        t0 = time.perf_counter()
        host = jshost.Host(CONFIG)
        host.call("double", {"number": 1})
        t = time.perf_counter() - t0
        pids = [w["pid"] for w in host.status().get("workers", [])]
        host.close()
        shutdown_manager(jshost, rundir, pids)
        return t
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def idle_memory(jshost):
    """Private dirty memory of a fresh host's worker and of the manager, idle
    after one call (what each costs before the calls' own data)."""
    saved = os.environ["JSHOST_RUNTIME_DIR"]
    rundir = tempfile.mkdtemp(prefix="jshbench-idle-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    try:
        host = jshost.Host(CONFIG)
        host.call("double", {"number": 1})
        time.sleep(0.5)  # V8's idle tasks and the manager's trim settle
        pids = [w["pid"] for w in host.status().get("workers", [])]
        parts = [("worker", private_dirty_kib(pids[0]) if pids else None),
                 ("manager", private_dirty_kib(manager_pid(rundir) or 0))]
        host.close()
        shutdown_manager(jshost, rundir, pids)
    finally:
        os.environ["JSHOST_RUNTIME_DIR"] = saved
        shutil.rmtree(rundir, ignore_errors=True)
    if all(kib is not None for _, kib in parts):
        print("jshost private dirty memory, idle after one call (MiB): %s" % ", ".join(
            "%s %.1f" % (n, kib / 1024) for n, kib in parts))
        for n, kib in parts:
            record("memory.idle_%s.private_dirty_mib" % n, kib / 1024)


def cold_direct(jshost, worker, rundir):
    t0 = time.perf_counter()
    c = JshostDirect(jshost, worker, rundir, guard=False)
    try:
        c.call("double", {"number": 1})
    except BaseException:
        c.close()
        raise
    t = time.perf_counter() - t0
    c.close()
    return t


def cold_node(peer_class, node):
    t0 = time.perf_counter()
    c = peer_class(node)
    c.call("double", {"number": 1})
    t = time.perf_counter() - t0
    c.close()
    return t


def bench_cold(jshost, node, worker, rundir):
    print()
    repeats = scaled(COLD_REPEATS, 1)
    print("Cold start: from nothing running to the first answered call (median of %d; "
          "ratio = js-host model / this, >1 is better)" % repeats)
    runs = [("js-host model (node http)", lambda: cold_node(HttpPeer, node)),
            ("node child, JSON lines", lambda: cold_node(PipePeer, node)),
            ("jshost Host (auto-starts the manager)", lambda: cold_jshost(jshost)),
            ("jshost worker alone (--listen)", lambda: cold_direct(jshost, worker, rundir))]
    times = {label: [] for label, _ in runs}
    saved = os.environ["JSHOST_RUNTIME_DIR"]
    try:
        for _ in range(repeats):
            for label, run in runs:
                times[label].append(run())
    finally:
        os.environ["JSHOST_RUNTIME_DIR"] = saved
    base = statistics.median(times[runs[0][0]])
    print("%-52s %9s %9s %9s" % ("", "median ms", "min ms", "x"))
    for label, _ in runs:
        med = statistics.median(times[label])
        print("%-52s %9.1f %9.1f %8.2fx" % (label, med * 1e3, min(times[label]) * 1e3,
                                            base / med))
    return {label: statistics.median(t) for label, t in times.items()}


def summary(figures, threaded, cold):
    """One line per jshost route: its calls/s ratios and cold-start ratio."""
    print()
    print("Summary (calls/s of this / js-host model per function; cold start ratio)")
    labels = list(figures[WORKLOADS[0][0]])
    for label in labels[1:]:
        parts = ["%s %.2fx" % (fn, figures[fn][label][1] / figures[fn][labels[0]][1])
                 for fn, *_ in WORKLOADS]
        if label in threaded:
            parts.append("%d threads %.2fx" % (THREADS, threaded[label] / threaded[labels[0]]))
        print("  %-50s %s" % (label, ", ".join(parts)))
    first = list(cold)
    for label in first[1:]:
        print("  %-50s cold start %.2fx" % (label, cold[first[0]] / cold[label]))
    for label, seconds in cold.items():
        record("cold.%s.ms" % label, seconds * 1e3)


def main():
    if len(sys.argv) < 2:
        fail("usage: bench_calls.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    manager = os.path.join(build, "manager", "jshost-manager")
    worker = os.path.join(build, "worker", "jshost-worker")
    for exe in (manager, worker):
        if not os.access(exe, os.X_OK):
            fail("%s is not built" % exe)
    os.environ.setdefault("JSHOST_MANAGER", manager)
    os.environ.setdefault("JSHOST_WORKER", worker)
    os.environ.pop("JSHOST_SOCKET", None)  # we want the manager of our runtime dir
    sys.path.insert(0, os.path.join(build, "clients", "python"))
    import jshost

    node = shutil.which("node")
    if node is None:
        fail("node is not on PATH: the Node.js peers cannot run")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    print("bench_calls: jshost %s, Node.js %s, Python %s" % (
        jshost.__version__, version, sys.version.split()[0]))

    rundir = tempfile.mkdtemp(prefix="jshbench-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    clients = []
    worker_pids = []
    try:
        node_http = HttpPeer(node)
        clients.append(node_http)
        clients.append(PipePeer(node))
        clients.append(JshostManager(jshost))
        worker_pids = clients[-1].worker_pids
        clients.append(JshostRelayed(jshost))
        clients.append(JshostDirect(jshost, worker, rundir))
        figures = bench_calls(clients)
        threaded = bench_threads(clients)
        bench_memory(clients, rundir)
        idle_memory(jshost)
        for c in clients:
            c.close()
        clients = []
        cold = bench_cold(jshost, node, worker, rundir)
        summary(figures, threaded, cold)
    finally:
        for c in clients:
            try:
                c.close()
            except Exception:
                pass
        shutdown_manager(jshost, rundir, worker_pids)
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
