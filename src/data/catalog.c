/* Folders of data sets (CSV pair or four IDX files) and the catalogue of known data sets. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

static const struct known_set {
    const char *name;
    int fetched;       /* 1: data/fetched/NAME (make data), 0: bundled in data/NAME */
    size_t classes;
} known[] = {
    { "digits8x8", 0, 10 },  { "digits20x20", 0, 10 }, { "letter", 0, 26 },  { "dna", 0, 3 },
    { "soybean", 0, 19 },    { "ionosphere", 0, 2 },   { "sonar", 0, 2 },    { "glass", 0, 6 },
    { "iris", 0, 3 },        { "wine", 0, 3 },         { "breast_cancer", 0, 2 },
    { "mnist", 1, 10 },      { "fashion-mnist", 1, 10 },
};
#define KNOWN_COUNT (sizeof known / sizeof known[0])

size_t asymbp_dataset_known_count(void) { return KNOWN_COUNT; }
const char *asymbp_dataset_known_name(size_t i) { return i < KNOWN_COUNT ? known[i].name : NULL; }
int asymbp_dataset_known_fetched(size_t i) { return i < KNOWN_COUNT ? known[i].fetched : -1; }
size_t asymbp_dataset_known_classes(size_t i) { return i < KNOWN_COUNT ? known[i].classes : 0; }

/* "a" + "/" + "b" in context memory. */
static char *join(asymbp_ctx_t *ctx, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = asymbp__alloc(ctx, la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* IDX roles in a folder and the file-name endings that fill them (each optionally + ".gz"). */
enum { R_TRAIN_IMG, R_TRAIN_LBL, R_TEST_IMG, R_TEST_LBL, R_COUNT };
static const char *const role_names[R_COUNT] = { "training images", "training labels", "test images", "test labels" };
static const char *const role_patterns[R_COUNT] = {
    "*train-images-idx3-ubyte[.gz]", "*train-labels-idx1-ubyte[.gz]",
    "*test-images-idx3-ubyte[.gz] or *t10k-images-idx3-ubyte[.gz]",
    "*test-labels-idx1-ubyte[.gz] or *t10k-labels-idx1-ubyte[.gz]",
};
static const char *const role_suffix[R_COUNT][2] = {
    { "train-images-idx3-ubyte", NULL }, { "train-labels-idx1-ubyte", NULL },
    { "test-images-idx3-ubyte", "t10k-images-idx3-ubyte" }, { "test-labels-idx1-ubyte", "t10k-labels-idx1-ubyte" },
};

static int idx_role(const char *name, size_t *stem_len)
{
    size_t n = strlen(name), r, k;
    if (name[0] == '.') return -1;
    if (ends_with(name, n, ".gz")) n -= 3;
    for (r = 0; r < R_COUNT; r++)
        for (k = 0; k < 2; k++)
            if (role_suffix[r][k] && ends_with(name, n, role_suffix[r][k])) {
                *stem_len = n;
                return (int)r;
            }
    return -1;
}

/* Find the four IDX files of a folder.  names[r] receives a file name (context memory) or NULL. */
static asymbp_status_t find_idx_files(asymbp_ctx_t *ctx, const char *dir, char *names[R_COUNT])
{
    DIR *d = opendir(dir);
    struct dirent *e;
    asymbp_status_t st = ASYMBP_OK;
    if (!d) return asymbp__error(ctx, ASYMBP_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    while (st == ASYMBP_OK && (e = readdir(d)) != NULL) {
        size_t stem, old_stem;
        int r = idx_role(e->d_name, &stem);
        char *copy;
        if (r < 0) continue;
        if (names[r]) {
            (void)idx_role(names[r], &old_stem);
            if (old_stem != stem || memcmp(names[r], e->d_name, stem) != 0) {
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: both %s and %s look like the %s; keep one", dir, names[r],
                                   e->d_name, role_names[r]);
                break;
            }
            /* The same file plain and gzip: read the plain one. */
            if (strlen(e->d_name) > stem) continue;
        }
        copy = asymbp__strdup(ctx, e->d_name);
        if (!copy) {
            st = asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", dir);
            break;
        }
        asymbp__free(ctx, names[r]);
        names[r] = copy;
    }
    closedir(d);
    return st;
}

static asymbp_status_t unify_classes(asymbp_ctx_t *ctx, const char *dir, asymbp_dataset_t *tr, asymbp_dataset_t *te)
{
    size_t k = tr->classes > te->classes ? tr->classes : te->classes;
    if (tr->c != te->c || tr->h != te->h || tr->w != te->w)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "%s: test samples are %lld x %lld x %lld, training samples %lld x %lld x %lld",
                             dir, (long long)te->c, (long long)te->h, (long long)te->w, (long long)tr->c, (long long)tr->h,
                             (long long)tr->w);
    tr->classes = te->classes = k;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_load_dir(asymbp_ctx_t *ctx, const char *dir, size_t classes,
                                        asymbp_dataset_t **train, asymbp_dataset_t **test)
{
    struct stat sb;
    char *p_tr = NULL, *p_te = NULL, *names[R_COUNT] = { NULL, NULL, NULL, NULL }, *paths[R_COUNT] = { NULL, NULL, NULL, NULL };
    asymbp_dataset_t *tr = NULL, *te = NULL;
    asymbp_status_t st = ASYMBP_OK;
    char base[256];
    size_t i, bl;
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    if (!train || !test) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_dir: %s is NULL", train ? "test" : "train");
    ASYMBP_CHECK_NULL(ctx, dir, "dir");
    if (stat(dir, &sb) != 0) return asymbp__error(ctx, ASYMBP_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return asymbp__error(ctx, ASYMBP_E_IO, "%s: not a folder", dir);
    /* The folder's name (without trailing slashes) names both sets. */
    bl = strlen(dir);
    while (bl > 1 && dir[bl - 1] == '/') bl--;
    for (i = bl; i > 0 && dir[i - 1] != '/'; i--) {}
    snprintf(base, sizeof base, "%.*s", (int)(bl - i), dir + i);

    /* CSV pair (train.csv[.gz], test.csv[.gz]). */
    {
        static const char *const csv_tr[2] = { "train.csv", "train.csv.gz" }, *const csv_te[2] = { "test.csv", "test.csv.gz" };
        int k, have_tr = 0, have_te = 0;
        for (k = 0; k < 2 && st == ASYMBP_OK; k++) {
            char *a = join(ctx, dir, csv_tr[k]), *b = join(ctx, dir, csv_te[k]);
            if (!a || !b) st = asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", dir);
            if (a && !have_tr && is_file(a)) { have_tr = 1; p_tr = a; a = NULL; }
            if (b && !have_te && is_file(b)) { have_te = 1; p_te = b; b = NULL; }
            asymbp__free(ctx, a);
            asymbp__free(ctx, b);
        }
        if (st == ASYMBP_OK && (have_tr || have_te)) {
            if (!have_tr || !have_te) {
                st = asymbp__error(ctx, ASYMBP_E_IO, "%s: has %s but no %s", dir, have_tr ? "train.csv" : "test.csv",
                                   have_tr ? "test.csv" : "train.csv");
            } else {
                st = asymbp_dataset_load_csv(ctx, p_tr, classes, &tr);
                if (st == ASYMBP_OK) st = asymbp_dataset_load_csv(ctx, p_te, classes, &te);
                if (st == ASYMBP_OK) st = unify_classes(ctx, dir, tr, te);
            }
            goto done;
        }
        if (st != ASYMBP_OK) goto done;
    }

    /* Four IDX files. */
    st = find_idx_files(ctx, dir, names);
    if (st != ASYMBP_OK) goto done;
    if (!names[0] && !names[1] && !names[2] && !names[3]) {
        st = asymbp__error(ctx, ASYMBP_E_NOTFOUND, "%s: holds neither train.csv + test.csv nor the four IDX files "
                           "(*train-images-idx3-ubyte, *train-labels-idx1-ubyte, *t10k-images-idx3-ubyte, "
                           "*t10k-labels-idx1-ubyte; test- for t10k- and .gz endings also accepted)", dir);
        goto done;
    }
    for (i = 0; i < R_COUNT; i++)
        if (!names[i]) {
            st = asymbp__error(ctx, ASYMBP_E_IO, "%s: the %s file is missing (expected a name like %s)", dir, role_names[i],
                               role_patterns[i]);
            goto done;
        }
    for (i = 0; i < R_COUNT; i++)
        if (!(paths[i] = join(ctx, dir, names[i]))) {
            st = asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", dir);
            goto done;
        }
    st = asymbp_dataset_load_idx(ctx, paths[R_TRAIN_IMG], paths[R_TRAIN_LBL], classes, &tr);
    if (st == ASYMBP_OK) st = asymbp_dataset_load_idx(ctx, paths[R_TEST_IMG], paths[R_TEST_LBL], classes, &te);
    if (st == ASYMBP_OK) st = unify_classes(ctx, dir, tr, te);
done:
    if (st == ASYMBP_OK) st = asymbp_dataset_set_name(tr, base);
    if (st == ASYMBP_OK) st = asymbp_dataset_set_name(te, base);
    asymbp__free(ctx, p_tr);
    asymbp__free(ctx, p_te);
    for (i = 0; i < R_COUNT; i++) {
        asymbp__free(ctx, names[i]);
        asymbp__free(ctx, paths[i]);
    }
    if (st != ASYMBP_OK) {
        asymbp_dataset_destroy(tr);
        asymbp_dataset_destroy(te);
        return st;
    }
    *train = tr;
    *test = te;
    return ASYMBP_OK;
}

/* Case-insensitive, '-' == '_'. */
static int name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x == '-') x = '_';
        if (y == '-') y = '_';
        if (x != y) return 0;
        if (!x) return 1;
    }
}

asymbp_status_t asymbp_dataset_load_named(asymbp_ctx_t *ctx, const char *name, const char *const *roots, size_t n_roots,
                                          asymbp_dataset_t **train, asymbp_dataset_t **test)
{
    const struct known_set *ks = NULL;
    char looked[256];
    size_t i, used = 0;
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    if (!train || !test) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_named: %s is NULL", train ? "test" : "train");
    if (!name || !*name) name = known[0].name;
    if (strchr(name, '/')) return asymbp_dataset_load_dir(ctx, name, 0, train, test);
    for (i = 0; i < KNOWN_COUNT; i++)
        if (name_eq(name, known[i].name)) ks = &known[i];
    if (!ks) {
        char list[256];
        size_t at = 0;
        for (i = 0; i < KNOWN_COUNT && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", known[i].name);
        return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "unknown data set '%.60s'; known: %s (or a folder path containing '/')",
                             name, list);
    }
    if (n_roots && !roots) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_named: roots is NULL");
    looked[0] = '\0';
    for (i = 0; i < n_roots; i++) {
        struct stat sb;
        char *base, *dir;
        int found;
        if (!roots[i] || !*roots[i]) continue;
        base = ks->fetched ? join(ctx, roots[i], "fetched") : NULL;
        if (ks->fetched && !base) return asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset_load_named: out of memory");
        dir = join(ctx, base ? base : roots[i], ks->name);
        asymbp__free(ctx, base);
        if (!dir) return asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset_load_named: out of memory");
        found = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
        if (found) {
            asymbp_status_t st = asymbp_dataset_load_dir(ctx, dir, ks->classes, train, test);
            if (st == ASYMBP_OK) {
                st = asymbp_dataset_set_name(*train, ks->name);
                if (st == ASYMBP_OK) st = asymbp_dataset_set_name(*test, ks->name);
                if (st != ASYMBP_OK) {
                    asymbp_dataset_destroy(*train);
                    asymbp_dataset_destroy(*test);
                    *train = *test = NULL;
                }
            }
            asymbp__free(ctx, dir);
            return st;
        }
        if (used < sizeof looked)
            used += (size_t)snprintf(looked + used, sizeof looked - used, "%s%s", used ? ", " : "", dir);
        asymbp__free(ctx, dir);
    }
    if (!looked[0]) snprintf(looked, sizeof looked, "no data folder given");
    if (ks->fetched)
        return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "data set '%s' has not been fetched (looked in: %.200s): run `make data` "
                             "(scripts/fetch-data.sh) first", ks->name, looked);
    return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "data set '%s' not found (looked in: %.200s)", ks->name, looked);
}
