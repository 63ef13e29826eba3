/* AdamW (PyTorch semantics) and a cosine learning-rate schedule with linear warm-up. */
#pragma once
#include "../lib/model.h"

typedef struct ps_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    long step;
    float **m, **v; /* per trainable parameter of the model, same order as model->params */
    int n;
} ps_adamw;

void ps_adamw_init(ps_adamw *o, const ps_model *model, float lr, float weight_decay);
void ps_adamw_free(ps_adamw *o);
/* One update of every trainable parameter from its ->grad, at learning rate `lr`. */
void ps_adamw_step(ps_adamw *o, ps_model *model, float lr);
/* Zeroes every trainable parameter's gradient (allocating it the first time). */
void ps_model_zero_grad(ps_model *model);

/* lr at `step` of `total`: linear warm-up over `warmup` steps, then cosine to min_lr. */
float ps_cosine_lr(long step, long total, long warmup, float base_lr, float min_lr);
