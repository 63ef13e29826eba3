/* Optimised kernels, one set per instruction set, chosen at run time by CPU features.
 * Every kernel has a plain reference in ops.c; tests/test_kernels.c compares each set against
 * it on random shapes. The graph (graph.c) calls these, so inference and training share them. */
#pragma once
#include <stddef.h>

typedef enum ps_isa { PS_ISA_SCALAR, PS_ISA_AVX2, PS_ISA_AVX512, PS_ISA_COUNT } ps_isa;

/* Source indices and weights of one output coordinate of align_corners=True linear
 * interpolation (ps_lin_tap_at in kernel_util.h computes them). */
typedef struct ps_lin_tap {
    int i0, i1;
    float l0, l1;
} ps_lin_tap;

/* Widest row the depthwise 3x3 kernel takes (model inputs stop at 4096, PS_MAX_INPUT). */
#define PS_KERNEL_MAX_WIDTH 4096

typedef struct ps_kernels {
    const char *name; /* "scalar", "avx2", "avx512" */
    /* y = gelu(x) (erf form) and y = sigmoid(x) over n values; max abs error ~1e-6 of the ref */
    void (*gelu)(const float *x, float *y, size_t n);
    void (*sigmoid)(const float *x, float *y, size_t n);
    /* y = gelu(a + b) over n values (a residual add and its activation in one pass) */
    void (*add_gelu)(const float *a, const float *b, float *y, size_t n);
    /* count interleaved RGB bytes -> three planes: d_c[i] = fmaf(rgb[3i + c], scale[c], -shift[c])
     * (the model input's normalisation, exactly ps_normalise_rgb_ref's floats) */
    void (*normalise_rgb)(const unsigned char *rgb, int count, const float *scale, const float *shift, float *d0,
                          float *d1, float *d2);
    /* One row of the model input from two rows of a video frame (kernels_frame.c): output pixel
     * i samples the frame bilinearly, corners at byte offsets off0[i] / off1[i] of row0 (weight
     * 1 - wy) and row1 (wy), weights 1 - wx[i] and wx[i] horizontally; horizontal lerps first,
     * then vertical, in float; the result rounded to a byte (v + 0.5, clamped, truncated) and
     * normalised to plane k as normalise_rgb does, fmaf(byte, scale[k], -nshift[k]). n outputs.
     * packed4: 4-byte pixels holding R, G, B at bit shift[k] of the word (RGBx, BGRA, ...).
     * sample: one component of 1-byte samples, the unrounded float lerp (offsets in bytes, so
     * NV12's interleaved chroma works alike). combine: three such samples s to the planes,
     * v_k = sum_j matrix[3k + j] (s_j - offset[j]) in that order (YUV -> RGB, or the identity
     * for RGB), then rounded and normalised like packed4. Exactly the references' bits
     * (ps_frame_row_*_ref in preprocess.h). */
    void (*frame_row_packed4)(const unsigned char *row0, const unsigned char *row1, const int *off0,
                              const int *off1, const float *wx, float wy, const int *shift, int n,
                              const float *scale, const float *nshift, float *const *planes);
    void (*frame_row_sample)(const unsigned char *row0, const unsigned char *row1, const int *off0, const int *off1,
                             const float *wx, float wy, int n, float *out);
    void (*frame_row_combine)(const float *const *samples, int n, const float *matrix, const float *offset,
                              const float *scale, const float *nshift, float *const *planes);
    /* y = a + b and y = a * b over n values (e.g. a plane times its gate) */
    void (*add)(const float *a, const float *b, float *y, size_t n);
    void (*mul)(const float *a, const float *b, float *y, size_t n);
    /* LSCAB's output on one plane: y = (a + beta * sa) * t + t, a = alpha * (the channel's
     * attention), sa the plane's spatial attention. */
    void (*attend_residual)(const float *t, const float *sa, float a, float beta, float *y, size_t n);
    /* LSCAB's spatial-attention inputs: the mean and the max over c channels (planes `plane`
     * values apart) of len positions, as ps_channel_mean_max_run, bit for bit. */
    void (*channel_mean_max)(const float *x, size_t plane, int c, size_t len, float *mean, float *max);
    /* One image: y (cout, n) = w (cout, cin) . x (cin, n) + b (cout, or NULL), plus add
     * (cout, n; a residual, or NULL), then max(0, y) when relu is set (batch-norm folded into w
     * and b, see microaunet.c); n positions of planes `stride` apart (n < stride: a part of each
     * plane, as threads split them; any split of the positions gives the bits of the whole).
     * add may be y itself (each value read before it is written): the backward adds into a
     * gradient that way. */
    void (*conv_pointwise)(const float *x, const float *w, const float *b, const float *add, float *y,
                           int cin, int cout, size_t n, size_t stride, int relu);
    /* One image, depthwise 3x3, stride 1, 'same' zero padding = dilation:
     * y (c, h, w) from x (c, h, w <= PS_KERNEL_MAX_WIDTH), w (c, 3, 3), b (c, or NULL); relu as
     * above; only output rows [row0, row1) (threads split the rows). */
    void (*conv_depthwise3x3)(const float *x, const float *w, const float *b, float *y, int c,
                              int h, int wd, int dilation, int relu, int row0, int row1);
    /* One image, depthwise 1x1 (a per-channel scale and bias): y (c, plane) from x (c, plane),
     * w (c), b (c, or NULL); relu as above. */
    void (*conv_depthwise1x1)(const float *x, const float *w, const float *b, float *y, int c, size_t plane,
                              int relu);
    /* One image, dense conv without padding ('valid'), stride 1: y (cout, ho, wo) from
     * x (cin, h, w; its planes xstride values apart, so h rows may be a band of taller planes),
     * w (cout, cin, k, k), b (cout, or NULL); ho = h - dilation (k - 1). */
    void (*conv_valid)(const float *x, size_t xstride, const float *w, const float *b, float *y, int cin, int cout,
                       int h, int wd, int k, int dilation);
    /* One group of a GroupNorm: x and y hold `channels` planes of `plane` values; gamma and beta
     * (per channel, or NULL) start at the group's first channel. */
    void (*groupnorm_group)(const float *x, float *y, const float *gamma, const float *beta,
                            int channels, size_t plane, float eps);
    /* Sums of n values in float lanes, totalled in double (batch-norm's statistics in training):
     * sum x, sum (x - mean)^2, and sum dy with sum dy (x - mean) in one pass. */
    double (*sum)(const float *x, size_t n);
    double (*sum_sqdev)(const float *x, size_t n, float mean);
    void (*sum_dotdev)(const float *dy, const float *x, size_t n, float mean, double *sdy, double *sdyx);
    /* The statistics alone: mean and 1/sqrt(var + eps) of n values, as groupnorm_group uses. */
    void (*groupnorm_stats)(const float *x, size_t n, float eps, float *mean, float *invstd);
    /* The decoder's step on one plane (inference): y = gelu(up(x) * scale + shift) + skip, up
     * the bilinear x2 of the h x w plane x with the given row and column taps (ho x wo output),
     * or no upsampling when rows is NULL (y and skip then h x w). scale/shift are a GroupNorm's
     * per-channel affine; as up is linear with weights summing to 1, it may come first. */
    void (*affine_up2_gelu_add)(const float *x, int h, int w, const ps_lin_tap *rows, int ho,
                                const ps_lin_tap *cols, int wo, float scale, float shift, const float *skip,
                                float *y);
    /* The bilinear x2 alone, as in the decoder's step: the ho output rows of `rows` (which index
     * the whole h x w plane x) at the wo columns of `cols`, into y (ho x wo). */
    void (*upsample2x)(const float *x, int h, int w, const ps_lin_tap *rows, int ho, const ps_lin_tap *cols, int wo,
                       float *y);
    /* The encoder's step on one plane (inference): y = gelu(maxpool2x2(x * scale + shift)),
     * y (h/2) x (w/2). With scale >= 0 the max of the affine is the affine of the max (min when
     * scale < 0), exactly, as rounding keeps the order. */
    void (*affine_pool2_gelu)(const float *x, int h, int w, float scale, float shift, float *y);

    /* Backward (training), adding into the gradients like core/train/backward_ops.c, whose
     * reference versions they are tested against. gx / gw may be NULL (not wanted). */
    void (*gelu_backward)(const float *x, const float *dy, float *gx, size_t n);
    void (*relu_backward)(const float *x, const float *dy, float *gx, size_t n);
    /* One image's group of a GroupNorm (layout as groupnorm_group): gx, and the per-channel
     * ggamma and gbeta (starting at the group's first channel), each may be NULL. */
    void (*groupnorm_backward_group)(const float *x, const float *dy, float *gx, const float *gamma, float *ggamma,
                                     float *gbeta, int channels, size_t plane, float eps);
    /* One plane: x (h x w, row stride w) and dy (ho x wo) of a 2x2 max-pool. */
    void (*maxpool2x2_backward)(const float *x, int w, const float *dy, int ho, int wo, float *gx);
    void (*conv_pointwise_backward)(const float *x, const float *w, const float *dy, float *gx,
                                    float *gw, int cin, int cout, size_t plane);
    void (*conv_depthwise3x3_backward)(const float *x, const float *w, const float *dy, float *gx,
                                       float *gw, int c, int h, int wd, int dilation);
} ps_kernels;

/* The best set this CPU runs; POLYPSEG_ISA=scalar|avx2|avx512 picks a lower one (the first call
 * decides). */
const ps_kernels *ps_kernels_best(void);
/* A given set, or NULL when this CPU cannot run it (for tests and benchmarks). */
const ps_kernels *ps_kernels_for(ps_isa isa);
