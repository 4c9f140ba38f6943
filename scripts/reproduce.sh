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
    # Claims 1, 2 and 4 of the paper: every feedback setting in the four regimes, on digits8x8
    # (small CNN) and digits20x20 (paper CNN).  Seeds 1..3 on digits8x8.
    for data in digits8x8 digits20x20; do
        epochs=20; seeds="1 2 3"
        [ "$data" = digits20x20 ] && { epochs=12; seeds="1"; }
        for fb in sym usf brsf frsf partial:0.75 partial:0.5 partial:0.25 rndf; do
            for regime in sgd bm bn bn+bm; do
                case $regime in
                    sgd) extra="--update sgd" ;; bm) extra="--update bm" ;;
                    bn) extra="--update sgd --bn" ;; bn+bm) extra="--update bm --bn" ;;
                esac
                for seed in $seeds; do
                    # shellcheck disable=SC2086
                    run claims "$data-$(echo "$fb" | tr ':' '_')-$regime-s$seed" --data "$data" --feedback "$fb" \
                        $extra --epochs "$epochs" --seed "$seed"
                done
            done
        done
    done
}

csv() {
    # Every tabular set: an MLP with BN, backprop and uSF + BM.
    for data in letter dna soybean ionosphere sonar glass iris wine breast_cancer; do
        run csv "$data-sym-bn" --data "$data" --net mlp:128,64 --bn --feedback sym --update sgd --epochs 60 --batch 32
        run csv "$data-usf-bn-bm" --data "$data" --net mlp:128,64 --bn --feedback usf --update bm --epochs 60 --batch 32
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
