/* asymbp_net_layer_kind's out-of-range answer is a named enumerator that compares below 0. */
#include "api_test.h"

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_layer_kind_t k;
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_net_from_spec(ctx, "fc8,relu,fc3", 4, 1, 1, 3, 0, &net));
    CHECK(asymbp_net_layer_count(net) == 3);
    CHECK(asymbp_net_layer_kind(net, 0) == ASYMBP_LAYER_DENSE);
    CHECK(asymbp_net_layer_kind(net, 1) == ASYMBP_LAYER_RELU);
    k = asymbp_net_layer_kind(net, 3);
    CHECK(k == ASYMBP_LAYER_NONE);
    CHECK(k < 0); /* the enum is signed: the obvious range test works */
    CHECK(asymbp_net_layer_kind(NULL, 0) == ASYMBP_LAYER_NONE);
    CHECK((int)ASYMBP_LAYER_NONE == -1);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return api_done("layer_kind");
}
