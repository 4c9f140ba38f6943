/* The tool's helpers: messages, a text buffer that reports running out of memory, atomic file
 * writes, stale temporary files, data lookup and loading. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

const char *cli_prog = "asymbp";
const char *cli_command = NULL;

/* ---- messages ------------------------------------------------------------------------------ */

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cli_command) fprintf(stderr, "\n(see '%s %s --help')\n", cli_prog, cli_command);
    else fprintf(stderr, "\n(see '%s --help')\n", cli_prog);
    return 2;
}

int cli_fail(asymbp_ctx_t *ctx, asymbp_status_t st, const char *what)
{
    const char *detail = ctx ? asymbp_ctx_last_error(ctx) : "";
    return cli_error("%s: %s%s%s", what, asymbp_strerror(st), *detail ? ": " : "", detail);
}

asymbp_ctx_t *cli_ctx(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_status_t st = asymbp_ctx_create(NULL, &ctx);
    if (st != ASYMBP_OK) {
        cli_error("cannot create a library context: %s", asymbp_strerror(st));
        return NULL;
    }
    return ctx;
}

/* ---- text buffer --------------------------------------------------------------------------- */

static int sb_reserve(sbuf_t *b, size_t more)
{
    size_t cap;
    char *p;
    if (b->failed) return -1;
    if (b->len + more + 1 <= b->cap) return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p) {
        free(b->p);
        memset(b, 0, sizeof *b);
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sb_free(sbuf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void sb_puts(sbuf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (sb_reserve(b, n) != 0) return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_puts(b, small);
        return;
    }
    if (sb_reserve(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_json_str(sbuf_t *b, const char *s)
{
    sb_puts(b, "\"");
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') sb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) sb_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        else {
            char c[2] = { *s, 0 };
            sb_puts(b, c);
        }
    }
    sb_puts(b, "\"");
}

void sb_json_num(sbuf_t *b, double v)
{
    if (isfinite(v)) sb_printf(b, "%.6g", v);
    else sb_puts(b, "null");
}

/* ---- files --------------------------------------------------------------------------------- */

int path_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int write_file_atomic(const char *dir, const char *name, const char *text, size_t len)
{
    char path[CLI_PATH_MAX + 64], tmp[CLI_PATH_MAX + 96];
    int fd, err = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    if (write_all(fd, text, len) != 0 || fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        errno = err;
        return -1;
    }
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return 0;
}

int clean_stale_tmp(const char *dir)
{
    static const char *const own[] = { "model.asymbp", "checkpoint.asymbp", "settings.txt", "summary.json", "curves.csv",
                                       "probe.csv" };
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
            size_t n = strlen(own[i]);
            const char *rest;
            char path[CLI_PATH_MAX + 300];
            if (strncmp(e->d_name, own[i], n) != 0 || strncmp(e->d_name + n, ".tmp", 4) != 0) continue;
            rest = e->d_name + n + 4;
            if (*rest == '.') {
                char *end;
                long pid = strtol(rest + 1, &end, 10);
                /* a temporary file of a process that still runs is its business */
                if (*end || pid <= 0 || (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))) continue;
            } else if (*rest) {
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) == 0) removed++;
        }
    }
    closedir(d);
    return removed;
}

/* ---- data ---------------------------------------------------------------------------------- */

size_t data_roots(const char **roots)
{
    static char build[CLI_PATH_MAX + 16], inst[CLI_PATH_MAX + 32];
    char exe[CLI_PATH_MAX];
    const char *env = getenv("ASYMBP_DATA_DIR");
    size_t n = 0;
    ssize_t k;
    if (env && *env) roots[n++] = env;
    k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        char *slash;
        exe[k] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';   /* the executable's folder: bin/ of a build tree or of a prefix */
            snprintf(build, sizeof build, "%s/../data", exe);
            snprintf(inst, sizeof inst, "%s/%s", exe, ASYMBP_DATA_REL);
            roots[n++] = build;
            roots[n++] = inst;
        }
    }
    return n;
}

const char *default_net(int64_t h, int64_t w)
{
    if (h == 1 && w == 1) return "mlp:128,64";
    if (h >= 16 && w >= 16) return "paper-cnn";
    /* the paper's three stride-2 pools need 16x16; a small CNN for smaller images */
    return "conv3x3x32p1,relu,maxpool2s2,conv3x3x64p1,relu,maxpool2s2,fc128,relu";
}

/* IDX labels path beside an images path: "...images-idx3-ubyte..." -> "...labels-idx1-ubyte...". */
static int labels_path_for(const char *images, char *buf, size_t cap)
{
    const char *m = strstr(images, "images-idx3");
    if (!m || strlen(images) + 1 > cap) return -1;
    snprintf(buf, cap, "%.*slabels-idx1%s", (int)(m - images), images, m + strlen("images-idx3"));
    return 0;
}

static int load_file(asymbp_ctx_t *ctx, const char *path, asymbp_dataset_t **out)
{
    size_t n = strlen(path);
    asymbp_status_t st;
    if ((n >= 4 && !strcmp(path + n - 4, ".csv")) || (n >= 7 && !strcmp(path + n - 7, ".csv.gz"))) {
        st = asymbp_dataset_load_csv(ctx, path, 0, out);
    } else {
        char lab[CLI_PATH_MAX];
        if (labels_path_for(path, lab, sizeof lab) != 0)
            return cli_error("%s: not a .csv[.gz] file nor an IDX images file (*images-idx3*)", path);
        st = asymbp_dataset_load_idx(ctx, path, lab, 0, out);
    }
    return st == ASYMBP_OK ? 0 : cli_fail(ctx, st, path);
}

int load_data(asymbp_ctx_t *ctx, settings_t *s, asymbp_dataset_t **train, asymbp_dataset_t **test, asymbp_dataset_t **val,
              asymbp_scaler_t **scaler)
{
    asymbp_status_t st;
    if (val) *val = NULL;
    if (s->train_path || s->test_path) {
        if (!s->train_path || !s->test_path) return cli_usage("--train and --test go together");
        if (load_file(ctx, s->train_path, train) != 0 || load_file(ctx, s->test_path, test) != 0) return 1;
        if (!s->data) s->data = s->train_path;
    } else {
        if (!s->data) s->data = "digits8x8";
        if (path_is_dir(s->data)) {
            st = asymbp_dataset_load_dir(ctx, s->data, 0, train, test);
        } else {
            const char *roots[4];
            size_t n = data_roots(roots);
            st = asymbp_dataset_load_named(ctx, s->data, roots, n, train, test);
        }
        if (st != ASYMBP_OK) return cli_fail(ctx, st, s->data);
    }
    if (asymbp_dataset_classes(*test) > asymbp_dataset_classes(*train))
        return cli_error("the test set has %zu classes but the training set only %zu", asymbp_dataset_classes(*test),
                         asymbp_dataset_classes(*train));
    if (val && s->val_split > 0.0) {
        asymbp_dataset_t *rest = NULL;
        size_t nval = (size_t)(s->val_split * (double)asymbp_dataset_count(*train));
        if (nval < 1) nval = 1;
        if (nval >= asymbp_dataset_count(*train)) return cli_error("--val-split %g leaves no training sample", s->val_split);
        st = asymbp_dataset_split(*train, nval, s->seed, 1, &rest, val);
        if (st != ASYMBP_OK) return cli_fail(ctx, st, "--val-split");
        asymbp_dataset_destroy(*train);
        *train = rest;
    }
    if (!scaler) return 0;
    if (*scaler) {
        st = asymbp_scaler_apply(*scaler, *test);
        if (st != ASYMBP_OK) return cli_fail(ctx, st, "standardising the test set with the model's statistics");
        return 0;
    }
    st = asymbp_dataset_standardize(*train, *test, ASYMBP_SCALER_PER_CHANNEL, scaler);
    if (st == ASYMBP_OK && val && *val) st = asymbp_scaler_apply(*scaler, *val);
    if (st != ASYMBP_OK) return cli_fail(ctx, st, "standardising the data");
    return 0;
}
