"""Backpressure: a full queue answers Overloaded (a HostUnavailableError),
never a silent loss. This module's manager is started with a limit of two
calls in flight per connection, and its calls go through the manager
(JSHOST_DIRECT=0): a direct call's bound is the worker's, which stops reading
a connection with too many calls in flight (tests/worker)."""

import os
import threading

import pytest

import jshost


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    saved = {k: os.environ.get(k) for k in ("JSHOST_MAX_CLIENT_INFLIGHT", "JSHOST_DIRECT")}
    os.environ["JSHOST_MAX_CLIENT_INFLIGHT"] = "2"
    os.environ["JSHOST_DIRECT"] = "0"
    try:
        h = jshost.Host(main_config)  # starts this module's manager with the limit
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    with h:
        yield h


def test_third_call_in_flight_is_overloaded(host):
    outcomes = []
    lock = threading.Lock()

    def call():
        try:
            r = host.call("slow", {"ms": 800}, timeout=10)
        except jshost.Error as e:
            r = e
        with lock:
            outcomes.append(r)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    done = [o for o in outcomes if o == "done"]
    over = [o for o in outcomes if isinstance(o, jshost.OverloadedError)]
    assert len(done) + len(over) == 4, outcomes
    assert len(done) >= 2 and len(over) >= 1, outcomes
    assert all(isinstance(o, jshost.HostUnavailableError) for o in over)
    assert host.call("double", number=2) == 4
