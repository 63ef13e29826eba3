#include "backward.h"
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "backward_ops.h"
#include "../lib/kernels.h"

/* A depthwise 1x1 conv (a per-channel scale and bias): gx += w dy, and from one pass over each
 * plane, gw += sum dy x and gb += sum dy. */
static void depthwise1x1_backward(const ps_kernels *k, const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                                  const ps_tensor *y)
{
    const size_t plane = (size_t)x->h * x->w;
    for (int n = 0; n < x->n; n++)
        for (int c = 0; c < x->c; c++) {
            const size_t off = ((size_t)n * x->c + c) * plane;
            const float *restrict dy = y->grad + off;
            if (w->grad || (b && b->grad)) {
                double sdy, sdyx;
                k->sum_dotdev(dy, x->data + off, plane, 0.f, &sdy, &sdyx);
                if (w->grad)
                    w->grad[c] += (float)sdyx;
                if (b && b->grad)
                    b->grad[c] += (float)sdy;
            }
            if (x->grad) {
                float *restrict gx = x->grad + off;
                const float wc = w->data[c];
                for (size_t i = 0; i < plane; i++)
                    gx[i] += wc * dy[i];
            }
        }
}

/* The convs the optimised kernels cover (as in graph.c's forward), else the reference. */
static void conv2d_backward(const ps_kernels *k, const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                            const ps_conv2d_params *p, const ps_tensor *y)
{
    const int pointwise = p->groups == 1 && w->h == 1 && w->w == 1 && p->stride == 1 && p->pad_h == 0 &&
                          p->pad_w == 0;
    const int depthwise = p->groups == x->c && y->c == x->c && w->h == 3 && w->w == 3 && p->stride == 1 &&
                          p->pad_h == p->dilation && p->pad_w == p->dilation;
    const int scale = p->groups == x->c && y->c == x->c && w->h == 1 && w->w == 1 && p->stride == 1 &&
                      p->pad_h == 0 && p->pad_w == 0; /* depthwise 1x1: y = w x + b per channel */
    if (scale) {
        depthwise1x1_backward(k, x, w, b, y);
        return;
    }
    if (!pointwise && !depthwise) {
        ps_conv2d_backward(x, w, b, p, y);
        return;
    }
    const size_t xplane = (size_t)x->h * x->w, yplane = (size_t)y->h * y->w;
    if (b && b->grad)
        ps_conv_bias_backward(b, y);
    for (int n = 0; n < x->n; n++) {
        const float *xn = x->data + n * x->c * xplane, *dy = y->grad + n * y->c * yplane;
        float *gx = x->grad ? x->grad + n * x->c * xplane : NULL;
        if (pointwise)
            k->conv_pointwise_backward(xn, w->data, dy, gx, w->grad, x->c, y->c, yplane);
        else
            k->conv_depthwise3x3_backward(xn, w->data, dy, gx, w->grad, x->c, x->h, x->w, p->dilation);
    }
}

/* ps_groupnorm_backward by the kernels, one image's group at a time. */
static void groupnorm_backward(const ps_kernels *k, const ps_tensor *x, int groups, const ps_tensor *gamma,
                               const ps_tensor *beta, float eps, const ps_tensor *y)
{
    const int cpg = x->c / groups;
    const size_t plane = (size_t)x->h * x->w;
    for (int n = 0; n < x->n; n++)
        for (int g = 0; g < groups; g++) {
            const int c0 = g * cpg;
            const size_t off = ((size_t)n * x->c + c0) * plane;
            k->groupnorm_backward_group(x->data + off, y->grad + off, x->grad ? x->grad + off : NULL,
                                        gamma ? gamma->data + c0 : NULL,
                                        gamma && gamma->grad ? gamma->grad + c0 : NULL,
                                        beta && beta->grad ? beta->grad + c0 : NULL, cpg, plane, eps);
        }
}

static void node_backward(const ps_node *nd)
{
    const ps_kernels *k = ps_kernels_best();
    ps_tensor *const *in = nd->in;
    const ps_tensor *y = nd->out;
    switch (nd->op) {
    case PS_OP_CONV2D:
        conv2d_backward(k, in[0], in[1], in[2], &nd->conv, y);
        break;
    case PS_OP_CONV1D:
        ps_conv1d_backward(in[0], in[1], in[2], nd->conv.stride, nd->conv.pad_w, nd->conv.dilation,
                           nd->conv.groups, y);
        break;
    case PS_OP_LINEAR:
        ps_linear_backward(in[0], in[1], in[2], y);
        break;
    case PS_OP_BATCHNORM_TRAIN:
        ps_batchnorm_train_backward_with(k->sum_dotdev, in[0], in[1], in[2], nd->save_mean, nd->save_invstd, y);
        break;
    case PS_OP_GROUPNORM:
        groupnorm_backward(k, in[0], nd->iarg, in[1], in[2], nd->eps, y);
        break;
    case PS_OP_RELU:
        if (in[0]->grad)
            k->relu_backward(in[0]->data, y->grad, in[0]->grad, ps_numel(y));
        break;
    case PS_OP_GELU:
        if (in[0]->grad)
            k->gelu_backward(in[0]->data, y->grad, in[0]->grad, ps_numel(y));
        break;
    case PS_OP_SIGMOID:
        ps_sigmoid_backward(in[0], y);
        break;
    case PS_OP_MAXPOOL2X2:
        if (in[0]->grad) {
            const size_t xplane = (size_t)in[0]->h * in[0]->w, yplane = (size_t)y->h * y->w;
            for (size_t pl = 0; pl < (size_t)y->n * y->c; pl++)
                k->maxpool2x2_backward(in[0]->data + pl * xplane, in[0]->w, y->grad + pl * yplane, y->h, y->w,
                                       in[0]->grad + pl * xplane);
        }
        break;
    case PS_OP_GLOBAL_AVGPOOL:
        ps_global_avgpool_backward(in[0], y);
        break;
    case PS_OP_CHANNEL_MEAN_MAX:
        ps_channel_mean_max_backward(in[0], y);
        break;
    case PS_OP_REFLECT_PAD:
        ps_reflect_pad_backward(in[0], nd->iarg, y);
        break;
    case PS_OP_UPSAMPLE2X:
        ps_upsample2x_backward(in[0], y);
        break;
    case PS_OP_ADD:
        ps_add_backward(in[0], in[1], y);
        break;
    case PS_OP_MUL:
        ps_mul_backward(in[0], in[1], y);
        break;
    case PS_OP_CONCAT:
        ps_concat_channels_backward(in, nd->n_in, y);
        break;
    case PS_OP_SLICE:
        ps_slice_channels_backward(in[0], nd->iarg, y);
        break;
    case PS_OP_SOFTMAX_SPATIAL:
        ps_softmax_spatial_backward(in[0], y);
        break;
    case PS_OP_CHANNEL_NORMALIZE:
        ps_channel_normalize_backward(in[0], nd->eps, y);
        break;
    case PS_OP_RESHAPE:
        if (in[0]->grad)
            for (size_t i = 0, n = ps_numel(y); i < n; i++)
                in[0]->grad[i] += y->grad[i];
        break;
    }
}

/* Zeroes t's gradient if it is still waiting for it. */
static void zero_if_pending(GHashTable *pending, ps_tensor *t)
{
    if (g_hash_table_remove(pending, t))
        memset(t->grad, 0, ps_numel(t) * sizeof(float));
}

void ps_backward(ps_graph *g, ps_tensor *out)
{
    /* Every node output gets a gradient up front, zeroed only just before the first node (in
     * reverse order) that adds into it, so the zeros are still in cache for that node's pass. A
     * node whose output nothing consumed zeroes its own. */
    GHashTable *pending = g_hash_table_new(NULL, NULL);
    for (int i = 0; i < g->n_nodes; i++) {
        ps_tensor *t = g->nodes[i].out;
        if (t != out && !t->grad) {
            t->grad = ps_arena_alloc(g->arena, ps_numel(t) * sizeof(float));
            g_hash_table_add(pending, t);
        }
    }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const ps_node *nd = &g->nodes[i];
        zero_if_pending(pending, nd->out);
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k])
                zero_if_pending(pending, nd->in[k]);
        node_backward(nd);
    }
    g_hash_table_destroy(pending);
}
