/** @file
 * @brief Distributed training: communicators (the collective operations between the processes,
 * "ranks", of one data-parallel run) as a plugin kind, and the two ways an optimizer combines the
 * ranks' gradients.
 *
 * The library itself never links MPI or any network library.  A communicator is a vtable of
 * collective operations registered in a context like the other plugin kinds (docs/plugins.md):
 * the built-in "local" is the one-process communicator (rank 0 of 1); the MPI communicator is the
 * optional module libasymbp-mpi (asymbp/mpi.h, built with `make MPI=1`); a host can register its
 * own (a thread team, NCCL, a socket ring...).  The optimizer (asymbp_optimizer_set_comm()) and
 * the trainer (asymbp_trainer_set_comm()) use one when it is set; without one nothing changes.
 * docs/distributed.md describes data-parallel training, its traffic and how to run it. */
#ifndef ASYMBP_DIST_H
#define ASYMBP_DIST_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/plugin.h"
#ifdef __cplusplus
extern "C" {
#endif

/** @name How the ranks' gradients are combined */
/** @{ */

/** How the ranks' gradients are combined.  Values are pinned.
 * @since 0.2 */
typedef enum asymbp_dist_mode {
    /** Every rank's gradient (weighted by its share of the global batch) is summed over the
     * ranks, so the update rule sees the mean gradient of the global batch, as one process would
     * (up to the order of the float additions).  4 bytes per parameter per step. */
    ASYMBP_DIST_EXACT = 0,
    /** Every rank sends sign(g) of its own gradient as a small integer; the update rule sees the
     * sign of the summed votes (the majority; a tie gives 0).  This is signSGD with majority vote
     * (Bernstein et al. 2018) for Batch Manhattan.  1 byte per parameter per step (2 beyond 127
     * ranks).  Only rules that accept a vote (::ASYMBP_UPDATE_ACCEPTS_VOTE: the Batch Manhattan
     * family) can use it. */
    ASYMBP_DIST_VOTE = 1
} asymbp_dist_mode_t;

/** The name of a mode.
 * @param mode the mode
 * @return "exact" or "vote" (static text; "unknown" for another value)
 * @since 0.2 */
ASYMBP_API const char *asymbp_dist_mode_name(asymbp_dist_mode_t mode);
/** The mode called name.
 * @param name "exact" or "vote", case-insensitive
 * @param out receives the mode
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL), ::ASYMBP_E_NOTFOUND (another name)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dist_mode_parse(const char *name, asymbp_dist_mode_t *out);

/** @} */

/** @name Communicator plugins
 * Every operation but rank and size is collective: every rank of the communicator calls it, in
 * the same order, with the same count, type and root.  The library calls them from the thread
 * that drives the context (never from its worker threads), and never from inside another one. */
/** @{ */

/** Element types of asymbp_comm_vtable_t.allreduce_sum_int; the value is the width in bytes.
 * Values are pinned.
 * @since 0.2 */
typedef enum asymbp_comm_int {
    ASYMBP_COMM_INT8 = 1,    /**< int8_t */
    ASYMBP_COMM_INT16 = 2,   /**< int16_t */
    ASYMBP_COMM_INT32 = 4    /**< int32_t */
} asymbp_comm_int_t;

/** A communicator vtable.  Fill it starting from ::ASYMBP_COMM_VTABLE_INIT.
 * @since 0.2 */
typedef struct asymbp_comm_vtable {
    uint32_t    struct_size;  ///< sizeof as the plugin was compiled; set by the INIT macro
    uint32_t    abi_version;  ///< ::ASYMBP_PLUGIN_ABI_VERSION
    const char *name;         /**< unique in the context, case-insensitively; letters, digits,
                                   '-', '_', '.', at most 63 bytes (copied) */
    /** (required) This process's rank, in [0, size).  Must stay the same for as long as the
     * communicator is registered.  Not collective. */
    int (*rank)(void *user);
    /** (required) The number of ranks (>= 1).  Must stay the same for as long as the communicator
     * is registered.  Not collective. */
    int (*size)(void *user);
    /** (required) Replace buf[0..count) by its elementwise sum over all ranks.  On return every
     * rank must hold the same sums bit for bit (the library checks that the ranks' weights agree
     * once per epoch, and they agree only if it does).  count may be 0. */
    asymbp_status_t (*allreduce_sum_f32)(void *user, float *buf, size_t count);
    /** (required) The same for count signed integers of the given type.  The library calls it only
     * when no sum can overflow the type. */
    asymbp_status_t (*allreduce_sum_int)(void *user, void *buf, size_t count, asymbp_comm_int_t type);
    /** (required) Copy bytes bytes of rank root's buf into buf on every other rank. */
    asymbp_status_t (*broadcast)(void *user, void *buf, size_t bytes, int root);
    /** (required) Return once every rank has called it. */
    asymbp_status_t (*barrier)(void *user);
    /** (optional) A text describing the last failed operation (a peer that died, a timeout), which
     * the library puts into its error message; borrowed, valid until the next call. */
    const char *(*last_error)(void *user);
    /* ---- end of version 1: append new members below, never reorder ---- */
} asymbp_comm_vtable_t;
/** The smallest struct_size the library accepts: a vtable may end after `barrier`.
 * @since 0.2 */
#define ASYMBP_COMM_VTABLE_MIN_SIZE \
    (offsetof(asymbp_comm_vtable_t, barrier) + sizeof(asymbp_status_t (*)(void)))
/** Initializer of ::asymbp_comm_vtable_t: struct_size and abi_version set, every other member
 * NULL. */
#define ASYMBP_COMM_VTABLE_INIT \
    { (uint32_t)sizeof(asymbp_comm_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, 0, 0, 0, 0, 0, 0, 0, 0 }

/** A registered communicator: a borrowed handle owned by the context (the built-in "local": by the
 * library), valid until its registration ends. */
typedef struct asymbp_comm asymbp_comm_t;

/** @} */

/** @name Registry
 * The registry follows the rules every plugin kind shares (docs/plugins.md): the built-in "local"
 * first, then user communicators in registration order; names unique case-insensitively; queries
 * never allocate. */
/** @{ */

/** Register a communicator in ctx under vt->name.  The vtable is copied (min(vt->struct_size,
 * sizeof) bytes, the rest zero-filled); the caller's vtable need not outlive the call.  rank and
 * size are asked once, here (size >= 1, 0 <= rank < size).
 * @param ctx the context
 * @param vt the vtable
 * @param user handed to every callback (an MPI communicator, a thread team...)
 * @param user_free (may be NULL) runs exactly once, when the registration ends
 *     (asymbp_comm_unregister() or asymbp_ctx_destroy()); not called when registration fails
 * @param out (may be NULL) receives the borrowed handle
 * @return ::ASYMBP_OK; ::ASYMBP_E_INVALID (NULL ctx/vt, a required member missing, bad name or a
 *     name taken, rank or size out of range); ::ASYMBP_E_UNSUPPORTED (abi_version, struct_size
 *     below ::ASYMBP_COMM_VTABLE_MIN_SIZE); ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_comm_register(asymbp_ctx_t *ctx, const asymbp_comm_vtable_t *vt, void *user, void (*user_free)(void *user),
                     asymbp_comm_t **out);
/** End a user communicator's registration (its user_free runs now).
 * @param ctx the context
 * @param name the communicator's name
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, or the built-in), ::ASYMBP_E_NOTFOUND,
 *     ::ASYMBP_E_STATE (an optimizer or trainer still uses it)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_comm_unregister(asymbp_ctx_t *ctx, const char *name);
/** Look a communicator up by name.  Never allocates.
 * @param ctx the context
 * @param name "local", or a registered name; case-insensitive
 * @param out receives the borrowed handle
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOTFOUND (the detail lists the known ones)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_comm_find(asymbp_ctx_t *ctx, const char *name, asymbp_comm_t **out);
/** Number of registered communicators (the built-in included).  Never allocates.
 * @param ctx the context
 * @return the count; 0 when ctx is NULL
 * @since 0.2 */
ASYMBP_API size_t asymbp_comm_count(const asymbp_ctx_t *ctx);
/** The i-th registered communicator.  Never allocates.
 * @param ctx the context
 * @param i index, 0 .. asymbp_comm_count() - 1
 * @return the borrowed handle; NULL out of range
 * @since 0.2 */
ASYMBP_API asymbp_comm_t *asymbp_comm_at(const asymbp_ctx_t *ctx, size_t i);
/** The registered name.
 * @param comm the communicator
 * @return borrowed; "" for NULL
 * @since 0.2 */
ASYMBP_API const char *asymbp_comm_name(const asymbp_comm_t *comm);
/** This process's rank, as reported at registration.
 * @param comm the communicator
 * @return the rank; 0 for NULL
 * @since 0.2 */
ASYMBP_API int asymbp_comm_rank(const asymbp_comm_t *comm);
/** The number of ranks, as reported at registration.
 * @param comm the communicator
 * @return the number of ranks; 1 for NULL
 * @since 0.2 */
ASYMBP_API int asymbp_comm_size(const asymbp_comm_t *comm);

/** @} */

/** @name Collective operations
 * For hosts that coordinate their own work over the ranks (a sweep handing out cells, a host's
 * own metrics): each calls the vtable and turns a failure into ::ASYMBP_E_COMM with the
 * communicator's name, this rank and its last_error text in the context's last error.  Every
 * rank must call the same operations in the same order.  Each returns ::ASYMBP_OK,
 * ::ASYMBP_E_INVALID (NULL comm, NULL buf with count > 0, an unknown type, root out of range),
 * ::ASYMBP_E_COMM.  Since 0.2. */
/** @{ */

/** Replace buf[0..count) by its elementwise sum over all ranks.
 * @param ctx the context the communicator is registered in (for the message; may be NULL)
 * @param comm the communicator
 * @param buf count floats
 * @param count elements
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL comm, NULL buf with count > 0), ::ASYMBP_E_COMM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_comm_allreduce_sum_f32(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, float *buf, size_t count);
/** Replace buf[0..count) by its elementwise sum over all ranks, for signed integers of the given
 * type.
 * @param ctx the context the communicator is registered in (for the message; may be NULL)
 * @param comm the communicator
 * @param buf count integers of the given type
 * @param count elements
 * @param type the element type
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL comm, NULL buf with count > 0, an unknown type),
 *     ::ASYMBP_E_COMM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_comm_allreduce_sum_int(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, void *buf, size_t count,
                              asymbp_comm_int_t type);
/** Copy bytes bytes of rank root's buf into buf on every other rank.
 * @param ctx the context the communicator is registered in (for the message; may be NULL)
 * @param comm the communicator
 * @param buf bytes bytes
 * @param bytes the size
 * @param root the rank whose buf is copied
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL comm, NULL buf with bytes > 0, root out of range),
 *     ::ASYMBP_E_COMM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_comm_broadcast(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, void *buf, size_t bytes, int root);
/** Return once every rank has called it.
 * @param ctx the context the communicator is registered in (for the message; may be NULL)
 * @param comm the communicator
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL comm), ::ASYMBP_E_COMM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_comm_barrier(asymbp_ctx_t *ctx, const asymbp_comm_t *comm);

/** What a communicator has carried so far through the functions above and the library's own use
 * (optimizer steps, the trainer's epoch-end sums, checkpoints).  Payload bytes as this rank
 * handed them to the communicator; what goes over the wire depends on its algorithm (a ring
 * allreduce sends about 2 (size - 1) / size times the payload; docs/distributed.md).  The
 * built-in "local" carries nothing and counts nothing.
 * @since 0.2 */
typedef struct asymbp_comm_stats {
    size_t struct_size;        ///< caller-filled: sizeof as the caller was compiled
    uint64_t operations;       ///< collective operations called
    uint64_t allreduce_bytes;  ///< payload of the sums (floats and integers)
    uint64_t broadcast_bytes;  ///< payload of the broadcasts
} asymbp_comm_stats_t;
/** Initializer of ::asymbp_comm_stats_t: struct_size set, counters 0. */
#define ASYMBP_COMM_STATS_INIT { sizeof(asymbp_comm_stats_t), 0, 0, 0 }
/** Read the counters.
 * @param comm the communicator
 * @param stats caller-filled struct_size; min(stats->struct_size, sizeof) bytes are written
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, struct_size too small)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_comm_get_stats(const asymbp_comm_t *comm, asymbp_comm_stats_t *stats);
/** Reset the counters.
 * @param comm the communicator
 * @since 0.2 */
ASYMBP_API void asymbp_comm_reset_stats(const asymbp_comm_t *comm);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_DIST_H */
