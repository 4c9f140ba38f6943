/* libFuzzer target: model and checkpoint files, through the public loaders.  The input is a whole
 * file whose last 4 bytes are replaced by the CRC-32 of the rest, so mutations reach the chunk
 * readers instead of stopping at the checksum.  Properties checked (a violation aborts):
 *   - a refusal always comes with a message in the context;
 *   - loading allocates at most 64 x the file size + 1 MiB at peak (docs/reliability.md);
 *   - an accepted model runs a forward pass and saves, and saving what loading that save gives
 *     is byte-identical (the format round-trips);
 *   - a checkpoint is also loaded into a fixed trainer (mlp:8 over 4 features, 3 classes, sgd,
 *     8 samples in batches of 4, 3 epochs: the configuration of the seed corpus' checkpoints),
 *     which then trains to its end or reports a status.
 * The bytes go through a file under $TMPDIR (the loaders read paths).  Build as data_csv.c says;
 * `make fuzz` builds and runs every target. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "asymbp/asymbp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct track {
    size_t live, peak, limit;
} track_t;

static void *t_alloc(void *user, size_t size, size_t align)
{
    track_t *t = user;
    size_t *p;
    (void)align;
    if (size > t->limit) return NULL;   /* a request no input justifies: refused like an OOM */
    if (posix_memalign((void **)&p, 64, size + 64) != 0) return NULL;
    p[0] = size;
    t->live += size;
    if (t->live > t->peak) t->peak = t->live;
    return (unsigned char *)p + 64;
}

static void t_free(void *user, void *ptr)
{
    track_t *t = user;
    size_t *p = (size_t *)(void *)((unsigned char *)ptr - 64);
    t->live -= p[0];
    free(p);
}

static char path_in[256], path_a[256], path_b[256];

static void paths(void)
{
    const char *tmp = getenv("TMPDIR");
    if (path_in[0]) return;
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(path_in, sizeof path_in, "%s/asymbp-fuzz-model-%ld.in", tmp, (long)getpid());
    snprintf(path_a, sizeof path_a, "%s/asymbp-fuzz-model-%ld.a", tmp, (long)getpid());
    snprintf(path_b, sizeof path_b, "%s/asymbp-fuzz-model-%ld.b", tmp, (long)getpid());
}

static int write_file(const char *p, const uint8_t *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    if (n && fwrite(d, 1, n, f) != n) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static unsigned char *read_file(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    unsigned char *b;
    long len;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc(len > 0 ? (size_t)len : 1);
    if (b && len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = len > 0 ? (size_t)len : 0;
    return b;
}

static void expect_message(asymbp_ctx_t *ctx)
{
    if (asymbp_ctx_last_error(ctx)[0] == '\0') abort();
}

/* Save, load the save, save again: the two saves must be the same bytes. */
static void round_trip(asymbp_ctx_t *ctx, asymbp_net_t *net)
{
    asymbp_net_t *back = NULL;
    unsigned char *a, *b;
    size_t na = 0, nb = 0;
    if (asymbp_model_save(net, path_a) != ASYMBP_OK) {
        expect_message(ctx);
        return;
    }
    if (asymbp_model_load(ctx, path_a, &back) != ASYMBP_OK) {
        /* only running out of (capped) memory may stop a file the library wrote itself */
        if (asymbp_ctx_last_status(ctx) != ASYMBP_E_NOMEM) abort();
        return;
    }
    if (asymbp_model_save(back, path_b) != ASYMBP_OK) {
        asymbp_net_destroy(back);
        return;
    }
    asymbp_net_destroy(back);
    a = read_file(path_a, &na);
    b = read_file(path_b, &nb);
    if (!a || !b || na != nb || memcmp(a, b, na) != 0) abort();
    free(a);
    free(b);
}

static void use_model(asymbp_ctx_t *ctx, asymbp_net_t *net)
{
    int64_t in[3];
    size_t numel;
    float *x;
    if (asymbp_net_input_shape(net, in) != ASYMBP_OK) abort();
    numel = (size_t)(in[0] * in[1] * in[2]);
    if (numel <= (1u << 20) && asymbp_net_bind(net, 1) == ASYMBP_OK) {
        x = calloc(numel, sizeof *x);
        if (x) {
            const float *logits = NULL;
            if (asymbp_net_forward(net, x, 1, 0, &logits) != ASYMBP_OK || !logits) abort();
            free(x);
        }
    }
    round_trip(ctx, net);
}

static void use_checkpoint(asymbp_ctx_t *ctx)
{
    static const float feats[8 * 4] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1,
                                        1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1 };
    static const int32_t labels[8] = { 0, 1, 2, 0, 1, 2, 0, 1 };
    asymbp_dataset_t *ds = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_status_t st;
    tp.epochs = 3;
    tp.batch = 4;
    tp.evaluate = 0;
    if (asymbp_dataset_create(ctx, 8, 4, 1, 1, 3, feats, labels, &ds) != ASYMBP_OK ||
        asymbp_net_from_spec(ctx, "mlp:8", 4, 1, 1, 3, 0, &net) != ASYMBP_OK ||
        asymbp_optimizer_create(net, "sgd", NULL, &opt) != ASYMBP_OK ||
        asymbp_trainer_create(net, opt, ds, NULL, &tp, &tr) != ASYMBP_OK)
        goto done;
    st = asymbp_trainer_load_checkpoint(tr, path_in);
    if (st != ASYMBP_OK) {
        expect_message(ctx);
        goto done;
    }
    st = asymbp_trainer_run(tr);
    if (st != ASYMBP_OK && st != ASYMBP_E_DIVERGED && st != ASYMBP_E_NOMEM && st != ASYMBP_E_PLUGIN) abort();
done:
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    track_t t = { 0, 0, (size_t)256 << 20 };
    asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    uint8_t *buf;
    size_t base;
    if (size > (1u << 22)) return 0;
    paths();
    buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    if (size >= 20) {
        uLong crc = crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(size - 4));
        for (int i = 0; i < 4; i++) buf[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    if (write_file(path_in, buf, size) != 0) {
        free(buf);
        return 0;
    }
    free(buf);
    a.alloc = t_alloc;
    a.free = t_free;
    a.user = &t;
    if (asymbp_ctx_create(&a, &ctx) != ASYMBP_OK) return 0;
    base = t.live;
    t.peak = t.live;
    if (asymbp_model_load(ctx, path_in, &net) == ASYMBP_OK) {
        if (t.peak - base > 64 * size + ((size_t)1 << 20)) abort();
        use_model(ctx, net);
        asymbp_net_destroy(net);
    } else {
        if (net) abort();
        if (t.peak - base > 64 * size + ((size_t)1 << 20)) abort();
        expect_message(ctx);
    }
    use_checkpoint(ctx);
    asymbp_ctx_destroy(ctx);
    if (t.live != 0) abort();   /* everything the context allocated was given back */
    unlink(path_in);
    unlink(path_a);
    unlink(path_b);
    return 0;
}
