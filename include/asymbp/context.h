/* asymbp/context.h - the context: allocator, random seed, thread count, log, last error. */
#ifndef ASYMBP_CONTEXT_H
#define ASYMBP_CONTEXT_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct asymbp_ctx asymbp_ctx_t;

/* Allocator hooks.  Every allocation asymbp makes goes through them.  alloc must return memory
 * aligned to at least `align` bytes (a power of two, at most 4096) or NULL; free receives the
 * pointers alloc returned (never NULL).  Caller-filled: start from ASYMBP_ALLOCATOR_INIT. */
typedef struct asymbp_allocator {
    size_t struct_size;
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
    void *user;
} asymbp_allocator_t;
#define ASYMBP_ALLOCATOR_INIT { sizeof(asymbp_allocator_t), 0, 0, 0 }

/* Log levels for the log callback. */
typedef enum asymbp_log_level {
    ASYMBP_LOG_ERROR = 0,
    ASYMBP_LOG_WARN = 1,
    ASYMBP_LOG_INFO = 2,
    ASYMBP_LOG_DEBUG = 3
} asymbp_log_level_t;

/* Log callback: msg is valid for the call only.  The library never prints by itself. */
typedef void (*asymbp_log_fn)(void *user, asymbp_log_level_t level, const char *msg);

/* Create a context.  alloc: NULL for the C library's allocator, else copied (min(struct_size,
 * sizeof) bytes; a struct_size smaller than the version-1 layout is refused).  out: receives
 * the context, which the caller owns (asymbp_ctx_destroy); NULL on failure.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID (out NULL, incomplete allocator), ASYMBP_E_NOMEM.
 * The seed starts at 0 and the thread count at 1.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_ctx_create(const asymbp_allocator_t *alloc, asymbp_ctx_t **out);
/* Destroy a context (NULL is accepted).  Objects created from it must be destroyed first. */
ASYMBP_API void asymbp_ctx_destroy(asymbp_ctx_t *ctx);

/* Seed of the context's random generator: objects created afterwards draw their streams from
 * it, so the same seed and the same sequence of calls give the same numbers.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_ctx_set_seed(asymbp_ctx_t *ctx, uint64_t seed);
ASYMBP_API uint64_t asymbp_ctx_get_seed(const asymbp_ctx_t *ctx);

/* Threads the library may use (>= 1; 0 is refused with ASYMBP_E_INVALID).  With T > 1 the
 * context starts T - 1 worker threads (stopped by asymbp_ctx_destroy or a later call) and the
 * layers split their loops over samples or channels across them; every GEMM runs on the thread
 * that calls it, so with OpenBLAS the call also sets OpenBLAS's own thread count to 1
 * (process-wide, as OpenBLAS's setting is).  A net uses at most the thread count the context
 * had when the net was bound (asymbp_net_bind sizes per-thread scratch): set it first.  A
 * context and the objects made from it are used by one host thread at a time.  Returns
 * ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_NOMEM (a thread could not be started; the previous
 * setting stays).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_ctx_set_threads(asymbp_ctx_t *ctx, int threads);
ASYMBP_API int asymbp_ctx_get_threads(const asymbp_ctx_t *ctx);

/* Route log messages up to `max_level` to fn (NULL fn: logging off, the default).  What is sent:
 *   ERROR  every error the library records, once, with the text asymbp_ctx_last_error has at
 *          that moment (a later "where" prefix is not re-sent; a call whose inner failure is
 *          described again by its caller may send two);
 *   INFO   set-up events: on installing the log, the version, BLAS, thread count and seed
 *          (what was set up before); thread-count changes (workers started, OpenBLAS set to one
 *          thread per call); models and checkpoints written and read; each finished epoch of
 *          a trainer;
 *   DEBUG  seeds, plugin registrations, nets bound, optimizers created, feedback assigned,
 *          scratch allocated by the probe.
 * Nothing is sent during a training step unless it fails.  fn runs on the thread that made the
 * call; msg is valid for the call only; calls fn makes into the library send nothing.
 * max_level outside ASYMBP_LOG_ERROR..ASYMBP_LOG_DEBUG is ASYMBP_E_INVALID.  Since 0.1 (the
 * library sends messages since 0.2). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_ctx_set_log(asymbp_ctx_t *ctx, asymbp_log_fn fn, void *user, asymbp_log_level_t max_level);

/* Detail text of the last failed call on this context ("dense: input has 12 features, layer
 * expects 10"); "" when none.  Owned by the context, valid until its next call.  A NULL ctx
 * gives a fixed text.  Since 0.1. */
ASYMBP_API const char *asymbp_ctx_last_error(const asymbp_ctx_t *ctx);
/* Status of the last failed call on this context (ASYMBP_OK when none).  Since 0.1. */
ASYMBP_API asymbp_status_t asymbp_ctx_last_status(const asymbp_ctx_t *ctx);
/* Forget the last error.  Since 0.1. */
ASYMBP_API void asymbp_ctx_clear_error(asymbp_ctx_t *ctx);

/* Name of the BLAS the library runs on: "openblas" or "cblas" (any other CBLAS, such as the
 * reference one).  Results are reproducible bit for bit only on the same BLAS and thread
 * count.  Static text.  Since 0.1. */
ASYMBP_API const char *asymbp_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_CONTEXT_H */
