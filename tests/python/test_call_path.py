"""Host.call's own work, done in C (_jshost.HostBase): its arguments as
Python would take them, the timeout's conversion, and results of every size
through the room the connection keeps between calls, from many threads."""

import os
import threading

import pytest

import jshost


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    with jshost.Host(main_config) as h:
        yield h


def test_keywords_named_like_the_parameters_are_data(host):
    assert host.call("echo", name="x", data=1) == {"name": "x", "data": 1}
    assert host.call("echo", timeout=5, name="y") == {"name": "y"}


def test_arguments_python_would_refuse(host):
    with pytest.raises(TypeError, match="missing 1 required positional"):
        host.call()
    with pytest.raises(TypeError, match="positional arguments but 4 were given"):
        host.call("echo", 1, 2)
    with pytest.raises(TypeError, match="must be str"):
        host.call(1)
    with pytest.raises(TypeError, match="not both"):
        host.call("echo", 1, x=2)


def test_timeouts_convert_as_float_does(host):
    assert host.call("echo", 1, timeout=1) == 1
    assert host.call("echo", 2, timeout="0.5") == 2
    assert host.call("echo", 3, timeout=float("inf")) == 3
    assert host.call("echo", 4, timeout=None) == 4
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            host.call("echo", 1, timeout=bad)
    with pytest.raises(ValueError):
        host.call("echo", 1, timeout="soon")
    with pytest.raises(TypeError):
        host.call("echo", 1, timeout=[1])
    assert jshost._timeout_ms(1.5) == 1500
    assert jshost._timeout_ms(0.0001) == 1
    assert jshost._timeout_ms(1e9) == 2**31 - 1


def test_a_subclass_may_override_call(main_config):
    class Counting(jshost.Host):
        calls = 0

        def call(self, name, *args, **kwargs):
            Counting.calls += 1
            return super().call(name, *args, **kwargs)

    with Counting(main_config) as h:
        assert h.call("echo", 5) == 5
        assert h.function("echo")(6) == 6
    assert Counting.calls == 2


def test_closed_host_refuses_calls(main_config):
    h = jshost.Host(main_config)
    h.close()
    with pytest.raises(ValueError, match="closed"):
        h.call("echo", 1)


def test_results_of_every_size_from_many_threads(host):
    # Around and far past the small rooms kept for results (4 KiB first, 64
    # KiB at most) and into the two big ones, mixed, so that rooms grow, are
    # kept, dropped and shared between threads.
    sizes = [0, 1, 4000, 4090, 4096, 4200, 65000, 65536, 70000, 1024 * 1024 + 10,
             3 * 1024 * 1024]
    failures = []

    def run(k):
        try:
            for i in range(40):
                n = sizes[(i + k) % len(sizes)]
                s = chr(ord("a") + (i + k) % 26) * n
                if host.call("echo", s) != s:
                    failures.append((k, i, n))
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_big_rooms_kept_and_dropped(host):
    # The two big rooms (up to 16 MiB each) hold a request's and a result's
    # bytes between calls; bigger ones are not kept. Sizes that fit one and
    # not the other, one after another, must each come back whole.
    mib = 1024 * 1024
    for i, n in enumerate([17 * mib, mib, 16 * mib - 64, 100, 16 * mib + 64,
                           2 * mib, 3 * mib, 10]):
        s = chr(ord("A") + i) * n
        assert host.call("echo", s) == s


def test_the_manager_passes_big_answers_on_unread(main_config):
    # A worker announces each message of 1 KiB or more with its size, and the
    # manager passes those on without reading their items; its status counts
    # them per worker. Small ones, and calls that skip the manager, do not
    # count.
    os.environ["JSHOST_DIRECT"] = "0"
    try:
        relayed = jshost.Host(main_config)
    finally:
        del os.environ["JSHOST_DIRECT"]
    big = {"k%d" % i: {"i": i, "s": "s%d" % i} for i in range(1000)}
    with relayed, jshost.Host(main_config) as direct:
        def unread():
            (worker,) = relayed.status()["workers"]
            return worker["forwarded_unread"]

        before = unread()
        for i in range(5):
            assert relayed.call("echo", big) == big
            assert relayed.call("echo", i) == i
            assert direct.call("echo", big) == big
        assert unread() == before + 5
        # A reverse call's args are passed on the same way.
        with relayed.context() as ctx:
            ctx.expose("size", len)
            assert ctx.eval("size('x'.repeat(5000))") == 5000
            assert ctx.eval("size('x')") == 1
        assert unread() == before + 6
