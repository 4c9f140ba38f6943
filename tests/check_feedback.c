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
    suite_add_tcase(s, tc);
    return s;
}
