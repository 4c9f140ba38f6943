/* asymbp/tensor.h - float32 tensors of 1 to 4 dimensions (NCHW), with 64-byte aligned storage. */
#ifndef ASYMBP_TENSOR_H
#define ASYMBP_TENSOR_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#ifdef __cplusplus
extern "C" {
#endif

#define ASYMBP_TENSOR_MAX_DIMS 4
#define ASYMBP_TENSOR_ALIGN 64

typedef struct asymbp_tensor asymbp_tensor_t;

/* Create a zero-filled tensor of ndim (1..4) dimensions, each >= 1, whose element count and
 * byte size fit in size_t.  ctx: borrowed, must outlive the tensor.  out: owned by the caller
 * (asymbp_tensor_destroy), NULL on failure.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL
 * argument, ndim out of range), ASYMBP_E_SHAPE (a dimension < 1, or the size overflows),
 * ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_create(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, asymbp_tensor_t **out);
/* Wrap caller memory (not copied; it stays the caller's and must outlive the tensor; any
 * alignment of float is accepted).  Same status codes as create.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_wrap(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, float *data, asymbp_tensor_t **out);
/* A view of src's storage: `offset` elements in, with a new shape whose element count plus
 * offset must not exceed src's (ASYMBP_E_SHAPE otherwise).  The view borrows src's storage:
 * destroy it before src.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_view(const asymbp_tensor_t *src, size_t offset, int ndim, const int64_t *shape,
                   asymbp_tensor_t **out);
/* Destroy (NULL accepted).  Frees the storage only when the tensor owns it.  Since 0.1. */
ASYMBP_API void asymbp_tensor_destroy(asymbp_tensor_t *t);

/* Shape queries: ndim 0 and dim/numel 0 for a NULL tensor or an index out of range.  Since 0.1. */
ASYMBP_API int asymbp_tensor_ndim(const asymbp_tensor_t *t);
ASYMBP_API int64_t asymbp_tensor_dim(const asymbp_tensor_t *t, int i);
ASYMBP_API size_t asymbp_tensor_numel(const asymbp_tensor_t *t);
/* Write ndim dimensions into shape (at least ASYMBP_TENSOR_MAX_DIMS slots); returns ndim. */
ASYMBP_API int asymbp_tensor_shape(const asymbp_tensor_t *t, int64_t *shape);
/* Borrowed pointer to the elements (row-major); NULL for a NULL tensor.  Since 0.1. */
ASYMBP_API float *asymbp_tensor_data(asymbp_tensor_t *t);
ASYMBP_API const float *asymbp_tensor_data_const(const asymbp_tensor_t *t);

/* Set every element to value.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_tensor_fill(asymbp_tensor_t *t, float value);
/* Copy src's elements into dst: the element counts must match (ASYMBP_E_SHAPE, with both
 * counts in the context's last error).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_tensor_copy(asymbp_tensor_t *dst, const asymbp_tensor_t *src);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_TENSOR_H */
