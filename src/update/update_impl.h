/* Private to the library: the update-rule registry and the optimizer's body, and the hooks the
 * trainer (train/) uses to save and restore an optimizer. */
#ifndef ASYMBP_UPDATE_IMPL_H
#define ASYMBP_UPDATE_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "core/core_impl.h"
#include "dist/dist_impl.h"
#include "layers/net_hooks.h"
#include "asymbp/update.h"

#define ASYMBP__HYPER_V1_SIZE (offsetof(asymbp_hyper_params_t, nsc_epsilon) + sizeof(float))

/* One registered rule: the registry head (name, user, built-in flag, users) and the vtable (a
 * checked copy for user rules, static for the built-ins); vt.name == base.name. */
struct asymbp_update_rule {
    asymbp__plugin_t base;
    asymbp_update_rule_vtable_t vt;       /* vt.default_hyper: NULL, a static table (built-ins)
                                             or &hp below (user rules that declare defaults) */
    asymbp_hyper_params_t hp;             /* a user rule's validated copy of its defaults */
};

/* The rule's default hyper-parameters (ASYMBP_HYPER_PARAMS_INIT when it declares none). */
void asymbp__rule_defaults(const asymbp_update_rule_t *rule, asymbp_hyper_params_t *out);
/* Copy a caller's hyper-parameter struct over base (older sizes accepted: the members it lacks
 * keep base's values) and validate it.  ASYMBP_E_UNSUPPORTED (struct_size smaller than version
 * 1), ASYMBP_E_INVALID (a bad value; the detail names it), with "who: " in the detail. */
asymbp_status_t asymbp__hyper_import(asymbp_ctx_t *ctx, const char *who, const asymbp_hyper_params_t *in,
                                     const asymbp_hyper_params_t *base, asymbp_hyper_params_t *out);

/* The update-rule kind of the plugin registry (registry.c) and its built-ins (rules.c). */
extern const asymbp__plugin_kind_t asymbp__update_kind;
#define ASYMBP__UPDATE_BUILTIN_COUNT 7
extern const asymbp__plugin_t *const asymbp__update_builtins[ASYMBP__UPDATE_BUILTIN_COUNT];
/* Canonical name of a Batch Manhattan spelling s[0..len) ("BM+nsc+b" -> "bm:b:nsc",
 * "batch-manhattan" -> "bm"); -1 when s is not one. */
int asymbp__bm_canonical(const char *s, size_t len, char *out, size_t cap);

/* An optimizer over caller-described parameter tensors instead of a net (value/grad pointers,
 * numel, kind, layer_index, name are copied; the arrays are borrowed and must outlive the
 * optimizer).  asymbp_optimizer_step then does not call asymbp__net_step_done.  Used by the
 * tests, and by anything that wants to step raw arrays. */
asymbp_status_t asymbp__optimizer_create_params(asymbp_ctx_t *ctx, const asymbp__param_t *params, size_t count,
                                                const char *rule, const asymbp_hyper_params_t *hp,
                                                asymbp_optimizer_t **out);

/* asymbp_optimizer_step_samples for the trainer, which also knows whether this rank's loss was
 * finite: local_bad 1 counts this rank as diverged in the collective verdict (every rank then
 * returns ASYMBP_E_DIVERGED and nothing is updated).  Without a communicator local_bad must be 0
 * and the counts are unused. */
asymbp_status_t asymbp__optimizer_step_dist(asymbp_optimizer_t *opt, size_t local_samples, size_t global_samples,
                                            int local_bad);

/* ---- Checkpoints ------------------------------------------------------------------------------
 * asymbp__optimizer_write appends the optimizer's payload to w (the caller wraps it in a chunk,
 * tag ASYMBP__CHUNK_OPTIMIZER): format version, rule name, step count, epoch, schedule (kind,
 * gamma, milestones; a callback schedule is recorded as such, not its function), the net-wide
 * hyper-parameters, and per parameter tensor: numel, kind, its hyper-parameters, and its rule
 * state as raw bytes (bit for bit).  Returns ASYMBP_OK or ASYMBP_E_NOMEM (w->failed).
 * asymbp__optimizer_read restores all of it into an optimizer created with the same rule over the
 * same net shape; nothing changes unless the whole payload is valid.  ASYMBP_E_FORMAT (truncated,
 * wrong rule name, parameter count, sizes or kinds: the detail says which), ASYMBP_E_NOMEM.
 * A file recording a callback schedule leaves the optimizer's current schedule in place. */
#define ASYMBP__CHUNK_OPTIMIZER "OPTM"
/* 2 (0.2): the cosine schedule and the warm-up follow the milestones; 1 is still read. */
#define ASYMBP__OPTIMIZER_FORMAT 2u
asymbp_status_t asymbp__optimizer_write(const asymbp_optimizer_t *opt, asymbp__wbuf_t *w);
asymbp_status_t asymbp__optimizer_read(asymbp_optimizer_t *opt, asymbp__rbuf_t *r);
/* The rule name stored in a payload (without consuming r), so a resume can create the right
 * optimizer first.  ASYMBP_E_FORMAT when the payload is malformed. */
asymbp_status_t asymbp__optimizer_peek_rule(asymbp_ctx_t *ctx, const asymbp__rbuf_t *r, char *name, size_t cap);

#endif
