/* The option table and everything made from it: parsing, --help, the man page, settings.txt. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

#define OFF(m) offsetof(settings_t, m)
#define TR CMD_TRAIN
#define EV CMD_EVAL
#define GC CMD_GRADCHECK
#define SW CMD_SWEEP

/* Each option once.  A value a run needs to be resumed has a settings.txt key. */
const cli_opt_t cli_opts[] = {
    /* data */
    { "--data", NULL, "NAME|DIR", OT_STR, 0, 0, "digits8x8", "Data",
      "a bundled set (digits8x8, digits20x20, letter, dna, soybean, ionosphere, sonar, glass, iris, wine, "
      "breast_cancer), a fetched one (mnist, fashion-mnist: run 'make data' first), or a folder holding "
      "train.csv + test.csv or the four IDX files", TR | EV, "data", OFF(data) },
    { "--train", NULL, "PATH", OT_STR, 0, 0, NULL, "Data",
      "explicit training file (CSV, or IDX images with the labels file beside); goes with --test", TR | EV, "train",
      OFF(train_path) },
    { "--test", NULL, "PATH", OT_STR, 0, 0, NULL, "Data", "explicit test file; goes with --train", TR | EV, "test",
      OFF(test_path) },
    { "--val-split", NULL, "F", OT_DOUBLE, 0, 0.9, "0", "Data",
      "hold out a stratified fraction F of the training set as a validation set, evaluated every epoch next to the "
      "test set (for choosing hyper-parameters and epochs without the test set)", TR, "val_split", OFF(val_split) },
    /* network */
    { "--net", NULL, "SPEC", OT_STR, 0, 0, NULL, "Network",
      "paper-cnn (default for images of 16x16 and more), mlp:H1,H2,... (mlp:128,64 for tables), or a layer list "
      "such as conv5x5x32p2,relu,maxpool3s2,fc64,relu,fc10", TR | GC, "net", OFF(net) },
    { "--bn", NULL, NULL, OT_FLAG, 0, 1, "off", "Network", "batch normalisation after every conv and hidden dense layer",
      TR | GC, "bn", OFF(bn) },
    { "--bn-stats", NULL, "ema|recal", OT_STR, 0, 0, "recal", "Network",
      "batch-norm statistics for evaluation and the saved model: recal re-estimates them on the training set at the "
      "current weights before every evaluation (the test set is also reported with the running averages, as "
      "test_accuracy_ema); ema uses the running averages (docs/protocol.md)", TR, "bn_stats", OFF(bn_stats) },
    { "--bn-recal-samples", NULL, "N", OT_U64, 0, 1e9, "10000", "Network",
      "training samples of each re-estimation (0: all)", TR, "bn_recal_samples", OFF(bn_recal_samples) },
    /* learning rule */
    { "--feedback", NULL, "F", OT_STR, 0, 0, "sym", "Learning rule",
      "sym (backprop), usf, brsf, frsf, partial:P, rndf, signed-init, dfa, kp, mirror, with options such as frsf:mag=uniform:scale=xavier "
      "(docs/feedback.md)", TR, "feedback", OFF(feedback) },
    { "--update", NULL, "U", OT_STR, 0, 0, "sgd", "Learning rule", "sgd, bm (Batch Manhattan), bm:b, bm:c, bm:nsc", TR,
      "update", OFF(update) },
    { "--lr", NULL, "X", OT_DOUBLE, 0, 1e6, "the rule's own: 0.01 for sgd, 0.0005 for bm rules", "Learning rule",
      "learning rate", TR, "lr", OFF(lr) },
    { "--momentum", NULL, "X", OT_DOUBLE, 0, 0.999999, "0.9", "Learning rule", "momentum", TR, "momentum", OFF(momentum) },
    { "--wd", NULL, "X", OT_DOUBLE, 0, 1, "0", "Learning rule", "weight decay (L2)", TR, "wd", OFF(wd) },
    { "--lr-steps", NULL, "E1,E2", OT_STEPS, 1, 100000, "", "Learning rule",
      "multiply the learning rate by --lr-gamma after epochs E1, E2, ...", TR, "lr_steps", OFF(lr_steps) },
    { "--lr-gamma", NULL, "X", OT_DOUBLE, 0, 1, "0.1", "Learning rule", "factor of each --lr-steps decay", TR, "lr_gamma",
      OFF(lr_gamma) },
    { "--lr-schedule", NULL, "S", OT_STR, 0, 0, "step", "Learning rule",
      "step (constant, or decays at --lr-steps) or cosine (from --lr down to --lr-min times it at the last step)", TR,
      "lr_schedule", OFF(lr_schedule) },
    { "--lr-min", NULL, "F", OT_DOUBLE, 0, 1, "0", "Learning rule", "cosine: the final learning rate as a fraction of --lr",
      TR, "lr_min", OFF(lr_min) },
    { "--warmup", NULL, "E", OT_DOUBLE, 0, 1000, "0", "Learning rule",
      "linear warm-up over the first E epochs (fractions allowed), with any schedule", TR, "warmup", OFF(warmup) },
    /* run */
    { "--epochs", NULL, "N", OT_INT, 1, 100000, "10", "Run", "passes over the training set", TR, "epochs", OFF(epochs) },
    { "--batch", NULL, "N", OT_U64, 1, 1 << 20, "100", "Run", "mini-batch size (the last batch of an epoch may be smaller)",
      TR | EV, "batch", OFF(batch) },
    { "--seed", NULL, "N", OT_U64, 0, 9e18, "1", "Run", "random seed of weights, feedback draws and shuffling", TR | GC,
      "seed", OFF(seed) },
    { "--threads", NULL, "N", OT_INT, 1, 256, "1", "Run", "worker threads of the library (results depend on it in the last bits)",
      TR, "threads", OFF(threads) },
    { "--out", NULL, "DIR", OT_STR, 0, 0, NULL, "Run",
      "write curves.csv, summary.json, settings.txt and model.asymbp into DIR (DIR must not hold a model already)", TR,
      NULL, OFF(out) },
    { "--checkpoint-every", NULL, "N", OT_INT, 0, 100000, "0", "Run",
      "with --out: write DIR/checkpoint.asymbp every N epochs and after the last", TR, "checkpoint_every",
      OFF(checkpoint_every) },
    { "--resume", NULL, "DIR", OT_STR, 0, 0, NULL, "Run",
      "continue the run saved in DIR with its settings (--epochs N extends it; --quiet applies)", TR, NULL,
      OFF(resume) },
    { "--diag", NULL, NULL, OT_FLAG, 0, 1, "off", "Run", "per-layer feedback diagnostics each epoch (stderr and curves.csv)",
      TR, "diag", OFF(diag) },
    { "--probe-every", NULL, "N", OT_U64, 0, 1e9, "0", "Run",
      "every N steps, compare the error each layer sent down with exact backprop's on the same batch (angles and "
      "norms into DIR/probe.csv; changes nothing in training)", TR, "probe_every", OFF(probe_every) },
    { "--quiet", "-q", NULL, OT_FLAG, 0, 1, "off", "Run", "no progress output on stderr", TR, NULL, OFF(quiet) },
    /* distributed training (issue 15; tools/dist.c, docs/distributed.md) */
    { "--dist", NULL, "local|mpi", OT_STR, 0, 0, NULL, "Distributed",
      "train data-parallel: mpi over the ranks of mpirun or srun (every rank runs the same command; loads the module "
      "libasymbp-mpi), local in this process only; the global batch is --batch, shared by the ranks", TR, NULL,
      OFF(dist) },
    { "--bm-mode", NULL, "exact|vote", OT_STR, 0, 0, "exact", "Distributed",
      "how the ranks combine their gradients: exact (sum them: one process's update on the global batch) or vote "
      "(each rank sends sign(g) as one byte and the update takes the majority; Batch Manhattan rules only)", TR,
      "bm_mode", OFF(bm_mode) },
    /* gradcheck */
    { "--input", NULL, "CxHxW|N", OT_STR, 0, 0, NULL, "Check", "input shape (N: N features)", GC, NULL, OFF(input) },
    { "--classes", NULL, "K", OT_U64, 2, 100000, NULL, "Check", "number of classes", GC, NULL, OFF(classes) },
    { "--batch", NULL, "N", OT_U64, 1, 64, "4", "Check", "samples of the random batch", GC, NULL, OFF(gc_batch) },
    /* sweep */
    { "--out", NULL, "DIR", OT_STR, 0, 0, "results/NAME", "Sweep", "results folder (NAME: the grid's name)", SW, NULL,
      OFF(sweep_out) },
    { "-j", NULL, "N", OT_INT, 1, 256, "1", "Sweep", "runs at once (each an asymbp train process)", SW, NULL, OFF(jobs) },
    { "--shard", NULL, "I/N", OT_STR, 0, 0, NULL, "Sweep",
      "only the tuning groups whose hash is I modulo N (0 <= I < N), for job arrays", SW, NULL, OFF(shard) },
    { "--dry-run", NULL, NULL, OT_FLAG, 0, 1, "off", "Sweep", "print the runs' commands, run nothing", SW, NULL,
      OFF(dry_run) },
    { "--dist", NULL, "mpi", OT_STR, 0, 0, NULL, "Sweep",
      "run under mpirun/srun: the ranks share the grid; rank 0 hands out runs as ranks become free and "
      "writes every row into the one DIR/runs.csv (DIR on a folder every rank sees)", SW, NULL, OFF(dist) },
};
const size_t cli_opt_count = sizeof cli_opts / sizeof cli_opts[0];

int opt_find(unsigned cmd, const char *name)
{
    for (size_t i = 0; i < cli_opt_count; i++)
        if ((cli_opts[i].cmds & cmd) && (!strcmp(cli_opts[i].name, name) || (cli_opts[i].alias && !strcmp(cli_opts[i].alias, name))))
            return (int)i;
    return -1;
}

int opt_given(const settings_t *s, const char *name)
{
    for (size_t i = 0; i < cli_opt_count; i++)
        if (!strcmp(cli_opts[i].name, name) && s->given[i]) return 1;
    return 0;
}

int parse_steps(const char *v, uint64_t *m, int cap)
{
    int n = 0;
    while (*v) {
        char *end;
        unsigned long long e;
        if (*v < '0' || *v > '9') return -1;
        errno = 0;
        e = strtoull(v, &end, 10);
        if (errno || end == v || e < 1 || e > 100000 || n == cap || (n > 0 && e <= m[n - 1])) return -1;
        m[n++] = e;
        if (*end == ',' && end[1]) end++;
        else if (*end) return -1;
        v = end;
    }
    return n;
}

int opt_set(settings_t *s, int idx, const char *v, char *why, size_t cap)
{
    const cli_opt_t *o = &cli_opts[idx];
    char *slot = (char *)s + o->offset, *end;
    s->given[idx] = 1;
    switch (o->type) {
    case OT_FLAG: {
        int f;
        if (!v) f = 1;
        else if (!strcmp(v, "1")) f = 1;
        else if (!strcmp(v, "0")) f = 0;
        else {
            snprintf(why, cap, "'%s' is not 0 or 1", v);
            return -1;
        }
        memcpy(slot, &f, sizeof f);
        return 0;
    }
    case OT_INT: case OT_U64: {
        long long d;
        errno = 0;
        d = strtoll(v, &end, 10);
        if (errno || end == v || *end || (double)d < o->lo || (double)d > o->hi) {
            snprintf(why, cap, "'%s' is not an integer in [%.0f, %.0f]", v, o->lo, o->hi);
            return -1;
        }
        if (o->type == OT_INT) {
            int i = (int)d;
            memcpy(slot, &i, sizeof i);
        } else {
            uint64_t u = (uint64_t)d;
            memcpy(slot, &u, sizeof u);
        }
        return 0;
    }
    case OT_DOUBLE: {
        double d;
        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= o->lo && d <= o->hi)) {
            snprintf(why, cap, "'%s' is not a number in [%g, %g]", v, o->lo, o->hi);
            return -1;
        }
        memcpy(slot, &d, sizeof d);
        return 0;
    }
    case OT_STR:
        if (!*v) {
            snprintf(why, cap, "the value is empty");
            return -1;
        }
        memcpy(slot, &v, sizeof v);
        return 0;
    case OT_STEPS: {
        uint64_t m[CLI_MAX_STEPS];
        if (parse_steps(v, m, CLI_MAX_STEPS) < 0) {
            snprintf(why, cap, "'%s' is not a rising list of epochs like 6,8", v);
            return -1;
        }
        memcpy(slot, &v, sizeof v);
        return 0;
    }
    }
    return -1;
}

void settings_default(settings_t *s)
{
    memset(s, 0, sizeof *s);
    s->feedback = "sym";
    s->update = "sgd";
    s->lr_steps = "";
    s->lr_gamma = 0.1;
    s->lr_schedule = "step";
    s->bn_stats = "recal";
    s->bn_recal_samples = 10000;
    s->momentum = 0.9;
    s->epochs = 10;
    s->batch = 100;
    s->seed = 1;
    s->threads = 1;
    s->gc_batch = 4;
    s->jobs = 1;
    s->bm_mode = "exact";
}

void settings_free(settings_t *s)
{
    while (s->n_owned > 0) free(s->owned[--s->n_owned]);
}

static const char *cmd_name(unsigned cmd)
{
    return cmd == CMD_TRAIN ? "train" : cmd == CMD_EVAL ? "eval" : cmd == CMD_SWEEP ? "sweep" : "gradcheck";
}

int opts_parse(unsigned cmd, int argc, char **argv, settings_t *s, const char **pos, int pos_cap, int *n_pos)
{
    char why[256];
    if (n_pos) *n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int idx;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_command_help(cmd, stdout);
            return -1;
        }
        if (a[0] != '-' || !a[1]) {
            if (!pos || *n_pos >= pos_cap) {
                if (pos) return cli_usage("more than %d %s given ('%s')", pos_cap, pos_cap == 1 ? "argument" : "arguments", a);
                return cli_usage("unexpected argument '%s'", a);
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        idx = opt_find(cmd, a);
        if (idx < 0) {
            return cli_usage("%s: unknown option '%s'", cmd_name(cmd), a);
        }
        if (cli_opts[idx].type == OT_FLAG) {
            (void)opt_set(s, idx, NULL, why, sizeof why);
            continue;
        }
        if (i + 1 >= argc) return cli_usage("%s needs a value", a);
        if (opt_set(s, idx, argv[++i], why, sizeof why) != 0) return cli_usage("%s: %s", a, why);
    }
    return 0;
}

/* ---- help and man page -------------------------------------------------------------------- */


static const char *cmd_usage(unsigned cmd)
{
    switch (cmd) {
    case CMD_TRAIN:
        return "usage: asymbp train [options]\n\n"
               "Train one network with one feedback setting and one update rule, and print a JSON summary\n"
               "as the last line of standard output.  With no options: the bundled digits8x8 data set.\n";
    case CMD_SWEEP:
        return "usage: asymbp sweep GRID [--out DIR] [-j N] [--shard I/N] [--dry-run]\n\n"
               "Runs the grid of GRID (data sets x nets x feedback settings x regimes x seeds x hyper-parameter\n"
               "candidates; docs/protocol.md): first the hyper-parameter search on the validation split, then\n"
               "the chosen candidate for every seed.  Each run is an 'asymbp train' process writing into\n"
               "DIR/runs/...; one row per finished run goes to DIR/runs.csv and the choices to\n"
               "DIR/selection.csv.  Finished runs are skipped and interrupted ones resume from their\n"
               "checkpoint, so a sweep can be stopped and started again.\n";
    case CMD_EVAL:
        return "usage: asymbp eval MODEL [--data NAME|DIR | --train PATH --test PATH] [--batch N]\n\n"
               "Evaluates MODEL on the test set; features are standardised with the training set's\n"
               "statistics, as 'asymbp train' did.  Prints one JSON line.\n";
    default:
        return "usage: asymbp gradcheck --net SPEC --input CxHxW|N --classes K [--bn] [--seed S] [--batch N]\n\n"
               "Central finite differences of the loss against the backward pass for every parameter and\n"
               "the input, on random data; prints one JSON line with max_rel_error and per-layer figures.\n"
               "Exit status 0 when max_rel_error <= 1e-2, 3 otherwise.\n";
    }
}

/* Writes text wrapped at `width` columns, every line indented by `indent` (the first line starts
 * at column `col`). */
static void wrap(FILE *f, const char *text, int col, int indent, int width)
{
    const char *p = text;
    while (*p) {
        const char *w = p;
        int n;
        while (*w && *w != ' ') w++;
        n = (int)(w - p);
        if (col > indent && col + 1 + n > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", n, p);
        col += n;
        p = *w ? w + 1 : w;
    }
    fputc('\n', f);
}

void print_command_help(unsigned cmd, FILE *f)
{
    const char *section = "";
    fputs(cmd_usage(cmd), f);
    for (size_t i = 0; i < cli_opt_count; i++) {
        const cli_opt_t *o = &cli_opts[i];
        char head[64], help[512];
        int n;
        if (!(o->cmds & cmd)) continue;
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(f, "\n%s:\n", section);
        }
        n = snprintf(head, sizeof head, "  %s%s%s%s%s", o->name, o->alias ? ", " : "", o->alias ? o->alias : "",
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
        if (o->def && *o->def && o->type != OT_FLAG) snprintf(help, sizeof help, "%s (default %s)", o->help, o->def);
        else snprintf(help, sizeof help, "%s", o->help);
        fputs(head, f);
        if (n < 24) fprintf(f, "%*s", 24 - n, "");
        else fprintf(f, "\n%24s", "");
        wrap(f, help, 24, 24, 100);
    }
    if (cmd == CMD_TRAIN || cmd == CMD_EVAL)
        fputs("\nEnvironment: ASYMBP_DATA_DIR, a folder searched first for data set names (then the data/\n"
              "folder beside the executable's folder, then " ASYMBP_DATA_REL " from it).\n", f);
    if (cmd == CMD_TRAIN)
        fputs("\nExample: asymbp train --data digits8x8 --feedback usf --update bm --bn --epochs 20\n", f);
}

void print_overview(FILE *f)
{
    fprintf(f,
            "asymbp %s - asymmetric backpropagation (Liao, Leibo and Poggio, AAAI 2016)\n"
            "\n"
            "usage: asymbp COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  train       train a network on a data set ('asymbp train --help')\n"
            "  eval MODEL  evaluate a saved model: asymbp eval run/model.asymbp --data digits8x8\n"
            "  info MODEL  describe a saved model (architecture, feedback, parameters)\n"
            "  gradcheck   finite-difference check of the backward pass:\n"
            "              asymbp gradcheck --net SPEC --input CxHxW|N --classes K [--bn] [--seed S] [--batch N]\n"
            "  sweep GRID  run a grid of trainings with a hyper-parameter search on a validation split\n"
            "              ('asymbp sweep --help'; docs/protocol.md)\n"
            "  --version   print the version\n"
            "\n"
            "Data sets given by name are looked up in ASYMBP_DATA_DIR, then beside the executable.\n"
            "\n"
            "Start with:  asymbp train            (bundled digits8x8, a few seconds)\n"
            "             asymbp train --feedback usf --update bm --bn\n",
            asymbp_version_string());
}

/* roff-escaped text: backslashes and leading dots/quotes. */
static void roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", f);
        else if (*s == '-') fputs("\\-", f);
        else fputc(*s, f);
    }
}

void print_man(FILE *f)
{
    static const unsigned cmds[] = { CMD_TRAIN, CMD_EVAL, CMD_GRADCHECK, CMD_SWEEP };
    fprintf(f, ".TH ASYMBP 1 \"\" \"asymbp %s\" \"User Commands\"\n", asymbp_version_string());
    fputs(".SH NAME\nasymbp \\- asymmetric backpropagation: train, evaluate and check networks\n"
          ".SH SYNOPSIS\n.B asymbp train\n[\\fIoptions\\fR]\n.br\n.B asymbp eval\n\\fIMODEL\\fR [\\fIoptions\\fR]\n.br\n"
          ".B asymbp info\n\\fIMODEL\\fR\n.br\n.B asymbp gradcheck\n\\-\\-net \\fISPEC\\fR \\-\\-input \\fICxHxW\\fR "
          "\\-\\-classes \\fIK\\fR [\\fIoptions\\fR]\n.br\n.B asymbp sweep\n\\fIGRID\\fR [\\fIoptions\\fR]\n.br\n"
          ".B asymbp\n\\-\\-help | \\-\\-version | \\-\\-man\n"
          ".SH DESCRIPTION\nasymbp trains neural networks whose error is sent down through feedback weights that differ "
          "from the forward weights (Liao, Leibo and Poggio, AAAI 2016), with sign-concordant, random and learned feedback, "
          "SGD and Batch Manhattan updates, and reports a JSON summary on standard output.\n"
          "The \\fBinfo\\fR command describes a model or checkpoint file.\n", f);
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        fprintf(f, ".SH %s OPTIONS\n", cmds[c] == CMD_TRAIN ? "TRAIN" : cmds[c] == CMD_EVAL ? "EVAL" : cmds[c] == CMD_SWEEP ? "SWEEP" : "GRADCHECK");
        for (size_t i = 0; i < cli_opt_count; i++) {
            const cli_opt_t *o = &cli_opts[i];
            if (!(o->cmds & cmds[c])) continue;
            fputs(".TP\n.B ", f);
            roff(f, o->name);
            if (o->alias) {
                fputs(", ", f);
                roff(f, o->alias);
            }
            if (o->metavar) {
                fputs(" \\fI", f);
                roff(f, o->metavar);
                fputs("\\fR", f);
            }
            fputc('\n', f);
            roff(f, o->help);
            if (o->def && *o->def && o->type != OT_FLAG) {
                fputs(" (default ", f);
                roff(f, o->def);
                fputc(')', f);
            }
            if (o->type == OT_INT || o->type == OT_U64 || o->type == OT_DOUBLE) fprintf(f, "; range [%g, %g]", o->lo, o->hi);
            fputs(".\n", f);
        }
    }
    fputs(".SH ENVIRONMENT\n.TP\n.B ASYMBP_DATA_DIR\nA folder searched first for data sets given by name; then "
          "\\fIdata\\fR beside the executable's folder (a build tree) and \\fI" ASYMBP_DATA_REL "\\fR from it (an "
          "installation).\n"
          ".SH EXIT STATUS\n0 success (a diverged run included), 1 the run could not be done, 2 usage error, 3 gradcheck "
          "found a relative error above 1e\\-2.\n"
          ".SH FILES\nWith \\-\\-out DIR: curves.csv, summary.json, settings.txt, model.asymbp, checkpoint.asymbp "
          "(with \\-\\-checkpoint\\-every) and probe.csv (with \\-\\-probe\\-every). A sweep writes runs.csv "
          "and selection.csv into its folder (one file of each per shard with \\-\\-shard), and each run's folder "
          "under runs/ with the run's standard error in a .log file beside it.\n"
          ".SH SEE ALSO\nThe documentation in docs/cli.md of the source tree.\n", f);
}

/* ---- settings.txt --------------------------------------------------------------------------- */

/* A relative path naming an existing file or folder made absolute (so --resume works from any
 * folder); anything else (a data set name) unchanged. */
static const char *abs_path(const char *p, char *buf, size_t cap)
{
    char cwd[CLI_PATH_MAX];
    if (!p || *p == '/' || !path_exists(p) || !getcwd(cwd, sizeof cwd)) return p;
    if ((size_t)snprintf(buf, cap, "%s/%s", cwd, p) >= cap) return p;
    return buf;
}

int settings_save(const char *dir, const settings_t *s)
{
    sbuf_t b = { 0 };
    int rc;
    for (size_t i = 0; i < cli_opt_count; i++) {
        const cli_opt_t *o = &cli_opts[i];
        const char *slot = (const char *)s + o->offset;
        if (!o->key || !(o->cmds & CMD_TRAIN)) continue;
        sb_printf(&b, "%s=", o->key);
        switch (o->type) {
        case OT_FLAG: case OT_INT: { int v; memcpy(&v, slot, sizeof v); sb_printf(&b, "%d", v); break; }
        case OT_U64: { uint64_t v; memcpy(&v, slot, sizeof v); sb_printf(&b, "%llu", (unsigned long long)v); break; }
        case OT_DOUBLE: { double v; memcpy(&v, slot, sizeof v); sb_printf(&b, "%.17g", v); break; }
        case OT_STR: case OT_STEPS: {
            const char *v;
            char abs[CLI_PATH_MAX + 8];
            memcpy(&v, slot, sizeof v);
            if (v && (!strcmp(o->key, "data") || !strcmp(o->key, "train") || !strcmp(o->key, "test"))) v = abs_path(v, abs, sizeof abs);
            if (v && strchr(v, '\n')) {
                sb_free(&b);
                errno = EINVAL;
                return -1;
            }
            sb_puts(&b, v ? v : "");
            break;
        }
        }
        sb_puts(&b, "\n");
    }
    if (b.failed) {
        errno = ENOMEM;
        return -1;
    }
    rc = write_file_atomic(dir, "settings.txt", b.p, b.len);
    sb_free(&b);
    return rc;
}

static char *own(settings_t *s, const char *v)
{
    char *d;
    if (s->n_owned == sizeof s->owned / sizeof s->owned[0]) return NULL;
    d = malloc(strlen(v) + 1);
    if (!d) return NULL;
    strcpy(d, v);
    s->owned[s->n_owned++] = d;
    return d;
}

int settings_load(const char *dir, settings_t *s)
{
    char path[CLI_PATH_MAX + 32], line[CLI_PATH_MAX + 64], why[256];
    FILE *f;
    int lineno = 0, n_keys = 0;
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    f = fopen(path, "r");
    if (!f) return cli_error("--resume %s: cannot read %s: %s", dir, path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        char *eq, *v;
        int idx = -1;
        lineno++;
        if (n && line[n - 1] == '\n') line[--n] = '\0';
        else if (!feof(f)) {
            fclose(f);
            return cli_error("--resume %s: %s: line %d is too long", dir, path, lineno);
        }
        if (n == 0) continue;
        eq = strchr(line, '=');
        if (!eq) {
            fclose(f);
            return cli_error("--resume %s: %s: line %d is not KEY=VALUE", dir, path, lineno);
        }
        *eq = '\0';
        v = eq + 1;
        for (size_t i = 0; i < cli_opt_count; i++)
            if (cli_opts[i].key && (cli_opts[i].cmds & CMD_TRAIN) && !strcmp(cli_opts[i].key, line)) idx = (int)i;
        if (idx < 0) {
            fclose(f);
            return cli_error("--resume %s: %s: line %d: unknown setting '%s'", dir, path, lineno, line);
        }
        n_keys++;
        /* an empty path or net means "not set" (the default) */
        if (!*v && cli_opts[idx].type == OT_STR && strcmp(line, "feedback") && strcmp(line, "update")) continue;
        if (cli_opts[idx].type == OT_STR || cli_opts[idx].type == OT_STEPS) {
            v = own(s, v);
            if (!v) {
                fclose(f);
                return cli_error("--resume %s: out of memory reading %s", dir, path);
            }
        }
        if (cli_opts[idx].type == OT_STEPS && !*v) {
            s->lr_steps = "";
            continue;
        }
        if (opt_set(s, idx, v, why, sizeof why) != 0) {
            fclose(f);
            return cli_error("--resume %s: %s: line %d: %s: %s", dir, path, lineno, cli_opts[idx].key, why);
        }
    }
    if (ferror(f)) {
        fclose(f);
        return cli_error("--resume %s: cannot read %s", dir, path);
    }
    fclose(f);
    if (n_keys == 0) return cli_error("--resume %s: %s holds no settings", dir, path);
    /* runs from before --bn-stats existed evaluated with the running averages */
    {
        int k = opt_find(CMD_TRAIN, "--bn-stats");
        if (k >= 0 && !s->given[k]) s->bn_stats = "ema";
    }
    return 0;
}
