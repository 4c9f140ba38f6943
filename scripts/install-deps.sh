#!/bin/sh
# Installs the Debian packages asymbp's build, tests and tools need.  As root it installs them;
# otherwise it prints the exact command to run.  Safe to run again (apt-get skips what is there).
set -eu
PKGS="make gcc g++ pkg-config libopenblas-dev libblas-dev check zlib1g-dev valgrind abigail-tools gnuplot-nox"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present ($PKGS)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages:$missing" >&2
    echo "install-deps: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
