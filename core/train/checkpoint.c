#include "checkpoint.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define OPT_PREFIX PS_OPTIM_PREFIX

gboolean ps_checkpoint_save(const char *path, const ps_model *m, const ps_adamw *opt, const ps_ema *ema,
                            ps_train_pos pos, GHashTable *extra, GError **err)
{
    GHashTable *meta = ps_model_metadata(m, extra);
    g_hash_table_insert(meta, g_strdup("checkpoint_epoch"), g_strdup_printf("%d", pos.epoch));
    g_hash_table_insert(meta, g_strdup("checkpoint_batch"), g_strdup_printf("%d", pos.batch));
    g_hash_table_insert(meta, g_strdup("optim_step"), g_strdup_printf("%ld", opt->step));
    if (ema) { /* read back with g_ascii_strtod: a '.' whatever the locale */
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        g_hash_table_insert(meta, g_strdup("ema_decay"), g_strdup(g_ascii_formatd(buf, sizeof buf, "%.9g", ema->decay)));
    }

    ps_st_tensor *ts = g_new0(ps_st_tensor, 4 * m->n_params);
    ps_model_tensors(m, ts);
    int n = m->n_params;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; i < m->n_params; i++) {
        if (!m->params[i].trainable)
            continue;
        for (int k = 0; k < 2; k++) {
            ps_st_tensor *t = &ts[n++];
            *t = ts[i];
            t->name = g_strconcat(OPT_PREFIX, k ? "v." : "m.", m->params[i].name, NULL);
            t->data = k ? opt->v[i] : opt->m[i];
            g_ptr_array_add(names, t->name);
        }
    }
    for (int i = 0; ema && i < m->n_params; i++) {
        ps_st_tensor *t = &ts[n++];
        *t = ts[i];
        t->name = g_strconcat(OPT_PREFIX, "ema.", m->params[i].name, NULL);
        t->data = ema->shadow[i];
        g_ptr_array_add(names, t->name);
    }
    gboolean ok = ps_st_write(path, ts, n, meta, err);
    g_ptr_array_unref(names);
    g_free(ts);
    g_hash_table_unref(meta);
    return ok;
}

static gboolean meta_int(const ps_st_file *f, const char *path, const char *key, long *out,
                         GError **err)
{
    const char *s = ps_st_meta(f, key);
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || *end || v < 0 || v > INT_MAX) {
        g_set_error(err, PS_MODEL_ERROR, 6, "%s: not a training checkpoint ('%s' missing or bad)",
                    path, key);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

/* The moving average saved beside the model, NULL (without error) when there is none. */
static ps_ema *load_ema(const ps_st_file *f, const char *path, const ps_model *m, GError **err)
{
    const char *d = ps_st_meta(f, "ema_decay");
    if (!d)
        return NULL;
    char *end = NULL;
    double decay = g_ascii_strtod(d, &end);
    if (*end || !(decay > 0 && decay < 1)) {
        g_set_error(err, PS_MODEL_ERROR, 6, "%s: bad ema_decay '%s'", path, d);
        return NULL;
    }
    ps_ema *ema = ps_ema_new(m, (float)decay);
    for (int i = 0; i < m->n_params; i++) {
        char *name = g_strconcat(OPT_PREFIX, "ema.", m->params[i].name, NULL);
        const ps_st_tensor *t = ps_st_find(f, name);
        if (!t || t->numel != ps_numel(m->params[i].t)) {
            g_set_error(err, PS_MODEL_ERROR, 6, "%s: moving average '%s' missing or mis-sized", path, name);
            g_free(name);
            ps_ema_free(ema);
            return NULL;
        }
        memcpy(ema->shadow[i], t->data, t->numel * sizeof(float));
        g_free(name);
    }
    return ema;
}

ps_model *ps_checkpoint_load(const char *path, ps_adamw *opt, float lr, float weight_decay,
                             ps_train_pos *pos, GHashTable **meta_out, ps_ema **ema_out, GError **err)
{
    ps_st_file *f = ps_st_read(path, err);
    if (!f)
        return NULL;
    long epoch, batch, step;
    ps_model *m = NULL;
    if (!meta_int(f, path, "checkpoint_epoch", &epoch, err) ||
        !meta_int(f, path, "checkpoint_batch", &batch, err) ||
        !meta_int(f, path, "optim_step", &step, err))
        goto out;
    const char *const train_only[] = {PS_TRAIN_ONLY_PREFIXES, NULL};
    m = ps_model_from_file(f, path, train_only, err);
    if (!m)
        goto out;
    /* Distillation's adapters and deep supervision's heads train with the model: back as
     * trainable parameters. */
    for (int i = 0; i < f->n_tensors; i++) {
        const ps_st_tensor *t = &f->tensors[i];
        if (!g_str_has_prefix(t->name, PS_DISTILL_PREFIX) && !g_str_has_prefix(t->name, PS_DEEPSUP_PREFIX))
            continue;
        if (t->ndim < 1 || t->ndim > 4) {
            g_set_error(err, PS_MODEL_ERROR, 6, "%s: tensor '%s' has %d dimensions", path, t->name, t->ndim);
            ps_model_free(m);
            m = NULL;
            goto out;
        }
        ps_tensor *p = ps_model_add_param(m, t->name, 1, t->ndim, t->shape);
        memcpy(p->data, t->data, t->numel * sizeof(float));
    }
    ps_adamw_init(opt, m, lr, weight_decay);
    opt->step = step;
    for (int i = 0; i < m->n_params; i++) {
        if (!m->params[i].trainable)
            continue;
        for (int k = 0; k < 2; k++) {
            char *name = g_strconcat(OPT_PREFIX, k ? "v." : "m.", m->params[i].name, NULL);
            const ps_st_tensor *t = ps_st_find(f, name);
            if (!t || t->numel != ps_numel(m->params[i].t)) {
                g_set_error(err, PS_MODEL_ERROR, 6, "%s: optimiser state '%s' missing or mis-sized",
                            path, name);
                g_free(name);
                ps_adamw_free(opt);
                ps_model_free(m);
                m = NULL;
                goto out;
            }
            memcpy(k ? opt->v[i] : opt->m[i], t->data, t->numel * sizeof(float));
            g_free(name);
        }
    }
    if (ema_out) {
        GError *ema_err = NULL;
        *ema_out = load_ema(f, path, m, &ema_err);
        if (ema_err) {
            g_propagate_error(err, ema_err);
            ps_adamw_free(opt);
            ps_model_free(m);
            m = NULL;
            goto out;
        }
    }
    pos->epoch = (int)epoch;
    pos->batch = (int)batch;
    if (meta_out) {
        *meta_out = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, f->metadata);
        while (g_hash_table_iter_next(&it, &k, &v))
            g_hash_table_insert(*meta_out, g_strdup(k), g_strdup(v));
    }
out:
    ps_st_free(f);
    return m;
}
