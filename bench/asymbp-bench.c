/* asymbp-bench - training throughput of asymbp on random data of the right shape.
 *
 *   asymbp-bench --model mlp|paper-cnn|SPEC --feedback F --update U [--bn] --threads T --batch B
 *                [--epochs N] [--steps S] [--warmup W] [--lr LR] [--momentum MU] [--seed S] [--json]
 *
 * One "epoch" here is a fixed number of training steps (forward, loss, backward, optimizer step)
 * on a small pool of random batches; the throughput is the median over the timed epochs after
 * the warm-up.  It also reports GFLOP/s from counted FLOPs, peak resident memory against the
 * memory the net needs by its shapes, and the allocations made per training step: through the
 * context allocator (asymbp's own; must be 0) and, on glibc, every malloc/calloc/realloc of the
 * process (the BLAS included).  With --json the last stdout line is one JSON object.
 *
 * This is a program, not library code: it prints and exits. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "asymbp/asymbp.h"

/* ---- process-wide allocation counter (glibc: interpose malloc and friends) ------------------- */

static unsigned long long libc_allocs;

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define BENCH_NO_MALLOC_HOOK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_NO_MALLOC_HOOK 1   /* the sanitizer runtimes interpose malloc themselves */
#endif
#if defined(__GLIBC__) && !defined(BENCH_NO_MALLOC_HOOK)
#define BENCH_LIBC_HOOK 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

void *malloc(size_t size)
{
    __atomic_fetch_add(&libc_allocs, 1ULL, __ATOMIC_RELAXED);
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size)
{
    __atomic_fetch_add(&libc_allocs, 1ULL, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size)
{
    __atomic_fetch_add(&libc_allocs, 1ULL, __ATOMIC_RELAXED);
    return __libc_realloc(p, size);
}
void free(void *p) { __libc_free(p); }
#else
#define BENCH_LIBC_HOOK 0
#endif

/* OpenBLAS's name of the kernels it picked ("Haswell", "SkylakeX", ...); absent with another BLAS. */
extern char *openblas_get_corename(void) __attribute__((weak));
static const char *blas_core(void) { return openblas_get_corename ? openblas_get_corename() : "-"; }

static unsigned long long libc_allocs_now(void) { return __atomic_load_n(&libc_allocs, __ATOMIC_RELAXED); }

/* ---- counting allocator for the context -------------------------------------------------------- */

typedef struct counter {
    unsigned long long allocs, frees;
    size_t live, peak;
} counter_t;

typedef struct block_head {   /* in front of every block: its size, keeping the caller's alignment */
    size_t size, offset;
} block_head_t;

static void *count_alloc(void *user, size_t size, size_t align)
{
    counter_t *c = user;
    size_t off;
    unsigned char *raw;
    void *p = NULL;
    if (align < 64) align = 64;
    off = align;   /* >= sizeof(block_head_t) and keeps the alignment */
    if (size > SIZE_MAX - off) return NULL;
    if (posix_memalign(&p, align, size + off) != 0) return NULL;
    raw = p;
    ((block_head_t *)(void *)(raw + off - sizeof(block_head_t)))->size = size;
    ((block_head_t *)(void *)(raw + off - sizeof(block_head_t)))->offset = off;
    c->allocs++;
    c->live += size;
    if (c->live > c->peak) c->peak = c->live;
    return raw + off;
}

static void count_free(void *user, void *ptr)
{
    counter_t *c = user;
    block_head_t *h;
    if (!ptr) return;
    h = (block_head_t *)(void *)((unsigned char *)ptr - sizeof(block_head_t));
    c->frees++;
    c->live -= h->size;
    free((unsigned char *)ptr - h->offset);
}

/* ---- small helpers ------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* A "VmXXX:" line of /proc/self/status in MB, -1 when /proc is not there. */
static double proc_status_mb(const char *key)
{
    char line[256];
    double mb = -1.0;
    size_t kl = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1.0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) { mb = strtod(line + kl, NULL) / 1024.0; break; }
    fclose(f);
    return mb;
}

static double cur_rss_mb(void) { return proc_status_mb("VmRSS:"); }

/* Peak resident set.  VmHWM belongs to this program's address space; getrusage's ru_maxrss
 * (the fallback) survives fork + exec, so a child of a big parent (python + torch) would report
 * the parent's peak. */
static double peak_rss_mb(void)
{
    struct rusage ru;
    double hwm = proc_status_mb("VmHWM:");
    if (hwm >= 0.0) return hwm;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;   /* kilobytes on Linux */
}

static double loadavg1(void)
{
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1.0;
    if (fscanf(f, "%lf", &l) != 1) l = -1.0;
    fclose(f);
    return l;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* xorshift64*: the bench's own data generator (independent of the library's RNG). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}
static float rnd_unit(void) { return (float)((rnd() >> 40) * (1.0 / 16777216.0)); }

static void die_st(asymbp_ctx_t *ctx, asymbp_status_t st, const char *what)
{
    fprintf(stderr, "asymbp-bench: %s failed: %s (%s): %s\n", what, asymbp_status_name(st), asymbp_strerror(st),
            asymbp_ctx_last_error(ctx));
    exit(1);
}

/* ---- the FMA ceiling: 12 independent chains of vector FMAs (no memory traffic) ---------------
 * GFLOP/s one core reaches with nothing but fused multiply-adds, 8-wide (AVX2) and 16-wide
 * (AVX-512F), measured now, on this machine, so that a training speed can be stated as a fraction
 * of it.  0 when the CPU (or the compiler) has no such instructions. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FMA_CHAINS(T, SET1, FMA) \
    T a0 = SET1(0.0f), a1 = SET1(1.0f), a2 = SET1(2.0f), a3 = SET1(3.0f), a4 = SET1(4.0f), a5 = SET1(5.0f); \
    T a6 = SET1(6.0f), a7 = SET1(7.0f), a8 = SET1(8.0f), a9 = SET1(9.0f), a10 = SET1(10.0f), a11 = SET1(11.0f); \
    T m = SET1(0.999999f), c = SET1(1e-7f); \
    for (long i = 0; i < iters; i++) { \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c); \
        a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c); \
        a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c); \
    }
__attribute__((target("avx2,fma"))) static float fma_loop8(long iters)
{
    float out[8];
    FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps)
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(a4, a5));
    a6 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a6, a7), _mm256_add_ps(a8, a9)), _mm256_add_ps(a10, a11));
    _mm256_storeu_ps(out, _mm256_add_ps(a0, a6));
    return out[0];
}
__attribute__((target("avx512f"))) static float fma_loop16(long iters)
{
    float out[16];
    FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps)
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(a4, a5));
    a6 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a6, a7), _mm512_add_ps(a8, a9)), _mm512_add_ps(a10, a11));
    _mm512_storeu_ps(out, _mm512_add_ps(a0, a6));
    return out[0];
}
#endif

static volatile float fma_sink;

/* Best of 5 runs of ~0.1 s each; width 8 or 16. */
static double fma_ceiling(int width)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    double best = 0.0;
    long iters = 4000000;
    __builtin_cpu_init();
    if (width == 8 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0.0;
    if (width == 16 && !__builtin_cpu_supports("avx512f")) return 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s(), t;
        fma_sink = width == 8 ? fma_loop8(iters) : fma_loop16(iters);
        t = now_s() - t0;
        if (t > 0 && 24.0 * width * (double)iters / t / 1e9 > best) best = 24.0 * width * (double)iters / t / 1e9;
    }
    return best;
#else
    (void)width;
    return 0.0;
#endif
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: asymbp-bench --model mlp|paper-cnn|SPEC [--feedback F] [--update U] [--bn] [--threads T]\n"
            "                    [--batch B] [--epochs N] [--steps S] [--warmup W] [--lr LR] [--momentum MU]\n"
            "                    [--seed S] [--input CxHxW] [--classes K] [--json]\n"
            "       asymbp-bench --ceiling [--json]   (the FMA ceiling of one core, GFLOP/s)\n"
            "  --model     mlp (784-512-512-10 ReLU), paper-cnn (Liao et al.'s CNN on 28x28x1), or any\n"
            "              asymbp_net_from_spec text (default paper-cnn)\n"
            "  --feedback  feedback setting: sym, usf, brsf, frsf, partial:0.5, ... (default sym)\n"
            "  --update    update rule: sgd, bm, bm:b, ... (default sgd)\n"
            "  --bn        batch norm after every conv/fc layer\n"
            "  --threads   asymbp worker threads (default 1; each BLAS call single-threaded)\n"
            "  --batch     batch size (default 100)\n"
            "  --epochs    timed epochs, the median is reported (default 5)\n"
            "  --steps     training steps per epoch (default 10 for convolutional nets, 100 otherwise)\n"
            "  --warmup    untimed epochs first (default 1)\n"
            "  --lr, --momentum  SGD hyper-parameters (default 0.001, 0.9)\n"
            "  --json      end with one JSON line\n");
}

static long arg_long(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    long x;
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "asymbp-bench: %s: expected an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return x;
}

static double arg_double(const char *opt, const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !isfinite(x)) {
        fprintf(stderr, "asymbp-bench: %s: expected a number, got '%s'\n", opt, v);
        exit(2);
    }
    return x;
}

/* JSON string body: the names used here hold no quotes or backslashes, but be safe. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    const char *model = "paper-cnn", *feedback = "sym", *update = "sgd", *spec;
    int bn = 0, json = 0, ceiling = 0;
    long threads = 1, batch = 100, epochs = 5, steps = -1, warmup = 1;
    double lr = 0.001, momentum = 0.9;
    unsigned long long seed = 1;
    long in_c = 1, in_h = 28, in_w = 28, classes = 10;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) { fprintf(stderr, "asymbp-bench: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--ceiling")) ceiling = 1;
        else if (!strcmp(a, "--bn")) bn = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--model")) { NEEDV(); model = v; }
        else if (!strcmp(a, "--feedback")) { NEEDV(); feedback = v; }
        else if (!strcmp(a, "--update")) { NEEDV(); update = v; }
        else if (!strcmp(a, "--threads")) { NEEDV(); threads = arg_long(a, v, 1, 1024); }
        else if (!strcmp(a, "--batch")) { NEEDV(); batch = arg_long(a, v, 1, 1L << 20); }
        else if (!strcmp(a, "--epochs")) { NEEDV(); epochs = arg_long(a, v, 1, 100000); }
        else if (!strcmp(a, "--steps")) { NEEDV(); steps = arg_long(a, v, 1, 100000000); }
        else if (!strcmp(a, "--warmup")) { NEEDV(); warmup = arg_long(a, v, 0, 100000); }
        else if (!strcmp(a, "--lr")) { NEEDV(); lr = arg_double(a, v); }
        else if (!strcmp(a, "--momentum")) { NEEDV(); momentum = arg_double(a, v); }
        else if (!strcmp(a, "--seed")) { NEEDV(); seed = (unsigned long long)arg_long(a, v, 0, 0x7fffffffL); }
        else if (!strcmp(a, "--classes")) { NEEDV(); classes = arg_long(a, v, 2, 1L << 20); }
        else if (!strcmp(a, "--input")) {
            NEEDV();
            if (sscanf(v, "%ldx%ldx%ld", &in_c, &in_h, &in_w) != 3 || in_c < 1 || in_h < 1 || in_w < 1) {
                fprintf(stderr, "asymbp-bench: --input: expected CxHxW, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "asymbp-bench: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
#undef NEEDV
    }
    if (ceiling) {
        double c8 = fma_ceiling(8), c16 = fma_ceiling(16);
        printf("fma ceiling   one core: %.1f GFLOP/s with 8-wide (AVX2) FMAs, %.1f with 16-wide (AVX-512F); "
               "load average %.2f\n", c8, c16, loadavg1());
        if (json) printf("{\"fma_avx2_gflops\":%.2f,\"fma_avx512_gflops\":%.2f,\"loadavg\":%.2f}\n", c8, c16, loadavg1());
        return 0;
    }
    spec = !strcmp(model, "mlp") ? "mlp:512,512" : model;

    /* ---- data: a pool of random batches (inputs in [-1, 1), uniform labels) ---- */
    size_t in_size = (size_t)(in_c * in_h * in_w), B = (size_t)batch;
    size_t pool = 8;
    float *X = malloc(pool * B * in_size * sizeof(float));
    int32_t *Y = malloc(pool * B * sizeof(int32_t));
    if (!X || !Y) { fprintf(stderr, "asymbp-bench: out of memory for the data\n"); return 1; }
    rng_state ^= seed * 0x9e3779b97f4a7c15ULL;
    if (!rng_state) rng_state = 1;
    for (size_t i = 0; i < pool * B * in_size; i++) X[i] = 2.0f * rnd_unit() - 1.0f;
    for (size_t i = 0; i < pool * B; i++) Y[i] = (int32_t)(rnd() % (uint64_t)classes);
    double base_rss = cur_rss_mb();

    /* ---- context, net, feedback, optimizer ---- */
    counter_t cnt = { 0, 0, 0, 0 };
    asymbp_allocator_t al = ASYMBP_ALLOCATOR_INIT;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_status_t st;
    al.alloc = count_alloc;
    al.free = count_free;
    al.user = &cnt;
    if ((st = asymbp_ctx_create(&al, &ctx)) != ASYMBP_OK) die_st(NULL, st, "ctx_create");
    if ((st = asymbp_ctx_set_seed(ctx, seed)) != ASYMBP_OK) die_st(ctx, st, "ctx_set_seed");
    if ((st = asymbp_ctx_set_threads(ctx, (int)threads)) != ASYMBP_OK) die_st(ctx, st, "ctx_set_threads");
    if ((st = asymbp_net_from_spec(ctx, spec, in_c, in_h, in_w, classes, bn, &net)) != ASYMBP_OK)
        die_st(ctx, st, "net_from_spec");
    if ((st = asymbp_net_set_feedback(net, feedback)) != ASYMBP_OK) die_st(ctx, st, "net_set_feedback");
    if ((st = asymbp_net_bind(net, B)) != ASYMBP_OK) die_st(ctx, st, "net_bind");
    {
        asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
        hp.lr = (float)lr;
        hp.momentum = (float)momentum;
        if ((st = asymbp_optimizer_create(net, update, &hp, &opt)) != ASYMBP_OK) die_st(ctx, st, "optimizer_create");
    }

    /* ---- FLOPs and theoretical memory from the net's shapes ---- */
    size_t nl = asymbp_net_layer_count(net), np = asymbp_net_param_count(net);
    double fwd_flop = 0.0, train_flop = 0.0;
    double fb_floats = 0.0, act_bytes = 0.0, work_floats = 0.0, part_floats = 0.0, gemm_weights = 0.0;
    int first_weighted = 1, has_conv = 0;
    int64_t prev[3];
    if (asymbp_net_input_shape(net, prev) != ASYMBP_OK) die_st(ctx, ASYMBP_E_STATE, "net_input_shape");
    act_bytes += (double)B * (double)in_size * sizeof(float);   /* the input copy */
    for (size_t i = 0; i < nl; i++) {
        asymbp_layer_kind_t k = asymbp_net_layer_kind(net, i);
        int64_t sh[3];
        double out_n;
        if (asymbp_net_layer_output_shape(net, i, sh) != ASYMBP_OK) die_st(ctx, ASYMBP_E_STATE, "layer_output_shape");
        out_n = (double)(sh[0] * sh[1] * sh[2]);
        if (k != ASYMBP_LAYER_FLATTEN) act_bytes += (double)B * out_n * 2.0 * sizeof(float);   /* out + delta */
        if (k == ASYMBP_LAYER_MAXPOOL) act_bytes += (double)B * out_n * sizeof(int32_t);        /* argmax */
        if (k == ASYMBP_LAYER_DENSE || k == ASYMBP_LAYER_CONV2D) {
            char want[96];
            double wn = 0.0, positions = (double)(sh[1] * sh[2]), f;
            snprintf(want, sizeof want, "%s.weight", asymbp_net_layer_name(net, i));
            for (size_t p = 0; p < np; p++) {
                const char *pn = asymbp_net_param_name(net, p);
                asymbp_tensor_t *w = NULL;
                if (pn && !strcmp(pn, want) && asymbp_net_param_at(net, p, &w, NULL) == ASYMBP_OK && w)
                    wn = (double)asymbp_tensor_numel(w);
            }
            if (wn == 0.0) { fprintf(stderr, "asymbp-bench: no parameter %s\n", want); return 1; }
            f = 2.0 * wn * positions;   /* 2*M*N*K per sample: M*K = weights, N = output positions */
            fwd_flop += f;
            train_flop += first_weighted ? 2.0 * f : 3.0 * f;   /* no input gradient below the first */
            first_weighted = 0;
            fb_floats += wn;
            gemm_weights += wn;
            if (k == ASYMBP_LAYER_CONV2D) {
                /* im2col workspace of one sample: K x positions with K = weights / out channels */
                double col = wn / (double)sh[0] * positions;
                if (col > work_floats) work_floats = col;
                /* with T threads, T - 1 partial weight + bias gradients */
                if (wn + (double)sh[0] > part_floats) part_floats = wn + (double)sh[0];
                has_conv = 1;
            }
        }
        memcpy(prev, sh, sizeof prev);
    }
    act_bytes += (double)B * (double)classes * sizeof(float);   /* softmax probabilities */
    double params = (double)asymbp_net_weight_count(net);
    /* value + gradient + one float of optimizer state per parameter (momentum / BM state), plus a
     * feedback matrix per weight tensor when the feedback is not symmetric */
    double param_bytes = params * 3.0 * sizeof(float) + (strcmp(feedback, "sym") ? fb_floats * sizeof(float) : 0.0);
    /* workspace: one im2col buffer per thread, and the partial conv gradients of threads 1.. */
    double work_bytes = ((double)threads * work_floats + (double)(threads - 1) * part_floats) * sizeof(float);
    double theo_mb = (param_bytes + act_bytes + work_bytes) / (1024.0 * 1024.0);
    (void)gemm_weights;

    if (steps < 0) steps = has_conv ? 10 : 100;

    /* ---- run ---- */
    double *ep_ips = malloc((size_t)epochs * sizeof(double)), *ep_cpu = malloc((size_t)epochs * sizeof(double));
    double t_fwd = 0.0, t_bwd = 0.0, t_upd = 0.0;
    unsigned long long first_allocs = 0, first_libc = 0, timed_allocs = 0, timed_libc = 0;
    float last_loss = NAN;
    size_t batch_i = 0;
    int nonfinite = 0;
    double cpu0 = 0.0, wall0 = 0.0, cpu_tot, wall_tot;
    if (!ep_ips || !ep_cpu) return 1;
    for (long e = -warmup; e < epochs; e++) {
        double t0, t1, c0 = cpu_s(), c1;
        unsigned long long a0 = cnt.allocs, l0 = libc_allocs_now();
        if (e == 0) { cpu0 = cpu_s(); wall0 = now_s(); }
        t0 = now_s();
        for (long s = 0; s < steps; s++) {
            const float *logits;
            const float *x = X + batch_i * B * in_size;
            const int32_t *y = Y + batch_i * B;
            double ta, tb, tc, td;
            unsigned long long sa = cnt.allocs, sl = libc_allocs_now();
            batch_i = (batch_i + 1) % pool;
            ta = now_s();
            if ((st = asymbp_net_forward(net, x, B, 1, &logits)) != ASYMBP_OK) die_st(ctx, st, "net_forward");
            if ((st = asymbp_net_loss(net, y, B, &last_loss)) != ASYMBP_OK) die_st(ctx, st, "net_loss");
            tb = now_s();
            if ((st = asymbp_net_backward(net)) != ASYMBP_OK) die_st(ctx, st, "net_backward");
            tc = now_s();
            if ((st = asymbp_optimizer_step(opt)) != ASYMBP_OK) die_st(ctx, st, "optimizer_step");
            td = now_s();
            if (!isfinite(last_loss)) nonfinite = 1;
            if (e == -warmup && s == 0) {
                first_allocs = cnt.allocs - sa;
                first_libc = libc_allocs_now() - sl;
            }
            if (e >= 0) {
                t_fwd += tb - ta;
                t_bwd += tc - tb;
                t_upd += td - tc;
            }
        }
        t1 = now_s();
        c1 = cpu_s();
        if (e >= 0) {
            ep_ips[e] = (double)(steps * batch) / (t1 - t0);
            ep_cpu[e] = c1 > c0 ? (double)(steps * batch) / (c1 - c0) : 0.0;
            timed_allocs += cnt.allocs - a0;
            timed_libc += libc_allocs_now() - l0;
        }
    }
    cpu_tot = cpu_s() - cpu0;
    wall_tot = now_s() - wall0;

    double ips_min = ep_ips[0], ips_max = ep_ips[0];
    for (long e = 1; e < epochs; e++) {
        if (ep_ips[e] < ips_min) ips_min = ep_ips[e];
        if (ep_ips[e] > ips_max) ips_max = ep_ips[e];
    }
    double ips = median(ep_ips, (size_t)epochs), ipc = median(ep_cpu, (size_t)epochs);
    double nsteps = (double)(steps * epochs);
    double gflops = train_flop * ips / 1e9;
    double allocs_step = (double)timed_allocs / nsteps, libc_step = (double)timed_libc / nsteps;
    double rss = peak_rss_mb();
    double heap_mb = (double)cnt.peak / (1024.0 * 1024.0);
    double data_mb = (double)(pool * B * (in_size * sizeof(float) + sizeof(int32_t))) / (1024.0 * 1024.0);
    double ms_f = 1e3 * t_fwd / nsteps, ms_b = 1e3 * t_bwd / nsteps, ms_u = 1e3 * t_upd / nsteps;

    printf("asymbp-bench  asymbp %s, BLAS %s (kernels: %s), load average %.2f at the end\n", asymbp_version_string(),
           asymbp_blas_name(), blas_core(), loadavg1());
    printf("net           %s%s  (%s)\n", model, bn ? " + bn" : "", asymbp_net_spec(net));
    printf("config        feedback %s, update %s, threads %ld, batch %ld, lr %g, momentum %g\n", feedback, update,
           threads, batch, lr, momentum);
    printf("timing        %ld timed epochs of %ld steps after %ld warm-up epoch(s)\n", epochs, steps, warmup);
    printf("images/s      %.1f median  (min %.1f, max %.1f)\n", ips, ips_min, ips_max);
    printf("step          %.3f ms: forward+loss %.3f, backward %.3f, update %.3f  (mean)\n", ms_f + ms_b + ms_u,
           ms_f, ms_b, ms_u);
    printf("compute       %.2f MFLOP per image per step (forward %.2f), %.2f GFLOP/s\n", train_flop / 1e6,
           fwd_flop / 1e6, gflops);
    printf("cpu           %.2f cpu-s per wall-s over the timed epochs; %.1f images per cpu-s (median)\n",
           wall_tot > 0 ? cpu_tot / wall_tot : 0.0, ipc);
    printf("memory        peak RSS %.1f MB; theoretical %.2f MB (params %.2f + activations %.2f + workspace %.2f);\n"
           "              asymbp heap peak %.2f MB; RSS before the net %.1f MB (incl. %.1f MB of bench data);\n"
           "              peak RSS - RSS before = %.1f MB = %.2fx theoretical\n",
           rss, theo_mb, param_bytes / 1048576.0, act_bytes / 1048576.0, work_bytes / 1048576.0, heap_mb, base_rss,
           data_mb, rss - base_rss, theo_mb > 0 ? (rss - base_rss) / theo_mb : 0.0);
    printf("allocations   %.3f per step through the context allocator (first step: %llu)", allocs_step, first_allocs);
    if (BENCH_LIBC_HOOK)
        printf("; %.3f per step in the whole process (first step: %llu)\n", libc_step, first_libc);
    else
        printf("\n");
    printf("final loss    %g%s\n", (double)last_loss, nonfinite ? "  (a loss was not finite: the run diverged)" : "");

    if (json) {
        printf("{\"model\":");
        json_str(model);
        printf(",\"spec\":");
        json_str(asymbp_net_spec(net));
        printf(",\"feedback\":");
        json_str(feedback);
        printf(",\"update\":");
        json_str(update);
        printf(",\"bn\":%s,\"threads\":%ld,\"batch\":%ld,\"steps_per_epoch\":%ld,\"epochs\":%ld", bn ? "true" : "false",
               threads, batch, steps, epochs);
        printf(",\"images_per_s\":%.2f,\"images_per_s_min\":%.2f,\"images_per_s_max\":%.2f", ips, ips_min, ips_max);
        printf(",\"step_ms\":%.4f,\"forward_ms\":%.4f,\"backward_ms\":%.4f,\"update_ms\":%.4f", ms_f + ms_b + ms_u, ms_f,
               ms_b, ms_u);
        printf(",\"mflop_per_image\":%.4f,\"gflop_s\":%.3f", train_flop / 1e6, gflops);
        printf(",\"cpu_per_wall\":%.3f,\"images_per_cpu_s\":%.2f", wall_tot > 0 ? cpu_tot / wall_tot : 0.0, ipc);
        printf(",\"peak_rss_mb\":%.2f,\"rss_before_net_mb\":%.2f,\"theoretical_mb\":%.3f,\"asymbp_heap_peak_mb\":%.3f",
               rss, base_rss, theo_mb, heap_mb);
        printf(",\"allocs_per_step\":%.4f,\"first_step_allocs\":%llu", allocs_step, first_allocs);
        if (BENCH_LIBC_HOOK) printf(",\"libc_allocs_per_step\":%.4f", libc_step);
        printf(",\"final_loss\":%.6g,\"diverged\":%s", isfinite(last_loss) ? (double)last_loss : -1.0,
               nonfinite ? "true" : "false");
        printf(",\"blas\":");
        json_str(asymbp_blas_name());
        printf(",\"blas_core\":");
        json_str(blas_core());
        printf(",\"loadavg\":%.2f}\n", loadavg1());
    }

    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    free(ep_ips);
    free(ep_cpu);
    free(X);
    free(Y);
    return 0;
}
