#!/usr/bin/env bash
# pip install --no-build-isolation . into a venv, as a new user runs it from a
# clean environment: the package answers a call with no PYTHONPATH and no
# JSHOST_* variable (it finds the manager and worker it carries), `python -m
# jshost` and the `jshost` script run the command, the type hints ship.
#
#   test_pip.sh SOURCE_ROOT WORK_DIR
. "$(dirname "$0")/lib.sh"

venv=$tmp/venv
new_rundir
# Debian's Python has meson-python (python3-mesonpy); the venv sees it.
clean "$run" /usr/bin/python3 -m venv --system-site-packages "$venv" || fail "venv"

echo "== pip install --no-build-isolation ."
(cd "$src" && clean "$run" "$venv/bin/pip" install --no-build-isolation \
    --disable-pip-version-check .) >"$tmp/pip.log" 2>&1 ||
    { cat "$tmp/pip.log"; fail "pip install"; }

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
for f in jshost/__init__.py jshost/__init__.pyi jshost/py.typed jshost/__main__.py \
    jshost/jshost jshost/jshost-manager jshost/jshost-worker; do
    [ -e "$site/$f" ] || fail "$f is not in the venv's site-packages"
done
ls "$site"/jshost/_jshost.*.so >/dev/null || fail "no extension module in the venv"

echo "== the venv's jshost, from a clean environment"
out=$(cd "$src" && clean "$run" "$venv/bin/python" -c \
    'import jshost; print(jshost.Host("examples/hello/host.config.js").call("hello_world", name="Foo"))') ||
    fail "python in the venv: exit $? (see $run/jshost/manager.log)"
expect "jshost.Host(...).call in the venv" "$out" "Hello, Foo!"
version="jshost $(sed -n "s/^  version: '\(.*\)',/\1/p" "$src/meson.build")"
out=$(clean "$run" "$venv/bin/python" -m jshost version) || fail "python -m jshost version: exit $?"
expect "python -m jshost version" "$out" "$version"
out=$(cd "$src" && clean "$run" "$venv/bin/jshost" call examples/hello/host.config.js hello_world '{"name":"Foo"}') ||
    fail "the venv's jshost script: exit $?"
expect "the venv's jshost call" "$out" '"Hello, Foo!"'
out=$(clean "$run" "$venv/bin/python" -m jshost shutdown) || fail "python -m jshost shutdown: exit $?"
case $out in "manager stopped"*) echo "ok: shutdown" ;; *) fail "shutdown said: $out" ;; esac

echo "1 passed, 0 failed"
