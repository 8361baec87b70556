# Sourced by the guest halves of the suites after they set $suite: the result lines the host
# counts, and the python checker next to this file.
check() { python3 "$(dirname "${BASH_SOURCE[0]}")/check.py" "$@"; }
ok() { echo "ok $suite/$1"; }
fail() { echo "not ok $suite/$1: $2"; }
