/* Data: data sets from arrays, IDX / CSV / CIFAR loaders (fixtures written here, and the bundled
 * sets), bad input, folders and names, standardisation, shuffling, splits, OOM. */
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "test_util.h"
#include "asymbp/data.h"
#include "core/core_impl.h"
#include "data/data_impl.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

static const char *srcdir(void)
{
    const char *s = getenv("ASYMBP_SRCDIR");
    return (s && *s) ? s : ".";
}

typedef struct tmpdir {
    char path[1024];
} tmpdir_t;

/* A scratch folder of the run (test_util.h), removed with everything in it by tmp_remove. */
static void tmp_make(tmpdir_t *t)
{
    test_tmpdir_make(t->path, sizeof t->path, "data");
}

static void tmp_remove(tmpdir_t *t)
{
    test_tmpdir_remove(t->path);
}

/* Path of name inside the temp dir, in a static rotating buffer. */
static const char *tpath(const tmpdir_t *t, const char *name)
{
    static char bufs[8][1200];
    static int at;
    char *b = bufs[at++ & 7];
    ck_assert_int_lt(snprintf(b, sizeof bufs[0], "%s/%s", t->path, name), (int)sizeof bufs[0]);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (len) ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    if (len) ck_assert_int_eq(gzwrite(g, data, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX image file of n images rows x cols with pixel (i, j) = (7i + 13j + 1) mod 256, and a
 * label file with label i mod k.  Buffers are malloc'ed; lengths returned. */
static unsigned char pix_at(size_t i, size_t j) { return (unsigned char)((7 * i + 13 * j + 1) % 256); }

static unsigned char *make_idx_images(uint32_t n, uint32_t rows, uint32_t cols, size_t *len)
{
    size_t per = (size_t)rows * cols, i, j;
    unsigned char *b = malloc(16 + n * per);
    put_be32(b, 0x803);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (i = 0; i < n; i++)
        for (j = 0; j < per; j++) b[16 + i * per + j] = pix_at(i, j);
    *len = 16 + n * per;
    return b;
}

static unsigned char *make_idx_labels(uint32_t n, unsigned k, size_t *len)
{
    unsigned char *b = malloc(8 + n);
    size_t i;
    put_be32(b, 0x801);
    put_be32(b + 4, n);
    for (i = 0; i < n; i++) b[8 + i] = (unsigned char)(i % k);
    *len = 8 + n;
    return b;
}

#define ck_assert_msg_has(ctx, text) \
    ck_assert_msg(strstr(asymbp_ctx_last_error(ctx), (text)) != NULL, "message '%s' lacks '%s'", asymbp_ctx_last_error(ctx), (text))

/* ---- data sets from arrays -------------------------------------------------------------------- */

START_TEST(test_create_accessors)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *ds = NULL;
    float x[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    int32_t y[3] = { 2, 0, 2 };
    int64_t c, h, w;
    size_t counts[3];
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, &ds), ASYMBP_OK);
    x[0] = -1.0f;
    y[0] = 1;
    ck_assert_uint_eq(asymbp_dataset_count(ds), 3);
    ck_assert_uint_eq(asymbp_dataset_sample_size(ds), 4);
    ck_assert_uint_eq(asymbp_dataset_classes(ds), 3);
    ck_assert_int_eq(asymbp_dataset_shape(ds, &c, &h, &w), ASYMBP_OK);
    ck_assert(c == 2 && h == 1 && w == 2);
    ck_assert_int_eq(asymbp_dataset_shape(ds, NULL, NULL, &w), ASYMBP_OK);
    ck_assert(asymbp_dataset_features(ds)[0] == 1.0f); /* copied, not borrowed */
    ck_assert(asymbp_dataset_features(ds)[11] == 12.0f);
    ck_assert_int_eq(asymbp_dataset_labels(ds)[0], 2);
    ck_assert_ptr_eq(asymbp_dataset_features_mut(ds), asymbp_dataset_features(ds));
    ck_assert_str_eq(asymbp_dataset_name(ds), "");
    ck_assert_int_eq(asymbp_dataset_set_name(ds, "toy"), ASYMBP_OK);
    ck_assert_str_eq(asymbp_dataset_name(ds), "toy");
    ck_assert_int_eq(asymbp_dataset_set_name(ds, NULL), ASYMBP_OK);
    ck_assert_str_eq(asymbp_dataset_name(ds), "");
    ck_assert_int_eq(asymbp_dataset_class_counts(ds, counts), ASYMBP_OK);
    ck_assert(counts[0] == 1 && counts[1] == 0 && counts[2] == 2);
    asymbp_dataset_destroy(ds);

    /* NULL accessors */
    ck_assert_uint_eq(asymbp_dataset_count(NULL), 0);
    ck_assert_ptr_null(asymbp_dataset_features(NULL));
    ck_assert_str_eq(asymbp_dataset_name(NULL), "");
    ck_assert_int_eq(asymbp_dataset_shape(NULL, &c, &h, &w), ASYMBP_E_INVALID);
    asymbp_dataset_destroy(NULL);

    /* misuse */
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, NULL, y, &ds), ASYMBP_E_INVALID);
    ck_assert_ptr_null(ds);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 0, 2, 1, 2, 3, x, y, &ds), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 0, 1, 2, 3, x, y, &ds), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 0, x, y, &ds), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, INT64_MAX / 2, 4, 4, 3, x, y, &ds), ASYMBP_E_SHAPE);
    y[1] = 3;
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, &ds), ASYMBP_E_RANGE);
    ck_assert_msg_has(ctx, "label 3 of sample 1");
    y[1] = -1;
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, &ds), ASYMBP_E_RANGE);
    y[1] = 0;
    x[6] = NAN;
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, &ds), ASYMBP_E_RANGE);
    ck_assert_msg_has(ctx, "feature 2 of sample 1 is NaN");
    x[6] = INFINITY;
    ck_assert_int_eq(asymbp_dataset_create(ctx, 3, 2, 1, 2, 3, x, y, &ds), ASYMBP_E_RANGE);
    ck_assert_ptr_null(ds);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* n samples, C x H x W, feature j of sample i = 1000 i + j (so a row identifies its sample), label i % k. */
static asymbp_dataset_t *make_ids(asymbp_ctx_t *ctx, size_t n, int64_t c, int64_t h, int64_t w, size_t k)
{
    size_t dim = (size_t)(c * h * w), i, j;
    float *x = malloc(n * dim * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    asymbp_dataset_t *ds = NULL;
    for (i = 0; i < n; i++) {
        for (j = 0; j < dim; j++) x[i * dim + j] = (float)(1000 * i + j);
        y[i] = (int32_t)(i % k);
    }
    ck_assert_int_eq(asymbp_dataset_create(ctx, n, c, h, w, k, x, y, &ds), ASYMBP_OK);
    free(x);
    free(y);
    return ds;
}

/* The sample id of row r (checks that the whole row is intact). */
static size_t row_id(const asymbp_dataset_t *ds, size_t r)
{
    size_t dim = asymbp_dataset_sample_size(ds), j;
    const float *x = asymbp_dataset_features(ds) + r * dim;
    size_t id = (size_t)(x[0] / 1000.0f);
    for (j = 0; j < dim; j++) ck_assert(x[j] == (float)(1000 * id + j));
    return id;
}

START_TEST(test_subset_head_gather)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *ds = make_ids(ctx, 10, 2, 1, 3, 4), *sub = NULL;
    size_t idx[4] = { 9, 0, 9, 4 }, bad[2] = { 1, 10 };
    float x[4 * 6];
    int32_t y[4];
    ck_assert_int_eq(asymbp_dataset_set_name(ds, "ids"), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_subset(ds, idx, 4, &sub), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(sub), 4);
    ck_assert_uint_eq(row_id(sub, 0), 9);
    ck_assert_uint_eq(row_id(sub, 1), 0);
    ck_assert_uint_eq(row_id(sub, 2), 9);
    ck_assert_uint_eq(row_id(sub, 3), 4);
    ck_assert_int_eq(asymbp_dataset_labels(sub)[3], 0);
    ck_assert_str_eq(asymbp_dataset_name(sub), "ids");
    ck_assert_uint_eq(asymbp_dataset_classes(sub), 4);
    asymbp_dataset_destroy(sub);
    ck_assert_int_eq(asymbp_dataset_subset(ds, bad, 2, &sub), ASYMBP_E_RANGE);
    ck_assert_msg_has(ctx, "index 10 (position 1)");
    ck_assert_ptr_null(sub);
    ck_assert_int_eq(asymbp_dataset_subset(ds, idx, 0, &sub), ASYMBP_E_INVALID);

    ck_assert_int_eq(asymbp_dataset_head(ds, 3, &sub), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(sub), 3);
    ck_assert_uint_eq(row_id(sub, 2), 2);
    asymbp_dataset_destroy(sub);
    ck_assert_int_eq(asymbp_dataset_head(ds, 100, &sub), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(sub), 10);
    asymbp_dataset_destroy(sub);

    ck_assert_int_eq(asymbp_dataset_gather(ds, idx, 4, x, y), ASYMBP_OK);
    ck_assert(x[0] == 9000.0f && x[6] == 0.0f && x[18 + 5] == 4005.0f);
    ck_assert(y[0] == 1 && y[1] == 0 && y[3] == 0);
    ck_assert_int_eq(asymbp_dataset_gather(ds, idx, 4, x, NULL), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_gather(ds, bad, 2, x, y), ASYMBP_E_RANGE);
    asymbp_dataset_destroy(ds);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- IDX --------------------------------------------------------------------------------------- */

START_TEST(test_idx_plain_and_gzip)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = NULL, *b = NULL;
    tmpdir_t t;
    size_t il, ll, i, j;
    unsigned char *img = make_idx_images(5, 3, 4, &il), *lbl = make_idx_labels(5, 3, &ll);
    int64_t c, h, w;
    tmp_make(&t);
    write_bytes(tpath(&t, "img"), img, il);
    write_bytes(tpath(&t, "lbl"), lbl, ll);
    /* gzip recognised by content: no .gz in the names */
    write_gz(tpath(&t, "img-z"), img, il);
    write_gz(tpath(&t, "lbl-z"), lbl, ll);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "lbl"), 0, &a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-z"), tpath(&t, "lbl-z"), 0, &b), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(a), 5);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 3);
    ck_assert_int_eq(asymbp_dataset_shape(a, &c, &h, &w), ASYMBP_OK);
    ck_assert(c == 1 && h == 3 && w == 4);
    ck_assert_str_eq(asymbp_dataset_name(a), "img");
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(asymbp_dataset_labels(a)[i], (int32_t)(i % 3));
        for (j = 0; j < 12; j++) ck_assert(asymbp_dataset_features(a)[i * 12 + j] == (float)pix_at(i, j) / 255.0f);
    }
    ck_assert(memcmp(asymbp_dataset_features(a), asymbp_dataset_features(b), 60 * sizeof(float)) == 0);
    ck_assert(memcmp(asymbp_dataset_labels(a), asymbp_dataset_labels(b), 5 * sizeof(int32_t)) == 0);
    asymbp_dataset_destroy(a);
    asymbp_dataset_destroy(b);
    /* a given class count is enforced */
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-z"), tpath(&t, "lbl-z"), 10, &a), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 10);
    asymbp_dataset_destroy(a);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "lbl"), 2, &a), ASYMBP_E_RANGE);
    ck_assert_ptr_null(a);
    ck_assert_msg_has(ctx, "lbl: label 2 of sample 2 (byte 10) is out of range 0..1");
    tmp_remove(&t);
    free(img);
    free(lbl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_idx_bad_input)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = NULL;
    tmpdir_t t;
    size_t il, ll, l4, gl;
    unsigned char *img = make_idx_images(5, 3, 4, &il), *lbl = make_idx_labels(5, 3, &ll), *lbl4 = make_idx_labels(4, 3, &l4);
    unsigned char *gz, junk[16] = { 'P', 'K', 3, 4 };
    tmp_make(&t);
    write_bytes(tpath(&t, "img"), img, il);
    write_bytes(tpath(&t, "lbl"), lbl, ll);

    /* missing file */
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "nope"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "nope: cannot open");
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "nope2"), 0, &a), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "nope2");
    /* a folder is not a file */
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, t.path, tpath(&t, "lbl"), 0, &a), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "folder");
    /* truncated image file: the message says where it ends and in which image */
    write_bytes(tpath(&t, "img-cut"), img, il - 5);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-cut"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "img-cut: truncated");
    ck_assert_msg_has(ctx, "ends at byte 71, in image 4");
    write_bytes(tpath(&t, "img-hdr"), img, 10);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-hdr"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "truncated IDX header");
    write_bytes(tpath(&t, "lbl-cut"), lbl, ll - 1);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "lbl-cut"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "lbl-cut: truncated");
    /* extra bytes */
    {
        unsigned char *longer = malloc(il + 3);
        memcpy(longer, img, il);
        memset(longer + il, 0, 3);
        write_bytes(tpath(&t, "img-long"), longer, il + 3);
        free(longer);
    }
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-long"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "3 unexpected bytes");
    /* counts that disagree */
    write_bytes(tpath(&t, "lbl4"), lbl4, l4);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "lbl4"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "has 5 images but");
    ck_assert_msg_has(ctx, "lbl4 has 4 labels");
    /* wrong magic: files swapped, and a non-IDX file */
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "lbl"), tpath(&t, "img"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "this is an IDX label file");
    write_bytes(tpath(&t, "zip"), junk, sizeof junk);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "zip"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "zip: wrong magic number 0x504b0304");
    img[2] = 0x0d; /* float elements */
    write_bytes(tpath(&t, "img-f"), img, il);
    img[2] = 0x08;
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-f"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "element type 0x0d");
    /* empty file, zero images */
    write_bytes(tpath(&t, "empty"), "", 0);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "empty"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "empty: empty file");
    write_gz(tpath(&t, "empty-z"), "", 0);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "empty-z"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "empty file");
    put_be32(img + 4, 0);
    write_bytes(tpath(&t, "img0"), img, 16);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img0"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "0 images");
    /* a huge announced size does not allocate: it is checked against the file size */
    put_be32(img + 4, 0xffffffffu);
    put_be32(img + 8, 0xffffffffu);
    write_bytes(tpath(&t, "img-huge"), img, il);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-huge"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    put_be32(img + 4, 5);
    put_be32(img + 8, 3);
    /* truncated and corrupt gzip */
    write_gz(tpath(&t, "img-z"), img, il);
    gz = read_all(tpath(&t, "img-z"), &gl);
    write_bytes(tpath(&t, "img-zcut"), gz, gl - 12);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-zcut"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "img-zcut: truncated gzip stream");
    gz[gl - 8] ^= 0xff; /* CRC */
    write_bytes(tpath(&t, "img-zcrc"), gz, gl);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img-zcrc"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "img-zcrc: corrupt gzip data");
    ck_assert_ptr_null(a);
    /* misuse */
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, NULL, tpath(&t, "lbl"), 0, &a), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_load_idx(ctx, tpath(&t, "img"), tpath(&t, "lbl"), 0, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_load_idx(NULL, tpath(&t, "img"), tpath(&t, "lbl"), 0, &a), ASYMBP_E_INVALID);
    free(gz);
    tmp_remove(&t);
    free(img);
    free(lbl);
    free(lbl4);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_gunzip_multimember)
{
    asymbp_ctx_t *ctx = test_ctx();
    tmpdir_t t;
    unsigned char *a, *b, *both, *out = NULL;
    size_t al, bl, ol;
    tmp_make(&t);
    write_gz(tpath(&t, "a"), "hello ", 6);
    write_gz(tpath(&t, "b"), "world", 5);
    a = read_all(tpath(&t, "a"), &al);
    b = read_all(tpath(&t, "b"), &bl);
    both = malloc(al + bl + 2);
    memcpy(both, a, al);
    memcpy(both + al, b, bl);
    ck_assert_int_eq(asymbp__data_gunzip(ctx, "ab", both, al + bl, &out, &ol), ASYMBP_OK);
    ck_assert_uint_eq(ol, 11);
    ck_assert(memcmp(out, "hello world", 11) == 0);
    asymbp__free(ctx, out);
    both[al + bl] = 'x';
    both[al + bl + 1] = 'y';
    ck_assert_int_eq(asymbp__data_gunzip(ctx, "ab", both, al + bl + 2, &out, &ol), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "2 unexpected bytes after the gzip stream");
    ck_assert_int_eq(asymbp__data_gunzip(ctx, "ab", (const unsigned char *)"xy", 2, &out, &ol), ASYMBP_E_FORMAT);
    free(a);
    free(b);
    free(both);
    tmp_remove(&t);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- CSV --------------------------------------------------------------------------------------- */

static const char *const csv_good =
    "a,b ,c,label\n"
    "1,2.5,-3e2,0\n"
    "\n"
    "  0.125 , 1e-05,7,2\r\n"
    "-0,.5,+4.,1\n"
    "1.0000001,123456789012345678901234,0.000000000000000000000000000000000000001,1"; /* no final newline */

START_TEST(test_csv_fixture)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = NULL, *b = NULL;
    tmpdir_t t;
    int64_t c, h, w;
    const float *x;
    const int32_t *y;
    tmp_make(&t);
    write_text(tpath(&t, "good.csv"), csv_good);
    write_gz(tpath(&t, "good.csv.gz"), csv_good, strlen(csv_good));
    ck_assert_int_eq(asymbp_dataset_load_csv(ctx, tpath(&t, "good.csv"), 0, &a), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_load_csv(ctx, tpath(&t, "good.csv.gz"), 0, &b), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(a), 4);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 3);
    ck_assert_int_eq(asymbp_dataset_shape(a, &c, &h, &w), ASYMBP_OK);
    ck_assert(c == 3 && h == 1 && w == 1);
    ck_assert_str_eq(asymbp_dataset_name(a), "good.csv");
    x = asymbp_dataset_features(a);
    y = asymbp_dataset_labels(a);
    ck_assert(x[0] == 1.0f && x[1] == 2.5f && x[2] == -300.0f && y[0] == 0);
    ck_assert(x[3] == 0.125f && x[4] == strtof("1e-05", NULL) && x[5] == 7.0f && y[1] == 2);
    ck_assert(x[6] == 0.0f && x[7] == 0.5f && x[8] == 4.0f && y[2] == 1);
    ck_assert(x[9] == strtof("1.0000001", NULL));
    ck_assert(x[10] == strtof("123456789012345678901234", NULL));
    ck_assert(x[11] == strtof("0.000000000000000000000000000000000000001", NULL)); /* a subnormal float */
    ck_assert(memcmp(x, asymbp_dataset_features(b), 12 * sizeof(float)) == 0);
    ck_assert(memcmp(y, asymbp_dataset_labels(b), 4 * sizeof(int32_t)) == 0);
    asymbp_dataset_destroy(a);
    asymbp_dataset_destroy(b);
    ck_assert_int_eq(asymbp_dataset_load_csv(ctx, tpath(&t, "good.csv"), 5, &a), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 5);
    asymbp_dataset_destroy(a);
    tmp_remove(&t);
    asymbp_ctx_destroy(ctx);
}
END_TEST

static int num(const char *s, float *v) { return asymbp__csv_number(s, s + strlen(s), v); }

/* The number parser against strtof: decimal forms of random floats, at every magnitude. */
START_TEST(test_csv_number_vs_strtof)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_rng_t *rng = NULL;
    char buf[64];
    int i, exact = 0, total = 0;
    float v;
    ck_assert_int_eq(asymbp_rng_create(ctx, 7, 0, &rng), ASYMBP_OK);
    for (i = 0; i < 20000; i++) {
        uint32_t bits = asymbp_rng_u32(rng);
        float f, ref;
        const char *fmt = (i % 3 == 0) ? "%.9g" : (i % 3 == 1) ? "%.6e" : "%.4f";
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f)) continue;
        snprintf(buf, sizeof buf, fmt, (double)f);
        ref = strtof(buf, NULL);
        if (!isfinite(ref)) continue;
        ck_assert_int_eq(asymbp__csv_number(buf, buf + strlen(buf), &v), 0);
        total++;
        if (v == ref) exact++;
        else ck_assert_msg(fabsf(v - ref) <= fabsf(ref) * 1.2e-7f + 1e-45f, "%s: %.9g vs %.9g", buf, (double)v, (double)ref);
    }
    ck_assert_int_ge(exact, total - total / 1000); /* essentially always correctly rounded */
    ck_assert_int_eq(num("nan", &v), 2);
    ck_assert_int_eq(num("-NaN", &v), 2);
    ck_assert_int_eq(num("Infinity", &v), 3);
    ck_assert_int_eq(num("1e39", &v), 3);
    ck_assert_int_eq(num("1e99999999", &v), 3);
    ck_assert_int_eq(num("1e-99999999", &v), 0);
    ck_assert(v == 0.0f);
    ck_assert_int_eq(num("1,5", &v), 1);
    ck_assert_int_eq(num("1e", &v), 1);
    ck_assert_int_eq(num(".", &v), 1);
    ck_assert_int_eq(num("0x10", &v), 1);
    ck_assert_int_eq(num("--1", &v), 1);
    asymbp_rng_destroy(rng);
    asymbp_ctx_destroy(ctx);
}
END_TEST

typedef struct csv_case {
    const char *text;
    size_t classes;
    asymbp_status_t status;
    const char *message;
} csv_case_t;

START_TEST(test_csv_bad_input)
{
    static const csv_case_t cases[] = {
        { "a,b,label\n1,2,0\n3,x7,1\n", 0, ASYMBP_E_FORMAT, "bad.csv: line 3, column 2 (b): 'x7' is not a number" },
        { "a,b,label\n1,2,0\n\n3,1\n", 0, ASYMBP_E_FORMAT, "line 4 has 2 fields, the header (line 1) has 3" },
        { "a,b,label\n1,2,3,0\n", 0, ASYMBP_E_FORMAT, "line 2 has 4 fields" },
        { "a,b,label\n1,nan,0\n", 0, ASYMBP_E_RANGE, "line 2, column 2 (b): 'nan' is NaN" },
        { "a,b,label\n-inf,1,0\n", 0, ASYMBP_E_RANGE, "line 2, column 1 (a): '-inf' is infinite" },
        { "a,b,label\n1e40,1,0\n", 0, ASYMBP_E_RANGE, "line 2, column 1 (a)" },
        { "a,b,label\n1,2,0\n1,2,3\n", 3, ASYMBP_E_RANGE, "line 3, column 3 (label, the label): label 3 is out of range 0..2" },
        { "a,b,label\n1,2,-1\n", 0, ASYMBP_E_RANGE, "line 2, column 3" },
        { "a,b,label\n1,2,1.5\n", 0, ASYMBP_E_FORMAT, "'1.5' is not an integer" },
        { "a,b,label\n1,2,99999999999\n", 0, ASYMBP_E_RANGE, "out of range" },
        { "a,b,label\n1,2,70000\n", 0, ASYMBP_E_RANGE, "too large to infer" },
        { "a,b,label\n1,,0\n", 0, ASYMBP_E_FORMAT, "line 2, column 2 (b): empty field" },
        { "", 0, ASYMBP_E_FORMAT, "bad.csv: empty file" },
        { "\n  \n\r\n", 0, ASYMBP_E_FORMAT, "empty file" },
        { "a,b,label\n", 0, ASYMBP_E_FORMAT, "no data rows after the header (line 1)" },
        { "1,2,0\n3,4,1\n", 0, ASYMBP_E_FORMAT, "line 1 holds numbers, not a header" },
        { "a;b;label\n1;2;0\n", 0, ASYMBP_E_FORMAT, "the header has 1 column" },
        { "a,b,label\n1,2.5.1,0\n", 0, ASYMBP_E_FORMAT, "'2.5.1' is not a number" },
        { "a,b,label\n\"1\",2,0\n", 0, ASYMBP_E_FORMAT, "line 2, column 1 (a)" },
    };
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = NULL;
    tmpdir_t t;
    size_t i;
    tmp_make(&t);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(tpath(&t, "bad.csv"), cases[i].text);
        ck_assert_msg(asymbp_dataset_load_csv(ctx, tpath(&t, "bad.csv"), cases[i].classes, &a) == cases[i].status,
                      "case %zu: status %s (%s)", i, asymbp_status_name(asymbp_ctx_last_status(ctx)),
                      asymbp_ctx_last_error(ctx));
        ck_assert_ptr_null(a);
        ck_assert_msg_has(ctx, cases[i].message);
    }
    ck_assert_int_eq(asymbp_dataset_load_csv(ctx, tpath(&t, "missing.csv"), 0, &a), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "missing.csv: cannot open");
    tmp_remove(&t);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- CIFAR ------------------------------------------------------------------------------------- */

static unsigned char *make_cifar(size_t n, size_t label_bytes, unsigned seed, size_t *len)
{
    size_t rec = label_bytes + 3072, i, j;
    unsigned char *b = malloc(n * rec);
    for (i = 0; i < n; i++) {
        b[i * rec] = (unsigned char)((seed + i) % 20);                        /* coarse / CIFAR-10 label */
        if (label_bytes == 2) b[i * rec + 1] = (unsigned char)((seed * 7 + i * 31) % 100); /* fine */
        if (label_bytes == 1) b[i * rec] = (unsigned char)((seed + i) % 10);
        for (j = 0; j < 3072; j++) b[i * rec + label_bytes + j] = (unsigned char)((i * 3 + j * 5 + seed) % 256);
    }
    *len = n * rec;
    return b;
}

START_TEST(test_cifar)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = NULL;
    tmpdir_t t;
    size_t l1, l2, l3, i, j;
    unsigned char *c10a = make_cifar(2, 1, 3, &l1), *c10b = make_cifar(3, 1, 4, &l2), *c100 = make_cifar(4, 2, 5, &l3);
    const char *paths[2];
    int64_t c, h, w;
    tmp_make(&t);
    write_bytes(tpath(&t, "data_batch_1.bin"), c10a, l1);
    write_gz(tpath(&t, "data_batch_2.bin"), c10b, l2); /* gzip works too */
    write_bytes(tpath(&t, "train.bin"), c100, l3);
    paths[0] = tpath(&t, "data_batch_1.bin");
    paths[1] = tpath(&t, "data_batch_2.bin");
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 2, ASYMBP_CIFAR10, &a), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(a), 5);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 10);
    ck_assert_int_eq(asymbp_dataset_shape(a, &c, &h, &w), ASYMBP_OK);
    ck_assert(c == 3 && h == 32 && w == 32);
    for (i = 0; i < 5; i++) {
        const unsigned char *rec = i < 2 ? c10a + i * 3073 : c10b + (i - 2) * 3073;
        ck_assert_int_eq(asymbp_dataset_labels(a)[i], rec[0]);
        for (j = 0; j < 3072; j += 97) ck_assert(asymbp_dataset_features(a)[i * 3072 + j] == (float)rec[1 + j] / 255.0f);
    }
    asymbp_dataset_destroy(a);
    paths[0] = tpath(&t, "train.bin");
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR100_FINE, &a), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 100);
    for (i = 0; i < 4; i++) ck_assert_int_eq(asymbp_dataset_labels(a)[i], c100[i * 3074 + 1]);
    ck_assert(asymbp_dataset_features(a)[3 * 3072 + 3071] == (float)c100[3 * 3074 + 2 + 3071] / 255.0f);
    asymbp_dataset_destroy(a);
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR100_COARSE, &a), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_classes(a), 20);
    for (i = 0; i < 4; i++) ck_assert_int_eq(asymbp_dataset_labels(a)[i], c100[i * 3074]);
    asymbp_dataset_destroy(a);
    /* bad input: CIFAR-100 file read as CIFAR-10 (size), a label beyond the classes, empty, missing */
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR10, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "train.bin: size 12296 is not a multiple of the CIFAR-10 record size 3073");
    ck_assert_msg_has(ctx, "fits the other CIFAR kind");
    c10a[3073] = 10;
    write_bytes(tpath(&t, "bad.bin"), c10a, l1);
    paths[0] = tpath(&t, "bad.bin");
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR10, &a), ASYMBP_E_RANGE);
    ck_assert_msg_has(ctx, "bad.bin: record 1 (byte 3073) has label 10");
    write_bytes(tpath(&t, "empty.bin"), "", 0);
    paths[0] = tpath(&t, "empty.bin");
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR10, &a), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "empty file");
    paths[0] = tpath(&t, "none.bin");
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, ASYMBP_CIFAR10, &a), ASYMBP_E_IO);
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 0, ASYMBP_CIFAR10, &a), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_load_cifar(ctx, paths, 1, (asymbp_cifar_kind_t)7, &a), ASYMBP_E_INVALID);
    ck_assert_ptr_null(a);
    tmp_remove(&t);
    free(c10a);
    free(c10b);
    free(c100);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- folders ----------------------------------------------------------------------------------- */

START_TEST(test_load_dir)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL;
    tmpdir_t t;
    size_t il, ll, tl, tll;
    unsigned char *img = make_idx_images(6, 2, 2, &il), *lbl = make_idx_labels(6, 4, &ll);
    unsigned char *timg = make_idx_images(3, 2, 2, &tl), *tlbl = make_idx_labels(3, 2, &tll);

    tmp_make(&t);
    /* empty folder, missing folder, a file */
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "holds neither train.csv + test.csv nor the four IDX files");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, tpath(&t, "nothing"), 0, &tr, &te), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "nothing: cannot open folder");
    /* IDX with MNIST's names: gzip train, plain t10k test; a duplicate plain+gz is fine */
    write_gz(tpath(&t, "train-images-idx3-ubyte.gz"), img, il);
    write_gz(tpath(&t, "train-labels-idx1-ubyte.gz"), lbl, ll);
    write_bytes(tpath(&t, "train-labels-idx1-ubyte"), lbl, ll);
    write_bytes(tpath(&t, "t10k-images-idx3-ubyte"), timg, tl);
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, tpath(&t, "train-images-idx3-ubyte.gz"), 0, &tr, &te), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "not a folder");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "the test labels file is missing");
    write_bytes(tpath(&t, "t10k-labels-idx1-ubyte"), tlbl, tll);
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(tr), 6);
    ck_assert_uint_eq(asymbp_dataset_count(te), 3);
    ck_assert_uint_eq(asymbp_dataset_classes(tr), 4); /* unified: train has 0..3, test 0..1 */
    ck_assert_uint_eq(asymbp_dataset_classes(te), 4);
    ck_assert_str_eq(asymbp_dataset_name(tr), strrchr(t.path, '/') + 1); /* the folder's name */
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    /* class count given: enforced on both */
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 3, &tr, &te), ASYMBP_E_RANGE);
    ck_assert_ptr_null(tr);
    ck_assert_ptr_null(te);
    /* two candidates for one role */
    write_bytes(tpath(&t, "emnist-train-images-idx3-ubyte"), img, il);
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "look like the training images");
    unlink(tpath(&t, "emnist-train-images-idx3-ubyte"));
    /* test images of another size */
    free(timg);
    timg = make_idx_images(3, 3, 2, &tl);
    write_bytes(tpath(&t, "t10k-images-idx3-ubyte"), timg, tl);
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_SHAPE);
    ck_assert_msg_has(ctx, "test samples are 1 x 3 x 2, training samples 1 x 2 x 2");
    /* a CSV pair takes precedence; one missing half is an error */
    write_text(tpath(&t, "train.csv"), "x,y,label\n1,2,0\n3,4,1\n5,6,1\n");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_IO);
    ck_assert_msg_has(ctx, "has train.csv but no test.csv");
    write_text(tpath(&t, "test.csv"), "x,y,label\n1,2,2\n");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(tr), 3);
    ck_assert_uint_eq(asymbp_dataset_count(te), 1);
    ck_assert_uint_eq(asymbp_dataset_classes(tr), 3);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    write_text(tpath(&t, "test.csv"), "x,y,z,label\n1,2,3,0\n");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_SHAPE);
    write_text(tpath(&t, "test.csv"), "x,y,label\n1,oops,0\n");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, &tr, &te), ASYMBP_E_FORMAT);
    ck_assert_msg_has(ctx, "test.csv: line 2, column 2 (y)");
    ck_assert_int_eq(asymbp_dataset_load_dir(ctx, t.path, 0, NULL, &te), ASYMBP_E_INVALID);
    tmp_remove(&t);
    free(img);
    free(lbl);
    free(timg);
    free(tlbl);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- bundled data and names -------------------------------------------------------------------- */

static char data_root[512];
static const char *const *roots1(void)
{
    static const char *r[1];
    snprintf(data_root, sizeof data_root, "%s/data", srcdir());
    r[0] = data_root;
    return r;
}

START_TEST(test_bundled_digits_iris)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL;
    const float *x;
    double sum = 0.0;
    size_t i, counts[10];
    int64_t c, h, w;
    /* default name */
    ck_assert_msg(asymbp_dataset_load_named(ctx, NULL, roots1(), 1, &tr, &te) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
    ck_assert_str_eq(asymbp_dataset_name(tr), "digits8x8");
    ck_assert_uint_eq(asymbp_dataset_count(tr), 1438);
    ck_assert_uint_eq(asymbp_dataset_count(te), 359);
    ck_assert_uint_eq(asymbp_dataset_classes(tr), 10);
    ck_assert_int_eq(asymbp_dataset_shape(tr, &c, &h, &w), ASYMBP_OK);
    ck_assert(c == 1 && h == 8 && w == 8);
    /* checksums of the pixel bytes (computed independently from the .gz files) */
    x = asymbp_dataset_features(tr);
    for (i = 0; i < 1438 * 64; i++) sum += floor(x[i] * 255.0 + 0.5);
    ck_assert(sum == 7163184.0);
    ck_assert(x[1] == 16.0f / 255.0f && x[2] == 159.0f / 255.0f && x[63] == 0.0f);
    ck_assert(x[64 + 27] == 80.0f / 255.0f && x[4 * 64 + 27] == 48.0f / 255.0f);
    ck_assert(asymbp_dataset_labels(tr)[0] == 2 && asymbp_dataset_labels(tr)[9] == 2);
    ck_assert_int_eq(asymbp_dataset_class_counts(tr, counts), ASYMBP_OK);
    ck_assert(counts[0] == 142 && counts[1] == 146 && counts[8] == 139 && counts[9] == 144);
    x = asymbp_dataset_features(te);
    for (sum = 0.0, i = 0; i < 359 * 64; i++) sum += floor(x[i] * 255.0 + 0.5);
    ck_assert(sum == 1790617.0);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);

    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "iris", roots1(), 1, &tr, &te), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(tr), 120);
    ck_assert_uint_eq(asymbp_dataset_count(te), 30);
    ck_assert_uint_eq(asymbp_dataset_sample_size(tr), 4);
    ck_assert_uint_eq(asymbp_dataset_classes(te), 3);
    x = asymbp_dataset_features(tr);
    ck_assert(x[0] == 7.6f && x[1] == 3.0f && x[2] == 6.6f && x[3] == 2.1f && asymbp_dataset_labels(tr)[0] == 2);
    x = asymbp_dataset_features(te);
    ck_assert(x[0] == 6.2f && x[3] == 1.3f && asymbp_dataset_labels(te)[0] == 1);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_bundled_all)
{
    static const struct { const char *name; size_t ntr, nte, dim, k; } sets[] = {
        { "digits8x8", 1438, 359, 64, 10 }, { "digits20x20", 4000, 1000, 400, 10 }, { "letter", 16000, 4000, 16, 26 },
        { "dna", 2000, 1186, 180, 3 },      { "soybean", 546, 137, 99, 19 },        { "ionosphere", 200, 151, 34, 2 },
        { "sonar", 167, 41, 60, 2 },        { "glass", 171, 43, 9, 6 },             { "iris", 120, 30, 4, 3 },
        { "wine", 142, 36, 13, 3 },         { "Breast-Cancer", 456, 113, 30, 2 },
    };
    asymbp_ctx_t *ctx = test_ctx();
    size_t i;
    for (i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        asymbp_dataset_t *tr = NULL, *te = NULL;
        if (test_quick() && (sets[i].ntr > 3000 || sets[i].dim > 100)) continue;
        ck_assert_msg(asymbp_dataset_load_named(ctx, sets[i].name, roots1(), 1, &tr, &te) == ASYMBP_OK, "%s: %s",
                      sets[i].name, asymbp_ctx_last_error(ctx));
        ck_assert_uint_eq(asymbp_dataset_count(tr), sets[i].ntr);
        ck_assert_uint_eq(asymbp_dataset_count(te), sets[i].nte);
        ck_assert_uint_eq(asymbp_dataset_sample_size(tr), sets[i].dim);
        ck_assert_uint_eq(asymbp_dataset_sample_size(te), sets[i].dim);
        ck_assert_uint_eq(asymbp_dataset_classes(tr), sets[i].k);
        ck_assert_uint_eq(asymbp_dataset_classes(te), sets[i].k);
        asymbp_dataset_destroy(tr);
        asymbp_dataset_destroy(te);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_named_errors_and_catalog)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL;
    tmpdir_t t;
    const char *roots[3];
    size_t i;
    tmp_make(&t);
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "imagenet", roots1(), 1, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "unknown data set 'imagenet'");
    ck_assert_msg_has(ctx, "digits8x8, digits20x20");
    ck_assert_msg_has(ctx, "mnist, fashion-mnist");
    roots[0] = t.path;
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "mnist", roots, 1, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "'mnist' has not been fetched");
    ck_assert_msg_has(ctx, "run `make data`");
    ck_assert_msg_has(ctx, "/fetched/mnist");
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "Fashion_MNIST", roots, 1, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "'fashion-mnist' has not been fetched");
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "iris", roots, 1, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "'iris' not found");
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "iris", NULL, 0, &tr, &te), ASYMBP_E_NOTFOUND);
    ck_assert_msg_has(ctx, "no data folder given");
    /* the search goes on to the next root */
    roots[1] = NULL;
    roots[2] = roots1()[0];
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "WINE", roots, 3, &tr, &te), ASYMBP_OK);
    ck_assert_str_eq(asymbp_dataset_name(tr), "wine");
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    /* a path with '/' is a folder */
    {
        char p[600];
        snprintf(p, sizeof p, "%s/glass/", roots1()[0]);
        ck_assert_int_eq(asymbp_dataset_load_named(ctx, p, NULL, 0, &tr, &te), ASYMBP_OK);
        ck_assert_uint_eq(asymbp_dataset_count(tr), 171);
        ck_assert_str_eq(asymbp_dataset_name(te), "glass");
        asymbp_dataset_destroy(tr);
        asymbp_dataset_destroy(te);
    }
    ck_assert_int_eq(asymbp_dataset_load_named(ctx, "iris", roots1(), 1, NULL, &te), ASYMBP_E_INVALID);
    /* catalogue */
    ck_assert_uint_eq(asymbp_dataset_known_count(), 13);
    ck_assert_str_eq(asymbp_dataset_known_name(0), "digits8x8");
    ck_assert_ptr_null(asymbp_dataset_known_name(13));
    ck_assert_int_eq(asymbp_dataset_known_fetched(13), -1);
    for (i = 0; i < asymbp_dataset_known_count(); i++) {
        int fetched = !strcmp(asymbp_dataset_known_name(i), "mnist") || !strcmp(asymbp_dataset_known_name(i), "fashion-mnist");
        ck_assert_int_eq(asymbp_dataset_known_fetched(i), fetched);
        ck_assert_uint_ge(asymbp_dataset_known_classes(i), 2);
    }
    tmp_remove(&t);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* MNIST / Fashion-MNIST test halves, when `make data` has run (skipped otherwise). */
START_TEST(test_fetched_if_present)
{
    static const char *const sets[2][2] = {
        { "mnist/t10k-images-idx3-ubyte", "mnist/t10k-labels-idx1-ubyte" },
        { "fashion-mnist/t10k-images-idx3-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz" },
    };
    asymbp_ctx_t *ctx = test_ctx();
    int s;
    if (test_quick()) {
        asymbp_ctx_destroy(ctx);
        return;
    }
    for (s = 0; s < 2; s++) {
        char ip[600], lp[600];
        asymbp_dataset_t *te = NULL;
        size_t counts[10], i, total = 0;
        snprintf(ip, sizeof ip, "%s/data/fetched/%s", srcdir(), sets[s][0]);
        snprintf(lp, sizeof lp, "%s/data/fetched/%s", srcdir(), sets[s][1]);
        if (access(ip, R_OK) != 0 || access(lp, R_OK) != 0) continue;
        ck_assert_msg(asymbp_dataset_load_idx(ctx, ip, lp, 10, &te) == ASYMBP_OK, "%s", asymbp_ctx_last_error(ctx));
        ck_assert_uint_eq(asymbp_dataset_count(te), 10000);
        ck_assert_uint_eq(asymbp_dataset_sample_size(te), 784);
        ck_assert_int_eq(asymbp_dataset_class_counts(te, counts), ASYMBP_OK);
        for (i = 0; i < 10; i++) total += counts[i];
        ck_assert_uint_eq(total, 10000);
        if (s == 1)
            for (i = 0; i < 10; i++) ck_assert_uint_eq(counts[i], 1000); /* Fashion-MNIST's test set is balanced */
        else
            ck_assert(counts[0] == 980 && counts[1] == 1135); /* MNIST's published test counts */
        asymbp_dataset_destroy(te);
    }
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- standardisation --------------------------------------------------------------------------- */

START_TEST(test_scaler_per_channel)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_rng_t *rng = NULL;
    enum { N = 50, C = 3, HW = 4, M = 7 };
    float x[N * C * HW], xt[M * C * HW], orig_t[M * C * HW];
    int32_t y[N] = { 0 };
    asymbp_dataset_t *tr = NULL, *te = NULL;
    asymbp_scaler_t *sc = NULL, *sc2 = NULL;
    size_t i, k, g;
    ck_assert_int_eq(asymbp_rng_create(ctx, 3, 0, &rng), ASYMBP_OK);
    for (i = 0; i < N; i++)
        for (k = 0; k < C; k++)
            for (g = 0; g < HW; g++)
                x[(i * C + k) * HW + g] = k == 1 ? 4.25f : (float)(k * 10) + (k + 1) * 3.0f * asymbp_rng_normal(rng);
    for (i = 0; i < M * C * HW; i++) xt[i] = orig_t[i] = 5.0f * asymbp_rng_uniform(rng);
    ck_assert_int_eq(asymbp_dataset_create(ctx, N, C, 2, 2, 1, x, y, &tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_create(ctx, M, C, 2, 2, 1, xt, y, &te), ASYMBP_OK);
    ck_assert_int_eq(asymbp_scaler_fit(ctx, tr, ASYMBP_SCALER_PER_CHANNEL, &sc), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_scaler_count(sc), C);
    ck_assert_int_eq(asymbp_scaler_mode(sc), ASYMBP_SCALER_PER_CHANNEL);
    for (k = 0; k < C; k++) {
        /* naive double reference */
        double m = 0, v = 0;
        for (i = 0; i < N; i++)
            for (g = 0; g < HW; g++) m += x[(i * C + k) * HW + g];
        m /= N * HW;
        for (i = 0; i < N; i++)
            for (g = 0; g < HW; g++) v += (x[(i * C + k) * HW + g] - m) * (x[(i * C + k) * HW + g] - m);
        v = sqrt(v / (N * HW));
        ck_assert_msg(test_rel_err(asymbp_scaler_mean(sc)[k], m) < 1e-6, "mean %zu", k);
        if (k == 1) {
            ck_assert(asymbp_scaler_mean(sc)[k] == 4.25f);
            ck_assert(asymbp_scaler_divisor(sc)[k] == 1.0f); /* constant: divide by 1 */
        } else {
            ck_assert_msg(test_rel_err(asymbp_scaler_divisor(sc)[k], v) < 1e-6, "std %zu", k);
        }
    }
    ck_assert_int_eq(asymbp_scaler_apply(sc, tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_scaler_apply(sc, te), ASYMBP_OK);
    for (k = 0; k < C; k++) {
        double m = 0, v = 0;
        for (i = 0; i < N; i++)
            for (g = 0; g < HW; g++) m += asymbp_dataset_features(tr)[(i * C + k) * HW + g];
        m /= N * HW;
        for (i = 0; i < N; i++)
            for (g = 0; g < HW; g++) {
                double d = asymbp_dataset_features(tr)[(i * C + k) * HW + g] - m;
                v += d * d;
            }
        v /= N * HW;
        ck_assert(fabs(m) < 1e-5);
        ck_assert(k == 1 ? v == 0.0 : fabs(v - 1.0) < 1e-5);
    }
    /* the test set got the training statistics, not its own */
    for (i = 0; i < M * C * HW; i++) {
        size_t kk = (i / HW) % C;
        float want = (orig_t[i] - asymbp_scaler_mean(sc)[kk]) / asymbp_scaler_divisor(sc)[kk];
        ck_assert(asymbp_dataset_features(te)[i] == want);
    }
    /* stored statistics give the same scaler */
    ck_assert_int_eq(asymbp_scaler_create(ctx, ASYMBP_SCALER_PER_CHANNEL, C, asymbp_scaler_mean(sc), asymbp_scaler_divisor(sc),
                                          &sc2), ASYMBP_OK);
    memcpy(xt, orig_t, sizeof xt);
    ck_assert_int_eq(asymbp_scaler_apply_array(sc2, xt, M, C, 2, 2), ASYMBP_OK);
    ck_assert(memcmp(xt, asymbp_dataset_features(te), sizeof xt) == 0);
    ck_assert_int_eq(asymbp_scaler_apply_array(sc2, xt, M, C + 1, 2, 2), ASYMBP_E_SHAPE);
    ck_assert_msg_has(ctx, "statistics are for 3 channels, the data has 4");
    asymbp_scaler_destroy(sc2);
    {
        float mean[2] = { 0, 1 }, div[2] = { 1, 0 };
        ck_assert_int_eq(asymbp_scaler_create(ctx, ASYMBP_SCALER_PER_CHANNEL, 2, mean, div, &sc2), ASYMBP_E_RANGE);
        div[1] = NAN;
        ck_assert_int_eq(asymbp_scaler_create(ctx, ASYMBP_SCALER_PER_CHANNEL, 2, mean, div, &sc2), ASYMBP_E_RANGE);
        ck_assert_int_eq(asymbp_scaler_create(ctx, (asymbp_scaler_mode_t)5, 2, mean, div, &sc2), ASYMBP_E_INVALID);
        ck_assert_ptr_null(sc2);
    }
    ck_assert_int_eq(asymbp_scaler_fit(ctx, tr, (asymbp_scaler_mode_t)9, &sc2), ASYMBP_E_INVALID);
    ck_assert_uint_eq(asymbp_scaler_count(NULL), 0);
    asymbp_scaler_destroy(NULL);
    asymbp_scaler_destroy(sc);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_rng_destroy(rng);
    asymbp_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_scaler_per_feature_and_standardize)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *tr = NULL, *te = NULL, *tab = NULL, *tab_t = NULL;
    asymbp_scaler_t *sc = NULL;
    float x[4 * 6] = { 0 }, xt[6] = { 1, 1, 1, 1, 1, 1 };
    int32_t y[4] = { 0, 1, 0, 1 };
    size_t i, j;
    for (i = 0; i < 4; i++)
        for (j = 0; j < 6; j++) x[i * 6 + j] = j == 5 ? 2.0f : (float)(i * (j + 1)) + 0.5f * (float)j;
    ck_assert_int_eq(asymbp_dataset_create(ctx, 4, 1, 2, 3, 2, x, y, &tr), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 1, 1, 2, 3, 2, xt, y, &te), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_standardize(tr, te, ASYMBP_SCALER_PER_FEATURE, &sc), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_scaler_count(sc), 6);
    for (j = 0; j < 6; j++) {
        double m = 0, v = 0;
        for (i = 0; i < 4; i++) m += x[i * 6 + j];
        m /= 4;
        for (i = 0; i < 4; i++) v += (x[i * 6 + j] - m) * (x[i * 6 + j] - m);
        v = sqrt(v / 4);
        ck_assert(test_rel_err(asymbp_scaler_mean(sc)[j], m) < 1e-6);
        ck_assert(test_rel_err(asymbp_scaler_divisor(sc)[j], j == 5 ? 1.0 : v) < 1e-6);
        ck_assert(fabsf(asymbp_dataset_features(te)[j] - (float)((1.0 - m) / (j == 5 ? 1.0 : v))) < 1e-5f);
    }
    asymbp_scaler_destroy(sc);
    /* tabular: C features x 1 x 1, per channel == per feature; a shape mismatch is refused */
    ck_assert_int_eq(asymbp_dataset_create(ctx, 4, 6, 1, 1, 2, x, y, &tab), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_create(ctx, 1, 5, 1, 1, 2, xt, y, &tab_t), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_standardize(tab, tab_t, ASYMBP_SCALER_PER_CHANNEL, &sc), ASYMBP_E_SHAPE);
    ck_assert_ptr_null(sc);
    ck_assert(asymbp_dataset_features(tab)[1] == x[1]); /* untouched */
    ck_assert_int_eq(asymbp_dataset_standardize(tab, NULL, ASYMBP_SCALER_PER_CHANNEL, NULL), ASYMBP_OK);
    for (j = 0; j < 6; j++) {
        double m = 0;
        for (i = 0; i < 4; i++) m += asymbp_dataset_features(tab)[i * 6 + j];
        ck_assert(fabs(m) < 1e-5);
    }
    asymbp_dataset_destroy(tab);
    asymbp_dataset_destroy(tab_t);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- shuffling and splits ---------------------------------------------------------------------- */

START_TEST(test_shuffle)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *a = make_ids(ctx, 200, 2, 2, 1, 7), *b = make_ids(ctx, 200, 2, 2, 1, 7), *c = make_ids(ctx, 200, 2, 2, 1, 7);
    asymbp_rng_t *r1 = NULL, *r2 = NULL;
    size_t perm[200], i, moved = 0;
    unsigned char seen[200] = { 0 };
    ck_assert_int_eq(asymbp_dataset_shuffle_seed(a, 42), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_shuffle_seed(b, 42), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_shuffle_seed(c, 43), ASYMBP_OK);
    ck_assert(memcmp(asymbp_dataset_features(a), asymbp_dataset_features(b), 200 * 4 * sizeof(float)) == 0);
    ck_assert(memcmp(asymbp_dataset_labels(a), asymbp_dataset_labels(b), 200 * sizeof(int32_t)) == 0);
    ck_assert(memcmp(asymbp_dataset_features(a), asymbp_dataset_features(c), 200 * 4 * sizeof(float)) != 0);
    for (i = 0; i < 200; i++) {
        size_t id = row_id(a, i);   /* rows stay whole */
        ck_assert_uint_lt(id, 200);
        ck_assert(!seen[id]);       /* a permutation */
        seen[id] = 1;
        ck_assert_int_eq(asymbp_dataset_labels(a)[i], (int32_t)(id % 7)); /* labels move with rows */
        moved += id != i;
    }
    ck_assert_uint_gt(moved, 150);
    /* shuffle(rng) == gather by data_permutation from the same RNG state */
    ck_assert_int_eq(asymbp_rng_create(ctx, 9, 1, &r1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_rng_create(ctx, 9, 1, &r2), ASYMBP_OK);
    asymbp_dataset_destroy(b);
    b = make_ids(ctx, 200, 2, 2, 1, 7);
    ck_assert_int_eq(asymbp_dataset_shuffle(b, r1), ASYMBP_OK);
    ck_assert_int_eq(asymbp_data_permutation(r2, perm, 200), ASYMBP_OK);
    for (i = 0; i < 200; i++) ck_assert_uint_eq(row_id(b, i), perm[i]);
    ck_assert_uint_eq(asymbp_rng_u32(r1), asymbp_rng_u32(r2)); /* same number of draws */
    /* Fisher-Yates spelled out: idx[i-1] <-> idx[below(i)] for i = n..2 */
    {
        asymbp_rng_t *r3 = NULL;
        size_t ref[10], got[10], k;
        ck_assert_int_eq(asymbp_rng_create(ctx, 5, 0, &r3), ASYMBP_OK);
        for (k = 0; k < 10; k++) ref[k] = k;
        for (k = 10; k > 1; k--) {
            size_t j = asymbp_rng_below(r3, (uint32_t)k), t = ref[k - 1];
            ref[k - 1] = ref[j];
            ref[j] = t;
        }
        asymbp_rng_destroy(r3);
        ck_assert_int_eq(asymbp_rng_create(ctx, 5, 0, &r3), ASYMBP_OK);
        ck_assert_int_eq(asymbp_data_permutation(r3, got, 10), ASYMBP_OK);
        ck_assert(memcmp(ref, got, sizeof ref) == 0);
        asymbp_rng_destroy(r3);
    }
    ck_assert_int_eq(asymbp_data_permutation(NULL, perm, 3), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_shuffle(a, NULL), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_shuffle_seed(NULL, 1), ASYMBP_E_INVALID);
    asymbp_rng_destroy(r1);
    asymbp_rng_destroy(r2);
    asymbp_dataset_destroy(a);
    asymbp_dataset_destroy(b);
    asymbp_dataset_destroy(c);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* Check that rest and val partition ds (by sample id) and keep the original order. */
static void check_partition(const asymbp_dataset_t *ds, const asymbp_dataset_t *rest, const asymbp_dataset_t *val)
{
    size_t n = asymbp_dataset_count(ds), i, prev;
    unsigned char *seen = calloc(n, 1);
    const asymbp_dataset_t *parts[2] = { rest, val };
    int p;
    ck_assert_uint_eq(asymbp_dataset_count(rest) + asymbp_dataset_count(val), n);
    for (p = 0; p < 2; p++) {
        prev = 0;
        for (i = 0; i < asymbp_dataset_count(parts[p]); i++) {
            size_t id = row_id(parts[p], i);
            ck_assert(!seen[id]);
            seen[id] = 1;
            if (i) ck_assert_uint_gt(id, prev);
            prev = id;
            ck_assert_int_eq(asymbp_dataset_labels(parts[p])[i], asymbp_dataset_labels(ds)[id]);
        }
    }
    free(seen);
}

START_TEST(test_split)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_dataset_t *ds = NULL, *rest = NULL, *val = NULL, *rest2 = NULL, *val2 = NULL;
    float x[100];
    int32_t y[100];
    size_t i, counts[3];
    /* 100 samples, classes 50 / 30 / 20 in a sorted order (as several sources are) */
    for (i = 0; i < 100; i++) {
        x[i] = (float)(1000 * i);
        y[i] = i < 50 ? 0 : i < 80 ? 1 : 2;
    }
    ck_assert_int_eq(asymbp_dataset_create(ctx, 100, 1, 1, 1, 3, x, y, &ds), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_split(ds, 20, 11, 1, &rest, &val), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(rest), 80);
    ck_assert_uint_eq(asymbp_dataset_count(val), 20);
    check_partition(ds, rest, val);
    ck_assert_int_eq(asymbp_dataset_class_counts(val, counts), ASYMBP_OK);
    ck_assert(counts[0] == 10 && counts[1] == 6 && counts[2] == 4);
    /* same seed, same split; another seed, another split */
    ck_assert_int_eq(asymbp_dataset_split(ds, 20, 11, 1, &rest2, &val2), ASYMBP_OK);
    ck_assert(memcmp(asymbp_dataset_features(val), asymbp_dataset_features(val2), 20 * sizeof(float)) == 0);
    asymbp_dataset_destroy(rest2);
    asymbp_dataset_destroy(val2);
    ck_assert_int_eq(asymbp_dataset_split(ds, 20, 12, 1, &rest2, &val2), ASYMBP_OK);
    ck_assert(memcmp(asymbp_dataset_features(val), asymbp_dataset_features(val2), 20 * sizeof(float)) != 0);
    asymbp_dataset_destroy(rest2);
    asymbp_dataset_destroy(val2);
    asymbp_dataset_destroy(rest);
    asymbp_dataset_destroy(val);
    /* unstratified: sizes and partition */
    ck_assert_int_eq(asymbp_dataset_split(ds, 33, 5, 0, &rest, &val), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_dataset_count(val), 33);
    check_partition(ds, rest, val);
    asymbp_dataset_destroy(rest);
    asymbp_dataset_destroy(val);
    /* stratified with remainders: shares 7*50/100 = 3.5, 2.1, 1.4 -> 3 + 1 (largest remainder), 2, 1 */
    ck_assert_int_eq(asymbp_dataset_split(ds, 7, 5, 1, &rest, &val), ASYMBP_OK);
    ck_assert_int_eq(asymbp_dataset_class_counts(val, counts), ASYMBP_OK);
    ck_assert(counts[0] == 4 && counts[1] == 2 && counts[2] == 1);
    check_partition(ds, rest, val);
    asymbp_dataset_destroy(rest);
    asymbp_dataset_destroy(val);
    /* bad sizes */
    ck_assert_int_eq(asymbp_dataset_split(ds, 0, 5, 1, &rest, &val), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_dataset_split(ds, 100, 5, 0, &rest, &val), ASYMBP_E_INVALID);
    ck_assert_msg_has(ctx, "validation size 100 must be in 1..99");
    ck_assert_ptr_null(rest);
    ck_assert_ptr_null(val);
    ck_assert_int_eq(asymbp_dataset_split(ds, 10, 5, 0, NULL, &val), ASYMBP_E_INVALID);
    asymbp_dataset_destroy(ds);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* ---- out of memory ----------------------------------------------------------------------------- */

/* Run op with the k-th allocation failing, for every k, until it succeeds: each failure must be
 * ASYMBP_E_NOMEM and nothing may leak. */
typedef asymbp_status_t (*oom_op_t)(asymbp_ctx_t *ctx, const char *dir);

static asymbp_status_t oom_load_idx_gz(asymbp_ctx_t *ctx, const char *dir)
{
    char a[1200], b[1200];
    asymbp_dataset_t *ds = NULL;
    asymbp_status_t st;
    snprintf(a, sizeof a, "%s/img.gz", dir);
    snprintf(b, sizeof b, "%s/lbl.gz", dir);
    st = asymbp_dataset_load_idx(ctx, a, b, 0, &ds);
    asymbp_dataset_destroy(ds);
    return st;
}

static asymbp_status_t oom_load_dir_csv_split_scale(asymbp_ctx_t *ctx, const char *dir)
{
    asymbp_dataset_t *tr = NULL, *te = NULL, *rest = NULL, *val = NULL;
    asymbp_scaler_t *sc = NULL;
    asymbp_status_t st = asymbp_dataset_load_dir(ctx, dir, 0, &tr, &te);
    if (st == ASYMBP_OK) st = asymbp_dataset_split(tr, 2, 1, 1, &rest, &val);
    if (st == ASYMBP_OK) st = asymbp_dataset_standardize(rest, te, ASYMBP_SCALER_PER_CHANNEL, &sc);
    if (st == ASYMBP_OK) st = asymbp_dataset_shuffle_seed(rest, 3);
    asymbp_scaler_destroy(sc);
    asymbp_dataset_destroy(tr);
    asymbp_dataset_destroy(te);
    asymbp_dataset_destroy(rest);
    asymbp_dataset_destroy(val);
    return st;
}

static void run_oom(oom_op_t op, const char *dir)
{
    long k;
    for (k = 1; k < 1000; k++) {
        test_alloc_t ta = { 0, 0, 0 };
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_status_t st;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ta.fail_at = ta.calls + k;
        st = op(ctx, dir);
        asymbp_ctx_destroy(ctx);
        ck_assert_int_eq(ta.live, 0);
        if (st == ASYMBP_OK) return;
        ck_assert_msg(st == ASYMBP_E_NOMEM, "allocation %ld failing gave %s", k, asymbp_status_name(st));
    }
    ck_abort_msg("never succeeded");
}

START_TEST(test_oom)
{
    tmpdir_t t;
    size_t il, ll;
    unsigned char *img = make_idx_images(5, 3, 4, &il), *lbl = make_idx_labels(5, 3, &ll);
    tmp_make(&t);
    write_gz(tpath(&t, "img.gz"), img, il);
    write_gz(tpath(&t, "lbl.gz"), lbl, ll);
    write_text(tpath(&t, "train.csv"), "x,y,label\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n");
    write_gz(tpath(&t, "test.csv.gz"), "x,y,label\n1,2,2\n", 16);
    run_oom(oom_load_idx_gz, t.path);
    run_oom(oom_load_dir_csv_split_scale, t.path);
    tmp_remove(&t);
    free(img);
    free(lbl);
}
END_TEST

/* The scaler's chunk in saved files: a round trip, no chunk, and every malformed payload
 * refused with ASYMBP_E_FORMAT (nothing allocated is left behind). */
static asymbp_status_t scal_read_payload(asymbp_ctx_t *ctx, uint32_t version, uint32_t mode, uint64_t count, const float *mean,
                                         const float *div, size_t nstats, size_t cut, asymbp_scaler_t **out)
{
    asymbp__wbuf_t w;
    asymbp__rbuf_t area;
    size_t pos;
    asymbp_status_t st;
    asymbp__wbuf_init(&w, ctx);
    pos = asymbp__wbuf_chunk_begin(&w, ASYMBP__CHUNK_SCALER);
    asymbp__wbuf_u32(&w, version);
    asymbp__wbuf_u32(&w, mode);
    asymbp__wbuf_u64(&w, count);
    asymbp__wbuf_f32s(&w, mean, nstats);
    asymbp__wbuf_f32s(&w, div, nstats);
    w.len -= cut;
    asymbp__wbuf_chunk_end(&w, pos);
    ck_assert(!w.failed);
    area.p = w.p;
    area.len = w.len;
    area.pos = 0;
    area.failed = 0;
    st = asymbp__scaler_read(ctx, &area, out);
    asymbp__wbuf_free(&w);
    return st;
}

START_TEST(test_scaler_chunk)
{
    test_alloc_t ta = {0, 0, 0};
    asymbp_allocator_t al = test_allocator(&ta);
    asymbp_ctx_t *ctx = NULL;
    asymbp_scaler_t *sc = NULL, *back = NULL;
    const float mean[3] = {1.5f, -2.0f, 0.25f}, div[3] = {2.0f, 0.5f, 1.0f}, zero[3] = {1, 0, 1};
    const float nan3[3] = {0.0f, NAN, 0.0f};
    asymbp__wbuf_t w;
    asymbp__rbuf_t area;
    ck_assert_int_eq(asymbp_ctx_create(&al, &ctx), ASYMBP_OK);
    ck_assert_int_eq(asymbp_scaler_create(ctx, ASYMBP_SCALER_PER_FEATURE, 3, mean, div, &sc), ASYMBP_OK);
    asymbp__wbuf_init(&w, ctx);
    ck_assert_int_eq(asymbp__scaler_write(sc, &w), ASYMBP_OK);
    area.p = w.p;
    area.len = w.len;
    area.pos = 0;
    area.failed = 0;
    ck_assert_int_eq(asymbp__scaler_read(ctx, &area, &back), ASYMBP_OK);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(asymbp_scaler_mode(back), ASYMBP_SCALER_PER_FEATURE);
    ck_assert_uint_eq(asymbp_scaler_count(back), 3);
    ck_assert_mem_eq(asymbp_scaler_mean(back), mean, sizeof mean);
    ck_assert_mem_eq(asymbp_scaler_divisor(back), div, sizeof div);
    asymbp_scaler_destroy(back);
    asymbp__wbuf_free(&w);
    /* no chunk: NULL and OK */
    area.len = 0;
    back = sc;
    ck_assert_int_eq(asymbp__scaler_read(ctx, &area, &back), ASYMBP_OK);
    ck_assert_ptr_null(back);
    /* malformed */
    ck_assert_int_eq(scal_read_payload(ctx, 2, 1, 3, mean, div, 3, 0, &back), ASYMBP_E_FORMAT);   /* version */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 7, 3, mean, div, 3, 0, &back), ASYMBP_E_FORMAT);   /* mode */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 0, mean, div, 0, 0, &back), ASYMBP_E_FORMAT);   /* empty */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 4, mean, div, 3, 0, &back), ASYMBP_E_FORMAT);   /* count > data */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 2, mean, div, 3, 0, &back), ASYMBP_E_FORMAT);   /* count < data */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 3, mean, div, 3, 2, &back), ASYMBP_E_FORMAT);   /* truncated */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 3, mean, zero, 3, 0, &back), ASYMBP_E_FORMAT);  /* divisor 0 */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, 3, nan3, div, 3, 0, &back), ASYMBP_E_FORMAT);   /* NaN mean */
    ck_assert_int_eq(scal_read_payload(ctx, 1, 1, (uint64_t)1 << 62, mean, div, 3, 0, &back), ASYMBP_E_FORMAT);
    ck_assert_ptr_null(back);
    asymbp_scaler_destroy(sc);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

Suite *asymbp_test_data_suite(void);
Suite *asymbp_test_data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_create_accessors);
    tcase_add_test(tc, test_subset_head_gather);
    tcase_add_test(tc, test_idx_plain_and_gzip);
    tcase_add_test(tc, test_idx_bad_input);
    tcase_add_test(tc, test_gunzip_multimember);
    tcase_add_test(tc, test_csv_fixture);
    tcase_add_test(tc, test_csv_number_vs_strtof);
    tcase_add_test(tc, test_csv_bad_input);
    tcase_add_test(tc, test_cifar);
    tcase_add_test(tc, test_load_dir);
    tcase_add_test(tc, test_bundled_digits_iris);
    tcase_add_test(tc, test_bundled_all);
    tcase_add_test(tc, test_named_errors_and_catalog);
    tcase_add_test(tc, test_fetched_if_present);
    tcase_add_test(tc, test_scaler_per_channel);
    tcase_add_test(tc, test_scaler_per_feature_and_standardize);
    tcase_add_test(tc, test_shuffle);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_scaler_chunk);
    suite_add_tcase(s, tc);
    return s;
}
