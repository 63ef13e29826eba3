/* An exponential moving average of the weights (Polyak averaging, as TensorFlow's
 * ExponentialMovingAverage and timm's ModelEmaV2): a shadow copy of every parameter, batch-norm
 * running statistics included, pulled towards the live weights after each optimiser step. The
 * trainer writes the shadow, not the last step's weights, when --ema is on. */
#pragma once
#include "../lib/model.h"

typedef struct ps_ema {
    float decay;    /* the most each update keeps of the shadow */
    int n;          /* model->n_params when made */
    float **shadow; /* per parameter of the model, same order as model->params */
} ps_ema;

/* A shadow equal to the model's current parameters. */
ps_ema *ps_ema_new(const ps_model *m, float decay);
void ps_ema_free(ps_ema *e);
/* The decay of the update after optimiser step `step` (1 for the first): min(decay,
 * (1 + step) / (10 + step)), TensorFlow's num_updates warm-up, so that a short run or a random
 * start is not held near its first weights. */
float ps_ema_decay_at(const ps_ema *e, long step);
/* shadow = d * shadow + (1 - d) * weights, d = ps_ema_decay_at(e, step). */
void ps_ema_update(ps_ema *e, const ps_model *m, long step);
/* Copies the shadow into the model's parameters (at the end of training). */
void ps_ema_apply(const ps_ema *e, ps_model *m);
