/* Batch-norm population statistics: re-estimating every BN layer's mean and variance at the
 * current weights from training batches, as the batch-norm paper (Ioffe and Szegedy 2015,
 * Algorithm 2) prescribes for inference.  docs/protocol.md says why a reproduction needs it. */
#include <string.h>
#include "core/core_impl.h"
#include "tensor/tensor_impl.h"
#include "layers/net_hooks.h"
#include "train/train_impl.h"
#include "asymbp/trainer.h"

#define RECAL_STREAM 0x7265636cULL   /* "recl" */

static void params_from_user(asymbp_bn_recal_params_t *d, const asymbp_bn_recal_params_t *p)
{
    asymbp_bn_recal_params_t def = ASYMBP_BN_RECAL_PARAMS_INIT;
    if (p) {
        size_t n = p->struct_size < sizeof def ? p->struct_size : sizeof def;
        memcpy(&def, p, n);
        def.struct_size = sizeof def;
    }
    *d = def;
}

asymbp_status_t asymbp__bn_recal_run(asymbp_net_t *net, const asymbp_dataset_t *data, size_t max_samples, uint64_t seed,
                                     size_t *order, float *x)
{
    size_t n = asymbp_dataset_count(data), batch = asymbp_net_batch_size(net), use, i;
    asymbp_status_t st;
    asymbp_rng_t rng;
    use = max_samples && max_samples < n ? max_samples : n;
    /* random batches, as in training: a class-sorted file read in order would make every batch's
     * variance too small */
    for (i = 0; i < n; i++) order[i] = i;
    asymbp__rng_seed(&rng, seed, RECAL_STREAM);
    for (i = 0; i < use && i + 1 < n; i++) {
        size_t j = i + asymbp__rng_below(&rng, (uint32_t)(n - i)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    st = asymbp__net_bn_recal_begin(net);
    if (st != ASYMBP_OK) return st;
    for (i = 0; i < use; i += batch) {
        size_t k = use - i < batch ? use - i : batch;
        st = asymbp_dataset_gather(data, order + i, k, x, NULL);
        if (st == ASYMBP_OK) st = asymbp_net_forward(net, x, k, 1, NULL);
        if (st != ASYMBP_OK) {
            asymbp__net_bn_recal_end(net, 0);
            return st;
        }
    }
    asymbp__net_bn_recal_end(net, 1);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_bn_recalibrate(asymbp_net_t *net, const asymbp_dataset_t *data, const asymbp_bn_recal_params_t *params)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp_bn_recal_params_t p;
    int64_t shape[3], c, h, w;
    size_t n, batch, *order;
    float *x;
    asymbp_status_t st;
    if (!net) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, data, "data set");
    if (params && params->struct_size < offsetof(asymbp_bn_recal_params_t, seed) + sizeof params->seed)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "bn_recalibrate: params struct_size %zu is smaller than version 1",
                             params->struct_size);
    params_from_user(&p, params);
    batch = asymbp_net_batch_size(net);
    if (batch == 0) return asymbp__error(ctx, ASYMBP_E_STATE, "bn_recalibrate: the net is not bound (asymbp_net_bind)");
    if (asymbp_net_input_shape(net, shape) != ASYMBP_OK || asymbp_dataset_shape(data, &c, &h, &w) != ASYMBP_OK)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "bn_recalibrate: no input shape");
    if (c * h * w != shape[0] * shape[1] * shape[2])
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "bn_recalibrate: samples have %lld values, the net expects %lld",
                             (long long)(c * h * w), (long long)(shape[0] * shape[1] * shape[2]));
    n = asymbp_dataset_count(data);
    if (n == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "bn_recalibrate: the data set is empty");
    if (asymbp__net_bn_stat_floats(net) == 0) return ASYMBP_OK;   /* no BN layer: nothing to do */
    order = asymbp__calloc(ctx, n, sizeof *order);
    x = asymbp__calloc(ctx, batch * asymbp_dataset_sample_size(data), sizeof *x);
    if (!order || !x) {
        asymbp__free(ctx, order);
        asymbp__free(ctx, x);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "bn_recalibrate: out of memory");
    }
    st = asymbp__bn_recal_run(net, data, p.max_samples, p.seed, order, x);
    asymbp__free(ctx, order);
    asymbp__free(ctx, x);
    return st;
}
