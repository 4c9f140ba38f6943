/* The built-in feedback policies (METHOD.md section 2, and section 7's relatives), a static table
 * of the registry's feedback kind called through the public vtable: sym, usf, brsf, frsf,
 * partial, rndf, signed-init; dfa (a direct policy), kp and mirror (learned V); and the parser
 * of their options. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "feedback/feedback_impl.h"

enum { P_SYM, P_USF, P_BRSF, P_FRSF, P_PARTIAL, P_RNDF, P_SIGNED_INIT, P_DFA, P_KP, P_MIRROR, P_COUNT };
enum { MAG_NORMAL = 0, MAG_UNIFORM = 1, MAG_ONE = 2 };
enum { SCALE_NONE = 0, SCALE_XAVIER = 1, SCALE_HE = 2, SCALE_VALUE = 3 };

/* Which options each policy accepts. */
#define OPT_MAG 0x1u
#define OPT_SCALE 0x2u
#define OPT_P 0x4u
#define OPT_MASK 0x8u
#define OPT_M 0x10u
#define OPT_DIST 0x20u
#define OPT_DECAY 0x40u
#define OPT_LR 0x80u
#define OPT_NOISE 0x100u
#define OPT_STEPS 0x200u
#define OPT_BATCH 0x400u

typedef struct policy_desc {
    int id;
    const char *name;
    unsigned opts;
} policy_desc_t;

static const policy_desc_t descs[P_COUNT] = {
    {P_SYM, "sym", 0},
    {P_USF, "usf", OPT_SCALE},
    {P_BRSF, "brsf", OPT_MAG | OPT_SCALE},
    {P_FRSF, "frsf", OPT_MAG | OPT_SCALE},
    {P_PARTIAL, "partial", OPT_MAG | OPT_SCALE | OPT_P | OPT_MASK | OPT_M},
    {P_RNDF, "rndf", OPT_SCALE | OPT_DIST},
    {P_SIGNED_INIT, "signed-init", OPT_MAG | OPT_SCALE},
    {P_DFA, "dfa", OPT_SCALE | OPT_DIST},
    {P_KP, "kp", OPT_SCALE | OPT_DIST | OPT_DECAY},
    {P_MIRROR, "mirror", OPT_SCALE | OPT_DIST | OPT_DECAY | OPT_LR | OPT_NOISE | OPT_STEPS | OPT_BATCH},
};

/* Defaults of the learned policies' options. */
#define KP_DECAY 0.01f
#define MIRROR_LR 0.01f
#define MIRROR_DECAY 0.01f
#define MIRROR_NOISE 1.0f
#define MIRROR_STEPS 1u
#define MIRROR_BATCH 64u
#define MIRROR_MAX_STEPS 1000u
#define MIRROR_MAX_BATCH 65536u

/* A random tensor drawn as rndf's R (the initial V of kp and mirror, dfa's B) needs scale xavier
 * by default. */
static int random_init(int id) { return id == P_RNDF || id == P_DFA || id == P_KP || id == P_MIRROR; }

/* Parsed options.  Plain data: it is also the instance's state block (saved byte for byte). */
typedef struct bi_state {
    uint32_t mag;          /* MAG_* */
    uint32_t scale_mode;   /* SCALE_* */
    float scale_value;     /* for SCALE_VALUE */
    float scale;           /* the resolved s */
    float p;               /* partial: probability of a concordant sign */
    uint32_t mask_redraw;  /* partial: S redrawn every step */
    uint32_t m_redraw;     /* partial: M redrawn every step */
    uint32_t dist_normal;  /* rndf: R normal instead of uniform */
} bi_state_t;

/* The state of kp and mirror: the common options, then theirs (dfa and the policies of the
 * paper keep bi_state_t: its size is in their saved files). */
typedef struct learn_state {
    bi_state_t base;
    float decay;           /* kp: per optimizer step; mirror: per mirror step */
    float lr;              /* mirror: learning rate */
    float noise;           /* mirror: standard deviation of the noise */
    uint32_t steps;        /* mirror: mirror steps per optimizer step */
    uint32_t batch;        /* mirror: noise samples per mirror step */
} learn_state_t;

static asymbp_status_t bad(asymbp_ctx_t *ctx, const policy_desc_t *d, const char *options, const char *what,
                           const char *tok, size_t len)
{
    return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback '%s%s%s': %s '%.*s'", d->name, options[0] ? ":" : "",
                         options, what, (int)(len > 40 ? 40 : len), tok);
}

static int tok_is(const char *tok, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(tok, word, len) == 0;
}

/* Parse a number that fills the whole token; 0 on success. */
static int tok_number(const char *tok, size_t len, double *out)
{
    char tmp[48];
    char *end;
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, tok, len);
    tmp[len] = '\0';
    *out = strtod(tmp, &end);
    if (*end || end == tmp || !isfinite(*out)) return -1;
    return 0;
}

static asymbp_status_t parse_options(asymbp_ctx_t *ctx, const policy_desc_t *d, const char *options, learn_state_t *ls)
{
    const char *p = options;
    bi_state_t *st = &ls->base;
    unsigned seen = 0;
    memset(ls, 0, sizeof *ls);
    st->scale_mode = random_init(d->id) ? SCALE_XAVIER : SCALE_NONE;
    st->p = -1.0f;
    ls->decay = d->id == P_KP ? KP_DECAY : MIRROR_DECAY;
    ls->lr = MIRROR_LR;
    ls->noise = MIRROR_NOISE;
    ls->steps = MIRROR_STEPS;
    ls->batch = MIRROR_BATCH;
    if (!*p) goto done;
    for (;;) {
        size_t len = strcspn(p, ":");
        const char *eq = memchr(p, '=', len);
        const char *key = p, *val = p;
        size_t klen = 0, vlen = len;
        unsigned opt = 0;
        if (len == 0) return bad(ctx, d, options, "empty option", p, 0);
        if (!d->opts) return bad(ctx, d, options, "takes no options, got", p, len);
        if (eq) {
            klen = (size_t)(eq - p);
            val = eq + 1;
            vlen = len - klen - 1;
            if (tok_is(key, klen, "mag")) opt = OPT_MAG;
            else if (tok_is(key, klen, "scale")) opt = OPT_SCALE;
            else if (tok_is(key, klen, "p")) opt = OPT_P;
            else if (tok_is(key, klen, "mask")) opt = OPT_MASK;
            else if (tok_is(key, klen, "m")) opt = OPT_M;
            else if (tok_is(key, klen, "dist")) opt = OPT_DIST;
            else if (tok_is(key, klen, "decay")) opt = OPT_DECAY;
            else if (tok_is(key, klen, "lr")) opt = OPT_LR;
            else if (tok_is(key, klen, "noise")) opt = OPT_NOISE;
            else if (tok_is(key, klen, "steps")) opt = OPT_STEPS;
            else if (tok_is(key, klen, "batch")) opt = OPT_BATCH;
            else return bad(ctx, d, options, "unknown option", key, klen);
        } else {
            double x;
            if (tok_is(p, len, "redraw") || tok_is(p, len, "fixed")) opt = OPT_MASK;
            else if (tok_number(p, len, &x) == 0) opt = OPT_P;
            else return bad(ctx, d, options, "unknown option", p, len);
        }
        if (!(d->opts & opt))
            return bad(ctx, d, options, "option not accepted by this policy:", p, len);
        if (seen & opt) return bad(ctx, d, options, "option given twice:", p, len);
        seen |= opt;
        switch (opt) {
        case OPT_MAG:
            if (tok_is(val, vlen, "normal")) st->mag = MAG_NORMAL;
            else if (tok_is(val, vlen, "uniform")) st->mag = MAG_UNIFORM;
            else if (tok_is(val, vlen, "one")) st->mag = MAG_ONE;
            else return bad(ctx, d, options, "mag must be normal, uniform or one, got", val, vlen);
            break;
        case OPT_SCALE: {
            double x;
            if (tok_is(val, vlen, "none")) st->scale_mode = SCALE_NONE;
            else if (tok_is(val, vlen, "xavier")) st->scale_mode = SCALE_XAVIER;
            else if (tok_is(val, vlen, "he")) st->scale_mode = SCALE_HE;
            else if (tok_number(val, vlen, &x) == 0 && x > 0 && x < 1e30) {
                st->scale_mode = SCALE_VALUE;
                st->scale_value = (float)x;
            } else {
                return bad(ctx, d, options, "scale must be none, xavier, he or a positive number, got", val, vlen);
            }
            break;
        }
        case OPT_P: {
            double x;
            if (tok_number(val, vlen, &x) != 0 || !(x >= 0.0 && x <= 1.0))
                return bad(ctx, d, options, "p must be a number in [0, 1], got", val, vlen);
            st->p = (float)x;
            break;
        }
        case OPT_MASK:
            if (tok_is(val, vlen, "fixed")) st->mask_redraw = 0;
            else if (tok_is(val, vlen, "redraw")) st->mask_redraw = 1;
            else return bad(ctx, d, options, "mask must be fixed or redraw, got", val, vlen);
            break;
        case OPT_M:
            if (tok_is(val, vlen, "fixed")) st->m_redraw = 0;
            else if (tok_is(val, vlen, "step")) st->m_redraw = 1;
            else return bad(ctx, d, options, "m must be fixed or step, got", val, vlen);
            break;
        case OPT_DIST:
            if (tok_is(val, vlen, "uniform")) st->dist_normal = 0;
            else if (tok_is(val, vlen, "normal")) st->dist_normal = 1;
            else return bad(ctx, d, options, "dist must be uniform or normal, got", val, vlen);
            break;
        case OPT_DECAY: {
            double x;
            if (tok_number(val, vlen, &x) != 0 || !(x >= 0.0 && x <= 1.0))
                return bad(ctx, d, options, "decay must be a number in [0, 1], got", val, vlen);
            ls->decay = (float)x;
            break;
        }
        case OPT_LR: {
            double x;
            if (tok_number(val, vlen, &x) != 0 || !(x >= 0.0 && x < 1e6))
                return bad(ctx, d, options, "lr must be a number in [0, 1e6), got", val, vlen);
            ls->lr = (float)x;
            break;
        }
        case OPT_NOISE: {
            double x;
            if (tok_number(val, vlen, &x) != 0 || !(x > 0.0 && x < 1e6))
                return bad(ctx, d, options, "noise must be a number in (0, 1e6), got", val, vlen);
            ls->noise = (float)x;
            break;
        }
        case OPT_STEPS:
        case OPT_BATCH: {
            double x;
            double hi = opt == OPT_STEPS ? MIRROR_MAX_STEPS : MIRROR_MAX_BATCH;
            if (tok_number(val, vlen, &x) != 0 || !(x >= 1.0 && x <= hi) || x != floor(x))
                return bad(ctx, d, options, opt == OPT_STEPS ? "steps must be a whole number in [1, 1000], got"
                                                             : "batch must be a whole number in [1, 65536], got", val, vlen);
            if (opt == OPT_STEPS) ls->steps = (uint32_t)x;
            else ls->batch = (uint32_t)x;
            break;
        }
        default:
            break;
        }
        p += len;
        if (!*p) break;
        p++;
        if (!*p) return bad(ctx, d, options, "empty option at the end", p, 0);
    }
done:
    if (d->id == P_PARTIAL && st->p < 0.0f)
        return asymbp__error(ctx, ASYMBP_E_FORMAT,
                             "feedback 'partial%s%s': the probability p is missing (e.g. partial:0.5)",
                             options[0] ? ":" : "", options);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_builtin_check(asymbp_ctx_t *ctx, const asymbp__fb_entry_t *e, const char *options)
{
    learn_state_t st;
    return parse_options(ctx, (const policy_desc_t *)e->base.user, options, &st);
}

/* ---- Drawing ------------------------------------------------------------------------------ */

/* Uniform in (0, 1), never 0 or 1: magnitudes stay strictly positive so sign(V) = sign(W). */
static double open_uniform(asymbp_rng_t *rng)
{
    return ((double)(asymbp__rng_u32(rng) >> 8) + 0.5) * (1.0 / 16777216.0);
}

/* ---- Fast |N(0,1)| magnitudes ----------------------------------------------------------------
 * A chunk of CHUNK values (below) runs XL interleaved xoshiro128+ generators (state filled by
 * splitmix64 from the draw's seed and the chunk number); each block of XL pairs of their outputs gives 2 XL magnitudes by a float
 * Box-Muller folded into the first quadrant: u1, u2 = ((h >> 9) + 1/2) 2^-23 in (0, 1) from the
 * top 23 bits, r = sqrt(-2 ln u1), values r sin(pi/2 u2) then r sin(pi/2 (1 - u2)) (the folded
 * cosine), block by block.  ln and sin are branch-free polynomial forms (relative error about
 * 2e-7), sqrt is the correctly rounded IEEE one (vectorised: the library is built with
 * -fno-math-errno), all written as plain loops across the lanes, so the whole draw vectorises.
 * Every value is > 0 (u1 < 1 and both sine arguments are > 0). */
#define XL 16

typedef struct xo_lanes {
    uint32_t s0[XL], s1[XL], s2[XL], s3[XL];
} xo_lanes_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One xoshiro128+ step of one lane: returns the output, advances the state. */
static inline uint32_t xo_step(uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    uint32_t out = *a + *d, t = *b << 9;
    *c ^= *a;
    *d ^= *b;
    *b ^= *c;
    *a ^= *d;
    *c ^= t;
    *d = (*d << 11) | (*d >> 21);
    return out;
}

/* ln(u) for u in (0, 1): exponent and mantissa from the bits, mantissa in [sqrt(1/2), sqrt(2)),
 * ln(m) = 2 atanh(f / (2 + f)) by its odd series (f = m - 1). */
static inline float fast_logf(float u)
{
    uint32_t bits, mant, adj;
    float m, f, z, z2, e;
    memcpy(&bits, &u, sizeof bits);
    mant = bits & 0x007fffffu;
    adj = (mant + 0x004afb0du) >> 23;   /* 1 when the mantissa is >= sqrt(2) (0x3504f3): halve it */
    e = (float)((int32_t)(bits >> 23) - 127 + (int32_t)adj);
    bits = mant | (0x3f800000u - (adj << 23));
    memcpy(&m, &bits, sizeof m);
    f = m - 1.0f;
    z = f / (2.0f + f);
    z2 = z * z;
    return e * 0.693147181f + 2.0f * z * (1.0f + z2 * (1.0f / 3 + z2 * (1.0f / 5 + z2 * (1.0f / 7 + z2 * (1.0f / 9)))));
}

/* sin(x) for x in [0, pi/2]: Taylor series to x^13 (error < 1e-8 there), > 0 for x > 0. */
static inline float fast_sinf(float x)
{
    float x2 = x * x;
    return x * (1.0f - x2 * (1.0f / 6 - x2 * (1.0f / 120 - x2 * (1.0f / 5040 - x2 * (1.0f / 362880 -
                x2 * (1.0f / 39916800 - x2 * (1.0f / 6227020800.0f)))))));
}

/* On x86-64 with GCC the loops below also get AVX-512 and AVX2 clones picked at load time
 * (ifunc): the same operations in the same order (no FMA contraction in C99 mode), so the same
 * bits whichever clone runs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(ASYMBP_NO_CLONES)
#define ASYMBP__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ASYMBP__CLONES
#endif

static float sgn(float w) { return (float)((w > 0.0f) - (w < 0.0f)); }

/* 2 XL magnitudes per block from the next XL pairs of draws, nblocks blocks; with W, each
 * magnitude m at position i is written as s m sign(W[i]) (BRSF's V in one pass). */
static inline void halfnormal_body(xo_lanes_t *restrict g, float *restrict out, const float *restrict W, float sc,
                                   size_t nblocks, const int with_sign)
{
    const float q = 2.0f / 16777216.0f, hp = 1.57079633f / 8388608.0f;   /* 2^-23, pi/2 2^-23 */
    for (size_t b = 0; b < nblocks; b++) {
        for (int j = 0; j < XL; j++) {
            uint32_t s0 = g->s0[j], s1 = g->s1[j], s2 = g->s2[j], s3 = g->s3[j];
            uint32_t h1 = xo_step(&s0, &s1, &s2, &s3), h2 = xo_step(&s0, &s1, &s2, &s3);
            float u1 = ((float)(int32_t)(h1 >> 9) + 0.5f) * q;
            float k2 = (float)(int32_t)(h2 >> 9);
            float r = sqrtf(-2.0f * fast_logf(u1));
            g->s0[j] = s0;
            g->s1[j] = s1;
            g->s2[j] = s2;
            g->s3[j] = s3;
            float m1 = r * fast_sinf((k2 + 0.5f) * hp), m2 = r * fast_sinf((8388607.5f - k2) * hp);
            if (with_sign) {
                m1 = sc * m1 * sgn(W[2 * XL * b + j]);
                m2 = sc * m2 * sgn(W[2 * XL * b + XL + j]);
            }
            out[2 * XL * b + j] = m1;
            out[2 * XL * b + XL + j] = m2;
        }
    }
}

ASYMBP__CLONES
static void halfnormal_plain(xo_lanes_t *restrict g, float *restrict out, size_t nblocks)
{
    halfnormal_body(g, out, NULL, 1.0f, nblocks, 0);
}

ASYMBP__CLONES
static void halfnormal_signed(xo_lanes_t *restrict g, float *restrict out, const float *restrict W, float sc,
                              size_t nblocks)
{
    halfnormal_body(g, out, W, sc, nblocks, 1);
}

/* |N(0,1)| magnitudes in chunks of CHUNK values: chunk k's lanes are seeded from the draw's
 * 64-bit seed and k alone, so any thread can compute any chunk and the values do not depend on
 * how the array is split across threads. */
#define CHUNK_BLOCKS 64
#define CHUNK ((size_t)(2 * XL * CHUNK_BLOCKS))

static void xo_seed_chunk(xo_lanes_t *g, uint64_t seed, size_t k)
{
    uint64_t x = seed ^ ((uint64_t)k * 0xd1342543de82ef95ULL);
    for (int j = 0; j < XL; j++) {
        uint64_t a = splitmix64(&x), b = splitmix64(&x);
        g->s0[j] = (uint32_t)a;
        g->s1[j] = (uint32_t)(a >> 32);
        g->s2[j] = (uint32_t)b;
        g->s3[j] = (uint32_t)(b >> 32) | 1u;   /* never the all-zero state */
    }
}

/* Values [c0 CHUNK, min(n, c1 CHUNK)) of the draw with this seed; with W, V = s M o sign(W). */
static void halfnormal_chunks(uint64_t seed, float *restrict dst, const float *restrict W, float sc, size_t n,
                              size_t c0, size_t c1)
{
    for (size_t k = c0; k < c1; k++) {
        size_t e0 = k * CHUNK, len = n - e0 < CHUNK ? n - e0 : CHUNK, full = len / (2 * XL);
        xo_lanes_t g;
        xo_seed_chunk(&g, seed, k);
        if (W) halfnormal_signed(&g, dst + e0, W + e0, sc, full);
        else halfnormal_plain(&g, dst + e0, full);
        if (full * 2 * XL < len) {   /* a last partial block: computed whole and cut */
            float tail[2 * XL];
            size_t i = e0 + full * 2 * XL;
            halfnormal_plain(&g, tail, 1);
            for (size_t q = 0; i + q < e0 + len; q++) dst[i + q] = W ? sc * tail[q] * sgn(W[i + q]) : tail[q];
        }
    }
}

/* A pass over n elements on the context's threads: unit u covers whole chunks from
 * [n u / U, n (u+1) / U) rounded down to a chunk boundary, about the rows [rows u / U, ...) the
 * layers give thread u, so that a thread mostly writes the part of V it multiplies by. */
enum { FILL_HALFNORMAL, FILL_SIGNED };
typedef struct fill_job {
    int kind;                      /* FILL_HALFNORMAL: dst = |N(0,1)| (o s sign(W) with W);
                                      FILL_SIGNED: dst = s sign(W) o X (X may be NULL) */
    uint64_t seed;
    float *dst;
    const float *W, *X;
    float sc;
    size_t n, units;
} fill_job_t;

/* V = s sign(W) o X (X may be NULL: ones). */
static void write_signed(float *restrict V, const float *restrict W, const float *restrict X, float s, size_t n)
{
    size_t i;
    if (X) for (i = 0; i < n; i++) V[i] = s * X[i] * sgn(W[i]);
    else for (i = 0; i < n; i++) V[i] = s * sgn(W[i]);
}

static void fill_units(void *arg, size_t u0, size_t u1, int t)
{
    const fill_job_t *j = arg;
    size_t nch = (j->n + CHUNK - 1) / CHUNK;
    (void)t;
    for (size_t u = u0; u < u1; u++) {
        size_t c0 = j->n * u / j->units / CHUNK, c1 = u + 1 == j->units ? nch : j->n * (u + 1) / j->units / CHUNK;
        size_t e0 = c0 * CHUNK, e1 = c1 * CHUNK < j->n ? c1 * CHUNK : j->n;
        if (c1 <= c0) continue;
        if (j->kind == FILL_HALFNORMAL) halfnormal_chunks(j->seed, j->dst, j->W, j->sc, j->n, c0, c1);
        else write_signed(j->dst + e0, j->W + e0, j->X ? j->X + e0 : NULL, j->sc, e1 - e0);
    }
}

static void run_fill(asymbp_ctx_t *ctx, fill_job_t *j)
{
    size_t U = (size_t)asymbp_ctx_get_threads(ctx);
    if (j->n < 8 * CHUNK) U = 1;   /* small layers: not worth a hand-off */
    j->units = U;
    asymbp__parallel(ctx, U, (int)U, fill_units, j);
}

/* V = s sign(W) o X (X may be NULL: ones) on the context's threads. */
static void write_signed_par(asymbp_ctx_t *ctx, float *V, const float *W, const float *X, float s, size_t n)
{
    fill_job_t j;
    memset(&j, 0, sizeof j);
    j.kind = FILL_SIGNED;
    j.dst = V;
    j.W = W;
    j.X = X;
    j.sc = s;
    j.n = n;
    run_fill(ctx, &j);
}

/* n magnitudes: |N(0,1)| (the chunked generator above; two u32 draws of the instance stream per
 * call, high word first, as its seed), U(0,1) or 1; all > 0.  With W: V = s M o sign(W) written
 * directly (the same values as drawing M, then multiplying s M by sign(W)). */
static void fill_mag_signed(asymbp_ctx_t *ctx, asymbp_rng_t *rng, uint32_t mag, float *restrict dst,
                            const float *restrict W, float sc, size_t n)
{
    size_t i;
    fill_job_t j;
    memset(&j, 0, sizeof j);
    j.dst = dst;
    j.n = n;
    if (mag == MAG_UNIFORM) {
        for (i = 0; i < n; i++) dst[i] = (float)open_uniform(rng);
        if (W)
            for (i = 0; i < n; i++) dst[i] = sc * dst[i] * sgn(W[i]);
        return;
    }
    if (mag == MAG_ONE) {
        if (W) write_signed_par(ctx, dst, W, NULL, sc, n);   /* V = s sign(W) */
        else for (i = 0; i < n; i++) dst[i] = 1.0f;
        return;
    }
    j.kind = FILL_HALFNORMAL;
    j.seed = (uint64_t)asymbp__rng_u32(rng) << 32;
    j.seed |= asymbp__rng_u32(rng);
    j.W = W;
    j.sc = sc;
    run_fill(ctx, &j);
}

static void fill_mag(asymbp_ctx_t *ctx, asymbp_rng_t *rng, uint32_t mag, float *restrict dst, size_t n)
{
    fill_mag_signed(ctx, rng, mag, dst, NULL, 1.0f, n);
}

/* n values of S: +1 with probability p, else -1. */
static void fill_mask(asymbp_rng_t *rng, float p, float *restrict dst, size_t n)
{
    uint64_t thr = (uint64_t)((double)p * 4294967296.0);
    size_t i;
    for (i = 0; i < n; i++) dst[i] = (uint64_t)asymbp__rng_u32(rng) < thr ? 1.0f : -1.0f;
}

static float resolve_scale(const bi_state_t *st, const asymbp_feedback_args_t *a)
{
    switch (st->scale_mode) {
    case SCALE_XAVIER: return (float)sqrt(2.0 / (double)(a->fan_in + a->fan_out));
    case SCALE_HE: return (float)sqrt(2.0 / (double)a->fan_in);
    case SCALE_VALUE: return st->scale_value;
    default: return 1.0f;
    }
}

/* V = s M o S o sign(W). */
static void write_partial(float *restrict V, const float *restrict W, const float *restrict M, const float *restrict S,
                          float s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) V[i] = s * M[i] * S[i] * sgn(W[i]);
}

/* ---- The policies ---------------------------------------------------------------------------- */

/* The state block's size of each built-in (kp and mirror keep their own options too). */
static size_t state_bytes(int id) { return id == P_KP || id == P_MIRROR ? sizeof(learn_state_t) : sizeof(bi_state_t); }

/* n values s r, r uniform on [-sqrt 3, sqrt 3] (unit variance) or N(0,1): rndf's R. */
static void draw_random(const bi_state_t *st, asymbp_rng_t *rng, float *V, size_t n)
{
    size_t i;
    if (st->dist_normal) {
        for (i = 0; i < n; i++) V[i] = st->scale * (float)asymbp__rng_normal(rng);
    } else {
        const double half = 1.7320508075688772; /* U(-sqrt 3, sqrt 3) has unit variance */
        for (i = 0; i < n; i++) V[i] = st->scale * (float)(half * (2.0 * open_uniform(rng) - 1.0));
    }
}

static asymbp_status_t bi_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const policy_desc_t *d = user;
    learn_state_t ls;
    bi_state_t *st = &ls.base;
    asymbp_status_t rc = parse_options(a->ctx, d, a->options, &ls);
    size_t n = a->numel;
    if (rc != ASYMBP_OK) return rc;
    if (a->fan_in == 0 || a->fan_out == 0) return asymbp__error(a->ctx, ASYMBP_E_INVALID, "feedback '%s': layer has fan_in %zu, fan_out %zu", d->name, a->fan_in, a->fan_out);
    if (d->id == P_DFA && !a->direct)
        return asymbp__error(a->ctx, ASYMBP_E_INVALID, "feedback 'dfa': the layer's tensor is not a direct one");
    st->scale = resolve_scale(st, a);
    memcpy(state, &ls, state_bytes(d->id));
    switch (d->id) {
    case P_USF:
        write_signed_par(a->ctx, a->V, a->W, NULL, st->scale, n);
        break;
    case P_BRSF:
        fill_mag_signed(a->ctx, a->rng, st->mag, a->V, a->W, st->scale, n);
        break;
    case P_FRSF:
        fill_mag(a->ctx, a->rng, st->mag, a->buf, n);
        write_signed_par(a->ctx, a->V, a->W, a->buf, st->scale, n);
        break;
    case P_PARTIAL:
        fill_mag(a->ctx, a->rng, st->mag, a->buf, n);
        fill_mask(a->rng, st->p, a->buf + n, n);
        write_partial(a->V, a->W, a->buf, a->buf + n, st->scale, n);
        break;
    case P_RNDF:
    case P_DFA:   /* B, classes x block_size: fan_in block_size, fan_out classes */
    case P_KP:
    case P_MIRROR:
        draw_random(st, a->rng, a->V, n);
        break;
    case P_SIGNED_INIT:
        fill_mag_signed(a->ctx, a->rng, st->mag, a->V, a->W, st->scale, n);
        break;
    default:
        break;
    }
    return ASYMBP_OK;
}

static asymbp_status_t bi_refresh(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const policy_desc_t *d = user;
    const bi_state_t *st = state;
    size_t n = a->numel;
    switch (d->id) {
    case P_USF:
        write_signed_par(a->ctx, a->V, a->W, NULL, st->scale, n);
        break;
    case P_BRSF:
        fill_mag_signed(a->ctx, a->rng, st->mag, a->V, a->W, st->scale, n);
        break;
    case P_FRSF:
        write_signed_par(a->ctx, a->V, a->W, a->buf, st->scale, n);
        break;
    case P_PARTIAL:
        if (st->m_redraw) fill_mag(a->ctx, a->rng, st->mag, a->buf, n);
        if (st->mask_redraw) fill_mask(a->rng, st->p, a->buf + n, n);
        write_partial(a->V, a->W, a->buf, a->buf + n, st->scale, n);
        break;
    default:
        break;
    }
    return ASYMBP_OK;
}

/* ---- Learned feedback: Kolen-Pollack and the weight mirror (Akrout et al. 2019) --------------- */

/* Elementwise passes and the mirror's products, split over the context's threads in blocks of
 * rows of V (about the rows the layers give each thread). */
typedef struct learn_job {
    const learn_state_t *st;
    const asymbp_feedback_args_t *a;
    size_t rows, cols, units;
    const float *X;           /* mirror: the noise batch, batch x cols */
    float *Y;                 /* mirror: its image through W, batch x rows */
} learn_job_t;

static size_t learn_units(asymbp_ctx_t *ctx, size_t rows, size_t work)
{
    size_t U = (size_t)asymbp_ctx_get_threads(ctx);
    if (work < ((size_t)1 << 18)) U = 1;   /* small layers: not worth a hand-off */
    return U < rows ? U : rows;
}

/* Kolen-Pollack: V <- V + (W - W_before) - decay (V - W_before) = W + (1 - decay) (V - W_before):
 * V receives the step the update rule gave W, and V - W shrinks by (1 - decay). */
static void kp_units(void *arg, size_t u0, size_t u1, int t)
{
    const learn_job_t *j = arg;
    const float *restrict W = j->a->W, *restrict Wb = j->a->W_before;
    float *restrict V = j->a->V;
    float keep = 1.0f - j->st->decay;
    (void)t;
    for (size_t u = u0; u < u1; u++) {
        size_t e0 = j->rows * u / j->units * j->cols, e1 = j->rows * (u + 1) / j->units * j->cols;
        for (size_t i = e0; i < e1; i++) V[i] = W[i] + keep * (V[i] - Wb[i]);
    }
}

static asymbp_status_t kp_after(void *user, void *state, const asymbp_feedback_args_t *a)
{
    learn_job_t j;
    (void)user;
    if (!a->W_before) return asymbp__error(a->ctx, ASYMBP_E_STATE, "feedback 'kp': no copy of W before the step");
    memset(&j, 0, sizeof j);
    j.st = state;
    j.a = a;
    j.rows = a->shape[0] > 0 ? (size_t)a->shape[0] : 1;
    j.cols = a->numel / j.rows;
    j.units = learn_units(a->ctx, j.rows, a->numel);
    asymbp__parallel(a->ctx, j.units, (int)j.units, kp_units, &j);
    return ASYMBP_OK;
}

/* n values of N(0, sigma^2): |N(0,1)| magnitudes of the chunked generator (two draws of the
 * instance stream as its seed) with signs from a splitmix64 sequence seeded by two more. */
static void fill_normal(asymbp_ctx_t *ctx, asymbp_rng_t *rng, float *restrict dst, size_t n, float sigma)
{
    uint64_t s;
    fill_mag(ctx, rng, MAG_NORMAL, dst, n);
    s = (uint64_t)asymbp__rng_u32(rng) << 32;
    s |= asymbp__rng_u32(rng);
    for (size_t i = 0; i < n; i += 64) {
        uint64_t bits = splitmix64(&s);
        size_t e = n - i < 64 ? n - i : 64;
        for (size_t k = 0; k < e; k++) dst[i + k] *= (bits >> k) & 1u ? -sigma : sigma;
    }
}

/* Rows of V: Y[:, r0:r1] = X W[r0:r1]^T, then V[r0:r1] = (1 - decay) V[r0:r1] + (lr / batch)
 * Y[:, r0:r1]^T X. */
static void mirror_units(void *arg, size_t u0, size_t u1, int t)
{
    const learn_job_t *j = arg;
    const learn_state_t *st = j->st;
    size_t b = st->batch, R = j->rows, C = j->cols;
    (void)t;
    for (size_t u = u0; u < u1; u++) {
        size_t r0 = R * u / j->units, r1 = R * (u + 1) / j->units;
        if (r1 <= r0) continue;
        asymbp__sgemm(0, 1, b, r1 - r0, C, 1.0f, j->X, C, j->a->W + r0 * C, C, 0.0f, j->Y + r0, R);
        asymbp__sgemm(1, 0, r1 - r0, C, b, st->lr / (float)b, j->Y + r0, R, j->X, C, 1.0f - st->decay,
                      j->a->V + r0 * C, C);
    }
}

/* The weight mirror: noise x ~ N(0, noise^2) through the layer's weights (y = W x; a conv layer
 * as its matrix: x a patch of ic kh kw values), V moved toward the mean of y x^T (whose
 * expectation is noise^2 W), with decay: V -> (lr noise^2 / decay) W. */
static size_t mirror_dims(const learn_state_t *st, const asymbp_feedback_args_t *a, size_t *rows, size_t *cols)
{
    size_t out;
    *rows = a->shape[0] > 0 ? (size_t)a->shape[0] : 1;
    *cols = a->numel / *rows;
    if (asymbp__mul_size(st->batch, *rows + *cols, &out) != 0) return SIZE_MAX;
    return out;
}

static size_t mirror_scratch(void *user, const asymbp_feedback_args_t *a)
{
    learn_state_t st;
    size_t rows, cols;
    asymbp_status_t rc;
    /* bad options are reported by init, which runs next: parse quietly here */
    a->ctx->log_mute++;
    rc = parse_options(a->ctx, (const policy_desc_t *)user, a->options, &st);
    a->ctx->log_mute--;
    if (rc != ASYMBP_OK) return 0;
    return mirror_dims(&st, a, &rows, &cols);
}

static asymbp_status_t mirror_after(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const learn_state_t *st = state;
    learn_job_t j;
    size_t need;
    (void)user;
    memset(&j, 0, sizeof j);
    need = mirror_dims(st, a, &j.rows, &j.cols);
    if (!a->scratch || a->scratch_floats < need)
        return asymbp__error(a->ctx, ASYMBP_E_STATE, "feedback 'mirror': scratch of %zu floats, needs %zu", a->scratch_floats,
                             need);
    j.st = st;
    j.a = a;
    j.X = a->scratch;
    j.Y = a->scratch + (size_t)st->batch * j.cols;
    j.units = learn_units(a->ctx, j.rows, a->numel * st->batch / 16);
    for (uint32_t k = 0; k < st->steps; k++) {
        fill_normal(a->ctx, a->rng, a->scratch, (size_t)st->batch * j.cols, st->noise);
        asymbp__parallel(a->ctx, j.units, (int)j.units, mirror_units, &j);
    }
    return ASYMBP_OK;
}

/* ---- The static table ---------------------------------------------------------------------------
 * The built-ins are entries of the registry's feedback kind that live here, read-only: looking
 * them up never allocates, and they are called through the same vtable as a user policy. */
#define BUILTIN_X(ID, NAME, STATE, BUFS, FLAGS, INIT, REFRESH, AFTER, SCRATCH) \
    { { NULL, NAME, (void *)&descs[ID], NULL, 1, 0, { 0 } }, \
      { (uint32_t)sizeof(asymbp_feedback_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, NAME, STATE, BUFS, FLAGS, INIT, REFRESH, \
        AFTER, NULL, NULL, SCRATCH } }
#define BUILTIN(ID, NAME, STATE, BUFS, FLAGS, INIT, REFRESH) \
    BUILTIN_X(ID, NAME, STATE, BUFS, FLAGS, INIT, REFRESH, NULL, NULL)

static const asymbp__fb_entry_t builtin_entries[P_COUNT] = {
    BUILTIN(P_SYM, "sym", 0, 0, ASYMBP_FEEDBACK_SYMMETRIC, NULL, NULL),
    BUILTIN(P_USF, "usf", sizeof(bi_state_t), 0, 0, bi_init, bi_refresh),
    BUILTIN(P_BRSF, "brsf", sizeof(bi_state_t), 0, 0, bi_init, bi_refresh),
    BUILTIN(P_FRSF, "frsf", sizeof(bi_state_t), 1, 0, bi_init, bi_refresh),
    BUILTIN(P_PARTIAL, "partial", sizeof(bi_state_t), 2, 0, bi_init, bi_refresh),
    BUILTIN(P_RNDF, "rndf", sizeof(bi_state_t), 0, 0, bi_init, NULL),          /* V fixed at init */
    BUILTIN(P_SIGNED_INIT, "signed-init", sizeof(bi_state_t), 0, 0, bi_init, NULL),
    /* B fixed at init; the net delivers the output error through it (deliver NULL: error B) */
    BUILTIN(P_DFA, "dfa", sizeof(bi_state_t), 0, ASYMBP_FEEDBACK_DIRECT, bi_init, NULL),
    BUILTIN_X(P_KP, "kp", sizeof(learn_state_t), 0, ASYMBP_FEEDBACK_W_BEFORE, bi_init, NULL, kp_after, NULL),
    BUILTIN_X(P_MIRROR, "mirror", sizeof(learn_state_t), 0, 0, bi_init, NULL, mirror_after, mirror_scratch),
};

typedef char builtin_count_check[(P_COUNT == ASYMBP__FB_BUILTIN_COUNT) ? 1 : -1];

const asymbp__plugin_t *const asymbp__fb_builtins[ASYMBP__FB_BUILTIN_COUNT] = {
    &builtin_entries[P_SYM].base, &builtin_entries[P_USF].base, &builtin_entries[P_BRSF].base,
    &builtin_entries[P_FRSF].base, &builtin_entries[P_PARTIAL].base, &builtin_entries[P_RNDF].base,
    &builtin_entries[P_SIGNED_INIT].base, &builtin_entries[P_DFA].base, &builtin_entries[P_KP].base,
    &builtin_entries[P_MIRROR].base,
};
