/** @file
 * @brief A seeded random generator, identical on every platform.
 *
 * Algorithm (documented so streams can be reproduced elsewhere): PCG32, PCG-XSH-RR with a 64-bit
 * LCG state (multiplier 6364136223846793005) and a stream-selecting odd increment.
 * - Seeding (seed, stream): inc = (stream << 1) | 1; state = 0; step; state += seed; step.
 * - Each draw steps the LCG and outputs the XSH-RR permutation of the old state.
 * - Floats: uniform in [0, 1) as (u32 >> 8) * 2^-24.
 * - Normals: Box-Muller from two uniforms, one value per call (no cache, so the state is fully
 *   described by (state, inc)).
 * - Split: a child stream is seeded with (next u32 of the parent << 32 | next u32 of the parent,
 *   stream id) and advances the parent by two draws. */
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

/** A random generator (opaque handle): created by asymbp_rng_create() or asymbp_rng_split(),
 * destroyed by asymbp_rng_destroy(). */
typedef struct asymbp_rng asymbp_rng_t;

/** Create a generator for (seed, stream).
 * @param ctx borrowed (allocator)
 * @param seed the seed
 * @param stream the stream
 * @param out receives the generator, owned by the caller (asymbp_rng_destroy())
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_rng_create(asymbp_ctx_t *ctx, uint64_t seed, uint64_t stream, asymbp_rng_t **out);
/** Split off an independent stream (see the file's description); advances parent.
 * @param parent the generator split from (advanced by two draws)
 * @param stream the child's stream id
 * @param out receives the child, owned by the caller (asymbp_rng_destroy())
 * @return as asymbp_rng_create()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_rng_split(asymbp_rng_t *parent, uint64_t stream, asymbp_rng_t **out);
/** Destroy a generator.
 * @param rng the generator (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_rng_destroy(asymbp_rng_t *rng);

/** Draw 32 random bits.
 * @param rng the generator, advanced; must not be NULL (a NULL rng returns 0)
 * @return the next output of the generator
 * @since 0.1 */
ASYMBP_API uint32_t asymbp_rng_u32(asymbp_rng_t *rng);
/** Draw a float uniform in [0, 1).
 * @param rng the generator, advanced; must not be NULL (a NULL rng returns 0)
 * @return the draw
 * @since 0.1 */
ASYMBP_API float asymbp_rng_uniform(asymbp_rng_t *rng);
/** Draw a standard normal N(0, 1).
 * @param rng the generator, advanced; must not be NULL (a NULL rng returns 0)
 * @return the draw
 * @since 0.1 */
ASYMBP_API float asymbp_rng_normal(asymbp_rng_t *rng);
/** Draw a uniform integer in [0, n) without modulo bias.
 * @param rng the generator, advanced; must not be NULL (a NULL rng returns 0)
 * @param n the bound
 * @return the draw; 0 when n == 0
 * @since 0.1 */
ASYMBP_API uint32_t asymbp_rng_below(asymbp_rng_t *rng, uint32_t n);

/** The full state (two words), for checkpoints: writes state[0..1].
 * @param rng the generator
 * @param state receives the state
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_rng_get_state(const asymbp_rng_t *rng, uint64_t state[2]);
/** Restore a state written by asymbp_rng_get_state().
 * @param rng the generator
 * @param state the state; state[1] must be odd
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (also when state[1] is even)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_rng_set_state(asymbp_rng_t *rng, const uint64_t state[2]);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_RNG_H */
