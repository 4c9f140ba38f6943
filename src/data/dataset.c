/* Data sets in memory: creation, accessors, gathering, subsets, shuffling and splits. */
#include <math.h>
#include <string.h>
#include "core/core_impl.h"
#include "tensor/tensor_impl.h"
#include "data/data_impl.h"

#define SHUFFLE_STREAM 0x64617461u /* "data" */
#define SPLIT_STREAM 0x73706c74u   /* "splt" */

asymbp_status_t asymbp__dataset_alloc(asymbp_ctx_t *ctx, size_t n, int64_t c, int64_t h, int64_t w,
                                      size_t classes, asymbp_dataset_t **out)
{
    asymbp_dataset_t *ds;
    size_t dim, total, bytes;
    *out = NULL;
    if (n == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset: no samples (n is 0)");
    if (c < 1 || h < 1 || w < 1)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset: sample shape %lld x %lld x %lld has a dimension < 1",
                             (long long)c, (long long)h, (long long)w);
    if (classes < 1 || classes > (size_t)INT32_MAX)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset: class count %zu out of range 1..%d", classes, INT32_MAX);
    if ((uint64_t)c > SIZE_MAX || (uint64_t)h > SIZE_MAX || (uint64_t)w > SIZE_MAX ||
        asymbp__mul_size((size_t)c, (size_t)h, &dim) || asymbp__mul_size(dim, (size_t)w, &dim) ||
        asymbp__mul_size(dim, n, &total) || asymbp__mul_size(total, sizeof(float), &bytes) ||
        asymbp__mul_size(n, sizeof(int32_t), &bytes))
        return asymbp__error(ctx, ASYMBP_E_SHAPE, "dataset: %zu samples of %lld x %lld x %lld floats overflow the address space",
                             n, (long long)c, (long long)h, (long long)w);
    ds = asymbp__calloc(ctx, 1, sizeof *ds);
    if (!ds) return asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset: out of memory");
    ds->ctx = ctx;
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->dim = dim;
    ds->classes = classes;
    ds->x = asymbp__alloc(ctx, total * sizeof(float));
    ds->y = asymbp__alloc(ctx, n * sizeof(int32_t));
    if (!ds->x || !ds->y) {
        asymbp_dataset_destroy(ds);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset: out of memory for %zu samples of %zu floats", n, dim);
    }
    *out = ds;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_create(asymbp_ctx_t *ctx, size_t n, int64_t channels, int64_t height, int64_t width,
                                      size_t classes, const float *features, const int32_t *labels,
                                      asymbp_dataset_t **out)
{
    asymbp_dataset_t *ds;
    asymbp_status_t st;
    size_t i, total;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_create: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, features, "features");
    ASYMBP_CHECK_NULL(ctx, labels, "labels");
    st = asymbp__dataset_alloc(ctx, n, channels, height, width, classes, &ds);
    if (st != ASYMBP_OK) return st;
    total = n * ds->dim;
    for (i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= classes) {
            asymbp_dataset_destroy(ds);
            return asymbp__error(ctx, ASYMBP_E_RANGE, "dataset_create: label %ld of sample %zu is out of range 0..%zu",
                                 (long)labels[i], i, classes - 1);
        }
    for (i = 0; i < total; i++)
        if (!isfinite(features[i])) {
            size_t dim = ds->dim;
            asymbp_dataset_destroy(ds);
            return asymbp__error(ctx, ASYMBP_E_RANGE, "dataset_create: feature %zu of sample %zu is %s",
                                 i % dim, i / dim, isnan(features[i]) ? "NaN" : "infinite");
        }
    memcpy(ds->x, features, total * sizeof(float));
    memcpy(ds->y, labels, n * sizeof(int32_t));
    *out = ds;
    return ASYMBP_OK;
}

void asymbp_dataset_destroy(asymbp_dataset_t *ds)
{
    if (!ds) return;
    asymbp__free(ds->ctx, ds->x);
    asymbp__free(ds->ctx, ds->y);
    asymbp__free(ds->ctx, ds->name);
    asymbp__free(ds->ctx, ds);
}

size_t asymbp_dataset_count(const asymbp_dataset_t *ds) { return ds ? ds->n : 0; }
size_t asymbp_dataset_sample_size(const asymbp_dataset_t *ds) { return ds ? ds->dim : 0; }
size_t asymbp_dataset_classes(const asymbp_dataset_t *ds) { return ds ? ds->classes : 0; }
const float *asymbp_dataset_features(const asymbp_dataset_t *ds) { return ds ? ds->x : NULL; }
float *asymbp_dataset_features_mut(asymbp_dataset_t *ds) { return ds ? ds->x : NULL; }
const int32_t *asymbp_dataset_labels(const asymbp_dataset_t *ds) { return ds ? ds->y : NULL; }
const char *asymbp_dataset_name(const asymbp_dataset_t *ds) { return (ds && ds->name) ? ds->name : ""; }

asymbp_status_t asymbp_dataset_shape(const asymbp_dataset_t *ds, int64_t *channels, int64_t *height, int64_t *width)
{
    if (!ds) return ASYMBP_E_INVALID;
    if (channels) *channels = ds->c;
    if (height) *height = ds->h;
    if (width) *width = ds->w;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_set_name(asymbp_dataset_t *ds, const char *name)
{
    char *copy = NULL;
    if (!ds) return ASYMBP_E_INVALID;
    if (name) {
        copy = asymbp__strdup(ds->ctx, name);
        if (!copy) return asymbp__error(ds->ctx, ASYMBP_E_NOMEM, "dataset_set_name: out of memory");
    }
    asymbp__free(ds->ctx, ds->name);
    ds->name = copy;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_class_counts(const asymbp_dataset_t *ds, size_t *counts)
{
    size_t i;
    if (!ds) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ds->ctx, counts, "counts");
    memset(counts, 0, ds->classes * sizeof *counts);
    for (i = 0; i < ds->n; i++) counts[ds->y[i]]++;
    return ASYMBP_OK;
}

static asymbp_status_t check_indices(const asymbp_dataset_t *ds, const size_t *idx, size_t n, const char *who)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (idx[i] >= ds->n)
            return asymbp__error(ds->ctx, ASYMBP_E_RANGE, "%s: index %zu (position %zu) is beyond the %zu samples",
                                 who, idx[i], i, ds->n);
    return ASYMBP_OK;
}

static void gather_rows(const asymbp_dataset_t *ds, const size_t *idx, size_t n, float *restrict x, int32_t *labels)
{
    size_t i, dim = ds->dim;
    for (i = 0; i < n; i++) memcpy(x + i * dim, ds->x + idx[i] * dim, dim * sizeof(float));
    if (labels)
        for (i = 0; i < n; i++) labels[i] = ds->y[idx[i]];
}

asymbp_status_t asymbp_dataset_gather(const asymbp_dataset_t *ds, const size_t *idx, size_t n, float *x, int32_t *labels)
{
    asymbp_status_t st;
    if (!ds) return ASYMBP_E_INVALID;
    if (n == 0) return ASYMBP_OK;
    ASYMBP_CHECK_NULL(ds->ctx, idx, "idx");
    ASYMBP_CHECK_NULL(ds->ctx, x, "x");
    if ((st = check_indices(ds, idx, n, "dataset_gather")) != ASYMBP_OK) return st;
    gather_rows(ds, idx, n, x, labels);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_subset(const asymbp_dataset_t *ds, const size_t *idx, size_t n, asymbp_dataset_t **out)
{
    asymbp_dataset_t *sub;
    asymbp_status_t st;
    if (!out) return ds ? asymbp__error(ds->ctx, ASYMBP_E_INVALID, "dataset_subset: out is NULL") : ASYMBP_E_INVALID;
    *out = NULL;
    if (!ds) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ds->ctx, idx, "idx");
    if (n == 0) return asymbp__error(ds->ctx, ASYMBP_E_INVALID, "dataset_subset: no indices (n is 0)");
    if ((st = check_indices(ds, idx, n, "dataset_subset")) != ASYMBP_OK) return st;
    st = asymbp__dataset_alloc(ds->ctx, n, ds->c, ds->h, ds->w, ds->classes, &sub);
    if (st != ASYMBP_OK) return st;
    if (ds->name && (st = asymbp_dataset_set_name(sub, ds->name)) != ASYMBP_OK) {
        asymbp_dataset_destroy(sub);
        return st;
    }
    gather_rows(ds, idx, n, sub->x, sub->y);
    *out = sub;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_head(const asymbp_dataset_t *ds, size_t n, asymbp_dataset_t **out)
{
    asymbp_dataset_t *sub;
    asymbp_status_t st;
    if (!out) return ds ? asymbp__error(ds->ctx, ASYMBP_E_INVALID, "dataset_head: out is NULL") : ASYMBP_E_INVALID;
    *out = NULL;
    if (!ds) return ASYMBP_E_INVALID;
    if (n == 0) return asymbp__error(ds->ctx, ASYMBP_E_INVALID, "dataset_head: n is 0");
    if (n > ds->n) n = ds->n;
    st = asymbp__dataset_alloc(ds->ctx, n, ds->c, ds->h, ds->w, ds->classes, &sub);
    if (st != ASYMBP_OK) return st;
    if (ds->name && (st = asymbp_dataset_set_name(sub, ds->name)) != ASYMBP_OK) {
        asymbp_dataset_destroy(sub);
        return st;
    }
    memcpy(sub->x, ds->x, n * ds->dim * sizeof(float));
    memcpy(sub->y, ds->y, n * sizeof(int32_t));
    *out = sub;
    return ASYMBP_OK;
}

/* ---- shuffling -------------------------------------------------------------------------------- */

static void permute(asymbp_rng_t *rng, size_t *idx, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) idx[i] = i;
    for (i = n; i > 1; i--) {
        size_t j = asymbp__rng_below(rng, (uint32_t)i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

asymbp_status_t asymbp_data_permutation(asymbp_rng_t *rng, size_t *idx, size_t n)
{
    if (!rng || (!idx && n)) return asymbp__error(rng ? rng->ctx : NULL, ASYMBP_E_INVALID, "data_permutation: %s is NULL",
                                                 rng ? "idx" : "rng");
    if ((uint64_t)n > UINT32_MAX)
        return asymbp__error(rng->ctx, ASYMBP_E_INVALID, "data_permutation: n = %zu is not below 2^32", n);
    permute(rng, idx, n);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_shuffle(asymbp_dataset_t *ds, asymbp_rng_t *rng)
{
    float *tmp;
    size_t i, dim, bytes;
    if (!ds) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ds->ctx, rng, "rng");
    if ((uint64_t)ds->n > UINT32_MAX)
        return asymbp__error(ds->ctx, ASYMBP_E_INVALID, "dataset_shuffle: %zu samples; at most 2^32-1 supported", ds->n);
    dim = ds->dim;
    bytes = dim * sizeof(float);
    tmp = asymbp__alloc(ds->ctx, bytes);
    if (!tmp) return asymbp__error(ds->ctx, ASYMBP_E_NOMEM, "dataset_shuffle: out of memory");
    /* The same swaps as asymbp_data_permutation, applied to the rows themselves. */
    for (i = ds->n; i > 1; i--) {
        size_t j = asymbp__rng_below(rng, (uint32_t)i);
        int32_t t;
        if (j == i - 1) continue;
        memcpy(tmp, ds->x + (i - 1) * dim, bytes);
        memcpy(ds->x + (i - 1) * dim, ds->x + j * dim, bytes);
        memcpy(ds->x + j * dim, tmp, bytes);
        t = ds->y[i - 1];
        ds->y[i - 1] = ds->y[j];
        ds->y[j] = t;
    }
    asymbp__free(ds->ctx, tmp);
    return ASYMBP_OK;
}

asymbp_status_t asymbp_dataset_shuffle_seed(asymbp_dataset_t *ds, uint64_t seed)
{
    asymbp_rng_t rng;
    if (!ds) return ASYMBP_E_INVALID;
    rng.ctx = ds->ctx;
    asymbp__rng_seed(&rng, seed, SHUFFLE_STREAM);
    return asymbp_dataset_shuffle(ds, &rng);
}

/* ---- validation split ------------------------------------------------------------------------- */

/* Per-class quotas summing to n_val: floor of the proportional share, then one more for the
 * classes with the largest remainders (ties: lower class first). */
static void stratified_quotas(const size_t *counts, size_t k, size_t n, size_t n_val, size_t *quota, size_t *rem)
{
    size_t c, given = 0, left;
    for (c = 0; c < k; c++) {
        /* n_val*counts[c] fits: both are <= n < 2^32. */
        uint64_t p = (uint64_t)n_val * counts[c];
        quota[c] = (size_t)(p / n);
        rem[c] = (size_t)(p % n);
        given += quota[c];
    }
    for (left = n_val - given; left > 0; left--) {
        size_t best = k;
        for (c = 0; c < k; c++)
            if (rem[c] > 0 && (best == k || rem[c] > rem[best])) best = c;
        if (best == k) break; /* cannot happen: the remainders add up to `left` whole samples */
        quota[best]++;
        rem[best] = 0;
    }
}

asymbp_status_t asymbp_dataset_split(const asymbp_dataset_t *ds, size_t n_val, uint64_t seed, int stratified,
                                     asymbp_dataset_t **rest, asymbp_dataset_t **val)
{
    asymbp_ctx_t *ctx;
    asymbp_rng_t rng;
    size_t *perm = NULL, *counts = NULL, *quota = NULL, *rem = NULL, *ri, *vi;
    unsigned char *is_val = NULL;
    size_t i, nr = 0, nv = 0;
    asymbp_status_t st;
    if (rest) *rest = NULL;
    if (val) *val = NULL;
    if (!ds) return ASYMBP_E_INVALID;
    ctx = ds->ctx;
    if (!rest || !val) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_split: %s is NULL", rest ? "val" : "rest");
    if (n_val < 1 || n_val >= ds->n)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_split: validation size %zu must be in 1..%zu (the set has %zu samples)",
                             n_val, ds->n - 1, ds->n);
    if ((uint64_t)ds->n > UINT32_MAX)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_split: %zu samples; at most 2^32-1 supported", ds->n);
    perm = asymbp__alloc(ctx, ds->n * sizeof *perm);
    is_val = asymbp__calloc(ctx, ds->n, 1);
    if (stratified) {
        counts = asymbp__alloc(ctx, ds->classes * sizeof *counts);
        quota = asymbp__alloc(ctx, ds->classes * sizeof *quota);
        rem = asymbp__alloc(ctx, ds->classes * sizeof *rem);
    }
    if (!perm || !is_val || (stratified && (!counts || !quota || !rem))) {
        st = asymbp__error(ctx, ASYMBP_E_NOMEM, "dataset_split: out of memory");
        goto done;
    }
    rng.ctx = ctx;
    asymbp__rng_seed(&rng, seed, SPLIT_STREAM);
    permute(&rng, perm, ds->n);
    if (stratified) {
        memset(counts, 0, ds->classes * sizeof *counts);
        for (i = 0; i < ds->n; i++) counts[ds->y[i]]++;
        stratified_quotas(counts, ds->classes, ds->n, n_val, quota, rem);
        for (i = 0; i < ds->n; i++) {
            size_t c = (size_t)ds->y[perm[i]];
            if (quota[c] > 0) {
                quota[c]--;
                is_val[perm[i]] = 1;
            }
        }
    } else {
        for (i = 0; i < n_val; i++) is_val[perm[i]] = 1;
    }
    /* Reuse perm for the two index lists (validation first, exactly n_val of them), both in
     * ascending order so the outputs keep the original relative order. */
    vi = perm;
    ri = perm + n_val;
    for (i = 0; i < ds->n; i++) {
        if (is_val[i]) vi[nv++] = i;
        else ri[nr++] = i;
    }
    st = asymbp_dataset_subset(ds, ri, nr, rest);
    if (st == ASYMBP_OK) st = asymbp_dataset_subset(ds, vi, nv, val);
    if (st != ASYMBP_OK) {
        asymbp_dataset_destroy(*rest);
        *rest = NULL;
    }
done:
    asymbp__free(ctx, perm);
    asymbp__free(ctx, is_val);
    asymbp__free(ctx, counts);
    asymbp__free(ctx, quota);
    asymbp__free(ctx, rem);
    return st;
}
