"""The Python extension's value conversion against the json module.

Unpacking (msgpack bytes -> Python objects, what every result goes through:
jshost._jshost.unpack) against json.loads of the same value's JSON text;
packing (Python objects -> msgpack bytes, what every call's data goes through:
jshost._jshost.pack) against json.dumps of the same value. Same values as
bench/bench_values.cc: a 1000-key dict of small dicts, a 1000-item list of
small dicts, a 1 MiB str, 1 MiB of bytes (the JSON side has no bytes: it
stands in with {"$bin": base64}, docs/values.md's JSON form, made once).

Each figure is the best of nine interleaved rounds, in microseconds per
conversion; "x json" is json's time over ours (>= 1: at least as fast as
json). JSHOST_BENCH_SCALE (bench_scale.py, default 1) scales the rounds and
their length. Usage: python3 bench_values.py; jshost must be importable.
"""
import base64
import json
import sys
import time

from bench_scale import scaled, scaled_seconds
from jshost import _jshost

ROUNDS = 9  # at JSHOST_BENCH_SCALE 1, as ROUND_SECONDS
ROUND_SECONDS = 0.05


def _values():
    blob = bytes(range(256)) * 4096
    return [
        ("1000-key dict", {"k%d" % i: {"i": i + 7, "s": "s%d" % i}
                           for i in range(1000)}, None),
        ("1000-item list", [{"i": i + 7, "s": "s%d" % i} for i in range(1000)],
         None),
        ("1 MiB str", "x" * (1 << 20), None),
        ("1 MiB bytes", blob, {"$bin": base64.b64encode(blob).decode()}),
    ]


def _per_call(fn, arg, iters):
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(arg)
    return (time.perf_counter() - t0) / iters


def _calibrate(fn, arg, seconds):
    n = 1
    while True:
        t = _per_call(fn, arg, n) * n
        if t > seconds / 4:
            return max(1, int(n * seconds / t))
        n *= 2


def main():
    rounds = scaled(ROUNDS, 1)
    seconds = scaled_seconds(ROUND_SECONDS, 0.001)
    print("bench_values.py: the Python extension's value conversion against "
          "json (Python %d.%d),\nus per value, best of %d interleaved rounds "
          "(x json: json's time / ours, >= 1 is the target)"
          % (sys.version_info[0], sys.version_info[1], rounds))
    for name, value, json_value in _values():
        json_value = value if json_value is None else json_value
        packed = _jshost.pack(value)
        text = json.dumps(json_value)
        assert _jshost.unpack(packed) == value
        pairs = [("unpack", _jshost.unpack, packed),
                 ("loads", json.loads, text),
                 ("pack", _jshost.pack, value),
                 ("dumps", json.dumps, json_value)]
        iters = {k: _calibrate(fn, arg, seconds) for k, fn, arg in pairs}
        best = {k: float("inf") for k, _, _ in pairs}
        for _ in range(rounds):
            for k, fn, arg in pairs:
                best[k] = min(best[k], _per_call(fn, arg, iters[k]))
        us = {k: v * 1e6 for k, v in best.items()}
        print("%s (msgpack %d bytes, JSON %d chars)"
              % (name, len(packed), len(text)))
        print("  unpack  %9.1f   json.loads %9.1f   %5.2fx json"
              % (us["unpack"], us["loads"], us["loads"] / us["unpack"]))
        print("  pack    %9.1f   json.dumps %9.1f   %5.2fx json"
              % (us["pack"], us["dumps"], us["dumps"] / us["pack"]))


if __name__ == "__main__":
    main()
