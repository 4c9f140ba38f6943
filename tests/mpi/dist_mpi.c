/* The MPI communicator in a host program (make check-mpi runs it on 2 and 3 ranks): registered as
 * asymbp/mpi.h shows, it must (1) carry the collectives (sums, broadcast, barrier; the traffic
 * counters), (2) train exact mode to one process's weights (rank 0 also trains alone), (3) leave
 * every rank with the same weights and the same V for every feedback setting that draws at random
 * (compared across ranks with MPI_Allgather).  Exits 0 on success; every rank prints its failures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>
#include "asymbp/asymbp.h"
#include "asymbp/mpi.h"

static int rank_, ranks_, failures;

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "dist-mpi: rank %d: line %d: ", rank_, __LINE__); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            failures++; \
        } \
    } while (0)
#define OK(call) \
    do { \
        asymbp_status_t st_ = (call); \
        if (st_ != ASYMBP_OK) { \
            fprintf(stderr, "dist-mpi: rank %d: %s: %s: %s\n", rank_, #call, asymbp_status_name(st_), \
                    asymbp_ctx_last_error(ctx)); \
            asymbp_mpi_abort(1); \
        } \
    } while (0)

static asymbp_dataset_t *blobs(asymbp_ctx_t *ctx, size_t n, uint64_t seed)
{
    asymbp_rng_t *r = NULL;
    asymbp_dataset_t *ds = NULL;
    float *x = malloc(n * 6 * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    OK(asymbp_rng_create(ctx, seed, 3, &r));
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        for (int j = 0; j < 6; j++) x[i * 6 + j] = 0.7f * asymbp_rng_normal(r) + (j % 3 == y[i] ? 2.0f : 0.0f);
    }
    OK(asymbp_dataset_create(ctx, n, 6, 1, 1, 3, x, y, &ds));
    asymbp_rng_destroy(r);
    free(x);
    free(y);
    return ds;
}

typedef struct result {
    float *w, *v;
    size_t nw, nv;
    double acc;
    uint64_t steps, payload, traffic;
} result_t;

/* Train the blobs task; with_comm: data-parallel over MPI_COMM_WORLD. */
static void train(const char *spec, int bn, const char *fb, const char *rule, float lr, asymbp_dist_mode_t mode, int with_comm,
                  result_t *res)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_mpi_t *m = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_dataset_t *tr_ds, *te_ds;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_comm_stats_t stats = ASYMBP_COMM_STATS_INIT;
    size_t off = 0;
    OK(asymbp_ctx_create(NULL, &ctx));
    OK(asymbp_ctx_set_seed(ctx, 3));
    tr_ds = blobs(ctx, 300, 11);
    te_ds = blobs(ctx, 90, 12);
    OK(asymbp_net_from_spec(ctx, spec, 6, 1, 1, 3, bn, &net));
    OK(asymbp_net_set_feedback(net, fb));
    hp.lr = lr;
    OK(asymbp_optimizer_create(net, rule, &hp, &opt));
    tp.epochs = 3;
    tp.batch = 30;
    OK(asymbp_trainer_create(net, opt, tr_ds, te_ds, &tp, &tr));
    if (with_comm) {
        OK(asymbp_mpi_create(NULL, &m));
        OK(asymbp_comm_register(ctx, asymbp_mpi_vtable(), m, asymbp_mpi_free, &comm));
        CHECK(asymbp_comm_rank(comm) == rank_ && asymbp_comm_size(comm) == ranks_, "rank %d of %d", asymbp_comm_rank(comm),
              asymbp_comm_size(comm));
        OK(asymbp_trainer_set_comm(tr, comm, mode));
    }
    OK(asymbp_trainer_run(tr));
    res->acc = asymbp_trainer_metrics(tr, 3)->test_accuracy;
    res->steps = asymbp_optimizer_step_count(opt);
    res->payload = asymbp_optimizer_comm_bytes(opt);
    if (comm) {
        OK(asymbp_comm_get_stats(comm, &stats));
        res->traffic = stats.allreduce_bytes;
    }
    res->nw = asymbp_net_weight_count(net);
    res->w = malloc(res->nw * sizeof(float));
    for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *t = NULL;
        OK(asymbp_net_param_at(net, i, &t, NULL));
        memcpy(res->w + off, asymbp_tensor_data(t), asymbp_tensor_numel(t) * sizeof(float));
        off += asymbp_tensor_numel(t);
    }
    res->nv = 0;
    for (size_t i = 0; i < asymbp_net_layer_count(net); i++) {
        size_t c = 0;
        if (asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, NULL, 0, &c) == ASYMBP_OK) res->nv += c;
    }
    res->v = malloc((res->nv ? res->nv : 1) * sizeof(float));
    off = 0;
    for (size_t i = 0; i < asymbp_net_layer_count(net); i++) {
        size_t c = 0;
        if (asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, NULL, 0, &c) != ASYMBP_OK) continue;
        OK(asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, res->v + off, c, NULL));
        off += c;
    }
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(tr_ds);
    asymbp_dataset_destroy(te_ds);
    asymbp_ctx_destroy(ctx);   /* frees m, before MPI ends */
}

static void free_result(result_t *r)
{
    free(r->w);
    free(r->v);
}

/* Every rank's fingerprint of n floats equals rank 0's. */
static int same_everywhere(const float *v, size_t n)
{
    unsigned long long h = 1469598103934665603ULL, *all = malloc((size_t)ranks_ * sizeof *all);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned w;
        memcpy(&w, &v[i], sizeof w);
        h = (h ^ w) * 1099511628211ULL;
    }
    MPI_Allgather(&h, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    for (int r = 1; r < ranks_; r++) same = same && all[r] == all[0];
    free(all);
    return same;
}

int main(int argc, char **argv)
{
    asymbp_ctx_t *ctx = NULL;
    static const char *const fbs[] = { "brsf", "partial:0.5:redraw", "rndf", "usf" };
    if (asymbp_mpi_init(&argc, &argv) != ASYMBP_OK) return 2;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
    if (rank_ == 0) printf("dist-mpi: %d ranks, %s\n", ranks_, asymbp_mpi_library());

    /* (1) the collectives and their counters */
    {
        asymbp_mpi_t *m = NULL;
        asymbp_comm_t *comm = NULL;
        asymbp_comm_stats_t stats = ASYMBP_COMM_STATS_INIT;
        float f[3] = { 1.0f, (float)rank_, 0.5f };
        int8_t votes[4] = { 1, -1, (int8_t)(rank_ % 2 ? 1 : -1), 0 };
        char text[32] = "";
        OK(asymbp_ctx_create(NULL, &ctx));
        OK(asymbp_mpi_create(NULL, &m));
        OK(asymbp_comm_register(ctx, asymbp_mpi_vtable(), m, asymbp_mpi_free, &comm));
        CHECK(!strcmp(asymbp_comm_name(comm), "mpi"), "name %s", asymbp_comm_name(comm));
        OK(asymbp_comm_allreduce_sum_f32(ctx, comm, f, 3));
        CHECK(f[0] == (float)ranks_ && f[1] == (float)(ranks_ * (ranks_ - 1) / 2) && f[2] == 0.5f * (float)ranks_,
              "float sums %g %g %g", f[0], f[1], f[2]);
        OK(asymbp_comm_allreduce_sum_int(ctx, comm, votes, 4, ASYMBP_COMM_INT8));
        CHECK(votes[0] == ranks_ && votes[1] == -ranks_ && votes[3] == 0, "vote sums %d %d %d", votes[0], votes[1], votes[3]);
        if (rank_ == ranks_ - 1) snprintf(text, sizeof text, "from %d", rank_);
        OK(asymbp_comm_broadcast(ctx, comm, text, sizeof text, ranks_ - 1));
        {
            char expect[32];
            snprintf(expect, sizeof expect, "from %d", ranks_ - 1);
            CHECK(!strcmp(text, expect), "broadcast gave '%s'", text);
        }
        OK(asymbp_comm_barrier(ctx, comm));
        OK(asymbp_comm_get_stats(comm, &stats));
        CHECK(stats.operations == 4 && stats.allreduce_bytes == 3 * 4 + 4 && stats.broadcast_bytes == sizeof text,
              "counters %llu %llu %llu", (unsigned long long)stats.operations, (unsigned long long)stats.allreduce_bytes,
              (unsigned long long)stats.broadcast_bytes);
        asymbp_ctx_destroy(ctx);
        ctx = NULL;
    }

    /* (2) exact mode: one process's weights, up to the order of the float sums */
    {
        result_t dist, one;
        memset(&dist, 0, sizeof dist);
        memset(&one, 0, sizeof one);
        train("fc16,relu,dropout0.2,fc3", 0, "sym", "sgd", 0.05f, ASYMBP_DIST_EXACT, 1, &dist);
        CHECK(same_everywhere(dist.w, dist.nw), "exact: the ranks' weights differ");
        CHECK(dist.payload == 4 * (dist.nw + 1), "payload %llu", (unsigned long long)dist.payload);
        /* the step sums plus the few floats of the epoch ends */
        CHECK(dist.traffic >= dist.steps * dist.payload && dist.traffic < dist.steps * dist.payload + 4096,
              "traffic %llu for %llu steps", (unsigned long long)dist.traffic, (unsigned long long)dist.steps);
        if (rank_ == 0) {
            double d = 0.0;
            train("fc16,relu,dropout0.2,fc3", 0, "sym", "sgd", 0.05f, ASYMBP_DIST_EXACT, 0, &one);
            for (size_t i = 0; i < one.nw; i++) d = fmax(d, fabs((double)one.w[i] - (double)dist.w[i]));
            CHECK(d < 1e-4, "exact mode is %g away from one process", d);
            CHECK(fabs(one.acc - dist.acc) <= 0.02, "accuracy %g against one process's %g", dist.acc, one.acc);
            printf("dist-mpi: exact on %d ranks: max |w - w_1| = %.2g, accuracy %.4f (one process %.4f)\n", ranks_, d, dist.acc,
                   one.acc);
        }
        free_result(&dist);
        free_result(&one);
    }

    /* (3) vote mode with random feedback: every rank draws the same V */
    for (size_t k = 0; k < sizeof fbs / sizeof fbs[0]; k++) {
        result_t res;
        memset(&res, 0, sizeof res);
        train("mlp:16,8", 1, fbs[k], "bm", 0.005f, ASYMBP_DIST_VOTE, 1, &res);
        CHECK(res.nv > 0, "%s: no V", fbs[k]);
        CHECK(same_everywhere(res.v, res.nv), "%s: the ranks' V differ", fbs[k]);
        CHECK(same_everywhere(res.w, res.nw), "%s: the ranks' weights differ", fbs[k]);
        CHECK(res.payload == res.nw + 1, "%s: vote payload %llu", fbs[k], (unsigned long long)res.payload);
        /* half the feedback signs wrong (partial:0.5) learns less: the paper's second claim */
        CHECK(res.acc > (k == 1 ? 0.6 : 0.85), "%s: vote accuracy %g", fbs[k], res.acc);
        if (rank_ == 0) printf("dist-mpi: vote, %s: V and weights agree on %d ranks, accuracy %.4f\n", fbs[k], ranks_, res.acc);
        free_result(&res);
    }

    {
        int all = 0;
        MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (rank_ == 0) printf("dist-mpi: %s\n", all ? "FAILED" : "all checks passed");
        if (asymbp_mpi_finalize() != ASYMBP_OK) return 1;
        return all ? 1 : 0;
    }
}
