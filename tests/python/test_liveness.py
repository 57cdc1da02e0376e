"""A worker answers the manager's pings and stats while its JavaScript runs
(docs/protocol.md, "Liveness"): a direct call that runs longer than the
manager's ping timeout is answered by the same worker, which status shows busy
meanwhile, instead of being killed as hung."""

import os
import threading

import pytest

import jshost
from conftest import WAIT, wait_until, write

CONFIG = r"""
module.exports = {
  functions: {
    busy(d) { const end = Date.now() + d.ms; let n = 0; while (Date.now() < end) n++; return 'done'; },
  },
  timeout: 20000,
};
"""


@pytest.fixture(scope="module", autouse=True)
def fast_pings(runtime_dir):
    """This module's manager pings every 50 ms and calls a worker hung after
    200 ms without an answer (the manager inherits them when it starts)."""
    old = {k: os.environ.get(k) for k in ("JSHOST_PING_MS", "JSHOST_PING_TIMEOUT_MS")}
    os.environ["JSHOST_PING_MS"] = "50"
    os.environ["JSHOST_PING_TIMEOUT_MS"] = "200"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_long_direct_call_is_not_a_hung_worker(workdir):
    config = write(workdir, "busy.config.js", CONFIG)
    with jshost.Host(config) as host:
        before = [w["pid"] for w in host.status()["workers"]]
        out = {}

        def run():
            try:
                out["r"] = host.call("busy", {"ms": 2000})
            except jshost.Error as e:  # reported below
                out["r"] = e
        t = threading.Thread(target=run)
        t.start()
        # stats answered mid-run: status sees the call
        assert wait_until(lambda: any(w["in_flight"] for w in host.status()["workers"]), WAIT)
        t.join(WAIT)
        assert out["r"] == "done"
        st = host.status()
        assert [w["pid"] for w in st["workers"]] == before
        assert st["crashes"] == 0
