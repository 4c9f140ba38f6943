/* Saved-file container: chunked, checksummed, written atomically (see core_impl.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "core/core_impl.h"

static const unsigned char file_magic[8] = {'A', 'S', 'Y', 'M', 'B', 'P', 'F', '\n'};

/* zlib's crc32 takes a uInt length: feed larger buffers in pieces. */
static uLong crc_update(uLong crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

void asymbp__wbuf_init(asymbp__wbuf_t *w, asymbp_ctx_t *ctx)
{
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
}

void asymbp__wbuf_free(asymbp__wbuf_t *w)
{
    asymbp__free(w->ctx, w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

void asymbp__wbuf_put(asymbp__wbuf_t *w, const void *data, size_t n)
{
    if (w->failed || n == 0) return;
    if (n > (size_t)-1 / 2 - w->len) { w->failed = 1; return; }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        unsigned char *p;
        while (cap < w->len + n) cap *= 2;
        p = asymbp__alloc(w->ctx, cap);
        if (!p) { w->failed = 1; return; }
        if (w->len) memcpy(p, w->p, w->len);
        asymbp__free(w->ctx, w->p);
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void le32(unsigned char *b, uint32_t v)
{
    int i;
    for (i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}

void asymbp__wbuf_u32(asymbp__wbuf_t *w, uint32_t v)
{
    unsigned char b[4];
    le32(b, v);
    asymbp__wbuf_put(w, b, 4);
}

void asymbp__wbuf_u64(asymbp__wbuf_t *w, uint64_t v)
{
    asymbp__wbuf_u32(w, (uint32_t)v);
    asymbp__wbuf_u32(w, (uint32_t)(v >> 32));
}

void asymbp__wbuf_f64(asymbp__wbuf_t *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    asymbp__wbuf_u64(w, u);
}

void asymbp__wbuf_f32s(asymbp__wbuf_t *w, const float *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        asymbp__wbuf_u32(w, u);
    }
}

void asymbp__wbuf_str(asymbp__wbuf_t *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    asymbp__wbuf_u32(w, (uint32_t)n);
    asymbp__wbuf_put(w, s, n);
}

size_t asymbp__wbuf_chunk_begin(asymbp__wbuf_t *w, const char tag[4])
{
    size_t pos;
    asymbp__wbuf_put(w, tag, 4);
    pos = w->len;
    asymbp__wbuf_u64(w, 0);
    return pos;
}

void asymbp__wbuf_chunk_end(asymbp__wbuf_t *w, size_t pos)
{
    uint64_t n;
    if (w->failed) return;
    n = (uint64_t)(w->len - pos - 8);
    le32(w->p + pos, (uint32_t)n);
    le32(w->p + pos + 4, (uint32_t)(n >> 32));
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

asymbp_status_t asymbp__file_write_atomic(asymbp_ctx_t *ctx, const char *path, uint32_t kind, const asymbp__wbuf_t *w)
{
    unsigned char head[16], tail[4];
    char *tmp, *dir;
    size_t plen;
    uLong crc;
    int fd, err = 0;
    const char *slash;
    if (!path || !*path) return asymbp__error(ctx, ASYMBP_E_INVALID, "save: path is empty");
    if (w->failed) return asymbp__error(ctx, ASYMBP_E_NOMEM, "save: out of memory while serialising");
    memcpy(head, file_magic, 8);
    le32(head + 8, ASYMBP__FILE_VERSION);
    le32(head + 12, kind);
    crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, head, 16);
    if (w->len) crc = crc_update(crc, w->p, w->len);
    le32(tail, (uint32_t)crc);

    plen = strlen(path);
    tmp = asymbp__alloc(ctx, plen + 32);
    if (!tmp) return asymbp__error(ctx, ASYMBP_E_NOMEM, "save: out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        asymbp_status_t st = asymbp__error(ctx, ASYMBP_E_IO, "save: cannot create %s: %s", tmp, strerror(errno));
        asymbp__free(ctx, tmp);
        return st;
    }
    if (write_all(fd, head, 16) || write_all(fd, w->p, w->len) || write_all(fd, tail, 4) || fsync(fd)) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        asymbp_status_t st = asymbp__error(ctx, ASYMBP_E_IO, "save: writing %s failed: %s (the old file, if any, is untouched)",
                                           path, strerror(err));
        unlink(tmp);
        asymbp__free(ctx, tmp);
        return st;
    }
    /* Make the rename itself durable. */
    slash = strrchr(path, '/');
    dir = tmp;
    if (slash) {
        memcpy(dir, path, (size_t)(slash - path) + 1);
        dir[slash - path + 1] = '\0';
    } else {
        strcpy(dir, ".");
    }
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    asymbp__free(ctx, tmp);
    return ASYMBP_OK;
}

static uint32_t rd32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

asymbp_status_t asymbp__file_read(asymbp_ctx_t *ctx, const char *path, uint32_t kind,
                                  unsigned char **data, asymbp__rbuf_t *r)
{
    struct stat sb;
    size_t size, got = 0;
    unsigned char *buf;
    asymbp_status_t st;
    int fd;
    *data = NULL;
    memset(r, 0, sizeof *r);
    if (!path) return asymbp__error(ctx, ASYMBP_E_INVALID, "load: path is NULL");
    /* plain open/read: no allocation outside the context's allocator */
    do fd = open(path, O_RDONLY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return asymbp__error(ctx, ASYMBP_E_IO, "load: cannot open %s: %s", path, strerror(errno));
    /* Only a regular file has a size to trust (a folder opens too, and reports nonsense). */
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int dir = S_ISDIR(sb.st_mode);
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_IO, "load: %s is %s, not a model or checkpoint file", path,
                             dir ? "a folder" : "not a regular file");
    }
    if (sb.st_size < 20) {
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s is too short (%lld bytes) to be an asymbp file", path,
                             (long long)sb.st_size);
    }
    if ((unsigned long long)sb.st_size > (unsigned long long)(SIZE_MAX / 2) || (unsigned long long)sb.st_size > 0xffffffffffULL) {
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s is too large (%lld bytes) to be an asymbp file", path,
                             (long long)sb.st_size);
    }
    size = (size_t)sb.st_size;
    buf = asymbp__alloc(ctx, size + 1);
    if (!buf) {
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "load: out of memory for the %zu bytes of %s", size, path);
    }
    /* one byte more than the size says: a file that grew while it was read is refused */
    while (got < size + 1) {
        ssize_t k = read(fd, buf + got, size + 1 - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            asymbp__free(ctx, buf);
            return asymbp__error(ctx, ASYMBP_E_IO, "load: reading %s failed: %s", path, strerror(e));
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (got != size) {
        asymbp__free(ctx, buf);
        return asymbp__error(ctx, ASYMBP_E_IO, "load: %s changed size while it was read", path);
    }
    st = asymbp__file_parse(ctx, path, kind, buf, size, r);
    if (st != ASYMBP_OK) {
        asymbp__free(ctx, buf);
        return st;
    }
    *data = buf;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__file_parse(asymbp_ctx_t *ctx, const char *path, uint32_t kind, const unsigned char *buf, size_t size,
                                   asymbp__rbuf_t *r)
{
    uLong crc;
    memset(r, 0, sizeof *r);
    if (size < 20)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s is too short (%zu bytes) to be an asymbp file", path, size);
    if (memcmp(buf, file_magic, 8) != 0)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s is not an asymbp file (bad magic)", path);
    if (rd32(buf + 8) != ASYMBP__FILE_VERSION)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s has format version %u, this library reads %u", path, rd32(buf + 8),
                             ASYMBP__FILE_VERSION);
    crc = crc_update(crc32(0L, Z_NULL, 0), buf, size - 4);
    if ((uint32_t)crc != rd32(buf + size - 4))
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s is damaged or truncated (checksum mismatch)", path);
    if (rd32(buf + 12) != kind) {
        uint32_t k = rd32(buf + 12);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "load: %s holds a %s, expected a %s", path,
                             k == ASYMBP__FILE_CHECKPOINT ? "checkpoint" : "model",
                             kind == ASYMBP__FILE_CHECKPOINT ? "checkpoint" : "model");
    }
    r->p = buf + 16;
    r->len = size - 20;
    return ASYMBP_OK;
}

int asymbp__rbuf_chunk(const asymbp__rbuf_t *r, const char tag[4], asymbp__rbuf_t *chunk)
{
    size_t pos = 0;
    while (r->len - pos >= 12) {
        uint64_t n = (uint64_t)rd32(r->p + pos + 4) | (uint64_t)rd32(r->p + pos + 8) << 32;
        if (n > r->len - pos - 12) return -1;
        if (memcmp(r->p + pos, tag, 4) == 0) {
            chunk->p = r->p + pos + 12;
            chunk->len = (size_t)n;
            chunk->pos = 0;
            chunk->failed = 0;
            return 0;
        }
        pos += 12 + (size_t)n;
    }
    return -1;
}

void asymbp__rbuf_get(asymbp__rbuf_t *r, void *dst, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = 1;
        if (dst && n) memset(dst, 0, n);
        return;
    }
    if (dst) memcpy(dst, r->p + r->pos, n);
    r->pos += n;
}

uint32_t asymbp__rbuf_u32(asymbp__rbuf_t *r)
{
    unsigned char b[4];
    asymbp__rbuf_get(r, b, 4);
    return rd32(b);
}

uint64_t asymbp__rbuf_u64(asymbp__rbuf_t *r)
{
    uint64_t lo = asymbp__rbuf_u32(r);
    return lo | (uint64_t)asymbp__rbuf_u32(r) << 32;
}

double asymbp__rbuf_f64(asymbp__rbuf_t *r)
{
    uint64_t u = asymbp__rbuf_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

void asymbp__rbuf_f32s(asymbp__rbuf_t *r, float *v, size_t n)
{
    size_t i;
    if (r->failed || n > (r->len - r->pos) / 4) {
        r->failed = 1;
        return;
    }
    for (i = 0; i < n; i++) {
        uint32_t u = asymbp__rbuf_u32(r);
        memcpy(&v[i], &u, 4);
    }
}

void asymbp__rbuf_str(asymbp__rbuf_t *r, char *dst, size_t cap)
{
    uint32_t n = asymbp__rbuf_u32(r);
    if (r->failed || cap == 0 || n >= cap || n > r->len - r->pos) {
        r->failed = 1;
        if (cap) dst[0] = '\0';
        return;
    }
    memcpy(dst, r->p + r->pos, n);
    dst[n] = '\0';
    r->pos += n;
}
