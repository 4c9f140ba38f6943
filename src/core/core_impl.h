/* Private to the library: the context's body and the helpers every layer of the code uses. */
#ifndef ASYMBP_CORE_IMPL_H
#define ASYMBP_CORE_IMPL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "asymbp/context.h"
#include "asymbp/status.h"

#define ASYMBP_ERRMSG_MAX 512

struct asymbp_ctx {
    asymbp_allocator_t alloc;
    uint64_t seed;
    uint64_t seed_draws;      /* streams handed out since the seed was set */
    int threads;
    asymbp_log_fn log_fn;
    void *log_user;
    asymbp_log_level_t log_level;
    asymbp_status_t last_status;
    char last_error[ASYMBP_ERRMSG_MAX];
    void *registry;           /* plugin registry (feedback policies, update rules); see feedback/ */
    void (*registry_free)(asymbp_ctx_t *ctx);
};

/* Allocate through the context's allocator, 64-byte aligned.  NULL when size is 0 or on failure
 * (the caller reports ASYMBP_E_NOMEM).  asymbp__calloc zero-fills.  asymbp__free accepts NULL. */
void *asymbp__alloc(asymbp_ctx_t *ctx, size_t size);
void *asymbp__calloc(asymbp_ctx_t *ctx, size_t n, size_t elem);
void asymbp__free(asymbp_ctx_t *ctx, void *ptr);
/* A copy of s in context memory, NULL on failure. */
char *asymbp__strdup(asymbp_ctx_t *ctx, const char *s);

/* Record an error on ctx (ctx may be NULL) and return status, so callers can write
 * `return asymbp__error(ctx, ASYMBP_E_SHAPE, "dense: input has %d features ...", ...);` */
asymbp_status_t asymbp__error(asymbp_ctx_t *ctx, asymbp_status_t status, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefix the context's current error text with "prefix: " (for adding where an error happened). */
void asymbp__error_prefix(asymbp_ctx_t *ctx, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Send a message to the log callback, if one is set and level is within its max level. */
void asymbp__log(asymbp_ctx_t *ctx, asymbp_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Next 64-bit seed for an object's own RNG stream: derived from the context seed and a counter,
 * so objects created in the same order get the same streams. */
uint64_t asymbp__ctx_next_seed(asymbp_ctx_t *ctx);

/* a * b without overflow: 0 on success, -1 on overflow. */
int asymbp__mul_size(size_t a, size_t b, size_t *out);

#define ASYMBP_CHECK_NULL(ctx, p, what) \
    do { if (!(p)) return asymbp__error((ctx), ASYMBP_E_INVALID, "%s: %s is NULL", __func__, (what)); } while (0)

#endif
