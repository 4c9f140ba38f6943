/* Private to train/: helpers shared by the trainer and the BN recalibration. */
#ifndef ASYMBP_TRAIN_IMPL_H
#define ASYMBP_TRAIN_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/net.h"
#include "asymbp/data.h"

/* The recalibration pass with caller scratch: order (count of data entries) and x (the net's bound
 * batch x sample floats).  Uses up to max_samples samples (0: all) in an order drawn from seed. */
asymbp_status_t asymbp__bn_recal_run(asymbp_net_t *net, const asymbp_dataset_t *data, size_t max_samples, uint64_t seed,
                                     size_t *order, float *x);

#endif
