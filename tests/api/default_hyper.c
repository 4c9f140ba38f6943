/* Update rules own their default hyper-parameters: the vtable declares them, a query reports
 * them, and an optimizer created without hyper-parameters uses them (bm family: lr 0.0005). */
#include "api_test.h"

static asymbp_status_t plain_step(void *user, void *state, const asymbp_update_args_t *a)
{
    size_t i;
    (void)user; (void)state;
    for (i = 0; i < a->n; i++) a->w[i] -= a->lr * a->g[i];
    return ASYMBP_OK;
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_update_rule_t *r = NULL;
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT, mine = ASYMBP_HYPER_PARAMS_INIT, got;
    const asymbp_hyper_params_t lib = ASYMBP_HYPER_PARAMS_INIT;
    const char *const bms[] = {"bm", "bm:b", "bm:c", "bm:nsc", "bm:b:nsc", "bm:c:nsc", "batch-manhattan"};
    size_t k;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_net_from_spec(ctx, "fc6,relu,fc3", 4, 1, 1, 3, 0, &net));

    /* the built-ins' declared defaults */
    OK(asymbp_update_rule_find(ctx, "sgd", &r));
    OK(asymbp_update_rule_default_hyper(r, &hp));
    CHECK(hp.struct_size == sizeof hp && hp.lr == 0.01f && hp.momentum == 0.9f);
    for (k = 0; k < sizeof bms / sizeof bms[0]; k++) {
        got = lib;
        OK(asymbp_update_rule_find(ctx, bms[k], &r));
        OK(asymbp_update_rule_default_hyper(r, &got));
        CHECK(got.lr == 0.0005f && got.momentum == 0.9f && got.weight_decay == 0.0f && got.nsc_epsilon == 1e-6f);
        /* an optimizer made without hyper-parameters runs with them */
        OK(asymbp_optimizer_create(net, bms[k], NULL, &opt));
        CHECK(asymbp_optimizer_get_lr(opt) == 0.0005f);
        got = lib;
        OK(asymbp_optimizer_get_hyper(opt, &got));
        CHECK(got.lr == 0.0005f && got.momentum == 0.9f);
        asymbp_optimizer_destroy(opt);
        opt = NULL;
    }
    /* explicit hyper-parameters still win */
    hp = lib;
    hp.lr = 0.003f;
    OK(asymbp_optimizer_create(net, "bm", &hp, &opt));
    CHECK(asymbp_optimizer_get_lr(opt) == 0.003f);
    asymbp_optimizer_destroy(opt);

    /* a user rule declares its own; the library keeps a copy */
    vt.name = "plain";
    vt.step = plain_step;
    mine.lr = 0.125f;
    mine.momentum = 0.0f;
    vt.default_hyper = &mine;
    OK(asymbp_update_rule_register(ctx, &vt, NULL, NULL, &r));
    mine.lr = 7.0f; /* changing the caller's struct afterwards changes nothing */
    got = lib;
    OK(asymbp_update_rule_default_hyper(r, &got));
    CHECK(got.lr == 0.125f && got.momentum == 0.0f);
    OK(asymbp_optimizer_create(net, "plain", NULL, &opt));
    CHECK(asymbp_optimizer_get_lr(opt) == 0.125f);
    asymbp_optimizer_destroy(opt);
    /* a rule without defaults reports the library's */
    vt.name = "plain2";
    vt.default_hyper = NULL;
    OK(asymbp_update_rule_register(ctx, &vt, NULL, NULL, &r));
    got.lr = -1.0f;
    OK(asymbp_update_rule_default_hyper(r, &got));
    CHECK(got.lr == lib.lr && got.momentum == lib.momentum);
    /* invalid declared defaults are refused at registration */
    vt.name = "bad-defaults";
    mine.lr = -1.0f;
    vt.default_hyper = &mine;
    EXPECT(asymbp_update_rule_register(ctx, &vt, NULL, NULL, NULL), ASYMBP_E_INVALID);
    mine.lr = 0.1f;
    mine.struct_size = 4;
    EXPECT(asymbp_update_rule_register(ctx, &vt, NULL, NULL, NULL), ASYMBP_E_UNSUPPORTED);
    /* an older plugin whose vtable ends before default_hyper: the member reads as NULL */
    vt.name = "old";
    vt.struct_size = (uint32_t)ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE;
    OK(asymbp_update_rule_register(ctx, &vt, NULL, NULL, &r));
    got.lr = -1.0f;
    OK(asymbp_update_rule_default_hyper(r, &got));
    CHECK(got.lr == lib.lr);
    /* misuse */
    EXPECT(asymbp_update_rule_default_hyper(NULL, &got), ASYMBP_E_INVALID);
    EXPECT(asymbp_update_rule_default_hyper(r, NULL), ASYMBP_E_INVALID);
    got.struct_size = 3;
    EXPECT(asymbp_update_rule_default_hyper(r, &got), ASYMBP_E_UNSUPPORTED);

    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("default_hyper");
}
