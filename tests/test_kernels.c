/* Every optimised kernel set this CPU runs, against the scalar references in ops.c, on random
 * shapes (including sizes that are not multiples of any vector width or block). */
#include <math.h>
#include "kernels.h"
#include "ops.h"
#include "test_util.h"

/* Max abs error relative to max(1, |ref|) per element: the approximations' contract. */
static double max_err_vs(const float *got, const float *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(d <= e))
            e = isnan(d) ? INFINITY : d;
    }
    return e;
}

static void check(const char *set, const char *what, double err, double tol)
{
    g_test_message("%s %s: max error %.3g (tolerance %.1g)", set, what, err, tol);
    if (!(err <= tol))
        g_test_fail_printf("%s %s: max error %.3g exceeds %.1g", set, what, err, tol);
}

static void test_unary(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(11);
    const size_t n = 100003;
    ps_tensor *x = ps_tensor_new(1, 1, 1, n), *want = ps_tensor_new(1, 1, 1, n), *got = ps_tensor_new(1, 1, 1, n);
    tu_fill_uniform(x->data, n, r, -12, 12);
    /* the edges: zero, tiny, huge, both signs */
    const float special[] = {0.f, -0.f, 1e-30f, -1e-30f, 1e-7f, 3.9f, -3.9f, 40.f, -40.f, 100.f, -100.f, 1e30f, -1e30f};
    for (size_t i = 0; i < G_N_ELEMENTS(special); i++)
        x->data[i] = special[i];
    ps_gelu_ref(x, want);
    k->gelu(x->data, got->data, n);
    check(k->name, "gelu", max_err_vs(got->data, want->data, n), 2e-6);
    ps_sigmoid_ref(x, want);
    k->sigmoid(x->data, got->data, n);
    check(k->name, "sigmoid", max_err_vs(got->data, want->data, n), 2e-6);
    ps_tensor_free(x);
    ps_tensor_free(want);
    ps_tensor_free(got);
    g_rand_free(r);
}

static void test_pointwise(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(12);
    for (int trial = 0; trial < 40; trial++) {
        int cin = g_rand_int_range(r, 1, 70), cout = g_rand_int_range(r, 1, 70);
        int h = g_rand_int_range(r, 1, 40), w = g_rand_int_range(r, 1, 40);
        int with_bias = trial % 2;
        ps_tensor *x = ps_tensor_new(1, cin, h, w), *wt = ps_tensor_new(cout, cin, 1, 1);
        ps_tensor *b = ps_tensor_new(cout, 1, 1, 1);
        ps_tensor *want = ps_tensor_new(1, cout, h, w), *got = ps_tensor_new(1, cout, h, w);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
        tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
        tu_fill_uniform(b->data, ps_numel(b), r, -1, 1);
        ps_conv2d_params p = {1, 0, 0, 1, 1};
        ps_conv2d_ref(x, wt, with_bias ? b : NULL, &p, want);
        k->conv_pointwise(x->data, wt->data, with_bias ? b->data : NULL, got->data, cin, cout, (size_t)h * w);
        char label[96];
        g_snprintf(label, sizeof label, "pointwise %d->%d %dx%d", cin, cout, h, w);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(b), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

static void test_depthwise(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(13);
    for (int trial = 0; trial < 60; trial++) {
        int c = g_rand_int_range(r, 1, 20), h = g_rand_int_range(r, 1, 45), w = g_rand_int_range(r, 1, 45);
        int d = g_rand_int_range(r, 1, 6);
        int with_bias = trial % 2;
        ps_tensor *x = ps_tensor_new(1, c, h, w), *wt = ps_tensor_new(c, 1, 3, 3), *b = ps_tensor_new(c, 1, 1, 1);
        ps_tensor *want = ps_tensor_new(1, c, h, w), *got = ps_tensor_new(1, c, h, w);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
        tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
        tu_fill_uniform(b->data, ps_numel(b), r, -1, 1);
        ps_conv2d_params p = {1, d, d, d, c};
        ps_conv2d_ref(x, wt, with_bias ? b : NULL, &p, want);
        k->conv_depthwise3x3(x->data, wt->data, with_bias ? b->data : NULL, got->data, c, h, w, d);
        char label[96];
        g_snprintf(label, sizeof label, "depthwise c%d %dx%d dilation %d", c, h, w, d);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(b), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

static void test_best_is_runnable(void)
{
    const ps_kernels *best = ps_kernels_best();
    g_assert_nonnull(best);
    g_test_message("kernel set in use: %s", best->name);
    g_assert_true(ps_kernels_for(PS_ISA_SCALAR) != NULL); /* the portable set always runs */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kernels/best", test_best_is_runnable);
    for (int isa = 0; isa < PS_ISA_COUNT; isa++) {
        const ps_kernels *k = ps_kernels_for(isa);
        if (!k)
            continue; /* this CPU cannot run the set; the test says which ran */
        char *p;
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/unary", k->name), k, test_unary), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/pointwise", k->name), k, test_pointwise), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/depthwise3x3", k->name), k, test_depthwise), g_free(p);
    }
    return g_test_run();
}
