/* libFuzzer target: the IDX readers (images + labels) on arbitrary bytes.  Input layout: byte 0
 * selects what is parsed (bit 0: also parse the whole input as a gzip stream first when it
 * carries the gzip magic after the 3-byte prefix), bytes 1..2 (big-endian) give the length of
 * the image part, the rest is the label part.  Build as data_csv.c says. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "asymbp/asymbp.h"
#include "asymbp/data.h"
#include "core/core_impl.h"
#include "data/data_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const asymbp_dataset_t *ds, size_t classes)
{
    size_t n = asymbp_dataset_count(ds), dim = asymbp_dataset_sample_size(ds), k = asymbp_dataset_classes(ds), i;
    const float *x = asymbp_dataset_features(ds);
    const int32_t *y = asymbp_dataset_labels(ds);
    if (n == 0 || dim == 0 || k == 0 || k > 256 || (classes && k != classes)) abort();
    for (i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= k) abort();
    for (i = 0; i < n * dim; i++)
        if (!(x[i] >= 0.0f && x[i] <= 1.0f)) abort();
}

/* Inflate a part when it is gzip (as the file reader does); *owned receives what to free. */
static int maybe_gunzip(asymbp_ctx_t *ctx, const unsigned char **p, size_t *len, unsigned char **owned)
{
    *owned = NULL;
    if (*len >= 2 && (*p)[0] == 0x1f && (*p)[1] == 0x8b) {
        if (asymbp__data_gunzip(ctx, "fuzz.gz", *p, *len, owned, len) != ASYMBP_OK) return -1;
        *p = *owned;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *ds = NULL;
    const unsigned char *img, *lbl;
    unsigned char *img_owned = NULL, *lbl_owned = NULL;
    size_t img_len, lbl_len, n, rows, cols;
    const unsigned char *pix;
    if (size < 3) return 0;
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 0;
    img = data + 3;
    img_len = (size_t)data[1] << 8 | data[2];
    if (img_len > size - 3) img_len = size - 3;
    lbl = img + img_len;
    lbl_len = size - 3 - img_len;
    if ((data[0] & 1) && (maybe_gunzip(ctx, &img, &img_len, &img_owned) || maybe_gunzip(ctx, &lbl, &lbl_len, &lbl_owned))) {
        if (asymbp_ctx_last_error(ctx)[0] == '\0') abort();
        goto done;
    }
    /* Each reader on its own, then the pair. */
    if (asymbp__idx_images(ctx, img, img_len, "fuzz-images", &n, &rows, &cols, &pix) == ASYMBP_OK &&
        (n * rows * cols + 16 != img_len))
        abort();
    if (asymbp__idx_labels(ctx, lbl, lbl_len, "fuzz-labels", &n, &pix) == ASYMBP_OK && n + 8 != lbl_len) abort();
    if (asymbp__idx_parse(ctx, img, img_len, "fuzz-images", lbl, lbl_len, "fuzz-labels", 0, &ds) == ASYMBP_OK) {
        check(ds, 0);
        asymbp_dataset_destroy(ds);
    } else if (ds || asymbp_ctx_last_error(ctx)[0] == '\0') {
        abort();
    }
    ds = NULL;
    if (asymbp__idx_parse(ctx, img, img_len, "fuzz-images", lbl, lbl_len, "fuzz-labels", 10, &ds) == ASYMBP_OK) {
        check(ds, 10);
        asymbp_dataset_destroy(ds);
    } else if (ds) {
        abort();
    }
done:
    asymbp__free(ctx, img_owned);
    asymbp__free(ctx, lbl_owned);
    asymbp_ctx_destroy(ctx);
    return 0;
}
