/* Plain scalar reference kernels (contract in ops.h). Innermost loops run over contiguous
 * memory with loop-invariant values hoisted, so the compiler can vectorise them. Reductions
 * that feed statistics accumulate in double. */
#include "ops.h"
#include "kernel_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

/* y = x * scale + shift over n values. */
static void affine(float *restrict y, const float *restrict x, size_t n, float scale, float shift)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * scale + shift;
}

/* ---- convolution ---- */

int ps_conv2d_out_size(int in, int k, int pad, int stride, int dilation)
{
    int span = in + 2 * pad - dilation * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

/* One kernel tap over a whole plane: y[o] += wv * x[o * stride + off] (zero outside x).
 * Computing a conv as a sum of shifted planes keeps every inner loop contiguous in y. */
static void conv_tap(float *restrict y, const float *restrict x, float wv, const conv_geom *g,
                     int off_h, int off_w)
{
    const int s = g->stride;
    if (s == 1 && off_h == 0 && off_w == 0 && g->h == g->ho && g->w == g->wo) {
        /* Pointwise convs and centre taps of 'same' convs: one flat loop. */
        const size_t n = (size_t)g->h * g->w;
        for (size_t i = 0; i < n; i++)
            y[i] += wv * x[i];
        return;
    }
    int oh0, oh1, ow0, ow1;
    tap_range(g->ho, g->h, s, off_h, &oh0, &oh1);
    tap_range(g->wo, g->w, s, off_w, &ow0, &ow1);
    for (int oh = oh0; oh < oh1; oh++) {
        float *yr = y + (size_t)oh * g->wo;
        const float *xr = x + (size_t)(oh * s + off_h) * g->w;
        if (s == 1)
            for (int ow = ow0; ow < ow1; ow++)
                yr[ow] += wv * xr[ow + off_w];
        else
            for (int ow = ow0; ow < ow1; ow++)
                yr[ow] += wv * xr[ow * s + off_w];
    }
}

void ps_conv2d_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b,
                   const ps_conv2d_params *p, ps_tensor *y)
{
    const conv_geom g = {x->h, x->w, y->h, y->w, p->stride};
    const int cin_g = x->c / p->groups, cout_g = y->c / p->groups;
    const int kh = w->h, kw = w->w, d = p->dilation;
    const size_t xplane = (size_t)x->h * x->w, yplane = (size_t)y->h * y->w;
    for (int n = 0; n < y->n; n++)
        for (int oc = 0; oc < y->c; oc++) {
            float *yp = y->data + ((size_t)n * y->c + oc) * yplane;
            const float bias = b ? b->data[oc] : 0.f;
            for (size_t i = 0; i < yplane; i++)
                yp[i] = bias;
            const int ic0 = oc / cout_g * cin_g;
            for (int icg = 0; icg < cin_g; icg++) {
                const float *xp = x->data + ((size_t)n * x->c + ic0 + icg) * xplane;
                const float *wk = w->data + ((size_t)oc * cin_g + icg) * kh * kw;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        conv_tap(yp, xp, wk[ky * kw + kx], &g, ky * d - p->pad_h,
                                 kx * d - p->pad_w);
            }
        }
}

void ps_conv1d_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b,
                   int stride, int pad, int dilation, int groups, ps_tensor *y)
{
    /* A 1-D conv is a 2-D conv with a 1-row input and kernel. */
    const ps_conv2d_params p = {stride, 0, pad, dilation, groups};
    ps_conv2d_ref(x, w, b, &p, y);
}

void ps_linear_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b, ps_tensor *y)
{
    const size_t k = (size_t)x->c * x->h * x->w;
    const int out = w->n;
    for (int n = 0; n < x->n; n++) {
        const float *xr = x->data + n * k;
        for (int o = 0; o < out; o++)
            y->data[(size_t)n * out + o] =
                (b ? b->data[o] : 0.f) + dot_f(xr, w->data + (size_t)o * k, k);
    }
}

/* ---- normalisation ---- */

void ps_batchnorm_ref(const ps_tensor *x, const ps_tensor *gamma, const ps_tensor *beta,
                      const ps_tensor *mean, const ps_tensor *var, float eps, ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w;
    for (int c = 0; c < x->c; c++) {
        const float scale = gamma->data[c] / sqrtf(var->data[c] + eps);
        const float shift = beta->data[c] - mean->data[c] * scale;
        for (int n = 0; n < x->n; n++) {
            const size_t off = ((size_t)n * x->c + c) * plane;
            affine(y->data + off, x->data + off, plane, scale, shift);
        }
    }
}

/* The reference's sums in double, and its affine. */
static const ps_batchnorm_ops ref_ops = {sum_d, sum_sqdev_d, affine};

void ps_batchnorm_train_ref(const ps_tensor *x, const ps_tensor *gamma, const ps_tensor *beta,
                            ps_tensor *running_mean, ps_tensor *running_var, float momentum,
                            float eps, ps_tensor *y, float *save_mean, float *save_invstd)
{
    ps_batchnorm_train_with(&ref_ops, x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                            save_invstd);
}

void ps_batchnorm_train_with(const ps_batchnorm_ops *ops, const ps_tensor *x, const ps_tensor *gamma,
                             const ps_tensor *beta, ps_tensor *running_mean, ps_tensor *running_var, float momentum,
                             float eps, ps_tensor *y, float *save_mean, float *save_invstd)
{
    const size_t plane = (size_t)x->h * x->w, m = plane * x->n;
    for (int c = 0; c < x->c; c++) {
        double sum = 0, ssd = 0;
        for (int n = 0; n < x->n; n++)
            sum += ops->sum(x->data + ((size_t)n * x->c + c) * plane, plane);
        const double mean = sum / m;
        for (int n = 0; n < x->n; n++)
            ssd += ops->sum_sqdev(x->data + ((size_t)n * x->c + c) * plane, plane, mean);
        const double var = ssd / m;
        const float invstd = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = (float)mean;
        save_invstd[c] = invstd;
        const float scale = gamma->data[c] * invstd;
        const float shift = beta->data[c] - (float)mean * scale;
        for (int n = 0; n < x->n; n++) {
            const size_t off = ((size_t)n * x->c + c) * plane;
            ops->affine(y->data + off, x->data + off, plane, scale, shift);
        }
        if (running_mean)
            running_mean->data[c] = (1 - momentum) * running_mean->data[c] + momentum * (float)mean;
        if (running_var) {
            /* Unbiased variance; a single value per channel has none, keep the biased one. */
            const double unbiased = m > 1 ? ssd / (m - 1) : var;
            running_var->data[c] = (1 - momentum) * running_var->data[c] + momentum * (float)unbiased;
        }
    }
}

void ps_groupnorm_ref(const ps_tensor *x, int groups, const ps_tensor *gamma,
                      const ps_tensor *beta, float eps, ps_tensor *y)
{
    const int cpg = x->c / groups;
    const size_t plane = (size_t)x->h * x->w, m = plane * cpg;
    for (int n = 0; n < x->n; n++)
        for (int g = 0; g < groups; g++) {
            /* A group's channels are consecutive, so its values form one block. */
            const size_t base = ((size_t)n * x->c + (size_t)g * cpg) * plane;
            const double mean = sum_d(x->data + base, m) / m;
            const double var = sum_sqdev_d(x->data + base, m, mean) / m;
            const float invstd = (float)(1.0 / sqrt(var + eps));
            for (int cg = 0; cg < cpg; cg++) {
                const int c = g * cpg + cg;
                const float scale = (gamma ? gamma->data[c] : 1.f) * invstd;
                const float shift = (beta ? beta->data[c] : 0.f) - (float)mean * scale;
                const size_t off = base + cg * plane;
                affine(y->data + off, x->data + off, plane, scale, shift);
            }
        }
}

/* ---- element-wise activations ---- */

void ps_relu_ref(const ps_tensor *x, ps_tensor *y)
{
    const size_t n = ps_numel(x);
    const float *restrict xd = x->data;
    float *restrict yd = y->data;
    for (size_t i = 0; i < n; i++)
        yd[i] = xd[i] > 0.f ? xd[i] : 0.f;
}

void ps_gelu_ref(const ps_tensor *x, ps_tensor *y)
{
    const size_t n = ps_numel(x);
    for (size_t i = 0; i < n; i++) {
        const float v = x->data[i];
        y->data[i] = 0.5f * v * (1.f + erff(v * (float)M_SQRT1_2));
    }
}

void ps_sigmoid_ref(const ps_tensor *x, ps_tensor *y)
{
    const size_t n = ps_numel(x);
    for (size_t i = 0; i < n; i++)
        y->data[i] = 1.f / (1.f + expf(-x->data[i]));
}

/* ---- normalised exponentials ---- */

void ps_softmax_spatial_ref(const ps_tensor *x, ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x->data + pl * plane;
        float *yp = y->data + pl * plane;
        float max = xp[0];
        for (size_t i = 1; i < plane; i++)
            max = xp[i] > max ? xp[i] : max;
        /* Shifted by the maximum so exp cannot overflow (the result is the same). */
        for (size_t i = 0; i < plane; i++)
            yp[i] = expf(xp[i] - max);
        const float inv = (float)(1.0 / sum_d(yp, plane));
        for (size_t i = 0; i < plane; i++)
            yp[i] *= inv;
    }
}

void ps_channel_normalize_ref(const ps_tensor *x, float eps, ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w;
    for (int n = 0; n < x->n; n++) {
        const size_t base = (size_t)n * x->c * plane;
        /* the denominators go in y's last plane, which is written last, each value after its
         * own denominator is read: no scratch to allocate per call */
        float *den = y->data + base + (size_t)(x->c - 1) * plane;
        channel_sum_eps(x->data + base, x->c, plane, eps, den);
        for (int c = 0; c < x->c; c++) {
            const float *xc = x->data + base + c * plane;
            float *yc = y->data + base + c * plane;
            for (size_t i = 0; i < plane; i++)
                yc[i] = xc[i] / den[i];
        }
    }
}

/* ---- pooling and resampling ---- */

void ps_maxpool2x2_ref(const ps_tensor *x, ps_tensor *y)
{
    const int w = x->w, ho = y->h, wo = y->w;
    const size_t planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x->data + pl * x->h * w;
        float *yp = y->data + pl * ho * wo;
        for (int oh = 0; oh < ho; oh++) {
            const float *r0 = xp + (size_t)2 * oh * w, *r1 = r0 + w;
            float *yr = yp + (size_t)oh * wo;
            for (int ow = 0; ow < wo; ow++) {
                /* Same visiting order and strict '>' as the backward (first max wins). */
                float m = r0[2 * ow];
                m = r0[2 * ow + 1] > m ? r0[2 * ow + 1] : m;
                m = r1[2 * ow] > m ? r1[2 * ow] : m;
                m = r1[2 * ow + 1] > m ? r1[2 * ow + 1] : m;
                yr[ow] = m;
            }
        }
    }
}

void ps_global_avgpool_ref(const ps_tensor *x, ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++)
        y->data[pl] = (float)(sum_d(x->data + pl * plane, plane) / plane);
}

void ps_channel_mean_max_run(const float *x, size_t plane, int c, size_t len, float *mean, float *max)
{
    ps_channel_mean_max_body(x, plane, c, len, mean, max);
}

static void channel_mean_max_range(const ps_tensor *x, ps_tensor *y, int n, size_t i0, size_t i1)
{
    const size_t plane = (size_t)x->h * x->w;
    float *mean = y->data + (size_t)n * 2 * plane;
    ps_channel_mean_max_run(x->data + (size_t)n * x->c * plane + i0, plane, x->c, i1 - i0, mean + i0,
                            mean + plane + i0);
}

void ps_channel_mean_max_ref(const ps_tensor *x, ps_tensor *y)
{
    for (int n = 0; n < x->n; n++)
        channel_mean_max_range(x, y, n, 0, (size_t)x->h * x->w);
}

void ps_reflect_pad_columns(float *row, int w, int pad)
{
    for (int j = 0; j < pad; j++) {
        row[j] = row[2 * pad - j];
        row[pad + w + j] = row[pad + w - 2 - j];
    }
}

void ps_reflect_pad_rows(const ps_tensor *x, int pad, ps_tensor *y, size_t pl, int oh0, int oh1)
{
    const int h = x->h, w = x->w, ho = y->h, wo = y->w;
    for (int oh = oh0; oh < oh1; oh++) {
        float *yr = y->data + (pl * ho + oh) * wo;
        memcpy(yr + pad, x->data + (pl * h + reflect_index(oh - pad, h)) * w, (size_t)w * sizeof(float));
        ps_reflect_pad_columns(yr, w, pad);
    }
}

void ps_reflect_pad_ref(const ps_tensor *x, int pad, ps_tensor *y)
{
    for (size_t pl = 0; pl < (size_t)x->n * x->c; pl++)
        ps_reflect_pad_rows(x, pad, y, pl, 0, y->h);
}

/* Input row i of plane pl interpolated along w, kept in slot i % 2: an output row's two input
 * rows are i and i + 1 (or i twice), so they never evict each other, and the next output row
 * mostly finds them there. */
static const float *up_row(const ps_tensor *x, size_t pl, int i, const ps_lin_tap *cols, int wo, float *slots,
                           int *held)
{
    float *t = slots + (size_t)(i % 2) * wo;
    if (held[i % 2] != i) {
        const float *xr = x->data + (pl * x->h + i) * x->w;
        for (int ow = 0; ow < wo; ow++)
            t[ow] = cols[ow].l0 * xr[cols[ow].i0] + cols[ow].l1 * xr[cols[ow].i1];
        held[i % 2] = i;
    }
    return t;
}

static void upsample2x_rows(const ps_tensor *x, ps_tensor *y, size_t pl, int oh0, int oh1, const ps_lin_tap *cols)
{
    /* Same arithmetic as PyTorch's l0h * (l0w * x00 + l1w * x01) + l1h * (l0w * x10 + l1w * x11). */
    const int wo = y->w;
    float slots[2 * wo]; /* at most 2 x 8192 values: model sides stop at 4096 */
    int held[2] = {-1, -1};
    for (int oh = oh0; oh < oh1; oh++) {
        const ps_lin_tap r = ps_lin_tap_at(oh, x->h, y->h);
        const float *t0 = up_row(x, pl, r.i0, cols, wo, slots, held), *t1 = up_row(x, pl, r.i1, cols, wo, slots, held);
        float *yr = y->data + (pl * y->h + oh) * wo;
        for (int ow = 0; ow < wo; ow++)
            yr[ow] = r.l0 * t0[ow] + r.l1 * t1[ow];
    }
}

void ps_upsample2x_ref(const ps_tensor *x, ps_tensor *y)
{
    ps_lin_tap *cols = malloc((size_t)y->w * sizeof *cols);
    if (!cols)
        abort();
    ps_lin_taps(cols, x->w, y->w);
    for (size_t pl = 0; pl < (size_t)x->n * x->c; pl++)
        upsample2x_rows(x, y, pl, 0, y->h, cols);
    free(cols);
}

/* ---- broadcasting element-wise ops ---- */

/* Offset of row (n, c, h) of a tensor broadcast to the output's shape. */
static size_t bcast_row(const ps_tensor *t, int n, int c, int h)
{
    return (((size_t)(t->n == 1 ? 0 : n) * t->c + (t->c == 1 ? 0 : c)) * t->h +
            (t->h == 1 ? 0 : h)) * t->w;
}

/* Row kernels for y = a OP b where a or b may be a single value repeated along the row. */
#define BCAST_ROW_FN(name, OP)                                                       \
    static void name(float *restrict y, const float *a, int a_full, const float *b,  \
                     int b_full, int w)                                              \
    {                                                                                \
        if (a_full && b_full) {                                                      \
            for (int i = 0; i < w; i++)                                              \
                y[i] = a[i] OP b[i];                                                 \
        } else if (a_full) {                                                         \
            const float bv = b[0];                                                   \
            for (int i = 0; i < w; i++)                                              \
                y[i] = a[i] OP bv;                                                   \
        } else { /* only one operand can be repeated along a row of length > 1 */    \
            const float av = a[0];                                                   \
            for (int i = 0; i < w; i++)                                              \
                y[i] = av OP b[i];                                                   \
        }                                                                            \
    }
BCAST_ROW_FN(add_row, +)
BCAST_ROW_FN(mul_row, *)

typedef void (*bcast_row_fn)(float *restrict, const float *, int, const float *, int, int);

/* Applies a row kernel to every output row (one indirect call per row, not per value). */
static void bcast_apply(const ps_tensor *a, const ps_tensor *b, ps_tensor *y, bcast_row_fn fn)
{
    const int a_full = a->w == y->w, b_full = b->w == y->w;
    for (int n = 0; n < y->n; n++)
        for (int c = 0; c < y->c; c++)
            for (int h = 0; h < y->h; h++)
                fn(y->data + (((size_t)n * y->c + c) * y->h + h) * y->w,
                   a->data + bcast_row(a, n, c, h), a_full, b->data + bcast_row(b, n, c, h),
                   b_full, y->w);
}

void ps_add_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y)
{
    bcast_apply(a, b, y, add_row);
}

void ps_mul_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y)
{
    bcast_apply(a, b, y, mul_row);
}

/* ---- channel concat / slice ---- */

void ps_concat_channels_ref(const ps_tensor *const *xs, int n_x, ps_tensor *y)
{
    const size_t plane = (size_t)y->h * y->w;
    for (int n = 0; n < y->n; n++) {
        float *dst = y->data + (size_t)n * y->c * plane;
        for (int i = 0; i < n_x; i++) {
            const size_t len = (size_t)xs[i]->c * plane;
            memcpy(dst, xs[i]->data + n * len, len * sizeof(float));
            dst += len;
        }
    }
}

void ps_slice_channels_ref(const ps_tensor *x, int c0, ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w, len = (size_t)y->c * plane;
    for (int n = 0; n < y->n; n++)
        memcpy(y->data + n * len, x->data + ((size_t)n * x->c + c0) * plane, len * sizeof(float));
}
