/* MALUNet (the distillation teacher; see shared design notes, models.md): plain 3x3 convs in the
 * shallow stages, external attention (EA) and dilated gated attention (DGA) in the deep ones, and
 * the SCAB bridge. Parameter names follow scripts/torch_malunet.py. */
#include <math.h>
#include <string.h>
#include "model_build.h"

#define EA_EPS 1e-9f /* EA's second normalisation: a / (1e-9 + sum over the memory slots) */

static const int dga_dilations[4] = {7, 5, 2, 1};

typedef struct { ps_tensor *w, *b; } conv_t; /* a conv weight and its bias */
typedef struct { ps_dwc w1, w2, wo; conv_t cw; } gau_t;
typedef struct { conv_t dw[4]; ps_gn gn; conv_t pw; gau_t gau; } dga_t;
typedef struct { conv_t conv1; ps_tensor *linear0, *linear1, *conv2; ps_gn gn; } ea_t;

typedef struct net {
    conv_t enc_conv[3];            /* enc1..enc3 */
    ea_t enc_ea[3];                /* enc4..enc6 */
    dga_t enc_dga[3];
    ps_gn gn[5];                   /* gn1..gn5 */
    conv_t sconv;                  /* SCAB */
    ps_tensor *ca_conv;
    ps_tensor *fc_w[5], *fc_b[5];
    dga_t dec_dga[3];              /* dec3..dec5 */
    ea_t dec_ea[3];
    conv_t dec_conv[2];            /* dec1, dec2 */
    ps_gn dgn[5];                  /* dgn1..dgn5 */
    conv_t final;
} net;

/* ---- construction: parameters with PyTorch names and shapes, in state_dict order ---- */

static conv_t make_conv(ps_builder *b, const char *prefix, int i, int o, int k)
{
    conv_t c = {ps_build_conv(b, prefix, o, i, k, 1), ps_build_bias(b, prefix, o)};
    return c;
}

/* make_conv named prefix.leaf. */
static conv_t make_conv_at(ps_builder *b, const char *prefix, const char *leaf, int i, int o, int k)
{
    char *p = ps_build_join(prefix, leaf);
    conv_t c = make_conv(b, p, i, o, k);
    g_free(p);
    return c;
}

static gau_t make_gau(ps_builder *b, const char *prefix, int i, int o)
{
    gau_t u;
    char *p;
    u.w1 = ps_build_dwc(b, p = ps_build_join(prefix, "w1"), i, i, 3), g_free(p);
    u.w2 = ps_build_dwc(b, p = ps_build_join(prefix, "w2"), i, i, 5), g_free(p);
    u.wo = ps_build_dwc(b, p = ps_build_join(prefix, "wo"), i, o, 3), g_free(p);
    u.cw = make_conv_at(b, prefix, "cw", i, o, 1);
    return u;
}

static dga_t make_dga(ps_builder *b, const char *prefix, int i, int o)
{
    dga_t d;
    char *p, leaf[8];
    for (int j = 0; j < 4; j++) {
        g_snprintf(leaf, sizeof leaf, "dw%d", j);
        p = ps_build_join(prefix, leaf);
        d.dw[j].w = ps_build_conv(b, p, i / 4, 1, 3, i / 4); /* depthwise on a quarter */
        d.dw[j].b = ps_build_bias(b, p, i / 4);
        g_free(p);
    }
    d.gn = ps_build_groupnorm(b, p = ps_build_join(prefix, "gn"), i), g_free(p);
    d.pw = make_conv_at(b, prefix, "pw", i, i, 1);
    d.gau = make_gau(b, p = ps_build_join(prefix, "gau"), i, o), g_free(p);
    return d;
}

static ea_t make_ea(ps_builder *b, const char *prefix, int c)
{
    ea_t e;
    char *p;
    e.conv1 = make_conv_at(b, prefix, "conv1", c, c, 1);
    /* Conv1d weights (4c, c, 1) and (c, 4c, 1). Like the public code, whose two share storage
     * and whose later init (linear1's) wins: linear1 ~ N(0, 2 / c), linear0 its transpose. */
    e.linear0 = ps_build_param(b, 1, p = ps_build_join(prefix, "linear0"), ".weight", 3, 4 * c, c, 1, 0), g_free(p);
    e.linear1 = ps_build_param(b, 1, p = ps_build_join(prefix, "linear1"), ".weight", 3, c, 4 * c, 1, 0), g_free(p);
    ps_build_normal(b, e.linear1, sqrt(2.0 / c));
    for (int s = 0; s < 4 * c; s++)
        for (int k = 0; k < c; k++)
            e.linear0->data[s * c + k] = e.linear1->data[k * 4 * c + s];
    e.conv2 = ps_build_conv(b, p = ps_build_join(prefix, "conv2"), c, c, 1, 1), g_free(p);
    e.gn = ps_build_groupnorm(b, p = ps_build_join(prefix, "gn"), c), g_free(p);
    return e;
}

/* ---- forward ---- */

static ps_tensor *fwd_conv(ps_graph *g, ps_tensor *x, const conv_t *c)
{
    const int pad = c->w->h / 2; /* 'same' for the 3x3 and 1x1 convs */
    return ps_g_conv2d(g, x, c->w, c->b, 1, pad, 1, 1);
}

/* out = GELU(DWC3(sigmoid(DWC3(x)) * GELU(DWC5(x)))) + cw(x). */
static ps_tensor *fwd_gau(ps_graph *g, ps_tensor *x, const gau_t *u)
{
    ps_tensor *x1 = ps_g_sigmoid(g, ps_fwd_dwc(g, x, &u->w1));
    ps_tensor *x2 = ps_g_gelu(g, ps_fwd_dwc(g, x, &u->w2));
    ps_tensor *y = ps_g_gelu(g, ps_fwd_dwc(g, ps_g_mul(g, x1, x2), &u->wo));
    return ps_g_add(g, y, fwd_conv(g, x, &u->cw));
}

/* Four channel quarters through depthwise 3x3 convs of dilations 7, 5, 2, 1 ('same'), then
 * GN -> 1x1 -> GELU -> GAU. */
static ps_tensor *fwd_dga(ps_graph *g, ps_tensor *x, const dga_t *d)
{
    const int q = x->c / 4;
    ps_tensor *parts[4];
    for (int j = 0; j < 4; j++) {
        const int dil = dga_dilations[j];
        parts[j] = ps_g_conv2d(g, ps_g_slice(g, x, j * q, q), d->dw[j].w, d->dw[j].b, 1, dil, dil, q);
    }
    ps_tensor *y = ps_fwd_gn(g, ps_g_concat(g, parts, 4), &d->gn);
    return fwd_gau(g, ps_g_gelu(g, fwd_conv(g, y, &d->pw)), &d->gau);
}

/* External attention: the (c, H*W) map against a memory of 4c slots. The conv1d's over the
 * positions (kernel 1) are pointwise convs on the NCHW map, which has the same layout. */
static ps_tensor *fwd_ea(ps_graph *g, ps_tensor *x, const ea_t *e)
{
    ps_tensor *a = ps_g_conv2d(g, fwd_conv(g, x, &e->conv1), e->linear0, NULL, 1, 0, 1, 1);
    a = ps_g_channel_normalize(g, ps_g_softmax_spatial(g, a), EA_EPS);
    ps_tensor *z = ps_g_conv2d(g, a, e->linear1, NULL, 1, 0, 1, 1);
    z = ps_fwd_gn(g, ps_g_conv2d(g, z, e->conv2, NULL, 1, 0, 1, 1), &e->gn);
    return ps_g_gelu(g, ps_g_add(g, z, x));
}

/* SCAB: s_k = sa_k * t_k, u_k = s_k + t_k, t_k' = ca_k * u_k + s_k, with one dilated 7x7 spatial
 * conv shared by the scales and channel attention from the pooled u_1..u_5 jointly. */
static void fwd_scab(ps_graph *g, const void *net_, ps_tensor **t, ps_tensor **out)
{
    const net *n = net_;
    const int N = t[0]->n;
    int S = 0;
    ps_tensor *s[5], *u[5], *pooled[5];
    for (int k = 0; k < 5; k++) {
        ps_tensor *sa = ps_g_conv2d(g, ps_g_channel_mean_max(g, t[k]), n->sconv.w, n->sconv.b, 1, 9, 3, 1);
        s[k] = ps_g_mul(g, ps_g_sigmoid(g, sa), t[k]);
        u[k] = ps_g_add(g, s[k], t[k]);
        pooled[k] = ps_g_global_avgpool(g, u[k]);
        S += t[k]->c;
    }
    ps_tensor *v = ps_g_reshape(g, ps_g_concat(g, pooled, 5), N, 1, 1, S);
    v = ps_g_reshape(g, ps_g_conv1d(g, v, n->ca_conv, NULL, 1), N, S, 1, 1);
    for (int k = 0; k < 5; k++) {
        ps_tensor *ca = ps_g_sigmoid(g, ps_g_linear(g, v, n->fc_w[k], n->fc_b[k]));
        out[k] = ps_g_add(g, ps_g_mul(g, ca, u[k]), s[k]);
    }
}

/* Encoders: enc1..enc3 3x3 convs, enc4..enc6 EA then DGA; decoders: dec3..dec5 DGA then EA,
 * dec1 and dec2 3x3 convs. */
static ps_tensor *enc_block(ps_graph *g, const void *net_, int k, ps_tensor *x)
{
    const net *n = net_;
    return k < 3 ? fwd_conv(g, x, &n->enc_conv[k]) : fwd_dga(g, fwd_ea(g, x, &n->enc_ea[k - 3]), &n->enc_dga[k - 3]);
}

static ps_tensor *dec_block(ps_graph *g, const void *net_, int k, ps_tensor *x)
{
    const net *n = net_;
    return k >= 2 ? fwd_ea(g, fwd_dga(g, x, &n->dec_dga[k - 2]), &n->dec_ea[k - 2]) : fwd_conv(g, x, &n->dec_conv[k]);
}

static ps_tensor *forward(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features)
{
    const net *n = m->net;
    const ps_unet u = {n, enc_block, fwd_scab, NULL, NULL, dec_block, "scab", NULL, n->gn, n->dgn, n->final.w, n->final.b};
    return ps_unet_forward(g, &u, x, features);
}

gboolean ps_malunet_build(ps_model *m, uint64_t seed, GError **err)
{
    static const int c_default[6] = {8, 16, 24, 32, 48, 64};
    ps_builder b;
    net *n = ps_build_begin(&b, m, c_default, sizeof(net), forward, seed, err);
    if (!n)
        return FALSE;
    const int *c = m->info.channels;
    char name[32];

    for (int k = 1; k <= 6; k++) {
        const int i = k == 1 ? 3 : c[k - 2], o = c[k - 1];
        g_snprintf(name, sizeof name, "enc%d", k);
        if (k <= 3) {
            n->enc_conv[k - 1] = make_conv(&b, name, i, o, 3);
        } else {
            g_snprintf(name, sizeof name, "enc%d.ea", k);
            n->enc_ea[k - 4] = make_ea(&b, name, i);
            g_snprintf(name, sizeof name, "enc%d.dga", k);
            n->enc_dga[k - 4] = make_dga(&b, name, i, o);
        }
        if (k <= 5) {
            g_snprintf(name, sizeof name, "gn%d", k);
            n->gn[k - 1] = ps_build_groupnorm(&b, name, o);
        }
    }
    const int S = c[0] + c[1] + c[2] + c[3] + c[4];
    n->sconv = make_conv(&b, "scab.sconv", 2, 1, 7);
    n->ca_conv = ps_build_param(&b, 1, "scab.conv1d", ".weight", 3, 1, 1, 3, 0);
    ps_build_normal(&b, n->ca_conv, sqrt(2.0 / 3.0));
    for (int k = 0; k < 5; k++) {
        g_snprintf(name, sizeof name, "scab.fc%d", k + 1);
        n->fc_w[k] = ps_build_param(&b, 1, name, ".weight", 2, c[k], S, 0, 0);
        ps_build_normal(&b, n->fc_w[k], 0.02); /* trunc-normal(0.02) in the reference */
        n->fc_b[k] = ps_build_bias(&b, name, c[k]);
    }
    for (int k = 5; k >= 1; k--) {
        g_snprintf(name, sizeof name, "dec%d", k);
        if (k <= 2) {
            n->dec_conv[k - 1] = make_conv(&b, name, c[k], c[k - 1], 3);
        } else {
            g_snprintf(name, sizeof name, "dec%d.dga", k);
            n->dec_dga[k - 3] = make_dga(&b, name, c[k], c[k - 1]);
            g_snprintf(name, sizeof name, "dec%d.ea", k);
            n->dec_ea[k - 3] = make_ea(&b, name, c[k - 1]);
        }
        g_snprintf(name, sizeof name, "dgn%d", k);
        n->dgn[k - 1] = ps_build_groupnorm(&b, name, c[k - 1]);
    }
    n->final = make_conv(&b, "final", c[0], 1, 1);
    ps_build_end(&b);
    return TRUE;
}
