#!/usr/bin/env python3
"""Runs the snippets of the README and the docs as a reader would, so that
what they say stays true.

    run_snippets.py SOURCE_ROOT BUILD_ROOT [--strict] MARKDOWN_FILE...

A fenced code block's info string says what to do with it (GitHub shows the
first word, the language, and ignores the rest):

    ```sh run          run with bash (-e -u -o pipefail) from the repository's root
    ```python run      run with /usr/bin/python3 and the build tree's package
                       (PYTHONPATH=build/clients/python), from the root too
    ```python file=X   written to X in the root, for a later block to run
    ```text output     what the block before it prints (stdout and stderr
                       together); "..." in a line matches any text, and a line
                       that is "..." alone any number of lines
    ```sh norun        shown, not run: each command must be one that another
                       test runs (NORUN below names it)

With --strict (the README), every sh and python block must say run, file= or
norun: a new snippet cannot slip in untested.

Every block runs as a new user's shell would: env -i PATH=/usr/bin:/bin, HOME
and XDG_RUNTIME_DIR in a temp dir (a private runtime dir, so its own
manager, shut down at the end), no JSHOST_* variable, no PYTHONPATH but the
one a python block is said to get. The "repository's root" is a temp dir of
symlinks to the source tree's entries, with build -> BUILD_ROOT: the README's
build/ paths name the build under test, and a file= block writes nothing into
the source tree.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

TIMEOUT = 300  # seconds for one block: a hang fails it, never blocks the suite

# Commands a norun block may show, and the test that runs each.
NORUN = {
    "make demo": "the demo test (tests/meson.build)",
    "make test": "this suite, which runs every test",
    "make install": "install_prefix (tests/install/test_prefix.sh)",
    "make uninstall": "install_prefix (tests/install/test_prefix.sh)",
    "/usr/bin/python3 -m venv --system-site-packages venv": "install_pip (tests/install/test_pip.sh)",
    "venv/bin/pip install --no-build-isolation .": "install_pip (tests/install/test_pip.sh)",
}

FENCE = re.compile(r"^```(\S*)\s*(.*?)\s*$")


class Block:
    def __init__(self, path, line, lang, marks, text):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.marks = marks.split()

    def mark(self, name):
        for m in self.marks:
            if m == name:
                return True
            if m.startswith(name + "="):
                return m.split("=", 1)[1]
        return None

    def where(self):
        return "%s:%d" % (self.path, self.line)


def blocks(path):
    """The fenced code blocks of a Markdown file, in order."""
    out, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = FENCE.match(line)
            if cur is None:
                if m:
                    cur = [n, m.group(1), m.group(2), []]
            elif line == "```":
                out.append(Block(path, cur[0], cur[1], cur[2], "\n".join(cur[3]) + "\n"))
                cur = None
            else:
                cur[3].append(line)
    if cur is not None:
        sys.exit("%s:%d: a code block is not closed" % (path, cur[0]))
    return out


def matches(got, want):
    """got's lines against want's: "..." within a line is any text, a line of
    "..." alone any lines."""
    pats = []
    for line in want.splitlines():
        if line == "...":
            pats.append(None)
        else:
            pats.append(re.compile(re.escape(line).replace(re.escape("..."), ".*") + r"\Z"))
    lines = got.splitlines()

    def walk(i, j):
        if j == len(pats):
            return i == len(lines)
        if pats[j] is None:
            return any(walk(k, j + 1) for k in range(i, len(lines) + 1))
        return i < len(lines) and pats[j].match(lines[i]) is not None and walk(i + 1, j + 1)
    return walk(0, 0)


class Runner:
    def __init__(self, source, build):
        self.source, self.build = source, build
        self.tmp = tempfile.mkdtemp(prefix="jshdoc.", dir="/tmp")
        self.root = os.path.join(self.tmp, "checkout")
        os.mkdir(self.root)
        for name in os.listdir(source):
            if name != "build" and not name.startswith(".") and not name.startswith("build"):
                os.symlink(os.path.join(source, name), os.path.join(self.root, name))
        os.symlink(build, os.path.join(self.root, "build"))
        os.mkdir(os.path.join(self.tmp, "home"))
        self.run_dir = os.path.join(self.tmp, "run")
        os.mkdir(self.run_dir, 0o700)
        self.failures = []

    def env(self, **extra):
        env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(self.tmp, "home"),
               "XDG_RUNTIME_DIR": self.run_dir}
        # make check-sanitize's settings, if any, go along
        for k in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(extra)
        return env

    def execute(self, b):
        if b.lang in ("sh", "bash", "shell"):
            cmd, stdin, env = ["/bin/bash", "-euo", "pipefail", "-c", b.text], None, self.env()
        elif b.lang == "python":
            cmd, stdin = ["/usr/bin/python3", "-"], b.text
            env = self.env(PYTHONPATH="build/clients/python")
        else:
            return None, "cannot run a %r block" % b.lang
        try:
            r = subprocess.run(cmd, input=stdin, cwd=self.root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            return e.stdout or "", "did not finish within %d s" % TIMEOUT
        if r.returncode != 0:
            return r.stdout, "exit status %d" % r.returncode
        return r.stdout, None

    def fail(self, b, why):
        self.failures.append("%s: %s" % (b.where(), why))
        print("FAIL: %s: %s" % (b.where(), why))

    def check_norun(self, b):
        for line in b.text.splitlines():
            cmd = line.split("#", 1)[0].strip()
            if not cmd:
                continue
            covered = [k for k in NORUN if cmd == k or cmd.startswith(k + " ")]
            if not covered:
                self.fail(b, "norun command %r is run by no test: run it here, or "
                             "name the test that does in NORUN" % cmd)

    def file(self, path, strict):
        bs = blocks(path)
        ran = 0
        for i, b in enumerate(bs):
            runnable = b.lang in ("sh", "bash", "shell", "python")
            if b.mark("norun"):
                self.check_norun(b)
                continue
            name = b.mark("file")
            if isinstance(name, str):
                with open(os.path.join(self.root, name), "w", encoding="utf-8") as f:
                    f.write(b.text)
                continue
            if not b.mark("run"):
                if strict and runnable:
                    self.fail(b, "a %s block must say run, file=NAME or norun" % b.lang)
                continue
            out, err = self.execute(b)
            ran += 1
            want = bs[i + 1] if i + 1 < len(bs) and bs[i + 1].mark("output") else None
            if err is not None:
                self.fail(b, "%s; it printed:\n%s" % (err, out))
            elif want is not None and not matches(out, want.text):
                self.fail(b, "it printed:\n%s\nwhere %s says:\n%s" % (out, want.where(), want.text))
            else:
                print("ok: %s (%s)" % (b.where(), b.lang))
        if strict and ran == 0:
            self.failures.append("%s: no block is run" % path)
        return ran

    def close(self):
        # whatever the blocks started: the manager of the private runtime dir
        subprocess.run([os.path.join(self.build, "clients/cli/jshost"), "shutdown"],
                       env=self.env(), cwd=self.root, capture_output=True, timeout=60)
        pidfile = os.path.join(self.run_dir, "jshost", "manager.pid")
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().split()[0]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    source, build = os.path.abspath(args[0]), os.path.abspath(args[1])
    if os.environ.get("JSHOST_SANITIZE") == "1":
        # the snippets run the build under test from a clean environment, where
        # a sanitized Python extension cannot load (it needs LD_PRELOAD)
        print("SKIP: the docs' snippets run in a clean environment, without ASan's preload")
        sys.exit(77)
    runner = Runner(source, build)
    try:
        strict = False
        total = 0
        for a in args[2:]:
            if a == "--strict":
                strict = True
                continue
            total += runner.file(os.path.join(source, a), strict)
            strict = False
    finally:
        runner.close()
    if runner.failures:
        print("%d failed:\n%s" % (len(runner.failures), "\n".join(runner.failures)))
        sys.exit(1)
    print("%d blocks ran, 0 failed" % total)


if __name__ == "__main__":
    main()
