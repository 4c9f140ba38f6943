/* A program built only with `pkg-config --cflags --libs asymbp-mpi` against an installation (make
 * check-mpi): it registers the MPI communicator as asymbp/mpi.h shows and trains data-parallel;
 * the ranks' final losses must agree.  It includes no MPI header and passes no MPI flag. */
#include <stdio.h>
#include <stdlib.h>
#include "asymbp/asymbp.h"
#include "asymbp/mpi.h"

#define OK(call) \
    do { \
        asymbp_status_t st_ = (call); \
        if (st_ != ASYMBP_OK) { \
            fprintf(stderr, "consumer: %s: %s: %s\n", #call, asymbp_status_name(st_), ctx ? asymbp_ctx_last_error(ctx) : ""); \
            asymbp_mpi_abort(1); \
            return 1; \
        } \
    } while (0)

int main(int argc, char **argv)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_mpi_t *m = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_dataset_t *ds = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    float x[64 * 4], loss[1];
    int32_t y[64];
    int rank, size, i;
    OK(asymbp_mpi_init(&argc, &argv));
    OK(asymbp_ctx_create(NULL, &ctx));
    OK(asymbp_mpi_create(NULL, &m));
    OK(asymbp_comm_register(ctx, asymbp_mpi_vtable(), m, asymbp_mpi_free, &comm));
    rank = asymbp_comm_rank(comm);
    size = asymbp_comm_size(comm);
    for (i = 0; i < 64; i++) {   /* the class is the sign of the first feature */
        y[i] = i % 2;
        x[i * 4] = y[i] ? 1.0f + 0.01f * (float)i : -1.0f - 0.01f * (float)i;
        x[i * 4 + 1] = x[i * 4 + 2] = x[i * 4 + 3] = 0.1f * (float)(i % 5);
    }
    OK(asymbp_dataset_create(ctx, 64, 4, 1, 1, 2, x, y, &ds));
    OK(asymbp_net_from_spec(ctx, "mlp:8", 4, 1, 1, 2, 0, &net));
    hp.lr = 0.02f;
    OK(asymbp_optimizer_create(net, "bm", &hp, &opt));
    tp.epochs = 5;
    tp.batch = 16;
    OK(asymbp_trainer_create(net, opt, ds, ds, &tp, &tr));
    OK(asymbp_trainer_set_comm(tr, comm, ASYMBP_DIST_VOTE));
    OK(asymbp_trainer_run(tr));
    loss[0] = (float)asymbp_trainer_metrics(tr, 5)->test_loss;
    {
        float sum[1] = { loss[0] };
        OK(asymbp_comm_allreduce_sum_f32(ctx, comm, sum, 1));
        if (sum[0] != loss[0] * (float)size) {
            fprintf(stderr, "consumer: rank %d: loss %g, the ranks' sum %g\n", rank, loss[0], sum[0]);
            return 1;
        }
    }
    if (rank == 0) printf("consumer: %d ranks agree, test accuracy %.3f\n", size, asymbp_trainer_metrics(tr, 5)->test_accuracy);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
    asymbp_ctx_destroy(ctx);
    return asymbp_mpi_finalize() == ASYMBP_OK ? 0 : 1;
}
