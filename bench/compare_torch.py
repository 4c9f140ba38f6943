#!/usr/bin/python3
"""asymbp against PyTorch on the same CPU, side by side in one run.

    /usr/bin/python3 bench/compare_torch.py BENCH [--rounds N] [--only mlp|paper-cnn] [--json FILE]

BENCH is the path of bench/asymbp-bench.  For every configuration of the issue's table (paper-cnn
and mlp; sym+sgd at 1 and 2 threads, usf+sgd, brsf+sgd, sym+bm, sym+sgd+bn; batch 100) it runs
asymbp-bench --json and the same net in PyTorch (Debian's python3-torch, CPU), interleaved, and
prints images/s of both and the ratio asymbp/PyTorch.  With several rounds each figure is the
median over the rounds and each ratio the median of the per-round ratios, so slow phases of a
shared machine hit both sides alike.  A second table gives the issue's targets from the same run.

PyTorch side: the paper CNN (conv5x5x32 p2, ReLU, maxpool 3/2, conv5x5x32 p2, ReLU, avgpool 3/2,
conv5x5x64 p2, ReLU, avgpool 3/2, fc64, ReLU, fc10; pools in ceil mode) and the MLP 784-512-512-10
with ReLU; BN (when on) after every conv/fc but the classifier, before the ReLU, as asymbp does;
SGD with momentum 0.9 (torch.optim.SGD); Batch Manhattan = the sign of every gradient before that
step; uSF/BRSF = a custom autograd Function whose backward sends the delta down through sign(W)
(uSF) or |N(0,1)| o sign(W) redrawn every step (BRSF) instead of W.

The FMA ceiling (`BENCH --ceiling`: 12 independent chains of 8-wide AVX2 FMAs on one core, and
16-wide AVX-512 ones) is measured at the start of every round; each row gives the best and the
median images/s of each side over the rounds and its GFLOP/s (counted FLOPs x images/s) as a
fraction of the median AVX2 ceiling (of twice it for 2-thread rows).  `make bench-compare` runs
this script.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# PyTorch's OpenMP threads must not spin while asymbp-bench (a child process) uses the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit("compare_torch.py: PyTorch is not importable (%s); on Debian: apt-get install python3-torch, "
             "and run it with /usr/bin/python3" % e)

# PyTorch (Debian's build) runs its matrix products through OpenBLAS, whose own thread pool
# torch.set_num_threads does not limit: without this, "1 thread" PyTorch runs its Linear layers on
# two cores.  Find the OpenBLAS torch loaded and set its thread count with the rest.
def _openblas_setter():
    import ctypes
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "openblas" in line and ".so" in line:
                    paths.add(line.split()[-1])
    except OSError:
        return None
    for path in sorted(paths):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads
            fn.argtypes = [ctypes.c_int]
            return fn
        except (OSError, AttributeError):
            continue
    return None


OPENBLAS_SET_THREADS = _openblas_setter()

CONFIGS = [  # (label, feedback, update, bn, threads)
    ("sym+sgd 1t", "sym", "sgd", False, 1),
    ("sym+sgd 2t", "sym", "sgd", False, 2),
    ("usf+sgd", "usf", "sgd", False, 1),
    ("brsf+sgd", "brsf", "sgd", False, 1),
    ("sym+bm", "sym", "bm", False, 1),
    ("sym+sgd+bn", "sym", "sgd", True, 1),
]
MODELS = ["paper-cnn", "mlp"]


# ---- PyTorch nets ----------------------------------------------------------------------------

def feedback_matrix(w, mode):
    s = torch.sign(w)
    if mode == "brsf":
        return s * torch.randn_like(w).abs_()
    return s


class AsymLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, mode):
        ctx.save_for_backward(x, w)
        ctx.mode = mode
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx = gy.mm(feedback_matrix(w, ctx.mode)) if ctx.needs_input_grad[0] else None
        return gx, gy.t().mm(x), gy.sum(0), None


class AsymConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, pad, mode):
        ctx.save_for_backward(x, w)
        ctx.pad, ctx.mode = pad, mode
        return F.conv2d(x, w, b, padding=pad)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        # one call gives the input gradient through V and the weight and bias gradients (which
        # do not depend on the weight values)
        v = feedback_matrix(w, ctx.mode)
        gx, gw, gb = torch.ops.aten.convolution_backward(
            gy, x, v, [w.shape[0]], [1, 1], [ctx.pad, ctx.pad], [1, 1], False, [0, 0], 1,
            [ctx.needs_input_grad[0], True, True])
        return gx, gw, gb, None, None


class Linear(nn.Linear):
    def __init__(self, n_in, n_out, mode):
        super().__init__(n_in, n_out)
        self.mode = mode

    def forward(self, x):
        if self.mode == "sym":
            return super().forward(x)
        return AsymLinearFn.apply(x, self.weight, self.bias, self.mode)


class Conv2d(nn.Conv2d):
    def __init__(self, c_in, c_out, k, pad, mode):
        super().__init__(c_in, c_out, k, padding=pad)
        self.mode, self.pad = mode, pad

    def forward(self, x):
        if self.mode == "sym":
            return super().forward(x)
        return AsymConv2dFn.apply(x, self.weight, self.bias, self.pad, self.mode)


def make_net(model, feedback, bn):
    layers = []
    if model == "paper-cnn":
        c_in = 1
        for c_out, pool in ((32, "max"), (32, "avg"), (64, "avg")):
            layers.append(Conv2d(c_in, c_out, 5, 2, feedback))
            if bn:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True) if pool == "max" else nn.AvgPool2d(3, 2, ceil_mode=True))
            c_in = c_out
        layers.append(nn.Flatten())
        layers.append(Linear(64 * 3 * 3, 64, feedback))
        if bn:
            layers.append(nn.BatchNorm1d(64))
        layers.append(nn.ReLU())
        layers.append(Linear(64, 10, feedback))
        shape = (1, 28, 28)
    elif model == "mlp":
        layers.append(nn.Flatten())
        n_in = 784
        for h in (512, 512):
            layers.append(Linear(n_in, h, feedback))
            if bn:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            n_in = h
        layers.append(Linear(n_in, 10, feedback))
        shape = (1, 28, 28)
    else:
        raise ValueError(model)
    return nn.Sequential(*layers), shape


def torch_bench(model, feedback, update, bn, threads, batch, steps, epochs, warmup, lr, momentum):
    torch.set_num_threads(threads)
    if OPENBLAS_SET_THREADS is not None:
        OPENBLAS_SET_THREADS(threads)
    torch.manual_seed(1)
    net, shape = make_net(model, feedback, bn)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    pool = 8
    xs = [torch.rand((batch,) + shape) * 2 - 1 for _ in range(pool)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(pool)]
    params = list(net.parameters())
    ips, ipc = [], []
    k = 0
    for e in range(-warmup, epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x, y = xs[k], ys[k]
            k = (k + 1) % pool
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            if update == "bm":
                with torch.no_grad():
                    for p in params:
                        p.grad.sign_()
            opt.step()
        t1, c1 = time.perf_counter(), time.process_time()
        if e >= 0:
            ips.append(steps * batch / (t1 - t0))
            ipc.append(steps * batch / (c1 - c0) if c1 > c0 else 0.0)
    return {"images_per_s": statistics.median(ips), "images_per_cpu_s": statistics.median(ipc),
            "images_per_s_min": min(ips),
            "images_per_s_max": max(ips), "final_loss": float(loss)}


# ---- asymbp side ------------------------------------------------------------------------------

def asymbp_bench(path, model, feedback, update, bn, threads, batch, steps, epochs, warmup, lr, momentum):
    cmd = [path, "--model", model, "--feedback", feedback, "--update", update, "--threads", str(threads),
           "--batch", str(batch), "--steps", str(steps), "--epochs", str(epochs), "--warmup", str(warmup),
           "--lr", repr(lr), "--momentum", repr(momentum), "--json"]
    if bn:
        cmd.append("--bn")
    env = dict(os.environ)
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS"):
        env.pop(v, None)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, universal_newlines=True)
    if out.returncode != 0:
        sys.exit("compare_torch.py: %s failed (%d):\n%s" % (" ".join(cmd), out.returncode, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", help="path of asymbp-bench")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--only", choices=MODELS, help="one model only")
    ap.add_argument("--configs", help="comma-separated labels to run (default: all), e.g. 'sym+sgd 1t,usf+sgd'")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per run (median)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cnn-steps", type=int, default=10, help="steps per epoch for paper-cnn")
    ap.add_argument("--mlp-steps", type=int, default=100, help="steps per epoch for mlp")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--json", help="write every raw figure to this file")
    ap.add_argument("--from-json", help="print the tables of a file written by --json instead of measuring")
    a = ap.parse_args()
    if not a.from_json and not os.access(a.bench, os.X_OK):
        sys.exit("compare_torch.py: %s is not an executable (build it with make bench)" % a.bench)
    models = [a.only] if a.only else MODELS
    configs = CONFIGS
    if a.configs:
        want = [c.strip() for c in a.configs.split(",")]
        configs = [c for c in CONFIGS if c[0] in want]
        if not configs:
            sys.exit("compare_torch.py: no configuration among %s" % [c[0] for c in CONFIGS])

    raw = {}  # (model, label) -> list of (asymbp json, torch dict)
    if a.from_json:
        with open(a.from_json) as f:
            saved = json.load(f)
        for run in sorted(saved["runs"], key=lambda r: r["round"]):
            raw.setdefault((run["model"], run["config"]), []).append((run["asymbp"], run["torch"]))
        models = [m for m in MODELS if any(k[0] == m for k in raw)]
        configs = [c for c in configs if any(k[1] == c[0] for k in raw)]
        a.rounds = 0
        a.json = None
        print("# tables of %s (PyTorch %s, batch %d, %d round(s))" % (a.from_json, saved["torch"], saved["batch"],
                                                                    saved["rounds"]))
    else:
        print("# asymbp vs PyTorch %s, batch %d, %d round(s), %d timed epochs (cnn %d / mlp %d steps) per run; "
          "OMP_WAIT_POLICY=%s; PyTorch's OpenBLAS threads %s" % (torch.__version__, a.batch, a.rounds, a.epochs,
                                  a.cnn_steps, a.mlp_steps, os.environ.get("OMP_WAIT_POLICY"),
                                  "set with torch's" if OPENBLAS_SET_THREADS else "NOT controlled"), flush=True)
    ceilings = []
    if a.from_json:
        ceilings = saved.get("ceilings", [])
    turn = 0
    for r in range(a.rounds):
        out = subprocess.run([a.bench, "--ceiling", "--json"], stdout=subprocess.PIPE, universal_newlines=True)
        if out.returncode == 0:
            ceilings.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print("  round %d FMA ceiling of one core: %.1f GFLOP/s (AVX2), %.1f (AVX-512)" % (
                r + 1, ceilings[-1]["fma_avx2_gflops"], ceilings[-1]["fma_avx512_gflops"]), flush=True)
        for model in models:
            steps = a.cnn_steps if model == "paper-cnn" else a.mlp_steps
            for label, fb, upd, bn, thr in configs:
                # alternate which side goes first, so a trend in the machine's load hits both
                sides = ["asymbp", "torch"] if (r + turn) % 2 == 0 else ["torch", "asymbp"]
                turn += 1
                res = {}
                for side in sides:
                    if side == "asymbp":
                        res[side] = asymbp_bench(a.bench, model, fb, upd, bn, thr, a.batch, steps, a.epochs,
                                                 a.warmup, a.lr, a.momentum)
                    else:
                        res[side] = torch_bench(model, fb, upd, bn, thr, a.batch, steps, a.epochs, a.warmup, a.lr,
                                                a.momentum)
                raw.setdefault((model, label), []).append((res["asymbp"], res["torch"]))
                x, t = res["asymbp"], res["torch"]
                print("  round %d %-9s %-11s asymbp %8.1f  torch %8.1f  ratio %.2f  per cpu-s %.2f  (load %.1f)" % (
                    r + 1, model, label, x["images_per_s"], t["images_per_s"], x["images_per_s"] / t["images_per_s"],
                    x["images_per_cpu_s"] / t["images_per_cpu_s"] if t["images_per_cpu_s"] else 0.0,
                    os.getloadavg()[0]), flush=True)

    def med(xs):
        return statistics.median(xs)

    ceil8 = med([c["fma_avx2_gflops"] for c in ceilings]) if ceilings else 0.0
    ceil16 = med([c["fma_avx512_gflops"] for c in ceilings]) if ceilings else 0.0
    print()
    if ceilings:
        print("FMA ceiling of one core (median of %d rounds): %.1f GFLOP/s with AVX2 (8-wide), %.1f with AVX-512 "
              "(16-wide); \"of ceiling\" below is against the AVX2 figure (x2 for 2 threads)." % (
                  len(ceilings), ceil8, ceil16))
        print()
    print("| model | config | asymbp images/s median (best) | PyTorch images/s median (best) | asymbp/PyTorch "
          "(median of rounds) | asymbp of ceiling | PyTorch of ceiling | per CPU-s: asymbp/PyTorch "
          "| allocs/step | peak RSS MB (theoretical MB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for model in models:
        for label, fb, upd, bn, thr in configs:
            runs = raw[(model, label)]
            ai = med([x["images_per_s"] for x, _ in runs])
            ti = med([t["images_per_s"] for _, t in runs])
            ab = max(x["images_per_s"] for x, _ in runs)
            tb = max(t["images_per_s"] for _, t in runs)
            ratio = med([x["images_per_s"] / t["images_per_s"] for x, t in runs])
            cratio = med([x["images_per_cpu_s"] / t["images_per_cpu_s"] for x, t in runs])
            mflop = runs[0][0]["mflop_per_image"]
            cap = ceil8 * thr
            af = "%.0f %%" % (100 * ai * mflop / 1e3 / cap) if cap else "-"
            tf = "%.0f %%" % (100 * ti * mflop / 1e3 / cap) if cap else "-"
            al = max(x["allocs_per_step"] for x, _ in runs)
            rss = max(x["peak_rss_mb"] for x, _ in runs)
            theo = runs[0][0]["theoretical_mb"]
            summary[(model, label)] = {"asymbp": ai, "torch": ti, "ratio": ratio, "cratio": cratio,
                                       "of_ceiling": ai * mflop / 1e3 / cap if cap else None}
            print("| %s | %s | %.0f (%.0f) | %.0f (%.0f) | %.2f | %s | %s | %.2f | %g | %.1f (%.1f) |" % (
                model, label, ai, ab, ti, tb, ratio, af, tf, cratio, al, rss, theo))

    # targets, each from figures of the same round; "cpu" = images per CPU-second, which a loaded
    # machine disturbs much less than images per wall-second for 1-thread runs
    def per_round(model, num, den, side="asymbp", key="images_per_s"):
        a_runs, b_runs = raw.get((model, num)), raw.get((model, den))
        if not a_runs or not b_runs:
            return None
        i = 0 if side == "asymbp" else 1
        return med([x[i][key] / y[i][key] for x, y in zip(a_runs, b_runs)])

    print()
    print("| model | target | asymbp (wall) | asymbp (per CPU-s) | PyTorch (wall) | PyTorch (per CPU-s) | met (wall / CPU) |")
    print("|---|---|---:|---:|---:|---:|:---:|")

    def yn(b):
        return "yes" if b else "**no**"

    for model in models:
        rows = []
        s = summary.get((model, "sym+sgd 1t"))
        # issue 17: paper CNN >= 80 % of the ceiling on 1 thread and >= 3.4k images/s on 2; MLP >= 85 %
        goal = 0.80 if model == "paper-cnn" else 0.85
        for lab in ("sym+sgd 1t", "sym+sgd+bn"):
            s2 = summary.get((model, lab))
            if s2 and s2["of_ceiling"] is not None and (model == "paper-cnn" or lab == "sym+sgd 1t"):
                rows.append(("%s 1 thread >= %d %% of the FMA ceiling" % (lab.replace(" 1t", ""), 100 * goal),
                             "%.0f %%" % (100 * s2["of_ceiling"]), "-", "-", "-", yn(s2["of_ceiling"] >= goal)))
        s2 = summary.get((model, "sym+sgd 2t"))
        if s2 and model == "paper-cnn":
            rows.append(("sym+sgd 2 threads >= 3.4k images/s", "%.0f" % s2["asymbp"], "-", "%.0f" % s2["torch"], "-",
                         yn(s2["asymbp"] >= 3400)))
        if s:
            rows.append(("sym+sgd 1 thread vs PyTorch (median of rounds)", "%.2fx" % s["ratio"], "%.2fx" % s["cratio"],
                         "1.00x", "1.00x", "%s / %s" % (yn(s["ratio"] >= 1.0), yn(s["cratio"] >= 1.0))))
        sp = per_round(model, "sym+sgd 2t", "sym+sgd 1t")
        if sp is not None:
            rows.append(("2 threads / 1 thread > 1 (wall only)", "%.2fx" % sp, "-",
                         "%.2fx" % per_round(model, "sym+sgd 2t", "sym+sgd 1t", "torch"), "-", yn(sp > 1.0)))
        for lab, lim, what in (("usf+sgd", 0.05, "uSF over sym <= 5 %"), ("brsf+sgd", 0.05, "BRSF over sym <= 5 %"),
                               ("sym+bm", 0.02, "BM over SGD <= 2 %"), ("sym+sgd+bn", 0.08, "BN over no BN <= 8 %")):
            q = per_round(model, lab, "sym+sgd 1t")
            if q is None:
                continue
            qc = per_round(model, lab, "sym+sgd 1t", key="images_per_cpu_s")
            qt = per_round(model, lab, "sym+sgd 1t", "torch")
            qtc = per_round(model, lab, "sym+sgd 1t", "torch", "images_per_cpu_s")
            # overhead = extra time per image = 1/ratio - 1
            rows.append((what, "%+.1f %%" % (100 * (1 / q - 1)), "%+.1f %%" % (100 * (1 / qc - 1)),
                         "%+.1f %%" % (100 * (1 / qt - 1)), "%+.1f %%" % (100 * (1 / qtc - 1)),
                         "%s / %s" % (yn(1 / q - 1 <= lim), yn(1 / qc - 1 <= lim))))
        allruns = [x for (m, _), v in raw.items() if m == model for x, _ in v]
        if allruns:
            al = max(x["allocs_per_step"] for x in allruns)
            rows.append(("allocations per step == 0", "%g" % al, "-", "-", "-", yn(al == 0)))
            worst = max((x["peak_rss_mb"] - x["rss_before_net_mb"]) / x["theoretical_mb"] for x in allruns)
            rows.append(("peak RSS - RSS before the net <= 1.5x theoretical", "%.2fx" % worst, "-", "-", "-",
                         yn(worst <= 1.5)))
        for row in rows:
            print("| %s | %s |" % (model, " | ".join(row)))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "batch": a.batch, "rounds": a.rounds, "ceilings": ceilings,
                       "runs": [{"model": m, "config": l, "round": i + 1, "asymbp": x, "torch": t}
                                for (m, l), v in raw.items() for i, (x, t) in enumerate(v)]}, f, indent=1)
        print("\nraw figures written to %s" % a.json)


if __name__ == "__main__":
    main()
