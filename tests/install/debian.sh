#!/usr/bin/env bash
# `make check-deb`: builds the Debian packages from a copy of this tree (dpkg-buildpackage -us -uc
# -b, the package's own test run included unless DEB_BUILD_OPTIONS has nocheck), runs lintian
# (fails on errors, prints the rest), checks what each package holds, installs the .debs on this
# machine, builds and runs consumers with pkg-config and with CMake against the installed
# packages, runs the installed tool, then purges the packages and checks nothing is left.
# Needs root (it installs packages); `sh scripts/install-deps.sh packaging` installs the tools.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
pkgs="libasymbp0 libasymbp-dev asymbp-tools asymbp-data"
fail() { echo "check-deb: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root: it installs the built packages (run it in a throw-away machine or container)"
for t in dpkg-buildpackage lintian cmake; do
    command -v "$t" >/dev/null || fail "$t is missing; 'sh scripts/install-deps.sh packaging' (as root) installs it"
done
for p in $pkgs; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        fail "$p is already installed; this test installs and then purges the packages, so remove it first"
    fi
done
version=$(sed -n 's/^#define ASYMBP_VERSION_STRING "\(.*\)"/\1/p' include/asymbp/version.h)
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ "${deb_version%%[-~+]*}" = "$version" ] ||
    fail "debian/changelog is at $deb_version but include/asymbp/version.h at $version: add a changelog entry"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/asymbp-deb-XXXXXX")
installed=0
cleanup() {
    if [ "$installed" = 1 ]; then dpkg --purge $pkgs >/dev/null 2>&1 || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0))s"; }

echo "--- build: dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS='${DEB_BUILD_OPTIONS:-}')"
src=$scratch/asymbp-$version
mkdir -p "$src"
tar -cf - --exclude=./.git --exclude='./build*' --exclude=./lib --exclude=./bin --exclude=./results \
    --exclude=./runs --exclude=./data/fetched --exclude=./asymbp.pc \
    --exclude='./debian/.debhelper' --exclude='./debian/tmp' --exclude='./debian/files' . | tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$scratch/build.log" 2>&1 ||
    { tail -n 60 "$scratch/build.log"; fail "dpkg-buildpackage failed (the last 60 lines above)"; }
grep -E '^[0-9]+%: Checks:' "$scratch/build.log" || echo "(the package build ran no tests)"
if grep -q 'warning:' "$scratch/build.log"; then
    echo "compiler warnings under Debian's build flags:"; grep 'warning:' "$scratch/build.log" | sort -u
fi
grep -q -- '-O3' "$scratch/build.log" && grep -q -- '-D_FORTIFY_SOURCE' "$scratch/build.log" ||
    fail "the package build did not use dpkg-buildflags' CPPFLAGS and the appended -O3"
ls "$scratch"/*.deb | sed 's|.*/|built |'
echo "build: $(elapsed)"

echo "--- lintian"
changes=$(ls "$scratch"/asymbp_*.changes)
lintian --fail-on error --display-info "$changes" 2> >(grep -v 'root privileges' >&2) | tee "$scratch/lintian.txt" || { fail "lintian reports errors"; }
echo "lintian: $(grep -c '^E:' "$scratch/lintian.txt" || true) errors, $(grep -c '^W:' "$scratch/lintian.txt" || true) warnings, $(grep -c '^I:' "$scratch/lintian.txt" || true) info ($(elapsed))"

echo "--- contents"
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
has() { # has PACKAGE PATH...: each PATH is in the package
    local deb list p
    deb=$(ls "$scratch/$1"_*.deb)
    list=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|; s|/$||')
    shift
    for p in "$@"; do grep -qx "$p" <<<"$list" || fail "$(basename "$deb") lacks $p"; done
}
has libasymbp0 "/usr/lib/$arch/libasymbp.so.$version" "/usr/lib/$arch/libasymbp.so.${version%%.*}"
has libasymbp-dev /usr/include/asymbp/asymbp.h "/usr/lib/$arch/libasymbp.a" "/usr/lib/$arch/libasymbp.so" \
    "/usr/lib/$arch/pkgconfig/asymbp.pc" "/usr/lib/$arch/cmake/asymbp/asymbpConfig.cmake" \
    "/usr/lib/$arch/cmake/asymbp/asymbpConfigVersion.cmake"
has asymbp-tools /usr/bin/asymbp
has asymbp-data /usr/share/asymbp/data/digits8x8/train-images-idx3-ubyte.gz /usr/share/asymbp/data/wine/train.csv
dpkg-deb -c "$(ls "$scratch"/libasymbp-dev_*.deb)" | awk '{ print $6 }' | grep -q 'libasymbp\.so\.' &&
    fail "libasymbp-dev holds the versioned library (it belongs to libasymbp0)"
dpkg-deb -I "$(ls "$scratch"/libasymbp0_*.deb)" | sed -n 's/^ Depends: /libasymbp0 depends on: /p'
dpkg-deb -I "$(ls "$scratch"/asymbp-tools_*.deb)" | sed -n 's/^ Depends: /asymbp-tools depends on: /p'

echo "--- install the packages"
installed=1
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 \
    "$scratch"/libasymbp0_*.deb "$scratch"/libasymbp-dev_*.deb "$scratch"/asymbp-tools_*.deb \
    "$scratch"/asymbp-data_*.deb >"$scratch/apt.log" 2>&1 || { cat "$scratch/apt.log"; fail "apt-get install failed"; }
[ "$(pkg-config --modversion asymbp)" = "$version" ] || fail "pkg-config sees asymbp $(pkg-config --modversion asymbp)"
cflags=$(pkg-config --cflags asymbp)
[ -z "$(echo $cflags)" ] || fail "pkg-config --cflags asymbp gives '$cflags' (the headers are in /usr/include)"

echo "--- consumers: pkg-config and CMake against the installed packages"
(cd "$scratch" && env -u PKG_CONFIG_PATH bash "$top/tests/install/run.sh" /usr "$scratch/work-pc")
(cd "$scratch" && bash "$top/tests/install/cmake.sh" "" "$scratch/work-cmake")

echo "--- the installed tool finds its data"
mkdir -p "$scratch/run" && cd "$scratch/run"
line=$(env -u ASYMBP_DATA_DIR /usr/bin/asymbp train --data wine --epochs 2 --quiet | tail -n 1)
grep -q '"test_accuracy"' <<<"$line" || fail "asymbp train printed no summary: $line"
echo "asymbp train --data wine: $line" | cut -c1-160
cd "$top"

echo "--- purge"
dpkg --purge $pkgs >/dev/null
installed=0
for p in /usr/include/asymbp "/usr/lib/$arch/cmake/asymbp" /usr/share/asymbp /usr/bin/asymbp "/usr/lib/$arch/libasymbp.so.0"; do
    [ ! -e "$p" ] || fail "$p is still there after purging the packages"
done
echo "check-deb: packages built, lint-clean (no errors), installed, used with pkg-config and CMake, purged ($(elapsed))"
