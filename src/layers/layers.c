/* Layer kernels: dense, conv2d (im2col + GEMM), max/avg pooling, ReLU, batch norm, dropout.
 * Weighted layers send the delta down through wl.V (the feedback tensor) unless it is NULL, W
 * itself, or the net is in force-symmetric mode: this file is the only place V is read. */
#include <math.h>
#include <string.h>
#include "layers/layers_impl.h"

int64_t asymbp__pool_out(int64_t in, int k, int stride, int pad, int ceil_mode)
{
    int64_t span = in + 2 * (int64_t)pad - k, out;
    if (span < 0 || stride < 1) return 0;
    if (ceil_mode) {
        out = (span + stride - 1) / stride + 1;
        /* Caffe: the last window must start inside the input or the left padding */
        if (pad > 0 && (out - 1) * stride >= in + pad) out--;
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

static double fold_lanes(const float *acc)
{
    double t = 0.0;
    for (int j = 0; j < LANES; j++) t += acc[j];
    return t;
}

static double sum_d(const float *restrict v, size_t n)
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
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
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

/* ---- dense ---------------------------------------------------------------------------------- */

static void dense_forward(asymbp__layer_t *L, const float *x, size_t n)
{
    size_t in = L->in_size, out = L->out_size;
    asymbp__sgemm(0, 1, n, out, in, 1.0f, x, in, L->W, in, 0.0f, L->out, out);
    if (L->has_bias) {
        const float *restrict b = L->b;
        for (size_t s = 0; s < n; s++) {
            float *restrict y = L->out + s * out;
            for (size_t j = 0; j < out; j++) y[j] += b[j];
        }
    }
}

static void dense_backward(const asymbp_net_t *net, asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t in = L->in_size, out = L->out_size;
    const float *dy = L->dout;
    asymbp__sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 0.0f, L->dW, in);
    if (L->has_bias) {
        float *restrict db = L->db;
        memset(db, 0, out * sizeof(float));
        for (size_t s = 0; s < n; s++) {
            const float *restrict d = dy + s * out;
            for (size_t j = 0; j < out; j++) db[j] += d[j];
        }
    }
    if (dx) asymbp__sgemm(0, 0, n, in, out, 1.0f, dy, out, feedback_of(net, L), in, 0.0f, dx, in);
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

static int conv_is_pointwise(const asymbp__layer_t *L)
{
    return L->kh == 1 && L->kw == 1 && L->stride == 1 && L->pad == 0;
}

static void conv_forward(asymbp__layer_t *L, const float *x, size_t n)
{
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    for (size_t s = 0; s < n; s++) {
        const float *xs = x + s * L->in_size, *col = xs;
        float *y = L->out + s * L->out_size;
        if (!conv_is_pointwise(L)) {
            im2col(L, xs, L->col);
            col = L->col;
        }
        asymbp__sgemm(0, 0, OC, P, K, 1.0f, L->W, K, col, P, 0.0f, y, P);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) {
                float *restrict yc = y + c * P;
                float bc = L->b[c];
                for (size_t i = 0; i < P; i++) yc[i] += bc;
            }
        }
    }
}

static void conv_backward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    const float *V = feedback_of(net, L);
    int pw = conv_is_pointwise(L);
    if (L->has_bias) memset(L->db, 0, OC * sizeof(float));
    for (size_t s = 0; s < n; s++) {
        const float *xs = x + s * L->in_size, *col = xs;
        const float *dy = L->dout + s * L->out_size;
        if (!pw) {
            im2col(L, xs, L->col);
            col = L->col;
        }
        asymbp__sgemm(0, 1, OC, K, P, 1.0f, dy, P, col, P, s ? 1.0f : 0.0f, L->dW, K);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) {
                L->db[c] += (float)sum_d(dy + c * P, P);
            }
        }
        if (dx) {
            float *dxs = dx + s * L->in_size;
            if (pw) {
                asymbp__sgemm(1, 0, K, P, OC, 1.0f, V, K, dy, P, 0.0f, dxs, P);
            } else {
                asymbp__sgemm(1, 0, K, P, OC, 1.0f, V, K, dy, P, 0.0f, net->col, P);
                col2im(L, net->col, dxs);
            }
        }
    }
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

static void maxpool_forward(asymbp__layer_t *L, const float *x, size_t n)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t planes = n * (size_t)L->in_c;
    pool_inner_cols(L, &c_lo, &c_hi);
    for (size_t pl = 0; pl < planes; pl++) {
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

static void maxpool_backward(asymbp__layer_t *L, float *dx, size_t n)
{
    size_t in_pl = (size_t)(L->in_h * L->in_w), out_pl = (size_t)(L->out_h * L->out_w);
    size_t planes = n * (size_t)L->in_c;
    memset(dx, 0, n * L->in_size * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
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

static void avgpool_forward(asymbp__layer_t *L, const float *x, size_t n)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t planes = n * (size_t)L->in_c;
    pool_inner_cols(L, &c_lo, &c_hi);
    for (size_t pl = 0; pl < planes; pl++) {
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

static void avgpool_backward(asymbp__layer_t *L, float *dx, size_t n)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, c_lo, c_hi;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t planes = n * (size_t)L->in_c;
    pool_inner_cols(L, &c_lo, &c_hi);
    memset(dx, 0, n * L->in_size * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
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
static double sumsq_centered(const float *restrict v, size_t n, float mu)
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

static void bn_stats_block(const float *restrict x, size_t n, size_t C, size_t c0,
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

static void bn_forward_dense(const asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train)
{
    size_t C = (size_t)L->in_c;
    for (size_t c0 = 0; c0 < C; c0 += FBLK) {
        size_t m = C - c0 < FBLK ? C - c0 : FBLK;
        double mean[FBLK], var[FBLK];
        float mu[FBLK], g[FBLK];
        const float *restrict bt = L->beta + c0;
        if (train) {
            bn_stats_block(x, n, C, c0, m, mean, var);
            if (!net->freeze_stats) {
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
        for (size_t s = 0; s < n; s++) {
            const float *restrict xs = x + s * C + c0;
            float *restrict ys = L->out + s * C + c0;
            for (size_t j = 0; j < m; j++) ys[j] = (xs[j] - mu[j]) * g[j] + bt[j];
        }
    }
    L->bn_train = train;
}

static void bn_backward_dense(asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t C = (size_t)L->in_c;
    for (size_t c0 = 0; c0 < C; c0 += FBLK) {
        size_t m = C - c0 < FBLK ? C - c0 : FBLK;
        double sdy[FBLK], sdyx[FBLK], sxh[FBLK];
        float mu[FBLK], is[FBLK], g[FBLK], a[FBLK], bq[FBLK], mx[FBLK];
        for (size_t j = 0; j < m; j++) {
            mu[j] = L->bmean[c0 + j];
            is[j] = L->binvstd[c0 + j];
            sdy[j] = sdyx[j] = sxh[j] = 0.0;
        }
        for (size_t s = 0; s < n; s++) {
            const float *restrict xs = x + s * C + c0, *restrict dy = L->dout + s * C + c0;
            for (size_t j = 0; j < m; j++) {
                float xh = (xs[j] - mu[j]) * is[j], d = dy[j];
                sdy[j] += (double)d;
                sdyx[j] += (double)(d * xh);
                sxh[j] += (double)xh;
            }
        }
        for (size_t j = 0; j < m; j++) {
            L->dgamma[c0 + j] = (float)sdyx[j];
            L->dbeta[c0 + j] = (float)sdy[j];
            g[j] = L->gamma[c0 + j] * is[j];
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

static void bn_forward(const asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train)
{
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    if (S == 1) {
        bn_forward_dense(net, L, x, n, train);
        return;
    }
    for (size_t c = 0; c < C; c++) {
        double mean, var;
        if (train) {
            /* two passes (the channel's rows stay in cache for the second): lane sums per row,
             * double across rows */
            double sum = 0.0, sq = 0.0;
            float mf;
            for (size_t s = 0; s < n; s++) sum += sum_d(x + (s * C + c) * S, S);
            mean = sum / (double)M;
            mf = (float)mean;
            for (size_t s = 0; s < n; s++) sq += sumsq_centered(x + (s * C + c) * S, S, mf);
            var = sq / (double)M;
            if (!net->freeze_stats) {
                double m = L->momentum, uv = M > 1 ? var * (double)M / (double)(M - 1) : var;
                L->run_mean[c] = (float)((1.0 - m) * L->run_mean[c] + m * mean);
                L->run_var[c] = (float)((1.0 - m) * L->run_var[c] + m * uv);
            }
        } else {
            mean = L->run_mean[c];
            var = L->run_var[c];
        }
        float mu = (float)mean, is = (float)(1.0 / sqrt(var + (double)L->eps));
        L->bmean[c] = mu;
        L->binvstd[c] = is;
        float g = L->gamma[c] * is, b = L->beta[c];
        for (size_t s = 0; s < n; s++) {
            const float *restrict xc = x + (s * C + c) * S;
            float *restrict yc = L->out + (s * C + c) * S;
            for (size_t i = 0; i < S; i++) yc[i] = (xc[i] - mu) * g + b;
        }
    }
    L->bn_train = train;
}

/* Sums over one row of a BN channel: dy, dy * xhat, xhat with xhat = (x - mu) * is. */
static void bn_row_sums(const float *restrict xc, const float *restrict dy, size_t S, float mu, float is,
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

static void bn_backward(asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    if (S == 1) {
        bn_backward_dense(L, x, dx, n);
        return;
    }
    for (size_t c = 0; c < C; c++) {
        float mu = L->bmean[c], is = L->binvstd[c];
        double sdy = 0.0, sdyx = 0.0, sxh = 0.0;
        for (size_t s = 0; s < n; s++)
            bn_row_sums(x + (s * C + c) * S, L->dout + (s * C + c) * S, S, mu, is, &sdy, &sdyx, &sxh);
        L->dgamma[c] = (float)sdyx;
        L->dbeta[c] = (float)sdy;
        if (!dx) continue;
        if (L->bn_train) {
            /* dx = gamma*is/M * (M dy - sum dy - xhat sum(dy xhat)).  The float xhat is
             * re-centred on its measured mean mx: sum dx is exactly 0 in exact arithmetic (the
             * layer below a BN has a bias gradient of 0) and with a small batch is is large, so
             * an uncentred xhat leaves visible rounding in that sum. */
            float g = L->gamma[c] * is, a = (float)(sdy / (double)M), bq = (float)(sdyx / (double)M);
            float mx = (float)(sxh / (double)M);
            for (size_t s = 0; s < n; s++) {
                const float *restrict xc = x + (s * C + c) * S;
                const float *restrict dy = L->dout + (s * C + c) * S;
                float *restrict d = dx + (s * C + c) * S;
                for (size_t i = 0; i < S; i++) d[i] = g * (dy[i] - a - ((xc[i] - mu) * is - mx) * bq);
            }
        } else {
            float g = L->gamma[c] * is;
            for (size_t s = 0; s < n; s++) {
                const float *restrict dy = L->dout + (s * C + c) * S;
                float *restrict d = dx + (s * C + c) * S;
                for (size_t i = 0; i < S; i++) d[i] = g * dy[i];
            }
        }
    }
}

/* ---- dispatch ------------------------------------------------------------------------------- */

void asymbp__layer_forward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train)
{
    size_t total = n * L->out_size;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE: dense_forward(L, x, n); break;
    case ASYMBP_LAYER_CONV2D: conv_forward(L, x, n); break;
    case ASYMBP_LAYER_MAXPOOL: maxpool_forward(L, x, n); break;
    case ASYMBP_LAYER_AVGPOOL: avgpool_forward(L, x, n); break;
    case ASYMBP_LAYER_RELU: {
        const float *restrict a = x;
        float *restrict y = L->out;
        for (size_t i = 0; i < total; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    }
    case ASYMBP_LAYER_FLATTEN: break;   /* out aliases the input */
    case ASYMBP_LAYER_BATCHNORM: bn_forward(net, L, x, n, train); break;
    case ASYMBP_LAYER_DROPOUT: {
        const float *restrict a = x;
        float *restrict y = L->out, *restrict m = L->mask;
        L->drop_train = train && L->p > 0.0f;
        if (!L->drop_train) {
            memcpy(y, a, total * sizeof(float));
            break;
        }
        {
            float scale = 1.0f / (1.0f - L->p);
            for (size_t i = 0; i < total; i++) m[i] = asymbp__rng_uniform(&L->rng) < L->p ? 0.0f : scale;
        }
        for (size_t i = 0; i < total; i++) y[i] = a[i] * m[i];
        break;
    }
    }
}

void asymbp__layer_backward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t total = n * L->out_size;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE:
    case ASYMBP_LAYER_CONV2D:
        if (L->kind == ASYMBP_LAYER_DENSE) dense_backward(net, L, x, dx, n);
        else conv_backward(net, L, x, dx, n);
        L->wl.grad_norm = sqrt(sumsq(L->dW, L->wl.numel));
        L->wl.delta_norm = dx ? sqrt(sumsq(dx, n * L->in_size)) : 0.0;
        break;
    case ASYMBP_LAYER_MAXPOOL: if (dx) maxpool_backward(L, dx, n); break;
    case ASYMBP_LAYER_AVGPOOL: if (dx) avgpool_backward(L, dx, n); break;
    case ASYMBP_LAYER_RELU:
        if (dx) {
            const float *restrict y = L->out, *restrict dy = L->dout;
            float *restrict d = dx;
            /* the load of dy is unconditional so that the select vectorises */
            for (size_t i = 0; i < total; i++) {
                float g = dy[i];
                d[i] = y[i] > 0.0f ? g : 0.0f;
            }
        }
        break;
    case ASYMBP_LAYER_FLATTEN: break;   /* dout aliases dx */
    case ASYMBP_LAYER_BATCHNORM: bn_backward(L, x, dx, n); break;
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
