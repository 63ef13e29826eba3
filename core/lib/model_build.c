#include "model_build.h"
#include <math.h>
#include <string.h>

static gboolean check_channels(ps_model_info *info, const int defaults[6], GError **err)
{
    if (info->n_channels == 0) {
        info->n_channels = 6;
        memcpy(info->channels, defaults, 6 * sizeof(int));
    }
    if (info->n_channels != 6) {
        g_set_error(err, PS_MODEL_ERROR, 1, "%s needs 6 channel counts, got %d", info->arch,
                    info->n_channels);
        return FALSE;
    }
    for (int i = 0; i < 6; i++)
        if (info->channels[i] < PS_GN_GROUPS || info->channels[i] % PS_GN_GROUPS) {
            g_set_error(err, PS_MODEL_ERROR, 1, "%s channel counts must be multiples of %d",
                        info->arch, PS_GN_GROUPS);
            return FALSE;
        }
    return TRUE;
}

void *ps_build_begin(ps_builder *b, ps_model *m, const int defaults[6], size_t net_size,
                     ps_tensor *(*forward)(ps_model *, ps_graph *, ps_tensor *, ps_tensor **), uint64_t seed,
                     GError **err)
{
    if (!check_channels(&m->info, defaults, err))
        return NULL;
    m->net = g_malloc0(net_size);
    m->free_net = g_free;
    m->forward = forward;
    b->m = m;
    b->rng = g_rand_new_with_seed((guint32)(seed ^ (seed >> 32)));
    return m->net;
}

void ps_build_end(ps_builder *b)
{
    g_rand_free(b->rng);
    b->rng = NULL;
}

ps_tensor *ps_build_param(ps_builder *b, int trainable, const char *prefix, const char *leaf, int ndim,
                          int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    int64_t shape[4] = {s0, s1, s2, s3};
    char *name = g_strconcat(prefix, leaf, NULL);
    ps_tensor *t = ps_model_add_param(b->m, name, trainable, ndim, shape);
    g_free(name);
    return t;
}

void ps_build_fill(ps_tensor *t, float v)
{
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = v;
}

/* Box-Muller. */
void ps_build_normal(ps_builder *b, ps_tensor *t, double std)
{
    for (size_t i = 0; i < ps_numel(t); i++) {
        double u1 = g_rand_double(b->rng), u2 = g_rand_double(b->rng);
        t->data[i] = (float)(std * sqrt(-2.0 * log(1.0 - u1)) * cos(2 * G_PI * u2));
    }
}

ps_tensor *ps_build_conv(ps_builder *b, const char *prefix, int out, int in_per_group, int k, int groups)
{
    ps_tensor *t = ps_build_param(b, 1, prefix, ".weight", 4, out, in_per_group, k, k);
    ps_build_normal(b, t, sqrt(2.0 / ((double)k * k * out / groups)));
    return t;
}

ps_tensor *ps_build_bias(ps_builder *b, const char *prefix, int n)
{
    return ps_build_param(b, 1, prefix, ".bias", 1, n, 0, 0, 0);
}

char *ps_build_join(const char *a, const char *b)
{
    return g_strconcat(a, ".", b, NULL);
}

ps_gn ps_build_groupnorm(ps_builder *b, const char *prefix, int c)
{
    ps_gn g = {ps_build_param(b, 1, prefix, ".weight", 1, c, 0, 0, 0),
               ps_build_param(b, 1, prefix, ".bias", 1, c, 0, 0, 0)};
    ps_build_fill(g.w, 1.0f);
    return g;
}

ps_tensor *ps_fwd_gn(ps_graph *g, ps_tensor *x, const ps_gn *n)
{
    return ps_g_groupnorm(g, x, PS_GN_GROUPS, n->w, n->b, PS_NORM_EPS);
}

ps_dwc ps_build_dwc(ps_builder *b, const char *prefix, int i, int o, int k)
{
    ps_dwc c = {.k = k};
    char *p;
    c.dw_w = ps_build_conv(b, p = ps_build_join(prefix, "dw"), i, 1, k, i);
    c.dw_b = ps_build_bias(b, p, i), g_free(p);
    c.gn = ps_build_groupnorm(b, p = ps_build_join(prefix, "gn"), i), g_free(p);
    c.pw_w = ps_build_conv(b, p = ps_build_join(prefix, "pw"), o, i, 1, 1);
    c.pw_b = ps_build_bias(b, p, o), g_free(p);
    return c;
}

ps_tensor *ps_fwd_dwc_add(ps_graph *g, ps_tensor *x, const ps_dwc *c, ps_tensor *residual)
{
    if (c->k == 1) /* the depthwise conv is a per-channel affine, folded in with the norm */
        return ps_g_groupnorm_pointwise(g, x, c->dw_w, c->dw_b, PS_GN_GROUPS, c->gn.w, c->gn.b, PS_NORM_EPS,
                                        c->pw_w, c->pw_b, residual);
    ps_tensor *y = ps_g_conv2d(g, x, c->dw_w, c->dw_b, 1, c->k / 2, 1, x->c);
    return ps_g_groupnorm_pointwise(g, y, NULL, NULL, PS_GN_GROUPS, c->gn.w, c->gn.b, PS_NORM_EPS, c->pw_w, c->pw_b,
                                    residual);
}

ps_tensor *ps_fwd_dwc(ps_graph *g, ps_tensor *x, const ps_dwc *c)
{
    return ps_fwd_dwc_add(g, x, c, NULL);
}

static ps_tensor *dec_step(ps_graph *g, const ps_unet *u, int k, ps_tensor *o, ps_tensor *skip)
{
    /* dec5 works at t5's resolution, the others upsample */
    return ps_g_groupnorm_up2_gelu_add(g, u->dec(g, u->net, k, o), PS_GN_GROUPS, u->dgn[k].w, u->dgn[k].b,
                                       PS_NORM_EPS, k < 4, skip);
}

/* The deepest decoders (8x8 to 32x32 at 256) are chains of ops too small to share out, so a
 * second thread idles through them. With a split bridge one thread runs the bridge's two
 * largest levels while the other runs the three smallest and then dec5..dec3, which need only
 * those: 256 on two threads, the bridge and dec5..dec3 0.179 -> 0.138 ms (best of six rounds;
 * 0.381 -> 0.290 at 384, 0.590 -> 0.545 at 512; giving the second level to the other thread
 * instead was 0.159 at 256). Each side runs its ops alone (graph copies without the pool) and
 * allocates from the shared arena, locked meanwhile; no value depends on the split. Only on
 * exactly two threads: with more, each side would still get one thread, and the two largest
 * levels alone take about what the whole stage took before (0.57 of 0.59 ms at 512), so the
 * pool's other threads would idle and the frame get slower. */
enum { OVERLAP_CALLER_LEVELS = 2 };

typedef struct overlap_job {
    const ps_unet *u;
    ps_graph side[2];
    ps_tensor **t, **tb, *shared, *o;
} overlap_job;

static void overlap_part(void *ctx, int begin, int end)
{
    overlap_job *j = ctx;
    const ps_unet *u = j->u;
    for (int part = begin; part < end; part++) {
        ps_graph *g = &j->side[part];
        if (part == 0) {
            for (int k = 0; k < OVERLAP_CALLER_LEVELS; k++)
                j->tb[k] = u->bridge_level(g, u->net, j->shared, j->t, k);
            continue;
        }
        for (int k = 4; k >= OVERLAP_CALLER_LEVELS; k--)
            j->tb[k] = u->bridge_level(g, u->net, j->shared, j->t, k);
        for (int k = 4; k >= OVERLAP_CALLER_LEVELS; k--)
            j->o = dec_step(g, u, k, j->o, j->tb[k]);
    }
}

ps_tensor *ps_unet_forward(ps_graph *g, const ps_unet *u, ps_tensor *x, ps_tensor **features)
{
    static const char *const enc[6] = {"enc1", "enc2", "enc3", "enc4", "enc5", "enc6"};
    static const char *const dec[5] = {"dec1", "dec2", "dec3", "dec4", "dec5"};
    ps_tensor *t[5], *tb[5], *y = x;
    for (int k = 0; k < 5; k++) {
        y = t[k] = ps_g_groupnorm_maxpool_gelu(g, u->enc(g, u->net, k, y), PS_GN_GROUPS, u->gn[k].w, u->gn[k].b,
                                               PS_NORM_EPS);
        ps_g_stage(g, enc[k]);
    }
    ps_tensor *o = ps_g_gelu(g, u->enc(g, u->net, 5, t[4]));
    ps_g_stage(g, enc[5]);
    if (features)
        memcpy(features, t, sizeof t);
    int k = 4; /* the next decoder to run */
    if (u->bridge) {
        u->bridge(g, u->net, t, tb);
        ps_g_stage(g, u->bridge_name);
    } else if (g->training || ps_pool_threads(g->pool) != 2) {
        ps_tensor *shared = u->bridge_shared(g, u->net, t);
        for (int l = 0; l < 5; l++)
            tb[l] = u->bridge_level(g, u->net, shared, t, l);
        ps_g_stage(g, u->bridge_name);
    } else {
        overlap_job j = {u, {ps_graph_alone(g), ps_graph_alone(g)}, t, tb, u->bridge_shared(g, u->net, t), o};
        ps_arena_set_shared(g->arena, 1);
        ps_pool_for(g->pool, 2, overlap_part, &j);
        ps_arena_set_shared(g->arena, 0);
        o = j.o;
        k = OVERLAP_CALLER_LEVELS - 1;
        ps_g_stage(g, u->overlap_name);
    }
    for (; k >= 0; k--) {
        o = dec_step(g, u, k, o, tb[k]);
        ps_g_stage(g, dec[k]);
    }
    o = ps_g_upsample2x(g, ps_g_conv2d(g, o, u->final_w, u->final_b, 1, 0, 1, 1));
    ps_g_stage(g, "head");
    return o;
}
