#include "optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ps_adamw_init(ps_adamw *o, const ps_model *model, float lr, float weight_decay)
{
    memset(o, 0, sizeof *o);
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->n = model->n_params;
    o->m = calloc(o->n, sizeof *o->m);
    o->v = calloc(o->n, sizeof *o->v);
    for (int i = 0; i < o->n; i++) {
        if (!model->params[i].trainable)
            continue;
        size_t n = ps_numel(model->params[i].t);
        o->m[i] = calloc(n, sizeof(float));
        o->v[i] = calloc(n, sizeof(float));
    }
}

void ps_adamw_free(ps_adamw *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->m[i]);
        free(o->v[i]);
    }
    free(o->m);
    free(o->v);
}

void ps_adamw_step(ps_adamw *o, ps_model *model, float lr)
{
    o->step++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->beta2, (double)o->step);
    for (int i = 0; i < o->n; i++) {
        ps_param *p = &model->params[i];
        if (!p->trainable)
            continue;
        float *w = p->t->data, *g = p->t->grad, *m = o->m[i], *v = o->v[i];
        for (size_t j = 0, n = ps_numel(p->t); j < n; j++) {
            w[j] -= lr * o->weight_decay * w[j];
            m[j] = o->beta1 * m[j] + (1 - o->beta1) * g[j];
            v[j] = o->beta2 * v[j] + (1 - o->beta2) * g[j] * g[j];
            double denom = sqrt(v[j] / bc2) + o->eps;
            w[j] -= (float)(lr * (m[j] / bc1) / denom);
        }
    }
}

void ps_model_zero_grad(ps_model *model)
{
    for (int i = 0; i < model->n_params; i++) {
        ps_param *p = &model->params[i];
        if (!p->trainable)
            continue;
        ps_tensor_ensure_grad(p->t);
        memset(p->t->grad, 0, ps_numel(p->t) * sizeof(float));
    }
}

float ps_cosine_lr(long step, long total, long warmup, float base_lr, float min_lr)
{
    if (warmup > 0 && step < warmup)
        return base_lr * (float)(step + 1) / (float)warmup;
    double span = (double)(total - warmup);
    double t = span > 0 ? (double)(step - warmup) / span : 1.0;
    if (t > 1)
        t = 1;
    return (float)(min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(G_PI * t)));
}
