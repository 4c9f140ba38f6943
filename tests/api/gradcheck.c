/* asymbp_gradcheck_result_t: the per-layer figures go into the caller's array (any size, with a
 * count), so a net with more than 64 layers with parameters loses nothing; the element size is
 * the caller's (entry_size). */
#include "api_test.h"

#define DEPTH 70   /* dense layers: more than the 0.1 report's 64 */

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_gradcheck_params_t gp = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_result_t res = ASYMBP_GRADCHECK_RESULT_INIT;
    asymbp_gradcheck_entry_t *ent;
    char spec[1024], *json;
    size_t k, pos = 0, need;
    float x[4 * 3];
    int32_t y[4] = {0, 1, 1, 0};
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    for (k = 0; k + 1 < DEPTH; k++) pos += (size_t)snprintf(spec + pos, sizeof spec - pos, "fc3,");
    snprintf(spec + pos, sizeof spec - pos, "fc2");
    OK(asymbp_net_from_spec(ctx, spec, 3, 1, 1, 2, 0, &net));
    CHECK(asymbp_net_layer_count(net) == DEPTH);
    OK(asymbp_net_bind(net, 4));
    for (k = 0; k < 12; k++) x[k] = (float)((k * 7) % 5) * 0.3f - 0.6f;
    gp.max_entries_per_param = 2;

    /* too small an array: refused before any work, with the count needed */
    EXPECT(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &res), ASYMBP_E_SHAPE);
    CHECK(res.layer_count == DEPTH);
    ent = calloc(DEPTH, sizeof *ent);
    res.layers = ent;
    res.capacity = DEPTH - 1;
    EXPECT(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &res), ASYMBP_E_SHAPE);
    CHECK(res.layer_count == DEPTH);
    res.capacity = DEPTH;
    OK(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &res));
    CHECK(res.layer_count == DEPTH);
    for (k = 0; k < DEPTH; k++) {
        char name[32];
        snprintf(name, sizeof name, "fc%zu", k);
        CHECK(ent[k].layer_index == (int)k);
        CHECK(strcmp(ent[k].name, name) == 0);
        CHECK(ent[k].checked == 4 && ent[k].skipped == 0);   /* 2 weights + 2 biases */
        CHECK(ent[k].rel_error < 1e-2);
    }
    CHECK(res.max_rel_error < 1e-2 && res.input_checked == 2);
    /* the JSON names every layer, with its index */
    need = asymbp_gradcheck_result_json(&res, NULL, 0);
    json = malloc(need + 1);
    CHECK(asymbp_gradcheck_result_json(&res, json, need + 1) == need);
    CHECK(strstr(json, "{\"layer\":69,\"name\":\"fc69\"") != NULL);
    CHECK(strlen(json) == need);
    free(json);

    /* an element size of the caller's own: a larger struct (a program built against a later
     * header) is stepped through by its size */
    {
        struct bigger { asymbp_gradcheck_entry_t e; double future[3]; } *big = calloc(DEPTH, sizeof *big);
        asymbp_gradcheck_result_t r2 = ASYMBP_GRADCHECK_RESULT_INIT;
        r2.entry_size = sizeof *big;
        r2.layers = &big[0].e;
        r2.capacity = DEPTH;
        OK(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &r2));
        for (k = 0; k < DEPTH; k++) CHECK(big[k].e.layer_index == (int)k && big[k].future[0] == 0.0);
        r2.entry_size = 8;
        EXPECT(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &r2), ASYMBP_E_UNSUPPORTED);
        free(big);
    }
    /* misuse */
    res.layers = NULL;
    EXPECT(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, &res), ASYMBP_E_INVALID);
    EXPECT(asymbp_net_gradcheck_v2(net, x, y, 4, &gp, NULL), ASYMBP_E_INVALID);

    /* the deprecated 0.1 report still works and keeps the first 64 */
    {
        asymbp_gradcheck_report_t rep = ASYMBP_GRADCHECK_REPORT_INIT;
        OK(asymbp_net_gradcheck(net, x, y, 4, &gp, &rep));
        CHECK(rep.layer_count == ASYMBP_GRADCHECK_MAX_LAYERS);
        CHECK(strcmp(rep.layers[63].name, "fc63") == 0);
        CHECK(rep.max_rel_error < 1e-2);
    }
    free(ent);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("gradcheck");
}
