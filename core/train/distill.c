#include "distill.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "preprocess.h"
#include "loss.h"

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

static char *adapter_name(int k, const char *leaf)
{
    return g_strdup_printf(PS_DISTILL_PREFIX "adapter%d.%s", k + 1, leaf);
}

/* The student's adapters: 0 when it has none (a new run), 1 when it has all five, each of the
 * shape student and teacher need (a resumed run), -1 (err set) otherwise. */
static int adapters_present(ps_model *student, const ps_model *teacher, GError **err)
{
    int found = 0;
    for (int k = 0; k < N_FEATURES; k++)
        for (int leaf = 0; leaf < 2; leaf++) {
            char *name = adapter_name(k, leaf ? "bias" : "weight");
            const ps_param *p = ps_model_find(student, name);
            const int out = teacher->info.channels[k], in = student->info.channels[k];
            const gboolean fits = !p || (leaf ? p->ndim == 1 && p->shape[0] == out
                                              : p->ndim == 4 && p->shape[0] == out && p->shape[1] == in &&
                                                    p->shape[2] == 1 && p->shape[3] == 1);
            if (!fits)
                g_set_error(err, PS_MODEL_ERROR, 7, "%s does not fit a %d -> %d channel 1x1 adapter", name, in,
                            out);
            g_free(name);
            if (!fits)
                return -1;
            found += p != NULL;
        }
    if (found != 0 && found != 2 * N_FEATURES) {
        g_set_error(err, PS_MODEL_ERROR, 7, "%d of the %d adapter tensors are present; a checkpoint holds all "
                    "or none", found, 2 * N_FEATURES);
        return -1;
    }
    return found != 0;
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
    const int present = adapters_present(student, teacher, err);
    if (present < 0)
        return NULL;
    ps_distiller *d = g_new0(ps_distiller, 1);
    d->teacher = teacher;
    d->o = *o;
    d->arena = ps_arena_new();
    ps_graph_init(&d->g, d->arena, 0);
    GRand *rng = g_rand_new_with_seed((guint32)(seed ^ 0x5eed));
    for (int k = 0; k < N_FEATURES; k++) {
        const int in = student->info.channels[k], out = teacher->info.channels[k];
        char *wn = adapter_name(k, "weight"), *bn = adapter_name(k, "bias");
        if (!present) {
            const int64_t ws[4] = {out, in, 1, 1}, bs[1] = {out};
            ps_tensor *wt = ps_model_add_param(student, wn, 1, 4, ws);
            ps_model_add_param(student, bn, 1, 1, bs); /* zero */
            /* uniform with the He (fan-out) standard deviation of every other conv here */
            const double half_width = sqrt(3.0) * sqrt(2.0 / out);
            for (size_t i = 0; i < ps_numel(wt); i++)
                wt->data[i] = (float)g_rand_double_range(rng, -half_width, half_width);
        }
        d->adapter_w[k] = ps_model_find(student, wn)->t;
        d->adapter_b[k] = ps_model_find(student, bn)->t;
        g_free(wn);
        g_free(bn);
    }
    g_rand_free(rng);
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

void ps_model_drop_params(ps_model *m, const char *prefix)
{
    int kept = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (g_str_has_prefix(m->params[i].name, prefix)) {
            g_free(m->params[i].name);
            ps_tensor_free(m->params[i].t);
        } else {
            m->params[kept++] = m->params[i];
        }
    }
    m->n_params = kept;
}
