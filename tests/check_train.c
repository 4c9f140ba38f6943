/* Trainer: learning on a synthetic task, bit-identical resume, divergence guard, model files,
 * misuse and allocation failure. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "layers/layers_impl.h"

/* Three Gaussian blobs in 6 dimensions, labels 0..2; deterministic from seed. */
static asymbp_dataset_t *blobs(asymbp_ctx_t *ctx, size_t n, uint64_t seed)
{
    asymbp_rng_t *r = NULL;
    asymbp_dataset_t *ds = NULL;
    float *x = malloc(n * 6 * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    ck_assert_int_eq(asymbp_rng_create(ctx, seed, 3, &r), ASYMBP_OK);
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        for (int j = 0; j < 6; j++) x[i * 6 + j] = 0.7f * asymbp_rng_normal(r) + (j % 3 == y[i] ? 2.0f : 0.0f);
    }
    ck_assert_int_eq(asymbp_dataset_create(ctx, n, 6, 1, 1, 3, x, y, &ds), ASYMBP_OK);
    asymbp_rng_destroy(r);
    free(x);
    free(y);
    return ds;
}

typedef struct setup {
    asymbp_ctx_t *ctx;
    asymbp_dataset_t *train, *test;
    asymbp_net_t *net;
    asymbp_optimizer_t *opt;
    asymbp_trainer_t *tr;
} setup_t;

static int setup_threads = 1;   /* worker threads of the contexts setup_make creates */

static void setup_make(setup_t *s, const char *spec, int bn, const char *fb, const char *rule, float lr, int epochs,
                       const char *ckpt, int every)
{
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    memset(s, 0, sizeof *s);
    s->ctx = test_ctx();
    ck_assert_int_eq(asymbp_ctx_set_threads(s->ctx, setup_threads), ASYMBP_OK);
    s->train = blobs(s->ctx, 300, 11);
    s->test = blobs(s->ctx, 90, 12);
    ck_assert_int_eq(asymbp_net_from_spec(s->ctx, spec, 6, 1, 1, 3, bn, &s->net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(s->net, fb), ASYMBP_OK);
    hp.lr = lr;
    ck_assert_int_eq(asymbp_optimizer_create(s->net, rule, &hp, &s->opt), ASYMBP_OK);
    tp.epochs = epochs;
    tp.batch = 32;
    tp.checkpoint_every = every;
    tp.checkpoint_path = ckpt;
    ck_assert_int_eq(asymbp_trainer_create(s->net, s->opt, s->train, s->test, &tp, &s->tr), ASYMBP_OK);
}

static void setup_free(setup_t *s)
{
    asymbp_trainer_destroy(s->tr);
    asymbp_optimizer_destroy(s->opt);
    asymbp_net_destroy(s->net);
    asymbp_dataset_destroy(s->train);
    asymbp_dataset_destroy(s->test);
    asymbp_ctx_destroy(s->ctx);
}

static int epochs_seen;
static int count_epochs(void *user, const asymbp_epoch_metrics_t *m)
{
    (void)user;
    epochs_seen++;
    ck_assert_int_eq(m->epoch, epochs_seen);
    return 0;
}

START_TEST(test_trainer_learns)
{
    setup_t s;
    const asymbp_epoch_metrics_t *m;
    setup_make(&s, "mlp:16", 1, "usf", "bm", 0.005f, 5, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_epochs_done(s.tr), 5);
    m = asymbp_trainer_metrics(s.tr, 5);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(asymbp_trainer_metrics(s.tr, 6));
    ck_assert_ptr_null(asymbp_trainer_metrics(s.tr, 0));
    ck_assert_uint_eq(m->step, 5 * 10); /* 300 samples in batches of 32: 10 steps an epoch */
    ck_assert_double_gt(m->test_accuracy, 0.9);
    ck_assert_double_lt(m->train_loss, asymbp_trainer_metrics(s.tr, 1)->train_loss);
    /* a finished trainer has nothing left to run */
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_epochs_done(s.tr), 5);
    setup_free(&s);
}
END_TEST

START_TEST(test_trainer_callbacks)
{
    setup_t s;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    setup_make(&s, "mlp:8", 0, "sym", "sgd", 0.05f, 1, NULL, 0);
    asymbp_trainer_destroy(s.tr);
    (void)hp;
    tp.epochs = 3;
    tp.batch = 50;
    tp.on_epoch = count_epochs;
    epochs_seen = 0;
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, s.train, s.test, &tp, &s.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_OK);
    ck_assert_int_eq(epochs_seen, 3);
    setup_free(&s);
}
END_TEST

static void params_snapshot(asymbp_net_t *net, float *buf, size_t cap)
{
    size_t off = 0;
    for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *v = NULL, *g = NULL;
        ck_assert_int_eq(asymbp_net_param_at(net, i, &v, &g), ASYMBP_OK);
        ck_assert_uint_le(off + asymbp_tensor_numel(v), cap);
        memcpy(buf + off, asymbp_tensor_data(v), asymbp_tensor_numel(v) * sizeof(float));
        off += asymbp_tensor_numel(v);
    }
}

/* A run of 4 epochs, and a run stopped after 2 then resumed from its checkpoint into fresh
 * objects, end with identical weights, bit for bit (BRSF redraws, BN statistics, BM momentum,
 * dropout masks and shuffling all continue from the checkpoint). */
/* (run with 1 worker thread, then with 3: resume is bit-identical on the same thread count) */
START_TEST(test_trainer_resume_bit_identical)
{
    char dir[1024], ck_full[1100], ck_half[1100];
    setup_t a, b;
    size_t n;
    float *wa, *wb;
    setup_threads = _i ? 3 : 1;
    test_tmpdir_make(dir, sizeof dir, "train");
    snprintf(ck_full, sizeof ck_full, "%s/full.ckpt", dir);
    snprintf(ck_half, sizeof ck_half, "%s/half.ckpt", dir);
    setup_make(&a, "fc16,bn,relu,dropout0.2,fc12,relu", 0, "brsf", "bm", 0.003f, 4, ck_full, 1);
    ck_assert_int_eq(asymbp_trainer_run(a.tr), ASYMBP_OK);
    /* the same seed, stopped at 2 epochs */
    setup_make(&b, "fc16,bn,relu,dropout0.2,fc12,relu", 0, "brsf", "bm", 0.003f, 2, ck_half, 1);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    setup_free(&b);
    /* fresh objects from a different seed: everything must come from the checkpoint */
    setup_make(&b, "fc16,bn,relu,dropout0.2,fc12,relu", 0, "brsf", "bm", 0.003f, 4, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(b.tr, ck_half), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_epochs_done(b.tr), 2);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    n = asymbp_net_weight_count(a.net);
    ck_assert_uint_eq(n, asymbp_net_weight_count(b.net));
    wa = malloc(n * sizeof *wa);
    wb = malloc(n * sizeof *wb);
    params_snapshot(a.net, wa, n);
    params_snapshot(b.net, wb, n);
    ck_assert_mem_eq(wa, wb, n * sizeof *wa);
    ck_assert_double_eq(asymbp_trainer_metrics(a.tr, 4)->test_accuracy, asymbp_trainer_metrics(b.tr, 4)->test_accuracy);
    ck_assert_double_eq(asymbp_trainer_metrics(a.tr, 1)->train_loss, asymbp_trainer_metrics(b.tr, 1)->train_loss);
    /* the resumed run really started at epoch 3: the checkpoint of the full run after epoch 4 and
     * the resumed trainer's state agree, and without loading, the fresh run would differ */
    free(wa);
    free(wb);
    setup_free(&a);
    setup_free(&b);
    test_tmpdir_remove(dir);
    setup_threads = 1;
}
END_TEST

START_TEST(test_trainer_checkpoint_mismatch)
{
    char dir[1024], ck[1100];
    setup_t a, b;
    test_tmpdir_make(dir, sizeof dir, "train");
    snprintf(ck, sizeof ck, "%s/mm.ckpt", dir);
    setup_make(&a, "mlp:16", 0, "sym", "sgd", 0.01f, 1, ck, 1);
    ck_assert_int_eq(asymbp_trainer_run(a.tr), ASYMBP_OK);
    setup_make(&b, "mlp:12", 0, "sym", "sgd", 0.01f, 2, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(b.tr, ck), ASYMBP_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(b.ctx), ck));
    ck_assert_int_eq(asymbp_trainer_epochs_done(b.tr), 0);
    /* a model file is not a checkpoint */
    ck_assert_int_eq(asymbp_model_save(a.net, ck), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(a.tr, ck), ASYMBP_E_FORMAT);
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(a.tr, "/nonexistent/x.ckpt"), ASYMBP_E_IO);
    setup_free(&a);
    setup_free(&b);
    test_tmpdir_remove(dir);
}
END_TEST

START_TEST(test_trainer_divergence)
{
    setup_t s;
    const char *msg;
    setup_make(&s, "mlp:16,16", 0, "usf", "sgd", 1e30f, 3, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_E_DIVERGED);
    msg = asymbp_ctx_last_error(s.ctx);
    ck_assert_ptr_nonnull(strstr(msg, "epoch 1"));
    ck_assert_ptr_nonnull(strstr(msg, "step"));
    /* the last good weights are intact: all finite */
    for (size_t i = 0; i < asymbp_net_param_count(s.net); i++) {
        asymbp_tensor_t *v = NULL, *g = NULL;
        ck_assert_int_eq(asymbp_net_param_at(s.net, i, &v, &g), ASYMBP_OK);
        for (size_t j = 0; j < asymbp_tensor_numel(v); j++) ck_assert(isfinite(asymbp_tensor_data(v)[j]));
    }
    ck_assert_int_eq(asymbp_trainer_epochs_done(s.tr), 0);
    setup_free(&s);
}
END_TEST

START_TEST(test_model_save_load)
{
    char dir[1024], path[1100];
    setup_t s;
    asymbp_net_t *back = NULL;
    int32_t pa[90], pb[90];
    float la, aa, lb, ab;
    test_tmpdir_make(dir, sizeof dir, "train");
    snprintf(path, sizeof path, "%s/m.model", dir);
    setup_make(&s, "mlp:16", 1, "frsf", "sgd", 0.05f, 2, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_model_save(s.net, path), ASYMBP_OK);
    ck_assert_int_eq(asymbp_model_load(s.ctx, path, &back), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(back, 32), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_predict(s.net, asymbp_dataset_features(s.test), 90, pa), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_predict(back, asymbp_dataset_features(s.test), 90, pb), ASYMBP_OK);
    ck_assert_mem_eq(pa, pb, sizeof pa);
    ck_assert_int_eq(asymbp_net_evaluate(s.net, asymbp_dataset_features(s.test), asymbp_dataset_labels(s.test), 90, &la, &aa),
                     ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_evaluate(back, asymbp_dataset_features(s.test), asymbp_dataset_labels(s.test), 90, &lb, &ab),
                     ASYMBP_OK);
    ck_assert_float_eq(la, lb);
    ck_assert_float_eq(aa, ab);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(back, -1), asymbp_net_get_layer_feedback(s.net, -1));
    asymbp_net_destroy(back);
    back = NULL;
    /* damaged file: FORMAT, nothing returned */
    {
        FILE *f = fopen(path, "r+b");
        fseek(f, 40, SEEK_SET);
        fputc(0x5a, f);
        fclose(f);
    }
    ck_assert_int_eq(asymbp_model_load(s.ctx, path, &back), ASYMBP_E_FORMAT);
    ck_assert_ptr_null(back);
    ck_assert_int_eq(asymbp_model_load(s.ctx, "/nonexistent/m", &back), ASYMBP_E_IO);
    ck_assert_int_eq(asymbp_model_load(s.ctx, path, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_model_save(NULL, path), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_model_save(s.net, NULL), ASYMBP_E_INVALID);
    setup_free(&s);
    test_tmpdir_remove(dir);
}
END_TEST

START_TEST(test_trainer_misuse)
{
    setup_t s;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_net_t *other = NULL;
    setup_make(&s, "mlp:8", 0, "sym", "sgd", 0.01f, 1, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, s.train, s.test, &tp, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_trainer_create(NULL, s.opt, s.train, s.test, &tp, &tr), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_trainer_create(s.net, NULL, s.train, s.test, &tp, &tr), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, NULL, s.test, &tp, &tr), ASYMBP_E_INVALID);
    tp.epochs = 0;
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, s.train, s.test, &tp, &tr), ASYMBP_E_INVALID);
    tp.epochs = 1;
    tp.checkpoint_every = 1;
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, s.train, s.test, &tp, &tr), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(s.ctx), "checkpoint_path"));
    tp.checkpoint_every = 0;
    /* a net for 5 inputs cannot train on 6-feature data: both sizes named */
    ck_assert_int_eq(asymbp_net_from_spec(s.ctx, "mlp:8", 5, 1, 1, 3, 0, &other), ASYMBP_OK);
    {
        asymbp_optimizer_t *o2 = NULL;
        asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
        ck_assert_int_eq(asymbp_optimizer_create(other, "sgd", &hp, &o2), ASYMBP_OK);
        ck_assert_int_eq(asymbp_trainer_create(other, o2, s.train, s.test, &tp, &tr), ASYMBP_E_SHAPE);
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(s.ctx), "6x1x1"));
        ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(s.ctx), "5x1x1"));
        asymbp_optimizer_destroy(o2);
    }
    ck_assert_ptr_null(tr);
    ck_assert_int_eq(asymbp_trainer_run(NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_trainer_epochs_done(NULL), 0);
    asymbp_trainer_destroy(NULL);
    asymbp_net_destroy(other);
    setup_free(&s);
}
END_TEST

START_TEST(test_trainer_oom)
{
    /* Fail the k-th allocation of trainer creation for every k: NOMEM and no leak. */
    for (long k = 1;; k++) {
        test_alloc_t ta = {0, 0, 0};
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_dataset_t *train;
        asymbp_net_t *net = NULL;
        asymbp_optimizer_t *opt = NULL;
        asymbp_trainer_t *tr = NULL;
        asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
        asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
        asymbp_status_t st;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        train = blobs(ctx, 40, 1);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:8", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_create(net, "sgd", &hp, &opt), ASYMBP_OK);
        tp.batch = 16;
        tp.epochs = 1;
        ta.fail_at = ta.calls + k;
        st = asymbp_trainer_create(net, opt, train, NULL, &tp, &tr);
        if (st == ASYMBP_OK) {
            ck_assert_int_eq(asymbp_trainer_run(tr), ASYMBP_OK);
            asymbp_trainer_destroy(tr);
        } else {
            ck_assert_int_eq(st, ASYMBP_E_NOMEM);
            ck_assert_ptr_null(tr);
        }
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        asymbp_dataset_destroy(train);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
        if (st == ASYMBP_OK) break;
        ck_assert_int_lt(k, 100);
    }
}
END_TEST


/* ---- BN population statistics, validation sets, schedules (issue 11) ------------------------ */

static int stop_after_two(void *user, const asymbp_epoch_metrics_t *m)
{
    (void)user;
    return m->epoch >= 2;
}

/* One batch holding the whole set: the re-estimated statistics are then exactly the mean and the
 * unbiased variance of every BN input over the data set, computed here independently. */
START_TEST(test_bn_recalibrate_population)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *ds = blobs(ctx, 120, 5);
    asymbp_net_t *net = NULL;
    asymbp__layer_t *fc, *bn, *drop;
    asymbp_bn_recal_params_t p = ASYMBP_BN_RECAL_PARAMS_INIT;
    uint64_t drop_state;
    size_t n = 120, F = 8;
    double *h = malloc(n * F * sizeof *h);
    float *w0;
    size_t nw;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc8,bn,relu,dropout0.5,fc3", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, n), ASYMBP_OK);
    fc = net->layers[0];
    bn = net->layers[1];
    drop = net->layers[3];
    ck_assert_int_eq(bn->kind, ASYMBP_LAYER_BATCHNORM);
    /* the BN input, by hand: the dense layer's output in double */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < F; j++) {
            double acc = fc->b[j];
            for (size_t k = 0; k < 6; k++) acc += (double)fc->W[j * 6 + k] * asymbp_dataset_features(ds)[i * 6 + k];
            h[i * F + j] = acc;
        }
    nw = asymbp_net_weight_count(net);
    w0 = malloc(nw * sizeof *w0);
    params_snapshot(net, w0, nw);
    drop_state = drop->rng.state;
    p.seed = 9;
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, ds, &p), ASYMBP_OK);
    for (size_t j = 0; j < F; j++) {
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i < n; i++) m += h[i * F + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) v += (h[i * F + j] - m) * (h[i * F + j] - m);
        v /= (double)(n - 1);
        ck_assert_msg(fabs(bn->run_mean[j] - m) <= 1e-4 * (1.0 + fabs(m)), "feature %zu: mean %g, expected %g", j,
                      (double)bn->run_mean[j], m);
        ck_assert_msg(fabs(bn->run_var[j] - v) <= 1e-4 * (1.0 + v), "feature %zu: variance %g, expected %g", j,
                      (double)bn->run_var[j], v);
    }
    /* nothing else changed: weights, the dropout stream */
    {
        float *w1 = malloc(nw * sizeof *w1);
        params_snapshot(net, w1, nw);
        ck_assert_mem_eq(w0, w1, nw * sizeof *w0);
        free(w1);
    }
    ck_assert_uint_eq(drop->rng.state, drop_state);
    /* misuse */
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_net_bn_recalibrate(NULL, ds, NULL), ASYMBP_E_INVALID);
    p.struct_size = 4;
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, ds, &p), ASYMBP_E_UNSUPPORTED);
    free(h);
    free(w0);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Smaller batches: the statistics are means over random batches (their mean is exact; their
 * variance the mean of the batch variances), and the result is the same for the same seed. */
START_TEST(test_bn_recalibrate_batches)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *ds = blobs(ctx, 100, 6);
    asymbp_net_t *net = NULL;
    asymbp_bn_recal_params_t p = ASYMBP_BN_RECAL_PARAMS_INIT;
    float m1[8], v1[8];
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc8,bn,relu,fc3", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 16), ASYMBP_OK);
    p.seed = 4;
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, ds, &p), ASYMBP_OK);
    memcpy(m1, net->layers[1]->run_mean, sizeof m1);
    memcpy(v1, net->layers[1]->run_var, sizeof v1);
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, ds, &p), ASYMBP_OK);
    ck_assert_mem_eq(m1, net->layers[1]->run_mean, sizeof m1);
    ck_assert_mem_eq(v1, net->layers[1]->run_var, sizeof v1);
    /* a sample of 30 gives other (but finite, positive) variances */
    p.max_samples = 30;
    ck_assert_int_eq(asymbp_net_bn_recalibrate(net, ds, &p), ASYMBP_OK);
    for (int j = 0; j < 8; j++) ck_assert(net->layers[1]->run_var[j] > 0.0f && isfinite(net->layers[1]->run_var[j]));
    ck_assert(memcmp(v1, net->layers[1]->run_var, sizeof v1) != 0);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
    asymbp_ctx_destroy(ctx);
}
END_TEST

static uint64_t setup_seed = 1;

static void setup_with(setup_t *s, int bn_stats, int with_val, const char *ckpt, int epochs, asymbp_epoch_fn on_epoch)
{
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    memset(s, 0, sizeof *s);
    s->ctx = test_ctx();
    ck_assert_int_eq(asymbp_ctx_set_seed(s->ctx, setup_seed), ASYMBP_OK);
    s->train = blobs(s->ctx, 300, 11);
    s->test = blobs(s->ctx, 90, 12);
    ck_assert_int_eq(asymbp_net_from_spec(s->ctx, "fc16,relu,fc12,relu", 6, 1, 1, 3, 1, &s->net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_set_feedback(s->net, "brsf"), ASYMBP_OK);
    hp.lr = 0.003f;
    ck_assert_int_eq(asymbp_optimizer_create(s->net, "bm", &hp, &s->opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_cosine(s->opt, (uint64_t)epochs * 10, 0.05f), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_warmup(s->opt, 7), ASYMBP_OK);
    tp.epochs = epochs;
    tp.batch = 32;
    tp.bn_stats = bn_stats;
    tp.bn_recal_samples = 200;
    tp.checkpoint_every = ckpt ? 1 : 0;
    tp.checkpoint_path = ckpt;
    tp.on_epoch = on_epoch;
    ck_assert_int_eq(asymbp_trainer_create(s->net, s->opt, s->train, s->test, &tp, &s->tr), ASYMBP_OK);
    if (with_val) ck_assert_int_eq(asymbp_trainer_set_validation(s->tr, s->test), ASYMBP_OK);
}

/* Re-estimating the statistics before every evaluation changes no weight and no running
 * average: the run with RECAL trains exactly like the one with EMA, its *_ema test figures are
 * the EMA run's test figures, and the validation set (here the test set again) is evaluated
 * with the re-estimated statistics like the test set. */
START_TEST(test_recal_does_not_change_training)
{
    setup_t a, b;
    size_t n;
    float *wa, *wb;
    setup_with(&a, ASYMBP_BN_STATS_EMA, 0, NULL, 3, NULL);
    setup_with(&b, ASYMBP_BN_STATS_RECAL, 1, NULL, 3, NULL);
    ck_assert_int_eq(asymbp_trainer_run(a.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    n = asymbp_net_weight_count(a.net);
    wa = malloc(n * sizeof *wa);
    wb = malloc(n * sizeof *wb);
    params_snapshot(a.net, wa, n);
    params_snapshot(b.net, wb, n);
    ck_assert_mem_eq(wa, wb, n * sizeof *wa);
    for (int e = 1; e <= 3; e++) {
        const asymbp_epoch_metrics_t *ma = asymbp_trainer_metrics(a.tr, e), *mb = asymbp_trainer_metrics(b.tr, e);
        ck_assert_double_eq(ma->train_loss, mb->train_loss);
        ck_assert_double_eq(ma->test_accuracy, mb->test_accuracy_ema);
        ck_assert_double_eq(ma->test_loss, mb->test_loss_ema);
        ck_assert(isnan(ma->test_accuracy_ema) && isnan(ma->val_accuracy));
        ck_assert_double_eq(mb->val_accuracy, mb->test_accuracy);
        ck_assert(mb->test_accuracy >= 0.0 && mb->test_accuracy <= 1.0);
    }
    /* the finished RECAL run keeps the re-estimated statistics: evaluating now gives the last
     * epoch's figure; the EMA run keeps its running averages */
    {
        float acc = 0.0f;
        ck_assert_int_eq(asymbp_net_evaluate(b.net, asymbp_dataset_features(b.test), asymbp_dataset_labels(b.test), 90, NULL,
                                             &acc), ASYMBP_OK);
        ck_assert_double_eq_tol(acc, asymbp_trainer_metrics(b.tr, 3)->test_accuracy, 1e-6);
    }
    free(wa);
    free(wb);
    setup_free(&a);
    setup_free(&b);
}
END_TEST

/* A run with RECAL, a validation set, a cosine schedule and a warm-up, stopped after 2 epochs and
 * resumed from its checkpoint, ends exactly like the uninterrupted one (weights, metrics, and
 * the re-estimated statistics it keeps). */
START_TEST(test_recal_resume_bit_identical)
{
    char dir[512], ck_full[600], ck_half[600];
    setup_t a, b;
    size_t n;
    float *wa, *wb;
    test_tmpdir_make(dir, sizeof dir, "recal");
    snprintf(ck_full, sizeof ck_full, "%s/full.ckpt", dir);
    snprintf(ck_half, sizeof ck_half, "%s/half.ckpt", dir);
    setup_with(&a, ASYMBP_BN_STATS_RECAL, 1, ck_full, 4, NULL);
    ck_assert_int_eq(asymbp_trainer_run(a.tr), ASYMBP_OK);
    setup_with(&b, ASYMBP_BN_STATS_RECAL, 1, ck_half, 4, stop_after_two);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_epochs_done(b.tr), 2);
    setup_free(&b);
    /* fresh objects from another seed: everything must come from the checkpoint */
    setup_seed = 77;
    setup_with(&b, ASYMBP_BN_STATS_RECAL, 1, NULL, 4, NULL);
    setup_seed = 1;
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(b.tr, ck_half), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    n = asymbp_net_weight_count(a.net);
    wa = malloc(n * sizeof *wa);
    wb = malloc(n * sizeof *wb);
    params_snapshot(a.net, wa, n);
    params_snapshot(b.net, wb, n);
    ck_assert_mem_eq(wa, wb, n * sizeof *wa);
    for (int e = 1; e <= 4; e++) {
        const asymbp_epoch_metrics_t *ma = asymbp_trainer_metrics(a.tr, e), *mb = asymbp_trainer_metrics(b.tr, e);
        ck_assert_double_eq(ma->lr, mb->lr);
        ck_assert_double_eq(ma->val_accuracy, mb->val_accuracy);
        ck_assert_double_eq(ma->test_accuracy, mb->test_accuracy);
        ck_assert_double_eq(ma->test_accuracy_ema, mb->test_accuracy_ema);
    }
    ck_assert_mem_eq(a.net->layers[1]->run_mean, b.net->layers[1]->run_mean, 16 * sizeof(float));
    ck_assert_mem_eq(a.net->layers[1]->run_var, b.net->layers[1]->run_var, 16 * sizeof(float));
    free(wa);
    free(wb);
    setup_free(&a);
    setup_free(&b);
    test_tmpdir_remove(dir);
}
END_TEST

/* The learning-rate factor of the cosine schedule and the warm-up, against hand-computed values
 * at each step. */
START_TEST(test_schedule_cosine_warmup)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    float x[6 * 2] = { 0 };
    int32_t y[2] = { 0, 1 };
    hp.lr = 0.5f;
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc4", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_bind(net, 2), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_create(net, "sgd", &hp, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_cosine(opt, 10, 0.1f), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_warmup(opt, 4), ASYMBP_OK);
    for (int step = 1; step <= 14; step++) {
        double t = (double)(step - 1 < 10 ? step - 1 : 10) / 10.0;
        double f = 0.1 + 0.9 * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
        if (step < 4) f *= (double)step / 4.0;
        ck_assert_msg(fabs(asymbp_optimizer_get_lr(opt) - 0.5 * f) < 1e-6, "step %d: lr %g, expected %g", step,
                      (double)asymbp_optimizer_get_lr(opt), 0.5 * f);
        ck_assert_int_eq(asymbp_net_forward(net, x, 2, 1, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_loss(net, y, 2, NULL), ASYMBP_OK);
        ck_assert_int_eq(asymbp_net_backward(net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_step(opt), ASYMBP_OK);
    }
    ck_assert_int_eq(asymbp_optimizer_set_schedule_cosine(opt, 0, 0.1f), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_set_schedule_cosine(opt, 5, 1.5f), ASYMBP_E_INVALID);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A diverging step leaves the BN running statistics as they were before it, with the weights. */
START_TEST(test_divergence_restores_bn_stats)
{
    setup_t s;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    memset(&s, 0, sizeof s);
    s.ctx = test_ctx();
    s.train = blobs(s.ctx, 300, 11);
    s.test = blobs(s.ctx, 90, 12);
    ck_assert_int_eq(asymbp_net_from_spec(s.ctx, "fc16,relu,fc12,relu", 6, 1, 1, 3, 1, &s.net), ASYMBP_OK);
    hp.lr = 1e30f;
    ck_assert_int_eq(asymbp_optimizer_create(s.net, "sgd", &hp, &s.opt), ASYMBP_OK);
    tp.epochs = 5;
    tp.batch = 32;
    ck_assert_int_eq(asymbp_trainer_create(s.net, s.opt, s.train, s.test, &tp, &s.tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_trainer_run(s.tr), ASYMBP_E_DIVERGED);
    for (size_t i = 0; i < s.net->n_layers; i++) {
        asymbp__layer_t *L = s.net->layers[i];
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        for (int64_t c = 0; c < L->in_c; c++)
            ck_assert_msg(isfinite(L->run_mean[c]) && isfinite(L->run_var[c]), "%s: running statistics not finite", L->name);
    }
    setup_free(&s);
}
END_TEST

/* Every feedback tensor of a net in one buffer: V (the read-out) and, where there is one, the
 * direct B; returns the floats written. */
static size_t feedback_snapshot(asymbp_net_t *net, float *buf, size_t cap)
{
    size_t off = 0;
    for (size_t l = 0; l < asymbp_net_layer_count(net); l++) {
        size_t n = 0;
        if (asymbp_net_layer_kind(net, l) != ASYMBP_LAYER_DENSE) continue;
        ck_assert_int_eq(asymbp_net_read_layer(net, l, ASYMBP_READ_FEEDBACK, buf + off, cap - off, &n), ASYMBP_OK);
        off += n;
        if (asymbp_net_read_layer(net, l, ASYMBP_READ_DIRECT_FEEDBACK, NULL, 0, &n) == ASYMBP_OK) {
            ck_assert_int_eq(asymbp_net_read_layer(net, l, ASYMBP_READ_DIRECT_FEEDBACK, buf + off, cap - off, &n), ASYMBP_OK);
            off += n;
        }
    }
    return off;
}

/* dfa, kp and mirror: a run of 4 epochs and a run stopped after 2 and resumed from its checkpoint
 * into fresh objects end with the same weights and feedback tensors (B, learned V), bit for bit
 * (batch norm, Batch Manhattan with momentum, dropout). */
START_TEST(test_trainer_resume_learned_feedback)
{
    const char *settings[3] = { "dfa", "kp:decay=0.05", "mirror:steps=2:batch=8" };
    const char *fb = settings[_i];
    char dir[1024], ck_full[1100], ck_half[1100];
    setup_t a, b;
    size_t n, nfa, nfb;
    float *wa, *wb, *fa, *fbuf;
    test_tmpdir_make(dir, sizeof dir, "train");
    snprintf(ck_full, sizeof ck_full, "%s/full.ckpt", dir);
    snprintf(ck_half, sizeof ck_half, "%s/half.ckpt", dir);
    setup_make(&a, "fc16,bn,relu,dropout0.2,fc12,relu", 0, fb, "bm", 0.003f, 4, ck_full, 1);
    ck_assert_int_eq(asymbp_trainer_run(a.tr), ASYMBP_OK);
    setup_make(&b, "fc16,bn,relu,dropout0.2,fc12,relu", 0, fb, "bm", 0.003f, 2, ck_half, 1);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    setup_free(&b);
    setup_make(&b, "fc16,bn,relu,dropout0.2,fc12,relu", 0, "sym", "bm", 0.003f, 4, NULL, 0);
    ck_assert_int_eq(asymbp_trainer_load_checkpoint(b.tr, ck_half), ASYMBP_OK);
    ck_assert_str_eq(asymbp_net_get_layer_feedback(b.net, 0), fb);
    ck_assert_int_eq(asymbp_trainer_run(b.tr), ASYMBP_OK);
    n = asymbp_net_weight_count(a.net);
    wa = malloc(n * sizeof *wa);
    wb = malloc(n * sizeof *wb);
    params_snapshot(a.net, wa, n);
    params_snapshot(b.net, wb, n);
    ck_assert_msg(memcmp(wa, wb, n * sizeof *wa) == 0, "%s: the resumed run's weights differ", fb);
    fa = malloc(4096 * sizeof *fa);
    fbuf = malloc(4096 * sizeof *fbuf);
    nfa = feedback_snapshot(a.net, fa, 4096);
    nfb = feedback_snapshot(b.net, fbuf, 4096);
    ck_assert_uint_eq(nfa, nfb);
    ck_assert_msg(memcmp(fa, fbuf, nfa * sizeof *fa) == 0, "%s: the resumed run's feedback differs", fb);
    ck_assert_double_eq(asymbp_trainer_metrics(a.tr, 4)->test_accuracy, asymbp_trainer_metrics(b.tr, 4)->test_accuracy);
    free(wa);
    free(wb);
    free(fa);
    free(fbuf);
    setup_free(&a);
    setup_free(&b);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *asymbp_test_train_suite(void);
Suite *asymbp_test_train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_trainer_learns);
    tcase_add_test(tc, test_trainer_callbacks);
    tcase_add_loop_test(tc, test_trainer_resume_bit_identical, 0, 2);
    tcase_add_loop_test(tc, test_trainer_resume_learned_feedback, 0, 3);
    tcase_add_test(tc, test_trainer_checkpoint_mismatch);
    tcase_add_test(tc, test_trainer_divergence);
    tcase_add_test(tc, test_model_save_load);
    tcase_add_test(tc, test_trainer_misuse);
    tcase_add_test(tc, test_trainer_oom);
    tcase_add_test(tc, test_bn_recalibrate_population);
    tcase_add_test(tc, test_bn_recalibrate_batches);
    tcase_add_test(tc, test_recal_does_not_change_training);
    tcase_add_test(tc, test_recal_resume_bit_identical);
    tcase_add_test(tc, test_schedule_cosine_warmup);
    tcase_add_test(tc, test_divergence_restores_bn_stats);
    suite_add_tcase(s, tc);
    return s;
}
