/* One plugin registry for feedback policies and update rules: the same rules for both kinds.
 * - aliases and spellings of built-ins are reserved like names ("batch-manhattan" and every bm
 *   spelling, "bp", "fa"), so a user plugin can never shadow a built-in;
 * - register/unregister/find/count/at behave alike: built-ins first, then user plugins in order;
 *   a built-in cannot be unregistered (ASYMBP_E_INVALID), an unknown name is ASYMBP_E_NOTFOUND,
 *   a plugin in use is refused (ASYMBP_E_STATE); user_free runs exactly once;
 * - the queries never allocate and take a const context. */
#include "api_test.h"

static int frees;
static void count_free(void *user) { (void)user; frees++; }
static int user_steps;

static asymbp_status_t my_step(void *user, void *state, const asymbp_update_args_t *a)
{
    (void)user; (void)state; (void)a;
    user_steps++;
    return ASYMBP_OK;
}

static asymbp_status_t my_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    size_t i;
    (void)user; (void)state;
    for (i = 0; i < a->numel; i++) a->V[i] = a->W[i];
    return ASYMBP_OK;
}

/* Read-only queries on a const context: count, at, names. */
static size_t list_all(const asymbp_ctx_t *ctx)
{
    size_t i, n = 0;
    for (i = 0; i < asymbp_update_rule_count(ctx); i++) n += asymbp_update_rule_name(asymbp_update_rule_at(ctx, i))[0] != 0;
    for (i = 0; i < asymbp_feedback_count(ctx); i++)
        n += asymbp_feedback_name_at(ctx, i) != NULL && asymbp_feedback_policy_name(asymbp_feedback_at(ctx, i))[0] != 0;
    return n;
}

int main(void)
{
    api_alloc_t al = {0, 0};
    asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
    asymbp_ctx_t *ctx = NULL;
    asymbp_update_rule_vtable_t uvt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_feedback_vtable_t fvt = ASYMBP_FEEDBACK_VTABLE_INIT;
    asymbp_update_rule_t *rule = NULL, *found = NULL;
    asymbp_feedback_policy_t *pol = NULL, *pfound = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    const char *const reserved_rules[] = {"batch-manhattan", "Batch-Manhattan", "BATCH-MANHATTAN", "bm", "BM", "sgd"};
    const char *const reserved_policies[] = {"bp", "BP", "fa", "Fa", "sym", "BRSF", "signed-init", "DFA", "kp", "Mirror"};
    long calls;
    size_t k;

    a.alloc = api_alloc_fn;
    a.free = api_free_fn;
    a.user = &al;
    OK(asymbp_ctx_create(&a, &ctx));
    api_ctx = ctx;

    /* queries on a fresh context: built-ins only, no allocation at all */
    calls = al.calls;
    CHECK(asymbp_update_rule_count(ctx) == 7);
    CHECK(asymbp_feedback_count(ctx) == 10);
    CHECK(list_all(ctx) == 17);
    CHECK(strcmp(asymbp_update_rule_name(asymbp_update_rule_at(ctx, 0)), "sgd") == 0);
    CHECK(strcmp(asymbp_feedback_policy_name(asymbp_feedback_at(ctx, 0)), "sym") == 0);
    CHECK(asymbp_update_rule_at(ctx, 7) == NULL && asymbp_feedback_at(ctx, 10) == NULL);
    OK(asymbp_update_rule_find(ctx, "batch-manhattan", &found));
    CHECK(strcmp(asymbp_update_rule_name(found), "bm") == 0);
    OK(asymbp_update_rule_find(ctx, "bm+nsc+b", &found));
    CHECK(strcmp(asymbp_update_rule_name(found), "bm:b:nsc") == 0);
    OK(asymbp_feedback_find(ctx, "FA", &pfound));
    CHECK(strcmp(asymbp_feedback_policy_name(pfound), "rndf") == 0);
    OK(asymbp_feedback_find(ctx, "partial:0.5:redraw", &pfound));
    CHECK(strcmp(asymbp_feedback_policy_name(pfound), "partial") == 0);
    EXPECT(asymbp_feedback_find(ctx, "nope", &pfound), ASYMBP_E_NOTFOUND);
    CHECK(pfound == NULL);
    EXPECT(asymbp_update_rule_find(ctx, "nope", &found), ASYMBP_E_NOTFOUND);
    CHECK(found == NULL);
    CHECK(al.calls == calls);

    /* names, aliases and spellings of built-ins are reserved, for both kinds alike */
    uvt.name = "x";
    uvt.step = my_step;
    fvt.init = my_init;
    for (k = 0; k < sizeof reserved_rules / sizeof reserved_rules[0]; k++) {
        uvt.name = reserved_rules[k];
        EXPECT(asymbp_update_rule_register(ctx, &uvt, NULL, count_free, &rule), ASYMBP_E_INVALID);
        CHECK(rule == NULL);
    }
    for (k = 0; k < sizeof reserved_policies / sizeof reserved_policies[0]; k++) {
        fvt.name = reserved_policies[k];
        EXPECT(asymbp_feedback_register_v2(ctx, &fvt, NULL, count_free, &pol), ASYMBP_E_INVALID);
        CHECK(pol == NULL);
    }
    CHECK(frees == 0);
    CHECK(asymbp_update_rule_count(ctx) == 7 && asymbp_feedback_count(ctx) == 10);
    /* so "batch-manhattan" still means the built-in bm */
    OK(asymbp_update_rule_find(ctx, "batch-manhattan", &found));
    CHECK(strcmp(asymbp_update_rule_name(found), "bm") == 0);

    /* user plugins come after the built-ins, found by any case; duplicates refused */
    uvt.name = "my-rule";
    OK(asymbp_update_rule_register(ctx, &uvt, NULL, count_free, &rule));
    fvt.name = "my-fb";
    OK(asymbp_feedback_register_v2(ctx, &fvt, NULL, count_free, &pol));
    CHECK(asymbp_update_rule_count(ctx) == 8 && asymbp_update_rule_at(ctx, 7) == rule);
    CHECK(asymbp_feedback_count(ctx) == 11 && asymbp_feedback_at(ctx, 10) == pol);
    OK(asymbp_update_rule_find(ctx, "MY-RULE", &found));
    CHECK(found == rule);
    OK(asymbp_feedback_find(ctx, "My-Fb:opt", &pfound));
    CHECK(pfound == pol);
    uvt.name = "My-Rule";
    EXPECT(asymbp_update_rule_register(ctx, &uvt, NULL, count_free, NULL), ASYMBP_E_INVALID);
    fvt.name = "MY-FB";
    EXPECT(asymbp_feedback_register(ctx, &fvt, NULL, count_free), ASYMBP_E_INVALID);
    uvt.name = "a:b";
    EXPECT(asymbp_update_rule_register(ctx, &uvt, NULL, count_free, NULL), ASYMBP_E_INVALID);
    fvt.name = "a:b";
    EXPECT(asymbp_feedback_register(ctx, &fvt, NULL, count_free), ASYMBP_E_INVALID);
    CHECK(frees == 0);

    /* built-ins cannot be unregistered; unknown names are not found - same answer for both */
    EXPECT(asymbp_update_rule_unregister(ctx, "sgd"), ASYMBP_E_INVALID);
    EXPECT(asymbp_update_rule_unregister(ctx, "batch-manhattan"), ASYMBP_E_INVALID);
    EXPECT(asymbp_feedback_unregister(ctx, "usf"), ASYMBP_E_INVALID);
    EXPECT(asymbp_feedback_unregister(ctx, "bp"), ASYMBP_E_INVALID);
    EXPECT(asymbp_update_rule_unregister(ctx, "nope"), ASYMBP_E_NOTFOUND);
    EXPECT(asymbp_feedback_unregister(ctx, "nope"), ASYMBP_E_NOTFOUND);

    /* in use: refused for both kinds, until the user is gone */
    OK(asymbp_net_from_spec(ctx, "fc6,relu,fc3", 4, 1, 1, 3, 0, &net));
    OK(asymbp_net_set_feedback(net, "my-fb"));
    OK(asymbp_optimizer_create(net, "my-rule", NULL, &opt));
    EXPECT(asymbp_update_rule_unregister(ctx, "my-rule"), ASYMBP_E_STATE);
    EXPECT(asymbp_feedback_unregister(ctx, "my-fb"), ASYMBP_E_STATE);
    CHECK(frees == 0);
    OK(asymbp_optimizer_step(opt));
    CHECK(user_steps > 0);
    asymbp_optimizer_destroy(opt);
    OK(asymbp_update_rule_unregister(ctx, "my-rule"));
    CHECK(frees == 1);
    OK(asymbp_net_set_feedback(net, "sym")); /* the layers drop the policy */
    OK(asymbp_feedback_unregister(ctx, "my-fb"));
    CHECK(frees == 2);
    EXPECT(asymbp_update_rule_unregister(ctx, "my-rule"), ASYMBP_E_NOTFOUND);
    EXPECT(asymbp_feedback_unregister(ctx, "my-fb"), ASYMBP_E_NOTFOUND);
    CHECK(asymbp_update_rule_count(ctx) == 7 && asymbp_feedback_count(ctx) == 10);

    /* registrations still there at destroy end there, once */
    uvt.name = "late-rule";
    OK(asymbp_update_rule_register(ctx, &uvt, NULL, count_free, NULL));
    fvt.name = "late-fb";
    OK(asymbp_feedback_register(ctx, &fvt, NULL, count_free));
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    api_ctx = NULL;
    CHECK(frees == 4);
    CHECK(al.live == 0);
    return api_done("registry");
}
