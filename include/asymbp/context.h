/** @file
 * @brief The context: allocator, random seed, thread count, log, last error.
 *
 * Every object of asymbp is made from a context (::asymbp_ctx_t), which holds the allocator every
 * allocation goes through, the seed the random streams are drawn from, the worker threads, the
 * log callback, the plugin registries and the detail text of the last failed call. */
#ifndef ASYMBP_CONTEXT_H
#define ASYMBP_CONTEXT_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/** A context (opaque handle): created by asymbp_ctx_create(), destroyed by asymbp_ctx_destroy(). */
typedef struct asymbp_ctx asymbp_ctx_t;

/** Allocator hooks.  Every allocation asymbp makes goes through them.  Caller-filled: start from
 * ::ASYMBP_ALLOCATOR_INIT. */
typedef struct asymbp_allocator {
    size_t struct_size; ///< sizeof as the caller was compiled (set by ::ASYMBP_ALLOCATOR_INIT)
    /** Must return memory aligned to at least `align` bytes (a power of two, at most 4096) or
     * NULL. */
    void *(*alloc)(void *user, size_t size, size_t align);
    /** Receives the pointers alloc returned (never NULL). */
    void (*free)(void *user, void *ptr);
    void *user; ///< handed to alloc and free
} asymbp_allocator_t;
/** Initializer of ::asymbp_allocator_t: struct_size set, every hook NULL. */
#define ASYMBP_ALLOCATOR_INIT { sizeof(asymbp_allocator_t), 0, 0, 0 }

/** Log levels for the log callback. */
typedef enum asymbp_log_level {
    ASYMBP_LOG_ERROR = 0, /**< errors (see asymbp_ctx_set_log() for what each level sends) */
    ASYMBP_LOG_WARN = 1,  /**< warnings */
    ASYMBP_LOG_INFO = 2,  /**< set-up events */
    ASYMBP_LOG_DEBUG = 3  /**< details */
} asymbp_log_level_t;

/** Log callback: msg is valid for the call only.  The library never prints by itself.
 * See asymbp_ctx_set_log() for what is sent at each level. */
typedef void (*asymbp_log_fn)(void *user, asymbp_log_level_t level, const char *msg);

/** Create a context.  The seed starts at 0 and the thread count at 1.
 * @param alloc NULL for the C library's allocator, else copied (min(struct_size, sizeof) bytes;
 *     a struct_size smaller than the version-1 layout is refused)
 * @param out receives the context, which the caller owns (asymbp_ctx_destroy()); NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (out NULL, incomplete allocator), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_ctx_create(const asymbp_allocator_t *alloc, asymbp_ctx_t **out);
/** Destroy a context.  Objects created from it must be destroyed first.
 * @param ctx the context (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_ctx_destroy(asymbp_ctx_t *ctx);

/** Set the seed of the context's random generator: objects created afterwards draw their streams
 * from it, so the same seed and the same sequence of calls give the same numbers.
 * @param ctx the context
 * @param seed the seed
 * @return ::ASYMBP_OK, or ::ASYMBP_E_INVALID for a NULL ctx
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_ctx_set_seed(asymbp_ctx_t *ctx, uint64_t seed);
/** The seed of the context's random generator (see asymbp_ctx_set_seed()).
 * @param ctx the context
 * @return the seed (0 on a new context)
 * @since 0.1 */
ASYMBP_API uint64_t asymbp_ctx_get_seed(const asymbp_ctx_t *ctx);

/** Set the number of threads the library may use.  With T > 1 the context starts T - 1 worker
 * threads (stopped by asymbp_ctx_destroy() or a later call) and the layers split their loops over
 * samples or channels across them; every GEMM runs on the thread that calls it, so with OpenBLAS
 * the call also sets OpenBLAS's own thread count to 1 (process-wide, as OpenBLAS's setting is).
 * A net uses at most the thread count the context had when the net was bound (asymbp_net_bind()
 * sizes per-thread scratch): set it first.  A context and the objects made from it are used by
 * one host thread at a time.
 * @param ctx the context
 * @param threads the thread count, >= 1 (0 is refused with ::ASYMBP_E_INVALID)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM (a thread could not be started; the
 *     previous setting stays)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_ctx_set_threads(asymbp_ctx_t *ctx, int threads);
/** The thread count set by asymbp_ctx_set_threads().
 * @param ctx the context
 * @return the thread count (1 on a new context)
 * @since 0.1 */
ASYMBP_API int asymbp_ctx_get_threads(const asymbp_ctx_t *ctx);

/** Route log messages up to `max_level` to fn.  What is sent:
 * - ::ASYMBP_LOG_ERROR: every error the library records, once, with the text
 *   asymbp_ctx_last_error() has at that moment (a later "where" prefix is not re-sent; a call
 *   whose inner failure is described again by its caller may send two);
 * - ::ASYMBP_LOG_INFO: set-up events: on installing the log, the version, BLAS, thread count and
 *   seed (what was set up before); thread-count changes (workers started, OpenBLAS set to one
 *   thread per call); models and checkpoints written and read; each finished epoch of a trainer;
 * - ::ASYMBP_LOG_DEBUG: seeds, plugin registrations, nets bound, optimizers created, feedback
 *   assigned, scratch allocated by the probe.
 *
 * Nothing is sent during a training step unless it fails.  fn runs on the thread that made the
 * call; msg is valid for the call only; calls fn makes into the library send nothing.
 * @param ctx the context
 * @param fn the callback; NULL: logging off (the default)
 * @param user handed to fn
 * @param max_level the most detailed level sent
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (max_level outside
 *     ::ASYMBP_LOG_ERROR..::ASYMBP_LOG_DEBUG)
 * @since 0.1 (the library sends messages since 0.2) */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_ctx_set_log(asymbp_ctx_t *ctx, asymbp_log_fn fn, void *user, asymbp_log_level_t max_level);

/** Detail text of the last failed call on this context ("dense: input has 12 features, layer
 * expects 10").
 * @param ctx the context; a NULL ctx gives a fixed text
 * @return "" when none; owned by the context, valid until its next call
 * @since 0.1 */
ASYMBP_API const char *asymbp_ctx_last_error(const asymbp_ctx_t *ctx);
/** Status of the last failed call on this context.
 * @param ctx the context
 * @return the status, ::ASYMBP_OK when none
 * @since 0.1 */
ASYMBP_API asymbp_status_t asymbp_ctx_last_status(const asymbp_ctx_t *ctx);
/** Forget the last error.
 * @param ctx the context
 * @since 0.1 */
ASYMBP_API void asymbp_ctx_clear_error(asymbp_ctx_t *ctx);

/** Name of the BLAS the library runs on.  Results are reproducible bit for bit only on the same
 * BLAS and thread count.
 * @return "openblas" or "cblas" (any other CBLAS, such as the reference one); static text
 * @since 0.1 */
ASYMBP_API const char *asymbp_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_CONTEXT_H */
