/* The model's forward pass is written once against these functions. Each allocates its
 * output from the graph's arena and runs the reference op; when the graph is in training
 * mode it also records a node, so core/train/backward.c can run the pass in reverse.
 * Inference never records anything and never touches training code. */
#pragma once
#include "ops.h"
#include "threadpool.h"

#define PS_NODE_MAX_IN 6

typedef enum ps_op_kind {
    PS_OP_CONV2D, PS_OP_CONV1D, PS_OP_LINEAR, PS_OP_BATCHNORM_TRAIN, PS_OP_GROUPNORM,
    PS_OP_RELU, PS_OP_GELU, PS_OP_SIGMOID, PS_OP_MAXPOOL2X2, PS_OP_GLOBAL_AVGPOOL,
    PS_OP_CHANNEL_MEAN_MAX, PS_OP_REFLECT_PAD, PS_OP_UPSAMPLE2X, PS_OP_ADD, PS_OP_MUL,
    PS_OP_CONCAT, PS_OP_SLICE, PS_OP_RESHAPE, PS_OP_SOFTMAX_SPATIAL, PS_OP_CHANNEL_NORMALIZE,
} ps_op_kind;

typedef struct ps_node {
    ps_op_kind op;
    int n_in;
    ps_tensor *in[PS_NODE_MAX_IN];
    ps_tensor *out;
    ps_conv2d_params conv; /* conv2d, conv1d (pad_w = pad) */
    int iarg;              /* groups (groupnorm), pad (reflect), c0 (slice) */
    float eps;             /* batch-norm, groupnorm, channel_normalize */
    float *save_mean, *save_invstd; /* batch-norm training */
} ps_node;

typedef struct ps_graph {
    ps_arena *arena;
    int training;      /* batch-norm uses batch statistics, and nodes are recorded */
    float bn_momentum; /* running-statistics momentum in training (PyTorch default 0.1) */
    ps_node *nodes;
    int n_nodes, cap_nodes;
    ps_pool *pool; /* splits the optimised kernels over threads; NULL = the calling thread only */
    /* Called when a stage of the pass ends (ps_g_stage), e.g. by polypseg-bench for per-stage
     * times; NULL (the default) costs nothing. */
    void (*on_stage)(void *user, const char *stage);
    void *stage_user;
} ps_graph;

void ps_graph_init(ps_graph *g, ps_arena *arena, int training);
/* A copy of inference graph g whose ops run on the calling thread alone (no pool, no stage
 * hook), for work run beside other work on g's threads (the arena must then be shared:
 * ps_arena_set_shared). */
ps_graph ps_graph_alone(const ps_graph *g);
void ps_graph_clear(ps_graph *g); /* forget nodes and reset the arena */
void ps_graph_release(ps_graph *g);
/* Marks the end of a named stage (a model block, pre-processing...). */
static inline void ps_g_stage(ps_graph *g, const char *stage)
{
    if (g->on_stage)
        g->on_stage(g->stage_user, stage);
}

ps_tensor *ps_g_conv2d(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int stride,
                       int pad, int dilation, int groups);
/* Inference only: relu(conv2d(...)) in one pass (for convs with batch-norm folded in). */
ps_tensor *ps_g_conv2d_relu(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int stride,
                            int pad, int dilation, int groups);
/* Inference only: relu(conv1x1(relu(depthwise3x3(x, wd, bd, dilation)), wp, bp)) [then GELU when
 * gelu is set, or GELU of its sum with `add` (of the output's shape; gelu 0) when add is given:
 * the DWD's residual], one band of rows at a time, the depthwise output consumed while in cache
 * (MicroAUNet's DSD with its batch-norms folded in). */
ps_tensor *ps_g_depthwise_pointwise_relu(ps_graph *g, ps_tensor *x, ps_tensor *wd, ps_tensor *bd, int dilation,
                                         ps_tensor *wp, ps_tensor *bp, int gelu, ps_tensor *add);
/* LDGA's gate: x * sigmoid(conv1x1(x, w)) with w (1, C, 1, 1), no bias; one pass in inference,
 * the three ops in training. */
ps_tensor *ps_g_gate(ps_graph *g, ps_tensor *x, ps_tensor *w);
ps_tensor *ps_g_conv1d(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b, int pad);
ps_tensor *ps_g_linear(ps_graph *g, ps_tensor *x, ps_tensor *w, ps_tensor *b);
/* Inference: running statistics. Training: batch statistics, running ones updated. */
ps_tensor *ps_g_batchnorm(ps_graph *g, ps_tensor *x, ps_tensor *gamma, ps_tensor *beta,
                          ps_tensor *mean, ps_tensor *var, float eps);
ps_tensor *ps_g_groupnorm(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma,
                          ps_tensor *beta, float eps);
/* The U-Net decoder's step: gelu(upsample2x(groupnorm(x))) + skip (up = 1), or without the
 * upsampling (up = 0). Inference runs it as one pass per plane after the GroupNorm statistics;
 * training records the separate ops. */
ps_tensor *ps_g_groupnorm_up2_gelu_add(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma, ps_tensor *beta,
                                       float eps, int up, ps_tensor *skip);
/* The encoder's step: gelu(maxpool2x2(groupnorm(x))), fused for inference in the same way. */
ps_tensor *ps_g_groupnorm_maxpool_gelu(ps_graph *g, ps_tensor *x, int groups, ps_tensor *gamma, ps_tensor *beta,
                                       float eps);
/* conv1x1(groupnorm(dw1x1(x)), w, b) [+ residual, NULL = none], dw1x1 a per-channel scale dw_w
 * (C,1,1,1) and bias dw_b (NULL: no dw1x1; MicroAUNet's DWC with k = 1). In inference (one
 * image) the frame's GroupNorm statistics, and the dw1x1, are folded into the conv's weights
 * and the residual is added as each output is stored, so neither the normalised map nor the
 * sum is a pass of its own; training records the separate ops. */
ps_tensor *ps_g_groupnorm_pointwise(ps_graph *g, ps_tensor *x, ps_tensor *dw_w, ps_tensor *dw_b, int groups,
                                    ps_tensor *gamma, ps_tensor *beta, float eps, ps_tensor *w, ps_tensor *b,
                                    ps_tensor *residual);
/* gelu(a + b); one pass in inference when a and b have one shape. */
ps_tensor *ps_g_add_gelu(ps_graph *g, ps_tensor *a, ps_tensor *b);
/* MicroAUNet's LSCAB output (alpha * ca + beta * sa) * t + t, for t (N,C,H,W), channel attention
 * ca (N,C,1,1), spatial attention sa (N,1,H,W), scalar alpha and beta; one pass in inference. */
ps_tensor *ps_g_attend_residual(ps_graph *g, ps_tensor *t, ps_tensor *ca, ps_tensor *sa, ps_tensor *alpha,
                                ps_tensor *beta);
/* MicroAUNet's LSCAB spatial branch with its output: (alpha ca + beta sa) * t + t, where
 * sa = sigmoid(conv(reflect_pad(channel_mean_max(t), k / 2), w)), w (1, 2, k, k). Two passes in
 * inference, the separate ops in training. */
ps_tensor *ps_g_spatial_attend(ps_graph *g, ps_tensor *t, ps_tensor *w, ps_tensor *ca, ps_tensor *alpha,
                               ps_tensor *beta);
ps_tensor *ps_g_relu(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_gelu(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_sigmoid(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_softmax_spatial(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_channel_normalize(ps_graph *g, ps_tensor *x, float eps);
ps_tensor *ps_g_maxpool2x2(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_global_avgpool(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_channel_mean_max(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_reflect_pad(ps_graph *g, ps_tensor *x, int pad);
ps_tensor *ps_g_upsample2x(ps_graph *g, ps_tensor *x);
ps_tensor *ps_g_add(ps_graph *g, ps_tensor *a, ps_tensor *b);
ps_tensor *ps_g_mul(ps_graph *g, ps_tensor *a, ps_tensor *b);
ps_tensor *ps_g_concat(ps_graph *g, ps_tensor *const *xs, int n);
ps_tensor *ps_g_slice(ps_graph *g, ps_tensor *x, int c0, int count);
/* Same values, new shape (same element count). A copy, so gradients stay separate. */
ps_tensor *ps_g_reshape(ps_graph *g, ps_tensor *x, int n, int c, int h, int w);
