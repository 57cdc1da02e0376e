#!/usr/bin/env python3
"""The manager started as systemd starts it from jshost-manager.socket.

    test_socket_activation.py JSHOST SOURCE_ROOT

systemd binds and listens on the socket (contrib/systemd/user/
jshost-manager.socket: $XDG_RUNTIME_DIR/jshost/manager.sock), then runs the
service with the listening socket as fd 3 and LISTEN_FDS=1, LISTEN_PID=<the
service's pid>, LISTEN_FDNAMES=<the socket unit's name>, as sd_listen_fds(3)
describes. This does the same with `jshost manager --foreground
--no-idle-exit` (the unit's ExecStart; the CLI execs the manager, so the pid
stays the one LISTEN_PID names) and checks that:

- a client's call is answered through the socket systemd holds (the manager
  serves fd 3: it does not bind a socket of its own);
- on SIGTERM the manager exits 0 and leaves the socket where it is (it is
  systemd's), and a manager started again on it serves again;
- LISTEN_FDS meant for another pid (LISTEN_PID differs) is ignored: the
  manager binds its own socket as usual.

Run from a clean environment: PATH=/usr/bin:/bin, HOME and XDG_RUNTIME_DIR in
a temp dir.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE = 60  # seconds for anything to happen


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def clean_env(tmp, run, **extra):
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "XDG_RUNTIME_DIR": run}
    # make check-sanitize: the sanitizers' settings (suppressions) go along
    for k in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


def start_manager(jshost, env, listen_fd, listen_pid_self=True):
    """Forks and execs `jshost manager --foreground --no-idle-exit` with
    listen_fd as fd 3, as systemd does."""
    pid = os.fork()
    if pid == 0:
        try:
            if listen_fd != 3:
                os.dup2(listen_fd, 3)
            # Python's sockets are close-on-exec, and dup2 onto itself
            # leaves that flag: systemd's fd 3 survives the exec.
            os.set_inheritable(3, True)
            env = dict(env)
            env["LISTEN_FDS"] = "1"
            env["LISTEN_PID"] = str(os.getpid() if listen_pid_self else 1)
            env["LISTEN_FDNAMES"] = "jshost-manager.socket"
            os.execve(jshost, [jshost, "manager", "--foreground", "--no-idle-exit"], env)
        finally:
            os._exit(127)
    return pid


def wait_exit(pid, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return status
        time.sleep(0.02)
    return None


def call(jshost, env, config, cwd):
    r = subprocess.run([jshost, "call", config, "hello_world", '{"name":"Foo"}'],
                       env=env, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def main():
    if len(sys.argv) != 3:
        fail("usage: test_socket_activation.py JSHOST SOURCE_ROOT")
    jshost, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    config = os.path.join(src, "examples/hello/host.config.js")
    tmp = tempfile.mkdtemp(prefix="jshsock.", dir="/tmp")
    pids = []
    try:
        run = os.path.join(tmp, "run")
        os.mkdir(run, 0o700)
        rundir = os.path.join(run, "jshost")
        os.mkdir(rundir, 0o700)  # the socket unit's DirectoryMode=0700
        path = os.path.join(rundir, "manager.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)  # SocketMode=0600
        listener.listen(128)
        inode = os.stat(path).st_ino
        env = clean_env(tmp, run)

        pid = start_manager(jshost, env, listener.fileno())
        pids.append(pid)
        code, out, err = call(jshost, env, config, src)
        if code != 0 or out != '"Hello, Foo!"':
            fail("call through the socket systemd holds: exit %d, %r, %r (manager log: %s)"
                 % (code, out, err, os.path.join(rundir, "manager.log")))
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            fail("the socket-activated manager exited")
        if os.stat(path).st_ino != inode:
            fail("the manager replaced systemd's socket with one of its own")
        print("ok: a call through the activated socket")

        os.kill(pid, signal.SIGTERM)
        status = wait_exit(pid, DEADLINE)
        pids.remove(pid)
        if status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            fail("the manager did not exit 0 on SIGTERM (wait status %r)" % status)
        if not os.path.exists(path) or os.stat(path).st_ino != inode:
            fail("the manager removed systemd's socket on exit")
        print("ok: SIGTERM leaves the socket to systemd")

        pid = start_manager(jshost, env, listener.fileno())
        pids.append(pid)
        code, out, err = call(jshost, env, config, src)
        if code != 0 or out != '"Hello, Foo!"':
            fail("call after a second activation: exit %d, %r, %r" % (code, out, err))
        print("ok: activated again on the same socket")
        os.kill(pid, signal.SIGTERM)
        wait_exit(pid, DEADLINE)
        pids.remove(pid)
        listener.close()

        # LISTEN_PID names another process: not ours, the manager binds its own.
        run2 = os.path.join(tmp, "run2")
        os.mkdir(run2, 0o700)
        env2 = clean_env(tmp, run2)
        dummy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = start_manager(jshost, env2, dummy.fileno(), listen_pid_self=False)
        pids.append(pid)
        code, out, err = call(jshost, env2, config, src)
        if code != 0 or out != '"Hello, Foo!"':
            fail("with LISTEN_PID of another process: exit %d, %r, %r" % (code, out, err))
        if not os.path.exists(os.path.join(run2, "jshost", "manager.sock")):
            fail("with LISTEN_PID of another process the manager did not bind its own socket")
        print("ok: LISTEN_FDS for another pid is ignored")
        os.kill(pid, signal.SIGTERM)
        wait_exit(pid, DEADLINE)
        pids.remove(pid)
        dummy.close()
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
