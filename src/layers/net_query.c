/* Layer indices and read-outs: the weighted-layer converter, copies of W, V and the deltas of the
 * last backward pass into caller buffers, the input-gradient switch, and the delta save/restore
 * the probe uses.  Every public index here is the net's layer index. */
#include <string.h>
#include "core/core_impl.h"
#include "layers/layers_impl.h"

static int is_weighted(const asymbp__layer_t *L)
{
    return L->kind == ASYMBP_LAYER_DENSE || L->kind == ASYMBP_LAYER_CONV2D;
}

size_t asymbp_net_weighted_layer_count(const asymbp_net_t *net)
{
    size_t i, c = 0;
    if (!net) return 0;
    for (i = 0; i < net->n_layers; i++) c += is_weighted(net->layers[i]);
    return c;
}

asymbp_status_t asymbp_net_weighted_layer(const asymbp_net_t *net, int k, size_t *layer)
{
    size_t i, nw, want, seen = 0;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_weighted_layer: net is NULL");
    ASYMBP_CHECK_NULL(net->ctx, layer, "layer");
    nw = asymbp_net_weighted_layer_count(net);
    if (k >= 0 ? (size_t)k >= nw : (size_t)(-(long)k) > nw)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net_weighted_layer: %d is out of range (the net has %zu weighted "
                             "layers: 0..%zu from the bottom, -1..-%zu from the top)", k, nw, nw ? nw - 1 : 0, nw);
    want = k >= 0 ? (size_t)k : nw - (size_t)(-(long)k);
    for (i = 0; i < net->n_layers; i++) {
        if (!is_weighted(net->layers[i])) continue;
        if (seen++ == want) {
            *layer = i;
            return ASYMBP_OK;
        }
    }
    return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net_weighted_layer: %d is out of range", k);
}

asymbp_status_t asymbp_net_set_input_grad(asymbp_net_t *net, int on)
{
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_set_input_grad: net is NULL");
    net->want_input_grad = on ? 1 : 0;
    net->need_input_grad = net->want_input_grad;
    return ASYMBP_OK;
}

int asymbp_net_get_input_grad(const asymbp_net_t *net) { return net ? net->want_input_grad : 0; }

/* The delta buffer of layer i for one side and its length in floats; NULL with the error set
 * when the last backward pass did not write it. */
static const float *delta_of(asymbp_net_t *net, size_t i, int sent, size_t *len)
{
    const asymbp__layer_t *L = net->layers[i];
    const char *side = sent ? "sent" : "received";
    if (!net->have_bwd) {
        asymbp__error(net->ctx, ASYMBP_E_STATE, "net_read_layer: no backward pass since the last loss or bind (the delta "
                      "%s by layer %zu is not there)", side, i);
        return NULL;
    }
    if (i < net->bwd_lowest || (sent && i == net->bwd_lowest && !net->bwd_input)) {
        asymbp__error(net->ctx, ASYMBP_E_STATE, "net_read_layer: layer %zu (%s) %s no delta in the last backward pass: "
                      "backward stops at the lowest layer with parameters (layer %zu) unless the input gradient is "
                      "requested (asymbp_net_set_input_grad)", i, L->name, sent ? "sent" : "received", net->bwd_lowest);
        return NULL;
    }
    *len = net->bwd_n * (sent ? L->in_size : L->out_size);
    if (!sent) return L->dout;
    return i == 0 ? net->dinput : net->layers[i - 1]->dout;
}

asymbp_status_t asymbp_net_read_layer(asymbp_net_t *net, size_t layer, asymbp_readout_t what, float *buf, size_t cap,
                                      size_t *count)
{
    asymbp_ctx_t *ctx;
    asymbp__layer_t *L;
    const float *src = NULL;
    size_t len = 0;
    if (count) *count = 0;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_read_layer: net is NULL");
    ctx = net->ctx;
    if (layer >= net->n_layers)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_read_layer: layer %zu is out of range (%zu layers)", layer,
                             net->n_layers);
    if (!buf && cap) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_read_layer: buf is NULL but cap is %zu", cap);
    L = net->layers[layer];
    switch ((int)what) {
    case ASYMBP_READ_WEIGHTS:
    case ASYMBP_READ_FEEDBACK:
    case ASYMBP_READ_DIRECT_FEEDBACK:
        if (!is_weighted(L))
            return asymbp__error(ctx, ASYMBP_E_INVALID, "net_read_layer: layer %zu (%s) has no weights", layer, L->name);
        if (what != ASYMBP_READ_WEIGHTS && L->wl.fb && net->hooks.current) {
            asymbp_status_t st = net->hooks.current(net, net->hooks.state, &L->wl);
            if (st != ASYMBP_OK) {
                asymbp__error_prefix(ctx, "net_read_layer");
                return st;
            }
        }
        if (what == ASYMBP_READ_DIRECT_FEEDBACK) {
            if (!L->wl.B)
                return asymbp__error(ctx, ASYMBP_E_STATE, "net_read_layer: layer %zu (%s) has no direct feedback tensor "
                                     "(its feedback policy is not a direct one, or it is the highest weighted layer)",
                                     layer, L->name);
            src = L->wl.B;
            len = (size_t)L->wl.classes * L->wl.block_size;
            break;
        }
        src = what == ASYMBP_READ_WEIGHTS || !L->wl.V ? L->wl.W : L->wl.V;
        len = L->wl.numel;
        break;
    case ASYMBP_READ_DELTA_RECEIVED:
    case ASYMBP_READ_DELTA_SENT:
        src = delta_of(net, layer, what == ASYMBP_READ_DELTA_SENT, &len);
        if (!src) return asymbp_ctx_last_status(ctx);
        break;
    default:
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_read_layer: unknown read-out %d", (int)what);
    }
    if (count) *count = len;
    if (!buf) return ASYMBP_OK;
    if (cap < len)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "net_read_layer: layer %zu (%s) has %zu floats to read, buf holds %zu",
                             layer, L->name, len, cap);
    memcpy(buf, src, len * sizeof(float));
    return ASYMBP_OK;
}

/* ---- for feedback/ (net_hooks.h) ------------------------------------------------------------ */

int asymbp__net_have_backward(const asymbp_net_t *net) { return net ? net->have_bwd : 0; }

/* Every buffer a backward may write: each non-flatten layer's dout but the top one's (flatten
 * layers alias the buffer below them), and dinput. */
size_t asymbp__net_delta_floats(const asymbp_net_t *net)
{
    size_t i, t;
    if (!net || !net->batch) return 0;
    t = net->batch * net->in_size;
    for (i = 0; i + 1 < net->n_layers; i++)
        if (net->layers[i]->kind != ASYMBP_LAYER_FLATTEN) t += net->batch * net->layers[i]->out_size;
    return t;
}

void asymbp__net_deltas_copy(asymbp_net_t *net, float *buf, int restore)
{
    size_t i, n;
    if (!net || !net->batch) return;
    n = net->batch * net->in_size;
    if (restore) memcpy(net->dinput, buf, n * sizeof(float));
    else memcpy(buf, net->dinput, n * sizeof(float));
    buf += n;
    for (i = 0; i + 1 < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        if (L->kind == ASYMBP_LAYER_FLATTEN) continue;
        n = net->batch * L->out_size;
        if (restore) memcpy(L->dout, buf, n * sizeof(float));
        else memcpy(buf, L->dout, n * sizeof(float));
        buf += n;
    }
}
