/** @file
 * @brief Float32 tensors of 1 to 4 dimensions (NCHW), with 64-byte aligned storage. */
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

/** The largest number of dimensions of a tensor. */
#define ASYMBP_TENSOR_MAX_DIMS 4
/** Alignment in bytes of the storage of a tensor the library allocates. */
#define ASYMBP_TENSOR_ALIGN 64

/** A tensor (opaque handle): created by asymbp_tensor_create(), asymbp_tensor_wrap() or
 * asymbp_tensor_view(), destroyed by asymbp_tensor_destroy(). */
typedef struct asymbp_tensor asymbp_tensor_t;

/** Create a zero-filled tensor of ndim (1..4) dimensions, each >= 1, whose element count and
 * byte size fit in size_t.
 * @param ctx borrowed, must outlive the tensor
 * @param ndim number of dimensions, 1..::ASYMBP_TENSOR_MAX_DIMS
 * @param shape ndim dimensions
 * @param out receives the tensor, owned by the caller (asymbp_tensor_destroy()), NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument, ndim out of range), ::ASYMBP_E_SHAPE (a
 *     dimension < 1, or the size overflows), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_create(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, asymbp_tensor_t **out);
/** Wrap caller memory in a tensor.
 * @param ctx borrowed, must outlive the tensor
 * @param ndim number of dimensions, 1..::ASYMBP_TENSOR_MAX_DIMS
 * @param shape ndim dimensions
 * @param data the elements: not copied; it stays the caller's and must outlive the tensor; any
 *     alignment of float is accepted
 * @param out receives the tensor, owned by the caller (asymbp_tensor_destroy())
 * @return the same status codes as asymbp_tensor_create()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_wrap(asymbp_ctx_t *ctx, int ndim, const int64_t *shape, float *data, asymbp_tensor_t **out);
/** A view of src's storage.  The view borrows src's storage: destroy it before src.
 * @param src the tensor viewed
 * @param offset elements into src's storage where the view starts
 * @param ndim number of dimensions of the view
 * @param shape the view's shape: its element count plus offset must not exceed src's
 * @param out receives the view, owned by the caller (asymbp_tensor_destroy())
 * @return ::ASYMBP_OK, ::ASYMBP_E_SHAPE (the view does not fit in src), or the status codes of
 *     asymbp_tensor_create()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_tensor_view(const asymbp_tensor_t *src, size_t offset, int ndim, const int64_t *shape,
                   asymbp_tensor_t **out);
/** Destroy a tensor.  Frees the storage only when the tensor owns it.
 * @param t the tensor (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_tensor_destroy(asymbp_tensor_t *t);

/** Number of dimensions.
 * @param t the tensor
 * @return ndim; 0 for a NULL tensor
 * @since 0.1 */
ASYMBP_API int asymbp_tensor_ndim(const asymbp_tensor_t *t);
/** One dimension.
 * @param t the tensor
 * @param i index of the dimension, 0..ndim-1
 * @return the dimension; 0 for a NULL tensor or an index out of range
 * @since 0.1 */
ASYMBP_API int64_t asymbp_tensor_dim(const asymbp_tensor_t *t, int i);
/** Number of elements.
 * @param t the tensor
 * @return the element count; 0 for a NULL tensor
 * @since 0.1 */
ASYMBP_API size_t asymbp_tensor_numel(const asymbp_tensor_t *t);
/** Write the ndim dimensions into shape.
 * @param t the tensor
 * @param shape at least ::ASYMBP_TENSOR_MAX_DIMS slots
 * @return ndim
 * @since 0.1 */
ASYMBP_API int asymbp_tensor_shape(const asymbp_tensor_t *t, int64_t *shape);
/** Borrowed pointer to the elements (row-major).
 * @param t the tensor
 * @return the elements; NULL for a NULL tensor
 * @since 0.1 */
ASYMBP_API float *asymbp_tensor_data(asymbp_tensor_t *t);
/** Read-only borrowed pointer to the elements (row-major).
 * @param t the tensor
 * @return the elements; NULL for a NULL tensor
 * @since 0.1 */
ASYMBP_API const float *asymbp_tensor_data_const(const asymbp_tensor_t *t);

/** Set every element to value.
 * @param t the tensor
 * @param value the value
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL tensor)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_tensor_fill(asymbp_tensor_t *t, float value);
/** Copy src's elements into dst.
 * @param dst the destination
 * @param src the source: the element counts must match
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (a NULL tensor), ::ASYMBP_E_SHAPE (the counts differ;
 *     both are in the context's last error)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_tensor_copy(asymbp_tensor_t *dst, const asymbp_tensor_t *src);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_TENSOR_H */
