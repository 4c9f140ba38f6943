/* Regression tests for defects found by attacking the library from outside (issue 12): hostile
 * model files must be refused before anything large is allocated, a folder is not a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "test_util.h"
#include "core/core_impl.h"

/* An allocator that tracks the bytes live and their peak, and refuses any single request above
 * `refuse_above` (counted in `refused`), so a test can assert what a call allocated. */
typedef struct byte_alloc {
    size_t live, peak, refuse_above, refused;
} byte_alloc_t;

static void *ba_alloc(void *user, size_t size, size_t align)
{
    byte_alloc_t *b = user;
    size_t *p;
    (void)align;
    if (size > b->refuse_above) {
        b->refused++;
        return NULL;
    }
    /* 64-byte header keeps the caller's block 64-byte aligned and remembers its size */
    if (posix_memalign((void **)&p, 64, size + 64) != 0) return NULL;
    p[0] = size;
    b->live += size;
    if (b->live > b->peak) b->peak = b->live;
    return (unsigned char *)p + 64;
}

static void ba_free(void *user, void *ptr)
{
    byte_alloc_t *b = user;
    size_t *p = (size_t *)(void *)((unsigned char *)ptr - 64);
    b->live -= p[0];
    free(p);
}

static asymbp_ctx_t *byte_ctx(byte_alloc_t *b)
{
    asymbp_allocator_t a = ASYMBP_ALLOCATOR_INIT;
    asymbp_ctx_t *ctx = NULL;
    a.alloc = ba_alloc;
    a.free = ba_free;
    a.user = b;
    ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
    return ctx;
}

/* a folder in the run's scratch folder (test_util.h), removed by the test */
static void tmp_dir(char *buf, size_t n)
{
    test_tmpdir_make(buf, n, "rel");
}

/* Re-write the model file at `in` into `out` with the NETS chunk's input shape and class count
 * replaced (the checksum recomputed, so only the loader's own checks can refuse it). */
static void forge_shape(asymbp_ctx_t *ctx, const char *in, const char *out, uint32_t kind, const uint64_t dims[4])
{
    unsigned char *data = NULL;
    asymbp__rbuf_t area;
    asymbp__wbuf_t w;
    size_t pos = 0;
    ck_assert_int_eq(asymbp__file_read(ctx, in, ASYMBP__FILE_MODEL, &data, &area), ASYMBP_OK);
    asymbp__wbuf_init(&w, ctx);
    while (pos + 12 <= area.len) {
        const unsigned char *h = area.p + pos;
        uint64_t n = (uint64_t)h[4] | (uint64_t)h[5] << 8 | (uint64_t)h[6] << 16 | (uint64_t)h[7] << 24 |
                     (uint64_t)h[8] << 32 | (uint64_t)h[9] << 40 | (uint64_t)h[10] << 48 | (uint64_t)h[11] << 56;
        if (memcmp(h, "NETS", 4) == 0) {
            asymbp__rbuf_t c = { h + 12, (size_t)n, 0, 0 };
            char spec[4096];
            uint32_t version = asymbp__rbuf_u32(&c);
            size_t cp = asymbp__wbuf_chunk_begin(&w, "NETS");
            asymbp__rbuf_str(&c, spec, sizeof spec);
            asymbp__wbuf_u32(&w, version);
            asymbp__wbuf_str(&w, spec);
            for (int i = 0; i < 4; i++) asymbp__wbuf_u64(&w, dims[i]);
            asymbp__wbuf_u32(&w, 0);
            asymbp__wbuf_chunk_end(&w, cp);
            ck_assert_int_eq(c.failed, 0);
        } else {
            asymbp__wbuf_put(&w, h, 12 + (size_t)n);
        }
        pos += 12 + (size_t)n;
    }
    ck_assert_int_eq(asymbp__file_write_atomic(ctx, out, kind, &w), ASYMBP_OK);
    asymbp__wbuf_free(&w);
    asymbp__free(ctx, data);
}

/* A small model file whose stored architecture claims a huge input (so its first dense layer
 * would need billions of weights) must be refused as malformed without allocating more than a
 * small multiple of the file's size: before the fix the loader built and initialised the whole
 * net (20 s and 2 GiB for a 705-byte file). */
START_TEST(test_hostile_model_shape)
{
    static const uint64_t shapes[][4] = {
        { 100000000, 1, 1, 3 },        /* fc8 over 1e8 inputs: 3.2 GB of weights */
        { 4, 1, 1, 2147483647 },       /* a classifier with 2^31 - 1 classes */
        { 65536, 65536, 1, 3 },        /* 2^32 inputs */
    };
    byte_alloc_t ba = { 0, 0, (size_t)64 << 20, 0 };
    asymbp_ctx_t *ctx = byte_ctx(&ba);
    asymbp_net_t *net = NULL, *back = NULL;
    char dir[4200], good[4300], bad[4300];
    struct stat sb;
    tmp_dir(dir, sizeof dir);
    snprintf(good, sizeof good, "%s/good.asymbp", dir);
    snprintf(bad, sizeof bad, "%s/bad.asymbp", dir);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "fc8,relu", 4, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_model_save(net, good), ASYMBP_OK);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        for (uint32_t kind = ASYMBP__FILE_MODEL; kind <= ASYMBP__FILE_CHECKPOINT; kind++) {
            size_t before = ba.live;
            forge_shape(ctx, good, bad, kind, shapes[k]);
            ck_assert_int_eq(stat(bad, &sb), 0);
            ba.peak = ba.live;
            ck_assert_int_eq(asymbp_model_load(ctx, bad, &back), ASYMBP_E_FORMAT);
            ck_assert_ptr_null(back);
            ck_assert_msg(ba.refused == 0, "shape %zu: the loader asked for a block above 64 MiB", k);
            ck_assert_msg(ba.peak - before <= 64 * (size_t)sb.st_size + 65536,
                          "shape %zu: loading a %lld-byte file allocated %zu bytes at peak", k, (long long)sb.st_size,
                          ba.peak - before);
            ck_assert_msg(strstr(asymbp_ctx_last_error(ctx), "more than the file holds") != NULL, "message: %s",
                          asymbp_ctx_last_error(ctx));
            ck_assert_uint_eq(ba.live, before);
        }
    }
    /* the untouched file still loads */
    ck_assert_int_eq(asymbp_model_load(ctx, good, &back), ASYMBP_OK);
    asymbp_net_destroy(back);
    asymbp_net_destroy(net);
    test_tmpdir_remove(dir);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* A folder given as a model file: an I/O error that says so (before: "out of memory for
 * 9223372036854775807 bytes"). */
START_TEST(test_folder_is_not_a_model)
{
    byte_alloc_t ba = { 0, 0, (size_t)64 << 20, 0 };
    asymbp_ctx_t *ctx = byte_ctx(&ba);
    asymbp_net_t *net = NULL;
    char dir[4200];
    size_t before = ba.live;
    tmp_dir(dir, sizeof dir);
    ck_assert_int_eq(asymbp_model_load(ctx, dir, &net), ASYMBP_E_IO);
    ck_assert_ptr_null(net);
    ck_assert_msg(strstr(asymbp_ctx_last_error(ctx), "is a folder") != NULL, "message: %s", asymbp_ctx_last_error(ctx));
    ck_assert_uint_eq(ba.refused, 0);
    ck_assert_uint_eq(ba.live, before);
    test_tmpdir_remove(dir);
    asymbp_ctx_destroy(ctx);
}
END_TEST

Suite *asymbp_test_reliability_suite(void);
Suite *asymbp_test_reliability_suite(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hostile_model_shape);
    tcase_add_test(tc, test_folder_is_not_a_model);
    suite_add_tcase(s, tc);
    return s;
}
