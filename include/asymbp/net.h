/** @file
 * @brief Sequential networks: layers (dense, conv2d, pooling, ReLU, flatten, batch norm,
 * dropout), softmax cross-entropy, forward/backward, prediction, text specs, gradient checks.
 *
 * A net is built for one input shape (channels x height x width; tabular data: features x 1 x 1)
 * and a number of classes, either layer by layer with the asymbp_net_add_* builders or from a
 * text spec (asymbp_net_from_spec(); grammar in docs/layers.md).  It is then bound to a batch size
 * (asymbp_net_bind()), which allocates every buffer once: forward, loss and backward never
 * allocate.  Data layout is NCHW float32, one sample after the other.
 *
 * Weight initialisation (documented so runs can be reproduced): every weighted layer draws its
 * own RNG stream from the context (asymbp_ctx_set_seed()), in the order layers are added; weights
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

/** A sequential net (opaque handle): created by asymbp_net_create(), asymbp_net_from_spec() or
 * asymbp_model_load(), destroyed by asymbp_net_destroy(). */
typedef struct asymbp_net asymbp_net_t;

/** Kinds of layers (values pinned; new kinds are appended).  ::ASYMBP_LAYER_NONE is what
 * asymbp_net_layer_kind() answers for an index out of range; being negative it makes the enum a
 * signed type, so `kind < 0` is a valid test.
 * @since 0.1 (::ASYMBP_LAYER_NONE since 0.2) */
typedef enum asymbp_layer_kind {
    ASYMBP_LAYER_DENSE = 0,     /**< dense (fully connected), asymbp_net_add_dense() */
    ASYMBP_LAYER_CONV2D = 1,    /**< 2-D convolution, asymbp_net_add_conv2d() */
    ASYMBP_LAYER_MAXPOOL = 2,   /**< max pooling, asymbp_net_add_maxpool() */
    ASYMBP_LAYER_AVGPOOL = 3,   /**< average pooling, asymbp_net_add_avgpool() */
    ASYMBP_LAYER_RELU = 4,      /**< rectified linear unit, asymbp_net_add_relu() */
    ASYMBP_LAYER_FLATTEN = 5,   /**< flatten, asymbp_net_add_flatten() */
    ASYMBP_LAYER_BATCHNORM = 6, /**< batch normalisation, asymbp_net_add_batchnorm() */
    ASYMBP_LAYER_DROPOUT = 7,   /**< inverted dropout, asymbp_net_add_dropout() */
    ASYMBP_LAYER_NONE = -1      /**< no such layer (index out of range, NULL net) */
} asymbp_layer_kind_t;

/** @name Creation */
/** @{ */

/** Create an empty net for inputs of channels x height x width and `classes` output classes.
 * @param ctx borrowed, must outlive the net
 * @param channels input channels (>= 1)
 * @param height input height (>= 1)
 * @param width input width (>= 1)
 * @param classes output classes (>= 2)
 * @param out receives the net, owned by the caller (asymbp_net_destroy()), NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument, a size < 1, classes < 2),
 *     ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_create(asymbp_ctx_t *ctx, int64_t channels, int64_t height, int64_t width, int64_t classes,
                  asymbp_net_t **out);
/** Destroy a net with its layers and buffers.
 * @param net the net (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_net_destroy(asymbp_net_t *net);

/** @} */

/** @name Builders
 * Each builder appends one layer whose input shape is the output shape of the layer below (or
 * the net input).  Adding a layer unbinds the net (bind again before forward).  All return
 * ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the layer does
 * not fit the shape below it; the message names the layer and the sizes), ::ASYMBP_E_NOMEM.
 * Since 0.1. */
/** @{ */

/** Append a dense layer with n_out units over all C*H*W inputs (no explicit flatten needed).
 * @param net the net
 * @param n_out output units
 * @param bias 1: with a bias, 0: without
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_dense(asymbp_net_t *net, int64_t n_out, int bias);
/** Append a 2-D convolution: out_ch filters of kh x kw.  Output size:
 * (H + 2 pad - kh) / stride + 1 (floor).
 * @param net the net
 * @param out_ch number of filters (output channels)
 * @param kh filter height
 * @param kw filter width
 * @param stride >= 1
 * @param pad zero padding on every side, >= 0
 * @param bias 1: with a bias, 0: without
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_conv2d(asymbp_net_t *net, int64_t out_ch, int kh, int kw, int stride, int pad, int bias);
/** Append max pooling over k x k windows.  ceil_mode 1 is Caffe's rule:
 * out = ceil((H + 2 pad - k) / stride) + 1, minus one when the last window would start at or
 * after H + pad; ceil_mode 0 uses floor.  Max pool ignores padding (windows are clipped to the
 * input) and sends a window's gradient to its FIRST maximum in row-major scan order when several
 * inputs tie.
 * @param net the net
 * @param k window size
 * @param stride >= 1
 * @param pad padding, 0 <= pad < k
 * @param ceil_mode 1: Caffe's ceil rule, 0: floor
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_maxpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode);
/** Append average pooling over k x k windows; output size and ceil_mode as
 * asymbp_net_add_maxpool().  Average pool divides by the window size clipped to the padded input
 * (padding counts as zeros, the ceil-mode overhang does not), as Caffe does.
 * @param net the net
 * @param k window size
 * @param stride >= 1
 * @param pad padding, 0 <= pad < k
 * @param ceil_mode 1: Caffe's ceil rule, 0: floor
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_add_avgpool(asymbp_net_t *net, int k, int stride, int pad, int ceil_mode);
/** Append a rectified linear unit, y = max(x, 0) (gradient 0 at x = 0).
 * @param net the net
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net), ::ASYMBP_E_SHAPE, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_relu(asymbp_net_t *net);
/** Append a flatten layer: C x H x W to (C*H*W) x 1 x 1 (free: no data moves).
 * @param net the net
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net), ::ASYMBP_E_SHAPE, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_flatten(asymbp_net_t *net);
/** Append batch normalisation per channel (per feature after a dense layer).  Train mode
 * normalises with the batch mean and biased variance and updates
 * running = (1 - momentum) running + momentum batch (variance: unbiased); eval mode uses the
 * running values.  Learnable scale (init 1) and shift (init 0).
 * @param net the net
 * @param momentum in (0, 1] (0.1 is usual)
 * @param eps > 0 (1e-5 is usual)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_batchnorm(asymbp_net_t *net, float momentum, float eps);
/** Append inverted dropout: in train mode each value is zeroed with probability p and the others
 * are scaled by 1/(1-p); identity in eval mode.  The mask comes from the layer's own RNG stream
 * (drawn from the context when the layer is added).
 * @param net the net
 * @param p drop probability, 0 <= p < 1
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, bad argument value), ::ASYMBP_E_SHAPE (the
 *     layer does not fit the shape below it), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_add_dropout(asymbp_net_t *net, float p);

/** @} */

/** @name Text specs */
/** @{ */

/** Build a net from a text spec.  A layer list that does not end in a dense layer with `classes`
 * outputs gets one appended.
 * @param ctx borrowed
 * @param spec borrowed: "paper-cnn", "mlp:H1,H2,..." or a layer list such as
 *     "conv5x5x32p2,relu,maxpool3s2,fc64,relu,fc10" (grammar: docs/layers.md)
 * @param channels input channels
 * @param height input height
 * @param width input width
 * @param classes output classes
 * @param bn 1 inserts batch normalisation (momentum 0.1, eps 1e-5) after every conv and hidden
 *     dense layer
 * @param out receives the net, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument, bad sizes), ::ASYMBP_E_FORMAT (syntax:
 *     the message gives the character position and the reason), ::ASYMBP_E_SHAPE (a layer does
 *     not fit: the message names the token, its position and the sizes), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_from_spec(asymbp_ctx_t *ctx, const char *spec, int64_t channels, int64_t height, int64_t width,
                     int64_t classes, int bn, asymbp_net_t **out);
/** The normalised layer list of the net ("conv5x5x32p2,relu,..."), which asymbp_net_from_spec()
 * with bn 0 turns back into the same architecture.
 * @param net the net
 * @return borrowed, valid until the net changes or is destroyed; "" for a NULL net
 * @since 0.1 */
ASYMBP_API const char *asymbp_net_spec(asymbp_net_t *net);

/** @} */

/** @name Running */
/** @{ */

/** Allocate every buffer for batches of up to `batch` samples; may be called again to change the
 * batch size (parameters are kept).  The last layer must give `classes` outputs.
 * @param net the net
 * @param batch the largest batch (>= 1)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE (output size != classes, or no layer),
 *     ::ASYMBP_E_NOMEM (the net is then unbound)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_bind(asymbp_net_t *net, size_t batch);
/** The bound batch size.
 * @param net the net
 * @return the batch size, 0 when unbound
 * @since 0.1 */
ASYMBP_API size_t asymbp_net_batch_size(const asymbp_net_t *net);

/** Forward pass over n samples.  Never allocates.
 * @param net the net
 * @param x n * C*H*W floats, copied in
 * @param n samples, 1 <= n <= bound batch
 * @param train 1: batch statistics in BN (running averages updated), dropout active; 0: eval mode
 * @param logits (may be NULL) receives a borrowed pointer to n * classes floats, valid until the
 *     next forward, bind or destroy
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net or x, n == 0), ::ASYMBP_E_STATE (not bound),
 *     ::ASYMBP_E_SHAPE (n > bound batch)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_forward(asymbp_net_t *net, const float *x, size_t n, int train, const float **logits);
/** Softmax cross-entropy of the last forward's logits against labels, the mean over the n
 * samples, and the top delta for backward.
 * @param net the net
 * @param labels n int32 in [0, classes)
 * @param n samples: must equal the last forward's n
 * @param loss (may be NULL) receives the mean loss
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_STATE (no forward yet), ::ASYMBP_E_SHAPE (n
 *     differs), ::ASYMBP_E_RANGE (a label out of range; its index is named)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_loss(asymbp_net_t *net, const int32_t *labels, size_t n, float *loss);
/** Backward pass from the delta set by asymbp_net_loss(): overwrites every parameter's gradient.
 * Weighted layers send the error down through their feedback tensor (see feedback.h; plain
 * backprop when none is set).  Never allocates.
 * @param net the net
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_STATE (no loss since the last forward),
 *     ::ASYMBP_E_PLUGIN (a feedback refresh or a direct policy's deliver callback failed)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_backward(asymbp_net_t *net);
/** Predicted class (first maximal logit) of each of n samples, in eval mode.
 * @param net the net
 * @param x n * C*H*W floats
 * @param n samples: any n >= 1 (processed in chunks of the bound batch)
 * @param pred receives n int32
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_STATE (not bound)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_predict(asymbp_net_t *net, const float *x, size_t n, int32_t *pred);
/** Mean cross-entropy loss and accuracy over n samples in eval mode, in chunks of the bound
 * batch.
 * @param net the net
 * @param x n * C*H*W floats
 * @param labels n int32 in [0, classes)
 * @param n samples
 * @param loss (may be NULL) receives the mean loss
 * @param accuracy (may be NULL) receives the accuracy, a fraction in [0, 1]
 * @return as asymbp_net_predict(), plus ::ASYMBP_E_RANGE for a label out of range
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_evaluate(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n, float *loss, float *accuracy);

/** @} */

/** @name Introspection
 * A NULL net or an index out of range gives 0 / NULL / -1.
 *
 * Layer indices: every function of the public API that takes or reports a layer uses its index
 * in the net, 0 (next to the input) .. asymbp_net_layer_count() - 1 (the classifier), as
 * asymbp_net_layer_kind() and asymbp_net_layer_name() count; "conv4" is layer 4.  Weighted layers
 * (dense, conv2d) have no index space of their own: asymbp_net_weighted_layer() converts "the
 * k-th weighted layer from the bottom or the top" into the layer index.  (Two 0.1 conventions
 * remain for compatibility and are deprecated since 0.2: asymbp_net_feedback_diag()'s weighted
 * position, and negative "from the top" indices of asymbp_net_set_layer_feedback() and
 * asymbp_net_get_layer_feedback().) */
/** @{ */

/** Number of layers.
 * @param net the net
 * @return the layer count; 0 for a NULL net
 * @since 0.1 */
ASYMBP_API size_t asymbp_net_layer_count(const asymbp_net_t *net);
/** Kind of layer i.
 * @param net the net
 * @param i layer index
 * @return the kind; ::ASYMBP_LAYER_NONE (-1, so `< 0`) for a NULL net or i out of range
 * @since 0.1 */
ASYMBP_API asymbp_layer_kind_t asymbp_net_layer_kind(const asymbp_net_t *net, size_t i);
/** Name of layer i: kind and index, for example "conv0", "relu1", "maxpool2", "fc9", "bn3", "dropout4",
 * "avgpool5", "flatten6".
 * @param net the net
 * @param i layer index
 * @return borrowed; NULL for a NULL net or i out of range
 * @since 0.1 */
ASYMBP_API const char *asymbp_net_layer_name(const asymbp_net_t *net, size_t i);
/** Output shape (C, H, W per sample) of layer i.
 * @param net the net
 * @param i layer index
 * @param shape receives C, H, W
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID when out of range
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_layer_output_shape(const asymbp_net_t *net, size_t i, int64_t shape[3]);
/** Number of learnable parameter tensors, in layer order (weight, bias; BN: scale, shift).
 * @param net the net
 * @return the parameter count; 0 for a NULL net
 * @since 0.1 */
ASYMBP_API size_t asymbp_net_param_count(const asymbp_net_t *net);
/** Borrowed value and gradient tensors of parameter i; values may be written (for example by an
 * update rule).  Valid until the net is destroyed.
 * @param net the net
 * @param i parameter index
 * @param value (may be NULL) receives the value tensor
 * @param grad (may be NULL) receives the gradient tensor
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, i out of range)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_param_at(asymbp_net_t *net, size_t i, asymbp_tensor_t **value, asymbp_tensor_t **grad);
/** Name of parameter i ("conv0.weight", "conv0.bias", "bn1.scale", "bn1.shift").
 * @param net the net
 * @param i parameter index
 * @return borrowed; NULL for a NULL net or i out of range
 * @since 0.1 */
ASYMBP_API const char *asymbp_net_param_name(const asymbp_net_t *net, size_t i);
/** Number of learnable floats (sum of the parameters' sizes).
 * @param net the net
 * @return the count; 0 for a NULL net
 * @since 0.1 */
ASYMBP_API size_t asymbp_net_weight_count(const asymbp_net_t *net);
/** Number of classes the net was created for.
 * @param net the net
 * @return the class count; 0 for a NULL net
 * @since 0.1 */
ASYMBP_API int64_t asymbp_net_classes(const asymbp_net_t *net);
/** Input shape as C, H, W.
 * @param net the net
 * @param shape receives C, H, W
 * @return ::ASYMBP_OK or ::ASYMBP_E_INVALID
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_input_shape(const asymbp_net_t *net, int64_t shape[3]);
/** Number of weighted layers (dense, conv2d).
 * @param net the net
 * @return the count; 0 for NULL
 * @since 0.2 */
ASYMBP_API size_t asymbp_net_weighted_layer_count(const asymbp_net_t *net);
/** The layer index of a weighted layer.
 * @param net the net
 * @param k k >= 0 counts from the bottom (0 = the lowest weighted layer), k < 0 from the top
 *     (-1 = the highest, the classifier in a net built by the builders or a spec)
 * @param layer receives the index
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument, k out of range)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_weighted_layer(const asymbp_net_t *net, int k, size_t *layer);

/** @} */

/** @name Read-outs */
/** @{ */

/** What asymbp_net_read_layer() copies.  Values pinned; new ones are appended.
 * @since 0.2 */
typedef enum asymbp_readout {
    ASYMBP_READ_WEIGHTS = 0,        /**< W of a dense or conv2d layer: dense [out][in], conv2d
                                         [oc][ic][kh][kw] */
    ASYMBP_READ_FEEDBACK = 1,       /**< V, the tensor its backward multiplies the error by (W when
                                         the feedback is symmetric or direct), at the moment feedback.h's
                                         diagnostics describe (read after asymbp_optimizer_step():
                                         the next backward's V, made from the current W) */
    ASYMBP_READ_DELTA_RECEIVED = 2, /**< the error the layer received in the last backward pass,
                                         dL/d(its output): n x (C*H*W of its output) */
    ASYMBP_READ_DELTA_SENT = 3,     /**< the error it sent to the layer below, n x (C*H*W of its
                                         input); layer 0's is dL/dinput (asymbp_net_set_input_grad());
                                         under a direct policy of the weighted layer below (see
                                         feedback.h), the error delivered there in its place */
    ASYMBP_READ_DIRECT_FEEDBACK = 4 /**< B of a layer with a direct feedback policy (feedback.h,
                                         ::ASYMBP_FEEDBACK_DIRECT): classes x block_size floats,
                                         [classes][block_size]; ::ASYMBP_E_STATE when the layer has
                                         no such tensor.  Since 0.2. */
} asymbp_readout_t;

/** Copy a layer's W, V or a delta of the last backward pass into the caller's buf.  The deltas
 * are those of the last asymbp_net_backward() (n = its batch, sample after sample); they stay
 * readable until the next asymbp_net_loss(), bind or layer added (a forward, predict or evaluate
 * pass does not touch them; the probe puts them back; a gradient check leaves its own).  The
 * backward pass stops at the lowest layer with parameters unless the input gradient is
 * requested: below it, and for what that layer sends down, there is no delta (::ASYMBP_E_STATE).
 * Reading V may run the policy's refresh (see feedback.h).  No allocation.
 * @param net the net
 * @param layer layer index
 * @param what which read-out
 * @param buf receives the floats; NULL with cap 0 only reports count
 * @param cap floats buf holds
 * @param count (may be NULL) receives the number of floats the read-out has
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net, layer out of range, a weight read-out of a
 *     layer without weights, unknown what, buf NULL with cap > 0), ::ASYMBP_E_STATE (no such
 *     delta in the last backward pass, or no backward pass since the last loss; no direct
 *     feedback tensor), ::ASYMBP_E_SHAPE (cap smaller than count: nothing is written),
 *     ::ASYMBP_E_PLUGIN (V's refresh failed)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_read_layer(asymbp_net_t *net, size_t layer, asymbp_readout_t what, float *buf, size_t cap, size_t *count);

/** Ask every backward pass to compute the gradient of the loss with respect to the net's input
 * too, readable as layer 0's ::ASYMBP_READ_DELTA_SENT (and every layer's deltas below the lowest
 * one with parameters become readable).  Cost per backward pass: the lowest weighted layer sends
 * its error down (one more product with V of the size of its weight-gradient product: for a
 * dense layer batch x inputs x outputs multiply-adds, for a conv layer its transposed
 * convolution), the weight-free layers under it run their backward, and that layer's feedback is
 * refreshed every step instead of lazily (BRSF: one more draw of its magnitudes per step).  No
 * memory is added (the buffer exists from binding).
 * @param net the net
 * @param on 1: on, 0: off (the default)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_set_input_grad(asymbp_net_t *net, int on);
/** Whether the input gradient is requested (asymbp_net_set_input_grad()).
 * @param net the net
 * @return 1: on, 0: off
 * @since 0.2 */
ASYMBP_API int asymbp_net_get_input_grad(const asymbp_net_t *net);

/** @} */

/** @name Gradient check */
/** @{ */

/** Number of layers the 0.1 gradient-check report (::asymbp_gradcheck_report_t) holds. */
#define ASYMBP_GRADCHECK_MAX_LAYERS 64

/** Caller-filled parameters of asymbp_net_gradcheck_v2() and asymbp_net_gradcheck(): start from
 * ::ASYMBP_GRADCHECK_PARAMS_INIT. */
typedef struct asymbp_gradcheck_params {
    size_t struct_size;           ///< sizeof as the caller was compiled (set by the INIT macro)
    double eps;                   ///< relative step: h = eps * max(1, |value|), in (0, 1); default 1e-6
    size_t max_entries_per_param; ///< entries sampled per tensor (0: all); the input counts as one
    uint64_t seed;                ///< which entries are sampled
    int use_feedback;             /**< 0 (default): compare against exact backprop (V = W);
                                       1: against the backward the net's feedback policy gives */
} asymbp_gradcheck_params_t;
/** Initializer of ::asymbp_gradcheck_params_t: eps 1e-6, 32 entries per tensor, seed 1, against
 * exact backprop. */
#define ASYMBP_GRADCHECK_PARAMS_INIT { sizeof(asymbp_gradcheck_params_t), 1e-6, 32, 1, 0 }

/** One layer's figures in the gradient check's result (layers with parameters only), an element
 * of the caller's array.
 * @since 0.2 */
typedef struct asymbp_gradcheck_entry {
    int layer_index;     ///< the layer's index in the net
    char name[32];       ///< its name, such as "conv0"
    double rel_error;    ///< worst relative error over its parameters' checked entries
    size_t checked;      ///< entries compared
    size_t skipped;      ///< entries skipped because a perturbed loss was not finite
} asymbp_gradcheck_entry_t;

/** Result of asymbp_net_gradcheck_v2(): the caller gives the array for the per-layer figures and
 * its capacity; start from ::ASYMBP_GRADCHECK_RESULT_INIT (it sets struct_size and entry_size,
 * the size of the elements as the caller was compiled: the library steps through the array by
 * it).
 * @since 0.2 */
typedef struct asymbp_gradcheck_result {
    size_t struct_size;                 ///< sizeof as the caller was compiled (INIT)
    size_t entry_size;                  ///< sizeof(asymbp_gradcheck_entry_t) (INIT)
    asymbp_gradcheck_entry_t *layers;   ///< caller's array of `capacity` entries (NULL if 0)
    size_t capacity;                    ///< entries of the layers array
    size_t layer_count;                 /**< out: layers with parameters, bottom to top: the entries
                                             written, or the capacity needed (::ASYMBP_E_SHAPE) */
    double max_rel_error;               ///< worst over every layer and the input
    double input_rel_error;             ///< worst over the input's checked entries
    /** input entries compared */
    size_t input_checked, input_skipped; ///< input entries skipped because a perturbed loss was not finite
} asymbp_gradcheck_result_t;
/** Initializer of ::asymbp_gradcheck_result_t: struct_size and entry_size set, no array. */
#define ASYMBP_GRADCHECK_RESULT_INIT \
    { sizeof(asymbp_gradcheck_result_t), sizeof(asymbp_gradcheck_entry_t), 0, 0, 0, 0, 0, 0, 0 }

/** One layer's figures in the 0.1 report.
 * @deprecated Since 0.2, with ::asymbp_gradcheck_report_t (a fixed array of 64 layers; bigger nets
 *     lose the figures of the layers above the 64th): use ::asymbp_gradcheck_result_t and
 *     ::asymbp_gradcheck_entry_t. */
typedef struct asymbp_gradcheck_layer {
    char name[32];       ///< layer name, such as "conv0"
    double rel_error;    ///< worst relative error over its parameters' checked entries
    size_t checked;      ///< entries compared
    size_t skipped;      ///< entries skipped because a perturbed loss was not finite
} asymbp_gradcheck_layer_t;

/** Result of asymbp_net_gradcheck(); the caller sets struct_size (::ASYMBP_GRADCHECK_REPORT_INIT).
 * @deprecated Since 0.2: a fixed array of 64 layers; bigger nets lose the figures of the layers
 *     above the 64th; use ::asymbp_gradcheck_result_t. */
typedef struct asymbp_gradcheck_report {
    size_t struct_size;           ///< sizeof as the caller was compiled (INIT)
    double max_rel_error;         ///< worst over every layer and the input
    double input_rel_error;       ///< worst over the input's checked entries
    /** input entries compared */
    size_t input_checked, input_skipped; ///< input entries skipped because a perturbed loss was not finite
    size_t layer_count;           ///< entries of layers[] used (at most ::ASYMBP_GRADCHECK_MAX_LAYERS)
    asymbp_gradcheck_layer_t layers[ASYMBP_GRADCHECK_MAX_LAYERS]; ///< per-layer figures, bottom to top
} asymbp_gradcheck_report_t;
/** Initializer of ::asymbp_gradcheck_report_t.
 * @deprecated Since 0.2, with the report. */
#define ASYMBP_GRADCHECK_REPORT_INIT { sizeof(asymbp_gradcheck_report_t), 0, 0, 0, 0, 0, {{{0}, 0, 0, 0}} }

/** Compare the backward pass of the bound net on (x, labels, n) with central finite differences
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
 * checked entry.
 * @param net the bound net
 * @param x n samples
 * @param labels n labels
 * @param n samples (at most the bound batch)
 * @param p (may be NULL: defaults) the parameters
 * @param result receives the figures (see ::asymbp_gradcheck_result_t)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (also for layers NULL with a capacity),
 *     ::ASYMBP_E_STATE (not bound), ::ASYMBP_E_SHAPE (n > batch; also when result->capacity is
 *     smaller than the number of layers with parameters: checked first, nothing run,
 *     result->layer_count then gives the capacity needed), ::ASYMBP_E_RANGE (bad label),
 *     ::ASYMBP_E_UNSUPPORTED (struct_size of p, or struct_size / entry_size of result too small),
 *     ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_gradcheck_v2(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                        const asymbp_gradcheck_params_t *p, asymbp_gradcheck_result_t *result);
/** asymbp_net_gradcheck_v2() into the fixed 0.1 report (the first ::ASYMBP_GRADCHECK_MAX_LAYERS
 * layers; max_rel_error covers them all).
 * @param net the bound net
 * @param x n samples
 * @param labels n labels
 * @param n samples (at most the bound batch)
 * @param p (may be NULL: defaults) the parameters
 * @param report receives the figures; the caller sets struct_size
 * @return as asymbp_net_gradcheck_v2()
 * @since 0.1
 * @deprecated Since 0.2: use asymbp_net_gradcheck_v2(). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_gradcheck(asymbp_net_t *net, const float *x, const int32_t *labels, size_t n,
                     const asymbp_gradcheck_params_t *p, asymbp_gradcheck_report_t *report);
/** The result as one JSON line (no newline):
 * `{"max_rel_error":...,"input_rel_error":...,"input_checked":...,"input_skipped":...,
 * "layers":[{"layer":0,"name":"conv0","rel_error":...,"checked":...,"skipped":...},...]}`.
 * Like snprintf.
 * @param result the result
 * @param buf receives at most cap bytes including the NUL (may be NULL when cap is 0)
 * @param cap bytes of buf
 * @return the length the full text needs; 0 for a NULL or too small result
 * @since 0.2 */
ASYMBP_API size_t asymbp_gradcheck_result_json(const asymbp_gradcheck_result_t *result, char *buf, size_t cap);
/** The same as asymbp_gradcheck_result_json() for the 0.1 report (no "layer" members).
 * @param report the report
 * @param buf receives at most cap bytes including the NUL (may be NULL when cap is 0)
 * @param cap bytes of buf
 * @return the length the full text needs; 0 for a NULL or too small report
 * @since 0.1
 * @deprecated Since 0.2: use asymbp_gradcheck_result_json(). */
ASYMBP_API size_t asymbp_gradcheck_report_json(const asymbp_gradcheck_report_t *report, char *buf, size_t cap);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_NET_H */
