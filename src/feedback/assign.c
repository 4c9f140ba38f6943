/* Policy instances: creation (all allocation happens here), refresh, and their assignment to the
 * weighted layers of a net through the net's feedback hooks. */
#include <string.h>
#include "feedback/feedback_impl.h"

#define FB_STREAM 0x66656564ULL /* RNG stream id of feedback instances ("feed") */

/* The hooks' state, one per net. */
typedef struct fb_net {
    asymbp_ctx_t *ctx;
    void *scratch;           /* probe: saved gradients and norms */
    size_t scratch_len;
} fb_net_t;

/* The args of every callback.  A direct policy's tensor is B ([classes][block_size], like the
 * weights of a dense layer from the top of the block to the outputs): numel, shape and fans
 * describe it, W keeps the layer's own weights (w_numel, w_shape). */
static void fill_args(asymbp_feedback_args_t *a, asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl,
                      asymbp__fb_inst_t *inst, uint64_t step)
{
    int d;
    memset(a, 0, sizeof *a);
    a->struct_size = sizeof *a;
    a->ctx = ctx;
    a->W = wl->W;
    a->V = inst->V;
    a->buf = inst->buf;
    a->numel = inst->numel;
    if (inst->direct) {
        a->ndim = 2;
        a->shape[0] = (int64_t)wl->classes;
        a->shape[1] = (int64_t)wl->block_size;
        a->fan_in = wl->block_size;
        a->fan_out = wl->classes > 0 ? (size_t)wl->classes : 0;
    } else {
        a->ndim = wl->ndim;
        for (d = 0; d < 4; d++) a->shape[d] = d < wl->ndim ? wl->shape[d] : 0;
        a->fan_in = wl->fan_in;
        a->fan_out = wl->fan_out;
    }
    a->layer_index = wl->layer_index;
    a->is_conv = wl->is_conv;
    a->rng = &inst->rng;
    a->options = inst->options;
    a->step = step;
    a->w_numel = wl->numel;
    a->w_ndim = wl->ndim;
    for (d = 0; d < 4; d++) a->w_shape[d] = d < wl->ndim ? wl->shape[d] : 0;
    a->direct = inst->direct;
    a->classes = wl->classes;
    a->block_size = wl->block_size;
    a->scratch = inst->scratch;
    a->scratch_floats = inst->scratch_floats;
}

static void inst_free(asymbp_ctx_t *ctx, asymbp__fb_inst_t *inst)
{
    asymbp__free(ctx, inst->setting);
    asymbp__free(ctx, inst->state);
    asymbp__free(ctx, inst->buf);
    asymbp__free(ctx, inst->V);
    asymbp__free(ctx, inst->w_before);
    asymbp__free(ctx, inst->scratch);
    asymbp__plugin_unref(&inst->entry->base);
    asymbp__free(ctx, inst);
}

/* A callback failed: keep a built-in's own message, give a plugin's failure a detail. */
static asymbp_status_t cb_failed(asymbp_ctx_t *ctx, const asymbp__fb_entry_t *e, const asymbp__wlayer_t *wl,
                                 const char *what, asymbp_status_t rc)
{
    if (e->base.builtin) {
        asymbp__error_prefix(ctx, "layer %d", wl->layer_index);
        return rc;
    }
    return asymbp__error(ctx, ASYMBP_E_PLUGIN, "feedback '%s' on layer %d: %s returned %s", e->base.name,
                         wl->layer_index, what, asymbp_status_name(rc));
}

asymbp_status_t asymbp__fb_inst_create(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, const char *setting,
                                       uint64_t seed, uint64_t steps_done, asymbp__fb_inst_t **out)
{
    return asymbp__fb_inst_create_as(ctx, wl, setting, seed, steps_done, 0, out);
}

asymbp_status_t asymbp__fb_inst_create_as(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, const char *setting,
                                          uint64_t seed, uint64_t steps_done, int force_inert, asymbp__fb_inst_t **out)
{
    const asymbp__fb_entry_t *e;
    asymbp__fb_inst_t *inst;
    asymbp_feedback_args_t a;
    asymbp_status_t rc;
    const char *opts;
    size_t nbuf = 0, numel;
    int direct, inert = 0;
    *out = NULL;
    if (strlen(setting) > 255)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback: the setting '%.40s...' is longer than 255 bytes", setting);
    rc = asymbp__fb_lookup(ctx, setting, &e);
    if (rc != ASYMBP_OK) return rc;
    opts = setting + strcspn(setting, ":");
    if (*opts == ':') opts++;
    if (!wl->W || wl->numel == 0)
        return asymbp__error(ctx, ASYMBP_E_STATE, "feedback: layer %d has no weights", wl->layer_index);
    if (e->base.builtin && (e->vt.flags & ASYMBP_FEEDBACK_SYMMETRIC))
        return asymbp__fb_builtin_check(ctx, e, opts); /* plain sym: no instance at all */
    /* a direct policy's tensor B maps the classes to the top of the layer's block; the highest
     * weighted layer has no block above it (block_size 0): its instance is inert */
    direct = (e->vt.flags & ASYMBP_FEEDBACK_DIRECT) != 0;
    numel = wl->numel;
    if (direct) {
        if (force_inert || wl->block_size == 0 || wl->classes < 1) {
            inert = 1;
            numel = 0;
        } else if (asymbp__mul_size((size_t)wl->classes, wl->block_size, &numel) != 0) {
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback '%s': %lld x %zu floats overflow", e->base.name,
                                 (long long)wl->classes, wl->block_size);
        }
    }
    if (e->vt.buffer_count && asymbp__mul_size(e->vt.buffer_count, numel, &nbuf) != 0)
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback '%s': %zu buffers of %zu floats overflow", e->base.name,
                             e->vt.buffer_count, numel);
    inst = asymbp__calloc(ctx, 1, sizeof *inst);
    if (!inst) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory");
    inst->entry = e;
    asymbp__plugin_ref(&e->base);
    inst->numel = numel;
    inst->direct = direct;
    inst->inert = inert;
    inst->setting = asymbp__strdup(ctx, setting);
    if (!inst->setting) goto nomem;
    inst->options = inst->setting + (opts - setting);
    if (e->vt.state_size && !(inst->state = asymbp__calloc(ctx, 1, e->vt.state_size))) goto nomem;
    asymbp__rng_seed(&inst->rng, seed, FB_STREAM);
    inst->rng.ctx = NULL;
    if (inert) {
        /* nothing to allocate or call: the layer receives the exact error */
        *out = inst;
        return ASYMBP_OK;
    }
    if (nbuf && !(inst->buf = asymbp__calloc(ctx, nbuf, sizeof(float)))) goto nomem;
    if (!(e->vt.flags & ASYMBP_FEEDBACK_SYMMETRIC) && !(inst->V = asymbp__calloc(ctx, numel, sizeof(float))))
        goto nomem;
    if ((e->vt.flags & ASYMBP_FEEDBACK_W_BEFORE) && !(inst->w_before = asymbp__calloc(ctx, wl->numel, sizeof(float))))
        goto nomem;
    if (e->vt.scratch_size) {
        fill_args(&a, ctx, wl, inst, steps_done);
        inst->scratch_floats = e->vt.scratch_size(e->base.user, &a);
        if (inst->scratch_floats && !(inst->scratch = asymbp__calloc(ctx, inst->scratch_floats, sizeof(float))))
            goto nomem;
    }
    if (e->vt.init) {
        fill_args(&a, ctx, wl, inst, steps_done);
        rc = e->vt.init(e->base.user, inst->state, &a);
        if (rc != ASYMBP_OK) {
            rc = cb_failed(ctx, e, wl, "init", rc);
            inst_free(ctx, inst);
            return rc;
        }
    }
    *out = inst;
    return ASYMBP_OK;
nomem:
    inst_free(ctx, inst);
    return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback '%s' on layer %d: out of memory (%zu weights)", e->base.name,
                         wl->layer_index, wl->numel);
}

void asymbp__fb_inst_attach(asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst)
{
    /* a direct instance's tensor is B: the layer sends any error down through W */
    wl->fb = inst;
    wl->V = inst && !inst->direct ? inst->V : NULL;
    wl->V_store = wl->V ? inst->V : NULL;
    wl->B = inst && inst->direct ? inst->V : NULL;
}

void asymbp__fb_inst_destroy(asymbp_ctx_t *ctx, asymbp__fb_inst_t *inst)
{
    if (!inst) return;
    if (inst->entry->vt.fini && !inst->inert) inst->entry->vt.fini(inst->entry->base.user, inst->state);
    inst_free(ctx, inst);
}

asymbp_status_t asymbp__fb_inst_refresh(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst,
                                        uint64_t step)
{
    const asymbp__fb_entry_t *e = inst->entry;
    asymbp_feedback_args_t a;
    asymbp_status_t rc;
    if (inst->inert || !e->vt.refresh || (e->vt.flags & ASYMBP_FEEDBACK_SYMMETRIC)) return ASYMBP_OK;
    if (inst->refreshed && inst->last_step == step) return ASYMBP_OK;
    fill_args(&a, ctx, wl, inst, step);
    rc = e->vt.refresh(e->base.user, inst->state, &a);
    if (rc != ASYMBP_OK) return cb_failed(ctx, e, wl, "refresh", rc);
    inst->refreshed = 1;
    inst->last_step = step;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_inst_after_update(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl,
                                             asymbp__fb_inst_t *inst, uint64_t step)
{
    const asymbp__fb_entry_t *e = inst->entry;
    asymbp_feedback_args_t a;
    asymbp_status_t rc;
    if (inst->inert || !e->vt.after_update || (e->vt.flags & ASYMBP_FEEDBACK_SYMMETRIC)) return ASYMBP_OK;
    fill_args(&a, ctx, wl, inst, step);
    a.W_before = inst->w_before;
    rc = e->vt.after_update(e->base.user, inst->state, &a);
    if (rc != ASYMBP_OK) return cb_failed(ctx, e, wl, "after_update", rc);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_inst_deliver(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst,
                                        uint64_t step, const float *error, const int32_t *labels, size_t n, float *dst)
{
    const asymbp__fb_entry_t *e = inst->entry;
    asymbp_feedback_args_t a;
    asymbp_status_t rc;
    size_t K = (size_t)wl->classes, m = wl->block_size;
    if (inst->inert || !inst->V) return asymbp__error(ctx, ASYMBP_E_STATE, "feedback '%s' on layer %d has no direct tensor",
                                                      e->base.name, wl->layer_index);
    if (!e->vt.deliver) {
        /* DFA: dst (n x m) = error (n x K) B (K x m) */
        asymbp__sgemm(0, 0, n, m, K, 1.0f, error, K, inst->V, m, 0.0f, dst, m);
        return ASYMBP_OK;
    }
    fill_args(&a, ctx, wl, inst, step);
    a.error = error;
    a.labels = labels;
    a.samples = n;
    a.delta = dst;
    rc = e->vt.deliver(e->base.user, inst->state, &a);
    if (rc != ASYMBP_OK) return cb_failed(ctx, e, wl, "deliver", rc);
    return ASYMBP_OK;
}

/* ---- Hooks on the net ------------------------------------------------------------------------- */

/* Refresh lazily: only the layers whose V this backward multiplies a delta by.  The others (the
 * lowest weighted layer, unless the input gradient is wanted) keep a stale V and their
 * refreshed/last_step bookkeeping; whatever reads their V brings it up to date first
 * (asymbp__fb_wlayer_current).  A layer that is already fresh for the step costs nothing, so the
 * hook may run again within a step (e.g. when the input gradient becomes wanted). */
static asymbp_status_t hook_refresh(asymbp_net_t *net, void *state)
{
    fb_net_t *fn = state;
    size_t i, n = asymbp__net_wlayer_count(net);
    uint64_t step = asymbp__net_step(net) + 1;
    for (i = 0; i < n; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        asymbp_status_t rc;
        if (!wl->fb || !asymbp__net_wlayer_reads_feedback(net, wl)) continue;
        rc = asymbp__fb_inst_refresh(fn->ctx, wl, wl->fb, step);
        if (rc != ASYMBP_OK) return rc;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_wlayer_current(asymbp_net_t *net, asymbp__wlayer_t *wl)
{
    /* every layer, not only the lazily skipped one: after an optimizer step the others still
     * hold the V of the step before, made from the W before the update */
    if (!wl || !wl->fb) return ASYMBP_OK;
    return asymbp__fb_inst_refresh(asymbp__net_ctx(net), wl, wl->fb, asymbp__net_step(net) + 1);
}

static asymbp_status_t hook_current(asymbp_net_t *net, void *state, asymbp__wlayer_t *wl)
{
    (void)state;
    return asymbp__fb_wlayer_current(net, wl);
}

static asymbp_status_t hook_after_update(asymbp_net_t *net, void *state)
{
    fb_net_t *fn = state;
    size_t i, n = asymbp__net_wlayer_count(net);
    uint64_t step = asymbp__net_step(net) + 1; /* the net counts the step once the hook has run */
    for (i = 0; i < n; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        asymbp_status_t rc;
        if (!wl->fb) continue;
        rc = asymbp__fb_inst_after_update(fn->ctx, wl, wl->fb, step);
        if (rc != ASYMBP_OK) return rc;
    }
    return ASYMBP_OK;
}

/* Keep W as the update rule finds it for the policies that want to see its change. */
static asymbp_status_t hook_before_update(asymbp_net_t *net, void *state)
{
    size_t i, n = asymbp__net_wlayer_count(net);
    (void)state;
    for (i = 0; i < n; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        asymbp__fb_inst_t *inst = wl->fb;
        if (inst && inst->w_before) memcpy(inst->w_before, wl->W, wl->numel * sizeof(float));
    }
    return ASYMBP_OK;
}

static asymbp_status_t hook_deliver(asymbp_net_t *net, void *state, asymbp__wlayer_t *wl, const float *error,
                                    const int32_t *labels, size_t n, float *dst)
{
    fb_net_t *fn = state;
    if (!wl->fb) return asymbp__error(fn->ctx, ASYMBP_E_STATE, "layer %d has no feedback instance", wl->layer_index);
    return asymbp__fb_inst_deliver(fn->ctx, wl, wl->fb, asymbp__net_step(net) + 1, error, labels, n, dst);
}

static void hook_destroy(asymbp_net_t *net, void *state)
{
    fb_net_t *fn = state;
    size_t i, n = asymbp__net_wlayer_count(net);
    for (i = 0; i < n; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        asymbp__fb_inst_t *inst = wl->fb;
        asymbp__fb_inst_attach(wl, NULL);
        asymbp__fb_inst_destroy(fn->ctx, inst);
    }
    asymbp__free(fn->ctx, fn->scratch);
    asymbp__free(fn->ctx, fn);
}

asymbp_status_t asymbp__fb_net_hooks(asymbp_net_t *net)
{
    asymbp__net_fb_hooks_t *cur = asymbp__net_fb_hooks(net);
    asymbp__net_fb_hooks_t h;
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    fb_net_t *fn;
    if (cur && cur->destroy == hook_destroy && cur->state) return ASYMBP_OK;
    fn = asymbp__calloc(ctx, 1, sizeof *fn);
    if (!fn) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory");
    fn->ctx = ctx;
    memset(&h, 0, sizeof h);
    h.state = fn;
    h.refresh = hook_refresh;
    h.after_update = hook_after_update;
    h.destroy = hook_destroy;
    h.current = hook_current;
    h.deliver = hook_deliver;
    h.before_update = hook_before_update;
    asymbp__net_set_fb_hooks(net, &h);
    return ASYMBP_OK;
}

void *asymbp__fb_net_scratch(asymbp_net_t *net, size_t n)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    fb_net_t *fn;
    if (asymbp__fb_net_hooks(net) != ASYMBP_OK) return NULL;
    fn = asymbp__net_fb_hooks(net)->state;
    if (fn->scratch_len < n) {
        void *s = asymbp__alloc(ctx, n);
        if (!s) {
            asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback probe: out of memory for %zu bytes", n);
            return NULL;
        }
        asymbp__free(ctx, fn->scratch);
        fn->scratch = s;
        fn->scratch_len = n;
        asymbp__log(ctx, ASYMBP_LOG_DEBUG, "feedback probe: %zu bytes of scratch kept with the net", n);
    }
    return fn->scratch;
}

/* ---- Public assignment ------------------------------------------------------------------------ */

/* Weighted-layer position of a layer index (see asymbp_net_set_layer_feedback); -1 if none. */
static long wlayer_pos(asymbp_net_t *net, int layer_index)
{
    size_t i, n = asymbp__net_wlayer_count(net);
    if (layer_index < 0) {
        size_t back = (size_t)(-(long)layer_index);
        return back <= n ? (long)(n - back) : -1;
    }
    for (i = 0; i < n; i++)
        if (asymbp__net_wlayer_at(net, i)->layer_index == layer_index) return (long)i;
    return -1;
}

/* Create instances for weighted layers [lo, hi) and swap them in; all or nothing. */
static asymbp_status_t assign(asymbp_net_t *net, size_t lo, size_t hi, const char *setting)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp__fb_inst_t *one = NULL, **fresh = &one;
    uint64_t steps = asymbp__net_step(net);
    asymbp_status_t rc;
    size_t i;
    rc = asymbp__fb_net_hooks(net);
    if (rc != ASYMBP_OK) return rc;
    if (hi - lo > 1) {
        fresh = asymbp__calloc(ctx, hi - lo, sizeof *fresh);
        if (!fresh) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory");
    }
    for (i = lo; i < hi; i++) {
        rc = asymbp__fb_inst_create(ctx, asymbp__net_wlayer_at(net, i), setting, asymbp__ctx_next_seed(ctx), steps,
                                    &fresh[i - lo]);
        if (rc != ASYMBP_OK) {
            while (i-- > lo) asymbp__fb_inst_destroy(ctx, fresh[i - lo]);
            if (fresh != &one) asymbp__free(ctx, fresh);
            return rc;
        }
    }
    for (i = lo; i < hi; i++) {
        asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, i);
        asymbp__fb_inst_t *old = wl->fb;
        asymbp__fb_inst_attach(wl, fresh[i - lo]);
        asymbp__fb_inst_destroy(ctx, old);
    }
    if (fresh != &one) asymbp__free(ctx, fresh);
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "feedback '%.100s' assigned to %zu weighted layer%s", setting, hi - lo,
                hi - lo == 1 ? "" : "s");
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_set_feedback(asymbp_net_t *net, const char *setting)
{
    asymbp_ctx_t *ctx;
    size_t n;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    ASYMBP_CHECK_NULL(ctx, setting, "setting");
    n = asymbp__net_wlayer_count(net);
    if (n == 0) return asymbp__error(ctx, ASYMBP_E_STATE, "net_set_feedback: the net has no dense or conv2d layer");
    return assign(net, 0, n, setting);
}

asymbp_status_t asymbp_net_set_layer_feedback(asymbp_net_t *net, int layer_index, const char *setting)
{
    asymbp_ctx_t *ctx;
    long pos;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    ASYMBP_CHECK_NULL(ctx, setting, "setting");
    pos = wlayer_pos(net, layer_index);
    if (pos < 0) {
        if (layer_index >= 0 && (size_t)layer_index < asymbp_net_layer_count(net))
            return asymbp__error(ctx, ASYMBP_E_INVALID, "net_set_layer_feedback: layer %d (%s) has no weights",
                                 layer_index, asymbp_net_layer_name(net, (size_t)layer_index));
        return asymbp__error(ctx, ASYMBP_E_INVALID,
                             "net_set_layer_feedback: layer index %d is out of range (%zu layers, %zu weighted)",
                             layer_index, asymbp_net_layer_count(net), asymbp__net_wlayer_count(net));
    }
    return assign(net, (size_t)pos, (size_t)pos + 1, setting);
}

const char *asymbp_net_get_layer_feedback(asymbp_net_t *net, int layer_index)
{
    long pos;
    asymbp__fb_inst_t *inst;
    if (!net) return NULL;
    pos = wlayer_pos(net, layer_index);
    if (pos < 0) return NULL;
    inst = asymbp__net_wlayer_at(net, (size_t)pos)->fb;
    return inst ? inst->setting : "sym";
}

size_t asymbp_net_feedback_layer_count(const asymbp_net_t *net)
{
    return net ? asymbp__net_wlayer_count(net) : 0;
}
