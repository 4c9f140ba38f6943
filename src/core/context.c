/* The context: allocator, seed, threads, log and last-error text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core_impl.h"
#include "asymbp/context.h"
#include "asymbp/version.h"

/* OpenBLAS's thread setter, when the BLAS in use is OpenBLAS; absent with the reference BLAS. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

const char *asymbp_blas_name(void)
{
    return openblas_set_num_threads ? "openblas" : "cblas";
}

static void *default_alloc(void *user, size_t size, size_t align)
{
    void *p = NULL;
    (void)user;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr)
{
    (void)user;
    free(ptr);
}

void *asymbp__alloc(asymbp_ctx_t *ctx, size_t size)
{
    if (!ctx || size == 0) return NULL;
    return ctx->alloc.alloc(ctx->alloc.user, size, 64);
}

void *asymbp__calloc(asymbp_ctx_t *ctx, size_t n, size_t elem)
{
    size_t total;
    void *p;
    if (asymbp__mul_size(n, elem, &total) != 0) return NULL;
    p = asymbp__alloc(ctx, total);
    if (p) memset(p, 0, total);
    return p;
}

void asymbp__free(asymbp_ctx_t *ctx, void *ptr)
{
    if (ctx && ptr) ctx->alloc.free(ctx->alloc.user, ptr);
}

char *asymbp__strdup(asymbp_ctx_t *ctx, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = asymbp__alloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

int asymbp__mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a) return -1;
    *out = a * b;
    return 0;
}

static void log_send(asymbp_ctx_t *ctx, asymbp_log_level_t level, const char *msg)
{
    if (!ctx->log_fn || level > ctx->log_level || ctx->in_log) return;
    ctx->in_log = 1;
    ctx->log_fn(ctx->log_user, level, msg);
    ctx->in_log = 0;
}

asymbp_status_t asymbp__error(asymbp_ctx_t *ctx, asymbp_status_t status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
        va_end(ap);
        ctx->last_status = status;
        if (!ctx->log_mute) log_send(ctx, ASYMBP_LOG_ERROR, ctx->last_error);
    }
    return status;
}

void asymbp__error_relog(asymbp_ctx_t *ctx)
{
    if (ctx && ctx->last_status != ASYMBP_OK) log_send(ctx, ASYMBP_LOG_ERROR, ctx->last_error);
}

void asymbp__error_prefix(asymbp_ctx_t *ctx, const char *fmt, ...)
{
    char prefix[128], old[ASYMBP_ERRMSG_MAX];
    va_list ap;
    if (!ctx) return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->last_error, sizeof old);
    snprintf(ctx->last_error, sizeof ctx->last_error, "%.127s: %.380s", prefix, old);
}

void asymbp__log(asymbp_ctx_t *ctx, asymbp_log_level_t level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (!ctx || !ctx->log_fn || level > ctx->log_level || ctx->in_log) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_send(ctx, level, msg);
}

uint64_t asymbp__ctx_next_seed(asymbp_ctx_t *ctx)
{
    /* SplitMix64 of (seed + counter): well-mixed, distinct seeds for consecutive objects. */
    uint64_t z = ctx->seed + 0x9E3779B97F4A7C15ULL * (++ctx->seed_draws);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

asymbp_status_t asymbp_ctx_create(const asymbp_allocator_t *alloc, asymbp_ctx_t **out)
{
    asymbp_allocator_t a = { sizeof(asymbp_allocator_t), default_alloc, default_free, NULL };
    asymbp_ctx_t *ctx;
    if (!out) return ASYMBP_E_INVALID;
    *out = NULL;
    if (alloc) {
        size_t n = alloc->struct_size < sizeof a ? alloc->struct_size : sizeof a;
        if (alloc->struct_size < sizeof a) return ASYMBP_E_INVALID; /* version 1 is the full struct */
        memcpy(&a, alloc, n);
        a.struct_size = sizeof a;
        if (!a.alloc || !a.free) return ASYMBP_E_INVALID;
    }
    ctx = a.alloc(a.user, sizeof *ctx, 64);
    if (!ctx) return ASYMBP_E_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = a;
    ctx->threads = 1;
    ctx->log_level = ASYMBP_LOG_INFO;
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    *out = ctx;
    return ASYMBP_OK;
}

void asymbp_ctx_destroy(asymbp_ctx_t *ctx)
{
    if (!ctx) return;
    asymbp__pool_destroy(ctx->pool);
    ctx->pool = NULL;
    asymbp__plugin_free_all(ctx);
    ctx->alloc.free(ctx->alloc.user, ctx);
}

asymbp_status_t asymbp_ctx_set_seed(asymbp_ctx_t *ctx, uint64_t seed)
{
    if (!ctx) return ASYMBP_E_INVALID;
    ctx->seed = seed;
    ctx->seed_draws = 0;
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "seed set to %llu", (unsigned long long)seed);
    return ASYMBP_OK;
}

uint64_t asymbp_ctx_get_seed(const asymbp_ctx_t *ctx) { return ctx ? ctx->seed : 0; }

asymbp_status_t asymbp_ctx_set_threads(asymbp_ctx_t *ctx, int threads)
{
    if (!ctx) return ASYMBP_E_INVALID;
    if (threads < 1)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "ctx_set_threads: thread count must be >= 1, got %d", threads);
    if (threads != ctx->threads) {
        asymbp__pool_t *pool = NULL;
        asymbp_status_t st;
        if (threads > 1 && (st = asymbp__pool_create(ctx, threads, &pool)) != ASYMBP_OK) return st;
        asymbp__pool_destroy(ctx->pool);
        ctx->pool = pool;
        ctx->threads = threads;
    }
    /* the library splits its work across its own threads; each GEMM runs on the thread that
     * calls it, so OpenBLAS's own threads would only oversubscribe the cores */
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    asymbp__log(ctx, ASYMBP_LOG_INFO, "threads: %d (%d worker thread%s besides the caller); BLAS %s%s", threads,
                threads - 1, threads == 2 ? "" : "s", asymbp_blas_name(),
                openblas_set_num_threads ? " set to 1 thread per call" : " (runs on the calling thread)");
    return ASYMBP_OK;
}

int asymbp_ctx_get_threads(const asymbp_ctx_t *ctx) { return ctx ? ctx->threads : 0; }

asymbp_status_t asymbp_ctx_set_log(asymbp_ctx_t *ctx, asymbp_log_fn fn, void *user, asymbp_log_level_t max_level)
{
    if (!ctx) return ASYMBP_E_INVALID;
    if ((int)max_level < (int)ASYMBP_LOG_ERROR || (int)max_level > (int)ASYMBP_LOG_DEBUG)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "ctx_set_log: unknown level %d (ASYMBP_LOG_ERROR..ASYMBP_LOG_DEBUG)",
                             (int)max_level);
    ctx->log_fn = fn;
    ctx->log_user = user;
    ctx->log_level = max_level;
    /* what was set up before a log could listen */
    asymbp__log(ctx, ASYMBP_LOG_INFO, "asymbp %s: BLAS %s%s, %d thread%s, seed %llu", asymbp_version_string(),
                asymbp_blas_name(), openblas_set_num_threads ? " (set to 1 thread per call)" : "", ctx->threads,
                ctx->threads == 1 ? "" : "s", (unsigned long long)ctx->seed);
    return ASYMBP_OK;
}

const char *asymbp_ctx_last_error(const asymbp_ctx_t *ctx)
{
    return ctx ? ctx->last_error : "no context (NULL asymbp_ctx_t)";
}

asymbp_status_t asymbp_ctx_last_status(const asymbp_ctx_t *ctx)
{
    return ctx ? ctx->last_status : ASYMBP_E_INVALID;
}

void asymbp_ctx_clear_error(asymbp_ctx_t *ctx)
{
    if (!ctx) return;
    ctx->last_error[0] = '\0';
    ctx->last_status = ASYMBP_OK;
}
