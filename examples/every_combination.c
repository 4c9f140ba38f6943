/* every_combination.c - every feedback setting x update rule x BN on one small real data set
 * (wine: 13 chemical features, 3 cultivars), side by side.  Prints a table of test accuracy;
 * exits non-zero if any combination fails to run (learning poorly is a result, not an error).
 *
 *   cc -std=c99 every_combination.c $(pkg-config --cflags --libs asymbp) -o every_combination
 *   ./every_combination [DATA_ROOT] */
#include <stdio.h>
#include "asymbp/asymbp.h"

int main(int argc, char **argv)
{
    static const char *feedback[] = {"sym", "usf", "brsf", "frsf", "partial:0.75", "partial:0.5", "rndf", "signed-init",
                                     "dfa", "kp", "mirror"};
    static const char *update[] = {"sgd", "bm", "bm:b", "bm:c", "bm:nsc"};
    const char *roots[1] = {argc > 1 ? argv[1] : "data"};
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    int rc = 0;
    size_t f, u;
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    if (asymbp_dataset_load_named(ctx, "wine", roots, 1, &train, &test) != ASYMBP_OK ||
        asymbp_dataset_standardize(train, test, ASYMBP_SCALER_PER_CHANNEL, NULL) != ASYMBP_OK) {
        fprintf(stderr, "every_combination: %s\n", asymbp_ctx_last_error(ctx));
        asymbp_ctx_destroy(ctx);
        return 1;
    }
    printf("%-13s", "feedback");
    for (u = 0; u < sizeof update / sizeof *update; u++) printf(" %7s %7s", update[u], "+BN");
    printf("\n");
    for (f = 0; f < sizeof feedback / sizeof *feedback; f++) {
        printf("%-13s", feedback[f]);
        for (u = 0; u < sizeof update / sizeof *update; u++) {
            for (int bn = 0; bn <= 1; bn++) {
                asymbp_net_t *net = NULL;
                asymbp_optimizer_t *opt = NULL;
                asymbp_trainer_t *tr = NULL;
                asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
                asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
                asymbp_status_t st;
                hp.lr = update[u][0] == 'b' ? 0.002f : 0.02f;
                tp.epochs = 30;
                tp.batch = 16;
                st = asymbp_ctx_set_seed(ctx, 1);
                if (st == ASYMBP_OK) st = asymbp_net_from_spec(ctx, "mlp:32,32", 13, 1, 1, 3, bn, &net);
                if (st == ASYMBP_OK) st = asymbp_net_set_feedback(net, feedback[f]);
                if (st == ASYMBP_OK) st = asymbp_optimizer_create(net, update[u], &hp, &opt);
                if (st == ASYMBP_OK) st = asymbp_trainer_create(net, opt, train, test, &tp, &tr);
                if (st == ASYMBP_OK) st = asymbp_trainer_run(tr);
                if (st == ASYMBP_OK)
                    printf(" %7.3f", asymbp_trainer_metrics(tr, tp.epochs)->test_accuracy);
                else if (st == ASYMBP_E_DIVERGED)
                    printf(" %7s", "diverged");
                else {
                    printf(" %7s", "ERROR");
                    fprintf(stderr, "\n%s / %s / bn=%d: %s\n", feedback[f], update[u], bn, asymbp_ctx_last_error(ctx));
                    rc = 1;
                }
                asymbp_trainer_destroy(tr);
                asymbp_optimizer_destroy(opt);
                asymbp_net_destroy(net);
            }
        }
        printf("\n");
    }
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return rc;
}
