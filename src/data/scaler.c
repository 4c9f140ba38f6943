/* Standardisation with training-set statistics: mean and population standard deviation per
 * channel or per feature, computed in double with two passes (exact 0 for constant columns). */
#include <math.h>
#include <string.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

#define SCALER_MIN_STD 1e-12

static asymbp_status_t scaler_alloc(asymbp_ctx_t *ctx, asymbp_scaler_mode_t mode, size_t count, asymbp_scaler_t **out)
{
    asymbp_scaler_t *sc = asymbp__calloc(ctx, 1, sizeof *sc);
    if (!sc) return asymbp__error(ctx, ASYMBP_E_NOMEM, "scaler: out of memory");
    sc->ctx = ctx;
    sc->mode = mode;
    sc->count = count;
    sc->mean = asymbp__calloc(ctx, count, sizeof(float));
    sc->div = asymbp__calloc(ctx, count, sizeof(float));
    if (!sc->mean || !sc->div) {
        asymbp_scaler_destroy(sc);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "scaler: out of memory for %zu statistics", count);
    }
    *out = sc;
    return ASYMBP_OK;
}

/* Statistics are indexed k in 0..count-1; element j of a sample belongs to k = j / group. */
static void layout(const asymbp_dataset_t *ds, asymbp_scaler_mode_t mode, size_t *count, size_t *group)
{
    if (mode == ASYMBP_SCALER_PER_CHANNEL) {
        *count = (size_t)ds->c;
        *group = ds->dim / (size_t)ds->c;
    } else {
        *count = ds->dim;
        *group = 1;
    }
}

asymbp_status_t asymbp_scaler_fit(asymbp_ctx_t *ctx, const asymbp_dataset_t *train, asymbp_scaler_mode_t mode,
                                  asymbp_scaler_t **out)
{
    asymbp_scaler_t *sc;
    double *acc;
    size_t count, group, s, k, g, j;
    double per;
    asymbp_status_t st;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "scaler_fit: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, train, "train");
    if (mode != ASYMBP_SCALER_PER_CHANNEL && mode != ASYMBP_SCALER_PER_FEATURE)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "scaler_fit: unknown mode %d", (int)mode);
    layout(train, mode, &count, &group);
    if ((st = scaler_alloc(ctx, mode, count, &sc)) != ASYMBP_OK) return st;
    acc = asymbp__calloc(ctx, 2 * count, sizeof(double));
    if (!acc) {
        asymbp_scaler_destroy(sc);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "scaler_fit: out of memory");
    }
    per = (double)train->n * (double)group;
    for (s = 0; s < train->n; s++) {
        const float *x = train->x + s * train->dim;
        for (k = 0, j = 0; k < count; k++) {
            double sum = 0.0;
            for (g = 0; g < group; g++, j++) sum += x[j];
            acc[k] += sum;
        }
    }
    for (k = 0; k < count; k++) acc[k] /= per;
    for (s = 0; s < train->n; s++) {
        const float *x = train->x + s * train->dim;
        for (k = 0, j = 0; k < count; k++) {
            double sum = 0.0, m = acc[k];
            for (g = 0; g < group; g++, j++) {
                double d = x[j] - m;
                sum += d * d;
            }
            acc[count + k] += sum;
        }
    }
    for (k = 0; k < count; k++) {
        double sd = sqrt(acc[count + k] / per);
        sc->mean[k] = (float)acc[k];
        sc->div[k] = (sd > SCALER_MIN_STD) ? (float)sd : 1.0f;
        if (!(sc->div[k] > 0.0f)) sc->div[k] = 1.0f; /* a std below the float range */
    }
    asymbp__free(ctx, acc);
    *out = sc;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_scaler_create(asymbp_ctx_t *ctx, asymbp_scaler_mode_t mode, size_t count, const float *mean,
                                     const float *divisor, asymbp_scaler_t **out)
{
    asymbp_scaler_t *sc;
    asymbp_status_t st;
    size_t k;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "scaler_create: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, mean, "mean");
    ASYMBP_CHECK_NULL(ctx, divisor, "divisor");
    if (mode != ASYMBP_SCALER_PER_CHANNEL && mode != ASYMBP_SCALER_PER_FEATURE)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "scaler_create: unknown mode %d", (int)mode);
    if (count == 0) return asymbp__error(ctx, ASYMBP_E_INVALID, "scaler_create: count is 0");
    for (k = 0; k < count; k++)
        if (!isfinite(mean[k]) || !isfinite(divisor[k]) || !(divisor[k] > 0.0f))
            return asymbp__error(ctx, ASYMBP_E_RANGE, "scaler_create: statistic %zu has mean %g and divisor %g (need finite, "
                                 "divisor > 0)", k, (double)mean[k], (double)divisor[k]);
    if ((st = scaler_alloc(ctx, mode, count, &sc)) != ASYMBP_OK) return st;
    memcpy(sc->mean, mean, count * sizeof(float));
    memcpy(sc->div, divisor, count * sizeof(float));
    *out = sc;
    return ASYMBP_OK;
}

void asymbp_scaler_destroy(asymbp_scaler_t *sc)
{
    if (!sc) return;
    asymbp__free(sc->ctx, sc->mean);
    asymbp__free(sc->ctx, sc->div);
    asymbp__free(sc->ctx, sc);
}

asymbp_scaler_mode_t asymbp_scaler_mode(const asymbp_scaler_t *sc) { return sc ? sc->mode : ASYMBP_SCALER_PER_CHANNEL; }
size_t asymbp_scaler_count(const asymbp_scaler_t *sc) { return sc ? sc->count : 0; }
const float *asymbp_scaler_mean(const asymbp_scaler_t *sc) { return sc ? sc->mean : NULL; }
const float *asymbp_scaler_divisor(const asymbp_scaler_t *sc) { return sc ? sc->div : NULL; }

asymbp_status_t asymbp_scaler_apply_array(const asymbp_scaler_t *sc, float *x, size_t n, int64_t channels,
                                          int64_t height, int64_t width)
{
    size_t dim, count, group, s, k, g;
    if (!sc) return ASYMBP_E_INVALID;
    if (n == 0) return ASYMBP_OK;
    ASYMBP_CHECK_NULL(sc->ctx, x, "x");
    if (channels < 1 || height < 1 || width < 1 || asymbp__mul_size((size_t)channels, (size_t)height, &dim) ||
        asymbp__mul_size(dim, (size_t)width, &dim))
        return asymbp__error(sc->ctx, ASYMBP_E_SHAPE, "scaler_apply: bad sample shape %lld x %lld x %lld", (long long)channels,
                             (long long)height, (long long)width);
    count = sc->mode == ASYMBP_SCALER_PER_CHANNEL ? (size_t)channels : dim;
    if (count != sc->count)
        return asymbp__error(sc->ctx, ASYMBP_E_SHAPE, "scaler_apply: the statistics are for %zu %s, the data has %zu "
                             "(sample shape %lld x %lld x %lld)", sc->count,
                             sc->mode == ASYMBP_SCALER_PER_CHANNEL ? "channels" : "features", count,
                             (long long)channels, (long long)height, (long long)width);
    group = dim / count;
    for (s = 0; s < n; s++) {
        float *restrict v = x + s * dim;
        for (k = 0; k < count; k++) {
            const float m = sc->mean[k], d = sc->div[k];
            float *restrict vk = v + k * group;
            for (g = 0; g < group; g++) vk[g] = (vk[g] - m) / d;
        }
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp_scaler_apply(const asymbp_scaler_t *sc, asymbp_dataset_t *ds)
{
    if (!sc) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(sc->ctx, ds, "ds");
    return asymbp_scaler_apply_array(sc, ds->x, ds->n, ds->c, ds->h, ds->w);
}

asymbp_status_t asymbp_dataset_standardize(asymbp_dataset_t *train, asymbp_dataset_t *test, asymbp_scaler_mode_t mode,
                                           asymbp_scaler_t **scaler)
{
    asymbp_scaler_t *sc;
    asymbp_status_t st;
    if (scaler) *scaler = NULL;
    if (!train) return ASYMBP_E_INVALID;
    if (test && (test->c != train->c || (mode == ASYMBP_SCALER_PER_FEATURE && test->dim != train->dim)))
        return asymbp__error(train->ctx, ASYMBP_E_SHAPE, "dataset_standardize: test samples are %lld x %lld x %lld, training "
                             "samples %lld x %lld x %lld", (long long)test->c, (long long)test->h, (long long)test->w,
                             (long long)train->c, (long long)train->h, (long long)train->w);
    if ((st = asymbp_scaler_fit(train->ctx, train, mode, &sc)) != ASYMBP_OK) return st;
    st = asymbp_scaler_apply(sc, train);
    if (st == ASYMBP_OK && test) st = asymbp_scaler_apply(sc, test);
    if (st == ASYMBP_OK && scaler) *scaler = sc;
    else asymbp_scaler_destroy(sc);
    return st;
}

/* ---- In saved files ------------------------------------------------------------------------------ */

#define SCAL_VERSION 1u

asymbp_status_t asymbp__scaler_write(const asymbp_scaler_t *sc, asymbp__wbuf_t *w)
{
    size_t pos;
    if (!sc || !w) return ASYMBP_E_INVALID;
    pos = asymbp__wbuf_chunk_begin(w, ASYMBP__CHUNK_SCALER);
    asymbp__wbuf_u32(w, SCAL_VERSION);
    asymbp__wbuf_u32(w, (uint32_t)sc->mode);
    asymbp__wbuf_u64(w, (uint64_t)sc->count);
    asymbp__wbuf_f32s(w, sc->mean, sc->count);
    asymbp__wbuf_f32s(w, sc->div, sc->count);
    asymbp__wbuf_chunk_end(w, pos);
    if (w->failed) return asymbp__error(w->ctx, ASYMBP_E_NOMEM, "scaler: out of memory while saving");
    return ASYMBP_OK;
}

asymbp_status_t asymbp__scaler_read(asymbp_ctx_t *ctx, const asymbp__rbuf_t *area, asymbp_scaler_t **out)
{
    asymbp__rbuf_t r;
    asymbp_scaler_t *sc;
    uint32_t version, mode;
    uint64_t count;
    asymbp_status_t st;
    size_t k;
    *out = NULL;
    if (asymbp__rbuf_chunk(area, ASYMBP__CHUNK_SCALER, &r) != 0) return ASYMBP_OK;
    version = asymbp__rbuf_u32(&r);
    mode = asymbp__rbuf_u32(&r);
    count = asymbp__rbuf_u64(&r);
    if (r.failed) return asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: the saved standardisation is truncated");
    if (version != SCAL_VERSION)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: saved standardisation has format version %u (this library: %u)",
                             (unsigned)version, SCAL_VERSION);
    if (mode != ASYMBP_SCALER_PER_CHANNEL && mode != ASYMBP_SCALER_PER_FEATURE)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: saved standardisation has unknown mode %u", (unsigned)mode);
    /* the statistics must fill the rest of the chunk exactly */
    if (count == 0 || count > (r.len - r.pos) / 8 || (r.len - r.pos) != 8 * count)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: saved standardisation claims %llu statistics in %zu bytes",
                             (unsigned long long)count, r.len - r.pos);
    if ((st = scaler_alloc(ctx, (asymbp_scaler_mode_t)mode, (size_t)count, &sc)) != ASYMBP_OK) return st;
    asymbp__rbuf_f32s(&r, sc->mean, sc->count);
    asymbp__rbuf_f32s(&r, sc->div, sc->count);
    for (k = 0; k < sc->count && !r.failed; k++)
        if (!isfinite(sc->mean[k]) || !isfinite(sc->div[k]) || !(sc->div[k] > 0.0f)) {
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: saved statistic %zu has mean %g and divisor %g", k,
                               (double)sc->mean[k], (double)sc->div[k]);
            asymbp_scaler_destroy(sc);
            return st;
        }
    if (r.failed) {
        asymbp_scaler_destroy(sc);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "scaler: the saved standardisation is truncated");
    }
    *out = sc;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__scaler_fits(asymbp_ctx_t *ctx, const asymbp_scaler_t *sc, const char *who, asymbp_status_t code,
                                    int64_t channels, int64_t height, int64_t width)
{
    size_t want = sc->mode == ASYMBP_SCALER_PER_CHANNEL ? (size_t)channels : (size_t)(channels * height * width);
    if (sc->count == want) return ASYMBP_OK;
    return asymbp__error(ctx, code, "%s: the standardisation has %zu %s statistics, inputs of %lld x %lld x %lld need %zu",
                         who, sc->count, sc->mode == ASYMBP_SCALER_PER_CHANNEL ? "per-channel" : "per-feature",
                         (long long)channels, (long long)height, (long long)width, want);
}
