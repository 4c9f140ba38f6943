/* Direct feedback alignment through the public API alone:
 * - "dfa" gives every hidden weighted layer a fixed random B of classes x (input size of the next
 *   weighted layer), readable with ASYMBP_READ_DIRECT_FEEDBACK; the classifier has none;
 * - the error at the top of each hidden block is e B (e = dL/dlogits, the classifier's received
 *   error), and the block's own ReLU passes it down; B does not change while training;
 * - the probe reports recv_angle_bp for every layer (0 for the exact classifier);
 * - a DFA variant is a plugin: direct random target projection with a deliver callback;
 * - a policy compiled against the 0.1 vtable (without deliver and scratch_size) still works. */
#include <stddef.h>
#include "api_test.h"

#define NS 6
#define NF 5
#define NC 3

static float *read_all(asymbp_net_t *net, size_t layer, asymbp_readout_t what, size_t *n)
{
    float *b;
    *n = 0;
    OK(asymbp_net_read_layer(net, layer, what, NULL, 0, n));
    b = malloc((*n ? *n : 1) * sizeof(float));
    OK(asymbp_net_read_layer(net, layer, what, b, *n, NULL));
    return b;
}

/* DRTP: the block top gets -onehot(label) B / n. */
static int drtp_calls;
static asymbp_status_t drtp_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    size_t i;
    (void)user;
    (void)state;
    if (!a->direct || a->shape[0] != NC || (size_t)a->shape[1] != a->block_size) return ASYMBP_E_INVALID;
    for (i = 0; i < a->numel; i++) a->V[i] = asymbp_rng_uniform(a->rng) - 0.5f;
    return ASYMBP_OK;
}
static asymbp_status_t drtp_deliver(void *user, void *state, const asymbp_feedback_args_t *a)
{
    size_t s, j, m = a->block_size;
    (void)user;
    (void)state;
    drtp_calls++;
    for (s = 0; s < a->samples; s++)
        for (j = 0; j < m; j++) a->delta[s * m + j] = -a->V[(size_t)a->labels[s] * m + j] / (float)a->samples;
    return ASYMBP_OK;
}

/* a 0.1 plugin: V = W */
static asymbp_status_t copy_w(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user;
    (void)state;
    memcpy(a->V, a->W, a->numel * sizeof(float));
    return ASYMBP_OK;
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    asymbp_feedback_diag_t d[3];
    float x[NS * NF], *B0, *B2, *e, *top, *recv, *B2b;
    int32_t y[NS];
    size_t n, ne, s, j, k;
    int step;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_ctx_set_seed(ctx, 4));
    api_blobs(x, y, NS, NF, NC, 3);
    /* layers: fc0 (5->6) relu1 fc2 (6->5) relu3 fc4 (5->3) */
    OK(asymbp_net_from_spec(ctx, "fc6,relu,fc5,relu,fc3", NF, 1, 1, NC, 0, &net));
    OK(asymbp_net_bind(net, NS));
    OK(asymbp_feedback_check_setting(ctx, "dfa:scale=he:dist=normal"));
    EXPECT(asymbp_feedback_check_setting(ctx, "dfa:p=0.5"), ASYMBP_E_FORMAT);
    OK(asymbp_net_set_feedback(net, "dfa"));
    CHECK(strcmp(asymbp_net_get_layer_feedback(net, 4), "dfa") == 0);

    /* B: classes x the next weighted layer's input; none on the classifier */
    B0 = read_all(net, 0, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    CHECK(n == NC * 6);
    B2 = read_all(net, 2, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    CHECK(n == NC * 5);
    EXPECT(asymbp_net_read_layer(net, 4, ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n), ASYMBP_E_STATE);
    EXPECT(asymbp_net_read_layer(net, 1, ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n), ASYMBP_E_INVALID);

    /* the top of fc2's block (relu3's received error) is e B2; relu3 passes it or zeroes it */
    api_fwd_bwd(net, x, y, NS, NULL);
    e = read_all(net, 4, ASYMBP_READ_DELTA_RECEIVED, &ne);
    CHECK(ne == NS * NC);
    top = read_all(net, 3, ASYMBP_READ_DELTA_RECEIVED, &n);
    CHECK(n == NS * 5);
    recv = read_all(net, 2, ASYMBP_READ_DELTA_RECEIVED, &n);
    for (s = 0; s < NS; s++)
        for (j = 0; j < 5; j++) {
            double want = 0.0;
            for (k = 0; k < NC; k++) want += (double)e[s * NC + k] * B2[k * 5 + j];
            CHECK(fabs(top[s * 5 + j] - want) <= 1e-6 * (1.0 + fabs(want)));
            CHECK(recv[s * 5 + j] == top[s * 5 + j] || recv[s * 5 + j] == 0.0f);
        }
    free(top);
    free(recv);
    free(e);

    /* the probe: the per-layer angle to the backprop error, for DFA too */
    for (k = 0; k < 3; k++) {
        asymbp_feedback_diag_t init = ASYMBP_FEEDBACK_DIAG_INIT;
        d[k] = init;
    }
    OK(asymbp_net_feedback_probe(net, d, 3));
    CHECK(d[2].recv_angle_bp == 0.0);
    CHECK(d[0].recv_angle_bp > 0.0 && d[0].recv_angle_bp < 180.0);
    CHECK(d[1].recv_angle_bp > 0.0 && d[1].recv_angle_bp < 180.0);
    CHECK(d[2].delta_angle_bp > 0.0 && d[2].delta_angle_bp < 180.0);   /* the error delivered below fc4 */
    CHECK(d[1].sign_concordance != d[1].sign_concordance);            /* NaN: B is not shaped like W */

    /* B stays fixed while the weights train */
    hp.lr = 0.1f;
    OK(asymbp_optimizer_create(net, "sgd", &hp, &opt));
    for (step = 0; step < 5; step++) {
        api_fwd_bwd(net, x, y, NS, NULL);
        OK(asymbp_optimizer_step(opt));
    }
    B2b = read_all(net, 2, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    CHECK(memcmp(B2, B2b, n * sizeof(float)) == 0);
    free(B2b);
    free(B0);
    free(B2);
    asymbp_optimizer_destroy(opt);

    /* a DFA variant as a plugin */
    vt.name = "drtp";
    vt.flags = ASYMBP_FEEDBACK_DIRECT;
    vt.init = drtp_init;
    vt.deliver = drtp_deliver;
    OK(asymbp_feedback_register(ctx, &vt, NULL, NULL));
    OK(asymbp_net_set_feedback(net, "drtp"));
    api_fwd_bwd(net, x, y, NS, NULL);
    CHECK(drtp_calls == 2);
    B2 = read_all(net, 2, ASYMBP_READ_DIRECT_FEEDBACK, &n);
    top = read_all(net, 3, ASYMBP_READ_DELTA_RECEIVED, &n);
    for (s = 0; s < NS; s++)
        for (j = 0; j < 5; j++) CHECK(top[s * 5 + j] == -B2[(size_t)y[s] * 5 + j] / (float)NS);
    free(B2);
    free(top);

    /* a policy built against the 0.1 header: its vtable ends before deliver */
    {
        asymbp_feedback_vtable_t old = ASYMBP_FEEDBACK_VTABLE_INIT;
        old.struct_size = (uint32_t)offsetof(asymbp_feedback_vtable_t, deliver);
        old.name = "old-copy";
        old.init = copy_w;
        old.refresh = copy_w;
        old.deliver = drtp_deliver;   /* beyond its struct_size: never read */
        OK(asymbp_feedback_register(ctx, &old, NULL, NULL));
        OK(asymbp_net_set_feedback(net, "old-copy"));
        drtp_calls = 0;
        api_fwd_bwd(net, x, y, NS, NULL);
        CHECK(drtp_calls == 0);
    }
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("direct");
}
