/* The standardisation fitted on the training set travels inside the model file: a host that has
 * only the file predicts exactly as the training program did. */
#include <unistd.h>
#include "api_test.h"

#define NTR 60
#define NTE 20
#define C 2
#define H 3
#define W 3
#define D (C * H * W)

static void raw_data(float *x, int32_t *y, size_t n, unsigned seed)
{
    size_t i;
    api_blobs(x, y, n, D, 3, seed);
    for (i = 0; i < n * D; i++) x[i] = 100.0f + 40.0f * x[i] + (float)(i % D / (H * W)) * 500.0f; /* far from standard */
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL, *host = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_scaler_t *sc = NULL, *back = NULL, *bad = NULL;
    asymbp_net_t *net = NULL, *loaded = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    static float xtr[NTR * D], xte[NTE * D], xhost[NTE * D];
    int32_t ytr[NTR], yte[NTE], p1[NTE], p2[NTE];
    char model[4096], plain[4200], ckpt[4200];
    size_t k;
    int fd;
    const float ones[5] = {1, 1, 1, 1, 1}, zeros[5] = {0};

    fd = api_tmpfile(model, sizeof model, "scaler");
    if (fd >= 0) close(fd);
    snprintf(plain, sizeof plain, "%s.plain", model);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", model);
    raw_data(xtr, ytr, NTR, 1);
    raw_data(xte, yte, NTE, 2);
    memcpy(xhost, xte, sizeof xte);

    /* the training program: fit on the training set, standardise both, train, save */
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_ctx_set_seed(ctx, 5));
    OK(asymbp_dataset_create(ctx, NTR, C, H, W, 3, xtr, ytr, &train));
    OK(asymbp_dataset_create(ctx, NTE, C, H, W, 3, xte, yte, &test));
    OK(asymbp_dataset_standardize(train, test, ASYMBP_SCALER_PER_CHANNEL, &sc));
    OK(asymbp_net_from_spec(ctx, "fc12,relu,fc3", C, H, W, 3, 0, &net));
    OK(asymbp_optimizer_create(net, "sgd", NULL, &opt));
    tp.epochs = 3;
    tp.batch = 10;
    tp.checkpoint_every = 3;
    tp.checkpoint_path = ckpt;
    OK(asymbp_trainer_create(net, opt, train, test, &tp, &tr));
    OK(asymbp_trainer_set_scaler(tr, sc));
    OK(asymbp_trainer_run(tr));
    OK(asymbp_net_predict(net, asymbp_dataset_features(test), NTE, p1));
    OK(asymbp_model_save_with_scaler(net, sc, model));
    OK(asymbp_model_save(net, plain));
    /* a scaler that does not fit the net's input is refused */
    OK(asymbp_scaler_create(ctx, ASYMBP_SCALER_PER_FEATURE, 5, zeros, ones, &bad));
    EXPECT(asymbp_model_save_with_scaler(net, bad, plain), ASYMBP_E_SHAPE);
    EXPECT(asymbp_trainer_set_scaler(tr, bad), ASYMBP_E_SHAPE);

    /* the host program: the file alone, raw inputs */
    OK(asymbp_ctx_create(NULL, &host));
    api_ctx = host;
    OK(asymbp_model_load_with_scaler(host, model, &loaded, &back));
    CHECK(back != NULL);
    if (back) {
        CHECK(asymbp_scaler_mode(back) == ASYMBP_SCALER_PER_CHANNEL);
        CHECK(asymbp_scaler_count(back) == C);
        CHECK(memcmp(asymbp_scaler_mean(back), asymbp_scaler_mean(sc), C * sizeof(float)) == 0);
        CHECK(memcmp(asymbp_scaler_divisor(back), asymbp_scaler_divisor(sc), C * sizeof(float)) == 0);
        OK(asymbp_scaler_apply_array(back, xhost, NTE, C, H, W));
        CHECK(memcmp(xhost, asymbp_dataset_features(test), sizeof xhost) == 0);
        OK(asymbp_net_bind(loaded, 8));
        OK(asymbp_net_predict(loaded, xhost, NTE, p2));
        CHECK(memcmp(p1, p2, sizeof p1) == 0);
    }
    asymbp_scaler_destroy(back);
    asymbp_net_destroy(loaded);
    back = NULL;
    loaded = NULL;
    /* a checkpoint of a trainer that was given the scaler carries it too */
    OK(asymbp_model_load_with_scaler(host, ckpt, &loaded, &back));
    CHECK(back != NULL && asymbp_scaler_count(back) == C);
    asymbp_scaler_destroy(back);
    asymbp_net_destroy(loaded);
    back = NULL;
    loaded = NULL;
    /* a model saved without one: NULL, no error; asymbp_model_load ignores the chunk */
    OK(asymbp_model_load_with_scaler(host, plain, &loaded, &back));
    CHECK(loaded != NULL && back == NULL);
    asymbp_net_destroy(loaded);
    loaded = NULL;
    OK(asymbp_model_load(host, model, &loaded));
    CHECK(loaded != NULL);
    asymbp_net_destroy(loaded);
    loaded = NULL;
    OK(asymbp_model_load_with_scaler(host, model, &loaded, NULL));
    asymbp_net_destroy(loaded);
    EXPECT(asymbp_model_load_with_scaler(host, "/nonexistent/x.asymbp", &loaded, &back), ASYMBP_E_IO);
    CHECK(loaded == NULL && back == NULL);

    for (k = 0; k < 3; k++) remove(k == 0 ? model : k == 1 ? plain : ckpt);
    asymbp_ctx_destroy(host);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_scaler_destroy(sc);
    asymbp_scaler_destroy(bad);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return api_done("scaler_model");
}
