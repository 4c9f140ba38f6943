#!/bin/sh
# Rebuild docs/results.md and docs/img/*.png from the finished runs under results/.
# Needs only POSIX sh and awk; plots need gnuplot (scripts/install-deps.sh installs gnuplot-nox).
set -eu
cd "$(dirname "$0")/.."
out=docs/results.md
mkdir -p docs/img results
tmp=$(mktemp -d)
# Feedback settings from most to least like backprop (the order of the tables and plots).
FBORDER="sym usf brsf frsf partial:0.75 partial:0.5 partial:0.25 rndf signed-init"
trap 'rm -rf "$tmp"' EXIT

# One line per finished run: group name data feedback update bn test_accuracy diverged epochs seconds
for f in results/*/*/summary.json; do
    [ -f "$f" ] || continue
    g=$(echo "$f" | cut -d/ -f2); n=$(echo "$f" | cut -d/ -f3)
    awk -v g="$g" -v n="$n" '
        function field(k,   re, m) {
            re = "\"" k "\":\"?[^,\"}]*"
            if (match($0, re)) { m = substr($0, RSTART, RLENGTH); sub(/^"[^"]*":"?/, "", m); return m }
            return "?"
        }
        { print g, n, field("data"), field("feedback"), field("update"), field("bn"), field("test_accuracy"),
                field("diverged"), field("epochs_done"), field("seconds") }' "$f"
done > "$tmp/runs.txt"

{
echo "# Results"
echo
echo "Every figure below comes from \`scripts/reproduce.sh\` (resumable; groups claims, csv, fashion,"
echo "mnist) and this page from \`scripts/results.sh\`. Each run is \`bin/asymbp train ... --out"
echo "results/GROUP/NAME\`; its summary.json and curves.csv are in the repository. Test accuracy on"
echo "the data set's official or fixed test split; seeds as listed."
echo
echo "Every run was made with the current code (each run's settings.txt and summary.json"
echo "record its settings, thread count, BLAS and version), 1 worker thread. Deleting results/ and"
echo "running \`scripts/reproduce.sh claims csv fashion mnist\` gives the same figures bit for bit"
echo "with the same OpenBLAS kernels (\`bin/asymbp-bench\` prints them as blas_core) and thread"
echo "count; on other kernels or thread counts the last bits of each step differ and single-seed"
echo "figures (digits20x20, the tabular and image sets) can move by a few points."
echo
if grep -q '^claims ' "$tmp/runs.txt"; then
echo "## The paper's claims: feedback setting x regime"
echo
echo "Mean test accuracy (over the seeds run) of each feedback setting in the four regimes of"
echo "Liao et al.: plain SGD, Batch Manhattan (BM), batch normalisation (BN), BN+BM. 'div' counts"
echo "runs that diverged (NaN/Inf; the figure is then that of the last good weights)."
echo
for data in $(awk '$1=="claims"{print $3}' "$tmp/runs.txt" | sort -u); do
    echo "### $data"
    echo
    echo "| feedback | SGD | BM | BN | BN+BM |"
    echo "|---|---|---|---|---|"
    awk -v d="$data" -v FBORDER="$FBORDER" '$1=="claims" && $3==d {
        reg = ($6=="true" ? "bn" : "") ($5=="sgd" ? "" : (($6=="true") ? "+bm" : "bm")); if (reg=="") reg="sgd"
        key = $4 SUBSEP reg; s[key] += ($7=="null" ? 0 : $7); c[key]++; if ($8=="true") dv[key]++
        seen[$4]=1 }
      END { split("sgd bm bn bn+bm", R, " "); nf = split(FBORDER, order, " ")
        for (i=1; i<=nf; i++) { f=order[i]; if (!(f in seen)) continue; line="| " f
          for (j=1; j<=4; j++) { k=f SUBSEP R[j]
            if (k in c) line=line sprintf(" | %.3f%s", s[k]/c[k], (k in dv) ? sprintf(" (div %d/%d)", dv[k], c[k]) : "")
            else line=line " | -" }
          print line " |" } }' "$tmp/runs.txt"
    echo
    awk -v d="$data" -v FBORDER="$FBORDER" '$1=="claims" && $3==d {
        reg = ($6=="true" ? "bn" : "") ($5=="sgd" ? "" : (($6=="true") ? "+bm" : "bm")); if (reg=="") reg="sgd"
        key = $4 SUBSEP reg; s[key] += ($7=="null" ? 0 : $7); c[key]++
        seen[$4]=1 }
      END { split("sgd bm bn bn+bm", R, " "); nf = split(FBORDER, order, " "); row = 0
        for (i=1; i<=nf; i++) { f=order[i]; if (!(f in seen)) continue; line=(row++) " " f
          for (j=1; j<=4; j++) { k=f SUBSEP R[j]; line=line " " ((k in c) ? s[k]/c[k] : 0) }
          print line } }' "$tmp/runs.txt" > "$tmp/claims-$data.dat"
    if command -v gnuplot >/dev/null 2>&1; then
        gnuplot <<GP
set terminal pngcairo size 900,420 font ",10" noenhanced
set output "docs/img/claims-$data.png"
set title "$data: test accuracy by feedback setting and regime"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:1.12]
set ytics 0,0.2,1
set ylabel "test accuracy"
set key top center horizontal
set xtics rotate by -30
plot "$tmp/claims-$data.dat" using 3:xtic(2) title "SGD", '' using 4 title "BM", '' using 5 title "BN", '' using 6 title "BN+BM"
GP
        echo "![claims on $data](img/claims-$data.png)"
        echo
    fi
done
fi
if grep -q '^csv ' "$tmp/runs.txt"; then
echo "## Tabular data sets (MLP 128-64 with BN)"
echo
echo "Reference figures from data/README.md (majority class; scikit-learn logistic regression)."
echo
echo "| data set | majority | logistic reg. | BP (sym) + BN | uSF + BN + BM |"
echo "|---|---|---|---|---|"
awk 'NR==FNR { if (FNR>1) { maj[$1]=$14; lr[$1]=$15 } ; next }
     $1=="csv" { if ($5=="sgd") bp[$3]=$7; else us[$3]=$7; if (!($3 in seen)) { seen[$3]=1; order[++n]=$3 } }
     END { for (i=1;i<=n;i++) { d=order[i]; printf "| %s | %s | %s | %s | %s |\n", d, maj[d], lr[d], bp[d], us[d] } }' \
    FS='\t' data/manifest.tsv FS=' ' "$tmp/runs.txt"
echo
fi
for g in fashion mnist; do
    grep -q "^$g " "$tmp/runs.txt" || continue
    echo "## $g (paper CNN)"
    echo
    echo "| run | feedback | update | BN | epochs | test accuracy | seconds |"
    echo "|---|---|---|---|---|---|---|"
    awk -v g="$g" '$1==g { printf "| %s | %s | %s | %s | %s | %.4f | %.0f |\n", $2, $4, $5, $6, $9, $7, $10 }' "$tmp/runs.txt"
    echo
    if command -v gnuplot >/dev/null 2>&1; then
        plots=""
        for d in results/$g/*/; do
            [ -f "$d/curves.csv" ] || continue
            plots="$plots${plots:+, }\"$d/curves.csv\" using 1:7 with linespoints title \"$(basename "$d")\""
        done
        gnuplot <<GP
set terminal pngcairo size 700,400 font ",10" noenhanced
set output "docs/img/curves-$g.png"
set datafile separator ","
set key bottom right
set title "$g: test accuracy per epoch"
set xlabel "epoch"
set ylabel "test accuracy"
plot $plots
GP
        echo "![$g curves](img/curves-$g.png)"
        echo
    fi
done
} > "$out"
echo "results.sh: wrote $out ($(wc -l < "$tmp/runs.txt") runs)"
