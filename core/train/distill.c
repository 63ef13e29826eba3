#include "distill.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "preprocess.h"
#include "loss.h"
#include "train_params.h"

#define N_FEATURES 5

struct ps_distiller {
    ps_model *teacher;
    ps_distill_opts o;
    ps_arena *arena; /* the teacher's pass and the stage-2 pixel weights, reset every batch */
    ps_graph g;
    ps_tensor *adapter_w[N_FEATURES], *adapter_b[N_FEATURES];
    ps_tensor *view_in, *tlogits; /* the teacher's viewed input and its logits, kept across batches */
};

ps_distill_opts ps_distill_defaults(int epochs)
{
    return (ps_distill_opts){.stage1_epochs = (epochs + 1) / 2, .temperature = 2.0f, .kd_weight = 1.0f,
                             .feature_weight = 1.0f, .focus_weight = 1.0f, .boundary_radius = 5,
                             .boundary_gain = 2.0f, .confidence_gain = 1.0f, .teacher_views = 1};
}

ps_distiller *ps_distiller_new(ps_model *teacher, ps_model *student, const ps_distill_opts *o,
                               uint64_t seed, GError **err)
{
    if (teacher->info.n_channels < N_FEATURES + 1 || student->info.n_channels < N_FEATURES + 1) {
        g_set_error(err, PS_MODEL_ERROR, 7, "teacher %s and student %s need %d encoder stages each",
                    teacher->info.arch, student->info.arch, N_FEATURES + 1);
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        if (teacher->info.mean[i] != student->info.mean[i] || teacher->info.std[i] != student->info.std[i]) {
            g_set_error(err, PS_MODEL_ERROR, 7, "teacher and student normalise their input differently "
                        "(mean/std); the teacher would see other numbers than it was trained on");
            return NULL;
        }
    int in[N_FEATURES], out[N_FEATURES];
    double bound[N_FEATURES];
    for (int k = 0; k < N_FEATURES; k++) {
        in[k] = student->info.channels[k];
        out[k] = teacher->info.channels[k];
        bound[k] = sqrt(3.0) * sqrt(2.0 / out[k]); /* uniform with the He (fan-out) std of every other conv here */
    }
    ps_tensor *w[N_FEATURES], *b[N_FEATURES];
    if (!ps_train_convs_1x1(student, PS_DISTILL_PREFIX "adapter", 1, N_FEATURES, in, out, bound,
                            (guint32)(seed ^ 0x5eed), "adapter", w, b, err))
        return NULL;
    ps_distiller *d = g_new0(ps_distiller, 1);
    d->teacher = teacher;
    d->o = *o;
    d->arena = ps_arena_new();
    ps_graph_init(&d->g, d->arena, 0);
    memcpy(d->adapter_w, w, sizeof w);
    memcpy(d->adapter_b, b, sizeof b);
    return d;
}

void ps_distiller_detach(ps_distiller *d, ps_model *student)
{
    ps_model_drop_params(student, PS_DISTILL_PREFIX);
    memset(d->adapter_w, 0, sizeof d->adapter_w);
    memset(d->adapter_b, 0, sizeof d->adapter_b);
}

void ps_distiller_free(ps_distiller *d)
{
    if (!d)
        return;
    ps_graph_release(&d->g);
    ps_arena_free(d->arena);
    ps_model_free(d->teacher);
    ps_tensor_free(d->view_in);
    ps_tensor_free(d->tlogits);
    g_free(d);
}

int ps_distiller_stage(const ps_distiller *d, int epoch)
{
    return epoch < d->o.stage1_epochs ? 1 : 2;
}

ps_tensor *ps_teacher_logits(ps_model *teacher, ps_graph *g, ps_tensor *images, int views, ps_tensor *scratch,
                             ps_tensor *out, ps_tensor **features)
{
    ps_graph_clear(g);
    if (views <= 1)
        return ps_model_forward(teacher, g, images, features);
    const int N = images->n, S = images->w;
    const size_t plane = (size_t)S * S;
    g_assert(images->h == S && ps_numel(scratch) == ps_numel(images) && out->n == N && out->c == 1 && out->h == S &&
             out->w == S);
    memset(out->data, 0, ps_numel(out) * sizeof(float)); /* the sum of the views' probabilities */
    /* the plain view last, so its features survive in the arena */
    for (int v = views - 1; v >= 0; v--) {
        ps_graph_clear(g);
        for (int p = 0; v > 0 && p < N * 3; p++)
            ps_view_gather(v, S, images->data + p * plane, scratch->data + p * plane, 0);
        const float *z = ps_model_forward(teacher, g, v ? scratch : images, v ? NULL : features)->data;
        for (int n = 0; v > 0 && n < N; n++) /* the view's map turned back (the input copy is spent) */
            ps_view_gather(ps_view_inverse(v), S, z + n * plane, scratch->data + n * plane, 0);
        if (v > 0)
            z = scratch->data;
        for (size_t i = 0; i < (size_t)N * plane; i++)
            out->data[i] += (float)(1.0 / (1.0 + exp(-(double)z[i])));
    }
    for (size_t i = 0; i < ps_numel(out); i++) {
        const double p = out->data[i] / views;
        out->data[i] = (float)fmax(-PS_TEACHER_LOGIT_MAX, fmin(PS_TEACHER_LOGIT_MAX, log(p) - log1p(-p)));
    }
    return out;
}

double ps_distiller_loss(ps_distiller *d, ps_graph *g, int stage, const ps_tensor *images,
                         const ps_tensor *masks, ps_tensor *logits, ps_tensor *const *features)
{
    if (d->o.teacher_views > 1 && (!d->tlogits || d->tlogits->n != images->n || d->tlogits->w != images->w)) {
        ps_tensor_free(d->view_in), ps_tensor_free(d->tlogits);
        d->view_in = ps_tensor_new(images->n, 3, images->h, images->w);
        d->tlogits = ps_tensor_new(images->n, 1, images->h, images->w);
    }
    ps_tensor *tfeat[N_FEATURES];
    ps_tensor *tlogits = ps_teacher_logits(d->teacher, &d->g, (ps_tensor *)images, d->o.teacher_views, d->view_in,
                                           d->tlogits, tfeat);
    if (stage == 2) {
        ps_tensor *pw = ps_arena_tensor(d->arena, logits->n, 1, logits->h, logits->w);
        ps_kd_pixel_weights(masks, tlogits, d->o.boundary_radius, d->o.boundary_gain, d->o.confidence_gain,
                            pw);
        return d->o.focus_weight * ps_loss_kd_binary(logits, tlogits, pw, d->o.temperature, d->o.focus_weight);
    }
    /* the losses return their unweighted value and add weighted gradients */
    double loss = d->o.kd_weight * ps_loss_kd_binary(logits, tlogits, NULL, d->o.temperature, d->o.kd_weight);
    g_assert(d->adapter_w[0]); /* not detached */
    if (d->o.feature_weight > 0)
        for (int k = 0; k < N_FEATURES; k++) {
            ps_tensor *a = ps_g_conv2d(g, features[k], d->adapter_w[k], d->adapter_b[k], 1, 0, 1, 1);
            a->grad = ps_arena_calloc(g->arena, ps_numel(a) * sizeof(float));
            /* relative to the teacher feature's mean square, averaged over t1..t5: scale-free, so
             * no level's magnitude drowns the others or the segmentation loss */
            double ms = 0;
            for (size_t i = 0, n = ps_numel(tfeat[k]); i < n; i++)
                ms += (double)tfeat[k]->data[i] * tfeat[k]->data[i];
            const double w = d->o.feature_weight / (N_FEATURES * (ms / ps_numel(tfeat[k]) + 1e-6));
            loss += w * ps_loss_mse(a, tfeat[k], (float)w);
        }
    return loss;
}
