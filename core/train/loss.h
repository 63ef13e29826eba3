/* Segmentation losses on logits. Each returns the loss and ADDS dLoss/dlogits (times `weight`)
 * into logits->grad, which must be allocated. */
#pragma once
#include "../lib/tensor.h"

/* Mean binary cross-entropy with logits over all pixels. */
double ps_loss_bce_logits(ps_tensor *logits, const ps_tensor *target, float weight);
/* Per sample: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1), p = sigmoid(logits); mean over the batch. */
double ps_loss_dice(ps_tensor *logits, const ps_tensor *target, float weight);
