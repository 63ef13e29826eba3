/* Forward reference ops against PyTorch fixtures (scripts/make_op_fixtures.py). */
#include <stdlib.h>
#include "test_util.h"
#include "../core/lib/ops.h"

#define TOL 1e-5

/* ---- fixture helpers ---- */

static int meta_int(const ps_st_file *f, const char *key)
{
    const char *v = ps_st_meta(f, key);
    if (!v)
        g_error("fixture has no metadata '%s'", key);
    return atoi(v);
}

static float meta_float(const ps_st_file *f, const char *key)
{
    const char *v = ps_st_meta(f, key);
    if (!v)
        g_error("fixture has no metadata '%s'", key);
    return (float)g_ascii_strtod(v, NULL);
}

/* A per-channel fixture vector as a (C,1,1,1) tensor, or NULL when the fixture lacks it. */
static ps_tensor *vec_or_null(const ps_st_file *f, const char *name)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    return t ? tu_tensor_from_as(f, name, (int)t->numel, 1, 1, 1) : NULL;
}

/* Compares `got` with fixture tensor `name` (same element count) to TOL. */
static void check(const char *label, const float *got, size_t n, const ps_st_file *f,
                  const char *name)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    g_assert_nonnull(t);
    g_assert_cmpuint(t->numel, ==, n);
    tu_assert_close(label, got, t->data, n, TOL);
}

/* A new tensor with the shape of the fixture's output "y" (which must be 4-D). */
static ps_tensor *new_like_y(const ps_st_file *f)
{
    const ps_st_tensor *t = ps_st_find(f, "y");
    g_assert_nonnull(t);
    g_assert_cmpint(t->ndim, ==, 4);
    return ps_tensor_new((int)t->shape[0], (int)t->shape[1], (int)t->shape[2], (int)t->shape[3]);
}

static void free_all(ps_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        ps_tensor_free(ts[i]);
}

/* ---- shape helper ---- */

static void test_conv_out_size(void)
{
    g_assert_cmpint(ps_conv2d_out_size(8, 3, 1, 1, 1), ==, 8);  /* 'same' 3x3 */
    g_assert_cmpint(ps_conv2d_out_size(8, 3, 1, 2, 1), ==, 4);
    g_assert_cmpint(ps_conv2d_out_size(7, 3, 1, 2, 1), ==, 4);
    g_assert_cmpint(ps_conv2d_out_size(9, 3, 2, 1, 2), ==, 9);  /* 'same' dilated 3x3 */
    g_assert_cmpint(ps_conv2d_out_size(6, 1, 0, 1, 1), ==, 6);  /* pointwise */
    g_assert_cmpint(ps_conv2d_out_size(14, 7, 0, 1, 1), ==, 8); /* 7x7 valid */
    g_assert_cmpint(ps_conv2d_out_size(7, 7, 0, 1, 1), ==, 1);
    g_assert_cmpint(ps_conv2d_out_size(5, 7, 0, 1, 1), ==, 0);  /* kernel larger than input */
    g_assert_cmpint(ps_conv2d_out_size(8, 3, 2, 2, 2), ==, 4);
    g_assert_cmpint(ps_conv2d_out_size(256, 3, 1, 1, 1), ==, 256);
}

/* ---- convolution ---- */

static ps_conv2d_params conv_params(const ps_st_file *f)
{
    ps_conv2d_params p = {meta_int(f, "stride"), meta_int(f, "pad_h"), meta_int(f, "pad_w"),
                          meta_int(f, "dilation"), meta_int(f, "groups")};
    return p;
}

static void test_conv2d(gconstpointer data)
{
    const char *name = data;
    char *rel = g_strdup_printf("ops/%s.safetensors", name);
    ps_st_file *f = tu_load_fixture(rel);
    ps_tensor *x = tu_tensor_from(f, "x"), *w = tu_tensor_from(f, "w"), *b = vec_or_null(f, "b");
    const ps_conv2d_params p = conv_params(f);
    const int ho = ps_conv2d_out_size(x->h, w->h, p.pad_h, p.stride, p.dilation);
    const int wo = ps_conv2d_out_size(x->w, w->w, p.pad_w, p.stride, p.dilation);
    ps_tensor *y = ps_tensor_new(x->n, w->n, ho, wo);
    ps_conv2d_ref(x, w, b, &p, y);
    check(name, y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, w, b, y};
    free_all(ts, 4);
    ps_st_free(f);
    g_free(rel);
}

/* Reflection pad 3 then a 7x7 conv 2 -> 1, as in spatial attention. */
static void test_conv2d_7x7_reflect(void)
{
    ps_st_file *f = tu_load_fixture("ops/conv2d_7x7_reflect.safetensors");
    const int pad = meta_int(f, "reflect_pad");
    ps_tensor *x = tu_tensor_from(f, "x"), *w = tu_tensor_from(f, "w"), *b = vec_or_null(f, "b");
    ps_tensor *xp = ps_tensor_new(x->n, x->c, x->h + 2 * pad, x->w + 2 * pad);
    ps_reflect_pad_ref(x, pad, xp);
    const ps_conv2d_params p = conv_params(f);
    ps_tensor *y = new_like_y(f);
    g_assert_cmpint(y->h, ==, ps_conv2d_out_size(xp->h, w->h, p.pad_h, p.stride, p.dilation));
    ps_conv2d_ref(xp, w, b, &p, y);
    check("conv2d_7x7_reflect", y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, w, b, xp, y};
    free_all(ts, 5);
    ps_st_free(f);
}

static void test_conv1d(void)
{
    ps_st_file *f = tu_load_fixture("ops/conv1d.safetensors");
    const ps_st_tensor *tx = ps_st_find(f, "x"), *tw = ps_st_find(f, "w");
    ps_tensor *x = tu_tensor_from_as(f, "x", (int)tx->shape[0], (int)tx->shape[1], 1,
                                     (int)tx->shape[2]);
    ps_tensor *w = tu_tensor_from_as(f, "w", (int)tw->shape[0], (int)tw->shape[1], 1,
                                     (int)tw->shape[2]);
    const int stride = meta_int(f, "stride"), pad = meta_int(f, "pad");
    const int dil = meta_int(f, "dilation"), groups = meta_int(f, "groups");
    ps_tensor *y = ps_tensor_new(x->n, w->n, 1, ps_conv2d_out_size(x->w, w->w, pad, stride, dil));
    ps_conv1d_ref(x, w, NULL, stride, pad, dil, groups, y);
    check("conv1d", y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, w, y};
    free_all(ts, 3);
    ps_st_free(f);
}

static void test_linear(void)
{
    ps_st_file *f = tu_load_fixture("ops/linear.safetensors");
    const ps_st_tensor *tx = ps_st_find(f, "x"), *tw = ps_st_find(f, "w");
    ps_tensor *x = tu_tensor_from_as(f, "x", (int)tx->shape[0], (int)tx->shape[1], 1, 1);
    ps_tensor *w = tu_tensor_from_as(f, "w", (int)tw->shape[0], (int)tw->shape[1], 1, 1);
    ps_tensor *b = vec_or_null(f, "b");
    ps_tensor *y = ps_tensor_new(x->n, w->n, 1, 1);
    ps_linear_ref(x, w, b, y);
    check("linear", y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, w, b, y};
    free_all(ts, 4);
    ps_st_free(f);
}

/* ---- normalisation ---- */

static void test_batchnorm_eval(void)
{
    ps_st_file *f = tu_load_fixture("ops/batchnorm_eval.safetensors");
    ps_tensor *x = tu_tensor_from(f, "x"), *y = new_like_y(f);
    ps_tensor *gamma = vec_or_null(f, "gamma"), *beta = vec_or_null(f, "beta");
    ps_tensor *mean = vec_or_null(f, "mean"), *var = vec_or_null(f, "var");
    ps_batchnorm_ref(x, gamma, beta, mean, var, meta_float(f, "eps"), y);
    check("batchnorm_eval", y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, y, gamma, beta, mean, var};
    free_all(ts, 6);
    ps_st_free(f);
}

static void test_batchnorm_train(void)
{
    ps_st_file *f = tu_load_fixture("ops/batchnorm_train.safetensors");
    ps_tensor *x = tu_tensor_from(f, "x"), *y = new_like_y(f);
    ps_tensor *gamma = vec_or_null(f, "gamma"), *beta = vec_or_null(f, "beta");
    ps_tensor *rm = vec_or_null(f, "running_mean"), *rv = vec_or_null(f, "running_var");
    float *save_mean = g_new(float, x->c), *save_invstd = g_new(float, x->c);
    ps_batchnorm_train_ref(x, gamma, beta, rm, rv, meta_float(f, "momentum"),
                           meta_float(f, "eps"), y, save_mean, save_invstd);
    check("batchnorm_train y", y->data, ps_numel(y), f, "y");
    check("batchnorm_train running_mean", rm->data, ps_numel(rm), f, "running_mean_new");
    check("batchnorm_train running_var", rv->data, ps_numel(rv), f, "running_var_new");
    check("batchnorm_train save_mean", save_mean, (size_t)x->c, f, "save_mean");
    check("batchnorm_train save_invstd", save_invstd, (size_t)x->c, f, "save_invstd");

    /* Without running statistics the output is the same. */
    ps_tensor *y2 = new_like_y(f);
    ps_batchnorm_train_ref(x, gamma, beta, NULL, NULL, 0.1f, meta_float(f, "eps"), y2,
                           save_mean, save_invstd);
    check("batchnorm_train y (no running stats)", y2->data, ps_numel(y2), f, "y");
    g_free(save_mean);
    g_free(save_invstd);
    ps_tensor *ts[] = {x, y, y2, gamma, beta, rm, rv};
    free_all(ts, 7);
    ps_st_free(f);
}

static void test_groupnorm(void)
{
    ps_st_file *f = tu_load_fixture("ops/groupnorm.safetensors");
    ps_tensor *x = tu_tensor_from(f, "x"), *y = new_like_y(f);
    ps_tensor *gamma = vec_or_null(f, "gamma"), *beta = vec_or_null(f, "beta");
    ps_groupnorm_ref(x, meta_int(f, "groups"), gamma, beta, meta_float(f, "eps"), y);
    check("groupnorm", y->data, ps_numel(y), f, "y");
    ps_tensor *ts[] = {x, y, gamma, beta};
    free_all(ts, 4);
    ps_st_free(f);
}

/* Without affine parameters GroupNorm is the plain normalisation: per (n, group) zero mean
 * and unit (biased) variance up to eps. */
static void test_groupnorm_no_affine(void)
{
    GRand *r = g_rand_new_with_seed(7);
    ps_tensor *x = ps_tensor_new(2, 6, 5, 4), *y = ps_tensor_new(2, 6, 5, 4);
    tu_fill_uniform(x->data, ps_numel(x), r, -3.f, 5.f);
    ps_groupnorm_ref(x, 3, NULL, NULL, 1e-5f, y);
    const size_t block = 2 * 5 * 4;
    for (size_t g = 0; g < 2 * 3; g++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < block; i++) {
            s += y->data[g * block + i];
            ss += (double)y->data[g * block + i] * y->data[g * block + i];
        }
        g_assert_cmpfloat_with_epsilon(s / block, 0.0, 1e-5);
        g_assert_cmpfloat_with_epsilon(ss / block, 1.0, 1e-3);
    }
    ps_tensor_free(x);
    ps_tensor_free(y);
    g_rand_free(r);
}

/* ---- single-input ops: file name and kernel ---- */

typedef struct unary_case {
    const char *name;
    void (*fn)(const ps_tensor *x, ps_tensor *y);
} unary_case;

static void test_unary(gconstpointer data)
{
    const unary_case *uc = data;
    char *rel = g_strdup_printf("ops/%s.safetensors", uc->name);
    ps_st_file *f = tu_load_fixture(rel);
    ps_tensor *x = tu_tensor_from(f, "x"), *y = new_like_y(f);
    uc->fn(x, y);
    check(uc->name, y->data, ps_numel(y), f, "y");
    ps_tensor_free(x);
    ps_tensor_free(y);
    ps_st_free(f);
    g_free(rel);
}

static void reflect_pad_from_meta(const ps_tensor *x, ps_tensor *y)
{
    ps_reflect_pad_ref(x, (y->h - x->h) / 2, y);
}

/* External attention's eps, as the channel_normalize fixture's metadata says. */
static void channel_normalize_ea(const ps_tensor *x, ps_tensor *y)
{
    ps_channel_normalize_ref(x, 1e-9f, y);
}

static const unary_case unary_cases[] = {
    {"relu", ps_relu_ref},
    {"gelu", ps_gelu_ref},
    {"sigmoid", ps_sigmoid_ref},
    {"softmax_spatial", ps_softmax_spatial_ref},
    {"channel_normalize", channel_normalize_ea},
    {"maxpool_odd", ps_maxpool2x2_ref},
    {"maxpool_even", ps_maxpool2x2_ref},
    {"global_avgpool", ps_global_avgpool_ref},
    {"channel_mean_max", ps_channel_mean_max_ref},
    {"channel_mean_max_ties", ps_channel_mean_max_ref},
    {"reflect_pad", reflect_pad_from_meta},
    {"upsample2x", ps_upsample2x_ref},
    {"upsample2x_h1", ps_upsample2x_ref},
};

/* The output shape of the pad case comes from the fixture; check it agrees with the metadata. */
static void test_reflect_pad_meta(void)
{
    ps_st_file *f = tu_load_fixture("ops/reflect_pad.safetensors");
    const ps_st_tensor *x = ps_st_find(f, "x"), *y = ps_st_find(f, "y");
    g_assert_cmpint(y->shape[2], ==, x->shape[2] + 2 * meta_int(f, "pad"));
    g_assert_cmpint(y->shape[3], ==, x->shape[3] + 2 * meta_int(f, "pad"));
    ps_st_free(f);
}

/* ---- broadcasting binary ops ---- */

typedef struct binary_case {
    const char *name;
    void (*fn)(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);
} binary_case;

static void test_binary(gconstpointer data)
{
    const binary_case *bc = data;
    char *rel = g_strdup_printf("ops/%s.safetensors", bc->name);
    ps_st_file *f = tu_load_fixture(rel);
    ps_tensor *a = tu_tensor_from(f, "a"), *b = tu_tensor_from(f, "b"), *y = new_like_y(f);
    bc->fn(a, b, y);
    check(bc->name, y->data, ps_numel(y), f, "y");
    /* Swapping the operands gives the same result (both ops commute). */
    ps_tensor *y2 = new_like_y(f);
    bc->fn(b, a, y2);
    check(bc->name, y2->data, ps_numel(y2), f, "y");
    ps_tensor *ts[] = {a, b, y, y2};
    free_all(ts, 4);
    ps_st_free(f);
    g_free(rel);
}

static const binary_case binary_cases[] = {
    {"add_same", ps_add_ref}, {"add_n1hw", ps_add_ref}, {"add_nc11", ps_add_ref},
    {"add_1111", ps_add_ref}, {"add_nch1", ps_add_ref},
    {"mul_same", ps_mul_ref}, {"mul_n1hw", ps_mul_ref}, {"mul_nc11", ps_mul_ref},
    {"mul_1111", ps_mul_ref}, {"mul_nch1", ps_mul_ref},
};

/* ---- channel concat / slice ---- */

static void test_concat(void)
{
    ps_st_file *f = tu_load_fixture("ops/concat3.safetensors");
    ps_tensor *xs[3] = {tu_tensor_from(f, "x0"), tu_tensor_from(f, "x1"), tu_tensor_from(f, "x2")};
    ps_tensor *y = new_like_y(f);
    g_assert_cmpint(y->c, ==, xs[0]->c + xs[1]->c + xs[2]->c);
    ps_concat_channels_ref((const ps_tensor *const *)xs, 3, y);
    check("concat3", y->data, ps_numel(y), f, "y");
    free_all(xs, 3);
    ps_tensor_free(y);
    ps_st_free(f);
}

static void test_slice(void)
{
    ps_st_file *f = tu_load_fixture("ops/slice.safetensors");
    ps_tensor *x = tu_tensor_from(f, "x"), *y = new_like_y(f);
    g_assert_cmpint(y->c, ==, meta_int(f, "count"));
    ps_slice_channels_ref(x, meta_int(f, "c0"), y);
    check("slice", y->data, ps_numel(y), f, "y");
    ps_tensor_free(x);
    ps_tensor_free(y);
    ps_st_free(f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ops/conv2d_out_size", test_conv_out_size);
    static const char *const convs[] = {"conv2d_s1", "conv2d_s2", "conv2d_dw_dil2", "conv2d_pw",
                                        "conv2d_grouped"};
    for (size_t i = 0; i < G_N_ELEMENTS(convs); i++) {
        char *path = g_strdup_printf("/ops/%s", convs[i]);
        g_test_add_data_func(path, convs[i], test_conv2d);
        g_free(path);
    }
    g_test_add_func("/ops/conv2d_7x7_reflect", test_conv2d_7x7_reflect);
    g_test_add_func("/ops/conv1d", test_conv1d);
    g_test_add_func("/ops/linear", test_linear);
    g_test_add_func("/ops/batchnorm_eval", test_batchnorm_eval);
    g_test_add_func("/ops/batchnorm_train", test_batchnorm_train);
    g_test_add_func("/ops/groupnorm", test_groupnorm);
    g_test_add_func("/ops/groupnorm_no_affine", test_groupnorm_no_affine);
    for (size_t i = 0; i < G_N_ELEMENTS(unary_cases); i++) {
        char *path = g_strdup_printf("/ops/%s", unary_cases[i].name);
        g_test_add_data_func(path, &unary_cases[i], test_unary);
        g_free(path);
    }
    g_test_add_func("/ops/reflect_pad_meta", test_reflect_pad_meta);
    for (size_t i = 0; i < G_N_ELEMENTS(binary_cases); i++) {
        char *path = g_strdup_printf("/ops/%s", binary_cases[i].name);
        g_test_add_data_func(path, &binary_cases[i], test_binary);
        g_free(path);
    }
    g_test_add_func("/ops/concat3", test_concat);
    g_test_add_func("/ops/slice", test_slice);
    return g_test_run();
}
