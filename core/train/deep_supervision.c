#include "deep_supervision.h"
#include <math.h>
#include <string.h>
#include "distill.h"
#include "loss.h"

enum { N_HEADS = 3, FIRST_LEVEL = 2 }; /* heads on dec2, dec3, dec4 */

struct ps_deepsup {
    float weight;
    ps_tensor *w[N_HEADS], *b[N_HEADS];
    ps_graph *g;               /* the graph being watched */
    ps_tensor *out[N_HEADS];   /* the decoder outputs of its last forward pass */
};

static char *head_name(int k, const char *leaf)
{
    return g_strdup_printf(PS_DEEPSUP_PREFIX "head%d.%s", k + FIRST_LEVEL, leaf);
}

ps_deepsup *ps_deepsup_new(ps_model *m, float weight, uint64_t seed, GError **err)
{
    if (m->info.n_channels < FIRST_LEVEL + N_HEADS) {
        g_set_error(err, PS_MODEL_ERROR, 7, "%s has no decoder levels for deep supervision", m->info.arch);
        return NULL;
    }
    int found = 0;
    for (int k = 0; k < N_HEADS; k++)
        for (int leaf = 0; leaf < 2; leaf++) {
            char *name = head_name(k, leaf ? "bias" : "weight");
            const ps_param *p = ps_model_find(m, name);
            const int in = m->info.channels[k + FIRST_LEVEL - 1]; /* dec K's output is t_K's width */
            const gboolean fits = !p || (leaf ? p->ndim == 1 && p->shape[0] == 1
                                              : p->ndim == 4 && p->shape[0] == 1 && p->shape[1] == in &&
                                                    p->shape[2] == 1 && p->shape[3] == 1);
            if (!fits)
                g_set_error(err, PS_MODEL_ERROR, 7, "%s does not fit a %d -> 1 channel 1x1 head", name, in);
            g_free(name);
            if (!fits)
                return NULL;
            found += p != NULL;
        }
    if (found != 0 && found != 2 * N_HEADS) {
        g_set_error(err, PS_MODEL_ERROR, 7, "%d of the %d deep-supervision tensors are present; a checkpoint "
                    "holds all or none", found, 2 * N_HEADS);
        return NULL;
    }
    ps_deepsup *d = g_new0(ps_deepsup, 1);
    d->weight = weight;
    GRand *rng = g_rand_new_with_seed((guint32)(seed ^ 0xdee9));
    for (int k = 0; k < N_HEADS; k++) {
        const int in = m->info.channels[k + FIRST_LEVEL - 1];
        char *wn = head_name(k, "weight"), *bn = head_name(k, "bias");
        if (!found) {
            const int64_t ws[4] = {1, in, 1, 1}, bs[1] = {1};
            ps_tensor *wt = ps_model_add_param(m, wn, 1, 4, ws);
            ps_model_add_param(m, bn, 1, 1, bs); /* zero */
            const double half_width = 1.0 / sqrt((double)in); /* PyTorch's conv default bound */
            for (size_t i = 0; i < ps_numel(wt); i++)
                wt->data[i] = (float)g_rand_double_range(rng, -half_width, half_width);
        }
        d->w[k] = ps_model_find(m, wn)->t;
        d->b[k] = ps_model_find(m, bn)->t;
        g_free(wn);
        g_free(bn);
    }
    g_rand_free(rng);
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
    for (int k = 0; k < N_HEADS; k++) {
        char name[8];
        g_snprintf(name, sizeof name, "dec%d", k + FIRST_LEVEL);
        if (strcmp(stage, name) == 0 && d->g->n_nodes > 0)
            d->out[k] = d->g->nodes[d->g->n_nodes - 1].out;
    }
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
