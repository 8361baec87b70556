# Host-side helpers sourced by the read-path, cycles and corrupt suites (not a suite itself:
# tests/run only runs *.sh).
#
#   suite_init NAME       sets $top, $work (a fresh temp dir under build/tests/) and the tool
#                         paths; exits 1 when a prerequisite is missing
#   suite_vm CASES -- ARGS
#                         runs qemu/vm ARGS (with `--fsck NAME`, so every AegisFS disk is
#                         checked with `fsck -n` after the guest script, unless the suite set
#                         suite_fsck=0), passes the guest's ok/not ok lines for this suite
#                         through and reports every case named in the file CASES that the
#                         guest never reported; a failing qemu/vm is the case NAME/vm

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$top/build}
release=$build/target/release
mkfs=$release/mkfs.aegisfs
# Cargo cannot name a binary with a dot; the build may leave it as mkfs-aegisfs.
[ -x "$mkfs" ] || mkfs=$release/mkfs-aegisfs
testimage=$release/aegisfs-testimage

die() {
    echo "$suite: $*" >&2
    exit 1
}

suite_init() {
    suite=$1
    [ "$(id -u)" = 0 ] || die "needs root (file owners are set with chown)"
    [ -x "$top/qemu/vm" ] || die "qemu/vm missing"
    [ -x "$mkfs" ] || die "$mkfs missing (make tools)"
    # The image tool is part of the workspace, so this is a no-op after `make tools`.
    (cd "$top" && cargo build --release --quiet -p aegisfs-testimage) ||
        die "building aegisfs-testimage failed"
    mkdir -p "$build/tests"
    work=$(mktemp -d "$build/tests/$suite.XXXXXX")
    # The images are large; keep the directory only when asked (AEGISFS_KEEP=1).
    [ "${AEGISFS_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
    # Exit (running the EXIT trap) when interrupted too.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cache=$build/tests/cache
    mkdir -p "$cache"
}

suite_vm() {
    local cases=$1 log=$work/vm.log status
    shift 2
    local start=$SECONDS
    set +e
    # Stream the results and the guest's "# " notes as they come; the log keeps the rest.
    local fsck=(--fsck "$suite")
    [ "${suite_fsck:-1}" = 1 ] || fsck=()
    "$top/qemu/vm" "${fsck[@]}" "$@" 2>&1 | tee "$log" | grep --line-buffered -E "^((not )?ok $suite/|# )"
    status=${PIPESTATUS[0]}
    set -e
    echo "# $suite: guest run took $((SECONDS - start)) s" >&2
    local reported
    reported=$(grep -oE "^(not )?ok $suite/[^: ]+" "$log" | sed -E 's/^(not )?ok //')
    while IFS= read -r c; do
        [ -n "$c" ] || continue
        grep -qxF "$suite/$c" <<<"$reported" ||
            echo "not ok $suite/$c: no result from the guest (qemu/vm status $status)"
    done < "$cases"
    if [ $status = 0 ]; then
        echo "ok $suite/vm"
    else
        echo "not ok $suite/vm: qemu/vm exited $status: $(grep -vE "^(not )?ok " "$log" | tail -n 3 | tr '\n' ' ')"
        cp "$log" "$build/tests/$suite.vm.log"
        echo "# $suite: full log in build/tests/$suite.vm.log" >&2
    fi
}
