/* polypseg-average: one weights file whose every tensor is the mean of the same tensor in the
 * input files ("model soup", Wortsman et al. 2022). Averaging helps only for runs fine-tuned
 * from one parent (they sit in one basin of the loss); the inputs' provenance goes into the
 * output's metadata so that the result can be traced and re-made. */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include "batchnorm_stats.h"
#include "evaluate.h"

typedef struct ingredient {
    const char *path;
    char *sha256;
    ps_st_file *file;
    ps_model *model;
} ingredient;

static gboolean same_info(const ps_model_info *a, const ps_model_info *b)
{
    if (strcmp(a->arch, b->arch) || a->n_channels != b->n_channels || a->input_size != b->input_size)
        return FALSE;
    for (int i = 0; i < a->n_channels; i++)
        if (a->channels[i] != b->channels[i])
            return FALSE;
    for (int i = 0; i < 3; i++)
        if (a->mean[i] != b->mean[i] || a->std[i] != b->std[i])
            return FALSE;
    return TRUE;
}

static gboolean read_ingredient(ingredient *in, GError **err)
{
    char *bytes = NULL;
    gsize len = 0;
    if (!g_file_get_contents(in->path, &bytes, &len, err))
        return FALSE;
    in->sha256 = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)bytes, len);
    g_free(bytes);
    in->file = ps_st_read(in->path, err);
    /* A training checkpoint (e.g. polypseg-train --snapshot-every) counts as its model: its
     * optimiser state and distillation adapters are ignored. Any other extra tensor is refused. */
    const char *const train_only[] = {PS_TRAIN_ONLY_PREFIXES, NULL};
    const int ckpt = in->file && ps_st_meta(in->file, "checkpoint_epoch") != NULL;
    in->model = in->file ? ps_model_from_file(in->file, in->path, ckpt ? train_only : NULL, err) : NULL;
    return in->model != NULL;
}

/* JSON list of the inputs: file, SHA-256 and, where their metadata has them, dataset, epochs
 * and the command that made each. */
static char *ingredients_json(const ingredient *ins, int n)
{
    static const char *const keys[] = {"dataset", "epochs", "checkpoint_epoch", "command"};
    JsonBuilder *b = json_builder_new();
    json_builder_begin_array(b);
    for (int i = 0; i < n; i++) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "file");
        json_builder_add_string_value(b, ins[i].path);
        json_builder_set_member_name(b, "sha256");
        json_builder_add_string_value(b, ins[i].sha256);
        for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
            const char *v = ps_st_meta(ins[i].file, keys[k]);
            if (v) {
                json_builder_set_member_name(b, keys[k]);
                json_builder_add_string_value(b, v);
            }
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    JsonNode *root = json_builder_get_root(b);
    char *s = json_to_string(root, FALSE);
    json_node_unref(root);
    g_object_unref(b);
    return s;
}

/* The inputs' datasets ("a + b" counts as a and b), each once, in order, joined with " + ". */
static char *datasets_union(const ingredient *ins, int n)
{
    GString *s = g_string_new(NULL);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (int i = 0; i < n; i++) {
        const char *d = ps_st_meta(ins[i].file, "dataset");
        char **parts = g_strsplit(d ? d : "", " + ", -1);
        for (char **p = parts; *p; p++)
            if (**p && g_hash_table_add(seen, g_strdup(*p)))
                g_string_append_printf(s, "%s%s", s->len ? " + " : "", *p);
        g_strfreev(parts);
    }
    g_hash_table_unref(seen);
    return g_string_free(s, FALSE);
}

/* Sets every parameter of ins[0].model to the mean over the inputs (summed in double). */
static void average_into_first(ingredient *ins, int n)
{
    ps_model *out = ins[0].model;
    for (int p = 0; p < out->n_params; p++) {
        ps_param *dst = &out->params[p];
        size_t numel = ps_numel(dst->t);
        double *sum = g_new0(double, numel);
        for (int i = 0; i < n; i++) {
            const float *src = ps_model_find(ins[i].model, dst->name)->t->data;
            for (size_t k = 0; k < numel; k++)
                sum[k] += src[k];
        }
        for (size_t k = 0; k < numel; k++)
            dst->t->data[k] = (float)(sum[k] / n);
        g_free(sum);
    }
}

/* Where the running statistics came from, for the metadata. */
static char *bn_note(int n, const char *crop_scale, const char *dir, const char *split, char **add)
{
    GString *s = g_string_new(NULL);
    float lo = 0.75f, hi = 1.f; /* as the loader uses them, its default when unrecorded */
    ps_crop_scale_parse(crop_scale, &lo, &hi);
    g_string_printf(s, "re-estimated with the training augmentation (crops %g,%g) on %d images: %s", lo, hi, n,
                    dir);
    if (split)
        g_string_append_printf(s, " (split %s)", split);
    for (char **a = add; a && *a; a++)
        g_string_append_printf(s, " + %s", *a);
    return g_string_free(s, FALSE);
}

/* --bn-data with its split and every --bn-add-data folder, as one list. */
static ps_dataset *open_bn_data(const char *dir, const char *split, char **add, GError **err)
{
    ps_dataset *ds = ps_dataset_open(dir, split, err);
    for (char **a = add; ds && a && *a; a++) {
        ps_dataset *more = ps_dataset_open(*a, NULL, err);
        if (!more) {
            ps_dataset_free(ds);
            return NULL;
        }
        ps_dataset_append(ds, more);
    }
    return ds;
}

int main(int argc, char **argv)
{
    char *out = NULL, *val = NULL, *val_split = NULL, *dataset_name = NULL, *bn_data = NULL, *bn_split = NULL;
    char **bn_add = NULL;
    char *command = g_strjoinv(" ", argv);
    GOptionEntry entries[] = {
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Averaged weights to write (safetensors; required)", "FILE"},
        {"val", 0, 0, G_OPTION_ARG_FILENAME, &val, "Held-out folder to evaluate the result on (metrics go into its metadata)", "DIR"},
        {"val-split", 0, 0, G_OPTION_ARG_FILENAME, &val_split, "Split file for --val", "FILE"},
        {"bn-data", 0, 0, G_OPTION_ARG_FILENAME, &bn_data, "Re-estimate the batch-norm running statistics of the mean on this training folder (see below)", "DIR"},
        {"bn-split", 0, 0, G_OPTION_ARG_FILENAME, &bn_split, "Split file for --bn-data", "FILE"},
        {"bn-add-data", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &bn_add, "Also use every pair of this folder for --bn-data (repeatable)", "DIR"},
        {"dataset-name", 0, 0, G_OPTION_ARG_STRING, &dataset_name, "Dataset recorded in the result (default: the inputs' datasets joined with ' + ')", "NAME"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("WEIGHTS WEIGHTS... - average weights files of one architecture");
    g_option_context_set_description(ctx,
        "Every tensor of the result is the mean of that tensor over the inputs. Average runs\n"
        "fine-tuned from one parent; unrelated runs average to a poor model. The inputs' files,\n"
        "SHA-256, datasets and commands are recorded in the result's metadata ('average_of').\n\n"
        "The mean of the inputs' batch-norm running statistics is not the statistics of the\n"
        "averaged network's activations. With --bn-data they are re-estimated as SWA does: one\n"
        "pass over those (training) images, with the training augmentation, at the model's input size.\n\n"
        "Example:\n  polypseg-average -o runs/soup.safetensors runs/a.safetensors runs/b.safetensors");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "polypseg-average: %s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    int n = argc - 1;
    if (!out || n < 2) {
        fprintf(stderr, "polypseg-average: --out and at least two weights files are required (see --help)\n");
        return 2;
    }

    ingredient *ins = g_new0(ingredient, n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        ins[i].path = argv[i + 1];
        if (!read_ingredient(&ins[i], &err)) {
            fprintf(stderr, "polypseg-average: %s\n", err->message);
            rc = 1;
        } else if (!same_info(&ins[0].model->info, &ins[i].model->info)) {
            fprintf(stderr, "polypseg-average: %s (%s at %d) and %s (%s at %d) differ in architecture, channels, "
                    "input size or normalisation; only files of one model can be averaged\n",
                    ins[0].path, ins[0].model->info.arch, ins[0].model->info.input_size, ins[i].path,
                    ins[i].model->info.arch, ins[i].model->info.input_size);
            rc = 1;
        }
    }
    ps_dataset *vds = NULL;
    if (rc == 0 && val && !(vds = ps_dataset_open(val, val_split, &err))) {
        fprintf(stderr, "polypseg-average: %s\n", err->message);
        rc = 1;
    }
    ps_dataset *bds = NULL;
    if (rc == 0 && bn_data && !ps_batchnorm_layers(ins[0].model)) {
        fprintf(stderr, "polypseg-average: --bn-data: %s has no batch-norm layers to re-estimate\n",
                ins[0].model->info.arch);
        rc = 2;
    } else if (rc == 0 && bn_data && !(bds = open_bn_data(bn_data, bn_split, bn_add, &err))) {
        fprintf(stderr, "polypseg-average: --bn-data: %s\n", err->message);
        rc = 1;
    }
    /* the first input's crops for --bn-data (the inputs are fine-tunes of one parent) */
    const char *crop_scale = rc == 0 ? ps_st_meta(ins[0].file, "crop_scale") : NULL;
    if (rc == 0) {
        average_into_first(ins, n);
        if (bds) {
            ps_loader_config lc = ps_batchnorm_loader_config(ins[0].model, crop_scale, (int)g_get_num_processors());
            ps_loader *loader = ps_loader_new(bds, &lc, &err);
            if (!loader) {
                fprintf(stderr, "polypseg-average: --bn-data: %s\n", err->message);
                rc = 1;
            } else {
                int batches = ps_recompute_batchnorm(ins[0].model, loader, lc.batch);
                printf("batch-norm statistics re-estimated on %d images (%d batches)\n", bds->n, batches);
                ps_loader_free(loader);
            }
        }
    }
    if (rc == 0) {
        GHashTable *meta = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_hash_table_insert(meta, g_strdup("command"), g_strdup(command));
        g_hash_table_insert(meta, g_strdup("average_of"), ingredients_json(ins, n));
        if (bds)
            g_hash_table_insert(meta, g_strdup("batchnorm_statistics"),
                                bn_note(bds->n, crop_scale, bn_data, bn_split, bn_add));
        g_hash_table_insert(meta, g_strdup("dataset"), dataset_name ? g_strdup(dataset_name) : datasets_union(ins, n));
        if (vds) {
            char *metrics = ps_evaluate_summary(ins[0].model, vds, val, val_split, &err);
            if (!metrics) {
                fprintf(stderr, "polypseg-average: %s\n", err->message);
                rc = 1;
            } else {
                printf("held-out %s: %s\n", val, metrics);
                g_hash_table_insert(meta, g_strdup("metrics"), metrics);
            }
        }
        if (rc == 0 && !ps_model_save(ins[0].model, out, meta, &err)) {
            fprintf(stderr, "polypseg-average: %s\n", err->message);
            rc = 1;
        }
        if (rc == 0)
            printf("wrote %s: the mean of %d files\n", out, n);
        g_hash_table_unref(meta);
    }
    for (int i = 0; i < n; i++) {
        g_free(ins[i].sha256);
        if (ins[i].file)
            ps_st_free(ins[i].file);
        if (ins[i].model)
            ps_model_free(ins[i].model);
    }
    g_free(ins);
    if (vds)
        ps_dataset_free(vds);
    if (bds)
        ps_dataset_free(bds);
    g_clear_error(&err);
    g_free(command);
    g_free(out), g_free(val), g_free(val_split), g_free(dataset_name), g_free(bn_data), g_free(bn_split);
    g_strfreev(bn_add);
    return rc;
}
