#!/usr/bin/env bash
# check-oom, tool part: every allocation of `asymbp train` (with --out and checkpoints), `train
# --resume`, `eval`, `info` and `gradcheck` is failed in turn (LD_PRELOAD=libasymbp-fault.so, FAULT_ALLOC_FAIL=k
# for k = 1 .. the count of a run without failure).  Every run must end with exit status 0 or 1
# (never a signal, never a hang: 60 s limit), a failure must print one message starting with
# "asymbp:", the tool must free every block it allocated itself (FAULT_REPORT leaks 0), and the
# --out folder must hold nothing half-written: no temporary file, and either no run at all, a
# finished run, or a run that `--resume` completes to the uninterrupted run's model.
#   usage: check-oom.sh CLI FAULT_SO [TMPDIR]
# Prints the number of allocation points of each command; exit status 0 when all behaved.
set -u
CLI=$1
SO=$2
TMP=$(mktemp -d "${3:-${TMPDIR:-/tmp}}/asymbp-oom-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
bad=0
total=0

TRAIN=(--data iris --net mlp:8 --bn --feedback brsf --update bm --epochs 2 --checkpoint-every 1 --quiet)

# run_fault K ARGS...: runs the tool with the K-th allocation failing (K=0: none); sets rc, leaks.
run_fault() {
    local k=$1
    shift
    # only the tool runs with the fault library (not timeout and env themselves)
    timeout 60 env FAULT_REPORT="$TMP/report" FAULT_ALLOC_FAIL="$k" LD_PRELOAD="$SO" "$CLI" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    leaks=$(awk '/^leaks/ {print $2}' "$TMP/report" 2>/dev/null)
    allocs=$(awk '/^allocs/ {print $2}' "$TMP/report" 2>/dev/null)
    rm -f "$TMP/report"
}

fail() {
    echo "check-oom: $*" >&2
    echo "--- stderr:" >&2
    head -c 600 "$TMP/err" >&2
    bad=1
}

# check_common WHAT K: the exit status, the message and the leak count of the last run.
check_common() {
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then fail "$1, allocation $2 failed: exit status $rc"; return 1; fi
    if [ "$rc" -eq 1 ] && ! head -n 1 "$TMP/err" | grep -q '^asymbp: .'; then fail "$1, allocation $2 failed: no message"; return 1; fi
    if [ "$rc" -eq 1 ] && [ -s "$TMP/out" ]; then fail "$1, allocation $2 failed: output on stdout"; return 1; fi
    if [ "${leaks:-x}" != 0 ]; then fail "$1, allocation $2 failed: ${leaks:-?} blocks of the tool not freed"; return 1; fi
    return 0
}

no_tmp_files() {
    if ls "$1" 2>/dev/null | grep -q '\.tmp'; then fail "$2: temporary files left: $(ls "$1" | grep '\.tmp' | tr '\n' ' ')"; return 1; fi
    return 0
}

# The uninterrupted reference run.
run_fault 0 train "${TRAIN[@]}" --out "$TMP/ref"
[ "$rc" -eq 0 ] || { fail "the reference run failed"; exit 1; }
n_train=$allocs
model_ref="$TMP/ref/model.asymbp"

# train: every allocation point
for ((k = 1; k <= n_train; k++)); do
    d="$TMP/t$k"
    run_fault "$k" train "${TRAIN[@]}" --out "$d"
    check_common train "$k" || continue
    no_tmp_files "$d" "train, allocation $k" || continue
    if [ "$rc" -eq 0 ]; then
        cmp -s "$d/model.asymbp" "$model_ref" || fail "train, allocation $k failed: exit 0 but another model"
    elif [ -e "$d/checkpoint.asymbp" ]; then
        # a failed run that kept its folder must be resumable to the same model
        "$CLI" train --resume "$d" --quiet >/dev/null 2>"$TMP/err" || { fail "train, allocation $k: the kept run does not resume"; continue; }
        cmp -s "$d/model.asymbp" "$model_ref" || fail "train, allocation $k: the resumed run ends with another model"
    elif [ -e "$d" ] && [ -n "$(ls -A "$d")" ]; then
        fail "train, allocation $k failed: --out holds files but no checkpoint: $(ls "$d" | tr '\n' ' ')"
    fi
    rm -rf "$d"
done
total=$((total + n_train))

# resume: a 1-epoch run extended to 2
"$CLI" train "${TRAIN[@]}" --epochs 1 --out "$TMP/r0" >/dev/null || { fail "setting up the resume run failed"; exit 1; }
run_fault 0 train --resume "$TMP/r0" --epochs 2 --quiet
n_resume=$allocs
rm -rf "$TMP/r0"
for ((k = 1; k <= n_resume; k++)); do
    d="$TMP/r$k"
    "$CLI" train "${TRAIN[@]}" --epochs 1 --out "$d" >/dev/null
    run_fault "$k" train --resume "$d" --epochs 2 --quiet
    check_common resume "$k" || continue
    no_tmp_files "$d" "resume, allocation $k" || continue
    if [ "$rc" -ne 0 ]; then
        "$CLI" train --resume "$d" --epochs 2 --quiet >/dev/null 2>"$TMP/err" || { fail "resume, allocation $k: the run cannot be resumed again"; continue; }
    fi
    cmp -s "$d/model.asymbp" "$model_ref" || fail "resume, allocation $k: the run ends with another model"
    rm -rf "$d"
done
total=$((total + n_resume))

# eval and info of the reference model, and a gradient check
for cmd in eval info gradcheck; do
    case $cmd in
        eval) args=(eval "$model_ref" --data iris) ;;
        info) args=(info "$model_ref") ;;
        gradcheck) args=(gradcheck --net conv3x3x2,relu,maxpool2s2,fc4 --input 1x6x6 --classes 3 --bn) ;;
    esac
    run_fault 0 "${args[@]}"
    n=$allocs
    [ "$rc" -eq 0 ] || { fail "$cmd without a failure"; continue; }
    for ((k = 1; k <= n; k++)); do
        run_fault "$k" "${args[@]}"
        check_common "$cmd" "$k"
    done
    total=$((total + n))
    eval "n_$cmd=$n"
done

echo "check-oom: tool allocation points failed in turn: train $n_train, resume $n_resume, eval ${n_eval:-?}, info ${n_info:-?}, gradcheck ${n_gradcheck:-?} ($total runs)"
[ "$bad" -eq 0 ] && echo "check-oom: every run ended with a status and a message, no leak, nothing half-written"
exit "$bad"
