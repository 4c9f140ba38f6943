/* The context's worker threads: asymbp_ctx_set_threads(ctx, T) starts T - 1 workers; the
 * layers run their per-sample (or per-channel) loops through asymbp__parallel, which splits a
 * range into at most T contiguous pieces, runs piece 0 on the calling thread and the others on
 * the workers, and returns when all are done.
 *
 * Hand-off: the caller publishes the job and bumps a generation counter; workers spin on the
 * counter for a short while (a training step starts a parallel region every few hundred
 * microseconds, so most hand-offs never sleep) and then sleep on a condition variable.  The caller
 * waits for the pieces in the same way.  Splits depend only on the range and the thread count,
 * so results are reproducible for a given thread count. */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include "core/core_impl.h"

/* Spin iterations before sleeping (each a pause instruction, some tens of nanoseconds); every
 * YIELD_EVERY of them the thread offers its core to other runnable threads, so that a busy
 * machine does not leave the thread being waited for without a core. */
#define SPIN_ROUNDS 20000
#define YIELD_EVERY 256

struct asymbp__pool {
    asymbp_ctx_t *ctx;
    int threads;                     /* workers + the calling thread */
    int started;                     /* workers actually running */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the current job (written by the caller before it bumps gen) */
    asymbp__range_fn fn;
    void *arg;
    size_t n;
    int pieces;
    unsigned gen;                    /* job generation (atomic) */
    int pending;                     /* pieces not finished yet (atomic) */
    int sleepers;                    /* workers waiting on wake (under mu) */
    int caller_sleeps;               /* the caller waits on done (under mu) */
    int stop;
    int busy;                        /* a job is running: nested calls run serially */
};

static inline void cpu_relax(int i)
{
    if ((i + 1) % YIELD_EVERY == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void piece(const asymbp__pool_t *p, int t, size_t *b, size_t *e)
{
    *b = p->n * (size_t)t / (size_t)p->pieces;
    *e = p->n * (size_t)(t + 1) / (size_t)p->pieces;
}

typedef struct worker_arg {
    asymbp__pool_t *pool;
    int index;
} worker_arg_t;

static void *worker_main(void *varg)
{
    worker_arg_t *wa = varg;
    asymbp__pool_t *p = wa->pool;
    int me = wa->index;
    unsigned seen = 0;
    for (;;) {
        unsigned g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
        for (int i = 0; g == seen && i < SPIN_ROUNDS; i++) {
            cpu_relax(i);
            g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE)) == seen && !p->stop)
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) break;
        seen = g;
        /* every worker acknowledges every job, also with an empty piece, so that none can still
         * be reading this job's fields when the caller writes the next one */
        if (me < p->pieces) {
            size_t b, e;
            piece(p, me, &b, &e);
            if (b < e) p->fn(p->arg, b, e, me);
        }
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_sleeps) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

void asymbp__pool_destroy(asymbp__pool_t *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    asymbp__free(p->ctx, p->tid);
    asymbp__free(p->ctx, p);
}

asymbp_status_t asymbp__pool_create(asymbp_ctx_t *ctx, int threads, asymbp__pool_t **out)
{
    asymbp__pool_t *p;
    worker_arg_t *args;
    int rc;
    *out = NULL;
    p = asymbp__calloc(ctx, 1, sizeof *p);
    if (!p) return asymbp__error(ctx, ASYMBP_E_NOMEM, "ctx_set_threads: out of memory for %d threads", threads);
    p->ctx = ctx;
    p->threads = threads;
    /* one allocation: thread ids, then the workers' arguments (they live as long as the pool) */
    p->tid = asymbp__calloc(ctx, (size_t)threads, sizeof(pthread_t) + sizeof(worker_arg_t));
    if (!p->tid) {
        asymbp__free(ctx, p);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "ctx_set_threads: out of memory for %d threads", threads);
    }
    args = (worker_arg_t *)(void *)(p->tid + threads);
    if (pthread_mutex_init(&p->mu, NULL) != 0 || pthread_cond_init(&p->wake, NULL) != 0 ||
        pthread_cond_init(&p->done, NULL) != 0) {
        asymbp__free(ctx, p->tid);
        asymbp__free(ctx, p);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "ctx_set_threads: cannot create the thread pool's locks");
    }
    for (int i = 1; i < threads; i++) {
        args[i].pool = p;
        args[i].index = i;
        rc = pthread_create(&p->tid[p->started], NULL, worker_main, &args[i]);
        if (rc != 0) {
            asymbp__pool_destroy(p);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "ctx_set_threads: cannot start worker thread %d of %d (%s)", i,
                                 threads - 1, strerror(rc));
        }
        p->started++;
    }
    *out = p;
    return ASYMBP_OK;
}

int asymbp__parallel(asymbp_ctx_t *ctx, size_t n, int max_threads, asymbp__range_fn fn, void *arg)
{
    asymbp__pool_t *p = ctx ? ctx->pool : NULL;
    int pieces = p ? p->threads : 1;
    size_t b, e;
    if (max_threads < pieces) pieces = max_threads;
    if ((size_t)pieces > n) pieces = (int)n;
    if (pieces <= 1 || p->busy) {
        if (n) fn(arg, 0, n, 0);
        return 1;
    }
    p->busy = 1;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->pieces = pieces;
    __atomic_store_n(&p->pending, p->started, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->mu);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    if (p->sleepers) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    piece(p, 0, &b, &e);
    if (b < e) fn(arg, b, e, 0);
    for (int i = 0; __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0 && i < SPIN_ROUNDS; i++) cpu_relax(i);
    if (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&p->mu);
        p->caller_sleeps = 1;
        while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&p->done, &p->mu);
        p->caller_sleeps = 0;
        pthread_mutex_unlock(&p->mu);
    }
    p->busy = 0;
    return pieces;
}
