/* libFuzzer target: the three text grammars a user types - the network spec, the feedback
 * setting and the update rule - followed by one training step on the net they build.
 * Input: byte 0 picks flags (bit 0: --bn; bits 1-3: the input shape from a small table; bit 4:
 * set the feedback of the classifier alone to the second setting), the rest is split at '\n'
 * into spec, feedback setting and update rule (missing parts: "fc4", "sym", "sgd").
 * Properties checked (a violation aborts): every refusal carries a message; an accepted spec
 * prints a normal form that builds the same net again; the accepted combination binds, runs
 * forward, loss, backward and one optimizer step with a status (never a crash), and nothing is
 * left allocated.  Allocations above 16 MiB are refused like an out-of-memory, so a spec asking
 * for huge layers exercises the NOMEM paths.  Build as data_csv.c says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "asymbp/asymbp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct track {
    size_t live, limit;
} track_t;

static void *t_alloc(void *user, size_t size, size_t align)
{
    track_t *t = user;
    size_t *p;
    (void)align;
    if (size > t->limit) return NULL;
    if (posix_memalign((void **)&p, 64, size + 64) != 0) return NULL;
    p[0] = size;
    t->live += size;
    return (unsigned char *)p + 64;
}

static void t_free(void *user, void *ptr)
{
    track_t *t = user;
    size_t *p = (size_t *)(void *)((unsigned char *)ptr - 64);
    t->live -= p[0];
    free(p);
}

static void expect_message(asymbp_ctx_t *ctx)
{
    if (asymbp_ctx_last_error(ctx)[0] == '\0') abort();
}

/* Copies the next '\n'-terminated part of [*p, end) into dst (cap bytes); "" when none. */
static void next_part(const uint8_t **p, const uint8_t *end, char *dst, size_t cap, const char *def)
{
    size_t n = 0;
    if (*p >= end) {
        strcpy(dst, def);
        return;
    }
    while (*p < end && **p != '\n') {
        if (n + 1 < cap) dst[n++] = (char)**p;
        (*p)++;
    }
    if (*p < end) (*p)++;
    dst[n] = '\0';
}

static void one_step(asymbp_ctx_t *ctx, asymbp_net_t *net, const char *rule, size_t in_size)
{
    static float x[2 * 3 * 20 * 20];
    int32_t y[2] = { 0, 1 };
    asymbp_optimizer_t *opt = NULL;
    asymbp_status_t st;
    float loss;
    for (size_t i = 0; i < 2 * in_size; i++) x[i] = (float)((int)(i * 7919 % 13) - 6) / 6.0f;
    st = asymbp_optimizer_create(net, rule, NULL, &opt);
    if (st != ASYMBP_OK) {
        if (opt) abort();
        expect_message(ctx);
        return;
    }
    st = asymbp_net_bind(net, 2);
    if (st == ASYMBP_OK) st = asymbp_net_forward(net, x, 2, 1, NULL);
    if (st == ASYMBP_OK) st = asymbp_net_loss(net, y, 2, &loss);
    if (st == ASYMBP_OK) st = asymbp_net_backward(net);
    if (st == ASYMBP_OK) st = asymbp_optimizer_step(opt);
    if (st == ASYMBP_OK) st = asymbp_net_forward(net, x, 2, 0, NULL);
    if (st != ASYMBP_OK) expect_message(ctx);
    asymbp_optimizer_destroy(opt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t shapes[8][3] = { { 4, 1, 1 }, { 1, 8, 8 }, { 3, 16, 16 }, { 2, 5, 7 },
                                          { 1, 20, 20 }, { 16, 1, 1 }, { 1, 1, 9 }, { 2, 3, 3 } };
    track_t t = { 0, (size_t)16 << 20 };
    asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL, *again = NULL;
    const uint8_t *p = data + (size ? 1 : 0), *end = data + size;
    char spec[512], fb[256], rule[128];
    const int64_t *shp;
    int flags = size ? data[0] : 0;
    asymbp_status_t st;
    next_part(&p, end, spec, sizeof spec, "fc4");
    next_part(&p, end, fb, sizeof fb, "sym");
    next_part(&p, end, rule, sizeof rule, "sgd");
    shp = shapes[(flags >> 1) & 7];
    a.alloc = t_alloc;
    a.free = t_free;
    a.user = &t;
    if (asymbp_ctx_create(&a, &ctx) != ASYMBP_OK) return 0;
    if (asymbp_ctx_set_seed(ctx, 3) != ASYMBP_OK) abort();
    st = asymbp_net_from_spec(ctx, spec, shp[0], shp[1], shp[2], 3, flags & 1, &net);
    if (st != ASYMBP_OK) {
        if (net) abort();
        expect_message(ctx);
        goto done;
    }
    /* the normal form builds the same architecture again */
    if (asymbp_net_from_spec(ctx, asymbp_net_spec(net), shp[0], shp[1], shp[2], 3, 0, &again) == ASYMBP_OK) {
        if (strcmp(asymbp_net_spec(again), asymbp_net_spec(net)) != 0 ||
            asymbp_net_weight_count(again) != asymbp_net_weight_count(net))
            abort();
        asymbp_net_destroy(again);
    } else if (asymbp_ctx_last_status(ctx) != ASYMBP_E_NOMEM) {
        abort();
    }
    st = (flags & 16) ? asymbp_net_set_layer_feedback(net, -1, fb) : asymbp_net_set_feedback(net, fb);
    if (st != ASYMBP_OK) {
        expect_message(ctx);
        if (asymbp_feedback_check_setting(ctx, fb) == ASYMBP_OK && st != ASYMBP_E_NOMEM && st != ASYMBP_E_STATE &&
            st != ASYMBP_E_INVALID)
            abort();   /* a setting the checker accepts must not be refused by the assignment */
    }
    one_step(ctx, net, rule, (size_t)(shp[0] * shp[1] * shp[2]));
done:
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    if (t.live != 0) abort();
    return 0;
}
