"""Shared fixtures for jshost's Python tests.

Each test module gets its own runtime directory (so its own manager, sockets
and logs) and shuts that manager down when the module ends. Paths are short
(/tmp/jshpy-XXXX) because socket paths must fit sun_path's 108 bytes.
"""

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

import jshost

# How long a test waits for something that must happen: far past any deadline
# under test, so only a hang trips it. Speed is measured in bench/.
WAIT = 30.0

SOURCE_ROOT = os.environ.get("JSHOST_TEST_SOURCE_ROOT",
                             os.path.dirname(os.path.dirname(os.path.dirname(
                                 os.path.abspath(__file__)))))


@pytest.fixture(scope="module", autouse=True)
def runtime_dir():
    """A private JSHOST_RUNTIME_DIR for this module; its manager is shut down
    at the end."""
    old = os.environ.get("JSHOST_RUNTIME_DIR")
    d = tempfile.mkdtemp(prefix="jshpy-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = d
    try:
        yield d
    finally:
        try:
            jshost.shutdown()
        except jshost.Error:
            pass
        if old is None:
            os.environ.pop("JSHOST_RUNTIME_DIR", None)
        else:
            os.environ["JSHOST_RUNTIME_DIR"] = old
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(runtime_dir):
    """A folder for this module's config files and scripts."""
    d = os.path.join(runtime_dir, "work")
    os.makedirs(d, exist_ok=True)
    return d


def write(folder, name, text):
    """Writes folder/name and returns its path."""
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# The config most tests use: every way a function can answer or fail.
MAIN_CONFIG = r"""
let counter = 0;
module.exports = {
  functions: {
    hello_world(data, cb) { cb(null, 'Hello, ' + (data.name || 'World') + '!'); },
    double(data) { return data.number * 2; },
    echo(data) { return data; },
    async later(data) { return await new Promise(r => setTimeout(() => r(data), 10)); },
    count() { return ++counter; },
    spin() { for (;;) {} },
    never() { return new Promise(() => {}); },
    slow(data, cb) { setTimeout(() => cb(null, 'done'), (data && data.ms) || 60000); },
    throws() { throw new TypeError('bad input'); },
    cb_error(data, cb) { cb(new RangeError('out of range')); },
    rejects() { return Promise.reject(new Error('nope')); },
    lone() { return 'a\ud800'; },
    extra() { return this.host.config.anything; },
    js_values() {
      return {
        big: 2n ** 70n, neg_big: -(2n ** 70n), small_big: 5n,
        date: new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6)),
        bytes: new Uint8Array([1, 2, 3]), buffer: new Uint8Array([9]).buffer,
        map: new Map([['a', 1]]), arr: [undefined, function () {}, 1],
        nan: NaN, negzero: -0, inf: -Infinity, skipped: undefined,
        fn: function () {}, json: { toJSON() { return 'custom'; } },
      };
    },
    types(data) {
      const out = {};
      for (const [k, v] of Object.entries(data)) out[k] = Object.prototype.toString.call(v);
      return out;
    },
  },
  timeout: 10000,
  anything: 'else',
};
"""


@pytest.fixture(scope="module")
def main_config(workdir):
    """The path of MAIN_CONFIG written into this module's folder."""
    return write(workdir, "host.config.js", MAIN_CONFIG)


def manager_pid(runtime_dir):
    """The pid in <runtime>/manager.pid (its first word)."""
    with open(os.path.join(runtime_dir, "manager.pid")) as f:
        return int(f.read().split()[0])


@contextlib.contextmanager
def frozen(pid):
    """The process stopped (SIGSTOP) for the with block, continued after,
    however the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def pid_alive(pid):
    """True while pid runs (a zombie nobody reaps counts as dead, once no
    thread of it is left: until then it still holds its sockets)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir("/proc/%d/task" % pid))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z" or threads > 1


def wait_until(pred, timeout=10.0, step=0.02):
    """Polls pred until true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def in_flight(host):
    """Calls the manager has in flight on the host's workers."""
    return sum(w.get("in_flight", 0) for w in host.status()["workers"])


def wait_child(pid, timeout=WAIT):
    """Waits for a forked child and returns its exit code; a child still
    running after timeout is killed and fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child %d still ran after %s s" % (pid, timeout))
        time.sleep(0.02)


def finish_within(fn, timeout=WAIT):
    """Runs fn() in a thread and returns what it returns (or raises what it
    raises); fails the test when it has not finished in timeout, a hang."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: B902 - handed back below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail("%s still ran after %s s" % (getattr(fn, "__name__", fn), timeout))
    if "error" in out:
        raise out["error"]
    return out.get("value")


def child_env():
    """os.environ for a child Python that must import this same jshost."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(jshost.__file__)))
    return dict(os.environ, PYTHONPATH=root)
