/* Private: bodies of tensors and RNGs, BLAS prototypes and helpers used by the upper layers. */
#ifndef ASYMBP_TENSOR_IMPL_H
#define ASYMBP_TENSOR_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/tensor.h"
#include "asymbp/rng.h"

struct asymbp_tensor {
    asymbp_ctx_t *ctx;
    int ndim;
    int64_t shape[ASYMBP_TENSOR_MAX_DIMS];
    size_t numel;
    float *data;
    int owns;           /* 1: data was allocated by the tensor and is freed with it */
};

struct asymbp_rng {
    asymbp_ctx_t *ctx;  /* NULL for an RNG embedded in another object's storage */
    uint64_t state;
    uint64_t inc;
};

/* RNG on a struct the caller holds (embedded in layers, policies, trainers: no allocation). */
void asymbp__rng_seed(asymbp_rng_t *r, uint64_t seed, uint64_t stream);
uint32_t asymbp__rng_u32(asymbp_rng_t *r);
/* Move the stream delta draws of asymbp__rng_u32 ahead (uniform takes one draw) in O(log delta):
 * the LCG's jump-ahead by repeated squaring of its affine step. */
void asymbp__rng_advance(asymbp_rng_t *r, uint64_t delta);
float asymbp__rng_uniform(asymbp_rng_t *r);
float asymbp__rng_normal(asymbp_rng_t *r);
uint32_t asymbp__rng_below(asymbp_rng_t *r, uint32_t n);

/* Validate a shape: ndim in 1..4, dims >= 1, element count and bytes fit size_t. */
asymbp_status_t asymbp__shape_check(asymbp_ctx_t *ctx, const char *who, int ndim, const int64_t *shape, size_t *numel);

/* The CBLAS entry points asymbp uses, declared here so no <cblas.h> (whose location differs
 * between OpenBLAS and the reference CBLAS) is needed.  The enum values are the standard ones. */
enum asymbp__cblas_order { AsymbpRowMajor = 101, AsymbpColMajor = 102 };
enum asymbp__cblas_trans { AsymbpNoTrans = 111, AsymbpTrans = 112 };
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                 const float *x, int incx, float beta, float *y, int incy);

/* Row-major C = alpha * op(A) op(B) + beta * C with A m x k (after op), B k x n (after op). */
void asymbp__sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* ---- asymbp's own GEMM kernels (gemm.c) ---------------------------------------------------------
 * C (m x n, row stride ldc) = A B, or C += A B with accumulate, where A (m x k) was packed with
 * asymbp__gemm_pack_a into panels of MR rows (asymbp__gemm_pack_size floats) and B (k x n) is
 * read in place, rows ldb apart.  Each element is one fused multiply-add chain over k in order
 * (restarted every block of at most 256 k), so every ISA gives the same bits.  isa: the value of
 * asymbp__gemm_isa() (the CPU's best; ASYMBP__ISA_NONE: no kernel, call CBLAS instead), or, in
 * tests, any ISA for which asymbp__gemm_isa_supported is 1. */
enum { ASYMBP__ISA_NONE = 0, ASYMBP__ISA_GENERIC = 1, ASYMBP__ISA_AVX2 = 2, ASYMBP__ISA_AVX512 = 3 };
int asymbp__gemm_isa(void);
int asymbp__gemm_isa_supported(int isa);
const char *asymbp__gemm_isa_name(int isa);
int asymbp__gemm_mr(int isa);
size_t asymbp__gemm_pack_size(int isa, size_t m, size_t k);
/* Pack op(A) (m x k): trans 0: A[i][kk] = a[i * lda + kk]; trans 1: a[kk * lda + i]. */
void asymbp__gemm_pack_a(int isa, int trans, size_t m, size_t k, const float *a, size_t lda, float *ap);
void asymbp__gemm_packed(int isa, size_t m, size_t n, size_t k, const float *ap, const float *b, size_t ldb,
                         int accumulate, float *c, size_t ldc);
/* The same with A (m x k) read in place, row i at a + i lda: the same bits as packing it. */
void asymbp__gemm_rows(int isa, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                       int accumulate, float *c, size_t ldc);
/* dst (cols x rows, row stride ldd) = transpose of src (rows x cols, row stride lds). */
void asymbp__transpose(size_t rows, size_t cols, const float *src, size_t lds, float *dst, size_t ldd);

#endif
