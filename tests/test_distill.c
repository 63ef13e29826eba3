/* Distillation: the two stages' losses reach the student's parameters and (stage 1 only) the
 * feature adapters with the gradients central differences give; adapters are added once and
 * detached cleanly; teachers and adapters that do not fit are refused with a message. */
#include <math.h>
#include <string.h>
#include "backward.h"
#include "distill.h"
#include "optim.h"
#include "train_params.h"
#include "test_util.h"

#define SIDE 128

typedef struct fixture {
    ps_model *student;
    ps_distiller *kd;
    ps_tensor *x, *mask;
} fixture;

static void setup(fixture *f, const ps_distill_opts *o)
{
    f->student = ps_model_new("microaunet", NULL, 0, 3, NULL);
    ps_model *teacher = ps_model_new("malunet", NULL, 0, 4, NULL);
    GError *err = NULL;
    f->kd = ps_distiller_new(teacher, f->student, o, 5, &err);
    g_assert_no_error(err);
    GRand *r = g_rand_new_with_seed(8);
    f->x = ps_tensor_new(2, 3, SIDE, SIDE);
    f->mask = ps_tensor_new(2, 1, SIDE, SIDE);
    tu_fill_uniform(f->x->data, ps_numel(f->x), r, -2, 2);
    for (int n = 0; n < 2; n++) /* a disc per image */
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                f->mask->data[(n * SIDE + y) * SIDE + x] = hypot(x - 50 - 20 * n, y - 60) < 30;
    g_rand_free(r);
}

static void teardown(fixture *f)
{
    ps_distiller_free(f->kd);
    ps_model_free(f->student);
    ps_tensor_free(f->x);
    ps_tensor_free(f->mask);
}

/* The stage's distillation loss alone; with `backward` its gradients land in the parameters. */
static double distill_loss(fixture *f, int stage, int backward)
{
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    if (backward)
        ps_model_zero_grad(f->student);
    ps_tensor *features[5];
    ps_tensor *logits = ps_model_forward(f->student, &g, f->x, features);
    logits->grad = ps_arena_calloc(arena, ps_numel(logits) * sizeof(float));
    double loss = ps_distiller_loss(f->kd, &g, stage, f->x, f->mask, logits, features);
    if (backward)
        ps_backward(&g, logits);
    ps_graph_release(&g);
    ps_arena_free(arena);
    return loss;
}

/* Central differences on the `picks` largest-gradient entries of parameter `name`. */
static void check_param(fixture *f, int stage, const char *name, int picks)
{
    ps_tensor *p = ps_model_find(f->student, name)->t;
    const size_t n = ps_numel(p);
    float *analytic = g_memdup2(p->grad, n * sizeof(float));
    for (int k = 0; k < picks; k++) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (fabsf(analytic[i]) > fabsf(analytic[best]))
                best = i;
        const float keep = p->data[best], h = 1e-3f * fmaxf(1.0f, fabsf(keep));
        p->data[best] = keep + h;
        const double up = distill_loss(f, stage, 0);
        p->data[best] = keep - h;
        const double down = distill_loss(f, stage, 0);
        p->data[best] = keep;
        const double numeric = (up - down) / (2 * h);
        g_test_message("stage %d %s[%zu]: analytic %.6g numeric %.6g", stage, name, best, analytic[best], numeric);
        if (!(fabs(numeric - analytic[best]) <= 1e-4 + 2e-2 * fabs(numeric)))
            g_test_fail_printf("stage %d %s[%zu]: analytic %g, central difference %g", stage, name, best,
                               analytic[best], numeric);
        analytic[best] = 0; /* next pick */
    }
    g_free(analytic);
}

static gboolean all_zero(const ps_tensor *t)
{
    for (size_t i = 0; i < ps_numel(t); i++)
        if (t->grad[i] != 0)
            return FALSE;
    return TRUE;
}

static void test_stage1_gradients(void)
{
    fixture f;
    ps_distill_opts o = ps_distill_defaults(2);
    o.feature_weight = 0.5f; /* not 1, so a weight applied twice or not at all shows */
    o.kd_weight = 1.5f;
    setup(&f, &o);
    const double loss = distill_loss(&f, 1, 1);
    g_assert_true(isfinite(loss) && loss > 0);
    check_param(&f, 1, PS_DISTILL_PREFIX "adapter1.weight", 3);
    check_param(&f, 1, PS_DISTILL_PREFIX "adapter5.bias", 2);
    /* Reached through the KL and the features. A GroupNorm's scale before a max-pool leaves every
     * pool's choice as it is, so central differences see no kinks (a conv weight's would). */
    check_param(&f, 1, "gn5.weight", 3);
    check_param(&f, 1, "gn5.bias", 2);
    check_param(&f, 1, "final.weight", 2);       /* through the KL only */
    teardown(&f);
}

static void test_stage2_gradients(void)
{
    fixture f;
    ps_distill_opts o = ps_distill_defaults(2);
    o.focus_weight = 0.7f;
    setup(&f, &o);
    const double loss = distill_loss(&f, 2, 1);
    g_assert_true(isfinite(loss) && loss > 0);
    g_assert_true(all_zero(ps_model_find(f.student, PS_DISTILL_PREFIX "adapter3.weight")->t));
    check_param(&f, 2, "gn5.weight", 3);
    check_param(&f, 2, "final.weight", 2);
    teardown(&f);
}

/* Each term carries its own weight: stage 2 without gains is stage 1's KL (features off) times
 * focus/kd weight; the feature term grows linearly with its weight; a boundary band changes
 * stage 2. */
static void test_term_weights(void)
{
    fixture f;
    ps_distill_opts o = ps_distill_defaults(2);
    o.feature_weight = 0;
    o.boundary_gain = o.confidence_gain = 0;
    o.kd_weight = 1.5f;
    o.focus_weight = 0.7f;
    setup(&f, &o);
    const double kl1 = distill_loss(&f, 1, 0), kl2 = distill_loss(&f, 2, 0);
    g_assert_cmpfloat_with_epsilon(kl2, kl1 * 0.7 / 1.5, 1e-6 * kl1);
    teardown(&f);
    double with_features[3];
    for (int fw = 1; fw <= 2; fw++) {
        o.feature_weight = (float)fw;
        setup(&f, &o);
        with_features[fw] = distill_loss(&f, 1, 0) - kl1;
        teardown(&f);
    }
    g_test_message("KL %.6g; feature term at weight 1: %.6g, at 2: %.6g", kl1, with_features[1], with_features[2]);
    g_assert_cmpfloat(with_features[1], >, 0);
    g_assert_cmpfloat_with_epsilon(with_features[2], 2 * with_features[1], 1e-5 * with_features[1]);
    o.feature_weight = 0;
    o.boundary_gain = 4;
    setup(&f, &o);
    const double banded = distill_loss(&f, 2, 0);
    g_test_message("stage 2 KL %.6g, with a boundary band %.6g", kl2, banded);
    g_assert_cmpfloat(fabs(banded - kl2), >, 1e-6 * kl2);
    teardown(&f);
}

/* A resumed run's student already holds the adapters: they are reused, not added again, and
 * dropping them leaves exactly the architecture's parameters. */
static void test_adapters_once_and_dropped(void)
{
    fixture f;
    ps_distill_opts o = ps_distill_defaults(4);
    setup(&f, &o);
    const int with = f.student->n_params;
    ps_model *fresh = ps_model_new("microaunet", NULL, 0, 3, NULL);
    g_assert_cmpint(with, ==, fresh->n_params + 10);
    g_assert_cmpint(ps_model_find(f.student, PS_DISTILL_PREFIX "adapter2.weight")->t->n, ==, 16); /* malunet c2 */
    g_assert_cmpint(ps_model_find(f.student, PS_DISTILL_PREFIX "adapter2.weight")->t->c, ==, 8);  /* microaunet c2 */
    ps_distiller *again = ps_distiller_new(ps_model_new("malunet", NULL, 0, 4, NULL), f.student, &o, 5, NULL);
    g_assert_nonnull(again);
    g_assert_cmpint(f.student->n_params, ==, with);
    ps_distiller_free(again);
    g_assert_cmpint(ps_distiller_stage(f.kd, 1), ==, 1);
    g_assert_cmpint(ps_distiller_stage(f.kd, 2), ==, 2); /* defaults: half of 4 epochs */
    ps_distiller_detach(f.kd, f.student);
    g_assert_cmpint(f.student->n_params, ==, fresh->n_params);
    for (int i = 0; i < fresh->n_params; i++)
        g_assert_cmpstr(f.student->params[i].name, ==, fresh->params[i].name);
    ps_model_free(fresh);
    teardown(&f);
}

/* ps_distiller_new refuses, with a message containing `why`, and changes neither model. */
static void assert_refused(ps_model *teacher, ps_model *student, const char *why)
{
    const int n_params = student->n_params;
    const ps_distill_opts o = ps_distill_defaults(2);
    GError *err = NULL;
    g_assert_null(ps_distiller_new(teacher, student, &o, 1, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, why));
    g_clear_error(&err);
    g_assert_cmpint(student->n_params, ==, n_params);
}

/* Refusals leave the student as it was and the teacher with the caller. */
static void test_mismatched_teacher(void)
{
    ps_model *student = ps_model_new("microaunet", NULL, 0, 1, NULL);
    ps_model *teacher = ps_model_new("malunet", NULL, 0, 2, NULL);
    const float mean0 = teacher->info.mean[0];
    teacher->info.mean[0] += 0.1f;
    assert_refused(teacher, student, "normalise");
    teacher->info.mean[0] = mean0;
    /* a checkpoint with only one of the adapters, then one with a mis-shaped adapter */
    const int64_t wrong[4] = {16, 8, 3, 3}, bias[1] = {8};
    ps_model_add_param(student, PS_DISTILL_PREFIX "adapter1.bias", 1, 1, bias);
    assert_refused(teacher, student, "1 of the 10");
    ps_model_drop_params(student, PS_DISTILL_PREFIX);
    ps_model_add_param(student, PS_DISTILL_PREFIX "adapter2.weight", 1, 4, wrong);
    assert_refused(teacher, student, "adapter2.weight");
    ps_model_free(teacher); /* still ours after every refusal */
    ps_model_free(student);
}

/* The teacher over test-time-augmentation views: at 2 views the mean of the plain and the
 * mirrored run's probabilities (the mirror built here, not through ps_view_source); at 8
 * views transposing the input transposes the result; the features are the plain run's. */
static void test_teacher_tta(void)
{
    enum { S = 64, N = 2 };
    ps_model *teacher = ps_model_new("malunet", NULL, 0, 4, NULL);
    GRand *r = g_rand_new_with_seed(12);
    ps_tensor *x = ps_tensor_new(N, 3, S, S), *mirror = ps_tensor_new(N, 3, S, S), *xt = ps_tensor_new(N, 3, S, S);
    ps_tensor *scratch = ps_tensor_new(N, 3, S, S), *out = ps_tensor_new(N, 1, S, S), *out_t = ps_tensor_new(N, 1, S, S);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
    for (int p = 0; p < N * 3; p++)
        for (int y = 0; y < S; y++)
            for (int c = 0; c < S; c++) {
                mirror->data[(p * S + y) * S + c] = x->data[(p * S + y) * S + (S - 1 - c)];
                xt->data[(p * S + y) * S + c] = x->data[(p * S + c) * S + y];
            }
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 0);
    ps_tensor *plain_feat[5], *feat[5];
    float *plain = g_memdup2(ps_model_forward(teacher, &g, x, plain_feat)->data, N * S * S * sizeof(float));
    float *feat0 = g_memdup2(plain_feat[0]->data, ps_numel(plain_feat[0]) * sizeof(float));
    const size_t feat0_n = ps_numel(plain_feat[0]);
    ps_graph_clear(&g);
    float *mirrored = g_memdup2(ps_model_forward(teacher, &g, mirror, NULL)->data, N * S * S * sizeof(float));

    /* one view: the plain pass's logits themselves */
    g_assert_cmpmem(ps_teacher_logits(teacher, &g, x, 1, NULL, NULL, NULL)->data, N * S * S * sizeof(float), plain,
                    N * S * S * sizeof(float));
    g_assert_true(ps_teacher_logits(teacher, &g, x, 2, scratch, out, feat) == out);
    double worst = 0;
    int clamped = 0;
    for (int n = 0; n < N; n++)
        for (int y = 0; y < S; y++)
            for (int c = 0; c < S; c++) {
                const double p0 = 1 / (1 + exp(-plain[(n * S + y) * S + c]));
                const double p1 = 1 / (1 + exp(-mirrored[(n * S + y) * S + (S - 1 - c)]));
                const float got_z = out->data[(n * S + y) * S + c];
                const double got = 1 / (1 + exp(-got_z)), want_z = log((p0 + p1) / 2) - log1p(-(p0 + p1) / 2);
                worst = fmax(worst, fabs((p0 + p1) / 2 - got)); /* as probabilities: the logits are clamped */
                g_assert_cmpfloat(fabsf(got_z), <=, PS_TEACHER_LOGIT_MAX);
                if (fabs(want_z) > PS_TEACHER_LOGIT_MAX + 1) { /* a random teacher reaches well past the clamp */
                    clamped++;
                    g_assert_cmpfloat(got_z, ==, want_z > 0 ? PS_TEACHER_LOGIT_MAX : -PS_TEACHER_LOGIT_MAX);
                }
            }
    g_test_message("2 views: max |probability error| %g; %d of %d logits past the clamp", worst, clamped, N * S * S);
    g_assert_cmpint(clamped, >, 0);
    g_assert_cmpfloat(worst, <, 1e-6);
    g_assert_cmpmem(feat[0]->data, feat0_n * sizeof(float), feat0, feat0_n * sizeof(float));

    ps_teacher_logits(teacher, &g, x, 8, scratch, out, NULL);
    ps_teacher_logits(teacher, &g, xt, 8, scratch, out_t, NULL);
    worst = 0;
    for (int n = 0; n < N; n++)
        for (int y = 0; y < S; y++)
            for (int c = 0; c < S; c++)
                worst = fmax(worst, fabs(out->data[(n * S + y) * S + c] - out_t->data[(n * S + c) * S + y]));
    g_test_message("8 views, transposed input: max |logit difference| %g", worst);
    g_assert_cmpfloat(worst, <, 1e-4);
    /* and the views do change the result (a random teacher is not symmetric) */
    worst = 0;
    for (size_t i = 0; i < ps_numel(out); i++)
        worst = fmax(worst, fabs(out->data[i] - plain[i]));
    g_assert_cmpfloat(worst, >, 1e-3);

    g_free(plain), g_free(mirrored), g_free(feat0);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(x), ps_tensor_free(mirror), ps_tensor_free(xt), ps_tensor_free(scratch);
    ps_tensor_free(out), ps_tensor_free(out_t);
    ps_model_free(teacher);
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/distill/stage1-gradients", test_stage1_gradients);
    g_test_add_func("/distill/stage2-gradients", test_stage2_gradients);
    g_test_add_func("/distill/term-weights", test_term_weights);
    g_test_add_func("/distill/adapters-once-and-dropped", test_adapters_once_and_dropped);
    g_test_add_func("/distill/mismatched-teacher", test_mismatched_teacher);
    g_test_add_func("/distill/teacher-tta", test_teacher_tta);
    return g_test_run();
}
