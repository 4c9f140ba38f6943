/* Shared helpers for the Check suites: a counting / failing allocator, tolerances, scratch
 * folders. */
#ifndef ASYMBP_TEST_UTIL_H
#define ASYMBP_TEST_UTIL_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <check.h>
#include "asymbp/asymbp.h"

/* An allocator that counts live blocks and calls, and fails the call numbered fail_at (1-based;
 * 0 = never fail). */
typedef struct test_alloc {
    long calls;      /* alloc calls so far */
    long live;       /* blocks not yet freed */
    long fail_at;
} test_alloc_t;

static void *test_alloc_fn(void *user, size_t size, size_t align)
{
    test_alloc_t *t = user;
    void *p = NULL;
    t->calls++;
    if (t->fail_at && t->calls == t->fail_at) return NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    t->live++;
    return p;
}

static void test_free_fn(void *user, void *ptr)
{
    test_alloc_t *t = user;
    t->live--;
    free(ptr);
}

static inline asymbp_allocator_t test_allocator(test_alloc_t *t)
{
    asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
    a.alloc = test_alloc_fn;
    a.free = test_free_fn;
    a.user = t;
    return a;
}

/* A context with seed 1 and 1 thread; fails the test on error. */
static inline asymbp_ctx_t *test_ctx(void)
{
    asymbp_ctx_t *ctx = NULL;
    ck_assert_int_eq(asymbp_ctx_create(NULL, &ctx), ASYMBP_OK);
    ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 1), ASYMBP_OK);
    return ctx;
}

static inline double test_rel_err(double a, double b)
{
    double d = fabs(a - b), s = fabs(a) + fabs(b);
    return s < 1e-12 ? d : 2.0 * d / s;
}

/* Non-zero when running under valgrind or a quick run: suites shorten their long loops. */
static inline int test_quick(void) { return getenv("ASYMBP_TEST_QUICK") != NULL; }

/* ---- scratch folders ------------------------------------------------------------------------
 * check_main.c makes one folder per run (mkdtemp under $TMPDIR, else /tmp) and hands it to the
 * suites as ASYMBP_TEST_TMP.  Each test makes its own folder inside it with test_tmpdir_make and
 * removes it with test_tmpdir_remove; when the run ends, anything still there fails the run and
 * is removed, so not even a failing test leaves files behind. */

/* Removes path and, for a folder, everything in it (symbolic links are removed, not followed).
 * Returns 0 when it is gone. */
static inline int test_rm_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return -1;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        if (!d) return -1;
        while ((e = readdir(d)) != NULL) {
            size_t len;
            char *child;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            len = strlen(path) + strlen(e->d_name) + 2;
            child = malloc(len);
            if (!child) continue;
            memcpy(child, path, strlen(path));
            child[strlen(path)] = '/';
            memcpy(child + strlen(path) + 1, e->d_name, strlen(e->d_name) + 1);
            (void)test_rm_tree(child);
            free(child);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

/* The number of entries in folder dir (without . and ..); -1 when it cannot be read.  Each name
 * is printed to stderr after prefix when prefix is not NULL. */
static inline int test_dir_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (prefix) fprintf(stderr, "%s%s/%s\n", prefix, dir, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* Makes a fresh, empty folder "<run folder>/<tag>-XXXXXX" and writes its path into buf. */
static inline void test_tmpdir_make(char *buf, size_t n, const char *tag)
{
    const char *root = getenv("ASYMBP_TEST_TMP");
    if (!root || !*root) root = getenv("TMPDIR");
    if (!root || !*root) root = "/tmp";
    ck_assert_int_lt(snprintf(buf, n, "%s/%s-XXXXXX", root, tag), (int)n);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* Removes a folder made by test_tmpdir_make with everything in it. */
static inline void test_tmpdir_remove(const char *dir)
{
    ck_assert_int_eq(test_rm_tree(dir), 0);
}

#endif
