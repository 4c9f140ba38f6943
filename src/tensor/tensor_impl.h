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

#endif
