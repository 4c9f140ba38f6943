/* Nets: specs and presets, binding, no allocation in a step, whole-net gradient checks,
 * feedback hooks, save/load round trip, misuse, and a small training sanity run. */
#include <string.h>
#include "test_util.h"
#include "asymbp/net.h"
#include "layers/layers_impl.h"
#include "layers/net_impl.h"

static void fill(float *x, size_t n, uint32_t seed, float lo, float hi)
{
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = lo + (hi - lo) * (float)((s >> 40) & 0xffffff) / 16777216.0f;
    }
}

/* Plain gradient descent on every parameter, written out here (independent of update/). */
static void sgd_by_hand(asymbp_net_t *net, float lr)
{
    for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *v, *g;
        ck_assert_int_eq(asymbp_net_param_at(net, i, &v, &g), ASYMBP_OK);
        float *vd = asymbp_tensor_data(v), *gd = asymbp_tensor_data(g);
        for (size_t j = 0; j < asymbp_tensor_numel(v); j++) vd[j] -= lr * gd[j];
    }
}

START_TEST(test_presets)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    int64_t shp[3];
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "paper-cnn", 1, 28, 28, 10, 0, &net), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(net),
                     "conv5x5x32p2,relu,maxpool3s2,conv5x5x32p2,relu,avgpool3s2,conv5x5x64p2,relu,avgpool3s2,fc64,relu,fc10");
    ck_assert_uint_eq(asymbp_net_layer_count(net), 12);
    ck_assert_int_eq(asymbp_net_layer_output_shape(net, 2, shp), ASYMBP_OK);
    ck_assert_int_eq(shp[1], 14);
    ck_assert_int_eq(asymbp_net_layer_output_shape(net, 5, shp), ASYMBP_OK);
    ck_assert_int_eq(shp[1], 7);
    ck_assert_int_eq(asymbp_net_layer_output_shape(net, 8, shp), ASYMBP_OK);
    ck_assert_int_eq(shp[0], 64);
    ck_assert_int_eq(shp[1], 3);
    ck_assert_int_eq(shp[2], 3);
    ck_assert_int_eq(asymbp_net_layer_kind(net, 0), ASYMBP_LAYER_CONV2D);
    ck_assert_int_eq(asymbp_net_layer_kind(net, 2), ASYMBP_LAYER_MAXPOOL);
    ck_assert_int_eq(asymbp_net_layer_kind(net, 5), ASYMBP_LAYER_AVGPOOL);
    ck_assert_str_eq(asymbp_net_layer_name(net, 9), "fc9");
    ck_assert_uint_eq(asymbp_net_param_count(net), 10);
    ck_assert_str_eq(asymbp_net_param_name(net, 0), "conv0.weight");
    ck_assert_str_eq(asymbp_net_param_name(net, 9), "fc11.bias");
    ck_assert_uint_eq(asymbp_net_weight_count(net),
                      32 * 25 + 32 + 32 * 32 * 25 + 32 + 64 * 32 * 25 + 64 + 64 * 576 + 64 + 10 * 64 + 10);
    ck_assert_uint_eq(asymbp__net_wlayer_count(net), 5);
    ck_assert_int_eq(asymbp__net_wlayer_at(net, 4)->layer_index, 11);
    ck_assert_uint_eq(asymbp__net_wlayer_at(net, 0)->fan_in, 25);
    ck_assert_uint_eq(asymbp__net_wlayer_at(net, 1)->fan_out, 32 * 25);
    ck_assert_ptr_null(asymbp__net_wlayer_at(net, 5));
    asymbp_net_destroy(net);
    /* with BN: after every conv and the hidden fc, before the ReLU; 3 x 32 x 32 input */
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "paper-cnn", 3, 32, 32, 10, 1, &net), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(net), "conv5x5x32p2,bn,relu,maxpool3s2,conv5x5x32p2,bn,relu,avgpool3s2,"
                                           "conv5x5x64p2,bn,relu,avgpool3s2,fc64,bn,relu,fc10");
    ck_assert_str_eq(asymbp_net_param_name(net, 2), "bn1.scale");
    ck_assert_int_eq(asymbp_net_layer_output_shape(net, 11, shp), ASYMBP_OK);
    ck_assert_int_eq(shp[1], 4);   /* 32 -> 16 -> 8 -> 4 */
    asymbp_net_destroy(net);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:16,8", 4, 1, 1, 3, 1, &net), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(net), "fc16,bn,relu,fc8,bn,relu,fc3");
    asymbp_net_destroy(net);
    /* a list ending in the classifier gets none appended; options round-trip */
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x4s2p1nb,maxpool2p1f,bnm0.05eps0.001,dropout0.25,flatten,fc5nb", 2, 9, 9, 5, 0, &net), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(net), "conv3x3x4s2p1nb,maxpool2s2p1f,bnm0.05eps0.001,dropout0.25,flatten,fc5nb");
    asymbp_net_destroy(net);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc5,relu", 2, 1, 1, 3, 1, &net), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(net), "fc5,bn,relu,fc3");
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

static void expect_spec_error(asymbp_ctx_t *ctx, const char *spec, asymbp_status_t st, const char *a, const char *b)
{
    asymbp_net_t *net = (asymbp_net_t *)1;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, spec, 1, 8, 8, 10, 0, &net), st);
    ck_assert_ptr_null(net);
    if (!strstr(asymbp_ctx_last_error(ctx), a) || (b && !strstr(asymbp_ctx_last_error(ctx), b)))
        ck_abort_msg("spec '%s': message '%s' lacks '%s' / '%s'", spec, asymbp_ctx_last_error(ctx), a, b ? b : "");
}

START_TEST(test_spec_errors)
{
    asymbp_ctx_t *ctx = test_ctx();
    expect_spec_error(ctx, "", ASYMBP_E_FORMAT, "position 1", "empty");
    expect_spec_error(ctx, "conv5x5x32p2,relu,maxpool3q", ASYMBP_E_FORMAT, "position 27", "pool options");
    expect_spec_error(ctx, "conv5x5", ASYMBP_E_FORMAT, "position 8", "expected 'x'");
    expect_spec_error(ctx, "fc10,,relu", ASYMBP_E_FORMAT, "position 6", "empty");
    expect_spec_error(ctx, "fc10,sigmoid", ASYMBP_E_FORMAT, "position 6", "unknown layer");
    expect_spec_error(ctx, "dropout1.5", ASYMBP_E_FORMAT, "position", "[0, 1)");
    expect_spec_error(ctx, "fc0", ASYMBP_E_FORMAT, "position 3", "number of outputs");
    expect_spec_error(ctx, "mlp:10,", ASYMBP_E_FORMAT, "position 8", "hidden layer size");
    expect_spec_error(ctx, "mlp", ASYMBP_E_FORMAT, "position 4", "':'");
    expect_spec_error(ctx, "maxpool3p3", ASYMBP_E_FORMAT, "position 1", "smaller than the window");
    /* shape errors carry the token, its position and the sizes */
    expect_spec_error(ctx, "conv3x3x4,maxpool3s2,conv9x9x2", ASYMBP_E_SHAPE, "position 22", "9x9 does not fit input 3x3");
    {
        asymbp_net_t *net = NULL;
        ck_assert_int_eq(asymbp_net_from_spec(ctx, NULL, 1, 8, 8, 10, 0, &net), ASYMBP_E_INVALID);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc3", 1, 8, 8, 1, 0, &net), ASYMBP_E_INVALID);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc3", 1, 8, 8, 10, 0, NULL), ASYMBP_E_INVALID);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_shape_errors_and_misuse)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    float x[40] = { 0 };
    int32_t y[4] = { 0, 1, 2, 3 };
    const float *z = (const float *)1;
    ck_assert_int_eq(asymbp_net_create(ctx, 2, 2, 2, 4, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 4), ASYMBP_E_SHAPE);   /* no layers */
    ck_assert_int_eq(asymbp_net_add_dense(net, 5, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 4), ASYMBP_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "fc0 gives 5 outputs"));
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "4 classes"));
    ck_assert_int_eq(asymbp_net_add_conv2d(net, 3, 3, 3, 1, 0, 1), ASYMBP_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "conv1: kernel 3x3 does not fit input 1x1"));
    ck_assert_int_eq(asymbp_net_add_maxpool(net, 2, 1, 2, 1), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_add_batchnorm(net, 0.0f, 1e-5f), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_add_dropout(net, 1.0f), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_add_dense(net, 0, 1), ASYMBP_E_INVALID);
    ck_assert_uint_eq(asymbp_net_layer_count(net), 1);
    ck_assert_int_eq(asymbp_net_forward(net, x, 2, 1, &z), ASYMBP_E_STATE);   /* unbound */
    ck_assert_ptr_null(z);
    ck_assert_int_eq(asymbp_net_add_dense(net, 4, 0), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_STATE);
    ck_assert_int_eq(asymbp_net_bind(net, 0), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_bind(net, 4), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, 4, NULL), ASYMBP_E_STATE);      /* no forward */
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_STATE);
    ck_assert_int_eq(asymbp_net_forward(net, x, 5, 1, NULL), ASYMBP_E_SHAPE); /* n > batch */
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "n is 5, larger than the bound batch size 4"));
    ck_assert_int_eq(asymbp_net_forward(net, x, 0, 1, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_forward(net, NULL, 2, 1, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_forward(NULL, x, 2, 1, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_forward(net, x, 4, 1, &z), ASYMBP_OK);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(asymbp_net_loss(net, y, 3, NULL), ASYMBP_E_SHAPE);
    y[2] = 4;
    ck_assert_int_eq(asymbp_net_loss(net, y, 4, NULL), ASYMBP_E_RANGE);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "label 4 of sample 2"));
    y[2] = -1;
    ck_assert_int_eq(asymbp_net_loss(net, y, 4, NULL), ASYMBP_E_RANGE);
    y[2] = 2;
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_STATE);
    ck_assert_int_eq(asymbp_net_loss(net, y, 4, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_param_at(net, 99, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_param_at(NULL, 0, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_predict(net, x, 4, NULL), ASYMBP_E_INVALID);
    ck_assert_ptr_null(asymbp_net_layer_name(net, 9));
    ck_assert_int_eq((int)asymbp_net_layer_kind(net, 9), -1);
    ck_assert_uint_eq(asymbp_net_layer_count(NULL), 0);
    ck_assert_str_eq(asymbp_net_spec(NULL), "");
    asymbp_net_destroy(net);
    ck_assert_int_eq(asymbp_net_create(ctx, 0, 2, 2, 4, &net), ASYMBP_E_INVALID);
    ck_assert_ptr_null(net);
    ck_assert_int_eq(asymbp_net_create(ctx, 1, 2, 2, 1, &net), ASYMBP_E_INVALID);
    asymbp_net_destroy(NULL);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_rebind_predict_evaluate)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    size_t n = 23;
    float x[23 * 12], l1, l2, a1, a2;
    int32_t y[23], p1[23], p2[23];
    const float *z;
    float z0[3];
    fill(x, sizeof x / sizeof x[0], 5, -1, 1);
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)(i % 3);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv2x2x3,bn,relu,fc3", 3, 2, 2, 3, 0, &net), ASYMBP_OK);
    net->layers[1]->run_mean[0] = 0.25f;   /* make eval mode differ from train mode */
    ck_assert_int_eq(asymbp_net_bind(net, 5), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_net_batch_size(net), 5);
    ck_assert_int_eq(asymbp_net_predict(net, x, n, p1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_evaluate(net, x, y, n, &l1, &a1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(net, x, 1, 0, &z), ASYMBP_OK);
    memcpy(z0, z, sizeof z0);
    ck_assert_int_eq(asymbp_net_bind(net, 23), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_predict(net, x, n, p2), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_evaluate(net, x, y, n, &l2, &a2), ASYMBP_OK);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_float_eq_tol(l1, l2, 1e-5f);
    ck_assert_float_eq(a1, a2);
    ck_assert_int_eq(asymbp_net_forward(net, x, 1, 0, &z), ASYMBP_OK);
    for (int j = 0; j < 3; j++) ck_assert_float_eq_tol(z[j], z0[j], 1e-5f);
    {   /* accuracy matches the predictions */
        int c = 0;
        for (size_t i = 0; i < n; i++) c += p1[i] == y[i];
        ck_assert_float_eq_tol(a1, (float)c / (float)n, 1e-6f);
    }
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_no_alloc_in_step)
{
    test_alloc_t ta = { 0, 0, 0 };
    asymbp_allocator_t a = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    float x[4 * 64];
    int32_t y[4] = { 0, 1, 2, 3 }, pred[4];
    long calls;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x4p1,bn,relu,maxpool2s2,conv3x3x4,avgpool2s1,dropout0.2,fc8,relu,fc4",
                                          1, 8, 8, 4, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 4), ASYMBP_OK);
    fill(x, sizeof x / sizeof x[0], 9, -1, 1);
    calls = ta.calls;
    for (int it = 0; it < 3; it++) {
        float loss;
        ck_assert_int_eq(asymbp_net_forward(net, x, it ? 4 : 3, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, it ? 4 : 3, &loss), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        ck_assert_int_eq(asymbp__net_step_done(net), ASYMBP_OK);
    }
    ck_assert_int_eq(asymbp_net_predict(net, x, 4, pred), ASYMBP_OK);
    ck_assert_int_eq(ta.calls, calls);
    asymbp_net_destroy(net);
    ck_assert_int_eq(ta.live, 1);   /* only the context */
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

/* Failing the k-th allocation anywhere in create/build/bind returns NOMEM and leaks nothing. */
START_TEST(test_oom)
{
    int done = 0;
    for (long k = 1; k < 400 && !done; k++) {
        test_alloc_t ta = { 0, 0, 0 };
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_net_t *net = NULL;
        asymbp_status_t st;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ta.fail_at = ta.calls + k;
        st = asymbp_net_from_spec(ctx, "conv3x3x2p1,bn,relu,maxpool2s2,dropout0.1,fc9,fc3", 1, 6, 6, 3, 1, &net);
        if (st == ASYMBP_OK) {
            st = asymbp_net_bind(net, 3);
            if (st == ASYMBP_OK && !asymbp_net_spec(net)[0]) st = ASYMBP_E_NOMEM;
            if (st == ASYMBP_OK) done = 1;
        }
        if (!done) ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        asymbp_net_destroy(net);
        ck_assert_int_eq(ta.live, 1);
        asymbp_ctx_destroy(ctx);
    }
    ck_assert(done);
}
END_TEST

START_TEST(test_paper_cnn_gradcheck)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp_gradcheck_params_t p = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t r = ASYMBP_GRADCHECK_REPORT_INIT;
    size_t n = 3, side = 12;
    float *x = malloc(n * side * side * sizeof(float));
    int32_t y[3] = { 1, 4, 2 };
    char json[4096];
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "paper-cnn", 1, (int64_t)side, (int64_t)side, 5, 1, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, n), ASYMBP_OK);
    fill(x, n * side * side, 11, -1, 1);
    p.max_entries_per_param = test_quick() ? 4 : 16;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, n, &p, &r), ASYMBP_OK);
    (void)asymbp_gradcheck_report_json(&r, json, sizeof json);
    printf("paper-cnn+bn %zux%zu gradcheck: %s\n", side, side, json);
    ck_assert_uint_eq(r.layer_count, 9);   /* 5 weighted + 4 bn */
    ck_assert_double_le(r.max_rel_error, 1e-2);
    for (size_t i = 0; i < r.layer_count; i++) ck_assert_uint_ge(r.layers[i].checked, 2 * p.max_entries_per_param / 2);
    /* running statistics untouched by the check */
    ck_assert_float_eq(net->layers[1]->run_mean[0], 0.0f);
    ck_assert_float_eq(net->layers[1]->run_var[0], 1.0f);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Feedback hooks: refresh once per optimizer step, never in force-symmetric mode; V enters the
 * delta sent down, never the weight gradient. */
typedef struct hook_count { int refresh, after, destroyed; } hook_count_t;
static asymbp_status_t h_refresh(asymbp_net_t *net, void *s) { (void)net; ((hook_count_t *)s)->refresh++; return ASYMBP_OK; }
static asymbp_status_t h_after(asymbp_net_t *net, void *s) { (void)net; ((hook_count_t *)s)->after++; return ASYMBP_OK; }
static void h_destroy(asymbp_net_t *net, void *s) { (void)net; ((hook_count_t *)s)->destroyed++; }
static asymbp_status_t h_fail(asymbp_net_t *net, void *s) { (void)net; (void)s; return ASYMBP_E_PLUGIN; }

START_TEST(test_hooks_and_feedback)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    hook_count_t hc = { 0, 0, 0 };
    asymbp__net_fb_hooks_t h = { &hc, h_refresh, h_after, h_destroy, NULL, NULL, NULL };
    float x[8 * 6], dW_sym[40], dx_sym[8 * 6], V[3 * 5];
    int32_t y[8] = { 0, 1, 2, 0, 1, 2, 0, 1 };
    asymbp__wlayer_t *top;
    asymbp__layer_t *L0;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc5,relu,fc3", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 8), ASYMBP_OK);
    fill(x, sizeof x / sizeof x[0], 13, -1, 1);
    asymbp__net_set_fb_hooks(net, &h);
    ck_assert_ptr_eq(asymbp__net_fb_hooks(net)->state, &hc);
    for (int step = 0; step < 3; step++) {
        for (int rep = 0; rep < 2; rep++) {
            ck_assert_int_eq(asymbp_net_forward(net, x, 8, 1, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        }
        ck_assert_int_eq(hc.refresh, step + 1);
        ck_assert_int_eq(asymbp__net_step_done(net), ASYMBP_OK);
        ck_assert_uint_eq(asymbp__net_step(net), (uint64_t)step + 1);
    }
    ck_assert_int_eq(hc.after, 3);
    /* force-symmetric: no refresh */
    asymbp__net_force_symmetric(net, 1);
    ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    ck_assert_int_eq(hc.refresh, 3);
    asymbp__net_force_symmetric(net, 0);
    /* symmetric reference, then V = 2 W on the top layer: dW of the bottom layer and the delta
     * below the top layer double, the top layer's own dW does not change */
    top = asymbp__net_wlayer_at(net, 1);
    L0 = net->layers[0];
    ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    memcpy(dW_sym, L0->dW, 30 * sizeof(float));
    memcpy(dx_sym, net->layers[1]->dout, 8 * 5 * sizeof(float));
    {
        float dWtop[15];
        double dn = top->delta_norm;
        memcpy(dWtop, net->layers[2]->dW, sizeof dWtop);
        for (int i = 0; i < 15; i++) V[i] = 2.0f * top->W[i];
        top->V = V;
        ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        for (int i = 0; i < 30; i++) ck_assert_float_eq_tol(L0->dW[i], 2.0f * dW_sym[i], 1e-6f);
        for (int i = 0; i < 40; i++) ck_assert_float_eq_tol(net->layers[1]->dout[i], 2.0f * dx_sym[i], 1e-6f);
        for (int i = 0; i < 15; i++) ck_assert_float_eq(net->layers[2]->dW[i], dWtop[i]);
        ck_assert_double_eq_tol(top->delta_norm, 2.0 * dn, 1e-5 * dn);
        /* force-symmetric ignores V */
        asymbp__net_force_symmetric(net, 1);
        ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        for (int i = 0; i < 30; i++) ck_assert_float_eq(L0->dW[i], dW_sym[i]);
        asymbp__net_force_symmetric(net, 0);
        top->V = NULL;
    }
    /* set_step forces a refresh at the next backward; a failing refresh is reported */
    asymbp__net_set_step(net, 10);
    ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    ck_assert_int_eq(hc.refresh, 5);
    {
        asymbp__net_fb_hooks_t hf = { &hc, h_fail, NULL, NULL, NULL, NULL, NULL };
        asymbp__net_set_fb_hooks(net, &hf);
        ck_assert_int_eq(hc.destroyed, 1);
        ck_assert_int_eq(asymbp_net_loss(net, y, 8, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_PLUGIN);
        asymbp__net_set_fb_hooks(net, &h);
    }
    asymbp_net_destroy(net);
    ck_assert_int_eq(hc.destroyed, 2);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_write_read)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL, *back = NULL;
    asymbp__wbuf_t w;
    asymbp__rbuf_t r;
    float x[5 * 2 * 6 * 6], l1[5 * 4], l2[5 * 4];
    int32_t y[5] = { 0, 1, 2, 3, 0 };
    const float *z;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x3p1,relu,maxpool2s2,dropout0.3,fc7nb,relu,fc4", 2, 6, 6, 4, 1, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 5), ASYMBP_OK);
    fill(x, sizeof x / sizeof x[0], 17, -1, 1);
    for (int it = 0; it < 3; it++) {   /* move the BN statistics and weights away from their init */
        asymbp_tensor_t *v, *g;
        ck_assert_int_eq(asymbp_net_forward(net, x, 5, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, 5, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
            ck_assert_int_eq(asymbp_net_param_at(net, i, &v, &g), ASYMBP_OK);
            for (size_t j = 0; j < asymbp_tensor_numel(v); j++) asymbp_tensor_data(v)[j] -= 0.1f * asymbp_tensor_data(g)[j];
        }
    }
    ck_assert_int_eq(asymbp_net_forward(net, x, 5, 0, &z), ASYMBP_OK);
    memcpy(l1, z, sizeof l1);
    asymbp__wbuf_init(&w, ctx);
    ck_assert_int_eq(asymbp__net_write(net, &w), ASYMBP_OK);
    r.p = w.p;
    r.len = w.len;
    r.pos = 0;
    r.failed = 0;
    ck_assert_int_eq(asymbp__net_read(ctx, &r, &back), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_spec(back), asymbp_net_spec(net));
    ck_assert_int_eq(asymbp_net_bind(back, 5), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(back, x, 5, 0, &z), ASYMBP_OK);
    memcpy(l2, z, sizeof l2);
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    /* the dropout stream continues where it was: same masks in train mode */
    ck_assert_int_eq(asymbp_net_forward(net, x, 5, 1, &z), ASYMBP_OK);
    memcpy(l1, z, sizeof l1);
    ck_assert_int_eq(asymbp_net_forward(back, x, 5, 1, &z), ASYMBP_OK);
    ck_assert_int_eq(memcmp(l1, z, sizeof l1), 0);
    asymbp_net_destroy(back);
    back = NULL;
    /* corruptions: every truncation point fails cleanly with FORMAT */
    for (size_t cut = 0; cut < w.len; cut += (w.len / 97) + 1) {
        r.p = w.p;
        r.len = cut;
        r.pos = 0;
        r.failed = 0;
        ck_assert_int_eq(asymbp__net_read(ctx, &r, &back), ASYMBP_E_FORMAT);
        ck_assert_ptr_null(back);
    }
    {   /* a different spec text inside NETS: architecture mismatch with NETP */
        unsigned char *p = w.p;
        size_t i;
        for (i = 0; i + 4 < w.len; i++) if (!memcmp(p + i, "fc7nb", 5)) break;
        ck_assert_uint_lt(i + 4, w.len);
        p[i + 2] = '8';
        r.p = w.p; r.len = w.len; r.pos = 0; r.failed = 0;
        ck_assert_int_eq(asymbp__net_read(ctx, &r, &back), ASYMBP_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "parameter"));
        p[i + 2] = 'x';
        ck_assert_int_eq(asymbp__net_read(ctx, &r, &back), ASYMBP_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "spec"));
    }
    asymbp__wbuf_free(&w);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* An MLP learns two separable Gaussian blobs per class with plain SGD written here. */
START_TEST(test_training_sanity)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    enum { N = 240, D = 8, K = 3, B = 24 };
    float *x = malloc(N * D * sizeof(float)), loss0 = 0, loss = 0, acc;
    int32_t y[N];
    int epochs = test_quick() ? 15 : 30;
    fill(x, N * D, 21, -0.5f, 0.5f);
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        x[i * D + y[i]] += 2.0f;
        x[i * D + 3 + y[i]] -= 1.5f;
    }
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:16,16", D, 1, 1, K, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, B), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_evaluate(net, x, y, N, &loss0, &acc), ASYMBP_OK);
    for (int e = 0; e < epochs; e++)
        for (int b = 0; b < N / B; b++) {
            ck_assert_int_eq(asymbp_net_forward(net, x + b * B * D, B, 1, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_loss(net, y + b * B, B, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
            sgd_by_hand(net, 0.1f);
        }
    ck_assert_int_eq(asymbp_net_evaluate(net, x, y, N, &loss, &acc), ASYMBP_OK);
    printf("training sanity: loss %.3f -> %.3f, accuracy %.3f\n", loss0, loss, acc);
    ck_assert_float_lt(loss, 0.2f * loss0);
    ck_assert_float_ge(acc, 0.97f);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Training on the context's worker threads: the same net, data and seed on 1 and on 2 or 3
 * threads gives the same parameters up to rounding (the weight gradients of a conv layer are
 * summed per thread, then added), two runs on the same thread count give the same bits, the
 * layers send the delta through V (uSF here) also on threads, and no step allocates. */
static void threads_run(int threads, int steps, float *params_out, size_t *count, long *step_allocs)
{
    test_alloc_t ta = { 0, 0, 0 };
    asymbp_allocator_t a = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    enum { B = 7 };
    float x[B * 2 * 9 * 9];
    int32_t y[B];
    long calls;
    size_t k = 0;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 3), ASYMBP_OK);
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, threads), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x4p1,bn,relu,maxpool3s2,conv3x3x5s2p1,relu,avgpool2s1,"
                                               "conv1x1x6,fc32,relu,fc12,bn,relu,fc5", 2, 9, 9, 5, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(net, "usf"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, B), ASYMBP_OK);
    fill(x, sizeof x / sizeof x[0], 17, -1, 1);
    for (int i = 0; i < B; i++) y[i] = i % 5;
    calls = ta.calls;
    for (int it = 0; it < steps; it++) {
        size_t n = it % 3 == 2 ? B - 2 : B;   /* a short batch too */
        ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, n, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        sgd_by_hand(net, 0.01f);
        ck_assert_int_eq(asymbp__net_step_done(net), ASYMBP_OK);
    }
    *step_allocs = ta.calls - calls;
    for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *v, *g;
        ck_assert_int_eq(asymbp_net_param_at(net, i, &v, &g), ASYMBP_OK);
        const float *gd = asymbp_tensor_data(g), *vd = asymbp_tensor_data(v);
        for (size_t j = 0; j < asymbp_tensor_numel(v); j++) {
            params_out[k++] = vd[j];
            params_out[k++] = gd[j];
        }
    }
    *count = k;
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}

START_TEST(test_threads_match_one_thread)
{
    enum { MAXP = 20000 };
    float *ref = malloc(MAXP * sizeof(float)), *got = malloc(MAXP * sizeof(float)), *again = malloc(MAXP * sizeof(float));
    size_t nref, ngot, nagain;
    long allocs;
    int steps = test_quick() ? 3 : 6;   /* rounding differences grow with training: compare early */
    threads_run(1, steps, ref, &nref, &allocs);
    ck_assert_int_eq(allocs, 0);
    ck_assert_uint_lt(nref, MAXP);
    for (int T = 2; T <= 3; T++) {
        double worst = 0.0, scale = 0.0;
        threads_run(T, steps, got, &ngot, &allocs);
        ck_assert_int_eq(allocs, 0);
        ck_assert_uint_eq(ngot, nref);
        for (size_t i = 0; i < nref; i++) {
            double d = fabs((double)got[i] - ref[i]);
            ck_assert(isfinite(got[i]));
            if (d > worst) worst = d;
            if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
        }
        printf("threads %d vs 1: max abs difference %.3g (largest value %.3g) after %d steps\n", T, worst, scale, steps);
        ck_assert(worst <= 1e-4 * scale);
        threads_run(T, steps, again, &nagain, &allocs);
        ck_assert_uint_eq(nagain, ngot);
        ck_assert(memcmp(got, again, ngot * sizeof(float)) == 0);
    }
    free(ref);
    free(got);
    free(again);
}
END_TEST

/* The thread count changed after binding: a net uses at most the threads its scratch was sized
 * for (more threads later: still correct; fewer: the split follows the context). */
START_TEST(test_threads_changed_after_bind)
{
    const int orders[2][2] = { { 1, 3 }, { 3, 1 } };
    for (int k = 0; k < 2; k++) {
        asymbp_ctx_t *ctx = test_ctx();
        asymbp_net_t *net = NULL;
        enum { B = 40 };
        float x[B * 64];
        int32_t y[B];
        float loss0 = 0.0f, loss = 0.0f;
        ck_assert_int_eq(asymbp_ctx_set_threads(ctx, orders[k][0]), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x4p1,bn,relu,maxpool2s2,fc100,relu,fc4", 1, 8, 8, 4, 0, &net),
                         ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_bind(net, B), ASYMBP_OK);
        ck_assert_int_eq(asymbp_ctx_set_threads(ctx, orders[k][1]), ASYMBP_OK);
        fill(x, sizeof x / sizeof x[0], 11, -1, 1);
        for (int i = 0; i < B; i++) {
            y[i] = i % 4;
            x[i * 64 + 9 * (y[i] + 1)] += 3.0f;
        }
        for (int it = 0; it < 30; it++) {
            ck_assert_int_eq(asymbp_net_forward(net, x, B, 1, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_loss(net, y, B, it ? &loss : &loss0), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
            sgd_by_hand(net, 0.05f);
        }
        ck_assert(isfinite(loss));
        ck_assert_float_lt(loss, 0.5f * loss0);
        asymbp_net_destroy(net);
        asymbp_ctx_destroy(ctx);
    }
}
END_TEST

/* Direct feedback in the backward loop (layers/ alone, a hand-written deliver hook): the layer
 * above a direct one sends nothing and the hook's error arrives at the top of the direct layer's
 * block, from where the block's own ReLU passes it down; the classifier's gradient stays exact;
 * force-symmetric ignores B; the optimizer's step_begin runs before_update. */
typedef struct dl_count { int deliver, before, fail; float scale; } dl_count_t;
static asymbp_status_t h_deliver(asymbp_net_t *net, void *s, asymbp__wlayer_t *wl, const float *error, const int32_t *labels,
                                 size_t n, float *dst)
{
    dl_count_t *c = s;
    size_t K = (size_t)wl->classes, m = wl->block_size;
    (void)net;
    c->deliver++;
    if (c->fail) return ASYMBP_E_PLUGIN;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) dst[i * m + j] = c->scale * error[i * K + j % K] + 0.01f * (float)labels[i];
    return ASYMBP_OK;
}
static asymbp_status_t h_before(asymbp_net_t *net, void *s) { (void)net; ((dl_count_t *)s)->before++; return ASYMBP_OK; }

START_TEST(test_direct_delivery)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    dl_count_t dc = { 0, 0, 0, 3.0f };
    asymbp__net_fb_hooks_t h;
    enum { N = 8, I = 6, H = 5, K = 3 };
    float x[N * I], dWtop[K * H], dW0sym[H * I], Bdummy[K * H];
    int32_t y[N] = { 0, 1, 2, 0, 1, 2, 0, 1 };
    asymbp__layer_t *L0, *L1, *L2;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc5,relu,fc3", I, 1, 1, K, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, N), ASYMBP_OK);
    fill(x, sizeof x / sizeof x[0], 23, -1, 1);
    L0 = net->layers[0];
    L1 = net->layers[1];
    L2 = net->layers[2];
    /* the blocks: fc0's ends below fc2 (5 values per sample), fc2's is the top */
    ck_assert_uint_eq(L0->wl.block_size, H);
    ck_assert_uint_eq(L2->wl.block_size, 0);
    ck_assert_int_eq(L0->wl.classes, K);
    ck_assert_int_eq(L2->wl_below, 0);
    ck_assert_int_eq(L0->wl_below, -1);
    /* plain backprop first */
    ck_assert_int_eq(asymbp_net_forward(net, x, N, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, N, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    memcpy(dWtop, L2->dW, sizeof dWtop);
    memcpy(dW0sym, L0->dW, sizeof dW0sym);
    ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, &L2->wl), 1);
    ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, &L0->wl), 0);   /* the lowest sends nothing */
    /* fc0 direct */
    memset(&h, 0, sizeof h);
    h.state = &dc;
    h.deliver = h_deliver;
    h.before_update = h_before;
    asymbp__net_set_fb_hooks(net, &h);
    memset(Bdummy, 0, sizeof Bdummy);
    L0->wl.B = Bdummy;
    ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, &L0->wl), 1);
    ck_assert_int_eq(asymbp__net_wlayer_reads_feedback(net, &L2->wl), 0);   /* sends nothing now */
    ck_assert_int_eq(asymbp_net_loss(net, y, N, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    ck_assert_int_eq(dc.deliver, 1);
    {
        const float *e = L2->dout;
        double dW0[H * I] = { 0 }, nn = 0.0;
        for (int s = 0; s < N; s++)
            for (int j = 0; j < H; j++) {
                float want = dc.scale * e[s * K + j % K] + 0.01f * (float)y[s];
                double d = L0->out[s * H + j] > 0 ? want : 0.0;   /* the block's ReLU */
                ck_assert_float_eq(L1->dout[s * H + j], want);
                nn += (double)want * want;
                for (int i = 0; i < I; i++) dW0[j * I + i] += d * x[s * I + i];
            }
        for (int i = 0; i < H * I; i++) ck_assert(fabs(L0->dW[i] - dW0[i]) <= 1e-5 * (1.0 + fabs(dW0[i])));
        ck_assert_double_eq_tol(L2->wl.delta_norm, sqrt(nn), 1e-6 * sqrt(nn));
    }
    for (int i = 0; i < K * H; i++) ck_assert_float_eq(L2->dW[i], dWtop[i]);   /* exact classifier */
    /* force-symmetric (probe, gradient check): no delivery, exact gradients */
    asymbp__net_force_symmetric(net, 1);
    ck_assert_int_eq(asymbp_net_loss(net, y, N, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    ck_assert_int_eq(dc.deliver, 1);
    for (int i = 0; i < H * I; i++) ck_assert_float_eq(L0->dW[i], dW0sym[i]);
    asymbp__net_force_symmetric(net, 0);
    /* a failing delivery fails the pass and names the layer */
    dc.fail = 1;
    ck_assert_int_eq(asymbp_net_loss(net, y, N, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_E_PLUGIN);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "direct feedback of layer 0"));
    dc.fail = 0;
    ck_assert_int_eq(asymbp__net_step_begin(net), ASYMBP_OK);
    ck_assert_int_eq(dc.before, 1);
    L0->wl.B = NULL;
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* With dfa, kp or mirror assigned (and trained a little), the gradient check against exact
 * backprop still passes (the feedback is replaced by W), while the one through the feedback
 * does not match finite differences; training steps allocate nothing. */
START_TEST(test_gradcheck_learned_policies)
{
    const char *settings[3] = { "dfa", "kp", "mirror" };
    for (int k = 0; k < 3; k++) {
        test_alloc_t ta = { 0, 0, 0 };
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_net_t *net = NULL;
        asymbp_optimizer_t *opt = NULL;
        asymbp_gradcheck_params_t p = ASYMBP_GRADCHECK_PARAMS_INIT;
        asymbp_gradcheck_result_t r = ASYMBP_GRADCHECK_RESULT_INIT;
        asymbp_gradcheck_entry_t ent[8];
        enum { N = 3 };
        float x[N * 36];
        int32_t y[N] = { 1, 3, 0 };
        long calls;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ck_assert_int_eq(asymbp_ctx_set_seed(ctx, 5), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "conv3x3x3p1,bn,relu,maxpool2s2,fc6,relu,fc4", 1, 6, 6, 4, 0, &net),
                         ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_bind(net, N), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_set_feedback(net, settings[k]), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_create(net, "sgd", NULL, &opt), ASYMBP_OK);
        fill(x, sizeof x / sizeof x[0], 29, -1, 1);
        calls = ta.calls;
        for (int it = 0; it < 2; it++) {
            ck_assert_int_eq(asymbp_net_forward(net, x, N, 1, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_loss(net, y, N, NULL), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
            ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
        }
        ck_assert_int_eq(ta.calls, calls);
        r.layers = ent;
        r.capacity = 8;
        p.max_entries_per_param = test_quick() ? 4 : 12;
        ck_assert_int_eq(asymbp_net_gradcheck_v2(net, x, y, N, &p, &r), ASYMBP_OK);
        printf("gradcheck with %s replaced by backprop: max relative error %.3g\n", settings[k], r.max_rel_error);
        ck_assert_double_le(r.max_rel_error, 1e-2);
        p.use_feedback = 1;
        ck_assert_int_eq(asymbp_net_gradcheck_v2(net, x, y, N, &p, &r), ASYMBP_OK);
        ck_assert_msg(r.max_rel_error > 0.1, "%s: the feedback's gradients match backprop (%g)", settings[k], r.max_rel_error);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
    }
}
END_TEST

Suite *asymbp_test_net_suite(void);
Suite *asymbp_test_net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("net");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_spec_errors);
    tcase_add_test(tc, test_shape_errors_and_misuse);
    tcase_add_test(tc, test_rebind_predict_evaluate);
    tcase_add_test(tc, test_no_alloc_in_step);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_paper_cnn_gradcheck);
    tcase_add_test(tc, test_hooks_and_feedback);
    tcase_add_test(tc, test_write_read);
    tcase_add_test(tc, test_training_sanity);
    tcase_add_test(tc, test_threads_match_one_thread);
    tcase_add_test(tc, test_threads_changed_after_bind);
    tcase_add_test(tc, test_direct_delivery);
    tcase_add_test(tc, test_gradcheck_learned_policies);
    suite_add_tcase(s, tc);
    return s;
}
