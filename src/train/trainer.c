/* The training loop, divergence guard, checkpoints and model files. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/core_impl.h"
#include "dist/dist_impl.h"
#include "tensor/tensor_impl.h"
#include "layers/net_hooks.h"
#include "layers/net_impl.h"
#include "layers/net_into.h"
#include "feedback/feedback_impl.h"
#include "update/update_impl.h"
#include "train/train_impl.h"
#include "data/data_impl.h"
#include "asymbp/trainer.h"

#define TRAINER_CHUNK "TRNR"
#define DIST_CHUNK "DIST"       /* ranks and mode of a data-parallel run (format 1) */
/* 2 (0.2): every epoch's metrics also hold the validation and EMA test figures; 1 is still read */
#define TRAINER_FORMAT 2u
#define METRICS_V1_BYTES 56u
#define METRICS_V2_BYTES 88u

struct asymbp_trainer {
    asymbp_ctx_t *ctx;
    asymbp_net_t *net;
    asymbp_optimizer_t *opt;
    const asymbp_dataset_t *train, *test, *val;
    asymbp_train_params_t p;
    char *checkpoint_path;
    asymbp_rng_t rng;               /* shuffling stream */
    size_t n, sample, batches;
    size_t *order;                  /* this epoch's permutation */
    float *x;                       /* one batch of inputs */
    int32_t *y;                     /* one batch of labels */
    float *backup;                  /* parameters before the current step (divergence guard) */
    size_t backup_floats;
    int epochs_done;
    asymbp_epoch_metrics_t *metrics; /* epochs entries */
    /* batch norm: running statistics before the current step (divergence guard), the EMA values
     * while an evaluation uses re-estimated ones, and the last re-estimate (bn_floats each) */
    size_t bn_floats;
    float *bn_backup, *bn_ema, *bn_recal;
    int recal_epoch;                /* epoch whose statistics bn_recal holds (0: none) */
    uint64_t recal_seed;
    size_t *recal_order;            /* RECAL: scratch of the re-estimation */
    float *recal_x;
    asymbp_feedback_diag_t *probe;  /* the probe's figures, one per weighted layer */
    size_t n_probe;
    const asymbp_scaler_t *scaler;   /* borrowed; saved in checkpoints (asymbp_trainer_set_scaler) */
    /* data-parallel training (asymbp_trainer_set_comm, train/dist.c): NULL comm = one process */
    const asymbp_comm_t *comm;
    int rank, ranks;
    asymbp_dist_mode_t mode;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void params_from_user(asymbp_train_params_t *dst, const asymbp_train_params_t *src)
{
    asymbp_train_params_t d = ASYMBP_TRAIN_PARAMS_INIT;
    if (src) {
        size_t n = src->struct_size < sizeof d ? src->struct_size : sizeof d;
        memcpy(&d, src, n);
        d.struct_size = sizeof d;
    }
    *dst = d;
}

void asymbp_trainer_destroy(asymbp_trainer_t *tr)
{
    asymbp_ctx_t *ctx;
    if (!tr) return;
    ctx = tr->ctx;
    asymbp__free(ctx, tr->checkpoint_path);
    asymbp__free(ctx, tr->order);
    asymbp__free(ctx, tr->x);
    asymbp__free(ctx, tr->y);
    asymbp__free(ctx, tr->backup);
    asymbp__free(ctx, tr->metrics);
    asymbp__free(ctx, tr->bn_backup);
    asymbp__free(ctx, tr->bn_ema);
    asymbp__free(ctx, tr->bn_recal);
    asymbp__free(ctx, tr->recal_order);
    asymbp__free(ctx, tr->recal_x);
    asymbp__free(ctx, tr->probe);
    if (tr->comm) asymbp__plugin_unref(&tr->comm->base);
    asymbp__free(ctx, tr);
}

asymbp_status_t asymbp_trainer_create(asymbp_net_t *net, asymbp_optimizer_t *opt, const asymbp_dataset_t *train,
                                      const asymbp_dataset_t *test, const asymbp_train_params_t *params,
                                      asymbp_trainer_t **out)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp_trainer_t *tr;
    asymbp_status_t st;
    int64_t ns[3], c, h, w;
    size_t i, floats = 0;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: out is NULL");
    *out = NULL;
    if (!net) return ASYMBP_E_INVALID;
    if (!opt || !train) return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: %s is NULL", !opt ? "optimizer" : "training set");
    if (asymbp_net_input_shape(net, ns) != ASYMBP_OK) return asymbp_ctx_last_status(ctx);
    if (asymbp_dataset_shape(train, &c, &h, &w) != ASYMBP_OK)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: the training set has no shape");
    if (c * h * w != ns[0] * ns[1] * ns[2])
        return asymbp__error(ctx, ASYMBP_E_SHAPE,
                             "trainer_create: training samples are %lldx%lldx%lld, the net expects %lldx%lldx%lld",
                             (long long)c, (long long)h, (long long)w, (long long)ns[0], (long long)ns[1], (long long)ns[2]);
    if ((int64_t)asymbp_dataset_classes(train) > asymbp_net_classes(net))
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "trainer_create: the training set has %zu classes, the net outputs %lld",
                             asymbp_dataset_classes(train), (long long)asymbp_net_classes(net));
    if (test) {
        int64_t tc, th, tw;
        if (asymbp_dataset_shape(test, &tc, &th, &tw) != ASYMBP_OK || tc * th * tw != c * h * w)
            return asymbp__error(ctx, ASYMBP_E_SHAPE, "trainer_create: test samples have %lld values, training samples %lld",
                                 (long long)(tc * th * tw), (long long)(c * h * w));
    }
    if (asymbp_dataset_count(train) == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: the training set is empty");

    tr = asymbp__calloc(ctx, 1, sizeof *tr);
    if (!tr) return asymbp__error(ctx, ASYMBP_E_NOMEM, "trainer_create: out of memory");
    tr->ctx = ctx;
    tr->net = net;
    tr->opt = opt;
    tr->train = train;
    tr->test = test;
    tr->ranks = 1;
    params_from_user(&tr->p, params);
    if (tr->p.bn_stats != ASYMBP_BN_STATS_EMA && tr->p.bn_stats != ASYMBP_BN_STATS_RECAL) {
        int v = tr->p.bn_stats;
        asymbp_trainer_destroy(tr);
        return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: bn_stats %d is neither ASYMBP_BN_STATS_EMA nor _RECAL", v);
    }
    if (tr->p.epochs < 1 || tr->p.batch < 1 || tr->p.checkpoint_every < 0) {
        asymbp_trainer_destroy(tr);
        return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: epochs (%d) and batch (%zu) must be >= 1", params ? params->epochs : 0,
                             params ? params->batch : 0);
    }
    if (tr->p.checkpoint_every > 0 && !tr->p.checkpoint_path) {
        asymbp_trainer_destroy(tr);
        return asymbp__error(ctx, ASYMBP_E_INVALID, "trainer_create: checkpoint_every is set but checkpoint_path is NULL");
    }
    if (tr->p.checkpoint_path) {
        tr->checkpoint_path = asymbp__strdup(ctx, tr->p.checkpoint_path);
        if (!tr->checkpoint_path) {
            asymbp_trainer_destroy(tr);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "trainer_create: out of memory");
        }
        tr->p.checkpoint_path = tr->checkpoint_path;
    }
    tr->n = asymbp_dataset_count(train);
    tr->sample = asymbp_dataset_sample_size(train);
    if (tr->p.batch > tr->n) tr->p.batch = tr->n;
    tr->batches = (tr->n + tr->p.batch - 1) / tr->p.batch;
    for (i = 0; i < asymbp__net_param_count(net); i++) floats += asymbp__net_param_at(net, i)->numel;
    tr->backup_floats = floats;
    tr->order = asymbp__calloc(ctx, tr->n, sizeof *tr->order);
    tr->x = asymbp__calloc(ctx, tr->p.batch * tr->sample, sizeof(float));
    tr->y = asymbp__calloc(ctx, tr->p.batch, sizeof(int32_t));
    tr->backup = asymbp__calloc(ctx, floats ? floats : 1, sizeof(float));
    tr->metrics = asymbp__calloc(ctx, (size_t)tr->p.epochs, sizeof *tr->metrics);
    if (!tr->order || !tr->x || !tr->y || !tr->backup || !tr->metrics) {
        asymbp_trainer_destroy(tr);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "trainer_create: out of memory");
    }
    tr->bn_floats = asymbp__net_bn_stat_floats(net);
    if (tr->bn_floats) {
        tr->bn_backup = asymbp__calloc(ctx, tr->bn_floats, sizeof(float));
        tr->bn_ema = asymbp__calloc(ctx, tr->bn_floats, sizeof(float));
        tr->bn_recal = asymbp__calloc(ctx, tr->bn_floats, sizeof(float));
        if (tr->p.bn_stats == ASYMBP_BN_STATS_RECAL) {
            tr->recal_order = asymbp__calloc(ctx, tr->n, sizeof *tr->recal_order);
            tr->recal_x = asymbp__calloc(ctx, tr->p.batch * tr->sample, sizeof(float));
        }
        if (!tr->bn_backup || !tr->bn_ema || !tr->bn_recal ||
            (tr->p.bn_stats == ASYMBP_BN_STATS_RECAL && (!tr->recal_order || !tr->recal_x))) {
            asymbp_trainer_destroy(tr);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "trainer_create: out of memory");
        }
    }
    for (i = 0; i < tr->n; i++) tr->order[i] = i;
    if (tr->p.probe_every > 0 && tr->p.on_probe) {
        tr->n_probe = asymbp_net_feedback_layer_count(net);
        tr->probe = asymbp__calloc(ctx, tr->n_probe ? tr->n_probe : 1, sizeof *tr->probe);
        if (!tr->probe) {
            asymbp_trainer_destroy(tr);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "trainer_create: out of memory");
        }
    }
    tr->recal_seed = asymbp__ctx_next_seed(ctx);
    asymbp__rng_seed(&tr->rng, tr->recal_seed, 0x7452u);
    tr->recal_seed ^= 0x52ec41ULL;   /* the re-estimations' sample orders: from the same draw, another stream */
    st = asymbp_net_bind(net, tr->p.batch);
    if (st != ASYMBP_OK) {
        asymbp_trainer_destroy(tr);
        return st;
    }
    *out = tr;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_trainer_set_validation(asymbp_trainer_t *tr, const asymbp_dataset_t *val)
{
    int64_t c, h, w;
    if (!tr) return ASYMBP_E_INVALID;
    if (val) {
        if (asymbp_dataset_shape(val, &c, &h, &w) != ASYMBP_OK || (size_t)(c * h * w) != tr->sample)
            return asymbp__error(tr->ctx, ASYMBP_E_SHAPE, "trainer_set_validation: validation samples have %lld values, "
                                 "training samples %zu", (long long)(c * h * w), tr->sample);
        if (asymbp_dataset_classes(val) > (size_t)asymbp_net_classes(tr->net))
            return asymbp__error(tr->ctx, ASYMBP_E_SHAPE, "trainer_set_validation: the validation set has %zu classes, the "
                                 "net outputs %lld", asymbp_dataset_classes(val), (long long)asymbp_net_classes(tr->net));
    }
    tr->val = val;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_trainer_set_comm(asymbp_trainer_t *tr, const asymbp_comm_t *comm, asymbp_dist_mode_t mode)
{
    int ranks = comm ? asymbp_comm_size(comm) : 1;
    size_t old_batch;
    asymbp_status_t st;
    if (!tr) return ASYMBP_E_INVALID;
    if ((size_t)ranks > tr->p.batch)
        return asymbp__error(tr->ctx, ASYMBP_E_INVALID, "trainer_set_comm: a global batch of %zu samples cannot be shared by %d "
                             "ranks (each needs at least one sample: raise the batch)", tr->p.batch, ranks);
    st = asymbp_optimizer_set_comm(tr->opt, comm, mode);
    if (st != ASYMBP_OK) return st;
    /* each rank's share is at most ceil(batch / ranks) samples */
    old_batch = asymbp_net_batch_size(tr->net);
    st = asymbp_net_bind(tr->net, (tr->p.batch + (size_t)ranks - 1) / (size_t)ranks);
    if (st != ASYMBP_OK) {
        if (asymbp_net_bind(tr->net, old_batch) != ASYMBP_OK || asymbp_optimizer_set_comm(tr->opt, tr->comm, tr->mode) != ASYMBP_OK)
            asymbp__log(tr->ctx, ASYMBP_LOG_WARN, "trainer_set_comm: could not restore the previous state");
        return st;
    }
    if (comm) asymbp__plugin_ref(&comm->base);
    if (tr->comm) asymbp__plugin_unref(&tr->comm->base);
    tr->comm = comm;
    tr->rank = comm ? asymbp_comm_rank(comm) : 0;
    tr->ranks = ranks;
    tr->mode = mode;
    /* the ranks must start from one model (the same seed on every rank) */
    if (ranks > 1) return asymbp__dist_check_weights(tr->net, comm, 0, tr->bn_backup, tr->bn_floats);
    return ASYMBP_OK;
}

/* Sum of all values: NaN or Inf when any value is (or when they overflow, which is divergence too). */
static int all_finite(const float *v, size_t n)
{
    float s = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) s += v[i] * 0.0f;   /* 0*x is 0 for finite x, NaN for Inf/NaN */
    return s == 0.0f;
}

static int net_grads_finite(asymbp_net_t *net)
{
    size_t i;
    for (i = 0; i < asymbp__net_param_count(net); i++) {
        const asymbp__param_t *p = asymbp__net_param_at(net, i);
        if (!all_finite(p->grad, p->numel)) return 0;
    }
    return 1;
}

static int net_weights_finite(asymbp_net_t *net)
{
    size_t i;
    for (i = 0; i < asymbp__net_param_count(net); i++) {
        const asymbp__param_t *p = asymbp__net_param_at(net, i);
        if (!all_finite(p->value, p->numel)) return 0;
    }
    return 1;
}

static void params_copy(asymbp_net_t *net, float *buf, int to_buf)
{
    size_t i, off = 0;
    for (i = 0; i < asymbp__net_param_count(net); i++) {
        asymbp__param_t *p = asymbp__net_param_at(net, i);
        if (to_buf) memcpy(buf + off, p->value, p->numel * sizeof(float));
        else memcpy(p->value, buf + off, p->numel * sizeof(float));
        off += p->numel;
    }
}

static size_t argmax_row(const float *row, size_t k)
{
    size_t j, best = 0;
    for (j = 1; j < k; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

static asymbp_status_t eval_set(const asymbp_trainer_t *tr, const asymbp_dataset_t *ds, double *loss, double *acc)
{
    asymbp_net_t *net = tr->net;
    float l = 0.0f, a = 0.0f;
    asymbp_status_t st;
    if (tr->ranks > 1) return asymbp__dist_evaluate(net, tr->comm, ds, loss, acc);   /* each rank a share */
    *loss = *acc = NAN;
    if (!ds || asymbp_dataset_count(ds) == 0) return ASYMBP_OK;
    st = asymbp_net_evaluate(net, asymbp_dataset_features(ds), asymbp_dataset_labels(ds), asymbp_dataset_count(ds), &l, &a);
    if (st != ASYMBP_OK) return st;
    *loss = l;
    *acc = a;
    return ASYMBP_OK;
}

/* Re-estimate the BN statistics for the end of `epoch` into the net and keep a copy. */
static asymbp_status_t recalibrate(asymbp_trainer_t *tr, int epoch)
{
    asymbp_status_t st = asymbp__bn_recal_run(tr->net, tr->train, tr->p.bn_recal_samples,
                                              tr->recal_seed ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ULL), tr->recal_order,
                                              tr->recal_x);
    if (st != ASYMBP_OK) return st;
    asymbp__net_bn_stat_copy(tr->net, tr->bn_recal, 1);
    tr->recal_epoch = epoch;
    return ASYMBP_OK;
}

static int recal_mode(const asymbp_trainer_t *tr)
{
    return tr->p.bn_stats == ASYMBP_BN_STATS_RECAL && tr->bn_floats > 0;
}

/* Validation and test figures of the epoch.  With re-estimated BN statistics the test set is
 * also evaluated with the running averages, and those go back into the net afterwards: the
 * averages keep being collected exactly as without the re-estimation. */
static asymbp_status_t evaluate_epoch(asymbp_trainer_t *tr, asymbp_epoch_metrics_t *m, int epoch)
{
    asymbp_status_t st = ASYMBP_OK;
    int recal = recal_mode(tr);
    m->test_loss = m->test_accuracy = m->val_loss = m->val_accuracy = NAN;
    m->test_loss_ema = m->test_accuracy_ema = NAN;
    if (!tr->p.evaluate || (!tr->test && !tr->val)) return ASYMBP_OK;
    if (recal) {
        asymbp__net_bn_stat_copy(tr->net, tr->bn_ema, 1);
        st = eval_set(tr, tr->test, &m->test_loss_ema, &m->test_accuracy_ema);
        if (st == ASYMBP_OK) st = recalibrate(tr, epoch);
        if (st != ASYMBP_OK) {
            asymbp__net_bn_stat_copy(tr->net, tr->bn_ema, 0);
            return st;
        }
    }
    st = eval_set(tr, tr->val, &m->val_loss, &m->val_accuracy);
    if (st == ASYMBP_OK) st = eval_set(tr, tr->test, &m->test_loss, &m->test_accuracy);
    if (recal) asymbp__net_bn_stat_copy(tr->net, tr->bn_ema, 0);
    return st;
}

/* The end of an epoch over ranks: the training figures summed, the BN running statistics
 * averaged (so evaluation and saving see one model), and the check that the ranks still agree. */
static asymbp_status_t dist_epoch_end(asymbp_trainer_t *tr, double *loss_sum, size_t *correct, int epoch)
{
    float sums[2];
    asymbp_status_t st;
    sums[0] = (float)*loss_sum;
    sums[1] = (float)*correct;
    st = asymbp__comm_sum_f32(tr->ctx, tr->comm, sums, 2, "summing the epoch's training figures");
    if (st == ASYMBP_OK) st = asymbp__dist_bn_average(tr->net, tr->comm, tr->bn_backup, tr->bn_floats);
    if (st == ASYMBP_OK) st = asymbp__dist_check_weights(tr->net, tr->comm, epoch, tr->bn_backup, tr->bn_floats);
    *loss_sum = (double)sums[0];
    *correct = (size_t)sums[1];
    return st;
}

static asymbp_status_t run_epoch(asymbp_trainer_t *tr, asymbp_epoch_metrics_t *m, int *stop)
{
    asymbp_ctx_t *ctx = tr->ctx;
    asymbp_net_t *net = tr->net;
    size_t b, k = (size_t)asymbp_net_classes(net), correct = 0;
    double loss_sum = 0.0, t0 = now_seconds();
    int epoch = tr->epochs_done + 1;
    asymbp_status_t st;

    st = asymbp_optimizer_set_epoch(tr->opt, (uint64_t)(epoch - 1));
    if (st != ASYMBP_OK) return st;
    m->struct_size = sizeof *m;
    m->epoch = epoch;
    m->lr = asymbp_optimizer_get_lr(tr->opt);
    if (tr->p.shuffle) {
        size_t i;
        for (i = tr->n - 1; i > 0; i--) {   /* Fisher-Yates with the trainer's own stream */
            size_t j = asymbp__rng_below(&tr->rng, (uint32_t)(i + 1)), t = tr->order[i];
            tr->order[i] = tr->order[j];
            tr->order[j] = t;
        }
    }
    for (b = 0; b < tr->batches; b++) {
        size_t start = b * tr->p.batch, gn = tr->n - start < tr->p.batch ? tr->n - start : tr->p.batch, n = gn, lo = 0, i;
        const float *logits = NULL;
        float loss = 0.0f;
        uint64_t step = asymbp_optimizer_step_count(tr->opt) + 1;
        int bad = 0;
        /* with ranks, this rank's share [lo, lo + n) of the global batch of gn (n may be 0) */
        if (tr->comm) asymbp__dist_split(gn, tr->rank, tr->ranks, &lo, &n);
        st = n ? asymbp_dataset_gather(tr->train, tr->order + start + lo, n, tr->x, tr->y) : ASYMBP_OK;
        if (tr->bn_floats) asymbp__net_bn_stat_copy(net, tr->bn_backup, 1);
        asymbp__net_set_sample_window(net, lo, tr->comm ? gn : 0);
        if (st == ASYMBP_OK && n) st = asymbp_net_forward(net, tr->x, n, 1, &logits);
        asymbp__net_set_sample_window(net, 0, 0);
        if (st == ASYMBP_OK && n) st = asymbp_net_loss(net, tr->y, n, &loss);
        if (st != ASYMBP_OK) return st;
        bad = tr->comm && !isfinite(loss);   /* with ranks, they decide together, in the step */
        if (!isfinite(loss) && !tr->comm && tr->bn_floats) asymbp__net_bn_stat_copy(net, tr->bn_backup, 0);
        if (!isfinite(loss) && !tr->comm)
            return asymbp__error(ctx, ASYMBP_E_DIVERGED, "training diverged: the loss is %s at epoch %d, step %llu "
                                 "(batch %zu of %zu); the weights are those before this step",
                                 isnan(loss) ? "NaN" : "Inf", epoch, (unsigned long long)step, b + 1, tr->batches);
        for (i = 0; i < n; i++) correct += argmax_row(logits + i * k, k) == (size_t)tr->y[i];
        loss_sum += (double)loss * (double)n;
        st = n ? asymbp_net_backward(net) : ASYMBP_OK;
        if (st != ASYMBP_OK) return st;
        if (!tr->comm && !net_grads_finite(net) && tr->bn_floats) asymbp__net_bn_stat_copy(net, tr->bn_backup, 0);
        if (!tr->comm && !net_grads_finite(net))
            return asymbp__error(ctx, ASYMBP_E_DIVERGED, "training diverged: a gradient is NaN or Inf at epoch %d, step %llu; "
                                 "the weights are those before this step", epoch, (unsigned long long)step);
        if (tr->probe && step % tr->p.probe_every == 0) {
            for (size_t q = 0; q < tr->n_probe; q++) {
                asymbp_feedback_diag_t d0 = ASYMBP_FEEDBACK_DIAG_INIT;
                tr->probe[q] = d0;
            }
            st = asymbp_net_feedback_probe(net, tr->probe, tr->n_probe);
            if (st != ASYMBP_OK) return st;
            if (tr->p.on_probe(tr->p.user, step, tr->probe, tr->n_probe)) *stop = 1;
        }
        params_copy(net, tr->backup, 1);
        st = tr->comm ? asymbp__optimizer_step_dist(tr->opt, n, gn, bad) : asymbp_optimizer_step(tr->opt);
        if (st == ASYMBP_E_DIVERGED && tr->comm) {
            char msg[ASYMBP_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", asymbp_ctx_last_error(ctx));
            if (tr->bn_floats) asymbp__net_bn_stat_copy(net, tr->bn_backup, 0);
            return asymbp__error(ctx, ASYMBP_E_DIVERGED, "training diverged at epoch %d, step %llu (batch %zu of %zu): %s; the "
                                 "weights are those before this step", epoch, (unsigned long long)step, b + 1, tr->batches, msg);
        }
        if (st != ASYMBP_OK) return st;
        if (!net_weights_finite(net)) {
            params_copy(net, tr->backup, 0);
            if (tr->bn_floats) asymbp__net_bn_stat_copy(net, tr->bn_backup, 0);
            return asymbp__error(ctx, ASYMBP_E_DIVERGED, "training diverged: a weight became NaN or Inf at epoch %d, step %llu; "
                                 "the weights were restored to those before this step", epoch, (unsigned long long)step);
        }
        if (tr->p.progress && tr->p.progress(tr->p.user, epoch, b + 1, tr->batches, (double)loss)) *stop = 1;
        if (*stop && tr->ranks < 2) break;   /* with ranks, a stop takes effect when they agree on it */
    }
    if (tr->ranks > 1 && (st = dist_epoch_end(tr, &loss_sum, &correct, epoch)) != ASYMBP_OK) return st;
    m->step = asymbp_optimizer_step_count(tr->opt);
    m->train_loss = loss_sum / (double)tr->n;
    m->train_accuracy = (double)correct / (double)tr->n;
    st = evaluate_epoch(tr, m, epoch);
    if (st != ASYMBP_OK) return st;
    m->seconds = now_seconds() - t0;
    return ASYMBP_OK;
}

/* At the end of a run with re-estimated statistics, the net keeps those of its last epoch (or of
 * its current weights, for a diverged run), so a model saved now holds them. */
static asymbp_status_t keep_recal(asymbp_trainer_t *tr)
{
    if (!recal_mode(tr)) return ASYMBP_OK;
    if (tr->recal_epoch == tr->epochs_done && tr->epochs_done > 0) {
        asymbp__net_bn_stat_copy(tr->net, tr->bn_recal, 0);
        return ASYMBP_OK;
    }
    return recalibrate(tr, tr->epochs_done);
}

asymbp_status_t asymbp_trainer_run(asymbp_trainer_t *tr)
{
    if (!tr) return ASYMBP_E_INVALID;
    while (tr->epochs_done < tr->p.epochs) {
        int stop = 0;
        asymbp_epoch_metrics_t *m = &tr->metrics[tr->epochs_done];
        asymbp_status_t st = run_epoch(tr, m, &stop);
        if (st == ASYMBP_E_DIVERGED) {
            /* the message stays that of the divergence */
            char msg[ASYMBP_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", asymbp_ctx_last_error(tr->ctx));
            /* every rank stops at the same step: the model they keep is one again */
            if (tr->ranks > 1) (void)asymbp__dist_bn_average(tr->net, tr->comm, tr->bn_backup, tr->bn_floats);
            if (recal_mode(tr) && recalibrate(tr, tr->epochs_done + 1) == ASYMBP_OK) tr->recal_epoch = 0;
            return asymbp__error(tr->ctx, ASYMBP_E_DIVERGED, "%s", msg);
        }
        if (st != ASYMBP_OK) return st;
        tr->epochs_done++;
        asymbp__log(tr->ctx, ASYMBP_LOG_INFO, "epoch %d/%d: train loss %.5g, accuracy %.4f; test loss %.5g, accuracy %.4f; "
                    "lr %.3g; %.2fs", m->epoch, tr->p.epochs, m->train_loss, m->train_accuracy, m->test_loss,
                    m->test_accuracy, m->lr, m->seconds);
        /* The callback runs before the checkpoint that covers its epoch, so whatever it records
         * (a curves row) is saved before a resume could start after this epoch. */
        {
            int r = tr->p.on_epoch ? tr->p.on_epoch(tr->p.user, m) : 0;
            /* [0]: stop after this epoch; [1]: the callback could not record the epoch, so no
             * checkpoint may cover it.  One rank's stop (from either callback) stops them all. */
            int32_t flags[2] = { stop || r != 0, r < 0 };
            if (tr->ranks > 1) {
                st = asymbp__comm_sum_int(tr->ctx, tr->comm, flags, 2, ASYMBP_COMM_INT32, "agreeing on a stop");
                if (st != ASYMBP_OK) return st;
            }
            stop = flags[0] > 0;
            if (flags[1] > 0) break;
        }
        if (tr->p.checkpoint_every > 0 && (tr->epochs_done % tr->p.checkpoint_every == 0 || tr->epochs_done == tr->p.epochs)) {
            st = asymbp_trainer_save_checkpoint(tr, tr->checkpoint_path);
            if (st != ASYMBP_OK) return st;
        }
        if (stop) break;
    }
    return keep_recal(tr);
}

asymbp_status_t asymbp_trainer_set_scaler(asymbp_trainer_t *tr, const asymbp_scaler_t *scaler)
{
    int64_t shape[3];
    asymbp_status_t st;
    if (!tr) return ASYMBP_E_INVALID;
    if (scaler) {
        if ((st = asymbp_net_input_shape(tr->net, shape)) != ASYMBP_OK) return st;
        st = asymbp__scaler_fits(tr->ctx, scaler, "trainer_set_scaler", ASYMBP_E_SHAPE, shape[0], shape[1], shape[2]);
        if (st != ASYMBP_OK) return st;
    }
    tr->scaler = scaler;
    return ASYMBP_OK;
}

int asymbp_trainer_epochs_done(const asymbp_trainer_t *tr) { return tr ? tr->epochs_done : 0; }

const asymbp_epoch_metrics_t *asymbp_trainer_metrics(const asymbp_trainer_t *tr, int epoch)
{
    if (!tr || epoch < 1 || epoch > tr->epochs_done) return NULL;
    return &tr->metrics[epoch - 1];
}

/* ---- files ------------------------------------------------------------------------------- */

/* The model's chunks: the net, its feedback state, and the standardisation its inputs need
 * (when there is one; checked against the net's input shape first). */
static asymbp_status_t write_model_chunks(asymbp_net_t *net, const asymbp_scaler_t *scaler, asymbp__wbuf_t *w)
{
    asymbp_status_t st = ASYMBP_OK;
    if (scaler) {
        int64_t shape[3];
        st = asymbp_net_input_shape(net, shape);
        if (st == ASYMBP_OK)
            st = asymbp__scaler_fits(asymbp__net_ctx(net), scaler, "model_save", ASYMBP_E_SHAPE, shape[0], shape[1], shape[2]);
    }
    if (st == ASYMBP_OK) st = asymbp__net_write(net, w);
    if (st == ASYMBP_OK) st = asymbp__feedback_write(net, w);
    if (st == ASYMBP_OK && scaler) st = asymbp__scaler_write(scaler, w);
    return st;
}

asymbp_status_t asymbp_model_save_with_scaler(asymbp_net_t *net, const asymbp_scaler_t *scaler, const char *path)
{
    asymbp_ctx_t *ctx = asymbp__net_ctx(net);
    asymbp__wbuf_t w;
    asymbp_status_t st;
    if (!net) return ASYMBP_E_INVALID;
    if (!path) return asymbp__error(ctx, ASYMBP_E_INVALID, "model_save: path is NULL");
    asymbp__wbuf_init(&w, ctx);
    st = write_model_chunks(net, scaler, &w);
    if (st == ASYMBP_OK) st = asymbp__file_write_atomic(ctx, path, ASYMBP__FILE_MODEL, &w);
    if (st == ASYMBP_OK)
        asymbp__log(ctx, ASYMBP_LOG_INFO, "model saved to %s (%zu bytes of chunks%s)", path, w.len,
                    scaler ? ", with its standardisation" : "");
    asymbp__wbuf_free(&w);
    return st;
}

asymbp_status_t asymbp_model_save(asymbp_net_t *net, const char *path)
{
    return asymbp_model_save_with_scaler(net, NULL, path);
}

static asymbp_status_t model_from_area(asymbp_ctx_t *ctx, const asymbp__rbuf_t *area, const char *path, asymbp_net_t **out,
                                       asymbp_scaler_t **scaler)
{
    asymbp_net_t *net = NULL;
    asymbp_scaler_t *sc = NULL;
    asymbp_status_t st = asymbp__net_read(ctx, area, &net);
    if (st == ASYMBP_OK) st = asymbp__feedback_read(net, area);
    if (st == ASYMBP_OK && scaler) st = asymbp__scaler_read(ctx, area, &sc);
    if (st == ASYMBP_OK && sc) {
        int64_t shape[3];
        st = asymbp_net_input_shape(net, shape);
        if (st == ASYMBP_OK) st = asymbp__scaler_fits(ctx, sc, "model_load", ASYMBP_E_FORMAT, shape[0], shape[1], shape[2]);
    }
    if (st != ASYMBP_OK) {
        asymbp__error_prefix(ctx, "%s", path);
        asymbp_scaler_destroy(sc);
        asymbp_net_destroy(net);
        return st;
    }
    *out = net;
    if (scaler) *scaler = sc;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_model_load(asymbp_ctx_t *ctx, const char *path, asymbp_net_t **out)
{
    return asymbp_model_load_with_scaler(ctx, path, out, NULL);
}

asymbp_status_t asymbp_model_load_with_scaler(asymbp_ctx_t *ctx, const char *path, asymbp_net_t **out,
                                              asymbp_scaler_t **scaler)
{
    unsigned char *data = NULL;
    asymbp__rbuf_t area;
    asymbp_status_t st, prev_status;
    char prev_error[ASYMBP_ERRMSG_MAX];
    if (scaler) *scaler = NULL;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "model_load: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    if (!path) return asymbp__error(ctx, ASYMBP_E_INVALID, "model_load: path is NULL");
    /* tentative reads: a checkpoint holds a model too, so "not a model file" is not an error
     * yet; the failure that stands is logged once, at the end */
    memcpy(prev_error, ctx->last_error, sizeof prev_error);
    prev_status = ctx->last_status;
    ctx->log_mute++;
    st = asymbp__file_read(ctx, path, ASYMBP__FILE_MODEL, &data, &area);
    if (st == ASYMBP_E_FORMAT && data == NULL) {
        asymbp_status_t st2 = asymbp__file_read(ctx, path, ASYMBP__FILE_CHECKPOINT, &data, &area);
        if (st2 == ASYMBP_OK) {
            /* the tentative failure was no error: the context's last error is what it was */
            memcpy(ctx->last_error, prev_error, sizeof prev_error);
            ctx->last_status = prev_status;
            st = ASYMBP_OK;
        }
        else if (st2 != ASYMBP_E_FORMAT || strstr(asymbp_ctx_last_error(ctx), "expected a checkpoint") == NULL) st = st2;
        else st = asymbp__file_read(ctx, path, ASYMBP__FILE_MODEL, &data, &area); /* restore the first message */
    }
    ctx->log_mute--;
    if (st != ASYMBP_OK) {
        asymbp__error_relog(ctx);
        return st;
    }
    st = model_from_area(ctx, &area, path, out, scaler);
    asymbp__free(ctx, data);
    if (st == ASYMBP_OK)
        asymbp__log(ctx, ASYMBP_LOG_INFO, "model loaded from %s: %s%s", path, asymbp_net_spec(*out),
                    scaler && *scaler ? ", with its standardisation" : "");
    return st;
}

asymbp_status_t asymbp_trainer_save_checkpoint(asymbp_trainer_t *tr, const char *path)
{
    asymbp__wbuf_t w;
    asymbp_status_t st;
    size_t pos;
    int i;
    if (!tr) return ASYMBP_E_INVALID;
    if (!path) return asymbp__error(tr->ctx, ASYMBP_E_INVALID, "save_checkpoint: path is NULL");
    asymbp__wbuf_init(&w, tr->ctx);
    st = write_model_chunks(tr->net, tr->scaler, &w);
    if (st == ASYMBP_OK) {
        pos = asymbp__wbuf_chunk_begin(&w, ASYMBP__CHUNK_OPTIMIZER);
        st = asymbp__optimizer_write(tr->opt, &w);
        asymbp__wbuf_chunk_end(&w, pos);
    }
    if (st == ASYMBP_OK) {
        pos = asymbp__wbuf_chunk_begin(&w, TRAINER_CHUNK);
        asymbp__wbuf_u32(&w, TRAINER_FORMAT);
        asymbp__wbuf_u64(&w, tr->n);
        asymbp__wbuf_u64(&w, tr->p.batch);
        asymbp__wbuf_u32(&w, (uint32_t)tr->p.epochs);
        asymbp__wbuf_u32(&w, (uint32_t)tr->epochs_done);
        asymbp__wbuf_u64(&w, asymbp__net_step(tr->net));
        asymbp__wbuf_u64(&w, tr->rng.state);
        asymbp__wbuf_u64(&w, tr->rng.inc);
        asymbp__wbuf_u64(&w, tr->recal_seed);
        for (i = 0; i < (int)tr->n; i++) asymbp__wbuf_u64(&w, tr->order[i]);
        for (i = 0; i < tr->epochs_done; i++) {
            const asymbp_epoch_metrics_t *m = &tr->metrics[i];
            asymbp__wbuf_u64(&w, m->step);
            asymbp__wbuf_f64(&w, m->lr);
            asymbp__wbuf_f64(&w, m->train_loss);
            asymbp__wbuf_f64(&w, m->train_accuracy);
            asymbp__wbuf_f64(&w, m->test_loss);
            asymbp__wbuf_f64(&w, m->test_accuracy);
            asymbp__wbuf_f64(&w, m->seconds);
            asymbp__wbuf_f64(&w, m->val_loss);
            asymbp__wbuf_f64(&w, m->val_accuracy);
            asymbp__wbuf_f64(&w, m->test_loss_ema);
            asymbp__wbuf_f64(&w, m->test_accuracy_ema);
        }
        asymbp__wbuf_chunk_end(&w, pos);
    }
    if (st == ASYMBP_OK && tr->comm) {
        pos = asymbp__wbuf_chunk_begin(&w, DIST_CHUNK);
        asymbp__wbuf_u32(&w, 1u);
        asymbp__wbuf_u32(&w, (uint32_t)tr->ranks);
        asymbp__wbuf_u32(&w, (uint32_t)tr->mode);
        asymbp__wbuf_chunk_end(&w, pos);
    }
    /* with ranks only rank 0 writes; every rank gets its status */
    if (st == ASYMBP_OK && tr->rank == 0) st = asymbp__file_write_atomic(tr->ctx, path, ASYMBP__FILE_CHECKPOINT, &w);
    else if (st != ASYMBP_OK && w.failed) st = asymbp__error(tr->ctx, ASYMBP_E_NOMEM, "save_checkpoint: out of memory");
    if (tr->comm) {
        int32_t st0 = (int32_t)st;
        asymbp_status_t bs = asymbp__comm_bcast(tr->ctx, tr->comm, &st0, sizeof st0, 0, "save_checkpoint");
        if (bs != ASYMBP_OK) st = bs;
        else if (tr->rank != 0 && st0 != ASYMBP_OK)
            st = asymbp__error(tr->ctx, (asymbp_status_t)st0, "save_checkpoint: rank 0 could not write %s (%s; its message says "
                               "why)", path, asymbp_status_name((asymbp_status_t)st0));
    }
    if (st == ASYMBP_OK && tr->rank == 0)
        asymbp__log(tr->ctx, ASYMBP_LOG_INFO, "checkpoint after epoch %d (step %llu) saved to %s", tr->epochs_done,
                    (unsigned long long)asymbp__net_step(tr->net), path);
    asymbp__wbuf_free(&w);
    return st;
}

asymbp_status_t asymbp_trainer_load_checkpoint(asymbp_trainer_t *tr, const char *path)
{
    asymbp_ctx_t *ctx;
    unsigned char *data = NULL;
    asymbp__rbuf_t area, c;
    asymbp_status_t st;
    uint64_t n, batch, step, state, inc, recal_seed;
    uint32_t version, epochs, done;
    size_t i;
    if (!tr) return ASYMBP_E_INVALID;
    ctx = tr->ctx;
    /* with ranks, rank 0 reads the file and every rank restores the same bytes */
    st = tr->comm ? asymbp__dist_file_read(ctx, tr->comm, path, ASYMBP__FILE_CHECKPOINT, &data, &area)
                  : asymbp__file_read(ctx, path, ASYMBP__FILE_CHECKPOINT, &data, &area);
    if (st != ASYMBP_OK) return st;
    if (asymbp__rbuf_chunk(&area, TRAINER_CHUNK, &c) != 0) {
        st = asymbp__error(ctx, ASYMBP_E_FORMAT, "load_checkpoint: %s has no trainer state", path);
        goto done;
    }
    version = asymbp__rbuf_u32(&c);
    n = asymbp__rbuf_u64(&c);
    batch = asymbp__rbuf_u64(&c);
    epochs = asymbp__rbuf_u32(&c);
    done = asymbp__rbuf_u32(&c);
    step = asymbp__rbuf_u64(&c);
    state = asymbp__rbuf_u64(&c);
    inc = asymbp__rbuf_u64(&c);
    recal_seed = version >= 2u ? asymbp__rbuf_u64(&c) : tr->recal_seed;
    if (c.failed || (version != 1u && version != TRAINER_FORMAT)) {
        st = asymbp__error(ctx, ASYMBP_E_FORMAT, "load_checkpoint: %s: malformed trainer state", path);
        goto done;
    }
    if (n != tr->n || batch != tr->p.batch) {
        st = asymbp__error(ctx, ASYMBP_E_FORMAT,
                           "load_checkpoint: %s was written for %llu training samples in batches of %llu; this trainer has %zu and %zu",
                           path, (unsigned long long)n, (unsigned long long)batch, tr->n, tr->p.batch);
        goto done;
    }
    if ((int)done > tr->p.epochs) {
        st = asymbp__error(ctx, ASYMBP_E_FORMAT, "load_checkpoint: %s has %u epochs done, this run has only %d", path, done,
                           tr->p.epochs);
        goto done;
    }
    (void)epochs;
    /* Validate the rest before changing anything. */
    {
        asymbp__rbuf_t probe = c;
        asymbp__rbuf_get(&probe, NULL, (size_t)n * 8 + (size_t)done * (version == 1u ? METRICS_V1_BYTES : METRICS_V2_BYTES));
        if (probe.failed) {
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "load_checkpoint: %s: trainer state is truncated", path);
            goto done;
        }
    }
    st = asymbp__net_read_into(tr->net, &area);
    if (st == ASYMBP_OK) st = asymbp__feedback_read(tr->net, &area);
    if (st == ASYMBP_OK) {
        asymbp__rbuf_t oc;
        if (asymbp__rbuf_chunk(&area, ASYMBP__CHUNK_OPTIMIZER, &oc) != 0)
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "load_checkpoint: %s has no optimizer state", path);
        else
            st = asymbp__optimizer_read(tr->opt, &oc);
    }
    if (st != ASYMBP_OK) {
        asymbp__error_prefix(ctx, "load_checkpoint: %s", path);
        goto done;
    }
    for (i = 0; i < tr->n; i++) {
        uint64_t v = asymbp__rbuf_u64(&c);
        tr->order[i] = v < tr->n ? (size_t)v : 0;
    }
    for (i = 0; i < done; i++) {
        asymbp_epoch_metrics_t *m = &tr->metrics[i];
        m->struct_size = sizeof *m;
        m->epoch = (int)i + 1;
        m->step = asymbp__rbuf_u64(&c);
        m->lr = asymbp__rbuf_f64(&c);
        m->train_loss = asymbp__rbuf_f64(&c);
        m->train_accuracy = asymbp__rbuf_f64(&c);
        m->test_loss = asymbp__rbuf_f64(&c);
        m->test_accuracy = asymbp__rbuf_f64(&c);
        m->seconds = asymbp__rbuf_f64(&c);
        m->val_loss = m->val_accuracy = m->test_loss_ema = m->test_accuracy_ema = NAN;
        if (version >= 2u) {
            m->val_loss = asymbp__rbuf_f64(&c);
            m->val_accuracy = asymbp__rbuf_f64(&c);
            m->test_loss_ema = asymbp__rbuf_f64(&c);
            m->test_accuracy_ema = asymbp__rbuf_f64(&c);
        }
    }
    tr->recal_epoch = 0;
    tr->rng.state = state;
    tr->rng.inc = inc | 1u;
    tr->recal_seed = recal_seed;
    tr->epochs_done = (int)done;
    asymbp__net_set_step(tr->net, step);
    asymbp__log(ctx, ASYMBP_LOG_INFO, "checkpoint loaded from %s: %u epochs done, step %llu", path, done,
                (unsigned long long)step);
    if (asymbp__rbuf_chunk(&area, DIST_CHUNK, &c) == 0) {
        /* a checkpoint holds what every rank held at an epoch's end, so any number of ranks can
         * continue it; the split of the batches (BN statistics per rank, votes) changes with it */
        uint32_t dv = asymbp__rbuf_u32(&c), dr = asymbp__rbuf_u32(&c), dm = asymbp__rbuf_u32(&c);
        if (!c.failed && dv == 1u && (int)dr != tr->ranks)
            asymbp__log(ctx, ASYMBP_LOG_INFO, "%s was written by a run on %u ranks (%s); continuing on %d", path, dr,
                        asymbp_dist_mode_name((asymbp_dist_mode_t)dm), tr->ranks);
    }
done:
    asymbp__free(ctx, data);
    return st;
}
