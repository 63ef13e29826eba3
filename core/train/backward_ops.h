/* Backward (vector-Jacobian products) of every op in core/lib/ops.h, plain scalar code.
 * Convention: the gradient of the op's output is y->grad; each function ADDS (+=) into the
 * grad buffers of its inputs/parameters that are non-NULL (a NULL grad means "no gradient
 * needed"). Saved values are the forward's inputs/outputs as named. */
#pragma once
#include "../lib/ops.h"

/* b->grad[oc] += sum of y->grad over the images and positions of channel oc. */
void ps_conv_bias_backward(ps_tensor *b, const ps_tensor *y);
void ps_conv2d_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                        const ps_conv2d_params *p, const ps_tensor *y);
void ps_conv1d_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b,
                        int stride, int pad, int dilation, int groups, const ps_tensor *y);
void ps_linear_backward(const ps_tensor *x, const ps_tensor *w, ps_tensor *b, const ps_tensor *y);
/* Training-mode batch-norm backward, with the save_mean/save_invstd from the forward. */
void ps_batchnorm_train_backward(const ps_tensor *x, const ps_tensor *gamma, ps_tensor *beta,
                                 const float *save_mean, const float *save_invstd,
                                 const ps_tensor *y);
/* The same with the plane sums (sum dy, sum dy (x - mean)) taken by `sums`: the reference sums
 * in double, the graph the kernels' lane sums. */
typedef void (*ps_plane_sums_fn)(const float *dy, const float *x, size_t n, float mean, double *sdy, double *sdyx);
void ps_batchnorm_train_backward_with(ps_plane_sums_fn sums, const ps_tensor *x, const ps_tensor *gamma,
                                      const ps_tensor *beta, const float *save_mean, const float *save_invstd,
                                      const ps_tensor *y);
void ps_groupnorm_backward(const ps_tensor *x, int groups, const ps_tensor *gamma,
                           ps_tensor *beta, float eps, const ps_tensor *y);
void ps_relu_backward(const ps_tensor *x, const ps_tensor *y);
void ps_gelu_backward(const ps_tensor *x, const ps_tensor *y);
void ps_sigmoid_backward(const ps_tensor *x, const ps_tensor *y); /* uses y->data */
void ps_softmax_spatial_backward(const ps_tensor *x, const ps_tensor *y); /* uses y->data */
/* Uses y->data and recomputes the denominators from x. */
void ps_channel_normalize_backward(const ps_tensor *x, float eps, const ps_tensor *y);
void ps_maxpool2x2_backward(const ps_tensor *x, const ps_tensor *y); /* first max wins ties */
void ps_global_avgpool_backward(const ps_tensor *x, const ps_tensor *y);
/* Tied channel maxima share the max's gradient evenly, like torch.amax. */
void ps_channel_mean_max_backward(const ps_tensor *x, const ps_tensor *y);
void ps_reflect_pad_backward(const ps_tensor *x, int pad, const ps_tensor *y);
void ps_upsample2x_backward(const ps_tensor *x, const ps_tensor *y);
/* Broadcast ops reduce the gradient over broadcast dimensions. */
void ps_add_backward(const ps_tensor *a, const ps_tensor *b, const ps_tensor *y);
void ps_mul_backward(const ps_tensor *a, const ps_tensor *b, const ps_tensor *y);
void ps_concat_channels_backward(ps_tensor *const *xs, int n, const ps_tensor *y);
void ps_slice_channels_backward(const ps_tensor *x, int c0, const ps_tensor *y);
