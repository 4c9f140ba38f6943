#!/bin/sh
# Installs the Debian packages one kind of asymbp work needs.  As root it installs what is missing;
# otherwise it prints the exact command to run.  Safe to run again (only missing packages count).
#
#   sh scripts/install-deps.sh [--check] [SET...]      (default SET: test)
#
#   build      compile the library and the tool: C compiler, pkg-config, OpenBLAS, zlib
#   test       build + Check and a C++ compiler (`make check`; the headers compile as C++)
#   ci         test + what .ci/run uses: the reference CBLAS, valgrind, libabigail, clang, CMake,
#              Doxygen
#   packaging  test + the Debian package build and its install test: debhelper, lintian,
#              fakeroot, the generic BLAS, CMake
#   results    gnuplot and python3, for docs/results.md and its plots (scripts/report.py)
#   mpi        test + Open MPI (mpirun and the headers), for `make MPI=1` (the MPI communicator
#              module) and `make check-mpi`; the library and the tool never need it
#   docs       Doxygen, for `make docs` (the HTML API reference from the public headers)
#
# --check only reports: exits 1 (with the apt-get line) when something is missing, never installs.
# Only `make check`, `make demo` and .ci/run call this script; `make` and `make install` never do.
set -eu
check_only=0
sets=""
for a in "$@"; do
    case $a in
    --check) check_only=1 ;;
    build | test | ci | packaging | results | mpi | docs) sets="$sets $a" ;;
    -h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown set '$a' (build, test, ci, packaging, results, mpi, docs)" >&2; exit 2 ;;
    esac
done
[ -n "$sets" ] || sets=test

BUILD="make gcc pkg-config libopenblas-dev zlib1g-dev"
TEST="$BUILD check g++"
CI="$TEST libblas-dev valgrind abigail-tools clang cmake doxygen"
PACKAGING="$TEST libblas-dev dpkg-dev debhelper lintian fakeroot cmake"
RESULTS="gnuplot-nox python3"
MPI="$TEST openmpi-bin libopenmpi-dev"
DOCS="doxygen"
pkgs=""
for s in $sets; do
    case $s in
    build) pkgs="$pkgs $BUILD" ;;
    test) pkgs="$pkgs $TEST" ;;
    ci) pkgs="$pkgs $CI" ;;
    packaging) pkgs="$pkgs $PACKAGING" ;;
    results) pkgs="$pkgs $RESULTS" ;;
    mpi) pkgs="$pkgs $MPI" ;;
    docs) pkgs="$pkgs $DOCS" ;;
    esac
done

missing=""
for p in $pkgs; do
    case " $missing " in *" $p "*) continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps:$sets: all packages present"
    exit 0
fi
if [ "$check_only" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then
    echo "install-deps:$sets: missing Debian packages:$missing" >&2
    echo "install-deps: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "install-deps:$sets: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
