#include "train_params.h"

static char *conv_name(const char *stem, int index, const char *leaf)
{
    return g_strdup_printf("%s%d.%s", stem, index, leaf);
}

/* 0 when m has none of the convs, 1 when it has all in the right shapes, -1 (err set) else. */
static int convs_present(ps_model *m, const char *stem, int first, int n, const int *in, const int *out,
                         const char *what, GError **err)
{
    int found = 0;
    for (int k = 0; k < n; k++)
        for (int leaf = 0; leaf < 2; leaf++) {
            char *name = conv_name(stem, k + first, leaf ? "bias" : "weight");
            const ps_param *p = ps_model_find(m, name);
            const gboolean fits = !p || (leaf ? p->ndim == 1 && p->shape[0] == out[k]
                                              : p->ndim == 4 && p->shape[0] == out[k] && p->shape[1] == in[k] &&
                                                    p->shape[2] == 1 && p->shape[3] == 1);
            if (!fits)
                g_set_error(err, PS_MODEL_ERROR, 7, "%s does not fit a %d -> %d channel 1x1 %s", name, in[k],
                            out[k], what);
            g_free(name);
            if (!fits)
                return -1;
            found += p != NULL;
        }
    if (found != 0 && found != 2 * n) {
        g_set_error(err, PS_MODEL_ERROR, 7, "%d of the %d %s tensors are present; a checkpoint holds all or none",
                    found, 2 * n, what);
        return -1;
    }
    return found != 0;
}

gboolean ps_train_convs_1x1(ps_model *m, const char *stem, int first, int n, const int *in, const int *out,
                            const double *bound, guint32 seed, const char *what, ps_tensor **w, ps_tensor **b,
                            GError **err)
{
    const int present = convs_present(m, stem, first, n, in, out, what, err);
    if (present < 0)
        return FALSE;
    GRand *rng = g_rand_new_with_seed(seed);
    for (int k = 0; k < n; k++) {
        char *wn = conv_name(stem, k + first, "weight"), *bn = conv_name(stem, k + first, "bias");
        if (!present) {
            const int64_t ws[4] = {out[k], in[k], 1, 1}, bs[1] = {out[k]};
            ps_tensor *wt = ps_model_add_param(m, wn, 1, 4, ws);
            ps_model_add_param(m, bn, 1, 1, bs); /* zero */
            for (size_t i = 0; i < ps_numel(wt); i++)
                wt->data[i] = (float)g_rand_double_range(rng, -bound[k], bound[k]);
        }
        w[k] = ps_model_find(m, wn)->t;
        b[k] = ps_model_find(m, bn)->t;
        g_free(wn);
        g_free(bn);
    }
    g_rand_free(rng);
    return TRUE;
}

void ps_model_drop_params(ps_model *m, const char *prefix)
{
    int kept = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (g_str_has_prefix(m->params[i].name, prefix)) {
            g_free(m->params[i].name);
            ps_tensor_free(m->params[i].t);
        } else {
            m->params[kept++] = m->params[i];
        }
    }
    m->n_params = kept;
}
