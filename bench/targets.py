#!/usr/bin/env python3
"""Where jshost stands against its speed targets, from one `make bench` run.

    bench/targets.py [--check] FIGURES.json OUTPUT.txt

FIGURES.json holds what the Python benches recorded (bench_figures.py);
OUTPUT.txt is everything the benches printed, read for the C benches' figures
(bench_rpc's floors, pipelined rates and the manager's CPU against a bare
relay's, bench_values' ratios against JSON, bench_proto's forwarding against
memcpy).
Every figure compared comes from this same run. Prints one line per target:
the goal, the figure, and whether it is met. Asserts nothing about speed; a
figure a bench did not produce is shown as missing, and with --check (the
bench suite of the tests, scripts/bench --check) it also names each missing
row on stderr and exits 1.
"""

import json
import re
import sys


def rpc_figures(text):
    """bench_rpc's lines, by label: us/call (sequential) or calls/s."""
    out = {}
    section = None
    for line in text.splitlines():
        if line.startswith("bench_rpc:"):
            section = "seq"
            continue
        if section is None:
            continue
        if line.startswith("  pipelined"):
            section = "pipe"
            continue
        if line.startswith(RELAY_HEADER):
            break  # relay_figures reads the rest
        if not line.startswith("  "):
            if line.strip() == "":
                break
            continue
        m = re.match(r"  (.+?)\s{2,}([0-9.]+)", line)
        if m:
            out[(section, m.group(1).strip())] = float(m.group(2))
    return out


RELAY_HEADER = "  the manager against a bare relay"
RELAY_COLUMNS = ("floor_polling", "floor_blocking", "manager", "ratio", "memcpy")


def case_table(text, header, columns):
    """One of bench_rpc's tables by reply size, the one under the line that
    starts with header: {case: {column: figure}}."""
    out = {}
    on = False
    for line in text.splitlines():
        if line.startswith(header):
            on = True
            continue
        if not on or line.startswith("  reply "):
            continue
        m = re.match(r"  (\w+) \([^)]*\)((?:\s+-?[0-9.]+){%d})\s*$" % len(columns), line)
        if not m:
            break
        out[m.group(1)] = dict(zip(columns, map(float, m.group(2).split())))
    return out


def relay_figures(text):
    """bench_rpc's manager against a bare relay, by reply size (CPU per
    call; memcpy of the reply)."""
    return case_table(text, RELAY_HEADER, RELAY_COLUMNS)


def value_ratios(text, program):
    """bench_values' (or bench_values.py's) ratios: {(case, direction): x}."""
    out = {}
    case = None
    on = False
    for line in text.splitlines():
        if line.startswith(program + ":"):
            on = True
            continue
        if not on:
            continue
        if line.strip() == "":
            if out:
                break
            continue
        if not line.startswith("  "):
            case = line.split(" (")[0]
            continue
        m = re.match(r"  (.+?)\s+[0-9.]+\s+\S+(?: \S+)?\s+[0-9.]+\s+([0-9.]+)x", line)
        if m and case:
            out[(case, m.group(1).strip())] = float(m.group(2))
    return out


def forward_ratio(text, what="scan"):
    """bench_proto's forwarding ratio for a 1000-key reply / memcpy: read
    through (scan) or announced by a size hint (hinted)."""
    m = re.search(r"ratio %s/floor\s+([0-9.]+)" % what, text)
    return float(m.group(1)) if m else None


GROWTH_HEADER = "  what the reply's bytes cost"
GROWTH_COLUMNS = ("manager", "small", "growth", "relay_growth", "memcpy")


def growth_figures(text):
    """bench_rpc's growth table: what a reply's bytes cost, us per call."""
    return case_table(text, GROWTH_HEADER, GROWTH_COLUMNS)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, target, goal, value, fmt, met):
        if value is None:
            self.rows.append((target, goal, "missing", "?"))
        else:
            verdict = "" if goal.startswith("(") else "met" if met(value) else "NOT met"
            self.rows.append((target, goal, fmt % value, verdict))

    def missing(self):
        return [r[0] for r in self.rows if r[2] == "missing"]

    def print(self):
        w0 = max(len(r[0]) for r in self.rows)
        w1 = max(len(r[1]) for r in self.rows)
        w2 = max(len(r[2]) for r in self.rows)
        print("Targets (issue 11), from this run")
        print("  %-*s  %-*s  %*s  %s" % (w0, "what", w1, "goal", w2, "measured", ""))
        for r in self.rows:
            print("  %-*s  %-*s  %*s  %s" % (w0, r[0], w1, r[1], w2, r[2], r[3]))


def main():
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    if len(args) != 2:
        raise SystemExit("usage: targets.py [--check] FIGURES.json OUTPUT.txt")
    try:
        with open(args[0], encoding="utf-8") as f:
            fig = json.load(f)
    except (FileNotFoundError, ValueError):
        fig = {}
    with open(args[1], encoding="utf-8") as f:
        text = f.read()
    rpc = rpc_figures(text)
    floor1 = rpc.get(("seq", "floor, 1 hop (socketpair echo)"))
    floor2 = rpc.get(("seq", "floor, 2 hops (echo behind a relay)"))

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    t = Table()
    host = fig.get("calls.double.jshost Host.p50_us")
    relayed = fig.get("calls.double.jshost Host, relayed.p50_us")
    t.add("trivial call from Python, Host (direct), p50 / relayed floor", "<= 1.5x",
          ratio(host, floor2), "%.2fx", lambda v: v <= 1.5)
    t.add("trivial call from Python, relayed, p50 / relayed floor", "<= 1.5x",
          ratio(relayed, floor2), "%.2fx", lambda v: v <= 1.5)
    t.add("trivial call from Python, Host (direct), p50 / one-hop floor", "(for reading)",
          ratio(host, floor1), "%.2fx", lambda v: True)
    t.add("trivial call from Python, relayed, p50 / relayed floor polling first",
          "(for reading)", ratio(relayed, rpc.get(("seq", "floor, 2 hops, polling first"))),
          "%.2fx", lambda v: True)
    t.add("trivial call from Python, Host (direct), p50 / one-hop floor polling first",
          "(for reading)", ratio(host, rpc.get(("seq", "floor, 1 hop, polling first"))),
          "%.2fx", lambda v: True)
    for fn in ("inc", "nested_out", "nested_in", "string_1m", "echo_10m"):
        for route in ("direct", "relayed"):
            t.add("%s: Node child p50 / jshost %s p50" % (fn, route), ">= 1.5x",
                  fig.get("cpu.%s.vs_node.%s" % (fn, route)), "%.2fx", lambda v: v >= 1.5)
    for label in ("jshost Host (direct)", "jshost Host, relayed"):
        t.add("CPU per trivial call, all processes, %s" % label.split(" ", 1)[1], "<= 25 us",
              fig.get("cpu.inc.%s.cpu_us" % label), "%.1f us", lambda v: v <= 25)
    t.add("reading a 17 KB 1000-key reply to forward it / memcpy", "(for reading)",
          forward_ratio(text), "%.1fx", lambda v: True)
    # Flat in the items: a worker's answer comes with its size, so the
    # manager reads it no further than its head.
    t.add("reading a worker's 17 KB 1000-key answer to forward it (size hint) / memcpy",
          "<= 1.5x", forward_ratio(text, "hinted"), "%.2fx", lambda v: v <= 1.5)
    # Flat in the bytes beyond a copy: what a reply's bytes add to the
    # manager's CPU, against what they add to a bare relay's (both sleeping
    # in every wait, the same JavaScript with a small reply as the base).
    growth = growth_figures(text)

    def beyond_relay(fn):
        g = growth.get(fn)
        return None if g is None else (g["growth"] - g["relay_growth"], g["memcpy"])

    t.add("what a 1 MiB reply costs the manager beyond a bare relay",
          "<= one memcpy of it", beyond_relay("string_1m"), "%.1f us (memcpy %.1f us)",
          lambda v: v[0] <= v[1])
    t.add("what a 17 KB 1000-key reply costs the manager beyond a bare relay",
          "(for reading)", beyond_relay("nested_out"), "%.1f us (memcpy %.2f us)",
          lambda v: True)
    # What the whole call costs the manager, polling as it does by default:
    # its waits differ with the JavaScript's time, so this is for reading.
    for fn in ("inc", "nested_out", "string_1m", "echo_10m"):
        t.add("manager CPU per relayed call, %s" % fn, "(for reading)",
              fig.get("cpu.%s.manager_us.relayed" % fn), "%.1f us", lambda v: True)
    big, small = (fig.get("cpu.%s.manager_us.relayed" % fn) for fn in ("echo_10m", "inc"))
    t.add("manager CPU per MiB forwarded (echo_10m: 20 MiB a call)", "(for reading)",
          None if big is None or small is None else (big - small) / 20, "%.1f us",
          lambda v: True)
    relay = relay_figures(text)
    for fn in ("inc", "nested_out", "string_1m"):
        t.add("manager CPU per relayed call / bare relay's, %s" % fn, "(for reading)",
              relay.get(fn, {}).get("ratio"), "%.2fx", lambda v: True)

    t.add("8 Python threads on one Host (direct calls)", ">= 50000 calls/s",
          fig.get("client.threads8.Host (direct calls).calls_per_s"), "%.0f",
          lambda v: v >= 50000)
    t.add("8 Python threads on one Host, relayed", ">= 50000 calls/s",
          fig.get("client.threads8.Host, relayed.calls_per_s"), "%.0f", lambda v: v >= 50000)
    t.add("C pipelined via the manager", ">= 250000 calls/s",
          rpc.get(("pipe", "jshost via manager (relayed)")), "%.0f", lambda v: v >= 250000)
    t.add("C pipelined to a worker's socket", "(for reading)",
          rpc.get(("pipe", "jshost direct to worker")), "%.0f", lambda v: True)
    t.add("cold start (auto-starts the manager)", "<= 50 ms",
          fig.get("cold.jshost Host (auto-starts the manager).ms"), "%.1f ms",
          lambda v: v <= 50)
    t.add("idle worker private dirty memory", "<= 8 MiB",
          fig.get("memory.idle_worker.private_dirty_mib"), "%.1f MiB", lambda v: v <= 8)
    t.add("idle manager private dirty memory", "<= 2 MiB",
          fig.get("memory.idle_manager.private_dirty_mib"), "%.1f MiB", lambda v: v <= 2)
    t.add("worker private dirty memory after the calls", "(for reading)",
          fig.get("memory.worker.private_dirty_mib"), "%.1f MiB", lambda v: True)
    js = value_ratios(text, "bench_values")
    for case in ("1000-key object", "1000-element array", "1 MiB string", "1 MiB bytes"):
        t.add("worker %s: JS -> msgpack vs JSON.stringify" % case, ">= 1x",
              js.get((case, "JS -> msgpack")), "%.2fx", lambda v: v >= 1)
        t.add("worker %s: msgpack -> JS vs JSON.parse" % case, ">= 1x",
              js.get((case, "msgpack -> JS")), "%.2fx", lambda v: v >= 1)
    py = value_ratios(text, "bench_values.py")
    for case in ("1000-key dict", "1000-item list", "1 MiB str", "1 MiB bytes"):
        t.add("Python %s: unpack vs json.loads" % case, ">= 1x",
              py.get((case, "unpack")), "%.2fx", lambda v: v >= 1)
        t.add("Python %s: pack vs json.dumps" % case, ">= 1x",
              py.get((case, "pack")), "%.2fx", lambda v: v >= 1)
    t.print()
    missing = t.missing()
    if check and missing:
        for target in missing:
            print("targets.py: no figure for: %s" % target, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
