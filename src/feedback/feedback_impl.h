/* Private to the library: the feedback registry, policy instances and their persistence. */
#ifndef ASYMBP_FEEDBACK_IMPL_H
#define ASYMBP_FEEDBACK_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "layers/net_hooks.h"
#include "asymbp/feedback.h"
#include "core/core_impl.h"
#include "tensor/tensor_impl.h"

/* One registered policy: the registry head (name, user, built-in flag, users) and the vtable
 * (a checked copy for user policies, a static one for the built-ins).  The public handle
 * asymbp_feedback_policy_t. */
struct asymbp_feedback_policy {
    asymbp__plugin_t base;
    asymbp_feedback_vtable_t vt;        /* vt.name == base.name */
};
typedef struct asymbp_feedback_policy asymbp__fb_entry_t;

/* The feedback-policy kind of the plugin registry (registry.c) and its built-ins (builtins.c). */
extern const asymbp__plugin_kind_t asymbp__fb_kind;
#define ASYMBP__FB_BUILTIN_COUNT 10
extern const asymbp__plugin_t *const asymbp__fb_builtins[ASYMBP__FB_BUILTIN_COUNT];

/* A policy assigned to one weighted layer (asymbp__wlayer_t.fb). */
typedef struct asymbp__fb_inst {
    const asymbp__fb_entry_t *entry;    /* referenced (asymbp__plugin_ref) while the instance lives */
    char *setting;                      /* the setting text as given (owned) */
    const char *options;                /* points into setting: after "name:", or "" */
    void *state;                        /* entry->vt.state_size bytes (NULL when 0) */
    float *buf;                         /* buffer_count * numel floats (NULL when 0) */
    float *V;                           /* numel floats (a direct policy's B); NULL for a symmetric
                                           policy or an inert one */
    size_t numel;                       /* floats of the policy's tensor: W's, or B's for a direct
                                           policy (classes x block_size) */
    int direct;                         /* ASYMBP_FEEDBACK_DIRECT */
    int inert;                          /* a direct policy on the highest weighted layer: no tensor,
                                           no callback ever runs (the layer gets the exact error) */
    float *w_before;                    /* ASYMBP_FEEDBACK_W_BEFORE: W before the optimizer step
                                           (wl->numel floats, not saved) */
    float *scratch;                     /* vt.scratch_size floats (not saved) */
    size_t scratch_floats;
    asymbp_rng_t rng;                   /* own stream (embedded: ctx NULL) */
    uint64_t last_step;                 /* step number of the last refresh */
    int refreshed;                      /* refresh ran at least once (last_step valid) */
} asymbp__fb_inst_t;

/* Find a policy by the name part of a setting (text up to ':' or the end; case-insensitive,
 * aliases "bp" and "fa" included).  ASYMBP_E_NOTFOUND with the known names in the detail. */
asymbp_status_t asymbp__fb_lookup(asymbp_ctx_t *ctx, const char *setting, const asymbp__fb_entry_t **out);
/* Parse the options of a built-in policy without instantiating it (for check_setting). */
asymbp_status_t asymbp__fb_builtin_check(asymbp_ctx_t *ctx, const asymbp__fb_entry_t *e, const char *options);

/* Create an instance of `setting` for the weighted layer wl (which need not belong to a net):
 * allocates everything, runs init with an RNG seeded (seed, stream) and step `steps_done`.  Does
 * not attach it to wl.  *out is NULL for the plain built-in "sym" (no instance needed). */
asymbp_status_t asymbp__fb_inst_create(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, const char *setting,
                                       uint64_t seed, uint64_t steps_done, asymbp__fb_inst_t **out);
/* The same; force_inert 1 makes a direct policy's instance inert whatever wl's block (loading an
 * instance that was created inert on the then highest weighted layer, before a weighted layer
 * was added above it).  Ignored for other policies. */
asymbp_status_t asymbp__fb_inst_create_as(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, const char *setting,
                                          uint64_t seed, uint64_t steps_done, int force_inert, asymbp__fb_inst_t **out);
/* Point wl at inst (NULL: symmetric): wl->fb, wl->V, wl->V_store.  Does not free the old one. */
void asymbp__fb_inst_attach(asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst);
/* fini, drop the reference to the entry and free.  NULL accepted. */
void asymbp__fb_inst_destroy(asymbp_ctx_t *ctx, asymbp__fb_inst_t *inst);
/* Run refresh for step number `step` (1 on the first optimizer step) unless it already ran for
 * that step.  ASYMBP_E_PLUGIN when the callback fails. */
asymbp_status_t asymbp__fb_inst_refresh(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst,
                                        uint64_t step);
/* Run after_update for the step number `step` just completed. */
asymbp_status_t asymbp__fb_inst_after_update(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl,
                                             asymbp__fb_inst_t *inst, uint64_t step);
/* The error a direct instance delivers to the top of wl's block in the backward pass of step
 * number `step`: the policy's deliver callback, or dst = error B (n x classes times classes x
 * block_size). */
asymbp_status_t asymbp__fb_inst_deliver(asymbp_ctx_t *ctx, const asymbp__wlayer_t *wl, asymbp__fb_inst_t *inst,
                                        uint64_t step, const float *error, const int32_t *labels, size_t n, float *dst);

/* Bring the V of a weighted layer of net up to date before reading it (diagnostics, the probe,
 * the V read-out): run the policy's refresh for the step the net is at (asymbp__net_step + 1,
 * the number the next backward's hook uses; a no-op when it already ran for that step).  After
 * a backward pass that is the step of that pass, so nothing changes, except for a layer the lazy
 * hook skipped (the lowest one); after an optimizer step it is the next step, so every layer
 * shows the V the next backward will use, made from the current W - the moment every reader
 * reports (feedback.h).  Training is unchanged: the hook refreshes at most once per step, and
 * nothing moves W between here and the next backward.  ASYMBP_OK for NULL wl or a layer
 * without instance. */
asymbp_status_t asymbp__fb_wlayer_current(asymbp_net_t *net, asymbp__wlayer_t *wl);

/* Make sure the feedback hooks are installed on net (their state holds the probe scratch). */
asymbp_status_t asymbp__fb_net_hooks(asymbp_net_t *net);
/* Probe scratch of at least n bytes (64-byte aligned), kept with the hooks until the net is
 * destroyed.  NULL with the error set. */
void *asymbp__fb_net_scratch(asymbp_net_t *net, size_t n);

/* ---- Persistence (for train/: models and checkpoints) -----------------------------------------
 * asymbp__feedback_write appends one chunk "FDBK" to w (as the instances are: a stale V of a
 * lazily refreshed layer is saved stale, with its bookkeeping).  Payload (little-endian):
 *   u32 format version (1), u32 number of weighted layers, then per weighted layer:
 *   u32 kind (0: plain sym, no instance; 1: an instance), and for an instance:
 *   str setting, u64 numel (of the policy's tensor: W's, a direct B's, 0 when inert), u64 rng state,
 *   u64 rng inc, u64 last_step, u32 refreshed,
 *   u64 state_size + raw state bytes, u64 buffer floats + f32s, u64 V floats + f32s.
 * asymbp__feedback_read takes the chunk area of a file (as asymbp__file_read returns it), finds
 * "FDBK" and re-creates every layer's policy by name from the context's registry (the policies a
 * file names must be registered before loading), runs init (without drawing a seed from the
 * context), then restores the saved state.  No chunk: the net's feedback is left as it is and
 * ASYMBP_OK is returned.  ASYMBP_E_FORMAT for a malformed chunk or a mismatch with the net
 * (layer count, sizes, state sizes), ASYMBP_E_NOTFOUND for a policy not registered.  On failure
 * the net keeps its previous feedback. */
asymbp_status_t asymbp__feedback_write(asymbp_net_t *net, asymbp__wbuf_t *w);
asymbp_status_t asymbp__feedback_read(asymbp_net_t *net, const asymbp__rbuf_t *r);

#endif
