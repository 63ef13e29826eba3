#include "graph.h"
#include "kernel_util.h"
#include "kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

void ps_graph_init(ps_graph *g, ps_arena *arena, int training)
{
    memset(g, 0, sizeof *g);
    g->arena = arena;
    g->training = training;
    g->bn_momentum = 0.1f;
}

ps_graph ps_graph_alone(const ps_graph *g)
{
    ps_graph a = *g;
    a.pool = NULL;
    a.on_stage = NULL;
    return a;
}

void ps_graph_clear(ps_graph *g)
{
    g->n_nodes = 0;
    ps_arena_reset(g->arena);
}

void ps_graph_release(ps_graph *g)
{
    free(g->nodes);
    g->nodes = NULL;
    g->n_nodes = g->cap_nodes = 0;
}

/* Records a node in training mode; returns NULL in inference so callers skip the extras. */
static ps_node *record(ps_graph *g, ps_op_kind op, ps_tensor *out, int n_in, ps_tensor *const *in)
{
    if (!g->training)
        return NULL;
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 256;
        g->nodes = realloc(g->nodes, (size_t)g->cap_nodes * sizeof *g->nodes);
        if (!g->nodes)
            abort();
    }
    ps_node *nd = &g->nodes[g->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->out = out;
    nd->n_in = n_in;
    for (int i = 0; i < n_in; i++)
        nd->in[i] = in[i];
    return nd;
}

static ps_tensor *new_like(ps_graph *g, const ps_tensor *x)
{
    return ps_arena_tensor(g->arena, x->n, x->c, x->h, x->w);
}

/* ---- optimised kernels, split over the pool ----
 * Work is split in units, mostly by position (a run of positions or a band of rows of every
 * channel, so a thread keeps working on the part of each map it made in the op before; a
 * GroupNorm group for the statistics); each part of the pool gets a contiguous range of units.
 * Maps of one unit, and ops over fewer than PAR_MIN_VALUES values, run on the calling thread. */

/* The pool for an op over `values` floats: below PAR_MIN_VALUES the hand-over and the barrier
 * cost more than a second thread saves (8192 was the fastest of 0, 8192, 16384, 32768 and 65536
 * at 256 on two cores with the pool's short spin; with the long spin all were equal). */
enum { PAR_MIN_VALUES = 8192 };

static ps_pool *pool_for(const ps_graph *g, size_t values)
{
    return values < PAR_MIN_VALUES ? NULL : g->pool;
}

typedef struct job {
    const ps_kernels *k;
    const ps_tensor *x, *w, *b;
    const ps_tensor *x2; /* add_gelu's second input; a pointwise conv's residual */
    ps_tensor *y;
    int dilation, groups, relu;
    float eps;
    void (*elementwise)(const float *x, float *y, size_t n); /* gelu, sigmoid */
} job;

/* Pointwise convs are split into runs of positions, every output channel at once: each thread
 * reads its part of the input once and fills whole register tiles, also when there is a single
 * output channel (LDGA's gate, the head). Runs of PW_CHUNK positions, or of PW_CHUNK_SMALL on
 * maps of up to 32x32 so that the deep levels' convs (64-channel ones in microaunet-w8) split
 * too. Parts start at multiples of 32 positions, so the result does not depend on the split. */
enum { PW_CHUNK = 256, PW_CHUNK_SMALL = 64 };

static size_t chunk_of(size_t plane)
{
    return plane <= 1024 ? PW_CHUNK_SMALL : PW_CHUNK;
}

/* Units of work of chunk_of(plane) positions of a map: position_units(t) of them, unit u
 * starting at value position_run(t, u, &len) of channel 0 (the other channels a plane apart). */
static int position_units(const ps_tensor *t)
{
    const size_t plane = (size_t)t->h * t->w, chunk = chunk_of(plane);
    return t->n * (int)((plane + chunk - 1) / chunk);
}

static size_t position_run(const ps_tensor *t, int u, size_t *len)
{
    const size_t plane = (size_t)t->h * t->w, chunk = chunk_of(plane), chunks = (plane + chunk - 1) / chunk;
    const size_t n = (size_t)u / chunks, p0 = (size_t)u % chunks * chunk;
    *len = MIN(plane, p0 + chunk) - p0;
    return n * t->c * plane + p0;
}

static void pointwise_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const int cin = j->x->c, cout = j->y->c;
    const size_t plane = (size_t)j->y->h * j->y->w, chunk = chunk_of(plane), chunks = (plane + chunk - 1) / chunk;
    for (int u = begin, count; u < end; u += count) { /* runs of chunks within one image */
        const int n = u / (int)chunks, c0 = u % (int)chunks;
        count = MIN(end, (n + 1) * (int)chunks) - u;
        const size_t p0 = (size_t)c0 * chunk, len = MIN(plane, (size_t)(c0 + count) * chunk) - p0;
        const size_t at = (size_t)n * cout * plane + p0;
        j->k->conv_pointwise(j->x->data + (size_t)n * cin * plane + p0, j->w->data, j->b ? j->b->data : NULL,
                             j->x2 ? j->x2->data + at : NULL, j->y->data + at, cin, cout, len, plane, j->relu);
    }
}

/* 'Valid' convs are split into bands of output rows per output channel (LSCAB's 7x7 has one):
 * a band reads the input rows under it, as a smaller image. */
enum { VALID_ROWS = 16 };

static int valid_units(const ps_tensor *y)
{
    return y->n * y->c * ((y->h + VALID_ROWS - 1) / VALID_ROWS);
}

static void valid_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const int cin = j->x->c, cout = j->y->c, k = j->w->h, span = j->dilation * (k - 1);
    const int bands = (j->y->h + VALID_ROWS - 1) / VALID_ROWS;
    const size_t xplane = (size_t)j->x->h * j->x->w, yplane = (size_t)j->y->h * j->y->w;
    for (int u = begin; u < end; u++) {
        const int n = u / (cout * bands), co = u / bands % cout, r0 = u % bands * VALID_ROWS;
        const int rows = MIN(VALID_ROWS, j->y->h - r0);
        j->k->conv_valid(j->x->data + (size_t)n * cin * xplane + (size_t)r0 * j->x->w, xplane,
                         j->w->data + (size_t)co * cin * k * k, j->b ? j->b->data + co : NULL,
                         j->y->data + ((size_t)n * cout + co) * yplane + (size_t)r0 * j->y->w, cin, 1,
                         rows + span, j->x->w, k, j->dilation);
    }
}

/* Depthwise convs split like the others, by position: 3x3 ones into bands of DW_ROWS output rows
 * of every channel, 1x1 ones (per-channel scales) into runs of positions. */
enum { DW_ROWS = 8 };

static int depthwise_units(const ps_tensor *x, const ps_tensor *w)
{
    return w->h == 1 ? position_units(x) : x->n * ((x->h + DW_ROWS - 1) / DW_ROWS);
}

static void depthwise_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const int C = j->x->c, h = j->x->h, bands = (h + DW_ROWS - 1) / DW_ROWS;
    const size_t plane = (size_t)h * j->x->w;
    for (int u = begin; u < end; u++) {
        if (j->w->h == 1) { /* a per-channel scale */
            size_t len, at = position_run(j->x, u, &len);
            for (int c = 0; c < C; c++, at += plane)
                j->k->conv_depthwise1x1(j->x->data + at, j->w->data + c, j->b ? j->b->data + c : NULL,
                                        j->y->data + at, 1, len, j->relu);
            continue;
        }
        const size_t off = (size_t)(u / bands) * C * plane;
        const int row0 = u % bands * DW_ROWS;
        j->k->conv_depthwise3x3(j->x->data + off, j->w->data, j->b ? j->b->data : NULL, j->y->data + off, C, h,
                                j->x->w, j->dilation, j->relu, row0, MIN(h, row0 + DW_ROWS));
    }
}

/* x with `pad` zeros on every side, from the arena. */
static ps_tensor *zero_padded(ps_graph *g, const ps_tensor *x, int pad)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, x->c, x->h + 2 * pad, x->w + 2 * pad);
    memset(y->data, 0, ps_numel(y) * sizeof(float));
    for (int p = 0; p < x->n * x->c; p++)
        for (int r = 0; r < x->h; r++)
            memcpy(y->data + ((size_t)p * y->h + r + pad) * y->w + pad, x->data + ((size_t)p * x->h + r) * x->w,
                   x->w * sizeof(float));
    return y;
}

/* The kernels cover the model's convs (pointwise, depthwise 3x3 'same' and 1x1, dense 'valid' such as
 * LSCAB's 7x7 on its reflect-padded input, and dense zero-padded ones such as MALUNet's 3x3
 * through a padded copy); any other shape runs the reference. */
static void conv2d(ps_graph *g, const ps_tensor *x, const ps_tensor *w, const ps_tensor *b,
                   const ps_conv2d_params *p, int relu, ps_tensor *y)
{
    job j = {.k = ps_kernels_best(), .x = x, .w = w, .b = b, .y = y, .dilation = p->dilation, .relu = relu};
    if (p->groups == 1 && w->h == 1 && w->w == 1 && p->stride == 1 && p->pad_h == 0 && p->pad_w == 0)
        ps_pool_for(g->pool, position_units(y), pointwise_part, &j);
    else if (p->groups == x->c && y->c == x->c && w->h == w->w && p->stride == 1 && p->pad_h == p->pad_w &&
             ((w->h == 3 && p->pad_h == p->dilation && x->w <= PS_KERNEL_MAX_WIDTH) || (w->h == 1 && p->pad_h == 0)))
        ps_pool_for(pool_for(g, ps_numel(x)), depthwise_units(x, w), depthwise_part, &j);
    else if (p->groups == 1 && w->h == w->w && p->stride == 1 && p->pad_h == p->pad_w && !relu) {
        if (p->pad_h > 0) /* the 'valid' kernel (no fused ReLU) on a zero-padded copy */
            j.x = zero_padded(g, x, p->pad_h);
        ps_pool_for(pool_for(g, ps_numel(j.x)), valid_units(y), valid_part, &j);
    } else {
        ps_conv2d_ref(x, w, b, p, y);
        for (size_t i = 0, n = ps_numel(y); relu && i < n; i++)
            y->data[i] = y->data[i] > 0.f ? y->data[i] : 0.f;
    }
}

static void groupnorm_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const int cpg = j->x->c / j->groups;
    const size_t plane = (size_t)j->x->h * j->x->w;
    for (int u = begin; u < end; u++) {
        const int c0 = u % j->groups * cpg;
        const size_t off = ((size_t)(u / j->groups) * j->x->c + c0) * plane;
        j->k->groupnorm_group(j->x->data + off, j->y->data + off, j->w ? j->w->data + c0 : NULL,
                              j->b ? j->b->data + c0 : NULL, cpg, plane, j->eps);
    }
}

/* Element-wise ops split like the pointwise convs, into runs of positions of every channel, so
 * each thread works on the part of each map that it made in the op before (its own cache). */
static void elementwise_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const size_t plane = (size_t)j->x->h * j->x->w;
    for (int u = begin; u < end; u++) {
        size_t len, at = position_run(j->x, u, &len);
        for (int c = 0; c < j->x->c; c++, at += plane)
            if (j->x2)
                j->k->add_gelu(j->x->data + at, j->x2->data + at, j->y->data + at, len);
            else
                j->elementwise(j->x->data + at, j->y->data + at, len);
    }
}

/* y = fn(x) value by value, split over the pool in chunks. */
static ps_tensor *elementwise(ps_graph *g, ps_tensor *x, ps_op_kind op,
                              void (*fn)(const float *x, float *y, size_t n))
{
    ps_tensor *y = new_like(g, x);
    job j = {.x = x, .y = y, .elementwise = fn};
    ps_pool_for(g->pool, position_units(x), elementwise_part, &j);
    record(g, op, y, 1, &x);
    return y;
}

ps_tensor *ps_g_add_gelu(ps_graph *g, ps_tensor *a, ps_tensor *b)
{
    if (g->training || !ps_tensor_same_shape(a, b))
        return ps_g_gelu(g, ps_g_add(g, a, b));
    ps_tensor *y = new_like(g, a);
    job j = {.k = ps_kernels_best(), .x = a, .x2 = b, .y = y};
    ps_pool_for(g->pool, position_units(a), elementwise_part, &j);
    return y;
}

typedef struct attend_job {
    const ps_kernels *k;
    const ps_tensor *t, *ca, *sa;
    float alpha, beta;
    ps_tensor *y;
} attend_job;

static void attend_part(void *ctx, int begin, int end)
{
    const attend_job *j = ctx;
    const size_t plane = (size_t)j->t->h * j->t->w;
    for (int u = begin; u < end; u++)
        j->k->attend_residual(j->t->data + u * plane, j->sa->data + u / j->t->c * plane, j->alpha * j->ca->data[u],
                              j->beta, j->y->data + u * plane, plane);
}

ps_tensor *ps_g_attend_residual(ps_graph *g, ps_tensor *t, ps_tensor *ca, ps_tensor *sa, ps_tensor *alpha,
                                ps_tensor *beta)
{
    if (g->training) {
        ps_tensor *att = ps_g_add(g, ps_g_mul(g, alpha, ca), ps_g_mul(g, beta, sa));
        return ps_g_add(g, ps_g_mul(g, att, t), t);
    }
    attend_job j = {.k = ps_kernels_best(), .t = t, .ca = ca, .sa = sa, .alpha = alpha->data[0],
                    .beta = beta->data[0], .y = new_like(g, t)};
    ps_pool_for(pool_for(g, ps_numel(t)), t->n * t->c, attend_part, &j);
    return j.y;
}

static ps_tensor *conv2d_output(ps_graph *g, const ps_tensor *x, const ps_tensor *w, const ps_conv2d_params *p)
{
    return ps_arena_tensor(g->arena, x->n, w->n, ps_conv2d_out_size(x->h, w->h, p->pad_h, p->stride, p->dilation),
                           ps_conv2d_out_size(x->w, w->w, p->pad_w, p->stride, p->dilation));
}

ps_tensor *ps_g_conv2d(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int stride,
                       int pad, int dilation, int groups)
{
    ps_conv2d_params p = {stride, pad, pad, dilation, groups};
    ps_tensor *y = conv2d_output(g, x, w, &p);
    conv2d(g, x, w, b, &p, 0, y);
    ps_node *nd = record(g, PS_OP_CONV2D, y, 3, (ps_tensor *[]){x, w, b});
    if (nd)
        nd->conv = p;
    return y;
}

ps_tensor *ps_g_conv2d_relu(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int stride,
                            int pad, int dilation, int groups)
{
    if (g->training)
        g_error("ps_g_conv2d_relu is inference-only (it records no node)");
    ps_conv2d_params p = {stride, pad, pad, dilation, groups};
    ps_tensor *y = conv2d_output(g, x, w, &p);
    conv2d(g, x, w, b, &p, 1, y);
    return y;
}

/* MicroAUNet's DSD in inference, one band of DW_ROWS rows at a time: the depthwise 3x3 (+ ReLU)
 * of the band's rows into tmp, then the pointwise conv (+ ReLU) of those positions while they are
 * in cache [into tmp2, then GELU, or GELU of the sum with `add`, into y]. */
typedef struct dsd_job {
    const ps_kernels *k;
    const ps_tensor *x, *wd, *bd, *wp, *bp, *add;
    ps_tensor *tmp, *tmp2, *y;
    int dilation;
} dsd_job;

static void dsd_part(void *ctx, int begin, int end)
{
    const dsd_job *j = ctx;
    const int C = j->x->c, cout = j->y->c, h = j->x->h, w = j->x->w, bands = (h + DW_ROWS - 1) / DW_ROWS;
    const size_t plane = (size_t)h * w;
    for (int u = begin; u < end; u++) {
        const int n = u / bands, r0 = u % bands * DW_ROWS, r1 = MIN(h, r0 + DW_ROWS);
        const size_t xoff = (size_t)n * C * plane, yoff = (size_t)n * cout * plane + (size_t)r0 * w;
        const size_t len = (size_t)(r1 - r0) * w;
        j->k->conv_depthwise3x3(j->x->data + xoff, j->wd->data, j->bd ? j->bd->data : NULL, j->tmp->data + xoff, C,
                                h, w, j->dilation, 1, r0, r1);
        float *out = (j->tmp2 ? j->tmp2 : j->y)->data + yoff;
        j->k->conv_pointwise(j->tmp->data + xoff + (size_t)r0 * w, j->wp->data, j->bp ? j->bp->data : NULL, NULL, out,
                             C, cout, len, plane, 1);
        for (int c = 0; j->tmp2 && c < cout; c++) {
            const size_t at = (size_t)c * plane;
            if (j->add)
                j->k->add_gelu(out + at, j->add->data + yoff + at, j->y->data + yoff + at, len);
            else
                j->k->gelu(out + at, j->y->data + yoff + at, len);
        }
    }
}

ps_tensor *ps_g_depthwise_pointwise_relu(ps_graph *g, ps_tensor *x, ps_tensor *wd, ps_tensor *bd, int dilation,
                                         ps_tensor *wp, ps_tensor *bp, int gelu, ps_tensor *add)
{
    if (g->training)
        g_error("ps_g_depthwise_pointwise_relu is inference-only (it records no node)");
    if (add && (gelu || add->n != x->n || add->c != wp->n || add->h != x->h || add->w != x->w))
        g_error("ps_g_depthwise_pointwise_relu: add wants gelu = 0 and the output's shape");
    if (x->w > PS_KERNEL_MAX_WIDTH) { /* the separate ops */
        ps_tensor *y = ps_g_conv2d_relu(g, x, wd, bd, 1, dilation, dilation, x->c);
        y = ps_g_conv2d_relu(g, y, wp, bp, 1, 0, 1, 1);
        return add ? ps_g_add_gelu(g, y, add) : gelu ? ps_g_gelu(g, y) : y;
    }
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, wp->n, x->h, x->w);
    dsd_job j = {.k = ps_kernels_best(), .x = x, .wd = wd, .bd = bd, .wp = wp, .bp = bp, .add = add,
                 .tmp = new_like(g, x), .tmp2 = gelu || add ? new_like(g, y) : NULL, .y = y, .dilation = dilation};
    ps_pool_for(pool_for(g, ps_numel(x) + ps_numel(y)), depthwise_units(x, wd), dsd_part, &j);
    return y;
}

/* LDGA's gate on one run of positions of every channel: the gate's logits and sigmoid for the
 * run on the stack, then each channel's run times them. */
static void gate_part(void *ctx, int begin, int end)
{
    const job *j = ctx;
    const int C = j->x->c;
    const size_t plane = (size_t)j->x->h * j->x->w;
    float logit[PW_CHUNK], gate[PW_CHUNK];
    for (int u = begin; u < end; u++) {
        size_t len, at = position_run(j->x, u, &len);
        j->k->conv_pointwise(j->x->data + at, j->w->data, NULL, NULL, logit, C, 1, len, plane, 0);
        j->k->sigmoid(logit, gate, len);
        for (int c = 0; c < C; c++, at += plane)
            j->k->mul(j->x->data + at, gate, j->y->data + at, len);
    }
}

ps_tensor *ps_g_gate(ps_graph *g, ps_tensor *x, ps_tensor *w)
{
    if (g->training)
        return ps_g_mul(g, x, ps_g_sigmoid(g, ps_g_conv2d(g, x, w, NULL, 1, 0, 1, 1)));
    job j = {.k = ps_kernels_best(), .x = x, .w = w, .y = new_like(g, x)};
    ps_pool_for(g->pool, position_units(x), gate_part, &j);
    return j.y;
}

ps_tensor *ps_g_conv1d(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int pad)
{
    ps_conv2d_params p = {1, 0, pad, 1, 1};
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, w->n, 1,
                                   ps_conv2d_out_size(x->w, w->w, pad, 1, 1));
    ps_conv1d_ref(x, w, b, 1, pad, 1, 1, y);
    ps_node *nd = record(g, PS_OP_CONV1D, y, 3, (ps_tensor *[]){x, w, b});
    if (nd)
        nd->conv = p;
    return y;
}

ps_tensor *ps_g_linear(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, w->n, 1, 1);
    ps_linear_ref(x, w, b, y);
    record(g, PS_OP_LINEAR, y, 3, (ps_tensor *[]){x, w, b});
    return y;
}

/* Batch-norm's training statistics and affine by the kernels (ps_batchnorm_train_with). */
static double kernel_sum(const float *x, size_t n)
{
    return ps_kernels_best()->sum(x, n);
}

static double kernel_sum_sqdev(const float *x, size_t n, double mean)
{
    return ps_kernels_best()->sum_sqdev(x, n, (float)mean);
}

static void kernel_affine(float *y, const float *x, size_t n, float scale, float shift)
{
    ps_kernels_best()->conv_depthwise1x1(x, &scale, &shift, y, 1, n, 0);
}

static const ps_batchnorm_ops kernel_bn_ops = {kernel_sum, kernel_sum_sqdev, kernel_affine};

ps_tensor *ps_g_batchnorm(ps_graph *g, ps_tensor *x, ps_tensor *gamma, ps_tensor *beta,
                          ps_tensor *mean, ps_tensor *var, float eps)
{
    ps_tensor *y = new_like(g, x);
    if (!g->training) {
        ps_batchnorm_ref(x, gamma, beta, mean, var, eps, y);
        return y;
    }
    float *save_mean = ps_arena_alloc(g->arena, (size_t)x->c * sizeof(float));
    float *save_invstd = ps_arena_alloc(g->arena, (size_t)x->c * sizeof(float));
    ps_batchnorm_train_with(&kernel_bn_ops, x, gamma, beta, mean, var, g->bn_momentum, eps, y, save_mean,
                            save_invstd);
    ps_node *nd = record(g, PS_OP_BATCHNORM_TRAIN, y, 3, (ps_tensor *[]){x, gamma, beta});
    nd->eps = eps;
    nd->save_mean = save_mean;
    nd->save_invstd = save_invstd;
    return y;
}

ps_tensor *ps_g_groupnorm(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma,
                          ps_tensor *beta, float eps)
{
    ps_tensor *y = new_like(g, x);
    job j = {.k = ps_kernels_best(), .x = x, .w = gamma, .b = beta, .y = y, .groups = groups, .eps = eps};
    ps_pool_for(pool_for(g, ps_numel(x)), x->n * groups, groupnorm_part, &j);
    ps_node *nd = record(g, PS_OP_GROUPNORM, y, 3, (ps_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->iarg = groups;
        nd->eps = eps;
    }
    return y;
}

/* Ops of one input whose output has the input's shape or a fixed derived shape. */
#define UNARY(name, OP, n_, c_, h_, w_)                                        \
    ps_tensor *ps_g_##name(ps_graph *g, ps_tensor *x)                          \
    {                                                                          \
        ps_tensor *y = ps_arena_tensor(g->arena, n_, c_, h_, w_);              \
        ps_##name##_ref(x, y);                                                 \
        record(g, OP, y, 1, &x);                                               \
        return y;                                                              \
    }
UNARY(relu, PS_OP_RELU, x->n, x->c, x->h, x->w)
UNARY(softmax_spatial, PS_OP_SOFTMAX_SPATIAL, x->n, x->c, x->h, x->w)
#undef UNARY

/* Each plane's mean through the kernels' lane sums (the reference sums in double). */
ps_tensor *ps_g_global_avgpool(ps_graph *g, ps_tensor *x)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, x->c, 1, 1);
    const ps_kernels *k = ps_kernels_best();
    const size_t plane = (size_t)x->h * x->w;
    for (size_t p = 0; p < (size_t)x->n * x->c; p++)
        y->data[p] = (float)(k->sum(x->data + p * plane, plane) / (double)plane);
    record(g, PS_OP_GLOBAL_AVGPOOL, y, 1, &x);
    return y;
}

/* ---- plane-wise reference ops split over the pool ----
 * Ops whose every output plane (n, c) depends only on the same plane of their inputs run the
 * reference on views of a range of planes (n and c merged): the same code, just split. */

static ps_tensor plane_view(const ps_tensor *t, int begin, int end)
{
    return (ps_tensor){1, end - begin, t->h, t->w, t->data + (size_t)begin * t->h * t->w, NULL};
}

typedef struct plane_job {
    const ps_tensor *a, *b;
    ps_tensor *y;
    void (*unary)(const ps_tensor *x, ps_tensor *y);
    void (*binary)(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);
    /* the optimised kernel of `binary` on runs of values (positions_part) */
    void (*kernel)(const float *a, const float *b, float *y, size_t n);
} plane_job;

static void planes_part(void *ctx, int begin, int end)
{
    const plane_job *j = ctx;
    ps_tensor a = plane_view(j->a, begin, end), y = plane_view(j->y, begin, end);
    if (j->unary) {
        j->unary(&a, &y);
    } else {
        ps_tensor b = plane_view(j->b, begin, end);
        j->binary(&a, &b, &y);
    }
}

ps_tensor *ps_g_maxpool2x2(ps_graph *g, ps_tensor *x)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, x->c, x->h / 2, x->w / 2);
    plane_job j = {.a = x, .y = y, .unary = ps_maxpool2x2_ref};
    ps_pool_for(g->pool, x->n * x->c, planes_part, &j);
    record(g, PS_OP_MAXPOOL2X2, y, 1, &x);
    return y;
}

/* The taps of a bilinear x2 of x's planes: the 2h output rows', then the 2w columns', from the
 * arena (both x2 ops below take them). */
static ps_lin_tap *up2_taps(ps_graph *g, const ps_tensor *x)
{
    const int ho = 2 * x->h, wo = 2 * x->w;
    ps_lin_tap *taps = ps_arena_alloc(g->arena, (size_t)(ho + wo) * sizeof *taps);
    ps_lin_taps(taps, x->h, ho);
    ps_lin_taps(taps + ho, x->w, wo);
    return taps;
}

/* Bilinear x2 in bands of output rows (the upsample2x kernel), so a single plane (the head's)
 * shares the threads too. */
enum { UP_ROWS = 32 };

typedef struct up_job {
    const ps_kernels *k;
    const ps_tensor *x;
    ps_tensor *y;
    const ps_lin_tap *rows, *cols;
} up_job;

static void upsample_part(void *ctx, int begin, int end)
{
    const up_job *j = ctx;
    const int bands = (j->y->h + UP_ROWS - 1) / UP_ROWS, wo = j->y->w;
    for (int u = begin; u < end; u++) {
        const size_t pl = (size_t)(u / bands);
        const int oh0 = u % bands * UP_ROWS, oh1 = MIN(j->y->h, oh0 + UP_ROWS);
        j->k->upsample2x(j->x->data + pl * j->x->h * j->x->w, j->x->h, j->x->w, j->rows + oh0, oh1 - oh0, j->cols,
                         wo, j->y->data + (pl * j->y->h + oh0) * wo);
    }
}

ps_tensor *ps_g_upsample2x(ps_graph *g, ps_tensor *x)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, x->c, 2 * x->h, 2 * x->w);
    const ps_lin_tap *taps = up2_taps(g, x);
    up_job j = {ps_kernels_best(), x, y, taps, taps + y->h};
    ps_pool_for(pool_for(g, ps_numel(y)), x->n * x->c * ((y->h + UP_ROWS - 1) / UP_ROWS), upsample_part, &j);
    record(g, PS_OP_UPSAMPLE2X, y, 1, &x);
    return y;
}

/* A GroupNorm fused with what follows it (inference): statistics per (image, group) first,
 * then one pass in bands of rows with each channel's affine folded into the next step. */
typedef struct norm_job {
    const ps_kernels *k;
    const ps_tensor *x, *gamma, *beta, *skip;
    ps_tensor *y;
    int groups;
    float eps;
    float *mean, *invstd;          /* per (image, group) */
    const ps_lin_tap *rows, *cols; /* decoder: the x2 taps, NULL = no upsampling */
    int encoder;                   /* 1: max-pool + GELU; 0: the decoder step */
} norm_job;

static void norm_stats_part(void *ctx, int begin, int end)
{
    const norm_job *j = ctx;
    const size_t len = (size_t)j->x->c / j->groups * j->x->h * j->x->w; /* values of one group */
    for (int u = begin; u < end; u++)
        j->k->groupnorm_stats(j->x->data + u * len, len, j->eps, &j->mean[u], &j->invstd[u]);
}

/* The normalised step in bands of NORM_ROWS output rows of every channel (split by position like
 * the other ops); a band reads the input rows under it (the decoder's taps say which). The
 * decoder's kernel interpolates each input row once per band, so a band's first row redoes one
 * its neighbour did: 16 rows keep that near a tenth (8 made it a quarter, by perf samples). */
enum { NORM_ROWS = 16 };

static void norm_rows_part(void *ctx, int begin, int end)
{
    const norm_job *j = ctx;
    const int C = j->x->c, cpg = C / j->groups, w = j->x->w, ho = j->y->h, wo = j->y->w;
    const int bands = (ho + NORM_ROWS - 1) / NORM_ROWS;
    const size_t xplane = (size_t)j->x->h * w, yplane = (size_t)ho * wo;
    for (int u = begin; u < end; u++) {
        const int n = u / bands, r0 = u % bands * NORM_ROWS, rows = MIN(ho, r0 + NORM_ROWS) - r0;
        for (int c = 0; c < C; c++) {
            const int grp = n * j->groups + c / cpg;
            const size_t p = (size_t)n * C + c;
            const float scale = j->invstd[grp] * (j->gamma ? j->gamma->data[c] : 1.f);
            const float shift = (j->beta ? j->beta->data[c] : 0.f) - j->mean[grp] * scale;
            const float *x = j->x->data + p * xplane;
            float *y = j->y->data + p * yplane + (size_t)r0 * wo;
            if (j->encoder) /* output row r pools input rows 2r and 2r + 1 */
                j->k->affine_pool2_gelu(x + (size_t)2 * r0 * w, 2 * rows, w, scale, shift, y);
            else if (j->rows) /* the taps index the whole input plane */
                j->k->affine_up2_gelu_add(x, j->x->h, w, j->rows + r0, rows, j->cols, wo, scale, shift,
                                          j->skip->data + p * yplane + (size_t)r0 * wo, y);
            else /* no upsampling: the band's own rows */
                j->k->affine_up2_gelu_add(x + (size_t)r0 * w, rows, w, NULL, rows, NULL, wo, scale, shift,
                                          j->skip->data + p * yplane + (size_t)r0 * wo, y);
        }
    }
}

/* The GroupNorm statistics of a prepared norm_job's x, per (image, group). */
static void norm_stats(ps_graph *g, norm_job *j)
{
    j->k = ps_kernels_best();
    j->mean = ps_arena_alloc(g->arena, 2 * (size_t)j->x->n * j->groups * sizeof(float));
    j->invstd = j->mean + (size_t)j->x->n * j->groups;
    ps_pool_for(pool_for(g, ps_numel(j->x)), j->x->n * j->groups, norm_stats_part, j);
}

/* Runs a prepared norm_job over y. */
static void norm_fused(ps_graph *g, norm_job *j)
{
    norm_stats(g, j);
    ps_pool_for(pool_for(g, ps_numel(j->x) + ps_numel(j->y)), j->x->n * ((j->y->h + NORM_ROWS - 1) / NORM_ROWS), norm_rows_part, j);
}

ps_tensor *ps_g_groupnorm_up2_gelu_add(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma, ps_tensor *beta,
                                       float eps, int up, ps_tensor *skip)
{
    if (g->training) { /* the separate ops, so the backward sees each */
        ps_tensor *y = ps_g_groupnorm(g, x, groups, gamma, beta, eps);
        return ps_g_add(g, ps_g_gelu(g, up ? ps_g_upsample2x(g, y) : y), skip);
    }
    const int ho = up ? 2 * x->h : x->h, wo = up ? 2 * x->w : x->w;
    if (skip->n != x->n || skip->c != x->c || skip->h != ho || skip->w != wo)
        g_error("decoder skip is %dx%dx%dx%d, not %dx%dx%dx%d", skip->n, skip->c, skip->h, skip->w, x->n, x->c,
                ho, wo);
    norm_job j = {.x = x, .gamma = gamma, .beta = beta, .skip = skip, .groups = groups, .eps = eps,
                  .y = ps_arena_tensor(g->arena, x->n, x->c, ho, wo)};
    if (up) {
        j.rows = up2_taps(g, x);
        j.cols = j.rows + ho;
    }
    norm_fused(g, &j);
    return j.y;
}

ps_tensor *ps_g_groupnorm_maxpool_gelu(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma, ps_tensor *beta,
                                       float eps)
{
    if (g->training)
        return ps_g_gelu(g, ps_g_maxpool2x2(g, ps_g_groupnorm(g, x, groups, gamma, beta, eps)));
    norm_job j = {.x = x, .gamma = gamma, .beta = beta, .groups = groups, .eps = eps, .encoder = 1,
                  .y = ps_arena_tensor(g->arena, x->n, x->c, x->h / 2, x->w / 2)};
    norm_fused(g, &j);
    return j.y;
}

/* Per-channel affine s x + t (depthwise 1x1; s, t NULL = none) then GroupNorm, as the
 * (scale, shift) per channel of x it amounts to, for one image: the group statistics of s x + t
 * come from the per-channel mean and variance of x (m_c, v_c): mean M = avg(s m + t), variance
 * avg(s^2 v + (s m + t)^2) - M^2, summed in double. */
static void affine_groupnorm_fold(ps_graph *g, const ps_tensor *x, const ps_tensor *s, const ps_tensor *t,
                                  int groups, const ps_tensor *gamma, const ps_tensor *beta, float eps,
                                  float *scale, float *shift)
{
    const int cin = x->c, cpg = cin / groups;
    norm_job j = {.x = x, .groups = s ? cin : groups, .eps = eps}; /* with s: each channel alone */
    norm_stats(g, &j);
    for (int grp = 0; grp < groups; grp++) {
        double mean = j.mean[grp], invstd = j.invstd[grp];
        if (s) {
            double m1 = 0, m2 = 0;
            for (int c = grp * cpg; c < (grp + 1) * cpg; c++) {
                const double sc = s->data[c], mc = sc * j.mean[c] + (t ? t->data[c] : 0.f);
                const double vc = fmax(0.0, 1.0 / ((double)j.invstd[c] * j.invstd[c]) - eps);
                m1 += mc;
                m2 += sc * sc * vc + mc * mc;
            }
            mean = m1 / cpg;
            invstd = 1.0 / sqrt(fmax(0.0, m2 / cpg - mean * mean) + eps);
        }
        for (int c = grp * cpg; c < (grp + 1) * cpg; c++) {
            const double a = invstd * (gamma ? gamma->data[c] : 1.f), sc = s ? s->data[c] : 1.f;
            const double tc = s && t ? t->data[c] : 0.f;
            scale[c] = (float)(a * sc);
            shift[c] = (float)((beta ? beta->data[c] : 0.f) + (tc - mean) * a);
        }
    }
}

ps_tensor *ps_g_groupnorm_pointwise(ps_graph *g, ps_tensor *x, ps_tensor *dw_w, ps_tensor *dw_b, int groups,
                                    ps_tensor *gamma, ps_tensor *beta, float eps, ps_tensor *w, ps_tensor *b,
                                    ps_tensor *residual)
{
    if (g->training || x->n != 1 || w->h != 1 || w->w != 1 ||
        (residual && (residual->n != 1 || residual->c != w->n || residual->h != x->h || residual->w != x->w))) {
        if (dw_w)
            x = ps_g_conv2d(g, x, dw_w, dw_b, 1, 0, 1, x->c);
        ps_tensor *y = ps_g_conv2d(g, ps_g_groupnorm(g, x, groups, gamma, beta, eps), w, b, 1, 0, 1, 1);
        return residual ? ps_g_add(g, y, residual) : y;
    }
    /* channel ci is scale x + shift after the norm; w (scale x + shift) + b = (w scale) x + (w shift + b) */
    const int cin = x->c, cout = w->n;
    float *scale = ps_arena_alloc(g->arena, 2 * (size_t)cin * sizeof(float)), *shift = scale + cin;
    affine_groupnorm_fold(g, x, dw_w, dw_b, groups, gamma, beta, eps, scale, shift);
    ps_tensor *wf = ps_arena_tensor(g->arena, cout, cin, 1, 1), *bf = ps_arena_tensor(g->arena, cout, 1, 1, 1);
    for (int co = 0; co < cout; co++) {
        double acc = b ? b->data[co] : 0.0;
        for (int ci = 0; ci < cin; ci++) {
            wf->data[(size_t)co * cin + ci] = w->data[(size_t)co * cin + ci] * scale[ci];
            acc += (double)w->data[(size_t)co * cin + ci] * shift[ci];
        }
        bf->data[co] = (float)acc;
    }
    ps_tensor *y = ps_arena_tensor(g->arena, 1, cout, x->h, x->w);
    job pj = {.k = ps_kernels_best(), .x = x, .w = wf, .b = bf, .x2 = residual, .y = y};
    ps_pool_for(g->pool, position_units(y), pointwise_part, &pj);
    return y;
}

ps_tensor *ps_g_gelu(ps_graph *g, ps_tensor *x)
{
    return elementwise(g, x, PS_OP_GELU, ps_kernels_best()->gelu);
}

ps_tensor *ps_g_sigmoid(ps_graph *g, ps_tensor *x)
{
    return elementwise(g, x, PS_OP_SIGMOID, ps_kernels_best()->sigmoid);
}

ps_tensor *ps_g_channel_normalize(ps_graph *g, ps_tensor *x, float eps)
{
    ps_tensor *y = new_like(g, x);
    ps_channel_normalize_ref(x, eps, y);
    ps_node *nd = record(g, PS_OP_CHANNEL_NORMALIZE, y, 1, &x);
    if (nd)
        nd->eps = eps;
    return y;
}

/* LSCAB's spatial-attention inputs (channel mean and max, reflect padding) in bands of rows
 * on the pool: the mean and max by their kernel, the padding by the reference's row-range form. */
enum { BAND_ROWS = 16 };

typedef struct band_job {
    const ps_kernels *k;
    const ps_tensor *x;
    ps_tensor *y;
    int pad;
} band_job;

static int band_units(const ps_tensor *t, int planes)
{
    return planes * ((t->h + BAND_ROWS - 1) / BAND_ROWS);
}

static void mean_max_part(void *ctx, int begin, int end)
{
    const band_job *j = ctx;
    const int bands = (j->x->h + BAND_ROWS - 1) / BAND_ROWS, w = j->x->w;
    for (int u = begin; u < end; u++) {
        const int r0 = u % bands * BAND_ROWS, r1 = MIN(j->x->h, r0 + BAND_ROWS);
        const size_t plane = (size_t)j->x->h * w, n = (size_t)(u / bands);
        float *mean = j->y->data + n * 2 * plane + (size_t)r0 * w;
        j->k->channel_mean_max(j->x->data + n * j->x->c * plane + (size_t)r0 * w, plane, j->x->c,
                               (size_t)(r1 - r0) * w, mean, mean + plane);
    }
}

ps_tensor *ps_g_channel_mean_max(ps_graph *g, ps_tensor *x)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, 2, x->h, x->w);
    band_job j = {ps_kernels_best(), x, y, 0};
    ps_pool_for(pool_for(g, ps_numel(x)), band_units(x, x->n), mean_max_part, &j);
    record(g, PS_OP_CHANNEL_MEAN_MAX, y, 1, &x);
    return y;
}

static void reflect_pad_part(void *ctx, int begin, int end)
{
    const band_job *j = ctx;
    const int bands = (j->y->h + BAND_ROWS - 1) / BAND_ROWS;
    for (int u = begin; u < end; u++) {
        const int oh0 = u % bands * BAND_ROWS;
        ps_reflect_pad_rows(j->x, j->pad, j->y, (size_t)(u / bands), oh0, MIN(j->y->h, oh0 + BAND_ROWS));
    }
}

ps_tensor *ps_g_reflect_pad(ps_graph *g, ps_tensor *x, int pad)
{
    if (pad >= x->h || pad >= x->w)
        g_error("reflect padding %d needs a map larger than %dx%d (model input too small)", pad, x->h, x->w);
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, x->c, x->h + 2 * pad, x->w + 2 * pad);
    band_job j = {NULL, x, y, pad}; /* the padding is the reference's */
    ps_pool_for(pool_for(g, ps_numel(y)), band_units(y, x->n * x->c), reflect_pad_part, &j);
    ps_node *nd = record(g, PS_OP_REFLECT_PAD, y, 1, &x);
    if (nd)
        nd->iarg = pad;
    return y;
}

/* LSCAB's spatial attention and residual in inference, two passes instead of five: first the
 * reflect-padded channel mean/max map, each padded row made from its source row directly; then
 * per band of VALID_ROWS output rows the 7x7 conv, its sigmoid and every channel's
 * (a_c + beta sa) t + t. The same kernels on the same rows as the separate ops: the same bits. */
typedef struct spatial_job {
    const ps_kernels *k;
    const ps_tensor *t, *w, *ca;
    ps_tensor *mm, *conv, *sa, *y; /* padded mean/max (N,2,H+2p,W+2p); conv and sigmoid (N,1,H,W) */
    int pad;
    float alpha, beta;
} spatial_job;

static void spatial_pad_part(void *ctx, int begin, int end)
{
    const spatial_job *j = ctx;
    const int C = j->t->c, h = j->t->h, w = j->t->w, p = j->pad, ph = j->mm->h, pw = j->mm->w;
    const int bands = (ph + BAND_ROWS - 1) / BAND_ROWS;
    const size_t plane = (size_t)h * w, pplane = (size_t)ph * pw;
    for (int u = begin; u < end; u++) {
        const int n = u / bands, r0 = u % bands * BAND_ROWS, r1 = MIN(ph, r0 + BAND_ROWS);
        for (int r = r0; r < r1; r++) {
            float *mean = j->mm->data + (size_t)n * 2 * pplane + (size_t)r * pw, *max = mean + pplane;
            j->k->channel_mean_max(j->t->data + (size_t)n * C * plane + (size_t)reflect_index(r - p, h) * w, plane,
                                   C, w, mean + p, max + p);
            ps_reflect_pad_columns(mean, w, p);
            ps_reflect_pad_columns(max, w, p);
        }
    }
}

static void spatial_attend_part(void *ctx, int begin, int end)
{
    const spatial_job *j = ctx;
    const int C = j->t->c, h = j->t->h, w = j->t->w, k = j->w->h, bands = (h + VALID_ROWS - 1) / VALID_ROWS;
    const size_t plane = (size_t)h * w, pplane = (size_t)j->mm->h * j->mm->w;
    for (int u = begin; u < end; u++) {
        const int n = u / bands, r0 = u % bands * VALID_ROWS, rows = MIN(VALID_ROWS, h - r0);
        const size_t at = (size_t)n * plane + (size_t)r0 * w, len = (size_t)rows * w;
        j->k->conv_valid(j->mm->data + (size_t)n * 2 * pplane + (size_t)r0 * j->mm->w, pplane, j->w->data, NULL,
                         j->conv->data + at, 2, 1, rows + k - 1, j->mm->w, k, 1);
        j->k->sigmoid(j->conv->data + at, j->sa->data + at, len);
        for (int c = 0; c < C; c++) {
            const size_t tp = ((size_t)n * C + c) * plane + (size_t)r0 * w;
            j->k->attend_residual(j->t->data + tp, j->sa->data + at, j->alpha * j->ca->data[n * C + c], j->beta,
                                  j->y->data + tp, len);
        }
    }
}

ps_tensor *ps_g_spatial_attend(ps_graph *g, ps_tensor *t, ps_tensor *w, ps_tensor *ca, ps_tensor *alpha,
                               ps_tensor *beta)
{
    const int pad = w->h / 2;
    if (g->training || w->n != 1 || w->c != 2 || w->h != w->w || pad >= t->h || pad >= t->w) {
        ps_tensor *sa = ps_g_reflect_pad(g, ps_g_channel_mean_max(g, t), pad);
        sa = ps_g_sigmoid(g, ps_g_conv2d(g, sa, w, NULL, 1, 0, 1, 1));
        return ps_g_attend_residual(g, t, ca, sa, alpha, beta);
    }
    spatial_job j = {.k = ps_kernels_best(), .t = t, .w = w, .ca = ca, .pad = pad, .alpha = alpha->data[0],
                     .beta = beta->data[0], .y = new_like(g, t)};
    j.mm = ps_arena_tensor(g->arena, t->n, 2, t->h + 2 * pad, t->w + 2 * pad);
    j.conv = ps_arena_tensor(g->arena, t->n, 1, t->h, t->w);
    j.sa = ps_arena_tensor(g->arena, t->n, 1, t->h, t->w);
    ps_pool_for(pool_for(g, ps_numel(t)), t->n * ((j.mm->h + BAND_ROWS - 1) / BAND_ROWS), spatial_pad_part, &j);
    ps_pool_for(pool_for(g, 2 * ps_numel(t)), t->n * ((t->h + VALID_ROWS - 1) / VALID_ROWS), spatial_attend_part, &j);
    return j.y;
}

static int bdim(int a, int b)
{
    return a > b ? a : b;
}

/* Operands of y's size, or of one channel (e.g. LDGA's gate, (N,1,H,W) * (N,C,H,W)): runs of
 * positions of every channel, as the element-wise ops split them. */
static void positions_part(void *ctx, int begin, int end)
{
    const plane_job *j = ctx;
    const size_t plane = (size_t)j->y->h * j->y->w;
    for (int u = begin; u < end; u++) {
        size_t len, at = position_run(j->y, u, &len);
        const size_t image = at / (plane * j->y->c), p0 = at % plane;
        for (int c = 0; c < j->y->c; c++, at += plane) {
            const size_t ia = j->a->c == 1 ? image * plane + p0 : at, ib = j->b->c == 1 ? image * plane + p0 : at;
            j->kernel(j->a->data + ia, j->b->data + ib, j->y->data + at, len);
        }
    }
}

/* Operands of y's planes' size split by runs of positions (positions_part); broadcasting within
 * planes (same N and C, e.g. (N,C,1,1) * (N,C,H,W)) by planes; broadcasting across images runs
 * whole. */
static ps_tensor *binary(ps_graph *g, ps_tensor *a, ps_tensor *b, ps_op_kind op,
                         void (*fn)(const ps_tensor *, const ps_tensor *, ps_tensor *))
{
    ps_tensor *y = ps_arena_tensor(g->arena, bdim(a->n, b->n), bdim(a->c, b->c),
                                   bdim(a->h, b->h), bdim(a->w, b->w));
    const ps_kernels *k = ps_kernels_best();
    plane_job j = {.a = a, .b = b, .y = y, .binary = fn, .kernel = op == PS_OP_MUL ? k->mul : k->add};
    const int full_planes = a->h == y->h && a->w == y->w && b->h == y->h && b->w == y->w;
    if (a->n == y->n && b->n == y->n && (a->c == y->c || a->c == 1) && (b->c == y->c || b->c == 1) && full_planes) {
        ps_pool_for(g->pool, position_units(y), positions_part, &j);
    } else if (a->n == y->n && b->n == y->n && a->c == y->c && b->c == y->c) {
        ps_pool_for(g->pool, y->n * y->c, planes_part, &j);
    } else {
        fn(a, b, y);
    }
    record(g, op, y, 2, (ps_tensor *[]){a, b});
    return y;
}

ps_tensor *ps_g_add(ps_graph *g, ps_tensor *a, ps_tensor *b)
{
    return binary(g, a, b, PS_OP_ADD, ps_add_ref);
}

ps_tensor *ps_g_mul(ps_graph *g, ps_tensor *a, ps_tensor *b)
{
    return binary(g, a, b, PS_OP_MUL, ps_mul_ref);
}

ps_tensor *ps_g_concat(ps_graph *g, ps_tensor *const *xs, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += xs[i]->c;
    ps_tensor *y = ps_arena_tensor(g->arena, xs[0]->n, c, xs[0]->h, xs[0]->w);
    ps_concat_channels_ref((const ps_tensor *const *)xs, n, y);
    record(g, PS_OP_CONCAT, y, n, xs);
    return y;
}

ps_tensor *ps_g_slice(ps_graph *g, ps_tensor *x, int c0, int count)
{
    ps_tensor *y = ps_arena_tensor(g->arena, x->n, count, x->h, x->w);
    ps_slice_channels_ref(x, c0, y);
    ps_node *nd = record(g, PS_OP_SLICE, y, 1, &x);
    if (nd)
        nd->iarg = c0;
    return y;
}

ps_tensor *ps_g_reshape(ps_graph *g, ps_tensor *x, int n, int c, int h, int w)
{
    ps_tensor *y = ps_arena_tensor(g->arena, n, c, h, w);
    memcpy(y->data, x->data, ps_numel(x) * sizeof(float));
    record(g, PS_OP_RESHAPE, y, 1, &x);
    return y;
}
