#!/usr/bin/env python3
"""Calls per second through one shared jshost.Host: 1 thread vs 8 threads.

    PYTHONPATH=build/clients/python JSHOST_MANAGER=build/manager/jshost-manager \
    JSHOST_WORKER=build/worker/jshost-worker /usr/bin/python3 bench/python_threads.py [SECONDS]

Uses a private runtime dir (its own manager, shut down at the end). Prints
both rates and their ratio; asserts nothing. With 8 threads the calls are
pipelined on one connection (the GIL is released while each waits), so the
ratio shows how much of the round trip the pipelining hides.
"""

import os
import shutil
import sys
import tempfile
import threading
import time

CONFIG = """
module.exports = {
  functions: {
    double(data) { return data.number * 2; },
    render(data) { return '<p>' + data.text + '</p>'; },
  },
  workers: %d,
};
"""


def rate(host, nthreads, seconds):
    stop = time.monotonic() + seconds
    counts = [0] * nthreads

    def run(k):
        n = 0
        while time.monotonic() < stop:
            assert host.call("double", number=n) == 2 * n
            n += 1
        counts[k] = n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    rundir = tempfile.mkdtemp(prefix="jshbench-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = rundir
    import jshost
    try:
        path = os.path.join(rundir, "bench.config.js")
        with open(path, "w") as f:
            f.write(CONFIG % workers)
        with jshost.Host(path) as host:
            for _ in range(200):  # warm up
                host.call("double", number=1)
            one = rate(host, 1, seconds)
            eight = rate(host, 8, seconds)
        print("python_threads: workers=%d  1 thread %.0f calls/s  8 threads %.0f calls/s  "
              "ratio %.2fx" % (workers, one, eight, eight / one))
    finally:
        jshost.shutdown()
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    main()
