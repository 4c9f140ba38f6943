#!/bin/sh
# The reproduction: every grid of grids/ (resumable), then docs/results.md.  The same as
# `make reproduce`; GRIDS="convnets emarecal" runs only those.  docs/protocol.md explains it.
set -eu
cd "$(dirname "$0")/.."
[ -x bin/asymbp ] || make --no-print-directory
make --no-print-directory data
for g in ${GRIDS:-convnets emarecal digits8x8 tabular letter}; do
    OPENBLAS_NUM_THREADS=1 bin/asymbp sweep "grids/$g.grid" -j "${JOBS:-2}"
done
python3 scripts/report.py
