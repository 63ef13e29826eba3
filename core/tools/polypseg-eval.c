/* polypseg-eval: scores weights on a held-out set (predictions resized to each mask). */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include "evaluate.h"
#include "output_path.h"
#include "preprocess.h"
#include "progress.h"

static void on_progress(int done, int total, void *user)
{
    ps_progress_update(user, done, NULL);
}

static gboolean write_json(const char *path, const char *weights, const char *data,
                           const ps_metric_values *v, GError **err)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "weights");
    json_builder_add_string_value(b, weights);
    json_builder_set_member_name(b, "data");
    json_builder_add_string_value(b, data);
    json_builder_set_member_name(b, "images");
    json_builder_add_int_value(b, v->images);
    const struct { const char *key; double value; } fields[] = {
        {"mean_dice", v->mean_dice}, {"mean_iou", v->mean_iou}, {"mae", v->mae}, {"fnr", v->fnr},
        {"accuracy", v->accuracy}, {"sensitivity", v->sensitivity}, {"specificity", v->specificity},
        {"pooled_dice", v->pooled_dice}};
    for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
        json_builder_set_member_name(b, fields[i].key);
        json_builder_add_double_value(b, fields[i].value);
    }
    json_builder_end_object(b);
    JsonGenerator *gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    JsonNode *root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    char *target = ps_output_target(path, err);
    gboolean ok = target && json_generator_to_file(gen, target, err);
    g_free(target);
    json_node_unref(root);
    g_object_unref(gen);
    g_object_unref(b);
    return ok;
}

static gboolean write_per_image(const char *path, const ps_dataset *ds, const double *dice, GError **err)
{
    GString *csv = g_string_new("image,dice\n");
    for (int i = 0; i < ds->n; i++) {
        char *name = g_path_get_basename(ds->image_paths[i]);
        g_string_append_printf(csv, "%s,%.6f\n", name, dice[i]);
        g_free(name);
    }
    char *target = ps_output_target(path, err);
    gboolean ok = target && g_file_set_contents(target, csv->str, (gssize)csv->len, err);
    g_free(target);
    g_string_free(csv, TRUE);
    return ok;
}

int main(int argc, char **argv)
{
    char *weights = NULL, *data = NULL, *split = NULL, *json = NULL, *per_image = NULL;
    double threshold = 0.5;
    int size = 0, tta = 1;
    GOptionEntry entries[] = {
        {"weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Model weights (required)", "FILE"},
        {"data", 'd', 0, G_OPTION_ARG_FILENAME, &data, "Folder with images/ and masks/ (required)", "DIR"},
        {"split", 's', 0, G_OPTION_ARG_FILENAME, &split, "Only the file names listed in FILE", "FILE"},
        {"json", 'j', 0, G_OPTION_ARG_FILENAME, &json, "Write the metrics as JSON", "OUT"},
        {"threshold", 't', 0, G_OPTION_ARG_DOUBLE, &threshold, "Probability threshold (default 0.5)", "T"},
        {"size", 0, 0, G_OPTION_ARG_INT, &size, "Run the model at this input side instead of the one it was trained at (multiple of 32)", "PX"},
        {"tta", 0, 0, G_OPTION_ARG_INT, &tta, PS_TTA_HELP, "N"},
        {"per-image", 0, 0, G_OPTION_ARG_FILENAME, &per_image, "Write each image's Dice as CSV (image,dice)", "OUT"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- evaluate polyp segmentation weights");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "polypseg-eval: %s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (!weights || !data || !(threshold >= 0 && threshold <= 1) ||
        (size && (size % 32 || size < PS_MIN_INPUT || size > PS_MAX_INPUT)) || tta < 1 || tta > PS_TTA_MAX) {
        fprintf(stderr, "polypseg-eval: --weights and --data are required, threshold in [0,1], --size a "
                        "multiple of 32 in %d..%d, --tta 1..%d (see --help)\n", PS_MIN_INPUT, PS_MAX_INPUT,
                PS_TTA_MAX);
        return 2;
    }
    ps_model *m = ps_model_load(weights, &err);
    if (m && size)
        m->info.input_size = size;
    ps_dataset *ds = m ? ps_dataset_open(data, split, &err) : NULL;
    if (!ds) {
        fprintf(stderr, "polypseg-eval: %s\n", err->message);
        return 1;
    }
    ps_progress bar;
    ps_progress_init(&bar, "eval", ds->n, 0);
    ps_metric_values v;
    double *dice = g_new0(double, ds->n);
    gint64 t0 = g_get_monotonic_time();
    if (!ps_evaluate(m, ds, (float)threshold, tta, &v, dice, on_progress, &bar, &err)) {
        fprintf(stderr, "\npolypseg-eval: %s\n", err->message);
        return 1;
    }
    ps_progress_finish(&bar);
    double secs = (g_get_monotonic_time() - t0) / 1e6;
    printf("%s on %s%s%s (%d images, %.1f s", weights, data, split ? " split " : "", split ? split : "",
           v.images, secs);
    printf(tta > 1 ? ", test-time augmentation over %d views)\n" : ")\n", tta);
    printf("  %-12s %.4f\n  %-12s %.4f\n  %-12s %.4f\n  %-12s %.4f\n", "mean Dice", v.mean_dice,
           "mean IoU", v.mean_iou, "MAE", v.mae, "FNR", v.fnr);
    printf("  %-12s %.4f\n  %-12s %.4f\n  %-12s %.4f\n  %-12s %.4f\n", "accuracy", v.accuracy,
           "sensitivity", v.sensitivity, "specificity", v.specificity, "pooled Dice", v.pooled_dice);
    int rc = 0;
    if (json && !write_json(json, weights, data, &v, &err)) {
        fprintf(stderr, "polypseg-eval: %s: %s\n", json, err->message);
        g_clear_error(&err); /* the per-image file is still written */
        rc = 1;
    }
    if (per_image && !write_per_image(per_image, ds, dice, &err)) {
        fprintf(stderr, "polypseg-eval: %s: %s\n", per_image, err->message);
        rc = 1;
    }
    g_free(dice);
    ps_dataset_free(ds);
    ps_model_free(m);
    return rc;
}
