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
    u->bridge(g, u->net, t, tb);
    ps_g_stage(g, u->bridge_name);
    for (int k = 4; k >= 0; k--) { /* dec5 works at t5's resolution, the others upsample */
        o = ps_g_groupnorm_up2_gelu_add(g, u->dec(g, u->net, k, o), PS_GN_GROUPS, u->dgn[k].w, u->dgn[k].b,
                                        PS_NORM_EPS, k < 4, tb[k]);
        ps_g_stage(g, dec[k]);
    }
    o = ps_g_upsample2x(g, ps_g_conv2d(g, o, u->final_w, u->final_b, 1, 0, 1, 1));
    ps_g_stage(g, "head");
    return o;
}
