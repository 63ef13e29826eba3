#include "loss.h"
#include <glib.h>
#include <math.h>
#include <stdlib.h>

/* softplus(z) = log(1 + e^z) and sigmoid(z) from e = e^-|z|, so one exponential serves both
 * and neither overflows. */
static inline double softplus_of(double z, double e)
{
    return fmax(z, 0.0) + log1p(e);
}

static inline double sigmoid_of(double z, double e)
{
    return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

static double softplus(double z)
{
    return softplus_of(z, exp(-fabs(z)));
}

static double weight_sum(const float *pw, size_t n) /* NULL: every pixel weighs 1 */
{
    if (!pw)
        return (double)n;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += pw[i];
    return sum;
}

double ps_loss_bce_logits(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float weight)
{
    const size_t n = ps_numel(logits);
    const float *pw = pixel_weight ? pixel_weight->data : NULL;
    const double wsum = weight_sum(pw, n);
    double sum = 0, scale = weight / wsum;
    for (size_t i = 0; i < n; i++) {
        double z = logits->data[i], t = target->data[i], e = exp(-fabs(z)), w = pw ? pw[i] : 1.0;
        sum += w * (softplus_of(z, e) - z * t); /* -t log p - (1 - t) log(1 - p), p = sigmoid(z) */
        logits->grad[i] += (float)(w * (sigmoid_of(z, e) - t) * scale);
    }
    return sum / wsum;
}

double ps_loss_focal_logits(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float gamma,
                            float weight)
{
    const size_t n = ps_numel(logits);
    const float *pw = pixel_weight ? pixel_weight->data : NULL;
    const double wsum = weight_sum(pw, n);
    double sum = 0, scale = weight / wsum;
    for (size_t i = 0; i < n; i++) {
        /* in terms of the right class's logit zt: pt = sigmoid(zt), log pt = -softplus(-zt) */
        const double sign = target->data[i] >= 0.5f ? 1.0 : -1.0, zt = sign * logits->data[i];
        const double e = exp(-fabs(zt)), pt = sigmoid_of(zt, e), log_pt = -softplus_of(-zt, e);
        const double miss = sigmoid_of(-zt, e); /* 1 - pt without the cancellation */
        const double w = pw ? pw[i] : 1.0, focus = gamma == 2 ? miss * miss : pow(miss, gamma); /* 2: the usual, pow's cost spared */
        sum += w * -focus * log_pt;
        /* d/dzt [-(1 - pt)^g log pt] = (1 - pt)^g (g pt log pt - (1 - pt)); pt log pt -> 0 as pt -> 0
         * (an infinite logit on the wrong side would make it 0 x -inf) */
        const double pt_log_pt = pt > 0 ? pt * log_pt : 0;
        logits->grad[i] += (float)(w * sign * focus * (gamma * pt_log_pt - miss) * scale);
    }
    return sum / wsum;
}

double ps_loss_tversky(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float fn_weight,
                       float weight)
{
    size_t per = (size_t)logits->c * logits->h * logits->w;
    const double a = 1.0 - fn_weight, b = fn_weight; /* false positives' and false negatives' weights */
    double total = 0, *p = g_new(double, per); /* one image's probabilities, for both passes */
    for (int n = 0; n < logits->n; n++) {
        const float *z = logits->data + n * per, *t = target->data + n * per;
        const float *pw = pixel_weight ? pixel_weight->data + n * per : NULL;
        float *gz = logits->grad + n * per;
        double inter = 0, sp = 0, st = 0; /* soft counts, each pixel counted w times */
        for (size_t i = 0; i < per; i++) {
            const double w = pw ? pw[i] : 1.0;
            p[i] = sigmoid_of(z[i], exp(-fabs((double)z[i])));
            inter += w * p[i] * t[i];
            sp += w * p[i];
            st += w * t[i];
        }
        double num = 2 * inter + 1, den = 2 * (a * sp + b * st) + 1;
        total += 1 - num / den;
        double k = weight / (double)logits->n / (den * den);
        for (size_t i = 0; i < per; i++) /* d(1 - num/den)/dp = -w (2 t den - 2 a num) / den^2 */
            gz[i] += (float)(-(pw ? pw[i] : 1.0) * (2 * t[i] * den - 2 * a * num) * k * p[i] * (1 - p[i]));
    }
    g_free(p);
    return total / logits->n;
}

double ps_loss_dice(ps_tensor *logits, const ps_tensor *target, float weight)
{
    return ps_loss_tversky(logits, target, NULL, 0.5f, weight);
}

typedef struct {
    double err;
    int polyp;
    size_t at;
} hinge_error;

static int by_error_descending(const void *a, const void *b)
{
    const hinge_error *x = a, *y = b;
    if (x->err != y->err)
        return x->err < y->err ? 1 : -1;
    return (x->at > y->at) - (x->at < y->at); /* ties in pixel order, so runs repeat exactly */
}

double ps_loss_lovasz_hinge(ps_tensor *logits, const ps_tensor *target, float weight)
{
    const size_t per = (size_t)logits->c * logits->h * logits->w;
    hinge_error *e = g_new(hinge_error, per);
    double total = 0;
    for (int n = 0; n < logits->n; n++) {
        const float *z = logits->data + n * per, *t = target->data + n * per;
        float *gz = logits->grad + n * per;
        double polyp_pixels = 0;
        size_t positive = 0; /* only errors > 0 count, and after training most are not: sort just those */
        for (size_t i = 0; i < per; i++) {
            const int polyp = t[i] >= 0.5f;
            const double err = 1.0 - z[i] * (polyp ? 1.0 : -1.0);
            polyp_pixels += polyp;
            if (err > 0)
                e[positive++] = (hinge_error){err, polyp, i};
        }
        qsort(e, positive, sizeof *e, by_error_descending);
        /* Jaccard loss of the top-k errors taken as the wrong pixels, J_k = 1 - (P - fn_k) / (P + fp_k);
         * each error's weight is J_k - J_{k-1}. The hinge is zero from the first error <= 0 on. */
        double fn = 0, fp = 0, previous = 0;
        for (size_t k = 0; k < positive; k++) {
            fn += e[k].polyp, fp += !e[k].polyp;
            const double jaccard = 1.0 - (polyp_pixels - fn) / (polyp_pixels + fp), g = jaccard - previous;
            previous = jaccard;
            total += e[k].err * g;
            gz[e[k].at] += (float)(-(e[k].polyp ? 1.0 : -1.0) * g * weight / logits->n);
        }
    }
    g_free(e);
    return total / logits->n;
}

void ps_structure_weights(const ps_tensor *target, int radius, float gain, ps_tensor *out)
{
    const int H = target->h, W = target->w;
    double *sat = g_new0(double, (size_t)(H + 1) * (W + 1)); /* summed-area table, row and column 0 zero */
    for (int n = 0; n < target->n; n++) {
        const float *t = target->data + (size_t)n * H * W;
        float *o = out->data + (size_t)n * H * W;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                sat[(size_t)(y + 1) * (W + 1) + x + 1] = t[y * W + x] + sat[(size_t)y * (W + 1) + x + 1] +
                                                         sat[(size_t)(y + 1) * (W + 1) + x] - sat[(size_t)y * (W + 1) + x];
        for (int y = 0; y < H; y++) {
            const int y0 = MAX(0, y - radius), y1 = MIN(H, y + radius + 1);
            for (int x = 0; x < W; x++) {
                const int x0 = MAX(0, x - radius), x1 = MIN(W, x + radius + 1);
                const double sum = sat[(size_t)y1 * (W + 1) + x1] - sat[(size_t)y0 * (W + 1) + x1] -
                                   sat[(size_t)y1 * (W + 1) + x0] + sat[(size_t)y0 * (W + 1) + x0];
                const double mean = sum / ((double)(y1 - y0) * (x1 - x0)); /* over the window inside the image */
                o[y * W + x] = (float)(1.0 + gain * fabs(mean - t[y * W + x]));
            }
        }
    }
    g_free(sat);
}

double ps_loss_kd_binary(ps_tensor *student, const ps_tensor *teacher, const ps_tensor *pixel_weight,
                         float temperature, float weight)
{
    const size_t n = ps_numel(student);
    const double T = temperature;
    double wsum = 0;
    for (size_t i = 0; i < n; i++)
        wsum += pixel_weight ? pixel_weight->data[i] : 1.0;
    if (!(wsum > 0))
        return 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const double w = pixel_weight ? pixel_weight->data[i] : 1.0;
        if (w == 0)
            continue;
        const double a = teacher->data[i] / T, b = student->data[i] / T;
        const double pt = 1.0 / (1.0 + exp(-a)), ps = 1.0 / (1.0 + exp(-b));
        /* log p = -softplus(-z), log(1 - p) = -softplus(z) */
        const double kl = pt * (softplus(-b) - softplus(-a)) + (1 - pt) * (softplus(b) - softplus(a));
        sum += w * kl;
        student->grad[i] += (float)(weight * T * w * (ps - pt) / wsum); /* T^2 * d/dz of KL(z/T) */
    }
    return T * T * sum / wsum;
}

double ps_loss_mse(ps_tensor *pred, const ps_tensor *target, float weight)
{
    const size_t n = ps_numel(pred);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)pred->data[i] - target->data[i];
        sum += d * d;
        pred->grad[i] += (float)(weight * 2.0 * d / n);
    }
    return sum / n;
}

void ps_kd_pixel_weights(const ps_tensor *target, const ps_tensor *teacher, int radius, float boundary_gain,
                         float confidence_gain, ps_tensor *out)
{
    const int H = target->h, W = target->w;
    for (int n = 0; n < target->n; n++) {
        const float *t = target->data + (size_t)n * H * W, *z = teacher->data + (size_t)n * H * W;
        float *o = out->data + (size_t)n * H * W;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                /* boundary band: some pixel of the (2r+1)^2 window differs from this one */
                const int self = t[y * W + x] >= 0.5f;
                int edge = 0;
                for (int yy = MAX(0, y - radius); yy <= MIN(H - 1, y + radius) && !edge; yy++)
                    for (int xx = MAX(0, x - radius); xx <= MIN(W - 1, x + radius); xx++)
                        if ((t[yy * W + xx] >= 0.5f) != self) {
                            edge = 1;
                            break;
                        }
                const double p = 1.0 / (1.0 + exp(-(double)z[y * W + x]));
                o[y * W + x] = (float)(1.0 + boundary_gain * edge + confidence_gain * fabs(2 * p - 1));
            }
    }
}
