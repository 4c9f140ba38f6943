/* CIFAR-10/100 binary batches: records of label byte(s) followed by 3 x 32 x 32 pixel bytes. */
#include <string.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

#define CIFAR_PIXELS 3072u

static size_t label_bytes(asymbp_cifar_kind_t kind) { return kind == ASYMBP_CIFAR10 ? 1u : 2u; }
static size_t kind_classes(asymbp_cifar_kind_t kind)
{
    return kind == ASYMBP_CIFAR10 ? 10u : kind == ASYMBP_CIFAR100_FINE ? 100u : 20u;
}

asymbp_status_t asymbp__cifar_parse(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                    asymbp_cifar_kind_t kind, size_t *records, asymbp_dataset_t *ds, size_t first)
{
    size_t lb = label_bytes(kind), rec = lb + CIFAR_PIXELS, k = kind_classes(kind), n, i, j;
    size_t which = kind == ASYMBP_CIFAR100_FINE ? 1u : 0u;
    float lut[256];
    *records = 0;
    if (len == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: empty file (expected CIFAR records)", name);
    if (len % rec != 0)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: size %zu is not a multiple of the %s record size %zu (record %zu "
                             "is incomplete%s)", name, len, kind == ASYMBP_CIFAR10 ? "CIFAR-10" : "CIFAR-100", rec, len / rec,
                             len % (lb == 1 ? lb + 1 + CIFAR_PIXELS : CIFAR_PIXELS + 1) == 0 ? "; the size fits the other CIFAR "
                             "kind" : "");
    n = len / rec;
    for (i = 0; i < n; i++) {
        unsigned l = b[i * rec + which];
        if (l >= k)
            return asymbp__error(ctx, ASYMBP_E_RANGE, "%s: record %zu (byte %zu) has label %u, beyond the %zu classes of %s",
                                 name, i, i * rec + which, l, k,
                                 kind == ASYMBP_CIFAR10 ? "CIFAR-10" : kind == ASYMBP_CIFAR100_FINE ? "CIFAR-100 (fine)"
                                                                                                   : "CIFAR-100 (coarse)");
    }
    *records = n;
    if (!ds) return ASYMBP_OK;
    for (i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
    for (i = 0; i < n; i++) {
        const unsigned char *px = b + i * rec + lb;
        float *x = ds->x + (first + i) * CIFAR_PIXELS;
        for (j = 0; j < CIFAR_PIXELS; j++) x[j] = lut[px[j]];
        ds->y[first + i] = (int32_t)b[i * rec + which];
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_load_cifar(asymbp_ctx_t *ctx, const char *const *paths, size_t n_paths,
                                          asymbp_cifar_kind_t kind, asymbp_dataset_t **out)
{
    unsigned char **bufs = NULL;
    size_t *lens = NULL, *counts = NULL, total = 0, i, at = 0;
    asymbp_dataset_t *ds = NULL;
    asymbp_status_t st = ASYMBP_OK;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_cifar: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, paths, "paths");
    if (n_paths == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_cifar: no files given");
    if (kind != ASYMBP_CIFAR10 && kind != ASYMBP_CIFAR100_FINE && kind != ASYMBP_CIFAR100_COARSE)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_cifar: unknown kind %d", (int)kind);
    for (i = 0; i < n_paths; i++)
        if (!paths[i]) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_cifar: paths[%zu] is NULL", i);
    bufs = asymbp__calloc(ctx, n_paths, sizeof *bufs);
    lens = asymbp__calloc(ctx, n_paths, sizeof *lens);
    counts = asymbp__calloc(ctx, n_paths, sizeof *counts);
    if (!bufs || !lens || !counts) {
        st = asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset_load_cifar: out of memory");
        goto done;
    }
    /* Keep the raw bytes of every file (1 byte per pixel) and convert once the total is known. */
    for (i = 0; i < n_paths && st == ASYMBP_OK; i++) {
        st = asymbp__data_read_file(ctx, paths[i], &bufs[i], &lens[i]);
        if (st == ASYMBP_OK) st = asymbp__cifar_parse(ctx, bufs[i], lens[i], paths[i], kind, &counts[i], NULL, 0);
        if (st == ASYMBP_OK) total += counts[i];
    }
    if (st != ASYMBP_OK) goto done;
    st = asymbp__dataset_alloc(ctx, total, 3, 32, 32, kind_classes(kind), &ds);
    for (i = 0; i < n_paths && st == ASYMBP_OK; i++) {
        st = asymbp__cifar_parse(ctx, bufs[i], lens[i], paths[i], kind, &counts[i], ds, at);
        at += counts[i];
    }
    if (st == ASYMBP_OK) st = asymbp_dataset_set_name(ds, asymbp__data_basename(paths[0]));
done:
    if (bufs)
        for (i = 0; i < n_paths; i++) asymbp__free(ctx, bufs[i]);
    asymbp__free(ctx, bufs);
    asymbp__free(ctx, lens);
    asymbp__free(ctx, counts);
    if (st != ASYMBP_OK) {
        asymbp_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return ASYMBP_OK;
}
