"""JSHOST_BENCH_SCALE for the Python benches: scripts/bench's SCALE (default
1) multiplies every count and duration a bench runs, so that the test suite
can run every bench in moments (tests: the bench suite). At 1 each bench runs
what make bench measures. The C benches read the same variable through
bench_scale.c."""

import math
import os


def _scale():
    text = os.environ.get("JSHOST_BENCH_SCALE", "")
    if text == "":
        return 1.0
    try:
        s = float(text)
    except ValueError:
        s = -1.0
    if not math.isfinite(s) or s <= 0:
        raise SystemExit("JSHOST_BENCH_SCALE=%s: not a positive number" % text)
    return s


def scaled(n, least):
    """n (a count) times the scale, never below least."""
    return max(least, int(n * _scale()))


def scaled_seconds(seconds, least):
    """A duration in seconds times the scale, never below least."""
    return max(least, seconds * _scale())
