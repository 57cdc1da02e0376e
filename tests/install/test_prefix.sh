#!/usr/bin/env bash
# make install PREFIX=DIR, as a new user runs it from a clean environment:
# the installed jshost answers a call, so does a moved copy of the prefix;
# the C library, header, pkg-config file, man page, completion and Python
# package are where docs/install.md says; make uninstall leaves nothing behind;
# DESTDIR stages the same files and nothing else.
#
#   test_prefix.sh SOURCE_ROOT WORK_DIR
# WORK_DIR keeps the build folder between runs (make install reuses it).
. "$(dirname "$0")/lib.sh"

build=$work/prefix-build
prefix=$(mktemp -d "$tmp/prefix.XXXXXX")
config=examples/hello/host.config.js
make_install=(make -C "$src" BUILD="$build" MESON_FLAGS=-Dtests=false)

echo "== make install PREFIX=$prefix"
new_rundir
clean "$run" "${make_install[@]}" install PREFIX="$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "make install"; }

for f in bin/jshost libexec/jshost/jshost-manager libexec/jshost/jshost-worker; do
    [ -x "$prefix/$f" ] || fail "$f is not installed (or not executable)"
done
for f in include/jshost.h lib/pkgconfig/jshost.pc share/man/man1/jshost.1 \
    share/bash-completion/completions/jshost; do
    [ -f "$prefix/$f" ] || fail "$f is not installed"
done
soname=$(readelf -d "$prefix/lib/libjshost.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
expect "libjshost's soname" "$soname" libjshost.so.0
[ -e "$prefix/lib/$soname" ] || fail "lib/$soname is missing"
pydir=$(/usr/bin/python3 -c 'import glob, sys; print(*glob.glob(sys.argv[1] + "/lib/python3*/*-packages"))' "$prefix")
[ -f "$pydir/jshost/__init__.py" ] && [ -f "$pydir/jshost/py.typed" ] &&
    [ -f "$pydir/jshost/__init__.pyi" ] || fail "no jshost package in $prefix/lib/python3*/"
expect "python package dir" "$pydir" \
    "$(/usr/bin/python3 -c 'import sysconfig, sys; print(sysconfig.get_path("platlib", "posix_prefix", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' "$prefix")"

echo "== the installed jshost, from a clean environment"
out=$(clean "$run" "$prefix/bin/jshost" call "$config" hello_world '{"name":"Foo"}') ||
    fail "installed jshost call: exit $?"
expect "installed jshost call" "$out" '"Hello, Foo!"'
out=$(clean "$run" "$prefix/bin/jshost" version)
expect "installed jshost version" "$out" "jshost $(sed -n "s/^  version: '\(.*\)',/\1/p" meson.build)"

echo "== the installed C library: compile examples/c/hello.c with pkg-config"
# shellcheck disable=SC2046
clean "$run" env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" sh -c \
    'cc -o "$1" examples/c/hello.c $(pkg-config --cflags --libs jshost) -Wl,-rpath,"$2/lib"' \
    sh "$tmp/hello" "$prefix" || fail "examples/c/hello.c does not build against the install"
out=$(clean "$run" "$tmp/hello" "$config") || fail "examples/c/hello.c against the install: exit $?"
case $out in *'-> "Hello, C!"'*) echo "ok: C example" ;; *) fail "C example said: $out" ;; esac

echo "== the installed Python package"
out=$(clean "$run" env PYTHONPATH="$pydir" /usr/bin/python3 -c \
    'import jshost; print(jshost.Host("examples/hello/host.config.js").call("hello_world", name="Foo"))') ||
    fail "python from the prefix: exit $?"
expect "python from the prefix" "$out" "Hello, Foo!"
out=$(clean "$run" env PYTHONPATH="$pydir" /usr/bin/python3 -m jshost version)
expect "python -m jshost from the prefix" "$out" "jshost $(sed -n "s/^  version: '\(.*\)',/\1/p" meson.build)"

echo "== the man page and the completion"
warnings=$(groff -man -Tutf8 -ww -z "$prefix/share/man/man1/jshost.1" 2>&1)
expect "groff warnings on jshost.1" "$warnings" ""
clean "$run" man -l "$prefix/share/man/man1/jshost.1" 2>/dev/null | grep -q 'jshost shutdown' ||
    fail "man jshost does not show jshost shutdown"
out=$(clean "$run" bash -c '. "$1/share/bash-completion/completions/jshost"
    COMP_WORDS=("$1/bin/jshost" s); COMP_CWORD=1; _jshost; echo "${COMPREPLY[*]}"' sh "$prefix")
expect "completion of 'jshost s'" "$out" "start stop status shutdown"

if command -v systemd-analyze >/dev/null; then
    echo "== contrib/systemd units, pointed at this prefix"
    for kind in user system; do
        mkdir -p "$tmp/units/$kind"
        for u in contrib/systemd/$kind/*.service contrib/systemd/$kind/*.socket; do
            sed "s|/usr/local/bin/jshost|$prefix/bin/jshost|" "$u" >"$tmp/units/$kind/${u##*/}"
        done
    done
    out=$(systemd-analyze verify --man=no "$tmp"/units/system/* 2>&1) ||
        fail "system units: $out"
    expect "systemd-analyze verify (system units)" "$out" ""
    out=$(XDG_RUNTIME_DIR=$run systemd-analyze --user verify --man=no "$tmp"/units/user/* 2>&1) ||
        fail "user units: $out"
    expect "systemd-analyze verify (user units)" "$out" ""
fi

out=$(clean "$run" "$prefix/bin/jshost" shutdown) || fail "jshost shutdown: exit $?"
case $out in "manager stopped"*) echo "ok: shutdown" ;; *) fail "shutdown said: $out" ;; esac

echo "== a moved prefix still works (fresh runtime dir: nothing running)"
mv "$prefix" "$prefix.moved"
new_rundir
out=$(clean "$run" "$prefix.moved/bin/jshost" call "$config" hello_world '{"name":"Foo"}') ||
    fail "moved jshost call: exit $? (see $run/jshost/manager.log)"
expect "moved prefix's jshost call" "$out" '"Hello, Foo!"'
out=$(clean "$run" env PYTHONPATH="${pydir/$prefix/$prefix.moved}" /usr/bin/python3 -c \
    'import jshost; print(jshost.Host("examples/hello/host.config.js").call("hello_world", name="Foo"))') ||
    fail "python from the moved prefix: exit $?"
expect "python from the moved prefix" "$out" "Hello, Foo!"
clean "$run" "$prefix.moved/bin/jshost" shutdown >/dev/null || fail "jshost shutdown (moved)"
mv "$prefix.moved" "$prefix"

echo "== make uninstall"
clean "$run" "${make_install[@]}" uninstall >"$tmp/uninstall.log" 2>&1 ||
    { cat "$tmp/uninstall.log"; fail "make uninstall"; }
left=$(cd "$prefix" && find . -mindepth 1)
expect "what make uninstall left in the prefix" "$left" ""

echo "== DESTDIR stages the same files under it"
stage=$tmp/stage
mkdir "$stage"
clean "$run" "${make_install[@]}" install PREFIX=/opt/jshost-test DESTDIR="$stage" \
    >"$tmp/install2.log" 2>&1 || { cat "$tmp/install2.log"; fail "make install DESTDIR"; }
[ -x "$stage/opt/jshost-test/bin/jshost" ] &&
    [ -x "$stage/opt/jshost-test/libexec/jshost/jshost-worker" ] || fail "nothing under DESTDIR"
[ ! -e /opt/jshost-test ] || fail "DESTDIR install wrote /opt/jshost-test"
clean "$run" "${make_install[@]}" uninstall PREFIX=/opt/jshost-test DESTDIR="$stage" \
    >"$tmp/uninstall2.log" 2>&1 || { cat "$tmp/uninstall2.log"; fail "make uninstall DESTDIR"; }
left=$(cd "$stage" && find . -mindepth 1)
expect "what make uninstall left under DESTDIR" "$left" ""

echo "1 passed, 0 failed"
