/* cli: the asymbp command-line tool, run as a subprocess (its path in ASYMBP_CLI, set by
 * `make check`).  Bad input: a clear message on stderr, a non-zero exit, nothing on stdout and
 * no file written or overwritten.  Good paths: train with no arguments, the --out files, eval
 * reproducing the training figure, info, gradcheck, the help texts, bit-identical resume and a
 * diverging run.  Fixture files are generated into a temporary folder per test.  Each run of
 * the tool is native (also when this runner is under valgrind) and takes well under a second,
 * except `asymbp train` with no arguments (10 epochs on digits8x8, about 1.5 s). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "test_util.h"

/* ---- temporary folder, files -------------------------------------------------------------- */

static char tmp_root[512];
static const char *run_cwd;   /* the folder the tool runs in: tmp_root unless a test sets another */

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[1024];
        if (d) {
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void tmp_setup(void)
{
    test_tmpdir_make(tmp_root, sizeof tmp_root, "cli");
}

static void tmp_teardown(void)
{
    run_cwd = NULL;
    if (tmp_root[0]) rm_tree(tmp_root);
    tmp_root[0] = '\0';
}

/* tmp_root/rel in a rotating static buffer: valid for the next 63 calls; keep a copy when longer. */
static const char *tp(const char *fmt, ...)
{
    static char bufs[64][1024];
    static int k;
    char rel[512];
    va_list ap;
    char *b = bufs[k++ & 63];
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(b, 1024, "%s/%s", tmp_root, rel);
    return b;
}

static void mkdir_p(const char *path)
{
    ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* The whole file, NUL-terminated (malloc'd; *len without the NUL); NULL when it cannot be read. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap + 65536);
            ck_assert_ptr_nonnull(nb);
            buf = nb;
            cap += 65536;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *b = read_all(from, &n);
    ck_assert_msg(b != NULL, "cannot read %s", from);
    write_bytes(to, b, n);
    free(b);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries in a folder (-1 when it does not exist); the first name goes to first. */
static int dir_entries(const char *path, char *first, size_t cap)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    if (first && cap) first[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == 0 && first) snprintf(first, cap, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* A folder holding nothing but keep.txt: given as --out to a run that must fail. */
static const char *out_guard(const char *name)
{
    static char d[1024];
    snprintf(d, sizeof d, "%s", tp("%s", name));
    mkdir_p(d);
    write_text(tp("%s/keep.txt", name), "precious\n");
    return d;
}

static void assert_out_untouched(const char *dir)
{
    char first[256], path[1024];
    char *keep;
    int n = dir_entries(dir, first, sizeof first);
    ck_assert_msg(n == 1 && !strcmp(first, "keep.txt"), "the failed run wrote into --out %s (%d entries, first '%s')", dir,
                  n, first);
    snprintf(path, sizeof path, "%s/keep.txt", dir);
    keep = read_all(path, NULL);
    ck_assert_ptr_nonnull(keep);
    ck_assert_str_eq(keep, "precious\n");
    free(keep);
}

/* Sets a file's modification time to a fixed date long ago, so a rewrite is visible. */
#define OLD_MTIME 1000000000
static void age_file(const char *path)
{
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = OLD_MTIME;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    ck_assert_msg(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat %s: %s", path, strerror(errno));
}

static void assert_unchanged(const char *path, const char *bytes, size_t len)
{
    struct stat st;
    size_t n = 0;
    char *now = read_all(path, &n);
    ck_assert_msg(now != NULL, "%s disappeared", path);
    ck_assert_msg(n == len && memcmp(now, bytes, len) == 0, "%s was rewritten (%zu bytes, was %zu)", path, n, len);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg(st.st_mtime == OLD_MTIME, "%s: mtime changed", path);
    free(now);
}

/* ---- fixtures: IDX and CSV files ---------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes plain or gzip bytes; keep < n writes only the first keep bytes of the (compressed)
 * stream (a truncated file); KEEP_ALL the whole stream, KEEP_HALF its first half. */
#define KEEP_ALL ((size_t)-1)
#define KEEP_HALF ((size_t)-2)
static void write_maybe_gz(const char *path, const unsigned char *buf, size_t n, int gz, size_t keep)
{
    if (!gz) {
        if (keep == KEEP_HALF) keep = n / 2;
        write_bytes(path, buf, keep < n ? keep : n);
    } else {
        uLongf cap = compressBound((uLong)n) + 64, zn;
        unsigned char *z = malloc(cap + 18);
        z_stream s;
        ck_assert_ptr_nonnull(z);
        memset(&s, 0, sizeof s);
        ck_assert_int_eq(deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK); /* gzip wrapper */
        s.next_in = (Bytef *)buf;
        s.avail_in = (uInt)n;
        s.next_out = z;
        s.avail_out = (uInt)(cap + 18);
        ck_assert_int_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
        zn = (uLongf)s.total_out;
        deflateEnd(&s);
        if (keep == KEEP_HALF) keep = (size_t)zn / 2;
        write_bytes(path, z, keep < zn ? keep : zn);
        free(z);
    }
}

/* IDX images (magic 2051, n x rows x cols bytes; class k drawn as a bright row k % rows) and
 * labels (magic 2049; sample i has label i % classes, or bad_label at sample bad_at).
 * keep_img: bytes of the images stream to keep (SIZE_MAX = all). */
static void write_idx_set(const char *dir, const char *prefix, uint32_t n_img, uint32_t n_lbl, uint32_t classes, int gz,
                          size_t keep_img, int bad_at, unsigned bad_label)
{
    const uint32_t rows = 8, cols = 8;
    size_t ni = 16 + (size_t)n_img * rows * cols, i;
    unsigned char *img = calloc(ni, 1), *lbl = calloc(8 + (size_t)n_lbl, 1);
    char path[1024];
    ck_assert(img && lbl);
    put_be32(img, 2051);
    put_be32(img + 4, n_img);
    put_be32(img + 8, rows);
    put_be32(img + 12, cols);
    for (i = 0; i < n_img; i++) {
        size_t r = (i % classes) % rows, c;
        for (c = 0; c < cols; c++) img[16 + i * rows * cols + r * cols + c] = (unsigned char)(200 + (i * 7 + c) % 50);
    }
    put_be32(lbl, 2049);
    put_be32(lbl + 4, n_lbl);
    for (i = 0; i < n_lbl; i++) lbl[8 + i] = (unsigned char)(i % classes);
    if (bad_at >= 0) lbl[8 + bad_at] = (unsigned char)bad_label;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_maybe_gz(path, img, ni, gz, keep_img);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    write_maybe_gz(path, lbl, 8 + (size_t)n_lbl, gz, KEEP_ALL);
    free(img);
    free(lbl);
}

/* A CSV file "f1,f2,f3,f4,label" with n rows, labels i % classes (features separate them);
 * data row bad_row (1-based; file line bad_row + 1), column bad_col (1-based) holds bad_text. */
static void write_csv(const char *path, int n, int classes, int bad_row, int bad_col, const char *bad_text)
{
    char *buf = malloc((size_t)n * 96 + 64), *p = buf;
    int i, j;
    ck_assert_ptr_nonnull(buf);
    p += sprintf(p, "f1,f2,f3,f4,label\n");
    for (i = 1; i <= n; i++) {
        int y = (i - 1) % classes;
        for (j = 1; j <= 5; j++) {
            if (i == bad_row && j == bad_col) p += sprintf(p, "%s", bad_text);
            else if (j == 5) p += sprintf(p, "%d", y);
            else p += sprintf(p, "%g", (j == 1 + y % 4 ? 3.0 : 0.0) + 0.01 * ((i * 13 + j * 7) % 17));
            *p++ = j == 5 ? '\n' : ',';
        }
    }
    *p = '\0';
    write_text(path, buf);
    free(buf);
}

static const char *csv_dir(const char *name, int bad_row, int bad_col, const char *bad_text)
{
    const char *d = tp("%s", name);
    mkdir_p(d);
    write_csv(tp("%s/train.csv", name), 30, 3, bad_row, bad_col, bad_text);
    write_csv(tp("%s/test.csv", name), 12, 3, 0, 0, NULL);
    return d;
}

/* ---- running the tool ---------------------------------------------------------------------- */

typedef struct cli_run {
    int status;         /* exit status; 128 + signal number when killed */
    char *out, *err;    /* captured stdout and stderr, NUL-terminated */
    size_t out_len, err_len;
} cli_run_t;

static const char *cli_path(void)
{
    const char *p = getenv("ASYMBP_CLI");
    ck_assert_msg(p != NULL && *p, "ASYMBP_CLI is not set: run this suite through `make check`, or set ASYMBP_CLI to the "
                                   "built tool (bin/asymbp)");
    ck_assert_msg(access(p, X_OK) == 0, "ASYMBP_CLI=%s is not an executable file (%s)", p, strerror(errno));
    return p;
}

/* The repository's data folder, from ASYMBP_SRCDIR (NULL when unset: the tool's own default). */
static const char *repo_data(void)
{
    static char buf[1024];
    const char *s = getenv("ASYMBP_SRCDIR");
    if (!s || !*s) return NULL;
    snprintf(buf, sizeof buf, "%s/data", s);
    return buf;
}

/* Runs ASYMBP_CLI with the NULL-terminated arguments in run_cwd (default tmp_root),
 * ASYMBP_DATA_DIR set to data_dir (unset when NULL).  Frees the previous captures in r. */
static void cli_runv(cli_run_t *r, const char *data_dir, const char *arg0, va_list ap)
{
    const char *cli = cli_path();
    char *argv[64];
    char outp[1024], errp[1024];
    int argc = 0, wst = 0;
    pid_t pid;
    const char *a;
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
    argv[argc++] = (char *)cli;
    for (a = arg0; a; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, 62);
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    snprintf(outp, sizeof outp, "%s/.stdout", tmp_root);
    snprintf(errp, sizeof errp, "%s/.stderr", tmp_root);
    fflush(NULL);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fi = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || fi < 0 || chdir(run_cwd ? run_cwd : tmp_root) != 0) _exit(126);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        if (data_dir) setenv("ASYMBP_DATA_DIR", data_dir, 1);
        else unsetenv("ASYMBP_DATA_DIR");
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv(cli, argv);
        _exit(127);
    }
    while (waitpid(pid, &wst, 0) < 0) ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    r->status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    r->out = read_all(outp, &r->out_len);
    r->err = read_all(errp, &r->err_len);
    ck_assert(r->out && r->err);
    unlink(outp);
    unlink(errp);
}

/* Runs the tool on the repository's bundled data. */
static void cli(cli_run_t *r, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    cli_runv(r, repo_data(), arg0, ap);
    va_end(ap);
}

/* Runs the tool with ASYMBP_DATA_DIR = data_dir (NULL: unset). */
static void cli_env(cli_run_t *r, const char *data_dir, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    cli_runv(r, data_dir, arg0, ap);
    va_end(ap);
}

static void cli_free(cli_run_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

#define RUN_FMT "exit %d\n--- stdout:\n%.2000s\n--- stderr:\n%.2000s"
#define RUN_ARGS(r) (r)->status, (r)->out, (r)->err
#define RUN_SHOW(r) RUN_FMT, RUN_ARGS(r)

static void expect_ok(const cli_run_t *r)
{
    ck_assert_msg(r->status == 0, RUN_SHOW(r));
}

/* A refused run: exit status 1..127 (no crash), nothing on stdout, one clear message on stderr
 * that starts with "asymbp:" and contains every given needle (NULL-terminated list). */
static void expect_fail(const cli_run_t *r, ...)
{
    va_list ap;
    const char *n;
    ck_assert_msg(r->status > 0 && r->status < 126, "expected a refusal: " RUN_SHOW(r));
    ck_assert_msg(r->out_len == 0, "a failed run printed on stdout: " RUN_SHOW(r));
    ck_assert_msg(!strncmp(r->err, "asymbp: ", 8), "the message should start with 'asymbp: ': " RUN_SHOW(r));
    ck_assert_msg(r->err_len > 20 && r->err[r->err_len - 1] == '\n', "unclear message: " RUN_SHOW(r));
    va_start(ap, r);
    while ((n = va_arg(ap, const char *)) != NULL)
        ck_assert_msg(strstr(r->err, n) != NULL, RUN_FMT "\n--- the message lacks: '%s'", RUN_ARGS(r), n);
    va_end(ap);
}

/* ---- a small reader for the tool's one-line JSON objects ---------------------------------- */

typedef struct jfield {
    char key[48];
    char kind;            /* 's' string, 'n' number, 't' true, 'f' false, 'z' null, 'x' array/object */
    double num;
    char str[512];
} jfield_t;

typedef struct jobj {
    int n;
    jfield_t f[64];
} jobj_t;

static const char *j_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

/* Parses a JSON string at s (at the opening quote) into out; returns the end or NULL. */
static const char *j_string(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    if (*s++ != '"') return NULL;
    while (*s && *s != '"') {
        char c = *s++;
        if ((unsigned char)c < 0x20) return NULL;
        if (c == '\\') {
            c = *s++;
            if (c == 'u') {
                int k;
                for (k = 0; k < 4; k++)
                    if (!s[k] || !strchr("0123456789abcdefABCDEF", s[k])) return NULL;
                s += 4;
                c = '?';
            } else if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c != '"' && c != '\\' && c != '/') return NULL;
        }
        if (n + 1 < cap) out[n++] = c;
    }
    if (*s != '"') return NULL;
    out[n] = '\0';
    return s + 1;
}

/* Skips one JSON value of any kind; NULL when malformed. */
static const char *j_skip(const char *s)
{
    char tmp[512];
    s = j_ws(s);
    if (*s == '"') return j_string(s, tmp, sizeof tmp);
    if (*s == '[' || *s == '{') {
        char close = *s == '[' ? ']' : '}';
        s = j_ws(s + 1);
        if (*s == close) return s + 1;
        for (;;) {
            if (close == '}') {
                if (!(s = j_string(j_ws(s), tmp, sizeof tmp))) return NULL;
                s = j_ws(s);
                if (*s++ != ':') return NULL;
            }
            if (!(s = j_skip(s))) return NULL;
            s = j_ws(s);
            if (*s == close) return s + 1;
            if (*s++ != ',') return NULL;
        }
    }
    if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4)) return s + 4;
    if (!strncmp(s, "false", 5)) return s + 5;
    if (*s != '-' && (*s < '0' || *s > '9')) return NULL;
    {
        char *end;
        (void)strtod(s, &end);
        return end == s ? NULL : end;
    }
}

/* One flat JSON object (nested values are kept as kind 'x'); 0 on success. */
static int json_parse(const char *s, jobj_t *o)
{
    memset(o, 0, sizeof *o);
    s = j_ws(s);
    if (*s++ != '{') return -1;
    s = j_ws(s);
    if (*s == '}') return *j_ws(s + 1) ? -1 : 0;
    for (;;) {
        jfield_t *f;
        const char *v;
        if (o->n >= 64) return -1;
        f = &o->f[o->n++];
        if (!(s = j_string(j_ws(s), f->key, sizeof f->key))) return -1;
        s = j_ws(s);
        if (*s++ != ':') return -1;
        v = j_ws(s);
        if (*v == '"') {
            f->kind = 's';
            s = j_string(v, f->str, sizeof f->str);
        } else if (*v == '[' || *v == '{') {
            f->kind = 'x';
            s = j_skip(v);
        } else if (!strncmp(v, "true", 4)) {
            f->kind = 't';
            s = v + 4;
        } else if (!strncmp(v, "false", 5)) {
            f->kind = 'f';
            s = v + 5;
        } else if (!strncmp(v, "null", 4)) {
            f->kind = 'z';
            s = v + 4;
        } else {
            char *end;
            if (*v != '-' && (*v < '0' || *v > '9')) return -1;   /* strtod would take nan, inf, hex */
            f->kind = 'n';
            f->num = strtod(v, &end);
            if (end == v || (*end != ',' && *end != '}' && *end != ' ')) return -1;
            s = end;
        }
        if (!s) return -1;
        s = j_ws(s);
        if (*s == '}') return *j_ws(s + 1) ? -1 : 0;
        if (*s++ != ',') return -1;
    }
}

static const jfield_t *jget(const jobj_t *o, const char *key, char kind)
{
    int i;
    for (i = 0; i < o->n; i++)
        if (!strcmp(o->f[i].key, key)) {
            ck_assert_msg(kind == 0 || o->f[i].kind == kind, "JSON field '%s' is of kind '%c', expected '%c'", key,
                          o->f[i].kind, kind);
            return &o->f[i];
        }
    ck_abort_msg("JSON field '%s' is missing", key);
    return NULL;
}

static double jnum(const jobj_t *o, const char *key) { return jget(o, key, 'n')->num; }
static const char *jstr(const jobj_t *o, const char *key) { return jget(o, key, 's')->str; }
static int jbool(const jobj_t *o, const char *key)
{
    const jfield_t *f = jget(o, key, 0);
    ck_assert_msg(f->kind == 't' || f->kind == 'f', "JSON field '%s' is not a boolean", key);
    return f->kind == 't';
}

/* The last line of the captured stdout, parsed; also returns the line itself (static). */
static const char *last_json(const cli_run_t *r, jobj_t *o)
{
    static char line[8192];
    const char *end = r->out + r->out_len, *start;
    ck_assert_msg(r->out_len > 0 && end[-1] == '\n', "stdout does not end in a line: " RUN_SHOW(r));
    start = end - 1;
    while (start > r->out && start[-1] != '\n') start--;
    ck_assert_uint_lt((size_t)(end - start), sizeof line);
    memcpy(line, start, (size_t)(end - start));
    line[end - start] = '\0';
    ck_assert_msg(json_parse(line, o) == 0, "the last stdout line is not one JSON object: %s", line);
    return line;
}

/* The summary fields the issue requires, with their types and consistency. */
static void check_summary(const jobj_t *o)
{
    double ta = jnum(o, "test_accuracy");
    (void)jstr(o, "data");
    (void)jstr(o, "net");
    (void)jstr(o, "feedback");
    (void)jstr(o, "update");
    (void)jbool(o, "bn");
    ck_assert_double_ge(jnum(o, "epochs"), 1);
    ck_assert_double_ge(jnum(o, "seed"), 0);
    if (jget(o, "train_accuracy", 0)->kind == 'z') /* no epoch finished: only when diverged in epoch 1 */
        ck_assert(jbool(o, "diverged") && jnum(o, "epochs_done") == 0);
    else
        ck_assert(jnum(o, "train_accuracy") >= 0.0 && jnum(o, "train_accuracy") <= 1.0);
    ck_assert(ta >= 0.0 && ta <= 1.0);
    ck_assert_double_eq_tol(jnum(o, "test_error"), 1.0 - ta, 2e-6);
    ck_assert_double_ge(jnum(o, "seconds"), 0.0);
    (void)jbool(o, "diverged");
}

/* ---- tests: help and usage ---------------------------------------------------------------- */

START_TEST(test_json_reader)
{
    /* the reader itself must refuse what is not one flat object, or every check below is moot */
    jobj_t o;
    ck_assert_int_eq(json_parse("{\"a\":1,\"b\":\"x\\\"y\",\"c\":true,\"d\":null,\"e\":[1,{\"f\":2}],\"g\":-1e-3}", &o), 0);
    ck_assert_int_eq(o.n, 6);
    ck_assert_str_eq(jstr(&o, "b"), "x\"y");
    ck_assert_double_eq_tol(jnum(&o, "g"), -1e-3, 1e-12);
    ck_assert_int_eq(jbool(&o, "c"), 1);
    ck_assert_int_ne(json_parse("{\"a\":1", &o), 0);
    ck_assert_int_ne(json_parse("{\"a\":1} x", &o), 0);
    ck_assert_int_ne(json_parse("{\"a\":nan}", &o), 0);
    ck_assert_int_ne(json_parse("epoch 1/1", &o), 0);
}
END_TEST

START_TEST(test_help)
{
    static const char *const train_opts[] = {"--data", "--train", "--test", "--net", "--bn", "--feedback", "--update",
                                             "--lr", "--momentum", "--wd", "--epochs", "--batch", "--seed", "--threads",
                                             "--out", "--checkpoint-every", "--resume", "--quiet", "paper-cnn",
                                             "mlp:128,64", "digits8x8", "usf", "brsf", "frsf", "partial:P", "rndf",
                                             "signed-init", "bm:nsc", "0.0005", "0.9"};
    cli_run_t r = {0};
    size_t i;
    cli(&r, "--help", NULL);
    expect_ok(&r);
    for (i = 0; i < 4; i++) {
        static const char *const cmds[] = {"train", "eval MODEL", "info MODEL", "gradcheck"};
        ck_assert_msg(strstr(r.out, cmds[i]) != NULL, "--help does not mention '%s'", cmds[i]);
    }
    cli(&r, "train", "--help", NULL);
    expect_ok(&r);
    for (i = 0; i < sizeof train_opts / sizeof *train_opts; i++)
        ck_assert_msg(strstr(r.out, train_opts[i]) != NULL, "train --help does not mention '%s'", train_opts[i]);
    ck_assert_ptr_nonnull(strstr(r.out, "default 10"));   /* epochs */
    ck_assert_ptr_nonnull(strstr(r.out, "default 100"));  /* batch */
    cli(&r, "eval", "--help", NULL);
    expect_ok(&r);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: asymbp eval MODEL"));
    cli(&r, "info", "--help", NULL);
    expect_ok(&r);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: asymbp info MODEL"));
    cli(&r, "gradcheck", "--help", NULL);
    expect_ok(&r);
    ck_assert_ptr_nonnull(strstr(r.out, "--classes"));
    cli(&r, "--version", NULL);
    expect_ok(&r);
    ck_assert_ptr_nonnull(strstr(r.out, ASYMBP_VERSION_STRING));
    /* the man page and --help come from one option table: every option a command's --help lists
     * is in the man page (roff writes "--" as "\-\-"), under its command's section */
    {
        static const char *const cmds[] = { "train", "eval", "gradcheck", "sweep" };
        static const char *const sections[] = { ".SH TRAIN OPTIONS", ".SH EVAL OPTIONS", ".SH GRADCHECK OPTIONS", ".SH SWEEP OPTIONS" };
        cli_run_t m = {0};
        cli(&m, "--man", NULL);
        expect_ok(&m);
        ck_assert_ptr_nonnull(strstr(m.out, ".TH ASYMBP 1"));
        for (i = 0; i < 4; i++) {
            const char *sec = strstr(m.out, sections[i]), *end, *p;
            int seen = 0;
            ck_assert_msg(sec != NULL, "man page lacks %s", sections[i]);
            end = strstr(sec + 4, ".SH ");
            cli(&r, cmds[i], "--help", NULL);
            expect_ok(&r);
            for (p = r.out; (p = strstr(p, "\n  -")) != NULL; p++) {
                char opt[64], roff[160], *q = roff;
                size_t k = 0;
                p += 3;
                while (p[k] && p[k] != ' ' && p[k] != ',' && p[k] != '\n' && k + 1 < sizeof opt) { opt[k] = p[k]; k++; }
                opt[k] = '\0';
                for (k = 0; opt[k]; k++) {
                    if (opt[k] == '-') { *q++ = '\\'; *q++ = '-'; } else *q++ = opt[k];
                }
                *q = '\0';
                {
                    const char *hit = strstr(sec, roff);
                    ck_assert_msg(hit && (!end || hit < end), "%s --help lists %s, the man page's %s does not", cmds[i], opt,
                                  sections[i]);
                }
                seen++;
            }
            ck_assert_msg(seen >= 4, "%s --help lists %d options", cmds[i], seen);
        }
        cli_free(&m);
    }
    /* no command: the overview, but a failure status (scripts must not mistake it for a run) */
    cli(&r, NULL);
    ck_assert_int_ne(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: asymbp COMMAND"));
    cli(&r, "trian", NULL);
    expect_fail(&r, "unknown command 'trian'", "--help", NULL);
    cli_free(&r);
}
END_TEST

/* ---- tests: bad input --------------------------------------------------------------------- */

START_TEST(test_bad_options)
{
    cli_run_t r = {0};
    const char *o = out_guard("o");
    cli(&r, "train", "--bogus", "--out", o, NULL);
    expect_fail(&r, "unknown option '--bogus'", NULL);
    ck_assert_int_eq(r.status, 2);
    cli(&r, "train", "--out", o, "--epochs", NULL);
    expect_fail(&r, "--epochs needs a value", NULL);
    cli(&r, "train", "--out", o, "--epochs", "ten", NULL);
    expect_fail(&r, "--epochs", "'ten'", NULL);
    cli(&r, "train", "--out", o, "--epochs", "0", NULL);
    expect_fail(&r, "--epochs", "'0'", NULL);
    cli(&r, "train", "--out", o, "--lr", "-1", NULL);
    expect_fail(&r, "--lr", "'-1'", NULL);
    cli(&r, "train", "--out", o, "--batch", "12x", NULL);
    expect_fail(&r, "--batch", "'12x'", NULL);
    cli(&r, "train", "--out", o, "--feedback", "usff", NULL);
    expect_fail(&r, "--feedback usff", "unknown", "usf", NULL);   /* names the known settings */
    cli(&r, "train", "--out", o, "--feedback", "partial:1.5", NULL);
    expect_fail(&r, "partial:1.5", NULL);
    cli(&r, "train", "--out", o, "--update", "adam", NULL);
    expect_fail(&r, "--update adam", "unknown", "bm", NULL);
    cli(&r, "train", "--out", o, "--data", "iris", "--net", "mlp:32,zz", NULL);
    expect_fail(&r, "--net", "position", NULL);
    cli(&r, "train", "--checkpoint-every", "1", NULL);
    expect_fail(&r, "--checkpoint-every needs --out", NULL);
    cli(&r, "train", "--out", o, "--train", tp("x.csv"), NULL);
    expect_fail(&r, "--train and --test go together", "asymbp train --help", NULL);
    ck_assert_int_eq(r.status, 2);
    cli(&r, "eval", NULL);
    expect_fail(&r, "no MODEL", "asymbp eval --help", NULL);
    ck_assert_int_eq(r.status, 2);
    cli(&r, "info", NULL);
    expect_fail(&r, "exactly one MODEL", NULL);
    cli(&r, "gradcheck", "--net", "mlp:8", NULL);
    expect_fail(&r, "--input", "--classes", NULL);
    cli(&r, "gradcheck", "--net", "mlp:8", "--input", "5", "--classes", "3", "--frobnicate", NULL);
    expect_fail(&r, "'--frobnicate'", NULL);
    cli(&r, "gradcheck", "--net", "fc8,nosuch", "--input", "5", "--classes", "3", NULL);
    expect_fail(&r, "--net", "nosuch", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_missing_files)
{
    cli_run_t r = {0};
    const char *o = out_guard("o");
    const char *empty = tp("empty");
    mkdir_p(empty);
    cli(&r, "train", "--data", tp("nosuch"), "--out", o, NULL);
    expect_fail(&r, "nosuch", "No such file", NULL);
    /* a failed run does not leave a new --out folder behind either */
    cli(&r, "train", "--data", tp("nosuch"), "--out", tp("newout"), NULL);
    expect_fail(&r, "nosuch", NULL);
    ck_assert_msg(!file_exists(tp("newout")), "a failed run created its --out folder");
    write_text(tp("plainfile"), "x\n");
    cli(&r, "train", "--data", "iris", "--out", tp("plainfile"), NULL);
    expect_fail(&r, "plainfile", "not a folder", NULL);
    cli(&r, "train", "--train", tp("nosuch/train.csv"), "--test", tp("nosuch/test.csv"), "--out", o, NULL);
    expect_fail(&r, "nosuch/train.csv", NULL);
    cli(&r, "train", "--data", empty, "--out", o, NULL);
    expect_fail(&r, "empty", "train.csv", NULL);
    cli(&r, "train", "--data", "nosuchset", "--out", o, NULL);
    expect_fail(&r, "nosuchset", "digits8x8", NULL);   /* lists the known names */
    /* a folder with the training CSV but not the test one */
    write_csv(tp("empty/train.csv"), 30, 3, 0, 0, NULL);
    cli(&r, "train", "--data", empty, "--out", o, NULL);
    expect_fail(&r, "test.csv", NULL);
    /* an IDX folder missing its test labels */
    mkdir_p(tp("idx"));
    write_idx_set(tp("idx"), "train", 40, 40, 4, 0, KEEP_ALL, -1, 0);
    write_idx_set(tp("idx"), "test", 20, 20, 4, 0, KEEP_ALL, -1, 0);
    ck_assert_int_eq(unlink(tp("idx/test-labels-idx1-ubyte")), 0);
    cli(&r, "train", "--data", tp("idx"), "--out", o, NULL);
    expect_fail(&r, "test", "labels", NULL);
    /* a file that is neither CSV nor IDX: one message, not two */
    write_text(tp("data.txt"), "1,2,3\n");
    cli(&r, "train", "--train", tp("data.txt"), "--test", tp("data.txt"), "--out", o, NULL);
    expect_fail(&r, "data.txt", ".csv", "images-idx3", NULL);
    ck_assert_msg(strchr(r.err, '\n') == r.err + r.err_len - 1, "more than one line on stderr:\n%s", r.err);
    cli(&r, "eval", tp("nosuch.asymbp"), "--data", "iris", NULL);
    expect_fail(&r, "nosuch.asymbp", NULL);
    cli(&r, "info", tp("nosuch.asymbp"), NULL);
    expect_fail(&r, "nosuch.asymbp", NULL);
    /* not a model: garbage and a truncated model */
    write_text(tp("junk.asymbp"), "this is not a model file at all, just text\n");
    cli(&r, "info", tp("junk.asymbp"), NULL);
    expect_fail(&r, "junk.asymbp", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_truncated_idx)
{
    int gz;
    cli_run_t r = {0};
    const char *o = out_guard("o");
    for (gz = 0; gz <= 1; gz++) {
        const char *d = tp("trunc%d", gz);
        mkdir_p(d);
        /* sanity: the same files, complete, train fine */
        write_idx_set(d, "train", 60, 60, 4, gz, KEEP_ALL, -1, 0);
        write_idx_set(d, "test", 20, 20, 4, gz, KEEP_ALL, -1, 0);
        cli(&r, "train", "--data", d, "--net", "mlp:8", "--epochs", "1", "--quiet", NULL);
        expect_ok(&r);
        /* images cut in the middle of image 30 (plain) / of the compressed stream (gzip) */
        write_idx_set(d, "train", 60, 60, 4, gz, gz ? KEEP_HALF : 16 + 30 * 64 + 10, -1, 0);
        cli(&r, "train", "--data", d, "--out", o, NULL);
        if (gz) expect_fail(&r, "train-images-idx3-ubyte.gz", "truncated gzip", NULL);
        else expect_fail(&r, "train-images-idx3-ubyte", "truncated", "60 images", NULL);
        /* a header cut short */
        write_idx_set(d, "train", 60, 60, 4, gz, gz ? 12 : 10, -1, 0);
        cli(&r, "train", "--data", d, "--out", o, NULL);
        expect_fail(&r, "train-images-idx3-ubyte", "truncated", NULL);
        /* the same file named explicitly */
        {
            char img[1024], lbl[1024];
            snprintf(img, sizeof img, "%s/train-images-idx3-ubyte%s", d, gz ? ".gz" : "");
            snprintf(lbl, sizeof lbl, "%s/test-images-idx3-ubyte%s", d, gz ? ".gz" : "");
            cli(&r, "train", "--train", img, "--test", lbl, "--out", o, NULL);
            expect_fail(&r, "train-images-idx3-ubyte", "truncated", NULL);
        }
    }
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_count_mismatch)
{
    cli_run_t r = {0};
    const char *o = out_guard("o"), *d = tp("cnt");
    int gz;
    mkdir_p(d);
    for (gz = 0; gz <= 1; gz++) {
        write_idx_set(d, "train", 60, 59, 4, gz, KEEP_ALL, -1, 0);
        write_idx_set(d, "test", 20, 20, 4, gz, KEEP_ALL, -1, 0);
        cli(&r, "train", "--data", d, "--out", o, NULL);
        expect_fail(&r, "60 images", "59 labels", NULL);
        rm_tree(d);
        mkdir_p(d);
    }
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_csv_non_numeric)
{
    cli_run_t r = {0};
    const char *o = out_guard("o");
    const char *d = csv_dir("csv", 3, 2, "abc");   /* data row 3 = line 4, column 2 */
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "train.csv", "line 4", "column 2", "'abc'", NULL);
    d = csv_dir("csv2", 7, 4, "");                 /* an empty field */
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 8", "column 4", NULL);
    d = csv_dir("csv3", 5, 5, "1.5");              /* a label that is not an integer */
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 6", "column 5", "'1.5'", NULL);
    /* the same through --train/--test */
    cli(&r, "train", "--train", tp("csv/train.csv"), "--test", tp("csv/test.csv"), "--out", o, NULL);
    expect_fail(&r, "line 4", "column 2", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_label_out_of_range)
{
    cli_run_t r = {0};
    const char *o = out_guard("o"), *root = tp("root");
    const char *d = csv_dir("neg", 4, 5, "-1");    /* negative label, line 5 column 5 */
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 5", "column 5", "'-1'", NULL);
    /* a known set enforces its class count: iris has 3 classes, label 3 is out of range */
    mkdir_p(root);
    mkdir_p(tp("root/iris"));
    write_csv(tp("root/iris/train.csv"), 30, 3, 9, 5, "3");
    write_csv(tp("root/iris/test.csv"), 12, 3, 0, 0, NULL);
    cli_env(&r, root, "train", "--data", "iris", "--out", o, NULL);
    expect_fail(&r, "line 10", "column 5", "label 3", "0..2", NULL);
    /* IDX: digits8x8 has 10 classes, a label byte of 10 is out of range */
    mkdir_p(tp("root/digits8x8"));
    write_idx_set(tp("root/digits8x8"), "train", 40, 40, 10, 0, KEEP_ALL, 17, 10);
    write_idx_set(tp("root/digits8x8"), "test", 20, 20, 10, 0, KEEP_ALL, -1, 0);
    cli_env(&r, root, "train", "--data", "digits8x8", "--out", o, NULL);
    expect_fail(&r, "label 10", "sample 17", "0..9", NULL);
    /* explicit files: the test file holds a class the training file has not */
    write_csv(tp("tr3.csv"), 30, 3, 0, 0, NULL);
    write_csv(tp("te5.csv"), 12, 5, 0, 0, NULL);
    cli(&r, "train", "--train", tp("tr3.csv"), "--test", tp("te5.csv"), "--out", o, NULL);
    expect_fail(&r, "5 classes", "3", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_nan_features)
{
    cli_run_t r = {0};
    const char *o = out_guard("o");
    const char *d = csv_dir("nan", 6, 3, "nan");
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 7", "column 3", "NaN", NULL);
    d = csv_dir("nan2", 2, 1, "NaN");
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 3", "column 1", "NaN", NULL);
    d = csv_dir("inf", 9, 4, "inf");
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 10", "column 4", "infinite", NULL);
    d = csv_dir("big", 9, 4, "1e300");             /* beyond the float range */
    cli(&r, "train", "--data", d, "--out", o, NULL);
    expect_fail(&r, "line 10", "column 4", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

START_TEST(test_out_holds_model)
{
    static const char *const files[] = {"model.asymbp", "summary.json", "curves.csv", "settings.txt"};
    cli_run_t r = {0};
    char *bytes[4];
    size_t len[4], i;
    const char *d = tp("run");
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    for (i = 0; i < 4; i++) {
        const char *p = tp("run/%s", files[i]);
        bytes[i] = read_all(p, &len[i]);
        ck_assert_msg(bytes[i] != NULL, "%s was not written", p);
        age_file(p);
    }
    /* the same run again, and a different one: both refused, nothing touched */
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--out", d, "--quiet", NULL);
    expect_fail(&r, "already holds a model", "model.asymbp", NULL);
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:16", "--epochs", "2", "--checkpoint-every", "1", "--out", d, NULL);
    expect_fail(&r, "already holds a model", NULL);
    for (i = 0; i < 4; i++) assert_unchanged(tp("run/%s", files[i]), bytes[i], len[i]);
    ck_assert_int_eq(dir_entries(d, NULL, 0), 4);   /* no temporary file left behind */
    /* a folder with only a checkpoint (a run interrupted before its end) is refused too */
    mkdir_p(tp("ck"));
    ck_assert_int_eq(rename(tp("run/model.asymbp"), tp("ck/checkpoint.asymbp")), 0);
    age_file(tp("ck/checkpoint.asymbp"));
    cli(&r, "train", "--data", "iris", "--out", tp("ck"), "--quiet", NULL);
    expect_fail(&r, "checkpoint.asymbp", NULL);
    assert_unchanged(tp("ck/checkpoint.asymbp"), bytes[0], len[0]);
    ck_assert_int_eq(dir_entries(tp("ck"), NULL, 0), 1);
    for (i = 0; i < 4; i++) free(bytes[i]);
    cli_free(&r);
}
END_TEST

START_TEST(test_resume_without_checkpoint)
{
    cli_run_t r = {0};
    char *model;
    size_t len;
    const char *d = tp("run");
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    model = read_all(tp("run/model.asymbp"), &len);
    ck_assert_ptr_nonnull(model);
    age_file(tp("run/model.asymbp"));
    cli(&r, "train", "--resume", d, "--epochs", "3", NULL);
    expect_fail(&r, "--resume", "no checkpoint", "--checkpoint-every", NULL);
    assert_unchanged(tp("run/model.asymbp"), model, len);
    cli(&r, "train", "--resume", tp("nosuch"), NULL);
    expect_fail(&r, "--resume", "nosuch", NULL);
    ck_assert(!file_exists(tp("nosuch")));
    free(model);
    cli_free(&r);
}
END_TEST

/* ---- tests: good paths -------------------------------------------------------------------- */

START_TEST(test_train_default)
{
    cli_run_t r = {0};
    jobj_t o;
    const char *line;
    /* no arguments at all and no ASYMBP_DATA_DIR: the bundled digits8x8 */
    cli_env(&r, NULL, "train", NULL);
    expect_ok(&r);
    line = last_json(&r, &o);
    ck_assert_msg(strchr(r.out, '\n') == r.out + r.out_len - 1, "stdout holds more than the JSON line");
    check_summary(&o);
    ck_assert_str_eq(jstr(&o, "data"), "digits8x8");
    ck_assert_str_eq(jstr(&o, "feedback"), "sym");
    ck_assert_str_eq(jstr(&o, "update"), "sgd");
    ck_assert_int_eq(jbool(&o, "bn"), 0);
    ck_assert_int_eq(jbool(&o, "diverged"), 0);
    ck_assert_double_eq(jnum(&o, "epochs"), 10);
    ck_assert_double_eq(jnum(&o, "seed"), 1);
    ck_assert_double_eq(jnum(&o, "batch"), 100);
    ck_assert_double_eq_tol(jnum(&o, "lr"), 0.01, 1e-9);
    ck_assert_double_eq_tol(jnum(&o, "momentum"), 0.9, 1e-9);
    ck_assert_ptr_nonnull(strstr(jstr(&o, "net"), "conv"));   /* 8x8 images: the small CNN */
    /* logistic regression reaches 0.978 on this split; ten epochs of a CNN should be close */
    ck_assert_msg(jnum(&o, "test_accuracy") > 0.9, "%s", line);
    ck_assert_msg(jnum(&o, "seconds") < 30.0, "%s", line);
    /* progress: one plain line per epoch on stderr (not a terminal) */
    ck_assert_ptr_nonnull(strstr(r.err, "epoch   1/10"));
    ck_assert_ptr_nonnull(strstr(r.err, "epoch  10/10"));
    ck_assert_ptr_null(strchr(r.err, '\r'));
    /* a table set gets the MLP default and the bm learning rate */
    cli(&r, "train", "--data", "iris", "--update", "bm", "--epochs", "1", "--quiet", NULL);
    expect_ok(&r);
    ck_assert_uint_eq(r.err_len, 0);   /* --quiet */
    last_json(&r, &o);
    check_summary(&o);
    ck_assert_str_eq(jstr(&o, "net"), "mlp:128,64");
    ck_assert_double_eq_tol(jnum(&o, "lr"), 0.0005, 1e-12);
    cli_free(&r);
}
END_TEST

/* Splits text into lines in place; returns the count. */
static int split_lines(char *text, char **lines, int cap)
{
    int n = 0;
    char *p = text;
    while (*p && n < cap) {
        char *nl = strchr(p, '\n');
        lines[n++] = p;
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

START_TEST(test_out_files)
{
    cli_run_t r = {0};
    jobj_t o, s;
    char *curves, *summary, *model, *lines[16], first[256];
    size_t n_model = 0;
    int n, i;
    const char *d = tp("fresh/run");   /* a folder that does not exist yet */
    mkdir_p(tp("fresh"));
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:32", "--feedback", "usf", "--update", "bm", "--bn", "--epochs", "3",
        "--seed", "7", "--out", d, NULL);
    expect_ok(&r);
    last_json(&r, &o);
    check_summary(&o);
    ck_assert_str_eq(jstr(&o, "feedback"), "usf");
    ck_assert_str_eq(jstr(&o, "update"), "bm");
    ck_assert_int_eq(jbool(&o, "bn"), 1);
    ck_assert_double_eq(jnum(&o, "epochs"), 3);
    ck_assert_double_eq(jnum(&o, "seed"), 7);
    /* summary.json is the stdout line */
    summary = read_all(tp("fresh/run/summary.json"), NULL);
    ck_assert_ptr_nonnull(summary);
    ck_assert_msg(strstr(r.out, summary) != NULL, "summary.json differs from the stdout line:\n%s", summary);
    ck_assert_int_eq(json_parse(summary, &s), 0);
    /* curves.csv: a header and one row per epoch, the last row's accuracy the summary's */
    curves = read_all(tp("fresh/run/curves.csv"), NULL);
    ck_assert_ptr_nonnull(curves);
    n = split_lines(curves, lines, 16);
    ck_assert_int_eq(n, 4);
    ck_assert_msg(!strncmp(lines[0], "epoch,", 6) && strstr(lines[0], "test_accuracy"), "header: %s", lines[0]);
    for (i = 1; i <= 3; i++) ck_assert_int_eq(atoi(lines[i]), i);
    {
        /* test_accuracy is column 7 of the header "epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy" */
        const char *p = lines[3];
        int col;
        ck_assert_ptr_nonnull(strstr(lines[0], "epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy"));
        for (col = 1; col < 7; col++) p = strchr(p, ',') + 1;
        ck_assert_double_eq_tol(strtod(p, NULL), jnum(&o, "test_accuracy"), 1e-5);
    }
    model = read_all(tp("fresh/run/model.asymbp"), &n_model);
    ck_assert_ptr_nonnull(model);
    ck_assert_uint_gt(n_model, 64 * 32 * 4);   /* at least the first layer's weights */
    /* nothing else but the settings kept for --resume; no temporary files */
    ck_assert_int_eq(dir_entries(d, first, sizeof first), 4);
    ck_assert(file_exists(tp("fresh/run/settings.txt")));
    free(curves);
    free(summary);
    free(model);
    cli_free(&r);
}
END_TEST

START_TEST(test_train_explicit_files)
{
    /* --train/--test with CSV, gzip CSV and IDX files; the class count of the pair */
    cli_run_t r = {0};
    jobj_t o;
    size_t n;
    char *t;
    write_csv(tp("a.csv"), 30, 3, 0, 0, NULL);
    write_csv(tp("b.csv"), 12, 3, 0, 0, NULL);
    cli(&r, "train", "--train", tp("a.csv"), "--test", tp("b.csv"), "--net", "mlp:8", "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    last_json(&r, &o);
    check_summary(&o);
    ck_assert_ptr_nonnull(strstr(jstr(&o, "data"), "a.csv"));
    t = read_all(tp("a.csv"), &n);
    write_maybe_gz(tp("a.csv.gz"), (const unsigned char *)t, n, 1, KEEP_ALL);
    free(t);
    t = read_all(tp("b.csv"), &n);
    write_maybe_gz(tp("b.csv.gz"), (const unsigned char *)t, n, 1, KEEP_ALL);
    free(t);
    cli(&r, "train", "--train", tp("a.csv.gz"), "--test", tp("b.csv.gz"), "--net", "mlp:8", "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    mkdir_p(tp("idx"));
    write_idx_set(tp("idx"), "train", 40, 40, 4, 1, KEEP_ALL, -1, 0);
    write_idx_set(tp("idx"), "t10k", 20, 20, 4, 1, KEEP_ALL, -1, 0);
    cli(&r, "train", "--train", tp("idx/train-images-idx3-ubyte.gz"), "--test", tp("idx/t10k-images-idx3-ubyte.gz"), "--epochs",
        "1", "--quiet", NULL);
    expect_ok(&r);
    last_json(&r, &o);
    ck_assert_ptr_nonnull(strstr(jstr(&o, "net"), "conv"));   /* 8x8 images: the small CNN */
    /* the same IDX pair as a folder (t10k names) */
    cli(&r, "train", "--data", tp("idx"), "--net", "mlp:8", "--epochs", "1", "--quiet", NULL);
    expect_ok(&r);
    cli_free(&r);
}
END_TEST

START_TEST(test_eval_and_info)
{
    cli_run_t r = {0};
    jobj_t o, e;
    char model[1024];
    const char *d = tp("run");
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:32", "--bn", "--epochs", "2", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    last_json(&r, &o);
    snprintf(model, sizeof model, "%s/model.asymbp", d);
    cli(&r, "eval", model, "--data", "digits8x8", NULL);
    expect_ok(&r);
    last_json(&r, &e);
    ck_assert_double_eq_tol(jnum(&e, "test_accuracy"), jnum(&o, "test_accuracy"), 1e-6);
    ck_assert_double_eq_tol(jnum(&e, "test_error"), jnum(&o, "test_error"), 1e-6);
    ck_assert_double_eq(jnum(&e, "samples"), 359);   /* digits8x8 test split (data/README.md) */
    /* info: the architecture and the parameter count: 64*32+32 (fc) + 2*32 (bn) + 32*10+10 (fc) */
    cli(&r, "info", model, NULL);
    expect_ok(&r);
    last_json(&r, &e);
    ck_assert_double_eq(jnum(&e, "classes"), 10);
    ck_assert_double_eq(jnum(&e, "parameters"), 64 * 32 + 32 + 2 * 32 + 32 * 10 + 10);
    ck_assert_ptr_nonnull(strstr(jstr(&e, "net"), "fc32"));
    ck_assert_ptr_nonnull(strstr(r.out, "input      1x8x8"));
    ck_assert_ptr_nonnull(strstr(r.out, "feedback sym"));
    /* eval standardises with the scaler saved in the model, not with the statistics of the
     * training part it is given: with a training file whose features are scaled by 100 and
     * shifted, the accuracy on iris's test set stays that of the run */
    if (repo_data()) {
        char src[1200], *text, *lines[256] = { 0 }, *out;
        size_t cap;
        int n;
        cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "20", "--out", tp("iris"), "--quiet", NULL);
        expect_ok(&r);
        last_json(&r, &o);
        snprintf(src, sizeof src, "%s/iris/train.csv", repo_data());
        text = read_all(src, NULL);
        ck_assert_ptr_nonnull(text);
        n = split_lines(text, lines, 256);
        cap = (size_t)n * 128 + 256;
        out = malloc(cap);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_gt(n, 10);
        snprintf(out, cap, "%s\n", lines[0] ? lines[0] : "");
        for (int i = 1; i < n; i++) {
            double f[4];
            int label;
            if (!*lines[i]) continue;
            ck_assert_int_eq(sscanf(lines[i], "%lf,%lf,%lf,%lf,%d", &f[0], &f[1], &f[2], &f[3], &label), 5);
            snprintf(out + strlen(out), cap - strlen(out), "%g,%g,%g,%g,%d\n", 100 * f[0] + 7, 100 * f[1] - 3,
                     100 * f[2] + 50, 100 * f[3], label);
        }
        write_text(tp("scaled.csv"), out);
        free(out);
        free(text);
        snprintf(src, sizeof src, "%s/iris/test.csv", repo_data());
        snprintf(model, sizeof model, "%s/model.asymbp", tp("iris"));
        cli(&r, "eval", model, "--train", tp("scaled.csv"), "--test", src, NULL);
        expect_ok(&r);
        last_json(&r, &e);
        ck_assert_double_eq_tol(jnum(&e, "test_accuracy"), jnum(&o, "test_accuracy"), 1e-6);
        ck_assert(jnum(&o, "test_accuracy") > 0.8);
    }
    cli_free(&r);
}
END_TEST

START_TEST(test_eval_mismatch)
{
    /* a model evaluated on data of another shape or with more classes must be refused, not
     * read past the end of the data */
    cli_run_t r = {0};
    const char *d = tp("run");
    char model[1024];
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:16", "--epochs", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    snprintf(model, sizeof model, "%s/model.asymbp", d);
    cli(&r, "eval", model, "--data", "iris", NULL);
    expect_fail(&r, "1x8x8", "4x1x1", NULL);
    /* a 3-class model on a folder whose labels go up to 5 */
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--out", tp("iris3"), "--quiet", NULL);
    expect_ok(&r);
    mkdir_p(tp("six"));
    write_csv(tp("six/train.csv"), 30, 6, 0, 0, NULL);
    write_csv(tp("six/test.csv"), 12, 6, 0, 0, NULL);
    snprintf(model, sizeof model, "%s/model.asymbp", tp("iris3"));
    cli(&r, "eval", model, "--data", tp("six"), NULL);
    expect_fail(&r, "3 classes", "6", NULL);
    cli_free(&r);
}
END_TEST

START_TEST(test_gradcheck)
{
    cli_run_t r = {0};
    jobj_t o;
    cli(&r, "gradcheck", "--net", "mlp:8", "--input", "5", "--classes", "3", NULL);
    expect_ok(&r);
    last_json(&r, &o);
    ck_assert_double_le(jnum(&o, "max_rel_error"), 1e-2);
    ck_assert_double_ge(jnum(&o, "max_rel_error"), 0.0);
    (void)jget(&o, "layers", 'x');
    cli(&r, "gradcheck", "--net", "conv3x3x4p1,relu,maxpool2s2,fc6", "--input", "2x6x6", "--classes", "4", "--bn", NULL);
    expect_ok(&r);
    last_json(&r, &o);
    ck_assert_double_le(jnum(&o, "max_rel_error"), 1e-2);
    cli_free(&r);
}
END_TEST

/* The curves rows without their last column (seconds, the only one that may differ). */
/* curves.csv without its timing column (the 8th, "seconds"): what must be equal between runs. */
static char *curves_without_seconds(const char *path)
{
    char *c = read_all(path, NULL), *src, *dst;
    ck_assert_msg(c != NULL, "%s missing", path);
    for (src = dst = c; *src;) {
        int field = 0;
        for (; *src && *src != '\n'; src++) {
            if (*src == ',') field++;
            if (field != 7) *dst++ = *src;
        }
        *dst++ = '\n';
        if (*src) src++;
    }
    *dst = '\0';
    return c;
}

static void check_resume(const char *tag, const char *const *extra)
{
    /* a: 4 epochs in one go; b: 2 epochs, then --resume to 4 */
    cli_run_t r = {0};
    jobj_t oa, ob;
    char a[1024], b[1024], pa[1100], pb[1100];
    char *ma, *mb, *ca, *cb;
    size_t la, lb;
    snprintf(a, sizeof a, "%s", tp("%s-a", tag));
    snprintf(b, sizeof b, "%s", tp("%s-b", tag));
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:32", "--seed", "5", "--checkpoint-every", "1", "--quiet",
        "--epochs", "4", "--out", a, extra[0], extra[1], extra[2], extra[3], extra[4], NULL);
    expect_ok(&r);
    last_json(&r, &oa);
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:32", "--seed", "5", "--checkpoint-every", "1", "--quiet",
        "--epochs", "2", "--out", b, extra[0], extra[1], extra[2], extra[3], extra[4], NULL);
    expect_ok(&r);
    cli(&r, "train", "--resume", b, "--epochs", "4", "--quiet", NULL);
    expect_ok(&r);
    last_json(&r, &ob);
    ck_assert_double_eq(jnum(&ob, "epochs"), 4);
    ck_assert_msg(jnum(&oa, "test_accuracy") == jnum(&ob, "test_accuracy"), "%s: resumed %g, uninterrupted %g", tag,
                  jnum(&ob, "test_accuracy"), jnum(&oa, "test_accuracy"));
    ck_assert(jnum(&oa, "train_accuracy") == jnum(&ob, "train_accuracy"));
    snprintf(pa, sizeof pa, "%s/model.asymbp", a);
    snprintf(pb, sizeof pb, "%s/model.asymbp", b);
    ma = read_all(pa, &la);
    mb = read_all(pb, &lb);
    ck_assert(ma && mb);
    ck_assert_msg(la == lb && memcmp(ma, mb, la) == 0, "%s: the resumed model differs from the uninterrupted one", tag);
    snprintf(pa, sizeof pa, "%s/curves.csv", a);
    snprintf(pb, sizeof pb, "%s/curves.csv", b);
    ca = curves_without_seconds(pa);
    cb = curves_without_seconds(pb);
    ck_assert_msg(!strcmp(ca, cb), "%s: curves differ:\n%s\n---\n%s", tag, ca, cb);
    free(ma);
    free(mb);
    free(ca);
    free(cb);
    cli_free(&r);
}

START_TEST(test_resume_identical)
{
    static const char *const plain[5] = {NULL, NULL, NULL, NULL, NULL};
    /* batchwise random feedback, Batch Manhattan with momentum, BN running statistics */
    static const char *const stateful[5] = {"--feedback", "brsf", "--update", "bm", "--bn"};
    check_resume("plain", plain);
    check_resume("stateful", stateful);
}
END_TEST

START_TEST(test_resume_after_crash)
{
    /* A run checkpoints after epoch 2, writes epoch 3's row to curves.csv, and dies before its
     * next checkpoint.  Resuming repeats epoch 3: curves.csv must not hold it twice; and the
     * extended run can be resumed again without repeating --epochs. */
    cli_run_t r = {0};
    char *c, *lines[16], *m4, *mr;
    size_t l4, lr;
    int n, i;
    const char *d = tp("crash");
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "2", "--checkpoint-every", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    copy_file(tp("crash/checkpoint.asymbp"), tp("ck2"));
    cli(&r, "train", "--resume", d, "--epochs", "3", "--quiet", NULL);
    expect_ok(&r);
    ck_assert_int_eq(rename(tp("ck2"), tp("crash/checkpoint.asymbp")), 0);   /* the crash */
    cli(&r, "train", "--resume", d, "--epochs", "4", "--quiet", NULL);
    expect_ok(&r);
    c = read_all(tp("crash/curves.csv"), NULL);
    ck_assert_ptr_nonnull(c);
    n = split_lines(c, lines, 16);
    ck_assert_msg(n == 5, "curves.csv has %d lines after the resume, expected header + 4", n);
    for (i = 1; i < n; i++) ck_assert_int_eq(atoi(lines[i]), i);
    free(c);
    /* the same model as 4 epochs in one go */
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "4", "--out", tp("whole"), "--quiet", NULL);
    expect_ok(&r);
    m4 = read_all(tp("whole/model.asymbp"), &l4);
    mr = read_all(tp("crash/model.asymbp"), &lr);
    ck_assert(m4 && mr && l4 == lr && memcmp(m4, mr, l4) == 0);
    free(m4);
    free(mr);
    /* the run is now a 4-epoch run: resuming it without --epochs has nothing left to do */
    cli(&r, "train", "--resume", d, "--quiet", NULL);
    expect_ok(&r);
    /* a cosine run cannot change its length (its checkpoint holds the schedule over its epochs:
     * more epochs would run at the final rate); the same length resumes */
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "2", "--lr-schedule", "cosine", "--checkpoint-every",
        "1", "--out", tp("cos"), "--quiet", NULL);
    expect_ok(&r);
    cli(&r, "train", "--resume", tp("cos"), "--epochs", "3", "--quiet", NULL);
    expect_fail(&r, "cosine", "--epochs 3", NULL);
    ck_assert_int_eq(r.status, 2);
    cli(&r, "train", "--resume", tp("cos"), "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    cli_free(&r);
}
END_TEST

START_TEST(test_resume_elsewhere)
{
    /* a run started in one folder with relative paths is resumed from another one */
    cli_run_t r = {0};
    char sub[1024];
    mkdir_p(tp("sub"));
    snprintf(sub, sizeof sub, "%s", tp("sub"));
    (void)csv_dir("sub/set", 0, 0, NULL);
    run_cwd = sub;
    cli(&r, "train", "--data", "set", "--net", "mlp:8", "--epochs", "1", "--checkpoint-every", "1", "--out", "run", "--quiet",
        NULL);
    expect_ok(&r);
    cli(&r, "train", "--train", "set/train.csv", "--test", "set/test.csv", "--net", "mlp:8", "--epochs", "1",
        "--checkpoint-every", "1", "--out", "run2", "--quiet", NULL);
    expect_ok(&r);
    run_cwd = NULL;
    cli(&r, "train", "--resume", "sub/run", "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    cli(&r, "train", "--resume", "sub/run2", "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    cli_free(&r);
}
END_TEST

/* Checks every "angle(V,W) X deg" and "sign concordance X" figure of --diag output on stderr;
 * returns how many layer lines there were. */
static int check_diag_lines(const char *err, double conc_lo, double angle_hi)
{
    const char *p = err;
    int n = 0;
    while ((p = strstr(p, "sign concordance ")) != NULL) {
        const char *a = strstr(p, "angle(V,W) ");
        double c = strtod(p + strlen("sign concordance "), NULL), ang;
        ck_assert_ptr_nonnull(a);
        ang = strtod(a + strlen("angle(V,W) "), NULL);
        ck_assert_msg(c >= conc_lo && c <= 1.0, "sign concordance %g out of [%g, 1]:\n%s", c, conc_lo, err);
        ck_assert_msg(ang >= 0.0 && ang <= angle_hi, "angle(V,W) %g deg out of [0, %g]:\n%s", ang, angle_hi, err);
        p = a;
        n++;
    }
    return n;
}

START_TEST(test_diag)
{
    cli_run_t r = {0};
    char *c, *lines[8], *f;
    int n, fields = 1;
    /* symmetric feedback: V = W, so full concordance and a zero angle, on both weighted layers */
    cli(&r, "train", "--data", "iris", "--net", "mlp:16", "--epochs", "2", "--diag", NULL);
    expect_ok(&r);
    ck_assert_int_eq(check_diag_lines(r.err, 1.0, 1e-6), 4);
    /* fixed random magnitudes with the signs of W: an angle in degrees, [0, 180] */
    cli(&r, "train", "--data", "iris", "--net", "mlp:16", "--feedback", "frsf", "--update", "bm", "--bn", "--epochs", "2",
        "--diag", "--out", tp("d"), NULL);
    expect_ok(&r);
    ck_assert_int_eq(check_diag_lines(r.err, 0.9, 180.0), 4);
    /* curves.csv gains three columns per weighted layer */
    c = read_all(tp("d/curves.csv"), NULL);
    ck_assert_ptr_nonnull(c);
    n = split_lines(c, lines, 8);
    ck_assert_int_eq(n, 3);
    ck_assert_ptr_nonnull(strstr(lines[0], ",delta_norm_0,grad_norm_0,sign_concordance_0,delta_norm_1"));
    for (f = lines[2]; *f; f++) fields += *f == ',';
    ck_assert_int_eq(fields, 12 + 3 * 2);
    free(c);
    /* the exact-backprop probe: a row per weighted layer every N steps, angles in [0, 180] */
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:16", "--feedback", "usf", "--update", "bm", "--bn", "--epochs", "2",
        "--probe-every", "5", "--out", tp("p"), "--quiet", NULL);
    expect_ok(&r);
    c = read_all(tp("p/probe.csv"), NULL);
    ck_assert_ptr_nonnull(c);
    {
        char *pl[64];
        int np = split_lines(c, pl, 64);
        /* 15 steps per epoch: steps 5, 10, ..., 30; two weighted layers */
        ck_assert_msg(np == 1 + 6 * 2, "probe.csv has %d lines", np);
        ck_assert_ptr_nonnull(strstr(pl[0], "delta_angle_bp"));
        for (int i = 1; i < np; i++) {
            double step, layer, dn, bdn, ang, gang;
            ck_assert_int_eq(sscanf(pl[i], "%lf,%lf,%lf,%lf,%lf,%lf", &step, &layer, &dn, &bdn, &ang, &gang), 6);
            ck_assert(gang >= 0.0 && gang <= 180.0);
            if (layer > 0) ck_assert_msg(ang > 0.0 && ang < 180.0, "angle %g", ang);   /* uSF: not exact, not opposite */
        }
    }
    free(c);
    cli(&r, "train", "--epochs", "1", "--probe-every", "5", NULL);
    expect_fail(&r, "--probe-every needs --out", NULL);
    cli_free(&r);
}
END_TEST

START_TEST(test_diverged)
{
    cli_run_t r = {0};
    jobj_t o, e;
    char model[1024];
    const char *d = tp("dv");
    /* plain SGD without BN and an absurd learning rate: NaN within the first epoch */
    cli(&r, "train", "--data", "digits8x8", "--net", "mlp:32", "--update", "sgd", "--lr", "1e6", "--epochs", "3", "--out", d,
        NULL);
    expect_ok(&r);
    last_json(&r, &o);
    check_summary(&o);
    ck_assert_int_eq(jbool(&o, "diverged"), 1);
    ck_assert_ptr_nonnull(strstr(jstr(&o, "diverged_at"), "epoch"));
    ck_assert_ptr_nonnull(strstr(r.err, "diverged"));
    ck_assert_double_lt(jnum(&o, "epochs_done"), 3);
    /* the reported accuracy is that of the last good weights, which the saved model holds */
    snprintf(model, sizeof model, "%s/model.asymbp", d);
    cli(&r, "eval", model, "--data", "digits8x8", NULL);
    expect_ok(&r);
    last_json(&r, &e);
    ck_assert_double_eq_tol(jnum(&e, "test_accuracy"), jnum(&o, "test_accuracy"), 1e-6);
    ck_assert(file_exists(tp("dv/summary.json")));
    cli_free(&r);
}
END_TEST


/* ---- tests: defects found from outside (issue 12) ------------------------------------------ */

START_TEST(test_small_pool_windows)
{
    /* a pooling kernel smaller than its stride (ceil mode, no padding) read past its input */
    cli_run_t r = {0};
    cli(&r, "train", "--net", "conv1x1x4,maxpool1s3", "--epochs", "1", "--quiet", NULL);
    expect_ok(&r);
    cli(&r, "train", "--net", "maxpool1s2,fc10", "--epochs", "1", "--quiet", NULL);
    expect_ok(&r);
    cli(&r, "gradcheck", "--net", "relu,maxpool1s2,fc7", "--input", "3x2x2", "--classes", "6", NULL);
    expect_ok(&r);
    cli(&r, "gradcheck", "--net", "avgpool1s3,fc5", "--input", "2x8x8", "--classes", "3", NULL);
    expect_ok(&r);
    cli_free(&r);
}
END_TEST

START_TEST(test_ranges_and_folders)
{
    cli_run_t r = {0};
    const char *o = out_guard("o");
    /* the documented range of --lr is [0, 1e6] */
    cli(&r, "train", "--out", o, "--lr", "1e30", NULL);
    expect_fail(&r, "--lr", "'1e30'", "1e+06", NULL);
    cli(&r, "train", "--out", o, "--lr", "1.5e6", NULL);
    expect_fail(&r, "--lr", NULL);
    cli(&r, "train", "--out", o, "--threads", "100000", NULL);
    expect_fail(&r, "--threads", NULL);
    /* a folder given as a model */
    cli(&r, "info", o, NULL);
    expect_fail(&r, "is a folder", NULL);
    cli(&r, "eval", o, "--data", "iris", NULL);
    expect_fail(&r, "is a folder", NULL);
    assert_out_untouched(o);
    cli_free(&r);
}
END_TEST

/* A pid that no process has (a child that already exited and was reaped). */
static long dead_pid(void)
{
    pid_t p = fork();
    int st;
    ck_assert(p >= 0);
    if (p == 0) _exit(0);
    ck_assert_int_eq(waitpid(p, &st, 0), p);
    return (long)p;
}

START_TEST(test_resume_lost_row_and_stale_tmp)
{
    /* A checkpoint after epoch 2 whose curves row is missing (0.1 wrote the row after the
     * checkpoint, so a kill between them lost it for good): the resumed run's curves must equal an
     * uninterrupted run's.  Temporary files of dead processes are removed, a live one's kept. */
    cli_run_t r = {0};
    char *ca, *cb, *c, *lines[8], stale[256], live[256];
    const char *b = tp("b");
    FILE *f;
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "3", "--checkpoint-every", "1", "--out", tp("a"), "--quiet",
        NULL);
    expect_ok(&r);
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "2", "--checkpoint-every", "1", "--out", b, "--quiet", NULL);
    expect_ok(&r);
    c = read_all(tp("b/curves.csv"), NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(split_lines(c, lines, 8), 3);
    f = fopen(tp("b/curves.csv"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n%s\n3,", lines[0], lines[1]);   /* row 2 lost, a row cut short after it */
    ck_assert_int_eq(fclose(f), 0);
    free(c);
    snprintf(stale, sizeof stale, "b/checkpoint.asymbp.tmp.%ld", dead_pid());
    write_text(tp("%s", stale), "half a checkpoint");
    write_text(tp("b/settings.txt.tmp"), "data=");
    snprintf(live, sizeof live, "b/model.asymbp.tmp.%ld", (long)getpid());
    write_text(tp("%s", live), "someone else's");
    cli(&r, "train", "--resume", b, "--epochs", "3", "--quiet", NULL);
    expect_ok(&r);
    ca = curves_without_seconds(tp("a/curves.csv"));
    cb = curves_without_seconds(tp("b/curves.csv"));
    ck_assert_msg(!strcmp(ca, cb), "curves differ:\n%s\n---\n%s", ca, cb);
    ck_assert_msg(!file_exists(tp("%s", stale)), "a dead run's temporary checkpoint was left");
    ck_assert(!file_exists(tp("b/settings.txt.tmp")));
    ck_assert_msg(file_exists(tp("%s", live)), "a live process's temporary file was removed");
    free(ca);
    free(cb);
    cli_free(&r);
}
END_TEST

START_TEST(test_resume_bad_settings)
{
    /* settings.txt is checked like the command line before anything is read or started */
    static const struct { const char *text, *needle; } cases[] = {
        { "", "holds no settings" },
        { "\n\n", "holds no settings" },
        { "garbage without an equals sign\n", "not KEY=VALUE" },
        { "threads=100000\n", "threads" },
        { "epochs=0\n", "epochs" },
        { "lr=1e30\n", "lr" },
        { "batch=-5\n", "batch" },
        { "bn=yes\n", "bn" },
        { "lr_steps=4,2\n", "lr_steps" },
        { "colour=blue\n", "unknown setting 'colour'" },
    };
    cli_run_t r = {0};
    const char *d = tp("run");
    char *orig;
    size_t len;
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--checkpoint-every", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    orig = read_all(tp("run/settings.txt"), &len);
    ck_assert_ptr_nonnull(orig);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = malloc(len + strlen(cases[i].text) + 1);
        ck_assert_ptr_nonnull(text);
        /* the bad line after the good ones (the empty cases replace the file) */
        if (cases[i].text[0] && cases[i].text[0] != '\n') sprintf(text, "%s%s", orig, cases[i].text);
        else strcpy(text, cases[i].text);
        write_text(tp("run/settings.txt"), text);
        cli(&r, "train", "--resume", d, "--epochs", "2", "--quiet", NULL);
        expect_fail(&r, "settings.txt", cases[i].needle, NULL);
        free(text);
    }
    write_text(tp("run/settings.txt"), orig);
    cli(&r, "train", "--resume", d, "--epochs", "2", "--quiet", NULL);
    expect_ok(&r);
    free(orig);
    cli_free(&r);
}
END_TEST


/* ---- tests: asymbp sweep ----------------------------------------------------------------------- */

static const char *const sweep_grid =
    "# a tiny grid\n"
    "name = t\n"
    "data = iris\n"
    "net = mlp:8\n"
    "feedback = sym, usf\n"
    "regime = bn, bn+bm\n"
    "seed = 1, 2\n"
    "epochs = 3\n"
    "batch = 32\n"
    "lr.sgd = 0.1, 0.001\n"
    "lr.bm = 0.001\n"
    "schedule = cosine\n";

/* Number of data rows of a CSV file, and whether every one of them contains needle. */
static int csv_rows(const char *path, const char *needle, int *all_have)
{
    char *c = read_all(path, NULL), *lines[4096];
    int n, rows = 0;
    if (all_have) *all_have = 1;
    if (!c) return -1;
    n = split_lines(c, lines, 4096);
    for (int i = 1; i < n; i++) {
        if (!*lines[i]) continue;
        rows++;
        if (all_have && needle && !strstr(lines[i], needle)) *all_have = 0;
    }
    free(c);
    return rows;
}

/* Number of commands a dry run printed. */
static int dry_commands(const cli_run_t *r)
{
    int n = 0;
    for (const char *p = r->out; p && (p = strstr(p, "asymbp train ")) != NULL; p++) n++;
    return n;
}

START_TEST(test_sweep)
{
    /* The search runs both sgd candidates for seed 1; the better one (on validation accuracy) runs
     * for seed 2; bm has one candidate.  Rows: 4 search + 2 final (sgd) + 4 (bm) = 10. */
    cli_run_t r = {0};
    char *sel, *rows_a, *rows_b;
    int rows, all;
    write_text(tp("t.grid"), sweep_grid);
    /* a dry run before anything ran: the 4 search runs, every sgd candidate for seed 2 (the
     * choice is not made yet) and the 4 bm runs; it writes nothing */
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), "--dry-run", NULL);
    expect_ok(&r);
    ck_assert_int_eq(dry_commands(&r), 12);
    ck_assert(!file_exists(tp("sw/runs.csv")));
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), "-j", "2", NULL);
    expect_ok(&r);
    rows = csv_rows(tp("sw/runs.csv"), NULL, NULL);
    ck_assert_msg(rows == 10, "runs.csv has %d rows, expected 10:\n%s", rows, r.err);
    sel = read_all(tp("sw/selection.csv"), NULL);
    ck_assert_ptr_nonnull(sel);
    ck_assert_ptr_nonnull(strstr(sel, "chosen"));
    /* the seed-2 runs of the sgd groups use the chosen learning rate */
    {
        const char *line = strstr(sel, "iris|mlp:8|bn|sym\",");
        char lr[32] = "";
        const char *chosen = NULL;
        for (const char *p = sel; (p = strstr(p, "iris|mlp:8|bn|sym\",")) != NULL; p++)
            if (strstr(p, ",chosen") && (!strchr(p, '\n') || strstr(p, ",chosen") < strchr(p, '\n'))) chosen = p;
        ck_assert_ptr_nonnull(line);
        ck_assert_ptr_nonnull(chosen);
        sscanf(chosen + strlen("iris|mlp:8|bn|sym\","), "%31[^,]", lr);
        ck_assert_msg(file_exists(tp("sw/runs/iris/mlp_8/sym-bn-lr%s-cosine-s2/summary.json", lr)),
                      "the seed-2 run of the chosen lr %s is missing", lr);
    }
    free(sel);
    /* a dry run after the sweep lists nothing; run again: nothing to do, no new row */
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), "--dry-run", NULL);
    expect_ok(&r);
    ck_assert_int_eq(dry_commands(&r), 0);
    ck_assert_ptr_nonnull(strstr(r.err, "10 already done"));
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), NULL);
    expect_ok(&r);
    ck_assert_int_eq(csv_rows(tp("sw/runs.csv"), NULL, NULL), 10);
    /* two shards together make the same rows as one sweep */
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sh"), "--shard", "0/2", NULL);
    expect_ok(&r);
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sh"), "--shard", "1/2", NULL);
    expect_ok(&r);
    rows = csv_rows(tp("sh/runs-shard0-of-2.csv"), NULL, NULL) + csv_rows(tp("sh/runs-shard1-of-2.csv"), NULL, NULL);
    ck_assert_int_eq(rows, 10);
    /* rows hold the figures of the runs: every row of the full sweep names the grid */
    ck_assert_int_eq(csv_rows(tp("sw/runs.csv"), ",t,iris,", &all), 10);
    ck_assert(all);
    /* a run that lost its row (killed between its summary and the row) is settled on the next
     * sweep: remove one row and run again */
    rows_a = read_all(tp("sw/runs.csv"), NULL);
    ck_assert_ptr_nonnull(rows_a);
    *strrchr(rows_a, '\n') = '\0';
    *(strrchr(rows_a, '\n') + 1) = '\0';
    write_text(tp("sw/runs.csv"), rows_a);
    ck_assert_int_eq(csv_rows(tp("sw/runs.csv"), NULL, NULL), 9);
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), "--dry-run", NULL);
    expect_ok(&r);
    ck_assert_int_eq(dry_commands(&r), 1);
    cli(&r, "sweep", tp("t.grid"), "--out", tp("sw"), NULL);
    expect_ok(&r);
    ck_assert_int_eq(csv_rows(tp("sw/runs.csv"), NULL, NULL), 10);
    rows_b = read_all(tp("sw/runs.csv"), NULL);
    free(rows_a);
    free(rows_b);
    /* bad grids */
    write_text(tp("bad1.grid"), "data = iris\nfeedback = sym\nregime = sgd\ncolour = blue\n");
    cli(&r, "sweep", tp("bad1.grid"), "--out", tp("b1"), NULL);
    expect_fail(&r, "line 4", "unknown key 'colour'", NULL);
    write_text(tp("bad2.grid"), "data = iris\nfeedback = sym\nregime = sideways\nlr = 0.1\n");
    cli(&r, "sweep", tp("bad2.grid"), "--out", tp("b2"), NULL);
    expect_fail(&r, "unknown regime 'sideways'", NULL);
    write_text(tp("bad3.grid"), "data = iris\nfeedback = sym\nregime = sgd\n");
    cli(&r, "sweep", tp("bad3.grid"), "--out", tp("b3"), NULL);
    expect_fail(&r, "no learning rate", NULL);
    cli(&r, "sweep", tp("t.grid"), "--shard", "2/2", NULL);
    expect_fail(&r, "--shard", NULL);
    /* the grid changed after its runs (a run is named without its epochs): the sweep refuses to mix
     * the old rows with new ones and writes nothing; a dry run lists every run as still to do */
    {
        char *changed = strdup(sweep_grid);
        ck_assert_ptr_nonnull(changed);
        strstr(changed, "epochs = 3")[9] = '4';
        write_text(tp("t4.grid"), changed);
        free(changed);
    }
    cli(&r, "sweep", tp("t4.grid"), "--out", tp("sw"), NULL);
    expect_fail(&r, "10 runs made with other settings", "has epochs 3, the grid now asks for 4", "--out", NULL);
    ck_assert_int_eq(csv_rows(tp("sw/runs.csv"), NULL, NULL), 10);
    cli(&r, "sweep", tp("t4.grid"), "--out", tp("sw"), "--dry-run", NULL);
    expect_ok(&r);
    ck_assert_int_eq(dry_commands(&r), 10);
    ck_assert_ptr_nonnull(strstr(r.err, "still to do"));
    cli_free(&r);
}
END_TEST

/* ---- tests: damaged text files ------------------------------------------------------------------
 * settings.txt (read by --resume) and grid files (read by sweep) mutated at random, with a fixed
 * seed: bytes flipped, replaced, deleted, inserted or repeated, lines cut or repeated.  Every run
 * must end with a status (0, 1 or 2, never a signal: under check-asan the tool is the ASan build)
 * and a refusal must be one "asymbp:" message.  The run folder has no checkpoint, so an accepted
 * settings file ends in "no checkpoint" after the whole file has been checked; grids are read by
 * --dry-run, which starts nothing. */

static uint64_t mut_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A mutated copy of text (NUL-terminated, caller frees). */
static char *mutate(const char *text, uint64_t *rng)
{
    static const char *const pieces[] = { "=", ",", ", ", "\n", "#", "-", "1e308", "nan", "-1", "999999999999",
                                          ".", ":", "\"", "lr.", "regime.x = --bm", "feedback.iris = ", "\t", " " };
    size_t len = strlen(text), cap = 2 * len + 4096, n;
    char *out = malloc(cap);
    int edits = 1 + (int)(mut_next(rng) % 4);
    ck_assert_ptr_nonnull(out);
    memcpy(out, text, len + 1);
    n = len;
    for (int e = 0; e < edits; e++) {
        size_t at = n ? (size_t)(mut_next(rng) % n) : 0, k;
        switch (mut_next(rng) % 7) {
        case 0: /* flip a bit */
            if (n) out[at] ^= (char)(1u << (mut_next(rng) % 7));
            break;
        case 1: /* any byte but NUL */
            if (n) out[at] = (char)(1 + mut_next(rng) % 255);
            break;
        case 2: /* delete a run of bytes */
            k = 1 + (size_t)(mut_next(rng) % 24);
            if (at + k > n) k = n - at;
            memmove(out + at, out + at + k, n - at - k + 1);
            n -= k;
            break;
        case 3: { /* insert a piece of the syntax */
            const char *p = pieces[mut_next(rng) % (sizeof pieces / sizeof pieces[0])];
            k = strlen(p);
            if (n + k + 1 > cap) break;
            memmove(out + at + k, out + at, n - at + 1);
            memcpy(out + at, p, k);
            n += k;
            break;
        }
        case 4: /* repeat a span */
            k = 1 + (size_t)(mut_next(rng) % 64);
            if (at + k > n) k = n - at;
            if (n + k + 1 > cap) break;
            memmove(out + at + k, out + at, n - at + 1);
            n += k;
            break;
        case 5: /* cut the file */
            n = at;
            out[n] = '\0';
            break;
        default: { /* a long line */
            k = 300 + (size_t)(mut_next(rng) % 3000);
            if (n + k + 1 > cap) break;
            memmove(out + at + k, out + at, n - at + 1);
            memset(out + at, "ax,=9 "[mut_next(rng) % 6], k);
            n += k;
            break;
        }
        }
    }
    return out;
}

static void expect_status_and_message(const cli_run_t *r, const char *what, const char *text)
{
    ck_assert_msg(r->status >= 0 && r->status <= 2, "%s: " RUN_FMT "\n--- file:\n%.3000s", what, RUN_ARGS(r), text);
    if (r->status != 0) {
        ck_assert_msg(!strncmp(r->err, "asymbp: ", 8) && r->err[r->err_len - 1] == '\n', "%s: unclear message: " RUN_FMT,
                      what, RUN_ARGS(r));
        ck_assert_msg(r->out_len == 0, "%s: a failed run printed on stdout: " RUN_FMT, what, RUN_ARGS(r));
    }
}

START_TEST(test_mutated_text_files)
{
#if defined(__SANITIZE_ADDRESS__)
    const int n = test_quick() ? 40 : 120;   /* the ASan tool starts slowly: fewer, same seed */
#else
    const int n = test_quick() ? 40 : 250;
#endif
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    cli_run_t r = {0};
    const char *d = tp("run");
    char *orig, *m;
    int refused = 0, accepted = 0;
    cli(&r, "train", "--data", "iris", "--net", "mlp:8", "--epochs", "1", "--out", d, "--quiet", NULL);
    expect_ok(&r);
    orig = read_all(tp("run/settings.txt"), NULL);
    ck_assert_ptr_nonnull(orig);
    for (int i = 0; i < n; i++) {
        m = mutate(orig, &rng);
        write_text(tp("run/settings.txt"), m);
        cli(&r, "train", "--resume", d, "--quiet", NULL);
        expect_status_and_message(&r, "settings.txt", m);
        ck_assert_msg(r.status != 0, "a resume without a checkpoint succeeded: " RUN_SHOW(&r));
        free(m);
    }
    free(orig);
    for (int i = 0; i < n; i++) {
        m = mutate(sweep_grid, &rng);
        write_text(tp("m.grid"), m);
        cli(&r, "sweep", tp("m.grid"), "--out", tp("msw"), "--dry-run", NULL);
        expect_status_and_message(&r, "grid", m);
        if (r.status == 0) accepted++;
        else refused++;
        free(m);
    }
    /* the mutations reach both outcomes (a test that can fail in both directions) */
    ck_assert_msg(accepted > 0 && refused > 0, "grids: %d accepted, %d refused", accepted, refused);
    ck_assert(!file_exists(tp("msw/runs.csv")));
    cli_free(&r);
}
END_TEST

Suite *asymbp_test_cli_suite(void);
Suite *asymbp_test_cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *bad = tcase_create("bad-input"), *good = tcase_create("good-paths"), *mut = tcase_create("mutations");
    tcase_add_checked_fixture(bad, tmp_setup, tmp_teardown);
    tcase_add_checked_fixture(good, tmp_setup, tmp_teardown);
    tcase_add_checked_fixture(mut, tmp_setup, tmp_teardown);
    tcase_set_timeout(bad, 60);
    tcase_set_timeout(good, 120);
    /* hundreds of runs of the tool (the ASan build under check-asan, on a loaded CI machine) */
    tcase_set_timeout(mut, 600);
    tcase_add_test(mut, test_mutated_text_files);
    tcase_add_test(bad, test_json_reader);
    tcase_add_test(bad, test_help);
    tcase_add_test(bad, test_bad_options);
    tcase_add_test(bad, test_missing_files);
    tcase_add_test(bad, test_truncated_idx);
    tcase_add_test(bad, test_count_mismatch);
    tcase_add_test(bad, test_csv_non_numeric);
    tcase_add_test(bad, test_label_out_of_range);
    tcase_add_test(bad, test_nan_features);
    tcase_add_test(bad, test_out_holds_model);
    tcase_add_test(bad, test_resume_without_checkpoint);
    tcase_add_test(bad, test_eval_mismatch);
    tcase_add_test(good, test_train_default);
    tcase_add_test(good, test_out_files);
    tcase_add_test(good, test_train_explicit_files);
    tcase_add_test(good, test_eval_and_info);
    tcase_add_test(good, test_gradcheck);
    tcase_add_test(good, test_resume_identical);
    tcase_add_test(good, test_resume_after_crash);
    tcase_add_test(good, test_resume_elsewhere);
    tcase_add_test(good, test_diag);
    tcase_add_test(good, test_diverged);
    tcase_add_test(good, test_small_pool_windows);
    tcase_add_test(bad, test_ranges_and_folders);
    tcase_add_test(good, test_resume_lost_row_and_stale_tmp);
    tcase_add_test(bad, test_resume_bad_settings);
    tcase_add_test(good, test_sweep);
    suite_add_tcase(s, bad);
    suite_add_tcase(s, good);
    suite_add_tcase(s, mut);
    return s;
}
