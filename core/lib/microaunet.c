/* MicroAUNet (see shared design notes, models.md): depthwise-separable dilated convs, LDGA
 * attention, LSCAB bridge. Parameter names follow scripts/torch_microaunet.py. */
#include <math.h>
#include <string.h>
#include "model_build.h"

typedef struct { ps_tensor *w, *b, *mean, *var; } bn_t;
typedef struct { ps_tensor *dw; bn_t bn1; ps_tensor *pw; bn_t bn2; int d; } dsd_t;
typedef struct { dsd_t dsd1, dsd2; } dwd_t;
typedef struct { ps_dwc dwc1, dwc2, res; ps_tensor *gate; int has_res; } ldga_t;

typedef struct net {
    int c[6];
    dsd_t enc1;
    ps_gn gn[5];         /* gn1..gn5 */
    dwd_t enc_dwd[5];    /* enc2..enc6 */
    ldga_t enc_ldga[5];
    ps_tensor *ca_conv, *fc_w, *fc_b, *sconv, *alpha, *beta; /* LSCAB */
    ldga_t dec_ldga[5];  /* dec1..dec5 */
    dwd_t dec_dwd[5];
    ps_gn dgn[5];
    ps_tensor *final_w, *final_b;
} net;

/* ---- construction: parameters with PyTorch names, shapes and default initialisation ---- */

static bn_t batchnorm(ps_builder *b, const char *prefix, int c)
{
    bn_t n = {ps_build_param(b, 1, prefix, ".weight", 1, c, 0, 0, 0),
              ps_build_param(b, 1, prefix, ".bias", 1, c, 0, 0, 0),
              ps_build_param(b, 0, prefix, ".running_mean", 1, c, 0, 0, 0),
              ps_build_param(b, 0, prefix, ".running_var", 1, c, 0, 0, 0)};
    ps_build_fill(n.w, 1.0f);
    ps_build_fill(n.var, 1.0f);
    return n;
}

static dsd_t make_dsd(ps_builder *b, const char *prefix, int i, int o, int d)
{
    dsd_t s = {.d = d};
    char *p;
    s.dw = ps_build_conv(b, p = ps_build_join(prefix, "dw"), i, 1, 3, i), g_free(p);
    s.bn1 = batchnorm(b, p = ps_build_join(prefix, "bn1"), i), g_free(p);
    s.pw = ps_build_conv(b, p = ps_build_join(prefix, "pw"), o, i, 1, 1), g_free(p);
    s.bn2 = batchnorm(b, p = ps_build_join(prefix, "bn2"), o), g_free(p);
    return s;
}

static dwd_t make_dwd(ps_builder *b, const char *prefix, int ch)
{
    char *p1 = ps_build_join(prefix, "dsd1"), *p2 = ps_build_join(prefix, "dsd2");
    dwd_t w = {make_dsd(b, p1, ch, ch, 2), make_dsd(b, p2, ch, ch, 1)};
    g_free(p1);
    g_free(p2);
    return w;
}

static ldga_t make_ldga(ps_builder *b, const char *prefix, int i, int o)
{
    ldga_t l = {.has_res = i != o};
    char *p;
    l.dwc1 = ps_build_dwc(b, p = ps_build_join(prefix, "dwc1"), i, i, 3), g_free(p);
    l.gate = ps_build_conv(b, p = ps_build_join(prefix, "gate"), 1, i, 1, 1), g_free(p);
    l.dwc2 = ps_build_dwc(b, p = ps_build_join(prefix, "dwc2"), i, o, 1), g_free(p);
    if (l.has_res)
        l.res = ps_build_dwc(b, p = ps_build_join(prefix, "res"), i, o, 1), g_free(p);
    return l;
}

/* ---- forward ---- */

static ps_tensor *fwd_bn(ps_graph *g, ps_tensor *x, const bn_t *n)
{
    return ps_g_batchnorm(g, x, n->w, n->b, n->mean, n->var, PS_NORM_EPS);
}

/* Inference: batch-norm (running statistics) folded into the conv before it, w' = w * s and
 * b' = beta - mean * s with s = gamma / sqrt(var + eps) per output channel. Recomputed on every
 * pass (a few hundred values) so it can never go stale. */
static void fold_bn(ps_graph *g, const ps_tensor *w, const bn_t *n, ps_tensor **wf, ps_tensor **bf)
{
    const int cout = w->n;
    const size_t per = ps_numel(w) / cout;
    *wf = ps_arena_tensor(g->arena, w->n, w->c, w->h, w->w);
    *bf = ps_arena_tensor(g->arena, cout, 1, 1, 1);
    for (int c = 0; c < cout; c++) {
        const float scale = n->w->data[c] / sqrtf(n->var->data[c] + PS_NORM_EPS);
        for (size_t i = 0; i < per; i++)
            (*wf)->data[c * per + i] = w->data[c * per + i] * scale;
        (*bf)->data[c] = n->b->data[c] - n->mean->data[c] * scale;
    }
}

/* DSD, then a GELU when `gelu` is set, or the GELU of its sum with `add` when that is given
 * (fused into the last conv's pass in inference). */
static ps_tensor *fwd_dsd(ps_graph *g, ps_tensor *x, const dsd_t *s, int gelu, ps_tensor *add)
{
    if (!g->training) {
        ps_tensor *wd, *bd, *wp, *bp;
        fold_bn(g, s->dw, &s->bn1, &wd, &bd);
        fold_bn(g, s->pw, &s->bn2, &wp, &bp);
        return ps_g_depthwise_pointwise_relu(g, x, wd, bd, s->d, wp, bp, gelu, add);
    }
    ps_tensor *y = ps_g_conv2d(g, x, s->dw, NULL, 1, s->d, s->d, x->c);
    y = ps_g_relu(g, fwd_bn(g, y, &s->bn1));
    y = ps_g_conv2d(g, y, s->pw, NULL, 1, 0, 1, 1);
    y = ps_g_relu(g, fwd_bn(g, y, &s->bn2));
    return add ? ps_g_add_gelu(g, y, add) : gelu ? ps_g_gelu(g, y) : y;
}

static ps_tensor *fwd_dwd(ps_graph *g, ps_tensor *x, const dwd_t *w)
{
    return fwd_dsd(g, fwd_dsd(g, x, &w->dsd1, 1, NULL), &w->dsd2, 0, x);
}

static ps_tensor *fwd_ldga(ps_graph *g, ps_tensor *x, const ldga_t *l)
{
    ps_tensor *a = ps_fwd_dwc(g, x, &l->dwc1);
    a = ps_g_gate(g, a, l->gate);
    ps_tensor *r = l->has_res ? ps_fwd_dwc(g, x, &l->res) : x;
    return ps_fwd_dwc_add(g, a, &l->dwc2, r);
}

/* LSCAB: t_k' = (alpha * ca_k + beta * sa_k) * t_k + t_k; ca from the pooled t_1..t_5 jointly
 * (the part the levels share), sa each level's own spatial attention. */
static ps_tensor *lscab_shared(ps_graph *g, const void *net_, ps_tensor **t)
{
    const net *n = net_;
    int N = t[0]->n, S = 0;
    ps_tensor *pooled[5];
    for (int k = 0; k < 5; k++) {
        pooled[k] = ps_g_global_avgpool(g, t[k]);
        S += t[k]->c;
    }
    ps_tensor *v = ps_g_reshape(g, ps_g_concat(g, pooled, 5), N, 1, 1, S);
    v = ps_g_conv1d(g, v, n->ca_conv, NULL, 1);
    v = ps_g_reshape(g, v, N, S, 1, 1);
    return ps_g_sigmoid(g, ps_g_linear(g, v, n->fc_w, n->fc_b));
}

static ps_tensor *lscab_level(ps_graph *g, const void *net_, ps_tensor *ca, ps_tensor **t, int k)
{
    const net *n = net_;
    int c0 = 0;
    for (int l = 0; l < k; l++)
        c0 += t[l]->c;
    return ps_g_spatial_attend(g, t[k], n->sconv, ps_g_slice(g, ca, c0, t[k]->c), n->alpha, n->beta); /* 7x7: padding 3 */
}

/* Encoders: enc1 is a DSD, enc2..enc6 DWD then LDGA; decoders: LDGA then DWD. */
static ps_tensor *enc_block(ps_graph *g, const void *net_, int k, ps_tensor *x)
{
    const net *n = net_;
    return k == 0 ? fwd_dsd(g, x, &n->enc1, 0, NULL) : fwd_ldga(g, fwd_dwd(g, x, &n->enc_dwd[k - 1]), &n->enc_ldga[k - 1]);
}

static ps_tensor *dec_block(ps_graph *g, const void *net_, int k, ps_tensor *x)
{
    const net *n = net_;
    return fwd_dwd(g, fwd_ldga(g, x, &n->dec_ldga[k]), &n->dec_dwd[k]);
}

static ps_tensor *forward(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features)
{
    const net *n = m->net;
    const ps_unet u = {n, enc_block, NULL, lscab_shared, lscab_level, dec_block, "lscab", "lscab+dec5-dec3",
                       n->gn, n->dgn, n->final_w, n->final_b};
    return ps_unet_forward(g, &u, x, features);
}

gboolean ps_microaunet_build(ps_model *m, uint64_t seed, GError **err)
{
    static const int c_default[6] = {4, 8, 12, 16, 24, 32}, c_w8[6] = {8, 16, 24, 32, 48, 64};
    ps_builder b;
    net *n = ps_build_begin(&b, m, strcmp(m->info.arch, "microaunet-w8") == 0 ? c_w8 : c_default, sizeof(net),
                            forward, seed, err);
    if (!n)
        return FALSE;
    const int *c = m->info.channels;
    memcpy(n->c, c, sizeof n->c);
    char name[32];

    n->enc1 = make_dsd(&b, "enc1", 3, c[0], 1);
    n->gn[0] = ps_build_groupnorm(&b, "gn1", c[0]);
    for (int k = 2; k <= 6; k++) {
        g_snprintf(name, sizeof name, "enc%d.dwd", k);
        n->enc_dwd[k - 2] = make_dwd(&b, name, c[k - 2]);
        g_snprintf(name, sizeof name, "enc%d.ldga", k);
        n->enc_ldga[k - 2] = make_ldga(&b, name, c[k - 2], c[k - 1]);
        if (k <= 5) {
            g_snprintf(name, sizeof name, "gn%d", k);
            n->gn[k - 1] = ps_build_groupnorm(&b, name, c[k - 1]);
        }
    }
    int S = c[0] + c[1] + c[2] + c[3] + c[4];
    n->ca_conv = ps_build_param(&b, 1, "lscab.conv1d", ".weight", 3, 1, 1, 3, 0);
    ps_build_normal(&b, n->ca_conv, sqrt(2.0 / 3.0));
    n->fc_w = ps_build_param(&b, 1, "lscab.fc", ".weight", 2, S, S, 0, 0);
    ps_build_normal(&b, n->fc_w, 0.02); /* trunc-normal(0.02) in the reference; tails are negligible */
    n->fc_b = ps_build_bias(&b, "lscab.fc", S);
    n->sconv = ps_build_conv(&b, "lscab.sconv", 1, 2, 7, 1);
    n->alpha = ps_build_param(&b, 1, "lscab", ".alpha", 1, 1, 0, 0, 0);
    n->beta = ps_build_param(&b, 1, "lscab", ".beta", 1, 1, 0, 0, 0);
    ps_build_fill(n->alpha, 0.5f);
    ps_build_fill(n->beta, 0.5f);
    for (int k = 5; k >= 1; k--) {
        g_snprintf(name, sizeof name, "dec%d.ldga", k);
        n->dec_ldga[k - 1] = make_ldga(&b, name, c[k], c[k - 1]);
        g_snprintf(name, sizeof name, "dec%d.dwd", k);
        n->dec_dwd[k - 1] = make_dwd(&b, name, c[k - 1]);
        g_snprintf(name, sizeof name, "dgn%d", k);
        n->dgn[k - 1] = ps_build_groupnorm(&b, name, c[k - 1]);
    }
    n->final_w = ps_build_conv(&b, "final", 1, c[0], 1, 1);
    n->final_b = ps_build_bias(&b, "final", 1);
    ps_build_end(&b);
    return TRUE;
}
