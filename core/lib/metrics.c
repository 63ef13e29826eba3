#include "metrics.h"
#include <math.h>
#include <string.h>

/* Conventions for empty denominators (documented, relied on by the tests):
 *  - Dice and IoU are 1 when prediction and ground truth are both empty.
 *  - With no positive pixels in the ground truth nothing can be missed: FNR = 0 and
 *    sensitivity = 1 (so sensitivity = 1 - FNR always holds).
 *  - With no negative pixels nothing can be falsely flagged: specificity = 1. */

void ps_metrics_init(ps_metrics *m)
{
    memset(m, 0, sizeof *m);
}

static double ratio_or(double num, double den, double empty)
{
    return den > 0 ? num / den : empty;
}

double ps_metrics_add(ps_metrics *m, const float *prob, const uint8_t *gt, int n, float threshold)
{
    if (n <= 0)
        return 0;
    long tp = 0, fp = 0, fn = 0, tn = 0;
    double abs_err = 0;
    for (int i = 0; i < n; i++) {
        int pred = prob[i] >= threshold;
        int pos = gt[i] >= 128;
        tp += pred && pos;
        fp += pred && !pos;
        fn += !pred && pos;
        tn += !pred && !pos;
        abs_err += fabs((double)prob[i] - gt[i] / 255.0);
    }
    double dice = ratio_or(2.0 * tp, 2.0 * tp + fp + fn, 1);
    m->images++;
    m->sum_dice += dice;
    m->sum_iou += ratio_or(tp, (double)tp + fp + fn, 1);
    m->sum_mae += abs_err / n;
    m->sum_fnr += ratio_or(fn, (double)tp + fn, 0);
    m->sum_acc += (double)(tp + tn) / n;
    m->sum_sens += ratio_or(tp, (double)tp + fn, 1);
    m->sum_spec += ratio_or(tn, (double)tn + fp, 1);
    m->pooled_tp += tp;
    m->pooled_fp += fp;
    m->pooled_fn += fn;
    return dice;
}

/* Means over the images added so far; all zero when none were. */
ps_metric_values ps_metrics_values(const ps_metrics *m)
{
    ps_metric_values v = {0};
    v.images = m->images;
    if (m->images == 0)
        return v;
    double k = 1.0 / m->images;
    v.mean_dice = m->sum_dice * k;
    v.mean_iou = m->sum_iou * k;
    v.mae = m->sum_mae * k;
    v.fnr = m->sum_fnr * k;
    v.accuracy = m->sum_acc * k;
    v.sensitivity = m->sum_sens * k;
    v.specificity = m->sum_spec * k;
    v.pooled_dice = ratio_or(2 * m->pooled_tp, 2 * m->pooled_tp + m->pooled_fp + m->pooled_fn, 1);
    return v;
}
