#!/usr/bin/env bash
# make bench-dist: data-parallel speed on this machine, interleaved (docs/distributed.md).
# Each round runs, for the paper CNN and the MLP 784-512-512-10 at a global batch of 100:
#   1 rank x 1 thread (the compute time per step the model in docs/distributed.md starts from),
#   1 rank x 2 threads, and 2 ranks x 1 thread in exact and in vote mode,
# in a rotated order; the table gives the median images/s over the rounds and the range.
# Usage: dist-scaling.sh BIN/asymbp-dist-bench [ROUNDS]
set -euo pipefail
bench=$1
rounds=${2:-5}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
configs=("1 1 exact" "1 2 exact" "2 1 exact" "2 1 vote")
echo "dist-bench: $rounds rounds on $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    for model in paper-cnn mlp; do
        steps=20; [ $model = mlp ] && steps=60
        for k in 0 1 2 3; do
            set -- ${configs[$(( (k + r) % 4 ))]}
            line=$(mpirun --oversubscribe -np "$1" "$bench" --model $model --threads "$2" --mode "$3" --steps $steps)
            echo "$r $line" >> "$out"
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-16s %12s %16s %10s %10s %12s %13s\n' model config "images/s" "range" "step ms" "compute" "payload B" "allreduce ms"
for model in paper-cnn mlp; do
    for cfg in "1 1 none" "1 2 none" "2 1 exact" "2 1 vote"; do
        set -- $cfg
        grep "\"model\":\"$model\"" "$out" | grep "\"ranks\":$1,\"threads\":$2" | grep "\"mode\":\"$3\"" |
        awk -v model=$model -v cfg="$1 rank x $2 thr $3" '
            function num(k,   m) { m = $0; sub(".*\"" k "\":", "", m); sub("[,}].*", "", m); return m + 0 }
            { n++; ips[n] = num("images_per_s"); st[n] = num("step_ms"); co[n] = num("compute_ms");
              pay = num("payload_bytes"); ar[n] = num("allreduce_ms") }
            function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                          return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            END { if (!n) exit; lo = hi = ips[1]; for (i = 2; i <= n; i++) { if (ips[i] < lo) lo = ips[i]; if (ips[i] > hi) hi = ips[i] }
                  printf "%-10s %-16s %12.0f %7.0f-%-8.0f %10.2f %10.2f %12d %13.3f\n", model, cfg, med(ips, n), lo, hi, med(st, n),
                         med(co, n), pay, med(ar, n) }'
    done
done
