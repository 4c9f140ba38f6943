/* Alignment diagnostics (METHOD.md section 6): per-layer norms, sign concordance, V-W angle and
 * norm ratio, and the exact-backprop probe (a second backward with V = W on the same batch). */
#include <math.h>
#include <string.h>
#include "feedback/feedback_impl.h"
#include "layers/net_into.h"

#define DIAG_V1_SIZE (offsetof(asymbp_feedback_diag_t, bp_grad_norm) + sizeof(double))
#define RAD2DEG 57.29577951308232
/* Element i of a caller's diag array whose elements are stride bytes apart. */
#define DIAG_AT(d, stride, i) ((asymbp_feedback_diag_t *)(void *)((char *)(d) + (i) * (stride)))

/* Angle in degrees between vectors with this dot product and squared norms; NaN if one is 0. */
static double angle_deg(double dot, double aa, double bb)
{
    double c;
    if (!(aa > 0.0) || !(bb > 0.0)) return NAN;
    c = dot / (sqrt(aa) * sqrt(bb));
    if (c > 1.0) c = 1.0;
    if (c < -1.0) c = -1.0;
    return acos(c) * RAD2DEG;
}

static void layer_figures(asymbp__wlayer_t *wl, asymbp_feedback_diag_t *d)
{
    const float *restrict W = wl->W;
    const float *restrict V = wl->V ? wl->V : wl->W;
    size_t i, n = wl->numel, nz = 0, agree = 0;
    double vw = 0.0, vv = 0.0, ww = 0.0;
    d->layer_index = wl->layer_index;
    d->delta_norm = wl->delta_norm;
    d->grad_norm = wl->grad_norm;
    d->grad_angle_bp = NAN;
    d->bp_delta_norm = NAN;
    d->bp_grad_norm = NAN;
    d->delta_angle_bp = NAN;
    d->recv_angle_bp = NAN;
    d->recv_norm = NAN;
    d->bp_recv_norm = NAN;
    if (wl->B) {
        /* a direct policy's B has another shape than W: nothing to compare */
        d->sign_concordance = NAN;
        d->angle_vw = NAN;
        d->norm_ratio = NAN;
        return;
    }
    for (i = 0; i < n; i++) {
        double w = W[i], v = V[i];
        int sw = (w > 0) - (w < 0), sv = (v > 0) - (v < 0);
        nz += sw != 0;
        agree += sw != 0 && sw == sv;
        vw += v * w;
        vv += v * v;
        ww += w * w;
    }
    d->sign_concordance = nz ? (double)agree / (double)nz : NAN;
    if (V == W) {
        d->angle_vw = ww > 0.0 ? 0.0 : NAN;
        d->norm_ratio = ww > 0.0 ? 1.0 : NAN;
    } else {
        d->angle_vw = angle_deg(vw, vv, ww);
        d->norm_ratio = ww > 0.0 ? sqrt(vv) / sqrt(ww) : NAN;
    }
}

/* Angle between two vectors of n floats; exactly 0 when they are the same bits. */
static double angle_of(const float *a, const float *b, size_t n, double *na, double *nb)
{
    double ab = 0.0, aa = 0.0, bb = 0.0;
    size_t e;
    for (e = 0; e < n; e++) {
        double x = a[e], y = b[e];
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if (na) *na = sqrt(aa);
    if (nb) *nb = sqrt(bb);
    if (aa > 0.0 && memcmp(a, b, n * sizeof(float)) == 0) return 0.0;
    return angle_deg(ab, aa, bb);
}

static asymbp_status_t diag_one(asymbp_net_t *net, const char *who, asymbp__wlayer_t *wl, asymbp_feedback_diag_t *diag)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp_feedback_diag_t d;
    asymbp_status_t rc;
    rc = asymbp__fb_wlayer_current(net, wl); /* V for the step the net is at (feedback.h) */
    if (rc != ASYMBP_OK) {
        asymbp__error_prefix(ctx, "%s", who);
        return rc;
    }
    memset(&d, 0, sizeof d);
    layer_figures(wl, &d);
    d.struct_size = diag->struct_size;
    memcpy(diag, &d, diag->struct_size < sizeof d ? diag->struct_size : sizeof d);
    return ASYMBP_OK;
}

static asymbp_status_t diag_check(asymbp_net_t *net, const char *who, const asymbp_feedback_diag_t *diag)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    ASYMBP_CHECK_NULL(ctx, diag, "diag");
    if (diag->struct_size < DIAG_V1_SIZE)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "%s: diag struct_size %zu is smaller than version 1 (%zu)", who,
                             diag->struct_size, (size_t)DIAG_V1_SIZE);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_feedback_diag(asymbp_net_t *net, size_t i, asymbp_feedback_diag_t *diag)
{
    asymbp_ctx_t *ctx;
    asymbp_status_t rc;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    if ((rc = diag_check(net, "net_feedback_diag", diag)) != ASYMBP_OK) return rc;
    if (i >= asymbp__net_wlayer_count(net))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_feedback_diag: weighted layer %zu is out of range (%zu)", i,
                             asymbp__net_wlayer_count(net));
    return diag_one(net, "net_feedback_diag", asymbp__net_wlayer_at(net, i), diag);
}

asymbp_status_t asymbp_net_layer_feedback_diag(asymbp_net_t *net, size_t layer, asymbp_feedback_diag_t *diag)
{
    asymbp_ctx_t *ctx;
    asymbp_status_t rc;
    size_t i, nw;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    if ((rc = diag_check(net, "net_layer_feedback_diag", diag)) != ASYMBP_OK) return rc;
    nw = asymbp__net_wlayer_count(net);
    for (i = 0; i < nw; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        if ((size_t)wl->layer_index == layer) return diag_one(net, "net_layer_feedback_diag", wl, diag);
    }
    if (layer < asymbp_net_layer_count(net))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_layer_feedback_diag: layer %zu (%s) has no weights", layer,
                             asymbp_net_layer_name(net, layer));
    return asymbp__error(ctx, ASYMBP_E_INVALID, "net_layer_feedback_diag: layer %zu is out of range (%zu layers)", layer,
                         asymbp_net_layer_count(net));
}

/* The weight parameter of a weighted layer (matched by its storage). */
static asymbp__param_t *weight_param(asymbp_net_t *net, const asymbp__wlayer_t *wl)
{
    size_t i, n = asymbp__net_param_count(net);
    for (i = 0; i < n; i++) {
        asymbp__param_t *p = asymbp__net_param_at(net, i);
        if (p->value == wl->W) return p;
    }
    return NULL;
}

asymbp_status_t asymbp_net_feedback_probe(asymbp_net_t *net, asymbp_feedback_diag_t *diag, size_t count)
{
    asymbp_ctx_t *ctx;
    size_t i, nw, np, total = 0, off, dtotal = 0, rtotal = 0, dlen, stride, allfl;
    double *norms;
    float *saved, *dsaved, *rsaved, *allsaved;
    unsigned char *scratch;
    asymbp_status_t rc;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    ASYMBP_CHECK_NULL(ctx, diag, "diag");
    nw = asymbp__net_wlayer_count(net);
    np = asymbp__net_param_count(net);
    if (count != nw)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_feedback_probe: count is %zu, the net has %zu weighted layers",
                             count, nw);
    /* the caller's elements are diag[0].struct_size bytes apart: a program built against an
     * older (smaller) or newer struct passes an array of its own element size */
    stride = diag->struct_size;
    if (stride < DIAG_V1_SIZE)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED,
                             "net_feedback_probe: diag[0].struct_size %zu is smaller than version 1 (%zu)", stride,
                             (size_t)DIAG_V1_SIZE);
    for (i = 1; i < nw; i++)
        if (DIAG_AT(diag, stride, i)->struct_size != stride)
            return asymbp__error(ctx, ASYMBP_E_INVALID,
                                 "net_feedback_probe: diag[%zu].struct_size %zu differs from diag[0]'s %zu (one array, "
                                 "one element size)", i, DIAG_AT(diag, stride, i)->struct_size, stride);
    if (!asymbp__net_have_backward(net))
        return asymbp__error(ctx, ASYMBP_E_STATE, "net_feedback_probe: no backward pass since the last loss to compare with");
    for (i = 0; i < np; i++) total += asymbp__net_param_at(net, i)->numel;
    for (i = 0; i < nw; i++) {
        (void)asymbp__net_wlayer_delta_in(net, i, &dlen);
        dtotal += dlen;
        (void)asymbp__net_wlayer_delta_out(net, i, &dlen);
        rtotal += dlen;
    }
    /* the probe's own backward overwrites the deltas: every delta buffer is kept too, so the
     * read-outs still give the asymmetric pass's afterwards */
    allfl = asymbp__net_delta_floats(net);
    scratch = asymbp__fb_net_scratch(net, 2 * nw * sizeof(double) + (total + dtotal + rtotal + allfl) * sizeof(float) + 1);
    if (!scratch) return ASYMBP_E_NOMEM;
    norms = (double *)(void *)scratch;
    saved = (float *)(void *)(scratch + 2 * nw * sizeof(double));
    dsaved = saved + total;
    rsaved = dsaved + dtotal;
    allsaved = rsaved + rtotal;
    asymbp__net_deltas_copy(net, allsaved, 0);
    /* the errors the asymmetric pass sent down (or delivered) and those each weighted layer
     * received at its output, to compare with exact backprop's */
    for (i = 0, off = 0; i < nw; i++) {
        const float *dd = asymbp__net_wlayer_delta_in(net, i, &dlen);
        if (dd) memcpy(dsaved + off, dd, dlen * sizeof(float));
        off += dlen;
    }
    for (i = 0, off = 0; i < nw; i++) {
        const float *dd = asymbp__net_wlayer_delta_out(net, i, &dlen);
        if (dd) memcpy(rsaved + off, dd, dlen * sizeof(float));
        off += dlen;
    }

    for (i = 0, off = 0; i < np; i++) {
        asymbp__param_t *p = asymbp__net_param_at(net, i);
        memcpy(saved + off, p->grad, p->numel * sizeof(float));
        off += p->numel;
    }
    for (i = 0; i < nw; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        norms[2 * i] = wl->delta_norm;
        norms[2 * i + 1] = wl->grad_norm;
    }

    asymbp__net_force_symmetric(net, 1);
    rc = asymbp_net_backward(net);
    asymbp__net_force_symmetric(net, 0);
    /* V of the layers the asymmetric pass did not refresh because it did not use them (lazy
     * refresh): brought up to date for the figures */
    for (i = 0; i < nw && rc == ASYMBP_OK; i++)
        rc = asymbp__fb_wlayer_current(net, asymbp__net_wlayer_at(net, i));

    if (rc == ASYMBP_OK) {
        size_t doff = 0, roff = 0;
        for (i = 0; i < nw; i++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
            const float *dd = asymbp__net_wlayer_delta_in(net, i, &dlen);
            size_t rlen;
            const float *rd = asymbp__net_wlayer_delta_out(net, i, &rlen);
            asymbp__param_t *p = weight_param(net, wl);
            asymbp_feedback_diag_t d;
            double bp_delta = wl->delta_norm;
            memset(&d, 0, sizeof d);
            /* the asymmetric pass's figures, then exact backprop's */
            wl->delta_norm = norms[2 * i];
            wl->grad_norm = norms[2 * i + 1];
            layer_figures(wl, &d);
            d.bp_delta_norm = bp_delta;
            d.delta_angle_bp = dd ? angle_of(dsaved + doff, dd, dlen, NULL, NULL) : NAN;
            doff += dlen;
            if (rd) d.recv_angle_bp = angle_of(rsaved + roff, rd, rlen, &d.recv_norm, &d.bp_recv_norm);
            roff += rlen;
            if (p) {
                size_t k, poff = 0, j;
                double ab = 0.0, aa = 0.0, bb = 0.0;
                for (j = 0; j < np; j++) {
                    asymbp__param_t *q = asymbp__net_param_at(net, j);
                    if (q == p) break;
                    poff += q->numel;
                }
                for (k = 0; k < p->numel; k++) {
                    double a = saved[poff + k], b = p->grad[k];
                    ab += a * b;
                    aa += a * a;
                    bb += b * b;
                }
                d.grad_angle_bp = angle_deg(ab, aa, bb);
                d.bp_grad_norm = sqrt(bb);
            }
            d.struct_size = stride;
            memcpy(DIAG_AT(diag, stride, i), &d, stride < sizeof d ? stride : sizeof d);
        }
    }
    /* Put everything back as the asymmetric pass left it. */
    asymbp__net_deltas_copy(net, allsaved, 1);
    for (i = 0, off = 0; i < np; i++) {
        asymbp__param_t *p = asymbp__net_param_at(net, i);
        memcpy(p->grad, saved + off, p->numel * sizeof(float));
        off += p->numel;
    }
    for (i = 0; i < nw; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        wl->delta_norm = norms[2 * i];
        wl->grad_norm = norms[2 * i + 1];
    }
    if (rc != ASYMBP_OK) asymbp__error_prefix(ctx, "net_feedback_probe");
    return rc;
}
