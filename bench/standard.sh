#!/bin/sh
# The standard benchmark set of `make bench`: both nets of the issue, batch 100, the configurations
# of the performance table, one short run each; prints a Markdown table.
#   sh bench/standard.sh BENCH [EPOCHS]
# BENCH: path of the asymbp-bench program; EPOCHS: timed epochs per run (default 3).
# The machine may be shared: figures move by 20 % from one minute to the next. For numbers to
# quote, use bench/compare_torch.py (interleaved rounds, medians) as docs/performance.md says.
set -eu
BENCH=${1:?usage: sh bench/standard.sh BENCH [EPOCHS]}
EPOCHS=${2:-3}
[ -x "$BENCH" ] || { echo "standard.sh: $BENCH is not an executable" >&2; exit 1; }

# value of a numeric or boolean field of a one-line JSON object
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

echo "| model | feedback | update | bn | threads | images/s | images/cpu-s | GFLOP/s | ms/step (fwd/bwd/upd) | allocs/step | peak RSS MB | theoretical MB |"
echo "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"
status=0
for model in paper-cnn mlp; do
    for cfg in "sym sgd 0 1" "sym sgd 0 2" "usf sgd 0 1" "brsf sgd 0 1" "sym bm 0 1" "sym sgd 1 1"; do
        set -- $cfg
        bn=""
        [ "$3" = 1 ] && bn="--bn"
        line=$("$BENCH" --model "$model" --feedback "$1" --update "$2" $bn --threads "$4" --batch 100 \
               --epochs "$EPOCHS" --json | tail -n 1)
        allocs=$(field "$line" allocs_per_step)
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s/%s/%s | %s | %s | %s |\n' "$model" "$1" "$2" \
            "$(field "$line" bn)" "$4" "$(field "$line" images_per_s)" "$(field "$line" images_per_cpu_s)" \
            "$(field "$line" gflop_s)" "$(field "$line" forward_ms)" "$(field "$line" backward_ms)" \
            "$(field "$line" update_ms)" "$allocs" "$(field "$line" peak_rss_mb)" "$(field "$line" theoretical_mb)"
        case "$allocs" in 0|0.0*) case "$allocs" in *[1-9]*) status=1 ;; esac ;; *) status=1 ;; esac
    done
done
[ "$status" = 0 ] || echo "standard.sh: a training step allocated memory (allocs/step > 0)" >&2
exit "$status"
