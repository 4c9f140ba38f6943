/* Private to data/: the data set body and the in-memory parsers behind the file loaders (the
 * fuzz targets in tests/fuzz/ call the parsers directly). */
#ifndef ASYMBP_DATA_IMPL_H
#define ASYMBP_DATA_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/data.h"
#include "core/core_impl.h"

struct asymbp_dataset {
    asymbp_ctx_t *ctx;
    size_t n;                 /* samples, >= 1 */
    int64_t c, h, w;          /* sample shape */
    size_t dim;               /* c*h*w */
    size_t classes;           /* K >= 1; labels in 0..K-1 */
    float *x;                 /* n*dim */
    int32_t *y;               /* n */
    char *name;               /* NULL: no name */
};

struct asymbp_scaler {
    asymbp_ctx_t *ctx;
    asymbp_scaler_mode_t mode;
    size_t count;
    float *mean;
    float *div;
};

/* ---- The scaler inside saved files (models, checkpoints) --------------------------------------
 * asymbp__scaler_write appends one chunk "SCAL" to w.  Payload (little-endian): u32 format
 * version (1), u32 mode (asymbp_scaler_mode_t), u64 count, count f32 means, count f32 divisors.
 * asymbp__scaler_read finds "SCAL" in a file's chunk area: *out receives a new scaler (owned by
 * the caller) or NULL when the file has none (ASYMBP_OK).  ASYMBP_E_FORMAT for a malformed chunk
 * (version, mode, size, a non-finite mean, a divisor not > 0), ASYMBP_E_NOMEM. */
#define ASYMBP__CHUNK_SCALER "SCAL"
asymbp_status_t asymbp__scaler_write(const asymbp_scaler_t *sc, asymbp__wbuf_t *w);
asymbp_status_t asymbp__scaler_read(asymbp_ctx_t *ctx, const asymbp__rbuf_t *area, asymbp_scaler_t **out);
/* ASYMBP_OK when sc's statistics fit samples of channels x height x width, else `code` recorded
 * on ctx with "who: " and both sizes in the detail. */
asymbp_status_t asymbp__scaler_fits(asymbp_ctx_t *ctx, const asymbp_scaler_t *sc, const char *who, asymbp_status_t code,
                                    int64_t channels, int64_t height, int64_t width);

/* A data set with uninitialised features and labels (validated sizes), name unset. */
asymbp_status_t asymbp__dataset_alloc(asymbp_ctx_t *ctx, size_t n, int64_t c, int64_t h, int64_t w,
                                      size_t classes, asymbp_dataset_t **out);

/* Read a whole file into context memory, inflating it when it starts with the gzip magic.
 * *buf receives the bytes (free with asymbp__free; NULL when *len is 0).
 * ASYMBP_E_IO (open/read failed: the message names the file and the reason), ASYMBP_E_FORMAT
 * (corrupt or truncated gzip stream), ASYMBP_E_NOMEM. */
asymbp_status_t asymbp__data_read_file(asymbp_ctx_t *ctx, const char *path, unsigned char **buf, size_t *len);
/* Inflate a gzip buffer (one or more members) with zlib, allocating through ctx.  name is used
 * in messages. */
asymbp_status_t asymbp__data_gunzip(asymbp_ctx_t *ctx, const char *name, const unsigned char *in, size_t len,
                                    unsigned char **out, size_t *out_len);
/* Last path component (pointer into path). */
const char *asymbp__data_basename(const char *path);

/* CSV text in buf[0..len) (need not be NUL-terminated).  name: used in messages and as the
 * data set name.  classes: 0 infers. */
asymbp_status_t asymbp__csv_parse(asymbp_ctx_t *ctx, const char *buf, size_t len, const char *name,
                                  size_t classes, asymbp_dataset_t **out);
/* Parse one number field [s, e) as the CSV reader does: 0 ok (*v set), 1 not a number, 2 NaN,
 * 3 infinite or beyond the float range. */
int asymbp__csv_number(const char *s, const char *e, float *v);

/* IDX image and label files already in memory (inflated). */
asymbp_status_t asymbp__idx_parse(asymbp_ctx_t *ctx, const unsigned char *img, size_t img_len, const char *img_name,
                                  const unsigned char *lbl, size_t lbl_len, const char *lbl_name,
                                  size_t classes, asymbp_dataset_t **out);
/* Validate an IDX image file header and size: *n, *rows, *cols and the pixel bytes. */
asymbp_status_t asymbp__idx_images(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                   size_t *n, size_t *rows, size_t *cols, const unsigned char **pixels);
/* Validate an IDX label file header and size: *n and the label bytes. */
asymbp_status_t asymbp__idx_labels(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                   size_t *n, const unsigned char **labels);

/* CIFAR binary in memory: *records receives the record count (validating sizes and labels);
 * when ds is not NULL the records are written to ds starting at sample `first`. */
asymbp_status_t asymbp__cifar_parse(asymbp_ctx_t *ctx, const unsigned char *b, size_t len, const char *name,
                                    asymbp_cifar_kind_t kind, size_t *records, asymbp_dataset_t *ds, size_t first);

#endif
