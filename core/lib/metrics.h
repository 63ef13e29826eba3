/* Segmentation metrics, accumulated image by image. */
#pragma once
#include <stdint.h>

typedef struct ps_metrics {
    int images;
    double sum_dice, sum_iou, sum_mae, sum_fnr, sum_acc, sum_sens, sum_spec;
    double pooled_tp, pooled_fp, pooled_fn; /* whole-set counts for the pooled Dice */
} ps_metrics;

typedef struct ps_metric_values {
    int images;
    double mean_dice, mean_iou, mae, fnr, accuracy, sensitivity, specificity, pooled_dice;
} ps_metric_values;

void ps_metrics_init(ps_metrics *m);
/* prob: probability map, gt: 0/255 mask, both n pixels (prediction already resized to the mask).
 * Per image: prediction = prob >= threshold. Empty-vs-empty counts as Dice = IoU = 1.
 * Returns this image's Dice. */
double ps_metrics_add(ps_metrics *m, const float *prob, const uint8_t *gt, int n, float threshold);
ps_metric_values ps_metrics_values(const ps_metrics *m);
