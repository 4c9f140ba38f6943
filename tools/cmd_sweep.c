/* asymbp sweep: a grid of runs (data sets x nets x feedback settings x regimes x seeds x
 * hyper-parameter candidates) from a grid file, with the hyper-parameters chosen on validation
 * accuracy by a search the sweep runs first, one CSV row per finished run, resumable, parallel
 * over local processes (-j) and split into shards (--shard i/n).  docs/protocol.md describes the
 * grid file and the protocol; every run is an `asymbp train` child process with --out, so a
 * killed sweep resumes each unfinished run from its checkpoint. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

extern char **environ;

#define MAXV 64          /* values of one key */
#define MAXK 256         /* keys of a grid */
#define TXT 256
#define DIRMAX (CLI_PATH_MAX + 2048)

/* ---- the grid file --------------------------------------------------------------------------- */

typedef struct gkey {
    char name[64], qual[128];          /* "lr", "bm" for "lr.bm = ..." */
    char vals[MAXV][TXT];
    int n;
    int line;
} gkey_t;

typedef struct grid {
    char path[CLI_PATH_MAX], name[64];
    gkey_t keys[MAXK];
    int n;
} grid_t;

static const char *const known_keys[] = { "name", "data", "net", "feedback", "regime", "seed", "epochs", "batch", "val-split",
                                          "lr", "schedule", "lr-gamma", "lr-min", "warmup", "momentum", "wd", "tune",
                                          "tune-data", "tune-seeds", "threads", "bn-stats", "bn-recal-samples", "diag",
                                          "extra", NULL };

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = '\0';
    return s;
}

static int grid_load(const char *path, grid_t *g)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0;
    const char *base;
    if (!f) return cli_error("sweep: cannot read %s: %s", path, strerror(errno));
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    base = strrchr(path, '/');
    snprintf(g->name, sizeof g->name, "%s", base ? base + 1 : path);
    if (strchr(g->name, '.')) *strchr(g->name, '.') = '\0';
    while (fgets(line, sizeof line, f)) {
        char *p, *eq, *k, *v, *dot;
        gkey_t *gk;
        int known = 0;
        lineno++;
        if ((p = strchr(line, '#')) != NULL) *p = '\0';
        p = trim(line);
        if (!*p) continue;
        eq = strchr(p, '=');
        if (!eq) {
            fclose(f);
            return cli_error("sweep: %s: line %d is not KEY = VALUE[, VALUE...]", path, lineno);
        }
        *eq = '\0';
        k = trim(p);
        v = trim(eq + 1);
        if (g->n == MAXK) {
            fclose(f);
            return cli_error("sweep: %s: more than %d keys", path, MAXK);
        }
        gk = &g->keys[g->n];
        memset(gk, 0, sizeof *gk);
        gk->line = lineno;
        dot = strchr(k, '.');
        if (dot) {
            *dot = '\0';
            snprintf(gk->qual, sizeof gk->qual, "%s", dot + 1);
        }
        snprintf(gk->name, sizeof gk->name, "%s", k);
        for (int i = 0; known_keys[i]; i++) known |= !strcmp(known_keys[i], gk->name);
        if (!known && strcmp(gk->name, "regime") != 0) {
            fclose(f);
            return cli_error("sweep: %s: line %d: unknown key '%s'", path, lineno, gk->name);
        }
        /* "extra" and "regime.NAME" hold command-line text: one value, not a list */
        if (!strcmp(gk->name, "extra") || (!strcmp(gk->name, "regime") && gk->qual[0])) {
            snprintf(gk->vals[0], TXT, "%s", v);
            gk->n = 1;
        } else {
            /* values are separated by a comma followed by a blank; a comma inside a value (a net
             * spec such as mlp:128,64) has none after it */
            char *tok = v, *t;
            while (tok) {
                char *sep = tok;
                while ((sep = strchr(sep, ',')) != NULL && sep[1] != ' ' && sep[1] != '\t' && sep[1] != '\0') sep++;
                if (sep) *sep = '\0';
                t = trim(tok);
                tok = sep ? sep + 1 : NULL;
                if (!*t) continue;
                if (gk->n == MAXV) {
                    fclose(f);
                    return cli_error("sweep: %s: line %d: more than %d values", path, lineno, MAXV);
                }
                snprintf(gk->vals[gk->n++], TXT, "%s", t);
            }
            if (gk->n == 0) {
                fclose(f);
                return cli_error("sweep: %s: line %d: '%s' has no value", path, lineno, gk->name);
            }
        }
        if (!strcmp(gk->name, "name")) snprintf(g->name, sizeof g->name, "%s", gk->vals[0]);
        g->n++;
    }
    fclose(f);
    return 0;
}

/* The most specific entry of a key: name.q1, then name.q2, then name (quals may be NULL). */
static const gkey_t *gk(const grid_t *g, const char *name, const char *q1, const char *q2)
{
    const char *qs[3] = { q1, q2, "" };
    for (int k = 0; k < 3; k++) {
        if (!qs[k]) continue;
        for (int i = g->n - 1; i >= 0; i--)
            if (!strcmp(g->keys[i].name, name) && !strcmp(g->keys[i].qual, qs[k])) return &g->keys[i];
    }
    return NULL;
}

static const char *gv(const grid_t *g, const char *name, const char *q1, const char *q2, const char *def)
{
    const gkey_t *k = gk(g, name, q1, q2);
    return k ? k->vals[0] : def;
}

/* ---- regimes --------------------------------------------------------------------------------- */

static const char *regime_args(const grid_t *g, const char *regime)
{
    const gkey_t *k = gk(g, "regime", regime, NULL);
    if (k && k->qual[0]) return k->vals[0];
    if (!strcmp(regime, "sgd")) return "--update sgd";
    if (!strcmp(regime, "bm")) return "--update bm";
    if (!strcmp(regime, "bn")) return "--update sgd --bn";
    if (!strcmp(regime, "bn+bm")) return "--update bm --bn";
    return NULL;
}

/* "sgd" or "bm": which learning-rate list a regime takes when lr.<regime> is not given. */
static const char *regime_update(const char *args)
{
    const char *u = strstr(args, "--update ");
    return u && !strncmp(u + 9, "bm", 2) ? "bm" : "sgd";
}

/* ---- cells ----------------------------------------------------------------------------------- */

typedef struct cell {
    char data[TXT], net[TXT], feedback[TXT], regime[64], lr[64], sched[TXT];
    char seed[32];
    char id[1024], dir[DIRMAX];
    char group[1024];     /* the tuning group */
    int search;           /* run by the search */
    int final;            /* a reported run (the chosen candidate) */
    int done, failed;
    pid_t pid;
} cell_t;

typedef struct sweep {
    grid_t g;
    char out[CLI_PATH_MAX], csv[CLI_PATH_MAX + 32], exe[CLI_PATH_MAX];
    cell_t *cells;
    size_t n, cap;
    int jobs, shard, nshards, dry;
    int rank, ranks;      /* --dist mpi: this rank and the number of ranks (rank 0 hands out runs) */
    char **done_ids;
    char **done_rows;     /* the CSV line of each done id (its settings are checked against the grid) */
    size_t n_done;
    int col_settings[3];  /* columns of epochs, batch and val_split in the CSV (-1: none) */
} sweep_t;

static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src && n + 1 < cap; src++) {
        char c = *src;
        dst[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+'
                       ? c : '_';
    }
    dst[n] = '\0';
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static cell_t *add_cell(sweep_t *w, const char *data, const char *net, const char *fb, const char *regime, const char *lr,
                        const char *sched, const char *seed)
{
    cell_t *c;
    char a[TXT], b[TXT], n[TXT], s[TXT];
    for (size_t i = 0; i < w->n; i++) {
        c = &w->cells[i];
        if (!strcmp(c->data, data) && !strcmp(c->net, net) && !strcmp(c->feedback, fb) && !strcmp(c->regime, regime) &&
            !strcmp(c->lr, lr) && !strcmp(c->sched, sched) && !strcmp(c->seed, seed))
            return c;
    }
    if (w->n == w->cap) {
        size_t ncap = w->cap ? 2 * w->cap : 256;
        cell_t *nc = realloc(w->cells, ncap * sizeof *nc);
        if (!nc) return NULL;
        w->cells = nc;
        w->cap = ncap;
    }
    c = &w->cells[w->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->data, sizeof c->data, "%s", data);
    snprintf(c->net, sizeof c->net, "%s", net);
    snprintf(c->feedback, sizeof c->feedback, "%s", fb);
    snprintf(c->regime, sizeof c->regime, "%s", regime);
    snprintf(c->lr, sizeof c->lr, "%s", lr);
    snprintf(c->sched, sizeof c->sched, "%s", sched);
    snprintf(c->seed, sizeof c->seed, "%s", seed);
    snprintf(c->id, sizeof c->id, "%s|%s|%s|%s|lr=%s|%s|s%s", data, net, fb, regime, lr, sched, seed);
    sanitize(a, sizeof a, data);
    sanitize(b, sizeof b, fb);
    if (strlen(net) <= 24) sanitize(n, sizeof n, net);
    else {
        char head[17];
        sanitize(head, sizeof head, net);
        snprintf(n, sizeof n, "%.16s-%08llx", head, (unsigned long long)(fnv(net) & 0xffffffffULL));
    }
    sanitize(s, sizeof s, sched);
    if ((size_t)snprintf(c->dir, sizeof c->dir, "%s/runs/%s/%s/%s-%s-lr%s-%s-s%s", w->out, a, n, b, regime, lr, s, seed) >= sizeof c->dir)
        c->dir[0] = 0;
    return c;
}

/* The net a value of `net` stands for on a data set ("auto": the tool's default for its shape). */
static int resolve_net(asymbp_ctx_t *ctx, const char *data, const char *net, char *out, size_t cap)
{
    asymbp_dataset_t *tr = NULL, *te = NULL;
    const char *roots[4];
    size_t nr;
    int64_t c, h, w;
    asymbp_status_t st;
    if (strcmp(net, "auto") != 0) {
        snprintf(out, cap, "%s", net);
        return 0;
    }
    nr = data_roots(roots);
    st = path_is_dir(data) ? asymbp_dataset_load_dir(ctx, data, 0, &tr, &te)
                           : asymbp_dataset_load_named(ctx, data, roots, nr, &tr, &te);
    if (st != ASYMBP_OK) return cli_fail(ctx, st, data);
    if (asymbp_dataset_shape(tr, &c, &h, &w) != ASYMBP_OK) c = h = w = 1;
    snprintf(out, cap, "%s", default_net(h, w));
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    return 0;
}

/* The tuning group of a cell: the values of the keys named by `tune` (default every key but the
 * seed and the candidate), with the data set replaced by "*" when tune-data pools data sets. */
static void group_of(const grid_t *g, const cell_t *c, char *out, size_t cap)
{
    const gkey_t *t = gk(g, "tune", NULL, NULL);
    int has[4] = { 1, 1, 1, 1 };   /* data, net, regime, feedback */
    if (t) {
        memset(has, 0, sizeof has);
        for (int i = 0; i < t->n; i++) {
            if (!strcmp(t->vals[i], "data")) has[0] = 1;
            else if (!strcmp(t->vals[i], "net")) has[1] = 1;
            else if (!strcmp(t->vals[i], "regime")) has[2] = 1;
            else if (!strcmp(t->vals[i], "feedback")) has[3] = 1;
        }
    }
    if (gk(g, "tune-data", c->net, NULL)) has[0] = 0;
    snprintf(out, cap, "%s|%s|%s|%s", has[0] ? c->data : "*", has[1] ? c->net : "*", has[2] ? c->regime : "*",
             has[3] ? c->feedback : "*");
}

static int in_list(const gkey_t *k, const char *v)
{
    if (!k) return 0;
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->vals[i], v)) return 1;
    return 0;
}

/* ---- running one cell ------------------------------------------------------------------------ */

/* A cell's epochs, batch size and validation split, as the grid gives them (the run's row records
 * the same three: check_done_settings compares them). */
static void cell_settings(const grid_t *g, const cell_t *c, const char *v[3])
{
    v[0] = gv(g, "epochs", c->data, NULL, "10");
    v[1] = gv(g, "batch", c->data, c->net, "100");
    v[2] = gv(g, "val-split", c->data, NULL, "0.1");
}

/* argv of `asymbp train` for a cell (strings in buf). */
static int cell_argv(const sweep_t *w, const cell_t *c, char *buf, size_t cap, char **argv, int max)
{
    const grid_t *g = &w->g;
    const char *ra = regime_args(g, c->regime), *extra;
    char text[8192];
    int n = 0, len;
    size_t used = 0;
    const char *set[3], *ep;
    const gkey_t *dk = gk(g, "diag", NULL, NULL);
    cell_settings(g, c, set);
    ep = set[0];
    len = snprintf(text, sizeof text, "train --data %s --net %s --feedback %s %s --lr %s --epochs %s --batch %s --seed %s "
                   "--val-split %s --threads %s --bn-stats %s --bn-recal-samples %s --momentum %s --wd %s "
                   "--checkpoint-every 1 --quiet --out %s",
                   c->data, c->net, c->feedback, ra, c->lr, ep, set[1], c->seed,
                   set[2], gv(g, "threads", NULL, NULL, "1"),
                   gv(g, "bn-stats", NULL, NULL, "recal"), gv(g, "bn-recal-samples", c->data, NULL, "10000"),
                   gv(g, "momentum", c->regime, NULL, "0.9"), gv(g, "wd", c->regime, NULL, "0"), c->dir);
    if (len < 0 || (size_t)len >= sizeof text) return -1;
    /* the schedule: const, cosine, or step:F1/F2/... (fractions of the epochs) */
    if (!strcmp(c->sched, "cosine")) {
        len += snprintf(text + len, sizeof text - (size_t)len, " --lr-schedule cosine --lr-min %s",
                        gv(g, "lr-min", c->regime, NULL, "0"));
    } else if (!strncmp(c->sched, "step:", 5)) {
        int e = atoi(ep), last = 0;
        char steps[256] = "";
        size_t sl = 0;
        const char *p = c->sched + 5;
        while (*p) {
            double f = strtod(p, (char **)&p);
            int m = (int)(f * e + 0.5);
            if (m <= last) m = last + 1;
            if (m >= e) break;
            sl += (size_t)snprintf(steps + sl, sizeof steps - sl, "%s%d", sl ? "," : "", m);
            last = m;
            if (*p == '/') p++;
            else break;
        }
        if (*steps) len += snprintf(text + len, sizeof text - (size_t)len, " --lr-steps %s --lr-gamma %s", steps,
                                    gv(g, "lr-gamma", c->regime, NULL, "0.1"));
    }
    if (gv(g, "warmup", c->regime, NULL, NULL))
        len += snprintf(text + len, sizeof text - (size_t)len, " --warmup %s", gv(g, "warmup", c->regime, NULL, "0"));
    if (dk && (in_list(dk, "all") || in_list(dk, c->feedback))) len += snprintf(text + len, sizeof text - (size_t)len, " --diag");
    extra = gv(g, "extra", c->data, NULL, NULL);
    if (extra) len += snprintf(text + len, sizeof text - (size_t)len, " %s", extra);
    if (len < 0 || (size_t)len >= sizeof text || (size_t)len + 1 > cap) return -1;
    memcpy(buf, text, (size_t)len + 1);
    for (char *p = buf; *p && n < max - 1;) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        argv[n++] = p;
        while (*p && *p != ' ') p++;
    }
    argv[n] = NULL;
    (void)used;
    return n;
}

static pid_t start_cell(const sweep_t *w, cell_t *c)
{
    static char buf[8192];
    char *argv[128], ckpt[DIRMAX + 32], log[DIRMAX + 32];
    int resume;
    pid_t pid, parent;
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.asymbp", c->dir);
    resume = path_exists(ckpt);
    if (resume) {
        argv[0] = (char *)w->exe;
        argv[1] = "train";
        argv[2] = "--resume";
        argv[3] = c->dir;
        argv[4] = "--quiet";
        argv[5] = NULL;
    } else {
        if (cell_argv(w, c, buf, sizeof buf, argv + 1, 127) < 0) return -1;
        argv[0] = (char *)w->exe;
    }
    /* the folder's parents; the run itself creates or reuses its folder */
    {
        char p[DIRMAX];
        snprintf(p, sizeof p, "%s", c->dir);
        for (char *s = p + 1; *s; s++)
            if (*s == '/') {
                *s = '\0';
                mkdir(p, 0755);
                *s = '/';
            }
    }
    snprintf(log, sizeof log, "%s.log", c->dir);
    fflush(NULL);
    parent = getpid();
    pid = fork();
    if (pid == 0) {
        int fd, nul;
#ifdef __linux__
        /* a run ends with the sweep that started it (killed by anything: mpirun ending a rank
         * sends SIGTERM to the rank alone), so no orphan keeps writing a run folder that the next
         * sweep resumes; the run continues from its checkpoint then */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(126);
#endif
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        nul = open("/dev/null", O_RDWR);
        /* a run is a process of its own, not one more MPI rank: the launcher's variables go */
        for (int again = 1; again;) {
            again = 0;
            for (char **e = environ; *e; e++)
                if (!strncmp(*e, "OMPI_", 5) || !strncmp(*e, "PMI_", 4) || !strncmp(*e, "PMIX_", 5) ||
                    !strncmp(*e, "MPI_LOCALNRANKS", 15)) {
                    char name[256];
                    size_t k = strcspn(*e, "=");
                    if (k >= sizeof name) continue;
                    memcpy(name, *e, k);
                    name[k] = '\0';
                    unsetenv(name);
                    again = 1;
                    break;
                }
        }
        if (fd >= 0) dup2(fd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execv(w->exe, argv);
        _exit(127);
    }
    return pid;
}

/* ---- summaries and rows ---------------------------------------------------------------------- */

/* Value of "key" in a flat one-line JSON object, copied (strings unquoted); "" when absent. */
static void json_get(const char *js, const char *key, char *out, size_t cap)
{
    char pat[80];
    const char *p;
    size_t n = 0;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    out[0] = '\0';
    p = strstr(js, pat);
    if (!p) return;
    p += strlen(pat);
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1]) p++;
            out[n++] = *p;
        }
    } else {
        while (*p && *p != ',' && *p != '}' && n + 1 < cap) out[n++] = *p++;
    }
    out[n] = '\0';
}

static const char *const row_fields[] = { "epochs_done", "best_epoch", "val_accuracy_best", "val_accuracy", "test_accuracy_at_best",
                                          "test_accuracy", "test_accuracy_ema", "test_error_at_best", "test_error", "diverged",
                                          "seconds", "bn_stats", "lr_schedule", "threads", "blas", "version", NULL };

static int csv_header(const char *path)
{
    FILE *f;
    if (path_exists(path)) return 0;
    f = fopen(path, "w");
    if (!f) return cli_error("sweep: cannot write %s: %s", path, strerror(errno));
    fputs("id,grid,data,net,feedback,regime,lr,schedule,seed,group,role,epochs,batch,val_split", f);
    for (int i = 0; row_fields[i]; i++) fprintf(f, ",%s", row_fields[i]);
    fputc('\n', f);
    if (fclose(f) != 0) return cli_error("sweep: cannot write %s: %s", path, strerror(errno));
    return 0;
}

static void csv_field(sbuf_t *b, const char *v)
{
    if (strpbrk(v, ",\"\n")) {
        sb_puts(b, "\"");
        for (; *v; v++) {
            char ch[3] = { *v, 0, 0 };
            if (*v == '"') ch[1] = '"';
            sb_puts(b, ch);
        }
        sb_puts(b, "\"");
    } else {
        sb_puts(b, v);
    }
}

/* The CSV row of a finished cell, from its summary.json, appended to b. */
static int make_row(const sweep_t *w, const cell_t *c, sbuf_t *b)
{
    char path[DIRMAX + 32], *js;
    FILE *f;
    long len;
    snprintf(path, sizeof path, "%s/summary.json", c->dir);
    f = fopen(path, "r");
    if (!f) return cli_error("sweep: %s: no summary.json", c->dir);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    js = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (!js || (len > 0 && fread(js, 1, (size_t)len, f) != (size_t)len)) {
        fclose(f);
        free(js);
        return cli_error("sweep: cannot read %s", path);
    }
    js[len > 0 ? len : 0] = '\0';
    fclose(f);
    csv_field(b, c->id);
    sb_puts(b, ",");
    csv_field(b, w->g.name);
    const char *cols[] = { c->data, c->net, c->feedback, c->regime, c->lr, c->sched, c->seed, c->group };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        sb_puts(b, ",");
        csv_field(b, cols[i]);
    }
    /* a search run's row is written before the choice: the report (and selection.csv) tell which
     * candidate won; "final" rows are the other seeds of a chosen candidate, or runs of a group
     * with a single candidate */
    sb_printf(b, ",%s", c->search ? "search" : "final");
    {
        char v[256];
        const char *keys[] = { "epochs", "batch", "val_split" };
        for (size_t i = 0; i < 3; i++) {
            json_get(js, keys[i], v, sizeof v);
            sb_puts(b, ",");
            csv_field(b, v);
        }
        for (int i = 0; row_fields[i]; i++) {
            json_get(js, row_fields[i], v, sizeof v);
            sb_puts(b, ",");
            csv_field(b, v);
        }
    }
    sb_puts(b, "\n");
    free(js);
    if (b->failed) return cli_error("sweep: out of memory");
    return 0;
}

/* Append rows to the CSV: one write with O_APPEND, so rows of parallel runs of one process never
 * mix; under --dist mpi only rank 0 writes (the other ranks send it their rows). */
static int append_text(const sweep_t *w, const char *text, size_t len)
{
    int fd, rc = 0;
    fd = open(w->csv, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
        rc = cli_error("sweep: cannot append to %s: %s", w->csv, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

static int append_row(const sweep_t *w, const cell_t *c)
{
    sbuf_t b = { 0 };
    int rc = make_row(w, c, &b);
    if (rc == 0) rc = append_text(w, b.p, b.len);
    sb_free(&b);
    return rc;
}

/* Field k (0-based) of a CSV line, quotes undone, into out; 0 when the line has it. */
static int csv_field_at(const char *line, int k, char *out, size_t cap)
{
    const char *p = line;
    for (int i = 0;; i++) {
        size_t n = 0;
        if (*p == '"') {
            for (p++; *p; p++) {
                if (*p == '"' && p[1] == '"') p++;
                else if (*p == '"') {
                    p++;
                    break;
                }
                if (i == k && n + 1 < cap) out[n++] = *p;
            }
        } else {
            for (; *p && *p != ',' && *p != '\n'; p++)
                if (i == k && n + 1 < cap) out[n++] = *p;
        }
        if (i == k) {
            out[n] = '\0';
            return 0;
        }
        if (*p != ',') return -1;
        p++;
    }
}

/* Index of column `name` in a CSV header line, -1 when it has none. */
static int csv_column(const char *header, const char *name)
{
    char f[64];
    for (int k = 0; csv_field_at(header, k, f, sizeof f) == 0; k++)
        if (!strcmp(f, name)) return k;
    return -1;
}

static const char *const setting_cols[3] = { "epochs", "batch", "val_split" };

/* ids already in the CSV (rows of finished cells) */
static int load_done(sweep_t *w)
{
    FILE *f = fopen(w->csv, "r");
    char line[16384];
    for (int i = 0; i < 3; i++) w->col_settings[i] = -1;
    if (!f) return 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return 0;
    }
    for (int i = 0; i < 3; i++) w->col_settings[i] = csv_column(line, setting_cols[i]);
    while (fgets(line, sizeof line, f)) {
        char id[1100];
        char **nd;
        if (!strchr(line, '\n')) continue;   /* a row cut short */
        csv_field_at(line, 0, id, sizeof id);
        nd = realloc(w->done_ids, (w->n_done + 1) * sizeof *nd);
        if (!nd) break;
        w->done_ids = nd;
        nd = realloc(w->done_rows, (w->n_done + 1) * sizeof *nd);
        if (!nd) break;
        w->done_rows = nd;
        w->done_ids[w->n_done] = strdup(id);
        w->done_rows[w->n_done] = strdup(line);
        if (w->done_ids[w->n_done] && w->done_rows[w->n_done]) w->n_done++;
        else {
            free(w->done_ids[w->n_done]);
            free(w->done_rows[w->n_done]);
        }
    }
    fclose(f);
    return 0;
}

/* Index of the CSV row of run id among the done ones, -1 when it has none. */
static long done_index(const sweep_t *w, const char *id)
{
    for (size_t i = 0; i < w->n_done; i++)
        if (!strcmp(w->done_ids[i], id)) return (long)i;
    return -1;
}

static int is_done(const sweep_t *w, const char *id) { return done_index(w, id) >= 0; }

/* A cell's id names its data set, net, feedback, regime, learning rate, schedule and seed, not its
 * epochs, batch or validation split: a row made before the grid changed one of these would count
 * as the run of the changed grid.  Such cells are left to do (a dry run lists them) and reported;
 * 1 when there is one (the caller refuses to run: the new rows would mix with the old). */
static int check_done_settings(sweep_t *w)
{
    int bad = 0;
    char first[1536] = "";
    for (size_t i = 0; i < w->n; i++) {
        cell_t *c = &w->cells[i];
        const char *want[3];
        long r;
        if (!c->done || (r = done_index(w, c->id)) < 0) continue;
        cell_settings(&w->g, c, want);
        for (int k = 0; k < 3; k++) {
            char v[64];
            double a, b;
            if (w->col_settings[k] < 0 || csv_field_at(w->done_rows[r], w->col_settings[k], v, sizeof v) != 0 || !*v)
                continue;
            a = strtod(v, NULL);
            b = strtod(want[k], NULL);
            if (fabs(a - b) <= 1e-9 * fabs(b)) continue;
            if (!bad) snprintf(first, sizeof first, "run %s has %s %s, the grid now asks for %s", c->id, setting_cols[k], v, want[k]);
            bad++;
            c->done = 0;
            break;
        }
    }
    if (bad && w->rank == 0)
        fprintf(stderr, "asymbp: sweep: %s: %d run%s made with other settings than the grid's (%s%s); a run is named "
                "without its epochs, batch and validation split: write a changed grid's runs to another folder with "
                "--out%s\n", w->csv, bad, bad == 1 ? "" : "s", first, bad > 1 ? ", ..." : "",
                w->dry ? " (the dry run lists them as still to do)" : "");
    return bad > 0;
}


/* Value of field `name` for the row of cell id in the CSV ("" when none). */
static void row_value(const sweep_t *w, const char *id, const char *name, char *out, size_t cap)
{
    FILE *f = fopen(w->csv, "r");
    char line[16384];
    int col;
    out[0] = '\0';
    if (!f) return;
    if (!fgets(line, sizeof line, f) || (col = csv_column(line, name)) < 0) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char fld[1100];
        if (csv_field_at(line, 0, fld, sizeof fld) != 0 || strcmp(fld, id)) continue;
        if (csv_field_at(line, col, out, cap) != 0) out[0] = '\0';
        break;
    }
    fclose(f);
}

/* ---- handing out runs (--dist mpi) ----------------------------------------------------------
 * Rank 0 hands out the runs and writes every row; the ranks meet in rounds (a few per second):
 * each tells how many run slots it has free and how many bytes of finished rows it holds (one sum
 * over the ranks), every rank holding rows broadcasts them and rank 0 appends them to the CSV,
 * then rank 0 broadcasts the next runs for each free slot.  The communicator's collectives are
 * all this needs (no point-to-point messages), only one process ever writes runs.csv (safe on a
 * shared file system without atomic appends, NFS), and a fast rank gets more runs than a slow
 * one.  A record of a finished run: int32 cell index, int32 1 (row follows) or 0 (the run
 * failed), int32 row length, the row's bytes. */

#define POLL_NS 200000000L

/* records are text: each int32 as 8 hex digits */
static void put_i32(sbuf_t *b, int32_t v)
{
    sb_printf(b, "%08x", (unsigned)(uint32_t)v);
}

static int32_t get_i32(const char **p, const char *end)
{
    char t[9];
    if (end - *p < 8) {
        *p = end;
        return -1;
    }
    memcpy(t, *p, 8);
    t[8] = '\0';
    *p += 8;
    return (int32_t)(uint32_t)strtoul(t, NULL, 16);
}

/* The first cell from i on that this phase still has to run (w->n when none). */
static size_t next_todo(const sweep_t *w, size_t i, int want_search)
{
    while (i < w->n && (!(want_search ? w->cells[i].search : w->cells[i].final) || w->cells[i].done)) i++;
    return i;
}

static int run_cells_dist(sweep_t *w, int want_search, size_t total)
{
    const int R = w->ranks, J = w->jobs, me = w->rank;
    int32_t *info = calloc(3 * (size_t)R, sizeof *info), *asg = malloc(((size_t)R * J + 1) * sizeof *asg);
    size_t next = 0, running = 0, finished = 0, failed = 0;
    sbuf_t out = { 0 };
    int rc = 0;
    if (!info || !asg) {
        free(info);
        free(asg);
        return cli_error("sweep: out of memory");
    }
    for (;;) {
        int stop, idle = 1;
        long all_running = 0;
        /* this rank's finished runs */
        for (;;) {
            int st = 0;
            pid_t pid = waitpid(-1, &st, WNOHANG);
            if (pid <= 0) break;
            for (size_t i = 0; i < w->n; i++) {
                cell_t *c = &w->cells[i];
                sbuf_t row = { 0 };
                int ok;
                if (c->pid != pid) continue;
                c->pid = 0;
                running--;
                ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && make_row(w, c, &row) == 0;
                put_i32(&out, (int32_t)i);
                put_i32(&out, ok);
                put_i32(&out, ok ? (int32_t)row.len : 0);
                if (ok) sb_puts(&out, row.p);
                sb_free(&row);
                break;
            }
        }
        if (out.failed) {
            rc = cli_error("sweep: out of memory");
            break;
        }
        memset(info, 0, 3 * (size_t)R * sizeof *info);
        info[3 * me] = J - (int32_t)running;
        info[3 * me + 1] = (int32_t)out.len;
        info[3 * me + 2] = (int32_t)running;
        if (dist_sum_int32(info, 3 * (size_t)R) != 0) {
            rc = 1;
            break;
        }
        /* rows to rank 0 */
        for (int r = 0; r < R && rc == 0; r++) {
            size_t len = (size_t)info[3 * r + 1];
            char *buf;
            const char *p, *end;
            all_running += info[3 * r + 2];
            if (len == 0) continue;
            idle = 0;
            buf = r == me ? out.p : malloc(len);
            if (!buf) {
                rc = cli_error("sweep: out of memory");
                break;
            }
            if (dist_broadcast(buf, len, r) != 0) rc = 1;
            for (p = buf, end = buf + len; rc == 0 && me == 0 && p < end;) {
                int32_t idx = get_i32(&p, end), ok = get_i32(&p, end), n = get_i32(&p, end);
                cell_t *c;
                if (idx < 0 || (size_t)idx >= w->n || n < 0 || n > end - p) {
                    rc = cli_error("sweep: a garbled record from rank %d", r);
                    break;
                }
                c = &w->cells[idx];
                finished++;
                if (ok && append_text(w, p, (size_t)n) == 0) {
                    c->done = 1;
                    fprintf(stderr, "[%zu/%zu] done   %s (rank %d)\n", finished, total, c->id, r);
                } else {
                    c->failed = 1;
                    failed++;
                    fprintf(stderr, "[%zu/%zu] FAILED %s on rank %d (see %s.log)\n", finished, total, c->id, r, c->dir);
                }
                p += n;
            }
            if (r != me) free(buf);
        }
        if (rc != 0) break;
        out.len = 0;
        if (out.p) out.p[0] = '\0';
        /* rank 0 hands out the next runs */
        for (size_t k = 0; k < (size_t)R * J + 1; k++) asg[k] = -1;
        if (me == 0) {
            next = next_todo(w, next, want_search);
            for (int r = 0; r < R && next < w->n; r++)
                for (int slot = 0; slot < info[3 * r] && slot < J && next < w->n; slot++) {
                    asg[(size_t)r * J + slot] = (int32_t)next;
                    next = next_todo(w, next + 1, want_search);
                    idle = 0;
                }
            /* the end: nothing left to hand out, nothing running, no rows on their way */
            asg[(size_t)R * J] = next == w->n && all_running == 0 && idle ? 1 + (failed > 0) : 0;
        }
        if (dist_broadcast(asg, ((size_t)R * J + 1) * sizeof *asg, 0) != 0) {
            rc = 1;
            break;
        }
        stop = asg[(size_t)R * J] > 0;
        if (asg[(size_t)R * J] == 2) failed = failed ? failed : 1;   /* every rank ends with the same status */
        /* every rank sleeps, or not, alike: a rank waiting in a collective may spin */
        for (size_t k = 0; k < (size_t)R * J; k++)
            if (asg[k] >= 0) idle = 0;
        for (int slot = 0; slot < J; slot++) {
            int32_t idx = asg[(size_t)me * J + slot];
            cell_t *c;
            if (idx < 0 || (size_t)idx >= w->n) continue;
            c = &w->cells[idx];
            c->pid = start_cell(w, c);
            if (c->pid < 0) {
                cli_error("sweep: cannot start %s", c->id);
                c->pid = 0;
                put_i32(&out, idx);
                put_i32(&out, 0);
                put_i32(&out, 0);
                continue;
            }
            running++;
        }
        if (stop) break;
        if (idle) {
            struct timespec ts = { 0, POLL_NS };
            nanosleep(&ts, NULL);
        }
    }
    sb_free(&out);
    free(info);
    free(asg);
    if (rc == 0 && failed) {
        if (me == 0) cli_error("sweep: %zu runs failed; run the sweep again to retry them", failed);
        rc = 1;
    }
    return rc;
}

/* ---- the sweep ----------------------------------------------------------------------------- */

static int run_cells(sweep_t *w, int want_search)
{
    size_t next = 0, running = 0, started = 0, failed = 0, finished = 0;
    size_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        cell_t *c = &w->cells[i];
        if ((want_search ? c->search : c->final) && !c->done) total++;
    }
    if (total == 0) return 0;
    if (w->rank == 0)
        fprintf(stderr, "sweep %s: %zu %s runs to do%s%s\n", w->g.name, total, want_search ? "search" : "final",
                w->dry ? " (dry run)" : "", w->ranks > 1 ? ", shared by the ranks" : "");
    if (!w->dry && w->ranks > 1) return run_cells_dist(w, want_search, total);
    for (;;) {
        while (running < (size_t)w->jobs && next < w->n) {
            cell_t *c = &w->cells[next++];
            if (!(want_search ? c->search : c->final) || c->done) continue;
            if (w->dry) {
                char buf[8192], *argv[128];
                if (w->rank == 0 && cell_argv(w, c, buf, sizeof buf, argv, 128) > 0) {
                    printf("asymbp");
                    for (int a = 0; argv[a]; a++) printf(" %s", argv[a]);
                    printf("\n");
                }
                c->done = 1;
                continue;
            }
            c->pid = start_cell(w, c);
            if (c->pid < 0) {
                cli_error("sweep: cannot start %s", c->id);
                c->failed = 1;
                failed++;
                continue;
            }
            running++;
            started++;
        }
        if (running == 0) break;
        {
            int st = 0;
            pid_t pid = wait(&st);
            if (pid < 0) {
                if (errno == EINTR) continue;
                break;
            }
            for (size_t i = 0; i < w->n; i++) {
                cell_t *c = &w->cells[i];
                if (c->pid != pid) continue;
                c->pid = 0;
                running--;
                finished++;
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && append_row(w, c) == 0) {
                    c->done = 1;
                    fprintf(stderr, "[%zu/%zu] done   %s\n", finished, total, c->id);
                } else {
                    c->failed = 1;
                    failed++;
                    fprintf(stderr, "[%zu/%zu] FAILED %s (see %s.log)\n", finished, total, c->id, c->dir);
                }
                break;
            }
        }
    }
    if (failed) cli_error("sweep: %zu runs failed; run the sweep again to retry them", failed);
    return failed ? 1 : 0;
}

/* Choose the candidate of every tuning group from the search rows: the highest mean best
 * validation accuracy over the group's search runs (the first candidate in grid order wins a
 * tie); writes selection.csv. */
static int choose(sweep_t *w)
{
    char path[CLI_PATH_MAX + 64];
    FILE *f;
    if (w->nshards > 1) snprintf(path, sizeof path, "%s/selection-shard%d-of-%d.csv", w->out, w->shard, w->nshards);
    else snprintf(path, sizeof path, "%s/selection.csv", w->out);
    f = w->dry || w->rank != 0 ? NULL : fopen(path, "w");
    if (!w->dry && w->rank == 0 && !f) return cli_error("sweep: cannot write %s: %s", path, strerror(errno));
    if (f) fputs("group,lr,schedule,runs,mean_val_accuracy_best,chosen\n", f);
    for (size_t i = 0; i < w->n; i++) {
        cell_t *c = &w->cells[i];
        double best = -1.0;
        char blr[64] = "", bsched[TXT] = "";
        int seen = 0;
        if (!c->search) continue;
        /* first search cell of its group: evaluate the group's candidates */
        for (size_t j = 0; j < i; j++)
            if (w->cells[j].search && !strcmp(w->cells[j].group, c->group)) seen = 1;
        if (seen) continue;
        for (size_t j = i; j < w->n; j++) {
            cell_t *a = &w->cells[j];
            double sum = 0.0;
            int cnt = 0, dup = 0;
            if (!a->search || strcmp(a->group, c->group) != 0) continue;
            for (size_t k = i; k < j; k++)
                if (w->cells[k].search && !strcmp(w->cells[k].group, c->group) && !strcmp(w->cells[k].lr, a->lr) &&
                    !strcmp(w->cells[k].sched, a->sched))
                    dup = 1;
            if (dup) continue;
            for (size_t k = j; k < w->n; k++) {
                cell_t *b = &w->cells[k];
                char v[1200];
                if (!b->search || strcmp(b->group, c->group) || strcmp(b->lr, a->lr) || strcmp(b->sched, a->sched)) continue;
                row_value(w, b->id, "val_accuracy_best", v, sizeof v);
                if (!*v || !strcmp(v, "null")) strcpy(v, "0");
                sum += atof(v);
                cnt++;
            }
            if (cnt && sum / cnt > best) {
                best = sum / cnt;
                snprintf(blr, sizeof blr, "%s", a->lr);
                snprintf(bsched, sizeof bsched, "%s", a->sched);
            }
            if (f) fprintf(f, "\"%s\",%s,%s,%d,%.6f,", a->group, a->lr, a->sched, cnt, cnt ? sum / cnt : NAN);
            if (f) fputs("\n", f);
        }
        /* mark the chosen candidate's cells (every seed) as final; a dry run whose group still
         * misses search rows lists every candidate */
        {
            int open = 0;
            for (size_t k = 0; w->dry && k < w->n; k++)
                if (w->cells[k].search && !strcmp(w->cells[k].group, c->group) && !is_done(w, w->cells[k].id)) open = 1;
            for (size_t k = 0; k < w->n; k++) {
                cell_t *b = &w->cells[k];
                if (!strcmp(b->group, c->group) && b->final == 2 && !strcmp(b->lr, open ? b->lr : blr) &&
                    !strcmp(b->sched, open ? b->sched : bsched))
                    b->final = 1;
            }
        }
        if (f) fprintf(f, "\"%s\",%s,%s,,%.6f,chosen\n", c->group, blr, bsched, best);
    }
    /* cells whose group had no choice to make stay as they are; unchosen candidates are dropped */
    for (size_t k = 0; k < w->n; k++)
        if (w->cells[k].final == 2) w->cells[k].final = 0;
    if (f && fclose(f) != 0) return cli_error("sweep: cannot write %s", path);
    return 0;
}

static int parse_shard(const char *v, int *i, int *n)
{
    char *e;
    long a = strtol(v, &e, 10), b;
    if (e == v || *e != '/') return -1;
    b = strtol(e + 1, &e, 10);
    if (*e || b < 1 || a < 0 || a >= b || b > 100000) return -1;
    *i = (int)a;
    *n = (int)b;
    return 0;
}

int cmd_sweep(int argc, char **argv)
{
    sweep_t *w;
    asymbp_ctx_t *ctx = NULL;
    const char *grid = NULL, *out;
    settings_t st;
    int rc, n_pos = 0;
    ssize_t k;
    settings_default(&st);
    rc = opts_parse(CMD_SWEEP, argc, argv, &st, &grid, 1, &n_pos);
    if (rc != 0) return rc < 0 ? 0 : rc;
    if (!grid) return cli_usage("sweep: no GRID file given");
    if (st.dist && strcmp(st.dist, "mpi") != 0) return cli_usage("sweep: --dist '%s': only mpi", st.dist);
    if ((rc = dist_start(&st)) != 0) return dist_end(rc);
    w = calloc(1, sizeof *w);
    if (!w) return dist_end(cli_error("sweep: out of memory"));
    rc = 1;
    w->rank = dist_rank();
    w->ranks = dist_ranks();
    w->jobs = st.jobs;
    w->nshards = 1;
    w->dry = st.dry_run;
    out = st.sweep_out;
    if (st.shard && parse_shard(st.shard, &w->shard, &w->nshards) != 0) {
        free(w);
        return cli_usage("sweep: --shard '%s' is not I/N with 0 <= I < N", st.shard);
    }
    if (grid_load(grid, &w->g) != 0) goto done;
    k = readlink("/proc/self/exe", w->exe, sizeof w->exe - 1);
    if (k <= 0) {
        cli_error("sweep: cannot find this executable (/proc/self/exe)");
        goto done;
    }
    w->exe[k] = '\0';
    snprintf(w->out, sizeof w->out, "%s", out ? out : "");
    if (!out) snprintf(w->out, sizeof w->out, "results/%s", w->g.name);
    snprintf(w->csv, sizeof w->csv, "%s/runs%s.csv", w->out, "");
    if (w->nshards > 1) snprintf(w->csv, sizeof w->csv, "%s/runs-shard%d-of-%d.csv", w->out, w->shard, w->nshards);
    if (!(ctx = cli_ctx())) goto done;

    /* the cells */
    {
        const gkey_t *data = gk(&w->g, "data", NULL, NULL), *regs = gk(&w->g, "regime", NULL, NULL);
        const gkey_t *seeds = gk(&w->g, "seed", NULL, NULL), *tseeds = gk(&w->g, "tune-seeds", NULL, NULL);
        if (!data || !regs || !gk(&w->g, "feedback", NULL, NULL)) {
            cli_error("sweep: %s needs data, feedback and regime", grid);
            goto done;
        }
        for (int d = 0; d < data->n; d++) {
            const gkey_t *nets = gk(&w->g, "net", data->vals[d], NULL), *fbs = gk(&w->g, "feedback", data->vals[d], NULL);
            const gkey_t *rg = gk(&w->g, "regime", data->vals[d], NULL), *dseeds = gk(&w->g, "seed", data->vals[d], NULL);
            static const gkey_t auto_net = { "net", "", { "auto" }, 1, 0 };
            if (!nets) nets = &auto_net;
            if (!rg || rg->qual[0] == '\0' || strcmp(rg->qual, data->vals[d]) != 0) rg = regs;
            for (int ni = 0; ni < nets->n; ni++) {
                char net[TXT];
                if (resolve_net(ctx, data->vals[d], nets->vals[ni], net, sizeof net) != 0) goto done;
                for (int r = 0; r < rg->n; r++) {
                    const char *ra = regime_args(&w->g, rg->vals[r]);
                    const gkey_t *lrs, *scheds;
                    static const gkey_t def_sched = { "schedule", "", { "const" }, 1, 0 };
                    if (!ra) {
                        cli_error("sweep: %s: unknown regime '%s' (sgd, bm, bn, bn+bm or one defined as regime.NAME = ARGS)",
                                  grid, rg->vals[r]);
                        goto done;
                    }
                    lrs = gk(&w->g, "lr", rg->vals[r], regime_update(ra));
                    scheds = gk(&w->g, "schedule", rg->vals[r], regime_update(ra));
                    if (!lrs) {
                        cli_error("sweep: %s: no learning rate for regime '%s' (lr.%s, lr.%s or lr)", grid, rg->vals[r],
                                  rg->vals[r], regime_update(ra));
                        goto done;
                    }
                    if (!scheds) scheds = &def_sched;
                    for (int fi = 0; fi < fbs->n; fi++)
                        for (int li = 0; li < lrs->n; li++)
                            for (int si = 0; si < scheds->n; si++)
                                for (int s = 0; s < (dseeds ? dseeds->n : 1); s++) {
                                    cell_t *c = add_cell(w, data->vals[d], net, fbs->vals[fi], rg->vals[r], lrs->vals[li],
                                                         scheds->vals[si], dseeds ? dseeds->vals[s] : "1");
                                    int multi = lrs->n * scheds->n > 1;
                                    if (!c) {
                                        cli_error("sweep: out of memory");
                                        goto done;
                                    }
                                    group_of(&w->g, c, c->group, sizeof c->group);
                                    /* final: 2 = pending the choice (several candidates), 1 = reported */
                                    c->final = multi ? 2 : 1;
                                    if (multi && (tseeds ? in_list(tseeds, c->seed) : s == 0)) {
                                        const gkey_t *td = gk(&w->g, "tune-data", c->net, NULL);
                                        c->search = !td || in_list(td, c->data);
                                    }
                                }
                }
            }
        }
        /* tune-data sets that are not in the grid's data list: their search cells still run */
        for (size_t i = 0, n0 = w->n; i < n0; i++) {
            cell_t *c = &w->cells[i];
            const gkey_t *td = gk(&w->g, "tune-data", c->net, NULL);
            if (!td || c->final == 1) continue;
            for (int t = 0; t < td->n; t++) {
                cell_t *x;
                if (!strcmp(td->vals[t], c->data)) continue;
                if (!(tseeds ? in_list(tseeds, c->seed) : !strcmp(c->seed, seeds ? seeds->vals[0] : "1"))) continue;
                x = add_cell(w, td->vals[t], c->net, c->feedback, c->regime, c->lr, c->sched, c->seed);
                c = &w->cells[i];   /* the array may have moved */
                if (!x) {
                    cli_error("sweep: out of memory");
                    goto done;
                }
                if (!x->group[0]) {
                    group_of(&w->g, x, x->group, sizeof x->group);
                    x->final = 0;
                }
                x->search = 1;
            }
        }
    }
    /* the shard's groups */
    if (w->nshards > 1) {
        size_t kept = 0;
        for (size_t i = 0; i < w->n; i++)
            if (fnv(w->cells[i].group) % (uint64_t)w->nshards == (uint64_t)w->shard) w->cells[kept++] = w->cells[i];
        w->n = kept;
    }
    if (!w->dry) {
        char p[CLI_PATH_MAX];
        int ok = 1;
        if (w->rank == 0) {
            snprintf(p, sizeof p, "%s", w->out);
            for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                    *s = '\0';
                    mkdir(p, 0755);
                    *s = '/';
                }
            mkdir(p, 0755);
            ok = csv_header(w->csv) == 0;
        }
        /* the other ranks start once rank 0 has the folder ready (an error there ends the job) */
        if (!ok || dist_barrier() != 0) goto done;
    }
    load_done(w);   /* read only: a dry run lists what is left too */
    /* finished runs have a row; a run killed after its summary but before its row resumes to
     * itself (cheap) and gets its row then */
    for (size_t i = 0; i < w->n; i++)
        if (is_done(w, w->cells[i].id)) w->cells[i].done = 1;
    if (check_done_settings(w) && !w->dry) {
        rc = 1;
        goto done;
    }
    {
        size_t ns = 0, nf = 0, nd = 0;
        for (size_t i = 0; i < w->n; i++) {
            ns += w->cells[i].search;
            nf += w->cells[i].final != 0;
            nd += w->cells[i].done;
        }
        if (w->rank == 0)
            fprintf(stderr, "sweep %s: %zu runs (%zu search, %zu final or pending the search), %zu already done%s\n", w->g.name,
                    w->n, ns, nf, nd, w->nshards > 1 ? " in this shard" : "");
    }
    rc = run_cells(w, 1);
    /* every rank's search rows are in before anyone chooses */
    if (rc == 0 && !w->dry && dist_barrier() != 0) rc = 1;
    if (rc == 0) rc = choose(w);
    if (rc == 0) rc = run_cells(w, 0);
    if (rc == 0 && !w->dry && dist_barrier() != 0) rc = 1;
    if (rc == 0 && !w->dry && w->rank == 0) fprintf(stderr, "sweep %s: complete; rows in %s\n", w->g.name, w->csv);
done:
    asymbp_ctx_destroy(ctx);
    for (size_t i = 0; i < w->n_done; i++) {
        free(w->done_ids[i]);
        free(w->done_rows[i]);
    }
    free(w->done_ids);
    free(w->done_rows);
    free(w->cells);
    free(w);
    return dist_end(rc);
}
