/* Helpers shared by the outside programs of tests/api/: a check macro that names the line and
 * the library's last error, a counting allocator and a small synthetic classification set.
 * Only the public API (<asymbp/asymbp.h>) is used. */
#ifndef ASYMBP_API_TEST_H
#define ASYMBP_API_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <asymbp/asymbp.h>

static int api_failures;
static asymbp_ctx_t *api_ctx; /* for the detail text of failed checks (may be NULL) */

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    api_ctx ? asymbp_ctx_last_error(api_ctx) : "-"); \
            api_failures++; \
        } \
    } while (0)
/* A call that must return this status. */
#define EXPECT(call, status) \
    do { \
        asymbp_status_t st_ = (call); \
        if (st_ != (status)) { \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__, __LINE__, #call, \
                    asymbp_status_name(st_), asymbp_status_name(status), \
                    api_ctx ? asymbp_ctx_last_error(api_ctx) : "-"); \
            api_failures++; \
        } \
    } while (0)
#define OK(call) EXPECT(call, ASYMBP_OK)

static inline int api_done(const char *name)
{
    if (api_failures) fprintf(stderr, "%s: %d check(s) failed\n", name, api_failures);
    return api_failures ? 1 : 0;
}

/* An allocator that counts calls and live blocks. */
typedef struct api_alloc {
    long calls, live;
} api_alloc_t;
/* A name for a scratch file, "$TMPDIR/asymbp-api-TAG-XXXXXX" (else /tmp), made with mkstemp;
 * -1 when it could not be made. */
static inline int api_tmpfile(char *buf, size_t cap, const char *tag)
{
    const char *dir = getenv("TMPDIR");
    int fd;
    if (!dir || !*dir) dir = "/tmp";
    if (snprintf(buf, cap, "%s/asymbp-api-%s-XXXXXX", dir, tag) >= (int)cap) return -1;
    fd = mkstemp(buf);
    return fd;
}

static inline void *api_alloc_fn(void *user, size_t size, size_t align)
{
    api_alloc_t *a = user;
    void *p = NULL;
    a->calls++;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    a->live++;
    return p;
}
static inline void api_free_fn(void *user, void *p)
{
    api_alloc_t *a = user;
    a->live--;
    free(p);
}

/* n samples of dim features in k Gaussian-ish blobs (deterministic), labels 0..k-1. */
static inline void api_blobs(float *x, int32_t *y, size_t n, size_t dim, int k, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;
    size_t i, j;
    for (i = 0; i < n; i++) {
        int c = (int)(i % (size_t)k);
        y[i] = c;
        for (j = 0; j < dim; j++) {
            double u;
            s = s * 1664525u + 1013904223u;
            u = (double)(s >> 8) / 16777216.0 - 0.5;
            x[i * dim + j] = (float)(((j % (size_t)k) == (size_t)c ? 1.5 : -0.5) + u);
        }
    }
}

/* forward (train), loss, backward on n samples. */
static inline void api_fwd_bwd(asymbp_net_t *net, const float *x, const int32_t *y, size_t n, float *loss)
{
    OK(asymbp_net_forward(net, x, n, 1, NULL));
    OK(asymbp_net_loss(net, y, n, loss));
    OK(asymbp_net_backward(net));
}

#endif
