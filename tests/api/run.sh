#!/usr/bin/env bash
# Build every tests/api/*.c against an installed asymbp with pkg-config alone (no -I or -L of the
# source tree) and run it; each program exits non-zero when the API does not hold what it checks.
# Usage: tests/api/run.sh PREFIX WORKDIR [NAME...]   (NAMEs: run only these programs)
set -uo pipefail
prefix=$1
work=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cflags=$(pkg-config --cflags asymbp) || exit 1
libs=$(pkg-config --libs asymbp) || exit 1
if [ $# -gt 0 ]; then srcs=(); for n in "$@"; do srcs+=("$here/$n.c"); done; else srcs=("$here"/*.c); fi
failed=0
for src in "${srcs[@]}"; do
    name=$(basename "$src" .c)
    # the programs are C99 users of <asymbp/asymbp.h>; they link -lm for their own maths
    if ! ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -D_POSIX_C_SOURCE=200809L "$src" \
            -o "$work/$name" $cflags $libs -lm; then
        echo "FAIL $name: does not build"
        failed=$((failed + 1))
        continue
    fi
    if (cd "$work" && LD_LIBRARY_PATH="$prefix/lib" OPENBLAS_NUM_THREADS=1 "./$name"); then
        echo "ok   $name"
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
done
if [ $failed -ne 0 ]; then echo "check-api: $failed of ${#srcs[@]} programs failed"; exit 1; fi
echo "check-api: ${#srcs[@]} programs built with pkg-config against $prefix and passed"
