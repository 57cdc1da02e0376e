"""The package loaded from the build tree in a clean environment: no JSHOST_*
variable says where the daemons are, and it finds the build's own manager and
worker (relative to the extension's own file)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import jshost
from conftest import SOURCE_ROOT, manager_pid, pid_alive, wait_until

SCRIPT = r"""
import jshost
with jshost.Host("examples/hello/host.config.js") as host:
    print(host.call("hello_world", name="Foo"))
"""

# The sanitizer build's runtime options: they tell jshost nothing.
_SANITIZER_VARS = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "LD_PRELOAD")


def test_build_tree_package_finds_its_daemons():
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(jshost.__file__)))
    build_root = os.path.dirname(os.path.dirname(package_root))
    xdg = tempfile.mkdtemp(prefix="jshxdg-", dir="/tmp")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": package_root,
           "XDG_RUNTIME_DIR": xdg}
    env.update({k: os.environ[k] for k in _SANITIZER_VARS if k in os.environ})
    pid = None
    try:
        r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=SOURCE_ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "Hello, Foo!\n"
        runtime = os.path.join(xdg, "jshost")
        pid = manager_pid(runtime)
        assert os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(
            os.path.join(build_root, "manager", "jshost-manager"))
        with open(os.path.join(runtime, "manager.log")) as f:
            log = f.read()
        worker = os.path.realpath(os.path.join(build_root, "worker", "jshost-worker"))
        assert "(worker %s)" % worker in log, log
    finally:
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            assert wait_until(lambda: not pid_alive(pid), 20)
        shutil.rmtree(xdg, ignore_errors=True)
