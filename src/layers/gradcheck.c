/* asymbp_net_gradcheck: the backward pass against central finite differences of the loss.
 * Method (docs/layers.md): the finite differences are taken on a double-precision reference
 * forward pass (naive loops, independent of the float kernels), which keeps the ReLU on/off
 * pattern, the max-pool choices and the dropout mask of the float pass being checked.  So the
 * function differenced is the smooth piece the backward pass differentiates (kinks cannot spoil
 * the quotient) and rounding noise is ~1e-16 instead of ~1e-7.  Relative error with a floor. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/core_impl.h"
#include "layers/layers_impl.h"

typedef struct gc_state {
    asymbp_net_t *net;
    const int32_t *labels;
    size_t n;
    double *xin;          /* n * in_size */
    double **act;         /* per layer: n * out_size */
    double **pv;          /* per parameter: double copy of the values */
    float **relu_mask;    /* per layer: the float pass's ReLU pattern (ReLU layers only) */
    double floor_abs;
} gc_state_t;

static double *param_d(gc_state_t *g, const asymbp__layer_t *L, const float *which)
{
    for (size_t i = 0; i < g->net->n_params; i++)
        if (g->net->params[i].value == which && g->net->params[i].layer_index == L->index) return g->pv[i];
    return NULL;
}

static void ref_layer(gc_state_t *g, const asymbp__layer_t *L, const double *x, double *y)
{
    size_t n = g->n;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE: {
        const double *W = param_d(g, L, L->W), *b = L->has_bias ? param_d(g, L, L->b) : NULL;
        size_t in = L->in_size, out = L->out_size;
        for (size_t s = 0; s < n; s++)
            for (size_t j = 0; j < out; j++) {
                double a = b ? b[j] : 0.0;
                for (size_t i = 0; i < in; i++) a += W[j * in + i] * x[s * in + i];
                y[s * out + j] = a;
            }
        break;
    }
    case ASYMBP_LAYER_CONV2D: {
        const double *W = param_d(g, L, L->W), *b = L->has_bias ? param_d(g, L, L->b) : NULL;
        int64_t C = L->in_c, H = L->in_h, Wd = L->in_w, OC = L->out_c, OH = L->out_h, OW = L->out_w;
        for (size_t s = 0; s < n; s++)
            for (int64_t o = 0; o < OC; o++)
                for (int64_t i = 0; i < OH; i++)
                    for (int64_t j = 0; j < OW; j++) {
                        double a = b ? b[o] : 0.0;
                        for (int64_t c = 0; c < C; c++)
                            for (int u = 0; u < L->kh; u++) {
                                int64_t ih = i * L->stride - L->pad + u;
                                if (ih < 0 || ih >= H) continue;
                                for (int v = 0; v < L->kw; v++) {
                                    int64_t iw = j * L->stride - L->pad + v;
                                    if (iw < 0 || iw >= Wd) continue;
                                    a += W[((o * C + c) * L->kh + u) * L->kw + v] * x[(((int64_t)s * C + c) * H + ih) * Wd + iw];
                                }
                            }
                        y[(((int64_t)s * OC + o) * OH + i) * OW + j] = a;
                    }
        break;
    }
    case ASYMBP_LAYER_MAXPOOL: {
        size_t planes = n * (size_t)L->in_c, ip = (size_t)(L->in_h * L->in_w), op = (size_t)(L->out_h * L->out_w);
        for (size_t pl = 0; pl < planes; pl++)
            for (size_t i = 0; i < op; i++) y[pl * op + i] = x[pl * ip + (size_t)L->argmax[pl * op + i]];
        break;
    }
    case ASYMBP_LAYER_AVGPOOL: {
        int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
        int k = L->kh, st = L->stride, p = L->pad;
        for (size_t pl = 0; pl < n * (size_t)L->in_c; pl++)
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    double sum = 0.0;
                    int cnt = 0;
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int64_t ih = i * st - p + u, iw = j * st - p + v;
                            if (ih >= H + p || iw >= W + p) continue;
                            cnt++;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W) sum += x[pl * (size_t)(H * W) + (size_t)(ih * W + iw)];
                        }
                    y[pl * (size_t)(OH * OW) + (size_t)(i * OW + j)] = sum / cnt;
                }
        break;
    }
    case ASYMBP_LAYER_RELU: {
        const float *m = g->relu_mask[L->index];
        for (size_t i = 0; i < n * L->out_size; i++) y[i] = m[i] != 0.0f ? x[i] : 0.0;
        break;
    }
    case ASYMBP_LAYER_FLATTEN:
        memcpy(y, x, n * L->out_size * sizeof(double));
        break;
    case ASYMBP_LAYER_BATCHNORM: {
        const double *gam = param_d(g, L, L->gamma), *bet = param_d(g, L, L->beta);
        size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
        for (size_t c = 0; c < C; c++) {
            double mean = 0.0, var = 0.0, is;
            if (L->bn_train) {
                for (size_t s = 0; s < n; s++) for (size_t i = 0; i < S; i++) mean += x[(s * C + c) * S + i];
                mean /= (double)M;
                for (size_t s = 0; s < n; s++)
                    for (size_t i = 0; i < S; i++) { double d = x[(s * C + c) * S + i] - mean; var += d * d; }
                var /= (double)M;
            } else {
                mean = L->run_mean[c];
                var = L->run_var[c];
            }
            is = 1.0 / sqrt(var + (double)L->eps);
            for (size_t s = 0; s < n; s++)
                for (size_t i = 0; i < S; i++)
                    y[(s * C + c) * S + i] = gam[c] * (x[(s * C + c) * S + i] - mean) * is + bet[c];
        }
        break;
    }
    case ASYMBP_LAYER_DROPOUT:
        for (size_t i = 0; i < n * L->out_size; i++) y[i] = L->drop_train ? x[i] * L->mask[i] : x[i];
        break;
    }
}

/* Reference forward from layer `from` up, then the mean cross-entropy in double. */
static double ref_loss(gc_state_t *g, size_t from)
{
    asymbp_net_t *net = g->net;
    size_t K = (size_t)net->classes;
    const double *z;
    double total = 0.0;
    for (size_t i = from; i < net->n_layers; i++) ref_layer(g, net->layers[i], i ? g->act[i - 1] : g->xin, g->act[i]);
    z = g->act[net->n_layers - 1];
    for (size_t s = 0; s < g->n; s++) {
        double mx = z[s * K], sum = 0.0;
        for (size_t j = 1; j < K; j++) if (z[s * K + j] > mx) mx = z[s * K + j];
        for (size_t j = 0; j < K; j++) sum += exp(z[s * K + j] - mx);
        total += log(sum) + mx - z[s * K + (size_t)g->labels[s]];
    }
    return total / (double)g->n;
}

/* Check sampled entries of v (double copy; the analytic float gradient ga), perturbing from
 * layer `from` up.  Returns the worst relative error. */
static double check_tensor(gc_state_t *g, double *v, const float *ga, size_t numel, size_t from, double eps,
                           size_t max_entries, asymbp_rng_t *rng, size_t *checked, size_t *skipped)
{
    double gmax = 0.0, worst = 0.0, floor_;
    size_t want, all;
    for (size_t i = 0; i < numel; i++) if (fabs(ga[i]) > gmax) gmax = fabs(ga[i]);
    floor_ = 1e-2 * gmax;
    if (floor_ < g->floor_abs) floor_ = g->floor_abs;
    all = max_entries == 0 || numel <= max_entries;
    want = all ? numel : max_entries;
    for (size_t t = 0; t < want; t++) {
        size_t i = all ? t : (size_t)asymbp__rng_below(rng, numel > UINT32_MAX ? UINT32_MAX : (uint32_t)numel);
        double w = v[i], h = eps * (fabs(w) > 1.0 ? fabs(w) : 1.0), lp, lm, num, err, den;
        v[i] = w + h;
        lp = ref_loss(g, from);
        v[i] = w - h;
        lm = ref_loss(g, from);
        v[i] = w;
        if (!isfinite(lp) || !isfinite(lm)) { (*skipped)++; continue; }
        num = (lp - lm) / (2.0 * h);
        den = fabs(ga[i]);
        if (fabs(num) > den) den = fabs(num);
        if (floor_ > den) den = floor_;
        err = fabs(ga[i] - num) / den;
        if (err > worst) worst = err;
        (*checked)++;
    }
    return worst;
}

static void gc_free(asymbp_ctx_t *ctx, gc_state_t *g)
{
    asymbp_net_t *net = g->net;
    asymbp__free(ctx, g->xin);
    if (g->act) for (size_t i = 0; i < net->n_layers; i++) asymbp__free(ctx, g->act[i]);
    if (g->pv) for (size_t i = 0; i < net->n_params; i++) asymbp__free(ctx, g->pv[i]);
    if (g->relu_mask) for (size_t i = 0; i < net->n_layers; i++) asymbp__free(ctx, g->relu_mask[i]);
    asymbp__free(ctx, g->act);
    asymbp__free(ctx, g->pv);
    asymbp__free(ctx, g->relu_mask);
}

/* Layers with parameters (the entries of a result), in net order. */
static size_t param_layer_count(const asymbp_net_t *net)
{
    size_t i, c = 0;
    for (i = 0; i < net->n_params; i++)
        c += i == 0 || net->params[i].layer_index != net->params[i - 1].layer_index;
    return c;
}

/* The check itself: one entry per layer with parameters into ent[0..param_layer_count), the
 * summary into sum (its entry members unused).  Arguments checked by the callers. */
static asymbp_status_t run(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                           const asymbp_gradcheck_params_t *p, asymbp_gradcheck_entry_t *ent, asymbp_gradcheck_result_t *sum)
{
    asymbp_gradcheck_params_t prm = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_ctx_t *ctx = net->ctx;
    asymbp_status_t st;
    size_t xn, nent = 0;
    int saved_sym;
    double gall = 0.0;
    asymbp_rng_t rng;
    gc_state_t g;
    if (p) {
        if (p->struct_size < offsetof(asymbp_gradcheck_params_t, use_feedback) + sizeof(int))
            return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "net_gradcheck: params struct_size %zu too small", p->struct_size);
        prm = *p;
    }
    if (!(prm.eps > 0.0 && prm.eps < 1.0))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_gradcheck: eps %g must be in (0, 1)", prm.eps);
    if (!net->batch) return asymbp__error(ctx, ASYMBP_E_STATE, "net_gradcheck: the net is not bound (call asymbp_net_bind)");
    if (n == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_gradcheck: n is 0");
    if (n > net->batch)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "net_gradcheck: n is %zu, larger than the bound batch size %zu", n, net->batch);
    if ((st = asymbp__check_labels(net, labels, n)) != ASYMBP_OK) return st;
    memset(&g, 0, sizeof g);
    g.net = net;
    g.labels = labels;
    g.n = n;
    xn = n * net->in_size;
    g.xin = asymbp__alloc(ctx, xn * sizeof(double));
    g.act = asymbp__calloc(ctx, net->n_layers, sizeof *g.act);
    g.relu_mask = asymbp__calloc(ctx, net->n_layers, sizeof *g.relu_mask);
    g.pv = asymbp__calloc(ctx, net->n_params ? net->n_params : 1, sizeof *g.pv);
    if (!g.xin || !g.act || !g.relu_mask || !g.pv) goto nomem;
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        if (!(g.act[i] = asymbp__alloc(ctx, n * L->out_size * sizeof(double)))) goto nomem;
        if (L->kind == ASYMBP_LAYER_RELU && !(g.relu_mask[i] = asymbp__alloc(ctx, n * L->out_size * sizeof(float)))) goto nomem;
    }
    for (size_t i = 0; i < net->n_params; i++)
        if (!(g.pv[i] = asymbp__alloc(ctx, net->params[i].numel * sizeof(double)))) goto nomem;

    /* the float pass being checked: one train-mode forward (fixing the dropout masks), loss,
     * backward with the input gradient; BN running statistics untouched */
    saved_sym = net->force_sym;
    net->force_sym = prm.use_feedback ? saved_sym : 1;
    net->freeze_stats = 1;
    net->need_input_grad = 1;
    (void)asymbp__net_forward_raw(net, x, n, 1);
    st = asymbp_net_loss(net, labels, n, NULL);
    if (st == ASYMBP_OK) st = asymbp_net_backward(net);
    net->force_sym = saved_sym;
    net->freeze_stats = 0;
    net->need_input_grad = net->want_input_grad;
    net->have_fwd = 0;
    if (st != ASYMBP_OK) goto out;
    for (size_t i = 0; i < net->n_layers; i++)
        if (g.relu_mask[i]) {
            const asymbp__layer_t *L = net->layers[i];
            for (size_t j = 0; j < n * L->out_size; j++) g.relu_mask[i][j] = L->out[j] > 0.0f ? 1.0f : 0.0f;
        }
    for (size_t i = 0; i < xn; i++) {
        g.xin[i] = x[i];
        if (fabs(net->dinput[i]) > gall) gall = fabs(net->dinput[i]);
    }
    for (size_t i = 0; i < net->n_params; i++)
        for (size_t j = 0; j < net->params[i].numel; j++) {
            g.pv[i][j] = net->params[i].value[j];
            if (fabs(net->params[i].grad[j]) > gall) gall = fabs(net->params[i].grad[j]);
        }
    /* float gradients carry rounding error relative to the largest gradient of the net */
    g.floor_abs = 1e-3 * gall;
    if (g.floor_abs < 1e-9) g.floor_abs = 1e-9;
    (void)ref_loss(&g, 0);
    asymbp__rng_seed(&rng, prm.seed, 0x6763ULL);
    for (size_t i = 0; i < net->n_params; i++) {
        asymbp__param_t *pp = &net->params[i];
        const asymbp__layer_t *L = net->layers[pp->layer_index];
        asymbp_gradcheck_entry_t *e;
        double err;
        if (nent == 0 || ent[nent - 1].layer_index != pp->layer_index) {
            e = &ent[nent++];
            memset(e, 0, sizeof *e);
            e->layer_index = pp->layer_index;
            snprintf(e->name, sizeof e->name, "%s", L->name);
        }
        e = &ent[nent - 1];
        err = check_tensor(&g, g.pv[i], pp->grad, pp->numel, (size_t)pp->layer_index, prm.eps, prm.max_entries_per_param,
                           &rng, &e->checked, &e->skipped);
        if (err > e->rel_error) e->rel_error = err;
        if (err > sum->max_rel_error) sum->max_rel_error = err;
        (void)ref_loss(&g, (size_t)pp->layer_index);   /* activations back to the unperturbed values */
    }
    sum->layer_count = nent;
    sum->input_rel_error = check_tensor(&g, g.xin, net->dinput, xn, 0, prm.eps, prm.max_entries_per_param, &rng,
                                        &sum->input_checked, &sum->input_skipped);
    if (sum->input_rel_error > sum->max_rel_error) sum->max_rel_error = sum->input_rel_error;
out:
    gc_free(ctx, &g);
    return st;
nomem:
    gc_free(ctx, &g);
    return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_gradcheck: out of memory");
}

#define RESULT_V1_SIZE (offsetof(asymbp_gradcheck_result_t, input_skipped) + sizeof(size_t))
#define ENTRY_V1_SIZE (offsetof(asymbp_gradcheck_entry_t, skipped) + sizeof(size_t))

asymbp_status_t asymbp_net_gradcheck_v2(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                                        const asymbp_gradcheck_params_t *p, asymbp_gradcheck_result_t *result)
{
    asymbp_ctx_t *ctx;
    asymbp_gradcheck_result_t sum;
    asymbp_gradcheck_entry_t *ent;
    asymbp_status_t st;
    size_t need, i;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_gradcheck: net is NULL");
    ctx = net->ctx;
    ASYMBP_CHECK_NULL(ctx, x, "x");
    ASYMBP_CHECK_NULL(ctx, labels, "labels");
    ASYMBP_CHECK_NULL(ctx, result, "result");
    if (result->struct_size < RESULT_V1_SIZE || result->entry_size < ENTRY_V1_SIZE)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "net_gradcheck: result struct_size %zu / entry_size %zu, expected at "
                             "least %zu / %zu (start from ASYMBP_GRADCHECK_RESULT_INIT)", result->struct_size,
                             result->entry_size, (size_t)RESULT_V1_SIZE, (size_t)ENTRY_V1_SIZE);
    if (!result->layers && result->capacity)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_gradcheck: result->layers is NULL, capacity %zu", result->capacity);
    need = param_layer_count(net);
    result->layer_count = need;
    if (result->capacity < need)
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "net_gradcheck: the net has %zu layers with parameters, result->layers "
                             "holds %zu (layer_count says how many to give)", need, result->capacity);
    ent = asymbp__calloc(ctx, need ? need : 1, sizeof *ent);
    if (!ent) return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_gradcheck: out of memory");
    memset(&sum, 0, sizeof sum);
    st = run(net, x, labels, n, p, ent, &sum);
    if (st == ASYMBP_OK) {
        size_t es = result->entry_size < sizeof *ent ? result->entry_size : sizeof *ent;
        for (i = 0; i < need; i++) memcpy((char *)result->layers + i * result->entry_size, &ent[i], es);
        result->layer_count = need;
        result->max_rel_error = sum.max_rel_error;
        result->input_rel_error = sum.input_rel_error;
        result->input_checked = sum.input_checked;
        result->input_skipped = sum.input_skipped;
    }
    asymbp__free(ctx, ent);
    return st;
}

asymbp_status_t asymbp_net_gradcheck(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                                     const asymbp_gradcheck_params_t *p, asymbp_gradcheck_report_t *report)
{
    asymbp_ctx_t *ctx;
    asymbp_gradcheck_result_t res = ASYMBP_GRADCHECK_RESULT_INIT;
    asymbp_status_t st;
    size_t i, sz;
    if (!net) return asymbp__error(NULL, ASYMBP_E_INVALID, "net_gradcheck: net is NULL");
    ctx = net->ctx;
    ASYMBP_CHECK_NULL(ctx, report, "report");
    if (report->struct_size < sizeof(asymbp_gradcheck_report_t))
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "net_gradcheck: report struct_size %zu, expected at least %zu",
                             report->struct_size, sizeof(asymbp_gradcheck_report_t));
    sz = report->struct_size;
    memset(report, 0, sizeof *report);
    report->struct_size = sz;
    res.capacity = param_layer_count(net);
    res.layers = asymbp__calloc(ctx, res.capacity ? res.capacity : 1, sizeof *res.layers);
    if (!res.layers) return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_gradcheck: out of memory");
    st = asymbp_net_gradcheck_v2(net, x, labels, n, p, &res);
    if (st == ASYMBP_OK) {
        /* the 0.1 report keeps the first ASYMBP_GRADCHECK_MAX_LAYERS; the maximum covers all */
        report->max_rel_error = res.max_rel_error;
        report->input_rel_error = res.input_rel_error;
        report->input_checked = res.input_checked;
        report->input_skipped = res.input_skipped;
        report->layer_count = res.layer_count < ASYMBP_GRADCHECK_MAX_LAYERS ? res.layer_count : ASYMBP_GRADCHECK_MAX_LAYERS;
        for (i = 0; i < report->layer_count; i++) {
            asymbp_gradcheck_layer_t *l = &report->layers[i];
            memcpy(l->name, res.layers[i].name, sizeof l->name);
            l->rel_error = res.layers[i].rel_error;
            l->checked = res.layers[i].checked;
            l->skipped = res.layers[i].skipped;
        }
    }
    asymbp__free(ctx, res.layers);
    return st;
}

size_t asymbp_gradcheck_report_json(const asymbp_gradcheck_report_t *r, char *buf, size_t cap)
{
    size_t need = 0;
    char tmp[256];
    if (!r) return 0;
#define PUT(...) do { int k_ = snprintf(tmp, sizeof tmp, __VA_ARGS__); if (k_ > 0) { \
        size_t l_ = (size_t)k_; if (buf && need < cap) { size_t room = cap - need - 1; \
        memcpy(buf + need, tmp, l_ < room ? l_ : room); buf[need + (l_ < room ? l_ : room)] = '\0'; } need += l_; } } while (0)
    if (buf && cap) buf[0] = '\0';
    PUT("{\"max_rel_error\":%.6g,\"input_rel_error\":%.6g,\"input_checked\":%zu,\"input_skipped\":%zu,\"layers\":[",
        isfinite(r->max_rel_error) ? r->max_rel_error : 1e308, isfinite(r->input_rel_error) ? r->input_rel_error : 1e308,
        r->input_checked, r->input_skipped);
    for (size_t i = 0; i < r->layer_count && i < ASYMBP_GRADCHECK_MAX_LAYERS; i++) {
        const asymbp_gradcheck_layer_t *l = &r->layers[i];
        char name[72];
        size_t k = 0;
        for (size_t j = 0; j < sizeof l->name && l->name[j] && k + 2 < sizeof name; j++) {
            char c = l->name[j];
            if (c == '"' || c == '\\') name[k++] = '\\';
            name[k++] = (c >= 32 && c < 127) ? c : '?';
        }
        name[k] = '\0';
        PUT("%s{\"name\":\"%s\",\"rel_error\":%.6g,\"checked\":%zu,\"skipped\":%zu}", i ? "," : "", name,
            isfinite(l->rel_error) ? l->rel_error : 1e308, l->checked, l->skipped);
    }
    PUT("]}");
#undef PUT
    return need;
}

size_t asymbp_gradcheck_result_json(const asymbp_gradcheck_result_t *r, char *buf, size_t cap)
{
    size_t need = 0, n;
    char tmp[256];
    if (!r || r->struct_size < RESULT_V1_SIZE || r->entry_size < ENTRY_V1_SIZE) return 0;
#define PUT(...) do { int k_ = snprintf(tmp, sizeof tmp, __VA_ARGS__); if (k_ > 0) { \
        size_t l_ = (size_t)k_; if (buf && need < cap) { size_t room = cap - need - 1; \
        memcpy(buf + need, tmp, l_ < room ? l_ : room); buf[need + (l_ < room ? l_ : room)] = '\0'; } need += l_; } } while (0)
    if (buf && cap) buf[0] = '\0';
    PUT("{\"max_rel_error\":%.6g,\"input_rel_error\":%.6g,\"input_checked\":%zu,\"input_skipped\":%zu,\"layers\":[",
        isfinite(r->max_rel_error) ? r->max_rel_error : 1e308, isfinite(r->input_rel_error) ? r->input_rel_error : 1e308,
        r->input_checked, r->input_skipped);
    n = r->layer_count < r->capacity ? r->layer_count : r->capacity;
    for (size_t i = 0; r->layers && i < n; i++) {
        const asymbp_gradcheck_entry_t *l = (const asymbp_gradcheck_entry_t *)(const void *)((const char *)r->layers + i * r->entry_size);
        char name[72];
        size_t k = 0;
        for (size_t j = 0; j < sizeof l->name && l->name[j] && k + 2 < sizeof name; j++) {
            char c = l->name[j];
            if (c == '"' || c == '\\') name[k++] = '\\';
            name[k++] = (c >= 32 && c < 127) ? c : '?';
        }
        name[k] = '\0';
        PUT("%s{\"layer\":%d,\"name\":\"%s\",\"rel_error\":%.6g,\"checked\":%zu,\"skipped\":%zu}", i ? "," : "",
            l->layer_index, name, isfinite(l->rel_error) ? l->rel_error : 1e308, l->checked, l->skipped);
    }
    PUT("]}");
#undef PUT
    return need;
}
