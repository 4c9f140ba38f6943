/* The sequential net: layers, parameters, binding, forward/loss/backward, prediction, hooks. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/core_impl.h"
#include "layers/layers_impl.h"

static const char *const kind_names[] = { "fc", "conv", "maxpool", "avgpool", "relu", "flatten", "bn", "dropout" };

/* ---- creation ------------------------------------------------------------------------------- */

asymbp_status_t asymbp_net_create(asymbp_ctx_t *ctx, int64_t channels, int64_t height, int64_t width,
                                  int64_t classes, asymbp_net_t **out)
{
    asymbp_net_t *net;
    size_t numel;
    int64_t shape[3] = { channels, height, width };
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_create: out is NULL");
    *out = NULL;
    ASYMBP_CHECK_NULL(ctx, ctx, "ctx");
    if (channels < 1 || height < 1 || width < 1)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_create: input shape %lldx%lldx%lld has a dimension < 1",
                             (long long)channels, (long long)height, (long long)width);
    if (classes < 2) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_create: classes is %lld, needs at least 2", (long long)classes);
    if (classes > INT32_MAX) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_create: classes %lld too large", (long long)classes);
    if (asymbp__shape_check(ctx, "net_create", 3, shape, &numel) != ASYMBP_OK) return ASYMBP_E_INVALID;
    net = asymbp__calloc(ctx, 1, sizeof *net);
    if (!net) return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_create: out of memory");
    net->ctx = ctx;
    net->nthr = 1;
    net->in_c = channels;
    net->in_h = height;
    net->in_w = width;
    net->classes = classes;
    net->in_size = numel;
    *out = net;
    return ASYMBP_OK;
}

static void unbind(asymbp_net_t *net)
{
    asymbp_ctx_t *ctx = net->ctx;
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        if (L->kind != ASYMBP_LAYER_FLATTEN) {
            asymbp__free(ctx, L->out);
            asymbp__free(ctx, L->dout);
        }
        L->out = L->dout = NULL;
        L->relu = NULL;
        L->fused = 0;
        L->bn_fwd = L->bn_bwd = NULL;
        L->fwd_deferred = L->bwd_deferred = 0;
        L->bn_in = NULL;
        asymbp__free(ctx, L->bn_coef);
        L->bn_coef = NULL;
        asymbp__free(ctx, L->argmax);
        L->argmax = NULL;
        asymbp__free(ctx, L->mask);
        L->mask = NULL;
        asymbp__free(ctx, L->col);
        L->col = NULL;
        asymbp__free(ctx, L->colgeo);
        L->colgeo = NULL;
    }
    asymbp__free(ctx, net->input);
    asymbp__free(ctx, net->dinput);
    asymbp__free(ctx, net->probs);
    asymbp__free(ctx, net->labels);
    net->labels = NULL;
    asymbp__free(ctx, net->col);
    asymbp__free(ctx, net->wpart);
    asymbp__free(ctx, net->dxpart);
    asymbp__free(ctx, net->tsum);
    net->tsum = NULL;
    asymbp__free(ctx, net->gpack);
    asymbp__free(ctx, net->gwork);
    asymbp__free(ctx, net->wt);
    net->gpack = net->gwork = net->wt = NULL;
    net->gwork_stride = 0;
    net->input = net->dinput = net->probs = net->col = net->wpart = net->dxpart = NULL;
    net->wpart_stride = 0;
    net->nthr = 1;
    net->batch = 0;
    net->have_fwd = net->have_delta = net->have_bwd = 0;
}

static void layer_free(asymbp_ctx_t *ctx, asymbp__layer_t *L)
{
    asymbp__free(ctx, L->W);
    asymbp__free(ctx, L->dW);
    asymbp__free(ctx, L->b);
    asymbp__free(ctx, L->db);
    asymbp__free(ctx, L->gamma);
    asymbp__free(ctx, L->beta);
    asymbp__free(ctx, L->dgamma);
    asymbp__free(ctx, L->dbeta);
    asymbp__free(ctx, L->run_mean);
    asymbp__free(ctx, L->run_var);
    asymbp__free(ctx, L->bmean);
    asymbp__free(ctx, L->binvstd);
    asymbp__free(ctx, L);
}

void asymbp_net_destroy(asymbp_net_t *net)
{
    asymbp_ctx_t *ctx;
    if (!net) return;
    ctx = net->ctx;
    if (net->hooks.destroy) net->hooks.destroy(net, net->hooks.state);
    memset(&net->hooks, 0, sizeof net->hooks);
    unbind(net);
    for (size_t i = 0; i < net->n_params; i++) {
        asymbp_tensor_destroy(net->pvalue[i]);
        asymbp_tensor_destroy(net->pgrad[i]);
        asymbp__free(ctx, (void *)net->params[i].name);
    }
    asymbp__free(ctx, net->params);
    asymbp__free(ctx, net->pvalue);
    asymbp__free(ctx, net->pgrad);
    for (size_t i = 0; i < net->n_layers; i++) layer_free(ctx, net->layers[i]);
    asymbp__free(ctx, net->layers);
    asymbp__free(ctx, net->spec);
    asymbp__free(ctx, net);
}

/* ---- builders ------------------------------------------------------------------------------- */

static void out_shape(const asymbp_net_t *net, int64_t *c, int64_t *h, int64_t *w)
{
    if (net->n_layers == 0) {
        *c = net->in_c; *h = net->in_h; *w = net->in_w;
    } else {
        const asymbp__layer_t *L = net->layers[net->n_layers - 1];
        *c = L->out_c; *h = L->out_h; *w = L->out_w;
    }
}

static asymbp_status_t grow(asymbp_ctx_t *ctx, void **arr, size_t elem, size_t used, size_t *cap)
{
    void *p;
    size_t ncap;
    if (used < *cap) return ASYMBP_OK;
    ncap = *cap ? *cap * 2 : 8;
    p = asymbp__calloc(ctx, ncap, elem);
    if (!p) return ASYMBP_E_NOMEM;
    if (*arr) memcpy(p, *arr, used * elem);
    asymbp__free(ctx, *arr);
    *arr = p;
    *cap = ncap;
    return ASYMBP_OK;
}

static asymbp_status_t new_layer(asymbp_net_t *net, asymbp_layer_kind_t kind, asymbp__layer_t **out)
{
    asymbp__layer_t *L;
    int64_t c, h, w;
    *out = NULL;
    if (net->n_layers >= 100000) return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net: too many layers");
    if (grow(net->ctx, (void **)&net->layers, sizeof *net->layers, net->n_layers, &net->cap_layers) != ASYMBP_OK)
        return asymbp__error(net->ctx, ASYMBP_E_NOMEM, "net: out of memory adding a layer");
    L = asymbp__calloc(net->ctx, 1, sizeof *L);
    if (!L) return asymbp__error(net->ctx, ASYMBP_E_NOMEM, "net: out of memory adding a layer");
    L->kind = kind;
    L->index = (int)net->n_layers;
    snprintf(L->name, sizeof L->name, "%s%d", kind_names[kind], L->index);
    out_shape(net, &c, &h, &w);
    L->in_c = L->out_c = c;
    L->in_h = L->out_h = h;
    L->in_w = L->out_w = w;
    L->in_size = L->out_size = (size_t)(c * h * w);
    L->wl.layer_index = L->index;
    L->wl_below = -1;
    *out = L;
    return ASYMBP_OK;
}

static void free_pending_params(asymbp_net_t *net, size_t first)
{
    while (net->n_params > first) {
        net->n_params--;
        asymbp_tensor_destroy(net->pvalue[net->n_params]);
        asymbp_tensor_destroy(net->pgrad[net->n_params]);
        asymbp__free(net->ctx, (void *)net->params[net->n_params].name);
    }
}

static asymbp_status_t grow_params(asymbp_net_t *net)
{
    asymbp_ctx_t *ctx = net->ctx;
    size_t ncap = net->cap_params ? net->cap_params * 2 : 8;
    asymbp__param_t *np = asymbp__calloc(ctx, ncap, sizeof *np);
    asymbp_tensor_t **nv = asymbp__calloc(ctx, ncap, sizeof *nv), **ng = asymbp__calloc(ctx, ncap, sizeof *ng);
    if (!np || !nv || !ng) {
        asymbp__free(ctx, np);
        asymbp__free(ctx, nv);
        asymbp__free(ctx, ng);
        return ASYMBP_E_NOMEM;
    }
    if (net->n_params) {
        memcpy(np, net->params, net->n_params * sizeof *np);
        memcpy(nv, net->pvalue, net->n_params * sizeof *nv);
        memcpy(ng, net->pgrad, net->n_params * sizeof *ng);
    }
    asymbp__free(ctx, net->params);
    asymbp__free(ctx, net->pvalue);
    asymbp__free(ctx, net->pgrad);
    net->params = np;
    net->pvalue = nv;
    net->pgrad = ng;
    net->cap_params = ncap;
    return ASYMBP_OK;
}

static asymbp_status_t add_param(asymbp_net_t *net, asymbp__layer_t *L, float *value, float *grad, int ndim,
                                 const int64_t *shape, asymbp__param_kind_t kind, const char *suffix)
{
    asymbp_ctx_t *ctx = net->ctx;
    asymbp__param_t *p;
    char name[48];
    if (net->n_params == net->cap_params && grow_params(net) != ASYMBP_OK)
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", L->name);
    p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    snprintf(name, sizeof name, "%s.%s", L->name, suffix);
    p->name = asymbp__strdup(ctx, name);
    if (!p->name) return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", L->name);
    net->pvalue[net->n_params] = NULL;
    net->pgrad[net->n_params] = NULL;
    if (asymbp_tensor_wrap(ctx, ndim, shape, value, &net->pvalue[net->n_params]) != ASYMBP_OK ||
        asymbp_tensor_wrap(ctx, ndim, shape, grad, &net->pgrad[net->n_params]) != ASYMBP_OK) {
        asymbp_tensor_destroy(net->pvalue[net->n_params]);
        asymbp__free(ctx, (void *)p->name);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", L->name);
    }
    p->value = value;
    p->grad = grad;
    p->numel = asymbp_tensor_numel(net->pvalue[net->n_params]);
    p->rows = (size_t)shape[0];
    p->kind = kind;
    p->layer_index = L->index;
    net->n_params++;
    return ASYMBP_OK;
}

/* Append L (fully built) to the net; on failure frees L and the parameters it registered.  A
 * weighted layer ends the block of the weighted layer below it: that one's direct feedback (if
 * any) delivers to L's input. */
static asymbp_status_t commit_layer(asymbp_net_t *net, asymbp__layer_t *L)
{
    unbind(net);
    if (L->kind == ASYMBP_LAYER_DENSE || L->kind == ASYMBP_LAYER_CONV2D) {
        size_t j = net->n_layers;
        L->wl.classes = net->classes;
        while (j-- > 0) {
            asymbp__layer_t *P = net->layers[j];
            if (P->kind != ASYMBP_LAYER_DENSE && P->kind != ASYMBP_LAYER_CONV2D) continue;
            P->wl.block_size = L->in_size;
            L->wl_below = (int)j;
            break;
        }
    }
    net->layers[net->n_layers++] = L;
    asymbp__free(net->ctx, net->spec);
    net->spec = NULL;
    return ASYMBP_OK;
}

static asymbp_status_t check_net(asymbp_net_t *net, const char *who)
{
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "%s: net is NULL", who);
    return ASYMBP_OK;
}

/* The loader's limit (param_budget): refuse, before allocating, a layer whose parameters the file
 * being read cannot hold.  On success the floats are counted. */
static asymbp_status_t take_budget(asymbp_net_t *net, asymbp__layer_t *L, size_t floats)
{
    if (net->param_budget && (floats > net->param_budget || net->param_floats > net->param_budget - floats)) {
        char name[sizeof L->name];
        memcpy(name, L->name, sizeof name);
        layer_free(net->ctx, L);
        return asymbp__error(net->ctx, ASYMBP_E_FORMAT, "%s needs %zu parameter values, more than the file holds (%zu in all)",
                             name, floats, net->param_budget);
    }
    net->param_floats += floats;
    return ASYMBP_OK;
}

static asymbp_status_t add_weighted(asymbp_net_t *net, asymbp__layer_t *L, int ndim, const int64_t *wshape,
                                    size_t numel, size_t fan_in, size_t fan_out, int64_t n_bias)
{
    asymbp_ctx_t *ctx = net->ctx;
    size_t first = net->n_params;
    asymbp_rng_t rng;
    float lim;
    asymbp_status_t st;
    if ((st = take_budget(net, L, numel + (L->has_bias ? (size_t)n_bias : 0))) != ASYMBP_OK) return st;
    L->W = asymbp__alloc(ctx, numel * sizeof(float));
    L->dW = asymbp__calloc(ctx, numel, sizeof(float));
    if (L->has_bias) {
        L->b = asymbp__calloc(ctx, (size_t)n_bias, sizeof(float));
        L->db = asymbp__calloc(ctx, (size_t)n_bias, sizeof(float));
    }
    if (!L->W || !L->dW || (L->has_bias && (!L->b || !L->db))) {
        int idx = L->index;
        layer_free(ctx, L);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "layer %d: out of memory for %zu weights", idx, numel);
    }
    /* He-uniform from the layer's own stream */
    asymbp__rng_seed(&rng, asymbp__ctx_next_seed(ctx), 0x6c61796572ULL);
    lim = (float)sqrt(6.0 / (double)fan_in);
    for (size_t i = 0; i < numel; i++) L->W[i] = (2.0f * asymbp__rng_uniform(&rng) - 1.0f) * lim;
    L->wl.is_conv = L->kind == ASYMBP_LAYER_CONV2D;
    L->wl.W = L->W;
    L->wl.numel = numel;
    L->wl.ndim = ndim;
    for (int d = 0; d < 4; d++) L->wl.shape[d] = d < ndim ? wshape[d] : 1;
    L->wl.fan_in = fan_in;
    L->wl.fan_out = fan_out;
    st = add_param(net, L, L->W, L->dW, ndim, wshape, ASYMBP__PARAM_WEIGHT, "weight");
    if (st == ASYMBP_OK && L->has_bias) st = add_param(net, L, L->b, L->db, 1, &n_bias, ASYMBP__PARAM_BIAS, "bias");
    if (st != ASYMBP_OK) {
        free_pending_params(net, first);
        layer_free(ctx, L);
        return st;
    }
    return commit_layer(net, L);
}

asymbp_status_t asymbp_net_add_dense(asymbp_net_t *net, int64_t n_out, int bias)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    size_t numel;
    int64_t shape[2];
    if ((st = check_net(net, "net_add_dense")) != ASYMBP_OK) return st;
    if (n_out < 1 || n_out > INT32_MAX)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "fc%zu: output size %lld out of range", net->n_layers, (long long)n_out);
    if ((st = new_layer(net, ASYMBP_LAYER_DENSE, &L)) != ASYMBP_OK) return st;
    shape[0] = n_out;
    shape[1] = (int64_t)L->in_size;
    if (asymbp__mul_size((size_t)n_out, L->in_size, &numel) != 0 || numel > ((size_t)1 << 40)) {
        layer_free(net->ctx, L);
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "fc%zu: %lld x %zu weights is too large", net->n_layers,
                             (long long)n_out, shape[1] > 0 ? (size_t)shape[1] : 0);
    }
    L->has_bias = bias ? 1 : 0;
    L->out_c = n_out;
    L->out_h = L->out_w = 1;
    L->out_size = (size_t)n_out;
    return add_weighted(net, L, 2, shape, numel, L->in_size, (size_t)n_out, n_out);
}

asymbp_status_t asymbp_net_add_conv2d(asymbp_net_t *net, int64_t out_ch, int kh, int kw, int stride, int pad, int bias)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    int64_t shape[4], oh, ow;
    size_t numel, col;
    if ((st = check_net(net, "net_add_conv2d")) != ASYMBP_OK) return st;
    if (out_ch < 1 || out_ch > INT32_MAX || kh < 1 || kw < 1 || stride < 1 || pad < 0 || kh > 4096 || kw > 4096 ||
        pad > 4096 || stride > 4096)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID,
                             "conv%zu: bad arguments (out_ch %lld, kernel %dx%d, stride %d, pad %d): need >= 1 (pad >= 0)",
                             net->n_layers, (long long)out_ch, kh, kw, stride, pad);
    if ((st = new_layer(net, ASYMBP_LAYER_CONV2D, &L)) != ASYMBP_OK) return st;
    if (L->in_h + 2 * pad < kh || L->in_w + 2 * pad < kw) {
        asymbp__layer_t tmp = *L;
        layer_free(net->ctx, L);
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "%s: kernel %dx%d does not fit input %lldx%lld with padding %d",
                             tmp.name, kh, kw, (long long)tmp.in_h, (long long)tmp.in_w, pad);
    }
    oh = (L->in_h + 2 * pad - kh) / stride + 1;
    ow = (L->in_w + 2 * pad - kw) / stride + 1;
    shape[0] = out_ch; shape[1] = L->in_c; shape[2] = kh; shape[3] = kw;
    if (asymbp__mul_size((size_t)out_ch, (size_t)(L->in_c * kh * kw), &numel) != 0 || numel > ((size_t)1 << 40) ||
        asymbp__mul_size((size_t)(L->in_c * kh * kw), (size_t)(oh * ow), &col) != 0 || col > ((size_t)1 << 40)) {
        layer_free(net->ctx, L);
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "conv%zu: layer too large", net->n_layers);
    }
    L->has_bias = bias ? 1 : 0;
    L->kh = kh; L->kw = kw; L->stride = stride; L->pad = pad;
    L->out_c = out_ch; L->out_h = oh; L->out_w = ow;
    L->out_size = (size_t)(out_ch * oh * ow);
    L->col_size = col;
    return add_weighted(net, L, 4, shape, numel, (size_t)(L->in_c * kh * kw), (size_t)out_ch * (size_t)(kh * kw), out_ch);
}

static asymbp_status_t add_pool(asymbp_net_t *net, asymbp_layer_kind_t kind, int k, int stride, int pad, int ceil_mode)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    int64_t oh, ow;
    const char *who = kind == ASYMBP_LAYER_MAXPOOL ? "maxpool" : "avgpool";
    if ((st = check_net(net, "net_add_pool")) != ASYMBP_OK) return st;
    if (k < 1 || stride < 1 || pad < 0 || pad >= k || k > 4096 || stride > 4096)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "%s%zu: bad arguments (k %d, stride %d, pad %d): need k, stride >= 1 and 0 <= pad < k",
                             who, net->n_layers, k, stride, pad);
    if ((st = new_layer(net, kind, &L)) != ASYMBP_OK) return st;
    oh = asymbp__pool_out(L->in_h, k, stride, pad, ceil_mode);
    ow = asymbp__pool_out(L->in_w, k, stride, pad, ceil_mode);
    if (oh < 1 || ow < 1) {
        asymbp__layer_t tmp = *L;
        layer_free(net->ctx, L);
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "%s: window %dx%d does not fit input %lldx%lld with padding %d",
                             tmp.name, k, k, (long long)tmp.in_h, (long long)tmp.in_w, pad);
    }
    L->kh = L->kw = k; L->stride = stride; L->pad = pad; L->ceil_mode = ceil_mode ? 1 : 0;
    L->out_h = oh; L->out_w = ow;
    L->out_size = (size_t)(L->out_c * oh * ow);
    return commit_layer(net, L);
}

asymbp_status_t asymbp_net_add_maxpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode)
{
    return add_pool(net, ASYMBP_LAYER_MAXPOOL, k, stride, pad, ceil_mode);
}

asymbp_status_t asymbp_net_add_avgpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode)
{
    return add_pool(net, ASYMBP_LAYER_AVGPOOL, k, stride, pad, ceil_mode);
}

asymbp_status_t asymbp_net_add_relu(asymbp_net_t *net)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    if ((st = check_net(net, "net_add_relu")) != ASYMBP_OK) return st;
    if ((st = new_layer(net, ASYMBP_LAYER_RELU, &L)) != ASYMBP_OK) return st;
    return commit_layer(net, L);
}

asymbp_status_t asymbp_net_add_flatten(asymbp_net_t *net)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    if ((st = check_net(net, "net_add_flatten")) != ASYMBP_OK) return st;
    if ((st = new_layer(net, ASYMBP_LAYER_FLATTEN, &L)) != ASYMBP_OK) return st;
    L->out_c = (int64_t)L->in_size;
    L->out_h = L->out_w = 1;
    return commit_layer(net, L);
}

asymbp_status_t asymbp_net_add_batchnorm(asymbp_net_t *net, float momentum, float eps)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    asymbp_ctx_t *ctx;
    size_t C, first;
    int64_t shape;
    if ((st = check_net(net, "net_add_batchnorm")) != ASYMBP_OK) return st;
    ctx = net->ctx;
    if (!(momentum > 0.0f && momentum <= 1.0f) || !(eps > 0.0f) || !isfinite(eps))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "bn%zu: momentum %g must be in (0, 1] and eps %g > 0",
                             net->n_layers, (double)momentum, (double)eps);
    if ((st = new_layer(net, ASYMBP_LAYER_BATCHNORM, &L)) != ASYMBP_OK) return st;
    C = (size_t)L->in_c;
    shape = L->in_c;
    if ((st = take_budget(net, L, 2 * C)) != ASYMBP_OK) return st;
    L->momentum = momentum;
    L->eps = eps;
    L->gamma = asymbp__alloc(ctx, C * sizeof(float));
    L->beta = asymbp__calloc(ctx, C, sizeof(float));
    L->dgamma = asymbp__calloc(ctx, C, sizeof(float));
    L->dbeta = asymbp__calloc(ctx, C, sizeof(float));
    L->run_mean = asymbp__calloc(ctx, C, sizeof(float));
    L->run_var = asymbp__alloc(ctx, C * sizeof(float));
    L->bmean = asymbp__calloc(ctx, C, sizeof(float));
    L->binvstd = asymbp__calloc(ctx, C, sizeof(float));
    if (!L->gamma || !L->beta || !L->dgamma || !L->dbeta || !L->run_mean || !L->run_var || !L->bmean || !L->binvstd) {
        layer_free(ctx, L);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "bn%zu: out of memory", net->n_layers);
    }
    for (size_t c = 0; c < C; c++) L->gamma[c] = L->run_var[c] = 1.0f;
    first = net->n_params;
    st = add_param(net, L, L->gamma, L->dgamma, 1, &shape, ASYMBP__PARAM_BN_SCALE, "scale");
    if (st == ASYMBP_OK) st = add_param(net, L, L->beta, L->dbeta, 1, &shape, ASYMBP__PARAM_BN_SHIFT, "shift");
    if (st != ASYMBP_OK) {
        free_pending_params(net, first);
        layer_free(ctx, L);
        return st;
    }
    return commit_layer(net, L);
}

asymbp_status_t asymbp_net_add_dropout(asymbp_net_t *net, float p)
{
    asymbp__layer_t *L;
    asymbp_status_t st;
    if ((st = check_net(net, "net_add_dropout")) != ASYMBP_OK) return st;
    if (!(p >= 0.0f && p < 1.0f))
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "dropout%zu: p is %g, must be in [0, 1)", net->n_layers, (double)p);
    if ((st = new_layer(net, ASYMBP_LAYER_DROPOUT, &L)) != ASYMBP_OK) return st;
    L->p = p;
    asymbp__rng_seed(&L->rng, asymbp__ctx_next_seed(net->ctx), 0x64726f70ULL);
    return commit_layer(net, L);
}

/* ---- binding -------------------------------------------------------------------------------- */

/* Scratch of the own GEMM kernels (none when the CPU has none: the layers then call CBLAS).
 * Sizes are bounded by the layer buffers already allocated (products of the same sizes). */
static int bind_gemm(asymbp_net_t *net, size_t batch, size_t nthr)
{
    asymbp_ctx_t *ctx = net->ctx;
    /* sized for the tallest panels (AVX-512's 12 rows, a multiple of every other ISA's), so that
     * tests can run any supported ISA on the same bound net */
    const int isa = ASYMBP__ISA_AVX512;
    size_t shared = 0, work = 0, wt = 0, tot;
    net->isa = asymbp__gemm_isa();
    if (!net->isa) return 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        const asymbp__layer_t *L = net->layers[i];
        size_t need;
        if (L->kind == ASYMBP_LAYER_CONV2D) {
            size_t K = (size_t)L->in_c * (size_t)L->kh * (size_t)L->kw, P = (size_t)(L->out_h * L->out_w);
            size_t OC = (size_t)L->out_c;
            need = asymbp__gemm_pack_size(isa, OC, K);
            if (asymbp__gemm_pack_size(isa, K, OC) > need) need = asymbp__gemm_pack_size(isa, K, OC);
            if (need > shared) shared = need;
            need = P * OC + K * OC;   /* dy^T and dW^T */
            if (need > work) work = need;
        } else if (L->kind == ASYMBP_LAYER_DENSE) {
            size_t in = L->in_size, out = L->out_size;
            need = asymbp__gemm_pack_size(isa, batch, in);
            if (need > shared) shared = need;
            need = asymbp__gemm_pack_size(isa, out, batch);
            if (asymbp__gemm_pack_size(isa, batch, out) > need) need = asymbp__gemm_pack_size(isa, batch, out);
            if (need > work) work = need;
            if (batch * out > wt) wt = batch * out;   /* out^T */
        }
    }
    net->gwork_stride = (work + 15) & ~(size_t)15;
    if (shared && !(net->gpack = asymbp__alloc(ctx, shared * sizeof(float)))) return -1;
    if (work && (asymbp__mul_size(nthr, net->gwork_stride, &tot) != 0 ||
                 !(net->gwork = asymbp__alloc(ctx, tot * sizeof(float)))))
        return -1;
    if (wt && !(net->wt = asymbp__alloc(ctx, wt * sizeof(float)))) return -1;
    return 0;
}

asymbp_status_t asymbp_net_bind(asymbp_net_t *net, size_t batch)
{
    asymbp_ctx_t *ctx;
    asymbp__layer_t *last;
    size_t col = 0, part = 0, dense_in = 0, tot, nthr;
    asymbp_status_t st;
    if ((st = check_net(net, "net_bind")) != ASYMBP_OK) return st;
    ctx = net->ctx;
    if (batch < 1) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_bind: batch size is 0");
    if (net->n_layers == 0) return asymbp__error(ctx, ASYMBP_E_SHAPE, "net_bind: the net has no layers");
    last = net->layers[net->n_layers - 1];
    if (last->out_size != (size_t)net->classes)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "net_bind: last layer %s gives %zu outputs, the net has %lld classes",
                             last->name, last->out_size, (long long)net->classes);
    unbind(net);
    /* per-thread scratch (im2col columns, conv weight-gradient partials) for the context's
     * thread count now */
    nthr = (size_t)asymbp_ctx_get_threads(ctx);
    if (asymbp__mul_size(batch, net->in_size, &tot) != 0 || tot > ((size_t)1 << 40)) {
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_bind: batch %zu too large", batch);
    }
    net->input = asymbp__calloc(ctx, tot, sizeof(float));
    net->dinput = asymbp__calloc(ctx, tot, sizeof(float));
    net->probs = asymbp__calloc(ctx, batch * (size_t)net->classes, sizeof(float));
    net->labels = asymbp__calloc(ctx, batch, sizeof(int32_t));
    if (!net->input || !net->dinput || !net->probs || !net->labels) goto nomem;
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        size_t n;
        if (asymbp__mul_size(batch, L->out_size, &n) != 0 || n > ((size_t)1 << 40)) goto nomem;
        if (L->kind == ASYMBP_LAYER_FLATTEN) {
            L->out = i == 0 ? net->input : net->layers[i - 1]->out;
            L->dout = i == 0 ? net->dinput : net->layers[i - 1]->dout;
            continue;
        }
        L->out = asymbp__calloc(ctx, n, sizeof(float));
        L->dout = asymbp__calloc(ctx, n, sizeof(float));
        if (!L->out || !L->dout) goto nomem;
        if (L->kind == ASYMBP_LAYER_MAXPOOL && !(L->argmax = asymbp__calloc(ctx, n, sizeof(int32_t)))) goto nomem;
        if (L->kind == ASYMBP_LAYER_DROPOUT && !(L->mask = asymbp__calloc(ctx, n, sizeof(float)))) goto nomem;
        if (L->kind == ASYMBP_LAYER_CONV2D && L->col_size > col) col = L->col_size;
        if (L->kind == ASYMBP_LAYER_DENSE && L->in_size > dense_in) dense_in = L->in_size;
        if (L->kind == ASYMBP_LAYER_CONV2D && L->wl.numel + (size_t)L->out_c > part) part = L->wl.numel + (size_t)L->out_c;
        if (L->kind == ASYMBP_LAYER_CONV2D && !(L->kh == 1 && L->kw == 1 && L->stride == 1 && L->pad == 0)) {
            /* 1x1 stride 1 unpadded convs use their input as the column matrix */
            if (asymbp__mul_size(nthr, L->col_size, &n) != 0) goto nomem;
            if (!(L->col = asymbp__calloc(ctx, n, sizeof(float)))) goto nomem;
            if (!(L->colgeo = asymbp__alloc(ctx, 4 * (size_t)L->kh * (size_t)L->kw * sizeof(int64_t)))) goto nomem;
            asymbp__conv_geometry(L, L->colgeo);
        }
    }
    /* a BN directly below a ReLU runs the ReLU's passes too (layers_impl.h) */
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i], *U = i + 1 < net->n_layers ? net->layers[i + 1] : NULL;
        L->fused = 0;
        L->relu = L->kind == ASYMBP_LAYER_BATCHNORM && U && U->kind == ASYMBP_LAYER_RELU ? U : NULL;
    }
    for (size_t i = 0; i < net->n_layers; i++)
        if (net->layers[i]->relu) net->layers[i]->relu->fused = 1;
    /* a convolutional BN's last pass each way runs in the layer next to it (layers_impl.h) */
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i], *P = i + 2 < net->n_layers ? net->layers[i + 2] : NULL;
        if (L->kind != ASYMBP_LAYER_BATCHNORM || L->in_h * L->in_w < 2) continue;
        L->bn_in = asymbp__layer_input(net, i);
        if (!(L->bn_coef = asymbp__calloc(ctx, 4 * (size_t)L->in_c, sizeof(float)))) goto nomem;
        if (L->relu && P && (P->kind == ASYMBP_LAYER_MAXPOOL || P->kind == ASYMBP_LAYER_AVGPOOL)) {
            P->bn_fwd = L;
            L->fwd_deferred = 1;
        }
        if (i > 0 && net->layers[i - 1]->kind == ASYMBP_LAYER_CONV2D) {
            net->layers[i - 1]->bn_bwd = L;
            L->bwd_deferred = 1;
        }
    }
    if (col && (asymbp__mul_size(nthr, col, &tot) != 0 || !(net->col = asymbp__alloc(ctx, tot * sizeof(float)))))
        goto nomem;
    net->col_cap = col;
    if (nthr > 1 && part) {
        /* conv weight-gradient partials of threads 1.. (thread 0 writes dW itself), 64-byte rows */
        net->wpart_stride = (part + 15) & ~(size_t)15;
        if (asymbp__mul_size(nthr - 1, net->wpart_stride, &tot) != 0 || !(net->wpart = asymbp__alloc(ctx, tot * sizeof(float))))
            goto nomem;
    }
    if (nthr > 1 && dense_in) {
        if (asymbp__mul_size(nthr - 1, batch, &tot) != 0 || asymbp__mul_size(tot, dense_in, &tot) != 0 ||
            !(net->dxpart = asymbp__alloc(ctx, tot * sizeof(float))))
            goto nomem;
    }
    if (!(net->tsum = asymbp__calloc(ctx, nthr, sizeof(double)))) goto nomem;
    if (bind_gemm(net, batch, nthr) != 0) goto nomem;
    net->nthr = (int)nthr;
    net->batch = batch;
    /* no spec text here: building it allocates, and a log line must not turn an out-of-memory
     * into a silent degradation */
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "net bound to batch %zu on %zu thread%s (%zu layers, %zu learnable floats)", batch,
                nthr, nthr == 1 ? "" : "s", net->n_layers, asymbp_net_weight_count(net));
    return ASYMBP_OK;
nomem:
    unbind(net);
    return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_bind: out of memory for batch size %zu", batch);
}

size_t asymbp_net_batch_size(const asymbp_net_t *net) { return net ? net->batch : 0; }

/* ---- forward / loss / backward -------------------------------------------------------------- */

const float *asymbp__net_forward_raw(asymbp_net_t *net, const float *x, size_t n, int train)
{
    if (x != net->input) memcpy(net->input, x, n * net->in_size * sizeof(float));
    for (size_t i = 0; i < net->n_layers; i++)
        asymbp__layer_forward(net, net->layers[i], asymbp__layer_input(net, i), n, train);
    net->n_fwd = n;
    net->have_fwd = 1;
    net->have_delta = 0;
    return net->layers[net->n_layers - 1]->out;
}

static asymbp_status_t check_bound(asymbp_net_t *net, const char *who, size_t n, int chunked)
{
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "%s: net is NULL", who);
    if (!net->batch) return asymbp__error(net->ctx, ASYMBP_E_STATE, "%s: the net is not bound (call asymbp_net_bind)", who);
    if (n == 0) return asymbp__error(net->ctx, ASYMBP_E_INVALID, "%s: n is 0", who);
    if (!chunked && n > net->batch)
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "%s: n is %zu, larger than the bound batch size %zu", who, n, net->batch);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_forward(asymbp_net_t *net, const float *x, size_t n, int train, const float **logits)
{
    asymbp_status_t st;
    const float *out;
    if (logits) *logits = NULL;
    if ((st = check_bound(net, "net_forward", n, 0)) != ASYMBP_OK) return st;
    ASYMBP_CHECK_NULL(net->ctx, x, "x");
    out = asymbp__net_forward_raw(net, x, n, train);
    if (logits) *logits = out;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__check_labels(asymbp_net_t *net, const int32_t *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= net->classes)
            return asymbp__error(net->ctx, ASYMBP_E_RANGE, "loss: label %ld of sample %zu is outside [0, %lld)",
                                 (long)labels[i], i, (long long)net->classes);
    return ASYMBP_OK;
}

/* Softmax of the last logits into net->probs; returns the summed cross-entropy in double. */
static double softmax_xent(asymbp_net_t *net, const int32_t *labels, size_t n)
{
    size_t K = (size_t)net->classes;
    const float *z = net->layers[net->n_layers - 1]->out;
    double total = 0.0;
    for (size_t s = 0; s < n; s++) {
        const float *zs = z + s * K;
        float *p = net->probs + s * K;
        float mx = zs[0];
        double sum = 0.0;
        for (size_t j = 1; j < K; j++) if (zs[j] > mx) mx = zs[j];
        for (size_t j = 0; j < K; j++) sum += exp((double)zs[j] - mx);
        for (size_t j = 0; j < K; j++) p[j] = (float)(exp((double)zs[j] - mx) / sum);
        if (labels) total += log(sum) - ((double)zs[labels[s]] - mx);
    }
    return total;
}

asymbp_status_t asymbp_net_loss(asymbp_net_t *net, const int32_t *labels, size_t n, float *loss)
{
    asymbp_status_t st;
    size_t K;
    double total;
    float *d;
    if (loss) *loss = NAN;
    if ((st = check_bound(net, "net_loss", n, 0)) != ASYMBP_OK) return st;
    ASYMBP_CHECK_NULL(net->ctx, labels, "labels");
    if (!net->have_fwd) return asymbp__error(net->ctx, ASYMBP_E_STATE, "net_loss: no forward pass since binding");
    if (n != net->n_fwd)
        return asymbp__error(net->ctx, ASYMBP_E_SHAPE, "net_loss: %zu labels for a forward pass of %zu samples", n, net->n_fwd);
    if ((st = asymbp__check_labels(net, labels, n)) != ASYMBP_OK) return st;
    K = (size_t)net->classes;
    total = softmax_xent(net, labels, n);
    d = net->layers[net->n_layers - 1]->dout;
    net->have_bwd = 0; /* the top layer's delta buffer is about to change */
    memcpy(net->labels, labels, n * sizeof(int32_t));
    for (size_t s = 0; s < n; s++) {
        const float *p = net->probs + s * K;
        float *ds = d + s * K;
        float inv = 1.0f / (float)n;
        for (size_t j = 0; j < K; j++) ds[j] = p[j] * inv;
        ds[labels[s]] -= inv;
    }
    net->have_delta = 1;
    if (loss) *loss = (float)(total / (double)n);
    return ASYMBP_OK;
}

/* The lowest layer backward visits when the input gradient is not wanted: the first one with
 * parameters (layers below it only pass deltas down to the input). */
static size_t lowest_backward_layer(const asymbp_net_t *net)
{
    size_t lowest = 0;
    while (lowest < net->n_layers) {
        int k = net->layers[lowest]->kind;
        if (k == ASYMBP_LAYER_DENSE || k == ASYMBP_LAYER_CONV2D || k == ASYMBP_LAYER_BATCHNORM) break;
        lowest++;
    }
    return lowest;
}

asymbp_status_t asymbp_net_backward(asymbp_net_t *net)
{
    asymbp_status_t st;
    size_t lowest = 0, n;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_backward: net is NULL");
    if (!net->batch) return asymbp__error(net->ctx, ASYMBP_E_STATE, "net_backward: the net is not bound (call asymbp_net_bind)");
    if (!net->have_delta)
        return asymbp__error(net->ctx, ASYMBP_E_STATE, "net_backward: no loss since the last forward pass (call asymbp_net_loss)");
    /* with the input gradient wanted (gradcheck) the lowest layer's V is read too: the hook
     * brings any stale layer up to date (a no-op for fresh ones) */
    if (!net->force_sym && net->hooks.refresh &&
        (!net->refreshed || net->last_refresh_step != net->step || net->need_input_grad)) {
        st = net->hooks.refresh(net, net->hooks.state);
        if (st != ASYMBP_OK) {
            asymbp__error_prefix(net->ctx, "net_backward: feedback refresh failed");
            return st;
        }
        net->refreshed = 1;
        net->last_refresh_step = net->step;
    }
    n = net->n_fwd;
    if (!net->need_input_grad) lowest = lowest_backward_layer(net);
    for (size_t i = net->n_layers; i-- > lowest;) {
        asymbp__layer_t *L = net->layers[i];
        asymbp__layer_t *D = NULL;   /* the weighted layer below, when its feedback is direct */
        float *dx;
        if (i == 0) dx = net->need_input_grad ? net->dinput : NULL;
        else dx = i > lowest ? net->layers[i - 1]->dout : NULL;
        /* Direct feedback: the weighted layer below has its error delivered to the top of its
         * block (this layer's input) from the output error, so this layer sends none.  (Every
         * block's delivery depends on the output error alone; the blocks still run one after the
         * other, each on all the threads.) */
        if (dx && L->wl_below >= 0 && !net->force_sym && net->layers[L->wl_below]->wl.B) {
            D = net->layers[L->wl_below];
            dx = NULL;
        }
        asymbp__layer_backward(net, L, asymbp__layer_input(net, i), dx, n);
        if (D) {
            float *top = net->layers[i - 1]->dout;
            st = net->hooks.deliver ? net->hooks.deliver(net, net->hooks.state, &D->wl, net->layers[net->n_layers - 1]->dout,
                                                         net->labels, n, top)
                                    : asymbp__error(net->ctx, ASYMBP_E_STATE, "no feedback layer to deliver the error");
            if (st != ASYMBP_OK) {
                asymbp__error_prefix(net->ctx, "net_backward: direct feedback of layer %d", D->index);
                return st;
            }
            /* what arrives below this layer in place of the error it would send */
            L->wl.delta_norm = sqrt(asymbp__net_sumsq(net, top, n * L->in_size, n));
        }
    }
    net->have_bwd = 1;
    net->bwd_n = n;
    net->bwd_lowest = lowest;
    net->bwd_input = net->need_input_grad;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_predict(asymbp_net_t *net, const float *x, size_t n, int32_t *pred)
{
    asymbp_status_t st;
    size_t K;
    if ((st = check_bound(net, "net_predict", n, 1)) != ASYMBP_OK) return st;
    ASYMBP_CHECK_NULL(net->ctx, x, "x");
    ASYMBP_CHECK_NULL(net->ctx, pred, "pred");
    K = (size_t)net->classes;
    for (size_t off = 0; off < n; off += net->batch) {
        size_t m = n - off < net->batch ? n - off : net->batch;
        const float *z = asymbp__net_forward_raw(net, x + off * net->in_size, m, 0);
        for (size_t s = 0; s < m; s++) {
            const float *zs = z + s * K;
            size_t best = 0;
            for (size_t j = 1; j < K; j++) if (zs[j] > zs[best]) best = j;
            pred[off + s] = (int32_t)best;
        }
    }
    net->have_fwd = 0;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_evaluate(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                                    float *loss, float *accuracy)
{
    asymbp_status_t st;
    size_t K, correct = 0;
    double total = 0.0;
    if (loss) *loss = NAN;
    if (accuracy) *accuracy = NAN;
    if ((st = check_bound(net, "net_evaluate", n, 1)) != ASYMBP_OK) return st;
    ASYMBP_CHECK_NULL(net->ctx, x, "x");
    ASYMBP_CHECK_NULL(net->ctx, labels, "labels");
    if ((st = asymbp__check_labels(net, labels, n)) != ASYMBP_OK) return st;
    K = (size_t)net->classes;
    for (size_t off = 0; off < n; off += net->batch) {
        size_t m = n - off < net->batch ? n - off : net->batch;
        const float *z = asymbp__net_forward_raw(net, x + off * net->in_size, m, 0);
        total += softmax_xent(net, labels + off, m);
        for (size_t s = 0; s < m; s++) {
            const float *zs = z + s * K;
            size_t best = 0;
            for (size_t j = 1; j < K; j++) if (zs[j] > zs[best]) best = j;
            correct += (int32_t)best == labels[off + s];
        }
    }
    net->have_fwd = 0;
    if (loss) *loss = (float)(total / (double)n);
    if (accuracy) *accuracy = (float)((double)correct / (double)n);
    return ASYMBP_OK;
}

/* ---- introspection -------------------------------------------------------------------------- */

size_t asymbp_net_layer_count(const asymbp_net_t *net) { return net ? net->n_layers : 0; }

asymbp_layer_kind_t asymbp_net_layer_kind(const asymbp_net_t *net, size_t i)
{
    if (!net || i >= net->n_layers) return ASYMBP_LAYER_NONE;
    return (asymbp_layer_kind_t)net->layers[i]->kind;
}

const char *asymbp_net_layer_name(const asymbp_net_t *net, size_t i)
{
    if (!net || i >= net->n_layers) return NULL;
    return net->layers[i]->name;
}

asymbp_status_t asymbp_net_layer_output_shape(const asymbp_net_t *net, size_t i, int64_t shape[3])
{
    const asymbp__layer_t *L;
    if (!net || !shape) return asymbp__error(net ? net->ctx : NULL, ASYMBP_E_INVALID, "net_layer_output_shape: NULL argument");
    if (i >= net->n_layers)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net_layer_output_shape: layer %zu of %zu", i, net->n_layers);
    L = net->layers[i];
    shape[0] = L->out_c; shape[1] = L->out_h; shape[2] = L->out_w;
    return ASYMBP_OK;
}

size_t asymbp_net_param_count(const asymbp_net_t *net) { return net ? net->n_params : 0; }

asymbp_status_t asymbp_net_param_at(asymbp_net_t *net, size_t i, asymbp_tensor_t **value, asymbp_tensor_t **grad)
{
    if (value) *value = NULL;
    if (grad) *grad = NULL;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_param_at: net is NULL");
    if (i >= net->n_params)
        return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net_param_at: parameter %zu of %zu", i, net->n_params);
    if (value) *value = net->pvalue[i];
    if (grad) *grad = net->pgrad[i];
    return ASYMBP_OK;
}

const char *asymbp_net_param_name(const asymbp_net_t *net, size_t i)
{
    if (!net || i >= net->n_params) return NULL;
    return net->params[i].name;
}

size_t asymbp_net_weight_count(const asymbp_net_t *net)
{
    size_t t = 0;
    if (!net) return 0;
    for (size_t i = 0; i < net->n_params; i++) t += net->params[i].numel;
    return t;
}

int64_t asymbp_net_classes(const asymbp_net_t *net) { return net ? net->classes : 0; }

asymbp_status_t asymbp_net_input_shape(const asymbp_net_t *net, int64_t shape[3])
{
    if (!net || !shape) return asymbp__error(net ? net->ctx : NULL, ASYMBP_E_INVALID, "net_input_shape: NULL argument");
    shape[0] = net->in_c; shape[1] = net->in_h; shape[2] = net->in_w;
    return ASYMBP_OK;
}

/* ---- hooks (net_hooks.h) -------------------------------------------------------------------- */

asymbp_ctx_t *asymbp__net_ctx(const asymbp_net_t *net) { return net ? net->ctx : NULL; }

size_t asymbp__net_wlayer_count(const asymbp_net_t *net) { return asymbp_net_weighted_layer_count(net); }

asymbp__wlayer_t *asymbp__net_wlayer_at(asymbp_net_t *net, size_t i)
{
    if (!net) return NULL;
    for (size_t j = 0; j < net->n_layers; j++) {
        asymbp__layer_t *L = net->layers[j];
        if (L->kind == ASYMBP_LAYER_DENSE || L->kind == ASYMBP_LAYER_CONV2D) {
            if (i == 0) return &L->wl;
            i--;
        }
    }
    return NULL;
}

int asymbp__net_wlayer_reads_feedback(const asymbp_net_t *net, const asymbp__wlayer_t *wl)
{
    const asymbp__layer_t *L;
    if (!net || !wl || wl->layer_index < 0 || (size_t)wl->layer_index >= net->n_layers) return 0;
    if (wl->B) return 1;
    L = net->layers[wl->layer_index];
    if (L->wl_below >= 0 && net->layers[L->wl_below]->wl.B) return 0;
    return net->need_input_grad || (size_t)wl->layer_index > lowest_backward_layer(net);
}

size_t asymbp__net_param_count(const asymbp_net_t *net) { return net ? net->n_params : 0; }

asymbp__param_t *asymbp__net_param_at(asymbp_net_t *net, size_t i)
{
    return net && i < net->n_params ? &net->params[i] : NULL;
}

void asymbp__net_set_fb_hooks(asymbp_net_t *net, const asymbp__net_fb_hooks_t *hooks)
{
    if (!net) return;
    if (net->hooks.destroy) net->hooks.destroy(net, net->hooks.state);
    if (hooks) net->hooks = *hooks;
    else memset(&net->hooks, 0, sizeof net->hooks);
    net->refreshed = 0;
}

asymbp__net_fb_hooks_t *asymbp__net_fb_hooks(asymbp_net_t *net) { return net ? &net->hooks : NULL; }

uint64_t asymbp__net_step(const asymbp_net_t *net) { return net ? net->step : 0; }

asymbp_status_t asymbp__net_step_begin(asymbp_net_t *net)
{
    asymbp_status_t st = ASYMBP_OK;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_step_begin: net is NULL");
    if (net->hooks.before_update) {
        st = net->hooks.before_update(net, net->hooks.state);
        if (st != ASYMBP_OK) asymbp__error_prefix(net->ctx, "feedback before_update failed");
    }
    return st;
}

asymbp_status_t asymbp__net_step_done(asymbp_net_t *net)
{
    asymbp_status_t st = ASYMBP_OK;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_step_done: net is NULL");
    if (net->hooks.after_update) {
        st = net->hooks.after_update(net, net->hooks.state);
        if (st != ASYMBP_OK) asymbp__error_prefix(net->ctx, "feedback after_update failed");
    }
    net->step++;
    return st;
}

void asymbp__net_set_step(asymbp_net_t *net, uint64_t step)
{
    if (!net) return;
    net->step = step;
    net->refreshed = 0;
}

void asymbp__net_force_symmetric(asymbp_net_t *net, int on)
{
    if (net) net->force_sym = on ? 1 : 0;
}

/* ---- BN population statistics ---------------------------------------------------------------- */

size_t asymbp__net_bn_stat_floats(const asymbp_net_t *net)
{
    size_t n = 0;
    if (!net) return 0;
    for (size_t i = 0; i < net->n_layers; i++)
        if (net->layers[i]->kind == ASYMBP_LAYER_BATCHNORM) n += 2 * (size_t)net->layers[i]->in_c;
    return n;
}

void asymbp__net_set_sample_window(asymbp_net_t *net, size_t offset, size_t global)
{
    net->win_offset = offset;
    net->win_global = global;
}

void asymbp__net_bn_stat_copy(asymbp_net_t *net, float *buf, int to_buf)
{
    size_t off = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        size_t C = (size_t)L->in_c;
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        if (to_buf) {
            memcpy(buf + off, L->run_mean, C * sizeof(float));
            memcpy(buf + off + C, L->run_var, C * sizeof(float));
        } else {
            memcpy(L->run_mean, buf + off, C * sizeof(float));
            memcpy(L->run_var, buf + off + C, C * sizeof(float));
        }
        off += 2 * C;
    }
}

asymbp_status_t asymbp__net_bn_recal_begin(asymbp_net_t *net)
{
    size_t total = asymbp__net_bn_stat_floats(net), off = 0;
    if (!net) return ASYMBP_E_INVALID;
    if (net->bn_recal) return asymbp__error(net->ctx, ASYMBP_E_STATE, "bn_recalibrate: a recalibration is already running");
    net->recal_block = asymbp__calloc(net->ctx, total ? total : 1, sizeof(double));
    if (!net->recal_block) return asymbp__error(net->ctx, ASYMBP_E_NOMEM, "bn_recalibrate: out of memory");
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        size_t C = (size_t)L->in_c;
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        L->acc_mean = net->recal_block + off;
        L->acc_var = net->recal_block + off + C;
        L->acc_count = 0.0;
        off += 2 * C;
    }
    net->bn_recal = 1;
    return ASYMBP_OK;
}

void asymbp__net_bn_recal_end(asymbp_net_t *net, int commit)
{
    if (!net || !net->bn_recal) return;
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        if (commit && L->acc_count > 0.0)
            for (int64_t c = 0; c < L->in_c; c++) {
                L->run_mean[c] = (float)(L->acc_mean[c] / L->acc_count);
                L->run_var[c] = (float)(L->acc_var[c] / L->acc_count);
            }
        L->acc_mean = L->acc_var = NULL;
        L->acc_count = 0.0;
    }
    asymbp__free(net->ctx, net->recal_block);
    net->recal_block = NULL;
    net->bn_recal = 0;
}
