/* Layer kernels: dense, conv2d (im2col + GEMM), max/avg pooling, ReLU, batch norm, dropout.
 * Weighted layers send the delta down through wl.V (the feedback tensor) unless it is NULL, W
 * itself, or the net is in force-symmetric mode: this file is the only place V is read. */
#include <math.h>
#include <string.h>
#include "layers/layers_impl.h"
#include "core/core_impl.h"

int64_t asymbp__pool_out(int64_t in, int k, int stride, int pad, int ceil_mode)
{
    int64_t span = in + 2 * (int64_t)pad - k, out;
    if (span < 0 || stride < 1) return 0;
    if (ceil_mode) {
        out = (span + stride - 1) / stride + 1;
        /* The last window must start inside the input or the left padding.  Caffe checks this
         * only when pad > 0, which lets a kernel smaller than its stride start a window past
         * the edge (k 1, s 2 on 8 values: a 5th window at 8); the rule applies always here. */
        if ((out - 1) * stride >= in + pad) out--;
    } else {
        out = span / stride + 1;
    }
    return out;
}

const float *asymbp__layer_input(const asymbp_net_t *net, size_t i)
{
    return i == 0 ? net->input : net->layers[i - 1]->out;
}

/* Reductions in a fixed order (deterministic) that the compiler vectorises: LANES independent
 * float partial sums over blocks of at most BLOCK elements, folded into double per block. */
#define LANES 16
#define BLOCK 4096

/* The reductions below are inlined into their callers, so that inside an AVX-512/AVX2 clone
 * (ASYMBP__CLONES) they run with that clone's vectors, not as one out-of-line SSE2 copy: each
 * lane's sum keeps its order, so the bits stay the same. */
#if defined(__GNUC__)
#define ASYMBP__INLINE inline __attribute__((always_inline))
#else
#define ASYMBP__INLINE inline
#endif

static ASYMBP__INLINE double fold_lanes(const float *acc)
{
    double t = 0.0;
    for (int j = 0; j < LANES; j++) t += acc[j];
    return t;
}

static ASYMBP__INLINE double sum_d(const float *restrict v, size_t n)
{
    double s = 0.0;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t e = n - b < BLOCK ? n : b + BLOCK, i = b;
        float acc[LANES] = { 0 };
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += v[i + j];
        for (int j = 0; i < e; i++, j++) acc[j] += v[i];
        s += fold_lanes(acc);
    }
    return s;
}

/* On x86-64 with GCC, AVX-512/AVX2 clones of a few hot loops are picked at load time (ifunc):
 * the same operations in the same order (no FMA contraction in C99 mode), so the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(ASYMBP_NO_CLONES)
#define ASYMBP__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ASYMBP__CLONES
#endif

/* Sum of squares in double (the norms feedback/ compares with its own double sums): LANES
 * independent double partial sums, vectorisable. */
ASYMBP__CLONES
static double sumsq(const float *restrict v, size_t n)
{
    double acc[LANES] = { 0 }, s;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += (double)v[i + j] * (double)v[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (double)v[i] * (double)v[i];
    s = 0.0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

static const float *feedback_of(const asymbp_net_t *net, const asymbp__layer_t *L)
{
    if (net->force_sym || !L->wl.V || L->wl.V == L->W) return L->W;
    return L->wl.V;
}

/* ---- threads -------------------------------------------------------------------------------- */

/* Arguments of a kernel run over a range of samples (or channels) on the context's threads. */
typedef struct kargs {
    asymbp_net_t *net;
    asymbp__layer_t *L;
    const float *x;
    float *dx;
    size_t n;
    int train;
    size_t pieces;        /* reductions: the pieces of the run whose partial results they add */
} kargs_t;

/* Run fn over [0, count) on up to net->nthr threads (the scratch bound for); returns the pieces. */
static int run(kargs_t *a, size_t count, asymbp__range_fn fn)
{
    return asymbp__parallel(a->net->ctx, count, a->net->nthr, fn, a);
}

/* The pieces a run over `units` would use: one unit per thread when a kernel splits two
 * different dimensions in the same run. */
static size_t units_for(const asymbp_net_t *net, size_t limit)
{
    size_t u = (size_t)asymbp_ctx_get_threads(net->ctx);
    if (u > (size_t)net->nthr) u = (size_t)net->nthr;
    if (u > limit) u = limit;
    return u ? u : 1;
}

/* ---- dense ---------------------------------------------------------------------------------- */
/* On T threads a dense layer is split by output features: thread u owns rows [out u / U,
 * out (u+1) / U) of W, dW, the bias and V (and the optimizer updates the same rows on the same
 * thread), so the weights, the largest arrays of an MLP, never travel between cores; only the
 * activations (batch x features) do. */

/* Whether the delta sent down is summed from per-thread partial products (each thread multiplies
 * its own rows of V) rather than split by samples (each thread reads all of V): cheaper when the
 * extra batch x in partial sums weigh less than the half of V another core would have to read. */
static int dense_dx_by_rows(const asymbp_net_t *net, const asymbp__layer_t *L, size_t n, size_t U)
{
    return U > 1 && net->dxpart && n * (U - 1) * 2 < L->out_size;
}

static void dense_forward_unit(void *arg, size_t u0, size_t u1, int t)
{
    const kargs_t *a = arg;
    asymbp__layer_t *L = a->L;
    size_t in = L->in_size, out = L->out_size, n = a->n, U = units_for(a->net, out);
    (void)t;
    for (size_t u = u0; u < u1; u++) {
        size_t j0 = out * u / U, j1 = out * (u + 1) / U;
        if (j1 == j0) continue;
        if (a->net->isa) {
            /* out^T[j0:j1] = W[j0:j1] x^T, W read in place, x^T made once (net->gpack); then this
             * thread's block of out^T transposed into its columns of out */
            float *yt = a->net->wt + j0 * n;
            asymbp__gemm_rows(a->net->isa, j1 - j0, n, in, L->W + j0 * in, in, a->net->gpack, n, 0, yt, n);
            asymbp__transpose(j1 - j0, n, yt, n, L->out + j0, out);
        } else {
            asymbp__sgemm(0, 1, n, j1 - j0, in, 1.0f, a->x, in, L->W + j0 * in, in, 0.0f, L->out + j0, out);
        }
        if (L->has_bias) {
            const float *restrict b = L->b + j0;
            for (size_t s = 0; s < n; s++) {
                float *restrict y = L->out + s * out + j0;
                for (size_t j = 0; j < j1 - j0; j++) y[j] += b[j];
            }
        }
    }
}

/* Unit u of U: rows [j0, j1) of dW and the bias gradient; the delta of samples [n u / U,
 * n (u+1) / U) (all of V), or, by rows, the partial product of rows [j0, j1) of V (unit 0 into
 * dx, the others into their rows of net->dxpart, added up by dense_dx_reduce). */
static void dense_backward_unit(void *arg, size_t u0, size_t u1, int t)
{
    const kargs_t *a = arg;
    const asymbp_net_t *net = a->net;
    const asymbp__layer_t *L = a->L;
    size_t in = L->in_size, out = L->out_size, n = a->n, U = units_for(net, out);
    int by_rows = dense_dx_by_rows(net, L, n, U), isa = net->isa;
    const float *dy = L->dout, *V = feedback_of(net, L);
    float *ap = isa ? net->gwork + (size_t)t * net->gwork_stride : NULL;
    for (size_t u = u0; u < u1; u++) {
        size_t j0 = out * u / U, j1 = out * (u + 1) / U, s0 = n * u / U, s1 = n * (u + 1) / U;
        if (j1 > j0) {
            if (isa) {
                asymbp__gemm_pack_a(isa, 1, j1 - j0, n, dy + j0, out, ap);
                asymbp__gemm_packed(isa, j1 - j0, in, n, ap, a->x, in, 0, L->dW + j0 * in, in);
            } else {
                asymbp__sgemm(1, 0, j1 - j0, in, n, 1.0f, dy + j0, out, a->x, in, 0.0f, L->dW + j0 * in, in);
            }
            if (L->has_bias) {
                float *restrict db = L->db + j0;
                memset(db, 0, (j1 - j0) * sizeof(float));
                for (size_t s = 0; s < n; s++) {
                    const float *restrict d = dy + s * out + j0;
                    for (size_t j = 0; j < j1 - j0; j++) db[j] += d[j];
                }
            }
        }
        if (!a->dx) continue;
        if (by_rows) {
            float *dst = u ? net->dxpart + (u - 1) * net->batch * in : a->dx;
            if (j1 > j0 && isa) {
                asymbp__gemm_pack_a(isa, 0, n, j1 - j0, dy + j0, out, ap);
                asymbp__gemm_packed(isa, n, in, j1 - j0, ap, V + j0 * in, in, 0, dst, in);
            } else if (j1 > j0) {
                asymbp__sgemm(0, 0, n, in, j1 - j0, 1.0f, dy + j0, out, V + j0 * in, in, 0.0f, dst, in);
            } else {
                memset(dst, 0, n * in * sizeof(float));
            }
        } else if (s1 > s0 && isa) {
            asymbp__gemm_pack_a(isa, 0, s1 - s0, out, dy + s0 * out, out, ap);
            asymbp__gemm_packed(isa, s1 - s0, in, out, ap, V, in, 0, a->dx + s0 * in, in);
        } else if (s1 > s0) {
            asymbp__sgemm(0, 0, s1 - s0, in, out, 1.0f, dy + s0 * out, out, V, in, 0.0f, a->dx + s0 * in, in);
        }
    }
}

/* dx[s] += the partial products of units 1 .. pieces - 1, samples [s0, s1). */
static void dense_dx_reduce(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    const asymbp_net_t *net = a->net;
    size_t in = a->L->in_size, U = a->pieces;
    float *restrict d = a->dx + s0 * in;
    (void)t;
    for (size_t u = 1; u < U; u++) {
        const float *restrict p = net->dxpart + (u - 1) * net->batch * in + s0 * in;
        for (size_t i = 0; i < (s1 - s0) * in; i++) d[i] += p[i];
    }
}

static void dense_backward(kargs_t *a)
{
    const asymbp__layer_t *L = a->L;
    size_t U = units_for(a->net, L->out_size);
    run(a, U, dense_backward_unit);
    if (a->dx && dense_dx_by_rows(a->net, L, a->n, U)) {
        a->pieces = U;
        run(a, a->n, dense_dx_reduce);
    }
}

/* ---- conv2d --------------------------------------------------------------------------------- */

/* Range [lo, hi) of output positions o with 0 <= o*s - p + k < n. */
static void valid_range(int64_t n, int64_t no, int s, int p, int k, int64_t *lo, int64_t *hi)
{
    int64_t a = (int64_t)p - k, b = n + p - k;   /* need o*s >= a and o*s < b */
    int64_t l = a > 0 ? (a + s - 1) / s : 0;
    int64_t h = b > 0 ? (b + s - 1) / s : 0;
    if (h > no) h = no;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Geometry of column row (ki, kj) of a conv layer: output positions [oh_lo, oh_hi) x [ow_lo, ow_hi)
 * read the input; the rest read the zero padding. */
typedef struct colrow {
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
} colrow_t;

static int colrow_at(const asymbp__layer_t *L, int ki, int kj, colrow_t *r)
{
    const int64_t *g = L->colgeo + 4 * ((size_t)ki * (size_t)L->kw + (size_t)kj);
    r->oh_lo = g[0];
    r->oh_hi = g[1];
    r->ow_lo = g[2];
    r->ow_hi = g[3];
    return r->oh_lo < r->oh_hi && r->ow_lo < r->ow_hi;
}

void asymbp__conv_geometry(const asymbp__layer_t *L, int64_t *geo)
{
    for (int ki = 0; ki < L->kh; ki++)
        for (int kj = 0; kj < L->kw; kj++) {
            int64_t *g = geo + 4 * ((size_t)ki * (size_t)L->kw + (size_t)kj);
            valid_range(L->in_h, L->out_h, L->stride, L->pad, ki, &g[0], &g[1]);
            valid_range(L->in_w, L->out_w, L->stride, L->pad, kj, &g[2], &g[3]);
        }
}

/* Stride 1 and output width = input width (a "same" conv): column row (ki, kj) is the input plane
 * shifted by a constant offset, so its valid part is one contiguous span [*lo, *hi) of the row
 * (in row coordinates) that reads plane[i + *shift], except the out-of-range columns of the rows
 * inside it, which must be zero. */
static int conv_same_width(const asymbp__layer_t *L)
{
    return L->stride == 1 && L->out_w == L->in_w;
}

static void span_of(const asymbp__layer_t *L, int ki, int kj, const colrow_t *r, int64_t *lo, int64_t *hi, int64_t *shift)
{
    int64_t OW = L->out_w;
    *lo = r->oh_lo * OW + r->ow_lo;
    *hi = (r->oh_hi - 1) * OW + r->ow_hi;
    *shift = (int64_t)(ki - L->pad) * L->in_w + (kj - L->pad);
}

/* Zero the out-of-range columns of rows [oh_lo, oh_hi) of a column row. */
static void zero_side_columns(float *restrict row, const colrow_t *r, int64_t OW)
{
    /* column by column (at most pad of them): strided stores, not a memset call per row */
    if (r->ow_lo == 0 && r->ow_hi == OW) return;
    for (int64_t ow = 0; ow < r->ow_lo; ow++)
        for (int64_t oh = r->oh_lo; oh < r->oh_hi; oh++) row[oh * OW + ow] = 0.0f;
    for (int64_t ow = r->ow_hi; ow < OW; ow++)
        for (int64_t oh = r->oh_lo; oh < r->oh_hi; oh++) row[oh * OW + ow] = 0.0f;
}

/* im2col of one image into the layer's own buffer L->col ([C*kh*kw][OH*OW]).  The entries that
 * fall in the zero padding are the same for every image: they were zeroed at bind time and are
 * never written (the same-width path rewrites them with zeros), so only the valid part is copied. */
static void im2col(const asymbp__layer_t *L, const float *restrict x, float *restrict col)
{
    int64_t C = L->in_c, H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int s = L->stride, p = L->pad, same = conv_same_width(L);
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * H * W;
        for (int ki = 0; ki < L->kh; ki++) {
            for (int kj = 0; kj < L->kw; kj++) {
                float *restrict dst = col + ((c * L->kh + ki) * L->kw + kj) * OH * OW;
                colrow_t r;
                if (!colrow_at(L, ki, kj, &r)) continue;
                if (same) {
                    int64_t lo, hi, sh;
                    span_of(L, ki, kj, &r, &lo, &hi, &sh);
                    memcpy(dst + lo, xc + lo + sh, (size_t)(hi - lo) * sizeof(float));
                    zero_side_columns(dst, &r, OW);
                    continue;
                }
                for (int64_t oh = r.oh_lo; oh < r.oh_hi; oh++) {
                    float *restrict row = dst + oh * OW + r.ow_lo;
                    const float *restrict src = xc + (oh * s - p + ki) * W + (r.ow_lo * s - p + kj);
                    int64_t m = r.ow_hi - r.ow_lo;
                    if (s == 1) {
                        memcpy(row, src, (size_t)m * sizeof(float));
                    } else {
                        for (int64_t i = 0; i < m; i++) row[i] = src[i * s];
                    }
                }
            }
        }
    }
}

/* dx = col2im(col) for one image; col is scratch (the same-width path zeroes parts of it). */
static void col2im(const asymbp__layer_t *L, float *restrict col, float *restrict dx)
{
    int64_t C = L->in_c, H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int s = L->stride, p = L->pad, same = conv_same_width(L);
    memset(dx, 0, L->in_size * sizeof(float));
    for (int64_t c = 0; c < C; c++) {
        float *dc = dx + c * H * W;
        for (int ki = 0; ki < L->kh; ki++) {
            for (int kj = 0; kj < L->kw; kj++) {
                float *restrict srcb = col + ((c * L->kh + ki) * L->kw + kj) * OH * OW;
                colrow_t r;
                if (!colrow_at(L, ki, kj, &r)) continue;
                if (same) {
                    int64_t lo, hi, sh;
                    span_of(L, ki, kj, &r, &lo, &hi, &sh);
                    zero_side_columns(srcb, &r, OW);
                    {
                        const float *restrict g = srcb + lo;
                        float *restrict d = dc + lo + sh;
                        size_t len = (size_t)(hi - lo);
                        for (size_t i = 0; i < len; i++) d[i] += g[i];
                    }
                    continue;
                }
                for (int64_t oh = r.oh_lo; oh < r.oh_hi; oh++) {
                    const float *restrict row = srcb + oh * OW + r.ow_lo;
                    float *restrict dst = dc + (oh * s - p + ki) * W + (r.ow_lo * s - p + kj);
                    int64_t m = r.ow_hi - r.ow_lo;
                    if (s == 1) {
                        for (int64_t i = 0; i < m; i++) dst[i] += row[i];
                    } else {
                        for (int64_t i = 0; i < m; i++) dst[i * s] += row[i];
                    }
                }
            }
        }
    }
}

/* ---- a convolutional BN's passes run by its neighbours (layers_impl.h) ----------------------------- */

/* Channels [j0, j1) of sample s of the BN's output, from the statistics of its last forward: into
 * the ReLU's output through max(0, .) when it runs the ReLU above it, else into its own output.
 * The last pass of bn_forward_range, or the pooling layer above, a plane at a time. */
ASYMBP__CLONES
static void bn_out_rows(const asymbp__layer_t *B, size_t s, size_t j0, size_t j1)
{
    size_t C = (size_t)B->in_c, S = (size_t)(B->in_h * B->in_w);
    for (size_t c = j0; c < j1; c++) {
        size_t o = (s * C + c) * S;
        const float *restrict xc = B->bn_in + o;
        const float mj = B->bmean[c], gj = B->gamma[c] * B->binvstd[c], bj = B->beta[c];
        if (B->relu) {
            float *restrict rc = B->relu->out + o;
            for (size_t i = 0; i < S; i++) {
                float v = (xc[i] - mj) * gj + bj;
                rc[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            float *restrict yc = B->out + o;
            for (size_t i = 0; i < S; i++) yc[i] = (xc[i] - mj) * gj + bj;
        }
    }
}

/* Channels [j0, j1) of sample s of the error the BN sends down, into d, from the coefficients its
 * backward's first pass left in B->bn_coef.  dx = gamma*is/M * (M dy - sum dy - xhat sum(dy xhat)):
 * the float xhat is re-centred on its measured mean mx, because sum dx is exactly 0 in exact
 * arithmetic (the layer below a BN has a bias gradient of 0) and with a small batch is is large, so
 * an uncentred xhat leaves visible rounding in that sum.  The last pass of bn_backward_range, or
 * the conv below, a sample at a time. */
ASYMBP__CLONES
static void bn_dx_rows(const asymbp__layer_t *B, float *d, size_t s, size_t j0, size_t j1)
{
    size_t C = (size_t)B->in_c, S = (size_t)(B->in_h * B->in_w);
    const float *g = B->bn_coef, *av = g + C, *bq = av + C, *mx = bq + C;
    for (size_t j = j0; j < j1; j++) {
        size_t o = (s * C + j) * S;
        const float *restrict xc = B->bn_in + o, *restrict dy = B->dout + o;
        float *restrict dj = d + o;
        const float gj = g[j];
        if (B->bn_train) {
            const float aj = av[j], bj = bq[j], mj = B->bmean[j], ij = B->binvstd[j], xj = mx[j];
            for (size_t i = 0; i < S; i++) dj[i] = gj * (dy[i] - aj - ((xc[i] - mj) * ij - xj) * bj);
        } else {
            for (size_t i = 0; i < S; i++) dj[i] = gj * dy[i];
        }
    }
}

static int conv_is_pointwise(const asymbp__layer_t *L)
{
    return L->kh == 1 && L->kw == 1 && L->stride == 1 && L->pad == 0;
}

static void conv_forward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    asymbp__layer_t *L = a->L;
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    float *mycol = L->col ? L->col + (size_t)t * L->col_size : NULL;
    for (size_t s = s0; s < s1; s++) {
        const float *xs = a->x + s * L->in_size, *col = xs;
        float *y = L->out + s * L->out_size;
        if (!conv_is_pointwise(L)) {
            im2col(L, xs, mycol);
            col = mycol;
        }
        if (a->net->isa) asymbp__gemm_packed(a->net->isa, OC, P, K, a->net->gpack, col, P, 0, y, P);
        else asymbp__sgemm(0, 0, OC, P, K, 1.0f, L->W, K, col, P, 0.0f, y, P);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) {
                float *restrict yc = y + c * P;
                float bc = L->b[c];
                for (size_t i = 0; i < P; i++) yc[i] += bc;
            }
        }
    }
}

/* conv_backward_range with the own GEMM kernels: dW^T (K x OC) = sum over samples of the im2col
 * matrix (read in place) times dy^T, in the thread's scratch, then transposed into dW; the
 * delta's columns from V^T, packed once for all threads in net->gpack. */
static void conv_backward_packed(const kargs_t *a, size_t s0, size_t s1, int t, float *dW, float *db, float *dcol)
{
    asymbp_net_t *net = a->net;
    const asymbp__layer_t *L = a->L;
    int isa = net->isa, pw = conv_is_pointwise(L);
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    float *dyT = net->gwork + (size_t)t * net->gwork_stride, *dWt = dyT + P * OC;
    float *mycol = L->col ? L->col + (size_t)t * L->col_size : NULL;
    for (size_t s = s0; s < s1; s++) {
        const float *xs = a->x + s * L->in_size, *dy = L->dout + s * L->out_size, *col = xs;
        if (L->bn_bwd) bn_dx_rows(L->bn_bwd, L->dout, s, 0, OC);   /* this sample's error, from the BN above */
        if (!pw) {
            im2col(L, xs, mycol);
            col = mycol;
        }
        asymbp__transpose(OC, P, dy, P, dyT, OC);
        asymbp__gemm_rows(isa, K, OC, P, col, P, dyT, OC, s > s0, dWt, OC);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) db[c] += (float)sum_d(dy + c * P, P);
        }
        if (a->dx) {
            float *dxs = a->dx + s * L->in_size;
            asymbp__gemm_packed(isa, K, P, OC, net->gpack, dy, P, 0, pw ? dxs : dcol, P);
            if (!pw) col2im(L, dcol, dxs);
        }
    }
    if (s1 > s0) asymbp__transpose(K, OC, dWt, OC, dW, K);
}

/* Samples [s0, s1) on thread t: their weight and bias gradients are summed into dW and db
 * (thread 0) or the thread's partial row of net->wpart (added in afterwards, in thread order),
 * their deltas written to dx. */
static void conv_backward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    asymbp_net_t *net = a->net;
    asymbp__layer_t *L = a->L;
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    const float *V = feedback_of(net, L);
    int pw = conv_is_pointwise(L);
    float *dW = t ? net->wpart + (size_t)(t - 1) * net->wpart_stride : L->dW;
    float *db = t ? dW + L->wl.numel : L->db;
    float *mycol = L->col ? L->col + (size_t)t * L->col_size : NULL;
    float *dcol = net->col ? net->col + (size_t)t * net->col_cap : NULL;
    if (L->has_bias) memset(db, 0, OC * sizeof(float));
    if (net->isa) {
        conv_backward_packed(a, s0, s1, t, dW, db, dcol);
        return;
    }
    for (size_t s = s0; s < s1; s++) {
        const float *xs = a->x + s * L->in_size, *col = xs;
        const float *dy = L->dout + s * L->out_size;
        if (L->bn_bwd) bn_dx_rows(L->bn_bwd, L->dout, s, 0, OC);   /* this sample's error, from the BN above */
        if (!pw) {
            im2col(L, xs, mycol);
            col = mycol;
        }
        asymbp__sgemm(0, 1, OC, K, P, 1.0f, dy, P, col, P, s > s0 ? 1.0f : 0.0f, dW, K);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) db[c] += (float)sum_d(dy + c * P, P);
        }
        if (a->dx) {
            float *dxs = a->dx + s * L->in_size;
            if (pw) {
                asymbp__sgemm(1, 0, K, P, OC, 1.0f, V, K, dy, P, 0.0f, dxs, P);
            } else {
                asymbp__sgemm(1, 0, K, P, OC, 1.0f, V, K, dy, P, 0.0f, dcol, P);
                col2im(L, dcol, dxs);
            }
        }
    }
}

/* dW (then db) += the partial rows of threads 1 .. pieces - 1, element range [i0, i1) of the
 * numel + OC values. */
static void conv_reduce_range(void *arg, size_t i0, size_t i1, int t)
{
    const kargs_t *a = arg;
    const asymbp_net_t *net = a->net;
    asymbp__layer_t *L = a->L;
    size_t numel = L->wl.numel, end = numel + (L->has_bias ? (size_t)L->out_c : 0);
    (void)t;
    if (i1 > end) i1 = end;
    for (size_t p = 1; p < a->pieces; p++) {
        const float *restrict part = net->wpart + (p - 1) * net->wpart_stride;
        float *restrict w = L->dW;
        float *restrict b = L->db;
        size_t wa = i0, wb = i1 < numel ? i1 : numel;
        for (size_t i = wa; i < wb; i++) w[i] += part[i];
        for (size_t i = i0 > numel ? i0 : numel; i < i1; i++) b[i - numel] += part[i];
    }
}

static void conv_backward(kargs_t *a)
{
    asymbp__layer_t *L = a->L;
    if (a->net->isa && a->dx) {
        /* V^T (K x OC), packed once: every thread reads it */
        size_t K = (size_t)L->in_c * L->kh * L->kw;
        asymbp__gemm_pack_a(a->net->isa, 1, K, (size_t)L->out_c, feedback_of(a->net, L), K, a->net->gpack);
    }
    a->pieces = (size_t)run(a, a->n, conv_backward_range);
    if (a->pieces > 1) run(a, L->wl.numel + (L->has_bias ? (size_t)L->out_c : 0), conv_reduce_range);
}

/* ---- pooling -------------------------------------------------------------------------------- */

/* Output columns [*lo, *hi) whose pooling window lies fully inside the input horizontally. */
static void pool_inner_cols(const asymbp__layer_t *L, int64_t *lo, int64_t *hi)
{
    int64_t W = L->in_w, OW = L->out_w, k = L->kw, s = L->stride, p = L->pad;
    int64_t a = (p + s - 1) / s, b = W + p - k >= 0 ? (W + p - k) / s + 1 : 0;
    if (b > OW) b = OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* One max-pool window, clipped to the input; strict '>': the first maximum in row-major scan
 * order wins ties. */
static void maxpool_window(const float *restrict xp, int64_t W, int64_t hs, int64_t he, int64_t ws, int64_t we,
                           float *best_out, int32_t *idx_out)
{
    int64_t bi = hs * W + ws;
    float best = xp[bi];
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++) {
            float v = xp[ih * W + iw];
            if (v > best) { best = v; bi = ih * W + iw; }
        }
    *best_out = best;
    *idx_out = (int32_t)bi;
}

/* One tap of the max-pool window for m consecutive windows of a row: xr points at the tap of the
 * first window, base is its index in the plane (stride s: a constant at the hot call site, so
 * that the strided load vectorises). */
static inline void maxpool_tap(const float *restrict xr, int32_t base, float *restrict best, int32_t *restrict idx,
                               int64_t m, int s)
{
    for (int32_t i = 0; i < (int32_t)m; i++) {
        int32_t pos = i * s;
        float v = xr[pos], b = best[i];
        int32_t a = idx[i], gt = -(int32_t)(v > b);   /* all ones where v wins (a mask: vectorises) */
        idx[i] = (a & ~gt) | ((base + pos) & gt);
        best[i] = v > b ? v : b;
    }
}

/* The paper CNN's pooling (3 x 3, stride 2) over m whole windows of a row, window by window in
 * registers: the same scan order and strict '>' as maxpool_window (the first maximum in row-major
 * order wins), so the same values and indices as the tap-by-tap loop; b0 is the index of the
 * first window's top-left input. */
static ASYMBP__INLINE void maxpool_row_3s2(const float *restrict xp, int64_t W, int32_t b0, float *restrict y,
                                           int32_t *restrict idx, int64_t m)
{
    for (int32_t i = 0; i < (int32_t)m; i++) {
        int32_t o = b0 + 2 * i;
        float best = xp[o];
        int32_t bi = o;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) {
                int32_t q = o + r * (int32_t)W + c;
                float v = xp[q];
                int gt = v > best;
                bi = gt ? q : bi;
                best = gt ? v : best;
            }
        y[i] = best;
        idx[i] = bi;
    }
}

ASYMBP__CLONES
static void maxpool_forward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    asymbp__layer_t *L = a->L;
    const float *x = a->x;
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t pl0 = s0 * (size_t)L->in_c, planes = s1 * (size_t)L->in_c;
    (void)t;
    pool_inner_cols(L, &c_lo, &c_hi);
    for (size_t pl = pl0; pl < planes; pl++) {
        if (L->bn_fwd)   /* this plane of the input, from the BN below */
            bn_out_rows(L->bn_fwd, pl / (size_t)L->in_c, pl % (size_t)L->in_c, pl % (size_t)L->in_c + 1);
        const float *restrict xp = x + pl * (size_t)(H * W);
        float *y = L->out + pl * (size_t)(OH * OW);
        int32_t *am = L->argmax + pl * (size_t)(OH * OW);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t hs = oh * s - p, he = hs + k;
            float *restrict yr = y + oh * OW;
            int32_t *restrict ar = am + oh * OW;
            if (hs < 0) hs = 0;
            if (he > H) he = H;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t ws, we;
                if (ow == c_lo && c_lo < c_hi) ow = c_hi;   /* the inner columns are done below */
                if (ow >= OW) break;
                ws = ow * s - p;
                we = ws + k;
                if (ws < 0) ws = 0;
                if (we > W) we = W;
                maxpool_window(xp, W, hs, he, ws, we, &yr[ow], &ar[ow]);
            }
            if (c_lo >= c_hi) continue;
            /* inner columns: the same scan, vectorised across the windows of the row */
            {
                int64_t w0 = c_lo * s - p;   /* >= 0: first input column of the first inner window */
                int32_t b0 = (int32_t)(hs * W + w0);
                const float *restrict x0 = xp + b0;
                for (int64_t ow = c_lo; ow < c_hi; ow++) {
                    yr[ow] = x0[(ow - c_lo) * s];
                    ar[ow] = b0 + (int32_t)((ow - c_lo) * s);
                }
                if (k == 3 && s == 2 && he - hs == 3)
                    maxpool_row_3s2(xp, W, b0, yr + c_lo, ar + c_lo, c_hi - c_lo);
                else
                    for (int64_t ih = hs; ih < he; ih++)
                        for (int kj = ih == hs ? 1 : 0; kj < k; kj++) {
                            int32_t base = (int32_t)(ih * W + w0 + kj);
                            if (s == 2) maxpool_tap(xp + base, base, yr + c_lo, ar + c_lo, c_hi - c_lo, 2);
                            else maxpool_tap(xp + base, base, yr + c_lo, ar + c_lo, c_hi - c_lo, s);
                        }
            }
        }
    }
}

ASYMBP__CLONES
static void maxpool_backward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    const asymbp__layer_t *L = a->L;
    float *dx = a->dx;
    size_t in_pl = (size_t)(L->in_h * L->in_w), out_pl = (size_t)(L->out_h * L->out_w);
    size_t pl0 = s0 * (size_t)L->in_c, planes = s1 * (size_t)L->in_c;
    (void)t;
    memset(dx + s0 * L->in_size, 0, (s1 - s0) * L->in_size * sizeof(float));
    for (size_t pl = pl0; pl < planes; pl++) {
        float *d = dx + pl * in_pl;
        const float *dy = L->dout + pl * out_pl;
        const int32_t *am = L->argmax + pl * out_pl;
        for (size_t i = 0; i < out_pl; i++) d[am[i]] += dy[i];
    }
}

/* Average pool: divide by the window clipped to the padded input (Caffe's count).  Row oh,
 * column ow: rows [hs, he) and columns [ws, we) of the input, 1 / count in *inv. */
static void avg_window(const asymbp__layer_t *L, int64_t oh, int64_t ow, int64_t *hs, int64_t *he, int64_t *ws,
                       int64_t *we, float *inv)
{
    int64_t H = L->in_h, W = L->in_w;
    int k = L->kh, s = L->stride, p = L->pad;
    int64_t h0 = oh * s - p, h1 = h0 + k, w0 = ow * s - p, w1 = w0 + k;
    if (h1 > H + p) h1 = H + p;
    if (w1 > W + p) w1 = W + p;
    *inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
    *hs = h0 < 0 ? 0 : h0;
    *he = h1 > H ? H : h1;
    *ws = w0 < 0 ? 0 : w0;
    *we = w1 > W ? W : w1;
}

ASYMBP__CLONES
static void avgpool_forward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    asymbp__layer_t *L = a->L;
    const float *x = a->x;
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t pl0 = s0 * (size_t)L->in_c, planes = s1 * (size_t)L->in_c;
    (void)t;
    pool_inner_cols(L, &c_lo, &c_hi);
    for (size_t pl = pl0; pl < planes; pl++) {
        if (L->bn_fwd)   /* this plane of the input, from the BN below */
            bn_out_rows(L->bn_fwd, pl / (size_t)L->in_c, pl % (size_t)L->in_c, pl % (size_t)L->in_c + 1);
        const float *restrict xp = x + pl * (size_t)(H * W);
        float *restrict y = L->out + pl * (size_t)(OH * OW);
        for (int64_t oh = 0; oh < OH; oh++) {
            float *restrict yr = y + oh * OW;
            int64_t hs, he, ws, we;
            float inv;
            for (int64_t ow = 0; ow < OW; ow++) {
                float acc = 0.0f;
                if (ow == c_lo && c_lo < c_hi) ow = c_hi;
                if (ow >= OW) break;
                avg_window(L, oh, ow, &hs, &he, &ws, &we, &inv);
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) acc += xp[ih * W + iw];
                yr[ow] = acc * inv;
            }
            if (c_lo >= c_hi) continue;
            /* inner columns (full window width k): the same sums, vectorised across the row */
            avg_window(L, oh, c_lo, &hs, &he, &ws, &we, &inv);
            if (k == 3 && s == 2 && he - hs == 3) {
                /* the paper CNN's 3 x 3 stride-2 windows one after another in a register: the same
                 * sums in the same order (0, then the taps in row-major order), fewer passes */
                const float *restrict x0 = xp + hs * W + (c_lo * s - p);
                for (int64_t ow = c_lo; ow < c_hi; ow++) {
                    const float *restrict xw = x0 + 2 * (ow - c_lo);
                    float acc = 0.0f;
                    for (int r = 0; r < 3; r++)
                        for (int c = 0; c < 3; c++) acc += xw[r * W + c];
                    yr[ow] = acc * inv;
                }
                continue;
            }
            for (int64_t ow = c_lo; ow < c_hi; ow++) yr[ow] = 0.0f;
            for (int64_t ih = hs; ih < he; ih++)
                for (int kj = 0; kj < k; kj++) {
                    const float *restrict xr = xp + ih * W + (c_lo * s - p) + kj;
                    for (int64_t ow = c_lo; ow < c_hi; ow++) yr[ow] += xr[(ow - c_lo) * s];
                }
            for (int64_t ow = c_lo; ow < c_hi; ow++) yr[ow] *= inv;
        }
    }
}

ASYMBP__CLONES
static void avgpool_backward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    const asymbp__layer_t *L = a->L;
    float *dx = a->dx;
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t pl0 = s0 * (size_t)L->in_c, planes = s1 * (size_t)L->in_c;
    (void)t;
    pool_inner_cols(L, &c_lo, &c_hi);
    memset(dx + s0 * L->in_size, 0, (s1 - s0) * L->in_size * sizeof(float));
    for (size_t pl = pl0; pl < planes; pl++) {
        float *restrict dp = dx + pl * (size_t)(H * W);
        const float *restrict dy = L->dout + pl * (size_t)(OH * OW);
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *restrict dr = dy + oh * OW;
            int64_t hs, he, ws, we;
            float inv;
            for (int64_t ow = 0; ow < OW; ow++) {
                float g;
                if (ow == c_lo && c_lo < c_hi) ow = c_hi;
                if (ow >= OW) break;
                avg_window(L, oh, ow, &hs, &he, &ws, &we, &inv);
                g = dr[ow] * inv;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) dp[ih * W + iw] += g;
            }
            if (c_lo >= c_hi) continue;
            /* inner columns: for a fixed tap (ih, kj) the windows of the row hit distinct inputs */
            avg_window(L, oh, c_lo, &hs, &he, &ws, &we, &inv);
            for (int64_t ih = hs; ih < he; ih++)
                for (int kj = 0; kj < k; kj++) {
                    float *restrict d = dp + ih * W + (c_lo * s - p) + kj;
                    for (int64_t ow = c_lo; ow < c_hi; ow++) d[(ow - c_lo) * s] += dr[ow] * inv;
                }
        }
    }
}

/* ---- batch norm ----------------------------------------------------------------------------- */

/* Sum of (v[i] - mu)^2 (lanes, see sum_d). */
static ASYMBP__INLINE double sumsq_centered(const float *restrict v, size_t n, float mu)
{
    double s = 0.0;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t e = n - b < BLOCK ? n : b + BLOCK, i = b;
        float acc[LANES] = { 0 };
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = v[i + j] - mu;
                acc[j] += d * d;
            }
        for (int j = 0; i < e; i++, j++) {
            float d = v[i] - mu;
            acc[j] += d * d;
        }
        s += fold_lanes(acc);
    }
    return s;
}

/* Batch norm after a dense layer (one value per feature and sample, S = 1): the same sums in the
 * same order as the per-channel code below (double, sample by sample), but feature-major in blocks
 * of FBLK features so that every loop runs along contiguous features and vectorises. */
#define FBLK 64
/* channels of a convolutional BN read together, sample by sample (stack arrays of this size) */
#define CBLK 64

static ASYMBP__INLINE void bn_stats_block(const float *restrict x, size_t n, size_t C, size_t c0,
                           size_t m, double *restrict mean, double *restrict var)
{
    double acc[FBLK];
    float mf[FBLK];
    for (size_t j = 0; j < m; j++) acc[j] = 0.0;
    for (size_t s = 0; s < n; s++) {
        const float *restrict xs = x + s * C + c0;
        for (size_t j = 0; j < m; j++) acc[j] += (double)xs[j];
    }
    for (size_t j = 0; j < m; j++) {
        mean[j] = acc[j] / (double)n;
        mf[j] = (float)mean[j];
        acc[j] = 0.0;
    }
    for (size_t s = 0; s < n; s++) {
        const float *restrict xs = x + s * C + c0;
        for (size_t j = 0; j < m; j++) {
            float d = xs[j] - mf[j];
            acc[j] += (double)(d * d);
        }
    }
    for (size_t j = 0; j < m; j++) var[j] = acc[j] / (double)n;
}

static ASYMBP__INLINE void bn_forward_dense(const asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train,
                             size_t b0, size_t b1)
{
    size_t C = (size_t)L->in_c;
    for (size_t c0 = b0 * FBLK; c0 < C && c0 < b1 * FBLK; c0 += FBLK) {
        size_t m = C - c0 < FBLK ? C - c0 : FBLK;
        double mean[FBLK], var[FBLK];
        float mu[FBLK], g[FBLK];
        const float *restrict bt = L->beta + c0;
        if (train) {
            bn_stats_block(x, n, C, c0, m, mean, var);
            if (net->bn_recal) {
                for (size_t j = 0; j < m; j++) {
                    double uv = n > 1 ? var[j] * (double)n / (double)(n - 1) : var[j];
                    L->acc_mean[c0 + j] += (double)n * mean[j];
                    L->acc_var[c0 + j] += (double)n * uv;
                }
                if (c0 == 0) L->acc_count += (double)n;
            } else if (!net->freeze_stats) {
                double mo = L->momentum;
                for (size_t j = 0; j < m; j++) {
                    size_t c = c0 + j;
                    double uv = n > 1 ? var[j] * (double)n / (double)(n - 1) : var[j];
                    L->run_mean[c] = (float)((1.0 - mo) * L->run_mean[c] + mo * mean[j]);
                    L->run_var[c] = (float)((1.0 - mo) * L->run_var[c] + mo * uv);
                }
            }
        } else {
            for (size_t j = 0; j < m; j++) {
                mean[j] = L->run_mean[c0 + j];
                var[j] = L->run_var[c0 + j];
            }
        }
        for (size_t j = 0; j < m; j++) {
            float is = (float)(1.0 / sqrt(var[j] + (double)L->eps));
            mu[j] = (float)mean[j];
            L->bmean[c0 + j] = mu[j];
            L->binvstd[c0 + j] = is;
            g[j] = L->gamma[c0 + j] * is;
        }
        if (L->relu) {
            for (size_t s = 0; s < n; s++) {
                const float *restrict xs = x + s * C + c0;
                float *restrict rs = L->relu->out + s * C + c0;
                for (size_t j = 0; j < m; j++) {
                    float v = (xs[j] - mu[j]) * g[j] + bt[j];
                    rs[j] = v > 0.0f ? v : 0.0f;
                }
            }
            continue;
        }
        for (size_t s = 0; s < n; s++) {
            const float *restrict xs = x + s * C + c0;
            float *restrict ys = L->out + s * C + c0;
            for (size_t j = 0; j < m; j++) ys[j] = (xs[j] - mu[j]) * g[j] + bt[j];
        }
    }
}

static ASYMBP__INLINE void bn_backward_dense(asymbp__layer_t *L, const float *x, float *dx, size_t n, size_t b0, size_t b1)
{
    size_t C = (size_t)L->in_c;
    for (size_t c0 = b0 * FBLK; c0 < C && c0 < b1 * FBLK; c0 += FBLK) {
        size_t m = C - c0 < FBLK ? C - c0 : FBLK;
        double sdy[FBLK], sdyx[FBLK], sxh[FBLK];
        float mu[FBLK], is[FBLK], g[FBLK], a[FBLK], bq[FBLK], mx[FBLK];
        for (size_t j = 0; j < m; j++) {
            mu[j] = L->bmean[c0 + j];
            is[j] = L->binvstd[c0 + j];
            g[j] = L->gamma[c0 + j] * is[j];
            sdy[j] = sdyx[j] = sxh[j] = 0.0;
        }
        for (size_t s = 0; s < n; s++) {
            const float *restrict xs = x + s * C + c0;
            if (L->relu) {
                /* the ReLU's backward first (its mask y > 0 with y computed as the forward did),
                 * into this layer's dout, read back below from L1 (one loop doing both does not
                 * vectorise) */
                const float *restrict dr = L->relu->dout + s * C + c0, *restrict bt = L->beta + c0;
                float *restrict dw = L->dout + s * C + c0;
                for (size_t j = 0; j < m; j++) {
                    float v = (xs[j] - mu[j]) * g[j] + bt[j], r = dr[j];
                    dw[j] = v > 0.0f ? r : 0.0f;
                }
            }
            {
                const float *restrict dy = L->dout + s * C + c0;
                for (size_t j = 0; j < m; j++) {
                    float xh = (xs[j] - mu[j]) * is[j], d = dy[j];
                    sdy[j] += (double)d;
                    sdyx[j] += (double)(d * xh);
                    sxh[j] += (double)xh;
                }
            }
        }
        for (size_t j = 0; j < m; j++) {
            L->dgamma[c0 + j] = (float)sdyx[j];
            L->dbeta[c0 + j] = (float)sdy[j];
            a[j] = (float)(sdy[j] / (double)n);
            bq[j] = (float)(sdyx[j] / (double)n);
            mx[j] = (float)(sxh[j] / (double)n);
        }
        if (!dx) continue;
        for (size_t s = 0; s < n; s++) {
            const float *restrict xs = x + s * C + c0, *restrict dy = L->dout + s * C + c0;
            float *restrict d = dx + s * C + c0;
            if (L->bn_train)
                for (size_t j = 0; j < m; j++) d[j] = g[j] * (dy[j] - a[j] - ((xs[j] - mu[j]) * is[j] - mx[j]) * bq[j]);
            else
                for (size_t j = 0; j < m; j++) d[j] = g[j] * dy[j];
        }
    }
}

/* Channels [c0, c1) (blocks of FBLK features after a dense layer): each channel's sums run in
 * the same order whatever the split, so the result does not depend on the thread count. */
ASYMBP__CLONES
static void bn_forward_range(void *arg, size_t c0, size_t c1, int t)
{
    const kargs_t *a = arg;
    const asymbp_net_t *net = a->net;
    asymbp__layer_t *L = a->L;
    const float *x = a->x;
    size_t n = a->n;
    int train = a->train;
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    (void)t;
    if (S == 1) {
        bn_forward_dense(net, L, x, n, train, c0, c1);
        return;
    }
    /* channels in chunks of up to CBLK, each chunk read sample by sample (the chunk's rows of a
     * sample are contiguous: sequential reads the prefetcher follows, where one channel at a time
     * read 3 KB rows 100 KB apart); every channel's sums still run over the samples in order, so
     * the bits do not depend on the chunking or the thread split */
    for (size_t cb = c0; cb < c1; cb += CBLK) {
        size_t m = c1 - cb < CBLK ? c1 - cb : CBLK;
        double sum[CBLK], sq[CBLK];
        if (train) {
            float mf[CBLK];
            for (size_t j = 0; j < m; j++) sum[j] = sq[j] = 0.0;
            for (size_t s = 0; s < n; s++)
                for (size_t j = 0; j < m; j++) sum[j] += sum_d(x + (s * C + cb + j) * S, S);
            for (size_t j = 0; j < m; j++) mf[j] = (float)(sum[j] / (double)M);
            for (size_t s = 0; s < n; s++)
                for (size_t j = 0; j < m; j++) sq[j] += sumsq_centered(x + (s * C + cb + j) * S, S, mf[j]);
        }
        for (size_t j = 0; j < m; j++) {
            size_t c = cb + j;
            double mean, var;
            if (train) {
                mean = sum[j] / (double)M;
                var = sq[j] / (double)M;
                if (net->bn_recal) {
                    double uv = M > 1 ? var * (double)M / (double)(M - 1) : var;
                    L->acc_mean[c] += (double)M * mean;
                    L->acc_var[c] += (double)M * uv;
                    if (c == 0) L->acc_count += (double)M;
                } else if (!net->freeze_stats) {
                    double mo = L->momentum, uv = M > 1 ? var * (double)M / (double)(M - 1) : var;
                    L->run_mean[c] = (float)((1.0 - mo) * L->run_mean[c] + mo * mean);
                    L->run_var[c] = (float)((1.0 - mo) * L->run_var[c] + mo * uv);
                }
            } else {
                mean = L->run_mean[c];
                var = L->run_var[c];
            }
            L->bmean[c] = (float)mean;
            L->binvstd[c] = (float)(1.0 / sqrt(var + (double)L->eps));
        }
        if (L->fwd_deferred) continue;   /* the pooling layer above writes the output */
        for (size_t s = 0; s < n; s++) bn_out_rows(L, s, cb, cb + m);
    }
}

/* Sums over one row of a BN channel: dy, dy * xhat, xhat with xhat = (x - mu) * is. */
static ASYMBP__INLINE void bn_row_sums(const float *restrict xc, const float *restrict dy, size_t S, float mu, float is,
                        double *sdy, double *sdyx, double *sxh)
{
    float a0[LANES] = { 0 }, a1[LANES] = { 0 }, a2[LANES] = { 0 };
    size_t i = 0;
    for (; i + LANES <= S; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float xh = (xc[i + j] - mu) * is, d = dy[i + j];
            a0[j] += d;
            a1[j] += d * xh;
            a2[j] += xh;
        }
    for (int j = 0; i < S; i++, j++) {
        float xh = (xc[i] - mu) * is, d = dy[i];
        a0[j] += d;
        a1[j] += d * xh;
        a2[j] += xh;
    }
    *sdy += fold_lanes(a0);
    *sdyx += fold_lanes(a1);
    *sxh += fold_lanes(a2);
}

/* The same sums with the ReLU above folded in: the error is dr where y = (x - mu) * g + b > 0
 * (y as the forward computed it), else 0, and is written to dy for the pass that follows. */
static ASYMBP__INLINE void bn_row_sums_relu(const float *restrict xc, const float *restrict dr, float *restrict dy,
                                            size_t S, float mu, float is, float g, float b, double *sdy, double *sdyx,
                                            double *sxh)
{
    float a0[LANES] = { 0 }, a1[LANES] = { 0 }, a2[LANES] = { 0 };
    size_t i = 0;
    for (; i + LANES <= S; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float v = (xc[i + j] - mu) * g + b, xh = (xc[i + j] - mu) * is;
            float r = dr[i + j], d = v > 0.0f ? r : 0.0f;
            dy[i + j] = d;
            a0[j] += d;
            a1[j] += d * xh;
            a2[j] += xh;
        }
    for (int j = 0; i < S; i++, j++) {
        float v = (xc[i] - mu) * g + b, xh = (xc[i] - mu) * is;
        float r = dr[i], d = v > 0.0f ? r : 0.0f;
        dy[i] = d;
        a0[j] += d;
        a1[j] += d * xh;
        a2[j] += xh;
    }
    *sdy += fold_lanes(a0);
    *sdyx += fold_lanes(a1);
    *sxh += fold_lanes(a2);
}

ASYMBP__CLONES
static void bn_backward_range(void *arg, size_t c0, size_t c1, int t)
{
    const kargs_t *ka = arg;
    asymbp__layer_t *L = ka->L;
    const float *x = ka->x;
    float *dx = ka->dx;
    size_t n = ka->n;
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    (void)t;
    if (S == 1) {
        bn_backward_dense(L, x, dx, n, c0, c1);
        return;
    }
    /* chunks of channels read sample by sample, as in the forward; the same sums in the same order */
    for (size_t cb = c0; cb < c1; cb += CBLK) {
        size_t m = c1 - cb < CBLK ? c1 - cb : CBLK;
        double sdy[CBLK], sdyx[CBLK], sxh[CBLK];
        float *g = L->bn_coef, *av = g + C, *bq = av + C, *mx = bq + C;   /* indexed by channel */
        float mu[CBLK], is[CBLK];
        for (size_t j = 0; j < m; j++) {
            mu[j] = L->bmean[cb + j];
            is[j] = L->binvstd[cb + j];
            g[cb + j] = L->gamma[cb + j] * is[j];
            sdy[j] = sdyx[j] = sxh[j] = 0.0;
        }
        for (size_t s = 0; s < n; s++)
            for (size_t j = 0; j < m; j++) {
                size_t o = (s * C + cb + j) * S;
                if (L->relu)
                    bn_row_sums_relu(x + o, L->relu->dout + o, L->dout + o, S, mu[j], is[j], g[cb + j], L->beta[cb + j],
                                     &sdy[j], &sdyx[j], &sxh[j]);
                else
                    bn_row_sums(x + o, L->dout + o, S, mu[j], is[j], &sdy[j], &sdyx[j], &sxh[j]);
            }
        for (size_t j = 0; j < m; j++) {
            size_t c = cb + j;
            L->dgamma[c] = (float)sdyx[j];
            L->dbeta[c] = (float)sdy[j];
            av[c] = (float)(sdy[j] / (double)M);
            bq[c] = (float)(sdyx[j] / (double)M);
            mx[c] = (float)(sxh[j] / (double)M);
        }
        if (L->bwd_deferred || !dx) continue;   /* deferred: the conv below writes the error sent down */
        for (size_t s = 0; s < n; s++) bn_dx_rows(L, dx, s, cb, cb + m);
    }
}

/* ---- dispatch ------------------------------------------------------------------------------- */

ASYMBP__CLONES
static void relu_forward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    size_t sz = a->L->out_size;
    const float *restrict x = a->x + s0 * sz;
    float *restrict y = a->L->out + s0 * sz;
    size_t total = (s1 - s0) * sz;
    (void)t;
    for (size_t i = 0; i < total; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

ASYMBP__CLONES
static void relu_backward_range(void *arg, size_t s0, size_t s1, int t)
{
    const kargs_t *a = arg;
    size_t sz = a->L->out_size;
    const float *restrict y = a->L->out + s0 * sz, *restrict dy = a->L->dout + s0 * sz;
    float *restrict d = a->dx + s0 * sz;
    size_t total = (s1 - s0) * sz;
    (void)t;
    /* the load of dy is unconditional so that the select vectorises */
    for (size_t i = 0; i < total; i++) {
        float g = dy[i];
        d[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

/* Sum of squares on the threads: piece t's partial sum into net->tsum[t], added in order. */
typedef struct sumsq_job {
    const float *v;
    size_t rowlen;            /* split at multiples of rowlen (the rows a thread owns) */
    double *tsum;
} sumsq_job_t;

static void sumsq_range(void *arg, size_t r0, size_t r1, int t)
{
    const sumsq_job_t *j = arg;
    j->tsum[t] = sumsq(j->v + r0 * j->rowlen, (r1 - r0) * j->rowlen);
}

/* v holds `rows` rows (samples, output features): split by rows, so that a thread mostly reads
 * what it wrote.  Small arrays stay on one thread. */
static double par_sumsq(const asymbp_net_t *net, const float *v, size_t n, size_t rows)
{
    sumsq_job_t j;
    double s = 0.0;
    int P;
    if (net->nthr < 2 || n < 65536 || rows < 2 || n % rows) return sumsq(v, n);
    j.v = v;
    j.rowlen = n / rows;
    j.tsum = net->tsum;
    P = asymbp__parallel(net->ctx, rows, net->nthr, sumsq_range, &j);
    for (int t = 0; t < P; t++) s += net->tsum[t];
    return s;
}

double asymbp__net_sumsq(const asymbp_net_t *net, const float *v, size_t n, size_t rows)
{
    return par_sumsq(net, v, n, rows);
}

/* Channel units of a batch-norm layer: channels, or blocks of FBLK features after a dense layer. */
static size_t bn_units(const asymbp__layer_t *L)
{
    size_t C = (size_t)L->in_c;
    return L->in_h * L->in_w == 1 ? (C + FBLK - 1) / FBLK : C;
}

void asymbp__layer_forward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train)
{
    size_t total = n * L->out_size;
    kargs_t a;
    a.net = net;
    a.L = L;
    a.x = x;
    a.dx = NULL;
    a.n = n;
    a.train = train;
    a.pieces = 1;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE:
        if (net->isa) asymbp__transpose(n, L->in_size, x, L->in_size, net->gpack, n);
        run(&a, units_for(net, L->out_size), dense_forward_unit);
        break;
    case ASYMBP_LAYER_CONV2D:
        if (net->isa)
            asymbp__gemm_pack_a(net->isa, 0, (size_t)L->out_c, (size_t)L->in_c * L->kh * L->kw, L->W,
                                (size_t)L->in_c * L->kh * L->kw, net->gpack);
        run(&a, n, conv_forward_range);
        break;
    case ASYMBP_LAYER_MAXPOOL: run(&a, n, maxpool_forward_range); break;
    case ASYMBP_LAYER_AVGPOOL: run(&a, n, avgpool_forward_range); break;
    case ASYMBP_LAYER_RELU:
        if (!L->fused) run(&a, n, relu_forward_range);   /* fused: the BN below wrote L->out */
        break;
    case ASYMBP_LAYER_FLATTEN: break;   /* out aliases the input */
    case ASYMBP_LAYER_BATCHNORM:
        run(&a, bn_units(L), bn_forward_range);
        L->bn_train = train;
        break;
    case ASYMBP_LAYER_DROPOUT: {
        /* one thread: the mask is one sequential draw of the layer's stream */
        const float *restrict in = x;
        float *restrict y = L->out, *restrict m = L->mask;
        L->drop_train = train && L->p > 0.0f && !net->bn_recal;
        if (!L->drop_train) {
            memcpy(y, in, total * sizeof(float));
            break;
        }
        {
            float scale = 1.0f / (1.0f - L->p);
            /* a rank's slice of a global batch (data-parallel): the draws of the samples before
             * it are skipped and those after it taken, so every rank's stream stays where one
             * process's would be and each sample gets the mask it would get there */
            int win = net->win_global > 0 && net->win_offset + n <= net->win_global;
            if (win) asymbp__rng_advance(&L->rng, (uint64_t)(net->win_offset * L->out_size));
            for (size_t i = 0; i < total; i++) m[i] = asymbp__rng_uniform(&L->rng) < L->p ? 0.0f : scale;
            if (win) asymbp__rng_advance(&L->rng, (uint64_t)((net->win_global - net->win_offset - n) * L->out_size));
        }
        for (size_t i = 0; i < total; i++) y[i] = in[i] * m[i];
        break;
    }
    }
}

void asymbp__layer_backward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t total = n * L->out_size;
    kargs_t a;
    a.net = net;
    a.L = L;
    a.x = x;
    a.dx = dx;
    a.n = n;
    a.train = 1;
    a.pieces = 1;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE:
    case ASYMBP_LAYER_CONV2D:
        if (L->kind == ASYMBP_LAYER_DENSE)
            dense_backward(&a);
        else
            conv_backward(&a);
        L->wl.grad_norm = sqrt(par_sumsq(net, L->dW, L->wl.numel, (size_t)L->out_c));   /* rows of dW */
        L->wl.delta_norm = dx ? sqrt(par_sumsq(net, dx, n * L->in_size, n)) : 0.0;
        break;
    case ASYMBP_LAYER_MAXPOOL: if (dx) run(&a, n, maxpool_backward_range); break;
    case ASYMBP_LAYER_AVGPOOL: if (dx) run(&a, n, avgpool_backward_range); break;
    case ASYMBP_LAYER_RELU:
        if (dx && !L->fused) run(&a, n, relu_backward_range);   /* fused: the BN below does it */
        break;
    case ASYMBP_LAYER_FLATTEN: break;   /* dout aliases dx */
    case ASYMBP_LAYER_BATCHNORM: run(&a, bn_units(L), bn_backward_range); break;
    case ASYMBP_LAYER_DROPOUT:
        if (dx) {
            const float *restrict dy = L->dout, *restrict m = L->mask;
            float *restrict d = dx;
            if (L->drop_train) for (size_t i = 0; i < total; i++) d[i] = dy[i] * m[i];
            else memcpy(d, dy, total * sizeof(float));
        }
        break;
    }
}
