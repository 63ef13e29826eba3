/* Video frame rows -> the model's normalised input (the element's conversion), one set per
 * instruction set like kernels_impl.c. meson compiles this file with -ffp-contract=off: every
 * multiply and add rounds on its own, as in the core's resize (image.c) and the references in
 * preprocess.c, so each set gives their bits exactly (the tests compare for equality) and the
 * element's input for an RGB frame equals polypseg-infer's for the same image. The loops are
 * written for the vectoriser: the only scattered reads gather the corner samples of a block of
 * output pixels first, then the arithmetic runs over whole arrays. */
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "kernels_frame.h"

enum { BLOCK = 64 };

/* v + 0.5 clamped to 0..255 and truncated: the byte the core's resize would store, as a float.
 * Clamped after truncating, in integers, which the vectoriser takes (float compares it does
 * not, as they might trap): the same byte for any |v| < 2^31. */
static inline float round_byte(float v)
{
    int i = (int)(v + 0.5f);
    i = i < 0 ? 0 : i;
    i = i > 255 ? 255 : i;
    return (float)i;
}

/* out = fmaf(v, scale, -nshift): a loop of its own, so where fmaf is a library call (sets
 * without FMA) the rounding loop before it still vectorises. */
static inline void normalise(const float *restrict v, int n, float scale, float nshift, float *restrict out)
{
    for (int i = 0; i < n; i++)
        out[i] = fmaf(v[i], scale, -nshift);
}

void PS_FRAME_KERNEL(frame_row_packed4)(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                               const float *wx, float wy, const int *shift, int n, const float *scale,
                               const float *nshift, float *const *planes)
{
    uint32_t a[BLOCK], b[BLOCK], c[BLOCK], d[BLOCK];
    for (int x0 = 0; x0 < n; x0 += BLOCK) {
        const int m = n - x0 < BLOCK ? n - x0 : BLOCK;
        const int *restrict i0 = off0 + x0, *restrict i1 = off1 + x0;
        for (int i = 0; i < m; i++) {
            memcpy(&a[i], row0 + i0[i], 4);
            memcpy(&b[i], row0 + i1[i], 4);
            memcpy(&c[i], row1 + i0[i], 4);
            memcpy(&d[i], row1 + i1[i], 4);
        }
        const float *restrict w = wx + x0;
        for (int k = 0; k < 3; k++) {
            const int sh = shift[k];
            float v[BLOCK];
            for (int i = 0; i < m; i++) {
                const float fa = (float)((a[i] >> sh) & 255), fb = (float)((b[i] >> sh) & 255);
                const float fc = (float)((c[i] >> sh) & 255), fd = (float)((d[i] >> sh) & 255);
                const float top = fa + w[i] * (fb - fa), bottom = fc + w[i] * (fd - fc);
                v[i] = round_byte(top + wy * (bottom - top));
            }
            normalise(v, m, scale[k], nshift[k], planes[k] + x0);
        }
    }
}

void PS_FRAME_KERNEL(frame_row_sample)(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                              const float *wx, float wy, int n, float *out)
{
    uint8_t a[BLOCK], b[BLOCK], c[BLOCK], d[BLOCK];
    for (int x0 = 0; x0 < n; x0 += BLOCK) {
        const int m = n - x0 < BLOCK ? n - x0 : BLOCK;
        const int *restrict i0 = off0 + x0, *restrict i1 = off1 + x0;
        for (int i = 0; i < m; i++) {
            a[i] = row0[i0[i]];
            b[i] = row0[i1[i]];
            c[i] = row1[i0[i]];
            d[i] = row1[i1[i]];
        }
        const float *restrict w = wx + x0;
        float *restrict o = out + x0;
        for (int i = 0; i < m; i++) {
            const float fa = a[i], fb = b[i], fc = c[i], fd = d[i];
            const float top = fa + w[i] * (fb - fa), bottom = fc + w[i] * (fd - fc);
            o[i] = top + wy * (bottom - top);
        }
    }
}

void PS_FRAME_KERNEL(frame_row_combine)(const float *const *samples, int n, const float *matrix, const float *offset,
                               const float *scale, const float *nshift, float *const *planes)
{
    const float *restrict s0 = samples[0], *restrict s1 = samples[1], *restrict s2 = samples[2];
    for (int k = 0; k < 3; k++) {
        const float *m = matrix + 3 * k;
        const float m0 = m[0], m1 = m[1], m2 = m[2], o0 = offset[0], o1 = offset[1], o2 = offset[2];
        for (int x0 = 0; x0 < n; x0 += BLOCK) {
            const int len = n - x0 < BLOCK ? n - x0 : BLOCK;
            float v[BLOCK];
            for (int i = 0; i < len; i++) {
                const int j = x0 + i;
                v[i] = round_byte(m0 * (s0[j] - o0) + m1 * (s1[j] - o1) + m2 * (s2[j] - o2));
            }
            normalise(v, len, scale[k], nshift[k], planes[k] + x0);
        }
    }
}
