"""Confinement of JavaScript (docs/modules.md, "What JavaScript may read"):
the loader reads only the config's tree, the node_modules above it and the
config's `roots`; refusals never echo a file's content; process.env holds
NODE_ENV and the config's `env` names, taken from the environment of the
client that started the host, never from another client's."""

import os
import subprocess
import sys
import textwrap

import pytest

import jshost
from conftest import WAIT, write

SECRET = "TOP-SECRET-CONTENT-4711"


@pytest.fixture(scope="module")
def tree(workdir):
    """app/ (the config's tree), outside/ (secrets), lib/ (a root)."""
    app = os.path.join(workdir, "conf", "app")
    outside = os.path.join(workdir, "conf", "outside")
    lib = os.path.join(workdir, "conf", "lib")
    for d in (app, outside, lib, os.path.join(app, "node_modules", "pkg")):
        os.makedirs(d, exist_ok=True)
    write(outside, "secret.js", SECRET + "\n")
    write(outside, "secret.json", '{"secret": "%s"}\n' % SECRET)
    write(outside, "secret.mjs", "export default '%s';\n" % SECRET)
    write(lib, "shared.js", "module.exports = 'shared from lib';\n")
    link = os.path.join(app, "link.js")
    if not os.path.islink(link):
        os.symlink(os.path.join(outside, "secret.js"), link)
    write(os.path.join(app, "node_modules", "pkg"), "index.js",
          "module.exports = (p) => require(p);\n")
    write(app, "inside.json", '{"ok": true}\n')
    write(app, "host.config.js", textwrap.dedent("""\
        const pkg = require('pkg');
        function attempt(fn) {
          try { return {ok: fn()}; } catch (e) { return {code: e.code, message: e.message}; }
        }
        module.exports = {
          functions: {
            req(d) { return attempt(() => require(d.path)); },
            viaPkg(d) { return attempt(() => pkg(d.path)); },
            imp(d) { return import(d.path).then((m) => ({ok: m.default}),
                                              (e) => ({code: e.code, message: e.message})); },
          },
        };
        """))
    write(app, "roots.config.js", textwrap.dedent("""\
        const shared = require('../lib/shared');
        module.exports = {roots: ['../lib'], functions: {
          shared() { return shared; },
          secret() { try { return require('../outside/secret.js'); } catch (e) { return e.code; } },
        }};
        """))
    return {"app": app, "outside": outside, "lib": lib}


def refused(answer, what):
    assert answer.get("code") == "ERR_JSHOST_CONFINED", answer
    assert SECRET not in answer["message"], answer
    assert what in answer["message"], answer


@pytest.mark.parametrize("fn", ["req", "viaPkg", "imp"])
def test_absolute_path_outside(tree, fn):
    with jshost.Host(os.path.join(tree["app"], "host.config.js")) as h:
        for name in ("secret.js", "secret.json"):
            path = os.path.join(tree["outside"], name)
            refused(h.call(fn, path=path, timeout=WAIT), path)
        refused(h.call(fn, path="/etc/hostname", timeout=WAIT), "/etc/hostname")


@pytest.mark.parametrize("fn", ["req", "imp"])
def test_dotdot_escape(tree, fn):
    with jshost.Host(os.path.join(tree["app"], "host.config.js")) as h:
        for rel in ("../outside/secret.js", "../outside/secret.json",
                    "../outside/secret.mjs", "./../../../../../../../../etc/hostname"):
            refused(h.call(fn, path=rel, timeout=WAIT), rel)


@pytest.mark.parametrize("fn", ["req", "imp"])
def test_symlink_out(tree, fn):
    with jshost.Host(os.path.join(tree["app"], "host.config.js")) as h:
        refused(h.call(fn, path="./link.js", timeout=WAIT), "link.js")


def test_inside_still_loads(tree):
    with jshost.Host(os.path.join(tree["app"], "host.config.js")) as h:
        assert h.call("req", path="./inside.json", timeout=WAIT) == {"ok": {"ok": True}}
        assert h.call("imp", path="./inside.json", timeout=WAIT) == {"ok": {"ok": True}}


def test_roots_widen_the_tree(tree):
    with jshost.Host(os.path.join(tree["app"], "roots.config.js")) as h:
        assert h.call("shared", timeout=WAIT) == "shared from lib"
        assert h.call("secret", timeout=WAIT) == "ERR_JSHOST_CONFINED"


def test_context_tree_is_its_cwd(tree):
    """A context reads from its working directory's tree (the client's cwd)."""
    old = os.getcwd()
    os.chdir(tree["app"])
    try:
        with jshost.VM() as vm:
            with vm.create_context() as ctx:
                got = ctx.eval("(() => { try { require('../outside/secret.js') } "
                               "catch (e) { return [e.code, e.message] } })()")
                assert got[0] == "ERR_JSHOST_CONFINED" and SECRET not in got[1]
                assert ctx.eval("require('./inside.json').ok") is True
    finally:
        os.chdir(old)


CLIENT = r"""
import json, sys, jshost
config = sys.argv[1]
out = {}
with jshost.Host(config) as h:
    out["host"] = h.call("env")
with jshost.VM() as vm:
    with vm.create_context() as ctx:
        out["vm"] = ctx.eval("process.env")
print(json.dumps(out))
"""


def run_client(config, extra_env):
    env = dict(os.environ)
    env.pop("JSHOST_TEST_SECRET", None)
    env.pop("NODE_ENV", None)
    env.update(extra_env)
    proc = subprocess.run([sys.executable, "-c", CLIENT, config], env=env,
                          capture_output=True, text=True, timeout=WAIT * 2)
    assert proc.returncode == 0, proc.stderr
    import json
    return json.loads(proc.stdout)


def test_process_env_of_another_client(workdir):
    d = os.path.join(workdir, "envs")
    os.makedirs(d, exist_ok=True)
    body = ("module.exports = {env: ['JSHOST_TEST_SECRET'], functions: {"
            "env() { return process.env; }}};\n")
    a = write(d, "a.config.js", body)
    b = write(d, "b.config.js", body)
    jshost.shutdown()
    # Client A starts the manager (its environment is the manager's) and host a.
    got_a = run_client(a, {"JSHOST_TEST_SECRET": "secret of A", "NODE_ENV": "development",
                           "JSHOST_TEST_OTHER": "unlisted"})
    assert got_a["host"] == {"JSHOST_TEST_SECRET": "secret of A", "NODE_ENV": "development"}
    assert got_a["vm"] == {"NODE_ENV": "development"}
    # Client B, whose environment differs, starts host b and a VM of its own:
    # neither sees A's secret.
    got_b = run_client(b, {"JSHOST_TEST_SECRET": "secret of B"})
    assert got_b["host"] == {"JSHOST_TEST_SECRET": "secret of B", "NODE_ENV": "production"}
    assert got_b["vm"] == {"NODE_ENV": "production"}
    got_b2 = run_client(b, {})
    # b is still running (it lingers): the environment of who started it.
    assert got_b2["host"].get("JSHOST_TEST_SECRET") in ("secret of B", None)
    assert got_b2["vm"] == {"NODE_ENV": "production"}
