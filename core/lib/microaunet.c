/* MicroAUNet (see shared design notes, models.md): depthwise-separable dilated convs, LDGA
 * attention, LSCAB bridge. Parameter names follow scripts/torch_microaunet.py. */
#include <math.h>
#include <string.h>
#include "model.h"

#define GN_GROUPS 4
#define EPS 1e-5f

typedef struct { ps_tensor *w, *b; } gn_t;
typedef struct { ps_tensor *w, *b, *mean, *var; } bn_t;
typedef struct { ps_tensor *dw; bn_t bn1; ps_tensor *pw; bn_t bn2; int d; } dsd_t;
typedef struct { dsd_t dsd1, dsd2; } dwd_t;
typedef struct { ps_tensor *dw_w, *dw_b; gn_t gn; ps_tensor *pw_w, *pw_b; int k; } dwc_t;
typedef struct { dwc_t dwc1, dwc2, res; ps_tensor *gate; int has_res; } ldga_t;

typedef struct net {
    int c[6];
    dsd_t enc1;
    gn_t gn[5];          /* gn1..gn5 */
    dwd_t enc_dwd[5];    /* enc2..enc6 */
    ldga_t enc_ldga[5];
    ps_tensor *ca_conv, *fc_w, *fc_b, *sconv, *alpha, *beta; /* LSCAB */
    ldga_t dec_ldga[5];  /* dec1..dec5 */
    dwd_t dec_dwd[5];
    gn_t dgn[5];
    ps_tensor *final_w, *final_b;
} net;

/* ---- construction: parameters with PyTorch names, shapes and default initialisation ---- */

typedef struct builder {
    ps_model *m;
    GRand *rng;
} builder;

static ps_tensor *add(builder *b, int trainable, const char *fmt_prefix, const char *leaf, int ndim,
                      int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    int64_t shape[4] = {s0, s1, s2, s3};
    char *name = g_strconcat(fmt_prefix, leaf, NULL);
    ps_tensor *t = ps_model_add_param(b->m, name, trainable, ndim, shape);
    g_free(name);
    return t;
}

static void fill(ps_tensor *t, float v)
{
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = v;
}

/* Normal(0, std) by Box-Muller from the builder's seeded generator. */
static void fill_normal(builder *b, ps_tensor *t, double std)
{
    for (size_t i = 0; i < ps_numel(t); i++) {
        double u1 = g_rand_double(b->rng), u2 = g_rand_double(b->rng);
        t->data[i] = (float)(std * sqrt(-2.0 * log(1.0 - u1)) * cos(2 * G_PI * u2));
    }
}

/* Conv weight with He-normal init on fan-out (as MALUNet/MicroAUNet code does). */
static ps_tensor *conv(builder *b, const char *prefix, int out, int in_per_group, int k, int groups)
{
    ps_tensor *t = add(b, 1, prefix, ".weight", 4, out, in_per_group, k, k);
    fill_normal(b, t, sqrt(2.0 / ((double)k * k * out / groups)));
    return t;
}

static ps_tensor *bias(builder *b, const char *prefix, int n)
{
    return add(b, 1, prefix, ".bias", 1, n, 0, 0, 0); /* zero-initialised */
}

static gn_t groupnorm(builder *b, const char *prefix, int c)
{
    gn_t g = {add(b, 1, prefix, ".weight", 1, c, 0, 0, 0), add(b, 1, prefix, ".bias", 1, c, 0, 0, 0)};
    fill(g.w, 1.0f);
    return g;
}

static bn_t batchnorm(builder *b, const char *prefix, int c)
{
    bn_t n = {add(b, 1, prefix, ".weight", 1, c, 0, 0, 0), add(b, 1, prefix, ".bias", 1, c, 0, 0, 0),
              add(b, 0, prefix, ".running_mean", 1, c, 0, 0, 0),
              add(b, 0, prefix, ".running_var", 1, c, 0, 0, 0)};
    fill(n.w, 1.0f);
    fill(n.var, 1.0f);
    return n;
}

static char *join(const char *a, const char *b)
{
    return g_strconcat(a, ".", b, NULL);
}

static dsd_t make_dsd(builder *b, const char *prefix, int i, int o, int d)
{
    dsd_t s = {.d = d};
    char *p;
    s.dw = conv(b, p = join(prefix, "dw"), i, 1, 3, i), g_free(p);
    s.bn1 = batchnorm(b, p = join(prefix, "bn1"), i), g_free(p);
    s.pw = conv(b, p = join(prefix, "pw"), o, i, 1, 1), g_free(p);
    s.bn2 = batchnorm(b, p = join(prefix, "bn2"), o), g_free(p);
    return s;
}

static dwd_t make_dwd(builder *b, const char *prefix, int ch)
{
    char *p1 = join(prefix, "dsd1"), *p2 = join(prefix, "dsd2");
    dwd_t w = {make_dsd(b, p1, ch, ch, 2), make_dsd(b, p2, ch, ch, 1)};
    g_free(p1);
    g_free(p2);
    return w;
}

static dwc_t make_dwc(builder *b, const char *prefix, int i, int o, int k)
{
    dwc_t c = {.k = k};
    char *p;
    c.dw_w = conv(b, p = join(prefix, "dw"), i, 1, k, i);
    c.dw_b = bias(b, p, i), g_free(p);
    c.gn = groupnorm(b, p = join(prefix, "gn"), i), g_free(p);
    c.pw_w = conv(b, p = join(prefix, "pw"), o, i, 1, 1);
    c.pw_b = bias(b, p, o), g_free(p);
    return c;
}

static ldga_t make_ldga(builder *b, const char *prefix, int i, int o)
{
    ldga_t l = {.has_res = i != o};
    char *p;
    l.dwc1 = make_dwc(b, p = join(prefix, "dwc1"), i, i, 3), g_free(p);
    l.gate = conv(b, p = join(prefix, "gate"), 1, i, 1, 1), g_free(p);
    l.dwc2 = make_dwc(b, p = join(prefix, "dwc2"), i, o, 1), g_free(p);
    if (l.has_res)
        l.res = make_dwc(b, p = join(prefix, "res"), i, o, 1), g_free(p);
    return l;
}

/* ---- forward ---- */

static ps_tensor *fwd_bn(ps_graph *g, ps_tensor *x, const bn_t *n)
{
    return ps_g_batchnorm(g, x, n->w, n->b, n->mean, n->var, EPS);
}

static ps_tensor *fwd_gn(ps_graph *g, ps_tensor *x, const gn_t *n)
{
    return ps_g_groupnorm(g, x, GN_GROUPS, n->w, n->b, EPS);
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
        const float scale = n->w->data[c] / sqrtf(n->var->data[c] + EPS);
        for (size_t i = 0; i < per; i++)
            (*wf)->data[c * per + i] = w->data[c * per + i] * scale;
        (*bf)->data[c] = n->b->data[c] - n->mean->data[c] * scale;
    }
}

static ps_tensor *fwd_dsd(ps_graph *g, ps_tensor *x, const dsd_t *s)
{
    if (!g->training) {
        ps_tensor *w, *b;
        fold_bn(g, s->dw, &s->bn1, &w, &b);
        ps_tensor *y = ps_g_conv2d_relu(g, x, w, b, 1, s->d, s->d, x->c);
        fold_bn(g, s->pw, &s->bn2, &w, &b);
        return ps_g_conv2d_relu(g, y, w, b, 1, 0, 1, 1);
    }
    ps_tensor *y = ps_g_conv2d(g, x, s->dw, NULL, 1, s->d, s->d, x->c);
    y = ps_g_relu(g, fwd_bn(g, y, &s->bn1));
    y = ps_g_conv2d(g, y, s->pw, NULL, 1, 0, 1, 1);
    return ps_g_relu(g, fwd_bn(g, y, &s->bn2));
}

static ps_tensor *fwd_dwd(ps_graph *g, ps_tensor *x, const dwd_t *w)
{
    ps_tensor *y = ps_g_gelu(g, fwd_dsd(g, x, &w->dsd1));
    return ps_g_gelu(g, ps_g_add(g, fwd_dsd(g, y, &w->dsd2), x));
}

static ps_tensor *fwd_dwc(ps_graph *g, ps_tensor *x, const dwc_t *c)
{
    ps_tensor *y = ps_g_conv2d(g, x, c->dw_w, c->dw_b, 1, c->k / 2, 1, x->c);
    y = fwd_gn(g, y, &c->gn);
    return ps_g_conv2d(g, y, c->pw_w, c->pw_b, 1, 0, 1, 1);
}

static ps_tensor *fwd_ldga(ps_graph *g, ps_tensor *x, const ldga_t *l)
{
    ps_tensor *a = fwd_dwc(g, x, &l->dwc1);
    a = ps_g_mul(g, a, ps_g_sigmoid(g, ps_g_conv2d(g, a, l->gate, NULL, 1, 0, 1, 1)));
    ps_tensor *r = l->has_res ? fwd_dwc(g, x, &l->res) : x;
    return ps_g_add(g, fwd_dwc(g, a, &l->dwc2), r);
}

/* LSCAB: t_k' = (alpha * ca_k + beta * sa_k) * t_k + t_k. */
static void fwd_lscab(ps_graph *g, const net *n, ps_tensor **t, ps_tensor **out)
{
    int N = t[0]->n, S = 0;
    ps_tensor *pooled[5];
    for (int k = 0; k < 5; k++) {
        pooled[k] = ps_g_global_avgpool(g, t[k]);
        S += t[k]->c;
    }
    ps_tensor *v = ps_g_reshape(g, ps_g_concat(g, pooled, 5), N, 1, 1, S);
    v = ps_g_conv1d(g, v, n->ca_conv, NULL, 1);
    v = ps_g_reshape(g, v, N, S, 1, 1);
    v = ps_g_sigmoid(g, ps_g_linear(g, v, n->fc_w, n->fc_b));
    for (int k = 0, c0 = 0; k < 5; c0 += t[k]->c, k++) {
        ps_tensor *ca = ps_g_slice(g, v, c0, t[k]->c);
        ps_tensor *sa = ps_g_reflect_pad(g, ps_g_channel_mean_max(g, t[k]), 3);
        sa = ps_g_sigmoid(g, ps_g_conv2d(g, sa, n->sconv, NULL, 1, 0, 1, 1));
        ps_tensor *att = ps_g_add(g, ps_g_mul(g, n->alpha, ca), ps_g_mul(g, n->beta, sa));
        out[k] = ps_g_add(g, ps_g_mul(g, att, t[k]), t[k]);
    }
}

static ps_tensor *forward(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features)
{
    const net *n = m->net;
    ps_tensor *t[5], *tb[5];
    static const char *const enc[6] = {"enc1", "enc2", "enc3", "enc4", "enc5", "enc6"};
    static const char *const dec[5] = {"dec1", "dec2", "dec3", "dec4", "dec5"};
    t[0] = ps_g_gelu(g, ps_g_maxpool2x2(g, fwd_gn(g, fwd_dsd(g, x, &n->enc1), &n->gn[0])));
    ps_g_stage(g, enc[0]);
    for (int k = 1; k < 5; k++) {
        ps_tensor *y = fwd_ldga(g, fwd_dwd(g, t[k - 1], &n->enc_dwd[k - 1]), &n->enc_ldga[k - 1]);
        t[k] = ps_g_gelu(g, ps_g_maxpool2x2(g, fwd_gn(g, y, &n->gn[k])));
        ps_g_stage(g, enc[k]);
    }
    ps_tensor *o = ps_g_gelu(g, fwd_ldga(g, fwd_dwd(g, t[4], &n->enc_dwd[4]), &n->enc_ldga[4]));
    ps_g_stage(g, enc[5]);
    if (features)
        memcpy(features, t, sizeof t);
    fwd_lscab(g, n, t, tb);
    ps_g_stage(g, "lscab");
    for (int k = 4; k >= 0; k--) {
        ps_tensor *y = fwd_gn(g, fwd_dwd(g, fwd_ldga(g, o, &n->dec_ldga[k]), &n->dec_dwd[k]), &n->dgn[k]);
        if (k < 4)
            y = ps_g_upsample2x(g, y);
        o = ps_g_add(g, ps_g_gelu(g, y), tb[k]);
        ps_g_stage(g, dec[k]);
    }
    o = ps_g_upsample2x(g, ps_g_conv2d(g, o, n->final_w, n->final_b, 1, 0, 1, 1));
    ps_g_stage(g, "head");
    return o;
}

gboolean ps_microaunet_build(ps_model *m, uint64_t seed, GError **err)
{
    static const int c_default[6] = {4, 8, 12, 16, 24, 32}, c_w8[6] = {8, 16, 24, 32, 48, 64};
    ps_model_info *info = &m->info;
    if (info->n_channels == 0) {
        info->n_channels = 6;
        memcpy(info->channels, strcmp(info->arch, "microaunet-w8") == 0 ? c_w8 : c_default,
               sizeof c_default);
    }
    if (info->n_channels != 6) {
        g_set_error(err, PS_MODEL_ERROR, 1, "%s needs 6 channel counts, got %d", info->arch,
                    info->n_channels);
        return FALSE;
    }
    for (int i = 0; i < 6; i++)
        if (info->channels[i] < GN_GROUPS || info->channels[i] % GN_GROUPS) {
            g_set_error(err, PS_MODEL_ERROR, 1, "%s channel counts must be multiples of %d",
                        info->arch, GN_GROUPS);
            return FALSE;
        }

    net *n = g_new0(net, 1);
    m->net = n;
    m->free_net = g_free;
    m->forward = forward;
    const int *c = info->channels;
    memcpy(n->c, c, sizeof n->c);
    builder b = {m, g_rand_new_with_seed((guint32)(seed ^ (seed >> 32)))};
    char name[32];

    n->enc1 = make_dsd(&b, "enc1", 3, c[0], 1);
    n->gn[0] = groupnorm(&b, "gn1", c[0]);
    for (int k = 2; k <= 6; k++) {
        g_snprintf(name, sizeof name, "enc%d.dwd", k);
        n->enc_dwd[k - 2] = make_dwd(&b, name, c[k - 2]);
        g_snprintf(name, sizeof name, "enc%d.ldga", k);
        n->enc_ldga[k - 2] = make_ldga(&b, name, c[k - 2], c[k - 1]);
        if (k <= 5) {
            g_snprintf(name, sizeof name, "gn%d", k);
            n->gn[k - 1] = groupnorm(&b, name, c[k - 1]);
        }
    }
    int S = c[0] + c[1] + c[2] + c[3] + c[4];
    n->ca_conv = add(&b, 1, "lscab.conv1d", ".weight", 3, 1, 1, 3, 0);
    fill_normal(&b, n->ca_conv, sqrt(2.0 / 3.0));
    n->fc_w = add(&b, 1, "lscab.fc", ".weight", 2, S, S, 0, 0);
    fill_normal(&b, n->fc_w, 0.02); /* trunc-normal(0.02) in the reference; tails are negligible */
    n->fc_b = bias(&b, "lscab.fc", S);
    n->sconv = conv(&b, "lscab.sconv", 1, 2, 7, 1);
    n->alpha = add(&b, 1, "lscab", ".alpha", 1, 1, 0, 0, 0);
    n->beta = add(&b, 1, "lscab", ".beta", 1, 1, 0, 0, 0);
    fill(n->alpha, 0.5f);
    fill(n->beta, 0.5f);
    for (int k = 5; k >= 1; k--) {
        g_snprintf(name, sizeof name, "dec%d.ldga", k);
        n->dec_ldga[k - 1] = make_ldga(&b, name, c[k], c[k - 1]);
        g_snprintf(name, sizeof name, "dec%d.dwd", k);
        n->dec_dwd[k - 1] = make_dwd(&b, name, c[k - 1]);
        g_snprintf(name, sizeof name, "dgn%d", k);
        n->dgn[k - 1] = groupnorm(&b, name, c[k - 1]);
    }
    n->final_w = conv(&b, "final", 1, c[0], 1, 1);
    n->final_b = bias(&b, "final", 1);
    g_rand_free(b.rng);
    return TRUE;
}
