#include "model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK(ps-model-error-quark, ps_model_error)

const char *const ps_model_archs[] = {"microaunet", "microaunet-w8", "malunet", NULL};

/* Architecture builders (one file each), by name. */
gboolean ps_microaunet_build(ps_model *m, uint64_t seed, GError **err);
gboolean ps_malunet_build(ps_model *m, uint64_t seed, GError **err);

typedef gboolean (*build_fn)(ps_model *m, uint64_t seed, GError **err);
/* The builder of each entry of ps_model_archs, same order. */
static const build_fn arch_builders[] = {ps_microaunet_build, ps_microaunet_build, ps_malunet_build};
G_STATIC_ASSERT(G_N_ELEMENTS(arch_builders) == G_N_ELEMENTS(ps_model_archs) - 1);

static build_fn builder_of(const char *arch)
{
    for (int i = 0; ps_model_archs[i]; i++)
        if (strcmp(arch, ps_model_archs[i]) == 0)
            return arch_builders[i];
    return NULL;
}

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

ps_tensor *ps_model_add_param(ps_model *m, const char *name, int trainable, int ndim,
                              const int64_t *shape)
{
    if (m->n_params == m->cap_params) {
        m->cap_params = m->cap_params ? 2 * m->cap_params : 64;
        m->params = g_realloc_n(m->params, m->cap_params, sizeof *m->params);
    }
    /* NCHW view: PyTorch shapes are right-aligned except conv/linear weights, whose first dim
     * is the output count (kept in n). */
    int d[4] = {1, 1, 1, 1};
    if (ndim == 1)
        d[0] = (int)shape[0];
    else
        for (int i = 0; i < ndim; i++)
            d[i] = (int)shape[i];
    if (ndim == 3) { /* conv1d weight (O, I, K) -> (O, I, 1, K) */
        d[3] = (int)shape[2];
        d[2] = 1;
    }
    ps_param *p = &m->params[m->n_params++];
    p->name = g_strdup(name);
    p->t = ps_tensor_new(d[0], d[1], d[2], d[3]);
    p->ndim = ndim;
    for (int i = 0; i < 4; i++)
        p->shape[i] = i < ndim ? shape[i] : 0;
    p->trainable = trainable;
    return p->t;
}

ps_model *ps_model_new(const char *arch, const int *channels, int n_channels, uint64_t seed,
                       GError **err)
{
    build_fn build = builder_of(arch);
    if (!build) {
        char *known = g_strjoinv(", ", (char **)ps_model_archs);
        g_set_error(err, PS_MODEL_ERROR, 1, "unknown architecture '%s' (known: %s)", arch, known);
        g_free(known);
        return NULL;
    }
    ps_model *m = g_new0(ps_model, 1);
    g_strlcpy(m->info.arch, arch, sizeof m->info.arch);
    m->info.input_size = 256;
    memcpy(m->info.mean, imagenet_mean, sizeof imagenet_mean);
    memcpy(m->info.std, imagenet_std, sizeof imagenet_std);
    if (channels) {
        if (n_channels > PS_MAX_CHANNELS) {
            g_set_error(err, PS_MODEL_ERROR, 1, "too many channels (%d)", n_channels);
            g_free(m);
            return NULL;
        }
        m->info.n_channels = n_channels;
        memcpy(m->info.channels, channels, (size_t)n_channels * sizeof(int));
    }
    if (!build(m, seed, err)) {
        ps_model_free(m);
        return NULL;
    }
    return m;
}

void ps_model_free(ps_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_params; i++) {
        g_free(m->params[i].name);
        ps_tensor_free(m->params[i].t);
    }
    g_free(m->params);
    if (m->free_net)
        m->free_net(m->net);
    g_free(m);
}

size_t ps_model_count_trainable(const ps_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].trainable)
            n += ps_numel(m->params[i].t);
    return n;
}

ps_param *ps_model_find(ps_model *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

ps_tensor *ps_model_forward(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features)
{
    return m->forward(m, g, x, features);
}

static char *shape_str(int ndim, const int64_t *shape)
{
    GString *s = g_string_new("[");
    for (int i = 0; i < ndim; i++)
        g_string_append_printf(s, i ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[i]);
    g_string_append_c(s, ']');
    return g_string_free(s, FALSE);
}

static gboolean ignored(const char *name, const char *const *prefixes)
{
    for (; prefixes && *prefixes; prefixes++)
        if (g_str_has_prefix(name, *prefixes))
            return TRUE;
    return FALSE;
}

gboolean ps_model_set_weights(ps_model *m, const ps_st_file *f, const char *path,
                              const char *const *ignore_prefixes, GError **err)
{
    /* Check everything before copying anything, so a bad file leaves the model untouched. */
    for (int i = 0; i < m->n_params; i++) {
        const ps_param *p = &m->params[i];
        const ps_st_tensor *t = ps_st_find(f, p->name);
        if (!t) {
            g_set_error(err, PS_MODEL_ERROR, 2, "%s: tensor '%s' of %s is missing", path, p->name,
                        m->info.arch);
            return FALSE;
        }
        gboolean same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = t->shape[d] == p->shape[d];
        if (!same) {
            char *want = shape_str(p->ndim, p->shape), *got = shape_str(t->ndim, t->shape);
            g_set_error(err, PS_MODEL_ERROR, 3, "%s: tensor '%s' has shape %s, %s needs %s", path,
                        p->name, got, m->info.arch, want);
            g_free(want);
            g_free(got);
            return FALSE;
        }
    }
    for (int i = 0; i < m->n_params; i++) {
        if (!g_str_has_suffix(m->params[i].name, ".running_var"))
            continue;
        const ps_st_tensor *t = ps_st_find(f, m->params[i].name);
        for (size_t k = 0; k < t->numel; k++)
            if (t->data[k] < 0) {
                g_set_error(err, PS_MODEL_ERROR, 3, "%s: tensor '%s' holds a negative variance", path,
                            m->params[i].name);
                return FALSE;
            }
    }
    for (int i = 0; i < f->n_tensors; i++) {
        if (ignored(f->tensors[i].name, ignore_prefixes))
            continue;
        if (!ps_model_find(m, f->tensors[i].name)) {
            g_set_error(err, PS_MODEL_ERROR, 4, "%s: unexpected tensor '%s' (not part of %s)", path,
                        f->tensors[i].name, m->info.arch);
            return FALSE;
        }
    }
    for (int i = 0; i < m->n_params; i++) {
        const ps_st_tensor *t = ps_st_find(f, m->params[i].name);
        memcpy(m->params[i].t->data, t->data, t->numel * sizeof(float));
    }
    return TRUE;
}

/* Normalisation metadata beyond this (|mean|, std and 1/std) is refused as broken. */
#define NORM_BOUND 1000.0

/* Whether the 3 values lie in [lo, hi] (NaN does not). */
static gboolean within(const double *v, double lo, double hi)
{
    for (int i = 0; i < 3; i++)
        if (!(v[i] >= lo && v[i] <= hi))
            return FALSE;
    return TRUE;
}

/* Parses "[a,b,c]" of up to max numbers; returns the count or -1. */
static int parse_list(const char *s, double *out, int max)
{
    if (!s)
        return -1;
    while (*s == ' ')
        s++;
    if (*s++ != '[')
        return -1;
    int n = 0;
    for (;;) {
        char *end;
        while (*s == ' ')
            s++;
        if (*s == ']' && n == 0)
            return 0;
        double v = g_ascii_strtod(s, &end);
        if (end == s || n == max)
            return -1;
        out[n++] = v;
        s = end;
        while (*s == ' ')
            s++;
        if (*s == ']')
            return *(s + 1) == '\0' ? n : -1;
        if (*s++ != ',')
            return -1;
    }
}

ps_model *ps_model_from_file(const ps_st_file *f, const char *path, const char *const *ignore_prefixes,
                             GError **err)
{
    ps_model *m = NULL;
    const char *arch = ps_st_meta(f, "architecture");
    double ch[PS_MAX_CHANNELS], v[3];
    int n_ch = parse_list(ps_st_meta(f, "channels"), ch, PS_MAX_CHANNELS);
    if (!arch) {
        g_set_error(err, PS_MODEL_ERROR, 5, "%s: metadata has no 'architecture'", path);
        goto out;
    }
    if (n_ch < 1) {
        g_set_error(err, PS_MODEL_ERROR, 5, "%s: metadata 'channels' missing or not a list", path);
        goto out;
    }
    int channels[PS_MAX_CHANNELS];
    for (int i = 0; i < n_ch; i++) {
        channels[i] = (int)ch[i];
        if (channels[i] < 1 || channels[i] > PS_MAX_WIDTH || channels[i] != ch[i]) {
            g_set_error(err, PS_MODEL_ERROR, 5, "%s: metadata 'channels' has a bad value", path);
            goto out;
        }
    }
    GError *e = NULL;
    m = ps_model_new(arch, channels, n_ch, 0, &e);
    if (!m) {
        g_set_error(err, PS_MODEL_ERROR, 5, "%s: %s", path, e->message);
        g_error_free(e);
        goto out;
    }
    const char *size = ps_st_meta(f, "input_size");
    if (size) {
        gint64 side = 0;
        if (!g_ascii_string_to_signed(size, 10, PS_MIN_INPUT, PS_MAX_INPUT, &side, NULL) || side % 32) {
            g_set_error(err, PS_MODEL_ERROR, 5, "%s: input_size '%s' is not a multiple of 32 in %d..%d",
                        path, size, PS_MIN_INPUT, PS_MAX_INPUT);
            goto fail;
        }
        m->info.input_size = (int)side;
    }
    if (ps_st_meta(f, "mean") || ps_st_meta(f, "std")) {
        /* of 0..1 RGB: anything outside these bounds is a broken file, not a normalisation */
        if (parse_list(ps_st_meta(f, "mean"), v, 3) != 3 || !within(v, -NORM_BOUND, NORM_BOUND)) {
            g_set_error(err, PS_MODEL_ERROR, 5, "%s: metadata 'mean' is not a list of 3 numbers in [%g, %g]",
                        path, -NORM_BOUND, NORM_BOUND);
            goto fail;
        }
        for (int i = 0; i < 3; i++)
            m->info.mean[i] = (float)v[i];
        if (parse_list(ps_st_meta(f, "std"), v, 3) != 3 || !within(v, 1.0 / NORM_BOUND, NORM_BOUND)) {
            g_set_error(err, PS_MODEL_ERROR, 5, "%s: metadata 'std' is not a list of 3 numbers in [%g, %g]",
                        path, 1.0 / NORM_BOUND, NORM_BOUND);
            goto fail;
        }
        for (int i = 0; i < 3; i++)
            m->info.std[i] = (float)v[i];
    }
    if (ps_model_set_weights(m, f, path, ignore_prefixes, err))
        goto out;
fail:
    ps_model_free(m);
    m = NULL;
out:
    return m;
}

ps_model *ps_model_load(const char *path, GError **err)
{
    ps_st_file *f = ps_st_read(path, err);
    if (!f)
        return NULL;
    /* A training checkpoint also holds the optimiser's state (and, distilling, the feature
     * adapters); its model loads the same way. */
    const char *const train_only[] = {PS_TRAIN_ONLY_PREFIXES, NULL};
    const int ckpt = ps_st_meta(f, "checkpoint_epoch") != NULL;
    ps_model *m = ps_model_from_file(f, path, ckpt ? train_only : NULL, err);
    ps_st_free(f);
    return m;
}

static char *float_list(const float *v, int n)
{
    GString *s = g_string_new("[");
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    for (int i = 0; i < n; i++) {
        if (i)
            g_string_append_c(s, ',');
        g_string_append(s, g_ascii_formatd(buf, sizeof buf, "%.6g", v[i]));
    }
    g_string_append_c(s, ']');
    return g_string_free(s, FALSE);
}

GHashTable *ps_model_metadata(const ps_model *m, GHashTable *extra)
{
    GHashTable *meta = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    if (extra) {
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, extra);
        while (g_hash_table_iter_next(&it, &k, &v))
            g_hash_table_insert(meta, g_strdup(k), g_strdup(v));
    }
    GString *ch = g_string_new("[");
    for (int i = 0; i < m->info.n_channels; i++)
        g_string_append_printf(ch, i ? ",%d" : "%d", m->info.channels[i]);
    g_string_append_c(ch, ']');
    g_hash_table_insert(meta, g_strdup("architecture"), g_strdup(m->info.arch));
    g_hash_table_insert(meta, g_strdup("channels"), g_string_free(ch, FALSE));
    g_hash_table_insert(meta, g_strdup("input_size"), g_strdup_printf("%d", m->info.input_size));
    g_hash_table_insert(meta, g_strdup("mean"), float_list(m->info.mean, 3));
    g_hash_table_insert(meta, g_strdup("std"), float_list(m->info.std, 3));
    return meta;
}

void ps_model_tensors(const ps_model *m, ps_st_tensor *ts)
{
    for (int i = 0; i < m->n_params; i++) {
        const ps_param *p = &m->params[i];
        ts[i].name = p->name;
        ts[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            ts[i].shape[d] = p->shape[d];
        ts[i].numel = ps_numel(p->t);
        ts[i].data = p->t->data;
    }
}

gboolean ps_model_save(const ps_model *m, const char *path, GHashTable *extra, GError **err)
{
    GHashTable *meta = ps_model_metadata(m, extra);
    ps_st_tensor *ts = g_new0(ps_st_tensor, m->n_params);
    ps_model_tensors(m, ts);
    gboolean ok = ps_st_write(path, ts, m->n_params, meta, err);
    g_free(ts);
    g_hash_table_unref(meta);
    return ok;
}
