/* custom_feedback.c - a feedback policy of one's own, registered through the plugin vtable.
 *
 * The policy "sign-mirror" sends the error down through V = |A| o sign(W), where A is a slowly
 * learned copy of the forward weights: after every optimizer step A <- A + rate (W - A) (a
 * "weight mirror" in the spirit of Akrout et al. 2019, but keeping the sign of W as Liao et al.
 * do).  A starts from random Xavier-sized magnitudes, so at first V carries only the signs of W.
 * (The library's own weight mirror, learned from noise sent through the layer, is the built-in
 * "mirror"; Kolen-Pollack is "kp" and direct feedback alignment "dfa": docs/feedback.md.)
 *
 * It trains a small MLP with batch normalisation on a synthetic 2-D task (four noisy clusters in
 * an XOR arrangement plus a ring) and exits non-zero if the net fails to learn it.
 *
 * Build against an installed asymbp:
 *   cc -std=c99 custom_feedback.c $(pkg-config --cflags --libs asymbp) -lm -o custom_feedback */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "asymbp/asymbp.h"
#include "asymbp/net.h"
#include "asymbp/update.h"
#include "asymbp/feedback.h"

/* ---- the policy ------------------------------------------------------------------------------ */

typedef struct mirror_state {  /* plain data: saved with the model byte for byte */
    float rate;
} mirror_state_t;

static float sign_of(float w) { return (float)((w > 0.0f) - (w < 0.0f)); }

/* V = |A| o sign(W); A is buffer 0 (numel floats, allocated by the library). */
static asymbp_status_t mirror_refresh(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const float *A = a->buf;
    (void)user;
    (void)state;
    for (size_t i = 0; i < a->numel; i++) a->V[i] = fabsf(A[i]) * sign_of(a->W[i]);
    return ASYMBP_OK;
}

static asymbp_status_t mirror_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    mirror_state_t *st = (mirror_state_t *)state;
    float scale = (float)sqrt(2.0 / (double)(a->fan_in + a->fan_out));
    st->rate = 0.02f;
    if (strncmp(a->options, "rate=", 5) == 0) st->rate = (float)atof(a->options + 5);
    else if (a->options[0]) return ASYMBP_E_INVALID;
    if (!(st->rate > 0.0f && st->rate <= 1.0f)) return ASYMBP_E_INVALID;
    for (size_t i = 0; i < a->numel; i++) a->buf[i] = scale * fabsf(asymbp_rng_normal(a->rng));
    return mirror_refresh(user, state, a);
}

static asymbp_status_t mirror_after_update(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const mirror_state_t *st = (const mirror_state_t *)state;
    float *A = a->buf;
    (void)user;
    for (size_t i = 0; i < a->numel; i++) A[i] += st->rate * (a->W[i] - A[i]);
    return ASYMBP_OK;
}

static void mirror_free(void *user)
{
    printf("sign-mirror policy unregistered (%s)\n", (const char *)user);
}

/* ---- a synthetic task -------------------------------------------------------------------------- */

#define N_TRAIN 1024
#define N_TEST 512
#define CLASSES 3

static double unif(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* Class 0/1: XOR of the signs of the coordinates; class 2: points on a ring of radius 2.5. */
static void make_data(float *x, int32_t *y, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % CLASSES);
        double px, py;
        if (c == 2) {
            double t = 6.283185307179586 * unif(&s), r = 2.5 + 0.15 * (unif(&s) - 0.5);
            px = r * cos(t);
            py = r * sin(t);
        } else {
            double sx = unif(&s) < 0.5 ? -1.0 : 1.0, sy = (c == 0 ? 1.0 : -1.0) * sx;
            px = sx * (0.3 + 1.2 * unif(&s));
            py = sy * (0.3 + 1.2 * unif(&s));
        }
        x[2 * i] = (float)px;
        x[2 * i + 1] = (float)py;
        y[i] = c;
    }
}

#define CHECK(call)                                                                                         \
    do {                                                                                                    \
        asymbp_status_t st_ = (call);                                                                       \
        if (st_ != ASYMBP_OK) {                                                                             \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, asymbp_status_name(st_), asymbp_ctx_last_error(ctx)); \
            return EXIT_FAILURE;                                                                            \
        }                                                                                                   \
    } while (0)

int main(void)
{
    static float xtr[N_TRAIN * 2], xte[N_TEST * 2], xb[64 * 2];
    static int32_t ytr[N_TRAIN], yte[N_TEST], yb[64];
    static char label[] = "example";
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
    float loss = 0.0f, acc = 0.0f, acc0 = 0.0f;
    const size_t batch = 64;
    uint64_t shuffle = 5;

    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return EXIT_FAILURE;
    CHECK(asymbp_ctx_set_seed(ctx, 2016));

    vt.name = "sign-mirror";
    vt.state_size = sizeof(mirror_state_t);
    vt.buffer_count = 1;                 /* A, the learned copy of W */
    vt.init = mirror_init;
    vt.refresh = mirror_refresh;
    vt.after_update = mirror_after_update;
    CHECK(asymbp_feedback_register(ctx, &vt, label, mirror_free));

    make_data(xtr, ytr, N_TRAIN, 1);
    make_data(xte, yte, N_TEST, 2);
    CHECK(asymbp_net_from_spec(ctx, "mlp:32,32", 2, 1, 1, CLASSES, 1, &net));
    CHECK(asymbp_net_bind(net, batch));
    CHECK(asymbp_net_set_feedback(net, "sign-mirror:rate=0.02"));
    printf("net %s, feedback of the first layer: %s\n", asymbp_net_spec(net), asymbp_net_get_layer_feedback(net, 0));

    hp.lr = 0.05f;
    hp.momentum = 0.9f;
    CHECK(asymbp_optimizer_create(net, "sgd", &hp, &opt));
    CHECK(asymbp_net_evaluate(net, xte, yte, N_TEST, &loss, &acc0));
    printf("before training: test loss %.4f, accuracy %.3f\n", loss, acc0);

    for (int epoch = 0; epoch < 20; epoch++) {
        for (size_t b = 0; b + batch <= N_TRAIN; b += batch) {
            for (size_t i = 0; i < batch; i++) {   /* a random mini-batch */
                size_t j = (size_t)(unif(&shuffle) * N_TRAIN);
                xb[2 * i] = xtr[2 * j];
                xb[2 * i + 1] = xtr[2 * j + 1];
                yb[i] = ytr[j];
            }
            CHECK(asymbp_net_forward(net, xb, batch, 1, NULL));
            CHECK(asymbp_net_loss(net, yb, batch, &loss));
            CHECK(asymbp_net_backward(net));
            CHECK(asymbp_optimizer_step(opt));
        }
        if (epoch % 5 == 4) {
            asymbp_feedback_diag_t d = ASYMBP_FEEDBACK_DIAG_INIT;
            CHECK(asymbp_net_evaluate(net, xte, yte, N_TEST, &loss, &acc));
            CHECK(asymbp_net_feedback_diag(net, 1, &d));
            printf("epoch %2d: test loss %.4f, accuracy %.3f; layer %d: angle(V, W) %.1f deg, "
                   "||V||/||W|| %.3f, sign concordance %.3f\n",
                   epoch + 1, loss, acc, d.layer_index, d.angle_vw, d.norm_ratio, d.sign_concordance);
        }
    }

    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    if (!(acc >= 0.9f)) {
        fprintf(stderr, "custom_feedback: the net did not learn (accuracy %.3f)\n", acc);
        return EXIT_FAILURE;
    }
    printf("learned: accuracy %.3f (from %.3f)\n", acc, acc0);
    return EXIT_SUCCESS;
}
