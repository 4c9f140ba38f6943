/* One index space for layers: every public function takes and reports the net's layer index;
 * asymbp_net_weighted_layer converts "the k-th weighted layer from the bottom / top". */
#include "api_test.h"

static int fb_layers[8], n_fb;
static asymbp_status_t rec_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    size_t i;
    (void)user; (void)state;
    if (n_fb < 8) fb_layers[n_fb++] = a->layer_index;
    for (i = 0; i < a->numel; i++) a->V[i] = a->W[i];
    return ASYMBP_OK;
}

static int rule_layers[16], n_rule;
static asymbp_status_t rec_rule_init(void *user, void *state, const asymbp_param_info_t *info)
{
    (void)user; (void)state;
    if (n_rule < 16) rule_layers[n_rule++] = info->layer_index;
    return ASYMBP_OK;
}
static asymbp_status_t rec_step(void *user, void *state, const asymbp_update_args_t *a)
{
    (void)user; (void)state; (void)a;
    return ASYMBP_OK;
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_feedback_vtable_t fvt = ASYMBP_FEEDBACK_VTABLE_INIT;
    asymbp_update_rule_vtable_t uvt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
    asymbp_feedback_diag_t pd[3] = {ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT};
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    const size_t weighted[3] = {0, 4, 6};
    float x[8 * 36];
    int32_t y[8];
    size_t layer = 99, k;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    /* layers: conv0 relu1 maxpool2 flatten3 fc4 relu5 fc6 */
    OK(asymbp_net_from_spec(ctx, "conv3x3x4p1,relu,maxpool2s2,flatten,fc8,relu,fc3", 1, 6, 6, 3, 0, &net));
    CHECK(asymbp_net_layer_count(net) == 7);
    CHECK(strcmp(asymbp_net_layer_name(net, 4), "fc4") == 0);

    /* the converter */
    CHECK(asymbp_net_weighted_layer_count(net) == 3);
    CHECK(asymbp_net_feedback_layer_count(net) == 3);
    for (k = 0; k < 3; k++) {
        OK(asymbp_net_weighted_layer(net, (int)k, &layer));
        CHECK(layer == weighted[k]);
        OK(asymbp_net_weighted_layer(net, (int)k - 3, &layer));
        CHECK(layer == weighted[k]);
        CHECK(asymbp_net_layer_kind(net, weighted[k]) == (k ? ASYMBP_LAYER_DENSE : ASYMBP_LAYER_CONV2D));
    }
    layer = 99;
    EXPECT(asymbp_net_weighted_layer(net, 3, &layer), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_weighted_layer(net, -4, &layer), ASYMBP_E_INVALID);
    CHECK(layer == 99);
    EXPECT(asymbp_net_weighted_layer(NULL, 0, &layer), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_weighted_layer(net, 0, NULL), ASYMBP_E_INVALID);

    /* feedback by layer index; policies see the same index */
    fvt.name = "rec";
    fvt.init = rec_init;
    OK(asymbp_feedback_register(ctx, &fvt, NULL, NULL));
    OK(asymbp_net_set_feedback(net, "rec"));
    CHECK(n_fb == 3 && fb_layers[0] == 0 && fb_layers[1] == 4 && fb_layers[2] == 6);
    OK(asymbp_net_set_layer_feedback(net, 4, "usf"));
    CHECK(strcmp(asymbp_net_get_layer_feedback(net, 4), "usf") == 0);
    CHECK(strcmp(asymbp_net_get_layer_feedback(net, 6), "rec") == 0);
    EXPECT(asymbp_net_set_layer_feedback(net, 5, "usf"), ASYMBP_E_INVALID); /* relu5 */
    CHECK(asymbp_net_get_layer_feedback(net, 1) == NULL);
    /* the deprecated negative form still works and means the same layers */
    OK(asymbp_net_set_layer_feedback(net, -1, "brsf"));
    CHECK(strcmp(asymbp_net_get_layer_feedback(net, 6), "brsf") == 0);
    CHECK(strcmp(asymbp_net_get_layer_feedback(net, -1), "brsf") == 0);

    /* diagnostics by layer index, and the layer index in every figure */
    OK(asymbp_net_bind(net, 8));
    api_blobs(x, y, 8, 36, 3, 1);
    api_fwd_bwd(net, x, y, 8, NULL);
    for (k = 0; k < 3; k++) {
        OK(asymbp_net_layer_feedback_diag(net, weighted[k], &d));
        CHECK(d.layer_index == (int)weighted[k]);
    }
    EXPECT(asymbp_net_layer_feedback_diag(net, 5, &d), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_layer_feedback_diag(net, 7, &d), ASYMBP_E_INVALID);
    OK(asymbp_net_feedback_diag(net, 1, &d)); /* deprecated: weighted position 1 */
    CHECK(d.layer_index == 4);
    OK(asymbp_net_feedback_probe(net, pd, 3));
    for (k = 0; k < 3; k++) CHECK(pd[k].layer_index == (int)weighted[k]);

    /* update rules and per-layer hyper-parameters use it too */
    uvt.name = "rec-rule";
    uvt.init = rec_rule_init;
    uvt.step = rec_step;
    OK(asymbp_update_rule_register(ctx, &uvt, NULL, NULL, NULL));
    OK(asymbp_optimizer_create(net, "rec-rule", NULL, &opt));
    CHECK(n_rule == 6);
    CHECK(rule_layers[0] == 0 && rule_layers[1] == 0 && rule_layers[2] == 4 && rule_layers[3] == 4 &&
          rule_layers[4] == 6 && rule_layers[5] == 6);
    hp.lr = 0.5f;
    OK(asymbp_optimizer_set_layer_hyper(opt, 4, &hp));
    EXPECT(asymbp_optimizer_set_layer_hyper(opt, 5, &hp), ASYMBP_E_INVALID);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("layer_index");
}
