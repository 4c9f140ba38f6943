/* Writes the seed corpora of the model_file and grammar fuzz targets into the folder given
 * (tests/fuzz/corpus by default):  cc ... tests/fuzz/make_seeds.c lib/libasymbp.a ... && ./a.out
 * The committed seeds were made by this program; run it again only to change them on purpose
 * (model files change bytes when the format or the weight initialisation changes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "asymbp/asymbp.h"

static const char *root = "tests/fuzz/corpus";

static void die(asymbp_ctx_t *ctx, const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, ctx ? asymbp_ctx_last_error(ctx) : "");
    exit(1);
}

static void model(asymbp_ctx_t *ctx, const char *name, const char *spec, int64_t c, int64_t h, int64_t w, int bn, const char *fb)
{
    char path[512];
    asymbp_net_t *net = NULL;
    if (asymbp_net_from_spec(ctx, spec, c, h, w, 3, bn, &net) != ASYMBP_OK) die(ctx, spec);
    if (asymbp_net_set_feedback(net, fb) != ASYMBP_OK) die(ctx, fb);
    snprintf(path, sizeof path, "%s/model_file/%s", root, name);
    if (asymbp_model_save(net, path) != ASYMBP_OK) die(ctx, path);
    asymbp_net_destroy(net);
}

/* A checkpoint of the fuzz target's fixed trainer (mlp:8 over 4 features, 3 classes, sgd, 8
 * samples in batches of 4, 3 epochs) after `epochs` epochs, with feedback fb. */
static void checkpoint(asymbp_ctx_t *ctx, const char *name, const char *fb, int epochs)
{
    static const float feats[8 * 4] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1,
                                        1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1 };
    static const int32_t labels[8] = { 0, 1, 2, 0, 1, 2, 0, 1 };
    char path[512];
    asymbp_dataset_t *ds = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    tp.epochs = epochs;
    tp.batch = 4;
    tp.evaluate = 0;
    if (asymbp_dataset_create(ctx, 8, 4, 1, 1, 3, feats, labels, &ds) != ASYMBP_OK ||
        asymbp_net_from_spec(ctx, "mlp:8", 4, 1, 1, 3, 0, &net) != ASYMBP_OK || asymbp_net_set_feedback(net, fb) != ASYMBP_OK ||
        asymbp_optimizer_create(net, "sgd", NULL, &opt) != ASYMBP_OK || asymbp_trainer_create(net, opt, ds, NULL, &tp, &tr) != ASYMBP_OK ||
        asymbp_trainer_run(tr) != ASYMBP_OK)
        die(ctx, name);
    snprintf(path, sizeof path, "%s/model_file/%s", root, name);
    if (asymbp_trainer_save_checkpoint(tr, path) != ASYMBP_OK) die(ctx, path);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
}

static void text(const char *name, const char *bytes, size_t n)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/grammar/%s", root, name);
    f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) die(NULL, path);
}

#define TEXT(name, s) text(name, s, sizeof s - 1)

int main(int argc, char **argv)
{
    asymbp_ctx_t *ctx = NULL;
    char dir[512];
    if (argc > 1) root = argv[1];
    snprintf(dir, sizeof dir, "%s/model_file", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/grammar", root);
    mkdir(dir, 0755);
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK || asymbp_ctx_set_seed(ctx, 7) != ASYMBP_OK) die(ctx, "context");
    model(ctx, "mlp-sym", "mlp:8", 4, 1, 1, 0, "sym");
    model(ctx, "mlp-usf-bn", "mlp:8", 4, 1, 1, 1, "usf");
    model(ctx, "conv-brsf-dropout", "conv3x3x2p1,relu,maxpool2s2,dropout0.25,fc5", 1, 6, 6, 0, "brsf");
    model(ctx, "conv-partial-avgpool", "conv2x2x3,relu,avgpool2s1,fc4", 2, 5, 5, 1, "partial:p=0.5:mask=redraw");
    checkpoint(ctx, "ckpt-sym-1", "sym", 1);
    checkpoint(ctx, "ckpt-frsf-2", "frsf", 2);
    checkpoint(ctx, "ckpt-rndf-3", "rndf", 3);
    /* grammar: flags byte, then spec \n feedback \n rule */
    TEXT("mlp-usf-bm", "\x00" "mlp:16,8\nusf\nbm");
    TEXT("paper-cnn-bn", "\x05" "paper-cnn\nbrsf\nbm:b:nsc");
    TEXT("conv-frsf", "\x02" "conv3x3x8p1,relu,maxpool2s2,fc16\nfrsf:mag=uniform:scale=xavier\nbm:c");
    TEXT("partial-redraw", "\x0a" "mlp:4\npartial:p=0.25:mask=redraw:m=step\nsgd");
    TEXT("small-pool", "\x02" "conv1x1x4,maxpool1s3\nrndf:dist=normal\nbatch-manhattan");
    TEXT("dropout-bn", "\x01" "fc8,dropout0.5,bn,relu\nsigned-init\nbm:nsc");
    TEXT("classifier-only", "\x10" "mlp:8\nusf\nsgd");
    TEXT("avgpool-floor", "\x06" "conv2x2x4,avgpool2s2f,flatten,fc6\nfrsf:scale=he\nbm");
    asymbp_ctx_destroy(ctx);
    return 0;
}
