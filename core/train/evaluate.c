#include "evaluate.h"
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include "../lib/preprocess.h"
#include "progress.h"

gboolean ps_evaluate(ps_model *m, const ps_dataset *ds, float threshold, int tta, ps_metric_values *out,
                     double *dice_per_image, ps_eval_progress progress, void *user, GError **err)
{
    ps_segmenter *seg = ps_segmenter_new(m);
    ps_segmenter_set_tta(seg, tta);
    int size = ps_segmenter_size(seg);
    ps_metrics acc;
    ps_metrics_init(&acc);
    gboolean ok = TRUE;
    for (int i = 0; i < ds->n && ok; i++) {
        ps_image *im = ps_image_load_rgb(ds->image_paths[i], err);
        ps_image *gt = im ? ps_image_load_mask(ds->mask_paths[i], err) : NULL;
        ok = gt != NULL;
        if (ok) {
            const float *prob = ps_segmenter_run(seg, im->data, im->w, im->h, im->w * 3);
            float *full = malloc((size_t)gt->w * gt->h * sizeof(float));
            ps_resize_bilinear_f32(prob, size, size, full, gt->w, gt->h);
            double dice = ps_metrics_add(&acc, full, gt->data, gt->w * gt->h, threshold);
            if (dice_per_image)
                dice_per_image[i] = dice;
            free(full);
        }
        ps_image_free(im);
        ps_image_free(gt);
        if (progress)
            progress(i + 1, ds->n, user);
    }
    ps_segmenter_free(seg);
    if (ok)
        *out = ps_metrics_values(&acc);
    return ok;
}

/* A JSON string literal of s (quotes, backslashes and control characters escaped). */
static char *json_quoted(const char *s)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(n, s);
    char *q = json_to_string(n, FALSE);
    json_node_unref(n);
    return q;
}

char *ps_metrics_summary_json(const ps_metric_values *v, const char *data, const char *split)
{
    char *qd = json_quoted(data), *qs = json_quoted(split ? split : "all");
    /* four decimals, as the model card quotes them */
    char *out = g_strdup_printf("{\"data\":%s,\"split\":%s,\"images\":%d,\"mean_dice\":%.4f,"
                                "\"mean_iou\":%.4f,\"mae\":%.4f,\"pooled_dice\":%.4f}",
                                qd, qs, v->images, v->mean_dice, v->mean_iou, v->mae, v->pooled_dice);
    g_free(qd), g_free(qs);
    return out;
}

static void bar_progress(int done, int total, void *user)
{
    (void)total;
    ps_progress_update(user, done, "evaluating");
}

char *ps_evaluate_summary(ps_model *m, const ps_dataset *ds, const char *data, const char *split, GError **err)
{
    ps_metric_values v;
    ps_progress bar;
    ps_progress_init(&bar, "eval", ds->n, 0);
    if (!ps_evaluate(m, ds, 0.5f, 1, &v, NULL, bar_progress, &bar, err))
        return NULL;
    ps_progress_finish(&bar);
    return ps_metrics_summary_json(&v, data, split);
}
