#!/usr/bin/env bash
# Build and run a C and a C++ program against an installed asymbp using pkg-config alone,
# shared and static.  Usage: tests/install/run.sh PREFIX WORKDIR
set -euo pipefail
prefix=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --modversion asymbp
cc -std=c99 -Wall -Wextra -Werror "$here/smoke.c" -o "$work/smoke-c" $(pkg-config --cflags --libs asymbp)
c++ -std=c++11 -Wall -Wextra -Werror -x c++ "$here/smoke.c" -x none -o "$work/smoke-cxx" $(pkg-config --cflags --libs asymbp)
cc -std=c99 -Wall -Wextra -Werror "$here/smoke.c" -o "$work/smoke-static" \
    $(pkg-config --cflags asymbp) -Wl,-Bstatic $(pkg-config --libs-only-L asymbp) -lasymbp -Wl,-Bdynamic \
    $(pkg-config --static --libs-only-l asymbp | sed 's/-lasymbp//')
# Also the plain `pkg-config --static` line (links the shared library where both exist).
cc -std=c99 "$here/smoke.c" -o "$work/smoke-static2" $(pkg-config --cflags asymbp) $(pkg-config --static --libs asymbp)
LD_LIBRARY_PATH="$prefix/lib" "$work/smoke-c"
LD_LIBRARY_PATH="$prefix/lib" "$work/smoke-cxx"
"$work/smoke-static"
LD_LIBRARY_PATH="$prefix/lib" "$work/smoke-static2"
if ldd "$work/smoke-static" | grep -q libasymbp; then echo "static build still links libasymbp.so" >&2; exit 1; fi
echo "install test: C, C++ and static programs built with pkg-config and ran"
