"""A context's console output reaches the Python program that made the
context (docs/config.md, "Globals"; docs/protocol.md, "Console output"): to
the ``console`` callable of its VM or Host.context, else to the
``jshost.console`` logger. The config's own console stays in the host's log."""

import logging
import sys

import pytest

import jshost
from conftest import WAIT, wait_until, write


@pytest.fixture(scope="module")
def host(runtime_dir, main_config):
    with jshost.Host(main_config) as h:
        yield h


def test_a_vms_console_goes_to_its_callable():
    lines = []
    with jshost.VM(console=lambda level, text: lines.append((level, text))) as vm:
        ctx = vm.create_context()
        assert ctx.eval("console.log('a', {b: 1}); console.warn('%s!', 'w'); "
                        "console.error(new Error('e').message); 3") == 3
        # with the call's answer, in order
        assert lines == [("log", "a { b: 1 }"), ("warn", "w!"), ("error", "e")]
        # every context of the VM
        other = vm.create_context()
        other.call("console.info", "from", "call")
        assert lines[-1] == ("info", "from call")
        # a timer's output comes with a later call
        ctx.eval("setTimeout(() => console.debug('later'), 0); null")
        assert wait_until(lambda: ctx.eval("1") and ("debug", "later") in lines, WAIT)


def test_host_contexts_each_to_their_own(host):
    a, b = [], []
    with host.context(console=lambda l, t: a.append(t)) as ca, \
            host.context(console=lambda l, t: b.append(t)) as cb:
        ca.eval("console.log('to a')")
        cb.eval("console.log('to b')")
        # the config's own functions log to the host's log only
        host.call("echo", 1)
        assert a == ["to a"] and b == ["to b"]


def test_without_a_callable_the_logger_has_it(host, caplog):
    caplog.set_level(logging.DEBUG, logger="jshost.console")
    with host.context() as ctx:
        ctx.eval("console.log('plain'); console.warn('careful'); console.error('bad')")
    got = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [("jshost.console", logging.INFO, "plain"),
                   ("jshost.console", logging.WARNING, "careful"),
                   ("jshost.console", logging.ERROR, "bad")]
    assert jshost.console_logger is logging.getLogger("jshost.console")


def test_a_failing_callable_never_fails_the_call(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))

    def broken(level, text):
        raise RuntimeError("console callable broke on " + text)

    with jshost.VM(console=broken) as vm:
        assert vm.create_context().eval("console.log('x'); 5") == 5
    assert [str(e) for e in seen] == ["console callable broke on x"]


def test_console_must_be_callable():
    with pytest.raises(TypeError, match="console must be callable"):
        jshost.VM(console="stderr")
