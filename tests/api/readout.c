/* Read-outs a researcher needs: W and V of any weighted layer, the error each layer received
 * and sent down in the last backward pass, and dL/dinput (asymbp_net_set_input_grad), into the
 * caller's buffers; checked against the definitions (V^T delta, finite differences). */
#include "api_test.h"

#define NS 6
#define NF 5
#define NC 3

static float sgn(float v) { return (float)((v > 0) - (v < 0)); }

/* read a whole read-out into a fresh buffer (size query first) */
static float *read_all(asymbp_net_t *net, size_t layer, asymbp_readout_t what, size_t *n)
{
    float *b;
    *n = 0;
    OK(asymbp_net_read_layer(net, layer, what, NULL, 0, n));
    b = malloc((*n ? *n : 1) * sizeof(float));
    OK(asymbp_net_read_layer(net, layer, what, b, *n, NULL));
    return b;
}

/* max |a - b| relative to max |b| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0, s = 1e-30;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return m / s;
}

/* sent[s][i] = sum_j M[j][i] recv[s][j]  (dense: the error sent down through M = V or W) */
static void dense_down(const float *M, const float *recv, float *out, size_t n, size_t in, size_t outn)
{
    size_t s, i, j;
    for (s = 0; s < n; s++)
        for (i = 0; i < in; i++) {
            double a = 0.0;
            for (j = 0; j < outn; j++) a += (double)M[j * in + i] * recv[s * outn + j];
            out[s * in + i] = (float)a;
        }
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_tensor_t *w0t = NULL;
    float x[NS * NF], buf[256], tmp[256];
    int32_t y[NS];
    size_t n = 0, i, nv, nw, nr, ns;
    float *v, *w, *r, *sdown;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_ctx_set_seed(ctx, 11));
    api_blobs(x, y, NS, NF, NC, 2);
    /* layers: fc0 (5->6) relu1 fc2 (6->4) relu3 fc4 (4->3) */
    OK(asymbp_net_from_spec(ctx, "fc6,relu,fc4,relu,fc3", NF, 1, 1, NC, 0, &net));
    OK(asymbp_net_bind(net, NS));

    /* W: the parameter's values; size query; too small a buffer; no weights */
    OK(asymbp_net_read_layer(net, 0, ASYMBP_READ_WEIGHTS, NULL, 0, &n));
    CHECK(n == 30);
    OK(asymbp_net_param_at(net, 0, &w0t, NULL));
    OK(asymbp_net_read_layer(net, 0, ASYMBP_READ_WEIGHTS, buf, sizeof buf / sizeof buf[0], &n));
    CHECK(n == 30 && memcmp(buf, asymbp_tensor_data(w0t), 30 * sizeof(float)) == 0);
    EXPECT(asymbp_net_read_layer(net, 0, ASYMBP_READ_WEIGHTS, buf, 29, &n), ASYMBP_E_SHAPE);
    CHECK(n == 30);
    EXPECT(asymbp_net_read_layer(net, 1, ASYMBP_READ_WEIGHTS, buf, 256, &n), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_read_layer(net, 5, ASYMBP_READ_WEIGHTS, buf, 256, &n), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_read_layer(net, 0, (asymbp_readout_t)9, buf, 256, &n), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_read_layer(net, 0, ASYMBP_READ_WEIGHTS, NULL, 4, &n), ASYMBP_E_INVALID);
    /* V of a symmetric layer is W */
    OK(asymbp_net_read_layer(net, 2, ASYMBP_READ_FEEDBACK, buf, 256, &n));
    OK(asymbp_net_read_layer(net, 2, ASYMBP_READ_WEIGHTS, tmp, 256, NULL));
    CHECK(n == 24 && memcmp(buf, tmp, n * sizeof(float)) == 0);

    /* no backward yet: no deltas */
    EXPECT(asymbp_net_read_layer(net, 4, ASYMBP_READ_DELTA_RECEIVED, buf, 256, &n), ASYMBP_E_STATE);

    /* uSF: V = sign(W), also after optimizer steps (the moment of the diagnostics) */
    OK(asymbp_net_set_feedback(net, "usf"));
    hp.lr = 0.5f;
    hp.momentum = 0.0f;
    OK(asymbp_optimizer_create(net, "sgd", &hp, &opt));
    for (i = 0; i < 3; i++) {
        size_t l;
        api_fwd_bwd(net, x, y, NS, NULL);
        OK(asymbp_optimizer_step(opt));
        for (l = 0; l <= 4; l += 2) {
            size_t j;
            int ok = 1;
            v = read_all(net, l, ASYMBP_READ_FEEDBACK, &nv);
            w = read_all(net, l, ASYMBP_READ_WEIGHTS, &nw);
            CHECK(nv == nw);
            for (j = 0; j < nv; j++) ok &= v[j] == sgn(w[j]);
            CHECK(ok);
            free(v);
            free(w);
        }
    }

    /* the deltas of a backward pass (uSF): what each dense layer sent is V^T (what it received) */
    api_fwd_bwd(net, x, y, NS, NULL);
    {
        const size_t in[5] = {NF, 6, 6, 4, 4}, out[5] = {6, 6, 4, 4, NC};
        size_t l;
        /* the top received (softmax - onehot) / n: rows sum to 0 */
        r = read_all(net, 4, ASYMBP_READ_DELTA_RECEIVED, &nr);
        CHECK(nr == NS * NC);
        for (i = 0; i < NS; i++) CHECK(fabs((double)r[i * NC] + r[i * NC + 1] + r[i * NC + 2]) < 1e-6);
        free(r);
        for (l = 2; l <= 4; l += 2) {
            v = read_all(net, l, ASYMBP_READ_FEEDBACK, &nv);
            r = read_all(net, l, ASYMBP_READ_DELTA_RECEIVED, &nr);
            sdown = read_all(net, l, ASYMBP_READ_DELTA_SENT, &ns);
            CHECK(nr == NS * out[l] && ns == NS * in[l]);
            dense_down(v, r, tmp, NS, in[l], out[l]);
            CHECK(rel_diff(sdown, tmp, ns) < 1e-5);
            free(v);
            free(r);
            free(sdown);
        }
        /* a weight-free layer passes on what it sent: relu3's sent is fc2's received */
        sdown = read_all(net, 3, ASYMBP_READ_DELTA_SENT, &ns);
        r = read_all(net, 2, ASYMBP_READ_DELTA_RECEIVED, &nr);
        CHECK(ns == nr && memcmp(sdown, r, ns * sizeof(float)) == 0);
        free(sdown);
        free(r);
        /* the lowest weighted layer sends nothing unless the input gradient is asked for */
        EXPECT(asymbp_net_read_layer(net, 0, ASYMBP_READ_DELTA_SENT, buf, 256, &n), ASYMBP_E_STATE);
        OK(asymbp_net_read_layer(net, 0, ASYMBP_READ_DELTA_RECEIVED, buf, 256, &n));
        CHECK(n == NS * 6);
    }

    /* the probe runs a second backward: the deltas read afterwards are still the first's */
    {
        asymbp_feedback_diag_t d[3] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        float *before = read_all(net, 2, ASYMBP_READ_DELTA_SENT, &ns), *after;
        OK(asymbp_net_feedback_probe(net, d, 3));
        after = read_all(net, 2, ASYMBP_READ_DELTA_SENT, &n);
        CHECK(n == ns && memcmp(before, after, n * sizeof(float)) == 0);
        CHECK(d[1].delta_angle_bp > 0.0); /* the exact pass did send something else */
        free(before);
        free(after);
    }
    /* evaluation passes leave them; the next loss ends them */
    {
        float l0, a0;
        OK(asymbp_net_evaluate(net, x, y, 3, &l0, &a0));
        OK(asymbp_net_read_layer(net, 4, ASYMBP_READ_DELTA_RECEIVED, buf, 256, &n));
        CHECK(n == NS * NC);
        OK(asymbp_net_forward(net, x, NS, 1, NULL));
        OK(asymbp_net_loss(net, y, NS, NULL));
        EXPECT(asymbp_net_read_layer(net, 4, ASYMBP_READ_DELTA_RECEIVED, buf, 256, &n), ASYMBP_E_STATE);
    }

    /* dL/dinput: requested, it is layer 0's sent delta = V0^T (its received delta) */
    CHECK(asymbp_net_get_input_grad(net) == 0);
    OK(asymbp_net_set_input_grad(net, 1));
    CHECK(asymbp_net_get_input_grad(net) == 1);
    OK(asymbp_net_set_feedback(net, "brsf")); /* the lowest layer's V must be this step's */
    OK(asymbp_optimizer_step(opt));
    api_fwd_bwd(net, x, y, NS, NULL);
    v = read_all(net, 0, ASYMBP_READ_FEEDBACK, &nv);
    r = read_all(net, 0, ASYMBP_READ_DELTA_RECEIVED, &nr);
    sdown = read_all(net, 0, ASYMBP_READ_DELTA_SENT, &ns);
    CHECK(ns == NS * NF && nv == 30);
    dense_down(v, r, tmp, NS, NF, 6);
    CHECK(rel_diff(sdown, tmp, ns) < 1e-5);
    free(v);
    free(r);
    free(sdown);
    /* a gradient check on the side leaves the switch as it was */
    {
        asymbp_gradcheck_params_t gp = ASYMBP_GRADCHECK_PARAMS_INIT;
        asymbp_gradcheck_report_t rep = ASYMBP_GRADCHECK_REPORT_INIT;
        OK(asymbp_net_gradcheck(net, x, y, NS, &gp, &rep));
        CHECK(asymbp_net_get_input_grad(net) == 1);
        OK(asymbp_net_set_input_grad(net, 0));
        OK(asymbp_net_gradcheck(net, x, y, NS, &gp, &rep));
        CHECK(asymbp_net_get_input_grad(net) == 0);
    }
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);

    /* dL/dinput against central finite differences of the loss (symmetric feedback, a smooth
     * net: softmax over a linear map of a linear map) */
    {
        float g[NS * NF], xp[NS * NF], lp, lm;
        double worst = 0.0, gmax = 0.0;
        OK(asymbp_net_from_spec(ctx, "fc7,fc3", NF, 1, 1, NC, 0, &net));
        OK(asymbp_net_bind(net, NS));
        OK(asymbp_net_set_input_grad(net, 1));
        api_fwd_bwd(net, x, y, NS, NULL);
        OK(asymbp_net_read_layer(net, 0, ASYMBP_READ_DELTA_SENT, g, NS * NF, &n));
        CHECK(n == NS * NF);
        for (i = 0; i < NS * NF; i++) if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
        for (i = 0; i < NS * NF; i++) {
            const float h = 1e-2f;
            memcpy(xp, x, sizeof xp);
            xp[i] = x[i] + h;
            OK(asymbp_net_forward(net, xp, NS, 0, NULL));
            OK(asymbp_net_loss(net, y, NS, &lp));
            xp[i] = x[i] - h;
            OK(asymbp_net_forward(net, xp, NS, 0, NULL));
            OK(asymbp_net_loss(net, y, NS, &lm));
            {
                double fd = ((double)lp - (double)lm) / (2.0 * h), e = fabs(fd - g[i]) / gmax;
                if (e > worst) worst = e;
            }
        }
        if (worst >= 1e-3) fprintf(stderr, "dL/dinput vs finite differences: worst %.3g of max |g| %.3g\n", worst, gmax);
        CHECK(worst < 1e-3);
        asymbp_net_destroy(net);
    }
    asymbp_ctx_destroy(ctx);
    return api_done("readout");
}
