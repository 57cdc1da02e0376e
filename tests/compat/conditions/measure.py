"""Which export conditions should jshost match? Measured on the compat cases.

    python3 tests/compat/conditions/measure.py --build build [--only NAME ...]

Runs every case of tests/compat/cases with Node (node_call.mjs) once as the
reference, then again under hooks.mjs for each variant: a condition set
(instead of Node's "node"), with the Node built-ins jshost is to have and no
others (a missing one throws at require, or, with stubs, loads as an object
whose functions throw when called), with or without the package.json
"browser" field, with or without process.browser set. A case counts when its answers equal the reference. Needs
the compat suite's install (run.py, or scripts/npm-cache) in BUILD/compat-cache.
Prints a table per variant and, per case, which variants load it.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run  # noqa: E402  (the compat suite's staging and comparison)

# The built-ins jshost is to have (issue 13): the browser builds bundlers use, plus
# `process` (the global jshost already has).
ALLOWED = ["assert", "assert/strict", "buffer", "events", "path", "path/posix", "punycode",
           "querystring", "string_decoder", "url", "util", "util/types", "stream", "process"]

SETS = [
    ("node", ["node"]),
    ("deno,node", ["deno", "node"]),
    ("workerd,worker,browser", ["workerd", "worker", "browser"]),
    ("worker,browser", ["worker", "browser"]),
    ("browser", ["browser"]),
    ("worker,browser,node", ["worker", "browser", "node"]),
    ("(default only)", []),
]

# (lazy stubs for missing built-ins, the "browser" field, process.browser = true)
MECHANISMS = [(False, False, False), (True, False, False), (True, True, False),
              (True, False, True), (True, True, True)]


def node_run(node, cache, config, env, measure=None):
    args = [node]
    env = dict(env)
    if measure is not None:
        args += ["--import", os.path.join(HERE, "hooks.mjs")]
        env["COMPAT_MEASURE"] = json.dumps(measure)
    args += [os.path.join(cache, "node_call.mjs"), config]
    try:
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        return {"load_error": "timeout"}
    if p.returncode != 0:
        return {"load_error": run.first_line(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "exit %d" % p.returncode)}
    return json.loads(p.stdout)


def outcome(ref, got):
    if "load_error" in got:
        return "load: " + got["load_error"]
    for a, b in zip(ref["answers"], got["answers"]):
        if "error" in b:
            return "%s(): %s" % (b["function"], b["error"])
        if run.canon(a.get("answer")) != run.canon(b.get("answer")):
            return "%s(): different answer" % b["function"]
    return "ok"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--json", help="write every outcome here")
    ap.add_argument("--jobs", type=int, default=2, help="Node processes at once")
    args = ap.parse_args()
    cache = os.path.join(os.path.abspath(args.build), "compat-cache")
    node = run.shutil.which("node")
    configs = run.stage_cases(cache)
    if args.only:
        configs = [c for c in configs if os.path.basename(c).startswith(tuple(args.only))]
    env = dict(os.environ, TZ="UTC", NODE_ENV="production")
    env.pop("NODE_OPTIONS", None)

    variants = []
    for label, conds in SETS:
        for stubs, bf, pb in MECHANISMS:
            variants.append(("%s%s%s%s" % (label, " +stubs" if stubs else "",
                                            " +browser-field" if bf else "",
                                            " +process.browser" if pb else ""),
                             {"conditions": conds, "allowed": ALLOWED, "stubs": stubs,
                              "browserField": bf, "processBrowser": pb}))
    def one_case(config):
        ref = node_run(node, cache, config, env)
        got = {label: outcome(ref, node_run(node, cache, config, env, m)) for label, m in variants}
        print(os.path.basename(config), sum(v == "ok" for v in got.values()), "of",
              len(variants), flush=True, file=sys.stderr)
        return os.path.basename(config), got

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(one_case, configs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("| variant | cases equal to Node | failing |")
    print("|---|---|---|")
    for label, _ in variants:
        bad = [n for n in results if results[n][label] != "ok"]
        print("| %s | %d of %d | %s |" % (label, len(results) - len(bad), len(results), ", ".join(bad)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
