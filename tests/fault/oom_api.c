/* check-oom, library part: a short training run through the public API only (threads, BN, batch
 * random feedback, Batch Manhattan with a schedule, checkpoints, model save and load, evaluation,
 * the exact-backprop probe, a gradient check, a checkpoint resume), with the context's allocator
 * failing its k-th allocation, for every k until the run completes.  Each failure must end in
 * ASYMBP_E_NOMEM with a message, leave nothing allocated once everything is destroyed, and leave
 * no half-written file: a model or checkpoint on disk always loads.  Exit status 0 when every k
 * behaved, 1 otherwise (the first bad k is printed).
 *   usage: oom_api TMPDIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "asymbp/asymbp.h"

typedef struct fail_alloc {
    long calls, live, fail_at;
} fail_alloc_t;

static void *fa_alloc(void *user, size_t size, size_t align)
{
    fail_alloc_t *f = user;
    void *p = NULL;
    if (++f->calls == f->fail_at) return NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    f->live++;
    return p;
}

static void fa_free(void *user, void *ptr)
{
    fail_alloc_t *f = user;
    f->live--;
    free(ptr);
}

static char model_path[512], ckpt_path[512];
static const char *failed_step;

#define STEP(name, call)                       \
    do {                                       \
        failed_step = name;                    \
        st = (call);                           \
        if (st != ASYMBP_OK) goto done;        \
    } while (0)

/* One run; returns its status (ASYMBP_OK when it got through). */
static asymbp_status_t run(asymbp_ctx_t *ctx)
{
    enum { N = 48, D = 36 };
    float x[N * D];
    int32_t y[N];
    uint64_t milestones[1] = { 1 };
    asymbp_dataset_t *ds = NULL;
    asymbp_net_t *net = NULL, *back = NULL;
    asymbp_optimizer_t *opt = NULL, *opt2 = NULL;
    asymbp_trainer_t *tr = NULL, *tr2 = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_gradcheck_params_t gp = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_report_t rep = ASYMBP_GRADCHECK_REPORT_INIT;
    asymbp_feedback_diag_t diag[3] = { ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT, ASYMBP_FEEDBACK_DIAG_INIT };
    asymbp_status_t st;
    float loss, acc;
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        for (int j = 0; j < D; j++) x[i * D + j] = (float)((i * 31 + j * 17) % 11) / 11.0f + (j % 3 == y[i] ? 1.0f : 0.0f);
    }
    hp.lr = 0.001f;
    tp.epochs = 2;
    tp.batch = 16;
    tp.checkpoint_every = 1;
    tp.checkpoint_path = ckpt_path;
    gp.max_entries_per_param = 2;
    STEP("ctx_set_threads", asymbp_ctx_set_threads(ctx, 2));
    STEP("dataset_create", asymbp_dataset_create(ctx, N, 1, 6, 6, 3, x, y, &ds));
    STEP("net_from_spec", asymbp_net_from_spec(ctx, "conv3x3x4p1,relu,maxpool2s2,fc8,relu", 1, 6, 6, 3, 1, &net));
    STEP("net_set_feedback", asymbp_net_set_feedback(net, "brsf"));
    STEP("net_set_layer_feedback", asymbp_net_set_layer_feedback(net, -1, "sym"));
    STEP("optimizer_create", asymbp_optimizer_create(net, "bm", &hp, &opt));
    STEP("optimizer_set_schedule_step", asymbp_optimizer_set_schedule_step(opt, milestones, 1, 0.5f));
    STEP("trainer_create", asymbp_trainer_create(net, opt, ds, ds, &tp, &tr));
    STEP("trainer_run", asymbp_trainer_run(tr));
    STEP("net_forward", asymbp_net_forward(net, x, 16, 1, NULL));
    STEP("net_loss", asymbp_net_loss(net, y, 16, &loss));
    STEP("net_backward", asymbp_net_backward(net));
    STEP("feedback_probe", asymbp_net_feedback_probe(net, diag, 3));
    STEP("model_save", asymbp_model_save(net, model_path));
    STEP("model_load", asymbp_model_load(ctx, model_path, &back));
    STEP("net_bind", asymbp_net_bind(back, 8));
    STEP("net_evaluate", asymbp_net_evaluate(back, x, y, N, &loss, &acc));
    STEP("net_gradcheck", asymbp_net_gradcheck(back, x, y, 4, &gp, &rep));
    STEP("optimizer_create (resume)", asymbp_optimizer_create(back, "bm", &hp, &opt2));
    tp.epochs = 3;
    STEP("trainer_create (resume)", asymbp_trainer_create(back, opt2, ds, NULL, &tp, &tr2));
    STEP("trainer_load_checkpoint", asymbp_trainer_load_checkpoint(tr2, ckpt_path));
    STEP("trainer_run (resume)", asymbp_trainer_run(tr2));
done:
    asymbp_trainer_destroy(tr2);
    asymbp_optimizer_destroy(opt2);
    asymbp_net_destroy(back);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
    return st;
}

/* A model or checkpoint that exists must load, with an allocator that never fails. */
static int file_ok(const char *path)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    int ok;
    if (access(path, F_OK) != 0) return 1;
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 0;
    ok = asymbp_model_load(ctx, path, &net) == ASYMBP_OK;
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return ok;
}

int main(int argc, char **argv)
{
    long k, points = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: oom_api TMPDIR\n");
        return 2;
    }
    snprintf(model_path, sizeof model_path, "%s/oom-model.asymbp", argv[1]);
    snprintf(ckpt_path, sizeof ckpt_path, "%s/oom-ckpt.asymbp", argv[1]);
    for (k = 1;; k++) {
        fail_alloc_t f = { 0, 0, k };
        asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
        asymbp_ctx_t *ctx = NULL;
        asymbp_status_t st;
        char msg[600];
        a.alloc = fa_alloc;
        a.free = fa_free;
        a.user = &f;
        unlink(model_path);
        unlink(ckpt_path);
        st = asymbp_ctx_create(&a, &ctx);
        if (st != ASYMBP_OK) {
            if (st != ASYMBP_E_NOMEM || ctx || f.live != 0) {
                fprintf(stderr, "oom_api: k=%ld: ctx_create returned %s, %ld blocks live\n", k, asymbp_status_name(st), f.live);
                return 1;
            }
            points++;
            continue;
        }
        failed_step = "";
        st = run(ctx);
        snprintf(msg, sizeof msg, "%s", asymbp_ctx_last_error(ctx));
        asymbp_ctx_destroy(ctx);
        if (f.live != 0) {
            fprintf(stderr, "oom_api: k=%ld (%s): %ld blocks leaked\n", k, failed_step, f.live);
            return 1;
        }
        if (!file_ok(model_path) || !file_ok(ckpt_path)) {
            fprintf(stderr, "oom_api: k=%ld (%s): a half-written file was left\n", k, failed_step);
            return 1;
        }
        if (st == ASYMBP_OK) {
            if (f.calls >= k) {
                fprintf(stderr, "oom_api: k=%ld: allocation %ld failed and the run still reported success\n", k, k);
                return 1;
            }
            break;
        }
        if (st != ASYMBP_E_NOMEM || msg[0] == '\0') {
            fprintf(stderr, "oom_api: k=%ld (%s): %s '%s' instead of ASYMBP_E_NOMEM with a message\n", k, failed_step,
                    asymbp_status_name(st), msg);
            return 1;
        }
        points++;
    }
    unlink(model_path);
    unlink(ckpt_path);
    printf("oom_api: %ld allocation points failed in turn, each ended in ASYMBP_E_NOMEM with a message, no leak, no "
           "half-written file; the run without a failure made %ld allocations\n", points, k - 1);
    return 0;
}
