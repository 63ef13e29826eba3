/* Plain scalar reference implementations of every op (forward).
 * Conventions: all tensors NCHW float32; outputs are pre-allocated by the caller with the
 * documented shape; inputs and outputs never alias. Optimised kernels (later) are tested
 * against these. */
#pragma once
#include "tensor.h"

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
/* Its running-statistics update for channel c from the batch mean and the sum of squared
 * deviations over m values (shared by the graph's kernel version). */
void ps_batchnorm_update_running(ps_tensor *running_mean, ps_tensor *running_var, int c, float momentum,
                                 double mean, double ssd, size_t m);

/* GroupNorm (torch.nn.GroupNorm): C divisible by groups; gamma, beta (C,1,1,1) or NULL. */
void ps_groupnorm_ref(const ps_tensor *x, int groups, const ps_tensor *gamma,
                      const ps_tensor *beta, float eps, ps_tensor *y);

void ps_relu_ref(const ps_tensor *x, ps_tensor *y);
void ps_gelu_ref(const ps_tensor *x, ps_tensor *y); /* exact: 0.5 x (1 + erf(x/sqrt 2)) */
void ps_sigmoid_ref(const ps_tensor *x, ps_tensor *y);
/* Softmax over the H*W positions of each (n, c) plane (MALUNet's external attention). */
void ps_softmax_spatial_ref(const ps_tensor *x, ps_tensor *y);
/* y = x / (eps + sum of x over the channels at the same (n, h, w)): normalises each position's
 * channel vector to sum 1 (external attention's second normalisation; x is positive there). */
void ps_channel_normalize_ref(const ps_tensor *x, float eps, ps_tensor *y);

/* 2x2 max-pool, stride 2, floor: y (N,C,H/2,W/2). */
void ps_maxpool2x2_ref(const ps_tensor *x, ps_tensor *y);
/* Global average pool: y (N,C,1,1). */
void ps_global_avgpool_ref(const ps_tensor *x, ps_tensor *y);
/* y (N,2,H,W): channel 0 = mean over channels, channel 1 = max over channels. */
void ps_channel_mean_max_ref(const ps_tensor *x, ps_tensor *y);
/* Reflect padding (torch ReflectionPad2d), pad < H and pad < W: y (N,C,H+2p,W+2p). */
void ps_reflect_pad_ref(const ps_tensor *x, int pad, ps_tensor *y);
/* Bilinear x2 upsampling, align_corners=True: y (N,C,2H,2W). */
void ps_upsample2x_ref(const ps_tensor *x, ps_tensor *y);

/* Element-wise with broadcasting: each of N,C,H,W of a and b is equal or 1; y has the
 * broadcast shape. */
void ps_add_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);
void ps_mul_ref(const ps_tensor *a, const ps_tensor *b, ps_tensor *y);

/* Channel concat of n tensors with equal N,H,W; and the channel slice [c0, c0 + y->c). */
void ps_concat_channels_ref(const ps_tensor *const *xs, int n, ps_tensor *y);
void ps_slice_channels_ref(const ps_tensor *x, int c0, ps_tensor *y);
