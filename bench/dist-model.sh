#!/bin/sh
# The speed-up model of docs/distributed.md ("On paper: 8, 32 and 128 machines"), as a table.
#   sh bench/dist-model.sh CNN_MS_PER_IMAGE MLP_MS_PER_IMAGE
# Inputs: compute time per image of one training step on one rank (forward + backward + update),
# measured with `make bench-dist` (1 rank x 1 thread, batch 100).  Assumptions (see the doc):
# ring allreduce, each rank sends and receives 2 (R - 1) / R times the payload; 2 (R - 1) message
# steps of latency alpha; 80 % of the line rate; no overlap of communication with computation; a
# machine computes like one core of this one.
cnn=${1:?ms per image, paper CNN}
mlp=${2:?ms per image, MLP}
awk -v cnn="$cnn" -v mlp="$mlp" 'BEGIN {
    split("8 32 128", R, " ");
    P["paper-cnn"] = 115306; P["mlp"] = 669706; T["paper-cnn"] = cnn; T["mlp"] = mlp;
    split("10 100", G, " "); alpha[10] = 25e-6; alpha[100] = 5e-6;
    for (scen = 1; scen <= 2; scen++) {
        if (scen == 1) print "Weak scaling: 100 images per machine and step (global batch 100 R); speed-up = images/s against one machine";
        else print "Strong scaling: a global batch of 1024 images; speed-up = images/s against one machine with the whole batch";
        printf "%-10s %-6s %-6s %9s %9s %9s %9s %9s %9s\n", "model", "Gbit/s", "mode", "8", "32", "128", "comm@8", "comm@32", "comm@128";
        for (m = 1; m <= 2; m++) {
            model = m == 1 ? "paper-cnn" : "mlp";
            for (g = 1; g <= 2; g++) {
                bw = G[g] * 1e9 / 8 * 0.8;
                for (mode = 1; mode <= 2; mode++) {
                    line = sprintf("%-10s %-6s %-6s", model, G[g], mode == 1 ? "exact" : "vote");
                    cl = "";
                    for (k = 1; k <= 3; k++) {
                        r = R[k];
                        bytes = mode == 1 ? 4 * (P[model] + 1) : (r <= 127 ? 1 : 2) * (P[model] + 1);
                        comm = 2 * (r - 1) / r * bytes / bw + 2 * (r - 1) * alpha[G[g]];
                        if (scen == 1) { t1 = 100 * T[model] / 1e3; s = r * t1 / (t1 + comm) }
                        else { t1 = 1024 * T[model] / 1e3; s = t1 / (t1 / r + comm) }
                        line = line sprintf(" %9.1f", s);
                        cl = cl sprintf(" %8.2fms", 1e3 * comm);
                    }
                    print line cl;
                }
            }
        }
        print "";
    }
}'
