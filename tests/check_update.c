/* Update rules: registry and plugin compatibility, every built-in rule against an independent
 * double-precision reference, Batch Manhattan's indifference to gradient magnitude, the
 * no-sign-change option, hyper-parameter groups, schedules, checkpoint round trips, user rules
 * (Adam) through the vtable, OOM, and training a small net with every rule. */
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include "update/update_impl.h" /* first: it includes the private net_hooks.h before net.h */
#include "test_util.h"

/* ---- a double-precision reference of the built-in rules (written independently) ------------ */

typedef struct ref_cfg {
    const char *rule;   /* "sgd", "bm", "bm:b", "bm:c" (+ ":nsc" via nsc) */
    char variant;       /* 's' SGD, 'a', 'b', 'c' */
    int nsc;
    int nesterov;
    double lr, mu, lam, eps;
} ref_cfg_t;

static double dsgn(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

/* Smallest |value| whose sign the reference took (to make sure the test data is not borderline). */
static double ref_margin = 1e30;

static void note_margin(double x)
{
    if (x != 0.0 && fabs(x) < ref_margin) ref_margin = fabs(x);
}

static void ref_step(const ref_cfg_t *c, double *w, double *u, const double *g, size_t n, int is_weight, double lam)
{
    size_t i;
    for (i = 0; i < n; i++) {
        double d, s, wn;
        if (c->variant == 's') {
            d = g[i] + lam * w[i];
        } else if (c->variant == 'a') {
            d = dsgn(g[i]) + lam * w[i];
            note_margin(g[i]);
        } else if (c->variant == 'b') {
            d = dsgn(g[i] + lam * w[i]);
            note_margin(g[i] + lam * w[i]);
        } else {
            d = g[i] + lam * w[i];
        }
        u[i] = c->mu * u[i] + d;
        s = c->nesterov ? d + c->mu * u[i] : u[i];
        if (c->variant == 'c') {
            note_margin(s);
            s = dsgn(s);
        }
        wn = w[i] - c->lr * s;
        if (c->nsc && is_weight && w[i] != 0.0 && dsgn(wn) != dsgn(w[i])) {
            note_margin(wn);
            wn = w[i] > 0 ? fmin(c->eps, fabs(w[i])) : -fmin(c->eps, fabs(w[i]));
        }
        w[i] = wn;
    }
}

#define N 7
#define STEPS 6

/* Deterministic gradients of varied sign and magnitude, one exact zero (sign(0) = 0). */
static float grad_at(int t, int i)
{
    if (t == 2 && i == 3) return 0.0f;
    return (float)(sin(1.3 * i + 0.7 * t + 0.2) * (0.05 + 0.3 * i));
}

static const float w0[N] = {0.5f, -0.25f, 0.0f, 0.031f, -0.8f, 1.5f, -0.0125f};

static asymbp_ctx_t *g_ctx;

static void make_param(asymbp__param_t *p, float *w, float *g, size_t n, asymbp__param_kind_t kind, int layer, const char *name)
{
    memset(p, 0, sizeof *p);
    p->value = w;
    p->grad = g;
    p->numel = n;
    p->kind = kind;
    p->layer_index = layer;
    p->name = name;
}

/* Run the library's rule and the reference side by side over STEPS steps on a weight tensor and a
 * bias tensor (bias: no weight decay by default, no sign protection); compare after every step. */
static void check_rule(const ref_cfg_t *c)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t params[2];
    float w[N], b[N], gw[N], gb[N];
    double rw[N], rb[N], uw[N] = {0}, ub[N] = {0}, dg[N], dgb[N];
    int t, i;
    hp.lr = (float)c->lr;
    hp.momentum = (float)c->mu;
    hp.weight_decay = (float)c->lam;
    hp.nesterov = c->nesterov;
    hp.nsc_epsilon = (float)c->eps;
    for (i = 0; i < N; i++) {
        w[i] = w0[i];
        b[i] = -w0[N - 1 - i];
        rw[i] = w[i];
        rb[i] = b[i];
    }
    make_param(&params[0], w, gw, N, ASYMBP__PARAM_WEIGHT, 0, "dense0.weight");
    make_param(&params[1], b, gb, N, ASYMBP__PARAM_BIAS, 0, "dense0.bias");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, params, 2, c->rule, &hp, &opt), ASYMBP_OK);
    ref_margin = 1e30;
    for (t = 0; t < STEPS; t++) {
        for (i = 0; i < N; i++) {
            gw[i] = grad_at(t, i);
            gb[i] = grad_at(t + 3, N - 1 - i);
            dg[i] = gw[i];
            dgb[i] = gb[i];
        }
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        ref_step(c, rw, uw, dg, N, 1, (double)(float)c->lam);
        ref_step(c, rb, ub, dgb, N, 0, 0.0);
        for (i = 0; i < N; i++) {
            ck_assert_msg(fabs(w[i] - rw[i]) <= 1e-6 * fabs(rw[i]) + 1e-7,
                          "%s%s: step %d weight %d: got %.9g, reference %.9g", c->rule, c->nesterov ? " nesterov" : "",
                          t + 1, i, (double)w[i], rw[i]);
            ck_assert_msg(fabs(b[i] - rb[i]) <= 1e-6 * fabs(rb[i]) + 1e-7,
                          "%s: step %d bias %d: got %.9g, reference %.9g", c->rule, t + 1, i, (double)b[i], rb[i]);
        }
    }
    /* the data must not sit on a sign boundary, else float and double could legitimately differ */
    ck_assert_msg(ref_margin > 1e-4, "%s: test data too close to a sign boundary (%g)", c->rule, ref_margin);
    ck_assert_uint_eq(asymbp_optimizer_step_count(opt), STEPS);
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}

START_TEST(test_rules_against_reference)
{
    static const ref_cfg_t cfgs[] = {
        {"sgd", 's', 0, 0, 0.1, 0.9, 0.05, 1e-6},
        {"sgd", 's', 0, 1, 0.1, 0.9, 0.05, 1e-6},
        {"sgd", 's', 0, 0, 0.3, 0.0, 0.0, 1e-6},
        {"bm", 'a', 0, 0, 0.01, 0.9, 0.05, 1e-6},
        {"bm", 'a', 0, 1, 0.01, 0.9, 0.05, 1e-6},
        {"bm:b", 'b', 0, 0, 0.01, 0.9, 0.05, 1e-6},
        {"bm:b", 'b', 0, 1, 0.01, 0.5, 0.2, 1e-6},
        {"bm:c", 'c', 0, 0, 0.01, 0.9, 0.05, 1e-6},
        {"bm:c", 'c', 0, 1, 0.01, 0.9, 0.05, 1e-6},
        {"bm:nsc", 'a', 1, 0, 0.02, 0.9, 0.05, 1e-3},
        {"bm:b:nsc", 'b', 1, 0, 0.02, 0.9, 0.05, 1e-3},
        {"bm:c:nsc", 'c', 1, 1, 0.02, 0.9, 0.05, 1e-3},
    };
    size_t k;
    for (k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) check_rule(&cfgs[k]);
}
END_TEST

/* A few steps worked by hand, so the reference itself is checked against the formulas. */
START_TEST(test_rules_by_hand)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t p;
    float w = 1.0f, g = 0.5f;
    hp.lr = 0.1f;
    hp.momentum = 0.9f;
    hp.weight_decay = 0.1f;
    make_param(&p, &w, &g, 1, ASYMBP__PARAM_WEIGHT, 0, "w");
    /* SGD: u = 0.5 + 0.1 = 0.6, w = 1 - 0.06 = 0.94; u = 0.54 + 0.5 + 0.094 = 1.134, w = 0.8266 */
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.94f, 1e-6f);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.8266f, 1e-6f);
    asymbp_optimizer_destroy(opt);
    /* BM a: d = 1 + 0.1 = 1.1, u = 1.1, w = 0.89; g = -3: d = -1 + 0.089, u = 0.99 - 0.911 = 0.079,
     * w = 0.89 - 0.0079 = 0.8821; g = 0: d = 0 + 0.08821, u = 0.0711 + 0.08821 = 0.15931,
     * w = 0.8821 - 0.015931 = 0.866169 */
    w = 1.0f;
    g = 0.5f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "bm", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.89f, 1e-6f);
    g = -3.0f;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.8821f, 1e-6f);
    g = 0.0f;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.866169f, 1e-6f);
    asymbp_optimizer_destroy(opt);
    /* BM c: u = g + lam w = 0.6, w = 1 - 0.1 sign(0.6) = 0.9; g = -3: u = 0.54 - 3 + 0.09 = -2.37,
     * w = 0.9 + 0.1 = 1.0 */
    w = 1.0f;
    g = 0.5f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "bm:c", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.9f, 1e-7f);
    g = -3.0f;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 1.0f, 1e-7f);
    asymbp_optimizer_destroy(opt);
    /* BM b: d = sign(-0.05 + 0.1) = +1 although the gradient is negative */
    w = 0.5f;
    g = -0.04f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "bm:b", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w, 0.4f, 1e-7f);
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Run `rule` for 4 steps with gradients scaled by `scale`; the final weights go to out. */
static void run_scaled(asymbp_ctx_t *ctx, const char *rule, const asymbp_hyper_params_t *hp, double scale, float *out)
{
    asymbp_optimizer_t *opt = NULL;
    asymbp__param_t p;
    float g[N];
    int t, i;
    memcpy(out, w0, sizeof w0);
    make_param(&p, out, g, N, ASYMBP__PARAM_WEIGHT, 0, "w");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, rule, hp, &opt), ASYMBP_OK);
    for (t = 0; t < 4; t++) {
        for (i = 0; i < N; i++) g[i] = (float)(grad_at(t, i) * scale);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    asymbp_optimizer_destroy(opt);
}

START_TEST(test_bm_ignores_magnitude)
{
    static const double scales[] = {1e-6, 0.01, 3.7, 250.0, 1e5};
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    float ref[N], got[N];
    size_t k;
    int nest;
    hp.lr = 0.01f;
    hp.momentum = 0.9f;
    for (nest = 0; nest <= 1; nest++) {
        hp.nesterov = nest;
        /* variant a (with weight decay: the sign is taken of the gradient alone) */
        hp.weight_decay = 0.05f;
        run_scaled(ctx, "bm", &hp, 1.0, ref);
        for (k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            run_scaled(ctx, "bm", &hp, scales[k], got);
            ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "bm: scale %g changed the update", scales[k]);
            run_scaled(ctx, "bm:nsc", &hp, scales[k], got);
        }
        /* variants b and c (without weight decay, which is not scaled with the gradient) */
        hp.weight_decay = 0.0f;
        run_scaled(ctx, "bm:b", &hp, 1.0, ref);
        for (k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            run_scaled(ctx, "bm:b", &hp, scales[k], got);
            ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "bm:b: scale %g changed the update", scales[k]);
        }
        run_scaled(ctx, "bm:c", &hp, 1.0, ref);
        for (k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            run_scaled(ctx, "bm:c", &hp, scales[k], got);
            ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "bm:c: scale %g changed the update", scales[k]);
        }
    }
    /* ... and SGD does depend on it (the comparison above can fail) */
    run_scaled(ctx, "sgd", &hp, 1.0, ref);
    run_scaled(ctx, "sgd", &hp, 3.7, got);
    ck_assert(memcmp(ref, got, sizeof ref) != 0);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_nsc)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t p[2];
    /* lr 0.1, no momentum: every weight moves by -0.1 sign(g) */
    float w[6] = {0.05f, -0.05f, 0.0f, 0.5f, 1e-8f, -0.02f};
    float g[6] = {1.0f, -2.0f, 1.0f, 1.0f, 3.0f, 0.0f};
    float b[2] = {0.05f, -0.05f}, gb[2] = {1.0f, -1.0f};
    hp.lr = 0.1f;
    hp.momentum = 0.0f;
    make_param(&p[0], w, g, 6, ASYMBP__PARAM_WEIGHT, 0, "w");
    make_param(&p[1], b, gb, 2, ASYMBP__PARAM_BIAS, 0, "b");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 2, "bm:nsc", &hp, &opt), ASYMBP_OK);
    ck_assert_str_eq(asymbp_optimizer_rule_name(opt), "bm:nsc");
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq(w[0], 1e-6f);          /* would flip: stops at +eps */
    ck_assert_float_eq(w[1], -1e-6f);         /* would flip: stops at -eps */
    ck_assert_float_eq_tol(w[2], -0.1f, 1e-9f); /* exactly 0: free to move */
    ck_assert_float_eq_tol(w[3], 0.4f, 1e-7f);  /* no flip: plain BM */
    ck_assert_float_eq(w[4], 1e-8f);          /* already below eps: keeps its value */
    ck_assert_float_eq(w[5], -0.02f);         /* sign(0) = 0: no move */
    ck_assert_float_eq_tol(b[0], -0.05f, 1e-8f); /* biases are not protected */
    ck_assert_float_eq_tol(b[1], 0.05f, 1e-8f);
    /* a step that lands exactly on 0 counts as a sign change */
    w[3] = 0.1f;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq(w[3], 1e-6f);
    ck_assert_float_eq(w[0], 1e-6f);
    asymbp_optimizer_destroy(opt);
    /* the floor is a hyper-parameter */
    w[0] = 0.05f;
    hp.nsc_epsilon = 0.01f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 1, "bm:nsc", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq(w[0], 0.01f);
    asymbp_optimizer_destroy(opt);
    /* without the option, the weight crosses zero */
    w[0] = 0.05f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 1, "bm", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(w[0], -0.05f, 1e-8f);
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- registry ------------------------------------------------------------------------------ */

START_TEST(test_registry_names)
{
    static const char *const spell[][2] = {
        {"sgd", "sgd"}, {"SGD", "sgd"}, {"bm", "bm"}, {"bm:a", "bm"}, {"batch-manhattan", "bm"}, {"bm:b", "bm:b"},
        {"bm:c", "bm:c"}, {"bm:nsc", "bm:nsc"}, {"bm:nsc:b", "bm:b:nsc"}, {"bm+c+nsc", "bm:c:nsc"},
        {"bm:a:nsc", "bm:nsc"}, {"bm:b:nsc", "bm:b:nsc"},
    };
    static const char *const bad[] = {"bm:d", "bm:b:c", "bm:nsc:nsc", "bm:", "bmx", "adam", "", "bm::b"};
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_update_rule_t *r = NULL;
    size_t k, n;
    for (k = 0; k < sizeof spell / sizeof spell[0]; k++) {
        ck_assert_msg(asymbp_update_rule_find(ctx, spell[k][0], &r) == ASYMBP_OK, "%s", spell[k][0]);
        ck_assert_str_eq(asymbp_update_rule_name(r), spell[k][1]);
    }
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_msg(asymbp_update_rule_find(ctx, bad[k], &r) == ASYMBP_E_NOTFOUND, "'%s' was accepted", bad[k]);
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "bm:c:nsc"));
    }
    n = asymbp_update_rule_count(ctx);
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(asymbp_update_rule_name(asymbp_update_rule_at(ctx, 0)), "sgd");
    ck_assert_ptr_null(asymbp_update_rule_at(ctx, n));
    ck_assert_str_eq(asymbp_update_rule_name(NULL), "");
    ck_assert_int_eq(asymbp_update_rule_find(NULL, "sgd", &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_update_rule_find(ctx, NULL, &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_update_rule_find(ctx, "sgd", NULL), ASYMBP_E_INVALID);
    /* built-ins cannot be unregistered, by name or by spelling */
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "sgd"), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "batch-manhattan"), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "nope"), ASYMBP_E_NOTFOUND);
    /* spellings are case-insensitive like names, options in any order */
    ck_assert_int_eq(asymbp_update_rule_find(ctx, "BM+NSC+B", &r), ASYMBP_OK);
    ck_assert_str_eq(asymbp_update_rule_name(r), "bm:b:nsc");
    ck_assert_int_eq(asymbp_update_rule_find(ctx, "Batch-Manhattan:c", &r), ASYMBP_OK);
    ck_assert_str_eq(asymbp_update_rule_name(r), "bm:c");
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- user rules ---------------------------------------------------------------------------- */

static int frees;
static void count_free(void *user)
{
    (void)user;
    frees++;
}

typedef struct plug_log {
    int inits, steps, finis;
    int fail_init_at, fail_step;   /* 1-based init call that fails; step fails when set */
    size_t numel_seen;
    char last_name[32];
    asymbp_param_kind_t last_kind;
    float last_lr, last_wd;
    uint64_t last_step, last_epoch;
} plug_log_t;

static asymbp_status_t plug_init(void *user, void *state, const asymbp_param_info_t *info)
{
    plug_log_t *l = user;
    float *s = state;
    size_t i;
    l->inits++;
    if (l->fail_init_at && l->inits == l->fail_init_at) return ASYMBP_E_RANGE;
    ck_assert_uint_ge(info->struct_size, sizeof *info);
    for (i = 0; s && i < info->numel; i++) ck_assert_float_eq(s[i], 0.0f); /* zero-filled */
    l->numel_seen += info->numel;
    return ASYMBP_OK;
}

static asymbp_status_t plug_step(void *user, void *state, const asymbp_update_args_t *a)
{
    plug_log_t *l = user;
    (void)state;
    l->steps++;
    if (l->fail_step) return ASYMBP_E_RANGE;
    snprintf(l->last_name, sizeof l->last_name, "%s", a->name);
    l->last_kind = a->kind;
    l->last_lr = a->lr;
    l->last_wd = a->weight_decay;
    l->last_step = a->step;
    l->last_epoch = a->epoch;
    return ASYMBP_OK;
}

static void plug_fini(void *user, void *state)
{
    plug_log_t *l = user;
    (void)state;
    l->finis++;
}

START_TEST(test_register_compat)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_update_rule_t *r = NULL;
    asymbp_optimizer_t *opt = NULL;
    plug_log_t log;
    asymbp__param_t p;
    float w[3] = {1, 2, 3}, g[3] = {0};
    /* a "newer" plugin: a larger struct whose extra tail the library ignores */
    struct { asymbp_update_rule_vtable_t vt; void *future[4]; } big;
    memset(&log, 0, sizeof log);
    frees = 0;
    vt.name = "plug";
    vt.state_size = sizeof(float);
    vt.init = plug_init;
    vt.step = plug_step;
    vt.fini = plug_fini;
    /* refused: unknown abi_version, too small, no step, bad names, duplicate of a built-in */
    vt.abi_version = ASYMBP_PLUGIN_ABI_VERSION + 1;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "abi_version"));
    vt.abi_version = 0;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_UNSUPPORTED);
    vt.abi_version = ASYMBP_PLUGIN_ABI_VERSION;
    vt.struct_size = (uint32_t)(ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE - 1);
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_UNSUPPORTED);
    vt.struct_size = (uint32_t)sizeof vt;
    vt.step = NULL;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    vt.step = plug_step;
    vt.name = "my:rule";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    vt.name = "";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    vt.name = "Sgd";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "already"));
    /* spellings of a built-in are reserved like its name */
    vt.name = "batch-manhattan";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "reserved"));
    vt.name = "BATCH-MANHATTAN";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    vt.name = "BM";
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    ck_assert_uint_eq(asymbp_update_rule_count(ctx), 7);
    ck_assert_int_eq(asymbp_update_rule_register(ctx, NULL, &log, count_free, &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_update_rule_register(NULL, &vt, &log, count_free, &r), ASYMBP_E_INVALID);
    ck_assert_int_eq(frees, 0); /* failed registrations leave user with the caller */

    /* an older plugin that ends after step: fini reads as NULL although the caller's memory
     * beyond struct_size holds a function pointer */
    vt.name = "old-plug";
    vt.struct_size = (uint32_t)ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, count_free, &r), ASYMBP_OK);
    ck_assert_str_eq(asymbp_update_rule_name(r), "old-plug");
    make_param(&p, w, g, 3, ASYMBP__PARAM_WEIGHT, 0, "w");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "OLD-PLUG", NULL, &opt), ASYMBP_OK);
    ck_assert_int_eq(log.inits, 1);
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "old-plug"), ASYMBP_E_STATE); /* in use */
    asymbp_optimizer_destroy(opt);
    ck_assert_int_eq(log.finis, 0);
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "old-plug"), ASYMBP_OK);
    ck_assert_int_eq(frees, 1);
    ck_assert_int_eq(asymbp_update_rule_unregister(ctx, "old-plug"), ASYMBP_E_NOTFOUND);
    ck_assert_int_eq(frees, 1);

    /* a newer, larger vtable is accepted (its extra members ignored) */
    memset(&big, 0xA5, sizeof big);
    big.vt = vt;
    big.vt.name = "new-plug";
    big.vt.struct_size = (uint32_t)sizeof big;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &big.vt, &log, count_free, NULL), ASYMBP_OK);
    /* the caller's vtable is copied: changing it afterwards changes nothing */
    big.vt.step = NULL;
    big.vt.name = "changed";
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "new-plug", NULL, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_epoch(opt, 4), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_int_eq(log.steps, 1);
    ck_assert_str_eq(log.last_name, "w");
    ck_assert_uint_eq(log.last_step, 1);
    ck_assert_uint_eq(log.last_epoch, 4);
    ck_assert_float_eq(log.last_lr, 0.01f);
    asymbp_optimizer_destroy(opt);
    ck_assert_int_eq(log.finis, 1);
    ck_assert_uint_eq(asymbp_update_rule_count(ctx), 8);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(frees, 2); /* exactly once per successful registration */
}
END_TEST

START_TEST(test_plugin_failures)
{
    test_alloc_t ta = {0, 0, 0};
    asymbp_allocator_t a = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_optimizer_t *opt = NULL;
    plug_log_t log;
    asymbp__param_t p[3];
    float w[3][4] = {{0}}, g[3][4] = {{0}};
    int i;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    memset(&log, 0, sizeof log);
    vt.name = "plug";
    vt.state_size = 2 * sizeof(float);
    vt.init = plug_init;
    vt.step = plug_step;
    vt.fini = plug_fini;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, NULL, NULL), ASYMBP_OK);
    for (i = 0; i < 3; i++) make_param(&p[i], w[i], g[i], 4, i == 1 ? ASYMBP__PARAM_BIAS : ASYMBP__PARAM_WEIGHT, i, "p");
    /* init fails on the 3rd tensor: creation fails, fini runs for the two that succeeded */
    log.fail_init_at = 3;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 3, "plug", NULL, &opt), ASYMBP_E_PLUGIN);
    ck_assert_ptr_null(opt);
    ck_assert_int_eq(log.finis, 2);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "plug"));
    /* a failing step: ASYMBP_E_PLUGIN, step count not advanced */
    memset(&log, 0, sizeof log);
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 3, "plug", NULL, &opt), ASYMBP_OK);
    ck_assert_uint_eq(log.numel_seen, 12);
    log.fail_step = 1;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_E_PLUGIN);
    ck_assert_uint_eq(asymbp_optimizer_step_count(opt), 0);
    log.fail_step = 0;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_optimizer_step_count(opt), 1);
    asymbp_optimizer_destroy(opt);
    ck_assert_int_eq(log.finis, 3);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

/* Adam as a user rule: state m, v per element (2 floats). */
typedef struct adam_cfg {
    float beta1, beta2, eps;
} adam_cfg_t;

static asymbp_status_t adam_step(void *user, void *state, const asymbp_update_args_t *a)
{
    const adam_cfg_t *c = user;
    float *m = state, *v = m + a->n;
    double bc1 = 1.0 - pow(c->beta1, (double)a->step), bc2 = 1.0 - pow(c->beta2, (double)a->step);
    size_t i;
    (void)bc2;
    for (i = 0; i < a->n; i++) {
        float gi = a->g[i] + a->weight_decay * a->w[i];
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * gi;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * gi * gi;
        a->w[i] -= (float)(a->lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + c->eps));
    }
    return ASYMBP_OK;
}

START_TEST(test_user_rule_adam)
{
    asymbp_ctx_t *ctx = test_ctx();
    adam_cfg_t cfg = {0.9f, 0.999f, 1e-8f};
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t p;
    float w[N], g[N];
    double rw[N], m[N] = {0}, v[N] = {0};
    int t, i;
    vt.name = "adam";
    vt.state_size = 2 * sizeof(float);
    vt.step = adam_step;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &cfg, NULL, NULL), ASYMBP_OK);
    for (i = 0; i < N; i++) rw[i] = w[i] = w0[i];
    hp.lr = 0.01f;
    make_param(&p, w, g, N, ASYMBP__PARAM_WEIGHT, 0, "w");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "adam", &hp, &opt), ASYMBP_OK);
    for (t = 1; t <= STEPS; t++) {
        for (i = 0; i < N; i++) g[i] = grad_at(t, i);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        for (i = 0; i < N; i++) {
            double gi = g[i];
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            rw[i] -= 0.01 * (m[i] / (1 - pow(0.9, t))) / (sqrt(v[i] / (1 - pow(0.999, t))) + 1e-8);
            ck_assert_msg(fabs(w[i] - rw[i]) <= 1e-5 * fabs(rw[i]) + 1e-6, "adam step %d elem %d: %g vs %g", t, i,
                          (double)w[i], rw[i]);
        }
    }
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- hyper-parameters ---------------------------------------------------------------------- */

START_TEST(test_decay_groups)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT, h2;
    asymbp__param_t p[4];
    float v[4][2], g[4][2] = {{0}};
    int i;
    hp.lr = 0.5f;
    hp.momentum = 0.0f;
    hp.weight_decay = 0.1f;
    make_param(&p[0], v[0], g[0], 2, ASYMBP__PARAM_WEIGHT, 0, "dense0.weight");
    make_param(&p[1], v[1], g[1], 2, ASYMBP__PARAM_BIAS, 0, "dense0.bias");
    make_param(&p[2], v[2], g[2], 2, ASYMBP__PARAM_BN_SCALE, 1, "bn1.scale");
    make_param(&p[3], v[3], g[3], 2, ASYMBP__PARAM_BN_SHIFT, 1, "bn1.shift");
    for (i = 0; i < 4; i++) v[i][0] = v[i][1] = 1.0f;
    /* default: decay only on weights (gradient 0: only decay can move anything) */
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, p, 4, "sgd", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(v[0][0], 0.95f, 1e-7f);
    for (i = 1; i < 4; i++) ck_assert_float_eq(v[i][0], 1.0f);
    /* decay_biases_and_bn = 1: everything decays */
    hp.decay_biases_and_bn = 1;
    ck_assert_int_eq(asymbp_optimizer_set_hyper(opt, &hp), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(v[0][0], 0.9025f, 1e-7f);
    for (i = 1; i < 4; i++) ck_assert_float_eq_tol(v[i][0], 0.95f, 1e-7f);
    /* group: BN gets lr 0, biases lr 0.1 */
    h2 = hp;
    h2.lr = 0.0f;
    ck_assert_int_eq(asymbp_optimizer_set_group_hyper(opt, ASYMBP_GROUP_BN, &h2), ASYMBP_OK);
    h2.lr = 0.1f;
    ck_assert_int_eq(asymbp_optimizer_set_group_hyper(opt, ASYMBP_GROUP_BIASES, &h2), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(v[0][0], 0.9025f * 0.95f, 1e-7f);
    ck_assert_float_eq_tol(v[1][0], 0.95f * 0.99f, 1e-7f);
    ck_assert_float_eq_tol(v[2][0], 0.95f, 1e-7f);
    ck_assert_float_eq_tol(v[3][0], 0.95f, 1e-7f);
    /* layer 1 (the BN layer) overrides the group; a later net-wide call overrides all */
    h2.lr = 1.0f;
    ck_assert_int_eq(asymbp_optimizer_set_layer_hyper(opt, 1, &h2), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_float_eq_tol(v[2][0], 0.95f * 0.9f, 1e-7f);
    ck_assert_int_eq(asymbp_optimizer_set_layer_hyper(opt, 7, &h2), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_set_group_hyper(opt, (asymbp_param_group_t)9, &h2), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_get_hyper(opt, &h2), ASYMBP_OK);
    ck_assert_float_eq(h2.lr, 0.5f);
    ck_assert_int_eq(h2.decay_biases_and_bn, 1);
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_hyper_misuse)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t p;
    float w = 1, g = 1;
    struct { asymbp_hyper_params_t hp; double future; } big;
    make_param(&p, &w, &g, 1, ASYMBP__PARAM_WEIGHT, 0, "w");
    ck_assert_float_eq(hp.lr, 0.01f);
    ck_assert_float_eq(hp.momentum, 0.9f);
    ck_assert_int_eq(hp.decay_biases_and_bn, 0);
    hp.lr = NAN;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "learning rate"));
    hp.lr = 0.1f;
    hp.momentum = 1.0f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "momentum"));
    hp.momentum = 0.5f;
    hp.weight_decay = -1.0f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "weight decay"));
    hp.weight_decay = 0.0f;
    hp.nsc_epsilon = 0.0f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_E_INVALID);
    hp.nsc_epsilon = 1e-6f;
    hp.struct_size = 8;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_E_UNSUPPORTED);
    hp.struct_size = sizeof hp;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "nope", &hp, &opt), ASYMBP_E_NOTFOUND);
    ck_assert_ptr_null(opt);
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, NULL, &hp, &opt), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_create(NULL, "sgd", &hp, &opt), ASYMBP_E_INVALID);
    /* a larger (newer) struct is accepted */
    big.hp = hp;
    big.hp.struct_size = sizeof big;
    big.hp.lr = 0.25f;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &big.hp, &opt), ASYMBP_OK);
    ck_assert_float_eq(asymbp_optimizer_get_lr(opt), 0.25f);
    hp.struct_size = 4;
    ck_assert_int_eq(asymbp_optimizer_get_hyper(opt, &hp), ASYMBP_E_UNSUPPORTED);
    ck_assert_int_eq(asymbp_optimizer_set_hyper(opt, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_step(NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_fn(opt, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_step(opt, NULL, 2, 0.5f), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_step(opt, NULL, 0, NAN), ASYMBP_E_INVALID);
    ck_assert_float_eq(asymbp_optimizer_get_lr(NULL), 0.0f);
    ck_assert_uint_eq(asymbp_optimizer_param_count(opt), 1);
    ck_assert_str_eq(asymbp_optimizer_rule_name(NULL), "");
    asymbp_optimizer_destroy(opt);
    asymbp_optimizer_destroy(NULL);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- schedules ----------------------------------------------------------------------------- */

static double warm(void *user, uint64_t epoch, uint64_t step)
{
    int *calls = user;
    (*calls)++;
    if (epoch == 99) return -1.0;
    return 1.0 / (double)step;
}

START_TEST(test_schedules)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp__param_t p;
    float w = 0.0f, g = 1.0f, before;
    const uint64_t ms[2] = {2, 4};
    uint64_t e;
    int calls = 0;
    hp.lr = 0.1f;
    hp.momentum = 0.0f;
    make_param(&p, &w, &g, 1, ASYMBP__PARAM_WEIGHT, 0, "w");
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, &p, 1, "sgd", &hp, &opt), ASYMBP_OK);
    ck_assert_float_eq(asymbp_optimizer_get_lr(opt), 0.1f);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_step(opt, ms, 2, 0.5f), ASYMBP_OK);
    for (e = 0; e < 6; e++) {
        double f = e >= 4 ? 0.25 : (e >= 2 ? 0.5 : 1.0);
        ck_assert_int_eq(asymbp_optimizer_set_epoch(opt, e), ASYMBP_OK);
        ck_assert_uint_eq(asymbp_optimizer_get_epoch(opt), e);
        ck_assert_float_eq(asymbp_optimizer_get_lr(opt), (float)(0.1f * f));
        /* the step uses it: SGD without momentum moves by lr * g */
        before = w;
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        ck_assert_float_eq_tol(before - w, (float)(0.1f * f), 1e-7f);
    }
    ck_assert_int_eq(asymbp_optimizer_set_schedule_constant(opt), ASYMBP_OK);
    ck_assert_float_eq(asymbp_optimizer_get_lr(opt), 0.1f);
    /* user callback: factor 1/step */
    ck_assert_int_eq(asymbp_optimizer_set_schedule_fn(opt, warm, &calls), ASYMBP_OK);
    before = w;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK); /* step 7 */
    ck_assert_float_eq_tol(before - w, (float)(0.1f / 7.0), 1e-7f);
    ck_assert_int_ge(calls, 1);
    ck_assert_float_eq(asymbp_optimizer_get_lr(opt), (float)(0.1f / 8.0));
    /* an invalid factor fails the step and does not advance it */
    ck_assert_int_eq(asymbp_optimizer_set_epoch(opt, 99), ASYMBP_OK);
    before = w;
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_E_PLUGIN);
    ck_assert_float_eq(w, before);
    ck_assert_uint_eq(asymbp_optimizer_step_count(opt), 7);
    ck_assert_float_eq(asymbp_optimizer_get_lr(opt), 0.0f);
    asymbp_optimizer_destroy(opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- checkpoints --------------------------------------------------------------------------- */

/* Two parameter tensors with their own copies of weights and gradients. */
typedef struct rig {
    float w[N], b[3], gw[N], gb[3];
    asymbp__param_t p[2];
    asymbp_optimizer_t *opt;
} rig_t;

static void rig_make(asymbp_ctx_t *ctx, rig_t *r, const char *rule, const asymbp_hyper_params_t *hp)
{
    memcpy(r->w, w0, sizeof r->w);
    r->b[0] = 0.1f;
    r->b[1] = -0.2f;
    r->b[2] = 0.3f;
    make_param(&r->p[0], r->w, r->gw, N, ASYMBP__PARAM_WEIGHT, 0, "w");
    make_param(&r->p[1], r->b, r->gb, 3, ASYMBP__PARAM_BIAS, 0, "b");
    r->opt = NULL;
    ck_assert_int_eq(asymbp__optimizer_create_params(ctx, r->p, 2, rule, hp, &r->opt), ASYMBP_OK);
}

static void rig_steps(rig_t *r, int t0, int count)
{
    int t, i;
    for (t = t0; t < t0 + count; t++) {
        for (i = 0; i < N; i++) r->gw[i] = grad_at(t, i);
        for (i = 0; i < 3; i++) r->gb[i] = grad_at(t, i + 2);
        ck_assert_int_eq(asymbp_optimizer_step(r->opt), ASYMBP_OK);
    }
}

START_TEST(test_checkpoint_roundtrip)
{
    static const char *const rules[] = {"sgd", "bm", "bm:b", "bm:c:nsc", "adam"};
    asymbp_ctx_t *ctx = test_ctx();
    adam_cfg_t cfg = {0.9f, 0.999f, 1e-8f};
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    const uint64_t ms[3] = {3, 5, 8};
    char dir[1024], path[1100];
    size_t k;
    test_tmpdir_make(dir, sizeof dir, "update");
    snprintf(path, sizeof path, "%s/optimizer.ckpt", dir);
    vt.name = "adam";
    vt.state_size = 2 * sizeof(float);
    vt.step = adam_step;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &cfg, NULL, NULL), ASYMBP_OK);
    hp.lr = 0.02f;
    hp.weight_decay = 0.01f;
    hp.nesterov = 1;
    for (k = 0; k < sizeof rules / sizeof rules[0]; k++) {
        rig_t a, b;
        asymbp__wbuf_t w1, w2;
        asymbp__rbuf_t r, chunk, bad;
        unsigned char *data = NULL;
        size_t pos;
        char name[64];
        rig_make(ctx, &a, rules[k], &hp);
        ck_assert_int_eq(asymbp_optimizer_set_schedule_step(a.opt, ms, 3, 0.3f), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_set_epoch(a.opt, 4), ASYMBP_OK);
        rig_steps(&a, 0, 5);
        /* save to a real file through the container */
        asymbp__wbuf_init(&w1, ctx);
        pos = asymbp__wbuf_chunk_begin(&w1, ASYMBP__CHUNK_OPTIMIZER);
        ck_assert_int_eq(asymbp__optimizer_write(a.opt, &w1), ASYMBP_OK);
        asymbp__wbuf_chunk_end(&w1, pos);
        ck_assert_int_eq(asymbp__file_write_atomic(ctx, path, ASYMBP__FILE_CHECKPOINT, &w1), ASYMBP_OK);
        ck_assert_int_eq(asymbp__file_read(ctx, path, ASYMBP__FILE_CHECKPOINT, &data, &r), ASYMBP_OK);
        ck_assert_int_eq(asymbp__rbuf_chunk(&r, ASYMBP__CHUNK_OPTIMIZER, &chunk), 0);
        ck_assert_int_eq(asymbp__optimizer_peek_rule(ctx, &chunk, name, sizeof name), ASYMBP_OK);
        ck_assert_str_eq(name, rules[k]);
        /* a fresh optimizer with other hyper-parameters and schedule, over the same weights */
        rig_make(ctx, &b, name, NULL);
        memcpy(b.w, a.w, sizeof a.w);
        memcpy(b.b, a.b, sizeof a.b);
        /* truncated payloads are refused and change nothing */
        bad = chunk;
        bad.len = chunk.len - 3;
        ck_assert_int_eq(asymbp__optimizer_read(b.opt, &bad), ASYMBP_E_FORMAT);
        ck_assert_uint_eq(asymbp_optimizer_step_count(b.opt), 0);
        /* created with NULL hyper-parameters: the rule's defaults (bm: 0.0005) */
        ck_assert_float_eq(asymbp_optimizer_get_lr(b.opt), strncmp(name, "bm", 2) == 0 ? 0.0005f : 0.01f);
        ck_assert_int_eq(asymbp__optimizer_read(b.opt, &chunk), ASYMBP_OK);
        ck_assert_uint_eq(chunk.pos, chunk.len);
        ck_assert_uint_eq(asymbp_optimizer_step_count(b.opt), 5);
        ck_assert_uint_eq(asymbp_optimizer_get_epoch(b.opt), 4);
        ck_assert_float_eq(asymbp_optimizer_get_lr(b.opt), asymbp_optimizer_get_lr(a.opt));
        /* writing the restored optimizer gives the same bytes: state bit for bit */
        asymbp__wbuf_init(&w2, ctx);
        pos = asymbp__wbuf_chunk_begin(&w2, ASYMBP__CHUNK_OPTIMIZER);
        ck_assert_int_eq(asymbp__optimizer_write(b.opt, &w2), ASYMBP_OK);
        asymbp__wbuf_chunk_end(&w2, pos);
        ck_assert_uint_eq(w1.len, w2.len);
        ck_assert(memcmp(w1.p, w2.p, w1.len) == 0);
        /* and the two continue identically (the schedule crosses milestone 5 and 8) */
        ck_assert_int_eq(asymbp_optimizer_set_epoch(a.opt, 6), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_set_epoch(b.opt, 6), ASYMBP_OK);
        rig_steps(&a, 5, 4);
        rig_steps(&b, 5, 4);
        ck_assert(memcmp(a.w, b.w, sizeof a.w) == 0);
        ck_assert(memcmp(a.b, b.b, sizeof a.b) == 0);
        asymbp_optimizer_destroy(b.opt);
        /* another rule, or other parameter shapes, are refused */
        rig_make(ctx, &b, k == 0 ? "bm" : "sgd", NULL);
        chunk.pos = 0;
        ck_assert_int_eq(asymbp__optimizer_read(b.opt, &chunk), ASYMBP_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "rule"));
        asymbp_optimizer_destroy(b.opt);
        {
            asymbp_optimizer_t *o2 = NULL;
            chunk.pos = 0;
            ck_assert_int_eq(asymbp__optimizer_create_params(ctx, a.p, 1, rules[k], NULL, &o2), ASYMBP_OK);
            ck_assert_int_eq(asymbp__optimizer_read(o2, &chunk), ASYMBP_E_FORMAT);
            ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "parameter tensors"));
            asymbp_optimizer_destroy(o2);
        }
        asymbp_optimizer_destroy(a.opt);
        asymbp__free(ctx, data);
        asymbp__wbuf_free(&w1);
        asymbp__wbuf_free(&w2);
    }
    test_tmpdir_remove(dir);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Every prefix of a valid payload is refused without crashing (reads stay in bounds). */
START_TEST(test_checkpoint_truncations)
{
    asymbp_ctx_t *ctx = test_ctx();
    rig_t a, b;
    asymbp__wbuf_t w;
    size_t len;
    rig_make(ctx, &a, "bm:c", NULL);
    rig_make(ctx, &b, "bm:c", NULL);
    rig_steps(&a, 0, 2);
    asymbp__wbuf_init(&w, ctx);
    ck_assert_int_eq(asymbp__optimizer_write(a.opt, &w), ASYMBP_OK);
    for (len = 0; len < w.len; len++) {
        asymbp__rbuf_t r = {w.p, len, 0, 0};
        ck_assert_int_eq(asymbp__optimizer_read(b.opt, &r), ASYMBP_E_FORMAT);
    }
    ck_assert_uint_eq(asymbp_optimizer_step_count(b.opt), 0);
    asymbp__wbuf_free(&w);
    asymbp_optimizer_destroy(a.opt);
    asymbp_optimizer_destroy(b.opt);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- OOM ----------------------------------------------------------------------------------- */

START_TEST(test_oom)
{
    long k;
    int ok = 0;
    for (k = 1; !ok && k < 200; k++) {
        test_alloc_t ta = {0, 0, 0};
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_optimizer_t *opt = NULL;
        asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
        const uint64_t ms[1] = {1};
        asymbp__param_t p[2];
        float w[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1};
        asymbp_status_t st;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ta.fail_at = ta.calls + k;
        make_param(&p[0], w, g, 4, ASYMBP__PARAM_WEIGHT, 0, "w");
        make_param(&p[1], w, g, 2, ASYMBP__PARAM_BIAS, 0, "b");
        st = asymbp__optimizer_create_params(ctx, p, 2, "bm:nsc", &hp, &opt);
        if (st == ASYMBP_OK) {
            st = asymbp_optimizer_set_schedule_step(opt, ms, 1, 0.5f);
            if (st == ASYMBP_OK) {
                ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK); /* no allocation in a step */
                ok = 1;
            }
            asymbp_optimizer_destroy(opt);
        } else {
            ck_assert_ptr_null(opt);
        }
        if (!ok) ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
    }
    ck_assert(ok);
}
END_TEST

/* Registration when memory runs out: ASYMBP_E_NOMEM, the registry unchanged, user_free not run
 * (the user data stays the caller's), nothing leaked; the read-only queries never allocate. */
static asymbp_status_t oom_fb_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user; (void)state; (void)a;
    return ASYMBP_OK;
}

START_TEST(test_register_oom)
{
    long k;
    int done = 0;
    for (k = 1; !done && k < 20; k++) {
        test_alloc_t ta = {0, 0, 0};
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_update_rule_vtable_t uvt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
        asymbp_feedback_vtable_t fvt = ASYMBP_FEEDBACK_VTABLE_INIT;
        asymbp_update_rule_t *r = NULL;
        asymbp_status_t s1, s2;
        long calls;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        calls = ta.calls;
        ck_assert_uint_eq(asymbp_update_rule_count(ctx), 7);
        ck_assert_uint_eq(asymbp_feedback_count(ctx), 10);
        ck_assert_int_eq(asymbp_update_rule_find(ctx, "bm+b", &r), ASYMBP_OK);
        ck_assert_int_eq(ta.calls, calls);
        frees = 0;
        uvt.name = "oom-rule";
        uvt.step = plug_step;
        fvt.name = "oom-fb";
        fvt.init = oom_fb_init;
        ta.fail_at = ta.calls + k;
        s1 = asymbp_update_rule_register(ctx, &uvt, NULL, count_free, NULL);
        s2 = asymbp_feedback_register(ctx, &fvt, NULL, count_free);
        ta.fail_at = 0;
        ck_assert(s1 == ASYMBP_OK || s1 == ASYMBP_E_NOMEM);
        ck_assert(s2 == ASYMBP_OK || s2 == ASYMBP_E_NOMEM);
        ck_assert_uint_eq(asymbp_update_rule_count(ctx), s1 == ASYMBP_OK ? 8u : 7u);
        ck_assert_uint_eq(asymbp_feedback_count(ctx), s2 == ASYMBP_OK ? 11u : 10u);
        ck_assert_int_eq(frees, 0);
        done = s1 == ASYMBP_OK && s2 == ASYMBP_OK;
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(frees, (s1 == ASYMBP_OK) + (s2 == ASYMBP_OK));
        ck_assert_int_eq(ta.live, 0);
    }
    ck_assert(done);
}
END_TEST

/* ---- with a real net ----------------------------------------------------------------------- */

/* XOR-like: 2 features, 2 classes, 64 points, label = sign(x0) xor sign(x1). */
static void xor_data(float *x, int32_t *y, int n)
{
    asymbp_rng_t *rng = NULL;
    int i;
    (void)rng;
    for (i = 0; i < n; i++) {
        double a = sin(12.9898 * i) * 43758.5453, b = sin(78.233 * i) * 12345.678;
        a = 2.0 * (a - floor(a)) - 1.0;
        b = 2.0 * (b - floor(b)) - 1.0;
        x[2 * i] = (float)a;
        x[2 * i + 1] = (float)b;
        y[i] = (a > 0) != (b > 0);
    }
}

/* Train mlp:16 (BN after the hidden layer when bn) on XOR with `rule`; returns the accuracy. */
static float train_xor(const char *rule, float lr, int bn, int check_signs)
{
    enum { NPTS = 64, EPOCHS = 300 };
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    float x[2 * NPTS], loss = 0, acc = 0;
    int32_t y[NPTS];
    float *sign0 = NULL;
    size_t np, i, total = 0;
    int e;
    xor_data(x, y, NPTS);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:16", 2, 1, 1, 2, bn, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, NPTS), ASYMBP_OK);
    hp.lr = lr;
    hp.weight_decay = 1e-4f;
    ck_assert_int_eq(asymbp_optimizer_create(net, rule, &hp, &opt), ASYMBP_OK);
    np = asymbp_optimizer_param_count(opt);
    ck_assert_uint_eq(np, asymbp__net_param_count(net));
    if (check_signs) {
        for (i = 0; i < np; i++) total += asymbp__net_param_at(net, i)->numel;
        sign0 = calloc(total, sizeof *sign0);
        for (i = 0, total = 0; i < np; i++) {
            asymbp__param_t *p = asymbp__net_param_at(net, i);
            size_t j;
            for (j = 0; j < p->numel; j++) sign0[total++] = (float)dsgn(p->value[j]);
        }
    }
    for (e = 0; e < (test_quick() ? EPOCHS / 3 : EPOCHS); e++) {
        ck_assert_int_eq(asymbp_optimizer_set_epoch(opt, (uint64_t)e), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_forward(net, x, NPTS, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, NPTS, &loss), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    ck_assert_uint_eq(asymbp__net_step(net), (uint64_t)e);
    ck_assert_uint_eq(asymbp_optimizer_step_count(opt), (uint64_t)e);
    if (check_signs) {
        for (i = 0, total = 0; i < np; i++) {
            asymbp__param_t *p = asymbp__net_param_at(net, i);
            size_t j;
            for (j = 0; j < p->numel; j++, total++)
                if (p->kind == ASYMBP__PARAM_WEIGHT && sign0[total] != 0.0f)
                    ck_assert_msg((float)dsgn(p->value[j]) == sign0[total], "%s[%zu] changed sign", p->name, j);
        }
        free(sign0);
    }
    ck_assert_int_eq(asymbp_net_evaluate(net, x, y, NPTS, &loss, &acc), ASYMBP_OK);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return acc;
}

START_TEST(test_train_xor_every_rule)
{
    static const struct { const char *rule; float lr; } cases[] = {
        {"sgd", 0.1f}, {"bm", 0.002f}, {"bm:b", 0.002f}, {"bm:c", 0.01f}, {"bm:nsc", 0.002f},
    };
    size_t k;
    float min_acc = test_quick() ? 0.75f : 0.9f;
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float acc = train_xor(cases[k].rule, cases[k].lr, 0, strstr(cases[k].rule, "nsc") != NULL);
        ck_assert_msg(acc >= min_acc, "%s: accuracy %.3f on XOR", cases[k].rule, (double)acc);
    }
    ck_assert_float_ge(train_xor("sgd", 0.1f, 1, 0), min_acc);
}
END_TEST

START_TEST(test_net_param_info)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    plug_log_t log;
    memset(&log, 0, sizeof log);
    vt.name = "plug";
    vt.init = plug_init;
    vt.step = plug_step;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &vt, &log, NULL, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:5", 3, 1, 1, 2, 1, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 4), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_create(net, "plug", NULL, &opt), ASYMBP_OK);
    ck_assert_int_eq(log.inits, (int)asymbp__net_param_count(net));
    ck_assert_uint_eq(log.numel_seen, asymbp_net_weight_count(net));
    ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    ck_assert_int_eq(log.steps, (int)asymbp__net_param_count(net));
    ck_assert_uint_eq(asymbp__net_step(net), 1);
    asymbp_optimizer_destroy(opt);
    ck_assert_int_eq(asymbp_optimizer_create(net, "nope", NULL, &opt), ASYMBP_E_NOTFOUND);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

Suite *asymbp_test_update_suite(void);
Suite *asymbp_test_update_suite(void)
{
    Suite *s = suite_create("update");
    TCase *tc = tcase_create("rules");
    TCase *tn = tcase_create("net");
    (void)g_ctx;
    tcase_set_timeout(tn, 60);
    tcase_add_test(tc, test_rules_against_reference);
    tcase_add_test(tc, test_rules_by_hand);
    tcase_add_test(tc, test_bm_ignores_magnitude);
    tcase_add_test(tc, test_nsc);
    tcase_add_test(tc, test_registry_names);
    tcase_add_test(tc, test_register_compat);
    tcase_add_test(tc, test_plugin_failures);
    tcase_add_test(tc, test_user_rule_adam);
    tcase_add_test(tc, test_decay_groups);
    tcase_add_test(tc, test_hyper_misuse);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_checkpoint_roundtrip);
    tcase_add_test(tc, test_checkpoint_truncations);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_register_oom);
    tcase_add_test(tn, test_train_xor_every_rule);
    tcase_add_test(tn, test_net_param_info);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tn);
    return s;
}
