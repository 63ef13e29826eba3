/* Segmentation metrics against hand-computed values. */
#include <glib.h>
#include "../core/lib/metrics.h"

#define EPS 1e-6

/* Metrics of a single image. */
static ps_metric_values one(const float *prob, const uint8_t *gt, int n, float threshold)
{
    ps_metrics m;
    ps_metrics_init(&m);
    ps_metrics_add(&m, prob, gt, n, threshold);
    return ps_metrics_values(&m);
}

static void assert_values(const ps_metric_values *v, double dice, double iou, double mae, double fnr,
                          double acc, double sens, double spec, double pooled)
{
    g_assert_cmpfloat_with_epsilon(v->mean_dice, dice, EPS);
    g_assert_cmpfloat_with_epsilon(v->mean_iou, iou, EPS);
    g_assert_cmpfloat_with_epsilon(v->mae, mae, EPS);
    g_assert_cmpfloat_with_epsilon(v->fnr, fnr, EPS);
    g_assert_cmpfloat_with_epsilon(v->accuracy, acc, EPS);
    g_assert_cmpfloat_with_epsilon(v->sensitivity, sens, EPS);
    g_assert_cmpfloat_with_epsilon(v->specificity, spec, EPS);
    g_assert_cmpfloat_with_epsilon(v->pooled_dice, pooled, EPS);
}

static void test_perfect(void)
{
    const float prob[4] = {1, 1, 0, 0};
    const uint8_t gt[4] = {255, 255, 0, 0};
    ps_metric_values v = one(prob, gt, 4, 0.5f);
    g_assert_cmpint(v.images, ==, 1);
    assert_values(&v, 1, 1, 0, 0, 1, 1, 1, 1);
}

static void test_all_wrong(void)
{
    const float prob[4] = {0, 0, 1, 1};
    const uint8_t gt[4] = {255, 255, 0, 0};
    ps_metric_values v = one(prob, gt, 4, 0.5f);
    assert_values(&v, 0, 0, 1, 1, 0, 0, 0, 0);
}

/* TP=3 FN=1 FP=1 TN=3; |errors| = .1 .2 .4 .7 .7 .2 .1 0 -> MAE 0.3. */
static const float mixed_prob[8] = {0.9f, 0.8f, 0.6f, 0.3f, 0.7f, 0.2f, 0.1f, 0.0f};
static const uint8_t mixed_gt[8] = {255, 255, 255, 255, 0, 0, 0, 0};

static void test_mixed(void)
{
    ps_metric_values v = one(mixed_prob, mixed_gt, 8, 0.5f);
    assert_values(&v, 6.0 / 8, 3.0 / 5, 0.3, 0.25, 0.75, 0.75, 0.75, 6.0 / 8);
}

/* Raising the threshold to 0.65 drops the 0.6 pixel: TP=2 FN=2 FP=1 TN=3; MAE does not move. */
static void test_threshold(void)
{
    ps_metric_values v = one(mixed_prob, mixed_gt, 8, 0.65f);
    assert_values(&v, 4.0 / 7, 2.0 / 5, 0.3, 0.5, 5.0 / 8, 0.5, 0.75, 4.0 / 7);
    /* prob == threshold is a positive prediction */
    v = one(mixed_prob, mixed_gt, 8, 0.6f);
    g_assert_cmpfloat_with_epsilon(v.mean_dice, 6.0 / 8, EPS);
}

/* gt is a 0/255 mask, but anything >= 128 counts as polyp. */
static void test_gt_threshold(void)
{
    const float prob[2] = {1, 1};
    const uint8_t gt[2] = {128, 127};
    ps_metric_values v = one(prob, gt, 2, 0.5f);
    /* TP=1 FP=1: dice 2/3; MAE = (|1-128/255| + |1-127/255|) / 2 */
    g_assert_cmpfloat_with_epsilon(v.mean_dice, 2.0 / 3, EPS);
    g_assert_cmpfloat_with_epsilon(v.mae, (127.0 / 255 + 128.0 / 255) / 2, EPS);
}

static void test_empty_masks(void)
{
    /* empty ground truth, empty prediction: perfect by convention */
    const float low[4] = {0.2f, 0.2f, 0.2f, 0.2f};
    const uint8_t none[4] = {0, 0, 0, 0};
    ps_metric_values v = one(low, none, 4, 0.5f);
    assert_values(&v, 1, 1, 0.2, 0, 1, 1, 1, 1);

    /* empty ground truth, one false positive: nothing to miss (FNR 0, sensitivity 1) */
    const float one_fp[4] = {0.9f, 0.1f, 0.1f, 0.1f};
    v = one(one_fp, none, 4, 0.5f);
    assert_values(&v, 0, 0, 0.3, 0, 0.75, 1, 0.75, 0);

    /* all-polyp ground truth: no negatives, so specificity 1 */
    const float half[4] = {1, 1, 0, 0};
    const uint8_t all[4] = {255, 255, 255, 255};
    v = one(half, all, 4, 0.5f);
    assert_values(&v, 4.0 / 6, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 4.0 / 6);
}

/* Mean Dice weighs images equally; pooled Dice weighs pixels. */
static void test_pooled_vs_mean(void)
{
    ps_metrics m;
    ps_metrics_init(&m);
    const float pa[4] = {1, 0, 0, 0};
    const uint8_t ga[4] = {255, 0, 0, 0}; /* perfect: TP=1 */
    const float pb[4] = {1, 0, 0, 0};
    const uint8_t gb[4] = {255, 255, 255, 255}; /* TP=1 FN=3: dice 2/5 */
    ps_metrics_add(&m, pa, ga, 4, 0.5f);
    ps_metrics_add(&m, pb, gb, 4, 0.5f);
    ps_metric_values v = ps_metrics_values(&m);
    g_assert_cmpint(v.images, ==, 2);
    /* per image: (dice, iou, mae, fnr, acc, sens, spec) = (1,1,0,0,1,1,1) and (.4,.25,.75,.75,.25,.25,1) */
    assert_values(&v, 0.7, 0.625, 0.375, 0.375, 0.625, 0.625, 1, 4.0 / 7);
    g_assert_cmpfloat(v.pooled_dice, <, v.mean_dice);
}

static void test_no_images(void)
{
    ps_metrics m;
    ps_metrics_init(&m);
    ps_metric_values v = ps_metrics_values(&m);
    g_assert_cmpint(v.images, ==, 0);
    assert_values(&v, 0, 0, 0, 0, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/metrics/perfect", test_perfect);
    g_test_add_func("/metrics/all-wrong", test_all_wrong);
    g_test_add_func("/metrics/mixed", test_mixed);
    g_test_add_func("/metrics/threshold", test_threshold);
    g_test_add_func("/metrics/gt-threshold", test_gt_threshold);
    g_test_add_func("/metrics/empty-masks", test_empty_masks);
    g_test_add_func("/metrics/pooled-vs-mean", test_pooled_vs_mean);
    g_test_add_func("/metrics/no-images", test_no_images);
    return g_test_run();
}
