"""jshost's compatibility suite: npm packages called through jshost and Node.

    python3 tests/compat/run.py --build build [--only NAME ...] [--keep-going]

Each file in tests/compat/cases/ is a jshost config (.cjs: CommonJS, .mjs: an
ES module) that loads one package the way its users do and lists, in its
``compat`` key, the calls to make: ``[[function, data], ...]``. The packages
are pinned by tests/compat/package.json and package-lock.json and installed
with the machine's npm into BUILD/compat-cache (scripts/npm-cache); the cases
are copied beside that node_modules and run there, by Node (node_call.mjs, the
reference) and by jshost (the Python client, one Host per case). Every answer
must be equal.

Prints a table (case, package, version, module type, result, first line of
the jshost error or the first differing call) and writes it as Markdown to
BUILD/compat-cache/results.txt. Exit status: 0 every case matches; 1 some do
not; 77 (meson's "skipped") when Node.js, npm or the npm registry is missing,
said on stderr.
"""

import argparse
import base64
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77
CALL_TIMEOUT = 60.0


def skip(why):
    print("compat: SKIPPED: " + why, file=sys.stderr)
    sys.exit(SKIP)


def plain_env(env=None):
    """The environment for Node and npm: without the ASan runtime a sanitizer
    build preloads for this Python (Node is not built with it)."""
    env = dict(os.environ if env is None else env)
    env.pop("LD_PRELOAD", None)
    return env


def install(cache):
    rc = subprocess.call([os.path.join(SOURCE_ROOT, "scripts", "npm-cache"), HERE, cache],
                         env=plain_env())
    if rc == SKIP:
        skip("the pinned packages could not be installed (npm-cache said why above)")
    if rc != 0:
        print("compat: installing the pinned packages failed (exit %d)" % rc, file=sys.stderr)
        sys.exit(1)


def stage_cases(cache):
    """Copies the cases beside node_modules, where Node's lookup finds it."""
    dest = os.path.join(cache, "cases")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "cases"), dest)
    shutil.copy(os.path.join(HERE, "node_call.mjs"), os.path.join(cache, "node_call.mjs"))
    return sorted(os.path.join(dest, f) for f in os.listdir(dest)
                  if f.endswith((".cjs", ".mjs", ".js")))


def module_type(pkg):
    """cjs, esm or dual: what the package offers to require() and import."""
    conds = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                conds.add(k)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(pkg.get("exports"))
    is_module = pkg.get("type") == "module"
    main = pkg.get("main") or ""
    has_import = "import" in conds or "module" in conds or is_module or "module" in pkg
    has_require = "require" in conds or (not is_module and (not conds or "default" in conds)) \
        or main.endswith(".cjs")
    if has_import and has_require:
        return "dual"
    return "esm" if has_import else "cjs"


def package_info(cache, name):
    path = os.path.join(cache, "node_modules", name, "package.json")
    try:
        with open(path, encoding="utf-8") as f:
            pkg = json.load(f)
    except OSError:
        return "?", "?"
    return pkg.get("version", "?"), module_type(pkg)


def to_wire(v):
    """A Python value from jshost in the JSON form node_call.mjs writes."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if -(2**53) <= v <= 2**53 else {"$bigint": str(v)}
    if isinstance(v, float):
        if math.isnan(v):
            return {"$float": "NaN"}
        if math.isinf(v):
            return {"$float": "Infinity" if v > 0 else "-Infinity"}
        if v == 0 and math.copysign(1, v) < 0:
            return {"$float": "-0"}
        return int(v) if v.is_integer() and abs(v) <= 2**53 else v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bin": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, datetime.datetime):
        v = v.astimezone(datetime.timezone.utc)
        return {"$date": v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)}
    if isinstance(v, (list, tuple)):
        return [to_wire(x) for x in v]
    if isinstance(v, dict):
        out = {str(k): to_wire(x) for k, x in v.items()}
        if {"name", "message", "stack"} <= out.keys():
            out["stack"] = "<stack>"
        return out
    return repr(v)


def canon(v):
    """Node's JSON in the same form (integral floats as ints)."""
    if isinstance(v, float):
        return int(v) if v.is_integer() and abs(v) <= 2**53 else v
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    return v


def first_line(text):
    text = str(text).strip()
    return text.splitlines()[0] if text else ""


def jshost_error(err, cache):
    """The first line of a jshost error, with paths relative to the cache."""
    import jshost

    kind = getattr(err, "type", None) or type(err).__name__
    if isinstance(err, jshost.JSError) and err.name:
        text = "%s: %s: %s" % (kind, err.name, first_line(err.message))
    else:
        text = "%s: %s" % (kind, first_line(getattr(err, "message", None) or err))
    text = re.sub(r" \(see [^)]*\.log\)$", "", text)
    return text.replace(cache + os.sep, "")


# Why a case fails, read from jshost's error: the work item it belongs to.
CAUSES = [
    (r"Unexpected token 'export'|Cannot use import statement|import\.meta"
     r"|Unexpected token '\{'|Unexpected identifier", "ES module read as CommonJS"),
    (r"require\(\) of ES Module|ERR_REQUIRE_ESM|cannot require\(\) the ES module",
     "require() of an ES module"),
    (r"built-in module '([^']+)'", "Node built-in '{0}' missing"),
    (r"(\b[A-Za-z_$][\w$]*) is not defined", "global '{0}' missing"),
    (r"Cannot find module|is not defined by \"exports\"|ERR_PACKAGE_PATH", "resolution"),
    (r"does not provide an export named", "ES module named export (CommonJS interop)"),
    (r"TimeoutError", "timeout"),
]


def cause_of(error):
    for pattern, label in CAUSES:
        m = re.search(pattern, error)
        if m:
            return label.format(*m.groups())
    return "other"


def short(v, width=60):
    text = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def node_answers(node, config, env):
    proc = subprocess.run([node, os.path.join(os.path.dirname(os.path.dirname(config)),
                                               "node_call.mjs"), config],
                          capture_output=True, text=True, env=plain_env(env), timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("node_call.mjs failed on %s:\n%s" % (config, proc.stderr))
    return json.loads(proc.stdout)


def run_case(node, cache, config, env):
    import jshost

    name = os.path.basename(config)
    ref = node_answers(node, config, env)
    package = ref.get("package") or re.sub(r"(-[a-z-]+)?\.[cm]?js$", "", name)
    version, mtype = package_info(cache, package)
    row = {"case": name, "package": package, "version": version, "type": mtype,
           "ok": False, "detail": "", "cause": ""}
    if "load_error" in ref:
        row["detail"] = "Node itself fails: " + ref["load_error"]
        row["cause"] = "the case is broken"
        return row
    if not ref["answers"]:
        row["detail"] = "the case lists no calls"
        row["cause"] = "the case is broken"
        return row
    for a in ref["answers"]:
        if "error" in a:
            row["detail"] = "Node fails %s: %s" % (a["function"], a["error"])
            row["cause"] = "the case is broken"
            return row
    try:
        host = jshost.Host(config)
    except jshost.Error as err:
        row["detail"] = jshost_error(err, cache)
        row["cause"] = cause_of(row["detail"])
        return row
    try:
        for a in ref["answers"]:
            try:
                got = to_wire(host.call(a["function"], a["data"], timeout=CALL_TIMEOUT))
            except jshost.Error as err:
                row["detail"] = "%s(): %s" % (a["function"], jshost_error(err, cache))
                row["cause"] = cause_of(row["detail"])
                return row
            want = canon(a["answer"])
            if got != want:
                row["detail"] = "%s(): jshost %s, Node %s" % (a["function"], short(got),
                                                               short(want))
                row["cause"] = "different answer"
                return row
        row["ok"] = True
        row["detail"] = "%d answer%s equal" % (len(ref["answers"]),
                                                "" if len(ref["answers"]) == 1 else "s")
        return row
    finally:
        try:
            host.stop()
        except jshost.Error:
            pass
        host.close()


def table(rows, markdown=False):
    cols = [("case", "case"), ("package", "package"), ("version", "version"),
            ("type", "type"), ("result", "== Node"), ("cause", "cause"),
            ("detail", "jshost error or first difference")]
    cells = [[r["case"], r["package"], r["version"], r["type"], "yes" if r["ok"] else "NO",
              "" if r["ok"] else r["cause"], r["detail"]] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(h for _, h in cols) + " |",
                 "|" + "---|" * len(cols)]
        for c in cells:
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(cols[:-1])]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)) + "  " + cols[-1][1]]
    for c in cells:
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)) + "  " + c[-1])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="the meson build directory")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run only the cases whose file name starts with one of these")
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    node = shutil.which("node")
    if node is None:
        skip("Node.js is not installed: it gives the reference answers "
             "(it is not a dependency of jshost itself)")
    try:
        import jshost  # noqa: F401
    except ImportError as err:
        print("compat: the jshost Python package is not importable (%s); "
              "run under meson test, which sets PYTHONPATH" % err, file=sys.stderr)
        return 1

    cache = os.path.join(build, "compat-cache")
    install(cache)
    configs = stage_cases(cache)
    if args.only:
        configs = [c for c in configs if os.path.basename(c).startswith(tuple(args.only))]
    if not configs:
        print("compat: no case selected", file=sys.stderr)
        return 1

    # Same environment for both sides: UTC (dates), production React builds
    # (jshost's NODE_ENV defaults to production), a runtime dir of our own.
    os.environ["TZ"] = "UTC"
    os.environ["NODE_ENV"] = "production"
    runtime = tempfile.mkdtemp(prefix="jshost-compat.")
    os.environ["JSHOST_RUNTIME_DIR"] = runtime
    os.environ.pop("JSHOST_SOCKET", None)
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)

    rows = []
    try:
        for config in configs:
            row = run_case(node, cache, config, env)
            rows.append(row)
            print("%-4s %s  %s" % ("ok" if row["ok"] else "FAIL", row["case"], row["detail"]),
                  flush=True)
    finally:
        import jshost

        try:
            jshost.shutdown()
        except jshost.Error:
            pass
        shutil.rmtree(runtime, ignore_errors=True)

    passed = sum(r["ok"] for r in rows)
    failed = len(rows) - passed
    print()
    print(table(rows))
    causes = {}
    for r in rows:
        if not r["ok"]:
            causes[r["cause"]] = causes.get(r["cause"], 0) + 1
    if causes:
        print()
        print("failures by cause: " +
              ", ".join("%s %d" % (k, v) for k, v in sorted(causes.items(), key=lambda x: -x[1])))
    with open(os.path.join(cache, "results.txt"), "w", encoding="utf-8") as f:
        f.write("# jshost compatibility: %d of %d cases equal to Node\n\n" % (passed, len(rows)))
        f.write(table(rows, markdown=True) + "\n")
    print()
    print("compat: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
