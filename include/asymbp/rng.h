/* asymbp/rng.h - a seeded random generator, identical on every platform.
 *
 * Algorithm (documented so streams can be reproduced elsewhere): PCG32, PCG-XSH-RR with a 64-bit
 * LCG state (multiplier 6364136223846793005) and a stream-selecting odd increment.  Seeding
 * (seed, stream): inc = (stream << 1) | 1; state = 0; step; state += seed; step.  Each draw steps
 * the LCG and outputs the XSH-RR permutation of the old state.  Floats: uniform in [0, 1) as
 * (u32 >> 8) * 2^-24.  Normals: Box-Muller from two uniforms, one value per call (no cache, so
 * the state is fully described by (state, inc)).  Split: a child stream is seeded with
 * (next u32 of the parent << 32 | next u32 of the parent, stream id) and advances the parent by
 * two draws. */
#ifndef ASYMBP_RNG_H
#define ASYMBP_RNG_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct asymbp_rng asymbp_rng_t;

/* Create a generator for (seed, stream).  ctx: borrowed (allocator).  out: owned by the
 * caller (asymbp_rng_destroy).  Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_rng_create(asymbp_ctx_t *ctx, uint64_t seed, uint64_t stream, asymbp_rng_t **out);
/* Split off an independent stream (see the header comment); advances parent.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_rng_split(asymbp_rng_t *parent, uint64_t stream, asymbp_rng_t **out);
ASYMBP_API void asymbp_rng_destroy(asymbp_rng_t *rng);

/* Draws.  rng must not be NULL (a NULL rng returns 0).  Since 0.1. */
ASYMBP_API uint32_t asymbp_rng_u32(asymbp_rng_t *rng);
/* Uniform in [0, 1). */
ASYMBP_API float asymbp_rng_uniform(asymbp_rng_t *rng);
/* Standard normal N(0, 1). */
ASYMBP_API float asymbp_rng_normal(asymbp_rng_t *rng);
/* Uniform integer in [0, n) without modulo bias; 0 when n == 0. */
ASYMBP_API uint32_t asymbp_rng_below(asymbp_rng_t *rng, uint32_t n);

/* The full state (two words), for checkpoints: get writes state[0..1], set restores it
 * (state[1] must be odd: ASYMBP_E_INVALID otherwise).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_rng_get_state(const asymbp_rng_t *rng, uint64_t state[2]);
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_rng_set_state(asymbp_rng_t *rng, const uint64_t state[2]);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_RNG_H */
