/* custom_update.c - a user update rule (Adam) plugged into asymbp through the update-rule vtable,
 * training a small MLP on a synthetic task (three interleaved spirals).
 *
 * Build against an installed asymbp:
 *   cc -std=c99 custom_update.c $(pkg-config --cflags --libs asymbp) -lm -o custom_update
 * Exits 0 when the net learned the task (accuracy >= 90%), 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <asymbp/asymbp.h>

/* ---- the rule ------------------------------------------------------------------------------- */

typedef struct adam {
    float beta1, beta2, eps;
} adam_t;

/* Per-element state: the first and second moment, 2 floats (vt.state_size = 2 * sizeof(float)).
 * The library zero-fills it, keeps it per parameter tensor, and saves it in checkpoints. */
static asymbp_status_t adam_step(void *user, void *state, const asymbp_update_args_t *a)
{
    const adam_t *c = (const adam_t *)user;
    float *m = (float *)state, *v = m + a->n;
    /* args->step counts from 1, as Adam's bias correction wants */
    const float bc1 = 1.0f - powf(c->beta1, (float)a->step);
    const float bc2 = 1.0f - powf(c->beta2, (float)a->step);
    size_t i;
    for (i = 0; i < a->n; i++) {
        /* weight_decay is already 0 for biases and BN parameters unless asked otherwise */
        float g = a->g[i] + a->weight_decay * a->w[i];
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g * g;
        a->w[i] -= a->lr * (m[i] / bc1) / (sqrtf(v[i] / bc2) + c->eps);
    }
    return ASYMBP_OK;
}

static void adam_free(void *user)
{
    free(user);
}

/* ---- the task: 3 spirals of 200 points each in the plane ------------------------------------ */

enum { CLASSES = 3, PER_CLASS = 200, NPTS = CLASSES * PER_CLASS, BATCH = 32, EPOCHS = 150 };

static int make_spirals(asymbp_ctx_t *ctx, float *x, int32_t *y)
{
    asymbp_rng_t *rng = NULL;
    int c, i;
    if (asymbp_rng_create(ctx, 7, 0, &rng) != ASYMBP_OK) return -1;
    for (c = 0; c < CLASSES; c++) {
        for (i = 0; i < PER_CLASS; i++) {
            int k = c * PER_CLASS + i;
            float r = (float)i / PER_CLASS;
            float t = (float)c * 4.0f + 4.0f * r + 0.2f * asymbp_rng_normal(rng);
            x[2 * k] = r * sinf(t);
            x[2 * k + 1] = r * cosf(t);
            y[k] = c;
        }
    }
    asymbp_rng_destroy(rng);
    return 0;
}

#define TRY(call) do { asymbp_status_t st_ = (call); if (st_ != ASYMBP_OK) { \
    fprintf(stderr, "%s failed: %s (%s)\n", #call, asymbp_status_name(st_), asymbp_ctx_last_error(ctx)); \
    goto fail; } } while (0)

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_rng_t *rng = NULL;
    asymbp_update_rule_vtable_t vt = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    static float x[2 * NPTS], xb[2 * BATCH];
    static int32_t y[NPTS], yb[BATCH];
    int order[NPTS];
    float loss = 0.0f, acc = 0.0f;
    const uint64_t milestones[1] = {100};
    adam_t *cfg;
    int e, i, b, ok = 0;

    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 1;
    TRY(asymbp_ctx_set_seed(ctx, 42));

    /* 1. register the rule: the vtable is copied, cfg is ours until the context ends */
    cfg = (adam_t *)malloc(sizeof *cfg);
    if (!cfg) goto fail;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-8f;
    vt.name = "adam";
    vt.state_size = 2 * sizeof(float);
    vt.step = adam_step;
    if (asymbp_update_rule_register(ctx, &vt, cfg, adam_free, NULL) != ASYMBP_OK) {
        fprintf(stderr, "register: %s\n", asymbp_ctx_last_error(ctx));
        free(cfg); /* a failed registration leaves user with us */
        goto fail;
    }

    /* 2. a net and an optimizer using the rule by name, with a step-decay schedule */
    if (make_spirals(ctx, x, y) != 0) goto fail;
    TRY(asymbp_net_from_spec(ctx, "mlp:64,64", 2, 1, 1, CLASSES, 0, &net));
    TRY(asymbp_net_bind(net, BATCH));
    hp.lr = 0.01f;
    hp.weight_decay = 1e-4f;
    TRY(asymbp_optimizer_create(net, "adam", &hp, &opt));
    TRY(asymbp_optimizer_set_schedule_step(opt, milestones, 1, 0.1f));
    TRY(asymbp_rng_create(ctx, 11, 1, &rng));

    /* 3. plain mini-batch training */
    for (i = 0; i < NPTS; i++) order[i] = i;
    for (e = 0; e < EPOCHS; e++) {
        TRY(asymbp_optimizer_set_epoch(opt, (uint64_t)e));
        for (i = NPTS - 1; i > 0; i--) {
            int j = (int)asymbp_rng_below(rng, (uint32_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (b = 0; b + BATCH <= NPTS; b += BATCH) {
            for (i = 0; i < BATCH; i++) {
                xb[2 * i] = x[2 * order[b + i]];
                xb[2 * i + 1] = x[2 * order[b + i] + 1];
                yb[i] = y[order[b + i]];
            }
            TRY(asymbp_net_forward(net, xb, BATCH, 1, NULL));
            TRY(asymbp_net_loss(net, yb, BATCH, &loss));
            TRY(asymbp_net_backward(net));
            TRY(asymbp_optimizer_step(opt));
        }
        if (e % 50 == 0 || e == EPOCHS - 1) {
            TRY(asymbp_net_evaluate(net, x, y, NPTS, &loss, &acc));
            printf("epoch %3d  lr %.4g  loss %.4f  accuracy %.3f\n", e, (double)asymbp_optimizer_get_lr(opt),
                   (double)loss, (double)acc);
        }
    }
    printf("adam (user rule, %llu steps): training accuracy %.3f on %d spiral points\n",
           (unsigned long long)asymbp_optimizer_step_count(opt), (double)acc, NPTS);
    ok = acc >= 0.9f;
    if (!ok) fprintf(stderr, "custom_update: the net did not learn the task (accuracy %.3f < 0.9)\n", (double)acc);
fail:
    asymbp_rng_destroy(rng);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx); /* runs adam_free once */
    return ok ? 0 : 1;
}
