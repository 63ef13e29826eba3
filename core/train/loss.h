/* Segmentation losses on logits. Each returns the loss and ADDS dLoss/dlogits (times `weight`)
 * into logits->grad, which must be allocated. */
#pragma once
#include "../lib/tensor.h"

/* `pixel_weight` (same shape as the logits, > 0; NULL = all 1) weights each pixel's share, as
 * ps_structure_weights makes them. */

/* Binary cross-entropy with logits, the pixel-weighted mean sum(w bce) / sum(w). */
double ps_loss_bce_logits(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float weight);
/* Lin et al.'s focal loss, the pixel-weighted mean of -(1 - pt)^gamma log pt, pt the
 * probability of the pixel's true class (targets read as 0/1 at 0.5): pixels already right with
 * confidence count less, the hard ones (boundaries, faint polyps) more. gamma 0 is the BCE above. */
double ps_loss_focal_logits(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float gamma,
                            float weight);
/* Per sample: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1), p = sigmoid(logits); mean over the batch
 * (unweighted). */
double ps_loss_dice(ps_tensor *logits, const ps_tensor *target, float weight);
/* Tversky's generalisation of that Dice loss: 1 - (2 sum(p t) + 1) / (2 (a sum p + b sum t) + 1)
 * with b = fn_weight and a = 1 - b, i.e. 1 - TP / (TP + a FP + b FN) up to the smoothing.
 * fn_weight 0.5 is the Dice loss above, exactly; above 0.5 a missed polyp pixel costs more
 * than a false alarm, which trades precision for recall (a lower FNR). With pixel weights every sum
 * counts a pixel w times (sum(w p t), ...). */
double ps_loss_tversky(ps_tensor *logits, const ps_tensor *target, const ps_tensor *pixel_weight, float fn_weight,
                       float weight);

/* Berman et al.'s Lovasz hinge, per image and averaged over the batch: the Lovasz extension of
 * the Jaccard loss applied to the hinge errors max(0, 1 - z s), s = 2 t - 1, sorted in decreasing
 * order. It is a tight convex surrogate of 1 - IoU of the thresholded mask, so it optimises the
 * per-image overlap directly (best as a fine-tune after BCE + Dice). Piecewise linear in the
 * logits; the gradient is the one of the current sort order. */
double ps_loss_lovasz_hinge(ps_tensor *logits, const ps_tensor *target, float weight);

/* PraNet's "structure loss" weights (N,1,H,W): 1 + gain |m - t|, m the mean of the mask t over
 * the (2 radius + 1)^2 window (clipped to the image), so pixels near a polyp's boundary, and
 * small or thin polyps whole, weigh up to 1 + gain and those far from any boundary 1. */
void ps_structure_weights(const ps_tensor *target, int radius, float gain, ps_tensor *out);

/* Knowledge distillation (MicroAUNet's imitation term): binary KL(teacher || student) between the
 * temperature-softened probabilities sigmoid(z / T) of every pixel, times T^2 (so its gradient
 * keeps its size as T changes), averaged with pixel weights `pixel_weight` (same shape as the
 * logits, >= 0; NULL = all 1). Computed from log-sigmoids, so saturated logits stay finite.
 * Adds the gradient w.r.t. the student's logits only. */
double ps_loss_kd_binary(ps_tensor *student, const ps_tensor *teacher, const ps_tensor *pixel_weight,
                         float temperature, float weight);

/* Mean squared error between two tensors of one shape (feature alignment of the student's
 * adapted encoder features to the teacher's); adds the gradient w.r.t. `pred` only. */
double ps_loss_mse(ps_tensor *pred, const ps_tensor *target, float weight);

/* Stage-2 distillation weights per pixel (N,1,H,W): 1 + boundary_gain where the ground-truth
 * mask changes within `radius` pixels (a polyp's boundary band) + confidence_gain * |2 p - 1|
 * with p = sigmoid(teacher logit), so the KL term leans on boundaries and on the pixels the
 * teacher is sure of. */
void ps_kd_pixel_weights(const ps_tensor *target, const ps_tensor *teacher, int radius, float boundary_gain,
                         float confidence_gain, ps_tensor *out);
