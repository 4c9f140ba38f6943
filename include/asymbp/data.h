/* asymbp/data.h - data sets in memory (float features N x C x H x W, int32 labels), loaders for
 * IDX (MNIST family, plain or gzip), CSV and CIFAR binary files, standardisation with training
 * statistics, deterministic shuffling, validation splits, and lookup of data sets by name.
 *
 * Conventions shared by every function here:
 * - Features are float32, sample-major, each sample C x H x W (channel-major, row-major inside
 *   a channel).  Tabular data has C = number of features and H = W = 1.  Labels are int32 in
 *   0 .. classes-1.
 * - Images (IDX, CIFAR) are scaled to [0, 1] (byte / 255) when loaded; standardise afterwards.
 * - `classes` arguments of loaders: 0 infers the class count as (largest label + 1); a value
 *   K > 0 makes any label >= K an error (ASYMBP_E_RANGE).
 * - On failure the context's last error (asymbp_ctx_last_error) names the file and the position
 *   (byte offset, sample index, or CSV line and column) and the reason.
 * - Files are read whole through the context allocator; gzip is recognised by its magic bytes
 *   (1f 8b), not by the file name, and inflated with zlib. */
#ifndef ASYMBP_DATA_H
#define ASYMBP_DATA_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/rng.h"
#ifdef __cplusplus
extern "C" {
#endif

/* A labelled data set: n samples, each C x H x W floats, with int32 labels and a class count. */
typedef struct asymbp_dataset asymbp_dataset_t;
/* Standardisation statistics (a mean and a divisor per channel or per feature), fitted on a
 * training set and applied unchanged to validation and test sets. */
typedef struct asymbp_scaler asymbp_scaler_t;

/* Which features share one mean/divisor. */
typedef enum asymbp_scaler_mode {
    /* One statistic per channel, over all samples and all H x W positions.  For tabular data
     * (H = W = 1) this is one statistic per feature column.  The default. */
    ASYMBP_SCALER_PER_CHANNEL = 0,
    /* One statistic per feature element (C x H x W of them), over the samples: per pixel. */
    ASYMBP_SCALER_PER_FEATURE = 1
} asymbp_scaler_mode_t;

/* CIFAR binary variants: record = label byte(s) + 3072 pixel bytes (3 x 32 x 32, R, G, B planes). */
typedef enum asymbp_cifar_kind {
    ASYMBP_CIFAR10 = 0,          /* 1 label byte, 10 classes */
    ASYMBP_CIFAR100_FINE = 1,    /* 2 label bytes (coarse, fine); the fine label, 100 classes */
    ASYMBP_CIFAR100_COARSE = 2,  /* 2 label bytes; the coarse label, 20 classes */
    ASYMBP_CIFAR100 = ASYMBP_CIFAR100_FINE  /* CIFAR-100 reads the fine label by default */
} asymbp_cifar_kind_t;

/* ---- Data sets from memory ------------------------------------------------------------------ */

/* Create a data set from caller arrays, which are copied.
 * ctx: borrowed, must outlive the data set.  n: samples (>= 1).  channels, height, width: the
 * shape of one sample (each >= 1; tabular: features, 1, 1).  classes: K >= 1.
 * features: n*C*H*W floats (borrowed).  labels: n labels in 0..K-1 (borrowed).
 * out: receives the data set the caller owns (asymbp_dataset_destroy); NULL on failure.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL pointer, zero size), ASYMBP_E_SHAPE (size overflows),
 * ASYMBP_E_RANGE (a label outside 0..K-1, or a NaN/Inf feature: the message gives its index),
 * ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_create(asymbp_ctx_t *ctx, size_t n, int64_t channels, int64_t height, int64_t width,
                      size_t classes, const float *features, const int32_t *labels,
                      asymbp_dataset_t **out);
/* Destroy a data set (NULL accepted).  Since 0.1. */
ASYMBP_API void asymbp_dataset_destroy(asymbp_dataset_t *ds);

/* Number of samples (0 for NULL).  Since 0.1. */
ASYMBP_API size_t asymbp_dataset_count(const asymbp_dataset_t *ds);
/* Shape of one sample: any of channels/height/width may be NULL.  ASYMBP_E_INVALID for a NULL
 * data set.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_shape(const asymbp_dataset_t *ds, int64_t *channels, int64_t *height, int64_t *width);
/* Floats per sample, C*H*W (0 for NULL).  Since 0.1. */
ASYMBP_API size_t asymbp_dataset_sample_size(const asymbp_dataset_t *ds);
/* Class count K (0 for NULL).  Since 0.1. */
ASYMBP_API size_t asymbp_dataset_classes(const asymbp_dataset_t *ds);
/* Borrowed views of the features (count*sample_size floats) and labels (count int32), valid
 * until the data set is destroyed; functions that reorder or standardise a data set in place
 * change the contents, not the pointers.  NULL for a NULL data set.  Since 0.1. */
ASYMBP_API const float *asymbp_dataset_features(const asymbp_dataset_t *ds);
ASYMBP_API const int32_t *asymbp_dataset_labels(const asymbp_dataset_t *ds);
/* Writable view of the features, for callers that transform them in place.  Since 0.1. */
ASYMBP_API float *asymbp_dataset_features_mut(asymbp_dataset_t *ds);
/* Optional name ("digits8x8", a file name); "" when none, never NULL.  Borrowed.  Since 0.1. */
ASYMBP_API const char *asymbp_dataset_name(const asymbp_dataset_t *ds);
/* Set the name (copied; NULL clears it).  ASYMBP_E_INVALID, ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_set_name(asymbp_dataset_t *ds, const char *name);
/* Samples per class: counts must hold asymbp_dataset_classes(ds) entries.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_class_counts(const asymbp_dataset_t *ds, size_t *counts);

/* Copy the samples idx[0..n-1] (each < count) into x (n*sample_size floats) and labels (n int32;
 * may be NULL): the batch-gathering step of a training loop, no allocation.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_RANGE (an index >= count).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_gather(const asymbp_dataset_t *ds, const size_t *idx, size_t n, float *x, int32_t *labels);

/* A new data set with the samples idx[0..n-1] (n >= 1, each < count; repeats allowed), in that
 * order, same shape, class count and name.  out: owned by the caller.  Returns ASYMBP_OK,
 * ASYMBP_E_INVALID, ASYMBP_E_RANGE (an index out of range), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_subset(const asymbp_dataset_t *ds, const size_t *idx, size_t n, asymbp_dataset_t **out);
/* A new data set with the first min(n, count) samples (n >= 1).  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_head(const asymbp_dataset_t *ds, size_t n, asymbp_dataset_t **out);

/* ---- Shuffling and splitting ---------------------------------------------------------------- */

/* Fill idx with 0..n-1 and shuffle it by Fisher-Yates: for i = n-1 down to 1, swap idx[i] with
 * idx[asymbp_rng_below(rng, i+1)].  Deterministic for a given RNG state; advances rng.
 * n must be < 2^32.  Returns ASYMBP_OK, ASYMBP_E_INVALID.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_data_permutation(asymbp_rng_t *rng, size_t *idx, size_t n);
/* Shuffle the samples (features with their labels) in place with the permutation above.
 * rng: borrowed, advanced.  Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_shuffle(asymbp_dataset_t *ds, asymbp_rng_t *rng);
/* The same with a generator seeded (seed, stream 0x64617461 "data") for this call: the same
 * seed gives the same order on every platform.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_shuffle_seed(asymbp_dataset_t *ds, uint64_t seed);

/* Split off a validation set of n_val samples (1 <= n_val < count) chosen at random with a
 * generator seeded (seed, stream 0x73706c74 "splt").  stratified != 0: each class gives
 * (almost) its share, n_val * class_count / count, rounded by largest remainder so the total
 * is exactly n_val.  Both outputs keep the original relative order of their samples, and
 * together hold every sample exactly once.  ds is not changed.
 * rest, val: receive new data sets owned by the caller; both NULL on failure.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL, n_val out of range), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_split(const asymbp_dataset_t *ds, size_t n_val, uint64_t seed, int stratified,
                     asymbp_dataset_t **rest, asymbp_dataset_t **val);

/* ---- Standardisation ------------------------------------------------------------------------ */

/* Fit statistics on a (training) data set: mean and population standard deviation, computed in
 * double, per channel or per feature (see asymbp_scaler_mode_t).  A statistic whose standard
 * deviation is 0 (a constant column) or below 1e-12 gets divisor 1, so applying the scaler
 * only centres it.  ctx: borrowed, must outlive the scaler.  out: owned by the caller
 * (asymbp_scaler_destroy).  Returns ASYMBP_OK, ASYMBP_E_INVALID (NULL, unknown mode),
 * ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_fit(asymbp_ctx_t *ctx, const asymbp_dataset_t *train, asymbp_scaler_mode_t mode,
                  asymbp_scaler_t **out);
/* Create a scaler from stored statistics (e.g. saved with a model): count means and divisors
 * (borrowed, copied; divisors must be finite and > 0, means finite: ASYMBP_E_RANGE otherwise).
 * count is C for ASYMBP_SCALER_PER_CHANNEL and C*H*W for ASYMBP_SCALER_PER_FEATURE.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_RANGE, ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_create(asymbp_ctx_t *ctx, asymbp_scaler_mode_t mode, size_t count, const float *mean,
                     const float *divisor, asymbp_scaler_t **out);
/* Destroy (NULL accepted).  Since 0.1. */
ASYMBP_API void asymbp_scaler_destroy(asymbp_scaler_t *sc);
/* Mode, number of statistics, and borrowed arrays of the means and the divisors actually used
 * (the standard deviation, or 1 for a constant column); 0 / NULL for a NULL scaler.  Since 0.1. */
ASYMBP_API asymbp_scaler_mode_t asymbp_scaler_mode(const asymbp_scaler_t *sc);
ASYMBP_API size_t asymbp_scaler_count(const asymbp_scaler_t *sc);
ASYMBP_API const float *asymbp_scaler_mean(const asymbp_scaler_t *sc);
ASYMBP_API const float *asymbp_scaler_divisor(const asymbp_scaler_t *sc);
/* Standardise a data set in place: x = (x - mean) / divisor.  Returns ASYMBP_OK,
 * ASYMBP_E_INVALID, ASYMBP_E_SHAPE (the data set's shape does not match the statistics).
 * Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_scaler_apply(const asymbp_scaler_t *sc, asymbp_dataset_t *ds);
/* The same on a caller array of n samples of shape C x H x W.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_apply_array(const asymbp_scaler_t *sc, float *x, size_t n, int64_t channels,
                          int64_t height, int64_t width);
/* Convenience: fit on train, apply to train and (if not NULL) to test.  scaler: if not NULL
 * receives the fitted scaler (owned by the caller), else it is freed.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_standardize(asymbp_dataset_t *train, asymbp_dataset_t *test, asymbp_scaler_mode_t mode,
                           asymbp_scaler_t **scaler);

/* ---- Loaders -------------------------------------------------------------------------------- */

/* IDX files of the MNIST family, each plain or gzip: images (magic 0x00000803, n, rows, cols,
 * then n*rows*cols bytes) and labels (magic 0x00000801, n, then n bytes).  Gives n samples of
 * shape 1 x rows x cols scaled to [0, 1].  classes: see the header comment.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_IO (missing or unreadable file),
 * ASYMBP_E_FORMAT (wrong magic, truncated or over-long file, bad gzip stream, empty file,
 * image and label counts that disagree), ASYMBP_E_RANGE (label >= classes), ASYMBP_E_NOMEM.
 * Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_idx(asymbp_ctx_t *ctx, const char *images_path, const char *labels_path,
                        size_t classes, asymbp_dataset_t **out);

/* CSV (plain or gzip): one header line of column names, then one row per sample of numeric
 * features and, last, an integer label.  Fields are separated by ',', may be padded with blanks;
 * lines end in "\n" or "\r\n"; blank lines are skipped; numbers are parsed independently of
 * the C locale.  Gives n samples of shape F x 1 x 1 (F = columns - 1).
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_IO, ASYMBP_E_FORMAT (empty file, no header or no
 * rows, a non-numeric field, a row with a different number of fields, a non-integer label:
 * "FILE: line L, column C (NAME): ..."), ASYMBP_E_RANGE (NaN, Inf or overflowing feature,
 * negative label or label >= classes, with line and column), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_csv(asymbp_ctx_t *ctx, const char *path, size_t classes, asymbp_dataset_t **out);

/* CIFAR-10/100 binary batches (data_batch_1.bin ..., test_batch.bin, train.bin, test.bin):
 * the n_paths files are concatenated in order.  Gives samples of shape 3 x 32 x 32 in [0, 1]
 * with 10, 100 or 20 classes by kind.  Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_IO,
 * ASYMBP_E_FORMAT (empty file, size not a multiple of the record size), ASYMBP_E_RANGE (a label
 * beyond the class count: wrong kind?), ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_cifar(asymbp_ctx_t *ctx, const char *const *paths, size_t n_paths,
                          asymbp_cifar_kind_t kind, asymbp_dataset_t **out);

/* A folder holding a training and a test set:
 *   train.csv and test.csv, or
 *   four IDX files (plain or .gz) whose names end in train-images-idx3-ubyte,
 *   train-labels-idx1-ubyte, and test-images-idx3-ubyte / t10k-images-idx3-ubyte,
 *   test-labels-idx1-ubyte / t10k-labels-idx1-ubyte (a prefix such as "emnist-" is allowed;
 *   when both a plain and a .gz file exist, the plain one is read).
 * classes: 0 infers K from both sets (largest label + 1); both outputs get the same K.  The test
 * set must have the training set's sample shape (ASYMBP_E_SHAPE).  Both sets are named after the
 * folder.  train, test: receive data sets owned by the caller; both NULL on failure.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_IO (folder or one of the files missing),
 * ASYMBP_E_NOTFOUND (the folder holds neither layout), ASYMBP_E_FORMAT (two candidate files for
 * one role, or a loader's errors), ASYMBP_E_SHAPE, ASYMBP_E_RANGE, ASYMBP_E_NOMEM.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_dir(asymbp_ctx_t *ctx, const char *dir, size_t classes,
                        asymbp_dataset_t **train, asymbp_dataset_t **test);

/* ---- Data sets by name ---------------------------------------------------------------------- */

/* Load a known data set by name from the first of roots[0..n_roots-1] that has it.
 * Bundled sets live in ROOT/NAME (digits8x8, digits20x20, letter, dna, soybean, ionosphere,
 * sonar, glass, iris, wine, breast_cancer); fetched sets (mnist, fashion-mnist, see
 * `make data`) in ROOT/fetched/NAME.  A ROOT is typically the repository's or the installed
 * data/ folder.  name NULL or "" means the default, "digits8x8".  Names are matched ignoring
 * case, with '-' and '_' equal.  A name containing '/' is taken as a folder for
 * asymbp_dataset_load_dir.  The known class count is enforced on the labels.
 * train, test: receive data sets owned by the caller; both NULL on failure.
 * Returns ASYMBP_OK, ASYMBP_E_INVALID, ASYMBP_E_NOTFOUND (unknown name: the message lists the
 * known names; a set found in no root: the message names the folders searched and, for a
 * fetched set, says to run `make data`), and the codes of asymbp_dataset_load_dir.  Since 0.1. */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_named(asymbp_ctx_t *ctx, const char *name, const char *const *roots, size_t n_roots,
                          asymbp_dataset_t **train, asymbp_dataset_t **test);

/* The catalogue of known names, in a fixed order starting with the default: count, then the
 * name at i (NULL beyond the end; static text), whether it must be fetched with `make data`
 * (1) or is bundled (0; -1 beyond the end), and its class count (0 beyond the end).  Since 0.1. */
ASYMBP_API size_t asymbp_dataset_known_count(void);
ASYMBP_API const char *asymbp_dataset_known_name(size_t i);
ASYMBP_API int asymbp_dataset_known_fetched(size_t i);
ASYMBP_API size_t asymbp_dataset_known_classes(size_t i);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_DATA_H */
