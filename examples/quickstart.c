/* quickstart.c - the whole API in one page: load a bundled data set, build the paper's kind of
 * network, give it sign-concordant feedback (uSF) with batch normalisation and Batch Manhattan
 * updates, train, evaluate, save the model and load it back.  Exits non-zero if anything fails
 * or it learns less than 95 % test accuracy.  The model goes to a fresh folder under $TMPDIR
 * (default /tmp), removed before the program ends.
 *
 *   cc -std=c99 quickstart.c $(pkg-config --cflags --libs asymbp) -o quickstart
 *   ./quickstart [DATA_ROOT]      (DATA_ROOT: the folder holding digits8x8/; default "data") */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* mkdtemp */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "asymbp/asymbp.h"

static int check(asymbp_ctx_t *ctx, asymbp_status_t st, const char *what)
{
    if (st == ASYMBP_OK) return 0;
    fprintf(stderr, "quickstart: %s: %s: %s\n", what, asymbp_status_name(st), asymbp_ctx_last_error(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    const char *roots[1] = {argc > 1 ? argv[1] : "data"};
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    int64_t c, h, w;
    int rc = 1;

    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    if (check(ctx, asymbp_ctx_set_seed(ctx, 7), "seed")) goto out;
    /* digits8x8: 1438 training and 359 test images of 8x8 pixels, 10 classes */
    if (check(ctx, asymbp_dataset_load_named(ctx, "digits8x8", roots, 1, &train, &test), "loading digits8x8")) goto out;
    if (check(ctx, asymbp_dataset_standardize(train, test, ASYMBP_SCALER_PER_CHANNEL, NULL), "standardising")) goto out;
    if (check(ctx, asymbp_dataset_shape(train, &c, &h, &w), "shape")) goto out;
    /* two conv layers and a hidden dense layer; bn = 1 puts BN after each of them */
    if (check(ctx, asymbp_net_from_spec(ctx, "conv3x3x32p1,relu,maxpool2s2,conv3x3x64p1,relu,maxpool2s2,fc128,relu", c, h,
                                        w, (int64_t)asymbp_dataset_classes(train), 1, &net), "building the net"))
        goto out;
    /* the error is sent down through sign(W) instead of W, in every weighted layer */
    if (check(ctx, asymbp_net_set_feedback(net, "usf"), "feedback")) goto out;
    hp.lr = 0.0005f;   /* Batch Manhattan moves each weight by lr * sign(gradient) (with momentum) */
    hp.momentum = 0.9f;
    if (check(ctx, asymbp_optimizer_create(net, "bm", &hp, &opt), "optimizer")) goto out;
    tp.epochs = 15;
    tp.batch = 100;
    if (check(ctx, asymbp_trainer_create(net, opt, train, test, &tp, &tr), "trainer")) goto out;
    if (check(ctx, asymbp_trainer_run(tr), "training")) goto out;
    {
        const int done = asymbp_trainer_epochs_done(tr);
        const asymbp_epoch_metrics_t *m = asymbp_trainer_metrics(tr, done);
        double seconds = 0.0;   /* each epoch's metrics hold that epoch's wall time */
        for (int e = 1; e <= done; e++) seconds += asymbp_trainer_metrics(tr, e)->seconds;
        printf("uSF + BN + BM on digits8x8: test accuracy %.4f after %d epochs (%.2f s in total)\n", m->test_accuracy,
               done, seconds);
        rc = m->test_accuracy >= 0.95 ? 0 : 1;
        if (rc) fprintf(stderr, "quickstart: accuracy below 0.95\n");
    }
    /* Save the model into a fresh private folder, load it back, then remove both. */
    {
        const char *tmp = getenv("TMPDIR");
        char dir[4096], path[4096 + 32];
        asymbp_net_t *loaded = NULL;
        snprintf(dir, sizeof dir, "%s/asymbp-quickstart-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("quickstart: mkdtemp");
            rc = 1;
            goto out;
        }
        snprintf(path, sizeof path, "%s/digits8x8.model", dir);
        if (check(ctx, asymbp_model_save(net, path), "saving") ||
            check(ctx, asymbp_model_load(ctx, path, &loaded), "loading the saved model"))
            rc = 1;
        else
            printf("saved and loaded again: %s (%s)\n", path, asymbp_net_spec(loaded));
        asymbp_net_destroy(loaded);
        remove(path);
        if (rmdir(dir) != 0) {   /* fails when something was left behind */
            perror("quickstart: removing the model folder");
            rc = 1;
        }
    }
out:
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return rc;
}
