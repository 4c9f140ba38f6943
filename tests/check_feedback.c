/* Feedback policies: registry and plugin ABI, setting parser, the policies' math on a hand-made
 * layer, their wiring into nets (only the delta sent down changes), refresh timing (lazy for the
 * lowest layer, which sends no delta), per-layer assignment, diagnostics and the exact-backprop
 * probe, save/restore, and a combination sweep. */
#include "layers/net_hooks.h"
#include <string.h>
#include <math.h>
#include "test_util.h"
#include "asymbp/net.h"
#include "asymbp/update.h"
#include "asymbp/feedback.h"
#include "feedback/feedback_impl.h"
#include "layers/net_impl.h"
#include "update/update_impl.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

static float sgnf(float w) { return (float)((w > 0.0f) - (w < 0.0f)); }

/* A small deterministic generator for test data (independent of the library's RNG). */
static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}
static float lcg_unif(uint64_t *s) { return (float)(lcg(s) >> 8) / 16777216.0f; }

/* Weights in [-1, 1) with every 7th exactly 0 (sign(0) = 0 must hold). */
static void fill_weights(float *w, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) w[i] = (i % 7 == 3) ? 0.0f : 2.0f * lcg_unif(&s) - 1.0f;
}

static void mk_wl(asymbp__wlayer_t *wl, float *W, size_t out, size_t in)
{
    memset(wl, 0, sizeof *wl);
    wl->layer_index = 0;
    wl->W = W;
    wl->numel = out * in;
    wl->ndim = 2;
    wl->shape[0] = (int64_t)out;
    wl->shape[1] = (int64_t)in;
    wl->fan_in = in;
    wl->fan_out = out;
}

/* Gaussian blobs: k classes in d dimensions, n samples. */
static void make_blobs(float *x, int32_t *y, size_t n, size_t d, int k, uint64_t seed)
{
    uint64_t s = seed;
    float centers[8][64]; /* k <= 8 classes, d <= 64 dimensions */
    for (int c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++) centers[c][j] = 2.0f * lcg_unif(&s) - 1.0f;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % (size_t)k);
        y[i] = c;
        for (size_t j = 0; j < d; j++) {
            float u = lcg_unif(&s) + lcg_unif(&s) + lcg_unif(&s) - 1.5f; /* ~ N(0, 0.25) */
            x[i * d + j] = 1.5f * centers[c][j] + 0.6f * u;
        }
    }
}

static asymbp_net_t *mk_net(asymbp_ctx_t *ctx, const char *spec, int64_t c, int64_t h, int64_t w, int bn, size_t batch)
{
    asymbp_net_t *net = NULL;
    ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 11), ASYMBP_OK);
    ck_assert_msg(asymbp_net_from_spec(ctx, spec, c, h, w, 4, bn, &net) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    ck_assert_int_eq(asymbp_net_bind(net, batch), ASYMBP_OK);
    return net;
}

static void fwd_bwd(asymbp_net_t *net, const float *x, const int32_t *y, size_t n, float *loss)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    ck_assert_msg(asymbp_net_forward(net, x, n, 1, NULL) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    ck_assert_int_eq(asymbp_net_loss(net, y, n, loss), ASYMBP_OK);
    ck_assert_msg(asymbp_net_backward(net) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static double fnorm(const float *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

/* Fraction of W != 0 with sign(V) == sign(W). */
static double concordance(const float *V, const float *W, size_t n)
{
    size_t nz = 0, ok = 0;
    for (size_t i = 0; i < n; i++)
        if (W[i] != 0.0f) {
            nz++;
            ok += sgnf(V[i]) == sgnf(W[i]);
        }
    return (double)ok / (double)nz;
}

/* ---- a user policy: V = k W (k from the options), counting its callbacks ----------------------- */

typedef struct count_state {
    float k;
    uint64_t inits, refreshes, updates;
    uint64_t last_refresh_step, last_update_step;
} count_state_t;

static int count_fini_calls;
static int count_user_free_calls;

static asymbp_status_t count_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    count_state_t *st = state;
    (void)user;
    st->k = 1.0f;
    if (strncmp(a->options, "k=", 2) == 0) st->k = (float)atof(a->options + 2);
    else if (a->options[0]) return ASYMBP_E_INVALID;
    st->inits++;
    for (size_t i = 0; i < a->numel; i++) a->V[i] = st->k * a->W[i];
    return ASYMBP_OK;
}
static asymbp_status_t count_refresh(void *user, void *state, const asymbp_feedback_args_t *a)
{
    count_state_t *st = state;
    (void)user;
    st->refreshes++;
    st->last_refresh_step = a->step;
    for (size_t i = 0; i < a->numel; i++) a->V[i] = st->k * a->W[i];
    return ASYMBP_OK;
}
static asymbp_status_t count_after(void *user, void *state, const asymbp_feedback_args_t *a)
{
    count_state_t *st = state;
    (void)user;
    st->updates++;
    st->last_update_step = a->step;
    return ASYMBP_OK;
}
static void count_fini(void *user, void *state) { (void)user; (void)state; count_fini_calls++; }
static void count_free(void *user) { (void)user; count_user_free_calls++; }

static void register_count(asymbp_ctx_t *ctx)
{
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    vt.name = "count";
    vt.state_size = sizeof(count_state_t);
    vt.init = count_init;
    vt.refresh = count_refresh;
    vt.after_update = count_after;
    vt.fini = count_fini;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_OK);
}

/* ---- registry and plugin ABI ------------------------------------------------------------------ */

static asymbp_status_t never_called(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user; (void)state; (void)a;
    ck_abort_msg("a member beyond struct_size was called");
    return ASYMBP_E_PLUGIN;
}
static void never_fini(void *user, void *state) { (void)user; (void)state; ck_abort_msg("fini beyond struct_size called"); }
static size_t never_scratch(void *user, const asymbp_feedback_args_t *a)
{
    (void)user; (void)a;
    ck_abort_msg("scratch_size beyond struct_size called");
    return 0;
}

START_TEST(test_registry)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    const char *builtins[] = {"sym", "usf", "brsf", "frsf", "partial", "rndf", "signed-init", "dfa", "kp", "mirror"};
    size_t n0, i;
    count_user_free_calls = 0;
    n0 = asymbp_feedback_count(ctx);
    ck_assert_uint_eq(n0, 10);
    for (i = 0; i < 10; i++) ck_assert_str_eq(asymbp_feedback_name_at(ctx, i), builtins[i]);
    ck_assert_ptr_null(asymbp_feedback_name_at(ctx, 10));
    ck_assert_uint_eq(asymbp_feedback_count(NULL), 0);

    vt.name = "mine";
    vt.init = count_init;
    /* unknown abi_version: refused, user_free not called */
    vt.abi_version = ASYMBP_PLUGIN_ABI_VERSION + 1;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "abi_version"));
    vt.abi_version = ASYMBP_PLUGIN_ABI_VERSION;
    /* too small a struct */
    vt.struct_size = (uint32_t)offsetof(asymbp_feedback_vtable_t, init);
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_UNSUPPORTED);
    vt.struct_size = (uint32_t)sizeof vt;
    /* bad names, duplicates (case-insensitive, aliases), nothing to compute V with */
    vt.name = "a:b";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "BRSF";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "bp";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "empty";
    vt.init = NULL;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.init = count_init;
    vt.flags = 0x80;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_UNSUPPORTED);
    /* symmetric and direct (or wanting W before the step) at once; deliver without direct */
    vt.flags = ASYMBP_FEEDBACK_SYMMETRIC | ASYMBP_FEEDBACK_DIRECT;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.flags = ASYMBP_FEEDBACK_SYMMETRIC | ASYMBP_FEEDBACK_W_BEFORE;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.flags = 0;
    vt.deliver = never_called;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "deliver"));
    vt.deliver = NULL;
    /* names of the new built-ins are taken */
    vt.name = "DFA";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "Mirror";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_E_INVALID);
    vt.name = "empty";
    ck_assert_int_eq(asymbp_feedback_register(NULL, &vt, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_feedback_register(ctx, NULL, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(count_user_free_calls, 0);

    /* an older, shorter vtable: members beyond struct_size are never read */
    vt.name = "short";
    vt.struct_size = (uint32_t)ASYMBP_FEEDBACK_VTABLE_MIN_SIZE;
    vt.after_update = never_called;
    vt.fini = never_fini;
    vt.deliver = never_called;
    vt.scratch_size = never_scratch;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, count_free), ASYMBP_OK);
    vt.name = "Short";
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_uint_eq(asymbp_feedback_count(ctx), 11);
    ck_assert_str_eq(asymbp_feedback_name_at(ctx, 10), "short");

    /* unregister: built-ins refused, unknown names reported, user_free exactly once */
    ck_assert_int_eq(asymbp_feedback_unregister(ctx, "usf"), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_feedback_unregister(ctx, "nope"), ASYMBP_E_NOTFOUND);
    ck_assert_int_eq(asymbp_feedback_unregister(ctx, "SHORT"), ASYMBP_OK);
    ck_assert_int_eq(count_user_free_calls, 1);
    ck_assert_int_eq(asymbp_feedback_unregister(ctx, "short"), ASYMBP_E_NOTFOUND);
    ck_assert_uint_eq(asymbp_feedback_count(ctx), 10);
    register_count(ctx);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(count_user_free_calls, 2);
}
END_TEST

START_TEST(test_parse_settings)
{
    asymbp_ctx_t *ctx = test_ctx();
    const char *good[] = {"sym", "bp", "BP", "usf", "uSF", "brsf", "brSF", "frsf", "partial:0.5", "partial:p=0.25",
                          "partial:0.5:redraw", "partial:0:fixed", "partial:1:mask=redraw:m=step:mag=one",
                          "frsf:mag=uniform:scale=xavier", "brsf:scale=he", "usf:scale=0.05", "rndf", "fa",
                          "rndf:dist=normal:scale=none", "signed-init", "signed-init:mag=uniform"};
    struct { const char *s; asymbp_status_t st; const char *msg; } bad[] = {
        {"nonexistent", ASYMBP_E_NOTFOUND, "unknown policy 'nonexistent'"},
        {"", ASYMBP_E_NOTFOUND, "no policy name"},
        {"partial", ASYMBP_E_FORMAT, "probability p is missing"},
        {"partial:1.5", ASYMBP_E_FORMAT, "p must be"},
        {"partial:-0.1", ASYMBP_E_FORMAT, "p must be"},
        {"partial:0.5:0.6", ASYMBP_E_FORMAT, "given twice"},
        {"partial:0.5:mask=sometimes", ASYMBP_E_FORMAT, "mask must be"},
        {"usf:mag=uniform", ASYMBP_E_FORMAT, "not accepted"},
        {"brsf:", ASYMBP_E_FORMAT, "empty option"},
        {"brsf::mag=one", ASYMBP_E_FORMAT, "empty option"},
        {"brsf:0.5", ASYMBP_E_FORMAT, "not accepted"},
        {"frsf:scale=-1", ASYMBP_E_FORMAT, "scale must be"},
        {"frsf:scale=abc", ASYMBP_E_FORMAT, "scale must be"},
        {"frsf:mag=gauss", ASYMBP_E_FORMAT, "mag must be"},
        {"frsf:colour=red", ASYMBP_E_FORMAT, "unknown option"},
        {"sym:1", ASYMBP_E_FORMAT, "takes no options"},
        {"rndf:dist=cauchy", ASYMBP_E_FORMAT, "dist must be"},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(asymbp_feedback_check_setting(ctx, good[i]) == ASYMBP_OK, "'%s': %s", good[i],
                      asymbp_ctx_last_error(ctx));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        asymbp_status_t st = asymbp_feedback_check_setting(ctx, bad[i].s);
        ck_assert_msg(st == bad[i].st, "'%s' gave %s", bad[i].s, asymbp_status_name(st));
        ck_assert_msg(strstr(asymbp_ctx_last_error(ctx), bad[i].msg) != NULL, "'%s': message '%s'", bad[i].s,
                      asymbp_ctx_last_error(ctx));
    }
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "rndf"));
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_feedback_check_setting(NULL, "sym"), ASYMBP_E_INVALID);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- policy math on a hand-made layer ---------------------------------------------------------- */

#define HM_OUT 40
#define HM_IN 50
#define HM_N (HM_OUT * HM_IN)

static asymbp__fb_inst_t *hm_inst(asymbp_ctx_t *ctx, asymbp__wlayer_t *wl, const char *setting)
{
    asymbp__fb_inst_t *inst = NULL;
    ck_assert_msg(asymbp__fb_inst_create(ctx, wl, setting, 99, 0, &inst) == ASYMBP_OK, "%s: %s", setting,
                  asymbp_ctx_last_error(ctx));
    ck_assert_ptr_nonnull(inst);
    asymbp__fb_inst_attach(wl, inst);
    return inst;
}

static void hm_done(asymbp_ctx_t *ctx, asymbp__wlayer_t *wl)
{
    asymbp__fb_inst_t *inst = wl->fb;
    asymbp__fb_inst_attach(wl, NULL);
    asymbp__fb_inst_destroy(ctx, inst);
}

static void flip_some(float *W, size_t n)
{
    for (size_t i = 0; i < n; i += 3) W[i] = -W[i];
}

START_TEST(test_math_usf)
{
    asymbp_ctx_t *ctx = test_ctx();
    static float W[HM_N];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst;
    float s = (float)sqrt(2.0 / (HM_IN + HM_OUT));
    fill_weights(W, HM_N, 1);
    mk_wl(&wl, W, HM_OUT, HM_IN);
    inst = hm_inst(ctx, &wl, "usf");
    ck_assert_ptr_eq(wl.V, wl.V_store);
    ck_assert_ptr_ne(wl.V, wl.W);
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(wl.V[i], sgnf(W[i])); /* sign(0) = 0 */
    flip_some(W, HM_N);
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(wl.V[i], sgnf(W[i]));
    hm_done(ctx, &wl);
    inst = hm_inst(ctx, &wl, "usf:scale=xavier");
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(wl.V[i], s * sgnf(W[i]));
    hm_done(ctx, &wl);
    inst = hm_inst(ctx, &wl, "usf:scale=0.25");
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(wl.V[i], 0.25f * sgnf(W[i]));
    (void)inst;
    hm_done(ctx, &wl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_math_brsf)
{
    asymbp_ctx_t *ctx = test_ctx();
    static float W[HM_N], V1[HM_N], V2[HM_N];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst;
    double mean = 0.0;
    size_t nz = 0;
    fill_weights(W, HM_N, 2);
    mk_wl(&wl, W, HM_OUT, HM_IN);
    inst = hm_inst(ctx, &wl, "brsf");
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
    memcpy(V1, wl.V, sizeof V1);
    /* a second refresh request for the same step redraws nothing */
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
    ck_assert(same_floats(V1, wl.V, HM_N));
    for (size_t i = 0; i < HM_N; i++) {
        ck_assert_float_eq(sgnf(V1[i]), sgnf(W[i]));
        if (W[i] != 0.0f) { mean += fabs(V1[i]); nz++; }
    }
    mean /= (double)nz;
    ck_assert_msg(fabs(mean - sqrt(2.0 / 3.141592653589793)) < 0.04, "E|N(0,1)| = %g", mean); /* 0.798 */
    /* the next step redraws M; the signs follow W, also after W's signs changed */
    flip_some(W, HM_N);
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 2), ASYMBP_OK);
    memcpy(V2, wl.V, sizeof V2);
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(sgnf(V2[i]), sgnf(W[i]));
    {
        size_t same = 0;
        for (size_t i = 0; i < HM_N; i++) same += W[i] != 0.0f && fabsf(V2[i]) == fabsf(V1[i]);
        ck_assert_uint_lt(same, 5);
    }
    hm_done(ctx, &wl);
    /* uniform magnitudes: mean 1/2, and strictly positive */
    inst = hm_inst(ctx, &wl, "brsf:mag=uniform");
    mean = 0.0;
    for (size_t i = 0; i < HM_N; i++)
        if (W[i] != 0.0f) {
            ck_assert_float_gt(fabsf(wl.V[i]), 0.0f);
            mean += fabs(wl.V[i]);
        }
    mean /= (double)nz;
    ck_assert_msg(fabs(mean - 0.5) < 0.03, "E U(0,1) = %g", mean);
    (void)inst;
    hm_done(ctx, &wl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_math_frsf_rndf_signed_init)
{
    asymbp_ctx_t *ctx = test_ctx();
    static float W[HM_N], W0[HM_N], V0[HM_N];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst;
    double var = 0.0, mean = 0.0, xav2 = 2.0 / (HM_IN + HM_OUT);
    fill_weights(W, HM_N, 3);
    memcpy(W0, W, sizeof W0);
    mk_wl(&wl, W, HM_OUT, HM_IN);

    /* FRSF: |V| (= M) never changes, sign(V) follows W */
    inst = hm_inst(ctx, &wl, "frsf");
    memcpy(V0, wl.V, sizeof V0);
    for (uint64_t step = 1; step <= 4; step++) {
        flip_some(W, HM_N);
        ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, step), ASYMBP_OK);
        for (size_t i = 0; i < HM_N; i++) {
            ck_assert_float_eq(sgnf(wl.V[i]), sgnf(W[i]));
            if (W[i] != 0.0f) ck_assert_float_eq(fabsf(wl.V[i]), fabsf(V0[i]));
        }
    }
    hm_done(ctx, &wl);

    /* RndF: zero-mean, Xavier variance, independent of W and never changes */
    memcpy(W, W0, sizeof W0);
    inst = hm_inst(ctx, &wl, "rndf");
    memcpy(V0, wl.V, sizeof V0);
    for (size_t i = 0; i < HM_N; i++) {
        mean += V0[i];
        var += (double)V0[i] * V0[i];
        ck_assert_float_le(fabsf(V0[i]), (float)sqrt(3.0 * xav2) + 1e-6f);
    }
    mean /= HM_N;
    var /= HM_N;
    ck_assert_msg(fabs(mean) < 4.0 * sqrt(xav2 / HM_N), "rndf mean %g", mean);
    ck_assert_msg(fabs(var / xav2 - 1.0) < 0.08, "rndf var %g vs %g", var, xav2);
    ck_assert_double_lt(fabs(concordance(V0, W, HM_N) - 0.5), 4.0 * 0.5 / sqrt(HM_N * 6.0 / 7.0));
    flip_some(W, HM_N);
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
    ck_assert(same_floats(V0, wl.V, HM_N));
    hm_done(ctx, &wl);

    /* signed-init: signs of W at creation, kept when W changes */
    memcpy(W, W0, sizeof W0);
    inst = hm_inst(ctx, &wl, "signed-init");
    memcpy(V0, wl.V, sizeof V0);
    for (size_t i = 0; i < HM_N; i++) ck_assert_float_eq(sgnf(V0[i]), sgnf(W0[i]));
    flip_some(W, HM_N);
    ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
    ck_assert(same_floats(V0, wl.V, HM_N));
    ck_assert_double_lt(concordance(wl.V, W, HM_N), 0.7);
    hm_done(ctx, &wl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_math_partial)
{
    asymbp_ctx_t *ctx = test_ctx();
    enum { N = 200 * 100 };
    static float W[N], V1[N];
    const double ps[3] = {0.25, 0.5, 0.75};
    asymbp__wlayer_t wl;
    size_t nz = 0;
    fill_weights(W, N, 4);
    for (size_t i = 0; i < N; i++) nz += W[i] != 0.0f;
    mk_wl(&wl, W, 200, 100);
    for (int k = 0; k < 3; k++) {
        char setting[64];
        double bound = 4.0 * sqrt(ps[k] * (1 - ps[k]) / (double)nz), c;
        asymbp__fb_inst_t *inst;
        snprintf(setting, sizeof setting, "partial:%g", ps[k]);
        inst = hm_inst(ctx, &wl, setting);
        c = concordance(wl.V, W, N);
        ck_assert_msg(fabs(c - ps[k]) < bound, "%s: concordance %g", setting, c);
        /* fixed mask: the same disagreements after a refresh (W unchanged) */
        memcpy(V1, wl.V, sizeof V1);
        ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, 1), ASYMBP_OK);
        ck_assert(same_floats(V1, wl.V, N));
        hm_done(ctx, &wl);
        /* redrawn mask: a different mask every step, the same concordance */
        snprintf(setting, sizeof setting, "partial:%g:redraw", ps[k]);
        inst = hm_inst(ctx, &wl, setting);
        for (uint64_t step = 1; step <= 3; step++) {
            size_t same = 0;
            memcpy(V1, wl.V, sizeof V1);
            ck_assert_int_eq(asymbp__fb_inst_refresh(ctx, &wl, inst, step), ASYMBP_OK);
            c = concordance(wl.V, W, N);
            ck_assert_msg(fabs(c - ps[k]) < bound, "%s step %d: concordance %g", setting, (int)step, c);
            for (size_t i = 0; i < N; i++) same += W[i] != 0.0f && sgnf(V1[i]) == sgnf(wl.V[i]);
            ck_assert_uint_lt(same, nz - nz / 10); /* many signs moved */
            for (size_t i = 0; i < N; i++)     /* M fixed by default */
                if (W[i] != 0.0f) ck_assert_float_eq(fabsf(V1[i]), fabsf(wl.V[i]));
        }
        hm_done(ctx, &wl);
    }
    /* p = 1 is fully concordant, p = 0 fully opposed */
    hm_inst(ctx, &wl, "partial:1");
    ck_assert_double_eq(concordance(wl.V, W, N), 1.0);
    hm_done(ctx, &wl);
    hm_inst(ctx, &wl, "partial:0");
    ck_assert_double_eq(concordance(wl.V, W, N), 0.0);
    hm_done(ctx, &wl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_inst_errors)
{
    asymbp_ctx_t *ctx = test_ctx();
    static float W[HM_N];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst = (asymbp__fb_inst_t *)1;
    char longname[300];
    fill_weights(W, HM_N, 5);
    mk_wl(&wl, W, HM_OUT, HM_IN);
    /* plain sym needs no instance */
    ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, "sym", 1, 0, &inst), ASYMBP_OK);
    ck_assert_ptr_null(inst);
    ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, "partial:2", 1, 0, &inst), ASYMBP_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "layer 0"));
    register_count(ctx);
    ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, "count:bogus", 1, 0, &inst), ASYMBP_E_PLUGIN);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "'count'"));
    memset(longname, 'a', sizeof longname);
    longname[299] = '\0';
    ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, longname, 1, 0, &inst), ASYMBP_E_INVALID);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- wiring into nets ---------------------------------------------------------------------------- */

#define NB 32   /* samples in the test batches */
#define ND 8    /* features */

static const char *const all_settings[] = {"sym", "usf", "brsf", "frsf", "partial:0.5", "partial:0.5:redraw",
                                           "rndf", "signed-init", "frsf:mag=uniform:scale=xavier"};
#define N_SETTINGS (sizeof all_settings / sizeof *all_settings)

/* Copy of every gradient of a net (caller frees). */
static float *grads_copy(asymbp_net_t *net, size_t *total)
{
    size_t n = 0, off = 0;
    float *g;
    for (size_t i = 0; i < asymbp__net_param_count(net); i++) n += asymbp__net_param_at(net, i)->numel;
    g = malloc(n * sizeof *g);
    for (size_t i = 0; i < asymbp__net_param_count(net); i++) {
        asymbp__param_t *p = asymbp__net_param_at(net, i);
        memcpy(g + off, p->grad, p->numel * sizeof(float));
        off += p->numel;
    }
    *total = n;
    return g;
}

START_TEST(test_sym_bit_for_bit)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * 36], loss_a, loss_b;
    int32_t y[NB];
    const char *specs[2] = {"mlp:16,12", "conv3x3x4p1,relu,maxpool2s2,conv3x3x3p1,relu,fc4"};
    for (int s = 0; s < 2; s++) {
        size_t d = s == 0 ? ND : 36, na, nb;
        asymbp_net_t *a = mk_net(ctx, specs[s], s == 0 ? ND : 1, s == 0 ? 1 : 6, s == 0 ? 1 : 6, 0, NB);
        asymbp_net_t *b = mk_net(ctx, specs[s], s == 0 ? ND : 1, s == 0 ? 1 : 6, s == 0 ? 1 : 6, 0, NB);
        float *ga, *gb;
        make_blobs(x, y, NB, d, 4, 7);
        /* b: first an asymmetric setting, then back to sym; and sym set explicitly */
        ck_assert_int_eq(asymbp_net_set_feedback(b, "brsf"), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_feedback(b, "sym"), ASYMBP_OK);
        for (size_t i = 0; i < asymbp_net_feedback_layer_count(b); i++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(b, i);
            ck_assert_ptr_null(wl->V);       /* symmetric costs nothing: no V, no copy */
            ck_assert_ptr_null(wl->V_store);
            ck_assert_ptr_null(wl->fb);
        }
        fwd_bwd(a, x, y, NB, &loss_a);
        fwd_bwd(b, x, y, NB, &loss_b);
        ck_assert_float_eq(loss_a, loss_b);
        ga = grads_copy(a, &na);
        gb = grads_copy(b, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(same_floats(ga, gb, na));
        free(ga);
        free(gb);
        asymbp_net_destroy(a);
        asymbp_net_destroy(b);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* For every policy: the top layer's gradient equals backprop's, hidden layers get non-zero
 * gradients, bias-free layers work; and V = 2W (a user policy) doubles exactly the gradients
 * of every layer below the first weighted layer it sits on, dense and conv. */
START_TEST(test_only_delta_changes)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * 36];
    int32_t y[NB];
    const char *specs[2] = {"fc16,relu,fc12,relu,fc4", "conv3x3x4p1,relu,maxpool2s2,conv3x3x3p1,relu,fc4"};
    register_count(ctx);
    for (int s = 0; s < 2; s++) {
        int64_t c = s == 0 ? ND : 1, hw = s == 0 ? 1 : 6;
        size_t d = s == 0 ? ND : 36;
        asymbp_net_t *ref = mk_net(ctx, specs[s], c, hw, hw, 0, NB);
        size_t nref, np = asymbp__net_param_count(ref), nw = asymbp_net_feedback_layer_count(ref);
        float *gref;
        make_blobs(x, y, NB, d, 4, 8);
        fwd_bwd(ref, x, y, NB, NULL);
        gref = grads_copy(ref, &nref);
        for (size_t k = 0; k < N_SETTINGS + 1; k++) {
            const char *setting = k < N_SETTINGS ? all_settings[k] : "count:k=2";
            asymbp_net_t *net = mk_net(ctx, specs[s], c, hw, hw, 0, NB);
            asymbp__param_t *top = NULL;
            size_t off = 0;
            ck_assert_msg(asymbp_net_set_feedback(net, setting) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
            fwd_bwd(net, x, y, NB, NULL);
            for (size_t i = 0; i < np; i++) {
                asymbp__param_t *p = asymbp__net_param_at(net, i);
                int is_top = p->layer_index == asymbp__net_wlayer_at(net, nw - 1)->layer_index;
                float factor = 1.0f; /* V = 2W on every layer: 2 per weighted layer above */
                for (size_t l = 0; l < nw; l++)
                    if (asymbp__net_wlayer_at(net, l)->layer_index > p->layer_index) factor *= 2.0f;
                if (is_top) {
                    /* top weights and bias: exactly backprop's */
                    ck_assert_msg(same_floats(p->grad, gref + off, p->numel), "%s: %s differs from BP", setting,
                                  p->name);
                    top = p;
                } else {
                    ck_assert_msg(fnorm(p->grad, p->numel) > 0.0, "%s: %s has a zero gradient", setting, p->name);
                    if (k == N_SETTINGS) { /* V = 2W: exactly a power of two times backprop's */
                        for (size_t j = 0; j < p->numel; j++)
                            ck_assert_msg(p->grad[j] == factor * gref[off + j], "%s: %s[%zu] %g vs %g x %g", setting,
                                          p->name, j, p->grad[j], factor, gref[off + j]);
                    } else if (strcmp(setting, "sym") == 0) {
                        ck_assert(same_floats(p->grad, gref + off, p->numel));
                    }
                }
                off += p->numel;
            }
            ck_assert_ptr_nonnull(top);
            asymbp_net_destroy(net);
        }
        free(gref);
        asymbp_net_destroy(ref);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Layers without bias work under every policy. */
START_TEST(test_no_bias)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 9);
    for (size_t k = 0; k < N_SETTINGS; k++) {
        asymbp_net_t *net = NULL;
        ck_assert_int_eq(asymbp_net_create(ctx, ND, 1, 1, 4, &net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_add_dense(net, 10, 0), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_add_relu(net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_add_dense(net, 4, 0), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_bind(net, NB), ASYMBP_OK);
        ck_assert_uint_eq(asymbp_net_param_count(net), 2);
        ck_assert_int_eq(asymbp_net_set_feedback(net, all_settings[k]), ASYMBP_OK);
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert(fnorm(asymbp__net_param_at(net, 0)->grad, asymbp__net_param_at(net, 0)->numel) > 0.0);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Reference backward in double for fc(W1,b1) -> relu -> fc(W2,b2) -> softmax xent with feedback V2. */
START_TEST(test_reference_backward)
{
    asymbp_ctx_t *ctx = test_ctx();
    enum { H = 6, K = 4, N = 8 };
    float x[N * ND];
    int32_t y[N];
    asymbp_net_t *net = mk_net(ctx, "fc6,relu,fc4", ND, 1, 1, 0, N);
    asymbp__wlayer_t *l1 = asymbp__net_wlayer_at(net, 0), *l2 = asymbp__net_wlayer_at(net, 1);
    asymbp__param_t *pw1 = asymbp__net_param_at(net, 0), *pb1 = asymbp__net_param_at(net, 1);
    asymbp__param_t *pw2 = asymbp__net_param_at(net, 2);
    double dW1[H * ND] = {0}, db1[H] = {0}, dW2[K * H] = {0};
    make_blobs(x, y, N, ND, K, 10);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "brsf"), ASYMBP_OK);
    fwd_bwd(net, x, y, N, NULL);
    for (int s = 0; s < N; s++) {
        double h[H], z[K], p[K], mx = -1e30, sum = 0, d2[K], dh[H];
        for (int j = 0; j < H; j++) {
            double a = pb1->value[j];
            for (int i = 0; i < ND; i++) a += (double)l1->W[j * ND + i] * x[s * ND + i];
            h[j] = a > 0 ? a : 0;
        }
        for (int k = 0; k < K; k++) {
            z[k] = asymbp__net_param_at(net, 3)->value[k];
            for (int j = 0; j < H; j++) z[k] += (double)l2->W[k * H + j] * h[j];
            if (z[k] > mx) mx = z[k];
        }
        for (int k = 0; k < K; k++) sum += p[k] = exp(z[k] - mx);
        for (int k = 0; k < K; k++) d2[k] = (p[k] / sum - (k == y[s])) / N;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < H; j++) dW2[k * H + j] += d2[k] * h[j];
        for (int j = 0; j < H; j++) {
            dh[j] = 0;
            for (int k = 0; k < K; k++) dh[j] += (double)l2->V[k * H + j] * d2[k]; /* V, not W */
            if (h[j] <= 0) dh[j] = 0;
            db1[j] += dh[j];
            for (int i = 0; i < ND; i++) dW1[j * ND + i] += dh[j] * x[s * ND + i];
        }
    }
    for (int i = 0; i < K * H; i++) ck_assert_double_lt(test_rel_err(pw2->grad[i], dW2[i]), 1e-4);
    for (int i = 0; i < H * ND; i++)
        ck_assert_msg(fabs(pw1->grad[i] - dW1[i]) < 1e-5 + 1e-4 * fabs(dW1[i]), "dW1[%d] %g vs %g", i, pw1->grad[i],
                      dW1[i]);
    for (int j = 0; j < H; j++) ck_assert(fabs(pb1->grad[j] - db1[j]) < 1e-5 + 1e-4 * fabs(db1[j]));
    /* and the delta norm the net reports is ||V2^T d2 masked...|| before the ReLU: at least > 0 */
    ck_assert_double_gt(l2->delta_norm, 0.0);
    ck_assert_double_eq(l1->delta_norm, 0.0);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

static asymbp_optimizer_t *mk_opt(asymbp_net_t *net, const char *rule, float lr, float momentum)
{
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_optimizer_t *opt = NULL;
    hp.lr = lr;
    hp.momentum = momentum;
    ck_assert_msg(asymbp_optimizer_create(net, rule, &hp, &opt) == ASYMBP_OK, "%s",
                  asymbp_ctx_last_error(asymbp__net_ctx(net)));
    return opt;
}

/* BRSF redraws M exactly once per optimizer step, never on an evaluation pass or a second
 * backward of the same step; signs follow W after W's signs changed; FRSF's M and RndF never
 * change; signed-init keeps the initial signs.  Also the refresh/after_update counts of a plugin. */
START_TEST(test_refresh_timing)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    const char *settings[5] = {"brsf", "frsf", "usf", "rndf", "signed-init"};
    make_blobs(x, y, NB, ND, 4, 11);
    for (int k = 0; k < 5; k++) {
        asymbp_net_t *net = mk_net(ctx, "mlp:12", ND, 1, 1, 1, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "bm", 0.01f, 0.0f);
        size_t nw = asymbp_net_feedback_layer_count(net);
        float *V0[4], *Vprev[4], *W0[4];
        ck_assert_int_eq(asymbp_net_set_feedback(net, settings[k]), ASYMBP_OK);
        for (size_t l = 0; l < nw; l++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, l);
            V0[l] = malloc(wl->numel * sizeof(float));
            Vprev[l] = malloc(wl->numel * sizeof(float));
            W0[l] = malloc(wl->numel * sizeof(float));
            memcpy(V0[l], wl->V, wl->numel * sizeof(float));
            memcpy(W0[l], wl->W, wl->numel * sizeof(float));
        }
        for (int step = 0; step < 4; step++) {
            fwd_bwd(net, x, y, NB, NULL);
            for (size_t l = 0; l < nw; l++) {
                asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, l);
                memcpy(Vprev[l], wl->V, wl->numel * sizeof(float));
            }
            /* a second backward and an evaluation in the same step: V unchanged */
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_net_evaluate(net, x, y, NB, NULL, NULL), ASYMBP_OK);
            for (size_t l = 0; l < nw; l++) {
                asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, l);
                ck_assert_msg(same_floats(Vprev[l], wl->V, wl->numel), "%s changed V within a step", settings[k]);
                if (!asymbp__net_wlayer_reads_feedback(net, wl)) {
                    /* the lowest layer sends no delta: its V is not refreshed (lazy), it stays
                     * what init wrote until something reads it (test_lazy_refresh) */
                    ck_assert_uint_eq(l, 0);
                    ck_assert_msg(same_floats(V0[l], wl->V, wl->numel), "%s refreshed the lowest layer", settings[k]);
                    continue;
                }
                for (size_t i = 0; i < wl->numel; i++) {
                    float v = wl->V[i], w = wl->W[i];
                    if (k <= 2) ck_assert_float_eq(sgnf(v), sgnf(w));
                    if (k == 1 && w != 0.0f) ck_assert_float_eq(fabsf(v), fabsf(V0[l][i])); /* FRSF: M fixed */
                    if (k == 3 || k == 4) ck_assert_float_eq(v, V0[l][i]);                  /* fixed V */
                    if (k == 4) ck_assert_float_eq(sgnf(v), sgnf(W0[l][i]));
                }
                if (k == 0 && step > 0) { /* BRSF: M redrawn at this step's first backward */
                    size_t same = 0;
                    for (size_t i = 0; i < wl->numel; i++) same += fabsf(wl->V[i]) == fabsf(V0[l][i]);
                    ck_assert_uint_lt(same, wl->numel / 20 + 1);
                }
                memcpy(V0[l], wl->V, wl->numel * sizeof(float));
            }
            if (k == 0 || k == 1 || k == 2) { /* flip a third of the signs of every weight matrix */
                for (size_t l = 0; l < nw; l++) flip_some(asymbp__net_wlayer_at(net, l)->W, asymbp__net_wlayer_at(net, l)->numel);
            }
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        for (size_t l = 0; l < nw; l++) {
            free(V0[l]);
            free(Vprev[l]);
            free(W0[l]);
        }
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }
    /* a plugin sees exactly one refresh per step and one after_update per step, with step numbers;
     * the lowest layer (which sends no delta) no refresh at all */
    {
        asymbp_net_t *net = mk_net(ctx, "mlp:12", ND, 1, 1, 0, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.05f, 0.9f);
        register_count(ctx);
        count_fini_calls = 0;
        ck_assert_int_eq(asymbp_net_set_feedback(net, "count"), ASYMBP_OK);
        for (int step = 0; step < 5; step++) {
            fwd_bwd(net, x, y, NB, NULL);
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_net_evaluate(net, x, y, NB, NULL, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        for (size_t l = 0; l < asymbp_net_feedback_layer_count(net); l++) {
            count_state_t *st = ((asymbp__fb_inst_t *)asymbp__net_wlayer_at(net, l)->fb)->state;
            ck_assert_uint_eq(st->inits, 1);
            ck_assert_uint_eq(st->refreshes, l == 0 ? 0 : 5);
            ck_assert_uint_eq(st->updates, 5);
            ck_assert_uint_eq(st->last_refresh_step, l == 0 ? 0 : 5);
            ck_assert_uint_eq(st->last_update_step, 5);
        }
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        ck_assert_int_eq(count_fini_calls, 2);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

static count_state_t *count_st(asymbp_net_t *net, size_t l)
{
    return ((asymbp__fb_inst_t *)asymbp__net_wlayer_at(net, l)->fb)->state;
}

static void gradcheck_fb(asymbp_net_t *net, const float *x, const int32_t *y)
{
    asymbp_gradcheck_params_t p = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t r = ASYMBP_GRADCHECK_REPORT_INIT;
    p.use_feedback = 1;
    p.max_entries_per_param = 2;
    ck_assert_msg(asymbp_net_gradcheck(net, x, y, 4, &p, &r) == ASYMBP_OK, "%s",
                  asymbp_ctx_last_error(asymbp__net_ctx(net)));
    ck_assert_uint_gt(r.input_checked, 0);
}

static asymbp_status_t copy_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user;
    (void)state;
    memcpy(a->V, a->W, a->numel * sizeof(float));
    return ASYMBP_OK;
}
static asymbp_status_t failing_refresh(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user;
    (void)state;
    (void)a;
    return ASYMBP_E_RANGE;
}

/* Lazy refresh: the lowest weighted layer sends no delta, so training never refreshes its V
 * (it keeps its bookkeeping and knows it is stale); the diagnostics, the probe and a backward that
 * wants the input gradient (gradcheck with the feedback) refresh it for the step the net is at,
 * at most once per step.  BRSF: the diagnostics of the lowest layer follow W's signs. */
START_TEST(test_lazy_refresh)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 15);
    register_count(ctx);
    {
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.05f, 0.0f);
        asymbp_feedback_diag_t d[3] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        asymbp_feedback_diag_t one = ASYMBP_FEEDBACK_DIAG_INIT;
        ck_assert_int_eq(asymbp_net_set_feedback(net, "count:k=-2"), ASYMBP_OK);
        ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, asymbp__net_wlayer_at(net, 0)), 0);
        ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, asymbp__net_wlayer_at(net, 1)), 1);
        /* a probe that fails (no backward yet) refreshes nothing */
        ck_assert_int_eq(asymbp_net_feedback_probe(net, d, 3), ASYMBP_E_STATE);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 0);
        for (int s = 0; s < 3; s++) {
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 0);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 3);
        ck_assert_uint_eq(count_st(net, 2)->refreshes, 3);
        ck_assert_uint_eq(count_st(net, 0)->updates, 3);
        /* diag of another layer leaves the lowest alone; between steps it shows the V the next
         * backward will use (made from the current W): refreshed for step 4 now, once */
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 1, &one), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 1, &one), ASYMBP_OK);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 0);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 4);
        ck_assert_uint_eq(count_st(net, 1)->last_refresh_step, 4);
        ck_assert_double_eq(one.sign_concordance, 0.0); /* V = -2 W of the current W */
        /* diag of the lowest layer: refreshed for step 4 (3 done), once */
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 0, &one), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 0, &one), ASYMBP_OK);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 1);
        ck_assert_uint_eq(count_st(net, 0)->last_refresh_step, 4);
        ck_assert_double_eq(one.sign_concordance, 0.0); /* V = -2 W of the current W */
        ck_assert_double_eq_tol(one.norm_ratio, 2.0, 1e-6);
        /* step 4's training backward refreshes the layers not yet fresh for it (layer 2) */
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 1);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 4);
        ck_assert_uint_eq(count_st(net, 2)->refreshes, 4);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        /* the probe after step 5's backward refreshes it for step 5 */
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 1);
        ck_assert_msg(asymbp_net_feedback_probe(net, d, 3) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 2);
        ck_assert_uint_eq(count_st(net, 0)->last_refresh_step, 5);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 5);
        ck_assert_double_eq(d[0].sign_concordance, 0.0);
        ck_assert_double_eq_tol(d[0].norm_ratio, 2.0, 1e-6);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        /* step 6 starts with a backward that wants the input gradient: the lowest layer sends a
         * delta then and is refreshed with the others */
        gradcheck_fb(net, x, y);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 3);
        ck_assert_uint_eq(count_st(net, 0)->last_refresh_step, 6);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 6);
        /* the training backward of that step refreshes nothing more */
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_uint_eq(count_st(net, 0)->refreshes, 3);
        ck_assert_uint_eq(count_st(net, 1)->refreshes, 6);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        ck_assert_uint_eq(count_st(net, 0)->updates, 6);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }
    /* a refresh that fails on the lowest layer: training never calls it, the diagnostics that
     * read its V report the failure */
    {
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_feedback_diag_t d[2] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
        vt.name = "fails";
        vt.init = copy_init;
        vt.refresh = failing_refresh;
        ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 0, "fails"), ASYMBP_OK);
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 1, &d[1]), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 0, &d[0]), ASYMBP_E_PLUGIN);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "net_feedback_diag"));
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "'fails' on layer 0: refresh returned"));
        ck_assert_int_eq(asymbp_net_feedback_probe(net, d, 2), ASYMBP_E_PLUGIN);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "net_feedback_probe"));
        asymbp_net_destroy(net);
    }
    /* BRSF: after W's signs changed, the diagnostics of the lowest layer show V with W's signs
     * and freshly drawn magnitudes; so does the probe at a later step */
    {
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.05f, 0.0f);
        asymbp_feedback_diag_t d[3] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        asymbp_feedback_diag_t one = ASYMBP_FEEDBACK_DIAG_INIT;
        asymbp__wlayer_t *low = asymbp__net_wlayer_at(net, 0);
        float *Vinit;
        size_t same = 0;
        ck_assert_int_eq(asymbp_net_set_feedback(net, "brsf"), ASYMBP_OK);
        Vinit = malloc(low->numel * sizeof(float));
        memcpy(Vinit, low->V, low->numel * sizeof(float));
        for (int s = 0; s < 2; s++) {
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        ck_assert(same_floats(Vinit, low->V, low->numel)); /* stale: never refreshed */
        flip_some(low->W, low->numel);
        ck_assert_double_lt(concordance(low->V, low->W, low->numel), 0.8);
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 0, &one), ASYMBP_OK);
        ck_assert_double_eq(one.sign_concordance, 1.0);
        ck_assert_double_eq(concordance(low->V, low->W, low->numel), 1.0);
        for (size_t i = 0; i < low->numel; i++) same += fabsf(low->V[i]) == fabsf(Vinit[i]);
        ck_assert_uint_lt(same, low->numel / 20 + 1);
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        flip_some(low->W, low->numel);
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_double_lt(concordance(low->V, low->W, low->numel), 0.8);
        ck_assert_msg(asymbp_net_feedback_probe(net, d, 3) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        ck_assert_double_eq(d[0].sign_concordance, 1.0);
        free(Vinit);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A backward that wants the input gradient after the step's training backward (gradcheck in the
 * middle of a step) must not use the stale V of the lowest layer: it is refreshed for the step. */
START_TEST(test_lazy_input_grad_mid_step)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    asymbp_net_t *net;
    asymbp_optimizer_t *opt;
    asymbp__wlayer_t *low;
    make_blobs(x, y, NB, ND, 4, 16);
    register_count(ctx);
    net = mk_net(ctx, "fc12,relu,fc4", ND, 1, 1, 0, NB);
    opt = mk_opt(net, "sgd", 0.05f, 0.0f);
    low = asymbp__net_wlayer_at(net, 0);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "count:k=3"), ASYMBP_OK);
    for (int s = 0; s < 2; s++) {
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    fwd_bwd(net, x, y, NB, NULL); /* step 3: the lowest layer is skipped */
    ck_assert_uint_eq(count_st(net, 0)->refreshes, 0);
    gradcheck_fb(net, x, y);
    ck_assert_uint_eq(count_st(net, 0)->refreshes, 1);
    ck_assert_uint_eq(count_st(net, 0)->last_refresh_step, 3);
    ck_assert_uint_eq(count_st(net, 1)->refreshes, 3);
    for (size_t i = 0; i < low->numel; i++) ck_assert_float_eq(low->V[i], 3.0f * low->W[i]);
    /* again in the same step: nothing more */
    gradcheck_fb(net, x, y);
    ck_assert_uint_eq(count_st(net, 0)->refreshes, 1);
    ck_assert_uint_eq(count_st(net, 1)->refreshes, 3);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_layer_assignment)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
    float x[NB * ND];
    int32_t y[NB];
    size_t nref;
    float *gref;
    make_blobs(x, y, NB, ND, 4, 12);
    ck_assert_uint_eq(asymbp_net_feedback_layer_count(net), 3);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), "sym");
    ck_assert_int_eq(asymbp_net_set_feedback(net, "usf"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, -1, "sym"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 2, "partial:0.75:redraw"), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), "usf");
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 2), "partial:0.75:redraw");
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, -2), "partial:0.75:redraw");
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 4), "sym");
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, -1), "sym");
    ck_assert_ptr_null(asymbp_net_get_layer_feedback(net, 1));
    ck_assert_ptr_null(asymbp_net_get_layer_feedback(net, -4));
    ck_assert_ptr_null(asymbp__net_wlayer_at(net, 2)->V);
    ck_assert_ptr_nonnull(asymbp__net_wlayer_at(net, 0)->V);
    /* errors name what was wrong; nothing changes */
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 1, "usf"), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "relu"));
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 9, "usf"), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "out of range"));
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, -4, "usf"), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "partial:7"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "nope"), ASYMBP_E_NOTFOUND);
    ck_assert_int_eq(asymbp_net_set_feedback(net, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_set_feedback(NULL, "usf"), ASYMBP_E_INVALID);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), "usf");
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 2), "partial:0.75:redraw");
    /* with the classifier symmetric, the classifier's gradient and the one below still follow */
    {
        asymbp_net_t *ref = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        fwd_bwd(ref, x, y, NB, NULL);
        gref = grads_copy(ref, &nref);
        asymbp_net_destroy(ref);
    }
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 2, "usf"), ASYMBP_OK);
    fwd_bwd(net, x, y, NB, NULL);
    {
        size_t n;
        float *g = grads_copy(net, &n);
        size_t first = asymbp__net_param_at(net, 0)->numel + asymbp__net_param_at(net, 1)->numel;
        ck_assert(same_floats(g + first, gref + first, n - first)); /* layers 2 and 4: exact BP */
        ck_assert(!same_floats(g, gref, first));                    /* layer 0: uSF delta from layer 2 */
        free(g);
    }
    free(gref);
    /* a net without weighted layers */
    {
        asymbp_net_t *empty = NULL;
        ck_assert_int_eq(asymbp_net_create(ctx, ND, 1, 1, 4, &empty), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_feedback(empty, "usf"), ASYMBP_E_STATE);
        asymbp_net_destroy(empty);
    }
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_diag_and_probe)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 13);
    for (int k = 0; k < 3; k++) {
        const char *setting = k == 0 ? "sym" : k == 1 ? "usf" : "partial:0.25";
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_feedback_diag_t d[3], one = ASYMBP_FEEDBACK_DIAG_INIT;
        size_t ng, ng2;
        float *g0, *g1, *V0;
        double dn[3];
        asymbp__wlayer_t *mid;
        ck_assert_int_eq(asymbp_net_set_feedback(net, setting), ASYMBP_OK);
        fwd_bwd(net, x, y, NB, NULL);
        mid = asymbp__net_wlayer_at(net, 1);
        V0 = malloc(mid->numel * sizeof(float));
        memcpy(V0, mid->V ? mid->V : mid->W, mid->numel * sizeof(float));
        g0 = grads_copy(net, &ng);
        for (int l = 0; l < 3; l++) {
            d[l] = one;
            dn[l] = asymbp__net_wlayer_at(net, (size_t)l)->delta_norm;
        }
        ck_assert_msg(asymbp_net_feedback_probe(net, d, 3) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        /* gradients, norms and V as they were */
        g1 = grads_copy(net, &ng2);
        ck_assert(same_floats(g0, g1, ng));
        ck_assert(same_floats(V0, mid->V ? mid->V : mid->W, mid->numel));
        for (int l = 0; l < 3; l++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, (size_t)l);
            ck_assert_double_eq(wl->delta_norm, dn[l]);
            ck_assert_int_eq(d[l].layer_index, wl->layer_index);
            ck_assert_double_eq(d[l].delta_norm, dn[l]);
            ck_assert_double_eq(d[l].grad_norm, wl->grad_norm);
        }
        ck_assert_double_eq(d[0].delta_norm, 0.0);
        /* the top layer's gradient is backprop's whatever the policy */
        ck_assert_double_lt(d[2].grad_angle_bp, 1e-3);
        ck_assert_double_eq_tol(d[2].bp_grad_norm, d[2].grad_norm, 1e-9 * d[2].grad_norm);
        if (k == 0) {
            for (int l = 0; l < 3; l++) {
                ck_assert_double_lt(d[l].grad_angle_bp, 1e-3);
                ck_assert_double_eq(d[l].bp_delta_norm, d[l].delta_norm);
                ck_assert_double_eq(d[l].sign_concordance, 1.0);
                ck_assert_double_eq(d[l].angle_vw, 0.0);
                ck_assert_double_eq(d[l].norm_ratio, 1.0);
            }
        } else {
            ck_assert_double_gt(d[1].grad_angle_bp, 1.0);
            ck_assert_double_gt(d[0].grad_angle_bp, 1.0);
            ck_assert_double_ne(d[2].bp_delta_norm, d[2].delta_norm);
            if (k == 1) {
                ck_assert_double_eq(d[1].sign_concordance, 1.0);
                ck_assert_double_lt(d[1].angle_vw, 90.0);
            } else {
                size_t n = asymbp__net_wlayer_at(net, 1)->numel;
                ck_assert_double_lt(fabs(d[1].sign_concordance - 0.25), 4 * sqrt(0.25 * 0.75 / (double)n));
                ck_assert_double_gt(d[1].angle_vw, 90.0);
            }
            /* norm ratio matches a direct computation */
            ck_assert_double_eq_tol(d[1].norm_ratio, fnorm(mid->V, mid->numel) / fnorm(mid->W, mid->numel), 1e-9);
        }
        /* the single-layer call agrees, and leaves the probe members NaN */
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 1, &one), ASYMBP_OK);
        ck_assert_double_eq(one.sign_concordance, d[1].sign_concordance);
        ck_assert_double_eq(one.angle_vw, d[1].angle_vw);
        ck_assert(isnan(one.grad_angle_bp));
        /* misuse */
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 3, &one), ASYMBP_E_INVALID);
        ck_assert_int_eq(asymbp_net_feedback_probe(net, d, 2), ASYMBP_E_INVALID);
        one.struct_size = 8;
        ck_assert_int_eq(asymbp_net_feedback_diag(net, 0, &one), ASYMBP_E_UNSUPPORTED);
        free(g0);
        free(g1);
        free(V0);
        asymbp_net_destroy(net);
    }
    /* no backward yet: the probe reports a state error and changes nothing */
    {
        asymbp_net_t *net = mk_net(ctx, "mlp:8", ND, 1, 1, 0, NB);
        asymbp_feedback_diag_t d[2] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        ck_assert_int_eq(asymbp_net_feedback_probe(net, d, 2), ASYMBP_E_STATE);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Diagnostics between optimizer steps report one moment for every layer (the V the next backward
 * uses, from the current W: uSF concordance 1 everywhere) and change nothing in training: a BRSF
 * run that reads every layer's diagnostics after each step and after each backward ends with
 * the same weights and V bit for bit as one that never looks (V compared after the next
 * backward, for which the looking run drew early). */
START_TEST(test_diag_between_steps)
{
    float x[NB * ND];
    int32_t y[NB];
    float *w[2];
    size_t nw[2];
    make_blobs(x, y, NB, ND, 4, 21);
    for (int look = 0; look < 2; look++) {
        asymbp_ctx_t *ctx = test_ctx();
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.5f, 0.0f);
        asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
        size_t total = 0, off = 0;
        ck_assert_int_eq(asymbp_net_set_feedback(net, "brsf"), ASYMBP_OK);
        for (int s = 0; s < 6; s++) {
            fwd_bwd(net, x, y, NB, NULL);
            for (size_t l = 0; look && l < 3; l++) ck_assert_int_eq(asymbp_net_feedback_diag(net, l, &d), ASYMBP_OK);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
            for (size_t l = 0; look && l < 3; l++) {
                ck_assert_int_eq(asymbp_net_feedback_diag(net, l, &d), ASYMBP_OK);
                ck_assert_double_eq(d.sign_concordance, 1.0);
            }
        }
        /* the next backward: the run that looked drew step 7's magnitudes early, the other now */
        fwd_bwd(net, x, y, NB, NULL);
        for (size_t l = 0; l < 3; l++) total += 2 * asymbp__net_wlayer_at(net, l)->numel;
        w[look] = malloc(total * sizeof(float));
        for (size_t l = 0; l < 3; l++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, l);
            memcpy(w[look] + off, wl->W, wl->numel * sizeof(float));
            off += wl->numel;
            if (l > 0) memcpy(w[look] + off, wl->V, wl->numel * sizeof(float)); /* the lowest: stale without looks */
            else memset(w[look] + off, 0, wl->numel * sizeof(float));
            off += wl->numel;
        }
        nw[look] = total;
        /* uSF after a step with a large rate: every layer's V follows the current signs */
        ck_assert_int_eq(asymbp_net_set_feedback(net, "usf"), ASYMBP_OK);
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        for (size_t l = 0; l < 3; l++) {
            ck_assert_int_eq(asymbp_net_feedback_diag(net, l, &d), ASYMBP_OK);
            ck_assert_double_eq(d.sign_concordance, 1.0);
        }
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        asymbp_ctx_destroy(ctx);
    }
    ck_assert_uint_eq(nw[0], nw[1]);
    ck_assert(same_floats(w[0], w[1], nw[0]));
    free(w[0]);
    free(w[1]);
}
END_TEST

/* Save after k steps, continue; load into a fresh net, continue: bit-identical weights and V. */
START_TEST(test_state_round_trip)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    asymbp__wbuf_t w;
    asymbp__rbuf_t r;
    asymbp_net_t *a, *b = NULL;
    asymbp_optimizer_t *oa, *ob;
    make_blobs(x, y, NB, ND, 4, 14);
    a = mk_net(ctx, "mlp:12,10", ND, 1, 1, 1, NB);
    register_count(ctx);
    ck_assert_int_eq(asymbp_net_set_feedback(a, "brsf"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_layer_feedback(a, -1, "frsf:mag=uniform"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_layer_feedback(a, -2, "partial:0.5:redraw:m=step"), ASYMBP_OK);
    oa = mk_opt(a, "sgd", 0.05f, 0.0f);
    for (int s = 0; s < 3; s++) {
        fwd_bwd(a, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
    }
    asymbp__wbuf_init(&w, ctx);
    ck_assert_int_eq(asymbp__net_write(a, &w), ASYMBP_OK);
    ck_assert_int_eq(asymbp__feedback_write(a, &w), ASYMBP_OK);
    for (int s = 0; s < 3; s++) {
        fwd_bwd(a, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
    }
    memset(&r, 0, sizeof r);
    r.p = w.p;
    r.len = w.len;
    ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 12345), ASYMBP_OK); /* loading must not depend on it */
    ck_assert_int_eq(asymbp__net_read(ctx, &r, &b), ASYMBP_OK);
    ck_assert_msg(asymbp__feedback_read(b, &r) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    asymbp__net_set_step(b, 3);
    ck_assert_int_eq(asymbp_net_bind(b, NB), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(b, -2), "partial:0.5:redraw:m=step");
    ob = mk_opt(b, "sgd", 0.05f, 0.0f);
    for (int s = 0; s < 3; s++) {
        fwd_bwd(b, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(ob), ASYMBP_OK);
    }
    for (size_t i = 0; i < asymbp__net_param_count(a); i++) {
        asymbp__param_t *pa = asymbp__net_param_at(a, i), *pb = asymbp__net_param_at(b, i);
        ck_assert_msg(same_floats(pa->value, pb->value, pa->numel), "%s differs after resume", pa->name);
    }
    for (size_t l = 0; l < 3; l++) {
        asymbp__wlayer_t *la = asymbp__net_wlayer_at(a, l), *lb = asymbp__net_wlayer_at(b, l);
        ck_assert(same_floats(la->V, lb->V, la->numel));
    }
    /* the lowest layer's V is stale in both (lazy refresh, saved with its bookkeeping); read
     * through the diagnostics, both bring it up to date to the same V */
    {
        asymbp__wlayer_t *la = asymbp__net_wlayer_at(a, 0), *lb = asymbp__net_wlayer_at(b, 0);
        asymbp_feedback_diag_t da = ASYMBP_FEEDBACK_DIAG_INIT, db = ASYMBP_FEEDBACK_DIAG_INIT;
        ck_assert_uint_lt(((asymbp__fb_inst_t *)la->fb)->last_step, asymbp__net_step(a) + 1);
        ck_assert_int_eq(asymbp_net_feedback_diag(a, 0, &da), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_feedback_diag(b, 0, &db), ASYMBP_OK);
        ck_assert_uint_eq(((asymbp__fb_inst_t *)la->fb)->last_step, asymbp__net_step(a) + 1);
        ck_assert_uint_eq(((asymbp__fb_inst_t *)lb->fb)->last_step, asymbp__net_step(b) + 1);
        ck_assert(same_floats(la->V, lb->V, la->numel));
        ck_assert_double_eq(da.sign_concordance, 1.0);
        ck_assert_double_eq(da.angle_vw, db.angle_vw);
    }
    /* a file for another architecture is refused and leaves the net as it was */
    {
        asymbp_net_t *c = mk_net(ctx, "mlp:12", ND, 1, 1, 0, NB);
        ck_assert_int_eq(asymbp__feedback_read(c, &r), ASYMBP_E_FORMAT);
        ck_assert_str_eq(asymbp_net_get_layer_feedback(c, 0), "sym");
        asymbp_net_destroy(c);
    }
    /* a policy that is not registered in the reading context */
    {
        asymbp_ctx_t *ctx2 = test_ctx();
        asymbp__wbuf_t w2;
        asymbp__rbuf_t r2;
        asymbp_net_t *c = NULL, *d2 = mk_net(ctx, "mlp:12", ND, 1, 1, 0, NB);
        ck_assert_int_eq(asymbp_net_set_feedback(d2, "count:k=3"), ASYMBP_OK);
        asymbp__wbuf_init(&w2, ctx);
        ck_assert_int_eq(asymbp__net_write(d2, &w2), ASYMBP_OK);
        ck_assert_int_eq(asymbp__feedback_write(d2, &w2), ASYMBP_OK);
        memset(&r2, 0, sizeof r2);
        r2.p = w2.p;
        r2.len = w2.len;
        ck_assert_int_eq(asymbp__net_read(ctx2, &r2, &c), ASYMBP_OK);
        ck_assert_int_eq(asymbp__feedback_read(c, &r2), ASYMBP_E_NOTFOUND);
        register_count(ctx2);
        ck_assert_int_eq(asymbp__feedback_read(c, &r2), ASYMBP_OK);
        ck_assert_float_eq(((count_state_t *)((asymbp__fb_inst_t *)asymbp__net_wlayer_at(c, 0)->fb)->state)->k, 3.0f);
        /* a truncated record and an unknown format version are refused; the net keeps its policy */
        {
            asymbp__wbuf_t w3;
            asymbp__rbuf_t r3;
            size_t pos;
            asymbp__wbuf_init(&w3, ctx);
            pos = asymbp__wbuf_chunk_begin(&w3, "FDBK");
            asymbp__wbuf_u32(&w3, 1);
            asymbp__wbuf_u32(&w3, 2);
            asymbp__wbuf_u32(&w3, 1);
            asymbp__wbuf_str(&w3, "usf");
            asymbp__wbuf_chunk_end(&w3, pos);
            memset(&r3, 0, sizeof r3);
            r3.p = w3.p;
            r3.len = w3.len;
            ck_assert_int_eq(asymbp__feedback_read(c, &r3), ASYMBP_E_FORMAT);
            ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx2), "truncated"));
            w3.p[12] = 9; /* the version field after tag and length */
            ck_assert_int_eq(asymbp__feedback_read(c, &r3), ASYMBP_E_FORMAT);
            ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx2), "version"));
            ck_assert_str_eq(asymbp_net_get_layer_feedback(c, 0), "count:k=3");
            asymbp__wbuf_free(&w3);
        }
        asymbp_net_destroy(c);
        asymbp_net_destroy(d2);
        asymbp__wbuf_free(&w2);
        asymbp_ctx_destroy(ctx2);
    }
    asymbp__wbuf_free(&w);
    asymbp_optimizer_destroy(oa);
    asymbp_optimizer_destroy(ob);
    asymbp_net_destroy(a);
    asymbp_net_destroy(b);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Every allocation of an assignment can fail: NOMEM, the old feedback stays, nothing leaks. */
START_TEST(test_oom)
{
    test_alloc_t ta = {0, 0, 0};
    asymbp_allocator_t al = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    int ok = 0;
    ck_assert_int_eq(asymbp_ctx_create(&al, &ctx), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:12,10", ND, 1, 1, 4, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "usf"), ASYMBP_OK); /* registry and hooks exist */
    for (long k = 1; k < 200 && !ok; k++) {
        long live = ta.live;
        asymbp_status_t st;
        ta.fail_at = ta.calls + k;
        st = asymbp_net_set_feedback(net, "partial:0.5");
        ta.fail_at = 0;
        if (st == ASYMBP_OK) { ok = 1; break; }
        ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        ck_assert_int_eq(ta.live, live);
        ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), "usf");
        ck_assert_str_eq(asymbp_net_get_layer_feedback(net, -1), "usf");
    }
    ck_assert(ok);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(net, -1), "partial:0.5");
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

/* A user policy from a short (older) vtable trains a small net: V = 0.5 sign(W). */
static asymbp_status_t half_sign(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user; (void)state;
    for (size_t i = 0; i < a->numel; i++) a->V[i] = 0.5f * sgnf(a->W[i]);
    return ASYMBP_OK;
}

static void train(asymbp_net_t *net, asymbp_optimizer_t *opt, const float *x, const int32_t *y, size_t n, int steps,
                  float *first, float *last)
{
    for (int s = 0; s < steps; s++) {
        float loss;
        fwd_bwd(net, x, y, n, &loss);
        if (s == 0) *first = loss;
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, n, last), ASYMBP_OK);
}

START_TEST(test_user_policy_trains)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    float x[64 * ND], first, last;
    int32_t y[64];
    asymbp_net_t *net;
    asymbp_optimizer_t *opt;
    make_blobs(x, y, 64, ND, 4, 15);
    vt.struct_size = (uint32_t)ASYMBP_FEEDBACK_VTABLE_MIN_SIZE;
    vt.name = "half-sign";
    vt.init = half_sign;
    vt.refresh = half_sign;
    vt.after_update = never_called;
    vt.fini = never_fini;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, NULL, NULL), ASYMBP_OK);
    net = mk_net(ctx, "mlp:16", ND, 1, 1, 1, 64);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "half-sign"), ASYMBP_OK);
    opt = mk_opt(net, "sgd", 0.05f, 0.9f);
    train(net, opt, x, y, 64, test_quick() ? 20 : 40, &first, &last);
    ck_assert_msg(last < 0.5f * first, "loss %g -> %g", first, last);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    /* unregistering while a layer uses the policy is refused (as for update rules); once no
     * layer uses it, it ends and user_free runs once */
    {
        asymbp_net_t *n2 = mk_net(ctx, "mlp:8", ND, 1, 1, 0, NB);
        count_user_free_calls = 0;
        register_count(ctx);
        ck_assert_int_eq(asymbp_net_set_feedback(n2, "count"), ASYMBP_OK);
        ck_assert_int_eq(asymbp_feedback_unregister(ctx, "count"), ASYMBP_E_STATE);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "used by 2"));
        fwd_bwd(n2, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_net_set_layer_feedback(n2, 0, "sym"), ASYMBP_OK);
        ck_assert_int_eq(asymbp_feedback_unregister(ctx, "count"), ASYMBP_E_STATE); /* layer 2 still */
        ck_assert_int_eq(count_user_free_calls, 0);
        asymbp_net_destroy(n2);
        ck_assert_int_eq(count_user_free_calls, 0);
        ck_assert_int_eq(asymbp_feedback_unregister(ctx, "count"), ASYMBP_OK);
        ck_assert_int_eq(count_user_free_calls, 1);
        ck_assert_int_eq(asymbp_feedback_unregister(ctx, "count"), ASYMBP_E_NOTFOUND);
    }
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(count_user_free_calls, 1);
}
END_TEST

/* Every feedback setting x {SGD, BM} x {BN on, off}: a tiny net trains a few steps without error;
 * sym, uSF, BRSF and FRSF lower the loss when BN or BM is on (and sym always). */
START_TEST(test_combinations)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[64 * ND];
    int32_t y[64];
    int steps = test_quick() ? 15 : 30;
    make_blobs(x, y, 64, ND, 4, 16);
    for (size_t k = 0; k < N_SETTINGS; k++) {
        for (int bm = 0; bm < 2; bm++) {
            for (int bn = 0; bn < 2; bn++) {
                const char *s = all_settings[k];
                asymbp_net_t *net = mk_net(ctx, "mlp:16,16", ND, 1, 1, bn, 64);
                asymbp_optimizer_t *opt = mk_opt(net, bm ? "bm" : "sgd", bm ? 0.003f : 0.05f, 0.9f);
                float first, last;
                int expect = strcmp(s, "sym") == 0 ||
                             ((bn || bm) && (strcmp(s, "usf") == 0 || strcmp(s, "brsf") == 0 || strcmp(s, "frsf") == 0));
                ck_assert_int_eq(asymbp_net_set_feedback(net, s), ASYMBP_OK);
                train(net, opt, x, y, 64, steps, &first, &last);
                if (expect)
                    ck_assert_msg(last < 0.8f * first, "%s %s bn=%d: loss %g -> %g", s, bm ? "bm" : "sgd", bn, first,
                                  last);
                asymbp_optimizer_destroy(opt);
                asymbp_net_destroy(net);
            }
        }
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* The built-in policies write V on the context's threads: BRSF's magnitudes are drawn in chunks
 * seeded from the step's seed and the chunk number, so V is the same bits on 1, 2 or 3 threads
 * (a layer large enough to be split), with sign(V) = sign(W) and the |N(0,1)| mean. */
static void brsf_threads_V(int threads, const char *setting, float *out, size_t *count)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    enum { B = 4, D = 32 };
    float x[B * D];
    int32_t y[B] = { 0, 1, 2, 3 };
    uint64_t seed = 5;
    asymbp__wlayer_t *wl;
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, threads), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc300,relu,fc130,relu,fc10", D, 1, 1, 10, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, setting), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, B), ASYMBP_OK);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)(lcg(&seed) % 1000) / 500.0f - 1.0f;
    for (int step = 0; step < 2; step++) {
        ck_assert_int_eq(asymbp_net_forward(net, x, B, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, B, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        ck_assert_int_eq(asymbp__net_step_done(net), ASYMBP_OK);
    }
    ck_assert_int_eq(asymbp_net_forward(net, x, B, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, B, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    wl = asymbp__net_wlayer_at(net, 1);
    ck_assert_uint_ge(wl->numel, 300 * 130);
    memcpy(out, wl->V, wl->numel * sizeof(float));
    *count = wl->numel;
    {
        double sum = 0.0;
        for (size_t i = 0; i < wl->numel; i++) {
            ck_assert(sgnf(wl->V[i]) == sgnf(wl->W[i]));
            sum += fabs(wl->V[i]);
        }
        if (!strcmp(setting, "brsf")) ck_assert(fabs(sum / (double)wl->numel - 0.7979) < 0.01);
        else ck_assert(fabs(sum / (double)wl->numel - 1.0) < 1e-6);
    }
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}

START_TEST(test_refresh_on_threads)
{
    static float ref[300 * 130], got[300 * 130];
    const char *settings[] = { "brsf", "usf" };
    for (int k = 0; k < 2; k++) {
        size_t nref, ngot;
        brsf_threads_V(1, settings[k], ref, &nref);
        for (int T = 2; T <= 3; T++) {
            brsf_threads_V(T, settings[k], got, &ngot);
            ck_assert_uint_eq(ngot, nref);
            ck_assert_msg(memcmp(ref, got, nref * sizeof(float)) == 0, "%s: V differs between 1 and %d threads", settings[k], T);
        }
    }
}
END_TEST

/* ---- direct feedback alignment ------------------------------------------------------------------ */

/* Read a whole read-out of a layer into a fresh buffer (caller frees); NULL with *n 0 when the
 * read-out fails with `expect`. */
static float *read_out(asymbp_net_t *net, size_t layer, asymbp_readout_t what, size_t *n)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    float *b;
    ck_assert_msg(asymbp_net_read_layer(net, layer, what, NULL, 0, n) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    b = malloc((*n ? *n : 1) * sizeof *b);
    ck_assert_int_eq(asymbp_net_read_layer(net, layer, what, b, *n, NULL), ASYMBP_OK);
    return b;
}

/* B of every hidden weighted layer has the shape classes x (input size of the next weighted
 * layer), the highest weighted layer has none; B never changes while the weights train; the
 * hidden layers send the error down through W (V is not used); the setting text stays. */
START_TEST(test_dfa_shape_fixed)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * 36];
    int32_t y[NB];
    const char *specs[2] = {"fc6,bn,relu,fc5,relu,fc4", "conv3x3x4p1,relu,maxpool2s2,conv3x3x3p1,relu,fc4"};
    /* per spec: layer index and block size of each weighted layer (0: the highest) */
    const size_t layers[2][3] = {{0, 3, 5}, {0, 3, 5}}, sizes[2][3] = {{6, 5, 0}, {36, 27, 0}};
    for (int s = 0; s < 2; s++) {
        int64_t c = s == 0 ? ND : 1, hw = s == 0 ? 1 : 6;
        asymbp_net_t *net = mk_net(ctx, specs[s], c, hw, hw, 0, NB);
        asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.1f, 0.9f);
        float *B0[2], *W0;
        size_t n, nw = 0;
        make_blobs(x, y, NB, s == 0 ? ND : 36, 4, 30);
        ck_assert_int_eq(asymbp_net_set_feedback(net, "dfa"), ASYMBP_OK);
        for (int l = 0; l < 3; l++) {
            asymbp__wlayer_t *wl = asymbp__net_wlayer_at(net, (size_t)l);
            ck_assert_int_eq(wl->layer_index, (int)layers[s][l]);
            ck_assert_uint_eq(wl->block_size, sizes[s][l]);
            ck_assert_str_eq(asymbp_net_get_layer_feedback(net, (int)layers[s][l]), "dfa");
            ck_assert_ptr_null(wl->V);   /* what the layer sends down goes through W */
            if (l < 2) {
                double mean = 0.0, var = 0.0, lim = sqrt(3.0) * sqrt(2.0 / (double)(4 + sizes[s][l]));
                ck_assert_ptr_nonnull(wl->B);
                B0[l] = read_out(net, layers[s][l], ASYMBP_READ_DIRECT_FEEDBACK, &n);
                ck_assert_uint_eq(n, 4 * sizes[s][l]);
                ck_assert_uint_eq(((asymbp__fb_inst_t *)wl->fb)->numel, n);
                /* R of rndf: uniform on +-sqrt(3) xavier, fan_in the block size, fan_out classes */
                for (size_t i = 0; i < n; i++) {
                    ck_assert(fabs(B0[l][i]) <= lim);
                    mean += B0[l][i];
                    var += (double)B0[l][i] * B0[l][i];
                }
                ck_assert(fabs(mean / (double)n) < 0.5 * lim);
                ck_assert(var / (double)n > 0.1 * lim * lim);
            } else {
                ck_assert_ptr_null(wl->B);
                ck_assert(((asymbp__fb_inst_t *)wl->fb)->inert);
                ck_assert_int_eq(asymbp_net_read_layer(net, layers[s][l], ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n),
                                 ASYMBP_E_STATE);
            }
        }
        /* a layer without weights has no B; sym has none */
        ck_assert_int_eq(asymbp_net_read_layer(net, 1, ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n), ASYMBP_E_INVALID);
        W0 = read_out(net, 0, ASYMBP_READ_WEIGHTS, &nw);
        for (int step = 0; step < 5; step++) {
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        for (int l = 0; l < 2; l++) {
            float *B1 = read_out(net, layers[s][l], ASYMBP_READ_DIRECT_FEEDBACK, &n);
            ck_assert_msg(same_floats(B0[l], B1, n), "B of layer %zu changed", layers[s][l]);
            free(B1);
            free(B0[l]);
        }
        {   /* the weights did train */
            float *W1 = read_out(net, 0, ASYMBP_READ_WEIGHTS, &nw);
            ck_assert(!same_floats(W0, W1, nw));
            free(W1);
        }
        free(W0);
        ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 0, "sym"), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_read_layer(net, 0, ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n), ASYMBP_E_STATE);
        ck_assert_ptr_null(asymbp__net_wlayer_at(net, 0)->B);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Softmax cross-entropy's error by hand: e = (softmax(z) - onehot(y)) / n. */
static void hand_error(const double *z, const int32_t *y, size_t n, size_t K, double *e)
{
    for (size_t s = 0; s < n; s++) {
        double mx = z[s * K], sum = 0.0;
        for (size_t k = 1; k < K; k++) if (z[s * K + k] > mx) mx = z[s * K + k];
        for (size_t k = 0; k < K; k++) sum += exp(z[s * K + k] - mx);
        for (size_t k = 0; k < K; k++) e[s * K + k] = (exp(z[s * K + k] - mx) / sum - (k == (size_t)y[s])) / (double)n;
    }
}

/* out (n x m) = e (n x K) B (K x m) */
static void times_b(const double *e, const float *B, size_t n, size_t K, size_t m, double *out)
{
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < m; j++) {
            double a = 0.0;
            for (size_t k = 0; k < K; k++) a += e[s * K + k] * B[k * m + j];
            out[s * m + j] = a;
        }
}

/* got within 1e-4 of the largest |want| (or of scale, when larger: a bias followed by batch norm
 * has a true gradient of 0 and a float one of rounding size). */
static void expect_close_scaled(const float *got, const double *want, size_t n, double scale, const char *what)
{
    double mx = scale;
    for (size_t i = 0; i < n; i++) if (fabs(want[i]) > mx) mx = fabs(want[i]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-4 * mx + 1e-6 * fabs(want[i]), "%s[%zu]: %g, by hand %g", what, i,
                      got[i], want[i]);
}

static void expect_close(const float *got, const double *want, size_t n, const char *what)
{
    double mx = 1e-30;
    for (size_t i = 0; i < n; i++) if (fabs(want[i]) > mx) mx = fabs(want[i]);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-4 * mx + 1e-6 * fabs(want[i]), "%s[%zu]: %g, by hand %g", what, i,
                      got[i], want[i]);
}

/* The hidden layers' errors are B e passed down through their own block, checked against a
 * computation by hand in double: a dense net with batch norm, and a conv net with max pooling. */
START_TEST(test_dfa_by_hand)
{
    enum { N = 8, H0 = 6, H1 = 5, K = 4 };
    asymbp_ctx_t *ctx = test_ctx();
    float x[N * ND];
    int32_t y[N];
    /* layers: fc0 (6x8) bn1 relu2 fc3 (5x6) relu4 fc5 (4x5) */
    asymbp_net_t *net = mk_net(ctx, "fc6,bn,relu,fc5,relu,fc4", ND, 1, 1, 0, N);
    const float *W0 = asymbp__net_param_at(net, 0)->value, *b0 = asymbp__net_param_at(net, 1)->value;
    const float *gam = asymbp__net_param_at(net, 2)->value, *bet = asymbp__net_param_at(net, 3)->value;
    const float *W3 = asymbp__net_param_at(net, 4)->value, *b3 = asymbp__net_param_at(net, 5)->value;
    const float *W5 = asymbp__net_param_at(net, 6)->value, *b5 = asymbp__net_param_at(net, 7)->value;
    static double h0[N][H0], xh[N][H0], z[N][H0], a2[N][H0], h3[N][H1], a4[N][H1], lo[N][K], e[N][K];
    static double top0[N][H0], top3[N][H1], d0[N][H0], d3[N][H1], dW0[H0 * ND], db0[H0], dgam[H0], dbet[H0];
    static double dW3[H1 * H0], db3[H1], dW5[K * H1], db5[K];
    double sd[H0];
    float *B0, *B3, *got;
    size_t n;
    make_blobs(x, y, N, ND, K, 31);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "dfa"), ASYMBP_OK);
    fwd_bwd(net, x, y, N, NULL);
    B0 = read_out(net, 0, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    ck_assert_uint_eq(n, K * H0);
    B3 = read_out(net, 3, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    ck_assert_uint_eq(n, K * H1);
    /* forward */
    for (int j = 0; j < H0; j++) {
        double mu = 0.0, var = 0.0;
        for (int s = 0; s < N; s++) {
            h0[s][j] = b0[j];
            for (int i = 0; i < ND; i++) h0[s][j] += (double)W0[j * ND + i] * x[s * ND + i];
            mu += h0[s][j] / N;
        }
        for (int s = 0; s < N; s++) var += (h0[s][j] - mu) * (h0[s][j] - mu) / N;
        sd[j] = sqrt(var + 1e-5);
        for (int s = 0; s < N; s++) {
            xh[s][j] = (h0[s][j] - mu) / sd[j];
            z[s][j] = gam[j] * xh[s][j] + bet[j];
            a2[s][j] = z[s][j] > 0 ? z[s][j] : 0.0;
        }
    }
    for (int s = 0; s < N; s++) {
        for (int j = 0; j < H1; j++) {
            h3[s][j] = b3[j];
            for (int i = 0; i < H0; i++) h3[s][j] += (double)W3[j * H0 + i] * a2[s][i];
            a4[s][j] = h3[s][j] > 0 ? h3[s][j] : 0.0;
        }
        for (int k = 0; k < K; k++) {
            lo[s][k] = b5[k];
            for (int i = 0; i < H1; i++) lo[s][k] += (double)W5[k * H1 + i] * a4[s][i];
        }
    }
    hand_error(&lo[0][0], y, N, K, &e[0][0]);
    /* backward: the top layer exactly, each hidden block from e B */
    times_b(&e[0][0], B3, N, K, H1, &top3[0][0]);
    times_b(&e[0][0], B0, N, K, H0, &top0[0][0]);
    for (int s = 0; s < N; s++) {
        for (int k = 0; k < K; k++) {
            db5[k] += e[s][k];
            for (int i = 0; i < H1; i++) dW5[k * H1 + i] += e[s][k] * a4[s][i];
        }
        for (int j = 0; j < H1; j++) {
            d3[s][j] = h3[s][j] > 0 ? top3[s][j] : 0.0;
            db3[j] += d3[s][j];
            for (int i = 0; i < H0; i++) dW3[j * H0 + i] += d3[s][j] * a2[s][i];
        }
    }
    for (int j = 0; j < H0; j++) {   /* ReLU, then batch norm's backward in train mode */
        double sdx = 0.0, sdxx = 0.0, dz[N], dxh[N];
        for (int s = 0; s < N; s++) {
            dz[s] = z[s][j] > 0 ? top0[s][j] : 0.0;
            dgam[j] += dz[s] * xh[s][j];
            dbet[j] += dz[s];
            dxh[s] = dz[s] * gam[j];
            sdx += dxh[s];
            sdxx += dxh[s] * xh[s][j];
        }
        for (int s = 0; s < N; s++) d0[s][j] = (N * dxh[s] - sdx - xh[s][j] * sdxx) / (N * sd[j]);
    }
    for (int s = 0; s < N; s++)
        for (int j = 0; j < H0; j++) {
            db0[j] += d0[s][j];
            for (int i = 0; i < ND; i++) dW0[j * ND + i] += d0[s][j] * x[s * ND + i];
        }
    /* the errors delivered to the block tops (relu4's and relu2's received deltas) and what the
     * layers above them report as sent */
    got = read_out(net, 4, ASYMBP_READ_DELTA_RECEIVED, &n);
    ck_assert_uint_eq(n, N * H1);
    expect_close(got, &top3[0][0], n, "e B3");
    free(got);
    got = read_out(net, 5, ASYMBP_READ_DELTA_SENT, &n);
    expect_close(got, &top3[0][0], n, "fc5 sent");
    ck_assert_double_eq_tol(asymbp__net_wlayer_at(net, 2)->delta_norm, fnorm(got, n), 1e-6 * fnorm(got, n));
    free(got);
    got = read_out(net, 2, ASYMBP_READ_DELTA_RECEIVED, &n);
    expect_close(got, &top0[0][0], n, "e B0");
    ck_assert_double_eq_tol(asymbp__net_wlayer_at(net, 1)->delta_norm, fnorm(got, n), 1e-6 * fnorm(got, n));
    free(got);
    got = read_out(net, 0, ASYMBP_READ_DELTA_RECEIVED, &n);
    expect_close(got, &d0[0][0], n, "fc0 received");
    free(got);
    /* every gradient */
    expect_close(asymbp__net_param_at(net, 0)->grad, dW0, H0 * ND, "dW0");
    expect_close_scaled(asymbp__net_param_at(net, 1)->grad, db0, H0, fabs(dbet[0]) + fabs(dgam[0]), "db0 (0 before BN)");
    expect_close(asymbp__net_param_at(net, 2)->grad, dgam, H0, "dgamma");
    expect_close(asymbp__net_param_at(net, 3)->grad, dbet, H0, "dbeta");
    expect_close(asymbp__net_param_at(net, 4)->grad, dW3, H1 * H0, "dW3");
    expect_close(asymbp__net_param_at(net, 5)->grad, db3, H1, "db3");
    expect_close(asymbp__net_param_at(net, 6)->grad, dW5, K * H1, "dW5 (exact)");
    expect_close(asymbp__net_param_at(net, 7)->grad, db5, K, "db5 (exact)");
    free(B0);
    free(B3);
    asymbp_net_destroy(net);

    /* conv0 (2 filters 3x3, pad 1) relu1 maxpool2 (2x2 s2) fc3: e B through the pooling */
    {
        enum { S = 4, C = 2, P = 2, M = C * P * P, NS = 3 };
        float xc[NS * S * S];
        int32_t yc[NS] = {0, 3, 1};
        static double co[NS][C][S][S], pool[NS][M], lc[NS][K], ec[NS][K], topc[NS][M], dco[NS][C][S][S];
        static double dWc[C * 9], dbc[C];
        const float *Wc, *bc, *Wf, *bf;
        float *Bc;
        uint64_t sd2 = 77;
        net = mk_net(ctx, "conv3x3x2p1,relu,maxpool2s2,fc4", 1, S, S, 0, NS);
        Wc = asymbp__net_param_at(net, 0)->value;
        bc = asymbp__net_param_at(net, 1)->value;
        Wf = asymbp__net_param_at(net, 2)->value;
        bf = asymbp__net_param_at(net, 3)->value;
        for (size_t i = 0; i < sizeof xc / sizeof xc[0]; i++) xc[i] = 2.0f * lcg_unif(&sd2) - 1.0f;
        ck_assert_int_eq(asymbp_net_set_feedback(net, "dfa"), ASYMBP_OK);
        fwd_bwd(net, xc, yc, NS, NULL);
        Bc = read_out(net, 0, ASYMBP_READ_DIRECT_FEEDBACK, &n);
        ck_assert_uint_eq(n, K * M);
        for (int s = 0; s < NS; s++) {
            for (int o = 0; o < C; o++)
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < S; j++) {
                        double a = bc[o];
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int ii = i + ki - 1, jj = j + kj - 1;
                                if (ii >= 0 && ii < S && jj >= 0 && jj < S) a += (double)Wc[o * 9 + ki * 3 + kj] * xc[s * S * S + ii * S + jj];
                            }
                        co[s][o][i][j] = a;
                    }
            for (int o = 0; o < C; o++)
                for (int pi = 0; pi < P; pi++)
                    for (int pj = 0; pj < P; pj++) {
                        double mx = -1e30;
                        for (int di = 0; di < 2; di++)
                            for (int dj = 0; dj < 2; dj++) {
                                double v = co[s][o][2 * pi + di][2 * pj + dj];
                                if (v < 0) v = 0;
                                if (v > mx) mx = v;
                            }
                        pool[s][o * P * P + pi * P + pj] = mx;
                    }
            for (int k = 0; k < K; k++) {
                lc[s][k] = bf[k];
                for (int i = 0; i < M; i++) lc[s][k] += (double)Wf[k * M + i] * pool[s][i];
            }
        }
        hand_error(&lc[0][0], yc, NS, K, &ec[0][0]);
        times_b(&ec[0][0], Bc, NS, K, M, &topc[0][0]);
        got = read_out(net, 2, ASYMBP_READ_DELTA_RECEIVED, &n);   /* the block top: maxpool's output */
        expect_close(got, &topc[0][0], n, "e B (conv)");
        free(got);
        /* each window's error to its first maximum (row-major), through the ReLU mask */
        for (int s = 0; s < NS; s++)
            for (int o = 0; o < C; o++)
                for (int pi = 0; pi < P; pi++)
                    for (int pj = 0; pj < P; pj++) {
                        int bi = 0, bj = 0;
                        double mx = -1e30;
                        for (int di = 0; di < 2; di++)
                            for (int dj = 0; dj < 2; dj++) {
                                double v = co[s][o][2 * pi + di][2 * pj + dj];
                                if (v < 0) v = 0;
                                if (v > mx) { mx = v; bi = 2 * pi + di; bj = 2 * pj + dj; }
                            }
                        if (co[s][o][bi][bj] > 0) dco[s][o][bi][bj] += topc[s][o * P * P + pi * P + pj];
                    }
        for (int s = 0; s < NS; s++)
            for (int o = 0; o < C; o++)
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < S; j++) {
                        dbc[o] += dco[s][o][i][j];
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int ii = i + ki - 1, jj = j + kj - 1;
                                if (ii >= 0 && ii < S && jj >= 0 && jj < S)
                                    dWc[o * 9 + ki * 3 + kj] += dco[s][o][i][j] * xc[s * S * S + ii * S + jj];
                            }
                    }
        got = read_out(net, 0, ASYMBP_READ_DELTA_RECEIVED, &n);
        expect_close(got, &dco[0][0][0][0], n, "conv0 received");
        free(got);
        expect_close(asymbp__net_param_at(net, 0)->grad, dWc, C * 9, "dW conv");
        expect_close(asymbp__net_param_at(net, 1)->grad, dbc, C, "db conv");
        free(Bc);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A DFA variant as a plugin: direct random target projection (Frenkel et al. 2021) sends the
 * one-hot targets instead of the error, -onehot(y) / n through a fixed random B.  Its init
 * checks the shapes the library promises; its deliver checks what it is handed. */
typedef struct drtp_seen {
    int inits, delivers, bad;
    size_t last_samples;
} drtp_seen_t;

static asymbp_status_t drtp_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    drtp_seen_t *seen = user;
    (void)state;
    seen->inits++;
    if (a->struct_size < sizeof *a || !a->direct || a->ndim != 2 || a->shape[0] != a->classes ||
        (size_t)a->shape[1] != a->block_size || a->numel != (size_t)a->classes * a->block_size ||
        a->fan_in != a->block_size || a->fan_out != (size_t)a->classes || !a->V || !a->W || a->w_numel == 0 ||
        a->w_ndim != 2 || (size_t)(a->w_shape[0] * a->w_shape[1]) != a->w_numel || a->error || a->delta)
        seen->bad++;
    for (size_t i = 0; i < a->numel; i++) a->V[i] = asymbp_rng_uniform(a->rng) - 0.5f;
    return ASYMBP_OK;
}

static asymbp_status_t drtp_deliver(void *user, void *state, const asymbp_feedback_args_t *a)
{
    drtp_seen_t *seen = user;
    size_t K = (size_t)a->classes, m = a->block_size;
    (void)state;
    seen->delivers++;
    seen->last_samples = a->samples;
    if (!a->error || !a->labels || !a->delta || a->samples == 0) return ASYMBP_E_INVALID;
    for (size_t s = 0; s < a->samples; s++) {
        double rowsum = 0.0;   /* softmax minus one-hot: each row of the error sums to 0 */
        for (size_t k = 0; k < K; k++) rowsum += a->error[s * K + k];
        if (fabs(rowsum) > 1e-5 || a->labels[s] < 0 || (size_t)a->labels[s] >= K || a->error[s * K + (size_t)a->labels[s]] > 0)
            seen->bad++;
        for (size_t j = 0; j < m; j++) a->delta[s * m + j] = -a->V[(size_t)a->labels[s] * m + j] / (float)a->samples;
    }
    return ASYMBP_OK;
}

static asymbp_status_t failing_deliver(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user; (void)state; (void)a;
    return ASYMBP_E_RANGE;
}

START_TEST(test_dfa_user_variant)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    drtp_seen_t seen = {0, 0, 0, 0};
    float x[64 * ND], first, last, *B, *top;
    int32_t y[64];
    size_t n, m = 16;
    asymbp_net_t *net;
    asymbp_optimizer_t *opt;
    make_blobs(x, y, 64, ND, 4, 32);
    vt.name = "drtp";
    vt.flags = ASYMBP_FEEDBACK_DIRECT;
    vt.init = drtp_init;
    vt.deliver = drtp_deliver;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, &seen, NULL), ASYMBP_OK);
    /* layers: fc0 bn1 relu2 fc3 bn4 relu5 fc6 */
    net = mk_net(ctx, "mlp:16,16", ND, 1, 1, 1, 64);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "drtp"), ASYMBP_OK);
    ck_assert_int_eq(seen.inits, 2);   /* not on the highest weighted layer */
    ck_assert_int_eq(seen.bad, 0);
    fwd_bwd(net, x, y, 64, NULL);
    ck_assert_int_eq(seen.delivers, 2);
    ck_assert_uint_eq(seen.last_samples, 64);
    ck_assert_int_eq(seen.bad, 0);
    /* what reached the top of fc3's block is -onehot(y) B / n, whatever the error was */
    B = read_out(net, 3, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    ck_assert_uint_eq(n, 4 * m);
    top = read_out(net, 5, ASYMBP_READ_DELTA_RECEIVED, &n);
    for (size_t s = 0; s < 64; s++)
        for (size_t j = 0; j < m; j++) ck_assert_float_eq(top[s * m + j], -B[(size_t)y[s] * m + j] / 64.0f);
    free(B);
    free(top);
    opt = mk_opt(net, "sgd", 0.05f, 0.9f);
    train(net, opt, x, y, 64, test_quick() ? 25 : 50, &first, &last);
    ck_assert_msg(last < 0.5f * first, "DRTP: loss %g -> %g", first, last);
    ck_assert_int_eq(seen.bad, 0);
    asymbp_optimizer_destroy(opt);
    /* a failing deliver fails the backward pass with the plugin's name */
    vt.name = "bad-deliver";
    vt.deliver = failing_deliver;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, &seen, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "bad-deliver"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(net, x, 64, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, 64, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_PLUGIN);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "'bad-deliver'"));
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "deliver"));
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Direct and layer policies mixed: a layer policy above a direct layer is not refreshed (its V
 * sends nothing) until something reads it; a direct layer under a layer-policy layer sends its
 * error down through W; a direct policy on the highest weighted layer is inert (exact). */
START_TEST(test_dfa_mixed)
{
    asymbp_ctx_t *ctx = test_ctx();
    float x[NB * ND];
    int32_t y[NB];
    asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB), *ref;
    asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.05f, 0.0f);
    asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
    size_t nr;
    float *gref, *g;
    make_blobs(x, y, NB, ND, 4, 33);
    register_count(ctx);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "count:k=2"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 2, "dfa"), ASYMBP_OK);
    for (int s = 0; s < 3; s++) {
        fwd_bwd(net, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    /* fc4 sends nothing (fc2 is direct): never refreshed; fc2 sends to fc0 through W: fc0's
     * count policy is the lowest layer, not refreshed either */
    ck_assert_uint_eq(count_st(net, 2)->refreshes, 0);
    ck_assert_uint_eq(count_st(net, 0)->refreshes, 0);
    ck_assert_uint_eq(count_st(net, 2)->updates, 3);
    ck_assert_int_eq(asymbp_net_feedback_diag(net, 2, &d), ASYMBP_OK);   /* read: brought up to date */
    ck_assert_uint_eq(count_st(net, 2)->refreshes, 1);
    ck_assert_double_eq(d.norm_ratio, 2.0);
    ck_assert_int_eq(asymbp_net_feedback_diag(net, 1, &d), ASYMBP_OK);  /* the direct layer: no V-W figures */
    ck_assert(isnan(d.sign_concordance) && isnan(d.angle_vw) && isnan(d.norm_ratio));
    /* fc2 (direct) sends fc0 its received error through W: with fc0 sym instead of count the
     * gradients are those of a net whose fc2 -> fc0 step is exact */
    ck_assert_int_eq(asymbp_net_set_layer_feedback(net, 0, "sym"), ASYMBP_OK);
    fwd_bwd(net, x, y, NB, NULL);
    {
        size_t nrec, nsent, nw2;
        float *rec = read_out(net, 2, ASYMBP_READ_DELTA_RECEIVED, &nrec);
        float *sent = read_out(net, 2, ASYMBP_READ_DELTA_SENT, &nsent);
        float *W2 = read_out(net, 2, ASYMBP_READ_WEIGHTS, &nw2);
        float *V2 = read_out(net, 2, ASYMBP_READ_FEEDBACK, &nw2);
        ck_assert_uint_eq(nrec, NB * 10);
        ck_assert_uint_eq(nsent, NB * 12);
        ck_assert(same_floats(W2, V2, nw2));   /* a direct layer's V read-out is W */
        for (size_t s = 0; s < NB; s++)
            for (size_t i = 0; i < 12; i++) {
                double a = 0.0;
                for (size_t j = 0; j < 10; j++) a += (double)W2[j * 12 + i] * rec[s * 10 + j];
                ck_assert(fabs(sent[s * 12 + i] - a) <= 1e-5 * (fabs(a) + 1e-3));
            }
        free(rec);
        free(sent);
        free(W2);
        free(V2);
    }
    /* the highest weighted layer under a direct policy: exact, as sym */
    ref = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
    fwd_bwd(ref, x, y, NB, NULL);
    gref = grads_copy(ref, &nr);
    {
        asymbp_net_t *top = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        ck_assert_int_eq(asymbp_net_set_layer_feedback(top, 4, "dfa"), ASYMBP_OK);
        ck_assert_str_eq(asymbp_net_get_layer_feedback(top, 4), "dfa");
        ck_assert_ptr_null(asymbp__net_wlayer_at(top, 2)->B);
        fwd_bwd(top, x, y, NB, NULL);
        g = grads_copy(top, &nr);
        ck_assert(same_floats(g, gref, nr));
        ck_assert_int_eq(asymbp_net_feedback_diag(top, 2, &d), ASYMBP_OK);
        ck_assert_double_eq(d.angle_vw, 0.0);
        free(g);
        asymbp_net_destroy(top);
    }
    free(gref);
    asymbp_net_destroy(ref);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* dfa assigned while the net's top was fc10 (whose instance is then inert), then relu and fc4
 * added: the old top keeps its inert instance (it receives from fc4 through fc4's V), and a
 * saved net loads with that layer inert again and continues bit for bit. */
START_TEST(test_dfa_layer_added_later)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *a = NULL, *b = NULL;
    asymbp_optimizer_t *oa, *ob;
    asymbp__wbuf_t w;
    asymbp__rbuf_t r;
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 38);
    ck_assert_int_eq(asymbp_net_create(ctx, ND, 1, 1, 4, &a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_add_dense(a, 12, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_add_relu(a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_add_dense(a, 10, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(a, "dfa"), ASYMBP_OK);
    ck_assert(((asymbp__fb_inst_t *)asymbp__net_wlayer_at(a, 1)->fb)->inert);
    ck_assert_int_eq(asymbp_net_add_relu(a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_add_dense(a, 4, 1), ASYMBP_OK);
    ck_assert_uint_eq(asymbp__net_wlayer_at(a, 1)->block_size, 10);
    ck_assert_ptr_null(asymbp__net_wlayer_at(a, 1)->B);        /* still inert */
    ck_assert_ptr_nonnull(asymbp__net_wlayer_at(a, 0)->B);
    ck_assert_ptr_null(asymbp__net_wlayer_at(a, 2)->fb);       /* the added layer starts symmetric */
    ck_assert_int_eq(asymbp_net_bind(a, NB), ASYMBP_OK);
    oa = mk_opt(a, "sgd", 0.05f, 0.9f);
    for (int s = 0; s < 2; s++) {
        fwd_bwd(a, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
    }
    asymbp__wbuf_init(&w, ctx);
    ck_assert_int_eq(asymbp__net_write(a, &w), ASYMBP_OK);
    ck_assert_int_eq(asymbp__feedback_write(a, &w), ASYMBP_OK);
    memset(&r, 0, sizeof r);
    r.p = w.p;
    r.len = w.len;
    ck_assert_int_eq(asymbp__net_read(ctx, &r, &b), ASYMBP_OK);
    ck_assert_msg(asymbp__feedback_read(b, &r) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    ck_assert(((asymbp__fb_inst_t *)asymbp__net_wlayer_at(b, 1)->fb)->inert);
    ck_assert_ptr_null(asymbp__net_wlayer_at(b, 1)->B);
    ck_assert(same_floats(asymbp__net_wlayer_at(a, 0)->B, asymbp__net_wlayer_at(b, 0)->B, 4 * 10));
    asymbp__net_set_step(b, 2);
    ck_assert_int_eq(asymbp_net_bind(b, NB), ASYMBP_OK);
    ob = mk_opt(b, "sgd", 0.05f, 0.0f);
    asymbp_optimizer_destroy(oa);
    oa = mk_opt(a, "sgd", 0.05f, 0.0f);   /* no momentum state to carry over */
    for (int s = 0; s < 2; s++) {
        fwd_bwd(a, x, y, NB, NULL);
        fwd_bwd(b, x, y, NB, NULL);
        ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_step(ob), ASYMBP_OK);
    }
    for (size_t i = 0; i < asymbp__net_param_count(a); i++) {
        asymbp__param_t *pa = asymbp__net_param_at(a, i), *pb = asymbp__net_param_at(b, i);
        ck_assert_msg(same_floats(pa->value, pb->value, pa->numel), "%s differs", pa->name);
    }
    asymbp__wbuf_free(&w);
    asymbp_optimizer_destroy(oa);
    asymbp_optimizer_destroy(ob);
    asymbp_net_destroy(a);
    asymbp_net_destroy(b);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- learned feedback: Kolen-Pollack and the weight mirror -------------------------------------- */

/* digits8x8 from the repository's data folder, standardised per feature. */
static void load_digits(asymbp_ctx_t *ctx, asymbp_dataset_t **tr, asymbp_dataset_t **te)
{
    char root[1100];
    const char *src = getenv("ASYMBP_SRCDIR"), *roots[1];
    snprintf(root, sizeof root, "%s/data", src && *src ? src : ".");
    roots[0] = root;
    ck_assert_msg(asymbp_dataset_load_named(ctx, "digits8x8", roots, 1, tr, te) == ASYMBP_OK, "%s",
                  asymbp_ctx_last_error(ctx));
    ck_assert_int_eq(asymbp_dataset_standardize(*tr, *te, ASYMBP_SCALER_PER_FEATURE, NULL), ASYMBP_OK);
}

/* The V-W angle of every weighted layer (degrees) into ang[]. */
static void vw_angles(asymbp_net_t *net, double *ang)
{
    for (size_t l = 0; l < asymbp_net_feedback_layer_count(net); l++) {
        asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
        ck_assert_int_eq(asymbp_net_feedback_diag(net, l, &d), ASYMBP_OK);
        ang[l] = d.angle_vw;
    }
}

/* Train on digits8x8 (batch 32, shuffled with a fixed stream) for `epochs`; the test accuracy. */
static float digits_train(asymbp_net_t *net, asymbp_optimizer_t *opt, const asymbp_dataset_t *tr,
                          const asymbp_dataset_t *te, int epochs)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    size_t n = asymbp_dataset_count(tr), d = asymbp_dataset_sample_size(tr), B = 32;
    size_t *idx = malloc(n * sizeof *idx);
    float *x = malloc(B * d * sizeof *x), acc = 0.0f;
    int32_t y[32];
    asymbp_rng_t *rng = NULL;
    ck_assert_int_eq(asymbp_rng_create(ctx, 5, 1, &rng), ASYMBP_OK);
    for (int e = 0; e < epochs; e++) {
        ck_assert_int_eq(asymbp_data_permutation(rng, idx, n), ASYMBP_OK);
        for (size_t s = 0; s + B <= n; s += B) {
            ck_assert_int_eq(asymbp_dataset_gather(tr, idx + s, B, x, y), ASYMBP_OK);
            fwd_bwd(net, x, y, B, NULL);
            ck_assert_msg(asymbp_optimizer_step(opt) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        }
    }
    ck_assert_int_eq(asymbp_net_evaluate(net, asymbp_dataset_features(te), asymbp_dataset_labels(te),
                                         asymbp_dataset_count(te), NULL, &acc), ASYMBP_OK);
    asymbp_rng_destroy(rng);
    free(idx);
    free(x);
    return acc;
}

/* A user update rule the feedback knows nothing about: RMSprop (per-element running mean of g^2). */
static asymbp_status_t rms_step(void *user, void *state, const asymbp_update_args_t *a)
{
    float *ms = state;
    (void)user;
    for (size_t i = 0; i < a->n; i++) {
        ms[i] = 0.9f * ms[i] + 0.1f * a->g[i] * a->g[i];
        a->w[i] -= a->lr * a->g[i] / (sqrtf(ms[i]) + 1e-3f);
    }
    return ASYMBP_OK;
}

/* Kolen-Pollack by hand on one layer: after a step, V = W + (1 - decay) (V - W_before), i.e. V
 * received W's change and V - W shrank by (1 - decay); with decay 0, V - W stays. */
START_TEST(test_math_kp)
{
    asymbp_ctx_t *ctx = test_ctx();
    enum { O = 6, I = 10 };
    float W[O * I], V0[O * I], Wb[O * I];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst = NULL;
    fill_weights(W, O * I, 3);
    mk_wl(&wl, W, O, I);
    for (int k = 0; k < 2; k++) {
        float keep = k == 0 ? 0.75f : 1.0f;
        ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, k == 0 ? "kp:decay=0.25" : "kp:decay=0", 1, 0, &inst), ASYMBP_OK);
        ck_assert_ptr_nonnull(inst->w_before);   /* the library keeps W before the step */
        ck_assert_ptr_null(inst->buf);
        memcpy(V0, inst->V, sizeof V0);
        ck_assert_double_gt(fnorm(V0, O * I), 0.0);
        memcpy(inst->w_before, W, sizeof W);   /* as the net's before_update hook does */
        memcpy(Wb, W, sizeof W);
        for (int i = 0; i < O * I; i++) W[i] += 0.01f * (float)(i % 5) - 0.02f;   /* "the rule's step" */
        ck_assert_int_eq(asymbp__fb_inst_after_update(ctx, &wl, inst, 1), ASYMBP_OK);
        for (int i = 0; i < O * I; i++) {
            ck_assert_float_eq(inst->V[i], W[i] + keep * (V0[i] - Wb[i]));
            if (k == 1) ck_assert(fabsf((inst->V[i] - V0[i]) - (W[i] - Wb[i])) < 1e-6f);
        }
        asymbp__fb_inst_destroy(ctx, inst);
    }
    /* options */
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "kp:decay=1.5"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "kp:lr=0.1"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "kp:0.5"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "kp:decay=0.1:scale=he:dist=normal"), ASYMBP_OK);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* The mirror by hand on one layer, W fixed: V -> (lr noise^2 / decay) W, aligned within a few
 * degrees after a few hundred mirror steps; a conv layer is mirrored as its [oc][ic kh kw] matrix. */
START_TEST(test_math_mirror)
{
    asymbp_ctx_t *ctx = test_ctx();
    enum { O = 6, I = 10 };
    float W[O * I];
    asymbp__wlayer_t wl;
    asymbp__fb_inst_t *inst = NULL;
    const char *settings[3] = {"mirror:lr=0.05:decay=0.05", "mirror:lr=0.05:decay=0.05:noise=2:steps=3:batch=32",
                               "mirror:lr=0.05:decay=0.05"};
    const double ratio[3] = {1.0, 4.0, 1.0};
    fill_weights(W, O * I, 4);
    for (int k = 0; k < 3; k++) {
        double vw = 0.0, vv = 0.0, ww = 0.0, ang;
        mk_wl(&wl, W, O, I);
        if (k == 2) {   /* as conv 6 x 10 x 1 x 1... shaped 6 x 2 x 5 x 1 */
            wl.ndim = 4;
            wl.is_conv = 1;
            wl.shape[1] = 2; wl.shape[2] = 5; wl.shape[3] = 1;
            wl.fan_in = 10;
            wl.fan_out = 30;
        }
        ck_assert_int_eq(asymbp__fb_inst_create(ctx, &wl, settings[k], 1, 0, &inst), ASYMBP_OK);
        ck_assert_uint_eq(inst->scratch_floats, (k == 1 ? 32 : 64) * (size_t)(O + I));
        ck_assert_ptr_null(inst->w_before);
        for (int s = 0; s < (k == 1 ? 150 : 400); s++) ck_assert_int_eq(asymbp__fb_inst_after_update(ctx, &wl, inst, (uint64_t)s + 1), ASYMBP_OK);
        for (int i = 0; i < O * I; i++) {
            vw += (double)inst->V[i] * W[i];
            vv += (double)inst->V[i] * inst->V[i];
            ww += (double)W[i] * W[i];
        }
        ang = acos(vw / sqrt(vv * ww)) * 57.29577951308232;
        ck_assert_msg(ang < 8.0, "%s: angle %g", settings[k], ang);
        ck_assert_msg(fabs(sqrt(vv / ww) / ratio[k] - 1.0) < 0.15, "%s: |V|/|W| %g, expected %g", settings[k],
                      sqrt(vv / ww), ratio[k]);
        asymbp__fb_inst_destroy(ctx, inst);
    }
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "mirror:steps=0"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "mirror:batch=2.5"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "mirror:noise=0"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "mirror:lr=-1"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "mirror:lr=0.1:decay=0.1:noise=0.5:steps=2:batch=8"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "dfa:decay=0.1"), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_feedback_check_setting(ctx, "dfa:scale=he:dist=normal"), ASYMBP_OK);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Kolen-Pollack on digits8x8: V starts random (about 90 degrees from W) and ends within 10
 * degrees of W on every layer, whatever the update rule: SGD with momentum, Batch Manhattan with
 * batch norm, and a user rule (RMSprop) with batch norm. */
START_TEST(test_kp_aligns)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL;
    asymbp_update_rule_vtable_t uvt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    const char *rules[3] = {"sgd", "bm", "rms"};
    const float lrs[3] = {0.02f, 0.001f, 0.001f};
    load_digits(ctx, &tr, &te);
    uvt.name = "rms";
    uvt.state_size = sizeof(float);
    uvt.step = rms_step;
    ck_assert_int_eq(asymbp_update_rule_register(ctx, &uvt, NULL, NULL, NULL), ASYMBP_OK);
    for (int k = 0; k < 3; k++) {
        asymbp_net_t *net = NULL;
        asymbp_optimizer_t *opt;
        double before[3], after[3];
        float acc;
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:128,64", 1, 8, 8, 10, k > 0, &net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_bind(net, 32), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_feedback(net, "kp"), ASYMBP_OK);
        opt = mk_opt(net, rules[k], lrs[k], k == 2 ? 0.0f : 0.9f);
        vw_angles(net, before);
        acc = digits_train(net, opt, tr, te, 6);
        vw_angles(net, after);
        printf("kp + %s%s on digits8x8: V-W angles %.1f %.1f %.1f -> %.1f %.1f %.1f degrees, test accuracy %.3f\n",
               rules[k], k ? " + bn" : "", before[0], before[1], before[2], after[0], after[1], after[2], acc);
        for (int l = 0; l < 3; l++) {
            ck_assert_msg(before[l] > 60.0, "kp + %s: layer %d starts at %g degrees", rules[k], l, before[l]);
            ck_assert_msg(after[l] < 10.0, "kp + %s: layer %d ends at %g degrees", rules[k], l, after[l]);
        }
        ck_assert_float_gt(acc, 0.9f);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* The weight mirror on digits8x8: the V-W angle falls from about 90 to below 10 degrees. */
START_TEST(test_mirror_aligns)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt;
    double before[3], after[3];
    float acc;
    load_digits(ctx, &tr, &te);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:128,64", 1, 8, 8, 10, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 32), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "mirror"), ASYMBP_OK);
    opt = mk_opt(net, "sgd", 0.02f, 0.9f);
    vw_angles(net, before);
    acc = digits_train(net, opt, tr, te, 8);
    vw_angles(net, after);
    printf("mirror + sgd on digits8x8: V-W angles %.1f %.1f %.1f -> %.1f %.1f %.1f degrees, test accuracy %.3f\n",
           before[0], before[1], before[2], after[0], after[1], after[2], acc);
    for (int l = 0; l < 3; l++) {
        ck_assert_msg(before[l] > 60.0, "mirror: layer %d starts at %g degrees", l, before[l]);
        ck_assert_msg(after[l] < 10.0, "mirror: layer %d ends at %g degrees", l, after[l]);
    }
    ck_assert_float_gt(acc, 0.9f);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A user policy with ASYMBP_FEEDBACK_W_BEFORE sees W before and after each optimizer step (the
 * difference is the rule's step, here SGD's -lr g); one with scratch_size gets its scratch. */
typedef struct wb_seen {
    const float *expect_before;   /* the test's copy of W before the step */
    int calls, bad;
    size_t scratch;
} wb_seen_t;

static asymbp_status_t wb_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    wb_seen_t *seen = user;
    (void)state;
    if (a->W_before || a->scratch_floats != seen->scratch || (seen->scratch && !a->scratch)) seen->bad++;
    memcpy(a->V, a->W, a->numel * sizeof(float));
    return ASYMBP_OK;
}

static asymbp_status_t wb_after(void *user, void *state, const asymbp_feedback_args_t *a)
{
    wb_seen_t *seen = user;
    (void)state;
    seen->calls++;
    if (!a->W_before || a->W_before == a->W || a->w_numel != a->numel || a->scratch_floats != seen->scratch) {
        seen->bad++;
        return ASYMBP_OK;
    }
    if (seen->expect_before && a->layer_index == 0 && memcmp(a->W_before, seen->expect_before, a->numel * sizeof(float)))
        seen->bad++;
    if (seen->scratch) memset(a->scratch, 0xff, seen->scratch * sizeof(float));   /* it is ours to write */
    /* a KP of one's own: V follows W's change */
    for (size_t i = 0; i < a->numel; i++) a->V[i] += a->W[i] - a->W_before[i];
    return ASYMBP_OK;
}

static size_t wb_scratch(void *user, const asymbp_feedback_args_t *a)
{
    wb_seen_t *seen = user;
    (void)a;
    return seen->scratch;
}

START_TEST(test_w_before_and_scratch)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    wb_seen_t seen = {NULL, 0, 0, 0};
    float x[NB * ND], W0[12 * ND], g0[12 * ND];
    int32_t y[NB];
    asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc4", ND, 1, 1, 0, NB);
    asymbp_optimizer_t *opt = mk_opt(net, "sgd", 0.1f, 0.0f);
    asymbp__wlayer_t *wl0 = asymbp__net_wlayer_at(net, 0);
    make_blobs(x, y, NB, ND, 4, 34);
    vt.name = "follow";
    vt.flags = ASYMBP_FEEDBACK_W_BEFORE;
    vt.init = wb_init;
    vt.after_update = wb_after;
    vt.scratch_size = wb_scratch;
    ck_assert_int_eq(asymbp_feedback_register(ctx, &vt, &seen, NULL), ASYMBP_OK);
    seen.scratch = 40;
    ck_assert_int_eq(asymbp_net_set_feedback(net, "follow"), ASYMBP_OK);
    ck_assert_uint_eq(((asymbp__fb_inst_t *)wl0->fb)->scratch_floats, 40);
    for (int s = 0; s < 3; s++) {
        fwd_bwd(net, x, y, NB, NULL);
        memcpy(W0, wl0->W, sizeof W0);
        memcpy(g0, asymbp__net_param_at(net, 0)->grad, sizeof g0);
        seen.expect_before = W0;
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        for (size_t i = 0; i < 12 * ND; i++) ck_assert_float_eq(wl0->W[i], W0[i] - 0.1f * g0[i]);
    }
    ck_assert_int_eq(seen.calls, 6);
    ck_assert_int_eq(seen.bad, 0);
    /* V followed W: V - W stays what it was at init (0 up to rounding) */
    for (size_t i = 0; i < 12 * ND; i++) ck_assert(fabsf(wl0->V[i] - wl0->W[i]) < 1e-6f);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Save after 3 steps, continue 3; load into a fresh net, continue 3: the weights and every
 * policy's tensor (B, learned V) end bit for bit the same, for dfa, kp and mirror, with batch
 * norm and Batch Manhattan with momentum (its state saved too, as the trainer does). */
START_TEST(test_learned_round_trip)
{
    const char *settings[4] = {"dfa", "kp:decay=0.05", "mirror:steps=2:batch=16", "kp"};
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 35);
    for (int k = 0; k < 4; k++) {
        asymbp_ctx_t *ctx = test_ctx();
        asymbp__wbuf_t w;
        asymbp__rbuf_t r, chunk;
        asymbp_net_t *a = mk_net(ctx, "mlp:12,10", ND, 1, 1, 1, NB), *b = NULL;
        asymbp_optimizer_t *oa, *ob;
        size_t pos;
        ck_assert_int_eq(asymbp_net_set_feedback(a, settings[k]), ASYMBP_OK);
        if (k == 3) ck_assert_int_eq(asymbp_net_set_layer_feedback(a, 3, "dfa"), ASYMBP_OK);   /* mixed */
        oa = mk_opt(a, "bm", 0.003f, 0.9f);
        for (int s = 0; s < 3; s++) {
            fwd_bwd(a, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
        }
        asymbp__wbuf_init(&w, ctx);
        ck_assert_int_eq(asymbp__net_write(a, &w), ASYMBP_OK);
        ck_assert_int_eq(asymbp__feedback_write(a, &w), ASYMBP_OK);
        pos = asymbp__wbuf_chunk_begin(&w, ASYMBP__CHUNK_OPTIMIZER);
        ck_assert_int_eq(asymbp__optimizer_write(oa, &w), ASYMBP_OK);
        asymbp__wbuf_chunk_end(&w, pos);
        for (int s = 0; s < 3; s++) {
            fwd_bwd(a, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(oa), ASYMBP_OK);
        }
        memset(&r, 0, sizeof r);
        r.p = w.p;
        r.len = w.len;
        ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 999), ASYMBP_OK);   /* loading must not depend on it */
        ck_assert_int_eq(asymbp__net_read(ctx, &r, &b), ASYMBP_OK);
        ck_assert_msg(asymbp__feedback_read(b, &r) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        asymbp__net_set_step(b, 3);
        ck_assert_int_eq(asymbp_net_bind(b, NB), ASYMBP_OK);
        ob = mk_opt(b, "bm", 0.003f, 0.9f);
        ck_assert_int_eq(asymbp__rbuf_chunk(&r, ASYMBP__CHUNK_OPTIMIZER, &chunk), 0);
        ck_assert_int_eq(asymbp__optimizer_read(ob, &chunk), ASYMBP_OK);
        ck_assert_str_eq(asymbp_net_get_layer_feedback(b, 0), settings[k]);
        for (int s = 0; s < 3; s++) {
            fwd_bwd(b, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(ob), ASYMBP_OK);
        }
        for (size_t i = 0; i < asymbp__net_param_count(a); i++) {
            asymbp__param_t *pa = asymbp__net_param_at(a, i), *pb = asymbp__net_param_at(b, i);
            ck_assert_msg(same_floats(pa->value, pb->value, pa->numel), "%s: %s differs after resume", settings[k], pa->name);
        }
        for (size_t l = 0; l < 3; l++) {
            asymbp__fb_inst_t *ia = asymbp__net_wlayer_at(a, l)->fb, *ib = asymbp__net_wlayer_at(b, l)->fb;
            ck_assert_uint_eq(ia->numel, ib->numel);
            ck_assert_int_eq(ia->inert, ib->inert);
            if (ia->V) ck_assert_msg(same_floats(ia->V, ib->V, ia->numel), "%s: layer %zu's tensor differs", settings[k], l);
            ck_assert_uint_eq(ia->rng.state, ib->rng.state);
        }
        /* without the saved state the run would differ (the check above can fail) */
        if (k == 2) {
            asymbp_net_t *c = NULL;
            r.pos = 0;
            ck_assert_int_eq(asymbp__net_read(ctx, &r, &c), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_set_feedback(c, settings[k]), ASYMBP_OK);
            ck_assert(!same_floats(((asymbp__fb_inst_t *)asymbp__net_wlayer_at(c, 1)->fb)->V,
                                   ((asymbp__fb_inst_t *)asymbp__net_wlayer_at(a, 1)->fb)->V,
                                   asymbp__net_wlayer_at(c, 1)->numel));
            asymbp_net_destroy(c);
        }
        asymbp__wbuf_free(&w);
        asymbp_optimizer_destroy(oa);
        asymbp_optimizer_destroy(ob);
        asymbp_net_destroy(a);
        asymbp_net_destroy(b);
        asymbp_ctx_destroy(ctx);
    }
}
END_TEST

/* Angle in degrees between two float vectors, in double. */
static double vec_angle(const float *a, const float *b, size_t n)
{
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return acos(fmax(-1.0, fmin(1.0, ab / sqrt(aa * bb)))) * 57.29577951308232;
}

/* The probe for the three: recv_angle_bp is the angle between the error each layer received and
 * the one exact backprop gives (checked against a twin net with sym, same weights), 0 on the
 * exact top layer; for dfa, delta_angle_bp of the layer above a direct one compares the error
 * delivered there; the V-W figures of kp and mirror, NaN for a direct B.  The probe leaves the
 * gradients and deltas as they were. */
START_TEST(test_learned_probe)
{
    const char *settings[4] = {"dfa", "kp", "mirror", "rndf"};
    float x[NB * ND];
    int32_t y[NB];
    make_blobs(x, y, NB, ND, 4, 36);
    for (int k = 0; k < 4; k++) {
        asymbp_ctx_t *ctx = test_ctx();
        /* layers: fc0 relu1 fc2 relu3 fc4; the same seed gives the twins the same weights */
        asymbp_net_t *net = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_net_t *bp = mk_net(ctx, "fc12,relu,fc10,relu,fc4", ND, 1, 1, 0, NB);
        asymbp_feedback_diag_t d[3];
        size_t ng, ng2, n1, n2;
        float *g0, *g1, *r0, *r1;
        ck_assert_int_eq(asymbp_net_set_feedback(net, settings[k]), ASYMBP_OK);
        fwd_bwd(net, x, y, NB, NULL);
        fwd_bwd(bp, x, y, NB, NULL);
        g0 = grads_copy(net, &ng);
        r0 = read_out(net, 1, ASYMBP_READ_DELTA_RECEIVED, &n1);
        for (int l = 0; l < 3; l++) d[l] = (asymbp_feedback_diag_t)ASYMBP_FEEDBACK_DIAG_INIT;
        ck_assert_msg(asymbp_net_feedback_probe(net, d, 3) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        g1 = grads_copy(net, &ng2);
        ck_assert(same_floats(g0, g1, ng));
        r1 = read_out(net, 1, ASYMBP_READ_DELTA_RECEIVED, &n2);
        ck_assert(same_floats(r0, r1, n1));
        free(r0);
        free(r1);
        free(g0);
        free(g1);
        /* the top layer receives the exact error */
        ck_assert_double_eq(d[2].recv_angle_bp, 0.0);
        ck_assert_double_eq(d[2].recv_norm, d[2].bp_recv_norm);
        ck_assert_double_lt(d[2].grad_angle_bp, 1e-3);
        for (int l = 0; l < 2; l++) {
            size_t layer = (size_t)d[l].layer_index, na, nb;
            float *ra = read_out(net, layer, ASYMBP_READ_DELTA_RECEIVED, &na);
            float *rb = read_out(bp, layer, ASYMBP_READ_DELTA_RECEIVED, &nb);
            double want = vec_angle(ra, rb, na);
            ck_assert_msg(fabs(d[l].recv_angle_bp - want) < 1e-6 * (1.0 + want), "%s layer %zu: recv angle %g, twin %g",
                          settings[k], layer, d[l].recv_angle_bp, want);
            ck_assert(want > 1.0 && want < 179.0);
            ck_assert_double_eq_tol(d[l].recv_norm, fnorm(ra, na), 1e-9 * fnorm(ra, na));
            ck_assert_double_eq_tol(d[l].bp_recv_norm, fnorm(rb, nb), 1e-6 * fnorm(rb, nb));
            free(ra);
            free(rb);
            /* what arrived below layers 2 and 4 (sent, or delivered under dfa) against backprop */
            ra = read_out(net, (size_t)d[l + 1].layer_index, ASYMBP_READ_DELTA_SENT, &na);
            rb = read_out(bp, (size_t)d[l + 1].layer_index, ASYMBP_READ_DELTA_SENT, &nb);
            want = vec_angle(ra, rb, na);
            ck_assert_msg(fabs(d[l + 1].delta_angle_bp - want) < 1e-6 * (1.0 + want), "%s layer %d: delta angle %g, twin %g",
                          settings[k], d[l + 1].layer_index, d[l + 1].delta_angle_bp, want);
            ck_assert_double_eq_tol(d[l + 1].delta_norm, fnorm(ra, na), 1e-6 * fnorm(ra, na));
            free(ra);
            free(rb);
            if (k == 0) {
                ck_assert(isnan(d[l].sign_concordance) && isnan(d[l].angle_vw) && isnan(d[l].norm_ratio));
            } else {
                ck_assert(d[l].angle_vw > 45.0 && d[l].angle_vw < 135.0);   /* random V at first */
                ck_assert(d[l].sign_concordance > 0.2 && d[l].sign_concordance < 0.8);
            }
        }
        asymbp_net_destroy(net);
        asymbp_net_destroy(bp);
        asymbp_ctx_destroy(ctx);
    }
}
END_TEST

/* kp and mirror split their work over the context's threads (layers large enough): the same V
 * as on one thread (kp: elementwise, bit for bit given the same W; mirror: within rounding). */
static void learned_threads_V(int threads, const char *setting, float *out, size_t *count)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp__wlayer_t *wl;
    asymbp__fb_inst_t *inst;
    uint64_t seed = 9;
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, threads), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc300,relu,fc260,relu,fc10", 32, 1, 1, 10, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, setting), ASYMBP_OK);
    wl = asymbp__net_wlayer_at(net, 1);
    inst = wl->fb;
    for (int step = 1; step <= 3; step++) {
        /* a fixed "rule step" on W, then the policy's after_update */
        memcpy(inst->w_before ? inst->w_before : out, wl->W, wl->numel * sizeof(float));
        for (size_t i = 0; i < wl->numel; i++) wl->W[i] += 0.001f * (float)((int)(lcg(&seed) % 7) - 3);
        ck_assert_int_eq(asymbp__fb_inst_after_update(ctx, wl, inst, (uint64_t)step), ASYMBP_OK);
    }
    memcpy(out, wl->V, wl->numel * sizeof(float));
    *count = wl->numel;
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}

START_TEST(test_learned_on_threads)
{
    static float ref[300 * 260], got[300 * 260];
    const char *settings[2] = {"kp:decay=0.1", "mirror:steps=2"};
    for (int k = 0; k < 2; k++) {
        size_t nref, ngot;
        learned_threads_V(1, settings[k], ref, &nref);
        ck_assert_uint_eq(nref, 300 * 260);
        for (int T = 2; T <= 3; T++) {
            learned_threads_V(T, settings[k], got, &ngot);
            ck_assert_uint_eq(ngot, nref);
            if (k == 0) {
                ck_assert_msg(memcmp(ref, got, nref * sizeof(float)) == 0, "%s: V differs between 1 and %d threads",
                              settings[k], T);
            } else {
                double mx = 0.0, sc = 0.0;
                for (size_t i = 0; i < nref; i++) {
                    if (fabs(ref[i] - got[i]) > mx) mx = fabs(ref[i] - got[i]);
                    if (fabs(ref[i]) > sc) sc = fabs(ref[i]);
                }
                ck_assert_msg(mx <= 1e-5 * sc, "%s: V differs between 1 and %d threads by %g (scale %g)", settings[k], T, mx, sc);
            }
        }
    }
}
END_TEST

/* Every allocation of assigning dfa, kp or mirror can fail: NOMEM, the old feedback stays,
 * nothing leaks; then training steps allocate nothing. */
START_TEST(test_learned_oom)
{
    const char *settings[3] = {"dfa", "kp", "mirror:batch=8"};
    for (int s = 0; s < 3; s++) {
        test_alloc_t ta = {0, 0, 0};
        asymbp_allocator_t al = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_net_t *net = NULL;
        asymbp_optimizer_t *opt = NULL;
        float x[NB * ND];
        int32_t y[NB];
        long calls;
        int ok = 0;
        make_blobs(x, y, NB, ND, 4, 37);
        ck_assert_int_eq(asymbp_ctx_create(&al, &ctx), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:12,10", ND, 1, 1, 4, 1, &net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_bind(net, NB), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_feedback(net, "usf"), ASYMBP_OK);
        for (long k = 1; k < 200 && !ok; k++) {
            long live = ta.live;
            asymbp_status_t st;
            ta.fail_at = ta.calls + k;
            st = asymbp_net_set_feedback(net, settings[s]);
            ta.fail_at = 0;
            if (st == ASYMBP_OK) { ok = 1; break; }
            ck_assert_int_eq(st, ASYMBP_E_NOMEM);
            ck_assert_int_eq(ta.live, live);
            ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), "usf");
        }
        ck_assert(ok);
        ck_assert_str_eq(asymbp_net_get_layer_feedback(net, 0), settings[s]);
        ck_assert_int_eq(asymbp_optimizer_create(net, "sgd", NULL, &opt), ASYMBP_OK);
        calls = ta.calls;
        for (int it = 0; it < 3; it++) {
            fwd_bwd(net, x, y, NB, NULL);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        ck_assert_int_eq(ta.calls, calls);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
    }
}
END_TEST

Suite *asymbp_test_feedback_suite(void);
Suite *asymbp_test_feedback_suite(void)
{
    Suite *s = suite_create("feedback");
    TCase *tc = tcase_create("feedback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_parse_settings);
    tcase_add_test(tc, test_math_usf);
    tcase_add_test(tc, test_math_brsf);
    tcase_add_test(tc, test_math_frsf_rndf_signed_init);
    tcase_add_test(tc, test_math_partial);
    tcase_add_test(tc, test_inst_errors);
    tcase_add_test(tc, test_sym_bit_for_bit);
    tcase_add_test(tc, test_only_delta_changes);
    tcase_add_test(tc, test_no_bias);
    tcase_add_test(tc, test_reference_backward);
    tcase_add_test(tc, test_refresh_timing);
    tcase_add_test(tc, test_lazy_refresh);
    tcase_add_test(tc, test_lazy_input_grad_mid_step);
    tcase_add_test(tc, test_layer_assignment);
    tcase_add_test(tc, test_diag_and_probe);
    tcase_add_test(tc, test_diag_between_steps);
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_user_policy_trains);
    tcase_add_test(tc, test_combinations);
    tcase_add_test(tc, test_refresh_on_threads);
    tcase_add_test(tc, test_dfa_shape_fixed);
    tcase_add_test(tc, test_dfa_by_hand);
    tcase_add_test(tc, test_dfa_user_variant);
    tcase_add_test(tc, test_dfa_mixed);
    tcase_add_test(tc, test_dfa_layer_added_later);
    tcase_add_test(tc, test_math_kp);
    tcase_add_test(tc, test_math_mirror);
    tcase_add_test(tc, test_kp_aligns);
    tcase_add_test(tc, test_mirror_aligns);
    tcase_add_test(tc, test_w_before_and_scratch);
    tcase_add_test(tc, test_learned_round_trip);
    tcase_add_test(tc, test_learned_probe);
    tcase_add_test(tc, test_learned_on_threads);
    tcase_add_test(tc, test_learned_oom);
    suite_add_tcase(s, tc);
    return s;
}
