/* IDX files (the MNIST family): idx3 unsigned-byte images and idx1 unsigned-byte labels. */
#include <string.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Check magic and header; *dims receives ndim_expected sizes. */
static asymbp_status_t idx_header(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                  uint32_t magic, const char *what, uint32_t *dims)
{
    uint32_t got, ndim = magic & 0xffu;
    size_t hdr = 4 + 4 * (size_t)ndim, i;
    if (len == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: empty file (expected an IDX %s file)", name, what);
    if (len < 4)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated IDX header: %zu bytes, the header has %zu", name, len, hdr);
    got = be32(b);
    if (got != magic) {
        if (got == IDX_IMAGES || got == IDX_LABELS)
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: this is an IDX %s file (magic 0x%08x), expected %s (magic 0x%08x)",
                                 name, got == IDX_IMAGES ? "image" : "label", (unsigned)got, what, (unsigned)magic);
        if (b[0] == 0 && b[1] == 0 && b[2] != 0x08)
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: IDX element type 0x%02x is not supported (only unsigned bytes, 0x08)",
                                 name, (unsigned)b[2]);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: wrong magic number 0x%08x at offset 0: not an IDX %s file (magic 0x%08x)",
                             name, (unsigned)got, what, (unsigned)magic);
    }
    if (len < hdr)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated IDX header: %zu bytes, the header has %zu", name, len, hdr);
    for (i = 0; i < ndim; i++) dims[i] = be32(b + 4 + 4 * i);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__idx_images(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                   size_t *n, size_t *rows, size_t *cols, const unsigned char **pixels)
{
    uint32_t d[3] = {0, 0, 0};
    size_t per, total, avail;
    asymbp_status_t st = idx_header(ctx, b, len, name, IDX_IMAGES, "image", d);
    if (st != ASYMBP_OK) return st;
    if (d[0] == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: the header announces 0 images", name);
    if (d[1] == 0 || d[2] == 0)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: the header announces images of %u x %u pixels", name,
                             (unsigned)d[1], (unsigned)d[2]);
    if (asymbp__mul_size(d[1], d[2], &per) || asymbp__mul_size(per, d[0], &total) || total > SIZE_MAX - 16)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: the header announces %u images of %u x %u pixels: too large", name,
                             (unsigned)d[0], (unsigned)d[1], (unsigned)d[2]);
    avail = len - 16;
    if (avail < total)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated: the header announces %u images of %u x %u pixels "
                             "(%zu bytes), the file ends at byte %zu, in image %zu", name, (unsigned)d[0], (unsigned)d[1],
                             (unsigned)d[2], total + 16, len, avail / per);
    if (avail > total)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: %zu unexpected bytes after the last of %u images (from byte %zu)", name,
                             avail - total, (unsigned)d[0], total + 16);
    *n = d[0];
    *rows = d[1];
    *cols = d[2];
    *pixels = b + 16;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__idx_labels(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                   size_t *n, const unsigned char **labels)
{
    uint32_t d[1] = {0};
    size_t avail;
    asymbp_status_t st = idx_header(ctx, b, len, name, IDX_LABELS, "label", d);
    if (st != ASYMBP_OK) return st;
    if (d[0] == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: the header announces 0 labels", name);
    avail = len - 8;
    if (avail < d[0])
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated: the header announces %u labels (%zu bytes), the file ends "
                             "at byte %zu", name, (unsigned)d[0], (size_t)d[0] + 8, len);
    if (avail > d[0])
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: %zu unexpected bytes after the last of %u labels (from byte %zu)", name,
                             avail - d[0], (unsigned)d[0], (size_t)d[0] + 8);
    *n = d[0];
    *labels = b + 8;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__idx_parse(asymbp_ctx_t *ctx, const unsigned char *img, size_t img_len, const char *img_name,
                                  const unsigned char *lbl, size_t lbl_len, const char *lbl_name,
                                  size_t classes, asymbp_dataset_t **out)
{
    const unsigned char *pix, *lab;
    size_t n, rows, cols, nl, i, k, total;
    float lut[256];
    asymbp_dataset_t *ds;
    asymbp_status_t st;
    *out = NULL;
    if ((st = asymbp__idx_images(ctx, img, img_len, img_name, &n, &rows, &cols, &pix)) != ASYMBP_OK) return st;
    if ((st = asymbp__idx_labels(ctx, lbl, lbl_len, lbl_name, &nl, &lab)) != ASYMBP_OK) return st;
    if (n != nl)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s has %zu images but %s has %zu labels", img_name, n, lbl_name, nl);
    if (classes) {
        for (i = 0; i < n; i++)
            if (lab[i] >= classes)
                return asymbp__error(ctx, ASYMBP_E_RANGE, "%s: label %u of sample %zu (byte %zu) is out of range 0..%zu",
                                     lbl_name, (unsigned)lab[i], i, i + 8, classes - 1);
        k = classes;
    } else {
        k = 0;
        for (i = 0; i < n; i++)
            if (lab[i] >= k) k = (size_t)lab[i] + 1;
        if (k == 0) k = 1;
    }
    st = asymbp__dataset_alloc(ctx, n, 1, (int64_t)rows, (int64_t)cols, k, &ds);
    if (st != ASYMBP_OK) return st;
    for (i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
    total = n * rows * cols;
    for (i = 0; i < total; i++) ds->x[i] = lut[pix[i]];
    for (i = 0; i < n; i++) ds->y[i] = (int32_t)lab[i];
    *out = ds;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_load_idx(asymbp_ctx_t *ctx, const char *images_path, const char *labels_path,
                                        size_t classes, asymbp_dataset_t **out)
{
    unsigned char *img = NULL, *lbl = NULL;
    size_t img_len = 0, lbl_len = 0;
    asymbp_status_t st;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_idx: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, images_path, "images_path");
    ASYMBP_CHECK_NULL(ctx, labels_path, "labels_path");
    st = asymbp__data_read_file(ctx, images_path, &img, &img_len);
    if (st == ASYMBP_OK) st = asymbp__data_read_file(ctx, labels_path, &lbl, &lbl_len);
    if (st == ASYMBP_OK) st = asymbp__idx_parse(ctx, img, img_len, images_path, lbl, lbl_len, labels_path, classes, out);
    asymbp__free(ctx, img);
    asymbp__free(ctx, lbl);
    if (st == ASYMBP_OK && (st = asymbp_dataset_set_name(*out, asymbp__data_basename(images_path))) != ASYMBP_OK) {
        asymbp_dataset_destroy(*out);
        *out = NULL;
    }
    return st;
}
