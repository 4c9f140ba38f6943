/** @file
 * @brief Update rules (SGD, Batch Manhattan and its variants, user rules behind a vtable),
 * hyper-parameters, learning-rate schedules, and the optimizer that steps a net. */
#ifndef ASYMBP_UPDATE_H
#define ASYMBP_UPDATE_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/plugin.h"
#include "asymbp/dist.h"
#include "asymbp/net.h"
#ifdef __cplusplus
extern "C" {
#endif

/** @name Hyper-parameters */
/** @{ */

/** Hyper-parameters of an optimizer, net-wide or for a group of parameters.  Caller-filled: start
 * from ::ASYMBP_HYPER_PARAMS_INIT (the library's defaults below) or from a rule's own defaults
 * (asymbp_update_rule_default_hyper()).
 * @since 0.1 */
typedef struct asymbp_hyper_params {
    size_t struct_size;       ///< sizeof as the caller was compiled (INIT)
    float lr;                 ///< base learning rate (> 0 ... finite; 0 freezes); default 0.01
    float momentum;           ///< mu in [0, 1); default 0.9
    int nesterov;             ///< 0/1; default 0
    float weight_decay;       ///< lambda >= 0; default 0
    int decay_biases_and_bn;  /**< 1: weight decay also applies to biases and BN scale/shift;
                                   default 0 (decay only on weights) */
    float nsc_epsilon;        ///< no-sign-change floor (> 0); default 1e-6
} asymbp_hyper_params_t;
/** Initializer of ::asymbp_hyper_params_t with the library's defaults: lr 0.01, momentum 0.9, no
 * Nesterov, no weight decay (and none on biases and BN), no-sign-change floor 1e-6. */
#define ASYMBP_HYPER_PARAMS_INIT { sizeof(asymbp_hyper_params_t), 0.01f, 0.9f, 0, 0.0f, 0, 1e-6f }

/** @} */

/** @name Update-rule plugins
 * A rule is called once per parameter tensor per optimizer step.  The library allocates, for each
 * parameter tensor, numel * state_size bytes of state (64-byte aligned, zero-filled before init)
 * and passes it to every call for that tensor; state_size is therefore bytes PER ELEMENT
 * (momentum: sizeof(float); Adam: 2 * sizeof(float)).  The state is saved in checkpoints as raw
 * bytes and restored bit for bit, so it must not hold pointers. */
/** @{ */

/** Arguments of one step of one parameter tensor, filled by the library (borrowed for the call).
 * Members are only appended; struct_size tells a rule which ones exist.
 * @since 0.1 */
typedef struct asymbp_update_args {
    size_t struct_size;          ///< sizeof as the library was compiled
    float *w;                    ///< the parameter values to update in place (n floats)
    const float *g;              ///< the gradient of the mean batch loss (n floats)
    size_t n;                    ///< number of elements
    float lr;                    ///< learning rate of this step (schedule already applied)
    float momentum;              ///< mu
    int nesterov;                ///< 0/1
    float weight_decay;          ///< lambda; already 0 when decay does not apply to this tensor
    uint64_t step;               ///< number of this optimizer step: 1 on the first
    uint64_t epoch;              ///< the optimizer's current epoch (asymbp_optimizer_set_epoch())
    asymbp_param_kind_t kind;    ///< weight, bias, BN scale or shift
    int layer_index;             ///< owning layer in the net; -1 when not in a net
    const char *name;            ///< parameter name ("dense0.weight")
    float nsc_epsilon;           ///< hyper-parameter of the no-sign-change option
    /* ---- since 0.2: distributed steps (asymbp_optimizer_set_comm) ---- */
    int ranks;                   /**< ranks whose gradients g combines (1 without a communicator).
                                      Since 0.2 (distributed steps, asymbp_optimizer_set_comm()). */
    int grad_is_vote;            /**< 1: g holds the majority sign of the ranks' sign(g) votes, each
                                      element -1, 0 (a tie) or +1 (::ASYMBP_DIST_VOTE); 0: g is the
                                      mean gradient of the (global) batch.  Since 0.2. */
} asymbp_update_args_t;

/** Flag of a rule (vtable member flags): the rule may be given a majority sign vote instead of a
 * gradient (args->grad_is_vote): a sign-based rule, for which sign(g) is all it uses of g.
 * Without the flag an optimizer refuses ::ASYMBP_DIST_VOTE.
 * @since 0.2 */
#define ASYMBP_UPDATE_ACCEPTS_VOTE 0x1u

/** An update-rule vtable.  Fill it starting from ::ASYMBP_UPDATE_RULE_VTABLE_INIT.
 * @since 0.1 */
typedef struct asymbp_update_rule_vtable {
    uint32_t    struct_size;  ///< sizeof as the plugin was compiled; set by the INIT macro
    uint32_t    abi_version;  ///< ::ASYMBP_PLUGIN_ABI_VERSION
    const char *name;         /**< unique in the context, case-insensitively; letters, digits,
                                   '-', '_', '.', at most 63 bytes, no ':' (copied) */
    size_t      state_size;   ///< bytes of state per parameter ELEMENT (0: stateless)
    /** (optional) Prepare the zero-filled state of one parameter tensor; info is borrowed.
     * Called once per tensor when an optimizer is created.  A non-OK return fails the creation
     * with ::ASYMBP_E_PLUGIN. */
    asymbp_status_t (*init)(void *user, void *state, const asymbp_param_info_t *info);
    /** (required) Update args->w in place from args->g and the state.  Must not allocate in the
     * hot path.  A non-OK return makes asymbp_optimizer_step() return ::ASYMBP_E_PLUGIN. */
    asymbp_status_t (*step)(void *user, void *state, const asymbp_update_args_t *args);
    /** (optional) Release what init acquired; called once per tensor when the optimizer is
     * destroyed (only for tensors whose init succeeded). */
    void            (*fini)(void *user, void *state);
    /* ---- end of version 1: append new members below, never reorder ---- */
    /** (optional; NULL: ::ASYMBP_HYPER_PARAMS_INIT) The rule's default hyper-parameters, such as
     * a learning rate suited to it: what asymbp_update_rule_default_hyper() reports and what an
     * optimizer created with hp NULL uses.  Copied and validated at registration (its own
     * struct_size: members it lacks take the library's defaults; an invalid value is
     * ::ASYMBP_E_INVALID).  The built-ins declare sgd: lr 0.01, the bm family: lr 0.0005 (sign
     * steps move every weight by lr), both momentum 0.9.
     * @since 0.2 */
    const asymbp_hyper_params_t *default_hyper;
    /** (optional; 0: none) ASYMBP_UPDATE_* flags (::ASYMBP_UPDATE_ACCEPTS_VOTE).  The built-in
     * Batch Manhattan rules accept a vote, sgd does not.  An unknown flag is refused
     * (::ASYMBP_E_UNSUPPORTED).
     * @since 0.2 */
    uint32_t flags;
} asymbp_update_rule_vtable_t;
/** The smallest struct_size the library accepts: a vtable may end after `step` (fini then reads
 * as NULL).
 * @since 0.1 */
#define ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE \
    (offsetof(asymbp_update_rule_vtable_t, step) + sizeof(asymbp_status_t (*)(void)))
/** Initializer of ::asymbp_update_rule_vtable_t: struct_size and abi_version set, every other
 * member 0 / NULL. */
#define ASYMBP_UPDATE_RULE_VTABLE_INIT \
    { (uint32_t)sizeof(asymbp_update_rule_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, 0, 0, 0, 0, 0, 0, 0 }

/** A registered update rule: a borrowed handle owned by the context (built-ins: by the library),
 * valid until its registration ends. */
typedef struct asymbp_update_rule asymbp_update_rule_t;

/** @} */

/** @name Registry
 * The registry follows the rules every plugin kind shares (docs/plugins.md): built-ins first, in
 * a static table ("sgd", "bm", "bm:b", "bm:c", "bm:nsc", "bm:b:nsc", "bm:c:nsc"), then user rules
 * in registration order; names unique case-insensitively, and every Batch Manhattan spelling
 * (see asymbp_update_rule_find(), "batch-manhattan" included) reserved like a name; queries never
 * allocate. */
/** @{ */

/** Register an update rule in ctx, under vt->name.  The vtable is copied: min(vt->struct_size,
 * sizeof) bytes, the rest zero-filled, so members an older plugin lacks read as NULL/0; the
 * caller's vtable is never written and need not outlive the call.
 * @param ctx the context
 * @param vt the vtable
 * @param user handed to every callback
 * @param user_free (may be NULL) runs exactly once, when the registration ends
 *     (asymbp_update_rule_unregister(), or asymbp_ctx_destroy()); when registration FAILS it is
 *     not called and user stays the caller's
 * @param out (may be NULL) receives the borrowed handle
 * @return ::ASYMBP_OK; ::ASYMBP_E_INVALID (NULL ctx/vt, no step, bad name, name or spelling
 *     already taken - built-ins included); ::ASYMBP_E_UNSUPPORTED (abi_version not
 *     ::ASYMBP_PLUGIN_ABI_VERSION, struct_size smaller than ::ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE,
 *     an unknown flag - since 0.2); ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_update_rule_register(asymbp_ctx_t *ctx, const asymbp_update_rule_vtable_t *vt, void *user,
                            void (*user_free)(void *user), asymbp_update_rule_t **out);
/** End a user rule's registration (its user_free runs now).
 * @param ctx the context
 * @param name the rule's name
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, or a built-in), ::ASYMBP_E_NOTFOUND (no such
 *     rule), ::ASYMBP_E_STATE (an optimizer still uses it)
 * @since 0.1 (a built-in gave ::ASYMBP_E_NOTFOUND before 0.2) */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_update_rule_unregister(asymbp_ctx_t *ctx, const char *name);

/** Look a rule up by name.  Never allocates.
 * @param ctx the context
 * @param name a registered name (case-insensitive), or a Batch Manhattan spelling ("bm", "bm:a",
 *     "bm:b", "bm:c", "bm:nsc", "bm:b:nsc", "bm:c:nsc", options in any order, also "+" as
 *     separator; "batch-manhattan" = "bm"; case-insensitive)
 * @param out receives the borrowed handle
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL argument), ::ASYMBP_E_NOTFOUND (unknown name; the
 *     detail lists the known ones)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_update_rule_find(asymbp_ctx_t *ctx, const char *name, asymbp_update_rule_t **out);
/** Number of registered rules (built-ins included).  Never allocates.
 * @param ctx the context
 * @return the count; 0 when ctx is NULL
 * @since 0.1 (the context became const in 0.2) */
ASYMBP_API size_t asymbp_update_rule_count(const asymbp_ctx_t *ctx);
/** The i-th registered rule: built-ins first, then user rules in registration order.  Never
 * allocates.
 * @param ctx the context
 * @param i index, 0 .. asymbp_update_rule_count() - 1
 * @return the borrowed handle; NULL when out of range
 * @since 0.1 (the context became const in 0.2) */
ASYMBP_API asymbp_update_rule_t *asymbp_update_rule_at(const asymbp_ctx_t *ctx, size_t i);
/** The rule's registered name.
 * @param rule the rule
 * @return borrowed; "" for NULL
 * @since 0.1 */
ASYMBP_API const char *asymbp_update_rule_name(const asymbp_update_rule_t *rule);
/** The rule's default hyper-parameters (vtable member default_hyper; ::ASYMBP_HYPER_PARAMS_INIT
 * for a rule that declares none): a starting point to change (hp.weight_decay, for example)
 * before asymbp_optimizer_create().
 * @param rule the rule
 * @param hp caller-filled struct_size (>= version 1); min(struct_size, sizeof) bytes are written
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL), ::ASYMBP_E_UNSUPPORTED (struct_size too small)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_update_rule_default_hyper(const asymbp_update_rule_t *rule, asymbp_hyper_params_t *hp);

/** @} */

/** @name Hyper-parameter groups */
/** @{ */

/** Groups for asymbp_optimizer_set_group_hyper().
 * @since 0.1 */
typedef enum asymbp_param_group {
    ASYMBP_GROUP_WEIGHTS = 0,  /**< ::ASYMBP_PARAM_WEIGHT */
    ASYMBP_GROUP_BIASES = 1,   /**< ::ASYMBP_PARAM_BIAS */
    ASYMBP_GROUP_BN = 2        /**< ::ASYMBP_PARAM_BN_SCALE and ::ASYMBP_PARAM_BN_SHIFT */
} asymbp_param_group_t;

/** @} */

/** @name Optimizer */
/** @{ */

/** An optimizer (opaque handle): created by asymbp_optimizer_create(), destroyed by
 * asymbp_optimizer_destroy(). */
typedef struct asymbp_optimizer asymbp_optimizer_t;

/** Learning-rate schedule callback: returns the factor every base learning rate is multiplied by
 * at this point (1 = unchanged).  epoch: the optimizer's epoch; step: the number of the step about
 * to run (1 on the first).  Called once per asymbp_optimizer_step() and by
 * asymbp_optimizer_get_lr(); a negative or non-finite factor makes the step fail with
 * ::ASYMBP_E_PLUGIN.
 * @since 0.1 */
typedef double (*asymbp_lr_schedule_fn)(void *user, uint64_t epoch, uint64_t step);

/** Create an optimizer stepping every learnable parameter of net with the rule called `rule`.
 * The per-parameter state is allocated here, once; the rule's init runs for every parameter
 * tensor.
 * @param net borrowed, must outlive the optimizer
 * @param rule the rule's name (see asymbp_update_rule_find(): "sgd", "bm", "bm:b", "bm:c",
 *     "bm:nsc", ..., or a registered name)
 * @param hp copied (NULL = the rule's defaults, asymbp_update_rule_default_hyper() - since 0.2;
 *     0.1 used ::ASYMBP_HYPER_PARAMS_INIT for every rule; a struct_size smaller than version 1 is
 *     refused, a larger one accepted; members an older struct lacks take the rule's defaults)
 * @param out receives the optimizer, owned by the caller (asymbp_optimizer_destroy()), NULL on
 *     failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL net/rule/out, bad hyper-parameter: the detail
 *     names it), ::ASYMBP_E_UNSUPPORTED (hp struct_size), ::ASYMBP_E_NOTFOUND (unknown rule),
 *     ::ASYMBP_E_PLUGIN (the rule's init failed), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_create(asymbp_net_t *net, const char *rule, const asymbp_hyper_params_t *hp,
                        asymbp_optimizer_t **out);
/** Destroy an optimizer: the rule's fini runs for every tensor, the state is freed.
 * @param opt the optimizer (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_optimizer_destroy(asymbp_optimizer_t *opt);

/** One optimizer step: every parameter tensor of the net is updated from its gradient (the one
 * left by the last asymbp_net_backward()), then the net is told the step is done (a learning
 * feedback policy runs its after-update hook there).  With a communicator (since 0.2:
 * asymbp_optimizer_set_comm()) the step is collective and the ranks' gradients are combined
 * first, each rank's with the same weight (see asymbp_optimizer_step_samples()).  No allocation.
 * @param opt the optimizer
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL), ::ASYMBP_E_STATE (the net's parameters changed
 *     size since creation), ::ASYMBP_E_PLUGIN (the rule or the schedule callback failed;
 *     parameters already stepped stay stepped and the step count is not advanced), or what the
 *     after-update hook returned
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_optimizer_step(asymbp_optimizer_t *opt);

/** Replace the hyper-parameters of every parameter (net-wide).  Later calls (of this function,
 * asymbp_optimizer_set_group_hyper() and asymbp_optimizer_set_layer_hyper()) override earlier
 * ones for the parameters they cover; weight decay reaches a bias or BN parameter only when the
 * hyper-parameters it ends up with have decay_biases_and_bn = 1.
 * @param opt the optimizer
 * @param hp copied
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, bad value), ::ASYMBP_E_UNSUPPORTED (struct_size)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_hyper(asymbp_optimizer_t *opt, const asymbp_hyper_params_t *hp);
/** Replace the hyper-parameters of one group of parameters (overriding, as
 * asymbp_optimizer_set_hyper() describes).
 * @param opt the optimizer
 * @param group the group
 * @param hp copied
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, bad value, unknown group),
 *     ::ASYMBP_E_UNSUPPORTED (struct_size)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_group_hyper(asymbp_optimizer_t *opt, asymbp_param_group_t group,
                                 const asymbp_hyper_params_t *hp);
/** Replace the hyper-parameters of every parameter of one layer (overriding, as
 * asymbp_optimizer_set_hyper() describes).
 * @param opt the optimizer
 * @param layer_index the layer's index, as in asymbp_net_layer_kind()
 * @param hp copied
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, bad value, no parameter in that layer),
 *     ::ASYMBP_E_UNSUPPORTED (struct_size)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_layer_hyper(asymbp_optimizer_t *opt, int layer_index, const asymbp_hyper_params_t *hp);
/** The net-wide hyper-parameters (the last asymbp_optimizer_set_hyper(), or those of create).
 * @param opt the optimizer
 * @param hp caller-filled struct_size (>= version 1); min(struct_size, sizeof) bytes are written
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL), ::ASYMBP_E_UNSUPPORTED (struct_size too small)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_get_hyper(const asymbp_optimizer_t *opt, asymbp_hyper_params_t *hp);

/** Constant schedule of the learning-rate factor: factor 1 (the default).
 * @param opt the optimizer
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_optimizer_set_schedule_constant(asymbp_optimizer_t *opt);
/** Step schedule of the learning-rate factor: factor = gamma^k, k = number of milestones <= the
 * current epoch (epochs count from 0; milestones {30, 60} with gamma 0.1 give 1 for epochs 0-29,
 * 0.1 for 30-59, 0.01 after).
 * @param opt the optimizer
 * @param milestones copied (count may be 0)
 * @param count number of milestones
 * @param gamma in (0, 1] is typical, any finite value >= 0 is accepted
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_schedule_step(asymbp_optimizer_t *opt, const uint64_t *milestones, size_t count, float gamma);
/** Schedule of the learning-rate factor given by a user callback.  A callback schedule is not
 * saved in checkpoints: set it again after a resume.
 * @param opt the optimizer
 * @param fn the callback
 * @param user handed to fn; borrowed, must outlive the optimizer
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_schedule_fn(asymbp_optimizer_t *opt, asymbp_lr_schedule_fn fn, void *user);
/** Cosine schedule (Loshchilov and Hutter): factor = f_min + (1 - f_min) (1 + cos(pi t / steps)) / 2
 * with t = step - 1, so the first step has factor 1 and every step after `steps` has f_min.
 * Replaces the current schedule (the warm-up stays).  Saved in checkpoints.
 * @param opt the optimizer
 * @param steps >= 1
 * @param min_factor f_min, in [0, 1]
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_schedule_cosine(asymbp_optimizer_t *opt, uint64_t steps, float min_factor);
/** Linear warm-up, multiplying whatever schedule is set: step s < steps has its factor scaled by
 * s / steps.  Saved in checkpoints.
 * @param opt the optimizer
 * @param steps the warm-up's length (0 or 1: no warm-up)
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_optimizer_set_warmup(asymbp_optimizer_t *opt, uint64_t steps);
/** Set the epoch the schedule sees (the trainer sets it at the start of every epoch).
 * @param opt the optimizer
 * @param epoch the epoch
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_optimizer_set_epoch(asymbp_optimizer_t *opt, uint64_t epoch);
/** The epoch the schedule sees (asymbp_optimizer_set_epoch()).
 * @param opt the optimizer
 * @return the epoch
 * @since 0.1 */
ASYMBP_API uint64_t asymbp_optimizer_get_epoch(const asymbp_optimizer_t *opt);
/** The net-wide learning rate the next step uses: base lr x schedule factor.
 * @param opt the optimizer
 * @return the learning rate; 0 for NULL, or when a callback schedule returns an invalid factor
 * @since 0.1 */
ASYMBP_API float asymbp_optimizer_get_lr(const asymbp_optimizer_t *opt);
/** Steps completed by this optimizer (restored by a checkpoint resume).
 * @param opt the optimizer
 * @return the step count
 * @since 0.1 */
ASYMBP_API uint64_t asymbp_optimizer_step_count(const asymbp_optimizer_t *opt);
/** The rule's registered name ("bm:b:nsc" for "bm:nsc:b").
 * @param opt the optimizer
 * @return borrowed; "" for NULL
 * @since 0.1 */
ASYMBP_API const char *asymbp_optimizer_rule_name(const asymbp_optimizer_t *opt);
/** Number of parameter tensors the optimizer steps.
 * @param opt the optimizer
 * @return the count
 * @since 0.1 */
ASYMBP_API size_t asymbp_optimizer_param_count(const asymbp_optimizer_t *opt);

/** @} */

/** @name Distributed steps
 * docs/distributed.md.  With a communicator every optimizer step is collective: each rank
 * computes the gradients of its own share of the global batch, and the step combines them over
 * the ranks before the rule runs, so every rank applies the same update and the ranks' parameters
 * stay equal (they must start equal: same seed, or a broadcast).  The feedback state needs no
 * communication: every rank draws the same V from the same seeds and steps.
 * - ::ASYMBP_DIST_EXACT: the rule sees sum_r (n_r / N) g_r, the global batch's mean gradient
 *   (n_r: the rank's samples, N: the global batch); one allreduce of (parameters + 1) floats.
 * - ::ASYMBP_DIST_VOTE: rank r sends sign(g_r) (0 when it has no sample), the rule sees
 *   sign(sum_r sign(g_r)) with args->grad_is_vote = 1; one allreduce of (parameters + 1) 8-bit
 *   integers (16-bit beyond 127 ranks).  Only for rules with ::ASYMBP_UPDATE_ACCEPTS_VOTE.
 *
 * The extra element carries a flag: when a rank's gradient holds a NaN or Inf, every rank's step
 * returns ::ASYMBP_E_DIVERGED and nothing is updated.  After a step each rank's gradient buffers
 * hold what the rule saw (the summed gradient, or the voted signs). */
/** @{ */

/** Make every following step collective over comm, combining gradients as mode says.  Allocates
 * the step's communication buffer once, here.
 * @param opt the optimizer
 * @param comm borrowed: registered in the optimizer's context; it cannot be unregistered while
 *     set; NULL returns to single-process steps (the buffer is freed)
 * @param mode how the gradients are combined
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL opt, unknown mode), ::ASYMBP_E_UNSUPPORTED (vote
 *     with a rule that does not accept one: the detail says so), ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_set_comm(asymbp_optimizer_t *opt, const asymbp_comm_t *comm, asymbp_dist_mode_t mode);
/** One step for a rank whose gradients come from local_samples of a global batch of
 * global_samples: its gradient is weighted by local / global.  asymbp_optimizer_step() with a
 * communicator is this with equal weights (1 / ranks).  Without a communicator the counts are
 * checked and otherwise unused.
 * @param opt the optimizer
 * @param local_samples this rank's samples; 0: the rank takes part without a gradient (its
 *     buffers are not read; it abstains from the vote)
 * @param global_samples the sum over the ranks
 * @return as asymbp_optimizer_step(), plus ::ASYMBP_E_INVALID (global_samples 0 or below
 *     local_samples), ::ASYMBP_E_DIVERGED (a gradient is not finite on some rank; nothing
 *     changed) and ::ASYMBP_E_COMM (the communicator failed: the ranks may now disagree, stop the
 *     run)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_optimizer_step_samples(asymbp_optimizer_t *opt, size_t local_samples, size_t global_samples);
/** Payload bytes this rank hands to the communicator in one step.
 * @param opt the optimizer
 * @return 4 (parameters + 1) in exact mode, 1, 2 or 4 times (parameters + 1) in vote mode; 0
 *     without a communicator
 * @since 0.2 */
ASYMBP_API size_t asymbp_optimizer_comm_bytes(const asymbp_optimizer_t *opt);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_UPDATE_H */
