#!/usr/bin/env python3
"""Two builds of jshost side by side, on calls that use no modules.

    /usr/bin/python3 bench/compare_builds.py BUILD_A BUILD_B [ROUNDS]

For each build, in interleaved rounds (so a busy machine hurts both alike):
the cold start of a host (attach, a fresh manager and worker), 5000
sequential calls of a function that returns its argument, and 200 context
creations on that host; wall-clock time from the client, and the worker's
own CPU time (/proc/PID/stat), which other load on the machine disturbs less. Prints the best and the median of each figure per
build and the ratios B/A (on a busy machine the best is the steadier one). Each build runs in a process of its own (its own Python package)
and a runtime dir of its own. Nothing is asserted: this is how issue 13's
"calls that do not use modules are not slower" was checked.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

CONFIG = """module.exports = {functions: {
  echo(d) { return d; },
}};
"""

ROUND = textwrap.dedent("""\
    import json, os, sys, time
    import jshost
    def cpu(pid):
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    config = sys.argv[1]
    t0 = time.perf_counter()
    h = jshost.Host(config)
    t1 = time.perf_counter()
    data = {"a": 1, "b": [1, 2, 3], "c": "text"}
    for _ in range(100):
        h.call("echo", data)
    pid = h.status()["workers"][0]["pid"]
    c2, t2 = cpu(pid), time.perf_counter()
    for _ in range(5000):
        h.call("echo", data)
    c3, t3 = cpu(pid), time.perf_counter()
    for _ in range(200):
        with h.context() as c:
            pass
    c4, t4 = cpu(pid), time.perf_counter()
    h.close()
    jshost.shutdown()
    print(json.dumps({"cold_ms": (t1 - t0) * 1e3, "call_us": (t3 - t2) / 5000 * 1e6,
                      "call_cpu_us": (c3 - c2) / 5000 * 1e6,
                      "context_us": (t4 - t3) / 200 * 1e6,
                      "context_cpu_us": (c4 - c3) / 200 * 1e6}))
    """)


def one_round(build, config):
    env = dict(os.environ)
    env.pop("JSHOST_SOCKET", None)
    env["PYTHONPATH"] = os.path.join(build, "clients", "python")
    env["JSHOST_MANAGER"] = os.path.join(build, "manager", "jshost-manager")
    env["JSHOST_WORKER"] = os.path.join(build, "worker", "jshost-worker")
    env["JSHOST_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="jshcmp-", dir="/tmp")
    out = subprocess.run([sys.executable, "-c", ROUND, config], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


def main():
    a, b = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    d = tempfile.mkdtemp(prefix="jshcmp-conf-", dir="/tmp")
    config = os.path.join(d, "echo.config.js")
    with open(config, "w") as f:
        f.write(CONFIG)
    got = {a: [], b: []}
    for _ in range(rounds):
        for build in (a, b):
            got[build].append(one_round(build, config))
    print("%-12s %10s %10s %6s   %10s %10s %6s" % ("figure", "A best", "B best", "B/A",
                                                "A median", "B median", "B/A"))
    for key in ("cold_ms", "call_us", "call_cpu_us", "context_us", "context_cpu_us"):
        ba, bb = min(r[key] for r in got[a]), min(r[key] for r in got[b])
        ma = statistics.median(r[key] for r in got[a])
        mb = statistics.median(r[key] for r in got[b])
        print("%-12s %10.1f %10.1f %6.2f   %10.1f %10.1f %6.2f" % (key, ba, bb, bb / ba,
                                                                 ma, mb, mb / ma))
    print("A = %s\nB = %s\n(%d rounds; best and median of each)" % (a, b, rounds))


if __name__ == "__main__":
    main()
