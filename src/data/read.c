/* Reading data files whole, through the context allocator; gzip recognised by its magic and
 * inflated with zlib (whose allocations are routed to the context as well). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

const char *asymbp__data_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    size_t bytes;
    if (asymbp__mul_size(items, size, &bytes)) return Z_NULL;
    return asymbp__alloc(opaque, bytes);
}

static void z_free(voidpf opaque, voidpf p)
{
    asymbp__free(opaque, p);
}

/* Grow a buffer to at least `need` bytes (doubling), keeping the first `used` bytes. */
static int grow(asymbp_ctx_t *ctx, unsigned char **buf, size_t *cap, size_t used, size_t need)
{
    size_t ncap = *cap ? *cap : 4096;
    unsigned char *nb;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) { ncap = need; break; }
        ncap *= 2;
    }
    nb = asymbp__alloc(ctx, ncap);
    if (!nb) return -1;
    if (used) memcpy(nb, *buf, used);
    asymbp__free(ctx, *buf);
    *buf = nb;
    *cap = ncap;
    return 0;
}

asymbp_status_t asymbp__data_gunzip(asymbp_ctx_t *ctx, const char *name, const unsigned char *in, size_t len,
                                    unsigned char **out, size_t *out_len)
{
    z_stream zs;
    unsigned char *buf = NULL;
    size_t cap = 0, used = 0, consumed = 0;
    asymbp_status_t st = ASYMBP_OK;
    int rc, done = 0;
    *out = NULL;
    *out_len = 0;
    if (len < 2 || in[0] != 0x1f || in[1] != 0x8b)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: not a gzip stream", name);
    /* The trailer's ISIZE (size mod 2^32 of the last member) is a good first guess, trusted only
     * within deflate's maximum ratio so a forged value cannot make us allocate much. */
    if (len >= 18) {
        const unsigned char *t = in + len - 4;
        size_t hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        if (hint > 0 && hint / 1032 <= len) cap = hint + 1;
    }
    if (!cap) cap = len < SIZE_MAX / 4 - 4096 ? 4 * len + 4096 : len;
    buf = asymbp__alloc(ctx, cap);
    if (!buf) return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory inflating the gzip stream", name);
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = ctx;
    rc = inflateInit2(&zs, 15 + 16); /* gzip wrapper only */
    if (rc != Z_OK) {
        asymbp__free(ctx, buf);
        return asymbp__error(ctx, rc == Z_MEM_ERROR ? ASYMBP_E_NOMEM : ASYMBP_E_FORMAT,
                             "%s: cannot start zlib inflate (%d)", name, rc);
    }
    while (!done) {
        size_t chunk_in = len - consumed > (size_t)UINT_MAX ? (size_t)UINT_MAX : len - consumed;
        size_t chunk_out;
        if (used == cap && grow(ctx, &buf, &cap, used, cap + 1)) {
            st = asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory inflating the gzip stream (%zu bytes so far)", name, used);
            break;
        }
        chunk_out = cap - used > (size_t)UINT_MAX ? (size_t)UINT_MAX : cap - used;
        zs.next_in = (Bytef *)(uintptr_t)(in + consumed);
        zs.avail_in = (uInt)chunk_in;
        zs.next_out = buf + used;
        zs.avail_out = (uInt)chunk_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        consumed += chunk_in - zs.avail_in;
        used += chunk_out - zs.avail_out;
        switch (rc) {
        case Z_OK:
            break;
        case Z_STREAM_END:
            /* Another member may follow (as gzip itself allows); anything else is an error. */
            if (consumed == len) { done = 1; break; }
            if (len - consumed >= 2 && in[consumed] == 0x1f && in[consumed + 1] == 0x8b) {
                inflateReset(&zs);
                break;
            }
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: %zu unexpected bytes after the gzip stream (at compressed offset %zu)",
                               name, len - consumed, consumed);
            done = 1;
            break;
        case Z_BUF_ERROR:
            if (consumed == len && zs.avail_out > 0) {
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated gzip stream (input ends after %zu compressed bytes, "
                                   "%zu bytes inflated)", name, len, used);
                done = 1;
            }
            break; /* else: output full, grown on the next round */
        case Z_MEM_ERROR:
            st = asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory in zlib inflate", name);
            done = 1;
            break;
        default:
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: corrupt gzip data near compressed offset %zu (%s)", name, consumed,
                               zs.msg ? zs.msg : "inflate error");
            done = 1;
            break;
        }
        if (!done && rc == Z_OK && consumed == len && zs.avail_out > 0) {
            /* All input used, output space left, stream not ended: truncated. */
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: truncated gzip stream (input ends after %zu compressed bytes, "
                               "%zu bytes inflated)", name, len, used);
            done = 1;
        }
    }
    inflateEnd(&zs);
    if (st != ASYMBP_OK) {
        asymbp__free(ctx, buf);
        return st;
    }
    if (used == 0) {
        asymbp__free(ctx, buf);
        buf = NULL;
    }
    *out = buf;
    *out_len = used;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__data_read_file(asymbp_ctx_t *ctx, const char *path, unsigned char **out, size_t *out_len)
{
    struct stat sb;
    unsigned char *buf = NULL;
    size_t cap, used = 0;
    int fd;
    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY);
    if (fd < 0) return asymbp__error(ctx, ASYMBP_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_IO, "%s: is a folder, not a file", path);
    }
    /* One byte more than the size so the final read sees EOF without growing. */
    cap = (S_ISREG(sb.st_mode) && sb.st_size > 0 && (uint64_t)sb.st_size < SIZE_MAX - 1) ? (size_t)sb.st_size + 1 : 65536;
    buf = asymbp__alloc(ctx, cap);
    if (!buf) {
        close(fd);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    for (;;) {
        ssize_t r;
        if (used == cap && grow(ctx, &buf, &cap, used, cap + 1)) {
            close(fd);
            asymbp__free(ctx, buf);
            return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory after %zu bytes", path, used);
        }
        r = read(fd, buf + used, cap - used);
        if (r < 0) {
            int e = errno;
            if (e == EINTR) continue;
            close(fd);
            asymbp__free(ctx, buf);
            return asymbp__error(ctx, ASYMBP_E_IO, "%s: read error after %zu bytes: %s", path, used, strerror(e));
        }
        if (r == 0) break;
        used += (size_t)r;
    }
    close(fd);
    if (used >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        unsigned char *plain;
        size_t plain_len;
        asymbp_status_t st = asymbp__data_gunzip(ctx, path, buf, used, &plain, &plain_len);
        asymbp__free(ctx, buf);
        if (st != ASYMBP_OK) return st;
        *out = plain;
        *out_len = plain_len;
        return ASYMBP_OK;
    }
    if (used == 0) {
        asymbp__free(ctx, buf);
        buf = NULL;
    }
    *out = buf;
    *out_len = used;
    return ASYMBP_OK;
}
