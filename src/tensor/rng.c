/* PCG32 (PCG-XSH-RR 64/32); the algorithm is spelled out in asymbp/rng.h. */
#include <math.h>
#include "core/core_impl.h"
#include "tensor/tensor_impl.h"
#include "asymbp/rng.h"

#define PCG_MULT 6364136223846793005ULL

void asymbp__rng_seed(asymbp_rng_t *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = (stream << 1) | 1u;
    (void)asymbp__rng_u32(r);
    r->state += seed;
    (void)asymbp__rng_u32(r);
}

uint32_t asymbp__rng_u32(asymbp_rng_t *r)
{
    uint64_t old = r->state;
    uint32_t xorshifted, rot;
    r->state = old * PCG_MULT + r->inc;
    xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

void asymbp__rng_advance(asymbp_rng_t *r, uint64_t delta)
{
    /* state -> a state + c after one draw (a = PCG_MULT, c = inc); k draws compose to
     * A state + C, built from the binary digits of delta: step (a, c) doubled each round */
    uint64_t a = PCG_MULT, c = r->inc, acc_a = 1u, acc_c = 0u;
    while (delta) {
        if (delta & 1u) {
            acc_a *= a;
            acc_c = acc_c * a + c;
        }
        c = (a + 1u) * c;
        a *= a;
        delta >>= 1;
    }
    r->state = acc_a * r->state + acc_c;
}

float asymbp__rng_uniform(asymbp_rng_t *r)
{
    return (float)(asymbp__rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

float asymbp__rng_normal(asymbp_rng_t *r)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite.  Computed in double for portability of the
     * rounding (the float result is the same wherever libm is correctly rounded to ~1 ulp). */
    double u1 = ((double)(asymbp__rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(asymbp__rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t asymbp__rng_below(asymbp_rng_t *r, uint32_t n)
{
    uint32_t threshold, x;
    if (n == 0) return 0;
    threshold = (uint32_t)(-n) % n; /* Lemire-style rejection of the biased low range */
    do { x = asymbp__rng_u32(r); } while (x < threshold);
    return x % n;
}

asymbp_status_t asymbp_rng_create(asymbp_ctx_t *ctx, uint64_t seed, uint64_t stream, asymbp_rng_t **out)
{
    asymbp_rng_t *r;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "rng_create: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    r = asymbp__alloc(ctx, sizeof *r);
    if (!r) return asymbp__error(ctx, ASYMBP_E_NOMEM, "rng_create: out of memory");
    r->ctx = ctx;
    asymbp__rng_seed(r, seed, stream);
    *out = r;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_rng_split(asymbp_rng_t *parent, uint64_t stream, asymbp_rng_t **out)
{
    uint64_t seed;
    if (!out) return parent ? asymbp__error(parent->ctx, ASYMBP_E_INVALID, "rng_split: out is NULL") : ASYMBP_E_INVALID;
    *out = NULL;
    if (!parent) return ASYMBP_E_INVALID;
    seed = (uint64_t)asymbp__rng_u32(parent) << 32;
    seed |= asymbp__rng_u32(parent);
    return asymbp_rng_create(parent->ctx, seed, stream, out);
}

void asymbp_rng_destroy(asymbp_rng_t *rng)
{
    if (rng) asymbp__free(rng->ctx, rng);
}

uint32_t asymbp_rng_u32(asymbp_rng_t *rng) { return rng ? asymbp__rng_u32(rng) : 0; }
float asymbp_rng_uniform(asymbp_rng_t *rng) { return rng ? asymbp__rng_uniform(rng) : 0.0f; }
float asymbp_rng_normal(asymbp_rng_t *rng) { return rng ? asymbp__rng_normal(rng) : 0.0f; }
uint32_t asymbp_rng_below(asymbp_rng_t *rng, uint32_t n) { return rng ? asymbp__rng_below(rng, n) : 0; }

asymbp_status_t asymbp_rng_get_state(const asymbp_rng_t *rng, uint64_t state[2])
{
    if (!rng || !state) return ASYMBP_E_INVALID;
    state[0] = rng->state;
    state[1] = rng->inc;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_rng_set_state(asymbp_rng_t *rng, const uint64_t state[2])
{
    if (!rng || !state) return ASYMBP_E_INVALID;
    if (!(state[1] & 1u))
        return asymbp__error(rng->ctx, ASYMBP_E_INVALID, "rng_set_state: the increment (state[1]) must be odd");
    rng->state = state[0];
    rng->inc = state[1];
    return ASYMBP_OK;
}
