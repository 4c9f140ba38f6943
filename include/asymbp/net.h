/* asymbp/net.h - sequential networks: layers (dense, conv2d, pooling, ReLU, flatten, batch norm,
 * dropout), softmax cross-entropy, forward/backward, prediction, text specs, gradient checks.
 *
 * A net is built for one input shape (channels x height x width; tabular data: features x 1 x 1)
 * and a number of classes, either layer by layer with the asymbp_net_add_* builders or from a
 * text spec (asymbp_net_from_spec; grammar in docs/layers.md).  It is then bound to a batch size
 * (asymbp_net_bind), which allocates every buffer once: forward, loss and backward never
 * allocate.  Data layout is NCHW float32, one sample after the other.
 *
 * Weight initialisation (documented so runs can be reproduced): every weighted layer draws its
 * own RNG stream from the context (asymbp_ctx_set_seed), in the order layers are added; weights
 * are He-uniform, U(-sqrt(6/fan_in), +sqrt(6/fan_in)) with fan_in = inputs of a dense unit or
 * in_channels*kh*kw of a conv filter; biases and BN shifts start at 0, BN scales at 1. */
#ifndef ASYMBP_NET_H
#define ASYMBP_NET_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct asymbp_net asymbp_net_t;

/* Kinds of layers (values pinned; new kinds are appended).  ASYMBP_LAYER_NONE is what
 * asymbp_net_layer_kind answers for an index out of range; being negative it makes the enum a
 * signed type, so `kind < 0` is a valid test.  Since 0.1 (ASYMBP_LAYER_NONE since 0.2). */
typedef enum asymbp_layer_kind {
    ASYMBP_LAYER_DENSE = 0,
    ASYMBP_LAYER_CONV2D = 1,
    ASYMBP_LAYER_MAXPOOL = 2,
    ASYMBP_LAYER_AVGPOOL = 3,
    ASYMBP_LAYER_RELU = 4,
    ASYMBP_LAYER_FLATTEN = 5,
    ASYMBP_LAYER_BATCHNORM = 6,
    ASYMBP_LAYER_DROPOUT = 7,
    ASYMBP_LAYER_NONE = -1      /* no such layer (index out of range, NULL net) */
} asymbp_layer_kind_t;

/* ---- Creation ------------------------------------------------------------------------------ */

/* Create an empty net for inputs of channels x height x width (each >= 1) and `classes` (>= 2)
 * output classes.  ctx: borrowed, must outlive the net.  out: owned by the caller
 * (asymbp_net_destroy), NULL on failure.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL argument,
 * a size < 1, classes < 2), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_create(asymbp_ctx_t *ctx, int64_t channels, int64_t height, int64_t width, int64_t classes,
                  asymbp_net_t **out);
/* Destroy a net with its layers and buffers (NULL accepted).  Since 0.1. */
ASYMBP_API void asymbp_net_destroy(asymbp_net_t *net);

/* Builders: append one layer whose input shape is the output shape of the layer below (or the
 * net input).  Adding a layer unbinds the net (bind again before forward).  All return ASYMBP_OK,
 * ASYMBP_E_INVALID (NULL net, bad argument value), ASYMBP_E_SHAPE (the layer does not fit the
 * shape below it; the message names the layer and the sizes), ASYMBP_E_NOMEM.  Since 0.1. */

/* Dense layer with n_out units over all C*H*W inputs (no explicit flatten needed); bias 0/1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_dense(asymbp_net_t *net, int64_t n_out, int bias);
/* 2-D convolution, out_ch filters of kh x kw, stride >= 1, zero padding pad >= 0 on every side,
 * bias 0/1.  Output size: (H + 2 pad - kh) / stride + 1 (floor). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_conv2d(asymbp_net_t *net, int64_t out_ch, int kh, int kw, int stride, int pad, int bias);
/* Max / average pooling over k x k windows, stride >= 1, padding 0 <= pad < k.  ceil_mode 1 is
 * Caffe's rule: out = ceil((H + 2 pad - k) / stride) + 1, minus one when the last window would
 * start at or after H + pad; ceil_mode 0 uses floor.  Max pool ignores padding (windows are
 * clipped to the input) and sends a window's gradient to its FIRST maximum in row-major scan
 * order when several inputs tie.  Average pool divides by the window size clipped to the padded
 * input (padding counts as zeros, the ceil-mode overhang does not), as Caffe does. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_maxpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode);
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_avgpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode);
/* Rectified linear unit, y = max(x, 0) (gradient 0 at x = 0). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_relu(asymbp_net_t *net);
/* Flatten C x H x W to (C*H*W) x 1 x 1 (free: no data moves). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_flatten(asymbp_net_t *net);
/* Batch normalisation per channel (per feature after a dense layer).  Train mode normalises with
 * the batch mean and biased variance and updates running = (1 - momentum) running + momentum
 * batch (variance: unbiased); eval mode uses the running values.  momentum in (0, 1] (0.1 is
 * usual), eps > 0 (1e-5 is usual); learnable scale (init 1) and shift (init 0). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_batchnorm(asymbp_net_t *net, float momentum, float eps);
/* Inverted dropout: in train mode each value is zeroed with probability p and the others are
 * scaled by 1/(1-p); identity in eval mode.  0 <= p < 1.  The mask comes from the layer's own
 * RNG stream (drawn from the context when the layer is added). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_dropout(asymbp_net_t *net, float p);

/* Build a net from a text spec: "paper-cnn", "mlp:H1,H2,..." or a layer list such as
 * "conv5x5x32p2,relu,maxpool3s2,fc64,relu,fc10" (grammar: docs/layers.md).  A layer list that
 * does not end in a dense layer with `classes` outputs gets one appended.  bn 1 inserts batch
 * normalisation (momentum 0.1, eps 1e-5) after every conv and hidden dense layer.  ctx, spec:
 * borrowed.  out: owned by the caller.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL argument, bad
 * sizes), ASYMBP_E_FORMAT (syntax: the message gives the character position and the reason),
 * ASYMBP_E_SHAPE (a layer does not fit: the message names the token, its position and the
 * sizes), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_from_spec(asymbp_ctx_t *ctx, const char *spec, int64_t channels, int64_t height, int64_t width,
                     int64_t classes, int bn, asymbp_net_t **out);
/* The normalised layer list of the net ("conv5x5x32p2,relu,..."), which asymbp_net_from_spec
 * with bn 0 turns back into the same architecture.  Borrowed, valid until the net changes or is
 * destroyed; "" for a NULL net.  Since 0.1. */
ASYMBP_API const char *asymbp_net_spec(asymbp_net_t *net);

/* ---- Running --------------------------------------------------------------------------------- */

/* Allocate every buffer for batches of up to `batch` samples (>= 1); may be called again to
 * change the batch size (parameters are kept).  The last layer must give `classes` outputs.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_SHAPE (output size != classes, or no layer),
 * ASYMBP_E_NOMEM (the net is then unbound).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_bind(asymbp_net_t *net, size_t batch);
/* The bound batch size, 0 when unbound.  Since 0.1. */
ASYMBP_API size_t asymbp_net_batch_size(const asymbp_net_t *net);

/* Forward pass over n samples (1 <= n <= bound batch) of x (n * C*H*W floats, copied in).
 * train 1: batch statistics in BN (running averages updated), dropout active; 0: eval mode.
 * logits (may be NULL): receives a borrowed pointer to n * classes floats, valid until the next
 * forward, bind or destroy.  Never allocates.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL net or
 * x, n == 0), ASYMBP_E_STATE (not bound), ASYMBP_E_SHAPE (n > bound batch).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_forward(asymbp_net_t *net, const float *x, size_t n, int train, const float **logits);
/* Softmax cross-entropy of the last forward's logits against labels (n int32 in [0, classes)),
 * the mean over the n samples, and the top delta for backward.  n must equal the last forward's
 * n.  loss may be NULL.  Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_STATE (no forward yet),
 * ASYMBP_E_SHAPE (n differs), ASYMBP_E_RANGE (a label out of range; its index is named).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_loss(asymbp_net_t *net, const int32_t *labels, size_t n, float *loss);
/* Backward pass from the delta set by asymbp_net_loss: overwrites every parameter's gradient.
 * Weighted layers send the error down through their feedback tensor (see feedback.h; plain
 * backprop when none is set).  Never allocates.  Returns ASYMBP_OK, ASYMBP_E_INVALID,
 * ASYMBP_E_STATE (no loss since the last forward), ASYMBP_E_PLUGIN (a feedback refresh or a
 * direct policy's deliver callback failed).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_backward(asymbp_net_t *net);
/* Predicted class (first maximal logit) of each of n samples (any n >= 1: processed in chunks of
 * the bound batch, eval mode) into pred (n int32).  Returns ASYMBP_OK, ASYMBP_E_INVALID,
 * ASYMBP_E_STATE (not bound).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_predict(asymbp_net_t *net, const float *x, size_t n, int32_t *pred);
/* Mean cross-entropy loss and accuracy (fraction in [0, 1]) over n samples in eval mode, in
 * chunks of the bound batch.  loss, accuracy may be NULL.  Returns as asymbp_net_predict, plus
 * ASYMBP_E_RANGE for a label out of range.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_evaluate(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n, float *loss, float *accuracy);

/* ---- Introspection (NULL net or index out of range: 0 / NULL / -1) -----------------------------
 * Layer indices: every function of the public API that takes or reports a layer uses its index
 * in the net, 0 (next to the input) .. asymbp_net_layer_count - 1 (the classifier), as
 * asymbp_net_layer_kind and asymbp_net_layer_name count; "conv4" is layer 4.  Weighted layers
 * (dense, conv2d) have no index space of their own: asymbp_net_weighted_layer converts "the
 * k-th weighted layer from the bottom or the top" into the layer index.  (Two 0.1 conventions
 * remain for compatibility and are deprecated since 0.2: asymbp_net_feedback_diag's weighted
 * position, and negative "from the top" indices of asymbp_net_set_layer_feedback and
 * asymbp_net_get_layer_feedback.) */

ASYMBP_API size_t asymbp_net_layer_count(const asymbp_net_t *net);
/* Kind of layer i; ASYMBP_LAYER_NONE (-1, so `< 0`) for a NULL net or i out of range.  Since 0.1. */
ASYMBP_API asymbp_layer_kind_t asymbp_net_layer_kind(const asymbp_net_t *net, size_t i);
/* Name of layer i: kind and index, e.g. "conv0", "relu1", "maxpool2", "fc9", "bn3", "dropout4",
 * "avgpool5", "flatten6".  Borrowed.  Since 0.1. */
ASYMBP_API const char *asymbp_net_layer_name(const asymbp_net_t *net, size_t i);
/* Output shape (C, H, W per sample) of layer i; ASYMBP_E_INVALID when out of range.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_layer_output_shape(const asymbp_net_t *net, size_t i, int64_t shape[3]);
/* Learnable parameter tensors, in layer order (weight, bias; BN: scale, shift).  Since 0.1. */
ASYMBP_API size_t asymbp_net_param_count(const asymbp_net_t *net);
/* Borrowed value and gradient tensors of parameter i (either pointer may be NULL); values may be
 * written (e.g. by an update rule).  Valid until the net is destroyed.  Returns ASYMBP_OK,
 * ASYMBP_E_INVALID (NULL net, i out of range).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_param_at(asymbp_net_t *net, size_t i, asymbp_tensor_t **value, asymbp_tensor_t **grad);
/* Name of parameter i ("conv0.weight", "conv0.bias", "bn1.scale", "bn1.shift"); borrowed.  Since 0.1. */
ASYMBP_API const char *asymbp_net_param_name(const asymbp_net_t *net, size_t i);
/* Number of learnable floats (sum of the parameters' sizes).  Since 0.1. */
ASYMBP_API size_t asymbp_net_weight_count(const asymbp_net_t *net);
ASYMBP_API int64_t asymbp_net_classes(const asymbp_net_t *net);
/* Input shape as C, H, W.  Returns ASYMBP_OK or ASYMBP_E_INVALID.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_input_shape(const asymbp_net_t *net, int64_t shape[3]);
/* Number of weighted layers (dense, conv2d); 0 for NULL.  Since 0.2. */
ASYMBP_API size_t asymbp_net_weighted_layer_count(const asymbp_net_t *net);
/* The layer index of a weighted layer: k >= 0 counts from the bottom (0 = the lowest weighted
 * layer), k < 0 from the top (-1 = the highest, the classifier in a net built by the builders or
 * a spec).  layer: receives the index.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL argument, k out
 * of range).  Since 0.2. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_weighted_layer(const asymbp_net_t *net, int k, size_t *layer);

/* ---- Read-outs ---------------------------------------------------------------------------------- */

/* What asymbp_net_read_layer copies.  Values pinned; new ones are appended.  Since 0.2. */
typedef enum asymbp_readout {
    ASYMBP_READ_WEIGHTS = 0,        /* W of a dense or conv2d layer: dense [out][in], conv2d
                                       [oc][ic][kh][kw] */
    ASYMBP_READ_FEEDBACK = 1,       /* V, the tensor its backward multiplies the error by (W when
                                       the feedback is symmetric or direct), at the moment feedback.h's
                                       diagnostics describe (read after asymbp_optimizer_step:
                                       the next backward's V, made from the current W) */
    ASYMBP_READ_DELTA_RECEIVED = 2, /* the error the layer received in the last backward pass,
                                       dL/d(its output): n x (C*H*W of its output) */
    ASYMBP_READ_DELTA_SENT = 3,     /* the error it sent to the layer below, n x (C*H*W of its
                                       input); layer 0's is dL/dinput (asymbp_net_set_input_grad);
                                       under a direct policy of the weighted layer below (see
                                       feedback.h), the error delivered there in its place */
    ASYMBP_READ_DIRECT_FEEDBACK = 4 /* B of a layer with a direct feedback policy (feedback.h,
                                       ASYMBP_FEEDBACK_DIRECT): classes x block_size floats,
                                       [classes][block_size]; ASYMBP_E_STATE when the layer has
                                       no such tensor.  Since 0.2. */
} asymbp_readout_t;

/* Copy a layer's W, V or a delta of the last backward pass into the caller's buf (cap floats);
 * count (may be NULL) receives the number of floats the read-out has.  buf NULL with cap 0 only
 * reports count.  The deltas are those of the last asymbp_net_backward (n = its batch, sample
 * after sample); they stay readable until the next asymbp_net_loss, bind or layer added (a
 * forward, predict or evaluate pass does not touch them; the probe puts them back; a gradient
 * check leaves its own).  The backward pass stops at the lowest layer with parameters unless
 * the input gradient is requested: below it, and for what that layer sends down, there is no
 * delta (ASYMBP_E_STATE).  Reading V may run the policy's refresh (see feedback.h).  No
 * allocation.  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL net, layer out of range, a weight
 * read-out of a layer without weights, unknown what, buf NULL with cap > 0), ASYMBP_E_STATE (no
 * such delta in the last backward pass, or no backward pass since the last loss; no direct
 * feedback tensor), ASYMBP_E_SHAPE (cap smaller than count: nothing is written),
 * ASYMBP_E_PLUGIN (V's refresh failed).  Since 0.2. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_read_layer(asymbp_net_t *net, size_t layer, asymbp_readout_t what, float *buf, size_t cap, size_t *count);

/* Ask every backward pass to compute the gradient of the loss with respect to the net's input
 * too (on 1, off 0; default off), readable as layer 0's ASYMBP_READ_DELTA_SENT (and every
 * layer's deltas below the lowest one with parameters become readable).  Cost per backward
 * pass: the lowest weighted layer sends its error down (one more product with V of the size of
 * its weight-gradient product: for a dense layer batch x inputs x outputs multiply-adds, for a
 * conv layer its transposed convolution), the weight-free layers under it run their backward,
 * and that layer's feedback is refreshed every step instead of lazily (BRSF: one more draw of
 * its magnitudes per step).  No memory is added (the buffer exists from binding).  Returns
 * ASYMBP_OK, ASYMBP_E_INVALID (NULL).  Since 0.2. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_set_input_grad(asymbp_net_t *net, int on);
ASYMBP_API int asymbp_net_get_input_grad(const asymbp_net_t *net);

/* ---- Gradient check ---------------------------------------------------------------------------- */

#define ASYMBP_GRADCHECK_MAX_LAYERS 64

/* Caller-filled parameters of asymbp_net_gradcheck: start from ASYMBP_GRADCHECK_PARAMS_INIT. */
typedef struct asymbp_gradcheck_params {
    size_t struct_size;
    double eps;                   /* relative step: h = eps * max(1, |value|), in (0, 1); default 1e-6 */
    size_t max_entries_per_param; /* entries sampled per tensor (0: all); the input counts as one */
    uint64_t seed;                /* which entries are sampled */
    int use_feedback;             /* 0 (default): compare against exact backprop (V = W);
                                     1: against the backward the net's feedback policy gives */
} asymbp_gradcheck_params_t;
#define ASYMBP_GRADCHECK_PARAMS_INIT { sizeof(asymbp_gradcheck_params_t), 1e-6, 32, 1, 0 }

/* ---- The gradient check's result (since 0.2) ----
 * One layer's figures (layers with parameters only), an element of the caller's array. */
typedef struct asymbp_gradcheck_entry {
    int layer_index;     /* the layer's index in the net */
    char name[32];       /* its name, e.g. "conv0" */
    double rel_error;    /* worst relative error over its parameters' checked entries */
    size_t checked;      /* entries compared */
    size_t skipped;      /* entries skipped because a perturbed loss was not finite */
} asymbp_gradcheck_entry_t;

/* Result of asymbp_net_gradcheck_v2: the caller gives the array for the per-layer figures and its
 * capacity; start from ASYMBP_GRADCHECK_RESULT_INIT (it sets struct_size and entry_size, the
 * size of the elements as the caller was compiled: the library steps through the array by it).
 * Since 0.2. */
typedef struct asymbp_gradcheck_result {
    size_t struct_size;
    size_t entry_size;                  /* sizeof(asymbp_gradcheck_entry_t) (INIT) */
    asymbp_gradcheck_entry_t *layers;   /* caller's array of `capacity` entries (NULL if 0) */
    size_t capacity;
    size_t layer_count;                 /* out: layers with parameters, bottom to top: the entries
                                           written, or the capacity needed (ASYMBP_E_SHAPE) */
    double max_rel_error;               /* worst over every layer and the input */
    double input_rel_error;             /* worst over the input's checked entries */
    size_t input_checked, input_skipped;
} asymbp_gradcheck_result_t;
#define ASYMBP_GRADCHECK_RESULT_INIT \
    { sizeof(asymbp_gradcheck_result_t), sizeof(asymbp_gradcheck_entry_t), 0, 0, 0, 0, 0, 0, 0 }

/* ---- The 0.1 report (deprecated since 0.2: a fixed array of 64 layers; bigger nets lose the
 * figures of the layers above the 64th; use asymbp_gradcheck_result_t) ---- */
typedef struct asymbp_gradcheck_layer {
    char name[32];       /* layer name, e.g. "conv0" */
    double rel_error;    /* worst relative error over its parameters' checked entries */
    size_t checked;      /* entries compared */
    size_t skipped;      /* entries skipped because a perturbed loss was not finite */
} asymbp_gradcheck_layer_t;

/* Result of asymbp_net_gradcheck; the caller sets struct_size (ASYMBP_GRADCHECK_REPORT_INIT). */
typedef struct asymbp_gradcheck_report {
    size_t struct_size;
    double max_rel_error;         /* worst over every layer and the input */
    double input_rel_error;       /* worst over the input's checked entries */
    size_t input_checked, input_skipped;
    size_t layer_count;           /* entries of layers[] used (at most ASYMBP_GRADCHECK_MAX_LAYERS) */
    asymbp_gradcheck_layer_t layers[ASYMBP_GRADCHECK_MAX_LAYERS];
} asymbp_gradcheck_report_t;
#define ASYMBP_GRADCHECK_REPORT_INIT { sizeof(asymbp_gradcheck_report_t), 0, 0, 0, 0, 0, {{{0}, 0, 0, 0}} }

/* Compare the backward pass of the bound net on (x, labels, n) with central finite differences
 * of the loss, for sampled entries of every parameter and of the input.  The backward pass is
 * the float one the net runs (train mode, after one forward that draws the dropout masks; BN
 * running statistics are left untouched).  The finite differences are taken on a separate
 * double-precision reference forward pass (plain loops) that keeps that float pass's ReLU
 * on/off pattern, max-pool choices and dropout mask: the differenced function is the smooth
 * piece the backward pass differentiates, so kinks cannot make the check flaky, and rounding
 * noise is negligible.  The relative error of an entry is |g - f| / max(|g|, |f|, floor) with
 * floor = max(1e-2 * the largest |g| of that tensor, 1e-3 * the largest |g| of the whole net)
 * (float gradients carry rounding error on that scale; a bias followed by batch norm has a true
 * gradient of 0).  Parameter values are unchanged; gradients are overwritten; dropout layers
 * draw one new mask.  Cost: 2 reference forward passes (from the perturbed layer up) per
 * checked entry.  p may be NULL (defaults).  Returns ASYMBP_OK, ASYMBP_E_INVALID,
 * ASYMBP_E_STATE (not bound), ASYMBP_E_SHAPE (n > batch), ASYMBP_E_RANGE (bad label),
 * ASYMBP_E_UNSUPPORTED (struct_size of p, or struct_size / entry_size of result too small),
 * ASYMBP_E_SHAPE also when result->capacity is smaller than the number of layers with parameters
 * (checked first, nothing run: result->layer_count then gives the capacity needed),
 * ASYMBP_E_INVALID also for layers NULL with a capacity, ASYMBP_E_NOMEM.  Since 0.2. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_gradcheck_v2(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                        const asymbp_gradcheck_params_t *p, asymbp_gradcheck_result_t *result);
/* Deprecated since 0.2: the same into the fixed 0.1 report (the first
 * ASYMBP_GRADCHECK_MAX_LAYERS layers; max_rel_error covers them all).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_gradcheck(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                     const asymbp_gradcheck_params_t *p, asymbp_gradcheck_report_t *report);
/* The result as one JSON line (no newline): {"max_rel_error":...,"input_rel_error":...,
 * "input_checked":...,"input_skipped":...,"layers":[{"layer":0,"name":"conv0","rel_error":...,
 * "checked":...,"skipped":...},...]}.  Writes at most cap bytes including the NUL (buf may be
 * NULL when cap is 0) and returns the length the full text needs (like snprintf); 0 for a NULL
 * or too small result.  Since 0.2. */
ASYMBP_API size_t asymbp_gradcheck_result_json(const asymbp_gradcheck_result_t *result, char *buf, size_t cap);
/* Deprecated since 0.2: the same for the 0.1 report (no "layer" members).  Since 0.1. */
ASYMBP_API size_t asymbp_gradcheck_report_json(const asymbp_gradcheck_report_t *report, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_NET_H */
