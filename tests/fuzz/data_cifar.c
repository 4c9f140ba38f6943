/* libFuzzer target: the CIFAR-10/100 binary reader.  Byte 0 picks the kind (CIFAR-10, CIFAR-100
 * fine, CIFAR-100 coarse), the rest is the file.  An accepted file gives len / record_size samples
 * with pixels in [0, 1] and labels below the kind's class count; a refusal has a message.  Build
 * as data_csv.c says. */
#include <stdint.h>
#include <stdlib.h>
#include "asymbp/asymbp.h"
#include "core/core_impl.h"
#include "data/data_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const asymbp_cifar_kind_t kinds[3] = { ASYMBP_CIFAR10, ASYMBP_CIFAR100_FINE, ASYMBP_CIFAR100_COARSE };
    static const size_t classes[3] = { 10, 100, 20 }, label_bytes[3] = { 1, 2, 2 };
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *ds = NULL;
    asymbp_cifar_kind_t kind;
    size_t records = 0, k;
    if (size < 1 || asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK) return 0;
    k = data[0] % 3;
    kind = kinds[k];
    if (asymbp__cifar_parse(ctx, data + 1, size - 1, "fuzz.bin", kind, &records, NULL, 0) != ASYMBP_OK) {
        if (asymbp_ctx_last_error(ctx)[0] == '\0' || records != 0) abort();
        asymbp_ctx_destroy(ctx);
        return 0;
    }
    if (records * (label_bytes[k] + 3072) != size - 1 || records == 0) abort();
    if (asymbp__dataset_alloc(ctx, records, 3, 32, 32, classes[k], &ds) == ASYMBP_OK) {
        size_t again = 0;
        if (asymbp__cifar_parse(ctx, data + 1, size - 1, "fuzz.bin", kind, &again, ds, 0) != ASYMBP_OK || again != records) abort();
        for (size_t i = 0; i < records; i++)
            if (asymbp_dataset_labels(ds)[i] < 0 || (size_t)asymbp_dataset_labels(ds)[i] >= classes[k]) abort();
        for (size_t i = 0; i < records * 3072; i++) {
            float v = asymbp_dataset_features(ds)[i];
            if (!(v >= 0.0f && v <= 1.0f)) abort();
        }
        asymbp_dataset_destroy(ds);
    }
    asymbp_ctx_destroy(ctx);
    return 0;
}
