#!/usr/bin/env bash
# Fetches Debian's linux-source package and builds the AegisFS test kernel into build/.
# Skips everything that is already up to date.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
src=$build/linux-src
obj=$build/linux-obj
fragment=$top/qemu/kernel.config
preferred=${KERNEL_SERIES:-7.3}
mkdir -p "$build/dl"

if [ ! -f "$src/Makefile" ]; then
    # Prefer the series the project is tested with, else the newest 7.x available.
    pkg=linux-source-$preferred
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        pkg=$(apt-cache pkgnames linux-source-7. | sort -V | tail -n 1)
        [ -n "$pkg" ] || { echo "build-kernel: no linux-source-7.* package available" >&2; exit 1; }
        echo "build-kernel: $preferred is gone from the archive, using $pkg" >&2
    fi
    echo "build-kernel: kernel source from Debian package $pkg"
    (cd "$build/dl" && rm -f linux-source-*.deb && apt-get download -q "$pkg")
    rm -rf "$build/dl/unpacked" "$src.tmp"
    dpkg-deb -x "$build/dl"/linux-source-*.deb "$build/dl/unpacked"
    mkdir -p "$src.tmp"
    tar -xf "$build/dl"/unpacked/usr/src/linux-source-*.tar.xz -C "$src.tmp" --strip-components=1
    rm -rf "$build/dl/unpacked" "$src"
    mv "$src.tmp" "$src"
fi

. "$top/qemu/toolchain.env"
kmake=(make -C "$src" O="$obj" "${KERNEL_MAKE_VARS[@]}")

stamp=$obj/.aegisfs-config-stamp
want=$(cat "$fragment" "$0" | sha256sum | cut -d' ' -f1)
if [ ! -f "$obj/.config" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$obj"
    "${kmake[@]}" -s tinyconfig
    "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment" >/dev/null
    "${kmake[@]}" -s olddefconfig
    # merge_config.sh only warns; a dropped option would silently weaken the tests.
    missing=0
    while IFS= read -r line; do
        case "$line" in CONFIG_*=[ym]) grep -qx "$line" "$obj/.config" || { echo "build-kernel: $line did not stick" >&2; missing=1; } ;; esac
    done < "$fragment"
    [ $missing = 0 ] || exit 1
    echo "$want" > "$stamp"
fi

if [ ! -f "$obj/arch/x86/boot/bzImage" ] || [ "$stamp" -nt "$obj/arch/x86/boot/bzImage" ]; then
    echo "build-kernel: building bzImage and modules (several minutes on 2 cores)"
    "${kmake[@]}" -s -j"$(($(nproc) + 1))" bzImage modules
    touch "$obj/arch/x86/boot/bzImage"
fi
