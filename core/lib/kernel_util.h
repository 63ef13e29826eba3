/* Small kernels shared by the forward ops (core/lib/ops.c) and their backward
 * (core/train/backward_ops.c); internal, not part of the library's API. */
#pragma once
#include <stddef.h>
#include "kernels.h"

/* The taps of output coordinate o when `in` values are stretched to `out` (align_corners=True),
 * computed in float like PyTorch. */
static inline ps_lin_tap ps_lin_tap_at(int o, int in, int out)
{
    const float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.f;
    const float src = scale * o;
    ps_lin_tap t;
    t.i0 = (int)src;
    t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
    t.l1 = src - t.i0;
    t.l0 = 1.f - t.l1;
    return t;
}

/* The taps of every output coordinate 0..out-1: taps[o] = ps_lin_tap_at(o, in, out). */
static inline void ps_lin_taps(ps_lin_tap *taps, int in, int out)
{
    for (int o = 0; o < out; o++)
        taps[o] = ps_lin_tap_at(o, in, out);
}

/* Sum in double with independent partial sums (vectorisable without -ffast-math). */
static inline double sum_d(const float *x, size_t n)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += x[i + k];
    for (; i < n; i++)
        s[0] += x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Sum of squared deviations from `mean` (second pass of a two-pass variance). */
static inline double sum_sqdev_d(const float *x, size_t n, double mean)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) {
            double d = x[i + k] - mean;
            s[k] += d * d;
        }
    for (; i < n; i++) {
        double d = x[i] - mean;
        s[0] += d * d;
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Dot product with 8 independent partial sums. */
static inline float dot_f(const float *a, const float *b, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float t = 0;
    for (; i < n; i++)
        t += a[i] * b[i];
    for (int k = 0; k < 8; k++)
        t += s[k];
    return t;
}

/* den[i] = eps + sum over the c planes of x at position i, accumulated in float channel by
 * channel (as torch sums over a non-innermost dimension). */
static inline void channel_sum_eps(const float *x, int c, size_t plane, float eps, float *den)
{
    for (size_t i = 0; i < plane; i++)
        den[i] = x[i];
    for (int k = 1; k < c; k++)
        for (size_t i = 0; i < plane; i++)
            den[i] += x[k * plane + i];
    for (size_t i = 0; i < plane; i++)
        den[i] += eps;
}

typedef struct conv_geom {
    int h, w, ho, wo, stride;
} conv_geom;

/* Output positions o in [*lo, *hi) whose input index o * stride + off lies in [0, n_in). */
static inline void tap_range(int n_out, int n_in, int stride, int off, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / stride + 1;
    *hi = h < n_out ? h : n_out;
    *lo = l < *hi ? l : *hi;
}

/* Index into [0, n) mirrored at the edges without repeating them (ReflectionPad2d). */
static inline int reflect_index(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
}

/* Mean and max over c channel planes (plane values apart) of len positions, for
 * ps_channel_mean_max_run and the kernel sets' channel_mean_max: one body, so the same
 * operations in the same order (no multiply-add to fuse) give the same bits at every width. */
static inline void ps_channel_mean_max_body(const float *restrict x, size_t plane, int c, size_t len,
                                            float *restrict mean, float *restrict max)
{
    const float inv_c = 1.f / c;
    for (size_t i = 0; i < len; i++)
        mean[i] = max[i] = x[i];
    /* Channel-outer order: both accumulators are streamed plane by plane. */
    for (int ch = 1; ch < c; ch++) {
        const float *xc = x + ch * plane;
        for (size_t i = 0; i < len; i++) {
            mean[i] += xc[i];
            max[i] = xc[i] > max[i] ? xc[i] : max[i];
        }
    }
    for (size_t i = 0; i < len; i++)
        mean[i] *= inv_c;
}
