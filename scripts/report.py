#!/usr/bin/env python3
"""Builds docs/results.md and its plots from the raw results of the sweeps.

    python3 scripts/report.py [--results DIR] [--out FILE] [--img DIR] [GRID ...]

Reads DIR/<grid>/runs*.csv (one row per finished run, written by `asymbp sweep`), the curves.csv
and probe.csv of the runs it plots, and data/manifest.tsv (chance levels).  Every figure of the
page comes from those files: nothing is typed by hand.  The hyper-parameter choice is recomputed
here from the search rows with the sweep's own rule (the candidate with the highest mean best
validation accuracy over the search runs of its tuning group; the first one in grid order on a
tie), and only the chosen candidate's runs are reported.  Plots need gnuplot (skipped, with a
note on the page, when it is missing).  Python 3 standard library only.
"""
import argparse
import csv
import glob
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

FEEDBACK_ORDER = ["sym", "usf", "brsf", "frsf", "partial:0.9", "partial:0.75", "partial:0.5", "partial:0.25",
                  "rndf", "signed-init", "dfa", "kp", "mirror"]
REGIMES = ["sgd", "bm", "bn", "bn+bm"]
REGIME_NAMES = {"sgd": "SGD", "bm": "BM", "bn": "BN", "bn+bm": "BN+BM"}
FB_NAMES = {"sym": "BP (sym)", "usf": "uSF", "brsf": "BRSF", "frsf": "FRSF", "rndf": "RndF", "signed-init": "signed-init",
            "dfa": "DFA", "kp": "KP", "mirror": "mirror"}
# sign concordance of each setting for the error-versus-p plots (RndF: about one half by chance)
CONCORDANCE = {"frsf": 1.0, "partial:0.9": 0.9, "partial:0.75": 0.75, "partial:0.5": 0.5, "partial:0.25": 0.25}
GRIDS = ["convnets", "digits8x8", "tabular", "tabular-deep", "letter", "emarecal", "alignment"]


def fnum(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return x


def fb_name(f):
    if f.startswith("partial:"):
        return "partial p=" + f.split(":", 1)[1]
    return FB_NAMES.get(f, f)


def fb_key(f):
    return FEEDBACK_ORDER.index(f) if f in FEEDBACK_ORDER else len(FEEDBACK_ORDER)


def load_rows(results, grids):
    rows = []
    for g in grids:
        for path in sorted(glob.glob(os.path.join(results, g, "runs*.csv"))):
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    r["_grid_dir"] = os.path.join(results, g)
                    rows.append(r)
    return rows


def selection_order(results, grids):
    """Candidate order and the sweep's own choice per (grid, group), from selection*.csv: the
    sweep writes the candidates in grid order, which breaks ties (rows of runs.csv are in the
    order the runs finished)."""
    order, picked = {}, {}
    for g in grids:
        for path in sorted(glob.glob(os.path.join(results, g, "selection*.csv"))):
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    c = (r["lr"], r["schedule"])
                    if r.get("chosen") == "chosen":
                        picked[(g, r["group"])] = c
                    else:
                        o = order.setdefault((g, r["group"]), [])
                        if c not in o:
                            o.append(c)
    return order, picked


def choose(rows, order=None):
    """Keep the reported runs: per tuning group, the candidate with the best mean val_accuracy_best
    over its search rows (a diverged run counts 0; first in grid order on a tie); groups with a
    single candidate keep it."""
    cands = {}
    rows = sorted(rows, key=lambda r: (order or {}).get((r["grid"], r["group"]), []).index((r["lr"], r["schedule"]))
                  if (r["lr"], r["schedule"]) in (order or {}).get((r["grid"], r["group"]), []) else 999)
    for r in rows:
        key = (r["grid"], r["group"])
        c = (r["lr"], r["schedule"])
        d = cands.setdefault(key, {})
        d.setdefault(c, [])
        if r["role"] == "search":
            d[c].append(fnum(r["val_accuracy_best"]))
    chosen = {}
    for key, d in cands.items():
        best, best_c = -1.0, None
        for c, vals in d.items():
            vals = [0.0 if math.isnan(v) else v for v in vals]
            if not vals:
                continue
            m = sum(vals) / len(vals)
            if m > best:
                best, best_c = m, c
        if best_c is None and len(d) == 1:
            best_c = next(iter(d))
        chosen[key] = (best_c, best, {c: (sum(0.0 if math.isnan(x) else x for x in v) / len(v) if v else float("nan"),
                                          len(v), sum(1 for x in v if math.isnan(x))) for c, v in d.items()})
    final = [r for r in rows if chosen[(r["grid"], r["group"])][0] == (r["lr"], r["schedule"])]
    return final, chosen


class Cell:
    def __init__(self, rows):
        self.rows = rows
        self.n = len(rows)
        self.err_best = [1.0 - fnum(r["test_accuracy_at_best"]) if not math.isnan(fnum(r["test_accuracy_at_best"]))
                         else fnum(r["test_error"]) for r in rows]
        self.err_last = [fnum(r["test_error"]) for r in rows]
        self.err_ema = [1.0 - fnum(r["test_accuracy_ema"]) for r in rows]
        self.diverged = sum(1 for r in rows if r["diverged"] == "true")
        self.lr = rows[0]["lr"]
        self.sched = rows[0]["schedule"]
        self.seconds = sum(fnum(r["seconds"]) for r in rows if not math.isnan(fnum(r["seconds"])))

    @staticmethod
    def _ms(v):
        v = [x for x in v if not math.isnan(x)]
        if not v:
            return float("nan"), float("nan")
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

    def best(self):
        return self._ms(self.err_best)

    def last(self):
        return self._ms(self.err_last)

    def fmt(self, which="best"):
        m, s = self.best() if which == "best" else self.last()
        if math.isnan(m):
            return "-"
        t = "%.1f" % (100 * m)
        if self.n > 1:
            t += " ± %.1f" % (100 * s)
        if self.diverged:
            t += " (div %d/%d)" % (self.diverged, self.n)
        return t


def aggregate(final):
    cells = {}
    for r in final:
        key = (r["grid"], r["data"], r["net"], r["feedback"], r["regime"])
        cells.setdefault(key, []).append(r)
    return {k: Cell(v) for k, v in cells.items()}


def arg_of(cmd, opt):
    parts = cmd.split()
    return parts[parts.index(opt) + 1] if opt in parts and parts.index(opt) + 1 < len(parts) else None


def train_sizes(path="data/manifest.tsv"):
    """Training-set sizes by data set name (MNIST and Fashion-MNIST are fetched, not listed)."""
    n = {"mnist": 60000, "fashion-mnist": 60000}
    try:
        with open(path) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                n[r["name"]] = float(r["n_train"])
    except (OSError, KeyError, ValueError):
        pass
    return n


def estimate_left(cmds, rows):
    """CPU-seconds the remaining runs would take, from the grid's finished runs: seconds per epoch
    and training sample of the runs with the same data set and net, else with the same net on other
    data, else of the whole grid, times each remaining run's epochs and training samples.  Runs
    that diverged at once (no epoch done) are left out.  None when the grid has no finished run."""
    size = train_sizes()
    per = {}
    for r in rows:
        sec, ep = fnum(r["seconds"]), fnum(r.get("epochs_done") or "nan")
        if math.isnan(sec) or math.isnan(ep) or ep <= 0 or sec <= 0:
            continue
        v = sec / ep / size.get(r["data"], 1.0)
        for k in ((r["data"], r["net"]), ("*", r["net"]), None):
            per.setdefault(k, []).append(v)
    if None not in per:
        return None
    total = 0.0
    for c in cmds:
        d, n, e = arg_of(c, "--data"), arg_of(c, "--net"), fnum(arg_of(c, "--epochs") or "nan")
        v = per.get((d, n)) or per.get(("*", n)) or per[None]
        total += sum(v) / len(v) * (e if not math.isnan(e) else 1.0) * size.get(d, 1.0)
    return total


def sweep_left_cmds(results, grid, path=None):
    """The commands a dry run of the grid's sweep lists as still to do (None without the tool);
    path: another grid file to read in place of grids/GRID.grid, with the same results."""
    tool = os.environ.get("ASYMBP_CLI") or ("bin/asymbp" if os.path.exists("bin/asymbp") else shutil.which("asymbp"))
    path = path or os.path.join("grids", grid + ".grid")
    if not tool or not os.path.exists(path):
        return None
    try:
        p = subprocess.run([tool, "sweep", path, "--out", os.path.join(results, grid), "--dry-run"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    return [line for line in p.stdout.splitlines() if line.startswith("asymbp train ")]


BUDGET_KEYS = ("seed", "epochs", "feedback")


def full_grid_left_cmds(results, grid):
    """The runs a grid would still need without its budget cuts: its per-data-set overrides of the
    seeds, epochs and feedback settings (e.g. `seed.mnist = 1`) removed, so that every data set
    runs as the grid's defaults say.  None when the grid has no such cut (or without the tool)."""
    path = os.path.join("grids", grid + ".grid")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    def is_cut(line):
        key = line.split("=")[0].strip()
        return "." in key and key.split(".")[0] in BUDGET_KEYS
    kept = [l for l in lines if not is_cut(l)]
    if len(kept) == len(lines):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, grid + ".grid")
        with open(full, "w") as f:
            f.write("\n".join(kept) + "\n")
        return sweep_left_cmds(results, grid, full)


def data_kinds(path="data/manifest.tsv"):
    """Kind of each data set of the manifest ("image" or "tabular"); MNIST and Fashion-MNIST are images."""
    k = {"mnist": "image", "fashion-mnist": "image"}
    try:
        with open(path) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                k[r["name"]] = r["kind"]
    except (OSError, KeyError):
        pass
    return k


def chance_levels(path="data/manifest.tsv"):
    ch = {"mnist": 0.9, "fashion-mnist": 0.9}
    try:
        with open(path) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                ch[r["name"]] = 1.0 - float(r["majority_test_acc"])
                ch[r["name"] + ":logreg"] = 1.0 - float(r["logreg_test_acc"])
    except (OSError, KeyError, ValueError):
        pass
    return ch


def short_net(net):
    return net if len(net) <= 24 else net[:21] + "..."


# ---- plots ---------------------------------------------------------------------------------------

class Plotter:
    def __init__(self, img_dir, page_dir):
        self.img = img_dir
        self.page_dir = page_dir
        self.tmp = tempfile.mkdtemp(prefix="asymbp-report-")
        self.ok = shutil.which("gnuplot") is not None
        self.made = []

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def data(self, name, lines):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        return p

    def plot(self, name, script, width=900, height=420):
        """Runs gnuplot; returns the markdown image line (or a note when gnuplot is missing)."""
        if not self.ok:
            return "(plot %s not made: gnuplot is not installed; `sh scripts/install-deps.sh results`)" % name
        os.makedirs(self.img, exist_ok=True)
        out = os.path.join(self.img, name + ".png")
        full = ('set terminal pngcairo size %d,%d font ",10" noenhanced\nset output "%s"\n' % (width, height, out)) + script
        subprocess.run(["gnuplot"], input=full.encode(), check=True)
        self.made.append(out)
        return "![%s](%s)" % (name, os.path.relpath(out, self.page_dir))


def read_csv_dicts(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def run_dir(r):
    """The run folder of a row (as the sweep names it)."""
    def san(s):
        return "".join(c if (c.isalnum() or c in ".-+") else "_" for c in s)
    net = r["net"]
    if len(net) <= 24:
        n = san(net)
    else:
        h = 1469598103934665603
        for ch in net.encode():
            h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        n = "%.16s-%08x" % (san(net)[:16], h & 0xFFFFFFFF)
    return os.path.join(r["_grid_dir"], "runs", san(r["data"]), n,
                        "%s-%s-lr%s-%s-s%s" % (san(r["feedback"]), r["regime"], r["lr"], san(r["schedule"]), r["seed"]))


# ---- the page ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--img", default="docs/img")
    ap.add_argument("grids", nargs="*", default=GRIDS)
    a = ap.parse_args()
    rows = load_rows(a.results, a.grids)
    order, picked = selection_order(a.results, a.grids)
    final, chosen = choose(rows, order)
    disagree = sorted(k for k, c in picked.items() if k in chosen and chosen[k][0] != c)
    cells = aggregate(final)
    chance = chance_levels()
    P = Plotter(a.img, os.path.dirname(os.path.abspath(a.out)))
    out = []
    w = out.append

    grids_seen = sorted({r["grid"] for r in rows}, key=lambda g: a.grids.index(g) if g in a.grids else 99)
    cpu = sum(fnum(r["seconds"]) for r in rows if not math.isnan(fnum(r["seconds"])))
    versions = sorted({r["version"] for r in rows})
    w("# Results: the reproduction of Liao, Leibo and Poggio (AAAI 2016)")
    w("")
    w("Generated by `python3 scripts/report.py` from the raw results of `asymbp sweep` (`make results`);")
    w("no figure on this page is typed by hand. The protocol (validation split, hyper-parameter search,")
    w("seeds, BN statistics, schedules) is in [protocol.md](protocol.md); the grids are in `grids/`.")
    w("")
    w("- runs: %d in all (%d reported: the chosen hyper-parameters; the rest are the search), grids: %s" %
      (len(rows), len(final), ", ".join(grids_seen) or "none yet"))
    w("- training time: %.1f CPU-hours (sum of the runs' `seconds`, one thread each)" % (cpu / 3600.0))
    w("- library version(s): %s" % (", ".join(versions) or "-"))
    w("- figures: test error in %, mean ± standard deviation over the seeds run, at the epoch with the best")
    w("  validation accuracy (the last-epoch figures are in the per-data-set tables); `div k/n`: k of the n")
    w("  runs diverged (NaN or Inf; the figure is that of the last good weights)")
    w("")
    if not rows:
        w("No run has finished yet: run `make reproduce` (or `make reproduce-quick`).")
        w("")
    w("## Status of the sweeps")
    w("")
    w("Runs still to do per grid, as `asymbp sweep GRID --dry-run` counts them when this page was made")
    w("(a grid whose search is unfinished counts the final runs of every candidate, so the figure is an")
    w("upper bound). Figures from a grid with runs still to do are partial: cells may be missing or have")
    w("fewer seeds than the grid asks for.")
    w("")
    w("| grid | rows | still to do | CPU-hours done | CPU-hours still to do (estimate) |")
    w("|---|---|---|---|---|")
    left_cpu = 0.0
    for g in a.grids:
        rs = [r for r in rows if r["grid"] == g]
        cmds = sweep_left_cmds(a.results, g)
        if not rs and cmds is None:
            continue
        done = sum(fnum(r["seconds"]) for r in rs if not math.isnan(fnum(r["seconds"]))) / 3600
        est = estimate_left(cmds, rs) if cmds else 0.0
        if est:
            left_cpu += est
        w("| %s | %d | %s | %.2f | %s |" % (
            g, len(rs), "unknown (no asymbp tool found)" if cmds is None else ("complete" if not cmds else "%d" % len(cmds)),
            done, "-" if cmds is None or (cmds and est is None) else ("0" if not cmds else "%.1f" % (est / 3600))))
    w("")
    w("The estimate takes the mean seconds per epoch of the grid's finished runs with the same data set")
    w("and net (of the whole grid when there are none; `-` when the grid has no finished run yet) times")
    w("the epochs of each run still to do. The grids run on separate machines with")
    w("`asymbp sweep GRID --shard I/N` (each shard a job of an array; the report reads every shard's CSV)")
    w("or under MPI (`--dist mpi`, docs/distributed.md).")
    w("")
    if disagree:
        w("**The choice recomputed here differs from the sweep's selection.csv for: %s.**" %
          ", ".join("%s %s" % k for k in disagree))
        w("")

    data_sets = []
    for r in final:
        k = (r["grid"], r["data"], r["net"])
        if k not in data_sets and r["grid"] not in ("emarecal", "alignment"):
            data_sets.append(k)

    # ---- main table
    main_cols = [("sym", "sgd"), ("sym", "bn"), ("usf", "sgd"), ("usf", "bm"), ("usf", "bn"), ("usf", "bn+bm"),
                 ("brsf", "bn+bm"), ("frsf", "bn+bm"), ("rndf", "bn"), ("rndf", "bn+bm")]
    if data_sets:
        w("## Main table")
        w("")
        w("Test error (%) at the best validation epoch; n: seeds per cell.")
        w("")
        w("| data set | net | n | chance | " + " | ".join("%s %s" % (fb_name(f), REGIME_NAMES[g]) for f, g in main_cols) + " |")
        w("|---|---|---|---|" + "---|" * len(main_cols))
        for (g, d, net) in data_sets:
            ns = sorted({c.n for k, c in cells.items() if k[:3] == (g, d, net)})
            line = "| %s | %s | %s | %.1f |" % (d, short_net(net), "/".join(map(str, ns)), 100 * chance.get(d, float("nan")))
            for f, rg in main_cols:
                c = cells.get((g, d, net, f, rg))
                line += " %s |" % (c.fmt() if c else "-")
            w(line)
        w("")

    # ---- claims
    claims = claim_sections(cells, data_sets, chance)
    out.extend(claims)

    # ---- plots
    out.extend(plot_sections(P, cells, final, data_sets, a))

    # ---- per data set tables
    w("## Per data set")
    w("")
    w("Each cell: test error (%) at the best validation epoch, mean ± sd over the seeds, then the")
    w("last-epoch error; below each table the learning rate and schedule the search chose.")
    w("")
    for (g, d, net) in data_sets:
        fbs = sorted({k[3] for k in cells if k[:3] == (g, d, net)}, key=fb_key)
        w("### %s, %s" % (d, net))
        w("")
        w("| feedback | " + " | ".join(REGIME_NAMES[r] for r in REGIMES) + " |")
        w("|---|" + "---|" * len(REGIMES))
        for f in fbs:
            line = "| %s |" % fb_name(f)
            for rg in REGIMES:
                c = cells.get((g, d, net, f, rg))
                if not c:
                    line += " - |"
                else:
                    lm, _ = c.last()
                    line += " %s; last %.1f |" % (c.fmt(), 100 * lm)
            w(line)
        w("")
        w("Chosen (learning rate, schedule): " + "; ".join(
            "%s %s: %s" % (fb_name(f), REGIME_NAMES[rg], "%s %s" % (cells[(g, d, net, f, rg)].lr, cells[(g, d, net, f, rg)].sched))
            for f in fbs for rg in REGIMES if (g, d, net, f, rg) in cells))
        w("")

    # ---- search record
    w("## The hyper-parameter search")
    w("")
    w("Per tuning group (data set or `*` when the choice is shared, net, regime, feedback): each candidate's")
    w("mean best validation accuracy over its search runs; the chosen one in bold. The test set plays no part.")
    w("")
    for (grid, group), (best_c, best, d) in sorted(chosen.items()):
        if len(d) < 2:
            continue
        parts = []
        for c, (m, n, nd) in d.items():
            t = "%s %s: %.3f (%d%s)" % (c[0], c[1], m, n, ", %d diverged" % nd if nd else "") if n else "%s %s: -" % c
            parts.append("**%s**" % t if c == best_c else t)
        w("- `%s` %s: %s" % (grid, group, "; ".join(parts)))
    w("")
    w("## Cost")
    w("")
    w("| grid | runs | CPU-hours |")
    w("|---|---|---|")
    for g in grids_seen:
        rs = [r for r in rows if r["grid"] == g]
        w("| %s | %d | %.2f |" % (g, len(rs), sum(fnum(r["seconds"]) for r in rs if not math.isnan(fnum(r["seconds"]))) / 3600))
    w("")
    for g in grids_seen:
        cmds = full_grid_left_cmds(a.results, g)
        if not cmds:
            continue
        est = estimate_left(cmds, [r for r in rows if r["grid"] == g])
        if est is None:
            continue
        w("Without its budget cuts (the per-data-set `seed.`, `epochs.` and `feedback.` lines of "
          "`grids/%s.grid` removed, so that every data set runs every setting with the grid's seeds "
          "and epochs), `%s` would need %d more runs, about %.1f CPU-hours by the estimate of the "
          "status table (%.1f days of this 2-core machine); `asymbp sweep --shard I/N` splits them "
          "into N jobs, `--dist mpi` over the ranks of one." % (g, g, len(cmds), est / 3600, est / 3600 / 48))
        w("")
    P.close()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print("report: wrote %s (%d runs, %d reported, %d plots)" % (a.out, len(rows), len(final), len(P.made)))


# ---- claims ---------------------------------------------------------------------------------------

def mean_err(cells, g, d, net, f, rg):
    c = cells.get((g, d, net, f, rg))
    return (c.best() if c else (float("nan"), float("nan"))), c


def claim_sections(cells, data_sets, chance):
    out = []
    w = out.append
    w("## The paper's claims, one by one")
    w("")
    w("Each verdict is computed from the tables by the rule stated with it, over every data set where the")
    w("needed cells exist: **holds** when the rule is met on at least 80 % of them, **partly** from 50 %,")
    w("**does not hold here** below, and the same per family of data sets (the image sets with their conv")
    w("nets and the digits20x20 MLP; the tables with their MLPs): the two families can disagree, and the")
    w("small tables, where a 128-64 MLP separates the feedback settings little, would otherwise outvote the")
    w("image sets. Where our numbers disagree with the paper, the section says so.")
    w("")

    kinds = data_kinds()

    class Tally:
        """Rule outcomes per data set, counted in all and per family (image sets, tables)."""
        def __init__(self):
            self.v = []

        def add(self, d, ok):
            self.v.append((kinds.get(d, "image") == "tabular", bool(ok)))

    def word(ok, total):
        fr = ok / total
        return "holds" if fr >= 0.8 else "partly" if fr >= 0.5 else "does not hold here"

    def verdict(t):
        total, ok = len(t.v), sum(o for _, o in t.v)
        if total == 0:
            return "not tested yet (no data)"
        fam = []
        for tab, name in ((False, "image sets"), (True, "tables")):
            vs = [o for f, o in t.v if f == tab]
            if vs:
                fam.append("%s: %s, %d of %d" % (name, word(sum(vs), len(vs)), sum(vs), len(vs)))
        return "%s (%d of %d%s)" % (word(ok, total), ok, total, ": " + "; ".join(fam) if len(fam) > 1 else "")

    def tol(c1, c2):
        """The difference that counts as 'alike': 2 pooled standard deviations, at least 1 point."""
        (_, s1), (_, s2) = c1.best(), c2.best()
        return max(0.01, 2.0 * math.sqrt((s1 * s1 + s2 * s2) / 2.0))

    # claim 1
    w("### 1. The magnitudes of the feedback weights do not matter")
    w("")
    w("The paper: uSF (V = sign W), BRSF (random magnitudes redrawn every batch) and FRSF (fixed random")
    w("magnitudes) perform alike. Rule: in the regimes where they learn (BN, BN+BM), the three mean errors")
    w("lie within 2 pooled standard deviations (at least 1 point) of each other.")
    w("")
    w("| data set | net | regime | uSF | BRSF | FRSF | spread | alike |")
    w("|---|---|---|---|---|---|---|---|")
    t1 = Tally()
    for (g, d, net) in data_sets:
        for rg in ("bn", "bn+bm"):
            cs = [cells.get((g, d, net, f, rg)) for f in ("usf", "brsf", "frsf")]
            if not all(cs):
                continue
            ms = [c.best()[0] for c in cs]
            spread = max(ms) - min(ms)
            t = max(tol(cs[i], cs[j]) for i in range(3) for j in range(i + 1, 3))
            alike = spread <= t
            t1.add(d, alike)
            w("| %s | %s | %s | %s | %s | %s | %.1f | %s |" % (d, short_net(net), REGIME_NAMES[rg], cs[0].fmt(), cs[1].fmt(),
                                                             cs[2].fmt(), 100 * spread, "yes" if alike else "no"))
    w("")
    w("**Verdict: %s.**" % verdict(t1))
    w("")

    # claim 2
    w("### 2. The signs do matter: the lower the sign concordance, the worse; RndF learns with BN but worse")
    w("")
    w("The paper: error grows as the share p of feedback signs that agree with W falls (p = 1 is FRSF);")
    w("random feedback (RndF, p about 0.5) is far above chance with BN but clearly below the sign-concordant")
    w("settings. Rules: (a) with BN, the error at p = 0.25 is above the error at p = 1 by more than the")
    w("tolerance and the errors over p = 1, 0.9, 0.75, 0.5, 0.25 are ordered (Spearman rank correlation of")
    w("error with p at most -0.8); (b) RndF+BN is below chance by at least half the way to FRSF+BN, and above")
    w("FRSF+BN by more than the tolerance.")
    w("")
    w("| data set | net | regime | p=1 | 0.9 | 0.75 | 0.5 | 0.25 | rank corr. | ordered |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    t2a = Tally()
    for (g, d, net) in data_sets:
        for rg in ("bn", "bn+bm"):
            ps = [("frsf", 1.0), ("partial:0.9", 0.9), ("partial:0.75", 0.75), ("partial:0.5", 0.5), ("partial:0.25", 0.25)]
            cs = [cells.get((g, d, net, f, rg)) for f, _ in ps]
            if not all(cs):
                continue
            ms = [c.best()[0] for c in cs]
            rho = spearman([p for _, p in ps], ms)
            good = rho <= -0.8 and ms[-1] - ms[0] > tol(cs[0], cs[-1])
            if rg == "bn":
                t2a.add(d, good)
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s |" % (d, short_net(net), REGIME_NAMES[rg],
                                                                      *[c.fmt() for c in cs], rho, "yes" if good else "no"))
    w("")
    w("(a) ordered by concordance with BN: **%s.**" % verdict(t2a))
    w("")
    w("| data set | net | chance | FRSF+BN | RndF+BN | RndF far above chance | RndF below FRSF |")
    w("|---|---|---|---|---|---|---|")
    t2b = Tally()
    for (g, d, net) in data_sets:
        fr, rn = cells.get((g, d, net, "frsf", "bn")), cells.get((g, d, net, "rndf", "bn"))
        if not (fr and rn) or d not in chance:
            continue
        ch = chance[d]
        far = rn.best()[0] <= ch - 0.5 * (ch - fr.best()[0])
        below = rn.best()[0] - fr.best()[0] > tol(fr, rn)
        t2b.add(d, far and below)
        w("| %s | %s | %.1f | %s | %s | %s | %s |" % (d, short_net(net), 100 * ch, fr.fmt(), rn.fmt(), "yes" if far else "no",
                                                     "yes" if below else "no"))
    w("")
    w("(b) RndF with BN far above chance and below the sign-concordant settings: **%s.**" % verdict(t2b))
    w("")

    # claim 3
    w("### 3. Sign-concordant feedback with random magnitudes matches or beats SGD-trained BP")
    w("")
    w("The paper: BRSF or FRSF (with BN and/or BM) reach the error of ordinary backprop trained with SGD.")
    w("Rule: the better of BRSF+BN+BM and FRSF+BN+BM is at most the tolerance above BP+SGD (plain), and")
    w("(a stricter reading) above BP+BN+SGD.")
    w("")
    w("| data set | net | BP SGD | BP BN | best of BRSF/FRSF BN+BM | matches BP SGD | matches BP BN |")
    w("|---|---|---|---|---|---|---|")
    t3a, t3b = Tally(), Tally()
    for (g, d, net) in data_sets:
        bp, bpbn = cells.get((g, d, net, "sym", "sgd")), cells.get((g, d, net, "sym", "bn"))
        cand = [c for c in (cells.get((g, d, net, "brsf", "bn+bm")), cells.get((g, d, net, "frsf", "bn+bm"))) if c]
        if not (bp and bpbn and cand):
            continue
        best = min(cand, key=lambda c: c.best()[0])
        m1 = best.best()[0] - bp.best()[0] <= tol(best, bp)
        m2 = best.best()[0] - bpbn.best()[0] <= tol(best, bpbn)
        t3a.add(d, m1)
        t3b.add(d, m2)
        w("| %s | %s | %s | %s | %s | %s | %s |" % (d, short_net(net), bp.fmt(), bpbn.fmt(), best.fmt(), "yes" if m1 else "no",
                                                   "yes" if m2 else "no"))
    w("")
    w("Against BP with plain SGD: **%s**; against BP with BN: **%s.**" % (verdict(t3a), verdict(t3b)))
    w("")

    # claim 4
    w("### 4. Without BN or BM the asymmetric settings fail; BN and BM each restore learning, together usually best")
    w("")
    w("Rules: (a) uSF, BRSF and FRSF with plain SGD end at least half-way to chance from their BN error")
    w("(they fail); (b) each of BN and BM alone brings them below that half-way mark; (c) BN+BM is the best")
    w("of the four regimes (within the tolerance) for the sign-concordant settings; (d) BM also works for")
    w("ordinary BP: BP+BM within the tolerance of BP+SGD or better.")
    w("")
    w("| data set | net | setting | SGD | BM | BN | BN+BM | fails w/o | BN helps | BM helps | BN+BM best |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    counts = {k: Tally() for k in "abcd"}
    disagree = []
    for (g, d, net) in data_sets:
        if d not in chance:
            continue
        ch = chance[d]
        for f in ("usf", "brsf", "frsf"):
            cs = {rg: cells.get((g, d, net, f, rg)) for rg in REGIMES}
            if not all(cs.values()):
                continue
            e = {rg: cs[rg].best()[0] for rg in REGIMES}
            half = 0.5 * (ch + min(e["bn"], e["bn+bm"]))
            fails = e["sgd"] >= half
            bnh, bmh = e["bn"] < half, e["bm"] < half
            best_rg = min(REGIMES, key=lambda r: e[r])
            bnbm = e["bn+bm"] - e[best_rg] <= tol(cs["bn+bm"], cs[best_rg])
            for k, v in (("a", fails), ("b", bnh and bmh), ("c", bnbm)):
                counts[k].add(d, v)
            if not bnbm and cs["bn"] and e["bn"] < e["bn+bm"]:
                disagree.append("%s (%s, %s): BN+SGD %s vs BN+BM %s" % (d, short_net(net), fb_name(f), cs["bn"].fmt(),
                                                                      cs["bn+bm"].fmt()))
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                d, short_net(net), fb_name(f), cs["sgd"].fmt(), cs["bm"].fmt(), cs["bn"].fmt(), cs["bn+bm"].fmt(),
                "yes" if fails else "no", "yes" if bnh else "no", "yes" if bmh else "no", "yes" if bnbm else "no"))
        bp, bpbm = cells.get((g, d, net, "sym", "sgd")), cells.get((g, d, net, "sym", "bm"))
        if bp and bpbm:
            counts["d"].add(d, bpbm.best()[0] - bp.best()[0] <= tol(bp, bpbm))
    w("")
    w("(a) fail without BN or BM: **%s**; (b) BN and BM each restore learning: **%s**; (c) BN+BM the best"
      " regime: **%s**; (d) BM works for BP: **%s.**" % tuple(verdict(counts[k]) for k in "abcd"))
    w("")
    if disagree:
        w("Where BN with SGD beats BN+BM (the paper reports BN+BM as usually best): " + "; ".join(disagree) + ".")
        w("")
    return out


def spearman(x, y):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r
    if len(x) < 2 or any(math.isnan(v) for v in y):
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else float("nan")


# ---- plot sections ------------------------------------------------------------------------------

def plot_sections(P, cells, final, data_sets, a):
    out = []
    w = out.append
    w("## Plots")
    w("")
    # error against concordance p, per regime, for each conv-net data set (and digits8x8)
    conv = [k for k in data_sets if ("conv" in k[2] or k[2] == "paper-cnn")]
    if conv:
        w("### Error against sign concordance")
        w("")
        w("Test error against the share p of feedback signs that agree with W (p = 1: FRSF; partial p below), per")
        w("regime; BP (sym) and RndF as horizontal references in the BN panel's key.")
        w("")
    for (g, d, net) in conv:
        lines = []
        for f, p in sorted(CONCORDANCE.items(), key=lambda t: -t[1]):
            vals = []
            for rg in REGIMES:
                c = cells.get((g, d, net, f, rg))
                m, s = c.best() if c else (float("nan"), float("nan"))
                vals += ["%.5f" % (100 * m) if not math.isnan(m) else "NaN", "%.5f" % (100 * s) if not math.isnan(s) else "0"]
            lines.append("%.2f %s" % (p, " ".join(vals)))
        if len(lines) < 2:
            continue
        dat = P.data("conc-%s-%s.dat" % (d, abs(hash(net)) % 10000), lines)
        refs = []
        for f, style in (("sym", "dt 2"), ("rndf", "dt 3")):
            c = cells.get((g, d, net, f, "bn"))
            if c and not math.isnan(c.best()[0]):
                refs.append("%.5f with lines %s lc rgb 'gray40' title '%s BN'" % (100 * c.best()[0], style, fb_name(f)))
        plots = ", ".join("'%s' using 1:%d:%d with yerrorlines title '%s'" % (dat, 2 + 2 * i, 3 + 2 * i, REGIME_NAMES[rg])
                          for i, rg in enumerate(REGIMES))
        if refs:
            plots += ", " + ", ".join(refs)
        script = ('set title "%s, %s: test error against sign concordance"\nset xlabel "sign concordance p"\n'
                  'set ylabel "test error (%%)"\nset xrange [0.2:1.05]\nset logscale y\nset key outside right\nplot %s\n'
                  % (d, net, plots))
        w(P.plot("concordance-%s-%s" % (d, "cnn" if net == "paper-cnn" else "small"), script))
        w("")
    # error sent down per layer over training (diag), uSF and RndF in the four regimes
    sets = [k for k in conv if k[1] == "digits20x20"] or conv[:1]
    for (g, d, net) in sets:
        panels = []
        for f in ("usf", "rndf"):
            for rg in REGIMES:
                c = cells.get((g, d, net, f, rg))
                if not c:
                    continue
                r = sorted(c.rows, key=lambda r: r["seed"])[0]
                rows = read_csv_dicts(os.path.join(run_dir(r), "curves.csv"))
                if not rows or "delta_norm_1" not in rows[0]:
                    continue
                layers = sorted(int(k.split("_")[-1]) for k in rows[0] if k.startswith("delta_norm_"))
                lines = ["%s %s" % (x["epoch"], " ".join(x.get("delta_norm_%d" % l, "NaN") or "NaN" for l in layers)) for x in rows]
                dat = P.data("dn-%s-%s.dat" % (f, rg), lines)
                plots = ", ".join("'%s' using 1:%d with linespoints title 'layer %d'" % (dat, 2 + i, l)
                                  for i, l in enumerate(layers) if l > 0)
                panels.append('set title "%s %s"\nplot %s\n' % (fb_name(f), REGIME_NAMES[rg], plots))
        if panels:
            w("### The error sent down, layer by layer (exploding and vanishing errors)")
            w("")
            w("Norm of the error each weighted layer sends to the layer below, at the end of every epoch (seed 1,")
            w("%s, %s); weighted layers numbered from the bottom. Without BN or BM the asymmetric error grows or" % (d, net))
            w("shrinks from layer to layer, as the paper describes.")
            w("")
            script = ('set multiplot layout 2,4\nset logscale y\nset xlabel "epoch"\nset ylabel "norm"\nset key top left font ",7"\n'
                      + "".join(panels) + "unset multiplot\n")
            w(P.plot("delta-norms-%s" % d, script, width=1400, height=650))
            w("")
    # angle to the backprop error over training (probe.csv), BN regime: the alignment grid when it
    # has run, else the conv-net grid's own runs
    al = sorted({(k[0], k[1], k[2]) for k in cells if k[0] == "alignment"})
    for (g, d, net) in (al or sets):
        series = []
        for f in ("sym", "usf", "brsf", "frsf", "rndf", "dfa", "kp", "mirror"):
            c = cells.get((g, d, net, f, "bn"))
            if not c:
                continue
            r = sorted(c.rows, key=lambda r: r["seed"])[0]
            rows = read_csv_dicts(os.path.join(run_dir(r), "probe.csv"))
            if not rows:
                continue
            # mean over the hidden weighted layers of the angle between the error each received
            # and backprop's (recv_angle_bp: every policy, DFA included; older probe files only
            # have the error sent down, delta_angle_bp), per probed step
            col = "recv_angle_bp" if "recv_angle_bp" in rows[0] else "delta_angle_bp"
            top = max(int(x["layer"]) for x in rows)
            by = {}
            for x in rows:
                v = fnum(x[col])
                if col == "recv_angle_bp" and int(x["layer"]) == top:
                    continue   # the classifier receives the exact error
                if not math.isnan(v):
                    by.setdefault(int(x["step"]), []).append(v)
            if by:
                series.append((f, P.data("angle-%s.dat" % f, ["%d %.4f" % (s, statistics.fmean(v)) for s, v in sorted(by.items())])))
        if series:
            w("### Angle between the error sent down and backprop's")
            w("")
            w("Every few steps the exact-backprop probe computes, on the same batch, the error backprop would send")
            w("down; the angle between the two, averaged over the layers that send one (BN regime, seed 1, %s, %s)." % (d, net))
            w("")
            plots = ", ".join("'%s' using 1:2 with lines lw 2 title '%s'" % (p, fb_name(f)) for f, p in series)
            w(P.plot("angle-bp-%s" % d, 'set xlabel "step"\nset ylabel "angle (degrees)"\nset yrange [0:100]\nset key outside right\nplot %s\n' % plots))
            w("")
    # Fashion-MNIST curves per setting (BN+BM and BN)
    fash = [k for k in data_sets if k[1] == "fashion-mnist"]
    for (g, d, net) in fash:
        panels = []
        for rg in ("bn", "bn+bm"):
            series = []
            for f in FEEDBACK_ORDER:
                c = cells.get((g, d, net, f, rg))
                if not c:
                    continue
                r = sorted(c.rows, key=lambda r: r["seed"])[0]
                rows = read_csv_dicts(os.path.join(run_dir(r), "curves.csv"))
                if rows:
                    series.append((f, P.data("fc-%s-%s.dat" % (rg, f), ["%s %.5f" % (x["epoch"], 100 * (1 - fnum(x["test_accuracy"])))
                                                                        for x in rows])))
            if series:
                panels.append('set title "%s"\nplot %s\n' % (REGIME_NAMES[rg], ", ".join(
                    "'%s' using 1:2 with linespoints title '%s'" % (p, fb_name(f)) for f, p in series)))
        if panels:
            w("### Fashion-MNIST: test error per epoch")
            w("")
            w(P.plot("curves-fashion", 'set multiplot layout 1,2\nset xlabel "epoch"\nset ylabel "test error (%%)"\n'
                     'set logscale y\nset key top right font ",7"\n' + "".join(panels) + "unset multiplot\n", width=1300, height=480))
            w("")
    # EMA against re-estimated statistics under constant-rate BM
    em = [r for r in final if r["grid"] == "emarecal"]
    if em:
        w("### BN statistics under constant-rate Batch Manhattan: running averages against re-estimation")
        w("")
        w("Each epoch of a BN+BM run at a constant step size is evaluated twice: with the running averages (EMA,")
        w("momentum 0.1) of the BN statistics, and with statistics re-estimated on training batches at the")
        w("current weights (the batch-norm paper's inference procedure). Solid: re-estimated; dashed: EMA.")
        w("")
        series = []
        for f in FEEDBACK_ORDER:
            rs = sorted([r for r in em if r["feedback"] == f], key=lambda r: r["seed"])
            if not rs:
                continue
            rows = read_csv_dicts(os.path.join(run_dir(rs[0]), "curves.csv"))
            if rows:
                series.append((f, P.data("em-%s.dat" % f, ["%s %.5f %.5f" % (x["epoch"], 100 * (1 - fnum(x["test_accuracy"])),
                                                                               100 * (1 - fnum(x["test_accuracy_ema"]))) for x in rows])))
        if series:
            plots = []
            for i, (f, p) in enumerate(series):
                plots.append("'%s' using 1:2 with linespoints lc %d title '%s re-estimated'" % (p, i + 1, fb_name(f)))
                plots.append("'%s' using 1:3 with linespoints dt 2 lc %d title '%s EMA'" % (p, i + 1, fb_name(f)))
            w(P.plot("ema-vs-recal", 'set xlabel "epoch"\nset ylabel "test error (%%)"\nset logscale y\nset key outside right\nplot %s\n'
                     % ", ".join(plots)))
            w("")
            w("| feedback | seeds | error, re-estimated (last epoch) | error, EMA (last epoch) | EMA, worst epoch |")
            w("|---|---|---|---|---|")
            for f in FEEDBACK_ORDER:
                rs = [r for r in em if r["feedback"] == f]
                if not rs:
                    continue
                c = Cell(rs)
                worst = []
                for r in rs:
                    rows = read_csv_dicts(os.path.join(run_dir(r), "curves.csv"))
                    worst += [1 - fnum(x["test_accuracy_ema"]) for x in rows[2:]]
                mr, sr = Cell._ms(c.err_last)
                me, se = Cell._ms(c.err_ema)
                w("| %s | %d | %.1f ± %.1f | %.1f ± %.1f | %.1f |" % (fb_name(f), c.n, 100 * mr, 100 * sr, 100 * me, 100 * se,
                                                                    100 * max(worst) if worst else float("nan")))
            w("")
    return out


if __name__ == "__main__":
    sys.exit(main())
