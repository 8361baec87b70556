#!/usr/bin/env bash
# Static checks that need no guest: formatting, clippy, and the kernel code's rules (no
# unwrap/expect, a SAFETY comment for every unsafe block, unsafe only in rust/vfs/).
# Prints one `ok lint/<case>` or `not ok lint/<case>: <reason>` line per check.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1

ok() { echo "ok lint/$1"; }
not_ok() { echo "not ok lint/$1: $2"; }

if out=$(cargo fmt --all --check 2>&1); then ok rustfmt
else not_ok rustfmt "cargo fmt --all --check: $(head -n 3 <<<"$out" | tr '\n' ' ')"; fi

if out=$(cargo clippy --quiet --workspace --all-targets -- -D warnings 2>&1); then ok clippy
else not_ok clippy "$(grep -m 3 -E '^(error|warning)' <<<"$out" | tr '\n' ' ')"; fi

# Kernel code follows the kernel's own rustfmt configuration when the source tree is there.
kconf=${BUILD:-$top/build}/linux-src/.rustfmt.toml
if [ -f "$kconf" ]; then
    mapfile -t kfiles < <(git ls-files 'rust/*.rs')
    if out=$(rustfmt --edition 2021 --config-path "$kconf" --check "${kfiles[@]}" 2>&1); then
        ok kernel-rustfmt
    else
        not_ok kernel-rustfmt "$(grep -m 2 '^Diff in' <<<"$out" | tr '\n' ' ')"
    fi
fi

# A corrupt image must give an error, never a panic.
hits=$(git grep -nE '\.(unwrap|expect)\(' -- 'rust/*.rs' 'format/src/*.rs' ':!format/src/*tests*.rs' |
    grep -vE '^\S+:\s*//' | grep -v '#\[cfg(test)\]' || true)
# The format crate's own unit tests may unwrap; they sit after `#[cfg(test)]` in each file.
hits=$(while IFS=: read -r file line _; do
    [ -n "$file" ] || continue
    first_test=$(grep -n '#\[cfg(test)\]' "$file" | head -n 1 | cut -d: -f1)
    if [ -z "$first_test" ] || [ "$line" -lt "$first_test" ]; then echo "$file:$line"; fi
done <<<"$hits")
if [ -z "$hits" ]; then ok no-unwrap-in-kernel-code
else not_ok no-unwrap-in-kernel-code "$(head -n 3 <<<"$hits" | tr '\n' ' ')"; fi

outside=$(git grep -lE '\bunsafe\s*(\{|fn\b|impl\b|extern\b)' -- 'rust/*.rs' ':!rust/vfs/' || true)
if [ -z "$outside" ]; then ok unsafe-only-in-vfs
else not_ok unsafe-only-in-vfs "unsafe outside rust/vfs/: $(tr '\n' ' ' <<<"$outside")"; fi

blocks=$(git grep -hcE '\bunsafe\s*\{' -- 'rust/*.rs' | paste -sd+ | bc)
safety=$(git grep -hc 'SAFETY:' -- 'rust/*.rs' | paste -sd+ | bc)
if [ "${safety:-0}" -ge "${blocks:-0}" ]; then ok safety-comments
else not_ok safety-comments "$blocks unsafe blocks but $safety SAFETY comments"; fi
exit 0
