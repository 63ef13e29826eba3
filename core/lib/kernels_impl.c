/* The optimised kernels in portable C, written so the compiler vectorises them: contiguous inner
 * loops, no branches in them, row-sized working sets that stay in L1. meson compiles this file
 * once per instruction set (PS_KERNEL_SET names the set, the compiler flags pick the
 * instructions), and kernels.c picks one at run time. No -ffast-math: the approximations below
 * are explicit and tested. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "kernels.h"
#include "kernel_util.h"
#include "kernels_frame.h" /* the frame kernels, from kernels_frame.c (no contracted multiply-adds) */

#define SET_NAME PS_KERNEL_CAT(ps_kernels_, PS_KERNEL_SET) /* kernels_frame.h pastes the set names */
#define STR2(x) #x
#define STR(x) STR2(x)

/* e^x for x in [-87, 88] (clamped outside): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2],
 * p the degree-6 Taylor polynomial (relative error < 2e-7). The exponent bits are built
 * directly, so the loop needs no library call. */
static inline float exp_approx(float x)
{
    x = x < -87.f ? -87.f : x;
    x = x > 88.f ? 88.f : x;
    const float shifter = 12582912.f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504089f + shifter;
    float n = t - shifter;
    int32_t ti;
    memcpy(&ti, &t, 4);
    int32_t ni = ti - 0x4B400000; /* the integer n, from the low mantissa bits */
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-6f;
    float p = 1.f + r * (1.f + r * (0.5f + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 + r * (1.f / 720))))));
    int32_t si = (ni + 127) << 23;
    float scale;
    memcpy(&scale, &si, 4);
    return p * scale;
}

/* Phi(v) = (1 + erf(v / sqrt 2)) / 2 with erf(z) = z P(z^2) / Q(z^2): a rational fit of our own
 * (scripts/fit_erf.py, weighted least squares towards minimax), max abs error about 4e-7
 * evaluated in float. No exponential and one division, about two thirds of the operations of
 * erfc via exp. The error is absolute (2e-7 in Phi, 1.1e-6 in GELU near |v| = 5): the negative
 * tail, where GELU is below 1e-6 in size, loses the relative accuracy the erfc form had, which
 * nothing downstream can see. From |z| = 3.633 (z^2 = 13.2) erf is +-1: the fit first passes 1
 * just above (3.640), and true erf is within 2.8e-7 of 1 there (7e-7 in GELU), so Phi stays in
 * [0, 1] and huge |v| (z^2 inf, the fit NaN) give v * 1 and v * 0 exactly. One select and no
 * clamps: clamping z or the fit made GCC predicate the division (two masked divisions with
 * AVX-512, none vectorised with AVX2) and GELU 1.8x slower. */
static inline float normal_cdf(float v)
{
    const float z = v * 0.70710678f;
    const float z2 = z * z;
    const float p = 1.12837863f + z2 * (0.213938341f + z2 * (0.0524325147f + z2 * (0.00429271301f +
                    z2 * (0.000155523521f + z2 * (-1.99015813e-06f + z2 * 1.9215399e-08f)))));
    const float q = 1.f + z2 * (0.522925556f + z2 * (0.120796882f + z2 * (0.0155504616f + z2 * 0.00109793886f)));
    const float e = z2 >= 13.2f ? copysignf(1.f, z) : z * p / q;
    return 0.5f + 0.5f * e;
}

static void gelu(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * normal_cdf(x[i]);
}

static void add_gelu(const float *restrict a, const float *restrict b, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float v = a[i] + b[i];
        y[i] = v * normal_cdf(v);
    }
}

static void channel_mean_max(const float *restrict x, size_t plane, int c, size_t len, float *restrict mean,
                             float *restrict max)
{
    ps_channel_mean_max_body(x, plane, c, len, mean, max);
}

static void attend_residual(const float *restrict t, const float *restrict sa, float a, float beta,
                            float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (a + beta * sa[i]) * t[i] + t[i];
}

static void add(const float *restrict a, const float *restrict b, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* De-interleaving with a multiply-add the compiler vectorises (a byte lookup cannot be); fmaf
 * so the floats are the reference's on every instruction set. */
static void normalise_rgb(const unsigned char *restrict rgb, int count, const float *restrict scale,
                          const float *restrict shift, float *restrict d0, float *restrict d1, float *restrict d2)
{
    const float s0 = scale[0], s1 = scale[1], s2 = scale[2], t0 = -shift[0], t1 = -shift[1], t2 = -shift[2];
    for (int i = 0; i < count; i++) {
        d0[i] = fmaf((float)rgb[3 * i], s0, t0);
        d1[i] = fmaf((float)rgb[3 * i + 1], s1, t1);
        d2[i] = fmaf((float)rgb[3 * i + 2], s2, t2);
    }
}

static void mul(const float *restrict a, const float *restrict b, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

static void sigmoid(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 1.f / (1.f + exp_approx(-x[i]));
}

static inline float relu_if(int relu, float v)
{
    return relu && !(v > 0.f) ? 0.f : v; /* as relu_in_place: NaN and -0 give +0 */
}

static inline void relu_in_place(float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = y[i] > 0.f ? y[i] : 0.f;
}

/* Pointwise conv as a register tile: PW_T output channels x PW_P vectors of positions held in
 * registers while every input channel is added in, so each input vector is loaded once per tile
 * and each weight once per PW_P vectors (a loop over one channel at a time loads and stores its
 * accumulator for every FMA). Every output value is still bias + w[0] x[0] + w[1] x[1] + ...
 * in input-channel order, the same operations however channels and positions fall into tiles
 * (the last vectors of a row go one at a time, the last positions one by one with the vectors'
 * rounding), so the result does not depend on how threads split channels or positions. `add`
 * may be `y` itself (the backward adds into a gradient this way), so neither is restrict. */
#if defined(__AVX512F__)
enum { PW_V = 16, PW_T = 4, PW_P = 4 }; /* 16 of the 32 zmm: 4 channels x 64 positions */
#define PW_T_MAX_PARTIAL 3
#elif defined(__AVX2__)
enum { PW_V = 8, PW_T = 6, PW_P = 2 }; /* 12 of the 16 ymm */
#define PW_T_MAX_PARTIAL 5
#else
enum { PW_V = 4, PW_T = 6, PW_P = 2 }; /* 12 of the 16 xmm */
#define PW_T_MAX_PARTIAL 5
#endif
_Static_assert(PW_T_MAX_PARTIAL == PW_T - 1, "conv_pointwise has a case for every partial tile height");
#if PW_T_MAX_PARTIAL > 5
#error "pw_columns has cases for partial tiles of at most 5 channels"
#endif

/* a * b + c as the vector code computes it: fused where the set has FMA (the compiler fuses
 * `acc += w * x` on vectors there), a product and a sum where it has not. */
static inline float pw_madd(float a, float b, float c)
{
#ifdef __FMA__
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}
typedef float pw_vec __attribute__((vector_size(PW_V * sizeof(float)), aligned(sizeof(float))));
typedef int32_t pw_ivec __attribute__((vector_size(PW_V * sizeof(float))));

/* t (<= PW_T) output channels at np (<= PW_P) vectors of positions starting at x / y; t and np
 * are constants wherever this is inlined, or the tile leaves the registers (2.7x slower for
 * MicroAUNet's 4-channel levels with a variable t). */
static inline __attribute__((always_inline)) void pw_tile(const float *restrict x, const float *restrict w,
                                                          const float *restrict b, const float *add, float *y,
                                                          int cin, size_t stride, int t, int np, int relu)
{
    pw_vec acc[PW_T][PW_P];
    for (int k = 0; k < t; k++)
        for (int p = 0; p < np; p++)
            acc[k][p] = (pw_vec){0} + (b ? b[k] : 0.f);
    for (int ci = 0; ci < cin; ci++) {
        const float *xr = x + (size_t)ci * stride;
        pw_vec xv[PW_P];
        for (int p = 0; p < np; p++)
            xv[p] = *(const pw_vec *)(xr + p * PW_V);
        for (int k = 0; k < t; k++) {
            const float wv = w[(size_t)k * cin + ci];
            for (int p = 0; p < np; p++)
                acc[k][p] += wv * xv[p];
        }
    }
    for (int k = 0; k < t; k++)
        for (int p = 0; p < np; p++) {
            pw_vec v = acc[k][p];
            if (add)
                v += *(const pw_vec *)(add + (size_t)k * stride + p * PW_V);
            if (relu) /* as relu_in_place: v where v > 0, else +0 */
                v = (pw_vec)((pw_ivec)v & (v > 0.f));
            *(pw_vec *)(y + (size_t)k * stride + p * PW_V) = v;
        }
}

/* Every output channel at np vectors of positions from p0: full tiles, then the rest. */
static inline __attribute__((always_inline)) void pw_columns(const float *x, const float *w, const float *b,
                                                             const float *add, float *y, int cin, int cout,
                                                             size_t stride, int relu, size_t p0, int np)
{
    int co = 0;
    for (; co + PW_T <= cout; co += PW_T) {
        const size_t at = (size_t)co * stride + p0;
        pw_tile(x + p0, w + (size_t)co * cin, b ? b + co : NULL, add ? add + at : NULL, y + at, cin, stride, PW_T,
                np, relu);
    }
    if (co == cout)
        return;
    const size_t at = (size_t)co * stride + p0;
    const float *xt = x + p0, *wt = w + (size_t)co * cin, *bt = b ? b + co : NULL, *addt = add ? add + at : NULL;
    switch (cout - co) {
#define PW_PARTIAL(T) case T: pw_tile(xt, wt, bt, addt, y + at, cin, stride, T, np, relu); break;
    PW_PARTIAL(1) PW_PARTIAL(2) PW_PARTIAL(3)
#if PW_T_MAX_PARTIAL > 3
    PW_PARTIAL(4) PW_PARTIAL(5)
#endif
#undef PW_PARTIAL
    }
}

static void conv_pointwise(const float *restrict x, const float *restrict w, const float *restrict b,
                           const float *add, float *y, int cin, int cout, size_t n, size_t stride, int relu)
{
    size_t p0 = 0;
    for (; p0 + PW_P * PW_V <= n; p0 += PW_P * PW_V)
        pw_columns(x, w, b, add, y, cin, cout, stride, relu, p0, PW_P);
    for (; p0 + PW_V <= n; p0 += PW_V)
        pw_columns(x, w, b, add, y, cin, cout, stride, relu, p0, 1);
    for (int co = 0; co < cout && p0 < n; co++) /* the last positions, one at a time */
        for (size_t i = p0; i < n; i++) {
            float acc = b ? b[co] : 0.f;
            for (int ci = 0; ci < cin; ci++) /* rounded as the vectors are, so any split keeps the bits */
                acc = pw_madd(w[(size_t)co * cin + ci], x[(size_t)ci * stride + i], acc);
            if (add)
                acc += add[(size_t)co * stride + i];
            y[(size_t)co * stride + i] = relu_if(relu, acc);
        }
}

/* The zero padding above the first and below the last row of a depthwise input. */
static const float zero_row[PS_KERNEL_MAX_WIDTH];

/* The sum of a depthwise 3x3 output vector, its taps read by TAP(row, column offset): the bias,
 * then the taps row by row, left to right (a macro rather than a function of nine loaded
 * vectors, which the compiler spilled: wide rows took twice as long). */
#define DW_ACC(TAP)                                                              \
    pw_vec acc = (pw_vec){0} + bias;                                             \
    acc += k[0] * TAP(x0, -d) + k[1] * TAP(x0, 0) + k[2] * TAP(x0, d);           \
    acc += k[3] * TAP(x1, -d) + k[4] * TAP(x1, 0) + k[5] * TAP(x1, d);           \
    acc += k[6] * TAP(x2, -d) + k[7] * TAP(x2, 0) + k[8] * TAP(x2, d);           \
    if (relu) /* as relu_in_place: v where v > 0, else +0 */                     \
        acc = (pw_vec)((pw_ivec)acc & (acc > 0.f))

/* PW_V outputs of a depthwise 3x3 row from `at`, all taps inside the row. */
static inline void dw_vec(const float *x0, const float *x1, const float *x2, const float *k, float bias, float *yr,
                          int at, int d, int relu)
{
#define AT(r, o) (*(const pw_vec *)((r) + at + (o)))
    DW_ACC(AT);
#undef AT
    *(pw_vec *)(yr + at) = acc;
}

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
/* The lanes of a vector at row + at whose columns lie in [0, wd) (masked loads and stores touch
 * no other memory), for the edges of a depthwise row: the taps outside the row read as zeros. */
#if defined(__AVX512F__)
typedef __mmask16 dw_mask;
static inline dw_mask dw_lanes(int at, int wd)
{
    const int first = at < 0 ? -at : 0, last = wd - at < PW_V ? wd - at : PW_V;
    return last <= first ? 0 : (dw_mask)(((1u << last) - 1) & ~((1u << first) - 1));
}
static inline pw_vec dw_load(const float *row, int at, int wd)
{
    return (pw_vec)_mm512_maskz_loadu_ps(dw_lanes(at, wd), row + at);
}
static inline void dw_store(float *row, int at, int wd, pw_vec v)
{
    _mm512_mask_storeu_ps(row + at, dw_lanes(at, wd), (__m512)v);
}
#else
static inline __m256i dw_lanes(int at, int wd)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), col = _mm256_add_epi32(lane, _mm256_set1_epi32(at));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(wd), col)); /* 0 <= col < wd */
}
static inline pw_vec dw_load(const float *row, int at, int wd)
{
    return (pw_vec)_mm256_maskload_ps(row + at, dw_lanes(at, wd));
}
static inline void dw_store(float *row, int at, int wd, pw_vec v)
{
    _mm256_maskstore_ps(row + at, dw_lanes(at, wd), (__m256)v);
}
#endif

/* dw_vec where taps (or outputs) fall outside the row: zeros for the taps, the outputs past wd
 * not stored. */
static inline void dw_vec_edge(const float *x0, const float *x1, const float *x2, const float *k, float bias,
                               float *yr, int at, int wd, int d, int relu)
{
#define EDGE(r, o) dw_load((r), at + (o), wd)
    DW_ACC(EDGE);
#undef EDGE
    dw_store(yr, at, wd, acc);
}

/* One output row of a depthwise 3x3 from its three input rows x0, x1, x2 (zero_row where the
 * row falls outside the image), the sum kept in a register: whole vectors, those whose taps
 * or outputs cross an edge of the row with masked loads and stores (narrow rows too, which
 * would otherwise go one value at a time). */
static void dw_row(const float *restrict x0, const float *restrict x1, const float *restrict x2,
                   const float *restrict k, float bias, float *restrict yr, int wd, int d, int relu)
{
    int i = 0;
    for (; i < wd && i < d; i += PW_V) /* left taps cross the edge */
        dw_vec_edge(x0, x1, x2, k, bias, yr, i, wd, d, relu);
    for (; i + PW_V + d <= wd; i += PW_V) /* every tap inside: the plain loop */
        dw_vec(x0, x1, x2, k, bias, yr, i, d, relu);
    for (; i < wd; i += PW_V) /* right taps or outputs cross the edge */
        dw_vec_edge(x0, x1, x2, k, bias, yr, i, wd, d, relu);
}
#else
/* One output row of a depthwise 3x3 from its three input rows x0, x1, x2 (zero_row where the
 * row falls outside the image), the sum kept in a register. Columns where a tap falls outside
 * the image are handled apart, so the middle loop is plain. */
static void dw_row(const float *restrict x0, const float *restrict x1, const float *restrict x2,
                   const float *restrict k, float bias, float *restrict yr, int wd, int d, int relu)
{
    int lo = d < wd ? d : wd, hi = wd - d > lo ? wd - d : lo; /* [lo, hi): both side taps inside */
    for (int i = 0; i < lo; i++) {
        float acc = bias;
        acc += k[1] * x0[i] + (i + d < wd ? k[2] * x0[i + d] : 0.f);
        acc += k[4] * x1[i] + (i + d < wd ? k[5] * x1[i + d] : 0.f);
        acc += k[7] * x2[i] + (i + d < wd ? k[8] * x2[i + d] : 0.f);
        yr[i] = relu_if(relu, acc);
    }
    /* The middle in whole vectors; a last one ending at hi may overlap the one before (it writes
     * the same values again), so a row is never left to a scalar tail unless it is narrower than
     * a vector. */
    int i = lo;
    if (hi - lo >= PW_V) {
        for (; i + PW_V <= hi; i += PW_V)
            dw_vec(x0, x1, x2, k, bias, yr, i, d, relu);
        if (i < hi)
            dw_vec(x0, x1, x2, k, bias, yr, hi - PW_V, d, relu);
        i = hi;
    }
    for (; i < hi; i++) {
        float acc = bias;
        acc += k[0] * x0[i - d] + k[1] * x0[i] + k[2] * x0[i + d];
        acc += k[3] * x1[i - d] + k[4] * x1[i] + k[5] * x1[i + d];
        acc += k[6] * x2[i - d] + k[7] * x2[i] + k[8] * x2[i + d];
        yr[i] = relu_if(relu, acc);
    }
    for (i = hi; i < wd; i++) {
        float acc = bias;
        acc += (i - d >= 0 ? k[0] * x0[i - d] : 0.f) + k[1] * x0[i];
        acc += (i - d >= 0 ? k[3] * x1[i - d] : 0.f) + k[4] * x1[i];
        acc += (i - d >= 0 ? k[6] * x2[i - d] : 0.f) + k[7] * x2[i];
        yr[i] = relu_if(relu, acc);
    }
}
#endif

static void conv_depthwise3x3(const float *restrict x, const float *restrict w, const float *restrict b,
                              float *restrict y, int c, int h, int wd, int d, int relu, int row0, int row1)
{
    const size_t plane = (size_t)h * wd;
    for (int ch = 0; ch < c; ch++) {
        const float *xp = x + ch * plane, *k = w + ch * 9;
        const float bias = b ? b[ch] : 0.f;
        for (int oh = row0; oh < row1; oh++) {
            const float *above = oh - d >= 0 ? xp + (size_t)(oh - d) * wd : zero_row;
            const float *below = oh + d < h ? xp + (size_t)(oh + d) * wd : zero_row;
            dw_row(above, xp + (size_t)oh * wd, below, k, bias, y + ch * plane + (size_t)oh * wd, wd, d, relu);
        }
    }
}

static void conv_depthwise1x1(const float *restrict x, const float *restrict w, const float *restrict b,
                              float *restrict y, int c, size_t plane, int relu)
{
    for (int ch = 0; ch < c; ch++) {
        const float scale = w[ch], shift = b ? b[ch] : 0.f;
        const float *xp = x + (size_t)ch * plane;
        float *yp = y + (size_t)ch * plane;
        for (size_t i = 0; i < plane; i++)
            yp[i] = xp[i] * scale + shift;
        if (relu)
            relu_in_place(yp, plane);
    }
}

/* VALID_V vectors of outputs of one 'valid' conv row from column i, each summing every tap of
 * every input channel in a register, in the order of the plain loop (channel, kernel row,
 * kernel column). The vectors' sums are independent chains, so their FMAs overlap instead of
 * each waiting on the one before (one chain of 98 was latency-bound); a tap's weight is loaded
 * once for all of them. */
enum { VALID_V = 4 };

static inline void valid_vecs(const float *restrict x, size_t xstride, const float *restrict w, float bias,
                              int cin, int wd, int k, int d, int i, int nv, float *restrict yr)
{
    pw_vec acc[VALID_V];
    for (int v = 0; v < VALID_V; v++)
        acc[v] = (pw_vec){0} + bias;
    for (int ci = 0; ci < cin; ci++)
        for (int ky = 0; ky < k; ky++) {
            const float *xr = x + (size_t)ci * xstride + (size_t)ky * d * wd + i;
            const float *wr = w + ((size_t)ci * k + ky) * k;
            for (int kx = 0; kx < k; kx++) {
                const float wv = wr[kx];
                for (int v = 0; v < VALID_V; v++)
                    if (v < nv)
                        acc[v] += wv * *(const pw_vec *)(xr + kx * d + v * PW_V);
            }
        }
    for (int v = 0; v < nv; v++)
        *(pw_vec *)(yr + i + v * PW_V) = acc[v];
}

static void conv_valid(const float *restrict x, size_t xstride, const float *restrict w, const float *restrict b,
                       float *restrict y, int cin, int cout, int h, int wd, int k, int d)
{
    const int ho = h - d * (k - 1), wo = wd - d * (k - 1);
    for (int co = 0; co < cout; co++) {
        const float *wc = w + (size_t)co * cin * k * k;
        const float bias = b ? b[co] : 0.f;
        for (int oh = 0; oh < ho; oh++) {
            float *yr = y + ((size_t)co * ho + oh) * wo;
            const float *xo = x + (size_t)oh * wd;
            int i = 0;
            /* whole vectors, VALID_V at a time, the last one overlapping the one before (the
             * same values again) */
            if (wo >= PW_V) {
                for (; i + VALID_V * PW_V <= wo; i += VALID_V * PW_V)
                    valid_vecs(xo, xstride, wc, bias, cin, wd, k, d, i, VALID_V, yr);
                const int left = (wo - i) / PW_V;
                if (left)
                    valid_vecs(xo, xstride, wc, bias, cin, wd, k, d, i, left, yr);
                if (i + left * PW_V < wo)
                    valid_vecs(xo, xstride, wc, bias, cin, wd, k, d, wo - PW_V, 1, yr);
                continue;
            }
            for (; i < wo; i++) { /* rows narrower than a vector */
                float acc = bias;
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            acc += wc[((size_t)ci * k + ky) * k + kx] * xo[(size_t)ci * xstride + (size_t)(ky * d) * wd + i + kx * d];
                yr[i] = acc;
            }
        }
    }
}

/* Float sums over 64 independent lanes (four AVX-512 registers, so four additions are in flight
 * instead of each waiting on the one before), combined in double: each lane adds n/64 values, so
 * the rounding stays near 1e-6 relative for the maps here while the loop vectorises; the
 * reference sums in double. */
enum { LANES = 64 };

static double sum_lanes(const float *restrict x, size_t n)
{
    float s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            s[k] += x[i + k];
    double t = 0;
    for (; i < n; i++)
        t += x[i];
    for (int k = 0; k < LANES; k++)
        t += s[k];
    return t;
}

static double sqdev_lanes(const float *restrict x, size_t n, float mean)
{
    float s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            const float d = x[i + k] - mean;
            s[k] += d * d;
        }
    double t = 0;
    for (; i < n; i++)
        t += (double)(x[i] - mean) * (x[i] - mean);
    for (int k = 0; k < LANES; k++)
        t += s[k];
    return t;
}

/* Sums of d = x - k and of d^2 over n values in one pass, in lanes as above. */
static void shifted_sums_lanes(const float *restrict x, size_t n, float k, double *sum, double *sumsq)
{
    float s[LANES] = {0}, q[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            const float d = x[i + l] - k;
            s[l] += d;
            q[l] += d * d;
        }
    double a = 0, b = 0;
    for (; i < n; i++) {
        const double d = (double)x[i] - k;
        a += d;
        b += d * d;
    }
    for (int l = 0; l < LANES; l++) {
        a += s[l];
        b += q[l];
    }
    *sum = a;
    *sumsq = b;
}

/* Mean and variance in one pass over x - k, k the mean of 16 values spread over the group: the
 * variance is then sum d^2 / n - (sum d / n)^2, whose rounding grows with (mean - k)^2 against
 * the variance: at most five times that of deviations from the mean, as a sample further than
 * two standard deviations from the mean has a second pass around the mean found redo it (1.3-1.5%
 * of a frame's statistics at 256 and 384, none beyond four; maps built to alias with the sample
 * always). Half the passes of a mean-then-deviations pair: 2x faster from 4k to 256k values
 * (timing loop). */
static void groupnorm_stats(const float *restrict x, size_t n, float eps, float *mean_out, float *invstd_out)
{
    double k = 0;
    for (int i = 0; i < 16; i++) /* 64 took 1.7% of a frame: each one a cache miss */
        k += x[(size_t)i * n / 16];
    float shift = (float)(k / 16);
    double sum, sumsq;
    shifted_sums_lanes(x, n, shift, &sum, &sumsq);
    double md = sum / n, var = sumsq / n - md * md;
    if (md * md > 4 * var) {
        shift = (float)(shift + md);
        shifted_sums_lanes(x, n, shift, &sum, &sumsq);
        md = sum / n, var = sumsq / n - md * md;
    }
    *mean_out = (float)(shift + md);
    *invstd_out = (float)(1.0 / sqrt(fmax(var, 0.0) + eps));
}

static void groupnorm_group(const float *restrict x, float *restrict y, const float *restrict gamma,
                            const float *restrict beta, int channels, size_t plane, float eps)
{
    float mean, invstd;
    groupnorm_stats(x, (size_t)channels * plane, eps, &mean, &invstd);
    for (int c = 0; c < channels; c++) {
        const float scale = invstd * (gamma ? gamma[c] : 1.f);
        const float shift = (beta ? beta[c] : 0.f) - mean * scale;
        const float *xp = x + (size_t)c * plane;
        float *yp = y + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++)
            yp[i] = xp[i] * scale + shift;
    }
}

/* sum dy and sum dy (x - mean) over n values in one pass. */
static void sum_dotdev_lanes(const float *restrict dy, const float *restrict x, size_t n, float mean, double *sdy,
                             double *sdyx)
{
    float s[LANES] = {0}, t[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            s[k] += dy[i + k];
            t[k] += dy[i + k] * (x[i + k] - mean);
        }
    double a = 0, b = 0;
    for (; i < n; i++) {
        a += dy[i];
        b += (double)dy[i] * (x[i] - mean);
    }
    for (int k = 0; k < LANES; k++) {
        a += s[k];
        b += t[k];
    }
    *sdy = a;
    *sdyx = b;
}

/* One image's group of ps_groupnorm_backward: with dxhat = dy gamma, a = sum dxhat and
 * b = sum dxhat (x - mean) over the group, gx += invstd (dxhat - a/m - (x - mean) invstd^2 b/m). */
static void groupnorm_backward_group(const float *restrict x, const float *restrict dy, float *restrict gx,
                                     const float *restrict gamma, float *restrict ggamma, float *restrict gbeta,
                                     int channels, size_t plane, float eps)
{
    const size_t m = (size_t)channels * plane;
    float mean, invstd;
    groupnorm_stats(x, m, eps, &mean, &invstd);
    double a = 0, bsum = 0;
    for (int c = 0; c < channels; c++) {
        double sdy, sdyx;
        sum_dotdev_lanes(dy + (size_t)c * plane, x + (size_t)c * plane, plane, mean, &sdy, &sdyx);
        if (ggamma)
            ggamma[c] += (float)(sdyx * invstd);
        if (gbeta)
            gbeta[c] += (float)sdy;
        const double gc = gamma ? gamma[c] : 1.0;
        a += gc * sdy;
        bsum += gc * sdyx;
    }
    if (!gx)
        return;
    const float ma = (float)(a / m) * invstd, cx = (float)(bsum / m) * invstd * invstd * invstd;
    for (int c = 0; c < channels; c++) {
        const float k = (gamma ? gamma[c] : 1.f) * invstd;
        const float *dc = dy + (size_t)c * plane, *xc = x + (size_t)c * plane;
        float *gc = gx + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++)
            gc[i] += k * dc[i] - ma - (xc[i] - mean) * cx;
    }
}

/* v = in * scale + shift; out = gelu(v) + skip, over n values. */
static inline void affine_gelu_add_row(const float *restrict in, float scale, float shift, const float *restrict skip,
                                       float *restrict out, int n)
{
    for (int i = 0; i < n; i++) {
        const float v = in[i] * scale + shift;
        out[i] = v * normal_cdf(v) + skip[i];
    }
}

/* Bilinear x2 of the plane x (rows w values long) at the output rows of `rows` (ho of them) and
 * the wo columns of `cols`; with `decoder` each output row then goes through
 * affine_gelu_add_row (the decoder step), without it the rows are the result. */
static inline __attribute__((always_inline)) void up2_rows(const float *restrict x, int w, const ps_lin_tap *rows,
                                                           int ho, const ps_lin_tap *cols, int wo, int decoder,
                                                           float scale, float shift, const float *restrict skip,
                                                           float *restrict y)
{
    /* Input rows interpolated along w on demand into two slots (row i in slot i % 2: an output
     * row needs rows i0 and i0 + 1), then each output row a blend of two slots. */
    float slot[2][wo], blend[wo];
    int held[2] = {-1, -1};
#if defined(__AVX2__)
    /* A block of PW_V outputs reads fewer than PW_V consecutive inputs (x2: about half), so it is
     * two in-register shuffles of one vector load instead of 2 PW_V scalar loads: each block's
     * first input and its outputs' taps relative to it, worked out once per call. */
    const int blocks_max = wo / PW_V;
    int first[blocks_max + 1], blocks = 0;
    pw_ivec at0[blocks_max + 1], at1[blocks_max + 1];
    pw_vec w0[blocks_max + 1], w1[blocks_max + 1];
    for (; blocks < blocks_max; blocks++) {
        const ps_lin_tap *c = cols + blocks * PW_V;
        const int f = c[0].i0;
        if (f + PW_V > w || c[PW_V - 1].i1 - f >= PW_V)
            break; /* the row's end (or a stretch wider than 2x): one at a time from here */
        first[blocks] = f;
        for (int k = 0; k < PW_V; k++) {
            at0[blocks][k] = c[k].i0 - f;
            at1[blocks][k] = c[k].i1 - f;
            w0[blocks][k] = c[k].l0;
            w1[blocks][k] = c[k].l1;
        }
    }
#endif
    for (int oh = 0; oh < ho; oh++) {
        const ps_lin_tap r = rows[oh];
        const int need[2] = {r.i0, r.i1};
        for (int k = 0; k < 2; k++) {
            const int i = need[k];
            float *t = slot[i % 2];
            if (held[i % 2] == i)
                continue;
            const float *xr = x + (size_t)i * w;
            int ow = 0;
#if defined(__AVX2__)
            for (int b = 0; b < blocks; b++, ow += PW_V) {
                const pw_vec v = *(const pw_vec *)(xr + first[b]);
                *(pw_vec *)(t + ow) = w0[b] * __builtin_shuffle(v, at0[b]) + w1[b] * __builtin_shuffle(v, at1[b]);
            }
#endif
            for (; ow < wo; ow++)
                t[ow] = cols[ow].l0 * xr[cols[ow].i0] + cols[ow].l1 * xr[cols[ow].i1];
            held[i % 2] = i;
        }
        const float *t0 = slot[r.i0 % 2], *t1 = slot[r.i1 % 2];
        float *out = decoder ? blend : y + (size_t)oh * wo;
        for (int ow = 0; ow < wo; ow++)
            out[ow] = r.l0 * t0[ow] + r.l1 * t1[ow];
        if (decoder)
            affine_gelu_add_row(blend, scale, shift, skip + (size_t)oh * wo, y + (size_t)oh * wo, wo);
    }
}

static void affine_up2_gelu_add(const float *restrict x, int h, int w, const ps_lin_tap *rows, int ho,
                                const ps_lin_tap *cols, int wo, float scale, float shift,
                                const float *restrict skip, float *restrict y)
{
    if (!rows)
        affine_gelu_add_row(x, scale, shift, skip, y, h * w);
    else
        up2_rows(x, w, rows, ho, cols, wo, 1, scale, shift, skip, y);
}

static void upsample2x(const float *restrict x, int h, int w, const ps_lin_tap *rows, int ho,
                       const ps_lin_tap *cols, int wo, float *restrict y)
{
    (void)h; /* the taps index x's rows */
    up2_rows(x, w, rows, ho, cols, wo, 0, 0.f, 0.f, NULL, y);
}

static void affine_pool2_gelu(const float *restrict x, int h, int w, float scale, float shift, float *restrict y)
{
    const int ho = h / 2, wo = w / 2;
    const float sign = scale < 0 ? -1.f : 1.f; /* max of sign * x, so min when scale < 0 */
    for (int oh = 0; oh < ho; oh++) {
        const float *r0 = x + (size_t)2 * oh * w, *r1 = r0 + w;
        float *yr = y + (size_t)oh * wo;
        for (int ow = 0; ow < wo; ow++) {
            float a = sign * r0[2 * ow], b = sign * r0[2 * ow + 1], c = sign * r1[2 * ow], d = sign * r1[2 * ow + 1];
            a = b > a ? b : a;
            c = d > c ? d : c;
            const float v = (a > c ? a : c) * sign * scale + shift;
            yr[ow] = v * normal_cdf(v);
        }
    }
}

/* gx += dy where x > 0: a select, not a branch (half the signs of a ReLU's input differ). */
static void relu_backward(const float *restrict x, const float *restrict dy, float *restrict gx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gx[i] += x[i] > 0.f ? dy[i] : 0.f;
}

/* Each window's gradient goes to its first maximum in the forward's visiting order (top left,
 * top right, bottom left, bottom right; strict '>'), found by selects (no branches to
 * mispredict) and added with one store. */
static void maxpool2x2_backward(const float *restrict x, int w, const float *restrict dy, int ho, int wo,
                                float *restrict gx)
{
    for (int oh = 0; oh < ho; oh++) {
        const float *x0 = x + (size_t)2 * oh * w, *x1 = x0 + w, *d = dy + (size_t)oh * wo;
        float *g0 = gx + (size_t)2 * oh * w;
        for (int ow = 0; ow < wo; ow++) {
            const float a = x0[2 * ow], b = x0[2 * ow + 1], c = x1[2 * ow], e = x1[2 * ow + 1];
            const int tr = b > a;
            const float m = tr ? b : a;
            const int bl = c > m, br = e > (bl ? c : m);
            const int row = bl | br, col = br ? 1 : bl ? 0 : tr;
            g0[(size_t)row * w + 2 * ow + col] += d[ow];
        }
    }
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi from the same erf approximation as gelu(). */
static void gelu_backward(const float *restrict x, const float *restrict dy, float *restrict gx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i], pdf = 0.3989422804f * exp_approx(-0.5f * v * v);
        gx[i] += dy[i] * (normal_cdf(v) + v * pdf);
    }
}

enum { PW_BLOCK = 2048 }; /* positions per block of the weight gradient: the tiles' planes stay in L2, and a
                              * tile's horizontal sums are spread over 2048 / PW_V steps */

/* The weight gradient as a register tile, like pw_tile: GW_T output x GW_U input channels of
 * vector accumulators, so every loaded vector serves several FMAs and the FMAs do not wait on
 * each other (a single dot product waits on its one accumulator at every step). */
#if defined(__AVX512F__)
enum { GW_T = 4, GW_U = 4 }; /* 16 of the 32 zmm */
#else
enum { GW_T = 3, GW_U = 3 }; /* 9 of the 16 ymm or xmm */
#endif

/* gw[k][j] (row stride cin) += sum over len positions (a multiple of PW_V) of dy[k][p] x[j][p],
 * for t <= GW_T output and u <= GW_U input channels of planes `plane` apart. */
static inline __attribute__((always_inline)) void gw_tile(const float *restrict x, const float *restrict dy,
                                                          float *restrict gw, int cin, size_t plane, size_t len,
                                                          int t, int u)
{
    pw_vec acc[GW_T][GW_U];
    for (int k = 0; k < GW_T; k++)
        for (int j = 0; j < GW_U; j++)
            acc[k][j] = (pw_vec){0};
    for (size_t p = 0; p < len; p += PW_V) {
        pw_vec xv[GW_U], dv[GW_T];
        for (int j = 0; j < u; j++)
            xv[j] = *(const pw_vec *)(x + (size_t)j * plane + p);
        for (int k = 0; k < t; k++)
            dv[k] = *(const pw_vec *)(dy + (size_t)k * plane + p);
        for (int k = 0; k < t; k++)
            for (int j = 0; j < u; j++)
                acc[k][j] += dv[k] * xv[j];
    }
    for (int k = 0; k < t; k++)
        for (int j = 0; j < u; j++) {
            float total = 0.f;
            for (int l = 0; l < PW_V; l++)
                total += acc[k][j][l];
            gw[(size_t)k * cin + j] += total;
        }
}

static void conv_pointwise_backward(const float *restrict x, const float *restrict w,
                                    const float *restrict dy, float *restrict gx, float *restrict gw,
                                    int cin, int cout, size_t plane)
{
    if (!cin || !cout)
        return;
    if (gx) { /* gx[ci] += sum_co w[co][ci] dy[co]: the forward kernel on dy with w transposed,
               * adding into gx as it stores (the sum over co first, then the add, as before) */
        float *wt = malloc((size_t)cin * cout * sizeof *wt);
        if (!wt)
            abort();
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++)
                wt[(size_t)ci * cout + co] = w[(size_t)co * cin + ci];
        conv_pointwise(dy, wt, NULL, gx, gx, cout, cin, plane, plane, 0);
        free(wt);
    }
    for (size_t p0 = 0; gw && p0 < plane; p0 += PW_BLOCK) {
        const size_t len = plane - p0 < PW_BLOCK ? plane - p0 : PW_BLOCK, vlen = len / PW_V * PW_V;
        for (int co = 0; co < cout; co += GW_T) {
            const int t = cout - co < GW_T ? cout - co : GW_T;
            for (int ci = 0; ci < cin; ci += GW_U) {
                const int u = cin - ci < GW_U ? cin - ci : GW_U;
                const float *xs = x + (size_t)ci * plane + p0, *ds = dy + (size_t)co * plane + p0;
                float *g = gw + (size_t)co * cin + ci;
                if (t == GW_T && u == GW_U) /* full tiles: t and u are constants here */
                    gw_tile(xs, ds, g, cin, plane, vlen, GW_T, GW_U);
                else
                    gw_tile(xs, ds, g, cin, plane, vlen, t, u);
            }
        }
        for (int co = 0; co < cout && vlen < len; co++) /* the last positions of a block */
            for (int ci = 0; ci < cin; ci++)
                gw[(size_t)co * cin + ci] +=
                    dot_f(dy + (size_t)co * plane + p0 + vlen, x + (size_t)ci * plane + p0 + vlen, len - vlen);
    }
}

/* The three taps of one kernel row: tap kx reads x[i + (kx-1) d] for the outputs i where that
 * is inside, so tap 0 adds dy[i+d] x[i], tap 1 dy[i] x[i], tap 2 dy[i] x[i+d]. One pass, a vector
 * accumulator per tap (acc[0..2]), the positions past the last whole vector into tail[0..2]. */
static inline void dw_taps_row(const float *restrict dr, const float *restrict xr, int wd, int d, pw_vec *acc,
                               float *tail)
{
    const int n = wd > d ? wd - d : 0;
    int i = 0;
    for (; i + PW_V <= n; i += PW_V) {
#define AT(r, o) (*(const pw_vec *)((r) + i + (o)))
        const pw_vec dv = AT(dr, 0), xv = AT(xr, 0);
        acc[0] += AT(dr, d) * xv;
        acc[1] += dv * xv;
        acc[2] += dv * AT(xr, d);
#undef AT
    }
    for (; i < n; i++) {
        tail[0] += dr[i + d] * xr[i];
        tail[1] += dr[i] * xr[i];
        tail[2] += dr[i] * xr[i + d];
    }
    for (; i < wd; i++)
        tail[1] += dr[i] * xr[i];
}

enum { DW_TAP_ROWS = 16 }; /* rows summed in float vectors before they are added into double */

/* gx += dy correlated with the kernel turned by 180 degrees (the transpose of the forward), and
 * gw[ky][kx] += sum over outputs of dy * the input under that tap. Row by row, like dw_row(). */
static void conv_depthwise3x3_backward(const float *restrict x, const float *restrict w,
                                       const float *restrict dy, float *restrict gx, float *restrict gw,
                                       int c, int h, int wd, int d)
{
    const size_t plane = (size_t)h * wd;
    const int lo = d < wd ? d : wd, hi = wd - d > lo ? wd - d : lo;
    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + ch * plane, *dc = dy + ch * plane, *k = w + ch * 9;
        float *gxc = gx ? gx + ch * plane : NULL;
        double tap[9] = {0};
        pw_vec acc[9] = {{0}};
        float tail[9] = {0};
        for (int oh = 0; oh < h; oh++) {
            const float *dr = dc + (size_t)oh * wd;
            for (int ky = 0; ky < 3; ky++) {
                int ih = oh + (ky - 1) * d;
                if (ih < 0 || ih >= h)
                    continue;
                const float *xr = xc + (size_t)ih * wd;
                /* forward: y[oh][i] += k0 x[ih][i-d] + k1 x[ih][i] + k2 x[ih][i+d] */
                if (gxc) {
                    float *gr = gxc + (size_t)ih * wd;
                    const float k0 = k[ky * 3], k1 = k[ky * 3 + 1], k2 = k[ky * 3 + 2];
                    /* gr[j] += k0 dr[j+d] + k1 dr[j] + k2 dr[j-d], each where that output exists */
                    for (int j = 0; j < lo; j++)
                        gr[j] += k1 * dr[j] + (j + d < wd ? k0 * dr[j + d] : 0.f);
                    for (int j = lo; j < hi; j++)
                        gr[j] += k0 * dr[j + d] + k1 * dr[j] + k2 * dr[j - d];
                    for (int j = hi; j < wd; j++)
                        gr[j] += (j - d >= 0 ? k2 * dr[j - d] : 0.f) + k1 * dr[j];
                }
                if (gw)
                    dw_taps_row(dr, xr, wd, d, acc + ky * 3, tail + ky * 3);
            }
            if (gw && (oh % DW_TAP_ROWS == DW_TAP_ROWS - 1 || oh == h - 1))
                for (int t = 0; t < 9; t++) {
                    float total = tail[t];
                    for (int l = 0; l < PW_V; l++)
                        total += acc[t][l];
                    tap[t] += total;
                    acc[t] = (pw_vec){0};
                    tail[t] = 0.f;
                }
        }
        if (gw)
            for (int t = 0; t < 9; t++)
                gw[ch * 9 + t] += (float)tap[t];
    }
}

const ps_kernels SET_NAME = {
    .name = STR(PS_KERNEL_SET),
    .gelu = gelu,
    .sigmoid = sigmoid,
    .conv_pointwise = conv_pointwise,
    .conv_depthwise3x3 = conv_depthwise3x3,
    .conv_valid = conv_valid,
    .add_gelu = add_gelu,
    .add = add,
    .mul = mul,
    .normalise_rgb = normalise_rgb,
    .frame_row_packed4 = PS_FRAME_KERNEL(frame_row_packed4),
    .frame_row_sample = PS_FRAME_KERNEL(frame_row_sample),
    .frame_row_combine = PS_FRAME_KERNEL(frame_row_combine),
    .attend_residual = attend_residual,
    .channel_mean_max = channel_mean_max,
    .conv_depthwise1x1 = conv_depthwise1x1,
    .groupnorm_group = groupnorm_group,
    .groupnorm_stats = groupnorm_stats,
    .affine_up2_gelu_add = affine_up2_gelu_add,
    .upsample2x = upsample2x,
    .affine_pool2_gelu = affine_pool2_gelu,
    .gelu_backward = gelu_backward,
    .relu_backward = relu_backward,
    .groupnorm_backward_group = groupnorm_backward_group,
    .sum = sum_lanes,
    .sum_sqdev = sqdev_lanes,
    .sum_dotdev = sum_dotdev_lanes,
    .maxpool2x2_backward = maxpool2x2_backward,
    .conv_pointwise_backward = conv_pointwise_backward,
    .conv_depthwise3x3_backward = conv_depthwise3x3_backward,
};
