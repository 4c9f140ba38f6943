/** @file
 * @brief Data sets in memory (float features N x C x H x W, int32 labels), loaders for IDX (MNIST
 * family, plain or gzip), CSV and CIFAR binary files, standardisation with training statistics,
 * deterministic shuffling, validation splits, and lookup of data sets by name.
 *
 * Conventions shared by every function here:
 * - Features are float32, sample-major, each sample C x H x W (channel-major, row-major inside
 *   a channel).  Tabular data has C = number of features and H = W = 1.  Labels are int32 in
 *   0 .. classes-1.
 * - Images (IDX, CIFAR) are scaled to [0, 1] (byte / 255) when loaded; standardise afterwards.
 * - `classes` arguments of loaders: 0 infers the class count as (largest label + 1); a value
 *   K > 0 makes any label >= K an error (::ASYMBP_E_RANGE).
 * - On failure the context's last error (asymbp_ctx_last_error()) names the file and the position
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

/** A labelled data set (opaque handle): n samples, each C x H x W floats, with int32 labels and a
 * class count. */
typedef struct asymbp_dataset asymbp_dataset_t;
/** Standardisation statistics (opaque handle: a mean and a divisor per channel or per feature),
 * fitted on a training set and applied unchanged to validation and test sets. */
typedef struct asymbp_scaler asymbp_scaler_t;

/** Which features share one mean/divisor. */
typedef enum asymbp_scaler_mode {
    /** One statistic per channel, over all samples and all H x W positions.  For tabular data
     * (H = W = 1) this is one statistic per feature column.  The default. */
    ASYMBP_SCALER_PER_CHANNEL = 0,
    /** One statistic per feature element (C x H x W of them), over the samples: per pixel. */
    ASYMBP_SCALER_PER_FEATURE = 1
} asymbp_scaler_mode_t;

/** CIFAR binary variants: record = label byte(s) + 3072 pixel bytes (3 x 32 x 32, R, G, B planes). */
typedef enum asymbp_cifar_kind {
    ASYMBP_CIFAR10 = 0,          /**< 1 label byte, 10 classes */
    ASYMBP_CIFAR100_FINE = 1,    /**< 2 label bytes (coarse, fine); the fine label, 100 classes */
    ASYMBP_CIFAR100_COARSE = 2,  /**< 2 label bytes; the coarse label, 20 classes */
    ASYMBP_CIFAR100 = ASYMBP_CIFAR100_FINE  /**< CIFAR-100 reads the fine label by default */
} asymbp_cifar_kind_t;

/** @name Data sets from memory */
/** @{ */

/** Create a data set from caller arrays, which are copied.
 * @param ctx borrowed, must outlive the data set
 * @param n samples (>= 1)
 * @param channels shape of one sample (each >= 1; tabular: features, 1, 1): channels
 * @param height shape of one sample: height
 * @param width shape of one sample: width
 * @param classes K >= 1
 * @param features n*C*H*W floats (borrowed)
 * @param labels n labels in 0..K-1 (borrowed)
 * @param out receives the data set the caller owns (asymbp_dataset_destroy()); NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL pointer, zero size), ::ASYMBP_E_SHAPE (size
 *     overflows), ::ASYMBP_E_RANGE (a label outside 0..K-1, or a NaN/Inf feature: the message
 *     gives its index), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_create(asymbp_ctx_t *ctx, size_t n, int64_t channels, int64_t height, int64_t width,
                      size_t classes, const float *features, const int32_t *labels,
                      asymbp_dataset_t **out);
/** Destroy a data set.
 * @param ds the data set (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_dataset_destroy(asymbp_dataset_t *ds);

/** Number of samples.
 * @param ds the data set
 * @return the count; 0 for NULL
 * @since 0.1 */
ASYMBP_API size_t asymbp_dataset_count(const asymbp_dataset_t *ds);
/** Shape of one sample.
 * @param ds the data set
 * @param channels (may be NULL) receives C
 * @param height (may be NULL) receives H
 * @param width (may be NULL) receives W
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID for a NULL data set
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_shape(const asymbp_dataset_t *ds, int64_t *channels, int64_t *height, int64_t *width);
/** Floats per sample, C*H*W.
 * @param ds the data set
 * @return the sample size; 0 for NULL
 * @since 0.1 */
ASYMBP_API size_t asymbp_dataset_sample_size(const asymbp_dataset_t *ds);
/** Class count K.
 * @param ds the data set
 * @return K; 0 for NULL
 * @since 0.1 */
ASYMBP_API size_t asymbp_dataset_classes(const asymbp_dataset_t *ds);
/** Borrowed view of the features (count*sample_size floats), valid until the data set is
 * destroyed; functions that reorder or standardise a data set in place change the contents, not
 * the pointers.
 * @param ds the data set
 * @return the features; NULL for a NULL data set
 * @since 0.1 */
ASYMBP_API const float *asymbp_dataset_features(const asymbp_dataset_t *ds);
/** Borrowed view of the labels (count int32), valid until the data set is destroyed; functions
 * that reorder a data set in place change the contents, not the pointer.
 * @param ds the data set
 * @return the labels; NULL for a NULL data set
 * @since 0.1 */
ASYMBP_API const int32_t *asymbp_dataset_labels(const asymbp_dataset_t *ds);
/** Writable view of the features, for callers that transform them in place.
 * @param ds the data set
 * @return the features (as asymbp_dataset_features()); NULL for a NULL data set
 * @since 0.1 */
ASYMBP_API float *asymbp_dataset_features_mut(asymbp_dataset_t *ds);
/** Optional name ("digits8x8", a file name).
 * @param ds the data set
 * @return borrowed; "" when none, never NULL
 * @since 0.1 */
ASYMBP_API const char *asymbp_dataset_name(const asymbp_dataset_t *ds);
/** Set the name.
 * @param ds the data set
 * @param name copied; NULL clears it
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_set_name(asymbp_dataset_t *ds, const char *name);
/** Samples per class.
 * @param ds the data set
 * @param counts must hold asymbp_dataset_classes(ds) entries; receives the counts
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_class_counts(const asymbp_dataset_t *ds, size_t *counts);

/** Copy the samples idx[0..n-1] into x and labels: the batch-gathering step of a training loop,
 * no allocation.
 * @param ds the data set
 * @param idx n sample indices, each < count
 * @param n samples
 * @param x receives n*sample_size floats
 * @param labels (may be NULL) receives n int32
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_RANGE (an index >= count)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_gather(const asymbp_dataset_t *ds, const size_t *idx, size_t n, float *x, int32_t *labels);

/** A new data set with the samples idx[0..n-1], in that order, same shape, class count and name.
 * @param ds the data set
 * @param idx n sample indices, each < count; repeats allowed
 * @param n samples (>= 1)
 * @param out receives the new data set, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_RANGE (an index out of range),
 *     ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_subset(const asymbp_dataset_t *ds, const size_t *idx, size_t n, asymbp_dataset_t **out);
/** A new data set with the first min(n, count) samples.
 * @param ds the data set
 * @param n samples (>= 1)
 * @param out receives the new data set, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_head(const asymbp_dataset_t *ds, size_t n, asymbp_dataset_t **out);

/** @} */

/** @name Shuffling and splitting */
/** @{ */

/** Fill idx with 0..n-1 and shuffle it by Fisher-Yates: for i = n-1 down to 1, swap idx[i] with
 * idx[asymbp_rng_below(rng, i+1)].  Deterministic for a given RNG state.
 * @param rng the generator, advanced
 * @param idx receives the permutation
 * @param n entries; must be < 2^32
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_data_permutation(asymbp_rng_t *rng, size_t *idx, size_t n);
/** Shuffle the samples (features with their labels) in place with the permutation of
 * asymbp_data_permutation().
 * @param ds the data set
 * @param rng borrowed, advanced
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_shuffle(asymbp_dataset_t *ds, asymbp_rng_t *rng);
/** The same as asymbp_dataset_shuffle() with a generator seeded (seed, stream 0x64617461 "data")
 * for this call: the same seed gives the same order on every platform.
 * @param ds the data set
 * @param seed the seed
 * @return as asymbp_dataset_shuffle()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_dataset_shuffle_seed(asymbp_dataset_t *ds, uint64_t seed);

/** Split off a validation set of n_val samples chosen at random with a generator seeded (seed,
 * stream 0x73706c74 "splt").  Both outputs keep the original relative order of their samples, and
 * together hold every sample exactly once.  ds is not changed.
 * @param ds the data set
 * @param n_val samples of the validation set, 1 <= n_val < count
 * @param seed the seed
 * @param stratified != 0: each class gives (almost) its share, n_val * class_count / count, rounded
 *     by largest remainder so the total is exactly n_val
 * @param rest receives the other samples, a new data set owned by the caller; NULL on failure
 * @param val receives the validation set, a new data set owned by the caller; NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, n_val out of range), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_split(const asymbp_dataset_t *ds, size_t n_val, uint64_t seed, int stratified,
                     asymbp_dataset_t **rest, asymbp_dataset_t **val);

/** @} */

/** @name Standardisation */
/** @{ */

/** Fit statistics on a (training) data set: mean and population standard deviation, computed in
 * double, per channel or per feature (see ::asymbp_scaler_mode_t).  A statistic whose standard
 * deviation is 0 (a constant column) or below 1e-12 gets divisor 1, so applying the scaler only
 * centres it.
 * @param ctx borrowed, must outlive the scaler
 * @param train the data set
 * @param mode which features share a statistic
 * @param out receives the scaler, owned by the caller (asymbp_scaler_destroy())
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL, unknown mode), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_fit(asymbp_ctx_t *ctx, const asymbp_dataset_t *train, asymbp_scaler_mode_t mode,
                  asymbp_scaler_t **out);
/** Create a scaler from stored statistics (for example saved with a model).
 * @param ctx borrowed, must outlive the scaler
 * @param mode which features share a statistic
 * @param count C for ::ASYMBP_SCALER_PER_CHANNEL and C*H*W for ::ASYMBP_SCALER_PER_FEATURE
 * @param mean count means (borrowed, copied; finite)
 * @param divisor count divisors (borrowed, copied; finite and > 0)
 * @param out receives the scaler, owned by the caller (asymbp_scaler_destroy())
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_RANGE (a mean or divisor out of range),
 *     ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_create(asymbp_ctx_t *ctx, asymbp_scaler_mode_t mode, size_t count, const float *mean,
                     const float *divisor, asymbp_scaler_t **out);
/** Destroy a scaler.
 * @param sc the scaler (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_scaler_destroy(asymbp_scaler_t *sc);
/** The scaler's mode.
 * @param sc the scaler
 * @return the mode; 0 (::ASYMBP_SCALER_PER_CHANNEL) for a NULL scaler
 * @since 0.1 */
ASYMBP_API asymbp_scaler_mode_t asymbp_scaler_mode(const asymbp_scaler_t *sc);
/** Number of statistics.
 * @param sc the scaler
 * @return the count; 0 for a NULL scaler
 * @since 0.1 */
ASYMBP_API size_t asymbp_scaler_count(const asymbp_scaler_t *sc);
/** The means.
 * @param sc the scaler
 * @return borrowed array of asymbp_scaler_count() means; NULL for a NULL scaler
 * @since 0.1 */
ASYMBP_API const float *asymbp_scaler_mean(const asymbp_scaler_t *sc);
/** The divisors actually used (the standard deviation, or 1 for a constant column).
 * @param sc the scaler
 * @return borrowed array of asymbp_scaler_count() divisors; NULL for a NULL scaler
 * @since 0.1 */
ASYMBP_API const float *asymbp_scaler_divisor(const asymbp_scaler_t *sc);
/** Standardise a data set in place: x = (x - mean) / divisor.
 * @param sc the scaler
 * @param ds the data set
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE (the data set's shape does not match
 *     the statistics)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_scaler_apply(const asymbp_scaler_t *sc, asymbp_dataset_t *ds);
/** The same as asymbp_scaler_apply() on a caller array of n samples of shape C x H x W.
 * @param sc the scaler
 * @param x n*C*H*W floats, standardised in place
 * @param n samples
 * @param channels C
 * @param height H
 * @param width W
 * @return as asymbp_scaler_apply()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_scaler_apply_array(const asymbp_scaler_t *sc, float *x, size_t n, int64_t channels,
                          int64_t height, int64_t width);
/** Convenience: fit on train, apply to train and (if not NULL) to test.
 * @param train the training set: fitted on, and standardised in place
 * @param test (may be NULL) standardised in place with the training statistics
 * @param mode which features share a statistic
 * @param scaler if not NULL receives the fitted scaler (owned by the caller), else it is freed
 * @return the status codes of asymbp_scaler_fit() and asymbp_scaler_apply()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_standardize(asymbp_dataset_t *train, asymbp_dataset_t *test, asymbp_scaler_mode_t mode,
                           asymbp_scaler_t **scaler);

/** @} */

/** @name Loaders */
/** @{ */

/** Load IDX files of the MNIST family, each plain or gzip: images (magic 0x00000803, n, rows,
 * cols, then n*rows*cols bytes) and labels (magic 0x00000801, n, then n bytes).  Gives n samples
 * of shape 1 x rows x cols scaled to [0, 1].
 * @param ctx the context
 * @param images_path the images file
 * @param labels_path the labels file
 * @param classes see the file's description (0 infers it)
 * @param out receives the data set, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_IO (missing or unreadable file),
 *     ::ASYMBP_E_FORMAT (wrong magic, truncated or over-long file, bad gzip stream, empty file,
 *     image and label counts that disagree), ::ASYMBP_E_RANGE (label >= classes), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_idx(asymbp_ctx_t *ctx, const char *images_path, const char *labels_path,
                        size_t classes, asymbp_dataset_t **out);

/** Load a CSV file (plain or gzip): one header line of column names, then one row per sample of
 * numeric features and, last, an integer label.  Fields are separated by ',', may be padded with
 * blanks; lines end in LF or CR LF; blank lines are skipped; numbers are parsed independently
 * of the C locale.  Gives n samples of shape F x 1 x 1 (F = columns - 1).
 * @param ctx the context
 * @param path the file
 * @param classes see the file's description (0 infers it)
 * @param out receives the data set, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_IO, ::ASYMBP_E_FORMAT (empty file, no header
 *     or no rows, a non-numeric field, a row with a different number of fields, a non-integer
 *     label: "FILE: line L, column C (NAME): ..."), ::ASYMBP_E_RANGE (NaN, Inf or overflowing
 *     feature, negative label or label >= classes, with line and column), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_csv(asymbp_ctx_t *ctx, const char *path, size_t classes, asymbp_dataset_t **out);

/** Load CIFAR-10/100 binary batches (data_batch_1.bin ..., test_batch.bin, train.bin, test.bin):
 * the n_paths files are concatenated in order.  Gives samples of shape 3 x 32 x 32 in [0, 1]
 * with 10, 100 or 20 classes by kind.
 * @param ctx the context
 * @param paths n_paths file names
 * @param n_paths number of files
 * @param kind the variant
 * @param out receives the data set, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_IO, ::ASYMBP_E_FORMAT (empty file, size not a
 *     multiple of the record size), ::ASYMBP_E_RANGE (a label beyond the class count: wrong
 *     kind?), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_cifar(asymbp_ctx_t *ctx, const char *const *paths, size_t n_paths,
                          asymbp_cifar_kind_t kind, asymbp_dataset_t **out);

/** Load a folder holding a training and a test set:
 * - train.csv and test.csv, or
 * - four IDX files (plain or .gz) whose names end in train-images-idx3-ubyte,
 *   train-labels-idx1-ubyte, and test-images-idx3-ubyte / t10k-images-idx3-ubyte,
 *   test-labels-idx1-ubyte / t10k-labels-idx1-ubyte (a prefix such as "emnist-" is allowed;
 *   when both a plain and a .gz file exist, the plain one is read).
 *
 * The test set must have the training set's sample shape (::ASYMBP_E_SHAPE).  Both sets are named
 * after the folder.
 * @param ctx the context
 * @param dir the folder
 * @param classes 0 infers K from both sets (largest label + 1); both outputs get the same K
 * @param train receives the training set, owned by the caller; NULL on failure
 * @param test receives the test set, owned by the caller; NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_IO (folder or one of the files missing),
 *     ::ASYMBP_E_NOTFOUND (the folder holds neither layout), ::ASYMBP_E_FORMAT (two candidate
 *     files for one role, or a loader's errors), ::ASYMBP_E_SHAPE, ::ASYMBP_E_RANGE,
 *     ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_dir(asymbp_ctx_t *ctx, const char *dir, size_t classes,
                        asymbp_dataset_t **train, asymbp_dataset_t **test);

/** @} */

/** @name Data sets by name */
/** @{ */

/** Load a known data set by name from the first of roots[0..n_roots-1] that has it.  Bundled
 * sets live in ROOT/NAME (digits8x8, digits20x20, letter, dna, soybean, ionosphere, sonar, glass,
 * iris, wine, breast_cancer); fetched sets (mnist, fashion-mnist, see `make data`) in
 * ROOT/fetched/NAME.  A ROOT is typically the repository's or the installed data/ folder.  The
 * known class count is enforced on the labels.
 * @param ctx the context
 * @param name NULL or "" means the default, "digits8x8".  Names are matched ignoring case, with
 *     '-' and '_' equal.  A name containing '/' is taken as a folder for
 *     asymbp_dataset_load_dir().
 * @param roots n_roots folders searched in order
 * @param n_roots number of roots
 * @param train receives the training set, owned by the caller; NULL on failure
 * @param test receives the test set, owned by the caller; NULL on failure
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_NOTFOUND (unknown name: the message lists
 *     the known names; a set found in no root: the message names the folders searched and, for a
 *     fetched set, says to run `make data`), and the codes of asymbp_dataset_load_dir()
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_dataset_load_named(asymbp_ctx_t *ctx, const char *name, const char *const *roots, size_t n_roots,
                          asymbp_dataset_t **train, asymbp_dataset_t **test);

/** Number of names in the catalogue of known data sets (in a fixed order starting with the
 * default).
 * @return the count
 * @since 0.1 */
ASYMBP_API size_t asymbp_dataset_known_count(void);
/** The name of known data set i.
 * @param i index in the catalogue
 * @return static text; NULL beyond the end
 * @since 0.1 */
ASYMBP_API const char *asymbp_dataset_known_name(size_t i);
/** Whether known data set i must be fetched with `make data`.
 * @param i index in the catalogue
 * @return 1: fetched, 0: bundled, -1 beyond the end
 * @since 0.1 */
ASYMBP_API int asymbp_dataset_known_fetched(size_t i);
/** The class count of known data set i.
 * @param i index in the catalogue
 * @return the class count; 0 beyond the end
 * @since 0.1 */
ASYMBP_API size_t asymbp_dataset_known_classes(size_t i);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_DATA_H */
