"""What a config's settings say and how a host follows its files as they are
edited (docs/config.md, docs/lifecycle.md "Reload"): a misspelt setting is
warned about, and a manager started by a client restarts a host when a file it
loaded changes, without failing a call."""

import os
import subprocess
import threading
import time

import pytest

import jshost
from conftest import WAIT, write

BUILD_ROOT = os.path.dirname(os.path.dirname(os.environ["JSHOST_MANAGER"]))
CLI = os.path.join(BUILD_ROOT, "clients", "cli", "jshost")


def wait_for(what, cond, timeout=WAIT):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail("no %s within %s s" % (what, timeout))
        time.sleep(0.02)


def log_has(host, text):
    with open(host.logfile, encoding="utf-8", errors="replace") as f:
        return text in f.read()


def edit(path, text):
    """Rewrites a file in place, as `echo > file` does."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def project(workdir, request):
    d = os.path.join(workdir, request.node.name)
    os.makedirs(d)
    write(d, "lib.js", "exports.version = 1;\n")
    write(d, "host.config.js",
          "const lib = require('./lib');\n"
          "let started = 0;\n"
          "module.exports = {functions: {version() { return lib.version; },\n"
          "  slow(d, cb) { started++; setTimeout(() => cb(null, lib.version), d.ms); },\n"
          "  started() { return started; }}};\n")
    return d


# ---- settings ----

def test_a_misspelt_setting_is_warned_about(workdir):
    cfg = write(workdir, "typo.config.js",
                "module.exports = {functions: {f() { return this.host.config.timout; }},\n"
                "  timout: 100, Workers: 2, greeting: 'hi'};\n")
    with jshost.Host(cfg) as h:
        # kept as an extra, and the settings keep their defaults
        assert h.call("f") == 100
        assert h.extras == {"timout": 100, "Workers": 2, "greeting": "hi"}
        assert h.status()["pool"] == 1
        assert len(h.warnings) == 2, h.warnings
        timout, workers = h.warnings
        assert "`timout` looks like a misspelt `timeout`" in timout
        assert "`Workers` looks like a misspelt `workers`" in workers
        assert all(w.startswith(os.path.realpath(cfg) + ": ") for w in h.warnings)
        # the worker logs it through its output pipe, which the manager may
        # read after it has passed the attach on
        wait_for("the warning in the host's log",
                 lambda: log_has(h, "`timout` looks like a misspelt `timeout`"))
    # the command says so on stderr, and still answers
    out = subprocess.run([CLI, "call", cfg, "f"], capture_output=True, text=True,
                         timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "100\n"
    assert "jshost: warning: %s: `timout` looks like a misspelt `timeout`" \
        % os.path.realpath(cfg) in out.stderr


def test_no_warning_for_good_names(workdir):
    cfg = write(workdir, "good.config.js",
                "module.exports = {functions: {f() { return 1; }}, workers: 1,\n"
                "  timeout: 5000, memory: 512, linger: 100, reload: true,\n"
                "  greeting: 'hi', name: 'x', templates: [], env_name: 'dev'};\n")
    with jshost.Host(cfg) as h:
        assert h.warnings == []
        assert h.status()["reload"] is True


def test_reload_must_be_a_boolean(workdir):
    cfg = write(workdir, "badreload.config.js",
                "module.exports = {functions: {f() {}}, reload: 'yes'};\n")
    with pytest.raises(jshost.ConfigError, match="`reload` must be true or false, got a string"):
        jshost.Host(cfg)


# ---- reload ----

def test_an_edit_reloads_without_failing_a_call(project):
    cfg = os.path.join(project, "host.config.js")
    with jshost.Host(cfg) as h:
        assert h.status()["reload"] is True  # this manager was started by a client
        assert h.call("version") == 1
        pid = h.status()["workers"][0]["pid"]
        results, errors = [], []
        stop = threading.Event()

        def calls():
            # one call after another, across the reload
            while not stop.is_set():
                try:
                    results.append(h.call("version"))
                except jshost.Error as e:  # pragma: no cover - the test fails
                    errors.append(e)

        slow = []
        t = threading.Thread(target=calls)
        t.start()
        try:
            wait_for("calls", lambda: len(results) > 5)
            # a call in flight on the old worker when the edit comes
            s = threading.Thread(target=lambda: slow.append(h.call("slow", ms=500)))
            s.start()
            wait_for("the slow call to start", lambda: h.call("started") == 1)
            edit(os.path.join(project, "lib.js"), "exports.version = 2;\n")
            wait_for("the new code", lambda: results and results[-1] == 2)
            n = len(results)
            wait_for("more calls", lambda: len(results) > n + 5)
            s.join(WAIT)
        finally:
            stop.set()
            t.join(WAIT)
        assert errors == []
        # the old code until the switch, then the new code only
        first2 = results.index(2)
        assert set(results[:first2]) == {1} and set(results[first2:]) == {2}
        assert slow == [1]  # finished on the old worker, with the old code
        assert h.call("version") == 2
        # the old worker may still be on its way out: the ready one is new
        ready = [w["pid"] for w in h.status()["workers"] if w["state"] == "ready"]
        assert ready and pid not in ready
        assert log_has(h, "lib.js changed: reloading")
        assert log_has(h, "reloaded: the new workers serve")


def test_the_config_itself_and_a_rename_over_it(project):
    cfg = os.path.join(project, "host.config.js")
    with jshost.Host(cfg) as h:
        assert h.call("version") == 1
        # as editors save: a new file renamed over the old one
        tmp = os.path.join(project, ".host.config.js.swp")
        edit(tmp, "module.exports = {functions: {version() { return 'config 2'; }}};\n")
        os.rename(tmp, cfg)
        wait_for("the new config", lambda: h.call("version") == "config 2")
        # the new config loads no lib.js: its edits change nothing now, but the
        # config is still watched
        edit(cfg, "module.exports = {functions: {version() { return 'config 3'; }}};\n")
        wait_for("the third config", lambda: h.call("version") == "config 3")


def test_a_broken_edit_keeps_the_old_workers_serving(project):
    cfg = os.path.join(project, "host.config.js")
    lib = os.path.join(project, "lib.js")
    with jshost.Host(cfg) as h:
        assert h.call("version") == 1
        edit(lib, "exports.version = ;\n")
        wait_for("the failed reload in the log",
                 lambda: log_has(h, "the reload after a change failed"))
        assert h.call("version") == 1  # the previous workers serve on
        # the next attach is told
        with jshost.Host(cfg) as again:
            assert len(again.warnings) == 1, again.warnings
            w = again.warnings[0]
            assert "the reload after a change failed, the previous workers serve on" in w
            assert "lib.js:1:" in w and "Unexpected token" in w
            assert again.call("version") == 1
        # fixing it reloads, and the warning goes
        edit(lib, "exports.version = 3;\n")
        wait_for("the fixed code", lambda: h.call("version") == 3)
        with jshost.Host(cfg) as again:
            assert again.warnings == []


def test_reload_false_in_the_config(project):
    cfg = os.path.join(project, "host.config.js")
    edit(cfg, "const lib = require('./lib');\n"
              "module.exports = {functions: {version() { return lib.version; }},\n"
              "  reload: false};\n")
    with jshost.Host(cfg) as h:
        assert h.status()["reload"] is False
        assert h.call("version") == 1
        assert not log_has(h, "reload on")


@pytest.mark.parametrize("flags, config_says, reloads", [
    ([], None, False),             # production: off
    (["--reload"], None, True),    # unless asked for
    ([], "true", True),            # or the config asks
    (["--reload"], "false", False),  # and the config has the last word
])
def test_a_production_manager_reloads_only_when_asked(project, runtime_dir, flags,
                                                      config_says, reloads):
    cfg = os.path.join(project, "host.config.js")
    if config_says is not None:
        edit(cfg, "module.exports = {functions: {version() { return 1; }}, reload: %s};\n"
             % config_says)
    rundir = os.path.join(runtime_dir, "prod-%d" % len(os.listdir(runtime_dir)))
    os.mkdir(rundir, 0o700)
    mgr = subprocess.Popen([os.environ["JSHOST_MANAGER"], "--foreground", "--no-idle-exit",
                            "--runtime-dir", rundir] + flags,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = os.path.join(rundir, "manager.sock")
    try:
        wait_for("the manager's socket", lambda: os.path.exists(sock))
        with jshost.Host(cfg, socket=sock) as h:
            assert h.status()["reload"] is reloads
    finally:
        mgr.terminate()
        assert mgr.wait(WAIT) == 0
