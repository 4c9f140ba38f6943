/* libFuzzer target: the CSV data reader on arbitrary bytes (plain, or gzip when the input starts
 * with the gzip magic).  Build for fuzzing:
 *   clang -fsanitize=fuzzer,address,undefined -std=c99 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       tests/fuzz/data_csv.c src/(all)/(all).c $(pkg-config --libs openblas) -lz -lm
 * or with a plain C compiler and tests/fuzz/replay.c, which feeds it every file of a corpus. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "asymbp/asymbp.h"
#include "asymbp/data.h"
#include "core/core_impl.h"
#include "data/data_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Invariants of a data set the reader accepted; a violation is a bug: abort so the fuzzer stops. */
static void check(const asymbp_dataset_t *ds, size_t classes)
{
    size_t n = asymbp_dataset_count(ds), dim = asymbp_dataset_sample_size(ds), k = asymbp_dataset_classes(ds), i;
    const float *x = asymbp_dataset_features(ds);
    const int32_t *y = asymbp_dataset_labels(ds);
    if (n == 0 || dim == 0 || k == 0 || (classes && k != classes)) abort();
    for (i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= k) abort();
    for (i = 0; i < n * dim; i++)
        if (!isfinite(x[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *ds = NULL;
    unsigned char *plain = NULL;
    const unsigned char *text = data;
    size_t len = size;
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 0;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        if (asymbp__data_gunzip(ctx, "fuzz.csv.gz", data, size, &plain, &len) != ASYMBP_OK) {
            if (asymbp_ctx_last_error(ctx)[0] == '\0') abort(); /* every failure explains itself */
            asymbp_ctx_destroy(ctx);
            return 0;
        }
        text = plain;
    }
    /* Inferred class count, then a fixed one (exercises the range check). */
    if (asymbp__csv_parse(ctx, (const char *)text, len, "fuzz.csv", 0, &ds) == ASYMBP_OK) {
        check(ds, 0);
        asymbp_dataset_destroy(ds);
    } else if (ds || asymbp_ctx_last_error(ctx)[0] == '\0') {
        abort();
    }
    ds = NULL;
    if (asymbp__csv_parse(ctx, (const char *)text, len, "fuzz.csv", 3, &ds) == ASYMBP_OK) {
        check(ds, 3);
        asymbp_dataset_destroy(ds);
    } else if (ds) {
        abort();
    }
    asymbp__free(ctx, plain);
    asymbp_ctx_destroy(ctx);
    return 0;
}
