# Shared by the install tests (sourced): a temp dir, a clean environment, and
# managers stopped whatever happens.
#
# Every command of a test runs as a new user's shell would: `env -i` with
# PATH=/usr/bin:/bin and HOME in the temp dir, no JSHOST_* variable, no
# PYTHONPATH. Each runtime dir is a private XDG_RUNTIME_DIR under the temp dir
# (the normal user path: jshost uses $XDG_RUNTIME_DIR/jshost).

set -euo pipefail

# make check-sanitize: these build jshost their own way (no sanitizer), so
# nothing of the sanitized build would be tested.
if [ "${JSHOST_SANITIZE:-}" = 1 ]; then
    echo "SKIP: the install tests build their own (unsanitized) jshost"
    exit 77
fi

src=$(cd "${1:?usage: $0 SOURCE_ROOT BUILD_DIR}" && pwd)
work=${2:?usage: $0 SOURCE_ROOT BUILD_DIR}
tmp=$(mktemp -d /tmp/jshinst.XXXXXX)
rundirs=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Stops the managers of every runtime dir used, then removes the temp dir.
cleanup() {
    local d pid
    for d in "${rundirs[@]}"; do
        pid=$(cut -d' ' -f1 "$d/jshost/manager.pid" 2>/dev/null) || continue
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A fresh private runtime dir (0700, as XDG_RUNTIME_DIR is) in $run (not in a
# subshell: cleanup must know it).
new_rundir() {
    run=$tmp/run${#rundirs[@]}
    mkdir -m 0700 "$run"
    rundirs+=("$run")
}

# clean RUNDIR CMD...: CMD in a clean environment, that runtime dir, at most
# 10 minutes (a hang fails the test rather than blocking it).
clean() {
    local rundir=$1
    shift
    env -i PATH=/usr/bin:/bin HOME="$tmp/home" XDG_RUNTIME_DIR="$rundir" \
        timeout 600 "$@"
}

# expect WHAT GOT WANTED
expect() {
    [ "$2" = "$3" ] || fail "$1: got '$2', wanted '$3'"
    echo "ok: $1"
}

mkdir -p "$tmp/home"
cd "$src"
