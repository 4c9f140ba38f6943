/* Core: version, status tables, context (allocator, seed, threads, log, last error), RNG. */
#include <string.h>
#include <pthread.h>
#include "test_util.h"
#include "core/core_impl.h"

START_TEST(test_version)
{
    char buf[32];
    ck_assert_str_eq(asymbp_version_string(), ASYMBP_VERSION_STRING);
    ck_assert_int_eq(asymbp_version_number(), ASYMBP_VERSION_NUMBER);
    snprintf(buf, sizeof buf, "%d.%d.%d", ASYMBP_VERSION_MAJOR, ASYMBP_VERSION_MINOR, ASYMBP_VERSION_PATCH);
    ck_assert_str_eq(buf, ASYMBP_VERSION_STRING);
}
END_TEST

START_TEST(test_status_tables)
{
    ck_assert_int_eq(ASYMBP_OK, 0);
    ck_assert_int_eq(ASYMBP_E_INVALID, -1);
    ck_assert_int_eq(ASYMBP_E_NOMEM, -2);
    ck_assert_int_eq(ASYMBP_E_SHAPE, -3);
    ck_assert_int_eq(ASYMBP_E_IO, -7);
    ck_assert_int_eq(ASYMBP_E_FORMAT, -8);
    ck_assert_int_eq(ASYMBP_E_DIVERGED, -9);
    ck_assert_str_eq(asymbp_status_name(ASYMBP_E_SHAPE), "ASYMBP_E_SHAPE");
    ck_assert_str_eq(asymbp_status_name(ASYMBP_OK), "ASYMBP_OK");
    ck_assert_str_eq(asymbp_status_name(ASYMBP_E_DIVERGED), "ASYMBP_E_DIVERGED");
    ck_assert_str_eq(asymbp_status_name((asymbp_status_t)-999), "ASYMBP_E_UNKNOWN");
    ck_assert_str_eq(asymbp_status_name((asymbp_status_t)5), "ASYMBP_E_UNKNOWN");
    ck_assert_str_eq(asymbp_strerror((asymbp_status_t)-999), "unknown status");
    ck_assert_str_eq(asymbp_strerror(ASYMBP_E_NOMEM), "out of memory");
    ck_assert_int_eq(ASYMBP_E_COMM, -12);
    ck_assert_str_eq(asymbp_status_name(ASYMBP_E_COMM), "ASYMBP_E_COMM");
    for (int s = 0; s >= ASYMBP_E_COMM; s--) {
        ck_assert_ptr_nonnull(asymbp_strerror((asymbp_status_t)s));
        ck_assert_str_ne(asymbp_status_name((asymbp_status_t)s), "ASYMBP_E_UNKNOWN");
    }
}
END_TEST

START_TEST(test_ctx_basics)
{
    asymbp_ctx_t *ctx = NULL;
    ck_assert_int_eq(asymbp_ctx_create(NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_ctx_create(NULL, &ctx), ASYMBP_OK);
    ck_assert_str_eq(asymbp_ctx_last_error(ctx), "");
    ck_assert_int_eq(asymbp_ctx_get_threads(ctx), 1);
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 0), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "thread count"));
    ck_assert_int_eq(asymbp_ctx_last_status(ctx), ASYMBP_E_INVALID);
    asymbp_ctx_clear_error(ctx);
    ck_assert_str_eq(asymbp_ctx_last_error(ctx), "");
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 42), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_ctx_get_seed(ctx), 42);
    ck_assert_int_eq(asymbp_ctx_set_seed(NULL, 1), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_ctx_set_threads(NULL, 1), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(asymbp_ctx_last_error(NULL));
    asymbp_ctx_destroy(ctx);
    asymbp_ctx_destroy(NULL);
    /* the BLAS in use is the one the build asked for (ASYMBP_EXPECT_BLAS set by .ci/run) */
    ck_assert(strcmp(asymbp_blas_name(), "openblas") == 0 || strcmp(asymbp_blas_name(), "cblas") == 0);
    if (getenv("ASYMBP_EXPECT_BLAS")) ck_assert_str_eq(asymbp_blas_name(), getenv("ASYMBP_EXPECT_BLAS"));
}
END_TEST

/* The worker pool: every index of a range is visited exactly once, in the pieces the header
 * promises (piece t = [n t / P, n (t + 1) / P) on thread index t), pieces other than 0 run on
 * other OS threads, a nested call runs serially, and the pool's memory comes and goes with
 * the setting. */
typedef struct par_rec {
    size_t n;
    int *hits;
    int piece_of[64];
    size_t begin[64], end[64];
    pthread_t who[64];
    int nested;
    asymbp_ctx_t *ctx;
} par_rec_t;

static void par_fn(void *arg, size_t b, size_t e, int t)
{
    par_rec_t *r = arg;
    r->begin[t] = b;
    r->end[t] = e;
    r->who[t] = pthread_self();
    for (size_t i = b; i < e; i++) r->hits[i]++;
}

static void par_inner(void *arg, size_t b, size_t e, int t)
{
    (void)arg; (void)b; (void)e; (void)t;
}

static void par_nested(void *arg, size_t b, size_t e, int t)
{
    par_rec_t *r = arg;
    (void)b; (void)e;
    if (t == 0) r->nested = asymbp__parallel(r->ctx, 100, 8, par_inner, NULL);
}

START_TEST(test_ctx_threads_pool)
{
    test_alloc_t ta = {0, 0, 0};
    asymbp_allocator_t a = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    const int thread_counts[] = {1, 2, 3, 5};
    const size_t sizes[] = {0, 1, 2, 3, 7, 1000};
    int hits[1000];
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    for (size_t k = 0; k < sizeof thread_counts / sizeof thread_counts[0]; k++) {
        int T = thread_counts[k];
        ck_assert_int_eq(asymbp_ctx_set_threads(ctx, T), ASYMBP_OK);
        ck_assert_int_eq(asymbp_ctx_get_threads(ctx), T);
        ck_assert((T > 1) == (ctx->pool != NULL));   /* the workers exist exactly when T > 1 */
        for (size_t m = 0; m < sizeof sizes / sizeof sizes[0]; m++) {
            for (int cap = 1; cap <= 6; cap += 5) {   /* max_threads 1 and 6 */
                par_rec_t r;
                size_t n = sizes[m];
                int want = cap < T ? cap : T, P;
                memset(&r, 0, sizeof r);
                memset(hits, 0, sizeof hits);
                r.n = n;
                r.hits = hits;
                if ((size_t)want > n) want = n ? (int)n : 1;
                P = asymbp__parallel(ctx, n, cap, par_fn, &r);
                ck_assert_int_eq(P, want);
                for (size_t i = 0; i < n; i++) ck_assert_int_eq(hits[i], 1);
                for (int t = 0; n && t < P; t++) {
                    ck_assert_uint_eq(r.begin[t], n * (size_t)t / (size_t)P);
                    ck_assert_uint_eq(r.end[t], n * (size_t)(t + 1) / (size_t)P);
                    if (t == 0) ck_assert(pthread_equal(r.who[t], pthread_self()));
                    else ck_assert(!pthread_equal(r.who[t], pthread_self()));
                }
            }
        }
        {
            par_rec_t r;
            memset(&r, 0, sizeof r);
            r.ctx = ctx;
            r.nested = -1;
            asymbp__parallel(ctx, 10, 8, par_nested, &r);
            ck_assert_int_eq(r.nested, 1);
        }
    }
    /* many small jobs in a row (the hand-off under repetition) */
    {
        par_rec_t r;
        memset(&r, 0, sizeof r);
        memset(hits, 0, sizeof hits);
        r.hits = hits;
        ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 2), ASYMBP_OK);
        for (int it = 0; it < 20000; it++) asymbp__parallel(ctx, 1000, 2, par_fn, &r);
        for (size_t i = 0; i < 1000; i++) ck_assert_int_eq(hits[i], 20000);
    }
    ck_assert_int_gt(ta.live, 1);   /* the pool's memory */
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 1), ASYMBP_OK);
    ck_assert_int_eq(ta.live, 1);   /* only the context */
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 4), ASYMBP_OK);
    asymbp_ctx_destroy(ctx);        /* stops and frees the workers */
    ck_assert_int_eq(ta.live, 0);
    /* out of memory while starting the pool: the old setting stays */
    ta.calls = 0;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    ta.fail_at = ta.calls + 1;
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, 3), ASYMBP_E_NOMEM);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "threads"));
    ck_assert_int_eq(asymbp_ctx_get_threads(ctx), 1);
    ta.fail_at = 0;
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

START_TEST(test_ctx_allocator)
{
    test_alloc_t ta = {0, 0, 0};
    asymbp_allocator_t a = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_tensor_t *t = NULL;
    int64_t shape[2] = {3, 4};
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    ck_assert_int_ge(ta.calls, 1);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 2, shape, &t), ASYMBP_OK);
    ck_assert_int_eq(ta.live, 3); /* context, tensor header, tensor data */
    ck_assert_uint_eq((uintptr_t)asymbp_tensor_data(t) % ASYMBP_TENSOR_ALIGN, 0);
    asymbp_tensor_destroy(t);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
    /* an allocator without functions, or from a smaller struct than version 1, is refused */
    a.alloc = NULL;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_E_INVALID);
    a = test_allocator(&ta);
    a.struct_size = sizeof(size_t);
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_E_INVALID);
    ck_assert_ptr_null(ctx);
}
END_TEST

START_TEST(test_ctx_oom)
{
    /* Fail the k-th allocation for every k: ASYMBP_E_NOMEM and nothing leaked. */
    for (long k = 1;; k++) {
        test_alloc_t ta = {0, 0, k};
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_status_t st = asymbp_ctx_create(&a, &ctx);
        if (st == ASYMBP_OK) {
            asymbp_ctx_destroy(ctx);
            ck_assert_int_eq(ta.live, 0);
            ck_assert_int_gt(k, 1);
            break;
        }
        ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        ck_assert_ptr_null(ctx);
        ck_assert_int_eq(ta.live, 0);
    }
}
END_TEST

static int log_count;
static void count_log(void *user, asymbp_log_level_t level, const char *msg)
{
    (void)level;
    (void)msg;
    *(int *)user += 1;
}

START_TEST(test_ctx_log)
{
    asymbp_ctx_t *ctx = test_ctx();
    log_count = 0;
    ck_assert_int_eq(asymbp_ctx_set_log(ctx, count_log, &log_count, ASYMBP_LOG_DEBUG), ASYMBP_OK);
    ck_assert_int_eq(log_count, 1); /* the set-up summary */
    ck_assert_int_eq(asymbp_ctx_set_log(NULL, count_log, &log_count, ASYMBP_LOG_DEBUG), ASYMBP_E_INVALID);
    /* every recorded error is sent once */
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, -3), ASYMBP_E_INVALID);
    ck_assert_int_eq(log_count, 2);
    ck_assert_int_eq(asymbp_ctx_set_log(ctx, count_log, &log_count, (asymbp_log_level_t)4), ASYMBP_E_INVALID);
    ck_assert_int_eq(log_count, 3);
    ck_assert_int_eq(asymbp_ctx_set_log(ctx, NULL, NULL, ASYMBP_LOG_ERROR), ASYMBP_OK);
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, -3), ASYMBP_E_INVALID);
    ck_assert_int_eq(log_count, 3);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Reference PCG32 outputs: pcg32_srandom(42, 54) gives this sequence in the PCG paper's demo. */
START_TEST(test_rng_reference_stream)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_rng_t *r = NULL;
    static const uint32_t expect[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u, 0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    ck_assert_int_eq(asymbp_rng_create(ctx, 42, 54, &r), ASYMBP_OK);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(asymbp_rng_u32(r), expect[i]);
    asymbp_rng_destroy(r);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_rng_state_split_distributions)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_rng_t *a = NULL, *b = NULL, *c1 = NULL, *c2 = NULL;
    uint64_t st[2];
    double sum = 0, sum2 = 0, usum = 0;
    const int n = 200000;
    ck_assert_int_eq(asymbp_rng_create(ctx, 7, 0, &a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_rng_create(ctx, 7, 0, &b), ASYMBP_OK);
    /* same seed: same stream; state round trip */
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(asymbp_rng_u32(a), asymbp_rng_u32(b));
    ck_assert_int_eq(asymbp_rng_get_state(a, st), ASYMBP_OK);
    uint32_t next = asymbp_rng_u32(a);
    ck_assert_int_eq(asymbp_rng_set_state(b, st), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_rng_u32(b), next);
    st[1] = 2;
    ck_assert_int_eq(asymbp_rng_set_state(b, st), ASYMBP_E_INVALID);
    /* split streams differ from each other */
    ck_assert_int_eq(asymbp_rng_split(a, 1, &c1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_rng_split(a, 2, &c2), ASYMBP_OK);
    int same = 0;
    for (int i = 0; i < 64; i++) same += asymbp_rng_u32(c1) == asymbp_rng_u32(c2);
    ck_assert_int_lt(same, 3);
    /* moments of uniform and normal draws */
    for (int i = 0; i < n; i++) {
        float u = asymbp_rng_uniform(a);
        ck_assert(u >= 0.0f && u < 1.0f);
        usum += u;
        double z = asymbp_rng_normal(a);
        sum += z;
        sum2 += z * z;
    }
    ck_assert_double_lt(fabs(usum / n - 0.5), 0.005);
    ck_assert_double_lt(fabs(sum / n), 0.01);
    ck_assert_double_lt(fabs(sum2 / n - 1.0), 0.02);
    /* below(n) stays in range and hits every value */
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t v = asymbp_rng_below(a, 7);
        ck_assert_uint_lt(v, 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++) ck_assert_int_gt(seen[i], 800);
    ck_assert_uint_eq(asymbp_rng_below(a, 0), 0);
    asymbp_rng_destroy(a);
    asymbp_rng_destroy(b);
    asymbp_rng_destroy(c1);
    asymbp_rng_destroy(c2);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_rng_misuse)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_rng_t *r = NULL;
    uint64_t st[2];
    ck_assert_int_eq(asymbp_rng_create(ctx, 1, 1, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_rng_create(NULL, 1, 1, &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_rng_split(NULL, 1, &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_rng_get_state(NULL, st), ASYMBP_E_INVALID);
    ck_assert_uint_eq(asymbp_rng_u32(NULL), 0);
    asymbp_rng_destroy(NULL);
    asymbp_ctx_destroy(ctx);
}
END_TEST

Suite *asymbp_test_core_suite(void);
Suite *asymbp_test_core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_status_tables);
    tcase_add_test(tc, test_ctx_basics);
    tcase_add_test(tc, test_ctx_allocator);
    tcase_add_test(tc, test_ctx_threads_pool);
    tcase_add_test(tc, test_ctx_oom);
    tcase_add_test(tc, test_ctx_log);
    tcase_add_test(tc, test_rng_reference_stream);
    tcase_add_test(tc, test_rng_state_split_distributions);
    tcase_add_test(tc, test_rng_misuse);
    suite_add_tcase(s, tc);
    return s;
}
