/* Shared helpers for the Check suites: a counting / failing allocator and tolerances. */
#ifndef ASYMBP_TEST_UTIL_H
#define ASYMBP_TEST_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
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

#endif
