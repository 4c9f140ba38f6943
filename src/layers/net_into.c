/* Loading saved parameters into an existing net (checkpoint resume keeps the caller's objects). */
#include <string.h>
#include "layers/layers_impl.h"
#include "layers/net_impl.h"
#include "layers/net_into.h"
#include "core/core_impl.h"

/* Read the net chunks of r into a temporary net, check that its architecture equals net's, then
 * copy parameters, BN running statistics and dropout RNG states.  Nothing changes on failure.
 * ASYMBP_E_FORMAT names the first difference. */
asymbp_status_t asymbp__net_read_into(asymbp_net_t *net, const asymbp__rbuf_t *r)
{
    asymbp_net_t *src = NULL;
    asymbp_status_t st;
    size_t i;
    if (!net || !r) return ASYMBP_E_INVALID;
    st = asymbp__net_read(net->ctx, r, &src);
    if (st != ASYMBP_OK) return st;
    if (src->in_c != net->in_c || src->in_h != net->in_h || src->in_w != net->in_w || src->classes != net->classes ||
        src->n_layers != net->n_layers || src->n_params != net->n_params) {
        st = asymbp__error(net->ctx, ASYMBP_E_FORMAT,
                           "the saved net (%lldx%lldx%lld, %zu layers, %zu parameter tensors) differs from this one "
                           "(%lldx%lldx%lld, %zu layers, %zu parameter tensors)",
                           (long long)src->in_c, (long long)src->in_h, (long long)src->in_w, src->n_layers, src->n_params,
                           (long long)net->in_c, (long long)net->in_h, (long long)net->in_w, net->n_layers, net->n_params);
        goto done;
    }
    for (i = 0; i < net->n_layers; i++) {
        const asymbp__layer_t *a = src->layers[i], *b = net->layers[i];
        if (a->kind != b->kind || a->out_size != b->out_size || a->in_size != b->in_size) {
            st = asymbp__error(net->ctx, ASYMBP_E_FORMAT, "saved layer %zu (%s) differs from this net's (%s)", i, a->name, b->name);
            goto done;
        }
    }
    for (i = 0; i < net->n_params; i++)
        if (src->params[i].numel != net->params[i].numel) {
            st = asymbp__error(net->ctx, ASYMBP_E_FORMAT, "saved parameter %s has %zu values, this net's %s has %zu",
                               src->params[i].name, src->params[i].numel, net->params[i].name, net->params[i].numel);
            goto done;
        }
    for (i = 0; i < net->n_params; i++)
        memcpy(net->params[i].value, src->params[i].value, net->params[i].numel * sizeof(float));
    for (i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *b = net->layers[i];
        const asymbp__layer_t *a = src->layers[i];
        if (b->kind == ASYMBP_LAYER_BATCHNORM) {
            memcpy(b->run_mean, a->run_mean, (size_t)b->in_c * sizeof(float));
            memcpy(b->run_var, a->run_var, (size_t)b->in_c * sizeof(float));
        } else if (b->kind == ASYMBP_LAYER_DROPOUT) {
            b->rng.state = a->rng.state;
            b->rng.inc = a->rng.inc;
        }
    }
done:
    asymbp_net_destroy(src);
    return st;
}

const float *asymbp__net_wlayer_delta_in(asymbp_net_t *net, size_t i, size_t *len)
{
    size_t k, seen = 0;
    *len = 0;
    if (!net || !net->have_delta) return NULL;
    for (k = 0; k < net->n_layers; k++) {
        asymbp__layer_t *L = net->layers[k];
        if (L->kind != ASYMBP_LAYER_DENSE && L->kind != ASYMBP_LAYER_CONV2D) continue;
        if (seen++ != i) continue;
        if (k == 0 || !net->layers[k - 1]->dout) return NULL;
        *len = net->n_fwd * L->in_size;
        return net->layers[k - 1]->dout;
    }
    return NULL;
}

const float *asymbp__net_wlayer_delta_out(asymbp_net_t *net, size_t i, size_t *len)
{
    size_t k, seen = 0;
    *len = 0;
    if (!net || !net->have_delta) return NULL;
    for (k = 0; k < net->n_layers; k++) {
        asymbp__layer_t *L = net->layers[k];
        if (L->kind != ASYMBP_LAYER_DENSE && L->kind != ASYMBP_LAYER_CONV2D) continue;
        if (seen++ != i) continue;
        if (!L->dout) return NULL;
        *len = net->n_fwd * L->out_size;
        return L->dout;
    }
    return NULL;
}
