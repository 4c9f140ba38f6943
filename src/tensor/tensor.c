/* float32 tensors and the CBLAS GEMM wrapper. */
#include <string.h>
#include "core/core_impl.h"
#include "tensor/tensor_impl.h"

asymbp_status_t asymbp__shape_check(asymbp_ctx_t *ctx, const char *who, int ndim, const int64_t *shape, size_t *numel)
{
    size_t n = 1, bytes;
    int i;
    if (!shape) return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: shape is NULL", who);
    if (ndim < 1 || ndim > ASYMBP_TENSOR_MAX_DIMS)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: ndim must be 1..%d, got %d", who, ASYMBP_TENSOR_MAX_DIMS, ndim);
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return asymbp__error(ctx, ASYMBP_E_SHAPE, "%s: dimension %d is %lld, must be >= 1", who, i, (long long)shape[i]);
        if ((uint64_t)shape[i] > (uint64_t)((size_t)-1) || asymbp__mul_size(n, (size_t)shape[i], &n) != 0)
            return asymbp__error(ctx, ASYMBP_E_SHAPE, "%s: element count overflows at dimension %d", who, i);
    }
    if (asymbp__mul_size(n, sizeof(float), &bytes) != 0)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "%s: byte size of %zu elements overflows", who, n);
    *numel = n;
    return ASYMBP_OK;
}

static asymbp_status_t tensor_new(asymbp_ctx_t *ctx, const char *who, int ndim, const int64_t *shape,
                                  asymbp_tensor_t **out, asymbp_tensor_t **t_out)
{
    size_t numel;
    asymbp_status_t st;
    asymbp_tensor_t *t;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: out is NULL", who);
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    st = asymbp__shape_check(ctx, who, ndim, shape, &numel);
    if (st != ASYMBP_OK) return st;
    t = asymbp__alloc(ctx, sizeof *t);
    if (!t) return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory for the tensor header", who);
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    *t_out = t;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_tensor_create(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, asymbp_tensor_t **out)
{
    asymbp_tensor_t *t = NULL;
    asymbp_status_t st = tensor_new(ctx, "tensor_create", ndim, shape, out, &t);
    if (st != ASYMBP_OK) return st;
    t->data = asymbp__calloc(ctx, t->numel, sizeof(float));
    if (!t->data) {
        size_t numel = t->numel;
        asymbp__free(ctx, t);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "tensor_create: out of memory for %zu floats", numel);
    }
    t->owns = 1;
    *out = t;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_tensor_wrap(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, float *data, asymbp_tensor_t **out)
{
    asymbp_tensor_t *t = NULL;
    asymbp_status_t st;
    if (!data) {
        if (out) *out = NULL;
        return asymbp__error(ctx, ASYMBP_E_INVALID, "tensor_wrap: data is NULL");
    }
    st = tensor_new(ctx, "tensor_wrap", ndim, shape, out, &t);
    if (st != ASYMBP_OK) return st;
    t->data = data;
    *out = t;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_tensor_view(const asymbp_tensor_t *src, size_t offset, int ndim, const int64_t *shape,
                                   asymbp_tensor_t **out)
{
    asymbp_tensor_t *t = NULL;
    asymbp_status_t st;
    if (!src) {
        if (out) *out = NULL;
        return ASYMBP_E_INVALID;
    }
    st = tensor_new(src->ctx, "tensor_view", ndim, shape, out, &t);
    if (st != ASYMBP_OK) return st;
    if (offset > src->numel || t->numel > src->numel - offset) {
        size_t need = t->numel;
        asymbp__free(src->ctx, t);
        return asymbp__error(src->ctx, ASYMBP_E_SHAPE,
                             "tensor_view: offset %zu + %zu elements exceeds the source's %zu", offset, need, src->numel);
    }
    t->data = src->data + offset;
    *out = t;
    return ASYMBP_OK;
}

void asymbp_tensor_destroy(asymbp_tensor_t *t)
{
    if (!t) return;
    if (t->owns) asymbp__free(t->ctx, t->data);
    asymbp__free(t->ctx, t);
}

int asymbp_tensor_ndim(const asymbp_tensor_t *t) { return t ? t->ndim : 0; }
int64_t asymbp_tensor_dim(const asymbp_tensor_t *t, int i) { return (t && i >= 0 && i < t->ndim) ? t->shape[i] : 0; }
size_t asymbp_tensor_numel(const asymbp_tensor_t *t) { return t ? t->numel : 0; }
float *asymbp_tensor_data(asymbp_tensor_t *t) { return t ? t->data : NULL; }
const float *asymbp_tensor_data_const(const asymbp_tensor_t *t) { return t ? t->data : NULL; }

int asymbp_tensor_shape(const asymbp_tensor_t *t, int64_t *shape)
{
    if (!t || !shape) return 0;
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    return t->ndim;
}

asymbp_status_t asymbp_tensor_fill(asymbp_tensor_t *t, float value)
{
    size_t i;
    if (!t) return ASYMBP_E_INVALID;
    for (i = 0; i < t->numel; i++) t->data[i] = value;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_tensor_copy(asymbp_tensor_t *dst, const asymbp_tensor_t *src)
{
    if (!dst || !src) return dst ? asymbp__error(dst->ctx, ASYMBP_E_INVALID, "tensor_copy: src is NULL") : ASYMBP_E_INVALID;
    if (dst->numel != src->numel)
        return asymbp__error(dst->ctx, ASYMBP_E_SHAPE, "tensor_copy: destination has %zu elements, source %zu",
                             dst->numel, src->numel);
    if (dst->data != src->data) memmove(dst->data, src->data, src->numel * sizeof(float));
    return ASYMBP_OK;
}

void asymbp__sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    if (m == 0 || n == 0) return;
    cblas_sgemm(AsymbpRowMajor, trans_a ? AsymbpTrans : AsymbpNoTrans, trans_b ? AsymbpTrans : AsymbpNoTrans,
                (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}
