/** @file
 * @brief Feedback-connection policies: what each weighted layer (dense, conv2d) multiplies the
 * error by when it sends it to the layer below.
 *
 * Asymmetric backpropagation (Liao, Leibo, Poggio 2016) gives every weighted layer a feedback
 * tensor V of the shape of its weights W.  The forward pass and the weight gradient use W as
 * usual; only the error sent down uses V (dense: V^T delta, conv: transposed convolution with V).
 * A policy decides what V is.  Built-in policies (setting names, case-insensitive):
 *
 * - `sym` (alias `bp`): V = W: ordinary backprop.  Costs nothing (no copy of W, no extra memory).
 * - `usf`: V = s sign(W), sign re-taken every optimizer step.
 * - `brsf`: V = s M o sign(W), M redrawn once per optimizer step.
 * - `frsf`: V = s M o sign(W), M drawn once; the sign follows the current W.
 * - `partial:P`: V = s M o sign(W) o S, S a +/-1 mask with P(S = +1) = P (0 <= P <= 1).
 * - `rndf` (alias `fa`): V = R, zero-mean random, drawn once, independent of W (feedback
 *   alignment).
 * - `signed-init`: V = s M o sign(W0), W0 the weights when the policy was assigned.
 * - `dfa`: direct feedback alignment (Nokland 2016): the output error e is sent straight to the
 *   top of the layer's block through a fixed random B (a direct policy, see
 *   ::ASYMBP_FEEDBACK_DIRECT); the highest weighted layer gets the exact error.
 * - `kp`: Kolen-Pollack (Akrout et al. 2019): V starts random and receives every step the change
 *   the update rule made to W, while V - W shrinks by (1 - decay).
 * - `mirror`: weight mirror (Akrout et al. 2019): after every step, noise x is sent through the
 *   layer (y = W x) and V <- (1 - decay) V + lr mean(y x^T), so V -> W.
 *
 * sign(0) = 0: a weight that is exactly 0 gets a feedback weight of 0.  M is drawn from |N(0,1)|
 * (default) or U(0,1) and s is 1 unless a scale option says otherwise.  The setting grammar:
 *
 * @code{.unparsed}
 * setting = name *( ":" option )         e.g. "brsf", "partial:0.5:redraw",
 * option  = key "=" value | value              "frsf:mag=uniform:scale=xavier"
 *
 * mag=normal|uniform|one   magnitude distribution of M (brsf, frsf, partial, signed-init)
 * scale=none|xavier|he|X   s = 1, sqrt(2/(fan_in+fan_out)), sqrt(2/fan_in) or the number X > 0
 *                          (rndf: default xavier, R = s r with r of unit variance)
 * dist=uniform|normal      rndf: r uniform on [-sqrt 3, sqrt 3] (default) or N(0,1)
 * p=P or a bare number     partial: probability that a feedback sign agrees with W's
 * mask=fixed|redraw        partial: S drawn once (default) or each optimizer step
 *                          (bare "fixed" / "redraw" also accepted)
 * m=fixed|step             partial: M drawn once (default) or each optimizer step
 * decay=X                  kp, mirror: decay per step (kp) or per mirror step (mirror), in [0, 1]
 * lr=X, noise=X, steps=N, batch=N   mirror: learning rate, noise standard deviation, mirror
 *                          steps per optimizer step, noise samples per mirror step
 * (dfa, kp and mirror also take scale= and dist= for the random initial B or V, as rndf)
 * @endcode
 *
 * A registered user policy is used by its name; the text after "name:" reaches its init as
 * args->options, unparsed.  "Once per optimizer step" means: before the first backward pass of
 * each step (the net counts steps through the optimizer); evaluation passes never refresh V.
 *
 * Every policy instance draws from its own RNG stream, taken from the context when the policy is
 * assigned.  Its state (the state block, the per-element buffers, V, the RNG position and the
 * step of its last refresh) is part of saved models and checkpoints, so a resumed run continues
 * exactly. */
#ifndef ASYMBP_FEEDBACK_H
#define ASYMBP_FEEDBACK_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/rng.h"
#include "asymbp/plugin.h"
#include "asymbp/net.h"
#ifdef __cplusplus
extern "C" {
#endif

/** @name Policy plugins
 * A policy is instantiated once per weighted layer it is assigned to.  For each instance the
 * library allocates, when the policy is assigned (never during training):
 * - a state block of vt->state_size bytes (zero-filled, 64-byte aligned);
 * - vt->buffer_count per-element buffers of numel floats each, in one zero-filled block
 *   (args->buf; buffer k starts at buf + k * numel): room for M, S, R, a learned copy of W...;
 * - unless the policy is symmetric, V itself (numel floats, args->V).
 *
 * The state block, the buffers and V are saved in models and checkpoints byte for byte (the
 * state block in host byte order) and restored after init has run again on load, so they must
 * not hold pointers.  user data is the plugin's own and is not saved. */
/** @{ */

/** Flag of a policy (vt->flags): V = W: no V tensor; refresh and after_update never run.
 * @since 0.1 */
#define ASYMBP_FEEDBACK_SYMMETRIC 0x1u
/** Flag of a policy (vt->flags): a direct policy (direct feedback alignment and its relatives).
 * Its tensor is not a V of the shape of W but B, classes x block_size floats
 * ([classes][block_size], as the weights of a dense layer from the top of the block to the
 * outputs), where block_size is the size per sample of the error arriving at the top of the
 * layer's block: the input of the next weighted layer above (features for dense, C*H*W for
 * conv2d).  In every backward pass the net sends the output error e = dL/dlogits (samples x
 * classes) through B to the top of the block (e B, or the policy's deliver callback), from where
 * it passes down through the block's own pooling, ReLU, dropout and batch norm exactly to the
 * weighted layer; the weighted layer above then sends no error down.  A layer with a direct
 * policy sends an error down itself (to a layer with a layer policy below it, or for the input
 * gradient) through its W.  On the highest weighted layer a direct policy has no tensor
 * (block_size 0; its callbacks are never called): the classifier receives the exact error.
 * args->V is B; args->numel, ndim (2), shape {classes, block_size}, fan_in (block_size) and
 * fan_out (classes) describe B and the buffers are buffer_count B-sized blocks; args->W is still
 * the layer's weights (args->w_numel floats).  Not with ::ASYMBP_FEEDBACK_SYMMETRIC.
 * @since 0.2 */
#define ASYMBP_FEEDBACK_DIRECT 0x2u
/** Flag of a policy (vt->flags): after_update receives the weights as they were before the
 * optimizer step (args->W_before), so a policy sees what the update rule did to W (W - W_before)
 * whatever the rule is.  The library keeps the copy: w_numel floats per instance, refreshed
 * before every optimizer step, not saved.
 * @since 0.2 */
#define ASYMBP_FEEDBACK_W_BEFORE 0x4u

/** Arguments of every callback, filled by the library (borrowed for the call).  Members are only
 * appended; struct_size tells a plugin which ones exist.
 * @since 0.1 */
typedef struct asymbp_feedback_args {
    size_t struct_size;          ///< sizeof as the library was compiled
    asymbp_ctx_t *ctx;           ///< the context (borrowed)
    const float *W;              /**< the layer's forward weights, numel floats:
                                      dense [out][in], conv2d [oc][ic][kh][kw] */
    float *V;                    /**< the feedback tensor to write (numel floats); NULL when the
                                      policy is symmetric */
    float *buf;                  ///< buffer_count * numel floats of per-element state (NULL if 0)
    size_t numel;                ///< floats of V (and of each buffer)
    int ndim;                    ///< 2 (dense) or 4 (conv2d)
    int64_t shape[4];            ///< the first ndim entries are used
    /** fan-in: dense: in; conv2d: ic*kh*kw */
    size_t fan_in, fan_out;      ///< fan-out: dense: out; conv2d: oc*kh*kw
    int layer_index;             ///< index of the layer in its net (-1 outside a net)
    int is_conv;                 ///< 0 dense, 1 conv2d
    asymbp_rng_t *rng;           /**< the instance's own stream, saved with the instance: draw
                                      with asymbp_rng_u32() / uniform / normal / below; never
                                      destroy or split it */
    const char *options;         ///< the setting's text after "name:" ("" when none)
    uint64_t step;               /**< init: optimizer steps completed so far; refresh: number of
                                      the step about to run (1 on the first); after_update: number
                                      of the step just completed (1 on the first) */
    /* ---- Since 0.2 (check struct_size before reading) ---- */
    size_t w_numel;              ///< floats of W (= numel, except for a direct policy).  Since 0.2.
    int w_ndim;                  ///< W's ndim (= ndim, except for a direct policy).  Since 0.2.
    int64_t w_shape[4];          ///< W's shape (= shape, except for a direct policy).  Since 0.2.
    int direct;                  ///< 1 for a direct policy (::ASYMBP_FEEDBACK_DIRECT): V is B.  Since 0.2.
    int64_t classes;             ///< the net's number of classes (0 outside a net).  Since 0.2.
    size_t block_size;           /**< floats per sample of the error at the top of the layer's block
                                      (the input of the next weighted layer); 0 for the highest
                                      weighted layer and outside a net.  Since 0.2. */
    const float *W_before;       /**< after_update of a policy with ::ASYMBP_FEEDBACK_W_BEFORE: W as it
                                      was before the optimizer step just completed (w_numel
                                      floats); NULL otherwise.  Since 0.2. */
    float *scratch;              /**< vt->scratch_size floats of per-instance scratch (not saved,
                                      contents undefined on entry); NULL when none.  Since 0.2. */
    size_t scratch_floats;       ///< floats of scratch.  Since 0.2.
    /* deliver only (NULL / 0 in the other callbacks): */
    const float *error;          /**< deliver only (NULL in the other callbacks): samples x classes:
                                      dL/dlogits set by the last asymbp_net_loss().  Since 0.2. */
    const int32_t *labels;       /**< deliver only (NULL in the other callbacks): the samples labels
                                      given to the last asymbp_net_loss().  Since 0.2. */
    size_t samples;              /**< deliver only (0 in the other callbacks): samples in the
                                      backward pass.  Since 0.2. */
    float *delta;                /**< deliver only (NULL in the other callbacks): samples x
                                      block_size floats to write: the error delivered to the top
                                      of the layer's block.  Since 0.2. */
} asymbp_feedback_args_t;

/** A feedback-policy vtable.  Fill it starting from ::ASYMBP_FEEDBACK_VTABLE_INIT.  Callbacks get
 * the registration's user pointer, the instance's state block and the args.
 * @since 0.1 */
typedef struct asymbp_feedback_vtable {
    uint32_t    struct_size;  ///< sizeof as the plugin was compiled; set by the INIT macro
    uint32_t    abi_version;  ///< ::ASYMBP_PLUGIN_ABI_VERSION
    const char *name;         /**< unique in the context, case-insensitively; letters, digits,
                                   '-', '_', '.', at most 63 bytes, no ':' (copied) */
    size_t      state_size;   ///< bytes of state per instance (per layer; 0: none)
    size_t      buffer_count; ///< per-element float buffers per instance (0: none)
    uint32_t    flags;        ///< ASYMBP_FEEDBACK_* (::ASYMBP_FEEDBACK_SYMMETRIC, ...)
    /** (optional) Prepare the instance: parse args->options, draw fixed random arrays into
     * args->buf, and write a first V into args->V.  Runs when the policy is assigned to a layer
     * and again when a saved instance is loaded (the saved state then overwrites what it wrote).
     * A non-OK return fails the assignment with ::ASYMBP_E_PLUGIN (::ASYMBP_E_FORMAT for a bad
     * option of a built-in). */
    asymbp_status_t (*init)(void *user, void *state, const asymbp_feedback_args_t *args);
    /** (optional; NULL: V keeps what init wrote) Write V for this optimizer step (args->step).
     * Called at most once per step: before the step's first backward pass for every layer that
     * sends an error down, or earlier in the step (after the previous optimizer step) when
     * something reads V then (the diagnostics, the V read-out); for the lowest weighted layer,
     * whose V training never reads, only in the steps where something reads it
     * (asymbp_net_feedback_diag(), the probe, the V read-out, a gradient check through the
     * feedback, the input gradient), just before.  Must not allocate. */
    asymbp_status_t (*refresh)(void *user, void *state, const asymbp_feedback_args_t *args);
    /** (optional) Called after every optimizer step, once the update rule has moved W (for
     * policies that learn V).  Must not allocate. */
    asymbp_status_t (*after_update)(void *user, void *state, const asymbp_feedback_args_t *args);
    /** (optional) Release what init acquired; runs once per instance whose init succeeded. */
    void            (*fini)(void *user, void *state);
    /* ---- end of version 1: append new members below, never reorder ---- */
    /** (optional; direct policies only) Write args->delta, the error delivered to the top of the
     * layer's block for this backward pass, from args->error (and args->labels: for example
     * direct random target projection) and B (args->V).  NULL: the library writes error B (DFA).  Called
     * in every backward pass that uses the feedback (never in the exact-backprop probe's pass or
     * a gradient check against exact backprop), after refresh.  Must not allocate.
     * @since 0.2 */
    asymbp_status_t (*deliver)(void *user, void *state, const asymbp_feedback_args_t *args);
    /** (optional) Floats of scratch memory an instance needs (a mirror's noise batch), from args
     * as init will get them (options, shapes; V and buf not yet written).  Called once when the
     * policy is assigned, before init; the library allocates the scratch with the instance
     * (never during training) and passes it as args->scratch to every callback; it is not saved.
     * NULL or 0: none.
     * @since 0.2 */
    size_t          (*scratch_size)(void *user, const asymbp_feedback_args_t *args);
} asymbp_feedback_vtable_t;
/** The smallest struct_size the library accepts: a vtable may end after `refresh` (the optional
 * after_update and fini then read as NULL).
 * @since 0.1 */
#define ASYMBP_FEEDBACK_VTABLE_MIN_SIZE \
    (offsetof(asymbp_feedback_vtable_t, refresh) + sizeof(asymbp_status_t (*)(void)))
/** Initializer of ::asymbp_feedback_vtable_t: struct_size and abi_version set, every other member
 * 0 / NULL. */
#define ASYMBP_FEEDBACK_VTABLE_INIT \
    { (uint32_t)sizeof(asymbp_feedback_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** A registered policy: a borrowed handle owned by the context (built-ins: by the library),
 * valid until its registration ends.
 * @since 0.2 */
typedef struct asymbp_feedback_policy asymbp_feedback_policy_t;

/** @} */

/** @name Registry
 * The registry follows the rules every plugin kind shares (docs/plugins.md): built-ins first, in
 * a static table (sym, usf, brsf, frsf, partial, rndf, signed-init, dfa, kp, mirror), then user
 * policies in registration order; names unique case-insensitively, aliases ("bp" = sym, "fa" =
 * rndf) reserved like names; queries never allocate. */
/** @{ */

/** Register a feedback policy in ctx under vt->name.  The vtable is copied (min(vt->struct_size,
 * sizeof) bytes, the rest zero-filled, so members an older plugin lacks read as NULL/0); the
 * caller's vtable is never written and need not outlive the call.
 * @param ctx the context
 * @param vt the vtable
 * @param user handed to every callback
 * @param user_free (may be NULL) runs exactly once, when the registration ends
 *     (asymbp_feedback_unregister(), or asymbp_ctx_destroy()); when registration FAILS it is not
 *     called and user stays the caller's
 * @param out (may be NULL) receives the handle
 * @return ::ASYMBP_OK; ::ASYMBP_E_INVALID (NULL ctx/vt/name, bad name, name or alias already taken
 *     - built-ins included -, a non-symmetric policy with neither init nor refresh);
 *     ::ASYMBP_E_UNSUPPORTED (abi_version unknown, struct_size smaller than
 *     ::ASYMBP_FEEDBACK_VTABLE_MIN_SIZE, unknown flags); ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_feedback_register_v2(asymbp_ctx_t *ctx, const asymbp_feedback_vtable_t *vt, void *user,
                            void (*user_free)(void *user), asymbp_feedback_policy_t **out);
/** asymbp_feedback_register_v2() without the handle.
 * @param ctx the context
 * @param vt the vtable
 * @param user handed to every callback
 * @param user_free (may be NULL) as for asymbp_feedback_register_v2()
 * @return as asymbp_feedback_register_v2()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_feedback_register(asymbp_ctx_t *ctx, const asymbp_feedback_vtable_t *vt, void *user,
                         void (*user_free)(void *user));
/** End the registration of a user policy (its user_free runs now).
 * @param ctx the context
 * @param name the policy's name
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, or a built-in), ::ASYMBP_E_NOTFOUND (no such
 *     policy), ::ASYMBP_E_STATE (a layer still uses it: assign another policy or destroy the net
 *     first)
 * @since 0.1 (refused while in use since 0.2; 0.1 deferred the end of the registration) */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_feedback_unregister(asymbp_ctx_t *ctx, const char *name);
/** Look a policy up by name or alias (case-insensitive).  Never allocates.
 * @param ctx the context
 * @param name a name or alias; a whole setting is accepted, its part before the first ':' is the
 *     name
 * @param out receives the handle
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument), ::ASYMBP_E_NOTFOUND (the detail lists
 *     the known names), ::ASYMBP_E_FORMAT (a setting ending in ':')
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_feedback_find(asymbp_ctx_t *ctx, const char *name, asymbp_feedback_policy_t **out);
/** Number of registered policies (built-ins included).  Never allocates.
 * @param ctx the context
 * @return the count; 0 for NULL
 * @since 0.1 (the context became const in 0.2) */
ASYMBP_API size_t asymbp_feedback_count(const asymbp_ctx_t *ctx);
/** The i-th registered policy.  Never allocates.
 * @param ctx the context
 * @param i index, 0 .. asymbp_feedback_count() - 1
 * @return the borrowed handle; NULL when out of range
 * @since 0.2 */
ASYMBP_API asymbp_feedback_policy_t *asymbp_feedback_at(const asymbp_ctx_t *ctx, size_t i);
/** The name of the i-th registered policy.  Never allocates.
 * @param ctx the context
 * @param i index, 0 .. asymbp_feedback_count() - 1
 * @return borrowed; NULL out of range
 * @since 0.1 (the context became const in 0.2) */
ASYMBP_API const char *asymbp_feedback_name_at(const asymbp_ctx_t *ctx, size_t i);
/** The policy's registered name.
 * @param policy the policy
 * @return borrowed; "" for NULL
 * @since 0.2 */
ASYMBP_API const char *asymbp_feedback_policy_name(const asymbp_feedback_policy_t *policy);
/** Check a setting string without a net: the name must be registered and a built-in's options
 * must parse (a user policy's options are checked only when it is assigned).  For command-line
 * parsing.
 * @param ctx the context
 * @param setting the setting (see the grammar in the file's description)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL), ::ASYMBP_E_NOTFOUND (unknown name; the detail
 *     lists the known ones), ::ASYMBP_E_FORMAT (bad option: the detail names it)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_feedback_check_setting(asymbp_ctx_t *ctx, const char *setting);

/** @} */

/** @name Assignment to a net */
/** @{ */

/** Give every weighted layer of net (dense and conv2d, the classifier included) its own instance
 * of the policy `setting` (see the grammar in the file's description).  Everything the policies
 * need is allocated here; on failure the net keeps its previous feedback.  A layer added later
 * starts symmetric.
 * @param net borrowed
 * @param setting borrowed
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument), ::ASYMBP_E_STATE (the net has no
 *     weighted layer), ::ASYMBP_E_NOTFOUND (unknown policy name), ::ASYMBP_E_FORMAT (bad option),
 *     ::ASYMBP_E_PLUGIN (a user policy's init failed), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_net_set_feedback(asymbp_net_t *net, const char *setting);
/** The same as asymbp_net_set_feedback() for one layer.  To keep the classifier symmetric:
 * @code
 *     size_t top; asymbp_net_weighted_layer(net, -1, &top);
 *     asymbp_net_set_feedback(net, "usf"); asymbp_net_set_layer_feedback(net, (int)top, "sym");
 * @endcode
 * @param net borrowed
 * @param layer_index the layer's index in the net (as everywhere, see net.h; it must be dense or
 *     conv2d).  A negative layer_index counting weighted layers from the top (-1 the highest) is
 *     still accepted but deprecated since 0.2 (a second index space; use
 *     asymbp_net_weighted_layer()).
 * @param setting borrowed
 * @return as asymbp_net_set_feedback(), plus ::ASYMBP_E_INVALID when the index is out of range or
 *     names a layer without weights
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_set_layer_feedback(asymbp_net_t *net, int layer_index, const char *setting);
/** The setting text of a layer: what was assigned, "sym" when none.
 * @param net the net
 * @param layer_index the layer's index, as for asymbp_net_set_layer_feedback() (negative:
 *     deprecated, as there)
 * @return borrowed, valid until the layer's feedback changes or the net is destroyed; NULL for a
 *     bad index
 * @since 0.1 */
ASYMBP_API const char *asymbp_net_get_layer_feedback(asymbp_net_t *net, int layer_index);

/** @} */

/** @name Diagnostics */
/** @{ */

/** Number of weighted layers (dense, conv2d) of net; the same as
 * asymbp_net_weighted_layer_count() (the length of the probe's array).
 * @param net the net
 * @return the count
 * @since 0.1 */
ASYMBP_API size_t asymbp_net_feedback_layer_count(const asymbp_net_t *net);

/** Per-layer figures.  Caller-filled struct_size (::ASYMBP_FEEDBACK_DIAG_INIT); the library writes
 * the members that fit in it.  Angles are in degrees, in [0, 180]; NaN when undefined (a zero
 * vector) or not measured.
 * @since 0.1 */
typedef struct asymbp_feedback_diag {
    size_t struct_size;         ///< sizeof as the caller was compiled (INIT)
    int layer_index;            ///< index of the layer in the net
    double delta_norm;          /**< ||error the layer sent down|| in the last backward pass
                                     (0 for the first layer, which sends nothing); when the weighted
                                     layer below has a direct policy (since 0.2): the norm of the
                                     error delivered there in its place, from the output error */
    double grad_norm;           ///< ||dW|| of the last backward pass
    double sign_concordance;    /**< fraction of the weights W != 0 with sign(V) == sign(W)
                                     (1 for sym; NaN when every weight is 0; NaN for a layer
                                     with a direct policy's B, which has another shape) */
    double angle_vw;            /**< angle in degrees between V and W as flat vectors (0 for sym;
                                     NaN for a direct policy's B) */
    double norm_ratio;          ///< ||V|| / ||W|| (1 for sym; NaN for a direct policy's B)
    /* Filled only by asymbp_net_feedback_probe (NaN otherwise): */
    double grad_angle_bp;       /**< filled only by asymbp_net_feedback_probe() (NaN otherwise):
                                     angle between this layer's dW and the dW exact backprop gives
                                     for the same batch */
    double bp_delta_norm;       /**< filled only by the probe (NaN otherwise): ||error exact
                                     backprop sends down from this layer|| */
    double bp_grad_norm;        ///< filled only by the probe (NaN otherwise): ||dW|| under exact backprop
    double delta_angle_bp;      /**< filled only by the probe (NaN otherwise): angle in degrees
                                     between the error this layer sent down (or, under a direct
                                     policy of the weighted layer below, the error delivered
                                     there) and the one exact backprop sends for the same batch
                                     (NaN for the lowest weighted layer, which sends none).
                                     Since 0.1. */
    /* Since 0.2, filled only by asymbp_net_feedback_probe (NaN otherwise): */
    double recv_angle_bp;       /**< filled only by the probe (NaN otherwise): angle in degrees
                                     between the error this layer received at its output (dL/d its
                                     output, what its dW and bias gradient are computed from) and
                                     the one exact backprop gives for the same batch: the
                                     per-layer "angle to the backprop error" for every policy,
                                     direct ones included (0 for the highest weighted layer of a
                                     net whose top is exact).  Since 0.2. */
    double recv_norm;           /**< filled only by the probe (NaN otherwise): ||error received at
                                     the output|| in the last backward pass.  Since 0.2. */
    double bp_recv_norm;        /**< filled only by the probe (NaN otherwise): the same under exact
                                     backprop.  Since 0.2. */
} asymbp_feedback_diag_t;
/** Initializer of ::asymbp_feedback_diag_t: struct_size set, layer_index -1, figures 0. */
#define ASYMBP_FEEDBACK_DIAG_INIT { sizeof(asymbp_feedback_diag_t), -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** Figures of the weighted layer `layer` from the last backward pass and the current W and V.
 *
 * Which moment the diagnostics report (asymbp_net_layer_feedback_diag(), the probe, and the V
 * read-out asymbp_net_read_layer(::ASYMBP_READ_FEEDBACK)): every layer alike, V is the feedback
 * tensor of the optimizer step the net is at - the one whose backward pass ran last, or, after
 * asymbp_optimizer_step(), the next one - set against the current W.  So between a backward pass
 * and the optimizer step the figures are those of the V and W that pass used; after the step
 * they are those of the V the next backward will use, made from the updated W (every layer's V
 * is refreshed for that step when it is read: at most once per step, as the next backward would;
 * training is bit for bit the same whether or not anything is read).  delta_norm and grad_norm
 * always come from the last backward pass.  (0.1 reported the V of the step before for every
 * layer but the lowest after an optimizer step.)
 *
 * Costs O(numel); no allocation.  The probe members are set to NaN.
 * @param net the net
 * @param layer the layer's index in the net, as everywhere (see net.h); the k-th weighted layer is
 *     asymbp_net_weighted_layer(net, k, &layer)
 * @param diag receives the figures; caller-filled struct_size
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, layer out of range or without weights),
 *     ::ASYMBP_E_UNSUPPORTED (struct_size smaller than version 1), ::ASYMBP_E_PLUGIN (a policy's
 *     refresh failed)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_layer_feedback_diag(asymbp_net_t *net, size_t layer, asymbp_feedback_diag_t *diag);
/** The same as asymbp_net_layer_feedback_diag() for weighted layer i counted from the bottom, an
 * index space of its own.
 * @param net the net
 * @param i 0 = the lowest weighted layer, up to asymbp_net_feedback_layer_count() - 1
 * @param diag receives the figures; caller-filled struct_size
 * @return as asymbp_net_layer_feedback_diag()
 * @since 0.1
 * @deprecated Since 0.2 (kept until 1.0's successor drops it): use
 *     asymbp_net_layer_feedback_diag(). */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_feedback_diag(asymbp_net_t *net, size_t i, asymbp_feedback_diag_t *diag);
/** The exact-backprop probe: after a training forward, loss and backward pass, run a second
 * backward on the same batch with V = W for every layer and fill diag[0..count-1] (bottom to
 * top) with the figures of asymbp_net_feedback_diag() plus the comparison with exact backprop.
 * Weights, gradients, the per-layer norms and the policies' state are left as they were, except
 * that V is brought up to date for the current step as for asymbp_net_feedback_diag() (the
 * gradients are saved in a scratch area allocated on the first probe and kept with the net).
 * @param net the net
 * @param diag the caller's array: its elements are diag[0].struct_size bytes apart (the size of
 *     the struct the caller was compiled with: an older, smaller one works), and every element's
 *     struct_size must be set to that same value (::ASYMBP_FEEDBACK_DIAG_INIT)
 * @param count must be asymbp_net_feedback_layer_count()
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, count differs, or an element whose struct_size
 *     differs from diag[0]'s), ::ASYMBP_E_UNSUPPORTED (struct_size), ::ASYMBP_E_STATE (no
 *     backward pass to compare with), ::ASYMBP_E_NOMEM, ::ASYMBP_E_PLUGIN (a policy's refresh
 *     failed)
 * @since 0.1 (the element stride is diag[0].struct_size since 0.2; 0.1 indexed the array with its
 *     own sizeof, so a smaller element was written out of place) */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_feedback_probe(asymbp_net_t *net, asymbp_feedback_diag_t *diag, size_t count);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_FEEDBACK_H */
