/* asymbp_ctx_set_log is real: every recorded error reaches the callback once at ERROR level with
 * the text asymbp_ctx_last_error gives; set-up events (log installed: version, BLAS, threads;
 * thread changes; models written and read) at INFO; DEBUG for smaller events; max_level
 * filters; a tentative internal read (a checkpoint given to asymbp_model_load) logs no error. */
#include <unistd.h>
#include "api_test.h"

#define MAXREC 256
typedef struct rec {
    int n[4];                 /* calls per level */
    int total;
    char last[4][512];        /* last message per level */
    char all_info[4096];      /* every INFO message, '\n'-separated */
} rec_t;

static void on_log(void *user, asymbp_log_level_t level, const char *msg)
{
    rec_t *r = user;
    if ((int)level < 0 || (int)level > 3) return;
    r->n[level]++;
    r->total++;
    snprintf(r->last[level], sizeof r->last[level], "%s", msg);
    if (level == ASYMBP_LOG_INFO && strlen(r->all_info) + strlen(msg) + 2 < sizeof r->all_info) {
        strcat(r->all_info, msg);
        strcat(r->all_info, "\n");
    }
    /* calls back into the library send nothing (no recursion): tried on the first message */
    if (r->total == 1 && asymbp_ctx_set_threads(api_ctx, 0) != ASYMBP_E_INVALID) r->total += 1000;
}

int main(void)
{
    rec_t r;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL, *back = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_dataset_t *ds = NULL;
    asymbp_update_rule_t *rule = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    float x[32 * 4];
    int32_t y[32];
    char model[4096];
    char ckpt[4200];
    int e0, fd;

    memset(&r, 0, sizeof r);
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    OK(asymbp_net_from_spec(ctx, "fc8,relu,fc3", 4, 1, 1, 3, 0, &net));

    /* installing the log reports what was set up before it: version, BLAS, threads */
    OK(asymbp_ctx_set_log(ctx, on_log, &r, ASYMBP_LOG_DEBUG));
    CHECK(r.n[ASYMBP_LOG_INFO] == 1);
    CHECK(strstr(r.last[ASYMBP_LOG_INFO], asymbp_version_string()) != NULL);
    CHECK(strstr(r.last[ASYMBP_LOG_INFO], asymbp_blas_name()) != NULL);
    CHECK(strstr(r.last[ASYMBP_LOG_INFO], "thread") != NULL);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 0 && r.total == 1);

    /* one ERROR per failed call, with the recorded text */
    EXPECT(asymbp_net_bind(net, 0), ASYMBP_E_INVALID);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 1);
    CHECK(strcmp(r.last[ASYMBP_LOG_ERROR], asymbp_ctx_last_error(ctx)) == 0);
    EXPECT(asymbp_update_rule_find(ctx, "no-such-rule", &rule), ASYMBP_E_NOTFOUND);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 2);
    CHECK(strstr(r.last[ASYMBP_LOG_ERROR], "no-such-rule") != NULL);
    EXPECT(asymbp_net_forward(net, x, 1, 1, NULL), ASYMBP_E_STATE); /* not bound */
    CHECK(r.n[ASYMBP_LOG_ERROR] == 3);
    CHECK(strcmp(r.last[ASYMBP_LOG_ERROR], asymbp_ctx_last_error(ctx)) == 0);
    EXPECT(asymbp_net_set_feedback(net, "brsf:mag=weird"), ASYMBP_E_FORMAT);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 4);
    EXPECT(asymbp_ctx_set_threads(ctx, 0), ASYMBP_E_INVALID);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 5);
    CHECK(strcmp(r.last[ASYMBP_LOG_ERROR], asymbp_ctx_last_error(ctx)) == 0);

    /* notable events: threads at INFO, smaller things at DEBUG */
    e0 = r.n[ASYMBP_LOG_INFO];
    OK(asymbp_ctx_set_threads(ctx, 2));
    CHECK(r.n[ASYMBP_LOG_INFO] == e0 + 1 && strstr(r.last[ASYMBP_LOG_INFO], "threads: 2") != NULL);
    OK(asymbp_ctx_set_threads(ctx, 1));
    CHECK(r.n[ASYMBP_LOG_INFO] == e0 + 2);
    e0 = r.n[ASYMBP_LOG_DEBUG];
    OK(asymbp_net_bind(net, 8));
    OK(asymbp_optimizer_create(net, "sgd", NULL, &opt));
    OK(asymbp_net_set_feedback(net, "usf"));
    CHECK(r.n[ASYMBP_LOG_DEBUG] >= e0 + 3);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 5);

    /* a training run: one INFO per epoch and for the checkpoint and the model */
    api_blobs(x, y, 32, 4, 3, 7);
    OK(asymbp_dataset_create(ctx, 32, 4, 1, 1, 3, x, y, &ds));
    fd = api_tmpfile(model, sizeof model, "log");
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", model);
    tp.epochs = 2;
    tp.batch = 8;
    tp.evaluate = 0;
    tp.checkpoint_every = 1;
    tp.checkpoint_path = ckpt;
    e0 = r.n[ASYMBP_LOG_INFO];
    OK(asymbp_trainer_create(net, opt, ds, NULL, &tp, &tr));
    OK(asymbp_trainer_run(tr));
    CHECK(r.n[ASYMBP_LOG_INFO] == e0 + 4); /* 2 epochs, 2 checkpoints */
    CHECK(strstr(r.all_info, "epoch 2/2") != NULL);
    OK(asymbp_model_save(net, model));
    CHECK(strstr(r.last[ASYMBP_LOG_INFO], "model saved") != NULL);
    /* reading a checkpoint as a model tries the model kind first: no error is logged for it,
     * and the context's last error stays what it was */
    asymbp_ctx_clear_error(ctx);
    OK(asymbp_model_load(ctx, ckpt, &back));
    CHECK(r.n[ASYMBP_LOG_ERROR] == 5);
    CHECK(asymbp_ctx_last_status(ctx) == ASYMBP_OK && asymbp_ctx_last_error(ctx)[0] == '\0');
    CHECK(strstr(r.last[ASYMBP_LOG_INFO], "model loaded") != NULL);
    asymbp_net_destroy(back);
    back = NULL;
    /* a file that is neither: exactly one error */
    EXPECT(asymbp_model_load(ctx, "/nonexistent/model.asymbp", &back), ASYMBP_E_IO);
    CHECK(r.n[ASYMBP_LOG_ERROR] == 6);
    CHECK(strcmp(r.last[ASYMBP_LOG_ERROR], asymbp_ctx_last_error(ctx)) == 0);

    /* max_level filters; an unknown level is refused */
    OK(asymbp_ctx_set_log(ctx, on_log, &r, ASYMBP_LOG_ERROR));
    e0 = r.total;
    OK(asymbp_ctx_set_threads(ctx, 2));
    OK(asymbp_ctx_set_threads(ctx, 1));
    CHECK(r.total == e0);
    EXPECT(asymbp_net_bind(net, 0), ASYMBP_E_INVALID);
    CHECK(r.total == e0 + 1 && r.n[ASYMBP_LOG_ERROR] == 7);
    EXPECT(asymbp_ctx_set_log(ctx, on_log, &r, (asymbp_log_level_t)9), ASYMBP_E_INVALID);
    /* off */
    OK(asymbp_ctx_set_log(ctx, NULL, NULL, ASYMBP_LOG_DEBUG));
    e0 = r.total;
    EXPECT(asymbp_net_bind(net, 0), ASYMBP_E_INVALID);
    OK(asymbp_ctx_set_threads(ctx, 2));
    CHECK(r.total == e0);

    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_dataset_destroy(ds);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    remove(model);
    remove(ckpt);
    return api_done("log");
}
