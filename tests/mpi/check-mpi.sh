#!/usr/bin/env bash
# make check-mpi: data-parallel training on MPI ranks of this machine (docs/distributed.md).
#   1. the MPI module in a host program (tests/mpi/dist_mpi.c) on 2 and 3 ranks;
#   2. the tool, exact mode: 2 ranks end with the same weights (every rank's fingerprint) and one
#      process's test accuracy on the same global batch, within 0.5 points;
#   3. the tool, vote mode: digits8x8 with uSF + BN reaches >= 0.95 on 2 and on 4 ranks;
#   4. a rank killed mid-run: the others stop within seconds with a message, and --resume on 2
#      ranks finishes the run exactly as an uninterrupted one (on 3 ranks: it finishes, the ranks
#      agree);
#   5. what the tool says without the module, under mpirun without --dist, and for vote with sgd.
#   6. a staged installation with MPI=1: a program built with pkg-config asymbp-mpi, and the
#      installed tool finding the installed module.
# Usage: check-mpi.sh BIN/asymbp BUILD/tests/dist-mpi LIBDIR SRCDIR
set -euo pipefail
cli=$1
host_test=$2
libdir=$3
srcdir=${4:-}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1
mpirun=(mpirun --oversubscribe)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

fail() { echo "check-mpi: FAIL: $*" >&2; exit 1; }
step() { printf '\ncheck-mpi: %s (%ds)\n' "$*" $(( $(date +%s) - start )); }
# a number or a string of the JSON summary (the tool's last line of output)
jnum() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" "$2" | tail -1; }
jstr() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$2" | tail -1; }
# every rank's weight fingerprint is the same
ranks_agree() {
    local list n
    list=$(sed -n 's/.*"rank_weights":\[\([^]]*\)\].*/\1/p' "$1" | tr ',' '\n')
    n=$(printf '%s\n' "$list" | grep -c .)
    [ "$n" = "$2" ] || fail "$1: $n fingerprints for $2 ranks"
    [ "$(printf '%s\n' "$list" | sort -u | wc -l)" = 1 ] || fail "$1: the ranks hold different weights: $list"
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

step "1. the MPI module in a host program, 2 and 3 ranks"
"${mpirun[@]}" -np 2 "$host_test" || fail "dist-mpi on 2 ranks"
"${mpirun[@]}" -np 3 "$host_test" || fail "dist-mpi on 3 ranks"

step "2. exact mode, 2 ranks against 1 process (digits8x8, uSF, Batch Manhattan, batch 100)"
common=(--data digits8x8 --feedback usf --update bm --epochs 8 --batch 100 --seed 5 -q)
"$cli" train "${common[@]}" > "$work/one.json"
"${mpirun[@]}" -np 2 "$cli" train "${common[@]}" --dist mpi --bm-mode exact > "$work/exact2.json"
[ "$(jnum ranks "$work/exact2.json")" = 2 ] && [ "$(jstr bm_mode "$work/exact2.json")" = exact ] || fail "exact: summary: $(cat "$work/exact2.json")"
ranks_agree "$work/exact2.json" 2
# one summary line in all, from rank 0 (the other ranks are quiet)
[ "$(grep -c '^{' "$work/exact2.json")" = 1 ] || fail "exact: $(grep -c '^{' "$work/exact2.json") summary lines, not 1"
a1=$(jnum test_accuracy "$work/one.json")
a2=$(jnum test_accuracy "$work/exact2.json")
awk -v a="$a1" -v b="$a2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.005) }' ||
    fail "exact: test accuracy $a2 on 2 ranks, $a1 in one process"
echo "exact: test accuracy $a2 on 2 ranks (same weights on both), $a1 in one process"

step "3. vote mode, digits8x8 with uSF + BN, 2 and 4 ranks"
vote=(--data digits8x8 --feedback usf --bn --update bm --bm-mode vote --epochs 8 --batch 100 --seed 1 -q --dist mpi)
for n in 2 4; do
    "${mpirun[@]}" -np $n "$cli" train "${vote[@]}" > "$work/vote$n.json"
    ranks_agree "$work/vote$n.json" $n
    acc=$(jnum test_accuracy "$work/vote$n.json")
    ge "$acc" 0.95 || fail "vote on $n ranks: test accuracy $acc < 0.95"
    echo "vote on $n ranks: test accuracy $acc"
done
pe=$(jnum traffic_bytes_per_step "$work/exact2.json")
pv=$(jnum traffic_bytes_per_step "$work/vote2.json")
[ "$pe" -gt 0 ] && [ "$pv" -gt 0 ] || fail "no traffic reported"
echo "payload per step and rank: exact $pe bytes (4 per parameter + 4), vote $pv bytes (1 per parameter + 1; this net has BN too)"

step "4. a rank killed mid-run; resume"
# long enough (about 10 s on 2 loaded cores) that rank 1 is still running when it is found
kill_epochs=24
kill_run=(--data digits8x8 --feedback usf --bn --update bm --bm-mode vote --epochs $kill_epochs --batch 100 --seed 2 -q
          --dist mpi --checkpoint-every 1)
"${mpirun[@]}" -np 2 "$cli" train "${kill_run[@]}" --out "$work/whole" > "$work/whole.json"
ranks_agree "$work/whole.json" 2
( set +e; "${mpirun[@]}" -np 2 "$cli" train "${kill_run[@]}" --out "$work/cut" > "$work/cut.json" 2> "$work/cut.err"
  echo $? > "$work/cut.rc" ) &
launcher=$!
for _ in $(seq 600); do [ -e "$work/cut/checkpoint.asymbp" ] && break; sleep 0.1; done
[ -e "$work/cut/checkpoint.asymbp" ] || fail "kill: no checkpoint after 60 s"
victim=""
# the processes whose command line names the run's folder (mpirun and the two ranks), found
# without a process per candidate (a scan that forks for each process took 3 s under load)
for dir in /proc/[0-9]*; do
    args=()
    mapfile -d '' args 2>/dev/null < "$dir/cmdline" || continue
    case " ${args[*]} " in *" $work/cut "*) ;; *) continue ;; esac
    if tr '\0' '\n' 2>/dev/null < "$dir/environ" | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=${dir#/proc/}; fi
done
[ -n "$victim" ] || fail "kill: rank 1 not found (did the run end before it could be killed?)"
killed_at=$(date +%s.%N)
kill -9 "$victim" 2>/dev/null || fail "kill: rank 1 ended before it could be killed (the run is too short on this machine)"
wait "$launcher" || true
stopped=$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
rc=$(cat "$work/cut.rc")
[ "$rc" != 0 ] || fail "kill: the job ended with status 0"
ge 15 "$stopped" || fail "kill: the other rank took $stopped s to stop"
grep -q "process rank 1 .*exited on signal 9" "$work/cut.err" || fail "kill: no message names rank 1: $(cat "$work/cut.err")"
echo "kill: rank 1 (pid $victim) killed; the job stopped after $stopped s with status $rc; messages:"
# rank 0's own line is best effort: Open MPI may drop a process's last output when it ends the job
grep -E "asymbp|rank 1" "$work/cut.err" | sed 's/^/    /'
cp -r "$work/cut" "$work/cut3"
"${mpirun[@]}" -np 2 "$cli" train --resume "$work/cut" --dist mpi -q > "$work/resumed.json"
[ "$(jnum epochs_done "$work/resumed.json")" = $kill_epochs ] || fail "resume: $(cat "$work/resumed.json")"
w_whole=$(sed -n 's/.*"rank_weights":\["\([0-9a-f]*\)".*/\1/p' "$work/whole.json")
w_res=$(sed -n 's/.*"rank_weights":\["\([0-9a-f]*\)".*/\1/p' "$work/resumed.json")
[ "$w_whole" = "$w_res" ] || fail "resume on 2 ranks: weights $w_res, the uninterrupted run's $w_whole"
diff <(cut -d, -f1-7 "$work/whole/curves.csv") <(cut -d, -f1-7 "$work/cut/curves.csv") > /dev/null ||
    fail "resume: curves.csv differs from the uninterrupted run's (besides the timings)"
echo "resume on 2 ranks: the same weights as the uninterrupted run ($w_res), test accuracy $(jnum test_accuracy "$work/resumed.json")"
"${mpirun[@]}" -np 3 "$cli" train --resume "$work/cut3" --dist mpi -q > "$work/resumed3.json"
[ "$(jnum epochs_done "$work/resumed3.json")" = $kill_epochs ] || fail "resume on 3 ranks: $(cat "$work/resumed3.json")"
ranks_agree "$work/resumed3.json" 3
echo "resume on 3 ranks: finished, the ranks agree, test accuracy $(jnum test_accuracy "$work/resumed3.json")"

step "5. without the module, without --dist, vote with sgd"
ASYMBP_MPI_LIB=/nonexistent/libasymbp-mpi.so.0 "$cli" train --dist mpi -q > /dev/null 2> "$work/nomod.err" && fail "--dist mpi without the module succeeded"
grep -q "make MPI=1" "$work/nomod.err" || fail "no hint without the module: $(cat "$work/nomod.err")"
"$cli" train --data digits8x8 --epochs 1 --dist local -q > "$work/local.json"
[ "$(jnum ranks "$work/local.json")" = 1 ] || fail "--dist local: $(cat "$work/local.json")"
set +e
"${mpirun[@]}" -np 2 "$cli" train --epochs 1 -q > /dev/null 2> "$work/nodist.err"
rc=$?
set -e
[ $rc != 0 ] && grep -q "without --dist" "$work/nodist.err" || fail "mpirun without --dist (status $rc): $(cat "$work/nodist.err")"
set +e
timeout 60 "${mpirun[@]}" -np 2 "$cli" train --epochs 1 -q --dist mpi --update sgd --bm-mode vote > /dev/null 2> "$work/sgdvote.err"
rc=$?
set -e
[ $rc != 0 ] && [ $rc != 124 ] && grep -q "needs the gradient itself" "$work/sgdvote.err" ||
    fail "vote with sgd (status $rc): $(cat "$work/sgdvote.err")"
echo "messages: $(head -1 "$work/nomod.err" | cut -c1-100)..."
echo "          $(grep -m1 "without --dist" "$work/nodist.err" | cut -c1-100)..."
echo "          $(grep -m1 "needs the gradient" "$work/sgdvote.err" | cut -c1-100)..."
[ -e "$libdir/libasymbp-mpi.so.0" ] || fail "no $libdir/libasymbp-mpi.so.0"
if ldd "$cli" | grep -q libmpi; then fail "the tool links MPI"; fi

step "6b. a sweep shared by 2 ranks (rank 0 hands out runs, collects rows): every run once, the same rows as one process, both ranks working"
cat > "$work/t.grid" <<'GRID'
name = t
data = iris
net = mlp:8
feedback = sym, usf
regime = bn, bn+bm
seed = 1, 2
epochs = 3
batch = 32
lr.sgd = 0.1, 0.001
lr.bm = 0.001
schedule = cosine
GRID
"$cli" sweep "$work/t.grid" --out "$work/sw1" -j 2 2> /dev/null || fail "the sweep in one process"
"${mpirun[@]}" -np 2 "$cli" sweep "$work/t.grid" --out "$work/sw2" --dist mpi 2> "$work/sw2.err" || fail "the sweep on 2 ranks: $(tail -3 "$work/sw2.err")"
rows() { tail -n +2 "$1" | cut -d, -f1-24,26- | sort; }   # without the seconds column (25th)
[ "$(rows "$work/sw1/runs.csv")" = "$(rows "$work/sw2/runs.csv")" ] || fail "the 2-rank sweep's rows differ from one process's"
[ "$(tail -n +2 "$work/sw2/runs.csv" | cut -d, -f1 | sort | uniq -d | wc -l)" = 0 ] || fail "a run was done twice"
# rank 0 hands out the runs and writes every row, naming the rank that ran it
for r in 0 1; do grep -q "done .*(rank $r)\$" "$work/sw2.err" || fail "rank $r took no run"; done
[ "$(grep -c "done .*(rank [01])\$" "$work/sw2.err")" = "$(tail -n +2 "$work/sw2/runs.csv" | wc -l)" ] ||
    fail "rank 0 did not report every row it wrote"
echo "sweep: $(tail -n +2 "$work/sw2/runs.csv" | wc -l) runs shared by 2 ranks, the same rows as one process"

# a sweep job killed (mpirun ended by SIGTERM) while runs are going: no run outlives it, and the
# next job finishes the grid with every run once
cat > "$work/k.grid" <<'GRID'
name = k
data = iris
net = mlp:16
feedback = sym, usf, brsf, frsf
regime = bn, bn+bm
seed = 1, 2, 3
epochs = 150
batch = 16
lr.sgd = 0.01
lr.bm = 0.001
GRID
total=$("$cli" sweep "$work/k.grid" --out "$work/swk" --dry-run 2> /dev/null | grep -c "^asymbp train")
"${mpirun[@]}" -np 2 "$cli" sweep "$work/k.grid" --out "$work/swk" --dist mpi 2> "$work/swk.err" &
job=$!
for _ in $(seq 600); do [ "$(tail -n +2 "$work/swk/runs.csv" 2> /dev/null | wc -l)" -ge 3 ] && break; sleep 0.1; done
kill -TERM "$job" 2> /dev/null || fail "sweep kill: the job ended before it could be stopped"
wait "$job" || true
cut=$(($(wc -l < "$work/swk/runs.csv") - 1))
[ "$cut" -lt "$total" ] || fail "sweep kill: the job had finished ($cut of $total rows)"
sleep 1
for dir in /proc/[0-9]*; do
    args=()
    mapfile -d '' args 2> /dev/null < "$dir/cmdline" || continue
    case " ${args[*]} " in *" $work/swk/"*) fail "sweep kill: a run outlived its sweep: ${args[*]}" ;; esac
done
"${mpirun[@]}" -np 2 "$cli" sweep "$work/k.grid" --out "$work/swk" --dist mpi 2> "$work/swk2.err" ||
    fail "the resumed sweep: $(tail -3 "$work/swk2.err")"
[ "$(tail -n +2 "$work/swk/runs.csv" | wc -l)" = "$total" ] || fail "the resumed sweep has $(tail -n +2 "$work/swk/runs.csv" | wc -l) rows, not $total"
[ "$(tail -n +2 "$work/swk/runs.csv" | cut -d, -f1 | sort | uniq -d | wc -l)" = 0 ] || fail "the resumed sweep did a run twice"
echo "sweep kill: stopped with $cut of $total rows, no run left behind; resumed to $total rows, each run once"

step "6. an installation: a pkg-config consumer of asymbp-mpi, and the installed tool"
[ -n "$srcdir" ] || fail "no source folder"
make -s -C "$srcdir" install MPI=1 PREFIX="$work/prefix" > /dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -o "$work/consumer" "$srcdir/tests/mpi/consumer.c" $(pkg-config --cflags --libs asymbp-mpi) \
    -Wl,-rpath,"$work/prefix/lib" || fail "the pkg-config consumer does not build"
"${mpirun[@]}" -np 2 "$work/consumer" || fail "the pkg-config consumer on 2 ranks"
"${mpirun[@]}" -np 2 "$work/prefix/bin/asymbp" train --epochs 1 -q --dist mpi > "$work/installed.json" ||
    fail "the installed tool with --dist mpi"
ranks_agree "$work/installed.json" 2
echo "the installed tool found its module: $(grep -o '"ranks":[0-9]*' "$work/installed.json")"

printf '\ncheck-mpi: all passed in %ds\n' $(( $(date +%s) - start ))
