#!/usr/bin/env bash
# Installs the host packages and tools AegisFS needs to build the test kernel, the module,
# the userspace tools and the guest. Idempotent: every step is skipped when already done.
set -euo pipefail

. /etc/os-release
codename=${VERSION_CODENAME:?unknown Debian release}
sources=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/aegisfs-backports.sources
pin=/etc/apt/preferences.d/aegisfs-backports

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

need_update=0
if [ ! -f "$extra" ]; then
    # Reuse the mirror this machine already trusts for its own release.
    uri=$(awk -v c="$codename" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==c){print u; exit}}' "$sources")
    [ -n "$uri" ] || { echo "setup: no Debian source for $codename in $sources" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: %s-backports trixie-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" "$codename" | $SUDO tee "$extra" >/dev/null
    # The newer suite only provides the kernel source; never let it upgrade anything else.
    printf 'Package: *\nPin: release a=trixie-backports\nPin-Priority: 50\n' | $SUDO tee "$pin" >/dev/null
    need_update=1
fi

packages=(build-essential flex bison bc libelf-dev libssl-dev cpio kmod busybox-static xz-utils
    clang-19 libclang-19-dev llvm-19 lld-19 rustc-web rust-web-src debootstrap e2fsprogs
    python3 rsync gnuplot-nox groff-base man-db)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
qemu_missing=0
dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed' || qemu_missing=1

if [ ${#missing[@]} -gt 0 ] || [ $qemu_missing = 1 ]; then
    if [ $need_update = 1 ] || [ ! -f /var/lib/apt/periodic/aegisfs-updated ]; then
        $SUDO apt-get update -qq
        $SUDO mkdir -p /var/lib/apt/periodic && $SUDO touch /var/lib/apt/periodic/aegisfs-updated
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ ${#missing[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # qemu-utils on these machines comes from backports; qemu-system must match it.
    [ $qemu_missing = 0 ] || $SUDO apt-get install -y -qq --no-install-recommends \
        -t "$codename-backports" qemu-system-x86 qemu-utils
fi

bindgen_version=0.71.1
if ! bindgen --version 2>/dev/null | grep -q "$bindgen_version" &&
   ! "$HOME/.cargo/bin/bindgen" --version 2>/dev/null | grep -q "$bindgen_version"; then
    LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked --quiet "bindgen-cli@$bindgen_version"
fi
