/* Data-parallel training: what the trainer does over the ranks of a communicator besides the
 * optimizer's collective step (update/optimizer.c): the split of a batch, the epoch-end averages
 * of the BN running statistics, the check that the ranks still agree, evaluation in shares, and
 * reading a checkpoint once for every rank.  docs/distributed.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/core_impl.h"
#include "dist/dist_impl.h"
#include "layers/net_hooks.h"
#include "train/train_impl.h"

void asymbp__dist_split(size_t n, int rank, int ranks, size_t *lo, size_t *cnt)
{
    size_t r = (size_t)rank, R = (size_t)ranks, base = n / R, extra = n % R;
    *lo = r * base + (r < extra ? r : extra);
    *cnt = base + (r < extra);
}

asymbp_status_t asymbp__dist_bn_average(asymbp_net_t *net, const asymbp_comm_t *comm, float *scratch, size_t bn_floats)
{
    asymbp_status_t st;
    float inv = 1.0f / (float)asymbp_comm_size(comm);
    size_t i;
    if (!bn_floats) return ASYMBP_OK;
    asymbp__net_bn_stat_copy(net, scratch, 1);
    st = asymbp__comm_sum_f32(asymbp__net_ctx(net), comm, scratch, bn_floats, "averaging the BN running statistics");
    if (st != ASYMBP_OK) return st;
    for (i = 0; i < bn_floats; i++) scratch[i] *= inv;
    asymbp__net_bn_stat_copy(net, scratch, 0);
    return ASYMBP_OK;
}

/* FNV-1a over 32-bit words: a cheap fingerprint, not a cryptographic one. */
static uint64_t fold(uint64_t h, const float *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &v[i], sizeof w);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    return h;
}

asymbp_status_t asymbp__dist_check_weights(asymbp_net_t *net, const asymbp_comm_t *comm, int epoch, float *scratch,
                                           size_t bn_floats)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;
    char what[96];
    for (i = 0; i < asymbp__net_param_count(net); i++) {
        const asymbp__param_t *p = asymbp__net_param_at(net, i);
        h = fold(h, p->value, p->numel);
    }
    if (bn_floats) {
        asymbp__net_bn_stat_copy(net, scratch, 1);
        h = fold(h, scratch, bn_floats);
    }
    if (epoch > 0) snprintf(what, sizeof what, "after epoch %d, comparing the ranks' weights", epoch);
    else snprintf(what, sizeof what, "at the start, comparing the ranks' weights (is the seed the same on every rank?)");
    return asymbp__comm_check_same(asymbp__net_ctx(net), comm, h, what, NULL);
}

asymbp_status_t asymbp__dist_evaluate(asymbp_net_t *net, const asymbp_comm_t *comm, const asymbp_dataset_t *ds, double *loss,
                                      double *acc)
{
    size_t n, lo, cnt, sample;
    float sums[2] = { 0.0f, 0.0f }, l = 0.0f, a = 0.0f;
    asymbp_status_t st = ASYMBP_OK;
    *loss = *acc = NAN;
    if (!ds || (n = asymbp_dataset_count(ds)) == 0) return ASYMBP_OK;
    asymbp__dist_split(n, asymbp_comm_rank(comm), asymbp_comm_size(comm), &lo, &cnt);
    sample = asymbp_dataset_sample_size(ds);
    if (cnt) st = asymbp_net_evaluate(net, asymbp_dataset_features(ds) + lo * sample, asymbp_dataset_labels(ds) + lo, cnt, &l, &a);
    /* a failure here is this rank's alone: the others are told through the sum (NaN) */
    if (st == ASYMBP_OK) {
        sums[0] = l * (float)cnt;
        sums[1] = (float)lrint((double)a * (double)cnt);   /* the count of correct answers */
    } else {
        sums[0] = sums[1] = NAN;
    }
    {
        asymbp_status_t cs = asymbp__comm_sum_f32(asymbp__net_ctx(net), comm, sums, 2, "evaluating in shares");
        if (st != ASYMBP_OK) return st;
        if (cs != ASYMBP_OK) return cs;
    }
    if (isnan(sums[1]))
        return asymbp__error(asymbp__net_ctx(net), ASYMBP_E_COMM, "evaluating in shares: the evaluation failed on another rank");
    *loss = (double)sums[0] / (double)n;
    *acc = (double)sums[1] / (double)n;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__dist_file_read(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, const char *path, uint32_t kind,
                                       unsigned char **data, asymbp__rbuf_t *r)
{
    /* head[0]: the file's size (0: rank 0 failed), head[1]: rank 0's status */
    int64_t head[2] = { 0, 0 };
    unsigned char *buf = NULL;
    asymbp_status_t st = ASYMBP_OK;
    *data = NULL;
    memset(r, 0, sizeof *r);
    if (asymbp_comm_rank(comm) == 0) {
        st = asymbp__file_read(ctx, path, kind, &buf, r);
        head[0] = st == ASYMBP_OK ? (int64_t)(r->len + 20) : 0;
        head[1] = (int64_t)st;
    }
    {
        asymbp_status_t bs = asymbp__comm_bcast(ctx, comm, head, sizeof head, 0, "reading a checkpoint");
        if (bs != ASYMBP_OK) {
            asymbp__free(ctx, buf);
            return bs;
        }
    }
    if (head[1] != ASYMBP_OK) {
        if (asymbp_comm_rank(comm) == 0) return st;
        return asymbp__error(ctx, (asymbp_status_t)head[1], "load: rank 0 could not read %s (%s; its message says why)", path,
                             asymbp_status_name((asymbp_status_t)head[1]));
    }
    if (asymbp_comm_rank(comm) != 0) {
        buf = asymbp__alloc(ctx, (size_t)head[0]);
        st = buf ? ASYMBP_OK : asymbp__error(ctx, ASYMBP_E_NOMEM, "load: out of memory for the %lld bytes of %s",
                                             (long long)head[0], path);
    }
    /* every rank learns whether every rank has its buffer before the bytes travel */
    st = asymbp__comm_all_ok(ctx, comm, st, "reading a checkpoint");
    if (st == ASYMBP_OK) st = asymbp__comm_bcast(ctx, comm, buf, (size_t)head[0], 0, "reading a checkpoint");
    if (st == ASYMBP_OK && asymbp_comm_rank(comm) != 0) st = asymbp__file_parse(ctx, path, kind, buf, (size_t)head[0], r);
    if (st != ASYMBP_OK) {
        asymbp__free(ctx, buf);
        memset(r, 0, sizeof *r);
        return st;
    }
    *data = buf;
    return ASYMBP_OK;
}
