#!/usr/bin/env bash
# check-crash: a checkpointed run killed (SIGKILL) at every file operation it makes (before each
# open for writing, write, fsync and rename: inside checkpoint, model, settings, curves and
# summary writes), with every file operation failing in turn (EIO/ENOSPC), and killed at random
# instants; each is then finished the way a user would (`--resume DIR`, or the same command again
# when no checkpoint exists yet).  The final model.asymbp, summary.json (the "seconds" figure
# aside) and curves.csv (its timing column aside) must equal an uninterrupted run's byte for byte,
# and no temporary file may remain.
#   usage: check-crash.sh CLI FAULT_SO [TMPDIR] [RANDOM_KILLS]
set -u
CLI=$1
SO=$2
TMP=$(mktemp -d "${3:-${TMPDIR:-/tmp}}/asymbp-crash-XXXXXX")
RANDOM_KILLS=${4:-20}
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
bad=0

# Two configurations: stateful feedback, BN and BM; and the same with --diag (its per-epoch read
# of the lowest layer's feedback draws random numbers, so its order against the checkpoint
# matters) on digits8x8.
CONFIGS=("--data iris --net mlp:8 --bn --feedback brsf --update bm --epochs 4 --checkpoint-every 1 --quiet"
         "--data digits8x8 --net mlp:16 --bn --feedback brsf --update bm:b --epochs 3 --checkpoint-every 1 --diag --probe-every 7 --val-split 0.1 --lr-schedule cosine --quiet")

fail() {
    echo "check-crash: $*" >&2
    bad=1
}

# The figures that must match, without timing: summary without "seconds", curves without the
# seconds column (the 8th).
canon() {
    sed -e 's/"seconds":[0-9.e+-]*,//' "$1/summary.json" >"$2.summary"
    cut -d, -f1-7,9- "$1/curves.csv" >"$2.curves"
}

# finish DIR ARGS...: complete a run after a kill or a failure, as a user would.
finish() {
    local d=$1
    shift
    # after a kill, a user resumes (a finished run resumes to itself); with no checkpoint yet the
    # same command runs again
    if [ -e "$d/checkpoint.asymbp" ]; then
        "$CLI" train --resume "$d" >/dev/null 2>"$TMP/err" && return 0
    else
        "$CLI" train "$@" --out "$d" >/dev/null 2>"$TMP/err" && return 0
    fi
    fail "finishing $d failed: $(head -c 300 "$TMP/err")"
    return 1
}

compare() {   # compare DIR WHAT
    local d=$1
    no_tmp=$(ls "$d" | grep '\.tmp' || true)
    [ -z "$no_tmp" ] || fail "$2: temporary files left: $no_tmp"
    cmp -s "$d/model.asymbp" "$REF/model.asymbp" || { fail "$2: another model"; return; }
    canon "$d" "$TMP/got"
    cmp -s "$TMP/got.summary" "$TMP/ref.summary" || fail "$2: another summary: $(cat "$TMP/got.summary")"
    cmp -s "$TMP/got.curves" "$TMP/ref.curves" || fail "$2: other curves: $(diff "$TMP/got.curves" "$TMP/ref.curves" | head -5)"
    if [ -e "$REF/probe.csv" ]; then cmp -s "$d/probe.csv" "$REF/probe.csv" || fail "$2: another probe.csv"; fi
}

kills=0
fails=0
randoms=0
for ci in "${!CONFIGS[@]}"; do
    read -r -a ARGS <<<"${CONFIGS[$ci]}"
    REF="$TMP/ref$ci"
    env FAULT_REPORT="$TMP/report" LD_PRELOAD="$SO" "$CLI" train "${ARGS[@]}" --out "$REF" >/dev/null || { fail "reference run $ci failed"; exit 1; }
    ops=$(awk '/^ops/ {print $2}' "$TMP/report")
    canon "$REF" "$TMP/ref"
    # a kill before every file operation
    for ((n = 1; n <= ops; n++)); do
        d="$TMP/k$ci-$n"
        env FAULT_OP_KILL="$n" LD_PRELOAD="$SO" "$CLI" train "${ARGS[@]}" --out "$d" >/dev/null 2>&1
        rc=$?
        [ $rc -eq 137 ] || fail "config $ci, kill at operation $n: exit status $rc, expected 137 (SIGKILL)"
        finish "$d" "${ARGS[@]}" && compare "$d" "config $ci, killed before file operation $n of $ops"
        kills=$((kills + 1))
        rm -rf "$d"
    done
    # every file operation failing once
    for ((n = 1; n <= ops; n++)); do
        d="$TMP/f$ci-$n"
        env FAULT_OP_FAIL="$n" LD_PRELOAD="$SO" "$CLI" train "${ARGS[@]}" --out "$d" >/dev/null 2>"$TMP/err"
        rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then fail "config $ci, operation $n failing: exit status $rc"; fi
        if [ $rc -eq 1 ] && ! grep -q '^asymbp: ' "$TMP/err"; then fail "config $ci, operation $n failing: no message"; fi
        finish "$d" "${ARGS[@]}" && compare "$d" "config $ci, file operation $n of $ops failing"
        fails=$((fails + 1))
        rm -rf "$d"
    done
    # kills at random instants, several per run, until it finishes
    for ((r = 1; r <= RANDOM_KILLS; r++)); do
        d="$TMP/r$ci-$r"
        for ((j = 0; j < 3; j++)); do
            if [ -e "$d/checkpoint.asymbp" ]; then "$CLI" train --resume "$d" >/dev/null 2>&1 &
            else "$CLI" train "${ARGS[@]}" --out "$d" >/dev/null 2>&1 & fi
            pid=$!
            sleep "0.0$(( (RANDOM % 9) + 1 ))$(( RANDOM % 10 ))"
            kill -9 $pid 2>/dev/null && randoms=$((randoms + 1))
            wait $pid 2>/dev/null
        done
        finish "$d" "${ARGS[@]}" && compare "$d" "config $ci, random kills (round $r)"
        rm -rf "$d"
    done
done
echo "check-crash: $kills runs killed before each file operation, $fails with one operation failing, $randoms kills at random instants"
[ $bad -eq 0 ] && echo "check-crash: every run finished with the uninterrupted run's model, summary and curves"
exit $bad
