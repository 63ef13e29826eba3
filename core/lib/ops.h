/* Plain scalar reference implementations of every op (forward).
 * Conventions: all tensors NCHW float32; outputs are pre-allocated by the caller with the
 * documented shape; inputs and outputs never alias. Optimised kernels (later) are tested
 * against these. */
#pragma once
#include "tensor.h"
#include "kernels.h" /* ps_lin_tap */

typedef struct ps_conv2d_params {
    int stride;          /* same in both directions */
    int pad_h, pad_w;    /* zero padding */
    int dilation;        /* same in both directions */
    int groups;          /* 1 = dense, in_channels = depthwise */
} ps_conv2d_params;

/* x (N,Cin,H,W), w (Cout, Cin/groups, KH, KW), b (Cout,1,1,1) or NULL.
 * y (N, Cout, Ho, Wo), Ho = (H + 2*pad_h - dilation*(KH-1) - 1)/stride + 1 (same for W). */
void ps_conv2d_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b,
                   const ps_conv2d_params *p, ps_tensor *y);
int ps_conv2d_out_size(int in, int k, int pad, int stride, int dilation);

/* 1-D conv over the last axis: x (N,Cin,1,L), w (Cout,Cin/groups,1,K), b or NULL, y (N,Cout,1,Lo).
 * Same semantics as torch.nn.Conv1d with padding `pad`. */
void ps_conv1d_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b,
                   int stride, int pad, int dilation, int groups, ps_tensor *y);

/* x (N, K = c*h*w), w (OUT, K,1,1), b (OUT,1,1,1) or NULL -> y (N, OUT, 1, 1). y = x W^T + b. */
void ps_linear_ref(const ps_tensor *x, const ps_tensor *w, const ps_tensor *b, ps_tensor *y);

/* Inference batch-norm with running statistics; gamma, beta, mean, var are (C,1,1,1). */
void ps_batchnorm_ref(const ps_tensor *x, const ps_tensor *gamma, const ps_tensor *beta,
                      const ps_tensor *mean, const ps_tensor *var, float eps, ps_tensor *y);
/* Training-mode batch-norm: normalise with the batch's biased statistics, store per-channel
 * batch mean and 1/sqrt(var+eps) into save_mean/save_invstd (length C), and update the running
 * statistics like PyTorch: running = (1-momentum)*running + momentum*batch (running_var gets the
 * unbiased batch variance). running_mean/var may be NULL (then not updated). */
void ps_batchnorm_train_ref(const ps_tensor *x, const ps_tensor *gamma, const ps_tensor *beta,
                            ps_tensor *running_mean, ps_tensor *running_var, float momentum,
                            float eps, ps_tensor *y, float *save_mean, float *save_invstd);
/* The same with its sums over a plane (sum x, sum (x - mean)^2) and its per-plane affine
 * (y = x scale + shift) done by `ops`: the reference's in double, the graph's by the kernels. */
typedef struct ps_batchnorm_ops {
    double (*sum)(const float *x, size_t n);
    double (*sum_sqdev)(const float *x, size_t n, double mean);
    void (*affine)(float *y, const float *x, size_t n, float scale, float shift);
} ps_batchnorm_ops;
void ps_batchnorm_train_with(const ps_batchnorm_ops *ops, const ps_tensor *x, const ps_tensor *gamma,
                             const ps_tensor *beta, ps_tensor *running_mean, ps_tensor *running_var, float momentum,
                             float eps, ps_tensor *y, float *save_mean, float *save_invstd);

/* GroupNorm (torch.nn.GroupNorm): C divisible by groups; gamma, beta (C,1,1,1) or NULL. */
void ps_groupnorm_ref(const ps_tensor *x, int groups, const ps_tensor *gamma,
                      const ps_tensor *beta, float eps, ps_tensor *y);

void ps_relu_ref(const ps_tensor *x, ps_tensor *y);
void ps_gelu_ref(const ps_tensor *x, ps_tensor *y); /* exact: 0.5 x (1 + erf(x/sqrt 2)) */
void ps_sigmoid_ref(const ps_tensor *x, ps_tensor *y);
/* Softmax over the H*W positions of each (n, c) plane (MALUNet's external attention). */
void ps_softmax_spatial_ref(const ps_tensor *x, ps_tensor *y);
/* y = x / (eps + sum of x over the channels at the same (n, h, w)): normalises each position's
 * channel vector to sum 1 (external attention's second normalisation; x is positive there).
 * y must not be x. */
void ps_channel_normalize_ref(const ps_tensor *x, float eps, ps_tensor *y);

/* 2x2 max-pool, stride 2, floor: y (N,C,H/2,W/2). */
void ps_maxpool2x2_ref(const ps_tensor *x, ps_tensor *y);
/* Global average pool: y (N,C,1,1). */
void ps_global_avgpool_ref(const ps_tensor *x, ps_tensor *y);
/* y (N,2,H,W): channel 0 = mean over channels, channel 1 = max over channels. The _run and
 * _rows forms below do a part of these ops (len positions; rows [oh0, oh1) of plane pl), so the
 * graph can share them out in bands on its threads. */
void ps_channel_mean_max_ref(const ps_tensor *x, ps_tensor *y);
/* The same on one run: len positions of c planes `plane` apart from x -> mean[0..len), max[0..len). */
void ps_channel_mean_max_run(const float *x, size_t plane, int c, size_t len, float *mean, float *max);
/* Reflect padding (torch ReflectionPad2d), pad < H and pad < W: y (N,C,H+2p,W+2p). */
void ps_reflect_pad_ref(const ps_tensor *x, int pad, ps_tensor *y);
void ps_reflect_pad_rows(const ps_tensor *x, int pad, ps_tensor *y, size_t pl, int oh0, int oh1);
/* One padded row whose middle row[pad .. pad + w) is filled: its pad columns on each side
 * mirrored from it. */
void ps_reflect_pad_columns(float *row, int w, int pad);
/* Bilinear x2 upsampling, align_corners=True: y (N,C,2H,2W) (the graph's is the upsample2x
 * kernel, on taps from ps_lin_taps). */
void ps_upsample2x_ref(const ps_tensor *x, ps_tensor *y);

/* Element-wise with broadcasting: each of N,C,H,W of a and b is equal or 1; y has the
 * broadcast shape. */
void ps_add_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);
void ps_mul_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);

/* Channel concat of n tensors with equal N,H,W; and the channel slice [c0, c0 + y->c). */
void ps_concat_channels_ref(const ps_tensor *const *xs, int n, ps_tensor *y);
void ps_slice_channels_ref(const ps_tensor *x, int c0, ps_tensor *y);
