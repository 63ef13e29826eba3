#include "deep_supervision.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "loss.h"
#include "train_params.h"

enum { N_HEADS = 3, FIRST_LEVEL = 2 }; /* heads on dec2, dec3, dec4 */

struct ps_deepsup {
    float weight;
    ps_tensor *w[N_HEADS], *b[N_HEADS];
    ps_graph *g;               /* the graph being watched */
    ps_tensor *out[N_HEADS];   /* the decoder outputs of its last forward pass */
};

ps_deepsup *ps_deepsup_new(ps_model *m, float weight, uint64_t seed, GError **err)
{
    if (m->info.n_channels < FIRST_LEVEL + N_HEADS) {
        g_set_error(err, PS_MODEL_ERROR, 7, "%s has no decoder levels for deep supervision", m->info.arch);
        return NULL;
    }
    int in[N_HEADS], out[N_HEADS];
    double bound[N_HEADS];
    for (int k = 0; k < N_HEADS; k++) {
        in[k] = m->info.channels[k + FIRST_LEVEL - 1]; /* dec K's output is t_K's width */
        out[k] = 1;
        bound[k] = 1.0 / sqrt((double)in[k]); /* PyTorch's conv default bound */
    }
    ps_tensor *w[N_HEADS], *b[N_HEADS];
    if (!ps_train_convs_1x1(m, PS_DEEPSUP_PREFIX "head", FIRST_LEVEL, N_HEADS, in, out, bound,
                            (guint32)(seed ^ 0xdee9), "deep-supervision head", w, b, err))
        return NULL;
    ps_deepsup *d = g_new0(ps_deepsup, 1);
    d->weight = weight;
    memcpy(d->w, w, sizeof w);
    memcpy(d->b, b, sizeof b);
    return d;
}

void ps_deepsup_free(ps_deepsup *d)
{
    g_free(d);
}

/* The stage hook: a decoder stage's output is the last node recorded when it ends. */
static void on_stage(void *user, const char *stage)
{
    ps_deepsup *d = user;
    const int k = g_str_has_prefix(stage, "dec") ? atoi(stage + 3) - FIRST_LEVEL : -1;
    if (k >= 0 && k < N_HEADS && d->g->n_nodes > 0)
        d->out[k] = d->g->nodes[d->g->n_nodes - 1].out;
}

void ps_deepsup_watch(ps_deepsup *d, ps_graph *g)
{
    d->g = g;
    memset(d->out, 0, sizeof d->out);
    g->on_stage = on_stage;
    g->stage_user = d;
}

/* masks (N,1,S,S) averaged over f x f blocks into (N,1,S/f,S/f), from g's arena. */
static ps_tensor *mask_at(ps_graph *g, const ps_tensor *masks, int h, int w)
{
    const int f = masks->h / h;
    ps_tensor *t = ps_arena_tensor(g->arena, masks->n, 1, h, w);
    for (int n = 0; n < masks->n; n++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double sum = 0;
                for (int yy = 0; yy < f; yy++)
                    for (int xx = 0; xx < f; xx++)
                        sum += masks->data[((size_t)n * masks->h + y * f + yy) * masks->w + x * f + xx];
                t->data[((size_t)n * h + y) * w + x] = (float)(sum / (f * f));
            }
    return t;
}

double ps_deepsup_loss(ps_deepsup *d, ps_graph *g, const ps_tensor *masks)
{
    double total = 0;
    const float share = d->weight / N_HEADS;
    for (int k = 0; k < N_HEADS; k++) {
        g_return_val_if_fail(d->out[k] && masks->h % d->out[k]->h == 0, 0);
        ps_tensor *logits = ps_g_conv2d(g, d->out[k], d->w[k], d->b[k], 1, 0, 1, 1);
        logits->grad = ps_arena_calloc(g->arena, ps_numel(logits) * sizeof(float));
        const ps_tensor *target = mask_at(g, masks, logits->h, logits->w);
        total += share * (ps_loss_bce_logits(logits, target, NULL, share) + ps_loss_dice(logits, target, share));
    }
    return total;
}

void ps_deepsup_detach(ps_deepsup *d, ps_model *m)
{
    ps_model_drop_params(m, PS_DEEPSUP_PREFIX);
    memset(d->w, 0, sizeof d->w);
    memset(d->b, 0, sizeof d->b);
}
