#!/usr/bin/env bash
# install: `make install` and `make uninstall` into a staging directory (DESTDIR), what
# they install (module, tools, man pages), the module's modinfo fields, the man pages
# rendering without a warning, dkms.conf building the module from a copy of the source
# tree as DKMS does; then a guest gets the staged tree in its root, runs depmod, and
# `mount -t aegisfs` must load the module by its alias, `mkfs -t aegisfs` and
# `fsck -t aegisfs` must find the installed tools, `modinfo aegisfs` must find the module.
set -euo pipefail
. "$(dirname "$0")/common.bash"
suite_init install

ok() { echo "ok install/$1"; }
notok() { echo "not ok install/$1: $2"; }
check() { # NAME COMMAND...: ok when COMMAND succeeds, else not ok with its last lines
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else notok "$name" "$(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}

kdir=$build/linux-obj
modout=$build/module
stage=$work/stage
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -n 1)
release=$(cat "$kdir/include/config/kernel.release")
installed=(
    "lib/modules/$release/extra/aegisfs.ko"
    usr/local/sbin/mkfs.aegisfs
    usr/local/sbin/fsck.aegisfs
    usr/local/sbin/aegisfs-inspect
    usr/local/share/man/man8/mkfs.aegisfs.8
    usr/local/share/man/man8/fsck.aegisfs.8
    usr/local/share/man/man8/aegisfs-inspect.8
    usr/local/share/man/man5/aegisfs.5
)

make_install() {
    make -s -C "$top" install DESTDIR="$stage" KDIR="$kdir" MODOUT="$modout" >/dev/null
    local want got
    want=$(printf '%s\n' "${installed[@]}" | sort)
    got=$(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
    [ "$got" = "$want" ] || { echo "installed: $got"; echo "expected: $want"; return 1; }
}
check make-install make_install

modinfo_fields() {
    local ko=$stage/lib/modules/$release/extra/aegisfs.ko field want got
    for field in "version=$version" "alias=fs-aegisfs" "license=GPL" \
        "description=AegisFS journaled filesystem" "author=AegisFS developers"; do
        want=${field#*=}
        got=$(modinfo -F "${field%%=*}" "$ko")
        [ "$got" = "$want" ] || { echo "modinfo ${field%%=*}: '$got', expected '$want'"; return 1; }
    done
    modinfo -F parm "$ko" | grep -q '^commit_interval:.*(u32)$' ||
        { echo "modinfo parm: $(modinfo -F parm "$ko")"; return 1; }
}
check modinfo modinfo_fields

man_pages() {
    local page out
    for page in "$stage"/usr/local/share/man/man*/*; do
        grep -q "^\.TH .* \"AegisFS $version\"" "$page" ||
            { echo "$page: .TH does not name AegisFS $version"; return 1; }
        # -ww: every groff warning; -z: no output, only the diagnostics.
        out=$(LC_ALL=C.UTF-8 groff -t -man -ww -z -Tutf8 "$page" 2>&1)
        [ -z "$out" ] || { echo "$page: $out"; return 1; }
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>&1)
        grep -q "^NAME" <<<"$out" && grep -q "^SEE ALSO" <<<"$out" ||
            { echo "$page: no NAME or SEE ALSO section in man's rendering"; return 1; }
    done
}
check man-pages man_pages

tool_help() {
    local tool
    for tool in mkfs.aegisfs fsck.aegisfs aegisfs-inspect; do
        "$stage/usr/local/sbin/$tool" --help | grep -q "^Usage: $tool" ||
            { echo "$tool --help has no usage line"; return 1; }
        [ "$("$stage/usr/local/sbin/$tool" -V)" = "$tool $version" ] ||
            { echo "$tool -V: $("$stage/usr/local/sbin/$tool" -V)"; return 1; }
    done
}
check tool-help tool_help

# What DKMS does: copy the source tree, source dkms.conf with its variables set, run its
# MAKE in the copy, and take the module from BUILT_MODULE_LOCATION.
dkms_build() {
    local src=$work/dkms-src
    mkdir -p "$src"
    (cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$src")
    local kernel_source_dir=$kdir kernelver=$release
    local PACKAGE_NAME PACKAGE_VERSION BUILT_MODULE_NAME BUILT_MODULE_LOCATION \
        DEST_MODULE_LOCATION MAKE CLEAN AUTOINSTALL BUILD_EXCLUSIVE_CONFIG
    # shellcheck disable=SC1091
    . "$src/dkms.conf"
    [ "$PACKAGE_NAME" = aegisfs ] || { echo "PACKAGE_NAME $PACKAGE_NAME"; return 1; }
    [ "$PACKAGE_VERSION" = "$version" ] ||
        { echo "dkms.conf version $PACKAGE_VERSION, Cargo.toml $version"; return 1; }
    grep -qx "CONFIG_RUST=y" "$kdir/.config" || { echo "the test kernel has no CONFIG_RUST"; return 1; }
    (cd "$src" && eval "${MAKE[0]}") >"$work/dkms.log" 2>&1 || { tail -n 5 "$work/dkms.log"; return 1; }
    local ko=$src/${BUILT_MODULE_LOCATION[0]}${BUILT_MODULE_NAME[0]}.ko
    [ "$(modinfo -F version "$ko")" = "$version" ] || { echo "$ko: no module of version $version"; return 1; }
    [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$release" ] ||
        { echo "$ko: built for $(modinfo -F vermagic "$ko")"; return 1; }
}
check dkms-build dkms_build

# The guest installs the staged tree into its root and uses it as a user would.
cases=$work/cases
printf '%s\n' copy depmod mkfs-t mount-autoload write-read fsck-t inspect modinfo-by-name modprobe-r \
    commit-parameter > "$cases"
suite_fsck=0 suite_vm "$cases" -- --disk 256M --share "$stage" --timeout 300 -- \
    "$top/tests/guest/install.sh" "$release" "$version"

make_uninstall() {
    make -s -C "$top" uninstall DESTDIR="$stage" KDIR="$kdir" >/dev/null
    local left
    left=$(cd "$stage" && find . -type f)
    [ -z "$left" ] || { echo "left after uninstall: $left"; return 1; }
}
check make-uninstall make_uninstall
