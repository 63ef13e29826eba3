/* Runtime pieces the GStreamer element uses: polyp regions with their traced outer boundaries,
 * and the segmenter fed an image already at the model's size. */
#include <string.h>
#include "contours.h"
#include "preprocess.h"
#include "test_util.h"

/* Mask from rows of '#' (foreground) and '.'; g_free() it. */
static uint8_t *mask_from(const char *const *rows, int *w, int *h)
{
    *h = 0;
    while (rows[*h])
        (*h)++;
    *w = (int)strlen(rows[0]);
    uint8_t *m = g_malloc0((size_t)*w * *h);
    for (int y = 0; y < *h; y++)
        for (int x = 0; x < *w; x++)
            m[y * *w + x] = rows[y][x] == '#' ? 255 : 0;
    return m;
}

static void assert_points(const ps_region *g, const int *want, int n)
{
    g_assert_cmpint(g->n_points, ==, n);
    for (int i = 0; i < 2 * n; i++)
        g_assert_cmpint(g->points[i], ==, want[i]);
}

static void test_empty_and_single(void)
{
    static const char *const rows[] = {"....", ".#..", "....", NULL};
    int w, h;
    uint8_t *m = mask_from(rows, &w, &h);
    ps_regions *r = ps_regions_new(w, h);
    g_assert_cmpint(ps_regions_find(r, m, NULL, 1), ==, 1);
    const ps_region *g = ps_regions_get(r, 0);
    g_assert_cmpint(g->area, ==, 1);
    g_assert_cmpint(g->x0, ==, 1);
    g_assert_cmpint(g->y1, ==, 1);
    static const int one[] = {1, 1};
    assert_points(g, one, 1);
    g_assert_null(ps_regions_get(r, 1));
    memset(m, 0, (size_t)w * h);
    g_assert_cmpint(ps_regions_find(r, m, NULL, 1), ==, 0);
    ps_regions_free(r);
    g_free(m);
}

static void test_rectangle_and_scores(void)
{
    static const char *const rows[] = {"........", "..#####.", "..#####.", "..#####.", "........", NULL};
    int w, h;
    uint8_t *m = mask_from(rows, &w, &h);
    float *prob = g_new(float, w * h);
    for (int i = 0; i < w * h; i++)
        prob[i] = m[i] ? 0.75f : 0.1f;
    ps_regions *r = ps_regions_new(w, h);
    g_assert_cmpint(ps_regions_find(r, m, prob, 1), ==, 1);
    const ps_region *g = ps_regions_get(r, 0);
    g_assert_cmpint(g->area, ==, 15);
    g_assert_cmpint(g->x0, ==, 2);
    g_assert_cmpint(g->y0, ==, 1);
    g_assert_cmpint(g->x1, ==, 6);
    g_assert_cmpint(g->y1, ==, 3);
    g_assert_cmpfloat_with_epsilon(g->score, 0.75, 1e-6);
    /* Corners only, counter-clockwise on screen from the top-left. */
    static const int corners[] = {2, 1, 2, 3, 6, 3, 6, 1};
    assert_points(g, corners, 4);
    g_assert_cmpint(ps_regions_labels(r)[1 * w + 2], ==, 1);
    g_assert_cmpint(ps_regions_labels(r)[0], ==, 0);
    ps_regions_free(r);
    g_free(prob);
    g_free(m);
}

static void test_min_area_clears_mask(void)
{
    static const char *const rows[] = {"#.....", "......", "..###.", "..###.", "......", "#....#", NULL};
    int w, h;
    uint8_t *m = mask_from(rows, &w, &h);
    ps_regions *r = ps_regions_new(w, h);
    g_assert_cmpint(ps_regions_find(r, m, NULL, 2), ==, 1);
    g_assert_cmpint(ps_regions_get(r, 0)->area, ==, 6);
    g_assert_cmpint(m[0], ==, 0);
    g_assert_cmpint(m[5 * w + 5], ==, 0);
    g_assert_cmpint(m[2 * w + 2], ==, 255);
    g_assert_cmpint(ps_regions_labels(r)[0], <, 0);
    ps_regions_free(r);
    g_free(m);
}

static void test_diagonal_is_one_region(void)
{
    static const char *const rows[] = {"#...", ".#..", "..#.", NULL};
    int w, h;
    uint8_t *m = mask_from(rows, &w, &h);
    ps_regions *r = ps_regions_new(w, h);
    g_assert_cmpint(ps_regions_find(r, m, NULL, 1), ==, 1);
    /* A one-pixel-wide line is walked out and back: its two ends. */
    static const int ends[] = {0, 0, 2, 2};
    assert_points(ps_regions_get(r, 0), ends, 2);
    ps_regions_free(r);
    g_free(m);
}

static void test_ring_outer_only(void)
{
    static const char *const rows[] = {".....", ".###.", ".#.#.", ".###.", ".....", NULL};
    int w, h;
    uint8_t *m = mask_from(rows, &w, &h);
    ps_regions *r = ps_regions_new(w, h);
    g_assert_cmpint(ps_regions_find(r, m, NULL, 1), ==, 1);
    static const int corners[] = {1, 1, 1, 3, 3, 3, 3, 1};
    assert_points(ps_regions_get(r, 0), corners, 4);
    g_assert_cmpint(ps_regions_get(r, 0)->area, ==, 8);
    ps_regions_free(r);
    g_free(m);
}

/* Every pixel on a polygon edge, walking the 8-direction runs between vertices. Fails when two
 * consecutive vertices are not joined by a straight horizontal, vertical or diagonal run. */
static void rasterise(const ps_region *g, uint8_t *on, int w)
{
    for (int i = 0; i < g->n_points; i++) {
        int j = (i + 1) % g->n_points;
        int x = g->points[2 * i], y = g->points[2 * i + 1];
        int dx = g->points[2 * j] - x, dy = g->points[2 * j + 1] - y;
        int n = MAX(ABS(dx), ABS(dy));
        g_assert_true(dx == 0 || dy == 0 || ABS(dx) == ABS(dy));
        for (int k = 0; k <= n; k++)
            on[(y + (n ? dy * k / n : 0)) * w + x + (n ? dx * k / n : 0)] = 1;
    }
}

/* Random blobs: each polygon runs through its own region's pixels only, and passes through
 * every pixel that touches (4-neighbour) the background connected to the outside. */
static void test_random_masks_trace_outer_border(void)
{
    const int w = 40, h = 30;
    GRand *rng = g_rand_new_with_seed(7);
    uint8_t *m = g_malloc((size_t)w * h), *outer = g_malloc((size_t)w * h), *on = g_malloc((size_t)w * h);
    int *stack = g_new(int, w * h);
    ps_regions *r = ps_regions_new(w, h);
    for (int trial = 0; trial < 200; trial++) {
        double density = g_rand_double_range(rng, 0.2, 0.7);
        for (int i = 0; i < w * h; i++)
            m[i] = g_rand_double(rng) < density ? 255 : 0;
        int n = ps_regions_find(r, m, NULL, 1);
        g_assert_cmpint(n, >, 0);
        const int32_t *labels = ps_regions_labels(r);
        /* Background 4-connected to the image border. */
        memset(outer, 0, (size_t)w * h);
        int top = 0;
        for (int i = 0; i < w * h; i++) {
            int x = i % w, y = i / w;
            if (!m[i] && (x == 0 || y == 0 || x == w - 1 || y == h - 1)) {
                outer[i] = 1;
                stack[top++] = i;
            }
        }
        while (top) {
            int p = stack[--top], x = p % w, y = p / w;
            const int nb[4][2] = {{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}};
            for (int k = 0; k < 4; k++) {
                int xx = nb[k][0], yy = nb[k][1];
                if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                    continue;
                int q = yy * w + xx;
                if (!m[q] && !outer[q]) {
                    outer[q] = 1;
                    stack[top++] = q;
                }
            }
        }
        for (int k = 0; k < n; k++) {
            const ps_region *g = ps_regions_get(r, k);
            memset(on, 0, (size_t)w * h);
            rasterise(g, on, w);
            for (int i = 0; i < w * h; i++) {
                int x = i % w, y = i / w;
                if (on[i])
                    g_assert_cmpint(labels[i], ==, k + 1);
                if (labels[i] != k + 1)
                    continue;
                gboolean border = x == 0 || y == 0 || x == w - 1 || y == h - 1 || outer[i - 1] ||
                                  outer[i + 1] || outer[i - w] || outer[i + w];
                if (border && !on[i])
                    g_error("trial %d region %d: border pixel (%d,%d) not on the polygon", trial, k, x, y);
            }
        }
    }
    ps_regions_free(r);
    g_free(stack);
    g_free(on);
    g_free(outer);
    g_free(m);
    g_rand_free(rng);
}

/* Components the plain way, for the test below: breadth-first flood fill from each unlabelled
 * foreground pixel in raster order, 8-connected; labels 1, 2, ... in that order (the
 * regions' order), then components under min_area become -1. Returns the number kept. */
static int flood_labels(const uint8_t *m, int w, int h, int min_area, int32_t *labels, int *areas)
{
    int *queue = g_new(int, w * h), n = 0;
    memset(labels, 0, (size_t)w * h * sizeof *labels);
    for (int p = 0; p < w * h; p++) {
        if (!m[p] || labels[p])
            continue;
        int head = 0, tail = 0;
        labels[p] = ++n;
        queue[tail++] = p;
        while (head < tail) {
            int q = queue[head++], x = q % w, y = q / w;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx >= 0 && yy >= 0 && xx < w && yy < h && m[yy * w + xx] && !labels[yy * w + xx]) {
                        labels[yy * w + xx] = n;
                        queue[tail++] = yy * w + xx;
                    }
                }
        }
        areas[n - 1] = tail;
    }
    int *renumber = g_new(int, n + 1), kept = 0;
    for (int k = 1; k <= n; k++) {
        renumber[k] = areas[k - 1] >= min_area ? ++kept : -1;
        if (renumber[k] > 0)
            areas[renumber[k] - 1] = areas[k - 1];
    }
    for (int p = 0; p < w * h; p++)
        labels[p] = labels[p] ? renumber[labels[p]] : 0;
    g_free(renumber);
    g_free(queue);
    return kept;
}

/* The run-based labelling against the flood fill on random masks of every density, with small
 * components dropped: the same labels, areas, boxes and scores, and the mask cleared of
 * exactly the dropped pixels. */
static void test_random_masks_match_flood_fill(void)
{
    GRand *rng = g_rand_new_with_seed(23);
    for (int round = 0; round < 300; round++) {
        const int w = g_rand_int_range(rng, 1, 70), h = g_rand_int_range(rng, 1, 50), min_area = 1 + round % 7;
        const double density = g_rand_double_range(rng, 0.05, 0.85);
        uint8_t *m = g_malloc((size_t)w * h), *before = g_malloc((size_t)w * h);
        float *prob = g_new(float, w * h);
        for (int i = 0; i < w * h; i++) {
            m[i] = g_rand_double(rng) < density ? (uint8_t)g_rand_int_range(rng, 1, 256) : 0;
            prob[i] = (float)g_rand_double(rng);
        }
        memcpy(before, m, (size_t)w * h);
        int32_t *want = g_new(int32_t, w * h);
        int *areas = g_new(int, w * h);
        const int n = flood_labels(m, w, h, min_area, want, areas);
        ps_regions *r = ps_regions_new(w, h);
        g_assert_cmpint(ps_regions_find(r, m, prob, min_area), ==, n);
        g_assert_cmpmem(ps_regions_labels(r), w * h * sizeof(int32_t), want, w * h * sizeof(int32_t));
        for (int k = 0; k < n; k++) {
            const ps_region *g = ps_regions_get(r, k);
            int x0 = w, y0 = h, x1 = -1, y1 = -1;
            double sum = 0;
            for (int p = 0; p < w * h; p++)
                if (want[p] == k + 1) {
                    x0 = MIN(x0, p % w), x1 = MAX(x1, p % w), y0 = MIN(y0, p / w), y1 = MAX(y1, p / w);
                    sum += prob[p];
                }
            g_assert_cmpint(g->area, ==, areas[k]);
            g_assert_true(g->x0 == x0 && g->y0 == y0 && g->x1 == x1 && g->y1 == y1);
            g_assert_cmpfloat_with_epsilon(g->score, sum / areas[k], 1e-6);
        }
        for (int p = 0; p < w * h; p++)
            g_assert_cmpint(m[p], ==, want[p] > 0 ? before[p] : 0);
        ps_regions_free(r);
        g_free(m), g_free(before), g_free(prob), g_free(want), g_free(areas);
    }
    g_rand_free(rng);
}

/* The element's path: the input filled row by row, in any order (as threads fill it), gives
 * ps_segmenter_run's result, whatever the previous frame left in the input. */
static void test_segmenter_fill_rows(void)
{
    ps_model *m = ps_model_new("microaunet", NULL, 0, 5, NULL);
    m->info.input_size = 128;
    ps_segmenter *s = ps_segmenter_new(m);
    int n = 128 * 128;
    uint8_t *rgb = g_malloc((size_t)n * 3);
    GRand *rng = g_rand_new_with_seed(3);
    for (int i = 0; i < n * 3; i++)
        rgb[i] = (uint8_t)g_rand_int_range(rng, 0, 256);
    float *want = g_new(float, n);
    memcpy(want, ps_segmenter_run(s, rgb, 128, 128, 128 * 3), n * sizeof(float));
    uint8_t *other = g_malloc0((size_t)n * 3);
    ps_segmenter_run(s, other, 128, 128, 128 * 3);
    g_free(other);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 64; k++) {
            const int y = pass ? 2 * k : 127 - 2 * k;
            float *planes[3];
            const float *scale, *shift;
            ps_segmenter_input_row(s, y, planes, &scale, &shift);
            ps_normalise_rgb_ref(rgb + (size_t)y * 128 * 3, 128, scale, shift, planes[0], planes[1], planes[2]);
        }
    const float *got = ps_segmenter_run_filled(s);
    g_assert_cmpmem(got, n * sizeof(float), want, n * sizeof(float));
    g_free(want);
    g_free(rgb);
    g_rand_free(rng);
    ps_segmenter_free(s);
    ps_model_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/regions/empty-and-single", test_empty_and_single);
    g_test_add_func("/regions/rectangle-and-scores", test_rectangle_and_scores);
    g_test_add_func("/regions/min-area-clears-mask", test_min_area_clears_mask);
    g_test_add_func("/regions/diagonal-is-one-region", test_diagonal_is_one_region);
    g_test_add_func("/regions/ring-outer-only", test_ring_outer_only);
    g_test_add_func("/regions/random-masks-trace-outer-border", test_random_masks_trace_outer_border);
    g_test_add_func("/regions/random-masks-match-flood-fill", test_random_masks_match_flood_fill);
    g_test_add_func("/segmenter/fill-rows", test_segmenter_fill_rows);
    return g_test_run();
}
