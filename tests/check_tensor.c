/* Tensors: create / wrap / view / shape / fill / copy, misuse, allocation failure, GEMM wrapper. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "tensor/tensor_impl.h"

START_TEST(test_tensor_create_shape)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_tensor_t *t = NULL;
    int64_t shape[4] = {2, 3, 4, 5}, got[4];
    ck_assert_int_eq(asymbp_tensor_create(ctx, 4, shape, &t), ASYMBP_OK);
    ck_assert_int_eq(asymbp_tensor_ndim(t), 4);
    ck_assert_int_eq(asymbp_tensor_dim(t, 2), 4);
    ck_assert_int_eq(asymbp_tensor_dim(t, 4), 0);
    ck_assert_int_eq(asymbp_tensor_dim(t, -1), 0);
    ck_assert_uint_eq(asymbp_tensor_numel(t), 120);
    ck_assert_int_eq(asymbp_tensor_shape(t, got), 4);
    ck_assert_mem_eq(got, shape, sizeof shape);
    float *d = asymbp_tensor_data(t);
    for (int i = 0; i < 120; i++) ck_assert_float_eq(d[i], 0.0f);
    ck_assert_uint_eq((uintptr_t)d % ASYMBP_TENSOR_ALIGN, 0);
    ck_assert_int_eq(asymbp_tensor_fill(t, 2.5f), ASYMBP_OK);
    for (int i = 0; i < 120; i++) ck_assert_float_eq(d[i], 2.5f);
    asymbp_tensor_destroy(t);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_tensor_wrap_view_copy)
{
    asymbp_ctx_t *ctx = test_ctx();
    float buf[12];
    int64_t shape[2] = {3, 4}, vshape[1] = {4}, small[1] = {5};
    asymbp_tensor_t *w = NULL, *v = NULL, *c = NULL, *s = NULL;
    for (int i = 0; i < 12; i++) buf[i] = (float)i;
    ck_assert_int_eq(asymbp_tensor_wrap(ctx, 2, shape, buf, &w), ASYMBP_OK);
    ck_assert_ptr_eq(asymbp_tensor_data(w), buf);
    ck_assert_int_eq(asymbp_tensor_view(w, 4, 1, vshape, &v), ASYMBP_OK);
    ck_assert_float_eq(asymbp_tensor_data(v)[0], 4.0f);
    ck_assert_int_eq(asymbp_tensor_fill(v, -1.0f), ASYMBP_OK);
    ck_assert_float_eq(buf[4], -1.0f);
    ck_assert_float_eq(buf[7], -1.0f);
    ck_assert_float_eq(buf[8], 8.0f);
    asymbp_tensor_destroy(v);
    /* a view past the end is refused and names the sizes */
    ck_assert_int_eq(asymbp_tensor_view(w, 9, 1, vshape, &v), ASYMBP_E_SHAPE);
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "exceeds"));
    ck_assert_int_eq(asymbp_tensor_create(ctx, 2, shape, &c), ASYMBP_OK);
    ck_assert_int_eq(asymbp_tensor_copy(c, w), ASYMBP_OK);
    ck_assert_mem_eq(asymbp_tensor_data(c), buf, sizeof buf);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 1, small, &s), ASYMBP_OK);
    ck_assert_int_eq(asymbp_tensor_copy(s, w), ASYMBP_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "5 elements, source 12"));
    asymbp_tensor_destroy(s);
    asymbp_tensor_destroy(c);
    asymbp_tensor_destroy(w); /* wrapped memory is not freed */
    ck_assert_float_eq(buf[0], 0.0f);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_tensor_misuse)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_tensor_t *t = NULL;
    int64_t zero[2] = {3, 0}, neg[1] = {-2}, ok[1] = {3};
    int64_t huge[4] = {INT64_MAX / 2, 4, 4, 4}, big[2] = {(int64_t)1 << 40, (int64_t)1 << 30};
    ck_assert_int_eq(asymbp_tensor_create(NULL, 1, ok, &t), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 1, ok, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 1, NULL, &t), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 0, ok, &t), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 5, ok, &t), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "ndim"));
    ck_assert_int_eq(asymbp_tensor_create(ctx, 2, zero, &t), ASYMBP_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "dimension 1 is 0"));
    ck_assert_int_eq(asymbp_tensor_create(ctx, 1, neg, &t), ASYMBP_E_SHAPE);
    ck_assert_int_eq(asymbp_tensor_create(ctx, 4, huge, &t), ASYMBP_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "overflows"));
    ck_assert_int_eq(asymbp_tensor_create(ctx, 2, big, &t), ASYMBP_E_SHAPE);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(asymbp_tensor_wrap(ctx, 1, ok, NULL, &t), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_view(NULL, 0, 1, ok, &t), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_fill(NULL, 1.0f), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_tensor_copy(NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_ptr_null(asymbp_tensor_data(NULL));
    ck_assert_uint_eq(asymbp_tensor_numel(NULL), 0);
    ck_assert_int_eq(asymbp_tensor_ndim(NULL), 0);
    asymbp_tensor_destroy(NULL);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_tensor_oom)
{
    /* Fail the k-th allocation (after the context's own) for every k: NOMEM, no leak. */
    int64_t shape[3] = {2, 3, 4};
    for (long k = 1;; k++) {
        test_alloc_t ta = {0, 0, 0};
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_tensor_t *t = NULL, *v = NULL;
        asymbp_status_t st;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ta.fail_at = ta.calls + k;
        st = asymbp_tensor_create(ctx, 3, shape, &t);
        if (st == ASYMBP_OK) st = asymbp_tensor_view(t, 0, 1, shape, &v);
        if (st == ASYMBP_OK) {
            asymbp_tensor_destroy(v);
            asymbp_tensor_destroy(t);
            asymbp_ctx_destroy(ctx);
            ck_assert_int_eq(ta.live, 0);
            ck_assert_int_eq(k, 4); /* header + data + view header succeeded at the 4th try */
            break;
        }
        ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "out of memory"));
        asymbp_tensor_destroy(v);
        asymbp_tensor_destroy(t);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
    }
}
END_TEST

START_TEST(test_sgemm_wrapper)
{
    /* C = A^T B with A 3x2 stored as 2x3 rows, checked against a naive loop */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, -1, 2, 0, 0.5f, 3}, c[9] = {0};
    for (int i = 0; i < 9; i++) c[i] = 1.0f;
    asymbp__sgemm(1, 0, 3, 3, 2, 2.0f, a, 3, b, 3, 1.0f, c, 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double ref = 1.0;
            for (int k = 0; k < 2; k++) ref += 2.0 * a[k * 3 + i] * b[k * 3 + j];
            ck_assert_double_eq_tol(c[i * 3 + j], ref, 1e-5);
        }
}
END_TEST

/* The own GEMM kernels against a naive double loop, for every ISA this CPU runs: odd sizes (row
 * and column edges of the tiles), several k blocks, accumulation, k = 0, both packings of A and A
 * read in place; and
 * every ISA gives the same bits as the portable kernel. */
static void gemm_case(size_t m, size_t n, size_t k, int trans, int accumulate)
{
    size_t lda = trans ? m + 3 : k + 5, ldb = n + 2, ldc = n + 7;
    float *a = calloc((trans ? k : m) * lda + 1, sizeof(float)), *b = calloc(k * ldb + 1, sizeof(float));
    float *ap = calloc(asymbp__gemm_pack_size(ASYMBP__ISA_AVX512, m, k) + 1, sizeof(float));
    float *c0 = calloc(m * ldc, sizeof(float)), *c = calloc(m * ldc, sizeof(float)), *ref = NULL;
    uint32_t st = (uint32_t)(m * 131 + n * 17 + k);
    int checked = 0;
    for (size_t i = 0; i < (trans ? k : m) * lda; i++) { st = st * 1664525u + 1013904223u; a[i] = (float)(st >> 8) / 16777216.0f - 0.5f; }
    for (size_t i = 0; i < k * ldb; i++) { st = st * 1664525u + 1013904223u; b[i] = (float)(st >> 8) / 16777216.0f - 0.5f; }
    for (size_t i = 0; i < m * ldc; i++) c0[i] = (float)(i % 7) - 3.0f;
    for (int isa = ASYMBP__ISA_GENERIC; isa <= ASYMBP__ISA_AVX512; isa++) {
        if (!asymbp__gemm_isa_supported(isa)) continue;
        memcpy(c, c0, m * ldc * sizeof(float));
        asymbp__gemm_pack_a(isa, trans, m, k, a, lda, ap);
        asymbp__gemm_packed(isa, m, n, k, ap, b, ldb, accumulate, c, ldc);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < ldc; j++) {
                double r = accumulate || j >= n ? c0[i * ldc + j] : 0.0, mag = fabs(r);
                if (j < n)
                    for (size_t q = 0; q < k; q++) {
                        double t = (double)(trans ? a[q * lda + i] : a[i * lda + q]) * b[q * ldb + j];
                        r += t;
                        mag += fabs(t);
                    }
                if (fabs(c[i * ldc + j] - r) > 1e-6 * (1.0 + mag))
                    ck_abort_msg("gemm %s m %zu n %zu k %zu trans %d acc %d: C[%zu][%zu] = %g, expected %g",
                                 asymbp__gemm_isa_name(isa), m, n, k, trans, accumulate, i, j, c[i * ldc + j], r);
            }
        if (!trans) {
            /* A read in place: the same bits as packed */
            float *c2 = malloc(m * ldc * sizeof(float));
            memcpy(c2, c0, m * ldc * sizeof(float));
            asymbp__gemm_rows(isa, m, n, k, a, lda, b, ldb, accumulate, c2, ldc);
            if (memcmp(c2, c, m * ldc * sizeof(float)) != 0)
                ck_abort_msg("gemm_rows %s differs from packed (m %zu n %zu k %zu)", asymbp__gemm_isa_name(isa), m, n, k);
            free(c2);
        }
        if (!ref) {
            ref = malloc(m * ldc * sizeof(float));
            memcpy(ref, c, m * ldc * sizeof(float));
        } else if (memcmp(ref, c, m * ldc * sizeof(float)) != 0) {
            ck_abort_msg("gemm %s differs in bits from the portable kernel (m %zu n %zu k %zu)", asymbp__gemm_isa_name(isa), m, n, k);
        }
        checked++;
    }
    ck_assert_int_ge(checked, 1);
    free(a); free(b); free(ap); free(c0); free(c); free(ref);
}

START_TEST(test_gemm_kernels)
{
    static const size_t sz[][3] = { {1, 1, 1}, {12, 32, 8}, {13, 33, 7}, {5, 17, 300}, {32, 196, 800}, {25, 9, 513},
                                    {7, 100, 0}, {100, 40, 64}, {3, 8, 2}, {6, 16, 257} };
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int trans = 0; trans < 2; trans++)
            for (int acc = 0; acc < 2; acc++) gemm_case(sz[i][0], sz[i][1], sz[i][2], trans, acc);
    ck_assert_int_ge(asymbp__gemm_isa(), 0);
    ck_assert_str_ne(asymbp__gemm_isa_name(asymbp__gemm_isa()), "");
}
END_TEST

START_TEST(test_transpose)
{
    /* 8 x 8 blocks (vectorised) and the edges: 19 x 17 of a 20-wide array into 17 x 19 of a 22-wide one */
    float src[19 * 20], dst[18 * 22];
    for (int i = 0; i < 19 * 20; i++) src[i] = (float)i;
    for (int i = 0; i < 18 * 22; i++) dst[i] = -1.0f;
    asymbp__transpose(19, 17, src, 20, dst, 22);
    for (int r = 0; r < 19; r++)
        for (int c = 0; c < 17; c++) ck_assert_float_eq(dst[c * 22 + r], src[r * 20 + c]);
    for (int c = 0; c < 17; c++)
        for (int r = 19; r < 22; r++) ck_assert_float_eq(dst[c * 22 + r], -1.0f);
    ck_assert_float_eq(dst[17 * 22], -1.0f);
}
END_TEST

Suite *asymbp_test_tensor_suite(void);
Suite *asymbp_test_tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tensor");
    tcase_add_test(tc, test_tensor_create_shape);
    tcase_add_test(tc, test_tensor_wrap_view_copy);
    tcase_add_test(tc, test_tensor_misuse);
    tcase_add_test(tc, test_tensor_oom);
    tcase_add_test(tc, test_sgemm_wrapper);
    tcase_add_test(tc, test_gemm_kernels);
    tcase_add_test(tc, test_transpose);
    suite_add_tcase(s, tc);
    return s;
}
