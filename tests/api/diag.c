/* Feedback diagnostics report one moment for every layer.
 * - Between optimizer steps (after a step, before the next backward) every layer reports the V
 *   the next backward pass will use, made from the current W: under uSF the sign concordance is
 *   exactly 1 on every layer (it was 0.99 on the layers above the lowest, which showed the V of
 *   the step before next to the updated W).
 * - The probe's array is read with the caller's element size (diag[0].struct_size): a program
 *   built against the version-1 struct, smaller than today's, gets its own elements filled and
 *   nothing written past its array. */
#include "api_test.h"

#define NS 48
#define NF 8

/* The version-1 layout of asymbp_feedback_diag_t (through bp_grad_norm), as an older program
 * compiled it. */
typedef struct diag_v1 {
    size_t struct_size;
    int layer_index;
    double delta_norm, grad_norm, sign_concordance, angle_vw, norm_ratio;
    double grad_angle_bp, bp_delta_norm, bp_grad_norm;
} diag_v1_t;

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
    float x[NS * NF];
    int32_t y[NS];
    size_t l, nw;
    int s;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_ctx_set_seed(ctx, 3));
    api_blobs(x, y, NS, NF, 4, 5);
    OK(asymbp_net_from_spec(ctx, "fc16,relu,fc12,relu,fc4", NF, 1, 1, 4, 0, &net));
    OK(asymbp_net_bind(net, NS));
    OK(asymbp_net_set_feedback(net, "usf"));
    hp.lr = 0.5f; /* large steps: some weights change sign in every step */
    hp.momentum = 0.0f;
    OK(asymbp_optimizer_create(net, "sgd", &hp, &opt));
    nw = asymbp_net_feedback_layer_count(net);
    CHECK(nw == 3);
    for (s = 0; s < 4; s++) {
        api_fwd_bwd(net, x, y, NS, NULL);
        /* after the backward: V as that pass used it, W as it was */
        for (l = 0; l < nw; l++) {
            OK(asymbp_net_feedback_diag(net, l, &d));
            CHECK(d.sign_concordance == 1.0);
        }
        OK(asymbp_optimizer_step(opt));
        /* after the step: every layer at the same moment, the next step's V of the new W */
        for (l = 0; l < nw; l++) {
            OK(asymbp_net_feedback_diag(net, l, &d));
            if (d.sign_concordance != 1.0)
                fprintf(stderr, "step %d, weighted layer %zu: sign concordance %.4f\n", s + 1, l, d.sign_concordance);
            CHECK(d.sign_concordance == 1.0);
            CHECK(d.angle_vw < 90.0);
        }
    }

    /* the probe with an array of version-1 elements (stride = their struct_size) */
    {
        diag_v1_t old[4];
        unsigned char guard[sizeof old[3]];
        size_t k;
        api_fwd_bwd(net, x, y, NS, NULL);
        memset(old, 0xAB, sizeof old);
        memcpy(guard, &old[3], sizeof guard);
        for (k = 0; k < 3; k++) old[k].struct_size = sizeof(diag_v1_t);
        CHECK(sizeof(diag_v1_t) < sizeof(asymbp_feedback_diag_t));
        OK(asymbp_net_feedback_probe(net, (asymbp_feedback_diag_t *)(void *)old, 3));
        for (k = 0; k < 3; k++) {
            CHECK(old[k].struct_size == sizeof(diag_v1_t));
            CHECK(old[k].layer_index == (int)(k == 0 ? 0 : k == 1 ? 2 : 4));
            CHECK(old[k].sign_concordance == 1.0);
            CHECK(old[k].bp_grad_norm > 0.0 && old[k].grad_norm > 0.0);
        }
        CHECK(old[2].grad_angle_bp < 1e-3); /* the top layer's gradient is backprop's */
        CHECK(memcmp(guard, &old[3], sizeof guard) == 0);
        /* mixed element sizes in one array are refused */
        old[1].struct_size = sizeof(asymbp_feedback_diag_t);
        EXPECT(asymbp_net_feedback_probe(net, (asymbp_feedback_diag_t *)(void *)old, 3), ASYMBP_E_INVALID);
    }
    /* today's struct still works, with the newer member */
    {
        asymbp_feedback_diag_t cur[3] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
        OK(asymbp_net_feedback_probe(net, cur, 3));
        CHECK(cur[2].layer_index == 4 && cur[1].delta_angle_bp >= 0.0);
    }
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("diag");
}
