#!/bin/sh
# Reproduce the paper's claims and the accuracy figures of docs/results.md.
#   scripts/reproduce.sh [GROUP...]     groups: claims csv fashion mnist (default: claims csv)
# Every run writes results/<group>/<name>/ (summary.json, curves.csv, model.asymbp) through
# `asymbp train --out`.  Finished runs are skipped and interrupted ones resume from their
# checkpoint, so the script can be stopped and started again at any time.  Then
# scripts/results.sh rebuilds docs/results.md and the plots from whatever has finished.
set -eu
cd "$(dirname "$0")/.."
BIN=${ASYMBP_CLI:-bin/asymbp}
THREADS=${THREADS:-1}
[ -x "$BIN" ] || make --no-print-directory

run() { # run GROUP NAME ARGS...
    group=$1; name=$2; shift 2
    dir=results/$group/$name
    if [ -f "$dir/summary.json" ]; then echo "done     $group/$name"; return 0; fi
    if [ -f "$dir/checkpoint.asymbp" ]; then
        echo "resume   $group/$name"
        "$BIN" train --resume "$dir" --quiet > /dev/null
    else
        rm -rf "$dir"
        mkdir -p "results/$group"
        echo "run      $group/$name: $*"
        "$BIN" train "$@" --threads "$THREADS" --out "$dir" --checkpoint-every 1 --quiet > /dev/null
    fi
    tail -n 1 "$dir/summary.json"
}

claims() {
    # Claims 1, 2 and 4 of the paper: every feedback setting in the four regimes on digits8x8
    # (small CNN, seeds 1-3), and the main settings on digits20x20 (paper CNN, seed 1).
    for fb in sym usf brsf frsf partial:0.75 partial:0.5 partial:0.25 rndf; do
        for regime in sgd bm bn bn+bm; do
            for seed in 1 2 3; do
                claim digits8x8 "$fb" "$regime" 20 "$seed"
            done
        done
    done
    for fb in sym usf brsf frsf rndf; do
        for regime in sgd bm bn bn+bm; do
            claim digits20x20 "$fb" "$regime" 8 1
        done
    done
}

claim() { # claim DATA FEEDBACK REGIME EPOCHS SEED
    case $3 in
        sgd) extra="--update sgd" ;; bm) extra="--update bm" ;;
        bn) extra="--update sgd --bn" ;; bn+bm) extra="--update bm --bn" ;;
    esac
    # shellcheck disable=SC2086
    run claims "$1-$(echo "$2" | tr ':' '_')-$3-s$5" --data "$1" --feedback "$2" $extra --epochs "$4" --seed "$5"
}

csv() {
    # Every tabular set: an MLP with BN, backprop and uSF + BM.
    for data in letter dna soybean ionosphere sonar glass iris wine breast_cancer; do
        run csv "$data-sym-bn" --data "$data" --net mlp:128,64 --bn --feedback sym --update sgd --epochs 60 --batch 32
        run csv "$data-usf-bn-bm" --data "$data" --net mlp:128,64 --bn --feedback usf --update bm --lr 0.0001 \
            --epochs 60 --batch 32
    done
}

fashion() {
    run fashion sym-bn-sgd --data fashion-mnist --net paper-cnn --bn --feedback sym --update sgd --lr 0.01 \
        --lr-steps 6,9 --epochs 10
    run fashion usf-bn-bm --data fashion-mnist --net paper-cnn --bn --feedback usf --update bm --lr 0.0001 \
        --lr-steps 6,9 --epochs 10
}

mnist() {
    run mnist sym-bn-sgd --data mnist --net paper-cnn --bn --feedback sym --update sgd --lr 0.01 --lr-steps 4 --epochs 6
}

groups=${*:-claims csv}
for g in $groups; do
    case $g in
        claims|csv|fashion|mnist) $g ;;
        *) echo "reproduce.sh: unknown group '$g' (claims csv fashion mnist)" >&2; exit 2 ;;
    esac
done
sh scripts/results.sh
