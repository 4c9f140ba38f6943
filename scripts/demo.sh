#!/bin/sh
# `make demo`: the paper's central finding on the bundled data, side by side.
# Trains the same network on digits8x8 with five settings and prints test accuracy.
set -eu
cd "$(dirname "$0")/.."
BIN=${ASYMBP_CLI:-bin/asymbp}
EPOCHS=${DEMO_EPOCHS:-15}
SEED=${DEMO_SEED:-1}
DATA=${DEMO_DATA:-digits8x8}
NET=${DEMO_NET:-}
field() { # field NAME JSONLINE: a scalar field of the tool's one-line JSON summary
    printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}
printf 'asymbp demo: %s, net %s, %s epochs, seed %s (each row: one run of bin/asymbp train)\n\n' \
    "$DATA" "${NET:-the default for the data}" "$EPOCHS" "$SEED"
printf '%-26s %-10s %-8s %-6s %-9s %s\n' "setting" "feedback" "update" "BN" "test acc" "diverged"
printf '%-26s %-10s %-8s %-6s %-9s %s\n' "--------------------------" "--------" "------" "----" "--------" "--------"
for setting in "sym+SGD:sym:sgd:" "uSF+SGD:usf:sgd:" "uSF+BM:usf:bm:" "uSF+BN:usf:sgd:--bn" "uSF+BN+BM:usf:bm:--bn"; do
    name=${setting%%:*}; rest=${setting#*:}
    fb=${rest%%:*}; rest=${rest#*:}
    up=${rest%%:*}; bn=${rest#*:}
    # shellcheck disable=SC2086
    line=$("$BIN" train --data "$DATA" ${NET:+--net "$NET"} --feedback "$fb" --update "$up" $bn \
           --epochs "$EPOCHS" --seed "$SEED" --quiet | tail -n 1) || true
    acc=$(field test_accuracy "$line")
    div=$(field diverged "$line")
    printf '%-26s %-10s %-8s %-6s %-9s %s\n' "$name" "$fb" "$up" "$([ -n "$bn" ] && echo yes || echo no)" \
        "${acc:-error}" "${div:-?}"
done
printf '\nThe paper'"'"'s claim: with sign-concordant feedback (uSF), plain SGD fails or lags, while\n'
printf 'batch normalisation and/or Batch Manhattan restore learning (sym+SGD is ordinary backprop).\n'
