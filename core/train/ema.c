#include "ema.h"
#include <stdlib.h>
#include <string.h>

ps_ema *ps_ema_new(const ps_model *m, float decay)
{
    ps_ema *e = calloc(1, sizeof *e);
    e->decay = decay;
    e->n = m->n_params;
    e->shadow = calloc(e->n, sizeof *e->shadow);
    for (int i = 0; i < e->n; i++) {
        size_t bytes = ps_numel(m->params[i].t) * sizeof(float);
        e->shadow[i] = malloc(bytes);
        memcpy(e->shadow[i], m->params[i].t->data, bytes);
    }
    return e;
}

void ps_ema_free(ps_ema *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n; i++)
        free(e->shadow[i]);
    free(e->shadow);
    free(e);
}

float ps_ema_decay_at(const ps_ema *e, long step)
{
    const double warm = (1.0 + (double)step) / (10.0 + (double)step);
    return warm < e->decay ? (float)warm : e->decay;
}

void ps_ema_update(ps_ema *e, const ps_model *m, long step)
{
    const float d = ps_ema_decay_at(e, step);
    for (int i = 0; i < e->n; i++) {
        const float *w = m->params[i].t->data;
        float *s = e->shadow[i];
        for (size_t j = 0, n = ps_numel(m->params[i].t); j < n; j++)
            s[j] = d * s[j] + (1 - d) * w[j];
    }
}

void ps_ema_apply(const ps_ema *e, ps_model *m)
{
    for (int i = 0; i < e->n; i++)
        memcpy(m->params[i].t->data, e->shadow[i], ps_numel(m->params[i].t) * sizeof(float));
}
