#!/usr/bin/env bash
# `make check-install`: installs asymbp the ways a user would and checks each result.
#  1. `make`, `make install` and every other target except `make check` and `make demo` never
#     run scripts/install-deps.sh;
#  2. CPPFLAGS, CFLAGS, CXXFLAGS and LDFLAGS reach every compile and link command;
#  3. an install into a fresh PREFIX serves pkg-config (run.sh) and CMake (cmake.sh) consumers,
#     and `pkg-config --cflags asymbp` names asymbp's include folder only;
#  4. a second install with another PREFIX regenerates asymbp.pc and the CMake files;
#  5. a staged install (DESTDIR) is found by CMake through CMAKE_PREFIX_PATH;
#  6. `make uninstall` removes exactly what `make install` wrote, and the folders it created; a
#     tool installed with its own DATADIR finds the bundled data there.
# Everything happens under one mktemp folder, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
make=${MAKE:-make}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/asymbp-install-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
log=$scratch/installed-dirs
fail() { echo "check-install: $*" >&2; exit 1; }
mk() { "$make" --no-print-directory INSTALL_DIRS_LOG="$log" "$@"; }

echo "--- 1. only make check and make demo may install packages"
runs_script='(^|[|&;] *)sh scripts/install-deps\.sh'   # a call, not a hint naming the script
for t in all lib install uninstall examples examples-check check-asan check-tsan check-valgrind bench fuzz \
         abi-check check-install check-reproducible docs check-oom check-crash check-api check-mpi results reproduce-quick; do
    out=$(mk -n -B "$t" PREFIX="$scratch/dry" 2>&1) || true
    if grep -Eq "$runs_script" <<<"$out"; then
        fail "'make $t' would run scripts/install-deps.sh"
    fi
done
for t in check demo; do   # the control: the grep above does see the script where it is called
    out=$(mk -n "$t" 2>&1) || true
    grep -Eq "$runs_script" <<<"$out" || fail "'make $t' no longer calls scripts/install-deps.sh"
done

echo "--- 2. CPPFLAGS, CFLAGS, CXXFLAGS and LDFLAGS reach every compile and link command"
dry=$(mk -n -B all check-run examples OBJDIR="$scratch/obj" LIBOUT="$scratch/obj/lib" BINOUT="$scratch/obj/bin" \
      CC=gcc CXX=g++ CPPFLAGS=-DPROBE_CPPFLAGS CFLAGS="-O2 -DPROBE_CFLAGS" CXXFLAGS="-O2 -DPROBE_CXXFLAGS" \
      LDFLAGS=-Wl,--probe-ldflags 2>&1)
n=0
while IFS= read -r line; do
    case $line in gcc\ * | g++\ *) ;; *) continue ;; esac
    n=$((n + 1))
    if [[ $line =~ \.(c|cpp)( |$) ]]; then     # compiles a source file
        [[ $line == *-DPROBE_CPPFLAGS* ]] || fail "no CPPFLAGS in: $line"
        if [[ $line == g++* ]]; then [[ $line == *-DPROBE_CXXFLAGS* ]] || fail "no CXXFLAGS in: $line"
        else [[ $line == *-DPROBE_CFLAGS* ]] || fail "no CFLAGS in: $line"; fi
    fi
    if [[ $line != *" -c "* && $line != *-fsyntax-only* && $line == *" -o "* ]]; then   # links
        [[ $line == *-Wl,--probe-ldflags* ]] || fail "no LDFLAGS in: $line"
    fi
done <<<"$dry"
[ "$n" -ge 30 ] || fail "only $n compiler commands seen in 'make -n' (expected the library, tool, tests and examples)"
grep -q 'PROBE_CPPFLAGS.*hdr.c' <<<"$dry" || fail "headers-check ignores CPPFLAGS"
echo "$n compiler commands carry the user's flags"

echo "--- 3. install into a fresh PREFIX: pkg-config and CMake consumers"
p1=$scratch/prefix1
mk install PREFIX="$p1" >/dev/null
cflags=$(PKG_CONFIG_PATH="$p1/lib/pkgconfig" pkg-config --cflags asymbp)
[ "$(echo $cflags)" = "-I$p1/include" ] || fail "pkg-config --cflags asymbp gives '$cflags', expected -I$p1/include only"
bash tests/install/run.sh "$p1" "$scratch/work-pc"
bash tests/install/cmake.sh "$p1" "$scratch/work-cmake"

echo "--- 4. a second install with another PREFIX regenerates asymbp.pc and the CMake files"
p2=$scratch/prefix2
mk install PREFIX="$p2" >/dev/null
grep -qx "prefix=$p2" "$p2/lib/pkgconfig/asymbp.pc" || fail "stale asymbp.pc installed into $p2"
grep -q "$p1" "$p2/lib/pkgconfig/asymbp.pc" && fail "asymbp.pc in $p2 still names $p1"
[ "$(PKG_CONFIG_PATH="$p2/lib/pkgconfig" pkg-config --variable=includedir asymbp)" = "$p2/include" ] ||
    fail "asymbp.pc in $p2 has the wrong includedir"
mk install PREFIX="$p2" LIBDIR="$p2/lib64" >/dev/null
grep -qx "libdir=$p2/lib64" "$p2/lib64/pkgconfig/asymbp.pc" || fail "LIBDIR change did not regenerate asymbp.pc"
grep -q '"${CMAKE_CURRENT_LIST_DIR}/../.."' "$p2/lib64/cmake/asymbp/asymbpConfig.cmake" ||
    fail "LIBDIR change did not regenerate asymbpConfig.cmake"
mk uninstall PREFIX="$p2" LIBDIR="$p2/lib64" >/dev/null
mk uninstall PREFIX="$p2" >/dev/null
[ ! -e "$p2" ] || { find "$p2"; fail "uninstall left files or folders in $p2"; }

echo "--- 5. a staged install (DESTDIR) is found by CMake"
stage=$scratch/stage
mk install DESTDIR="$stage" PREFIX=/opt/asymbp LIBDIR=/opt/asymbp/lib/x86_64-linux-gnu >/dev/null
bash tests/install/cmake.sh "$stage/opt/asymbp" "$scratch/work-stage"
mk uninstall DESTDIR="$stage" PREFIX=/opt/asymbp LIBDIR=/opt/asymbp/lib/x86_64-linux-gnu >/dev/null
[ ! -e "$stage" ] || { find "$stage"; fail "uninstall left files or folders in $stage"; }

echo "--- 6. uninstall removes exactly what install wrote"
mk uninstall PREFIX="$p1" >/dev/null
[ ! -e "$p1" ] || { find "$p1"; fail "uninstall left files or folders in $p1"; }
# A prefix with other software in it, and a DATADIR that holds a file of the user's.
pre=$scratch/existing
mkdir -p "$pre/lib" "$pre/bin" "$pre/shared-data"
echo other >"$pre/lib/libother.so"
echo mine >"$pre/shared-data/notes.txt"
mk install PREFIX="$pre" DATADIR="$pre/shared-data" >/dev/null
[ -f "$pre/shared-data/wine/train.csv" ] && [ -f "$pre/lib/cmake/asymbp/asymbpConfig.cmake" ] || fail "install incomplete"
# the installed tool finds the bundled data in that DATADIR on its own (no ASYMBP_DATA_DIR)
out=$(cd "$scratch" && env -u ASYMBP_DATA_DIR "$pre/bin/asymbp" train --data wine --epochs 1 --quiet) ||
    fail "the tool installed with DATADIR=$pre/shared-data does not find its data"
case $out in *'"data":"wine"'*) ;; *) fail "unexpected output of the installed tool: $out" ;; esac
mk uninstall PREFIX="$pre" DATADIR="$pre/shared-data" >/dev/null
left=$(cd "$pre" && find . | sort | tr '\n' ' ')
[ "$left" = ". ./bin ./lib ./lib/libother.so ./shared-data ./shared-data/notes.txt " ] ||
    fail "after uninstall $pre holds: $left (expected only what was there before)"
echo "check-install: all install checks passed"
