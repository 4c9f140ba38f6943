/* asymbp's own single-precision GEMM kernels: C (m x n) = A (m x k) B (k x n) [+ C], with A packed
 * in panels of MR rows and B read in place (rows of unit stride).  On x86-64 with GCC or clang an
 * AVX-512F kernel (12 x 32) or an AVX2 + FMA kernel (6 x 16) is picked from the CPU at first use;
 * elsewhere (or in a build with ASYMBP_GEMM_BLAS) there is no kernel and the layers call CBLAS.
 *
 * Every element of C is one chain of fused multiply-adds over k in order, started from 0 in each
 * block of k (the blocks depend on k only), then stored (first block, no accumulation) or added to
 * C: so the AVX-512, AVX2 and portable kernels give the same bits, whatever the tile an element
 * falls in, and the result never depends on how m and n are split over threads. */
#include <math.h>
#include <string.h>
#include "tensor/tensor_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(ASYMBP_GEMM_BLAS)
#define ASYMBP__GEMM_X86 1
#include <immintrin.h>
#else
#define ASYMBP__GEMM_X86 0
#endif

/* Largest k block: 256 rows of a 32-wide B panel (32 KB) stay in L1 while every row tile of A
 * passes over them.  k is cut into equal blocks of at most KC. */
#define KC 256

static const int mr_of[3] = { 4, 6, 12 };
static const int nr_of[3] = { 16, 16, 32 };

/* ---- the portable kernel (tests; the reference for the others) ------------------------------- */

static void kern_generic(int m, size_t n, size_t kc, const float *ap, size_t lda, const float *b, size_t ldb, float *c,
                         size_t ldc, int first, int mr)
{
    size_t ak = lda ? 1 : (size_t)mr, ai = lda ? lda : 1;
    for (int i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < kc; k++) acc = fmaf(ap[k * ak + (size_t)i * ai], b[k * ldb + j], acc);
            c[(size_t)i * ldc + j] = first ? acc : c[(size_t)i * ldc + j] + acc;
        }
}

#if ASYMBP__GEMM_X86
/* ---- AVX-512F: 12 rows x 32 columns (24 accumulators) ---------------------------------------- */

#define A5 __attribute__((target("avx512f"), always_inline)) static inline

/* Named accumulators (an array of vectors is kept in memory by GCC 12): row i is used when i < M,
 * a constant in each instance below. */
#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

A5 void k512_body(const int M, const int NV, size_t n, size_t kc, const float *restrict ap, size_t lda,
                  const float *restrict b, size_t ldb, float *restrict c, size_t ldc, int first)
{
    /* lda 0: A packed (12 values per k); else row i of A at ap + i lda (a constant per instance) */
    const size_t ak = lda ? 1 : 12, ai = lda ? lda : 1;
    __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    __mmask16 m1 = n >= 32 ? (__mmask16)0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1u) : (__mmask16)0;
#define DECL(i) __m512 x##i = _mm512_setzero_ps(), y##i = _mm512_setzero_ps();
    R12(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = b0;
        if (NV == 2) b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#define STEP(i) \
        if ((i) < M) { \
            __m512 a = _mm512_set1_ps(ap[(size_t)(i) * ai]); \
            x##i = _mm512_fmadd_ps(a, b0, x##i); \
            if (NV == 2) y##i = _mm512_fmadd_ps(a, b1, y##i); \
        }
        R12(STEP)
#undef STEP
        ap += ak;
        b += ldb;
    }
#define STORE(i) \
    if ((i) < M) { \
        float *ci = c + (size_t)(i) * ldc; \
        if (!first) { \
            x##i = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), x##i); \
            if (NV == 2) y##i = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), y##i); \
        } \
        _mm512_mask_storeu_ps(ci, m0, x##i); \
        if (NV == 2) _mm512_mask_storeu_ps(ci + 16, m1, y##i); \
    }
    R12(STORE)
#undef STORE
}

typedef void (*kern_fn)(size_t n, size_t kc, const float *ap, size_t lda, const float *b, size_t ldb, float *c,
                        size_t ldc, int first);

#define K512(M, NV) \
    __attribute__((target("avx512f"))) static void k512_##M##_##NV(size_t n, size_t kc, const float *ap, size_t lda, \
                                                                   const float *b, size_t ldb, float *c, size_t ldc, int first) \
    { if (lda) k512_body(M, NV, n, kc, ap, lda, b, ldb, c, ldc, first); \
      else k512_body(M, NV, n, kc, ap, 0, b, ldb, c, ldc, first); }
#define K512_ROW(M) K512(M, 1) K512(M, 2)
K512_ROW(1) K512_ROW(2) K512_ROW(3) K512_ROW(4) K512_ROW(5) K512_ROW(6)
K512_ROW(7) K512_ROW(8) K512_ROW(9) K512_ROW(10) K512_ROW(11) K512_ROW(12)
static const kern_fn k512_tab[12][2] = {
    { k512_1_1, k512_1_2 }, { k512_2_1, k512_2_2 }, { k512_3_1, k512_3_2 }, { k512_4_1, k512_4_2 },
    { k512_5_1, k512_5_2 }, { k512_6_1, k512_6_2 }, { k512_7_1, k512_7_2 }, { k512_8_1, k512_8_2 },
    { k512_9_1, k512_9_2 }, { k512_10_1, k512_10_2 }, { k512_11_1, k512_11_2 }, { k512_12_1, k512_12_2 },
};

/* ---- AVX2 + FMA: 6 rows x 16 columns (12 accumulators) --------------------------------------- */

#define A2 __attribute__((target("avx2,fma"), always_inline)) static inline

A2 __m256i lane_mask(size_t n)   /* lanes [0, n) of 8 (n may exceed 8) */
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int v = n > 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(v), idx);
}

#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)

A2 void k256_body(const int M, const int NV, size_t n, size_t kc, const float *restrict ap, size_t lda,
                  const float *restrict b, size_t ldb, float *restrict c, size_t ldc, int first)
{
    const size_t ak = lda ? 1 : 6, ai = lda ? lda : 1;
    __m256i m0 = lane_mask(n), m1 = lane_mask(n > 8 ? n - 8 : 0);
#define DECL(i) __m256 x##i = _mm256_setzero_ps(), y##i = _mm256_setzero_ps();
    R6(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_maskload_ps(b, m0), b1 = b0;
        if (NV == 2) b1 = _mm256_maskload_ps(b + 8, m1);
#define STEP(i) \
        if ((i) < M) { \
            __m256 a = _mm256_broadcast_ss(ap + (size_t)(i) * ai); \
            x##i = _mm256_fmadd_ps(a, b0, x##i); \
            if (NV == 2) y##i = _mm256_fmadd_ps(a, b1, y##i); \
        }
        R6(STEP)
#undef STEP
        ap += ak;
        b += ldb;
    }
#define STORE(i) \
    if ((i) < M) { \
        float *ci = c + (size_t)(i) * ldc; \
        if (!first) { \
            x##i = _mm256_add_ps(_mm256_maskload_ps(ci, m0), x##i); \
            if (NV == 2) y##i = _mm256_add_ps(_mm256_maskload_ps(ci + 8, m1), y##i); \
        } \
        _mm256_maskstore_ps(ci, m0, x##i); \
        if (NV == 2) _mm256_maskstore_ps(ci + 8, m1, y##i); \
    }
    R6(STORE)
#undef STORE
}

#define K256(M, NV) \
    __attribute__((target("avx2,fma"))) static void k256_##M##_##NV(size_t n, size_t kc, const float *ap, size_t lda, \
                                                                     const float *b, size_t ldb, float *c, size_t ldc, int first) \
    { if (lda) k256_body(M, NV, n, kc, ap, lda, b, ldb, c, ldc, first); \
      else k256_body(M, NV, n, kc, ap, 0, b, ldb, c, ldc, first); }
#define K256_ROW(M) K256(M, 1) K256(M, 2)
K256_ROW(1) K256_ROW(2) K256_ROW(3) K256_ROW(4) K256_ROW(5) K256_ROW(6)
static const kern_fn k256_tab[6][2] = {
    { k256_1_1, k256_1_2 }, { k256_2_1, k256_2_2 }, { k256_3_1, k256_3_2 },
    { k256_4_1, k256_4_2 }, { k256_5_1, k256_5_2 }, { k256_6_1, k256_6_2 },
};
#endif

/* ---- dispatch -------------------------------------------------------------------------------- */

static int detect_isa(void)
{
#if ASYMBP__GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ASYMBP__ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ASYMBP__ISA_AVX2;
#endif
    return ASYMBP__ISA_NONE;
}

int asymbp__gemm_isa(void)
{
    /* contexts in different threads may ask at once: every thread computes the same value, and
     * relaxed atomics make the shared cache a race-free one (ThreadSanitizer agrees) */
    static int isa = -1;
    int v = __atomic_load_n(&isa, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_isa();
        __atomic_store_n(&isa, v, __ATOMIC_RELAXED);
    }
    return v;
}

int asymbp__gemm_isa_supported(int isa)
{
    if (isa == ASYMBP__ISA_GENERIC) return 1;
    if (isa == ASYMBP__ISA_NONE) return 0;
#if ASYMBP__GEMM_X86
    if (isa == ASYMBP__ISA_AVX2) return detect_isa() >= ASYMBP__ISA_AVX2;
    if (isa == ASYMBP__ISA_AVX512) return detect_isa() == ASYMBP__ISA_AVX512;
#endif
    return 0;
}

const char *asymbp__gemm_isa_name(int isa)
{
    switch (isa) {
    case ASYMBP__ISA_AVX512: return "avx512";
    case ASYMBP__ISA_AVX2: return "avx2";
    case ASYMBP__ISA_GENERIC: return "generic";
    default: return "blas";
    }
}

int asymbp__gemm_mr(int isa) { return isa >= ASYMBP__ISA_GENERIC && isa <= ASYMBP__ISA_AVX512 ? mr_of[isa - 1] : 1; }

size_t asymbp__gemm_pack_size(int isa, size_t m, size_t k)
{
    size_t mr = (size_t)asymbp__gemm_mr(isa);
    return (m + mr - 1) / mr * mr * k;
}

void asymbp__gemm_pack_a(int isa, int trans, size_t m, size_t k, const float *a, size_t lda, float *ap)
{
    size_t mr = (size_t)asymbp__gemm_mr(isa);
    for (size_t i0 = 0; i0 < m; i0 += mr) {
        size_t mm = m - i0 < mr ? m - i0 : mr;
        float *restrict dst = ap + i0 * k;
        if (trans) {
            /* op(A)(i, kk) = a[kk * lda + i]: each k gives mm contiguous values */
            for (size_t kk = 0; kk < k; kk++) {
                const float *restrict src = a + kk * lda + i0;
                size_t i = 0;
                for (; i < mm; i++) dst[kk * mr + i] = src[i];
                for (; i < mr; i++) dst[kk * mr + i] = 0.0f;
            }
        } else {
            for (size_t i = 0; i < mm; i++) {
                const float *restrict src = a + (i0 + i) * lda;
                for (size_t kk = 0; kk < k; kk++) dst[kk * mr + i] = src[kk];
            }
            for (size_t i = mm; i < mr; i++)
                for (size_t kk = 0; kk < k; kk++) dst[kk * mr + i] = 0.0f;
        }
    }
}

/* The blocked loops around the kernels; lda 0: ap packed, else A in place with rows lda apart. */
static void gemm_run(int isa, size_t m, size_t n, size_t k, const float *ap, size_t lda, const float *b, size_t ldb,
                     int accumulate, float *c, size_t ldc)
{
    size_t mr = (size_t)asymbp__gemm_mr(isa), nr = (size_t)nr_of[isa - 1], nkb;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, n * sizeof(float));
        return;
    }
    nkb = (k + KC - 1) / KC;
    for (size_t kb = 0; kb < nkb; kb++) {
        size_t k0 = k * kb / nkb, k1 = k * (kb + 1) / nkb;
        int first = kb == 0 && !accumulate;
        for (size_t j0 = 0; j0 < n; j0 += nr) {
            size_t nn = n - j0 < nr ? n - j0 : nr;
            const float *bp = b + k0 * ldb + j0;
            for (size_t i0 = 0; i0 < m; i0 += mr) {
                int mm = (int)(m - i0 < mr ? m - i0 : mr);
                const float *a = lda ? ap + i0 * lda + k0 : ap + i0 * k + k0 * mr;
                float *cp = c + i0 * ldc + j0;
                switch (isa) {
#if ASYMBP__GEMM_X86
                case ASYMBP__ISA_AVX512: k512_tab[mm - 1][nn > 16](nn, k1 - k0, a, lda, bp, ldb, cp, ldc, first); break;
                case ASYMBP__ISA_AVX2: k256_tab[mm - 1][nn > 8](nn, k1 - k0, a, lda, bp, ldb, cp, ldc, first); break;
#endif
                default: kern_generic(mm, nn, k1 - k0, a, lda, bp, ldb, cp, ldc, first, (int)mr); break;
                }
            }
        }
    }
}

void asymbp__gemm_packed(int isa, size_t m, size_t n, size_t k, const float *ap, const float *b, size_t ldb,
                         int accumulate, float *c, size_t ldc)
{
    gemm_run(isa, m, n, k, ap, 0, b, ldb, accumulate, c, ldc);
}

void asymbp__gemm_rows(int isa, size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                       int accumulate, float *c, size_t ldc)
{
    gemm_run(isa, m, n, k, a, lda ? lda : 1, b, ldb, accumulate, c, ldc);
}

#if ASYMBP__GEMM_X86
/* dst rows 0..7 (ldd apart) = columns 0..7 of the 8 x 8 block at src (lds apart). */
__attribute__((target("avx2"))) static void transpose8(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds);
    __m256 r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
    __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3);
    __m256 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

void asymbp__transpose(size_t rows, size_t cols, const float *src, size_t lds, float *dst, size_t ldd)
{
    /* in 8 x 8 blocks: the reads and the writes both stay within a few cache lines */
#if ASYMBP__GEMM_X86
    int fast = asymbp__gemm_isa() >= ASYMBP__ISA_AVX2;
#else
    int fast = 0;
#endif
    for (size_t r0 = 0; r0 < rows; r0 += 8) {
        size_t r1 = rows - r0 < 8 ? rows : r0 + 8;
        for (size_t c0 = 0; c0 < cols; c0 += 8) {
            size_t c1 = cols - c0 < 8 ? cols : c0 + 8;
#if ASYMBP__GEMM_X86
            if (fast && r1 - r0 == 8 && c1 - c0 == 8) {
                transpose8(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
                continue;
            }
#endif
            for (size_t r = r0; r < r1; r++)
                for (size_t cc = c0; cc < c1; cc++) dst[cc * ldd + r] = src[r * lds + cc];
        }
    }
    (void)fast;
}
