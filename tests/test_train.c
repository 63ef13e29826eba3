/* Training: whole-model gradients against PyTorch, loss, AdamW, schedule, and the trainer
 * binary's checkpoint / resume / interruption behaviour. */
#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-glib/json-glib.h>
#include "backward.h"
#include "checkpoint.h"
#include "deep_supervision.h"
#include "distill.h"
#include "ema.h"
#include "image.h"
#include "loss.h"
#include "optim.h"
#include "test_util.h"

/* Long enough (3 steps an epoch) that signals land mid-run. */
#define TRAIN_EPOCHS 40

/* One training-mode forward + BCE/Dice loss + backward on a PyTorch fixture (name). */
static void test_model_gradients(gconstpointer data)
{
    char *rel = g_strdup_printf("models/%s.safetensors", (const char *)data);
    ps_st_file *f = tu_load_fixture(rel);
    g_free(rel);
    ps_model *m = tu_model_from_fixture(f);
    ps_tensor *x = tu_tensor_from(f, "input"), *t = tu_tensor_from(f, "target");
    ps_tensor *want = tu_tensor_from(f, "output");
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    ps_model_zero_grad(m);
    ps_tensor *y = ps_model_forward(m, &g, x, NULL);
    tu_assert_close("train-mode output", y->data, want->data, ps_numel(y), 1e-4);
    y->grad = ps_arena_calloc(arena, ps_numel(y) * sizeof(float));
    double loss = ps_loss_bce_logits(y, t, NULL, 1.0f) + ps_loss_dice(y, t, 1.0f);
    float want_loss = ps_st_find(f, "loss")->data[0];
    g_test_message("loss %.6f, torch %.6f", loss, want_loss);
    g_assert_cmpfloat_with_epsilon(loss, want_loss, 1e-4);
    ps_backward(&g, y);
    /* Gradients are compared relative to their own scale, floored at 1% of the largest
     * gradient in the model: a few (enc2's single-channel GroupNorms cancel them) are ~1e-8,
     * pure float noise in both implementations. */
    double global = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (g_str_has_prefix(f->tensors[i].name, "grad."))
            for (size_t k = 0; k < f->tensors[i].numel; k++)
                global = fmax(global, fabs(f->tensors[i].data[k]));
    int checked = 0;
    for (int i = 0; i < m->n_params; i++) {
        ps_param *p = &m->params[i];
        char *name = g_strconcat(p->trainable ? "grad." : "after.", p->name, NULL);
        const ps_st_tensor *ref = ps_st_find(f, name);
        if (!ref)
            g_error("fixture lacks %s", name);
        const float *got = p->trainable ? p->t->grad : p->t->data;
        double maxdiff = 0, scale = p->trainable ? 1e-2 * global : 1e-6;
        for (size_t k = 0; k < ref->numel; k++) {
            maxdiff = fmax(maxdiff, fabs((double)got[k] - ref->data[k]));
            scale = fmax(scale, fabs(ref->data[k]));
        }
        g_test_message("%s: relative max error %.3g", name, maxdiff / scale);
        if (!(maxdiff / scale <= 5e-4)) /* float32 sums through ~300 ops */
            g_test_fail_printf("%s: relative max error %.3g exceeds 5e-4", name, maxdiff / scale);
        checked++;
        g_free(name);
    }
    g_assert_cmpint(checked, ==, m->n_params);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(x);
    ps_tensor_free(t);
    ps_tensor_free(want);
    ps_model_free(m);
    ps_st_free(f);
}

/* Distillation KL: zero for identical logits, positive otherwise, equal to the direct formula
 * for moderate logits, finite for saturated ones, gradient = central differences (with and
 * without pixel weights, at two temperatures). */
static void test_kd_loss(void)
{
    GRand *r = g_rand_new_with_seed(6);
    ps_tensor *zs = ps_tensor_new(2, 1, 4, 5), *zt = ps_tensor_new(2, 1, 4, 5), *pw = ps_tensor_new(2, 1, 4, 5);
    const size_t n = ps_numel(zs);
    tu_fill_uniform(zs->data, n, r, -4, 4);
    tu_fill_uniform(zt->data, n, r, -4, 4);
    tu_fill_uniform(pw->data, n, r, 0, 2);
    pw->data[3] = 0;
    ps_tensor_ensure_grad(zs);
    const float temps[] = {1.0f, 4.0f};
    for (int k = 0; k < 2; k++)
        for (int weighted = 0; weighted < 2; weighted++) {
            const float T = temps[k];
            const ps_tensor *w = weighted ? pw : NULL;
            double direct = 0, wsum = 0;
            for (size_t i = 0; i < n; i++) {
                double pt = 1 / (1 + exp(-zt->data[i] / T)), ps = 1 / (1 + exp(-zs->data[i] / T));
                double wi = w ? w->data[i] : 1;
                direct += wi * (pt * log(pt / ps) + (1 - pt) * log((1 - pt) / (1 - ps)));
                wsum += wi;
            }
            memset(zs->grad, 0, n * sizeof(float));
            double value = ps_loss_kd_binary(zs, zt, w, T, 1.0f);
            g_assert_cmpfloat_with_epsilon(value, T * T * direct / wsum, 1e-9);
            g_assert_cmpfloat(value, >, 0);
            float *analytic = g_memdup2(zs->grad, n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                float keep = zs->data[i], h = 1e-2f;
                zs->data[i] = keep + h;
                double up = ps_loss_kd_binary(zs, zt, w, T, 1.0f);
                zs->data[i] = keep - h;
                double down = ps_loss_kd_binary(zs, zt, w, T, 1.0f);
                zs->data[i] = keep;
                double numeric = (up - down) / (2 * h);
                if (fabs(numeric - analytic[i]) > 1e-5 + 1e-3 * fabs(numeric))
                    g_test_fail_printf("kd T=%g weighted=%d grad[%zu]: analytic %g numeric %g", T, weighted, i,
                                       analytic[i], numeric);
            }
            g_free(analytic);
        }
    /* identical logits: zero loss and zero gradient */
    memset(zs->grad, 0, n * sizeof(float));
    g_assert_cmpfloat(fabs(ps_loss_kd_binary(zs, zs, NULL, 2.0f, 1.0f)), <, 1e-12);
    for (size_t i = 0; i < n; i++)
        g_assert_cmpfloat(fabs(zs->grad[i]), <, 1e-9);
    /* saturated logits stay finite */
    for (size_t i = 0; i < n; i++) {
        zs->data[i] = i % 2 ? 80.0f : -80.0f;
        zt->data[i] = i % 3 ? -90.0f : 90.0f;
    }
    memset(zs->grad, 0, n * sizeof(float));
    double big = ps_loss_kd_binary(zs, zt, NULL, 1.0f, 1.0f);
    g_assert_true(isfinite(big) && big > 0);
    for (size_t i = 0; i < n; i++)
        g_assert_true(isfinite(zs->grad[i]));
    ps_tensor_free(zs), ps_tensor_free(zt), ps_tensor_free(pw);
    g_rand_free(r);
}

/* Feature MSE: value and gradient; stage-2 weights: 1 inside and outside, + boundary gain in
 * the band of `radius` around the mask's edge, + confidence gain * |2p - 1|. */
static void test_mse_and_kd_weights(void)
{
    GRand *r = g_rand_new_with_seed(7);
    ps_tensor *a = ps_tensor_new(2, 3, 4, 5), *b = ps_tensor_new(2, 3, 4, 5);
    tu_fill_uniform(a->data, ps_numel(a), r, -2, 2);
    tu_fill_uniform(b->data, ps_numel(b), r, -2, 2);
    ps_tensor_ensure_grad(a);
    double want = 0;
    for (size_t i = 0; i < ps_numel(a); i++)
        want += ((double)a->data[i] - b->data[i]) * ((double)a->data[i] - b->data[i]);
    g_assert_cmpfloat_with_epsilon(ps_loss_mse(a, b, 1.0f), want / ps_numel(a), 1e-9);
    for (size_t i = 0; i < ps_numel(a); i++)
        g_assert_cmpfloat_with_epsilon(a->grad[i], 2.0 * (a->data[i] - b->data[i]) / ps_numel(a), 1e-7);

    /* a 12x12 mask with a 4x4 square at (4..7, 4..7); teacher logits 0 (p = 0.5) except one */
    ps_tensor *t = ps_tensor_new(1, 1, 12, 12), *z = ps_tensor_new(1, 1, 12, 12), *w = ps_tensor_new(1, 1, 12, 12);
    for (int y = 4; y < 8; y++)
        for (int x = 4; x < 8; x++)
            t->data[y * 12 + x] = 1;
    z->data[0] = 50; /* confident corner */
    ps_kd_pixel_weights(t, z, 1, 2.0f, 3.0f, w);
    g_assert_cmpfloat_with_epsilon(w->data[0], 1 + 3.0, 1e-5);            /* far from the edge, sure */
    g_assert_cmpfloat_with_epsilon(w->data[11 * 12 + 11], 1.0, 1e-6);     /* far, unsure */
    g_assert_cmpfloat_with_epsilon(w->data[4 * 12 + 4], 1 + 2.0, 1e-6);   /* inside corner: band */
    g_assert_cmpfloat_with_epsilon(w->data[3 * 12 + 5], 1 + 2.0, 1e-6);   /* just outside: band */
    g_assert_cmpfloat_with_epsilon(w->data[2 * 12 + 5], 1.0, 1e-6);       /* two rows out: not */
    g_assert_cmpfloat_with_epsilon(w->data[5 * 12 + 5], 1.0, 1e-6);       /* inside, its window all polyp */
    ps_tensor_free(a), ps_tensor_free(b), ps_tensor_free(t), ps_tensor_free(z), ps_tensor_free(w);
    g_rand_free(r);
}

static ps_tensor *grad_test_weights; /* pixel weights of the weighted losses' gradient check */

static double bce_plain(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_bce_logits(z, t, NULL, weight);
}

static double tversky_recall(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_tversky(z, t, NULL, 0.7f, weight);
}

static double bce_weighted(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_bce_logits(z, t, grad_test_weights, weight);
}

static double tversky_weighted(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_tversky(z, t, grad_test_weights, 0.7f, weight);
}

static double focal2(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_focal_logits(z, t, NULL, 2.0f, weight);
}

static double focal_half_weighted(ps_tensor *z, const ps_tensor *t, float weight)
{
    return ps_loss_focal_logits(z, t, grad_test_weights, 0.5f, weight);
}

/* Loss gradients against central differences. */
static void test_loss_gradients(void)
{
    GRand *r = g_rand_new_with_seed(5);
    ps_tensor *z = ps_tensor_new(2, 1, 4, 5), *t = ps_tensor_new(2, 1, 4, 5);
    tu_fill_uniform(z->data, ps_numel(z), r, -3, 3);
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = g_rand_boolean(r);
    grad_test_weights = ps_tensor_new(2, 1, 4, 5);
    tu_fill_uniform(grad_test_weights->data, ps_numel(z), r, 0.5, 6);
    static const struct {
        const char *name;
        double (*loss)(ps_tensor *, const ps_tensor *, float);
    } losses[] = {{"bce", bce_plain},
                   {"dice", ps_loss_dice},
                   {"tversky 0.7", tversky_recall},
                   {"weighted bce", bce_weighted},
                   {"weighted tversky 0.7", tversky_weighted},
                   {"focal 2", focal2},
                   {"weighted focal 0.5", focal_half_weighted}};
    for (size_t which = 0; which < G_N_ELEMENTS(losses); which++) {
        double (*loss)(ps_tensor *, const ps_tensor *, float) = losses[which].loss;
        ps_tensor_ensure_grad(z);
        memset(z->grad, 0, ps_numel(z) * sizeof(float));
        loss(z, t, 1.0f);
        float *analytic = g_memdup2(z->grad, ps_numel(z) * sizeof(float));
        for (size_t i = 0; i < ps_numel(z); i++) {
            float keep = z->data[i], h = 1e-2f;
            z->data[i] = keep + h;
            double up = loss(z, t, 1.0f);
            z->data[i] = keep - h;
            double down = loss(z, t, 1.0f);
            z->data[i] = keep;
            double numeric = (up - down) / (2 * h);
            if (fabs(numeric - analytic[i]) > 1e-3 + 1e-2 * fabs(numeric))
                g_test_fail_printf("%s grad[%zu]: analytic %g numeric %g", losses[which].name, i, analytic[i],
                                   numeric);
        }
        g_free(analytic);
    }
    /* Perfect confident prediction: every loss near zero. */
    for (size_t i = 0; i < ps_numel(z); i++)
        z->data[i] = t->data[i] ? 20.0f : -20.0f;
    g_assert_cmpfloat(ps_loss_bce_logits(z, t, NULL, 1.0f), <, 1e-6);
    g_assert_cmpfloat(ps_loss_dice(z, t, 1.0f), <, 1e-3);
    g_assert_cmpfloat(ps_loss_tversky(z, t, NULL, 0.7f, 1.0f), <, 1e-3);
    g_assert_cmpfloat(ps_loss_bce_logits(z, t, grad_test_weights, 1.0f), <, 1e-6);
    g_assert_cmpfloat(ps_loss_tversky(z, t, grad_test_weights, 0.7f, 1.0f), <, 1e-3);
    g_assert_cmpfloat(ps_loss_focal_logits(z, t, NULL, 2.0f, 1.0f), <, 1e-12);
    ps_tensor_free(grad_test_weights);
    grad_test_weights = NULL;
    ps_tensor_free(z);
    ps_tensor_free(t);
    g_rand_free(r);
}

/* Focal loss: the definition pixel by pixel (in double, from the probability), BCE exactly at gamma 0,
 * and finite where the logits saturate. */
static void test_focal(void)
{
    GRand *r = g_rand_new_with_seed(17);
    ps_tensor *z = ps_tensor_new(2, 1, 6, 7), *t = ps_tensor_new(2, 1, 6, 7), *w = ps_tensor_new(2, 1, 6, 7);
    tu_fill_uniform(z->data, ps_numel(z), r, -6, 6);
    tu_fill_uniform(w->data, ps_numel(w), r, 0.5, 3);
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = g_rand_boolean(r);
    ps_tensor_ensure_grad(z);
    const double gamma = 1.5;
    double want = 0, wsum = 0;
    for (size_t i = 0; i < ps_numel(z); i++) {
        const double p = 1 / (1 + exp(-(double)z->data[i])), pt = t->data[i] ? p : 1 - p;
        want += w->data[i] * -pow(1 - pt, gamma) * log(pt);
        wsum += w->data[i];
    }
    g_assert_cmpfloat_with_epsilon(ps_loss_focal_logits(z, t, w, (float)gamma, 1.0f), want / wsum, 1e-12);
    /* gamma 0: the BCE, value and gradient */
    memset(z->grad, 0, ps_numel(z) * sizeof(float));
    const double focal0 = ps_loss_focal_logits(z, t, w, 0.0f, 1.0f);
    float *g_focal = g_memdup2(z->grad, ps_numel(z) * sizeof(float));
    memset(z->grad, 0, ps_numel(z) * sizeof(float));
    g_assert_cmpfloat_with_epsilon(focal0, ps_loss_bce_logits(z, t, w, 1.0f), 1e-12);
    for (size_t i = 0; i < ps_numel(z); i++)
        g_assert_cmpfloat_with_epsilon(g_focal[i], z->grad[i], 1e-8);
    g_free(g_focal);
    /* a confident right pixel weighs far less than under BCE, a confident wrong one about the same */
    ps_tensor *z1 = ps_tensor_new(1, 1, 1, 1), *t1 = ps_tensor_new(1, 1, 1, 1);
    t1->data[0] = 1, z1->data[0] = 3;
    ps_tensor_ensure_grad(z1);
    g_assert_cmpfloat(ps_loss_focal_logits(z1, t1, NULL, 2.0f, 1.0f), <, 0.01 * ps_loss_bce_logits(z1, t1, NULL, 1.0f));
    z1->data[0] = -3;
    g_assert_cmpfloat(ps_loss_focal_logits(z1, t1, NULL, 2.0f, 1.0f), >, 0.9 * ps_loss_bce_logits(z1, t1, NULL, 1.0f));
    /* saturated logits: finite loss and gradient */
    z1->data[0] = -200, z1->grad[0] = 0;
    const double far = ps_loss_focal_logits(z1, t1, NULL, 2.0f, 1.0f);
    g_assert_true(isfinite(far) && isfinite(z1->grad[0]));
    g_assert_cmpfloat_with_epsilon(far, 200.0, 1e-6);
    z1->data[0] = -INFINITY, z1->grad[0] = 0; /* infinitely wrong (a diverged run): the gradient stays a number */
    ps_loss_focal_logits(z1, t1, NULL, 2.0f, 1.0f);
    g_assert_cmpfloat(z1->grad[0], ==, -1.0f);
    ps_tensor_free(z), ps_tensor_free(t), ps_tensor_free(w), ps_tensor_free(z1), ps_tensor_free(t1);
    g_rand_free(r);
}

/* Tversky: the documented Dice loss at fn_weight 0.5; above it a miss costs more than a false alarm of the
 * same size, and the reverse below it. */
static void test_tversky(void)
{
    ps_tensor *t = ps_tensor_new(1, 1, 8, 8), *miss = ps_tensor_new(1, 1, 8, 8), *extra = ps_tensor_new(1, 1, 8, 8);
    for (int i = 0; i < 64; i++) {
        const int polyp = i < 24, edge = i >= 16 && i < 32; /* 24 polyp pixels; 8 on each side of its edge */
        t->data[i] = polyp;
        miss->data[i] = polyp && !edge ? 20.0f : -20.0f; /* misses the 8 last polyp pixels */
        extra->data[i] = polyp || edge ? 20.0f : -20.0f; /* marks the 8 background pixels after it */
    }
    ps_tensor_ensure_grad(miss);
    ps_tensor_ensure_grad(extra);
    /* at 0.5 the Dice loss as documented, 1 - (2 sum(p t) + 1) / (sum p + sum t + 1), computed here */
    double inter = 0, sp = 0, st = 0;
    for (int i = 0; i < 64; i++) {
        const double p = 1 / (1 + exp(-(double)miss->data[i]));
        inter += p * t->data[i], sp += p, st += t->data[i];
    }
    g_assert_cmpfloat_with_epsilon(ps_loss_tversky(miss, t, NULL, 0.5f, 1.0f), 1 - (2 * inter + 1) / (sp + st + 1),
                                   1e-12);
    g_assert_cmpfloat(ps_loss_tversky(miss, t, NULL, 0.7f, 1.0f), >, ps_loss_tversky(extra, t, NULL, 0.7f, 1.0f) + 0.05);
    g_assert_cmpfloat(ps_loss_tversky(miss, t, NULL, 0.3f, 1.0f), <, ps_loss_tversky(extra, t, NULL, 0.3f, 1.0f) - 0.05);
    ps_tensor_free(t), ps_tensor_free(miss), ps_tensor_free(extra);
}

/* The Lovasz hinge by its definition (Berman et al., eq. 9), one image: sort the hinge errors
 * m_i = max(0, 1 - z_i s_i) in decreasing order and weigh the k-th by Delta(top k) - Delta(top k - 1),
 * Delta(S) the Jaccard loss of the mask that gets exactly the pixels of S wrong, counted here pixel
 * by pixel (O(n^2)) rather than by the running sums of the implementation. */
static double lovasz_by_definition(const float *z, const float *t, int n)
{
    int *order = g_new(int, n);
    double *m = g_new(double, n);
    for (int i = 0; i < n; i++) {
        m[i] = fmax(0.0, 1.0 - z[i] * (t[i] > 0.5f ? 1.0 : -1.0));
        order[i] = i;
    }
    for (int i = 0; i < n; i++) /* selection sort, decreasing */
        for (int j = i + 1; j < n; j++)
            if (m[order[j]] > m[order[i]]) {
                int k = order[i];
                order[i] = order[j], order[j] = k;
            }
    double loss = 0, before = 0;
    for (int k = 1; k <= n; k++) {
        int inter = 0, uni = 0; /* the predicted mask: the truth with the top k flipped */
        for (int i = 0; i < n; i++) {
            int wrong = 0;
            for (int j = 0; j < k; j++)
                wrong |= order[j] == i;
            const int truth = t[i] > 0.5f, predicted = wrong ? !truth : truth;
            inter += truth && predicted, uni += truth || predicted;
        }
        const double delta = uni ? 1.0 - (double)inter / uni : 0.0;
        loss += m[order[k - 1]] * (delta - before);
        before = delta;
    }
    g_free(order), g_free(m);
    return loss;
}

/* Lovasz hinge: against the definition, its gradient against central differences (logits spaced so
 * that no step crosses a kink of the piecewise linear loss), zero for a confident right answer, and
 * lower for the mask of the better IoU. */
static void test_lovasz_hinge(void)
{
    enum { N = 3, H = 4, W = 6, PER = H * W };
    GRand *r = g_rand_new_with_seed(11);
    ps_tensor *z = ps_tensor_new(N, 1, H, W), *t = ps_tensor_new(N, 1, H, W);
    /* logits 0.1 k + 0.037, k a shuffle of -30..41: the errors 1 -+ z never tie, never sit at 0 */
    int k[N * PER];
    for (int i = 0; i < N * PER; i++)
        k[i] = i - 30;
    for (int i = N * PER - 1; i > 0; i--) {
        int j = g_rand_int_range(r, 0, i + 1), x = k[i];
        k[i] = k[j], k[j] = x;
    }
    for (int i = 0; i < N * PER; i++) {
        z->data[i] = (float)(0.1 * k[i] + 0.037);
        t->data[i] = g_rand_int_range(r, 0, 3) == 0; /* about a third polyp */
    }
    for (int y = 0; y < H * W; y++)
        t->data[2 * PER + y] = 0; /* and one image without polyp */
    ps_tensor_ensure_grad(z);
    memset(z->grad, 0, ps_numel(z) * sizeof(float));
    double want = 0;
    for (int n = 0; n < N; n++)
        want += lovasz_by_definition(z->data + n * PER, t->data + n * PER, PER) / N;
    g_assert_cmpfloat_with_epsilon(ps_loss_lovasz_hinge(z, t, 1.0f), want, 1e-9);
    g_assert_cmpfloat(want, >, 0.1);
    float *analytic = g_memdup2(z->grad, ps_numel(z) * sizeof(float));
    int nonzero = 0;
    for (size_t i = 0; i < ps_numel(z); i++) {
        const float keep = z->data[i], h = 1e-3f;
        z->data[i] = keep + h;
        const double up = ps_loss_lovasz_hinge(z, t, 1.0f);
        z->data[i] = keep - h;
        const double down = ps_loss_lovasz_hinge(z, t, 1.0f);
        z->data[i] = keep;
        const double numeric = (up - down) / ((double)(keep + h) - (double)(keep - h));
        if (fabs(numeric - analytic[i]) > 1e-4 + 1e-3 * fabs(numeric))
            g_test_fail_printf("lovasz grad[%zu]: analytic %g numeric %g", i, analytic[i], numeric);
        nonzero += analytic[i] != 0;
    }
    g_assert_cmpint(nonzero, >, 10);
    g_free(analytic);

    /* right and confident (margin above 1): no loss */
    for (size_t i = 0; i < ps_numel(z); i++)
        z->data[i] = t->data[i] > 0.5f ? 3.0f : -3.0f;
    g_assert_cmpfloat(ps_loss_lovasz_hinge(z, t, 1.0f), ==, 0.0);
    /* one image, 12 polyp pixels of 24: missing 2 of them costs less than missing 6 */
    ps_tensor *t1 = ps_tensor_new(1, 1, H, W), *few = ps_tensor_new(1, 1, H, W), *many = ps_tensor_new(1, 1, H, W);
    for (int i = 0; i < PER; i++) {
        t1->data[i] = i < 12;
        few->data[i] = i < 10 ? 3.0f : -3.0f;
        many->data[i] = i < 6 ? 3.0f : -3.0f;
    }
    ps_tensor_ensure_grad(few), ps_tensor_ensure_grad(many);
    const double lf = ps_loss_lovasz_hinge(few, t1, 1.0f), lm = ps_loss_lovasz_hinge(many, t1, 1.0f);
    g_assert_cmpfloat(lf, <, lm);
    g_assert_cmpfloat_with_epsilon(lf, lovasz_by_definition(few->data, t1->data, PER), 1e-9);
    ps_tensor_free(z), ps_tensor_free(t), ps_tensor_free(t1), ps_tensor_free(few), ps_tensor_free(many);
    g_rand_free(r);
}

/* The structure loss: its weights against a brute-force window mean and by hand, and the
 * weighted losses against their documented formulas. */
static void test_structure_loss(void)
{
    GRand *r = g_rand_new_with_seed(9);
    ps_tensor *t = ps_tensor_new(2, 1, 13, 17), *w = ps_tensor_new(2, 1, 13, 17);
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = g_rand_double(r) < 0.4;
    const int R = 3;
    ps_structure_weights(t, R, 5.0f, w);
    for (int n = 0; n < 2; n++)
        for (int y = 0; y < 13; y++)
            for (int x = 0; x < 17; x++) {
                double sum = 0;
                int count = 0;
                for (int yy = y - R; yy <= y + R; yy++)
                    for (int xx = x - R; xx <= x + R; xx++)
                        if (yy >= 0 && yy < 13 && xx >= 0 && xx < 17)
                            sum += t->data[(n * 13 + yy) * 17 + xx], count++;
                const size_t i = (n * 13 + y) * 17 + x;
                const double want = 1 + 5 * fabs(sum / count - t->data[i]);
                if (fabs(w->data[i] - want) > 1e-5)
                    g_test_fail_printf("weight at n %d y %d x %d: %g, want %g", n, y, x, w->data[i], want);
            }
    ps_tensor_free(t), ps_tensor_free(w);

    /* a 12x12 mask with a 4x4 square at (4..7, 4..7), window 3x3 */
    t = ps_tensor_new(1, 1, 12, 12), w = ps_tensor_new(1, 1, 12, 12);
    for (int y = 4; y < 8; y++)
        for (int x = 4; x < 8; x++)
            t->data[y * 12 + x] = 1;
    ps_structure_weights(t, 1, 4.0f, w);
    g_assert_cmpfloat_with_epsilon(w->data[5 * 12 + 5], 1.0, 1e-6);               /* inside: all polyp */
    g_assert_cmpfloat_with_epsilon(w->data[4 * 12 + 4], 1 + 4.0 * 5 / 9, 1e-6);   /* corner: 4 of 9 polyp */
    g_assert_cmpfloat_with_epsilon(w->data[3 * 12 + 5], 1 + 4.0 * 3 / 9, 1e-6);   /* just above: 3 of 9 */
    g_assert_cmpfloat_with_epsilon(w->data[0], 1.0, 1e-6);                        /* image corner, no polyp */

    /* weighted BCE = sum(w bce) / sum(w); weighted Dice counts each pixel w times */
    ps_tensor *z = ps_tensor_new(1, 1, 12, 12);
    tu_fill_uniform(z->data, 144, r, -4, 4);
    ps_tensor_ensure_grad(z);
    double bce = 0, wsum = 0, inter = 0, sp = 0, st = 0;
    for (int i = 0; i < 144; i++) {
        const double p = 1 / (1 + exp(-(double)z->data[i])), ti = t->data[i], wi = w->data[i];
        bce += wi * -(ti * log(p) + (1 - ti) * log(1 - p)), wsum += wi;
        inter += wi * p * ti, sp += wi * p, st += wi * ti;
    }
    g_assert_cmpfloat_with_epsilon(ps_loss_bce_logits(z, t, w, 1.0f), bce / wsum, 1e-9);
    g_assert_cmpfloat_with_epsilon(ps_loss_tversky(z, t, w, 0.5f, 1.0f), 1 - (2 * inter + 1) / (sp + st + 1), 1e-9);
    /* gain 0: all weights 1, the unweighted losses exactly */
    ps_structure_weights(t, 1, 0.0f, w);
    g_assert_cmpfloat(ps_loss_bce_logits(z, t, w, 1.0f), ==, ps_loss_bce_logits(z, t, NULL, 1.0f));
    g_assert_cmpfloat(ps_loss_tversky(z, t, w, 0.7f, 1.0f), ==, ps_loss_tversky(z, t, NULL, 0.7f, 1.0f));
    ps_tensor_free(t), ps_tensor_free(w), ps_tensor_free(z);
    g_rand_free(r);
}

/* Deep supervision's loss alone, through the heads and the decoder, on one training pass. */
static double deepsup_pass(ps_model *m, ps_deepsup *d, ps_graph *g, ps_tensor *x, const ps_tensor *t, int backward)
{
    ps_graph_clear(g);
    ps_model_zero_grad(m);
    ps_deepsup_watch(d, g);
    ps_tensor *logits = ps_model_forward(m, g, x, NULL);
    logits->grad = ps_arena_calloc(g->arena, ps_numel(logits) * sizeof(float)); /* the main loss left out */
    const double loss = ps_deepsup_loss(d, g, t);
    if (backward)
        ps_backward(g, logits);
    return loss;
}

/* Heads added once (a second call finds them), dropped by detach; the loss's gradients reach
 * the heads and the decoder (central differences); a checkpoint with only some heads is refused. */
static void test_deep_supervision(void)
{
    GError *err = NULL;
    ps_model *m = ps_model_new("microaunet", NULL, 0, 3, &err);
    g_assert_no_error(err);
    const int plain = m->n_params;
    ps_deepsup *d = ps_deepsup_new(m, 0.6f, 5, &err);
    g_assert_no_error(err);
    g_assert_cmpint(m->n_params, ==, plain + 6);
    ps_deepsup_free(ps_deepsup_new(m, 0.6f, 5, &err)); /* a resumed run: found, not added again */
    g_assert_no_error(err);
    g_assert_cmpint(m->n_params, ==, plain + 6);

    GRand *r = g_rand_new_with_seed(11);
    ps_tensor *x = ps_tensor_new(2, 3, 128, 128), *t = ps_tensor_new(2, 1, 128, 128);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
    for (int n = 0; n < 2; n++) /* a square polyp per image */
        for (int y = 30 + 10 * n; y < 90; y++)
            for (int xx = 20; xx < 70 + 20 * n; xx++)
                t->data[((size_t)n * 128 + y) * 128 + xx] = 1;
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    deepsup_pass(m, d, &g, x, t, 1);
    const char *names[] = {PS_DEEPSUP_PREFIX "head2.weight", PS_DEEPSUP_PREFIX "head4.bias",
                           "dec4.dwd.dsd1.pw.weight", "dec2.ldga.gate.weight"};
    float analytic[G_N_ELEMENTS(names)];
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        ps_param *p = ps_model_find(m, names[i]);
        g_assert_nonnull(p);
        analytic[i] = p->t->grad[0];
    }
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        float *w = &ps_model_find(m, names[i])->t->data[0], keep = *w, h = 1e-2f;
        *w = keep + h;
        const double up = deepsup_pass(m, d, &g, x, t, 0);
        *w = keep - h;
        const double down = deepsup_pass(m, d, &g, x, t, 0);
        *w = keep;
        const double numeric = (up - down) / (2 * h);
        g_test_message("%s: analytic %g numeric %g", names[i], analytic[i], numeric);
        if (!(fabs(numeric - analytic[i]) <= 2e-3 + 3e-2 * fabs(numeric)) || numeric == 0)
            g_test_fail_printf("%s: analytic %g numeric %g", names[i], analytic[i], numeric);
    }
    ps_deepsup_detach(d, m);
    ps_deepsup_free(d);
    g_assert_cmpint(m->n_params, ==, plain);
    ps_graph_release(&g);
    ps_arena_free(arena);

    /* only one head's tensors present: refused, the model unchanged */
    const int64_t ws[4] = {1, 8, 1, 1};
    ps_model_add_param(m, PS_DEEPSUP_PREFIX "head2.weight", 1, 4, ws);
    g_assert_null(ps_deepsup_new(m, 1.0f, 5, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_clear_error(&err);
    g_assert_cmpint(m->n_params, ==, plain + 1);
    ps_tensor_free(x), ps_tensor_free(t);
    ps_model_free(m);
    g_rand_free(r);
}

/* AdamW's first steps computed by hand for one weight. */
static void test_adamw(void)
{
    ps_model *m = ps_model_new("microaunet", NULL, 0, 1, NULL);
    ps_adamw o;
    ps_adamw_init(&o, m, 1e-2f, 0.1f);
    ps_model_zero_grad(m);
    ps_param *p = ps_model_find(m, "final.bias");
    p->t->data[0] = 1.0f;
    double w = 1.0, mm = 0, vv = 0;
    for (int s = 1; s <= 3; s++) {
        double gval = 0.5 * s;
        ps_model_zero_grad(m);
        p->t->grad[0] = (float)gval;
        ps_adamw_step(&o, m, 1e-2f);
        w -= 1e-2 * 0.1 * w;
        mm = 0.9 * mm + 0.1 * gval;
        vv = 0.999 * vv + 0.001 * gval * gval;
        w -= 1e-2 * (mm / (1 - pow(0.9, s))) / (sqrt(vv / (1 - pow(0.999, s))) + 1e-8);
        g_assert_cmpfloat_with_epsilon(p->t->data[0], w, 1e-6);
    }
    ps_adamw_free(&o);
    ps_model_free(m);
}

/* The moving average of the weights against a double-precision reference of its definition,
 * over every parameter (batch-norm running statistics included), through the warm-up and
 * after it; ps_ema_apply writes the average into the model. */
static void test_ema(void)
{
    ps_model *m = ps_model_new("microaunet", NULL, 0, 3, NULL);
    ps_ema *e = ps_ema_new(m, 0.9f);
    g_assert_cmpint(e->n, ==, m->n_params);
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++)
        total += ps_numel(m->params[i].t);
    double *ref = g_new(double, total);
    for (int i = 0, k = 0; i < m->n_params; i++)
        for (size_t j = 0; j < ps_numel(m->params[i].t); j++)
            ref[k++] = m->params[i].t->data[j];
    /* the warm-up (1 + n) / (10 + n) until it passes the decay: 2/11, 3/12, ... then 0.9 */
    g_assert_cmpfloat_with_epsilon(ps_ema_decay_at(e, 1), 2.0 / 11, 1e-7);
    g_assert_cmpfloat_with_epsilon(ps_ema_decay_at(e, 20), 21.0 / 30, 1e-7);
    g_assert_cmpfloat(ps_ema_decay_at(e, 81), ==, 0.9f);
    g_assert_cmpfloat(ps_ema_decay_at(e, 100000), ==, 0.9f);
    GRand *r = g_rand_new_with_seed(5);
    const long steps[] = {1, 2, 3, 50, 90, 91, 92};
    for (size_t s = 0; s < G_N_ELEMENTS(steps); s++) {
        for (int i = 0; i < m->n_params; i++) /* new "weights" after a step */
            for (size_t j = 0; j < ps_numel(m->params[i].t); j++)
                m->params[i].t->data[j] = (float)g_rand_double_range(r, -2, 2);
        ps_ema_update(e, m, steps[s]);
        const double d = MIN(0.9, (1.0 + steps[s]) / (10.0 + steps[s]));
        for (int i = 0, k = 0; i < m->n_params; i++)
            for (size_t j = 0; j < ps_numel(m->params[i].t); j++, k++)
                ref[k] = d * ref[k] + (1 - d) * m->params[i].t->data[j];
    }
    ps_ema_apply(e, m);
    double worst = 0;
    for (int i = 0, k = 0; i < m->n_params; i++)
        for (size_t j = 0; j < ps_numel(m->params[i].t); j++, k++)
            worst = MAX(worst, fabs(m->params[i].t->data[j] - ref[k]));
    g_test_message("largest difference from the reference: %g", worst);
    g_assert_cmpfloat(worst, <, 1e-5);
    int statistics = 0; /* the compared parameters include the batch-norm statistics */
    for (int i = 0; i < m->n_params; i++)
        statistics += !m->params[i].trainable;
    g_assert_cmpint(statistics, >, 0);
    g_rand_free(r);
    g_free(ref);
    ps_ema_free(e);
    ps_model_free(m);
}

static void test_cosine_schedule(void)
{
    g_assert_cmpfloat_with_epsilon(ps_cosine_lr(0, 100, 10, 1e-3f, 0), 1e-4, 1e-9);
    g_assert_cmpfloat_with_epsilon(ps_cosine_lr(9, 100, 10, 1e-3f, 0), 1e-3, 1e-9);
    g_assert_cmpfloat_with_epsilon(ps_cosine_lr(10, 100, 10, 1e-3f, 0), 1e-3, 1e-9);
    g_assert_cmpfloat_with_epsilon(ps_cosine_lr(55, 100, 10, 1e-3f, 0), 5e-4, 1e-9);
    g_assert_cmpfloat_with_epsilon(ps_cosine_lr(100, 100, 10, 1e-3f, 1e-5f), 1e-5, 1e-9);
}

/* ---- the trainer binary on a tiny synthetic dataset ---- */

static char *tmpdir;

static void make_dataset(void)
{
    static gboolean made;
    if (!made) {
        char *dir = g_build_filename(tmpdir, "data", NULL);
        tu_write_disc_dataset(dir, 6, 80, 64, 11);
        g_free(dir);
        made = TRUE;
    }
}

/* Runs polypseg-train with common arguments plus `extra`; returns the wait status. With sig
 * != 0 the process gets `sig` `delay_ms` after its checkpoint first appears (so the signal
 * always lands mid-run, whatever the machine's speed). */
/* The polypseg-train command line of the tests' small runs. */
static char *train_command(const char *out, const char *extra)
{
    make_dataset();
    char *exe = g_build_filename(g_getenv("POLYPSEG_BUILD"), "core", "polypseg-train", NULL);
    char *data = g_build_filename(tmpdir, "data", NULL);
    char *cmd = g_strdup_printf("%s --data %s --out %s --size 128 --batch 2 --epochs %d --seed 4 %s", exe,
                                data, out, TRAIN_EPOCHS, extra);
    g_free(exe);
    g_free(data);
    return cmd;
}

/* Runs it to the end; returns its wait status and what it wrote on stderr (g_free). */
static int run_train_stderr(const char *out, const char *extra, char **err_text)
{
    char *cmd = train_command(out, extra);
    int status = -1;
    GError *err = NULL;
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, err_text, &status, &err));
    g_assert_no_error(err);
    g_free(cmd);
    return status;
}

static int run_train(const char *out, const char *extra, int sig, int delay_ms)
{
    char *ckpt = g_strconcat(out, ".ckpt", NULL);
    char *cmd = train_command(out, extra);
    gchar **argv = NULL;
    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    GStatBuf before = {0}, now;
    if (g_stat(ckpt, &before) != 0)
        before.st_ino = 0;
    GPid pid;
    GError *err = NULL;
    g_assert_true(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                NULL, NULL, &pid, &err));
    g_assert_no_error(err);
    if (sig) {
        /* Wait for a new checkpoint (each write is a new file renamed into place). */
        for (int i = 0; i < 3000 && (g_stat(ckpt, &now) != 0 || now.st_ino == before.st_ino); i++)
            g_usleep(10000);
        g_usleep(delay_ms * 1000);
        kill(pid, sig);
    }
    int status;
    waitpid(pid, &status, 0);
    g_spawn_close_pid(pid);
    g_strfreev(argv);
    g_free(cmd);
    g_free(ckpt);
    return status;
}

static ps_st_file *read_ok(const char *path)
{
    GError *err = NULL;
    ps_st_file *f = ps_st_read(path, &err);
    g_assert_no_error(err);
    return f;
}

static void assert_same_weights(const char *a, const char *b)
{
    ps_st_file *fa = read_ok(a), *fb = read_ok(b);
    g_assert_cmpint(fa->n_tensors, ==, fb->n_tensors);
    for (int i = 0; i < fa->n_tensors; i++) {
        const ps_st_tensor *tb = ps_st_find(fb, fa->tensors[i].name);
        g_assert_nonnull(tb);
        g_assert_cmpmem(fa->tensors[i].data, fa->tensors[i].numel * 4, tb->data, tb->numel * 4);
    }
    ps_st_free(fa);
    ps_st_free(fb);
}

/* extra: the runs' extra arguments ("", "--deep-supervision 0.5", whose heads must travel in
 * the checkpoint and stay out of the final file, or "--multi-scale ...", whose batch sides must
 * follow the run through the interruption). */
static void test_resume_is_exact(gconstpointer data)
{
    const char *extra = data;
    const gboolean deepsup = strstr(extra, "deep-supervision") != NULL;
    const gboolean multi = strstr(extra, "multi-scale") != NULL;
    const gboolean ema = strstr(extra, "--ema") != NULL;
    const char *prefix = deepsup ? "ds-" : multi ? "ms-" : ema ? "ema-" : "";
    char *full_name = g_strconcat(prefix, "full.safetensors", NULL), *part_name = g_strconcat(prefix, "part.safetensors", NULL);
    char *full = g_build_filename(tmpdir, full_name, NULL);
    char *part = g_build_filename(tmpdir, part_name, NULL);
    g_free(full_name);
    g_free(part_name);
    char *ckpt = g_strconcat(part, ".ckpt", NULL);
    char *resume = g_strconcat(extra, " --resume", NULL);
    g_assert_cmpint(run_train(full, extra, 0, 0), ==, 0);
    g_unlink(ckpt);
    /* The same run stopped by Ctrl-C part-way, then resumed until done. */
    int st = run_train(part, extra, SIGINT, 150);
    g_assert_true(WIFEXITED(st));
    g_assert_cmpint(WEXITSTATUS(st), ==, 130);
    g_assert_false(g_file_test(part, G_FILE_TEST_EXISTS)); /* no final weights yet */
    ps_adamw o;
    ps_train_pos pos;
    GError *err = NULL;
    ps_ema *avg = NULL;
    ps_model *m = ps_checkpoint_load(ckpt, &o, 1e-3f, 1e-2f, &pos, NULL, &avg, &err);
    g_assert_no_error(err);
    g_test_message("Ctrl-C left a checkpoint at epoch %d batch %d", pos.epoch, pos.batch);
    g_assert_cmpint(pos.epoch, <, TRAIN_EPOCHS);
    g_assert_true((ps_model_find(m, PS_DEEPSUP_PREFIX "head3.weight") != NULL) == deepsup);
    g_assert_true((avg != NULL) == ema);
    ps_ema_free(avg);
    ps_adamw_free(&o);
    ps_model_free(m);
    if (ema) { /* resuming without the average, or with another decay, is refused */
        const char *other[] = {"--resume", "--ema 0.98 --resume"};
        for (size_t i = 0; i < G_N_ELEMENTS(other); i++) {
            int refused = run_train(part, other[i], 0, 0);
            g_assert_true(WIFEXITED(refused) && WEXITSTATUS(refused) == 1);
        }
    }
    g_assert_cmpint(run_train(part, resume, 0, 0), ==, 0);
    assert_same_weights(full, part);
    ps_st_file *f = read_ok(full);
    if (ema) { /* the file is the average the last checkpoint holds, not the last step's weights */
        ps_st_file *c = read_ok(ckpt);
        int differ = 0;
        for (int i = 0; i < f->n_tensors; i++) {
            char *name = g_strconcat("optim.ema.", f->tensors[i].name, NULL);
            const ps_st_tensor *avg_t = ps_st_find(c, name), *live = ps_st_find(c, f->tensors[i].name);
            g_assert_nonnull(avg_t);
            g_assert_cmpmem(f->tensors[i].data, f->tensors[i].numel * 4, avg_t->data, avg_t->numel * 4);
            differ += memcmp(live->data, avg_t->data, avg_t->numel * 4) != 0;
            g_free(name);
        }
        g_assert_cmpint(differ, >, f->n_tensors / 2);
        g_assert_nonnull(strstr(ps_st_meta(f, "ema"), "decay 0.99 "));
        ps_st_free(c);
    } else {
        g_assert_null(ps_st_meta(f, "ema"));
    }
    g_assert_null(ps_st_find(f, PS_DEEPSUP_PREFIX "head3.weight"));
    g_assert_true((ps_st_meta(f, "deep_supervision") != NULL) == deepsup);
    if (multi) /* --size 128 times 1 and 2 */
        g_assert_cmpstr(ps_st_meta(f, "multi_scale"), ==, "batch sides 128, 256");
    else
        g_assert_null(ps_st_meta(f, "multi_scale"));
    g_assert_cmpstr(ps_st_meta(f, "size"), ==, "128"); /* the side inference uses */
    g_assert_nonnull(ps_st_meta(f, "command"));
    g_assert_cmpstr(ps_st_meta(f, "architecture"), ==, "microaunet");
    char *epochs = g_strdup_printf("%d", TRAIN_EPOCHS);
    g_assert_cmpstr(ps_st_meta(f, "epochs"), ==, epochs);
    g_free(epochs);
    ps_st_free(f);
    g_free(ckpt);
    g_free(full);
    g_free(part);
    g_free(resume);
}

/* --teacher: the run stopped by Ctrl-C in stage 1 and resumed ends exactly as the uninterrupted
 * one (the adapters and their optimiser state travel in the checkpoint); the final file is the
 * plain student with the teacher and distillation settings in its metadata; resuming without
 * the teacher is refused. */
static void test_distill_resume_is_exact(void)
{
    char *teacher = g_build_filename(tmpdir, "teacher.safetensors", NULL);
    char *full = g_build_filename(tmpdir, "kd-full.safetensors", NULL);
    char *part = g_build_filename(tmpdir, "kd-part.safetensors", NULL);
    char *ckpt = g_strconcat(part, ".ckpt", NULL);
    ps_model *t = ps_model_new("malunet", NULL, 0, 6, NULL);
    g_assert_true(ps_model_save(t, teacher, NULL, NULL));
    ps_model_free(t);
    char *args = g_strdup_printf("--teacher %s --stage1-epochs %d", teacher, TRAIN_EPOCHS / 2);
    g_assert_cmpint(run_train(full, args, 0, 0), ==, 0);
    g_unlink(ckpt);
    int st = run_train(part, args, SIGINT, 100);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    ps_st_file *f = read_ok(ckpt);
    g_test_message("stopped at epoch %s of %d", ps_st_meta(f, "checkpoint_epoch"), TRAIN_EPOCHS);
    g_assert_cmpint(atoi(ps_st_meta(f, "checkpoint_epoch")), <, TRAIN_EPOCHS / 2); /* in stage 1 */
    g_assert_nonnull(ps_st_meta(f, "teacher_sha256"));
    g_assert_nonnull(ps_st_find(f, PS_DISTILL_PREFIX "adapter5.weight"));
    g_assert_nonnull(ps_st_find(f, "optim.v." PS_DISTILL_PREFIX "adapter5.weight"));
    ps_st_free(f);
    GError *err = NULL;
    ps_model *student = ps_model_load(ckpt, &err); /* a checkpoint with adapters still loads as a model */
    g_assert_no_error(err);
    ps_model_free(student);
    st = run_train(part, "--resume", 0, 0);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *resume = g_strconcat(args, " --resume", NULL);
    g_assert_cmpint(run_train(part, resume, 0, 0), ==, 0);
    assert_same_weights(full, part);
    f = read_ok(full);
    for (int i = 0; i < f->n_tensors; i++)
        g_assert_false(g_str_has_prefix(f->tensors[i].name, PS_DISTILL_PREFIX));
    g_assert_cmpstr(ps_st_meta(f, "teacher"), ==, teacher);
    g_assert_nonnull(strstr(ps_st_meta(f, "distillation"), "stage 1 epochs 20"));
    ps_st_free(f);
    g_free(resume), g_free(args), g_free(ckpt), g_free(part), g_free(full), g_free(teacher);
}

/* SIGKILL at several moments: the checkpoint on disk is always complete and loadable, and
 * --resume finishes the run. */
static void test_kill9_leaves_valid_checkpoint(void)
{
    char *out = g_build_filename(tmpdir, "k9.safetensors", NULL);
    char *ckpt = g_strconcat(out, ".ckpt", NULL);
    int last_epoch = -1;
    for (int i = 0; i < 4; i++) {
        int st = run_train(out, "--resume", SIGKILL, 37 * i);
        g_assert_true(WIFSIGNALED(st));
        ps_adamw o;
        ps_train_pos pos;
        GError *err = NULL;
        ps_model *m = ps_checkpoint_load(ckpt, &o, 1e-3f, 1e-2f, &pos, NULL, NULL, &err);
        g_assert_no_error(err);
        g_test_message("after kill %d: checkpoint at epoch %d batch %d", i, pos.epoch, pos.batch);
        g_assert_cmpint(pos.epoch, >=, last_epoch);
        last_epoch = pos.epoch;
        ps_adamw_free(&o);
        ps_model_free(m);
    }
    g_assert_cmpint(run_train(out, "--resume", 0, 0), ==, 0);
    ps_st_free(read_ok(out));
    g_free(ckpt);
    g_free(out);
}

/* --init starts from given weights and records where they came from; a mismatching
 * architecture is refused. */
static void test_init_from_weights(void)
{
    char *init = g_build_filename(tmpdir, "init.safetensors", NULL);
    char *out = g_build_filename(tmpdir, "tuned.safetensors", NULL);
    ps_model *m = ps_model_new("microaunet", NULL, 0, 9, NULL);
    g_assert_true(ps_model_save(m, init, NULL, NULL));
    char *arg = g_strdup_printf("--init %s", init);
    g_assert_cmpint(run_train(out, arg, 0, 0), ==, 0);
    ps_st_file *f = read_ok(out);
    g_assert_cmpstr(ps_st_meta(f, "init"), ==, init);
    ps_st_free(f);
    char *bad = g_strdup_printf("--init %s --arch microaunet-w8", init);
    int st = run_train(out, bad, 0, 0);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    g_free(bad);
    g_free(arg);
    ps_model_free(m);
    g_free(init);
    g_free(out);
}

/* --snapshot-every N keeps the checkpoint of every Nth epoch as OUT-epochE.ckpt; the last one
 * holds the final weights. */
static void test_snapshots(void)
{
    char *out = g_build_filename(tmpdir, "snap.safetensors", NULL);
    /* temporary files a kill -9 left mid-write go (the checkpoint's, the output's, a snapshot's);
     * a file that only looks alike stays */
    const char *stale[] = {"snap.safetensors.ckpt.tmp-AAAAAA", "snap.safetensors.tmp-BBBBBB",
                           "snap-epoch20.ckpt.tmp-CCCCCC", "snap.safetensors.ckpt.tmp-not-one"};
    for (size_t i = 0; i < G_N_ELEMENTS(stale); i++) {
        char *p = g_build_filename(tmpdir, stale[i], NULL);
        g_assert_true(g_file_set_contents(p, "partial", -1, NULL));
        g_free(p);
    }
    int st = run_train(out, "--snapshot-every 20 --structure-loss 5 --fn-weight 0.7 --lovasz 0.5", 0, 0);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (size_t i = 0; i < G_N_ELEMENTS(stale); i++) {
        char *p = g_build_filename(tmpdir, stale[i], NULL);
        if (g_file_test(p, G_FILE_TEST_EXISTS) != (i == 3))
            g_test_fail_printf("%s %s", stale[i], i == 3 ? "removed" : "left");
        g_free(p);
    }
    ps_st_file *weights = read_ok(out); /* the loss as run, window 2 * 5 + 1 at --size 128 */
    g_assert_cmpstr(ps_st_meta(weights, "loss"), ==,
                    "(bce_with_logits + tversky(fn weight 0.7)) weighted 1 + 5 |mean(mask, 11 px window) - mask|");
    g_assert_cmpstr(ps_st_meta(weights, "lovasz"), ==, "+ 0.5 x lovasz_hinge (per image)");
    ps_st_free(weights);
    for (int e = 1; e <= TRAIN_EPOCHS; e++) {
        char *name = g_strdup_printf("snap-epoch%d.ckpt", e), *path = g_build_filename(tmpdir, name, NULL);
        const gboolean kept = g_file_test(path, G_FILE_TEST_EXISTS);
        if (kept != (e % 20 == 0))
            g_test_fail_printf("%s %s", name, kept ? "kept" : "missing");
        if (kept) {
            ps_st_file *f = read_ok(path);
            g_assert_cmpint(atoi(ps_st_meta(f, "checkpoint_epoch")), ==, e);
            ps_st_free(f);
        }
        g_free(name), g_free(path);
    }
    /* the final weights are the model of the last epoch's snapshot */
    G_STATIC_ASSERT(TRAIN_EPOCHS % 20 == 0);
    char *last = g_build_filename(tmpdir, "snap-last.safetensors", NULL);
    char *ckpt = g_strdup_printf("%s/snap-epoch%d.ckpt", tmpdir, TRAIN_EPOCHS);
    GError *err = NULL;
    ps_model *m = ps_model_load(ckpt, &err);
    g_assert_no_error(err);
    g_assert_true(ps_model_save(m, last, NULL, &err));
    assert_same_weights(last, out);
    ps_model_free(m);
    g_free(last), g_free(ckpt), g_free(out);
}

/* --focal and --copy-paste are recorded as run, and resuming without either is refused. */
static void test_focal_and_copy_paste_recorded(void)
{
    char *out = g_build_filename(tmpdir, "focal.safetensors", NULL);
    int st = run_train(out, "--focal 2 --copy-paste 0.5 --rotate 10", 0, 0);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ps_st_file *f = read_ok(out);
    g_assert_cmpstr(ps_st_meta(f, "loss"), ==, "focal(gamma 2) + dice");
    g_assert_cmpstr(ps_st_meta(f, "augment_extra"), ==, "rotate +-10 deg, hue +-0 deg, copy-paste p 0.5");
    ps_st_free(f);
    static const struct {
        const char *args, *key;
    } changed[] = {{"--copy-paste 0.5 --rotate 10 --resume", "loss="},
                   {"--focal 2 --rotate 10 --resume", "augment_extra="},
                   {"--focal 2 --copy-paste 0.25 --rotate 10 --resume", "augment_extra="}};
    for (size_t i = 0; i < G_N_ELEMENTS(changed); i++) {
        char *text = NULL;
        st = run_train_stderr(out, changed[i].args, &text);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(text, changed[i].key)))
            g_test_fail_printf("'%s' after a run with --focal 2 --copy-paste 0.5 was not refused for its %s: %s",
                               changed[i].args, changed[i].key, text);
        g_free(text);
    }
    char *text = NULL; /* the same settings resume (the run is complete: nothing left to do) */
    st = run_train_stderr(out, "--focal 2 --copy-paste 0.5 --rotate 10 --resume", &text);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        g_test_fail_printf("resuming with the same settings failed: %s", text);
    g_free(text);
    g_free(out);
}

static void test_bad_arguments(void)
{
    char *out = g_build_filename(tmpdir, "x.safetensors", NULL);
    const char *bad[] = {"--batch 0", "--stage1-epochs -1", "--stage1-epochs 41", "--kd-weight nan",
                         "--kd-temperature 0", "--feature-weight inf", "--teacher /nonexistent.safetensors",
                         "--snapshot-every -1", "--teacher-tta 0", "--teacher-tta 9", "--fn-weight 0",
                         "--fn-weight 1", "--fn-weight nan", "--teacher-tta 2", "--structure-loss -1",
                         "--structure-loss nan", "--deep-supervision -1", "--lovasz -1", "--lovasz nan", "--rotate 200", "--hue -1", "--hue nan", "--ema 1", "--ema 0.99999999999" /* 1 as a float */, "--ema -0.5", "--ema nan", "--focal -1", "--focal 11", "--focal nan", "--copy-paste 1.5", "--copy-paste -0.1", "--copy-paste nan",
                         "--multi-scale 0.5" /* 64 px */,
                         "--multi-scale 1,x", "--multi-scale 1,,2", "--multi-scale 1,1,1,1,1,1,1,1,1", "--multi-scale 1e300",
                         "--lr nan", "--lr inf", "--lr 0", "--min-lr nan", "--min-lr 2e-3" /* above --lr */,
                         "--weight-decay -5", "--weight-decay nan", "--limit -3", "--kd-temperature 1e-50",
                         "--kd-weight 1e300", "--out /nonexistent-dir/x.safetensors",
                         "--checkpoint ." /* a folder */};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        int st = run_train(out, bad[i], 0, 0);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 2))
            g_test_fail_printf("%s was not refused with exit code 2", bad[i]);
    }
    g_free(out);
}

/* Runs a tool of the build synchronously; returns its stdout and, in *exit_code (may be NULL:
 * then exit 0 is asserted), its exit code. */
static char *run_tool_status(const char *tool, const char *args, int *exit_code)
{
    char *exe = g_build_filename(g_getenv("POLYPSEG_BUILD"), "core", tool, NULL);
    char *cmd = g_strdup_printf("%s %s", exe, args), *out = NULL, *errout = NULL;
    int status;
    GError *err = NULL;
    g_assert_true(g_spawn_command_line_sync(cmd, &out, &errout, &status, &err));
    g_assert_no_error(err);
    if (exit_code)
        *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    else if (!g_spawn_check_wait_status(status, NULL))
        g_error("%s failed: %s", cmd, errout);
    g_free(errout);
    g_free(cmd);
    g_free(exe);
    return out;
}

static char *run_tool(const char *tool, const char *args)
{
    return run_tool_status(tool, args, NULL);
}

/* --add-data trains on both folders (here the same one twice: 12 pairs) and records it; the
 * result evaluates with polypseg-eval, whose --per-image rows average to its mean Dice. */
static void test_add_data_and_per_image(void)
{
    make_dataset();
    char *data = g_build_filename(tmpdir, "data", NULL), *out = g_build_filename(tmpdir, "twice.safetensors", NULL);
    char *args = g_strdup_printf("--data %s --add-data %s --out %s --size 128 --batch 4 --epochs 1", data, data, out);
    char *log = run_tool("polypseg-train", args);
    g_assert_nonnull(strstr(log, "decoding 12 images"));
    GError *err = NULL;
    ps_st_file *f = ps_st_read(out, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(g_hash_table_lookup(f->metadata, "add_data"), ==, data);
    ps_st_free(f);

    char *csv = g_build_filename(tmpdir, "per-image.csv", NULL), *json = g_build_filename(tmpdir, "eval.json", NULL);
    char *eargs = g_strdup_printf("--weights %s --data %s --per-image %s --json %s", out, data, csv, json);
    g_free(run_tool("polypseg-eval", eargs));
    char *text = NULL;
    g_assert_true(g_file_get_contents(csv, &text, NULL, NULL));
    char **lines = g_strsplit(text, "\n", -1);
    g_assert_cmpstr(lines[0], ==, "image,dice");
    double sum = 0;
    int rows = 0;
    for (char **l = lines + 1; *l && **l; l++, rows++) {
        char **cols = g_strsplit(*l, ",", 2);
        g_assert_true(g_str_has_suffix(cols[0], ".png"));
        double d = g_ascii_strtod(cols[1], NULL);
        g_assert_true(d >= 0 && d <= 1);
        sum += d;
        g_strfreev(cols);
    }
    g_assert_cmpint(rows, ==, 6);
    JsonParser *parser = json_parser_new();
    g_assert_true(json_parser_load_from_file(parser, json, NULL));
    double mean = json_object_get_double_member(json_node_get_object(json_parser_get_root(parser)), "mean_dice");
    g_assert_cmpfloat_with_epsilon(sum / rows, mean, 1e-5);
    g_object_unref(parser);

    /* --size runs the model at another side; a side that is no multiple of 32 is refused */
    char *sargs = g_strdup_printf("--weights %s --data %s --size 160", out, data);
    int code;
    char *sout = run_tool_status("polypseg-eval", sargs, &code);
    g_assert_cmpint(code, ==, 0);
    g_assert_nonnull(strstr(sout, "mean Dice"));
    g_free(sout), g_free(sargs);
    sargs = g_strdup_printf("--weights %s --data %s --size 100", out, data);
    g_free(run_tool_status("polypseg-eval", sargs, &code));
    g_assert_cmpint(code, ==, 2);
    g_free(sargs);
    sargs = g_strdup_printf("--weights %s --data %s --threshold nan", out, data);
    g_free(run_tool_status("polypseg-eval", sargs, &code));
    g_assert_cmpint(code, ==, 2);
    g_free(sargs);
    /* a --json that cannot be written fails the run but still leaves the per-image file */
    g_assert_cmpint(g_unlink(csv), ==, 0);
    sargs = g_strdup_printf("--weights %s --data %s --per-image %s --json %s/no-such-dir/e.json", out, data, csv, tmpdir);
    g_free(run_tool_status("polypseg-eval", sargs, &code));
    g_assert_cmpint(code, ==, 1);
    g_assert_true(g_file_test(csv, G_FILE_TEST_IS_REGULAR));
    g_free(sargs);
    g_strfreev(lines);
    g_free(text), g_free(eargs), g_free(csv), g_free(json), g_free(log), g_free(args), g_free(out), g_free(data);
}

/* polypseg-bench: one JSON object per configuration with ordered percentiles, FPS and the
 * model's stages. */
static void test_bench_json(void)
{
    char *json = g_build_filename(tmpdir, "bench.jsonl", NULL);
    char *args = g_strdup_printf("--size 128 --threads 1,2,3 --frames 4 --steps 1 --batch 1 --json %s", json);
    g_free(run_tool("polypseg-bench", args));
    char *text = NULL;
    g_assert_true(g_file_get_contents(json, &text, NULL, NULL));
    char **lines = g_strsplit(text, "\n", -1);
    g_assert_cmpint(g_strv_length(lines), ==, 4); /* three objects and the final newline */
    for (int i = 0; i < 3; i++) {
        JsonParser *parser = json_parser_new();
        g_assert_true(json_parser_load_from_data(parser, lines[i], -1, NULL));
        JsonObject *o = json_node_get_object(json_parser_get_root(parser));
        g_assert_cmpint(json_object_get_int_member(o, "threads"), ==, i + 1);
        g_assert_cmpint(json_object_get_int_member(o, "size"), ==, 128);
        double p50 = json_object_get_double_member(o, "infer_ms_p50"), p99 = json_object_get_double_member(o, "infer_ms_p99");
        g_assert_true(p50 > 0 && p50 <= json_object_get_double_member(o, "infer_ms_p95") &&
                      json_object_get_double_member(o, "infer_ms_p95") <= p99);
        g_assert_true(json_object_get_double_member(o, "fps") > 0);
        /* CPU time of the calling thread: positive, and with one thread no more than the wall time */
        double cpu = json_object_get_double_member(o, "cpu_ms_p50");
        g_assert_true(cpu > 0 && (i > 0 || cpu <= json_object_get_double_member(o, "infer_ms_p99") * 1.05));
        JsonObject *st = json_object_get_object_member(o, "stage_ms");
        /* on exactly two threads the bridge runs beside dec5..dec3, one stage for both */
        const char *stages[] = {"preprocess", "enc1", "enc6", i == 1 ? "lscab+dec5-dec3" : "lscab", "dec1", "head",
                                "postprocess"};
        for (guint k = 0; k < G_N_ELEMENTS(stages); k++)
            g_assert_true(json_object_has_member(st, stages[k]));
        g_assert_true(json_object_has_member(st, "dec5") == (i != 1));
        g_assert_true(json_object_has_member(o, "train_img_per_s") == (i == 0));
        g_assert_true(json_object_get_null_member(o, "weights")); /* seeded random weights */
        g_object_unref(parser);
    }
    g_strfreev(lines);
    g_free(text), g_free(args);

    /* --weights: the file's architecture (here the MALUNet teacher), recorded with its path */
    char *weights = g_build_filename(g_getenv("POLYPSEG_REPO"), "weights", "malunet-kvasir.safetensors", NULL);
    args = g_strdup_printf("--weights %s --size 128 --frames 2 --steps 0 --json %s", weights, json);
    g_free(run_tool("polypseg-bench", args));
    g_assert_true(g_file_get_contents(json, &text, NULL, NULL));
    JsonParser *parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, text, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpstr(json_object_get_string_member(o, "arch"), ==, "malunet");
    g_assert_cmpstr(json_object_get_string_member(o, "weights"), ==, weights);
    g_assert_cmpint(json_object_get_int_member(o, "params"), ==, 177943);
    g_object_unref(parser);
    int code = 0; /* a missing file is refused, and so is --arch beside --weights */
    g_free(args), args = g_strdup_printf("--weights %s/none.safetensors --steps 0", tmpdir);
    g_free(run_tool_status("polypseg-bench", args, &code));
    g_assert_cmpint(code, ==, 2);
    g_free(args), args = g_strdup_printf("--weights %s --arch microaunet --steps 0", weights);
    g_free(run_tool_status("polypseg-bench", args, &code));
    g_assert_cmpint(code, ==, 2);
    g_free(text), g_free(args), g_free(json), g_free(weights);
}

/* polypseg-bench-pointwise (built where OpenBLAS is, which scripts/setup.sh installs): a JSON
 * line per encoder shape of both models, with positive times. */
static void test_bench_pointwise(void)
{
    char *exe = g_build_filename(g_getenv("POLYPSEG_BUILD"), "core", "polypseg-bench-pointwise", NULL);
    const gboolean built = g_file_test(exe, G_FILE_TEST_IS_EXECUTABLE);
    g_free(exe);
    if (!built) {
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
            g_test_fail_printf("polypseg-bench-pointwise was not built: OpenBLAS (libopenblas-dev) is missing");
        else
            g_test_skip("polypseg-bench-pointwise not built (no OpenBLAS: scripts/setup.sh installs it)");
        return;
    }
    char *out = run_tool("polypseg-bench-pointwise", "--size 64 --rounds 1 --json");
    char **lines = g_strsplit(g_strstrip(out), "\n", -1);
    g_assert_cmpint(g_strv_length(lines), ==, 32); /* 16 shapes of each model */
    for (int i = 0; lines[i]; i++) {
        JsonParser *parser = json_parser_new();
        g_assert_true(json_parser_load_from_data(parser, lines[i], -1, NULL));
        JsonObject *o = json_node_get_object(json_parser_get_root(parser));
        g_assert_cmpstr(json_object_get_string_member(o, "arch"), ==, i < 16 ? "microaunet" : "microaunet-w8");
        g_assert_true(json_object_get_double_member(o, "ours_us") > 0);
        g_assert_true(json_object_get_double_member(o, "sgemm_us") > 0);
        g_assert_true(json_object_get_double_member(o, "sgemm_bias_us") > 0);
        g_object_unref(parser);
    }
    g_strfreev(lines);
    g_free(out);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("polypseg-train-XXXXXX", NULL);
    g_test_add_data_func("/train/model-gradients", "microaunet_train_128", test_model_gradients);
    g_test_add_data_func("/train/model-gradients-malunet", "malunet_train_128", test_model_gradients);
    g_test_add_func("/train/loss-gradients", test_loss_gradients);
    g_test_add_func("/train/focal", test_focal);
    g_test_add_func("/train/focal-and-copy-paste-recorded", test_focal_and_copy_paste_recorded);
    g_test_add_func("/train/tversky", test_tversky);
    g_test_add_func("/train/structure-loss", test_structure_loss);
    g_test_add_func("/train/lovasz-hinge", test_lovasz_hinge);
    g_test_add_func("/train/deep-supervision", test_deep_supervision);
    g_test_add_func("/train/kd-loss", test_kd_loss);
    g_test_add_func("/train/mse-and-kd-weights", test_mse_and_kd_weights);
    g_test_add_func("/train/adamw", test_adamw);
    g_test_add_func("/train/cosine-schedule", test_cosine_schedule);
    g_test_add_func("/train/ema", test_ema);
    g_test_add_data_func("/train/resume-is-exact", "", test_resume_is_exact);
    g_test_add_data_func("/train/resume-is-exact-deep-supervision", "--deep-supervision 0.5", test_resume_is_exact);
    g_test_add_data_func("/train/resume-is-exact-multi-scale", "--multi-scale 1,2 --structure-loss 2",
                         test_resume_is_exact);
    g_test_add_data_func("/train/resume-is-exact-ema", "--ema 0.99", test_resume_is_exact);
    g_test_add_func("/train/kill9", test_kill9_leaves_valid_checkpoint);
    g_test_add_func("/train/distill-resume-is-exact", test_distill_resume_is_exact);
    g_test_add_func("/train/init-from-weights", test_init_from_weights);
    g_test_add_func("/train/bad-arguments", test_bad_arguments);
    g_test_add_func("/train/snapshots", test_snapshots);
    g_test_add_func("/tools/add-data-and-per-image", test_add_data_and_per_image);
    g_test_add_func("/tools/bench-json", test_bench_json);
    g_test_add_func("/tools/bench-pointwise", test_bench_pointwise);
    int rc = g_test_run();
    tu_remove_tree(tmpdir);
    return rc;
}
