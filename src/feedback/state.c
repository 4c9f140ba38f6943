/* Saving and restoring the feedback policies of a net (layout in feedback_impl.h).
 *
 * Saving never refreshes a lazily skipped (stale) V: refreshing here would draw from the
 * instance's RNG at a point the uninterrupted run does not, so a run that saved a checkpoint would
 * end with different feedback state (and a different model file) than one that did not.  The
 * stale V is saved with last_step/refreshed, and the loaded instance refreshes when V is read. */
#include <string.h>
#include "feedback/feedback_impl.h"

#define FDBK_VERSION 1u

asymbp_status_t asymbp__feedback_write(asymbp_net_t *net, asymbp__wbuf_t *w)
{
    asymbp_ctx_t *ctx;
    size_t i, nw, pos;
    if (!net || !w) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    nw = asymbp__net_wlayer_count(net);
    pos = asymbp__wbuf_chunk_begin(w, "FDBK");
    asymbp__wbuf_u32(w, FDBK_VERSION);
    asymbp__wbuf_u32(w, (uint32_t)nw);
    for (i = 0; i < nw; i++) {
        const asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        const asymbp__fb_inst_t *inst = wl->fb;
        size_t nbuf = inst ? inst->entry->vt.buffer_count * inst->numel : 0;
        if (!inst) {
            asymbp__wbuf_u32(w, 0);
            continue;
        }
        asymbp__wbuf_u32(w, 1);
        asymbp__wbuf_str(w, inst->setting);
        asymbp__wbuf_u64(w, inst->numel);
        asymbp__wbuf_u64(w, inst->rng.state);
        asymbp__wbuf_u64(w, inst->rng.inc);
        asymbp__wbuf_u64(w, inst->last_step);
        asymbp__wbuf_u32(w, (uint32_t)inst->refreshed);
        asymbp__wbuf_u64(w, inst->entry->vt.state_size);
        if (inst->entry->vt.state_size) asymbp__wbuf_put(w, inst->state, inst->entry->vt.state_size);
        asymbp__wbuf_u64(w, nbuf);
        if (nbuf) asymbp__wbuf_f32s(w, inst->buf, nbuf);
        asymbp__wbuf_u64(w, inst->V ? inst->numel : 0);
        if (inst->V) asymbp__wbuf_f32s(w, inst->V, inst->numel);
    }
    asymbp__wbuf_chunk_end(w, pos);
    if (w->failed) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory while saving the policies");
    return ASYMBP_OK;
}

/* Read one layer's record into a fresh instance (NULL for plain sym). */
static asymbp_status_t read_layer(asymbp_net_t *net, size_t i, asymbp__rbuf_t *r, asymbp__fb_inst_t **out)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
    asymbp__fb_inst_t *inst;
    char setting[256];
    uint64_t numel, rs, rinc, last, ssize, nbuf, nv;
    uint32_t kind, refreshed;
    asymbp_status_t rc;
    *out = NULL;
    kind = asymbp__rbuf_u32(r);
    if (r->failed) goto trunc;
    if (kind == 0) return ASYMBP_OK;
    if (kind != 1) return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: unknown record kind %u", i, (unsigned)kind);
    asymbp__rbuf_str(r, setting, sizeof setting);
    numel = asymbp__rbuf_u64(r);
    rs = asymbp__rbuf_u64(r);
    rinc = asymbp__rbuf_u64(r);
    last = asymbp__rbuf_u64(r);
    refreshed = asymbp__rbuf_u32(r);
    if (r->failed) goto trunc;
    if (!(rinc & 1u)) return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: bad RNG state", i);
    /* a direct policy saved without a tensor was inert (created on the then highest weighted
     * layer): it stays so */
    rc = asymbp__fb_inst_create_as(ctx, wl, setting, 0, asymbp__net_step(net), numel == 0, &inst);
    if (rc != ASYMBP_OK) {
        asymbp__error_prefix(ctx, "loading feedback of weighted layer %zu", i);
        return rc;
    }
    if (!inst) {
        /* a record for plain sym is never written; accept it anyway */
        return ASYMBP_OK;
    }
    /* the size of the policy's tensor: W's, or a direct policy's B (from the net's shape) */
    if (numel != inst->numel) {
        rc = asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: saved policy has %llu values, the net's layer %zu",
                           i, (unsigned long long)numel, inst->numel);
        goto fail;
    }
    ssize = asymbp__rbuf_u64(r);
    if (r->failed) goto trunc_inst;
    if (ssize != inst->entry->vt.state_size) {
        rc = asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: policy '%s' has %zu bytes of state, the file %llu", i,
                           inst->entry->base.name, inst->entry->vt.state_size, (unsigned long long)ssize);
        goto fail;
    }
    if (ssize) asymbp__rbuf_get(r, inst->state, (size_t)ssize);
    nbuf = asymbp__rbuf_u64(r);
    if (r->failed) goto trunc_inst;
    if (nbuf != inst->entry->vt.buffer_count * inst->numel) {
        rc = asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: policy '%s' keeps %zu buffer floats, the file %llu", i,
                           inst->entry->base.name, inst->entry->vt.buffer_count * inst->numel, (unsigned long long)nbuf);
        goto fail;
    }
    if (nbuf) asymbp__rbuf_f32s(r, inst->buf, (size_t)nbuf);
    nv = asymbp__rbuf_u64(r);
    if (r->failed) goto trunc_inst;
    if (nv != (inst->V ? inst->numel : 0)) {
        rc = asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: V size %llu does not fit policy '%s'", i,
                           (unsigned long long)nv, inst->entry->base.name);
        goto fail;
    }
    if (nv) asymbp__rbuf_f32s(r, inst->V, (size_t)nv);
    if (r->failed) goto trunc_inst;
    inst->rng.state = rs;
    inst->rng.inc = rinc;
    inst->last_step = last;
    inst->refreshed = refreshed != 0;
    *out = inst;
    return ASYMBP_OK;
trunc_inst:
    rc = asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: the saved record is truncated", i);
fail:
    asymbp__fb_inst_destroy(ctx, inst);
    return rc;
trunc:
    return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: layer %zu: the saved record is truncated", i);
}

asymbp_status_t asymbp__feedback_read(asymbp_net_t *net, const asymbp__rbuf_t *area)
{
    asymbp_ctx_t *ctx;
    asymbp__rbuf_t r;
    asymbp__fb_inst_t **fresh;
    uint32_t version, n;
    size_t i, nw;
    asymbp_status_t rc = ASYMBP_OK;
    if (!net || !area) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    if (asymbp__rbuf_chunk(area, "FDBK", &r) != 0) return ASYMBP_OK;
    version = asymbp__rbuf_u32(&r);
    n = asymbp__rbuf_u32(&r);
    if (r.failed) return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: the saved policies are truncated");
    if (version != FDBK_VERSION)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: saved policies have format version %u (this library: %u)",
                             (unsigned)version, FDBK_VERSION);
    nw = asymbp__net_wlayer_count(net);
    if (n != nw)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback: the file has policies for %u weighted layers, the net %zu",
                             (unsigned)n, nw);
    if (nw == 0) return ASYMBP_OK;
    rc = asymbp__fb_net_hooks(net);
    if (rc != ASYMBP_OK) return rc;
    fresh = asymbp__calloc(ctx, nw, sizeof *fresh);
    if (!fresh) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory");
    for (i = 0; i < nw; i++) {
        rc = read_layer(net, i, &r, &fresh[i]);
        if (rc != ASYMBP_OK) break;
    }
    if (rc != ASYMBP_OK) {
        while (i-- > 0) asymbp__fb_inst_destroy(ctx, fresh[i]);
    } else {
        for (i = 0; i < nw; i++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
            asymbp__fb_inst_t *old = wl->fb;
            asymbp__fb_inst_attach(wl, fresh[i]);
            asymbp__fb_inst_destroy(ctx, old);
        }
    }
    asymbp__free(ctx, fresh);
    return rc;
}
