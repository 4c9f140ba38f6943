/* Private contract between the net (layers/) and the layers above it (feedback/, update/,
 * train/).  layers/ owns these structs; feedback/ and update/ only use what is declared here,
 * so the layer code never changes when a feedback policy or update rule is added. */
#ifndef ASYMBP_NET_HOOKS_H
#define ASYMBP_NET_HOOKS_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/status.h"
#include "asymbp/context.h"

#include "asymbp/net.h"   /* asymbp_net_t */

/* What feedback/ sees of one weighted layer (dense or conv2d).  Embedded in the layer. */
typedef struct asymbp__wlayer {
    int layer_index;          /* index in the net's layer list */
    int is_conv;              /* 0 dense, 1 conv2d */
    float *W;                 /* forward weights: dense [out][in], conv [oc][ic][kh][kw] */
    size_t numel;
    int ndim;
    int64_t shape[4];
    size_t fan_in, fan_out;   /* dense: in, out; conv: ic*kh*kw, oc*kh*kw */
    const float *V;           /* what backward multiplies the delta by; NULL or == W: symmetric */
    float *V_store;           /* numel floats allocated by feedback/ when V is its own tensor */
    void *fb;                 /* feedback instance (feedback/ owns it); NULL: symmetric */
    /* Direct feedback: feedback/ sets B, layers/ sets block_size and classes when layers are
     * added.  With B set, backward sends the output error through B to the top of this layer's
     * block (the deliver hook) and the weighted layer above sends no error down. */
    const float *B;           /* classes x block_size floats; NULL: no direct feedback */
    size_t block_size;        /* floats per sample at the top of the layer's block (the input of
                                 the next weighted layer); 0 for the highest weighted layer */
    int64_t classes;          /* the net's classes (0 outside a net) */
    /* Diagnostics written by every backward pass (cheap: two norms). */
    double delta_norm;        /* ||delta sent to the layer below|| (0 for the first layer) */
    double grad_norm;         /* ||dW|| */
} asymbp__wlayer_t;

/* One learnable parameter tensor, as update/ sees it. */
typedef enum asymbp__param_kind {
    ASYMBP__PARAM_WEIGHT = 0, ASYMBP__PARAM_BIAS = 1, ASYMBP__PARAM_BN_SCALE = 2, ASYMBP__PARAM_BN_SHIFT = 3
} asymbp__param_kind_t;
typedef struct asymbp__param {
    float *value;
    float *grad;
    size_t numel;
    size_t rows;              /* first dimension (numel for a vector): on T threads, the layers
                                 own the tensor in blocks of rows [rows t / T, rows (t+1) / T) */
    asymbp__param_kind_t kind;
    int layer_index;
    const char *name;         /* "conv2d0.weight", "bn1.scale", ... (owned by the net) */
} asymbp__param_t;

/* Hooks the feedback layer installs on a net (all may be NULL = plain symmetric backprop). */
typedef struct asymbp__net_fb_hooks {
    void *state;
    /* Called by asymbp_net_backward before the first backward of each optimizer step (when
     * asymbp__net_step(net) changed since the last call): writes V for this step. */
    asymbp_status_t (*refresh)(asymbp_net_t *net, void *state);
    /* Called by asymbp__net_step_done after the update rule moved the weights. */
    asymbp_status_t (*after_update)(asymbp_net_t *net, void *state);
    void (*destroy)(asymbp_net_t *net, void *state);
    /* Called before layers/ reads a weighted layer's V (the V read-out): brings it up to the
     * moment the diagnostics report (asymbp__fb_wlayer_current). */
    asymbp_status_t (*current)(asymbp_net_t *net, void *state, asymbp__wlayer_t *wl);
    /* Called by asymbp_net_backward for every weighted layer with a direct tensor (wl->B), after
     * the weighted layer above it ran its backward (which then sends nothing down): write the
     * error delivered to the top of wl's block, n x wl->block_size floats, into dst, from the
     * output error (n x classes) and the labels of the last loss. */
    asymbp_status_t (*deliver)(asymbp_net_t *net, void *state, asymbp__wlayer_t *wl, const float *error,
                               const int32_t *labels, size_t n, float *dst);
    /* Called by asymbp__net_step_begin, before the update rule moves the weights. */
    asymbp_status_t (*before_update)(asymbp_net_t *net, void *state);
} asymbp__net_fb_hooks_t;

asymbp_ctx_t *asymbp__net_ctx(const asymbp_net_t *net);
size_t asymbp__net_wlayer_count(const asymbp_net_t *net);
asymbp__wlayer_t *asymbp__net_wlayer_at(asymbp_net_t *net, size_t i);
/* 1 when a backward pass that uses the feedback reads this layer's feedback tensor (so it must
 * be fresh for the step): a direct tensor B always; a V when the layer sends its error down
 * through it - every weighted layer but the lowest one of the net, which sends nothing down
 * unless the input gradient is wanted (gradcheck), and but one whose lower weighted neighbour
 * has a direct tensor (the error there is delivered from the output instead).  0 for NULL
 * arguments. */
int asymbp__net_wlayer_reads_feedback(const asymbp_net_t *net, const asymbp__wlayer_t *wl);
size_t asymbp__net_param_count(const asymbp_net_t *net);
asymbp__param_t *asymbp__net_param_at(asymbp_net_t *net, size_t i);
/* Replace the feedback hooks (the old ones' destroy runs first). */
void asymbp__net_set_fb_hooks(asymbp_net_t *net, const asymbp__net_fb_hooks_t *hooks);
asymbp__net_fb_hooks_t *asymbp__net_fb_hooks(asymbp_net_t *net);
/* Optimizer steps completed so far; asymbp__net_step_begin runs before_update (the optimizer
 * calls it before the update rule runs), asymbp__net_step_done runs after_update and adds one. */
uint64_t asymbp__net_step(const asymbp_net_t *net);
asymbp_status_t asymbp__net_step_begin(asymbp_net_t *net);
asymbp_status_t asymbp__net_step_done(asymbp_net_t *net);
void asymbp__net_set_step(asymbp_net_t *net, uint64_t step);   /* for checkpoint resume */
/* While set, backward uses W for every layer (the exact-backprop probe) and skips refresh. */
void asymbp__net_force_symmetric(asymbp_net_t *net, int on);
/* 1 when a backward pass ran since the last loss or bind (its deltas and gradients are there). */
int asymbp__net_have_backward(const asymbp_net_t *net);
/* Every delta buffer a backward pass may write (each layer's received delta but the top one's,
 * and the input gradient), as floats for the bound batch; and a copy of them into buf (restore
 * 0) or back from buf (restore 1), so that a second backward (the probe) leaves the first's
 * deltas readable. */
size_t asymbp__net_delta_floats(const asymbp_net_t *net);
void asymbp__net_deltas_copy(asymbp_net_t *net, float *buf, int restore);

/* Data-parallel training: the following training forwards process samples [offset, offset + n)
 * of a global batch of `global` samples (global 0: off, the default).  Layers that draw per
 * sample (dropout) then advance their streams over the whole global batch, drawing only their
 * slice, so every rank's masks and stream positions are those of one process. */
void asymbp__net_set_sample_window(asymbp_net_t *net, size_t offset, size_t global);

/* BN population statistics (train/ drives the passes).  Floats of every BN layer's running mean
 * and variance, in layer order (mean then variance per layer); copy them to or from buf. */
size_t asymbp__net_bn_stat_floats(const asymbp_net_t *net);
void asymbp__net_bn_stat_copy(asymbp_net_t *net, float *buf, int to_buf);
/* Recalibration: between begin and end, training-mode forward passes normalise with batch
 * statistics and accumulate them (weighted by values per channel) instead of updating the
 * running averages, and dropout is the identity.  end with commit 1 sets each running mean to the
 * accumulated mean and each running variance to the accumulated unbiased variance (the batch-norm
 * paper's population statistics); commit 0 leaves them.  begin allocates once (ASYMBP_E_NOMEM). */
asymbp_status_t asymbp__net_bn_recal_begin(asymbp_net_t *net);
void asymbp__net_bn_recal_end(asymbp_net_t *net, int commit);

#endif
