/* Evaluating a model on a dataset the way polypseg-eval reports it: each prediction resized
 * to its ground-truth mask's size, thresholded, metrics per image and pooled. */
#pragma once
#include "../lib/metrics.h"
#include "../lib/model.h"
#include "dataset.h"

/* Called after each image (may be NULL), e.g. for a progress bar. */
typedef void (*ps_eval_progress)(int done, int total, void *user);

/* dice_per_image: NULL, or ds->n entries that receive each image's Dice (in dataset order). */
gboolean ps_evaluate(ps_model *m, const ps_dataset *ds, float threshold, int tta, ps_metric_values *out,
                     double *dice_per_image, ps_eval_progress progress, void *user, GError **err);

/* The held-out summary stored as the weights' "metrics" metadata by polypseg-train and
 * polypseg-average: compact JSON with data, split (NULL = "all"), images, mean Dice, mean IoU,
 * MAE and pooled Dice. g_free() it. */
char *ps_metrics_summary_json(const ps_metric_values *v, const char *data, const char *split);
/* ps_evaluate with a progress bar on stderr, then ps_metrics_summary_json (data = the folder
 * name to record); NULL with *err set when an image cannot be read. */
char *ps_evaluate_summary(ps_model *m, const ps_dataset *ds, const char *data, const char *split, GError **err);
