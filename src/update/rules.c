/* Built-in update rules: SGD (momentum, Nesterov, weight decay) and Batch Manhattan with its
 * variants a/b/c and the no-sign-change option: a static table of the registry's update-rule
 * kind, called through the same vtable as user rules.
 * State: one float (the momentum buffer u) per parameter element, zero at the start. */
#include <math.h>
#include "update/update_impl.h"

/* On x86-64 with GCC the step loops also get AVX-512 and AVX2 clones picked at load time (ifunc):
 * the same operations in the same order (no FMA contraction in C99 mode), so the same bits
 * whichever clone runs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(ASYMBP_NO_CLONES)
#define ASYMBP__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ASYMBP__CLONES
#endif

/* sign(x) in {-1, 0, +1}; sign(0) = 0 (and sign(NaN) = 0). */
static inline float sgnf(float x)
{
    return (float)((x > 0.0f) - (x < 0.0f));
}

ASYMBP__CLONES
static asymbp_status_t sgd_step(void *user, void *state, const asymbp_update_args_t *a)
{
    float *restrict u = state;
    float *restrict w = a->w;
    const float *restrict g = a->g;
    const float mu = a->momentum, lam = a->weight_decay, lr = a->lr;
    const size_t n = a->n;
    size_t i;
    (void)user;
    if (a->nesterov) {
        for (i = 0; i < n; i++) {
            float gi = g[i] + lam * w[i];
            float ui = mu * u[i] + gi;
            u[i] = ui;
            w[i] = w[i] - lr * (gi + mu * ui);
        }
    } else {
        for (i = 0; i < n; i++) {
            float ui = mu * u[i] + (g[i] + lam * w[i]);
            u[i] = ui;
            w[i] = w[i] - lr * ui;
        }
    }
    return ASYMBP_OK;
}

/* Batch Manhattan.  variant 'a': d = sign(g) + lam w;  'b': d = sign(g + lam w);
 * 'c': d = g + lam w and the step is sign(.) of the momentum direction.
 * u = mu u + d; s = nesterov ? d + mu u : u; W -= lr * (variant c ? sign(s) : s).
 * No-sign-change (weights only): a non-zero weight whose update would flip its sign or make it
 * zero is set to copysign(min(eps, |w|), w) instead; a weight that is exactly 0 moves freely.
 * Distributed vote (args->grad_is_vote): g is the majority sign v of the ranks' sign(g) votes, so
 * the same loops apply it: sign(v) = v, and 'a' steps by sign(majority) + lam w (signSGD with
 * majority vote, with BM's momentum and decay), 'b' by sign(v + lam w), 'c' by the sign of the
 * momentum of v + lam w.  Every variant therefore accepts a vote (ASYMBP_UPDATE_ACCEPTS_VOTE). */
typedef struct bm_variant {
    char variant;
    int nsc;
} bm_variant_t;

/* One loop per (variant, nesterov, nsc) combination: the flags are compile-time constants in each
 * inlined copy, so every loop is branch-free and vectorisable. */
static inline void bm_kernel(const char variant, const int nest, const int nsc, float *restrict w, float *restrict u,
                             const float *restrict g, size_t n, float lr, float mu, float lam, float eps)
{
    size_t i;
    for (i = 0; i < n; i++) {
        float wi = w[i], d, ui, s, wn;
        if (variant == 'a') d = sgnf(g[i]) + lam * wi;
        else if (variant == 'b') d = sgnf(g[i] + lam * wi);
        else d = g[i] + lam * wi;
        ui = mu * u[i] + d;
        u[i] = ui;
        s = nest ? d + mu * ui : ui;
        if (variant == 'c') s = sgnf(s);
        wn = wi - lr * s;
        if (nsc) {
            /* flips or reaches 0: keep copysign(min(eps, |w|), w); bitwise ops keep it branch-free */
            float aw = fabsf(wi), keep = aw < eps ? aw : eps;
            int flips = ((wi > 0.0f) & !(wn > 0.0f)) | ((wi < 0.0f) & !(wn < 0.0f));
            wn = flips ? copysignf(keep, wi) : wn;
        }
        w[i] = wn;
    }
}

#define BM_CASE(V, NE, NS) bm_kernel(V, NE, NS, a->w, u, a->g, a->n, a->lr, a->momentum, a->weight_decay, a->nsc_epsilon)
#define BM_VARIANT(V) \
    do { \
        if (nest) { if (nsc) BM_CASE(V, 1, 1); else BM_CASE(V, 1, 0); } \
        else { if (nsc) BM_CASE(V, 0, 1); else BM_CASE(V, 0, 0); } \
    } while (0)

ASYMBP__CLONES
static asymbp_status_t bm_step(void *user, void *state, const asymbp_update_args_t *a)
{
    const bm_variant_t *v = user;
    float *u = state;
    const int nest = a->nesterov != 0;
    const int nsc = v->nsc && a->kind == ASYMBP_PARAM_WEIGHT;
    if (v->variant == 'a') BM_VARIANT('a');
    else if (v->variant == 'b') BM_VARIANT('b');
    else BM_VARIANT('c');
    return ASYMBP_OK;
}

static const bm_variant_t bm_variants[6] = {
    {'a', 0}, {'b', 0}, {'c', 0}, {'a', 1}, {'b', 1}, {'c', 1}
};

/* ---- The static table ---------------------------------------------------------------------------
 * The built-ins are entries of the registry's update-rule kind that live here, read-only: looking
 * them up never allocates, and they are called through the same vtable as a user rule. */
#define BUILTIN(NAME, USER, STEP, DEFAULTS, FLAGS) \
    { { NULL, NAME, (void *)(USER), NULL, 1, 0, { 0 } }, \
      { (uint32_t)sizeof(asymbp_update_rule_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, NAME, sizeof(float), NULL, STEP, NULL, \
        DEFAULTS, FLAGS }, \
      ASYMBP_HYPER_PARAMS_INIT }

/* Default hyper-parameters: SGD the library's; Batch Manhattan moves every weight by lr (times
 * the momentum sum) each step whatever the gradient's size, so it wants a much smaller rate. */
static const asymbp_hyper_params_t sgd_defaults = ASYMBP_HYPER_PARAMS_INIT;
static const asymbp_hyper_params_t bm_defaults = { sizeof(asymbp_hyper_params_t), 0.0005f, 0.9f, 0, 0.0f, 0, 1e-6f };

static const struct asymbp_update_rule builtin_rules[ASYMBP__UPDATE_BUILTIN_COUNT] = {
    BUILTIN("sgd", NULL, sgd_step, &sgd_defaults, 0),
    BUILTIN("bm", &bm_variants[0], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
    BUILTIN("bm:b", &bm_variants[1], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
    BUILTIN("bm:c", &bm_variants[2], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
    BUILTIN("bm:nsc", &bm_variants[3], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
    BUILTIN("bm:b:nsc", &bm_variants[4], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
    BUILTIN("bm:c:nsc", &bm_variants[5], bm_step, &bm_defaults, ASYMBP_UPDATE_ACCEPTS_VOTE),
};

const asymbp__plugin_t *const asymbp__update_builtins[ASYMBP__UPDATE_BUILTIN_COUNT] = {
    &builtin_rules[0].base, &builtin_rules[1].base, &builtin_rules[2].base, &builtin_rules[3].base,
    &builtin_rules[4].base, &builtin_rules[5].base, &builtin_rules[6].base,
};
