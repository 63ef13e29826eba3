/* Vector-Jacobian products of the reference ops (contract in backward_ops.h): every function
 * adds into the non-NULL grad buffers of its inputs, reading the upstream gradient y->grad.
 * Statistics are recomputed exactly as the forward computes them. */
#include "backward_ops.h"
#include "../lib/kernel_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers (the ones shared with the forward are in kernel_util.h) ---- */

/* sum(dy * (x - mean)) in double. */
static double dot_dev_d(const float *dy, const float *x, size_t n, float mean)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += (double)dy[i + k] * (x[i + k] - mean);
    for (; i < n; i++)
        s[0] += (double)dy[i] * (x[i] - mean);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* g += a * x over n values. */
static void axpy(float *restrict g, const float *restrict x, size_t n, float a)
{
    for (size_t i = 0; i < n; i++)
        g[i] += a * x[i];
}

/* ---- convolution ---- */

/* Backward of one kernel tap over a plane (forward: y[o] += wv * x[o * stride + off]):
 * gx[o * stride + off] += wv * dy[o] when gx is non-NULL, and *gw += sum(dy[o] * x[o*stride+off])
 * when gw is non-NULL. */
static void conv_tap_backward(float *restrict gx, float *gw, const float *restrict x,
                              const float *restrict dy, float wv, const conv_geom *g, int off_h,
                              int off_w)
{
    const int s = g->stride;
    if (s == 1 && off_h == 0 && off_w == 0 && g->h == g->ho && g->w == g->wo) {
        const size_t n = (size_t)g->h * g->w;
        if (gx)
            axpy(gx, dy, n, wv);
        if (gw)
            *gw += dot_f(dy, x, n);
        return;
    }
    int oh0, oh1, ow0, ow1;
    tap_range(g->ho, g->h, s, off_h, &oh0, &oh1);
    tap_range(g->wo, g->w, s, off_w, &ow0, &ow1);
    double acc = 0;
    for (int oh = oh0; oh < oh1; oh++) {
        const float *dyr = dy + (size_t)oh * g->wo;
        const size_t xrow = (size_t)(oh * s + off_h) * g->w;
        if (gx) {
            float *gxr = gx + xrow;
            if (s == 1)
                for (int ow = ow0; ow < ow1; ow++)
                    gxr[ow + off_w] += wv * dyr[ow];
            else
                for (int ow = ow0; ow < ow1; ow++)
                    gxr[ow * s + off_w] += wv * dyr[ow];
        }
        if (gw) {
            const float *xr = x + xrow;
            if (s == 1) {
                acc += dot_f(dyr + ow0, xr + ow0 + off_w, (size_t)(ow1 - ow0));
            } else {
                float t = 0;
                for (int ow = ow0; ow < ow1; ow++)
                    t += dyr[ow] * xr[ow * s + off_w];
                acc += t;
            }
        }
    }
    if (gw)
        *gw += (float)acc;
}

void ps_conv_bias_backward(ps_tensor *b, const ps_tensor *y)
{
    const size_t yplane = (size_t)y->h * y->w;
    for (int n = 0; n < y->n; n++)
        for (int oc = 0; oc < y->c; oc++)
            b->grad[oc] += (float)sum_d(y->grad + ((size_t)n * y->c + oc) * yplane, yplane);
}

void ps_conv2d_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                        const ps_conv2d_params *p, const ps_tensor *y)
{
    const conv_geom g = {x->h, x->w, y->h, y->w, p->stride};
    const int cin_g = x->c / p->groups, cout_g = y->c / p->groups;
    const int kh = w->h, kw = w->w, d = p->dilation;
    const size_t xplane = (size_t)x->h * x->w, yplane = (size_t)y->h * y->w;
    if (b && b->grad)
        ps_conv_bias_backward(b, y);
    if (!x->grad && !w->grad)
        return;
    /* Input channel outer: its x and gx planes stay in cache while the dy planes stream by
     * (the forward's pattern, transposed). */
    for (int n = 0; n < x->n; n++)
        for (int ic = 0; ic < x->c; ic++) {
            const size_t xoff = ((size_t)n * x->c + ic) * xplane;
            float *gx = x->grad ? x->grad + xoff : NULL;
            const int grp = ic / cin_g, icg = ic % cin_g;
            for (int oc = grp * cout_g; oc < (grp + 1) * cout_g; oc++) {
                const float *dy = y->grad + ((size_t)n * y->c + oc) * yplane;
                const size_t woff = ((size_t)oc * cin_g + icg) * kh * kw;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        const size_t k = woff + (size_t)ky * kw + kx;
                        conv_tap_backward(gx, w->grad ? w->grad + k : NULL, x->data + xoff, dy,
                                          w->data[k], &g, ky * d - p->pad_h, kx * d - p->pad_w);
                    }
            }
        }
}

void ps_conv1d_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                        int stride, int pad, int dilation, int groups, const ps_tensor *y)
{
    const ps_conv2d_params p = {stride, 0, pad, dilation, groups};
    ps_conv2d_backward(x, w, b, &p, y);
}

void ps_linear_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b, const ps_tensor *y)
{
    const size_t k = (size_t)x->c * x->h * x->w;
    const int out = w->n;
    for (int n = 0; n < x->n; n++)
        for (int o = 0; o < out; o++) {
            const float dy = y->grad[(size_t)n * out + o];
            if (x->grad)
                axpy(x->grad + n * k, w->data + o * k, k, dy);
            if (w->grad)
                axpy(w->grad + o * k, x->data + n * k, k, dy);
            if (b && b->grad)
                b->grad[o] += dy;
        }
}

/* ---- normalisation ---- */

/* The reference's sums: sum dy and sum dy (x - mean), in double. */
static void sums_d(const float *dy, const float *x, size_t n, float mean, double *sdy, double *sdyx)
{
    *sdy = sum_d(dy, n);
    *sdyx = dot_dev_d(dy, x, n, mean);
}

void ps_batchnorm_train_backward(const ps_tensor *x, const ps_tensor *gamma, ps_tensor *beta,
                                 const float *save_mean, const float *save_invstd,
                                 const ps_tensor *y)
{
    ps_batchnorm_train_backward_with(sums_d, x, gamma, beta, save_mean, save_invstd, y);
}

void ps_batchnorm_train_backward_with(ps_plane_sums_fn sums, const ps_tensor *x, const ps_tensor *gamma,
                                      const ps_tensor *beta, const float *save_mean, const float *save_invstd,
                                      const ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w, m = plane * x->n;
    for (int c = 0; c < x->c; c++) {
        const float mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0, sdyx = 0; /* sum(dy), sum(dy * (x - mean)) */
        for (int n = 0; n < x->n; n++) {
            const size_t off = ((size_t)n * x->c + c) * plane;
            double a, b;
            sums(y->grad + off, x->data + off, plane, mean, &a, &b);
            sdy += a;
            sdyx += b;
        }
        if (gamma->grad)
            gamma->grad[c] += (float)(sdyx * invstd);
        if (beta && beta->grad)
            beta->grad[c] += (float)sdy;
        if (!x->grad)
            continue;
        /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
        const float k = gamma->data[c] * invstd;
        const float mdy = (float)(sdy / m);
        const float cx = (float)(sdyx / m) * invstd * invstd;
        for (int n = 0; n < x->n; n++) {
            const size_t off = ((size_t)n * x->c + c) * plane;
            const float *restrict dy = y->grad + off, *restrict xv = x->data + off;
            float *restrict gx = x->grad + off;
            for (size_t i = 0; i < plane; i++)
                gx[i] += k * (dy[i] - mdy - (xv[i] - mean) * cx);
        }
    }
}

void ps_groupnorm_backward(const ps_tensor *x, int groups, const ps_tensor *gamma,
                           ps_tensor *beta, float eps, const ps_tensor *y)
{
    const int cpg = x->c / groups;
    const size_t plane = (size_t)x->h * x->w, m = plane * cpg;
    for (int n = 0; n < x->n; n++)
        for (int g = 0; g < groups; g++) {
            const size_t base = ((size_t)n * x->c + (size_t)g * cpg) * plane;
            const double mean_d = sum_d(x->data + base, m) / m;
            const double var = sum_sqdev_d(x->data + base, m, mean_d) / m;
            const float invstd = (float)(1.0 / sqrt(var + eps));
            const float mean = (float)mean_d;
            /* With dxhat = dy * gamma: a = sum(dxhat), bsum = sum(dxhat * (x - mean)). */
            double a = 0, bsum = 0;
            for (int cg = 0; cg < cpg; cg++) {
                const int c = g * cpg + cg;
                const size_t off = base + cg * plane;
                const double sdy = sum_d(y->grad + off, plane);
                const double sdyx = dot_dev_d(y->grad + off, x->data + off, plane, mean);
                if (gamma && gamma->grad)
                    gamma->grad[c] += (float)(sdyx * invstd);
                if (beta && beta->grad)
                    beta->grad[c] += (float)sdy;
                const double gc = gamma ? gamma->data[c] : 1.0;
                a += gc * sdy;
                bsum += gc * sdyx;
            }
            if (!x->grad)
                continue;
            /* dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
            const float ma = (float)(a / m) * invstd;
            const float cx = (float)(bsum / m) * invstd * invstd * invstd;
            for (int cg = 0; cg < cpg; cg++) {
                const int c = g * cpg + cg;
                const size_t off = base + cg * plane;
                const float k = (gamma ? gamma->data[c] : 1.f) * invstd;
                const float *dy = y->grad + off, *xv = x->data + off;
                float *gx = x->grad + off;
                for (size_t i = 0; i < plane; i++)
                    gx[i] += k * dy[i] - ma - (xv[i] - mean) * cx;
            }
        }
}

/* ---- element-wise activations ---- */

void ps_relu_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const size_t n = ps_numel(x);
    for (size_t i = 0; i < n; i++)
        x->grad[i] += x->data[i] > 0.f ? y->grad[i] : 0.f;
}

void ps_gelu_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    /* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
    const float inv_sqrt_2pi = 0.3989422804014327f;
    const size_t n = ps_numel(x);
    for (size_t i = 0; i < n; i++) {
        const float v = x->data[i];
        const float cdf = 0.5f * (1.f + erff(v * (float)M_SQRT1_2));
        const float pdf = inv_sqrt_2pi * expf(-0.5f * v * v);
        x->grad[i] += y->grad[i] * (cdf + v * pdf);
    }
}

void ps_sigmoid_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const size_t n = ps_numel(x);
    for (size_t i = 0; i < n; i++) {
        const float s = y->data[i];
        x->grad[i] += y->grad[i] * s * (1.f - s);
    }
}

/* ---- normalised exponentials ---- */

void ps_softmax_spatial_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    /* dx = s * (dy - sum(dy * s)) over each plane. */
    const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *s = y->data + pl * plane, *dy = y->grad + pl * plane;
        float *gx = x->grad + pl * plane;
        const float dot = dot_f(dy, s, plane);
        for (size_t i = 0; i < plane; i++)
            gx[i] += s[i] * (dy[i] - dot);
    }
}

void ps_channel_normalize_backward(const ps_tensor *x, float eps, const ps_tensor *y)
{
    if (!x->grad)
        return;
    /* With y_c = x_c / D and D = eps + sum_c x_c: dx_c = (dy_c - sum_c(dy_c * y_c)) / D. */
    const size_t plane = (size_t)x->h * x->w;
    float *den = malloc(2 * plane * sizeof(float));
    if (!den)
        abort();
    float *dot = den + plane;
    for (int n = 0; n < x->n; n++) {
        const size_t base = (size_t)n * x->c * plane;
        channel_sum_eps(x->data + base, x->c, plane, eps, den);
        memset(dot, 0, plane * sizeof(float));
        for (int c = 0; c < x->c; c++) {
            const float *dy = y->grad + base + c * plane, *yc = y->data + base + c * plane;
            for (size_t i = 0; i < plane; i++)
                dot[i] += dy[i] * yc[i];
        }
        for (int c = 0; c < x->c; c++) {
            const float *dy = y->grad + base + c * plane;
            float *gx = x->grad + base + c * plane;
            for (size_t i = 0; i < plane; i++)
                gx[i] += (dy[i] - dot[i]) / den[i];
        }
    }
    free(den);
}

/* ---- pooling and resampling ---- */

void ps_maxpool2x2_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const int w = x->w, ho = y->h, wo = y->w;
    const size_t planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const size_t xbase = pl * x->h * w;
        for (int oh = 0; oh < ho; oh++) {
            const size_t r0 = xbase + (size_t)2 * oh * w;
            const float *dy = y->grad + (pl * ho + oh) * wo;
            for (int ow = 0; ow < wo; ow++) {
                /* Window positions in the forward's visiting order; strict '>' keeps the first. */
                const size_t cand[4] = {r0 + 2 * ow, r0 + 2 * ow + 1, r0 + w + 2 * ow,
                                        r0 + w + 2 * ow + 1};
                size_t best = cand[0];
                for (int k = 1; k < 4; k++)
                    if (x->data[cand[k]] > x->data[best])
                        best = cand[k];
                x->grad[best] += dy[ow];
            }
        }
    }
}

void ps_global_avgpool_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float g = y->grad[pl] / plane;
        float *gx = x->grad + pl * plane;
        for (size_t i = 0; i < plane; i++)
            gx[i] += g;
    }
}

void ps_channel_mean_max_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const size_t plane = (size_t)x->h * x->w;
    const float inv_c = 1.f / x->c;
    /* Per pixel: the channel maximum and the maximum's gradient share, which is split evenly
     * between tied channels like torch.amax (ties are common after a ReLU). */
    float *max = malloc(2 * plane * sizeof(float));
    if (!max)
        abort();
    float *share = max + plane;
    for (int n = 0; n < x->n; n++) {
        const float *xn = x->data + (size_t)n * x->c * plane;
        float *gn = x->grad + (size_t)n * x->c * plane;
        const float *dmean = y->grad + (size_t)n * 2 * plane, *dmax = dmean + plane;
        for (size_t i = 0; i < plane; i++) {
            max[i] = xn[i];
            share[i] = 1.f;
        }
        for (int c = 1; c < x->c; c++) {
            const float *restrict xc = xn + c * plane;
            float *restrict mx = max, *restrict sh = share;
            for (size_t i = 0; i < plane; i++) { /* selects, not branches: ties are frequent */
                const float v = xc[i], m = mx[i];
                sh[i] = v > m ? 1.f : v == m ? sh[i] + 1.f : sh[i];
                mx[i] = v > m ? v : m;
            }
        }
        for (size_t i = 0; i < plane; i++)
            share[i] = dmax[i] / share[i];
        for (int c = 0; c < x->c; c++) {
            const float *xc = xn + c * plane;
            float *gc = gn + c * plane;
            for (size_t i = 0; i < plane; i++)
                gc[i] += dmean[i] * inv_c + (xc[i] == max[i] ? share[i] : 0.f);
        }
    }
    free(max);
}

void ps_reflect_pad_backward(const ps_tensor *x, int pad, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const int h = x->h, w = x->w, ho = y->h, wo = y->w;
    const size_t planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++)
        for (int oh = 0; oh < ho; oh++) {
            float *gx = x->grad + (pl * h + reflect_index(oh - pad, h)) * w;
            const float *dy = y->grad + (pl * ho + oh) * wo;
            for (int j = 0; j < pad; j++) {
                gx[pad - j] += dy[j];
                gx[w - 2 - j] += dy[pad + w + j];
            }
            for (int j = 0; j < w; j++)
                gx[j] += dy[pad + j];
        }
}

void ps_upsample2x_backward(const ps_tensor *x, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const int h = x->h, w = x->w, ho = y->h, wo = y->w;
    /* Transpose of the forward's two passes: scatter each dy row into two width-wo rows
     * (contiguous), then each of those rows into its input row along w. */
    ps_lin_tap *cols = malloc((size_t)wo * sizeof *cols);
    float *rows = malloc((size_t)h * wo * sizeof *rows);
    if (!cols || !rows)
        abort();
    ps_lin_taps(cols, w, wo);
    const size_t planes = (size_t)x->n * x->c;
    for (size_t pl = 0; pl < planes; pl++) {
        memset(rows, 0, (size_t)h * wo * sizeof *rows);
        for (int oh = 0; oh < ho; oh++) {
            const ps_lin_tap r = ps_lin_tap_at(oh, h, ho);
            const float *dy = y->grad + (pl * ho + oh) * wo;
            float *t0 = rows + (size_t)r.i0 * wo, *t1 = rows + (size_t)r.i1 * wo;
            for (int ow = 0; ow < wo; ow++)
                t0[ow] += r.l0 * dy[ow];
            for (int ow = 0; ow < wo; ow++)
                t1[ow] += r.l1 * dy[ow];
        }
        for (int i = 0; i < h; i++) {
            const float *t = rows + (size_t)i * wo;
            float *gx = x->grad + (pl * h + i) * w;
            for (int ow = 0; ow < wo; ow++) {
                gx[cols[ow].i0] += cols[ow].l0 * t[ow];
                gx[cols[ow].i1] += cols[ow].l1 * t[ow];
            }
        }
    }
    free(rows);
    free(cols);
}

/* ---- broadcasting element-wise ops ---- */

static size_t bcast_row(const ps_tensor *t, int n, int c, int h)
{
    return (((size_t)(t->n == 1 ? 0 : n) * t->c + (t->c == 1 ? 0 : c)) * t->h +
            (t->h == 1 ? 0 : h)) * t->w;
}

/* One output row's contribution to an operand's gradient: g[i] += dy[i] * o[i], where the
 * other operand o may be NULL (add: factor 1) or a value repeated along the row, and g may be
 * a single value the row reduces into. */
static void bcast_grad_row(float *restrict g, int g_full, const float *restrict dy,
                           const float *o, int o_full, int w)
{
    if (g_full) {
        if (!o)
            for (int i = 0; i < w; i++)
                g[i] += dy[i];
        else if (o_full)
            for (int i = 0; i < w; i++)
                g[i] += dy[i] * o[i];
        else
            axpy(g, dy, (size_t)w, o[0]);
    } else { /* a row of length > 1 cannot repeat both operands, so o is full here */
        g[0] += o ? dot_f(dy, o, (size_t)w) : (float)sum_d(dy, (size_t)w);
    }
}

/* Gradient of operand t in y = t OP other (other == NULL for add). */
static void bcast_backward(const ps_tensor *t, const ps_tensor *other, const ps_tensor *y)
{
    if (!t->grad)
        return;
    const int t_full = t->w == y->w, o_full = other && other->w == y->w;
    for (int n = 0; n < y->n; n++)
        for (int c = 0; c < y->c; c++)
            for (int h = 0; h < y->h; h++)
                bcast_grad_row(t->grad + bcast_row(t, n, c, h), t_full,
                               y->grad + (((size_t)n * y->c + c) * y->h + h) * y->w,
                               other ? other->data + bcast_row(other, n, c, h) : NULL, o_full,
                               y->w);
}

void ps_add_backward(const ps_tensor *a, const ps_tensor *b, const ps_tensor *y)
{
    bcast_backward(a, NULL, y);
    bcast_backward(b, NULL, y);
}

void ps_mul_backward(const ps_tensor *a, const ps_tensor *b, const ps_tensor *y)
{
    bcast_backward(a, b, y);
    bcast_backward(b, a, y);
}

/* ---- channel concat / slice ---- */

void ps_concat_channels_backward(ps_tensor *const *xs, int n_x, const ps_tensor *y)
{
    const size_t plane = (size_t)y->h * y->w;
    for (int n = 0; n < y->n; n++) {
        const float *dy = y->grad + (size_t)n * y->c * plane;
        for (int i = 0; i < n_x; i++) {
            const size_t len = (size_t)xs[i]->c * plane;
            if (xs[i]->grad)
                axpy(xs[i]->grad + n * len, dy, len, 1.f);
            dy += len;
        }
    }
}

void ps_slice_channels_backward(const ps_tensor *x, int c0, const ps_tensor *y)
{
    if (!x->grad)
        return;
    const size_t plane = (size_t)x->h * x->w, len = (size_t)y->c * plane;
    for (int n = 0; n < y->n; n++)
        axpy(x->grad + ((size_t)n * x->c + c0) * plane, y->grad + n * len, len, 1.f);
}
