/* Backward ops: every gradient against PyTorch autograd fixtures (scripts/make_op_fixtures.py),
 * and against central finite differences of L = sum(y * r) on random inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "../core/train/backward_ops.h"

#define TOL_FIXTURE 1e-4
/* Gradient buffers start at this value so the tests also check that backward accumulates. */
#define PREFILL 1.0f

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

static ps_st_file *load_case(const char *name)
{
    char *rel = g_strdup_printf("ops/%s.safetensors", name);
    ps_st_file *f = tu_load_fixture(rel);
    g_free(rel);
    return f;
}

/* Fixture tensor as NCHW with a grad buffer holding PREFILL. */
static ps_tensor *input_as(const ps_st_file *f, const char *name, int n, int c, int h, int w)
{
    ps_tensor *t = tu_tensor_from_as(f, name, n, c, h, w);
    ps_tensor_ensure_grad(t);
    for (size_t i = 0; i < ps_numel(t); i++)
        t->grad[i] = PREFILL;
    return t;
}

static ps_tensor *input(const ps_st_file *f, const char *name)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    g_assert_nonnull(t);
    int d[4] = {1, 1, 1, 1};
    for (int i = 0; i < t->ndim; i++)
        d[4 - t->ndim + i] = (int)t->shape[i];
    return input_as(f, name, d[0], d[1], d[2], d[3]);
}

/* A per-channel parameter (C,1,1,1) with a PREFILL grad, or NULL when absent. */
static ps_tensor *param_or_null(const ps_st_file *f, const char *name)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    return t ? input_as(f, name, (int)t->numel, 1, 1, 1) : NULL;
}

/* Output tensor of the fixture's "y" shape whose grad is the fixture's upstream "gy". */
static ps_tensor *output(const ps_st_file *f)
{
    const ps_st_tensor *t = ps_st_find(f, "y"), *gy = ps_st_find(f, "gy");
    g_assert_nonnull(t);
    g_assert_nonnull(gy);
    g_assert_cmpint(t->ndim, ==, 4);
    ps_tensor *y = ps_tensor_new((int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                                 (int)t->shape[3]);
    ps_tensor_ensure_grad(y);
    g_assert_cmpuint(gy->numel, ==, ps_numel(y));
    memcpy(y->grad, gy->data, gy->numel * sizeof(float));
    return y;
}

/* Compares what backward added to t->grad with the fixture gradient `name`. */
static void check_grad(const char *op, const ps_tensor *t, const ps_st_file *f, const char *name)
{
    const ps_st_tensor *want = ps_st_find(f, name);
    g_assert_nonnull(want);
    const size_t n = ps_numel(t);
    g_assert_cmpuint(want->numel, ==, n);
    float *added = g_new(float, n);
    for (size_t i = 0; i < n; i++)
        added[i] = t->grad[i] - PREFILL;
    char *label = g_strdup_printf("%s %s", op, name);
    tu_assert_close(label, added, want->data, n, TOL_FIXTURE);
    g_free(label);
    g_free(added);
}

static void free_all(ps_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        ps_tensor_free(ts[i]);
}

/* ---- fixture tests ---- */

static ps_conv2d_params conv_params(const ps_st_file *f)
{
    ps_conv2d_params p = {meta_int(f, "stride"), meta_int(f, "pad_h"), meta_int(f, "pad_w"),
                          meta_int(f, "dilation"), meta_int(f, "groups")};
    return p;
}

static void test_fx_conv2d(gconstpointer data)
{
    const char *name = data;
    ps_st_file *f = load_case(name);
    ps_tensor *x = input(f, "x"), *w = input(f, "w"), *b = param_or_null(f, "b");
    ps_tensor *y = output(f);
    const ps_conv2d_params p = conv_params(f);
    ps_conv2d_ref(x, w, b, &p, y);
    ps_conv2d_backward(x, w, b, &p, y);
    check_grad(name, x, f, "gx");
    check_grad(name, w, f, "gw");
    if (b)
        check_grad(name, b, f, "gb");
    ps_tensor *ts[] = {x, w, b, y};
    free_all(ts, 4);
    ps_st_free(f);
}

/* Chain: reflection pad, 7x7 conv; the fixture's gx is the gradient of the unpadded input. */
static void test_fx_conv2d_7x7_reflect(void)
{
    ps_st_file *f = load_case("conv2d_7x7_reflect");
    const int pad = meta_int(f, "reflect_pad");
    ps_tensor *x = input(f, "x"), *w = input(f, "w"), *b = param_or_null(f, "b");
    ps_tensor *xp = ps_tensor_new(x->n, x->c, x->h + 2 * pad, x->w + 2 * pad);
    ps_tensor_ensure_grad(xp);
    ps_tensor *y = output(f);
    const ps_conv2d_params p = conv_params(f);
    ps_reflect_pad_ref(x, pad, xp);
    ps_conv2d_ref(xp, w, b, &p, y);
    ps_conv2d_backward(xp, w, b, &p, y);
    ps_reflect_pad_backward(x, pad, xp);
    check_grad("conv2d_7x7_reflect", x, f, "gx");
    check_grad("conv2d_7x7_reflect", w, f, "gw");
    check_grad("conv2d_7x7_reflect", b, f, "gb");
    ps_tensor *ts[] = {x, w, b, xp, y};
    free_all(ts, 5);
    ps_st_free(f);
}

static void test_fx_conv1d(void)
{
    ps_st_file *f = load_case("conv1d");
    const ps_st_tensor *tx = ps_st_find(f, "x"), *tw = ps_st_find(f, "w");
    ps_tensor *x = input_as(f, "x", (int)tx->shape[0], (int)tx->shape[1], 1, (int)tx->shape[2]);
    ps_tensor *w = input_as(f, "w", (int)tw->shape[0], (int)tw->shape[1], 1, (int)tw->shape[2]);
    const ps_st_tensor *ty = ps_st_find(f, "y");
    ps_tensor *y = ps_tensor_new((int)ty->shape[0], (int)ty->shape[1], 1, (int)ty->shape[2]);
    ps_tensor_ensure_grad(y);
    memcpy(y->grad, ps_st_find(f, "gy")->data, ps_numel(y) * sizeof(float));
    const int stride = meta_int(f, "stride"), pad = meta_int(f, "pad");
    const int dil = meta_int(f, "dilation"), groups = meta_int(f, "groups");
    ps_conv1d_ref(x, w, NULL, stride, pad, dil, groups, y);
    ps_conv1d_backward(x, w, NULL, stride, pad, dil, groups, y);
    check_grad("conv1d", x, f, "gx");
    check_grad("conv1d", w, f, "gw");
    ps_tensor *ts[] = {x, w, y};
    free_all(ts, 3);
    ps_st_free(f);
}

static void test_fx_linear(void)
{
    ps_st_file *f = load_case("linear");
    const ps_st_tensor *tx = ps_st_find(f, "x"), *tw = ps_st_find(f, "w");
    ps_tensor *x = input_as(f, "x", (int)tx->shape[0], (int)tx->shape[1], 1, 1);
    ps_tensor *w = input_as(f, "w", (int)tw->shape[0], (int)tw->shape[1], 1, 1);
    ps_tensor *b = param_or_null(f, "b");
    ps_tensor *y = ps_tensor_new(x->n, w->n, 1, 1);
    ps_tensor_ensure_grad(y);
    memcpy(y->grad, ps_st_find(f, "gy")->data, ps_numel(y) * sizeof(float));
    ps_linear_ref(x, w, b, y);
    ps_linear_backward(x, w, b, y);
    check_grad("linear", x, f, "gx");
    check_grad("linear", w, f, "gw");
    check_grad("linear", b, f, "gb");
    ps_tensor *ts[] = {x, w, b, y};
    free_all(ts, 4);
    ps_st_free(f);
}

static void test_fx_batchnorm_train(void)
{
    ps_st_file *f = load_case("batchnorm_train");
    ps_tensor *x = input(f, "x"), *y = output(f);
    ps_tensor *gamma = param_or_null(f, "gamma"), *beta = param_or_null(f, "beta");
    float *mean = g_new(float, x->c), *invstd = g_new(float, x->c);
    ps_batchnorm_train_ref(x, gamma, beta, NULL, NULL, 0.1f, meta_float(f, "eps"), y, mean,
                           invstd);
    ps_batchnorm_train_backward(x, gamma, beta, mean, invstd, y);
    check_grad("batchnorm_train", x, f, "gx");
    check_grad("batchnorm_train", gamma, f, "ggamma");
    check_grad("batchnorm_train", beta, f, "gbeta");
    g_free(mean);
    g_free(invstd);
    ps_tensor *ts[] = {x, y, gamma, beta};
    free_all(ts, 4);
    ps_st_free(f);
}

static void test_fx_groupnorm(void)
{
    ps_st_file *f = load_case("groupnorm");
    ps_tensor *x = input(f, "x"), *y = output(f);
    ps_tensor *gamma = param_or_null(f, "gamma"), *beta = param_or_null(f, "beta");
    const int groups = meta_int(f, "groups");
    const float eps = meta_float(f, "eps");
    ps_groupnorm_ref(x, groups, gamma, beta, eps, y);
    ps_groupnorm_backward(x, groups, gamma, beta, eps, y);
    check_grad("groupnorm", x, f, "gx");
    check_grad("groupnorm", gamma, f, "ggamma");
    check_grad("groupnorm", beta, f, "gbeta");
    ps_tensor *ts[] = {x, y, gamma, beta};
    free_all(ts, 4);
    ps_st_free(f);
}

/* Single-input ops: fixture name, forward and backward. */
typedef struct unary_case {
    const char *name;
    void (*fwd)(const ps_tensor *x, ps_tensor *y);
    void (*bwd)(const ps_tensor *x, const ps_tensor *y);
} unary_case;

/* The pad amount of a reflect-pad pair follows from the shapes. */
static void reflect_pad_fwd(const ps_tensor *x, ps_tensor *y)
{
    ps_reflect_pad_ref(x, (y->h - x->h) / 2, y);
}

static void reflect_pad_bwd(const ps_tensor *x, const ps_tensor *y)
{
    ps_reflect_pad_backward(x, (y->h - x->h) / 2, y);
}

/* External attention's eps, as the channel_normalize fixture's metadata says. */
#define EA_EPS 1e-9f

static void channel_normalize_fwd(const ps_tensor *x, ps_tensor *y)
{
    ps_channel_normalize_ref(x, EA_EPS, y);
}

static void channel_normalize_bwd(const ps_tensor *x, const ps_tensor *y)
{
    ps_channel_normalize_backward(x, EA_EPS, y);
}

static const unary_case unary_cases[] = {
    {"relu", ps_relu_ref, ps_relu_backward},
    {"gelu", ps_gelu_ref, ps_gelu_backward},
    {"sigmoid", ps_sigmoid_ref, ps_sigmoid_backward},
    {"softmax_spatial", ps_softmax_spatial_ref, ps_softmax_spatial_backward},
    {"channel_normalize", channel_normalize_fwd, channel_normalize_bwd},
    {"maxpool_odd", ps_maxpool2x2_ref, ps_maxpool2x2_backward},
    {"maxpool_even", ps_maxpool2x2_ref, ps_maxpool2x2_backward},
    {"global_avgpool", ps_global_avgpool_ref, ps_global_avgpool_backward},
    {"channel_mean_max", ps_channel_mean_max_ref, ps_channel_mean_max_backward},
    {"channel_mean_max_ties", ps_channel_mean_max_ref, ps_channel_mean_max_backward},
    {"reflect_pad", reflect_pad_fwd, reflect_pad_bwd},
    {"upsample2x", ps_upsample2x_ref, ps_upsample2x_backward},
    {"upsample2x_h1", ps_upsample2x_ref, ps_upsample2x_backward},
};

static void test_fx_unary(gconstpointer data)
{
    const unary_case *uc = data;
    ps_st_file *f = load_case(uc->name);
    ps_tensor *x = input(f, "x"), *y = output(f);
    uc->fwd(x, y);
    uc->bwd(x, y);
    check_grad(uc->name, x, f, "gx");
    ps_tensor_free(x);
    ps_tensor_free(y);
    ps_st_free(f);
}

typedef struct binary_case {
    const char *name;
    void (*fwd)(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);
    void (*bwd)(const ps_tensor *a, const ps_tensor *b, const ps_tensor *y);
} binary_case;

static const binary_case binary_cases[] = {
    {"add_same", ps_add_ref, ps_add_backward}, {"add_n1hw", ps_add_ref, ps_add_backward},
    {"add_nc11", ps_add_ref, ps_add_backward}, {"add_1111", ps_add_ref, ps_add_backward},
    {"add_nch1", ps_add_ref, ps_add_backward},
    {"mul_same", ps_mul_ref, ps_mul_backward}, {"mul_n1hw", ps_mul_ref, ps_mul_backward},
    {"mul_nc11", ps_mul_ref, ps_mul_backward}, {"mul_1111", ps_mul_ref, ps_mul_backward},
    {"mul_nch1", ps_mul_ref, ps_mul_backward},
};

static void test_fx_binary(gconstpointer data)
{
    const binary_case *bc = data;
    ps_st_file *f = load_case(bc->name);
    ps_tensor *a = input(f, "a"), *b = input(f, "b"), *y = output(f);
    bc->fwd(a, b, y);
    bc->bwd(a, b, y);
    check_grad(bc->name, a, f, "ga");
    check_grad(bc->name, b, f, "gb");
    ps_tensor *ts[] = {a, b, y};
    free_all(ts, 3);
    ps_st_free(f);
}

static void test_fx_concat(void)
{
    ps_st_file *f = load_case("concat3");
    ps_tensor *xs[3] = {input(f, "x0"), input(f, "x1"), input(f, "x2")};
    ps_tensor *y = output(f);
    ps_concat_channels_ref((const ps_tensor *const *)xs, 3, y);
    ps_concat_channels_backward(xs, 3, y);
    check_grad("concat3", xs[0], f, "gx0");
    check_grad("concat3", xs[1], f, "gx1");
    check_grad("concat3", xs[2], f, "gx2");
    free_all(xs, 3);
    ps_tensor_free(y);
    ps_st_free(f);
}

static void test_fx_slice(void)
{
    ps_st_file *f = load_case("slice");
    ps_tensor *x = input(f, "x"), *y = output(f);
    const int c0 = meta_int(f, "c0");
    ps_slice_channels_ref(x, c0, y);
    ps_slice_channels_backward(x, c0, y);
    check_grad("slice", x, f, "gx");
    ps_tensor_free(x);
    ps_tensor_free(y);
    ps_st_free(f);
}

/* NULL grad buffers mean "not needed": the other gradients are unchanged by their absence. */
static void test_conv2d_partial_grads(void)
{
    ps_st_file *f = load_case("conv2d_grouped");
    ps_tensor *x = input(f, "x"), *w = input(f, "w"), *b = param_or_null(f, "b");
    ps_tensor *y = output(f);
    const ps_conv2d_params p = conv_params(f);
    ps_conv2d_ref(x, w, b, &p, y);
    free(x->grad);
    x->grad = NULL;
    ps_conv2d_backward(x, w, NULL, &p, y);
    check_grad("conv2d_grouped (no x/b grads)", w, f, "gw");
    for (size_t i = 0; i < ps_numel(b); i++)
        g_assert_cmpfloat(b->grad[i], ==, PREFILL);
    ps_tensor *ts[] = {x, w, b, y};
    free_all(ts, 4);
    ps_st_free(f);
}

/* ---- finite-difference checks ---- */

typedef enum fd_kind {
    FD_CONV2D, FD_CONV1D, FD_LINEAR, FD_BATCHNORM, FD_GROUPNORM, FD_RELU, FD_GELU, FD_SIGMOID,
    FD_MAXPOOL, FD_AVGPOOL, FD_MEAN_MAX, FD_REFLECT_PAD, FD_UPSAMPLE, FD_ADD, FD_MUL, FD_CONCAT,
    FD_SLICE, FD_SOFTMAX_SPATIAL, FD_CHANNEL_NORMALIZE,
} fd_kind;

/* How an input is initialised: smooth ops take any values; relu needs them away from 0,
 * max-based ops need distinct values further apart than the step, and channel_normalize
 * positive ones (as softmax gives it) so its denominators stay away from 0. */
typedef enum fd_fill { FILL_UNIFORM, FILL_AWAY_FROM_ZERO, FILL_DISTINCT, FILL_POSITIVE } fd_fill;


#define FD_MAX_IN 4
#define FD_MAX_C 16

typedef struct fd_case {
    const char *name;
    fd_kind kind;
    fd_fill fill;
    int n_in;
    int shape[FD_MAX_IN][4]; /* inputs: data for conv (x, w, b), norm (x, gamma, beta), ... */
    int y_shape[4];
    ps_conv2d_params conv;   /* conv2d; conv1d uses stride, pad_w, dilation, groups */
    int iarg;                /* groupnorm groups, reflect pad, slice c0 */
} fd_case;

typedef struct fd_state {
    const fd_case *c;
    ps_tensor *in[FD_MAX_IN];
    ps_tensor *y;
    float save_mean[FD_MAX_C], save_invstd[FD_MAX_C];
} fd_state;

static void fd_forward(fd_state *st)
{
    const fd_case *c = st->c;
    ps_tensor *const *in = st->in;
    ps_tensor *b = c->n_in > 2 ? in[2] : NULL;
    switch (c->kind) {
    case FD_CONV2D: ps_conv2d_ref(in[0], in[1], b, &c->conv, st->y); break;
    case FD_CONV1D:
        ps_conv1d_ref(in[0], in[1], b, c->conv.stride, c->conv.pad_w, c->conv.dilation,
                      c->conv.groups, st->y);
        break;
    case FD_LINEAR: ps_linear_ref(in[0], in[1], b, st->y); break;
    case FD_BATCHNORM:
        ps_batchnorm_train_ref(in[0], in[1], in[2], NULL, NULL, 0.1f, 1e-5f, st->y,
                               st->save_mean, st->save_invstd);
        break;
    case FD_GROUPNORM:
        ps_groupnorm_ref(in[0], c->iarg, c->n_in > 1 ? in[1] : NULL, b, 1e-5f, st->y);
        break;
    case FD_RELU: ps_relu_ref(in[0], st->y); break;
    case FD_GELU: ps_gelu_ref(in[0], st->y); break;
    case FD_SIGMOID: ps_sigmoid_ref(in[0], st->y); break;
    case FD_MAXPOOL: ps_maxpool2x2_ref(in[0], st->y); break;
    case FD_AVGPOOL: ps_global_avgpool_ref(in[0], st->y); break;
    case FD_MEAN_MAX: ps_channel_mean_max_ref(in[0], st->y); break;
    case FD_REFLECT_PAD: ps_reflect_pad_ref(in[0], c->iarg, st->y); break;
    case FD_UPSAMPLE: ps_upsample2x_ref(in[0], st->y); break;
    case FD_ADD: ps_add_ref(in[0], in[1], st->y); break;
    case FD_MUL: ps_mul_ref(in[0], in[1], st->y); break;
    case FD_CONCAT: ps_concat_channels_ref((const ps_tensor *const *)in, c->n_in, st->y); break;
    case FD_SLICE: ps_slice_channels_ref(in[0], c->iarg, st->y); break;
    case FD_SOFTMAX_SPATIAL: ps_softmax_spatial_ref(in[0], st->y); break;
    case FD_CHANNEL_NORMALIZE: ps_channel_normalize_ref(in[0], EA_EPS, st->y); break;
    }
}

static void fd_backward(fd_state *st)
{
    const fd_case *c = st->c;
    ps_tensor *const *in = st->in;
    ps_tensor *b = c->n_in > 2 ? in[2] : NULL;
    switch (c->kind) {
    case FD_CONV2D: ps_conv2d_backward(in[0], in[1], b, &c->conv, st->y); break;
    case FD_CONV1D:
        ps_conv1d_backward(in[0], in[1], b, c->conv.stride, c->conv.pad_w, c->conv.dilation,
                           c->conv.groups, st->y);
        break;
    case FD_LINEAR: ps_linear_backward(in[0], in[1], b, st->y); break;
    case FD_BATCHNORM:
        ps_batchnorm_train_backward(in[0], in[1], in[2], st->save_mean, st->save_invstd, st->y);
        break;
    case FD_GROUPNORM:
        ps_groupnorm_backward(in[0], c->iarg, c->n_in > 1 ? in[1] : NULL, b, 1e-5f, st->y);
        break;
    case FD_RELU: ps_relu_backward(in[0], st->y); break;
    case FD_GELU: ps_gelu_backward(in[0], st->y); break;
    case FD_SIGMOID: ps_sigmoid_backward(in[0], st->y); break;
    case FD_MAXPOOL: ps_maxpool2x2_backward(in[0], st->y); break;
    case FD_AVGPOOL: ps_global_avgpool_backward(in[0], st->y); break;
    case FD_MEAN_MAX: ps_channel_mean_max_backward(in[0], st->y); break;
    case FD_REFLECT_PAD: ps_reflect_pad_backward(in[0], c->iarg, st->y); break;
    case FD_UPSAMPLE: ps_upsample2x_backward(in[0], st->y); break;
    case FD_ADD: ps_add_backward(in[0], in[1], st->y); break;
    case FD_MUL: ps_mul_backward(in[0], in[1], st->y); break;
    case FD_CONCAT: ps_concat_channels_backward(in, c->n_in, st->y); break;
    case FD_SLICE: ps_slice_channels_backward(in[0], c->iarg, st->y); break;
    case FD_SOFTMAX_SPATIAL: ps_softmax_spatial_backward(in[0], st->y); break;
    case FD_CHANNEL_NORMALIZE: ps_channel_normalize_backward(in[0], EA_EPS, st->y); break;
    }
}

/* sum(y * r) in double, with r = y->grad. */
static double fd_loss(fd_state *st)
{
    fd_forward(st);
    double l = 0;
    for (size_t i = 0; i < ps_numel(st->y); i++)
        l += (double)st->y->data[i] * st->y->grad[i];
    return l;
}

/* Shuffled values spaced 0.1 apart: no ties, and no two within a step of each other. */
static void fill_distinct(float *x, size_t n, GRand *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.1f * ((float)i - n / 2.f);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)g_rand_int_range(r, 0, (gint32)i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

#define FD_STEP 1e-2f
#define FD_TOL 1e-3 /* measured errors are below 5e-5 */

static void test_fd(gconstpointer data)
{
    const fd_case *c = data;
    GRand *r = g_rand_new_with_seed(12345);
    fd_state st = {.c = c};
    for (int i = 0; i < c->n_in; i++) {
        const int *d = c->shape[i];
        ps_tensor *t = st.in[i] = ps_tensor_new(d[0], d[1], d[2], d[3]);
        ps_tensor_ensure_grad(t);
        if (c->fill == FILL_DISTINCT)
            fill_distinct(t->data, ps_numel(t), r);
        else
            tu_fill_uniform(t->data, ps_numel(t), r, -1.f, 1.f);
        if (c->fill == FILL_AWAY_FROM_ZERO)
            for (size_t j = 0; j < ps_numel(t); j++)
                t->data[j] += t->data[j] >= 0 ? 0.1f : -0.1f;
        if (c->fill == FILL_POSITIVE)
            for (size_t j = 0; j < ps_numel(t); j++)
                t->data[j] = 0.6f + 0.5f * t->data[j]; /* 0.1 .. 1.1 */
    }
    st.y = ps_tensor_new(c->y_shape[0], c->y_shape[1], c->y_shape[2], c->y_shape[3]);
    ps_tensor_ensure_grad(st.y);
    tu_fill_uniform(st.y->grad, ps_numel(st.y), r, -1.f, 1.f);

    fd_forward(&st);
    fd_backward(&st);
    for (int i = 0; i < c->n_in; i++) {
        ps_tensor *t = st.in[i];
        const size_t n = ps_numel(t);
        float *num = g_new(float, n);
        double max_grad = 0, max_err = 0;
        for (size_t j = 0; j < n; j++) {
            const float v = t->data[j];
            const float vp = v + FD_STEP, vm = v - FD_STEP;
            t->data[j] = vp;
            const double lp = fd_loss(&st);
            t->data[j] = vm;
            const double lm = fd_loss(&st);
            t->data[j] = v;
            num[j] = (float)((lp - lm) / ((double)vp - vm)); /* the step actually taken */
            max_grad = fmax(max_grad, fabs(num[j]));
            max_err = fmax(max_err, fabs((double)num[j] - t->grad[j]));
        }
        const double rel = max_err / fmax(max_grad, 1e-3);
        g_test_message("%s input %d: finite-difference error %.3g of max |grad| %.3g", c->name,
                       i, rel, max_grad);
        if (!(rel <= FD_TOL))
            g_test_fail_printf("%s input %d: finite-difference error %.3g exceeds %.1g", c->name,
                               i, rel, FD_TOL);
        g_free(num);
    }
    for (int i = 0; i < c->n_in; i++)
        ps_tensor_free(st.in[i]);
    ps_tensor_free(st.y);
    g_rand_free(r);
}

static const fd_case fd_cases[] = {
    {"conv2d_s1", FD_CONV2D, FILL_UNIFORM, 3, {{2, 3, 5, 6}, {4, 3, 3, 3}, {4, 1, 1, 1}},
     {2, 4, 5, 6}, {1, 1, 1, 1, 1}, 0},
    {"conv2d_s2_pad12", FD_CONV2D, FILL_UNIFORM, 3, {{1, 3, 7, 8}, {2, 3, 3, 3}, {2, 1, 1, 1}},
     {1, 2, 4, 5}, {2, 1, 2, 1, 1}, 0},
    {"conv2d_dw_dil2", FD_CONV2D, FILL_UNIFORM, 2, {{2, 3, 7, 6}, {3, 1, 3, 3}},
     {2, 3, 7, 6}, {1, 2, 2, 2, 3}, 0},
    {"conv2d_pw", FD_CONV2D, FILL_UNIFORM, 3, {{2, 4, 3, 5}, {3, 4, 1, 1}, {3, 1, 1, 1}},
     {2, 3, 3, 5}, {1, 0, 0, 1, 1}, 0},
    {"conv2d_grouped_s2", FD_CONV2D, FILL_UNIFORM, 3, {{1, 4, 5, 5}, {6, 2, 3, 3}, {6, 1, 1, 1}},
     {1, 6, 3, 3}, {2, 1, 1, 1, 2}, 0},
    {"conv2d_7x7", FD_CONV2D, FILL_UNIFORM, 3, {{1, 2, 8, 9}, {1, 2, 7, 7}, {1, 1, 1, 1}},
     {1, 1, 8, 9}, {1, 3, 3, 1, 1}, 0},
    {"conv1d", FD_CONV1D, FILL_UNIFORM, 2, {{2, 1, 1, 9}, {1, 1, 1, 3}}, {2, 1, 1, 9},
     {1, 0, 1, 1, 1}, 0},
    {"conv1d_s2_dil2_groups", FD_CONV1D, FILL_UNIFORM, 3,
     {{1, 2, 1, 11}, {2, 1, 1, 3}, {2, 1, 1, 1}}, {1, 2, 1, 6}, {2, 0, 2, 2, 2}, 0},
    {"linear", FD_LINEAR, FILL_UNIFORM, 3, {{2, 2, 2, 3}, {4, 12, 1, 1}, {4, 1, 1, 1}},
     {2, 4, 1, 1}, {0}, 0},
    {"batchnorm_train", FD_BATCHNORM, FILL_UNIFORM, 3, {{3, 2, 3, 4}, {2, 1, 1, 1}, {2, 1, 1, 1}},
     {3, 2, 3, 4}, {0}, 0},
    {"groupnorm", FD_GROUPNORM, FILL_UNIFORM, 3, {{2, 6, 3, 2}, {6, 1, 1, 1}, {6, 1, 1, 1}},
     {2, 6, 3, 2}, {0}, 3},
    {"groupnorm_no_affine", FD_GROUPNORM, FILL_UNIFORM, 1, {{2, 4, 3, 3}}, {2, 4, 3, 3}, {0}, 2},
    {"relu", FD_RELU, FILL_AWAY_FROM_ZERO, 1, {{2, 3, 3, 4}}, {2, 3, 3, 4}, {0}, 0},
    {"gelu", FD_GELU, FILL_UNIFORM, 1, {{2, 3, 3, 4}}, {2, 3, 3, 4}, {0}, 0},
    {"sigmoid", FD_SIGMOID, FILL_UNIFORM, 1, {{2, 3, 3, 4}}, {2, 3, 3, 4}, {0}, 0},
    {"maxpool_odd", FD_MAXPOOL, FILL_DISTINCT, 1, {{1, 2, 5, 7}}, {1, 2, 2, 3}, {0}, 0},
    {"global_avgpool", FD_AVGPOOL, FILL_UNIFORM, 1, {{2, 3, 3, 4}}, {2, 3, 1, 1}, {0}, 0},
    {"channel_mean_max", FD_MEAN_MAX, FILL_DISTINCT, 1, {{2, 4, 3, 3}}, {2, 2, 3, 3}, {0}, 0},
    {"reflect_pad", FD_REFLECT_PAD, FILL_UNIFORM, 1, {{1, 2, 4, 5}}, {1, 2, 8, 9}, {0}, 2},
    {"upsample2x", FD_UPSAMPLE, FILL_UNIFORM, 1, {{1, 2, 3, 4}}, {1, 2, 6, 8}, {0}, 0},
    {"add_n1hw", FD_ADD, FILL_UNIFORM, 2, {{2, 3, 2, 3}, {2, 1, 2, 3}}, {2, 3, 2, 3}, {0}, 0},
    {"add_nch1", FD_ADD, FILL_UNIFORM, 2, {{2, 3, 2, 1}, {2, 3, 2, 3}}, {2, 3, 2, 3}, {0}, 0},
    {"mul_same", FD_MUL, FILL_UNIFORM, 2, {{2, 3, 2, 3}, {2, 3, 2, 3}}, {2, 3, 2, 3}, {0}, 0},
    {"mul_n1hw", FD_MUL, FILL_UNIFORM, 2, {{2, 3, 2, 3}, {2, 1, 2, 3}}, {2, 3, 2, 3}, {0}, 0},
    {"mul_nc11", FD_MUL, FILL_UNIFORM, 2, {{2, 3, 2, 3}, {2, 3, 1, 1}}, {2, 3, 2, 3}, {0}, 0},
    {"mul_1111", FD_MUL, FILL_UNIFORM, 2, {{1, 1, 1, 1}, {2, 3, 1, 1}}, {2, 3, 1, 1}, {0}, 0},
    {"concat3", FD_CONCAT, FILL_UNIFORM, 3, {{2, 1, 2, 3}, {2, 2, 2, 3}, {2, 3, 2, 3}},
     {2, 6, 2, 3}, {0}, 0},
    {"slice", FD_SLICE, FILL_UNIFORM, 1, {{2, 5, 2, 3}}, {2, 2, 2, 3}, {0}, 1},
    {"softmax_spatial", FD_SOFTMAX_SPATIAL, FILL_UNIFORM, 1, {{2, 3, 3, 4}}, {2, 3, 3, 4}, {0}, 0},
    {"channel_normalize", FD_CHANNEL_NORMALIZE, FILL_POSITIVE, 1, {{2, 5, 3, 2}}, {2, 5, 3, 2}, {0}, 0},
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    static const char *const convs[] = {"conv2d_s1", "conv2d_s2", "conv2d_dw_dil2", "conv2d_pw",
                                        "conv2d_grouped"};
    for (size_t i = 0; i < G_N_ELEMENTS(convs); i++) {
        char *path = g_strdup_printf("/backward/fixture/%s", convs[i]);
        g_test_add_data_func(path, convs[i], test_fx_conv2d);
        g_free(path);
    }
    g_test_add_func("/backward/fixture/conv2d_7x7_reflect", test_fx_conv2d_7x7_reflect);
    g_test_add_func("/backward/fixture/conv1d", test_fx_conv1d);
    g_test_add_func("/backward/fixture/linear", test_fx_linear);
    g_test_add_func("/backward/fixture/batchnorm_train", test_fx_batchnorm_train);
    g_test_add_func("/backward/fixture/groupnorm", test_fx_groupnorm);
    for (size_t i = 0; i < G_N_ELEMENTS(unary_cases); i++) {
        char *path = g_strdup_printf("/backward/fixture/%s", unary_cases[i].name);
        g_test_add_data_func(path, &unary_cases[i], test_fx_unary);
        g_free(path);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(binary_cases); i++) {
        char *path = g_strdup_printf("/backward/fixture/%s", binary_cases[i].name);
        g_test_add_data_func(path, &binary_cases[i], test_fx_binary);
        g_free(path);
    }
    g_test_add_func("/backward/fixture/concat3", test_fx_concat);
    g_test_add_func("/backward/fixture/slice", test_fx_slice);
    g_test_add_func("/backward/conv2d_partial_grads", test_conv2d_partial_grads);
    for (size_t i = 0; i < G_N_ELEMENTS(fd_cases); i++) {
        char *path = g_strdup_printf("/backward/finite_difference/%s", fd_cases[i].name);
        g_test_add_data_func(path, &fd_cases[i], test_fd);
        g_free(path);
    }
    return g_test_run();
}
