/* asymbp-dist-bench - data-parallel training speed over MPI ranks (make bench-dist, MPI=1).
 *
 *   mpirun -np R asymbp-dist-bench --model paper-cnn|mlp [--bn] [--batch B] [--threads T]
 *                                  [--steps S] [--warmup W] [--mode exact|vote]
 *
 * Every rank trains its share of a global batch of B random samples (a host loop: forward, loss,
 * backward, asymbp_optimizer_step_samples) with uSF feedback and Batch Manhattan; with one rank no
 * communicator is set (the single-process baseline).  Rank 0 prints one JSON line: images/s over
 * the timed steps (median step time), the median compute (forward + backward) and step
 * (combine + update) times, the payload per step, and the time of one allreduce of that payload
 * alone.  A program, not library code: it prints and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mpi.h>
#include "asymbp/asymbp.h"
#include "asymbp/mpi.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define OK(call) \
    do { \
        asymbp_status_t st_ = (call); \
        if (st_ != ASYMBP_OK) { \
            fprintf(stderr, "dist-bench: %s: %s\n", #call, ctx ? asymbp_ctx_last_error(ctx) : asymbp_strerror(st_)); \
            asymbp_mpi_abort(1); \
            return 1; \
        } \
    } while (0)

int main(int argc, char **argv)
{
    const char *model = "paper-cnn", *mode_name = "exact";
    int bn = 0, threads = 1, steps = 30, warmup = 5, rank, ranks, i, s;
    size_t batch = 100, lo, n, sample, pool = 4;
    asymbp_ctx_t *ctx = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_mpi_t *m = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_dist_mode_t mode;
    asymbp_rng_t *rng = NULL;
    float *x, *probe;
    int32_t *y;
    double *t_fb, *t_step, t_reduce = 0.0;
    int64_t c, h, w;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bn")) bn = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = (size_t)atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--mode")) mode_name = argv[++i];
        else {
            fprintf(stderr, "usage: asymbp-dist-bench --model paper-cnn|mlp [--bn] [--batch B] [--threads T] [--steps S] "
                            "[--warmup W] [--mode exact|vote]\n");
            return 2;
        }
    }
    if (asymbp_dist_mode_parse(mode_name, &mode) != ASYMBP_OK || steps < 1 || batch < 1) return 2;
    OK(asymbp_mpi_init(&argc, &argv));
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    OK(asymbp_ctx_create(NULL, &ctx));
    OK(asymbp_ctx_set_seed(ctx, 1));
    OK(asymbp_ctx_set_threads(ctx, threads));
    if (!strcmp(model, "mlp")) {
        c = 1, h = 1, w = 784;
        OK(asymbp_net_from_spec(ctx, "mlp:512,512", c, h, w, 10, bn, &net));
    } else {
        c = 1, h = 28, w = 28;
        OK(asymbp_net_from_spec(ctx, "paper-cnn", c, h, w, 10, bn, &net));
    }
    OK(asymbp_net_set_feedback(net, "usf"));
    OK(asymbp_optimizer_create(net, "bm", NULL, &opt));
    if (ranks > 1) {
        OK(asymbp_mpi_create(NULL, &m));
        OK(asymbp_comm_register(ctx, asymbp_mpi_vtable(), m, asymbp_mpi_free, &comm));
        OK(asymbp_optimizer_set_comm(opt, comm, mode));
    }
    lo = batch * (size_t)rank / (size_t)ranks;
    n = batch * (size_t)(rank + 1) / (size_t)ranks - lo;
    OK(asymbp_net_bind(net, n));
    sample = (size_t)(c * h * w);
    x = malloc(pool * n * sample * sizeof *x);
    y = malloc(pool * n * sizeof *y);
    t_fb = malloc((size_t)steps * sizeof *t_fb);
    t_step = malloc((size_t)steps * sizeof *t_step);
    OK(asymbp_rng_create(ctx, 7, (uint64_t)rank, &rng));
    for (size_t k = 0; k < pool * n * sample; k++) x[k] = asymbp_rng_normal(rng);
    for (size_t k = 0; k < pool * n; k++) y[k] = (int32_t)asymbp_rng_below(rng, 10);
    for (s = -warmup; s < steps; s++) {
        size_t b = (size_t)(s + warmup) % pool;
        double t0 = now(), t1, t2;
        OK(asymbp_net_forward(net, x + b * n * sample, n, 1, NULL));
        OK(asymbp_net_loss(net, y + b * n, n, NULL));
        OK(asymbp_net_backward(net));
        t1 = now();
        OK(ranks > 1 ? asymbp_optimizer_step_samples(opt, n, batch) : asymbp_optimizer_step(opt));
        t2 = now();
        if (s >= 0) {
            t_fb[s] = t1 - t0;
            t_step[s] = t2 - t1;
        }
    }
    if (ranks > 1) {
        /* one allreduce of the step's payload alone, median of a few */
        size_t bytes = asymbp_optimizer_comm_bytes(opt);
        double tr[9];
        probe = calloc(bytes / sizeof(float) + 1, sizeof *probe);
        for (i = 0; i < 9; i++) {
            double t0;
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = now();
            if (mode == ASYMBP_DIST_EXACT) OK(asymbp_comm_allreduce_sum_f32(ctx, comm, probe, bytes / sizeof(float)));
            else OK(asymbp_comm_allreduce_sum_int(ctx, comm, probe, bytes, ASYMBP_COMM_INT8));
            tr[i] = now() - t0;
        }
        t_reduce = median(tr, 9);
        free(probe);
    }
    {
        double *total = malloc((size_t)steps * sizeof *total), med_total, med_fb, med_step;
        for (s = 0; s < steps; s++) total[s] = t_fb[s] + t_step[s];
        med_total = median(total, steps);
        med_fb = median(t_fb, steps);
        med_step = median(t_step, steps);
        if (rank == 0)
            printf("{\"model\":\"%s\",\"bn\":%s,\"ranks\":%d,\"threads\":%d,\"batch\":%zu,\"mode\":\"%s\",\"params\":%zu,"
                   "\"images_per_s\":%.1f,\"step_ms\":%.3f,\"compute_ms\":%.3f,\"update_ms\":%.3f,\"payload_bytes\":%zu,"
                   "\"allreduce_ms\":%.3f}\n",
                   model, bn ? "true" : "false", ranks, threads, batch, ranks > 1 ? mode_name : "none",
                   asymbp_net_weight_count(net), (double)batch / med_total, 1e3 * med_total, 1e3 * med_fb, 1e3 * med_step,
                   asymbp_optimizer_comm_bytes(opt), 1e3 * t_reduce);
        free(total);
    }
    free(x);
    free(y);
    free(t_fb);
    free(t_step);
    asymbp_rng_destroy(rng);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return asymbp_mpi_finalize() == ASYMBP_OK ? 0 : 1;
}
