#!/usr/bin/env bash
# Configures and builds tests/install/cmake (C, C++ and static programs found through
# find_package(asymbp CONFIG)) and runs them; then again with ASYMBP_USE_STATIC_LIBS=ON.
# Usage: tests/install/cmake.sh PREFIX_PATH WORKDIR
#   PREFIX_PATH: the install prefix for CMAKE_PREFIX_PATH ("" = the system folders only).
set -euo pipefail
prefix_path=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^#define ASYMBP_VERSION_STRING "\(.*\)"/\1/p' "$here/../../include/asymbp/version.h")
mkdir -p "$work"
linked() { ldd "$1" | grep -c 'libasymbp\.so' || true; }
for static in OFF ON; do
    b="$work/cmake-build-$static"
    cmake -S "$here/cmake" -B "$b" -DCMAKE_BUILD_TYPE=Release ${prefix_path:+-DCMAKE_PREFIX_PATH="$prefix_path"} \
        -DASYMBP_EXPECT_VERSION="$version" -DASYMBP_USE_STATIC_LIBS="$static" >"$work/cmake-$static.log" ||
        { cat "$work/cmake-$static.log"; exit 1; }
    cmake --build "$b" -j 2 >>"$work/cmake-$static.log" || { cat "$work/cmake-$static.log"; exit 1; }
    for p in smoke_c smoke_cxx smoke_static; do "$b/$p" >/dev/null; done
    # asymbp::static never links the shared library; asymbp::asymbp follows ASYMBP_USE_STATIC_LIBS.
    [ "$(linked "$b/smoke_static")" = 0 ] || { echo "asymbp::static links libasymbp.so" >&2; exit 1; }
    want=1; [ "$static" = ON ] && want=0
    for p in smoke_c smoke_cxx; do
        [ "$(linked "$b/$p")" = "$want" ] || { echo "$p (ASYMBP_USE_STATIC_LIBS=$static): libasymbp.so linked $(linked "$b/$p") times, expected $want" >&2; exit 1; }
    done
done
echo "cmake test: find_package(asymbp $version CONFIG) from ${prefix_path:-the system}: C, C++ and static programs built and ran"
