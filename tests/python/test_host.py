"""jshost.Host against a real manager and worker: the API entries, values
crossing both ways, and every error type a host call can raise."""

import datetime
import math
import os
import signal
import socket
import threading
import time

import pytest

import jshost
from conftest import WAIT, in_flight, wait_until, write

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    with jshost.Host(main_config) as h:
        yield h


# ---- API entries ----

def test_call_with_keywords_or_one_positional(host):
    assert host.call("hello_world", name="Foo") == "Hello, Foo!"
    assert host.call("hello_world") == "Hello, World!"
    assert host.call("double", {"number": 20}) == 40
    assert host.call("later", [1, 2]) == [1, 2]


def test_call_with_both_is_a_type_error(host):
    with pytest.raises(TypeError, match="not both"):
        host.call("double", {"number": 1}, number=2)


def test_explicit_none_is_sent_as_null(host):
    assert host.call("echo", None) is None
    assert host.call("echo") == {}


def test_function_is_a_callable(host):
    hello = host.function("hello_world")
    assert hello(name="Foo") == "Hello, Foo!"
    assert hello({"name": "Bar"}) == "Hello, Bar!"
    assert "hello_world" in repr(hello)


def test_host_properties(host, main_config):
    assert host.config == os.path.realpath(main_config)
    assert "hello_world" in host.functions and "spin" in host.functions
    assert host.logfile and os.path.exists(host.logfile)
    assert host.extras.get("anything") == "else"
    assert host.call("extra") == "else"
    assert isinstance(host.id, str) and host.id
    assert host.id in repr(host)


def test_status_is_this_hosts_map(host):
    st = host.status()
    assert st["id"] == host.id
    assert st["config"] == host.config
    assert st["logfile"] == host.logfile
    assert st["workers"] and isinstance(st["workers"][0]["pid"], int)
    assert isinstance(st["workers"][0]["state"], str)


def test_restart_resets_state(main_config, runtime_dir):
    with jshost.Host(main_config) as h:
        h.call("count")
        assert h.call("count") >= 2
        logfile = h.logfile
        st = h.restart()
        assert isinstance(st, dict)
        assert h.call("count") == 1
        assert h.logfile == logfile


def test_stop_then_calls_are_unavailable(workdir):
    cfg = write(workdir, "stoppable.config.js",
                "module.exports = {functions: {one() { return 1; }}};")
    h = jshost.Host(cfg)
    assert h.call("one") == 1
    st = h.stop()
    assert isinstance(st, dict)
    with pytest.raises(jshost.HostUnavailableError):
        h.call("one")
    h.close()
    # attaching again brings it back
    with jshost.Host(cfg) as h2:
        assert h2.call("one") == 1


def test_close_is_idempotent_and_context_manager(main_config):
    h = jshost.Host(main_config)
    with h as same:
        assert same is h
        assert h.call("double", number=1) == 2
    assert h.closed
    h.close()
    with pytest.raises(ValueError, match="closed"):
        h.call("double", number=1)


def test_relative_config_path(main_config, monkeypatch):
    monkeypatch.chdir(os.path.dirname(main_config))
    with jshost.Host(os.path.basename(main_config)) as h:
        assert h.config == os.path.realpath(main_config)


# ---- values, both ways ----

@pytest.mark.parametrize("value", [
    None, True, False, 0, 7, -7, 2**31, -2**31, 2**53, -2**53, 2**53 + 1, 2**63 - 1,
    -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30, -10**30, 1.5, -0.25, 1e300,
    "", "hé ☃ 𝄞", "a\x00b", b"", b"\x00\xff", [], [1, [2, [3]]], {},
    {"a": {"b": [1, "x", None]}},
])
def test_echo_roundtrip(host, value):
    out = host.call("echo", value)
    assert out == value
    assert type(out) is type(value)


def test_echo_special_floats(host):
    out = host.call("echo", [float("nan"), float("inf"), float("-inf"), -0.0])
    assert math.isnan(out[0])
    assert out[1:3] == [float("inf"), float("-inf")]
    assert math.copysign(1, out[3]) == -1


def test_echo_converted_types(host):
    assert host.call("echo", (1, (2, 3))) == [1, [2, 3]]
    assert host.call("echo", bytearray(b"ab")) == b"ab"
    assert host.call("echo", memoryview(b"xyz")) == b"xyz"
    dt = datetime.datetime(2021, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert host.call("echo", dt) == dt
    naive = datetime.datetime(2021, 5, 6, 7, 8, 9)
    assert host.call("echo", naive) == naive.replace(tzinfo=UTC)
    tz = datetime.timezone(datetime.timedelta(hours=-3))
    other = datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=tz)
    back = host.call("echo", other)
    assert back == other and back.tzinfo is UTC


def test_how_js_sees_python_values(host):
    seen = host.call("types", {
        "none": None, "bool": True, "int": 5, "big53": 2**53 + 1, "big": 2**70,
        "float": 1.5, "str": "s", "bytes": b"b", "list": [1], "tuple": (1,),
        "dict": {"k": 1}, "date": datetime.datetime(2020, 1, 1, tzinfo=UTC),
    })
    assert seen == {
        "none": "[object Null]", "bool": "[object Boolean]", "int": "[object Number]",
        "big53": "[object BigInt]", "big": "[object BigInt]", "float": "[object Number]",
        "str": "[object String]", "bytes": "[object Uint8Array]", "list": "[object Array]",
        "tuple": "[object Array]", "dict": "[object Object]", "date": "[object Date]",
    }


def test_js_values_come_back_as_python_values(host):
    v = host.call("js_values")
    assert v["big"] == 2**70 and v["neg_big"] == -2**70
    assert v["small_big"] == 5 and type(v["small_big"]) is int
    assert v["date"] == datetime.datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert v["bytes"] == b"\x01\x02\x03" and v["buffer"] == b"\x09"
    assert v["map"] == {"a": 1}
    assert v["arr"] == [None, None, 1]
    assert math.isnan(v["nan"]) and math.copysign(1, v["negzero"]) == -1
    assert v["inf"] == float("-inf")
    assert "skipped" not in v and "fn" not in v
    assert v["json"] == "custom"


@pytest.mark.parametrize("data, message", [
    ({"a": [0, 1, 2, {1}]}, "cannot send a value of type set at data['a'][3]"),
    ({"when": datetime.date(2020, 1, 1)}, "cannot send a value of type datetime.date at data['when']"),
    ([object()], "cannot send a value of type object at data[0]"),
])
def test_unsendable_values_fail_before_sending(host, data, message):
    with pytest.raises(TypeError) as e:
        host.call("echo", data)
    assert str(e.value) == message


def test_unsendable_keyword_value_and_key(host):
    with pytest.raises(TypeError, match=r"at data\['x'\]\[0\]$"):
        host.call("echo", x=[{1, 2}])
    with pytest.raises(TypeError, match=r"dict keys must be str, not int \(key 3\) at data\['m'\]"):
        host.call("echo", {"m": {3: "x"}})


def test_too_deep_and_cycles(host):
    v = []
    for _ in range(31):
        v = [v]
    with pytest.raises(ValueError, match="deeper than 30"):
        host.call("echo", v)
    d = {}
    d["me"] = d
    with pytest.raises(ValueError, match="cycle"):
        host.call("echo", d)
    ok = []
    for _ in range(29):
        ok = [ok]
    assert host.call("echo", ok) == ok


# ---- errors ----

def test_js_errors_carry_name_message_stack(host):
    with pytest.raises(jshost.JSError) as e:
        host.call("throws")
    assert e.value.name == "TypeError"
    assert e.value.message == "bad input"
    assert "host.config.js" in e.value.stack
    with pytest.raises(jshost.JSError) as e:
        host.call("cb_error")
    assert (e.value.name, e.value.message) == ("RangeError", "out of range")
    with pytest.raises(jshost.JSError) as e:
        host.call("rejects")
    assert (e.value.name, e.value.message) == ("Error", "nope")
    assert host.call("double", number=2) == 4  # the worker lives on


def test_js_error_says_where_it_was_thrown(workdir):
    # what a traceback shows: the name, the message, the config's file and
    # line, and the JS stack as the exception's note
    import traceback
    cfg = write(workdir, "where.config.js",
                "function check(n) {\n"
                "  if (n < 0) throw new RangeError('negative: ' + n);\n"
                "  return n;\n"
                "}\n"
                "module.exports = {functions: {sqrt(d) { return Math.sqrt(check(d.n)); }}};\n")
    with jshost.Host(cfg) as h:
        with pytest.raises(jshost.JSError) as e:
            h.call("sqrt", n=-4)
    assert str(e.value) == "RangeError: negative: -4 (at where.config.js:2:20)"
    assert repr(e.value).startswith("JSError('RangeError: negative: -4")
    text = "".join(traceback.format_exception(e.value))
    assert "JSError: RangeError: negative: -4 (at where.config.js:2:20)\n" in text
    assert "at check (%s:2:20)" % os.path.realpath(cfg) in text
    assert "at Object.sqrt (%s:5:" % os.path.realpath(cfg) in text


def test_not_found(host):
    with pytest.raises(jshost.NotFoundError):
        host.call("no_such_function")


def test_invalid_argument_from_js(host):
    with pytest.raises(jshost.InvalidArgumentError) as e:
        host.call("lone")
    assert isinstance(e.value, ValueError)


def test_config_errors(workdir):
    bad = write(workdir, "bad.config.js", "module.exports = {functions: {a() {}},\n  oops: ;\n};")
    with pytest.raises(jshost.ConfigError) as e:
        jshost.Host(bad)
    assert "bad.config.js" in str(e.value)
    with pytest.raises(jshost.ConfigError):
        jshost.Host(os.path.join(workdir, "missing.config.js"))
    throws = write(workdir, "throws.config.js", "throw new Error('config blew up');")
    with pytest.raises(jshost.ConfigError, match="config blew up"):
        jshost.Host(throws)


def test_sync_spin_times_out_at_its_deadline(host):
    # Ended by its own deadline, never before it (how soon after it is a
    # figure of bench/bench_deadlines.py).
    t0 = time.monotonic()
    with pytest.raises(jshost.TimeoutError, match="within 500 ms") as e:
        host.call("spin", timeout=0.5)
    assert time.monotonic() - t0 >= 0.4
    assert isinstance(e.value, TimeoutError)
    assert host.call("double", number=3) == 6  # terminated, not killed


def test_unsettled_promise_times_out(host):
    with pytest.raises(jshost.TimeoutError, match="within 500 ms"):
        host.call("never", timeout=0.5)
    with pytest.raises(jshost.TimeoutError):
        host.call("slow", {"ms": 5000}, timeout=0.3)
    assert host.call("double", number=4) == 8


def test_worker_killed_mid_call_is_host_crashed_with_logfile(workdir):
    cfg = write(workdir, "crash.config.js", """
        module.exports = {functions: {
          slow(data, cb) { setTimeout(() => cb(null, 'done'), 60000); },
          one() { return 1; },
        }};""")
    with jshost.Host(cfg) as h:
        pid = h.status()["workers"][0]["pid"]
        result = {}

        def victim():
            try:
                h.call("slow", timeout=30)
            except BaseException as e:  # noqa: B902 - handed to the main thread
                result["error"] = e

        t = threading.Thread(target=victim)
        t.start()
        assert wait_until(lambda: in_flight(h) >= 1, WAIT)
        os.kill(pid, signal.SIGKILL)
        t.join(WAIT)
        assert not t.is_alive()
        err = result.get("error")
        assert isinstance(err, jshost.HostCrashedError), repr(err)
        assert err.logfile == h.logfile
        assert h.logfile in str(err)
        # the worker is replaced at once
        assert wait_until(lambda: _try_call(h), 10) == 1


def _try_call(h):
    try:
        return h.call("one", timeout=2)
    except jshost.Error:
        return None


def test_connection_error_without_a_manager(runtime_dir):
    path = os.path.join(runtime_dir, "nobody-here.sock")
    with pytest.raises(jshost.ConnectionError) as e:
        jshost.Host("x.config.js", socket=path)
    assert isinstance(e.value, ConnectionError)
    with pytest.raises(jshost.ConnectionError):
        jshost.VM(socket=path)


def _fake_manager(path, answer_attach):
    """A peer that answers hello properly, then answer_attach(msgid) bytes."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            hello = conn.recv(4096)
            assert hello[:2] == b"\x94\x00" and hello[2] < 0x80  # [0, fixint msgid, ...
            conn.sendall(b"\x94\x01" + hello[2:3] + b"\xc0\x83"
                         b"\xa6server\xa4fake\xa8protocol\x01\xa3pid\x01")
            attach = conn.recv(4096)
            conn.sendall(answer_attach(attach[2:3]))
            # Open until the client has read the answer and gone.
            conn.settimeout(WAIT)
            while conn.recv(4096):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_protocol_error_from_a_broken_peer(runtime_dir):
    path = os.path.join(runtime_dir, "garbage.sock")
    srv = _fake_manager(path, lambda msgid: b"\xc1" * 16)  # 0xc1 is never valid msgpack
    try:
        with pytest.raises(jshost.ProtocolError, match="0xc1"):
            jshost.Host("x.config.js", socket=path)
    finally:
        srv.close()


def test_remote_error_types_map_through_the_stack(runtime_dir):
    # an error object as the server sends it: {"type", "message", ...}
    def overloaded(msgid):
        return (b"\x94\x01" + msgid + b"\x82\xa4type\xaaOverloaded\xa7message\xa4full" + b"\xc0")
    path = os.path.join(runtime_dir, "overloaded.sock")
    srv = _fake_manager(path, overloaded)
    try:
        with pytest.raises(jshost.OverloadedError, match="full") as e:
            jshost.Host("x.config.js", socket=path)
        assert isinstance(e.value, jshost.HostUnavailableError)
        assert e.value.type == "Overloaded"
    finally:
        srv.close()
