/* Learned feedback through the public API alone:
 * - "kp": after every optimizer step V has received the change the update rule made to W and V - W
 *   has shrunk by (1 - decay), whatever the rule (here a user rule); the V-W angle falls;
 * - "mirror": the V-W angle falls from about 90 degrees as the mirror learns W;
 * - a user policy with ASYMBP_FEEDBACK_W_BEFORE sees W before the step in after_update;
 * - a model file keeps the learned V: loaded, it reads back the same. */
#include "api_test.h"

#define NS 64
#define NF 8

static double angle_vw(asymbp_net_t *net, size_t layer)
{
    asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
    OK(asymbp_net_layer_feedback_diag(net, layer, &d));
    return d.angle_vw;
}

static float *read_all(asymbp_net_t *net, size_t layer, asymbp_readout_t what, size_t *n)
{
    float *b;
    *n = 0;
    OK(asymbp_net_read_layer(net, layer, what, NULL, 0, n));
    b = malloc((*n ? *n : 1) * sizeof(float));
    OK(asymbp_net_read_layer(net, layer, what, b, *n, NULL));
    return b;
}

/* a user update rule: plain steps scaled by the sign agreement with the last gradient */
static asymbp_status_t my_step(void *user, void *state, const asymbp_update_args_t *a)
{
    float *last = state;
    size_t i;
    (void)user;
    for (i = 0; i < a->n; i++) {
        float f = last[i] * a->g[i] > 0 ? 1.2f : 0.8f;
        a->w[i] -= a->lr * f * a->g[i];
        last[i] = a->g[i];
    }
    return ASYMBP_OK;
}

/* a user policy that checks W_before against the program's own copy */
static const float *expect_w0;
static int follow_bad, follow_calls;
static asymbp_status_t follow_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    (void)user;
    (void)state;
    memcpy(a->V, a->W, a->numel * sizeof(float));
    return ASYMBP_OK;
}
static asymbp_status_t follow_after(void *user, void *state, const asymbp_feedback_args_t *a)
{
    size_t i;
    (void)user;
    (void)state;
    follow_calls++;
    if (!a->W_before) return ASYMBP_E_INVALID;
    if (a->layer_index == 0 && expect_w0 && memcmp(a->W_before, expect_w0, a->w_numel * sizeof(float)) != 0) follow_bad++;
    for (i = 0; i < a->numel; i++) a->V[i] += a->W[i] - a->W_before[i];
    return ASYMBP_OK;
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL, *back = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_update_rule_vtable_t uvt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_feedback_vtable_t fvt = ASYMBP_FEEDBACK_VTABLE_INIT;
    float x[NS * NF], *V0, *W0, *V1, *W1, *Vb;
    int32_t y[NS];
    size_t n, i;
    double a0, a1;
    int step, k;
    const char *path = "learned-model.asymbp";
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_ctx_set_seed(ctx, 6));
    api_blobs(x, y, NS, NF, 4, 8);
    uvt.name = "agree";
    uvt.state_size = sizeof(float);
    uvt.step = my_step;
    OK(asymbp_update_rule_register(ctx, &uvt, NULL, NULL, NULL));

    for (k = 0; k < 2; k++) {
        const char *setting = k == 0 ? "kp:decay=0.02" : "mirror:lr=0.02:decay=0.02:batch=32";
        OK(asymbp_net_from_spec(ctx, "fc16,relu,fc12,relu,fc4", NF, 1, 1, 4, 0, &net));
        OK(asymbp_net_bind(net, NS));
        OK(asymbp_net_set_feedback(net, setting));
        hp.lr = 0.05f;
        OK(asymbp_optimizer_create(net, k == 0 ? "agree" : "sgd", &hp, &opt));
        a0 = angle_vw(net, 2);
        CHECK(a0 > 60.0);
        if (k == 0) {   /* one step by hand: V1 = W1 + (1 - 0.02) (V0 - W0) */
            api_fwd_bwd(net, x, y, NS, NULL);
            V0 = read_all(net, 2, ASYMBP_READ_FEEDBACK, &n);
            W0 = read_all(net, 2, ASYMBP_READ_WEIGHTS, &n);
            OK(asymbp_optimizer_step(opt));
            V1 = read_all(net, 2, ASYMBP_READ_FEEDBACK, &n);
            W1 = read_all(net, 2, ASYMBP_READ_WEIGHTS, &n);
            for (i = 0; i < n; i++) CHECK(fabs(V1[i] - (W1[i] + 0.98 * ((double)V0[i] - W0[i]))) < 1e-6);
            free(V0);
            free(W0);
            free(V1);
            free(W1);
        }
        for (step = 0; step < 300; step++) {
            api_fwd_bwd(net, x, y, NS, NULL);
            OK(asymbp_optimizer_step(opt));
        }
        a1 = angle_vw(net, 2);
        printf("%s: V-W angle of fc2 %.1f -> %.1f degrees\n", setting, a0, a1);
        CHECK(a1 < 15.0);
        /* the model file keeps the learned V */
        OK(asymbp_model_save(net, path));
        OK(asymbp_model_load(ctx, path, &back));
        CHECK(strcmp(asymbp_net_get_layer_feedback(back, 2), setting) == 0);
        V0 = read_all(net, 2, ASYMBP_READ_FEEDBACK, &n);
        Vb = read_all(back, 2, ASYMBP_READ_FEEDBACK, &n);
        CHECK(memcmp(V0, Vb, n * sizeof(float)) == 0);
        free(V0);
        free(Vb);
        remove(path);
        asymbp_net_destroy(back);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
    }

    /* W before the step, for a policy of one's own */
    fvt.name = "follow";
    fvt.flags = ASYMBP_FEEDBACK_W_BEFORE;
    fvt.init = follow_init;
    fvt.after_update = follow_after;
    OK(asymbp_feedback_register(ctx, &fvt, NULL, NULL));
    OK(asymbp_net_from_spec(ctx, "fc16,relu,fc4", NF, 1, 1, 4, 0, &net));
    OK(asymbp_net_bind(net, NS));
    OK(asymbp_net_set_feedback(net, "follow"));
    OK(asymbp_optimizer_create(net, "sgd", &hp, &opt));
    for (step = 0; step < 3; step++) {
        api_fwd_bwd(net, x, y, NS, NULL);
        W0 = read_all(net, 0, ASYMBP_READ_WEIGHTS, &n);
        expect_w0 = W0;
        OK(asymbp_optimizer_step(opt));
        expect_w0 = NULL;
        free(W0);
    }
    CHECK(follow_calls == 6 && follow_bad == 0);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("learned");
}
