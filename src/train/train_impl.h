/* Private to train/: helpers shared by the trainer and the BN recalibration. */
#ifndef ASYMBP_TRAIN_IMPL_H
#define ASYMBP_TRAIN_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/net.h"
#include "asymbp/data.h"
#include "asymbp/dist.h"

/* The recalibration pass with caller scratch: order (count of data entries) and x (the net's bound
 * batch x sample floats).  Uses up to max_samples samples (0: all) in an order drawn from seed. */
asymbp_status_t asymbp__bn_recal_run(asymbp_net_t *net, const asymbp_dataset_t *data, size_t max_samples, uint64_t seed,
                                     size_t *order, float *x);

/* ---- Data-parallel training (dist.c; docs/distributed.md) ------------------------------------- */

/* Rank r's share of n samples split over `ranks`: [*lo, *lo + *cnt), the first n % ranks ranks
 * taking one sample more than the others (so rank 0 has a sample whenever n >= 1). */
void asymbp__dist_split(size_t n, int rank, int ranks, size_t *lo, size_t *cnt);
/* Collective: replace every BN running mean and variance by its mean over the ranks (scratch:
 * bn_floats floats).  Nothing to do without BN. */
asymbp_status_t asymbp__dist_bn_average(asymbp_net_t *net, const asymbp_comm_t *comm, float *scratch, size_t bn_floats);
/* Collective: ASYMBP_E_COMM unless every rank holds the same parameters and BN statistics, bit for
 * bit (a fingerprint of them is compared; scratch: bn_floats floats). */
asymbp_status_t asymbp__dist_check_weights(asymbp_net_t *net, const asymbp_comm_t *comm, int epoch, float *scratch,
                                           size_t bn_floats);
/* Collective: loss and accuracy over ds, each rank evaluating its share and the sums combined
 * (NaN when ds is NULL or empty, as without ranks). */
asymbp_status_t asymbp__dist_evaluate(asymbp_net_t *net, const asymbp_comm_t *comm, const asymbp_dataset_t *ds, double *loss,
                                      double *acc);
/* Collective: the file at path as rank 0 reads it, in every rank's memory (rank 0 reads it and
 * broadcasts it, so the other ranks need not see rank 0's disk).  As asymbp__file_read: *data
 * (free with asymbp__free) and r the chunk area; a failure on rank 0 (its message there) is
 * ASYMBP_E_IO or its own status on every rank. */
asymbp_status_t asymbp__dist_file_read(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, const char *path, uint32_t kind,
                                       unsigned char **data, struct asymbp__rbuf *r);

#endif
