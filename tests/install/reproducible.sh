#!/usr/bin/env bash
# Reproducible builds: builds the given files (make targets, e.g. lib/libasymbp.a) in two copies
# of the source tree at different paths and depths, and fails unless each pair is identical.
# Usage: tests/install/reproducible.sh FILE...      (run by `make check-reproducible`)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
cd "$(dirname "$0")/../.."
make=${MAKE:-make}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/asymbp-repro-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
a=$scratch/a
b=$scratch/elsewhere/deeper/tree-b
for d in "$a" "$b"; do
    mkdir -p "$d"
    cp -R Makefile include src tools "$d"/
    "$make" --no-print-directory -C "$d" -j2 "$@" >"$d.log" 2>&1 || { cat "$d.log"; exit 1; }
done
status=0
for f in "$@"; do
    if cmp -s "$a/$f" "$b/$f"; then
        echo "reproducible: $f identical ($(wc -c <"$a/$f") bytes)"
    else
        echo "reproducible: $f differs between $a and $b" >&2
        status=1
    fi
    if grep -aq "$scratch" "$a/$f"; then echo "reproducible: $f names its build folder" >&2; status=1; fi
done
exit $status
