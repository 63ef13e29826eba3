#include "ema.h"
#include <glib.h>
#include <string.h>

/* GLib's allocators: a model-sized copy that cannot be made aborts with a message, not a NULL */
ps_ema *ps_ema_new(const ps_model *m, float decay)
{
    ps_ema *e = g_new0(ps_ema, 1);
    e->decay = decay;
    e->n = m->n_params;
    e->shadow = g_new0(float *, e->n);
    for (int i = 0; i < e->n; i++)
        e->shadow[i] = g_memdup2(m->params[i].t->data, ps_numel(m->params[i].t) * sizeof(float));
    return e;
}

void ps_ema_free(ps_ema *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n; i++)
        g_free(e->shadow[i]);
    g_free(e->shadow);
    g_free(e);
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
