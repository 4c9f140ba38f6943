/* The optimizer: per-parameter hyper-parameters and rule state allocated once, a learning-rate
 * schedule, one call of the rule per parameter tensor per step, and checkpoint save/restore. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "update/update_impl.h"

typedef struct opt_param {
    asymbp__param_t p;             /* value/grad are refreshed from the net at every step */
    asymbp_hyper_params_t hp;
    void *state;                   /* p.numel * rule state_size bytes (NULL when 0) */
    size_t state_bytes;
    int inited;                    /* the rule's init succeeded: fini runs at destroy */
} opt_param_t;

enum { SCHED_CONSTANT = 0, SCHED_STEP = 1, SCHED_FN = 2, SCHED_COSINE = 3 };

struct asymbp_optimizer {
    asymbp_ctx_t *ctx;
    asymbp_net_t *net;             /* NULL for an optimizer over raw parameters */
    asymbp_update_rule_t *rule;
    opt_param_t *params;
    size_t nparams;
    asymbp_hyper_params_t hp;      /* net-wide */
    uint64_t steps, epoch;
    int sched;
    float gamma;
    uint64_t *milestones;
    size_t nmilestones;
    asymbp_lr_schedule_fn fn;
    void *fn_user;
    uint64_t cos_steps;            /* cosine: steps over which the factor falls to cos_floor */
    float cos_floor;
    uint64_t warmup;               /* linear warm-up over the first `warmup` steps (0: none) */
    /* distributed steps (asymbp_optimizer_set_comm): NULL comm = single process */
    const asymbp_comm_t *comm;
    asymbp_dist_mode_t mode;
    asymbp_comm_int_t vote_type;   /* integer type of the votes (vote mode) */
    size_t comm_count;             /* parameter elements of every tensor, + 1 for the divergence flag */
    void *comm_buf;                /* comm_count floats (exact) or integers of vote_type (vote) */
};

/* ---- hyper-parameters ------------------------------------------------------------------------ */

static asymbp_status_t hp_validate(asymbp_ctx_t *ctx, asymbp_status_t code, const char *who,
                                   const asymbp_hyper_params_t *hp)
{
    if (!isfinite(hp->lr) || hp->lr < 0.0f)
        return asymbp__error(ctx, code, "%s: learning rate %g must be finite and >= 0", who, (double)hp->lr);
    if (!isfinite(hp->momentum) || hp->momentum < 0.0f || hp->momentum >= 1.0f)
        return asymbp__error(ctx, code, "%s: momentum %g must be in [0, 1)", who, (double)hp->momentum);
    if (!isfinite(hp->weight_decay) || hp->weight_decay < 0.0f)
        return asymbp__error(ctx, code, "%s: weight decay %g must be finite and >= 0", who, (double)hp->weight_decay);
    if (!isfinite(hp->nsc_epsilon) || hp->nsc_epsilon <= 0.0f)
        return asymbp__error(ctx, code, "%s: nsc_epsilon %g must be finite and > 0", who, (double)hp->nsc_epsilon);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__hyper_import(asymbp_ctx_t *ctx, const char *who, const asymbp_hyper_params_t *in,
                                     const asymbp_hyper_params_t *base, asymbp_hyper_params_t *out)
{
    asymbp_hyper_params_t d = *base;
    asymbp_status_t st;
    if (in->struct_size < ASYMBP__HYPER_V1_SIZE)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "%s: hyper-parameter struct_size %zu is smaller than version 1 (%zu)",
                             who, in->struct_size, (size_t)ASYMBP__HYPER_V1_SIZE);
    memcpy(&d, in, in->struct_size < sizeof d ? in->struct_size : sizeof d);
    d.struct_size = sizeof d;
    d.nesterov = d.nesterov != 0;
    d.decay_biases_and_bn = d.decay_biases_and_bn != 0;
    st = hp_validate(ctx, ASYMBP_E_INVALID, who, &d);
    if (st != ASYMBP_OK) return st;
    *out = d;
    return ASYMBP_OK;
}

/* A caller's struct over the library's defaults (the setters: hp is never NULL there). */
static asymbp_status_t hp_import(asymbp_ctx_t *ctx, const char *who, const asymbp_hyper_params_t *in,
                                 asymbp_hyper_params_t *out)
{
    const asymbp_hyper_params_t d = ASYMBP_HYPER_PARAMS_INIT;
    return asymbp__hyper_import(ctx, who, in, &d, out);
}

void asymbp__rule_defaults(const asymbp_update_rule_t *rule, asymbp_hyper_params_t *out)
{
    const asymbp_hyper_params_t d = ASYMBP_HYPER_PARAMS_INIT;
    *out = rule->vt.default_hyper ? *rule->vt.default_hyper : d;
    out->struct_size = sizeof *out;
}

asymbp_status_t asymbp_update_rule_default_hyper(const asymbp_update_rule_t *rule, asymbp_hyper_params_t *hp)
{
    asymbp_hyper_params_t d;
    size_t n;
    if (!rule || !hp) return ASYMBP_E_INVALID;
    if (hp->struct_size < ASYMBP__HYPER_V1_SIZE) return ASYMBP_E_UNSUPPORTED;
    asymbp__rule_defaults(rule, &d);
    n = hp->struct_size < sizeof d ? hp->struct_size : sizeof d;
    d.struct_size = hp->struct_size;
    memcpy(hp, &d, n);
    return ASYMBP_OK;
}

/* ---- create / destroy ------------------------------------------------------------------------ */

void asymbp_optimizer_destroy(asymbp_optimizer_t *opt)
{
    asymbp_ctx_t *ctx;
    size_t i;
    if (!opt) return;
    ctx = opt->ctx;
    for (i = 0; i < opt->nparams; i++) {
        opt_param_t *q = &opt->params[i];
        if (q->inited && opt->rule->vt.fini) opt->rule->vt.fini(opt->rule->base.user, q->state);
        asymbp__free(ctx, q->state);
    }
    asymbp__free(ctx, opt->params);
    asymbp__free(ctx, opt->milestones);
    asymbp__free(ctx, opt->comm_buf);
    if (opt->comm) asymbp__plugin_unref(&opt->comm->base);
    asymbp__plugin_unref(&opt->rule->base);
    asymbp__free(ctx, opt);
}

/* Fill shape and fans from the weighted layer that owns this tensor, when there is one. */
static void param_info(asymbp_optimizer_t *opt, const asymbp__param_t *p, asymbp_param_info_t *info)
{
    size_t i, nw;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    info->name = p->name ? p->name : "";
    info->kind = (asymbp_param_kind_t)p->kind;
    info->layer_index = p->layer_index;
    info->numel = p->numel;
    info->ndim = 1;
    info->shape[0] = (int64_t)p->numel;
    info->value = p->value;
    if (!opt->net || p->kind != ASYMBP__PARAM_WEIGHT) return;
    nw = asymbp__net_wlayer_count(opt->net);
    for (i = 0; i < nw; i++) {
        const asymbp__wlayer_t *wl = asymbp__net_wlayer_at(opt->net, i);
        if (wl && wl->W == p->value && wl->numel == p->numel) {
            int d;
            info->ndim = wl->ndim;
            for (d = 0; d < wl->ndim && d < 4; d++) info->shape[d] = wl->shape[d];
            info->fan_in = wl->fan_in;
            info->fan_out = wl->fan_out;
            return;
        }
    }
}

static asymbp_status_t create_common(asymbp_ctx_t *ctx, asymbp_net_t *net, const asymbp__param_t *raw, size_t count,
                                     const char *rule_name, const asymbp_hyper_params_t *hp_in, asymbp_optimizer_t **out)
{
    asymbp_optimizer_t *opt;
    asymbp_update_rule_t *rule = NULL;
    asymbp_hyper_params_t hp;
    asymbp_status_t st;
    size_t i;
    st = asymbp_update_rule_find(ctx, rule_name, &rule);
    if (st != ASYMBP_OK) return st;
    /* NULL: the rule's own defaults; members an older caller struct lacks: the rule's too */
    asymbp__rule_defaults(rule, &hp);
    if (hp_in && (st = asymbp__hyper_import(ctx, "optimizer_create", hp_in, &hp, &hp)) != ASYMBP_OK) return st;
    opt = asymbp__calloc(ctx, 1, sizeof *opt);
    if (!opt) return asymbp__error(ctx, ASYMBP_E_NOMEM, "optimizer_create: out of memory");
    opt->ctx = ctx;
    opt->net = net;
    opt->rule = rule;
    asymbp__plugin_ref(&rule->base);
    opt->hp = hp;
    opt->gamma = 1.0f;
    if (count) {
        opt->params = asymbp__calloc(ctx, count, sizeof *opt->params);
        if (!opt->params) {
            asymbp_optimizer_destroy(opt);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "optimizer_create: out of memory for %zu parameters", count);
        }
    }
    opt->nparams = count;
    for (i = 0; i < count; i++) {
        opt_param_t *q = &opt->params[i];
        const asymbp__param_t *p = net ? asymbp__net_param_at(net, i) : &raw[i];
        if (!p) {
            asymbp_optimizer_destroy(opt);
            return asymbp__error(ctx, ASYMBP_E_STATE, "optimizer_create: the net has no parameter %zu", i);
        }
        q->p = *p;
        q->hp = hp;
        if (asymbp__mul_size(p->numel, rule->vt.state_size, &q->state_bytes) != 0) {
            asymbp_optimizer_destroy(opt);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "optimizer_create: state of parameter '%s' overflows",
                                 p->name ? p->name : "?");
        }
        if (q->state_bytes) {
            q->state = asymbp__calloc(ctx, 1, q->state_bytes);
            if (!q->state) {
                st = asymbp__error(ctx, ASYMBP_E_NOMEM, "optimizer_create: out of memory for the state of '%s' (%zu bytes)",
                                   p->name ? p->name : "?", q->state_bytes);
                asymbp_optimizer_destroy(opt);
                return st;
            }
        }
    }
    for (i = 0; rule->vt.init && i < count; i++) {
        opt_param_t *q = &opt->params[i];
        asymbp_param_info_t info;
        param_info(opt, &q->p, &info);
        st = rule->vt.init(rule->base.user, q->state, &info);
        if (st != ASYMBP_OK) {
            asymbp_optimizer_destroy(opt);
            return asymbp__error(ctx, ASYMBP_E_PLUGIN, "optimizer_create: init of update rule '%s' failed on parameter '%s' (%s)",
                                 rule->base.name, info.name, asymbp_status_name(st));
        }
        q->inited = 1;
    }
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "optimizer: rule '%s' over %zu parameter tensors, lr %g, momentum %g%s, weight decay %g",
                rule->base.name, count, (double)hp.lr, (double)hp.momentum, hp.nesterov ? " (Nesterov)" : "",
                (double)hp.weight_decay);
    *out = opt;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_create(asymbp_net_t *net, const char *rule, const asymbp_hyper_params_t *hp,
                                        asymbp_optimizer_t **out)
{
    asymbp_ctx_t *ctx;
    if (out) *out = NULL;
    if (!net) return ASYMBP_E_INVALID;
    ctx = asymbp__net_ctx(net);
    ASYMBP_CHECK_NULL(ctx, rule, "rule");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    return create_common(ctx, net, NULL, asymbp__net_param_count(net), rule, hp, out);
}

asymbp_status_t asymbp__optimizer_create_params(asymbp_ctx_t *ctx, const asymbp__param_t *params, size_t count,
                                                const char *rule, const asymbp_hyper_params_t *hp,
                                                asymbp_optimizer_t **out)
{
    size_t i;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, rule, "rule");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    if (count) ASYMBP_CHECK_NULL(ctx, params, "params");
    for (i = 0; i < count; i++)
        if (!params[i].value || !params[i].grad || params[i].numel == 0)
            return asymbp__error(ctx, ASYMBP_E_INVALID, "optimizer_create: parameter %zu has no values, gradient or elements", i);
    return create_common(ctx, NULL, params, count, rule, hp, out);
}

/* ---- schedule -------------------------------------------------------------------------------- */

static double base_factor(const asymbp_optimizer_t *opt, uint64_t stepno)
{
    double f = 1.0;
    size_t i;
    switch (opt->sched) {
    case SCHED_STEP:
        for (i = 0; i < opt->nmilestones; i++)
            if (opt->milestones[i] <= opt->epoch) f *= (double)opt->gamma;
        return f;
    case SCHED_FN:
        return opt->fn(opt->fn_user, opt->epoch, stepno);
    case SCHED_COSINE: {
        /* step 1 has factor 1; step cos_steps + 1 and later have the floor */
        double t = (double)(stepno > opt->cos_steps ? opt->cos_steps : stepno - 1) / (double)opt->cos_steps;
        return (double)opt->cos_floor + (1.0 - (double)opt->cos_floor) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    }
    default:
        return 1.0;
    }
}

/* The base schedule times the warm-up ramp (stepno / warmup for the first warmup steps). */
static double sched_factor(const asymbp_optimizer_t *opt, uint64_t stepno)
{
    double f = base_factor(opt, stepno);
    if (opt->warmup > 0 && stepno < opt->warmup) f *= (double)stepno / (double)opt->warmup;
    return f;
}

static void sched_clear(asymbp_optimizer_t *opt)
{
    asymbp__free(opt->ctx, opt->milestones);
    opt->milestones = NULL;
    opt->nmilestones = 0;
    opt->fn = NULL;
    opt->fn_user = NULL;
    opt->gamma = 1.0f;
    opt->cos_steps = 0;
    opt->cos_floor = 0.0f;
    opt->sched = SCHED_CONSTANT;
}

asymbp_status_t asymbp_optimizer_set_schedule_constant(asymbp_optimizer_t *opt)
{
    if (!opt) return ASYMBP_E_INVALID;
    sched_clear(opt);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_schedule_step(asymbp_optimizer_t *opt, const uint64_t *milestones, size_t count,
                                                   float gamma)
{
    uint64_t *ms = NULL;
    if (!opt) return ASYMBP_E_INVALID;
    if (count) ASYMBP_CHECK_NULL(opt->ctx, milestones, "milestones");
    if (!isfinite(gamma) || gamma < 0.0f)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_schedule_step: gamma %g must be finite and >= 0",
                             (double)gamma);
    if (count) {
        ms = asymbp__calloc(opt->ctx, count, sizeof *ms);
        if (!ms) return asymbp__error(opt->ctx, ASYMBP_E_NOMEM, "optimizer_set_schedule_step: out of memory");
        memcpy(ms, milestones, count * sizeof *ms);
    }
    sched_clear(opt);
    opt->milestones = ms;
    opt->nmilestones = count;
    opt->gamma = gamma;
    opt->sched = SCHED_STEP;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_schedule_fn(asymbp_optimizer_t *opt, asymbp_lr_schedule_fn fn, void *user)
{
    if (!opt) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(opt->ctx, fn, "schedule function");
    sched_clear(opt);
    opt->fn = fn;
    opt->fn_user = user;
    opt->sched = SCHED_FN;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_schedule_cosine(asymbp_optimizer_t *opt, uint64_t steps, float min_factor)
{
    if (!opt) return ASYMBP_E_INVALID;
    if (steps < 1)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_schedule_cosine: the schedule needs at least 1 step");
    if (!(min_factor >= 0.0f && min_factor <= 1.0f))
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_schedule_cosine: min_factor %g must be in [0, 1]",
                             (double)min_factor);
    sched_clear(opt);
    opt->sched = SCHED_COSINE;
    opt->cos_steps = steps;
    opt->cos_floor = min_factor;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_warmup(asymbp_optimizer_t *opt, uint64_t steps)
{
    if (!opt) return ASYMBP_E_INVALID;
    opt->warmup = steps;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_epoch(asymbp_optimizer_t *opt, uint64_t epoch)
{
    if (!opt) return ASYMBP_E_INVALID;
    opt->epoch = epoch;
    return ASYMBP_OK;
}

uint64_t asymbp_optimizer_get_epoch(const asymbp_optimizer_t *opt) { return opt ? opt->epoch : 0; }

float asymbp_optimizer_get_lr(const asymbp_optimizer_t *opt)
{
    double f;
    if (!opt) return 0.0f;
    f = sched_factor(opt, opt->steps + 1);
    if (!isfinite(f) || f < 0.0) return 0.0f;
    return (float)((double)opt->hp.lr * f);
}

uint64_t asymbp_optimizer_step_count(const asymbp_optimizer_t *opt) { return opt ? opt->steps : 0; }
const char *asymbp_optimizer_rule_name(const asymbp_optimizer_t *opt) { return opt ? opt->rule->base.name : ""; }
size_t asymbp_optimizer_param_count(const asymbp_optimizer_t *opt) { return opt ? opt->nparams : 0; }

/* ---- hyper-parameter setters ----------------------------------------------------------------- */

asymbp_status_t asymbp_optimizer_set_hyper(asymbp_optimizer_t *opt, const asymbp_hyper_params_t *hp_in)
{
    asymbp_hyper_params_t hp;
    asymbp_status_t st;
    size_t i;
    if (!opt) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(opt->ctx, hp_in, "hyper-parameters");
    st = hp_import(opt->ctx, "optimizer_set_hyper", hp_in, &hp);
    if (st != ASYMBP_OK) return st;
    opt->hp = hp;
    for (i = 0; i < opt->nparams; i++) opt->params[i].hp = hp;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_group_hyper(asymbp_optimizer_t *opt, asymbp_param_group_t group,
                                                 const asymbp_hyper_params_t *hp_in)
{
    asymbp_hyper_params_t hp;
    asymbp_status_t st;
    size_t i;
    if (!opt) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(opt->ctx, hp_in, "hyper-parameters");
    if ((int)group < (int)ASYMBP_GROUP_WEIGHTS || (int)group > (int)ASYMBP_GROUP_BN)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_group_hyper: unknown group %d", (int)group);
    st = hp_import(opt->ctx, "optimizer_set_group_hyper", hp_in, &hp);
    if (st != ASYMBP_OK) return st;
    for (i = 0; i < opt->nparams; i++) {
        asymbp__param_kind_t k = opt->params[i].p.kind;
        int match = group == ASYMBP_GROUP_WEIGHTS ? k == ASYMBP__PARAM_WEIGHT
                  : group == ASYMBP_GROUP_BIASES ? k == ASYMBP__PARAM_BIAS
                  : (k == ASYMBP__PARAM_BN_SCALE || k == ASYMBP__PARAM_BN_SHIFT);
        if (match) opt->params[i].hp = hp;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_set_layer_hyper(asymbp_optimizer_t *opt, int layer_index,
                                                 const asymbp_hyper_params_t *hp_in)
{
    asymbp_hyper_params_t hp;
    asymbp_status_t st;
    size_t i, hits = 0;
    if (!opt) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(opt->ctx, hp_in, "hyper-parameters");
    st = hp_import(opt->ctx, "optimizer_set_layer_hyper", hp_in, &hp);
    if (st != ASYMBP_OK) return st;
    for (i = 0; i < opt->nparams; i++) hits += opt->params[i].p.layer_index == layer_index;
    if (!hits)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_layer_hyper: layer %d has no learnable parameter",
                             layer_index);
    for (i = 0; i < opt->nparams; i++)
        if (opt->params[i].p.layer_index == layer_index) opt->params[i].hp = hp;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_get_hyper(const asymbp_optimizer_t *opt, asymbp_hyper_params_t *hp)
{
    size_t n, size;
    if (!opt || !hp) return ASYMBP_E_INVALID;
    if (hp->struct_size < ASYMBP__HYPER_V1_SIZE)
        return asymbp__error(opt->ctx, ASYMBP_E_UNSUPPORTED, "optimizer_get_hyper: struct_size %zu is smaller than version 1 (%zu)",
                             hp->struct_size, (size_t)ASYMBP__HYPER_V1_SIZE);
    size = hp->struct_size;
    n = size < sizeof *hp ? size : sizeof *hp;
    memcpy(hp, &opt->hp, n);
    hp->struct_size = size;
    return ASYMBP_OK;
}

/* ---- step ------------------------------------------------------------------------------------ */

/* One optimizer step over the context's threads.  The built-in rules are elementwise, so each
 * tensor is cut into the row blocks its layer owns on each thread (asymbp__param_t.rows), and
 * thread u updates rows [rows u / U, rows (u+1) / U) of every tensor: the values and gradients it
 * touches are the ones the same thread wrote in backward.  Bits are the same for any split.  A
 * user rule may look at the whole tensor, so it runs once per tensor on the calling thread. */
typedef struct step_job {
    asymbp_optimizer_t *opt;
    double f;
    uint64_t stepno;
    int ranks, vote;
    size_t units;
    size_t failed;                 /* 1 + index of the first parameter whose rule failed (atomic) */
    asymbp_status_t st;
} step_job_t;

static asymbp_status_t step_param(const step_job_t *j, size_t i, size_t e0, size_t e1)
{
    const asymbp_optimizer_t *opt = j->opt;
    const asymbp_update_rule_t *rule = opt->rule;
    const opt_param_t *q = &opt->params[i];
    const asymbp_hyper_params_t *hp = &q->hp;
    asymbp_update_args_t args;
    memset(&args, 0, sizeof args);
    args.struct_size = sizeof args;
    args.step = j->stepno;
    args.epoch = opt->epoch;
    args.w = q->p.value + e0;
    args.g = q->p.grad + e0;
    args.n = e1 - e0;
    args.lr = (float)((double)hp->lr * j->f);
    args.momentum = hp->momentum;
    args.nesterov = hp->nesterov;
    args.weight_decay = (q->p.kind == ASYMBP__PARAM_WEIGHT || hp->decay_biases_and_bn) ? hp->weight_decay : 0.0f;
    args.kind = (asymbp_param_kind_t)q->p.kind;
    args.layer_index = q->p.layer_index;
    args.name = q->p.name ? q->p.name : "";
    args.nsc_epsilon = hp->nsc_epsilon;
    args.ranks = j->ranks;
    args.grad_is_vote = j->vote;
    return rule->vt.step(rule->base.user, q->state ? (char *)q->state + e0 * rule->vt.state_size : NULL, &args);
}

static void step_units(void *arg, size_t u0, size_t u1, int t)
{
    step_job_t *j = arg;
    const asymbp_optimizer_t *opt = j->opt;
    (void)t;
    for (size_t u = u0; u < u1; u++)
        for (size_t i = 0; i < opt->nparams && !__atomic_load_n(&j->failed, __ATOMIC_ACQUIRE); i++) {
            const opt_param_t *q = &opt->params[i];
            size_t rows = q->p.rows && q->p.numel % q->p.rows == 0 ? q->p.rows : q->p.numel;
            size_t rs = rows ? q->p.numel / rows : 0;
            size_t r0 = rows * u / j->units, r1 = rows * (u + 1) / j->units;
            asymbp_status_t st;
            if (r1 <= r0) continue;
            st = step_param(j, i, r0 * rs, r1 * rs);
            if (st != ASYMBP_OK) {
                size_t none = 0;
                if (__atomic_compare_exchange_n(&j->failed, &none, i + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) j->st = st;
            }
        }
}

/* ---- distributed steps ------------------------------------------------------------------------- */

asymbp_status_t asymbp_optimizer_set_comm(asymbp_optimizer_t *opt, const asymbp_comm_t *comm, asymbp_dist_mode_t mode)
{
    size_t i, count = 1, elem;
    void *buf = NULL;
    asymbp_comm_int_t vt = ASYMBP_COMM_INT8;
    if (!opt) return ASYMBP_E_INVALID;
    if (mode != ASYMBP_DIST_EXACT && mode != ASYMBP_DIST_VOTE)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_set_comm: unknown mode %d", (int)mode);
    if (comm && mode == ASYMBP_DIST_VOTE && !(opt->rule->vt.flags & ASYMBP_UPDATE_ACCEPTS_VOTE))
        return asymbp__error(opt->ctx, ASYMBP_E_UNSUPPORTED,
                             "optimizer_set_comm: vote mode gives the rule only the sign of the ranks' summed votes, and the "
                             "update rule '%s' needs the gradient itself (use exact mode, or a Batch Manhattan rule)",
                             opt->rule->base.name);
    if (comm) {
        for (i = 0; i < opt->nparams; i++) count += opt->params[i].p.numel;
        vt = asymbp__comm_vote_type(asymbp_comm_size(comm));
        elem = mode == ASYMBP_DIST_EXACT ? sizeof(float) : (size_t)vt;
        buf = asymbp__calloc(opt->ctx, count, elem);
        if (!buf)
            return asymbp__error(opt->ctx, ASYMBP_E_NOMEM, "optimizer_set_comm: out of memory for the %zu-element step buffer",
                                 count);
        asymbp__plugin_ref(&comm->base);
    }
    if (opt->comm) asymbp__plugin_unref(&opt->comm->base);
    asymbp__free(opt->ctx, opt->comm_buf);
    opt->comm = comm;
    opt->mode = mode;
    opt->vote_type = vt;
    opt->comm_buf = buf;
    opt->comm_count = comm ? count : 0;
    if (comm)
        asymbp__log(opt->ctx, ASYMBP_LOG_INFO, "optimizer: %s steps over %d ranks ('%s'), %zu bytes per step", asymbp_dist_mode_name(mode),
                    asymbp_comm_size(comm), asymbp_comm_name(comm), asymbp_optimizer_comm_bytes(opt));
    return ASYMBP_OK;
}

size_t asymbp_optimizer_comm_bytes(const asymbp_optimizer_t *opt)
{
    if (!opt || !opt->comm) return 0;
    return opt->comm_count * (opt->mode == ASYMBP_DIST_EXACT ? sizeof(float) : (size_t)opt->vote_type);
}

/* Votes of one tensor: sign(g) into the integer buffer (all 0 for a rank without samples). */
#define VOTE_PACK(T) \
    do { \
        T *b = (T *)opt->comm_buf + off; \
        if (!local) memset(b, 0, n * sizeof(T)); \
        else for (e = 0; e < n; e++) { nonfinite |= exp_all_ones(g[e]); b[e] = (T)((g[e] > 0.0f) - (g[e] < 0.0f)); } \
    } while (0)
#define VOTE_UNPACK(T) \
    do { \
        const T *b = (const T *)opt->comm_buf + off; \
        for (e = 0; e < n; e++) g[e] = (float)((b[e] > 0) - (b[e] < 0)); \
    } while (0)

/* 1 for an Inf or a NaN (exponent bits all ones).  An OR over integers, unlike a float sum,
 * vectorises: the check costs nothing next to the copy it rides along with. */
static inline uint32_t exp_all_ones(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* Combine the ranks' gradients in place (the net's gradient buffers end up holding what the rule
 * sees).  The last element of the buffer counts the ranks whose gradient (or loss) was not finite:
 * then every rank returns ASYMBP_E_DIVERGED before anything is updated. */
static asymbp_status_t dist_combine(asymbp_optimizer_t *opt, size_t local, size_t global, int local_bad, uint64_t stepno)
{
    const int vote = opt->mode == ASYMBP_DIST_VOTE;
    const float w = (float)((double)local / (double)global);
    size_t i, e, off = 0, last = opt->comm_count - 1;
    uint32_t nonfinite = 0;
    double bad;
    char what[64];
    asymbp_status_t st;
    for (i = 0; i < opt->nparams; i++) {
        const opt_param_t *q = &opt->params[i];
        const float *g = q->p.grad;
        size_t n = q->p.numel;
        if (!vote) {
            float *b = (float *)opt->comm_buf + off;
            if (!local) memset(b, 0, n * sizeof *b);
            else for (e = 0; e < n; e++) { nonfinite |= exp_all_ones(g[e]); b[e] = w * g[e]; }
        } else if (opt->vote_type == ASYMBP_COMM_INT8) VOTE_PACK(int8_t);
        else if (opt->vote_type == ASYMBP_COMM_INT16) VOTE_PACK(int16_t);
        else VOTE_PACK(int32_t);
        off += n;
    }
    local_bad = local_bad || nonfinite != 0;
    snprintf(what, sizeof what, "optimizer_step %llu", (unsigned long long)stepno);
    if (!vote) {
        ((float *)opt->comm_buf)[last] = (float)local_bad;
        st = asymbp__comm_sum_f32(opt->ctx, opt->comm, opt->comm_buf, opt->comm_count, what);
        bad = st == ASYMBP_OK ? (double)((float *)opt->comm_buf)[last] : 0.0;
    } else {
        if (opt->vote_type == ASYMBP_COMM_INT8) ((int8_t *)opt->comm_buf)[last] = (int8_t)local_bad;
        else if (opt->vote_type == ASYMBP_COMM_INT16) ((int16_t *)opt->comm_buf)[last] = (int16_t)local_bad;
        else ((int32_t *)opt->comm_buf)[last] = (int32_t)local_bad;
        st = asymbp__comm_sum_int(opt->ctx, opt->comm, opt->comm_buf, opt->comm_count, opt->vote_type, what);
        bad = st != ASYMBP_OK ? 0.0
            : opt->vote_type == ASYMBP_COMM_INT8 ? (double)((int8_t *)opt->comm_buf)[last]
            : opt->vote_type == ASYMBP_COMM_INT16 ? (double)((int16_t *)opt->comm_buf)[last]
            : (double)((int32_t *)opt->comm_buf)[last];
    }
    if (st != ASYMBP_OK) return st;
    if (bad != 0.0)
        return asymbp__error(opt->ctx, ASYMBP_E_DIVERGED, "optimizer_step %llu: the loss or a gradient is NaN or Inf on %.0f of %d "
                             "ranks%s; no parameter was updated", (unsigned long long)stepno, bad, asymbp_comm_size(opt->comm),
                             local_bad ? " (this one among them)" : "");
    for (i = 0, off = 0; i < opt->nparams; i++) {
        const opt_param_t *q = &opt->params[i];
        float *g = q->p.grad;
        size_t n = q->p.numel;
        if (!vote) memcpy(g, (const float *)opt->comm_buf + off, n * sizeof *g);
        else if (opt->vote_type == ASYMBP_COMM_INT8) VOTE_UNPACK(int8_t);
        else if (opt->vote_type == ASYMBP_COMM_INT16) VOTE_UNPACK(int16_t);
        else VOTE_UNPACK(int32_t);
        off += n;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp__optimizer_step_dist(asymbp_optimizer_t *opt, size_t local, size_t global, int local_bad)
{
    step_job_t job;
    asymbp_status_t st;
    uint64_t stepno;
    double f;
    size_t i;
    if (!opt) return ASYMBP_E_INVALID;
    stepno = opt->steps + 1;
    if (opt->net && asymbp__net_param_count(opt->net) != opt->nparams)
        return asymbp__error(opt->ctx, ASYMBP_E_STATE, "optimizer_step: the net has %zu parameter tensors, the optimizer %zu",
                             asymbp__net_param_count(opt->net), opt->nparams);
    f = sched_factor(opt, stepno);
    if (!isfinite(f) || f < 0.0)
        return asymbp__error(opt->ctx, ASYMBP_E_PLUGIN, "optimizer_step: the learning-rate schedule returned %g at epoch %llu",
                             f, (unsigned long long)opt->epoch);
    for (i = 0; i < opt->nparams; i++) {
        opt_param_t *q = &opt->params[i];
        if (opt->net) {
            const asymbp__param_t *np = asymbp__net_param_at(opt->net, i);
            if (!np || np->numel != q->p.numel)
                return asymbp__error(opt->ctx, ASYMBP_E_STATE, "optimizer_step: parameter %zu ('%s') changed size since the optimizer was created",
                                     i, q->p.name ? q->p.name : "?");
            q->p.value = np->value;
            q->p.grad = np->grad;
        }
        if (!q->p.value || !q->p.grad)
            return asymbp__error(opt->ctx, ASYMBP_E_STATE, "optimizer_step: parameter '%s' has no value or gradient buffer (net not bound?)",
                                 q->p.name ? q->p.name : "?");
    }
    /* feedback policies that follow W's change (Kolen-Pollack) keep W as the rule found it */
    if (opt->net && (st = asymbp__net_step_begin(opt->net)) != ASYMBP_OK) return st;
    if (opt->comm && (st = dist_combine(opt, local, global, local_bad, stepno)) != ASYMBP_OK) return st;
    memset(&job, 0, sizeof job);
    job.opt = opt;
    job.f = f;
    job.stepno = stepno;
    job.ranks = opt->comm ? asymbp_comm_size(opt->comm) : 1;
    job.vote = opt->comm && opt->mode == ASYMBP_DIST_VOTE;
    job.units = opt->rule->base.builtin ? (size_t)asymbp_ctx_get_threads(opt->ctx) : 1;
    asymbp__parallel(opt->ctx, job.units, (int)job.units, step_units, &job);
    if (job.failed) {
        const opt_param_t *q = &opt->params[job.failed - 1];
        return asymbp__error(opt->ctx, ASYMBP_E_PLUGIN, "optimizer_step: update rule '%s' failed on parameter '%s' (%s)",
                             opt->rule->base.name, q->p.name ? q->p.name : "", asymbp_status_name(job.st));
    }
    opt->steps = stepno;
    return opt->net ? asymbp__net_step_done(opt->net) : ASYMBP_OK;
}

asymbp_status_t asymbp_optimizer_step_samples(asymbp_optimizer_t *opt, size_t local_samples, size_t global_samples)
{
    if (!opt) return ASYMBP_E_INVALID;
    if (global_samples == 0 || local_samples > global_samples)
        return asymbp__error(opt->ctx, ASYMBP_E_INVALID, "optimizer_step_samples: %zu local samples of a global batch of %zu",
                             local_samples, global_samples);
    return asymbp__optimizer_step_dist(opt, local_samples, global_samples, 0);
}

asymbp_status_t asymbp_optimizer_step(asymbp_optimizer_t *opt)
{
    if (!opt) return ASYMBP_E_INVALID;
    /* with a communicator: every rank's gradient has the same weight */
    if (opt->comm) return asymbp__optimizer_step_dist(opt, 1, (size_t)asymbp_comm_size(opt->comm), 0);
    return asymbp__optimizer_step_dist(opt, 0, 1, 0);
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static void hp_write(asymbp__wbuf_t *w, const asymbp_hyper_params_t *hp)
{
    asymbp__wbuf_f32s(w, &hp->lr, 1);
    asymbp__wbuf_f32s(w, &hp->momentum, 1);
    asymbp__wbuf_u32(w, (uint32_t)hp->nesterov);
    asymbp__wbuf_f32s(w, &hp->weight_decay, 1);
    asymbp__wbuf_u32(w, (uint32_t)hp->decay_biases_and_bn);
    asymbp__wbuf_f32s(w, &hp->nsc_epsilon, 1);
}

static void hp_read(asymbp__rbuf_t *r, asymbp_hyper_params_t *hp)
{
    asymbp_hyper_params_t d = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__rbuf_f32s(r, &d.lr, 1);
    asymbp__rbuf_f32s(r, &d.momentum, 1);
    d.nesterov = asymbp__rbuf_u32(r) != 0;
    asymbp__rbuf_f32s(r, &d.weight_decay, 1);
    d.decay_biases_and_bn = asymbp__rbuf_u32(r) != 0;
    asymbp__rbuf_f32s(r, &d.nsc_epsilon, 1);
    *hp = d;
}

asymbp_status_t asymbp__optimizer_write(const asymbp_optimizer_t *opt, asymbp__wbuf_t *w)
{
    size_t i;
    if (!opt || !w) return ASYMBP_E_INVALID;
    asymbp__wbuf_u32(w, ASYMBP__OPTIMIZER_FORMAT);
    asymbp__wbuf_str(w, opt->rule->base.name);
    asymbp__wbuf_u64(w, opt->steps);
    asymbp__wbuf_u64(w, opt->epoch);
    asymbp__wbuf_u32(w, (uint32_t)opt->sched);
    asymbp__wbuf_f32s(w, &opt->gamma, 1);
    asymbp__wbuf_u64(w, (uint64_t)opt->nmilestones);
    for (i = 0; i < opt->nmilestones; i++) asymbp__wbuf_u64(w, opt->milestones[i]);
    asymbp__wbuf_u64(w, opt->cos_steps);
    asymbp__wbuf_f32s(w, &opt->cos_floor, 1);
    asymbp__wbuf_u64(w, opt->warmup);
    hp_write(w, &opt->hp);
    asymbp__wbuf_u64(w, (uint64_t)opt->nparams);
    for (i = 0; i < opt->nparams; i++) {
        const opt_param_t *q = &opt->params[i];
        asymbp__wbuf_u64(w, (uint64_t)q->p.numel);
        asymbp__wbuf_u32(w, (uint32_t)q->p.kind);
        hp_write(w, &q->hp);
        asymbp__wbuf_u64(w, (uint64_t)q->state_bytes);
        asymbp__wbuf_put(w, q->state, q->state_bytes);
    }
    if (w->failed) return asymbp__error(opt->ctx, ASYMBP_E_NOMEM, "optimizer: out of memory while saving");
    return ASYMBP_OK;
}

#define READ_FAIL(...) do { st = asymbp__error(ctx, ASYMBP_E_FORMAT, __VA_ARGS__); goto done; } while (0)

/* One pass over the payload: apply == 0 validates only; apply == 1 (after a successful
 * validation) writes into opt, taking ms (the milestones array, already allocated) over. */
static asymbp_status_t read_pass(asymbp_optimizer_t *opt, asymbp__rbuf_t *r, int apply, uint64_t **ms,
                                 size_t *nms_out)
{
    asymbp_ctx_t *ctx = opt->ctx;
    asymbp_status_t st = ASYMBP_OK;
    char name[ASYMBP__PLUGIN_NAME_MAX];
    uint64_t steps, epoch, nms, np, i;
    uint32_t fmt, sched;
    float gamma = 1.0f, cos_floor = 0.0f;
    uint64_t cos_steps = 0, warmup = 0;
    asymbp_hyper_params_t hp;
    fmt = asymbp__rbuf_u32(r);
    if (r->failed) READ_FAIL("optimizer: saved state is truncated");
    if (fmt != 1u && fmt != ASYMBP__OPTIMIZER_FORMAT)
        READ_FAIL("optimizer: saved state has format %u, this library reads 1 to %u", fmt, ASYMBP__OPTIMIZER_FORMAT);
    asymbp__rbuf_str(r, name, sizeof name);
    if (r->failed) READ_FAIL("optimizer: saved rule name is malformed");
    if (strcmp(name, opt->rule->base.name) != 0)
        READ_FAIL("optimizer: saved state is for update rule '%s', this optimizer uses '%s'", name, opt->rule->base.name);
    steps = asymbp__rbuf_u64(r);
    epoch = asymbp__rbuf_u64(r);
    sched = asymbp__rbuf_u32(r);
    asymbp__rbuf_f32s(r, &gamma, 1);
    nms = asymbp__rbuf_u64(r);
    if (r->failed) READ_FAIL("optimizer: saved state is truncated (schedule)");
    if (sched > SCHED_COSINE || (fmt == 1u && sched > SCHED_FN)) READ_FAIL("optimizer: unknown schedule kind %u", sched);
    if (!isfinite(gamma) || gamma < 0.0f) READ_FAIL("optimizer: saved schedule gamma %g is invalid", (double)gamma);
    if (nms > (r->len - r->pos) / 8) READ_FAIL("optimizer: saved schedule has %llu milestones, more than the data holds",
                                               (unsigned long long)nms);
    if (sched != SCHED_STEP && nms) READ_FAIL("optimizer: milestones saved for a schedule without them");
    if (!apply) {
        *nms_out = (size_t)nms;
        r->pos += (size_t)nms * 8;
    } else {
        for (i = 0; i < nms; i++) (*ms)[i] = asymbp__rbuf_u64(r);
    }
    if (fmt >= 2u) {
        cos_steps = asymbp__rbuf_u64(r);
        asymbp__rbuf_f32s(r, &cos_floor, 1);
        warmup = asymbp__rbuf_u64(r);
        if (r->failed) READ_FAIL("optimizer: saved state is truncated (schedule)");
        if (sched == SCHED_COSINE && (cos_steps < 1 || !(cos_floor >= 0.0f && cos_floor <= 1.0f)))
            READ_FAIL("optimizer: saved cosine schedule (%llu steps, floor %g) is invalid", (unsigned long long)cos_steps,
                      (double)cos_floor);
    }
    hp_read(r, &hp);
    if (r->failed) READ_FAIL("optimizer: saved state is truncated (hyper-parameters)");
    if (hp_validate(ctx, ASYMBP_E_FORMAT, "optimizer: saved hyper-parameters", &hp) != ASYMBP_OK) {
        st = ASYMBP_E_FORMAT;
        goto done;
    }
    if (apply) opt->hp = hp;
    np = asymbp__rbuf_u64(r);
    if (r->failed) READ_FAIL("optimizer: saved state is truncated (parameter count)");
    if (np != opt->nparams)
        READ_FAIL("optimizer: saved state has %llu parameter tensors, the net has %zu", (unsigned long long)np, opt->nparams);
    for (i = 0; i < np; i++) {
        opt_param_t *q = &opt->params[i];
        uint64_t numel = asymbp__rbuf_u64(r), sb;
        uint32_t kind = asymbp__rbuf_u32(r);
        hp_read(r, &hp);
        sb = asymbp__rbuf_u64(r);
        if (r->failed) READ_FAIL("optimizer: saved state is truncated (parameter %llu)", (unsigned long long)i);
        if (numel != q->p.numel || kind != (uint32_t)q->p.kind)
            READ_FAIL("optimizer: saved parameter %llu has %llu elements of kind %u, '%s' has %zu of kind %d",
                      (unsigned long long)i, (unsigned long long)numel, kind, q->p.name ? q->p.name : "?", q->p.numel,
                      (int)q->p.kind);
        if (sb != q->state_bytes)
            READ_FAIL("optimizer: saved state of parameter %llu is %llu bytes, the rule needs %zu", (unsigned long long)i,
                      (unsigned long long)sb, q->state_bytes);
        if (hp_validate(ctx, ASYMBP_E_FORMAT, "optimizer: saved hyper-parameters", &hp) != ASYMBP_OK) {
            st = ASYMBP_E_FORMAT;
            goto done;
        }
        asymbp__rbuf_get(r, apply ? q->state : NULL, (size_t)sb);
        if (r->failed) READ_FAIL("optimizer: saved state of parameter %llu is truncated", (unsigned long long)i);
        if (apply) q->hp = hp;
    }
    if (apply) {
        opt->steps = steps;
        opt->epoch = epoch;
        if (sched != SCHED_FN) {
            sched_clear(opt);
            opt->sched = (int)sched;
            opt->gamma = gamma;
            opt->milestones = *ms;
            opt->nmilestones = (size_t)nms;
            opt->cos_steps = cos_steps;
            opt->cos_floor = cos_floor;
            *ms = NULL;
        }
        opt->warmup = warmup;
    }
done:
    return st;
}

asymbp_status_t asymbp__optimizer_read(asymbp_optimizer_t *opt, asymbp__rbuf_t *r)
{
    asymbp__rbuf_t probe;
    asymbp_status_t st;
    uint64_t *ms = NULL;
    size_t nms = 0;
    if (!opt || !r) return ASYMBP_E_INVALID;
    probe = *r;
    st = read_pass(opt, &probe, 0, &ms, &nms);
    if (st != ASYMBP_OK) return st;
    if (nms) {
        ms = asymbp__calloc(opt->ctx, nms, sizeof *ms);
        if (!ms) return asymbp__error(opt->ctx, ASYMBP_E_NOMEM, "optimizer: out of memory while loading");
    }
    st = read_pass(opt, r, 1, &ms, &nms);
    asymbp__free(opt->ctx, ms);   /* NULL when taken over */
    return st;
}

asymbp_status_t asymbp__optimizer_peek_rule(asymbp_ctx_t *ctx, const asymbp__rbuf_t *r, char *name, size_t cap)
{
    asymbp__rbuf_t probe;
    uint32_t fmt;
    if (!r || !name || cap == 0) return ASYMBP_E_INVALID;
    probe = *r;
    fmt = asymbp__rbuf_u32(&probe);
    asymbp__rbuf_str(&probe, name, cap);
    if (probe.failed || (fmt != 1u && fmt != ASYMBP__OPTIMIZER_FORMAT))
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "optimizer: saved state is malformed (format %u)", fmt);
    return ASYMBP_OK;
}
