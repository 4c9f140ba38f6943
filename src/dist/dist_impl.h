/* Private to the library: the communicator kind of the plugin registry and the collective helpers
 * the layers above (update/, train/) call.  dist/ uses only core/. */
#ifndef ASYMBP_DIST_IMPL_H
#define ASYMBP_DIST_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "core/core_impl.h"
#include "asymbp/dist.h"

/* One registered communicator: the registry head, the checked copy of its vtable (static for the
 * built-in), rank and size as asked at registration, and the traffic counters (user entries
 * only: the built-in is a read-only static table and carries nothing). */
struct asymbp_comm {
    asymbp__plugin_t base;
    asymbp_comm_vtable_t vt;
    int rank, size;
    asymbp_comm_stats_t stats;
};

extern const asymbp__plugin_kind_t asymbp__comm_kind;

/* The collectives with an error message naming `what` ("gradient sum of step 12"): a failure of
 * the plugin becomes ASYMBP_E_COMM, "what: communicator 'mpi' (rank 1 of 4): allreduce of 3
 * floats failed: <its last_error>".  c must not be NULL. */
asymbp_status_t asymbp__comm_sum_f32(asymbp_ctx_t *ctx, const asymbp_comm_t *c, float *buf, size_t n, const char *what);
asymbp_status_t asymbp__comm_sum_int(asymbp_ctx_t *ctx, const asymbp_comm_t *c, void *buf, size_t n,
                                     asymbp_comm_int_t type, const char *what);
asymbp_status_t asymbp__comm_bcast(asymbp_ctx_t *ctx, const asymbp_comm_t *c, void *buf, size_t bytes, int root,
                                   const char *what);
/* The narrowest integer type in which a sum of `size` values in [-1, 1] cannot overflow. */
asymbp_comm_int_t asymbp__comm_vote_type(int size);
/* Collective: ASYMBP_OK when every rank passed the same value, ASYMBP_E_COMM ("what: the ranks
 * disagree: k of n ranks differ from rank 0") otherwise; *differ (may be NULL) gets k. */
asymbp_status_t asymbp__comm_check_same(asymbp_ctx_t *ctx, const asymbp_comm_t *c, uint64_t value, const char *what,
                                        int *differ);
/* Collective: every rank passes its own status; when any rank's is not OK, every rank gets a
 * non-OK result: its own status when it failed (message untouched), else ASYMBP_E_COMM with
 * "what: failed on k of n ranks".  ASYMBP_OK when all passed ASYMBP_OK. */
asymbp_status_t asymbp__comm_all_ok(asymbp_ctx_t *ctx, const asymbp_comm_t *c, asymbp_status_t mine, const char *what);

#endif
