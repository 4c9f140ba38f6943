/* asymbp - the command-line tool: train, eval, info, gradcheck. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "asymbp/asymbp.h"

#ifndef ASYMBP_SRCDIR
#define ASYMBP_SRCDIR "."
#endif
#ifndef ASYMBP_DATADIR
#define ASYMBP_DATADIR "/usr/local/share/asymbp/data"
#endif

#define MODEL_FILE "model.asymbp"
#define CHECKPOINT_FILE "checkpoint.asymbp"
#define SETTINGS_FILE "settings.txt"

static const char *prog = "asymbp";

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see '%s --help' or '%s train --help')\n", prog, prog);
    exit(2);
}

static int fail(asymbp_ctx_t *ctx, asymbp_status_t st, const char *what)
{
    const char *detail = ctx ? asymbp_ctx_last_error(ctx) : "";
    fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, asymbp_strerror(st), *detail ? ": " : "", detail);
    return 1;
}

/* ---- settings ------------------------------------------------------------------------------ */

typedef struct settings {
    const char *data, *train_path, *test_path, *net, *feedback, *update, *out, *resume, *lr_steps;
    int bn, epochs, threads, quiet, checkpoint_every, diag;
    size_t batch;
    double lr, momentum, wd, val_split, lr_gamma;
    int lr_set, momentum_set;
    unsigned long long seed;
} settings_t;

static void settings_default(settings_t *s)
{
    memset(s, 0, sizeof *s);
    s->data = NULL;
    s->feedback = "sym";
    s->update = "sgd";
    s->epochs = 10;
    s->batch = 100;
    s->threads = 1;
    s->seed = 1;
    s->momentum = 0.9;
    s->lr_gamma = 0.1;
    s->lr_steps = "";
}

/* "6,8" -> milestones {6, 8}; returns the count, or -1 when malformed. */
static int parse_steps(const char *v, uint64_t *m, int cap)
{
    int n = 0;
    while (*v) {
        char *end;
        unsigned long long e;
        errno = 0;
        e = strtoull(v, &end, 10);
        if (errno || end == v || e < 1 || e > 100000 || n == cap || (n > 0 && e <= m[n - 1])) return -1;
        m[n++] = e;
        if (*end == ',') end++;
        else if (*end) return -1;
        v = end;
    }
    return n;
}

static double parse_double(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double d;
    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) die_usage("%s: '%s' is not a number in [%g, %g]", opt, v, lo, hi);
    return d;
}

static long long parse_int(const char *opt, const char *v, long long lo, long long hi)
{
    char *end;
    long long d;
    errno = 0;
    d = strtoll(v, &end, 10);
    if (errno || end == v || *end || d < lo || d > hi) die_usage("%s: '%s' is not an integer in [%lld, %lld]", opt, v, lo, hi);
    return d;
}

static void print_train_help(void)
{
    printf(
"usage: asymbp train [options]\n"
"\n"
"Train one network with one feedback setting and one update rule, and print a JSON summary\n"
"as the last line of standard output.  With no options: the bundled digits8x8 data set.\n"
"\n"
"Data:\n"
"  --data NAME|DIR      a bundled set (digits8x8 (default), digits20x20, letter, dna, soybean,\n"
"                       ionosphere, sonar, glass, iris, wine, breast_cancer), a fetched one\n"
"                       (mnist, fashion-mnist: run 'make data' first), or a folder holding\n"
"                       train.csv + test.csv or the four IDX files\n"
"  --train PATH --test PATH   explicit files (CSV, or IDX images with the labels file beside)\n"
"  --val-split F        hold out a fraction F of the training set and report it as 'test'\n"
"Network:\n"
"  --net SPEC           paper-cnn (default for images), mlp:H1,H2,... (mlp:128,64 for tables),\n"
"                       or a layer list such as conv5x5x32p2,relu,maxpool3s2,fc64,relu,fc10\n"
"  --bn                 batch normalisation after every conv and hidden dense layer\n"
"Learning rule:\n"
"  --feedback F         sym (backprop), usf, brsf, frsf, partial:P, rndf, signed-init\n"
"                       (options: e.g. frsf:mag=uniform:scale=xavier; see docs/feedback.md)\n"
"  --update U           sgd, bm (Batch Manhattan), bm:b, bm:c, bm:nsc\n"
"  --lr X               learning rate (default 0.01 for sgd, 0.0005 for bm rules)\n"
"  --momentum X         momentum (default 0.9)\n"
"  --wd X               weight decay (default 0)\n"
"  --lr-steps E1,E2     multiply the learning rate by --lr-gamma (default 0.1) after epochs E1, E2\n"
"Run:\n"
"  --epochs N           epochs (default 10)      --batch N    mini-batch size (default 100)\n"
"  --seed N             random seed (default 1)  --threads N  worker threads (default 1)\n"
"  --out DIR            write curves.csv, summary.json and model.asymbp into DIR (DIR must not\n"
"                       hold a model already)\n"
"  --checkpoint-every N with --out: write DIR/checkpoint.asymbp every N epochs\n"
"  --resume DIR         continue the run saved in DIR (its settings; --epochs may extend it)\n"
"  --diag               per-layer feedback diagnostics each epoch (on stderr and in curves)\n"
"  --quiet              no progress output\n"
"\n"
"Example: asymbp train --data digits8x8 --feedback usf --update bm --bn --epochs 20\n");
}

static void print_help(void)
{
    printf(
"asymbp %s - asymmetric backpropagation (Liao, Leibo and Poggio, AAAI 2016)\n"
"\n"
"usage: asymbp COMMAND [options]\n"
"\n"
"commands:\n"
"  train       train a network on a data set ('asymbp train --help')\n"
"  eval MODEL  evaluate a saved model: asymbp eval run/model.asymbp --data digits8x8\n"
"  info MODEL  describe a saved model (architecture, feedback, parameters)\n"
"  gradcheck   finite-difference check of the backward pass:\n"
"              asymbp gradcheck --net SPEC --input CxHxW|N --classes K [--bn] [--seed S]\n"
"  --version   print the version\n"
"\n"
"Start with:  asymbp train            (bundled digits8x8, a few seconds)\n"
"             asymbp train --feedback usf --update bm --bn\n", asymbp_version_string());
}

static void parse_train_args(int argc, char **argv, settings_t *s)
{
    int i;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (die_usage("%s needs a value", a), (char *)NULL))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { print_train_help(); exit(0); }
        else if (!strcmp(a, "--data")) s->data = NEXT();
        else if (!strcmp(a, "--train")) s->train_path = NEXT();
        else if (!strcmp(a, "--test")) s->test_path = NEXT();
        else if (!strcmp(a, "--net")) s->net = NEXT();
        else if (!strcmp(a, "--feedback")) s->feedback = NEXT();
        else if (!strcmp(a, "--update")) s->update = NEXT();
        else if (!strcmp(a, "--bn")) s->bn = 1;
        else if (!strcmp(a, "--lr")) { s->lr = parse_double(a, NEXT(), 0.0, 1e30); s->lr_set = 1; }
        else if (!strcmp(a, "--momentum")) { s->momentum = parse_double(a, NEXT(), 0.0, 0.999999); s->momentum_set = 1; }
        else if (!strcmp(a, "--wd")) s->wd = parse_double(a, NEXT(), 0.0, 1.0);
        else if (!strcmp(a, "--lr-steps")) {
            uint64_t m[32];
            s->lr_steps = NEXT();
            if (parse_steps(s->lr_steps, m, 32) < 0) die_usage("--lr-steps: '%s' is not a rising list of epochs like 6,8", s->lr_steps);
        }
        else if (!strcmp(a, "--lr-gamma")) s->lr_gamma = parse_double(a, NEXT(), 0.0, 1.0);
        else if (!strcmp(a, "--val-split")) s->val_split = parse_double(a, NEXT(), 0.0, 0.9);
        else if (!strcmp(a, "--epochs")) s->epochs = (int)parse_int(a, NEXT(), 1, 100000);
        else if (!strcmp(a, "--batch")) s->batch = (size_t)parse_int(a, NEXT(), 1, 1 << 20);
        else if (!strcmp(a, "--seed")) s->seed = (unsigned long long)parse_int(a, NEXT(), 0, (long long)9e18);
        else if (!strcmp(a, "--threads")) s->threads = (int)parse_int(a, NEXT(), 1, 256);
        else if (!strcmp(a, "--out")) s->out = NEXT();
        else if (!strcmp(a, "--checkpoint-every")) s->checkpoint_every = (int)parse_int(a, NEXT(), 0, 100000);
        else if (!strcmp(a, "--resume")) s->resume = NEXT();
        else if (!strcmp(a, "--diag")) s->diag = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) s->quiet = 1;
        else die_usage("train: unknown option '%s'", a);
#undef NEXT
    }
}

/* ---- data ---------------------------------------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* IDX labels path beside an images path: "...images-idx3-ubyte..." -> "...labels-idx1-ubyte...". */
static int labels_path_for(const char *images, char *buf, size_t cap)
{
    const char *m = strstr(images, "images-idx3");
    if (!m || strlen(images) + 1 > cap) return -1;
    snprintf(buf, cap, "%.*slabels-idx1%s", (int)(m - images), images, m + strlen("images-idx3"));
    return 0;
}

/* Loads one --train/--test file; 0, or 1 after one message on stderr. */
static int load_file(asymbp_ctx_t *ctx, const char *path, asymbp_dataset_t **out)
{
    size_t n = strlen(path);
    asymbp_status_t st;
    if ((n >= 4 && !strcmp(path + n - 4, ".csv")) || (n >= 7 && !strcmp(path + n - 7, ".csv.gz"))) {
        st = asymbp_dataset_load_csv(ctx, path, 0, out);
    } else {
        char lab[4096];
        if (labels_path_for(path, lab, sizeof lab) != 0) {
            fprintf(stderr, "%s: %s: not a .csv[.gz] file nor an IDX images file (*images-idx3*)\n", prog, path);
            return 1;
        }
        st = asymbp_dataset_load_idx(ctx, path, lab, 0, out);
    }
    return st == ASYMBP_OK ? 0 : fail(ctx, st, path);
}

static int load_data(asymbp_ctx_t *ctx, settings_t *s, asymbp_dataset_t **train, asymbp_dataset_t **test)
{
    asymbp_status_t st;
    if (s->train_path || s->test_path) {
        if (!s->train_path || !s->test_path) die_usage("--train and --test go together");
        if (load_file(ctx, s->train_path, train) != 0 || load_file(ctx, s->test_path, test) != 0) return 1;
        if (!s->data) s->data = s->train_path;
    } else {
        if (!s->data) s->data = "digits8x8";
        if (is_dir(s->data)) {
            st = asymbp_dataset_load_dir(ctx, s->data, 0, train, test);
        } else {
            const char *env = getenv("ASYMBP_DATA_DIR");
            const char *roots[4];
            size_t n = 0;
            if (env && *env) roots[n++] = env;
            roots[n++] = "data";
            roots[n++] = ASYMBP_SRCDIR "/data";
            roots[n++] = ASYMBP_DATADIR;
            st = asymbp_dataset_load_named(ctx, s->data, roots, n, train, test);
        }
        if (st != ASYMBP_OK) return fail(ctx, st, s->data);
    }
    if (asymbp_dataset_classes(*test) > asymbp_dataset_classes(*train)) {
        fprintf(stderr, "%s: the test set has %zu classes but the training set only %zu\n", prog,
                asymbp_dataset_classes(*test), asymbp_dataset_classes(*train));
        return 1;
    }
    if (s->val_split > 0.0) {
        asymbp_dataset_t *rest = NULL, *val = NULL;
        size_t nval = (size_t)(s->val_split * (double)asymbp_dataset_count(*train));
        if (nval < 1) nval = 1;
        st = asymbp_dataset_split(*train, nval, s->seed, 1, &rest, &val);
        if (st != ASYMBP_OK) return fail(ctx, st, "--val-split");
        asymbp_dataset_destroy(*train);
        asymbp_dataset_destroy(*test);
        *train = rest;
        *test = val;
    }
    st = asymbp_dataset_standardize(*train, *test, ASYMBP_SCALER_PER_CHANNEL, NULL);
    if (st != ASYMBP_OK) return fail(ctx, st, "standardising the data");
    return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

typedef struct run_state {
    settings_t *s;
    asymbp_net_t *net;
    int tty;
    double t0;
    FILE *curves;
    asymbp_feedback_diag_t diag[64];
    size_t n_diag;
} run_state_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_progress(void *user, int epoch, size_t batch, size_t batches, double loss)
{
    run_state_t *r = user;
    if (r->s->quiet || !r->tty) return 0;
    if (batch == batches || batch % 4 == 0) {
        int width = 30, fill = (int)((double)width * (double)batch / (double)batches), i;
        fprintf(stderr, "\repoch %3d/%d [", epoch, r->s->epochs);
        for (i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %5.1f%% loss %.4f ", 100.0 * (double)batch / (double)batches, loss);
        fflush(stderr);
    }
    return 0;
}

static int on_epoch(void *user, const asymbp_epoch_metrics_t *m)
{
    run_state_t *r = user;
    size_t i;
    if (r->s->diag) {
        for (i = 0; i < r->n_diag; i++) {
            r->diag[i].struct_size = sizeof r->diag[i];
            if (asymbp_net_feedback_diag(r->net, i, &r->diag[i]) != ASYMBP_OK) r->diag[i].delta_norm = NAN;
        }
    }
    if (!r->s->quiet) {
        if (r->tty) fputc('\r', stderr);
        fprintf(stderr, "epoch %3d/%d  loss %.4g  train acc %.4f  test acc %.4f  lr %.3g  %.1fs%s\n", m->epoch, r->s->epochs,
                m->train_loss, m->train_accuracy, m->test_accuracy, m->lr, m->seconds, r->tty ? "          " : "");
        if (r->s->diag)
            for (i = 0; i < r->n_diag; i++)
                fprintf(stderr, "    layer %2d  |delta| %.3e  |dW| %.3e  sign concordance %.3f  angle(V,W) %.1f deg\n",
                        r->diag[i].layer_index, r->diag[i].delta_norm, r->diag[i].grad_norm, r->diag[i].sign_concordance,
                        r->diag[i].angle_vw);
    }
    if (r->curves) {
        fprintf(r->curves, "%d,%llu,%.8g,%.8g,%.8g,%.8g,%.8g,%.4f", m->epoch, (unsigned long long)m->step, m->lr, m->train_loss,
                m->train_accuracy, m->test_loss, m->test_accuracy, m->seconds);
        if (r->s->diag)
            for (i = 0; i < r->n_diag; i++)
                fprintf(r->curves, ",%.6g,%.6g,%.6g", r->diag[i].delta_norm, r->diag[i].grad_norm, r->diag[i].sign_concordance);
        fputc('\n', r->curves);
        fflush(r->curves);
    }
    return 0;
}

/* Default networks (docs/cli.md): the paper's CNN for images of at least 16x16 (its three
 * stride-2 pools need that), a small CNN for smaller images, an MLP for tables. */
#define SMALL_CNN "conv3x3x32p1,relu,maxpool2s2,conv3x3x64p1,relu,maxpool2s2,fc128,relu"
static const char *default_net(int64_t h, int64_t w)
{
    if (h == 1 && w == 1) return "mlp:128,64";
    if (h >= 16 && w >= 16) return "paper-cnn";
    return SMALL_CNN;
}

/* A relative path naming an existing file or folder made absolute (so --resume works from any
 * folder); anything else (a data set name, "") unchanged. */
static const char *abs_path(const char *p, char *buf, size_t cap)
{
    char cwd[4096];
    if (!p) return "";
    if (*p == '/' || !file_exists(p) || !getcwd(cwd, sizeof cwd)) return p;
    if ((size_t)snprintf(buf, cap, "%s/%s", cwd, p) >= cap) return p;
    return buf;
}

/* Settings of a run, saved in --out so --resume can rebuild the same objects. */
static int save_settings(const char *dir, const settings_t *s)
{
    char path[4096], tmp[4200], abs_data[8192], abs_train[8192], abs_test[8192];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, SETTINGS_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "data=%s\ntrain=%s\ntest=%s\nnet=%s\nfeedback=%s\nupdate=%s\nbn=%d\nlr=%.17g\nmomentum=%.17g\nwd=%.17g\n"
               "epochs=%d\nbatch=%zu\nseed=%llu\nthreads=%d\ncheckpoint_every=%d\nval_split=%.17g\nlr_steps=%s\nlr_gamma=%.17g\n",
            abs_path(s->data, abs_data, sizeof abs_data), abs_path(s->train_path, abs_train, sizeof abs_train),
            abs_path(s->test_path, abs_test, sizeof abs_test), s->net ? s->net : "", s->feedback, s->update, s->bn, s->lr,
            s->momentum, s->wd, s->epochs, s->batch, s->seed, s->threads, s->checkpoint_every, s->val_split, s->lr_steps,
            s->lr_gamma);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

/* Strings read from a run's settings live until the process ends; they are kept here so they
 * can be freed at exit (keeps leak checkers quiet). */
static char *owned_strings[64];
static size_t n_owned;

static void free_owned(void)
{
    while (n_owned > 0) free(owned_strings[--n_owned]);
}

static char *dupstr(const char *v)
{
    char *d = malloc(strlen(v) + 1);
    if (!d || n_owned == sizeof owned_strings / sizeof *owned_strings) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    if (n_owned == 0) atexit(free_owned);
    owned_strings[n_owned++] = d;
    strcpy(d, v);
    return d;
}

static int load_settings(const char *dir, settings_t *s)
{
    char path[4096], line[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, SETTINGS_FILE);
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: --resume %s: cannot read %s: %s\n", prog, dir, path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '='), *v;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[n - 1] = '\0';
        if (!eq) continue;
        *eq = '\0';
        v = eq + 1;
        if (!strcmp(line, "data")) s->data = *v ? dupstr(v) : NULL;
        else if (!strcmp(line, "train")) s->train_path = *v ? dupstr(v) : NULL;
        else if (!strcmp(line, "test")) s->test_path = *v ? dupstr(v) : NULL;
        else if (!strcmp(line, "net")) s->net = *v ? dupstr(v) : NULL;
        else if (!strcmp(line, "feedback")) s->feedback = dupstr(v);
        else if (!strcmp(line, "update")) s->update = dupstr(v);
        else if (!strcmp(line, "bn")) s->bn = atoi(v);
        else if (!strcmp(line, "lr")) { s->lr = strtod(v, NULL); s->lr_set = 1; }
        else if (!strcmp(line, "momentum")) { s->momentum = strtod(v, NULL); s->momentum_set = 1; }
        else if (!strcmp(line, "wd")) s->wd = strtod(v, NULL);
        else if (!strcmp(line, "epochs")) s->epochs = atoi(v);
        else if (!strcmp(line, "batch")) s->batch = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(line, "seed")) s->seed = strtoull(v, NULL, 10);
        else if (!strcmp(line, "threads")) s->threads = atoi(v);
        else if (!strcmp(line, "checkpoint_every")) s->checkpoint_every = atoi(v);
        else if (!strcmp(line, "val_split")) s->val_split = strtod(v, NULL);
        else if (!strcmp(line, "lr_steps")) s->lr_steps = dupstr(v);
        else if (!strcmp(line, "lr_gamma")) s->lr_gamma = strtod(v, NULL);
    }
    fclose(f);
    return 0;
}

/* Keeps the header and the first `rows` rows of curves.csv (atomically); no file is fine. */
static int trim_curves(const char *path, int rows)
{
    char tmp[4200], line[4096];
    FILE *in, *o;
    int kept = -1; /* rows copied so far; the header makes it 0 */
    in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    o = fopen(tmp, "w");
    if (!o) {
        fclose(in);
        return -1;
    }
    while (kept < rows && fgets(line, sizeof line, in)) {
        fputs(line, o);
        if (strchr(line, '\n')) kept++;
    }
    fclose(in);
    if (fflush(o) != 0 || fsync(fileno(o)) != 0 || ferror(o)) {
        fclose(o);
        unlink(tmp);
        return -1;
    }
    if (fclose(o) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

static int write_summary(const char *dir, const char *json)
{
    char path[4096], tmp[4200];
    FILE *f;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(json, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

static int cmd_train(int argc, char **argv)
{
    settings_t s;
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_status_t st, run_st = ASYMBP_OK;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    run_state_t rs;
    char ckpt[4096] = "", model[4096] = "", curves[4096] = "";
    const char *net_spec;
    int64_t c, h, w;
    int rc = 1, resume_epochs = 0, saved_epochs = 0;
    char *json = NULL;
    size_t json_len = 0;
    FILE *js;

    memset(&rs, 0, sizeof rs);
    settings_default(&s);
    parse_train_args(argc, argv, &s);
    if (s.resume) {
        int epochs_arg = s.epochs, quiet = s.quiet, diag = s.diag;
        int i, epochs_given = 0;
        const char *dir = s.resume;
        for (i = 0; i < argc; i++)
            if (!strcmp(argv[i], "--epochs")) epochs_given = 1;
        settings_default(&s);
        if (load_settings(dir, &s) != 0) return 1;
        saved_epochs = s.epochs;
        s.resume = dir;
        s.out = dir;
        s.quiet = quiet;
        s.diag = diag;
        if (epochs_given) s.epochs = epochs_arg;
        snprintf(ckpt, sizeof ckpt, "%s/%s", dir, CHECKPOINT_FILE);
        if (!file_exists(ckpt)) {
            fprintf(stderr, "%s: --resume %s: no checkpoint (%s); was the run started with --checkpoint-every?\n", prog, dir, ckpt);
            return 1;
        }
        resume_epochs = 1;
    }
    if (s.checkpoint_every > 0 && !s.out) die_usage("--checkpoint-every needs --out DIR");
    if (s.out) {
        snprintf(model, sizeof model, "%s/%s", s.out, MODEL_FILE);
        snprintf(ckpt, sizeof ckpt, "%s/%s", s.out, CHECKPOINT_FILE);
        snprintf(curves, sizeof curves, "%s/curves.csv", s.out);
        if (!s.resume) {
            if (file_exists(model) || file_exists(ckpt)) {
                fprintf(stderr, "%s: --out %s already holds a model (%s); choose another folder or remove it "
                                "(nothing was overwritten)\n", prog, s.out, file_exists(model) ? model : ckpt);
                return 1;
            }
            if (file_exists(s.out) && !is_dir(s.out)) {
                fprintf(stderr, "%s: --out %s exists and is not a folder\n", prog, s.out);
                return 1;
            }
        }
    }
    if (!strncmp(s.update, "bm", 2) && !s.lr_set) s.lr = 0.0005;
    else if (!s.lr_set) s.lr = 0.01;

    st = asymbp_ctx_create(NULL, &ctx);
    if (st != ASYMBP_OK) return fail(NULL, st, "creating the context");
    if (asymbp_ctx_set_seed(ctx, s.seed) != ASYMBP_OK || asymbp_ctx_set_threads(ctx, s.threads) != ASYMBP_OK) {
        rc = fail(ctx, asymbp_ctx_last_status(ctx), "context settings");
        goto out;
    }
    /* Settings names are checked before any data is read, so a typo fails fast. */
    st = asymbp_feedback_check_setting(ctx, s.feedback);
    if (st != ASYMBP_OK) {
        fprintf(stderr, "%s: --feedback %s: %s\n", prog, s.feedback, asymbp_ctx_last_error(ctx));
        rc = 2;
        goto out;
    }
    if (load_data(ctx, &s, &train, &test) != 0) goto out;
    if (asymbp_dataset_shape(train, &c, &h, &w) != ASYMBP_OK) goto out;
    net_spec = s.net ? s.net : default_net(h, w);
    st = asymbp_net_from_spec(ctx, net_spec, c, h, w, (int64_t)asymbp_dataset_classes(train), s.bn, &net);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "--net");
        goto out;
    }
    st = asymbp_net_set_feedback(net, s.feedback);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "--feedback");
        goto out;
    }
    hp.lr = (float)s.lr;
    hp.momentum = (float)s.momentum;
    hp.weight_decay = (float)s.wd;
    st = asymbp_optimizer_create(net, s.update, &hp, &opt);
    if (st != ASYMBP_OK) {
        fprintf(stderr, "%s: --update %s: %s\n", prog, s.update, asymbp_ctx_last_error(ctx));
        rc = 2;
        goto out;
    }
    if (*s.lr_steps) {
        uint64_t m[32];
        int nm = parse_steps(s.lr_steps, m, 32);
        st = nm < 0 ? ASYMBP_E_INVALID : asymbp_optimizer_set_schedule_step(opt, m, (size_t)nm, (float)s.lr_gamma);
        if (st != ASYMBP_OK) {
            rc = fail(ctx, st, "--lr-steps");
            goto out;
        }
    }
    rs.s = &s;
    rs.net = net;
    rs.tty = isatty(2);
    rs.n_diag = asymbp_net_feedback_layer_count(net);
    if (rs.n_diag > 64) rs.n_diag = 64;
    tp.epochs = s.epochs;
    tp.batch = s.batch;
    tp.checkpoint_every = s.checkpoint_every;
    tp.checkpoint_path = s.checkpoint_every > 0 ? ckpt : NULL;
    tp.progress = on_progress;
    tp.on_epoch = on_epoch;
    tp.user = &rs;
    st = asymbp_trainer_create(net, opt, train, test, &tp, &tr);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "setting up training");
        goto out;
    }
    /* The output folder is created only once everything could be set up, so a run that fails
     * on bad input leaves nothing behind. */
    if (s.out && !resume_epochs && !is_dir(s.out) && mkdir(s.out, 0755) != 0) {
        fprintf(stderr, "%s: cannot create --out %s: %s\n", prog, s.out, strerror(errno));
        goto out;
    }
    if (resume_epochs) {
        st = asymbp_trainer_load_checkpoint(tr, ckpt);
        if (st != ASYMBP_OK) {
            rc = fail(ctx, st, "--resume");
            goto out;
        }
        if (!s.quiet) fprintf(stderr, "resuming %s after epoch %d of %d\n", s.resume, asymbp_trainer_epochs_done(tr), s.epochs);
        /* an extended run (--epochs) is resumed next time without repeating --epochs */
        if (s.epochs != saved_epochs && save_settings(s.out, &s) != 0) {
            fprintf(stderr, "%s: cannot write %s/%s: %s\n", prog, s.out, SETTINGS_FILE, strerror(errno));
            goto out;
        }
        /* rows written after the checkpoint (a run that died before its next one) are dropped */
        if (trim_curves(curves, asymbp_trainer_epochs_done(tr)) != 0) {
            fprintf(stderr, "%s: cannot rewrite %s: %s\n", prog, curves, strerror(errno));
            goto out;
        }
    } else if (s.out && save_settings(s.out, &s) != 0) {
        fprintf(stderr, "%s: cannot write %s/%s: %s\n", prog, s.out, SETTINGS_FILE, strerror(errno));
        goto out;
    }
    if (s.out) {
        int fresh = !file_exists(curves);
        rs.curves = fopen(curves, resume_epochs ? "a" : "w");
        if (!rs.curves) {
            fprintf(stderr, "%s: cannot write %s: %s\n", prog, curves, strerror(errno));
            goto out;
        }
        if (fresh || !resume_epochs) {
            size_t i;
            fprintf(rs.curves, "epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds");
            if (s.diag)
                for (i = 0; i < rs.n_diag; i++) fprintf(rs.curves, ",delta_norm_%zu,grad_norm_%zu,sign_concordance_%zu", i, i, i);
            fputc('\n', rs.curves);
        }
    }
    if (!s.quiet)
        fprintf(stderr, "asymbp train: %s (%zu train / %zu test, %lldx%lldx%lld, %zu classes), net %s%s, feedback %s, "
                        "update %s (lr %g, momentum %g), %d epochs, batch %zu, seed %llu\n",
                s.data, asymbp_dataset_count(train), asymbp_dataset_count(test), (long long)c, (long long)h, (long long)w,
                asymbp_dataset_classes(train), net_spec, s.bn ? " + BN" : "", s.feedback, s.update, s.lr, s.momentum,
                s.epochs, s.batch, s.seed);
    rs.t0 = now_s();
    run_st = asymbp_trainer_run(tr);
    if (run_st != ASYMBP_OK && run_st != ASYMBP_E_DIVERGED) {
        rc = fail(ctx, run_st, "training");
        goto out;
    }
    if (run_st == ASYMBP_E_DIVERGED && !s.quiet) {
        if (rs.tty) fputc('\n', stderr);
        fprintf(stderr, "%s: %s\n", prog, asymbp_ctx_last_error(ctx));
    }
    if (s.out) {
        st = asymbp_model_save(net, model);
        if (st != ASYMBP_OK) {
            rc = fail(ctx, st, "saving the model");
            goto out;
        }
    }
    {
        int done = asymbp_trainer_epochs_done(tr);
        const asymbp_epoch_metrics_t *m = done > 0 ? asymbp_trainer_metrics(tr, done) : NULL;
        double secs = 0.0;
        int i;
        float tl = NAN, ta = NAN;
        for (i = 1; i <= done; i++) secs += asymbp_trainer_metrics(tr, i)->seconds;
        if (run_st == ASYMBP_E_DIVERGED) {
            /* evaluate what is left: the last good weights */
            if (asymbp_net_evaluate(net, asymbp_dataset_features(test), asymbp_dataset_labels(test), asymbp_dataset_count(test),
                                    &tl, &ta) != ASYMBP_OK)
                ta = NAN;
        }
        js = open_memstream(&json, &json_len);
        if (!js) goto out;
        fputs("{\"data\":", js);
        json_str(js, s.data);
        fputs(",\"net\":", js);
        json_str(js, net_spec);
        fputs(",\"feedback\":", js);
        json_str(js, s.feedback);
        fputs(",\"update\":", js);
        json_str(js, s.update);
        fprintf(js, ",\"bn\":%s,\"epochs\":%d,\"epochs_done\":%d,\"batch\":%zu,\"lr\":", s.bn ? "true" : "false", s.epochs, done,
                s.batch);
        json_num(js, s.lr);
        fprintf(js, ",\"momentum\":");
        json_num(js, s.momentum);
        fputs(",\"lr_steps\":", js);
        json_str(js, s.lr_steps);
        fprintf(js, ",\"seed\":%llu,\"threads\":%d,\"blas\":\"%s\",\"train_accuracy\":", s.seed, s.threads, asymbp_blas_name());
        json_num(js, m ? m->train_accuracy : NAN);
        fputs(",\"train_loss\":", js);
        json_num(js, m ? m->train_loss : NAN);
        fputs(",\"test_accuracy\":", js);
        json_num(js, run_st == ASYMBP_E_DIVERGED ? ta : m ? m->test_accuracy : NAN);
        fputs(",\"test_error\":", js);
        json_num(js, run_st == ASYMBP_E_DIVERGED ? 1.0 - ta : m ? 1.0 - m->test_accuracy : NAN);
        fputs(",\"test_loss\":", js);
        json_num(js, run_st == ASYMBP_E_DIVERGED ? tl : m ? m->test_loss : NAN);
        fprintf(js, ",\"seconds\":%.3f,\"diverged\":%s", secs, run_st == ASYMBP_E_DIVERGED ? "true" : "false");
        if (run_st == ASYMBP_E_DIVERGED) {
            fputs(",\"diverged_at\":", js);
            json_str(js, asymbp_ctx_last_error(ctx));
        }
        fputs(",\"version\":", js);
        json_str(js, asymbp_version_string());
        fputs("}\n", js);
        fclose(js);
        if (s.out && write_summary(s.out, json) != 0) {
            fprintf(stderr, "%s: cannot write %s/summary.json: %s\n", prog, s.out, strerror(errno));
            goto out;
        }
        fputs(json, stdout);
        fflush(stdout);
    }
    rc = 0;
out:
    free(json);
    if (rs.curves) fclose(rs.curves);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return rc;
}

/* ---- eval, info, gradcheck ----------------------------------------------------------------- */

static int cmd_eval(int argc, char **argv)
{
    settings_t s;
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_net_t *net = NULL;
    asymbp_status_t st;
    const char *model = NULL;
    float loss = 0.0f, acc = 0.0f;
    int i, rc = 1;
    settings_default(&s);
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: asymbp eval MODEL [--data NAME|DIR | --train PATH --test PATH] [--batch N]\n"
                   "Evaluates MODEL on the test set; features are standardised with the training set's\n"
                   "statistics, as 'asymbp train' did.  Prints one JSON line.\n");
            return 0;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) s.data = argv[++i];
        else if (!strcmp(argv[i], "--train") && i + 1 < argc) s.train_path = argv[++i];
        else if (!strcmp(argv[i], "--test") && i + 1 < argc) s.test_path = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) s.batch = (size_t)parse_int("--batch", argv[++i], 1, 1 << 20);
        else if (argv[i][0] == '-') die_usage("eval: unknown option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else die_usage("eval: more than one model given ('%s')", argv[i]);
    }
    if (!model) die_usage("eval: no MODEL given");
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    st = asymbp_model_load(ctx, model, &net);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, model);
        goto out;
    }
    if (load_data(ctx, &s, &train, &test) != 0) goto out;
    {
        /* asymbp_net_evaluate trusts the caller on sizes: a mismatch would read past the data */
        int64_t in[3] = {0, 0, 0}, c = 0, h = 0, w = 0;
        size_t k = (size_t)asymbp_net_classes(net);
        if (asymbp_net_input_shape(net, in) != ASYMBP_OK || asymbp_dataset_shape(test, &c, &h, &w) != ASYMBP_OK ||
            in[0] != c || in[1] != h || in[2] != w) {
            fprintf(stderr, "%s: eval: %s expects samples of %lldx%lldx%lld, the data set %s has %lldx%lldx%lld\n", prog, model,
                    (long long)in[0], (long long)in[1], (long long)in[2], s.data, (long long)c, (long long)h, (long long)w);
            goto out;
        }
        if (asymbp_dataset_classes(test) > k) {
            fprintf(stderr, "%s: eval: %s has %zu classes, the data set %s has %zu\n", prog, model, k, s.data,
                    asymbp_dataset_classes(test));
            goto out;
        }
    }
    st = asymbp_net_bind(net, s.batch);
    if (st == ASYMBP_OK)
        st = asymbp_net_evaluate(net, asymbp_dataset_features(test), asymbp_dataset_labels(test), asymbp_dataset_count(test),
                                 &loss, &acc);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "evaluating");
        goto out;
    }
    printf("{\"model\":");
    json_str(stdout, model);
    printf(",\"data\":");
    json_str(stdout, s.data);
    printf(",\"samples\":%zu,\"test_loss\":", asymbp_dataset_count(test));
    json_num(stdout, loss);
    printf(",\"test_accuracy\":");
    json_num(stdout, acc);
    printf(",\"test_error\":");
    json_num(stdout, 1.0 - acc);
    printf("}\n");
    rc = 0;
out:
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return rc;
}

static int cmd_info(int argc, char **argv)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_status_t st;
    int64_t in[3];
    size_t i;
    if (argc != 1 || argv[0][0] == '-') {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            printf("usage: asymbp info MODEL\nDescribes a model or checkpoint file: input shape, layers, parameters, feedback.\n");
            return 0;
        }
        die_usage("info: give exactly one MODEL file");
    }
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    st = asymbp_model_load(ctx, argv[0], &net);
    if (st != ASYMBP_OK) {
        int rc = fail(ctx, st, argv[0]);
        asymbp_ctx_destroy(ctx);
        return rc;
    }
    if (asymbp_net_input_shape(net, in) != ASYMBP_OK) in[0] = in[1] = in[2] = 0;
    printf("model      %s\nnet        %s\ninput      %lldx%lldx%lld\nclasses    %lld\nparameters %zu floats\nlayers:\n",
           argv[0], asymbp_net_spec(net), (long long)in[0], (long long)in[1], (long long)in[2],
           (long long)asymbp_net_classes(net), asymbp_net_weight_count(net));
    for (i = 0; i < asymbp_net_layer_count(net); i++) {
        int64_t o[3] = {0, 0, 0};
        const char *fb = asymbp_net_get_layer_feedback(net, (int)i);
        if (asymbp_net_layer_output_shape(net, i, o) != ASYMBP_OK) o[0] = o[1] = o[2] = 0;
        printf("  %2zu %-14s -> %lldx%lldx%lld%s%s\n", i, asymbp_net_layer_name(net, i), (long long)o[0], (long long)o[1],
               (long long)o[2], fb ? "   feedback " : "", fb ? fb : "");
    }
    printf("{\"model\":");
    json_str(stdout, argv[0]);
    printf(",\"net\":");
    json_str(stdout, asymbp_net_spec(net));
    printf(",\"classes\":%lld,\"parameters\":%zu,\"layers\":%zu}\n", (long long)asymbp_net_classes(net),
           asymbp_net_weight_count(net), asymbp_net_layer_count(net));
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return 0;
}

static int cmd_gradcheck(int argc, char **argv)
{
    const char *spec = NULL, *input = NULL;
    long long classes = 0, seed = 1, n = 4;
    int bn = 0, i, rc = 1;
    long long c = 0, h = 1, w = 1;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_rng_t *rng = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    asymbp_status_t st;
    asymbp_gradcheck_params_t gp = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t rep = ASYMBP_GRADCHECK_REPORT_INIT;
    char buf[8192];
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: asymbp gradcheck --net SPEC --input CxHxW|N --classes K [--bn] [--seed S] [--batch N]\n"
                   "Central finite differences of the loss against the backward pass for every parameter and\n"
                   "the input, on random data; prints one JSON line with max_rel_error and per-layer figures.\n"
                   "Exit status 0 when max_rel_error <= 1e-2.\n");
            return 0;
        } else if (!strcmp(a, "--net") && i + 1 < argc) spec = argv[++i];
        else if (!strcmp(a, "--input") && i + 1 < argc) input = argv[++i];
        else if (!strcmp(a, "--classes") && i + 1 < argc) classes = parse_int(a, argv[++i], 2, 100000);
        else if (!strcmp(a, "--seed") && i + 1 < argc) seed = parse_int(a, argv[++i], 0, (long long)9e18);
        else if (!strcmp(a, "--batch") && i + 1 < argc) n = parse_int(a, argv[++i], 1, 64);
        else if (!strcmp(a, "--bn")) bn = 1;
        else die_usage("gradcheck: unknown option '%s'", a);
    }
    if (!spec || !input || !classes) die_usage("gradcheck needs --net, --input and --classes");
    if (sscanf(input, "%lldx%lldx%lld", &c, &h, &w) == 3) {
    } else if (sscanf(input, "%lld", &c) == 1 && !strchr(input, 'x')) {
        h = w = 1;
    } else die_usage("gradcheck: --input '%s' is neither CxHxW nor N", input);
    if (c < 1 || h < 1 || w < 1) die_usage("gradcheck: --input sizes must be >= 1");
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    if (asymbp_ctx_set_seed(ctx, (uint64_t)seed) != ASYMBP_OK) goto out;
    st = asymbp_net_from_spec(ctx, spec, c, h, w, classes, bn, &net);
    if (st == ASYMBP_OK) st = asymbp_net_bind(net, (size_t)n);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "--net");
        goto out;
    }
    x = malloc(sizeof *x * (size_t)(n * c * h * w));
    y = malloc(sizeof *y * (size_t)n);
    if (!x || !y || asymbp_rng_create(ctx, (uint64_t)seed, 99, &rng) != ASYMBP_OK) goto out;
    for (i = 0; i < n * c * h * w; i++) x[i] = asymbp_rng_normal(rng);
    for (i = 0; i < n; i++) y[i] = (int32_t)asymbp_rng_below(rng, (uint32_t)classes);
    gp.seed = (uint64_t)seed;
    st = asymbp_net_gradcheck(net, x, y, (size_t)n, &gp, &rep);
    if (st != ASYMBP_OK) {
        rc = fail(ctx, st, "gradcheck");
        goto out;
    }
    asymbp_gradcheck_report_json(&rep, buf, sizeof buf);
    printf("%s\n", buf);
    rc = rep.max_rel_error <= 1e-2 ? 0 : 3;
out:
    free(x);
    free(y);
    asymbp_rng_destroy(rng);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help();
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("asymbp %s (%s)\n", asymbp_version_string(), asymbp_blas_name());
        return 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "gradcheck")) return cmd_gradcheck(argc - 2, argv + 2);
    die_usage("unknown command '%s'", argv[1]);
    return 2;
}
