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

static double sumsq(const float *restrict v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
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

static void im2col(const asymbp__layer_t *L, const float *restrict x, float *restrict col)
{
    int64_t C = L->in_c, H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int s = L->stride, p = L->pad;
    for (int64_t c = 0; c < C; c++) {
        for (int ki = 0; ki < L->kh; ki++) {
            int64_t oh_lo, oh_hi;
            valid_range(H, OH, s, p, ki, &oh_lo, &oh_hi);
            for (int kj = 0; kj < L->kw; kj++) {
                float *restrict dst = col + ((c * L->kh + ki) * L->kw + kj) * OH * OW;
                int64_t ow_lo, ow_hi;
                valid_range(W, OW, s, p, kj, &ow_lo, &ow_hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    float *restrict row = dst + oh * OW;
                    if (oh < oh_lo || oh >= oh_hi) {
                        memset(row, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *restrict src = x + (c * H + oh * s - p + ki) * W - p + kj;
                    for (int64_t ow = 0; ow < ow_lo; ow++) row[ow] = 0.0f;
                    if (s == 1) {
                        memcpy(row + ow_lo, src + ow_lo, (size_t)(ow_hi - ow_lo) * sizeof(float));
                    } else {
                        for (int64_t ow = ow_lo; ow < ow_hi; ow++) row[ow] = src[ow * s];
                    }
                    for (int64_t ow = ow_hi; ow < OW; ow++) row[ow] = 0.0f;
                }
            }
        }
    }
}

static void col2im(const asymbp__layer_t *L, const float *restrict col, float *restrict dx)
{
    int64_t C = L->in_c, H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int s = L->stride, p = L->pad;
    memset(dx, 0, L->in_size * sizeof(float));
    for (int64_t c = 0; c < C; c++) {
        for (int ki = 0; ki < L->kh; ki++) {
            int64_t oh_lo, oh_hi;
            valid_range(H, OH, s, p, ki, &oh_lo, &oh_hi);
            for (int kj = 0; kj < L->kw; kj++) {
                const float *restrict srcb = col + ((c * L->kh + ki) * L->kw + kj) * OH * OW;
                int64_t ow_lo, ow_hi;
                valid_range(W, OW, s, p, kj, &ow_lo, &ow_hi);
                for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                    const float *restrict row = srcb + oh * OW;
                    float *restrict dst = dx + (c * H + oh * s - p + ki) * W - p + kj;
                    if (s == 1) {
                        for (int64_t ow = ow_lo; ow < ow_hi; ow++) dst[ow] += row[ow];
                    } else {
                        for (int64_t ow = ow_lo; ow < ow_hi; ow++) dst[ow * s] += row[ow];
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

static void conv_forward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n)
{
    size_t K = (size_t)L->in_c * L->kh * L->kw, P = (size_t)(L->out_h * L->out_w), OC = (size_t)L->out_c;
    for (size_t s = 0; s < n; s++) {
        const float *xs = x + s * L->in_size, *col = xs;
        float *y = L->out + s * L->out_size;
        if (!conv_is_pointwise(L)) {
            im2col(L, xs, net->col);
            col = net->col;
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
            im2col(L, xs, net->col);
            col = net->col;
        }
        asymbp__sgemm(0, 1, OC, K, P, 1.0f, dy, P, col, P, s ? 1.0f : 0.0f, L->dW, K);
        if (L->has_bias) {
            for (size_t c = 0; c < OC; c++) {
                const float *restrict d = dy + c * P;
                float acc = 0.0f;
                for (size_t i = 0; i < P; i++) acc += d[i];
                L->db[c] += acc;
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

static void maxpool_forward(asymbp__layer_t *L, const float *x, size_t n)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t planes = n * (size_t)L->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * (size_t)(H * W);
        float *y = L->out + pl * (size_t)(OH * OW);
        int32_t *am = L->argmax + pl * (size_t)(OH * OW);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t hs = oh * s - p, he = hs + k;
            if (hs < 0) hs = 0;
            if (he > H) he = H;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t ws = ow * s - p, we = ws + k;
                if (ws < 0) ws = 0;
                if (we > W) we = W;
                int64_t bi = hs * W + ws;
                float best = xp[bi];
                /* strict '>': the first maximum in row-major scan order wins ties */
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) {
                        float v = xp[ih * W + iw];
                        if (v > best) { best = v; bi = ih * W + iw; }
                    }
                y[oh * OW + ow] = best;
                am[oh * OW + ow] = (int32_t)bi;
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

/* Average pool: divide by the window clipped to the padded input (Caffe's count). */
static void avgpool_run(asymbp__layer_t *L, const float *x, float *dx, size_t n, int backward)
{
    int64_t H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    int k = L->kh, s = L->stride, p = L->pad;
    size_t planes = n * (size_t)L->in_c;
    if (backward) memset(dx, 0, n * L->in_size * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = backward ? NULL : x + pl * (size_t)(H * W);
        float *dp = backward ? dx + pl * (size_t)(H * W) : NULL;
        float *y = L->out + pl * (size_t)(OH * OW);
        const float *dy = L->dout + pl * (size_t)(OH * OW);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t hs = oh * s - p, he = hs + k;
            if (he > H + p) he = H + p;
            int64_t ch = he - hs;
            if (hs < 0) hs = 0;
            if (he > H) he = H;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t ws = ow * s - p, we = ws + k;
                if (we > W + p) we = W + p;
                float inv = 1.0f / (float)(ch * (we - ws));
                if (ws < 0) ws = 0;
                if (we > W) we = W;
                if (!backward) {
                    float acc = 0.0f;
                    for (int64_t ih = hs; ih < he; ih++)
                        for (int64_t iw = ws; iw < we; iw++) acc += xp[ih * W + iw];
                    y[oh * OW + ow] = acc * inv;
                } else {
                    float g = dy[oh * OW + ow] * inv;
                    for (int64_t ih = hs; ih < he; ih++)
                        for (int64_t iw = ws; iw < we; iw++) dp[ih * W + iw] += g;
                }
            }
        }
    }
}

/* ---- batch norm ----------------------------------------------------------------------------- */

static void bn_forward(const asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train)
{
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    for (size_t c = 0; c < C; c++) {
        double mean, var;
        if (train) {
            /* two passes; float sums per row (vectorised), double across rows */
            double sum = 0.0, sq = 0.0;
            float mf;
            for (size_t s = 0; s < n; s++) {
                const float *restrict xc = x + (s * C + c) * S;
                float acc = 0.0f;
                for (size_t i = 0; i < S; i++) acc += xc[i];
                sum += acc;
            }
            mean = sum / (double)M;
            mf = (float)mean;
            for (size_t s = 0; s < n; s++) {
                const float *restrict xc = x + (s * C + c) * S;
                float acc = 0.0f;
                for (size_t i = 0; i < S; i++) { float d = xc[i] - mf; acc += d * d; }
                sq += acc;
            }
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

static void bn_backward(asymbp__layer_t *L, const float *x, float *dx, size_t n)
{
    size_t C = (size_t)L->in_c, S = (size_t)(L->in_h * L->in_w), M = n * S;
    for (size_t c = 0; c < C; c++) {
        float mu = L->bmean[c], is = L->binvstd[c];
        double sdy = 0.0, sdyx = 0.0, sxh = 0.0;
        for (size_t s = 0; s < n; s++) {
            const float *restrict xc = x + (s * C + c) * S;
            const float *restrict dy = L->dout + (s * C + c) * S;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
            for (size_t i = 0; i < S; i++) {
                float xh = (xc[i] - mu) * is;
                a0 += dy[i];
                a1 += dy[i] * xh;
                a2 += xh;
            }
            sdy += a0;
            sdyx += a1;
            sxh += a2;
        }
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
    case ASYMBP_LAYER_CONV2D: conv_forward(net, L, x, n); break;
    case ASYMBP_LAYER_MAXPOOL: maxpool_forward(L, x, n); break;
    case ASYMBP_LAYER_AVGPOOL: avgpool_run(L, x, NULL, n, 0); break;
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
    case ASYMBP_LAYER_AVGPOOL: if (dx) avgpool_run(L, NULL, dx, n, 1); break;
    case ASYMBP_LAYER_RELU:
        if (dx) {
            const float *restrict y = L->out, *restrict dy = L->dout;
            float *restrict d = dx;
            for (size_t i = 0; i < total; i++) d[i] = y[i] > 0.0f ? dy[i] : 0.0f;
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
