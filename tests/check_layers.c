/* Layers: every forward against a naive double-precision loop, every backward against finite
 * differences (asymbp_net_gradcheck, itself checked to catch a wrong backward). */
#include <string.h>
#include "test_util.h"
#include "asymbp/net.h"
#include "layers/layers_impl.h"

static void fill(float *x, size_t n, uint32_t seed, float lo, float hi)
{
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = lo + (hi - lo) * (float)((s >> 40) & 0xffffff) / 16777216.0f;
    }
}

static float *xalloc(size_t n)
{
    float *p = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void labels_for(int32_t *y, size_t n, int k)
{
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)((i * 7 + 3) % (size_t)k);
}

static void assert_close(const float *got, const double *ref, size_t n, double tol, const char *what)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]) / (1e-3 + fabs(ref[i]));
        if (d > worst) worst = d;
    }
    if (worst > tol) ck_abort_msg("%s: worst relative error %g > %g", what, worst, tol);
}

/* Gradient check of a bound net; prints and returns the worst relative error. */
static double gradcheck(asymbp_net_t *net, const float *x, const int32_t *y, size_t n, const char *what)
{
    asymbp_gradcheck_params_t p = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t r = ASYMBP_GRADCHECK_REPORT_INIT;
    p.max_entries_per_param = test_quick() ? 8 : 32;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, n, &p, &r), ASYMBP_OK);
    printf("gradcheck %-28s max %.2e (input %.2e, %zu checked, %zu skipped)\n", what, r.max_rel_error,
           r.input_rel_error, r.input_checked, r.input_skipped);
    for (size_t i = 0; i < r.layer_count; i++)
        if (r.layers[i].rel_error > 1e-3) printf("  %s %.2e (%zu checked, %zu skipped)\n", r.layers[i].name, r.layers[i].rel_error, r.layers[i].checked, r.layers[i].skipped);
    ck_assert_uint_gt(r.input_checked, 0);
    for (size_t i = 0; i < r.layer_count; i++) ck_assert_uint_gt(r.layers[i].checked, 0);
    if (r.max_rel_error > 1e-2) ck_abort_msg("%s: gradcheck error %g", what, r.max_rel_error);
    return r.max_rel_error;
}

static asymbp_net_t *make(asymbp_ctx_t *ctx, const char *spec, int64_t c, int64_t h, int64_t w, int64_t k, size_t batch)
{
    asymbp_net_t *net = NULL;
    asymbp_status_t st = asymbp_net_from_spec(ctx, spec, c, h, w, k, 0, &net);
    if (st != ASYMBP_OK) ck_abort_msg("spec %s: %s", spec, asymbp_ctx_last_error(ctx));
    ck_assert_int_eq(asymbp_net_bind(net, batch), ASYMBP_OK);
    return net;
}

/* ---- dense ------------------------------------------------------------------------------------ */

START_TEST(test_dense_forward)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "fc7,fc3", 2, 3, 2, 3, 5);
    asymbp__layer_t *L = net->layers[0];
    size_t n = 4, in = 12;
    float *x = xalloc(n * in);
    double ref[4 * 7];
    fill(x, n * in, 1, -1, 1);
    fill(L->b, 7, 2, -0.5f, 0.5f);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < 7; j++) {
            double a = L->b[j];
            for (size_t i = 0; i < in; i++) a += (double)L->W[j * in + i] * x[s * in + i];
            ref[s * 7 + j] = a;
        }
    assert_close(L->out, ref, n * 7, 1e-5, "dense forward");
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_dense_backward)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "fc6,fc5nb,fc4", 9, 1, 1, 4, 6);
    size_t n = 6;
    float *x = xalloc(n * 9);
    int32_t y[6];
    asymbp__layer_t *L = net->layers[1];
    float loss;
    fill(x, n * 9, 3, -1, 1);
    labels_for(y, n, 4);
    gradcheck(net, x, y, n, "dense (bias, no bias)");
    /* dW of the middle layer against an explicit delta_out^T x in double */
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, n, &loss), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
    for (size_t j = 0; j < 5; j++)
        for (size_t i = 0; i < 6; i++) {
            double a = 0.0;
            for (size_t s = 0; s < n; s++) a += (double)L->dout[s * 5 + j] * net->layers[0]->out[s * 6 + i];
            ck_assert_double_le(fabs(a - L->dW[j * 6 + i]), 1e-6 + 1e-4 * fabs(a));
        }
    ck_assert_ptr_null(L->b);
    ck_assert_double_gt(L->wl.grad_norm, 0.0);
    ck_assert_double_gt(L->wl.delta_norm, 0.0);
    ck_assert_double_eq(net->layers[0]->wl.delta_norm, 0.0);   /* first layer sends nothing down */
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- conv --------------------------------------------------------------------------------- */

static void conv_ref(const asymbp__layer_t *L, const float *x, size_t n, double *y)
{
    int64_t C = L->in_c, H = L->in_h, W = L->in_w, OC = L->out_c, OH = L->out_h, OW = L->out_w;
    for (size_t s = 0; s < n; s++)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    double a = L->has_bias ? L->b[o] : 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int u = 0; u < L->kh; u++)
                            for (int v = 0; v < L->kw; v++) {
                                int64_t ih = i * L->stride - L->pad + u, iw = j * L->stride - L->pad + v;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                a += (double)L->W[((o * C + c) * L->kh + u) * L->kw + v] * x[((int64_t)s * C + c) * H * W + ih * W + iw];
                            }
                    y[(((int64_t)s * OC + o) * OH + i) * OW + j] = a;
                }
}

static const char *conv_specs[] = { "conv3x3x4p1", "conv3x2x3s2p1", "conv5x5x2s2p2nb", "conv1x1x3", "conv2x3x2s3", "conv4x4x3s1p3" };

START_TEST(test_conv_forward)
{
    asymbp_ctx_t *ctx = test_ctx();
    char spec[64];
    snprintf(spec, sizeof spec, "%s,fc3", conv_specs[_i]);
    asymbp_net_t *net = make(ctx, spec, 2, 7, 6, 3, 3);
    asymbp__layer_t *L = net->layers[0];
    size_t n = 3;
    float *x = xalloc(n * 2 * 7 * 6);
    double *ref = malloc(n * L->out_size * sizeof(double));
    fill(x, n * 84, 10 + (uint32_t)_i, -1, 1);
    if (L->has_bias) fill(L->b, (size_t)L->out_c, 5, -0.5f, 0.5f);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    conv_ref(L, x, n, ref);
    assert_close(L->out, ref, n * L->out_size, 1e-4, spec);
    free(ref);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_conv_backward)
{
    asymbp_ctx_t *ctx = test_ctx();
    char spec[64], what[64];
    size_t n = 3;
    int32_t y[3];
    snprintf(spec, sizeof spec, "%s,fc3", conv_specs[_i]);
    asymbp_net_t *net = make(ctx, spec, 2, 7, 6, 3, 4);
    float *x = xalloc(n * 84);
    fill(x, n * 84, 20 + (uint32_t)_i, -1, 1);
    labels_for(y, n, 3);
    snprintf(what, sizeof what, "%s", conv_specs[_i]);
    gradcheck(net, x, y, n, what);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- the GEMM paths of conv and dense, on 1, 2 and 3 threads ------------------------------------
 * Forward, input gradient (through a V that differs from W), weight and bias gradient of one
 * layer against naive double loops, for CBLAS (isa 0) and every kernel ISA the CPU runs; the
 * kernel ISAs must agree bit for bit on a given thread count.  (Tolerance 1e-3 relative with a
 * 1e-3 floor: float rounding of sums that cancel; a missed or misplaced term is off by O(0.1).) */

typedef struct pass_out {
    float *y, *dx, *dW, *db;
} pass_out_t;

static void pass_free(pass_out_t *o)
{
    free(o->y); free(o->dx); free(o->dW); free(o->db);
    memset(o, 0, sizeof *o);
}

static float *dupf(const float *p, size_t n)
{
    float *q = xalloc(n ? n : 1);
    if (n) memcpy(q, p, n * sizeof(float));
    return q;
}

/* Run layer 0 of net forward and backward on isa; dy and V are the caller's. */
static void layer_pass(asymbp_net_t *net, int isa, const float *x, const float *dy, const float *V, size_t n,
                       pass_out_t *o)
{
    asymbp__layer_t *L = net->layers[0];
    float *dx = xalloc(n * L->in_size);
    net->isa = isa;
    asymbp__layer_forward(net, L, x, n, 1);
    memcpy(L->dout, dy, n * L->out_size * sizeof(float));
    L->wl.V = V;
    asymbp__layer_backward(net, L, x, dx, n);
    L->wl.V = NULL;
    o->y = dupf(L->out, n * L->out_size);
    o->dx = dx;
    o->dW = dupf(L->dW, L->wl.numel);
    o->db = L->has_bias ? dupf(L->db, (size_t)L->out_c) : NULL;
}

static void check_pass(const asymbp__layer_t *L, const pass_out_t *o, const float *x, const float *dy, const float *V,
                       size_t n, const char *what)
{
    size_t in = L->in_size, out = L->out_size, numel = L->wl.numel;
    double *y = calloc(n * out, sizeof(double)), *dx = calloc(n * in, sizeof(double));
    double *dW = calloc(numel, sizeof(double)), *db = calloc((size_t)L->out_c, sizeof(double));
    char msg[160];
    if (L->kind == ASYMBP_LAYER_CONV2D) {
        int64_t C = L->in_c, H = L->in_h, W = L->in_w, OC = L->out_c, OH = L->out_h, OW = L->out_w;
        conv_ref(L, x, n, y);
        for (size_t s = 0; s < n; s++)
            for (int64_t o2 = 0; o2 < OC; o2++)
                for (int64_t i = 0; i < OH; i++)
                    for (int64_t j = 0; j < OW; j++) {
                        double g = dy[(((int64_t)s * OC + o2) * OH + i) * OW + j];
                        db[o2] += g;
                        for (int64_t c = 0; c < C; c++)
                            for (int u = 0; u < L->kh; u++)
                                for (int v = 0; v < L->kw; v++) {
                                    int64_t ih = i * L->stride - L->pad + u, iw = j * L->stride - L->pad + v;
                                    size_t wi = (size_t)(((o2 * C + c) * L->kh + u) * L->kw + v);
                                    size_t xi = (size_t)((((int64_t)s * C + c) * H + ih) * W + iw);
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    dW[wi] += g * x[xi];
                                    dx[xi] += g * V[wi];
                                }
                    }
    } else {
        for (size_t s = 0; s < n; s++)
            for (size_t j = 0; j < out; j++) {
                double a = L->has_bias ? L->b[j] : 0.0, g = dy[s * out + j];
                for (size_t i = 0; i < in; i++) {
                    a += (double)L->W[j * in + i] * x[s * in + i];
                    dW[j * in + i] += g * x[s * in + i];
                    dx[s * in + i] += g * V[j * in + i];
                }
                y[s * out + j] = a;
                db[j] += g;
            }
    }
    snprintf(msg, sizeof msg, "%s forward", what);
    assert_close(o->y, y, n * out, 1e-3, msg);
    snprintf(msg, sizeof msg, "%s input gradient", what);
    assert_close(o->dx, dx, n * in, 1e-3, msg);
    snprintf(msg, sizeof msg, "%s weight gradient", what);
    assert_close(o->dW, dW, numel, 1e-3, msg);
    if (L->has_bias) {
        snprintf(msg, sizeof msg, "%s bias gradient", what);
        assert_close(o->db, db, (size_t)L->out_c, 1e-3, msg);
    }
    free(y); free(dx); free(dW); free(db);
}

static void gemm_paths(const char *spec, int64_t c, int64_t h, int64_t w, size_t n)
{
    for (int T = 1; T <= 3; T++) {
        asymbp_ctx_t *ctx = test_ctx();
        asymbp_net_t *net;
        asymbp__layer_t *L;
        float *x, *dy, *V;
        pass_out_t first = { 0 };
        int have_first = 0, ran = 0;
        ck_assert_int_eq(asymbp_ctx_set_threads(ctx, T), ASYMBP_OK);
        net = make(ctx, spec, c, h, w, 3, n);
        L = net->layers[0];
        x = xalloc(n * L->in_size);
        dy = xalloc(n * L->out_size);
        V = xalloc(L->wl.numel);
        fill(x, n * L->in_size, 41, -1, 1);
        fill(dy, n * L->out_size, 42, -1, 1);
        fill(V, L->wl.numel, 43, -0.5f, 0.5f);
        if (L->has_bias) fill(L->b, (size_t)L->out_c, 44, -0.5f, 0.5f);
        for (int isa = ASYMBP__ISA_NONE; isa <= ASYMBP__ISA_AVX512; isa++) {
            pass_out_t o;
            char what[96];
            if (isa != ASYMBP__ISA_NONE && !asymbp__gemm_isa_supported(isa)) continue;
            if (isa != ASYMBP__ISA_NONE && !asymbp__gemm_isa()) continue;   /* no kernel scratch bound */
            layer_pass(net, isa, x, dy, V, n, &o);
            snprintf(what, sizeof what, "%s, %s, %d threads", spec, asymbp__gemm_isa_name(isa), T);
            check_pass(L, &o, x, dy, V, n, what);
            ran++;
            if (isa == ASYMBP__ISA_NONE) {
                pass_free(&o);
            } else if (!have_first) {
                first = o;
                have_first = 1;
            } else {
                ck_assert_msg(memcmp(first.y, o.y, n * L->out_size * sizeof(float)) == 0, "%s: forward bits", what);
                ck_assert_msg(memcmp(first.dx, o.dx, n * L->in_size * sizeof(float)) == 0, "%s: input gradient bits", what);
                ck_assert_msg(memcmp(first.dW, o.dW, L->wl.numel * sizeof(float)) == 0, "%s: weight gradient bits", what);
                pass_free(&o);
            }
        }
        ck_assert_int_ge(ran, 1);
        net->isa = asymbp__gemm_isa();
        pass_free(&first);
        free(x); free(dy); free(V);
        asymbp_net_destroy(net);
        asymbp_ctx_destroy(ctx);
    }
}

static const char *gemm_conv_specs[] = { "conv5x5x13p2", "conv3x3x14s2p1", "conv1x1x5", "conv4x3x3s3p2nb", "conv2x2x40s1" };

START_TEST(test_conv_gemm_paths)
{
    char spec[64];
    snprintf(spec, sizeof spec, "%s,fc3", gemm_conv_specs[_i]);
    gemm_paths(spec, 12, 9, 7, 5);   /* K = 300 for 5x5: two k blocks; 13 and 40 channels: row edges */
}
END_TEST

START_TEST(test_dense_gemm_paths)
{
    gemm_paths("fc29,fc3", 300, 1, 1, 5);    /* 3 threads: the delta from the rows of V, summed */
    gemm_paths("fc29,fc3", 300, 1, 1, 13);   /* 2 and 3 threads: the delta split by samples */
    gemm_paths("fc70nb,fc3", 5, 3, 2, 9);
}
END_TEST

/* ---- pooling -------------------------------------------------------------------------------- */

/* Independent pooling reference: windows over the padded plane; max ignores padding, avg divides
 * by the positions inside [-pad, H + pad). */
static void pool_ref(const asymbp__layer_t *L, const float *x, size_t n, double *y)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int k = L->kh, s = L->stride, p = L->pad;
    for (size_t pl = 0; pl < n * (size_t)L->in_c; pl++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                double best = -INFINITY, sum = 0.0;
                int cnt = 0;
                for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++) {
                        int64_t ih = i * s - p + u, iw = j * s - p + v;
                        if (ih >= H + p || iw >= W + p) continue;
                        cnt++;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        double a = x[pl * (size_t)(H * W) + (size_t)(ih * W + iw)];
                        sum += a;
                        if (a > best) best = a;
                    }
                y[pl * (size_t)(OH * OW) + (size_t)(i * OW + j)] = L->kind == ASYMBP_LAYER_MAXPOOL ? best : sum / cnt;
            }
}

static const char *pool_specs[] = { "maxpool3s2", "avgpool3s2", "maxpool2s2f", "avgpool3s2p1", "maxpool3s2p1",
                                    "avgpool2s1f", "maxpool3s3", "avgpool4s3p2",
                                    /* kernel smaller than the stride (ceil mode; issue 12) */
                                    "maxpool1s2", "avgpool1s3", "maxpool2s3", "avgpool1s2p0f" };

START_TEST(test_pool_forward)
{
    asymbp_ctx_t *ctx = test_ctx();
    char spec[64];
    size_t n = 2;
    snprintf(spec, sizeof spec, "%s,fc3", pool_specs[_i]);
    asymbp_net_t *net = make(ctx, spec, 3, 7, 8, 3, 2);
    asymbp__layer_t *L = net->layers[0];
    float *x = xalloc(n * 168);
    double *ref = malloc(n * L->out_size * sizeof(double));
    fill(x, n * 168, 30 + (uint32_t)_i, -1, 1);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    pool_ref(L, x, n, ref);
    assert_close(L->out, ref, n * L->out_size, 1e-5, spec);
    free(ref);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_pool_backward)
{
    asymbp_ctx_t *ctx = test_ctx();
    char spec[64];
    size_t n = 2;
    int32_t y[2];
    snprintf(spec, sizeof spec, "conv3x3x2p1,%s,fc3", pool_specs[_i]);
    asymbp_net_t *net = make(ctx, spec, 2, 7, 8, 3, 2);
    float *x = xalloc(n * 112);
    fill(x, n * 112, 40 + (uint32_t)_i, -1, 1);
    labels_for(y, n, 3);
    gradcheck(net, x, y, n, pool_specs[_i]);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_pool_sizes)
{
    /* Caffe ceil mode: 28 -> 14 -> 7 -> 3 with k 3 s 2; the last window starts inside */
    ck_assert_int_eq(asymbp__pool_out(28, 3, 2, 0, 1), 14);
    ck_assert_int_eq(asymbp__pool_out(14, 3, 2, 0, 1), 7);
    ck_assert_int_eq(asymbp__pool_out(7, 3, 2, 0, 1), 3);
    ck_assert_int_eq(asymbp__pool_out(28, 3, 2, 0, 0), 13);
    ck_assert_int_eq(asymbp__pool_out(6, 2, 2, 1, 1), 4);   /* (6+2-2)/2 = 3 -> 4, start 6 < 7: kept */
    ck_assert_int_eq(asymbp__pool_out(5, 2, 2, 1, 1), 3);   /* ceil(5/2)+1 = 4, start 6 >= 5+1: dropped */
    ck_assert_int_eq(asymbp__pool_out(2, 3, 1, 0, 1), 0);
    /* kernel smaller than the stride, no padding: no window may start at or past the edge */
    ck_assert_int_eq(asymbp__pool_out(2, 1, 2, 0, 1), 1);
    ck_assert_int_eq(asymbp__pool_out(8, 1, 2, 0, 1), 4);
    ck_assert_int_eq(asymbp__pool_out(8, 1, 3, 0, 1), 3);
    ck_assert_int_eq(asymbp__pool_out(7, 1, 3, 0, 1), 3);
    ck_assert_int_eq(asymbp__pool_out(8, 2, 3, 0, 1), 3);
    for (int64_t in = 1; in <= 12; in++)
        for (int k = 1; k <= 4; k++)
            for (int s = 1; s <= 5; s++)
                for (int p = 0; p < k; p++)
                    for (int c = 0; c <= 1; c++) {
                        int64_t o = asymbp__pool_out(in, k, s, p, c);
                        if (o > 0) ck_assert_msg((o - 1) * s < in + p, "in %lld k %d s %d p %d ceil %d: window %lld starts at %lld",
                                                 (long long)in, k, s, p, c, (long long)o - 1, (long long)((o - 1) * s));
                    }
}
END_TEST

START_TEST(test_maxpool_ties)
{
    /* all-equal windows: the gradient goes to the first element of each window in scan order */
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "maxpool2s2,fc2", 1, 4, 4, 2, 1);
    asymbp__layer_t *L = net->layers[0];
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (i % 4 < 2) ? 1.0f : 2.0f;
    ck_assert_int_eq(asymbp_net_forward(net, x, 1, 1, NULL), ASYMBP_OK);
    ck_assert_int_eq(L->argmax[0], 0);
    ck_assert_int_eq(L->argmax[1], 2);
    ck_assert_int_eq(L->argmax[2], 8);
    ck_assert_int_eq(L->argmax[3], 10);
    asymbp_net_destroy(net);
    /* the paper CNN's 3 x 3 stride-2 pooling (its own window-by-window loop) on values drawn from
     * {0, 1, 2}: many ties; every window's value and index must be those of the first maximum in
     * row-major scan order, counted by hand here */
    {
        const int64_t H = 13, W = 29, OH = 6, OW = 14;   /* ceil mode: (13-3)/2+1, (29-3)/2+1 */
        float xin[2 * 13 * 29];
        uint32_t r = 12345u;
        net = make(ctx, "maxpool3s2,fc2", 2, H, W, 2, 1);
        L = net->layers[0];
        ck_assert_int_eq(L->out_h, OH);
        ck_assert_int_eq(L->out_w, OW);
        for (int i = 0; i < 2 * 13 * 29; i++) {
            r = r * 1664525u + 1013904223u;
            xin[i] = (float)((r >> 24) % 3u);
        }
        ck_assert_int_eq(asymbp_net_forward(net, xin, 1, 1, NULL), ASYMBP_OK);
        for (int c = 0; c < 2; c++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    const float *xp = xin + c * H * W;
                    int64_t bi = -1;
                    for (int64_t ih = 2 * oh; ih < 2 * oh + 3 && ih < H; ih++)
                        for (int64_t iw = 2 * ow; iw < 2 * ow + 3 && iw < W; iw++)
                            if (bi < 0 || xp[ih * W + iw] > xp[bi]) bi = ih * W + iw;
                    ck_assert_int_eq(L->argmax[c * OH * OW + oh * OW + ow], (int32_t)bi);
                    ck_assert(L->out[c * OH * OW + oh * OW + ow] == xp[bi]);
                }
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- relu, flatten, dropout, bn ---------------------------------------------------------------- */

START_TEST(test_relu_flatten)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "relu,flatten,fc4,relu,fc3", 2, 3, 3, 3, 3);
    size_t n = 3;
    float *x = xalloc(n * 18);
    double ref[54];
    int32_t y[3];
    int64_t shp[3];
    fill(x, n * 18, 50, -1, 1);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    for (size_t i = 0; i < n * 18; i++) ref[i] = x[i] > 0 ? x[i] : 0.0;
    assert_close(net->layers[0]->out, ref, n * 18, 0.0, "relu forward");
    assert_close(net->layers[1]->out, ref, n * 18, 0.0, "flatten forward");
    ck_assert_int_eq(asymbp_net_layer_output_shape(net, 1, shp), ASYMBP_OK);
    ck_assert_int_eq(shp[0], 18);
    ck_assert_int_eq(shp[1], 1);
    labels_for(y, n, 3);
    gradcheck(net, x, y, n, "relu, flatten");
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_dropout)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "fc50,dropout0.3,fc3", 20, 1, 1, 3, 40);
    asymbp__layer_t *D = net->layers[1];
    size_t n = 40, zeros = 0, total = n * 50;
    float *x = xalloc(n * 20);
    int32_t y[40];
    fill(x, n * 20, 60, -1, 1);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    for (size_t i = 0; i < total; i++) {
        float in = net->layers[0]->out[i], out = D->out[i];
        if (out == 0.0f && in != 0.0f) zeros++;
        else ck_assert_float_eq_tol(out, in / 0.7f, 1e-5f * (1 + fabsf(in)));
    }
    /* 2000 draws at p = 0.3: 600 expected, sd ~20 */
    ck_assert_uint_gt(zeros, 500);
    ck_assert_uint_lt(zeros, 700);
    /* eval: identity */
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 0, NULL), ASYMBP_OK);
    ck_assert_int_eq(memcmp(D->out, net->layers[0]->out, total * sizeof(float)), 0);
    /* backward with the mask held fixed */
    labels_for(y, n, 3);
    gradcheck(net, x, y, 8, "dropout (fixed mask)");
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_bn_forward)
{
    asymbp_ctx_t *ctx = test_ctx();
    /* per channel after conv (index 1), per feature after dense (index 4) */
    asymbp_net_t *net = make(ctx, "conv3x3x3p1,bn,relu,fc5,bnm0.2,fc3", 2, 4, 4, 3, 6);
    asymbp__layer_t *B = net->layers[1], *B2 = net->layers[4];
    size_t n = 5, S = 16, C = 3;
    float *x = xalloc(n * 32);
    double *ref = malloc(n * 48 * sizeof(double));
    fill(x, n * 32, 70, -1, 2);
    fill(B->gamma, 3, 71, 0.5f, 1.5f);
    fill(B->beta, 3, 72, -0.5f, 0.5f);
    ck_assert_float_eq(B2->momentum, 0.2f);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 1, NULL), ASYMBP_OK);
    for (size_t c = 0; c < C; c++) {
        double m = 0, v = 0;
        const float *in = net->layers[0]->out;
        for (size_t s = 0; s < n; s++) for (size_t i = 0; i < S; i++) m += in[(s * C + c) * S + i];
        m /= (double)(n * S);
        for (size_t s = 0; s < n; s++) for (size_t i = 0; i < S; i++) v += pow(in[(s * C + c) * S + i] - m, 2);
        v /= (double)(n * S);
        for (size_t s = 0; s < n; s++)
            for (size_t i = 0; i < S; i++)
                ref[(s * C + c) * S + i] = fmax(0.0, B->gamma[c] * (in[(s * C + c) * S + i] - m) / sqrt(v + 1e-5) + B->beta[c]);
        /* running: 0.9 * init + 0.1 * batch (variance unbiased) */
        ck_assert_double_le(fabs(B->run_mean[c] - 0.1 * m), 1e-5);
        ck_assert_double_le(fabs(B->run_var[c] - (0.9 + 0.1 * v * (n * S) / (n * S - 1))), 1e-5);
    }
    /* the BN below a ReLU writes the ReLU's output (max(0, y)) in its place */
    ck_assert_ptr_eq(B->relu, net->layers[2]);
    ck_assert_ptr_null(B2->relu);
    assert_close(net->layers[2]->out, ref, n * 48, 1e-4, "bn + relu train forward");
    {   /* per feature after dense: every feature of the batch has mean 0, variance ~1 */
        for (size_t j = 0; j < 5; j++) {
            double m = 0, v = 0;
            for (size_t s = 0; s < n; s++) m += B2->out[s * 5 + j];
            m /= n;
            for (size_t s = 0; s < n; s++) v += pow(B2->out[s * 5 + j] - m, 2);
            ck_assert_double_le(fabs(m), 1e-5);
            ck_assert_double_le(fabs(v / n - 1.0), 1e-3);
        }
    }
    /* eval mode uses the running statistics */
    fill(B->run_mean, 3, 73, -0.3f, 0.3f);
    fill(B->run_var, 3, 74, 0.5f, 2.0f);
    ck_assert_int_eq(asymbp_net_forward(net, x, n, 0, NULL), ASYMBP_OK);
    for (size_t c = 0; c < C; c++)
        for (size_t s = 0; s < n; s++)
            for (size_t i = 0; i < S; i++)
                ref[(s * C + c) * S + i] = fmax(0.0, B->gamma[c] * (net->layers[0]->out[(s * C + c) * S + i] - B->run_mean[c]) /
                                                     sqrt(B->run_var[c] + 1e-5) + B->beta[c]);
    assert_close(net->layers[2]->out, ref, n * 48, 1e-5, "bn + relu eval forward");
    /* eval does not move the running statistics */
    {
        float rm = B->run_mean[0];
        ck_assert_int_eq(asymbp_net_forward(net, x, n, 0, NULL), ASYMBP_OK);
        ck_assert_float_eq(B->run_mean[0], rm);
    }
    free(ref);
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_bn_backward)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "conv3x3x3p1,bn,relu,fc5,bn,relu,fc3", 2, 4, 4, 3, 6);
    size_t n = 4;
    float *x = xalloc(n * 32);
    int32_t y[4];
    fill(x, n * 32, 80, -1, 2);
    fill(net->layers[1]->gamma, 3, 81, 0.5f, 1.5f);
    fill(net->layers[1]->beta, 3, 82, -0.5f, 0.5f);
    labels_for(y, n, 3);
    gradcheck(net, x, y, n, "bn train (conv, dense)");
    free(x);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A BN directly below a ReLU runs both, and a convolutional BN's last pass runs in the pooling
 * layer above (forward) and the conv below (backward) (layers_impl.h): the same bits as the layers
 * run apart (a dropout0 between them, the identity, keeps them apart), in every output, gradient
 * and delta read-out, after conv and after dense, in training and evaluation, 1 and 2 threads. */
static void bits_eq(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            ck_abort_msg("%s: element %zu differs (%.9g fused, %.9g apart)", what, i, a[i], b[i]);
}

START_TEST(test_bn_relu_fused)
{
    const int threads = _i + 1;
    asymbp_ctx_t *ctx = test_ctx();
    /* A's layer fa[k] is B's fb[k]: conv, bn, relu, maxpool, conv, bn, relu, avgpool, fc, bn, relu, fc */
    static const size_t fa[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    static const size_t fb[] = { 0, 2, 4, 6, 7, 9, 11, 13, 14, 15, 17, 18 };
    const size_t K = sizeof fa / sizeof fa[0], big = 256;   /* the largest layer, floats per sample */
    asymbp_net_t *A, *B;
    size_t n = 7;
    float *x = xalloc(n * 128), *ra, *rb;
    int32_t y[7];
    float la, lb;
    const float *za, *zb;
    ck_assert_int_eq(asymbp_ctx_set_threads(ctx, threads), ASYMBP_OK);
    A = make(ctx, "conv3x3x4p1,bn,relu,maxpool2s2,conv3x3x4p1,bn,relu,avgpool2s2,fc6,bn,relu,fc3", 2, 8, 8, 3, 8);
    B = make(ctx, "conv3x3x4p1,dropout0,bn,dropout0,relu,dropout0,maxpool2s2,conv3x3x4p1,dropout0,bn,dropout0,relu,"
                  "dropout0,avgpool2s2,fc6,bn,dropout0,relu,fc3", 2, 8, 8, 3, 8);
    /* A: every BN runs its ReLU; the conv BNs' last passes run in the pools above and the convs below */
    ck_assert_ptr_eq(A->layers[1]->relu, A->layers[2]);
    ck_assert_int_eq(A->layers[10]->fused, 1);
    ck_assert_ptr_eq(A->layers[3]->bn_fwd, A->layers[1]);
    ck_assert_ptr_eq(A->layers[7]->bn_fwd, A->layers[5]);
    ck_assert_ptr_eq(A->layers[0]->bn_bwd, A->layers[1]);
    ck_assert_ptr_eq(A->layers[4]->bn_bwd, A->layers[5]);
    ck_assert_ptr_null(A->layers[8]->bn_bwd);   /* a dense BN keeps its passes */
    /* B: nothing is fused */
    for (size_t i = 0; i < B->n_layers; i++) {
        ck_assert_ptr_null(B->layers[i]->relu);
        ck_assert_int_eq(B->layers[i]->fused, 0);
        ck_assert_ptr_null(B->layers[i]->bn_fwd);
        ck_assert_ptr_null(B->layers[i]->bn_bwd);
    }
    /* the same parameters; betas of both signs so that the mask cuts */
    for (size_t k = 0; k < K; k++) {
        asymbp__layer_t *P = A->layers[fa[k]], *Q = B->layers[fb[k]];
        ck_assert_int_eq(P->kind, Q->kind);
        if (P->kind == ASYMBP_LAYER_BATCHNORM) {
            fill(P->gamma, (size_t)P->in_c, 90 + (uint32_t)k, 0.5f, 1.5f);
            fill(P->beta, (size_t)P->in_c, 95 + (uint32_t)k, -0.8f, 0.8f);
            memcpy(Q->gamma, P->gamma, (size_t)P->in_c * sizeof(float));
            memcpy(Q->beta, P->beta, (size_t)P->in_c * sizeof(float));
        } else if (P->kind == ASYMBP_LAYER_DENSE || P->kind == ASYMBP_LAYER_CONV2D) {
            memcpy(Q->W, P->W, P->wl.numel * sizeof(float));
            memcpy(Q->b, P->b, (size_t)P->out_c * sizeof(float));
        }
    }
    fill(x, n * 128, 99, -1, 2);
    labels_for(y, n, 3);
    ck_assert_int_eq(asymbp_net_set_input_grad(A, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_input_grad(B, 1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(A, x, n, 1, &za), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(B, x, n, 1, &zb), ASYMBP_OK);
    bits_eq(za, zb, n * 3, "training logits");
    bits_eq(A->layers[2]->out, B->layers[4]->out, n * 256, "conv bn + relu output (under max pooling)");
    bits_eq(A->layers[6]->out, B->layers[11]->out, n * 64, "conv bn + relu output (under average pooling)");
    bits_eq(A->layers[10]->out, B->layers[17]->out, n * 6, "dense bn + relu output");
    {   /* some activations are cut, some pass */
        size_t zeros = 0;
        for (size_t i = 0; i < n * 256; i++) zeros += A->layers[2]->out[i] == 0.0f;
        ck_assert_uint_gt(zeros, 0);
        ck_assert_uint_lt(zeros, n * 256);
    }
    ck_assert_int_eq(asymbp_net_loss(A, y, n, &la), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(B, y, n, &lb), ASYMBP_OK);
    ck_assert(la == lb);
    ck_assert_int_eq(asymbp_net_backward(A), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_backward(B), ASYMBP_OK);
    bits_eq(A->dinput, B->dinput, n * 128, "input gradient");
    for (size_t k = 0; k < K; k++) {
        asymbp__layer_t *P = A->layers[fa[k]], *Q = B->layers[fb[k]];
        if (P->kind == ASYMBP_LAYER_BATCHNORM) {
            bits_eq(P->dgamma, Q->dgamma, (size_t)P->in_c, "dgamma");
            bits_eq(P->dbeta, Q->dbeta, (size_t)P->in_c, "dbeta");
        } else if (P->kind == ASYMBP_LAYER_DENSE || P->kind == ASYMBP_LAYER_CONV2D) {
            bits_eq(P->dW, Q->dW, P->wl.numel, "dW");
            bits_eq(P->db, Q->db, (size_t)P->out_c, "db");
        }
    }
    /* the delta read-outs of every layer but the ends: both sides of every fused pair */
    ra = xalloc(n * big);
    rb = xalloc(n * big);
    for (size_t k = 1; k + 1 < K; k++) {
        size_t ca = 0, cb = 0;
        for (int what = ASYMBP_READ_DELTA_RECEIVED; what <= ASYMBP_READ_DELTA_SENT; what++) {
            ck_assert_int_eq(asymbp_net_read_layer(A, fa[k], (asymbp_readout_t)what, ra, n * big, &ca), ASYMBP_OK);
            ck_assert_int_eq(asymbp_net_read_layer(B, fb[k], (asymbp_readout_t)what, rb, n * big, &cb), ASYMBP_OK);
            ck_assert_uint_eq(ca, cb);
            bits_eq(ra, rb, ca, what == ASYMBP_READ_DELTA_SENT ? "delta sent" : "delta received");
        }
    }
    free(ra);
    free(rb);
    /* evaluation: running statistics */
    ck_assert_int_eq(asymbp_net_forward(A, x, n, 0, &za), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_forward(B, x, n, 0, &zb), ASYMBP_OK);
    bits_eq(za, zb, n * 3, "evaluation logits");
    bits_eq(A->layers[6]->out, B->layers[11]->out, n * 64, "conv bn + relu evaluation output");
    free(x);
    asymbp_net_destroy(A);
    asymbp_net_destroy(B);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_softmax_xent)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "fc4", 3, 1, 1, 4, 3);
    asymbp__layer_t *L = net->layers[0];
    float x[9] = { 1, 2, 3, -1, 0.5f, 2, 0, 0, 0 };
    int32_t y[3] = { 0, 3, 2 };
    float loss;
    double ref = 0.0;
    const float *z;
    /* large weights: logits of several hundred must not overflow */
    for (size_t i = 0; i < 12; i++) L->W[i] = (float)((int)(i % 5) - 2) * 60.0f;
    ck_assert_int_eq(asymbp_net_forward(net, x, 3, 1, &z), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_loss(net, y, 3, &loss), ASYMBP_OK);
    for (int s = 0; s < 3; s++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < 4; j++) mx = fmax(mx, z[s * 4 + j]);
        for (int j = 0; j < 4; j++) sum += exp(z[s * 4 + j] - mx);
        ref += mx + log(sum) - z[s * 4 + y[s]];
        for (int j = 0; j < 4; j++) {
            double d = (exp(z[s * 4 + j] - mx) / sum - (j == y[s])) / 3.0;
            ck_assert_double_le(fabs(L->dout[s * 4 + j] - d), 1e-6);
        }
    }
    ck_assert(isfinite(loss));
    ck_assert_double_le(fabs(loss - ref / 3.0), 1e-4 * (1 + ref / 3.0));
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* The gradient check must catch a wrong backward: a feedback tensor != W makes the input
 * gradient wrong (checked with use_feedback = 1), while the parameters of the top layer stay right. */
START_TEST(test_gradcheck_detects)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = make(ctx, "fc6,relu,fc3", 5, 1, 1, 3, 4);
    asymbp_gradcheck_params_t p = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t r = ASYMBP_GRADCHECK_REPORT_INIT;
    float x[20], V[18];
    int32_t y[4] = { 0, 1, 2, 1 };
    char json[1024];
    size_t len;
    asymbp__layer_t *top = net->layers[2];
    fill(x, 20, 90, -1, 1);
    for (int i = 0; i < 18; i++) V[i] = -top->W[i];
    top->wl.V = V;
    p.use_feedback = 1;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, 4, &p, &r), ASYMBP_OK);
    ck_assert_double_gt(r.input_rel_error, 0.5);
    ck_assert_double_gt(r.layers[0].rel_error, 0.5);      /* fc0 sees the wrong delta */
    ck_assert_double_lt(r.layers[1].rel_error, 1e-2);     /* fc2 computes its own gradient */
    ck_assert_str_eq(r.layers[1].name, "fc2");
    /* default: exact backprop is checked whatever V is */
    p.use_feedback = 0;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, 4, &p, &r), ASYMBP_OK);
    ck_assert_double_lt(r.max_rel_error, 1e-2);
    len = asymbp_gradcheck_report_json(&r, json, sizeof json);
    ck_assert_uint_eq(len, strlen(json));
    ck_assert_ptr_nonnull(strstr(json, "{\"max_rel_error\":"));
    ck_assert_ptr_nonnull(strstr(json, "\"layers\":[{\"name\":\"fc0\",\"rel_error\":"));
    ck_assert_uint_eq(asymbp_gradcheck_report_json(&r, NULL, 0), len);
    ck_assert_uint_eq(asymbp_gradcheck_report_json(&r, json, 10), len);
    ck_assert_uint_eq(strlen(json), 9);
    /* and the forward with V set still uses W; backward uses V unless forced symmetric */
    top->wl.V = NULL;
    /* misuse */
    r.struct_size = 8;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, 4, &p, &r), ASYMBP_E_UNSUPPORTED);
    r.struct_size = sizeof r;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, 5, &p, &r), ASYMBP_E_SHAPE);
    y[0] = 3;
    ck_assert_int_eq(asymbp_net_gradcheck(net, x, y, 4, &p, &r), ASYMBP_E_RANGE);
    ck_assert_int_eq(asymbp_net_gradcheck(NULL, x, y, 4, &p, &r), ASYMBP_E_INVALID);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

Suite *asymbp_test_layers_suite(void);
Suite *asymbp_test_layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dense_forward);
    tcase_add_test(tc, test_dense_backward);
    tcase_add_loop_test(tc, test_conv_forward, 0, (int)(sizeof conv_specs / sizeof conv_specs[0]));
    tcase_add_loop_test(tc, test_conv_backward, 0, (int)(sizeof conv_specs / sizeof conv_specs[0]));
    tcase_add_loop_test(tc, test_conv_gemm_paths, 0, (int)(sizeof gemm_conv_specs / sizeof gemm_conv_specs[0]));
    tcase_add_test(tc, test_dense_gemm_paths);
    tcase_add_loop_test(tc, test_pool_forward, 0, (int)(sizeof pool_specs / sizeof pool_specs[0]));
    tcase_add_loop_test(tc, test_pool_backward, 0, (int)(sizeof pool_specs / sizeof pool_specs[0]));
    tcase_add_test(tc, test_pool_sizes);
    tcase_add_test(tc, test_maxpool_ties);
    tcase_add_test(tc, test_relu_flatten);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_bn_forward);
    tcase_add_test(tc, test_bn_backward);
    tcase_add_loop_test(tc, test_bn_relu_fused, 0, 2);
    tcase_add_test(tc, test_softmax_xent);
    tcase_add_test(tc, test_gradcheck_detects);
    suite_add_tcase(s, tc);
    return s;
}
