/* Re-estimating batch-norm running statistics for fixed weights: a weight average ("model
 * soup", SWA) keeps the mean of its inputs' running statistics, which are not the statistics
 * of the averaged network's own activations. SWA (Izmailov et al. 2018) recomputes them with one
 * pass over the training data, as PyTorch's torch.optim.swa_utils.update_bn does. */
#pragma once
#include "../lib/model.h"
#include "dataset.h"

/* Batch-norm layers of the model (its parameters named *.running_mean). */
int ps_batchnorm_layers(const ps_model *m);

/* The loader configuration for it: the training augmentation (the statistics the weights were
 * trained with) with random crops of crop_scale ("MIN,MAX" as polypseg-train records it; NULL
 * or unreadable: the trainer's default 0.75,1), one fixed order, batches of 8 at the model's
 * input size. */
ps_loader_config ps_batchnorm_loader_config(const ps_model *m, const char *crop_scale, int threads);

/* Runs the model over one epoch of `loader` (batches of `batch` at the model's input size)
 * with batch-norm on batch statistics, and sets each running mean and variance to their mean
 * over the batches (PyTorch's cumulative average, momentum None). Nothing else changes.
 * Returns the number of batches. */
int ps_recompute_batchnorm(ps_model *m, ps_loader *loader, int batch);
