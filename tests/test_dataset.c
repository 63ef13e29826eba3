/* Dataset listing and the augmenting loader, on a tiny generated dataset and on the real data. */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "../core/train/dataset.h"

#define S 32 /* loader output side; the generated images are small enough not to be shrunk */
static const ps_loader_config base_cfg = {
    .size = S, .batch = 2, .seed = 42, .augment = 1, .shuffle = 1, .threads = 2,
    .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f},
};

/* Generated pairs: deliberately not in name order; sizes vary, shorter side <= 1.25 * S. */
static const char *const gen_names[] = {"d.png", "b.png", "e.png", "a.png", "c.png"};
#define GEN_N 5

static char *tmp_root;  /* removed at exit */
static char *gen_dir;   /* tmp_root/gen: the generated dataset */

static ps_image *gen_image(int k)
{
    int w = 40 + 4 * k, h = 30 + 2 * k;
    ps_image *im = ps_image_new(w, h, 3);
    GRand *r = g_rand_new_with_seed(k);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->data + (y * w + x) * 3;
            p[0] = (uint8_t)(x * 6 + k * 40);
            p[1] = (uint8_t)(y * 8 + k * 13);
            p[2] = (uint8_t)g_rand_int_range(r, 0, 256);
        }
    g_rand_free(r);
    return im;
}

/* An off-centre ellipse, so flips and rotations change the mask. */
static ps_image *gen_mask(int k, int w, int h)
{
    ps_image *m = ps_image_new(w, h, 1);
    double cx = w * 0.35, cy = h * 0.4, rx = w * (0.2 + 0.02 * k), ry = h * 0.25;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = (x - cx) / rx, dy = (y - cy) / ry;
            m->data[y * w + x] = dx * dx + dy * dy <= 1 ? 255 : 0;
        }
    return m;
}

static void save_png(const char *dir, const char *sub, const char *name, const ps_image *im)
{
    char *path = g_build_filename(dir, sub, name, NULL);
    GError *err = NULL;
    if (!ps_image_save_png(path, im, &err))
        g_error("%s", err->message);
    g_free(path);
}

static char *make_dataset_dir(const char *name)
{
    char *dir = g_build_filename(tmp_root, name, NULL);
    char *images = g_build_filename(dir, "images", NULL), *masks = g_build_filename(dir, "masks", NULL);
    g_mkdir_with_parents(images, 0755);
    g_mkdir_with_parents(masks, 0755);
    g_free(images);
    g_free(masks);
    return dir;
}

static void write_file(const char *path, const char *text)
{
    GError *err = NULL;
    if (!g_file_set_contents(path, text, -1, &err))
        g_error("%s", err->message);
}

static void make_generated_dataset(void)
{
    gen_dir = make_dataset_dir("gen");
    for (int k = 0; k < GEN_N; k++) {
        ps_image *im = gen_image(k), *m = gen_mask(k, im->w, im->h);
        save_png(gen_dir, "images", gen_names[k], im);
        save_png(gen_dir, "masks", gen_names[k], m);
        ps_image_free(im);
        ps_image_free(m);
    }
}

static ps_dataset *open_ok(const char *dir, const char *split)
{
    GError *err = NULL;
    ps_dataset *ds = ps_dataset_open(dir, split, &err);
    g_assert_no_error(err);
    g_assert_nonnull(ds);
    return ds;
}

static void assert_pair(const ps_dataset *ds, int i, const char *name)
{
    char *base = g_path_get_basename(ds->image_paths[i]);
    g_assert_cmpstr(base, ==, name);
    g_free(base);
    char *want = g_build_filename(gen_dir, "masks", name, NULL);
    g_assert_cmpstr(ds->mask_paths[i], ==, want);
    g_free(want);
}

/* ------------------------------------------------------------------------------------------ */

static void test_list_sorted(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    g_assert_cmpint(ds->n, ==, GEN_N);
    const char *sorted[] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    for (int i = 0; i < GEN_N; i++)
        assert_pair(ds, i, sorted[i]);
    ps_dataset_free(ds);
}

static void test_list_split(void)
{
    char *split = g_build_filename(tmp_root, "split.txt", NULL);
    write_file(split, "c.png\n\na.png\r\n  \ne.png");
    ps_dataset *ds = open_ok(gen_dir, split);
    g_assert_cmpint(ds->n, ==, 3);
    assert_pair(ds, 0, "c.png");
    assert_pair(ds, 1, "a.png");
    assert_pair(ds, 2, "e.png");
    ps_dataset_free(ds);
    g_free(split);
}

/* --add-data: a split of one folder followed by the whole of another, in that order. */
static void test_append(void)
{
    char *split = g_build_filename(tmp_root, "split-append.txt", NULL);
    write_file(split, "d.png\nb.png\n");
    ps_dataset *ds = open_ok(gen_dir, split), *more = open_ok(gen_dir, NULL);
    ps_dataset_append(ds, more);
    g_assert_cmpint(ds->n, ==, 2 + GEN_N);
    const char *want[] = {"d.png", "b.png", "a.png", "b.png", "c.png", "d.png", "e.png"};
    for (int i = 0; i < ds->n; i++)
        assert_pair(ds, i, want[i]);
    g_assert_null(ds->image_paths[ds->n]); /* still NULL-terminated for ps_dataset_free */
    ps_dataset_free(ds);
    g_free(split);
}

static void assert_open_fails(const char *dir, const char *split, const char *needle)
{
    GError *err = NULL;
    ps_dataset *ds = ps_dataset_open(dir, split, &err);
    g_assert_null(ds);
    g_assert_nonnull(err);
    g_test_message("expected error: %s", err->message);
    g_assert_nonnull(strstr(err->message, needle));
    g_error_free(err);
}

static void test_missing_files(void)
{
    char *dir = make_dataset_dir("missing");
    ps_image *im = gen_image(0), *m = gen_mask(0, im->w, im->h);
    save_png(dir, "images", "x.png", im);
    save_png(dir, "masks", "x.png", m);
    save_png(dir, "images", "y.png", im);
    assert_open_fails(dir, NULL, "masks/y.png");

    char *split = g_build_filename(tmp_root, "split-missing.txt", NULL);
    write_file(split, "x.png\nz.png\n");
    assert_open_fails(dir, split, "images/z.png");
    assert_open_fails(dir, "/nonexistent/split.txt", "split.txt");
    ps_image_free(im);
    ps_image_free(m);
    g_free(split);
    g_free(dir);
}

static void test_empty(void)
{
    char *dir = make_dataset_dir("empty");
    assert_open_fails(dir, NULL, "empty");
    char *split = g_build_filename(tmp_root, "split-empty.txt", NULL);
    write_file(split, "\n\n");
    assert_open_fails(gen_dir, split, "empty");
    char *nodir = g_build_filename(tmp_root, "nothing-here", NULL);
    assert_open_fails(nodir, NULL, "nothing-here");
    g_free(nodir);
    g_free(split);
    g_free(dir);
}

static void test_data_root(void)
{
    char *saved = g_strdup(g_getenv("POLYPSEG_DATA"));
    char *repo = g_build_filename(tmp_root, "ws", "repo", NULL);
    char *data = g_build_filename(tmp_root, "ws", "shared", "datasets", NULL);
    g_mkdir_with_parents(repo, 0755);

    g_unsetenv("POLYPSEG_DATA");
    g_assert_null(ps_data_root(repo)); /* not there yet */
    g_mkdir_with_parents(data, 0755);
    char *root = ps_data_root(repo);
    char *want = realpath(data, NULL);
    g_assert_cmpstr(root, ==, want);
    g_free(root);

    g_setenv("POLYPSEG_DATA", gen_dir, TRUE);
    root = ps_data_root(repo);
    g_assert_cmpstr(root, ==, gen_dir);
    g_free(root);
    g_setenv("POLYPSEG_DATA", "/nonexistent/data", TRUE); /* not a folder: falls back */
    root = ps_data_root(repo);
    g_assert_cmpstr(root, ==, want);
    g_free(root);

    if (saved)
        g_setenv("POLYPSEG_DATA", saved, TRUE);
    else
        g_unsetenv("POLYPSEG_DATA");
    free(want);
    g_free(saved);
    g_free(repo);
    g_free(data);
}

/* ------------------------------------------------------------------------------------------ */

static ps_loader *loader_ok(const ps_dataset *ds, const ps_loader_config *cfg)
{
    GError *err = NULL;
    ps_loader *l = ps_loader_new(ds, cfg, &err);
    g_assert_no_error(err);
    g_assert_nonnull(l);
    return l;
}

/* Every value of one epoch (images then masks of each batch), for comparisons. */
static GArray *run_epoch(ps_loader *l, int epoch)
{
    GArray *all = g_array_new(FALSE, FALSE, sizeof(float));
    ps_tensor *images = ps_tensor_new(base_cfg.batch, 3, S, S), *masks = ps_tensor_new(base_cfg.batch, 1, S, S);
    ps_loader_start_epoch(l, epoch);
    while (ps_loader_next(l, images, masks)) {
        g_array_append_vals(all, images->data, ps_numel(images));
        g_array_append_vals(all, masks->data, ps_numel(masks));
    }
    ps_tensor_free(images);
    ps_tensor_free(masks);
    return all;
}

static gboolean same(const GArray *a, const GArray *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len * sizeof(float)) == 0;
}

static void test_loader_shapes(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader *l = loader_ok(ds, &base_cfg);
    g_assert_cmpint(ps_loader_batches_per_epoch(l), ==, GEN_N / 2); /* last one dropped */
    ps_tensor *images = ps_tensor_new(2, 3, S, S), *masks = ps_tensor_new(2, 1, S, S);
    g_assert_false(ps_loader_next(l, images, masks)); /* no epoch started */
    ps_loader_start_epoch(l, 0);
    int batches = 0;
    double lo[3], hi[3];
    for (int c = 0; c < 3; c++) {
        lo[c] = (0 - base_cfg.mean[c]) / base_cfg.std[c] - 1e-5;
        hi[c] = (1 - base_cfg.mean[c]) / base_cfg.std[c] + 1e-5;
    }
    while (ps_loader_next(l, images, masks)) {
        batches++;
        g_assert_cmpint(images->n, ==, 2);
        g_assert_cmpint(masks->n, ==, 2);
        for (int b = 0; b < 2; b++) {
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < S * S; p++) {
                    float v = images->data[(b * 3 + c) * S * S + p];
                    g_assert_cmpfloat(v, >=, lo[c]);
                    g_assert_cmpfloat(v, <=, hi[c]);
                }
            int ones = 0;
            for (int p = 0; p < S * S; p++) {
                float v = masks->data[b * S * S + p];
                g_assert_true(v == 0.0f || v == 1.0f);
                ones += v == 1.0f;
            }
            g_assert_cmpint(ones, >, 0); /* every crop keeps part of the ellipse */
        }
    }
    g_assert_cmpint(batches, ==, 2);
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(l);
    ps_dataset_free(ds);
}

/* Without shuffling every sample is seen: the last batch is short and says so in ->n. */
/* crop scale 2: the window is twice the image, so the image fills a quarter of each sample and
 * the rest is black (grey after colour jitter), with no mask there. */
static void test_loader_zoom_out(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.crop_min = cfg.crop_max = 2.0f;
    ps_loader *l = loader_ok(ds, &cfg);
    ps_tensor *images = ps_tensor_new(2, 3, S, S), *masks = ps_tensor_new(2, 1, S, S);
    ps_loader_start_epoch(l, 0);
    while (ps_loader_next(l, images, masks))
        for (int b = 0; b < 2; b++) {
            int grey = 0, ones = 0;
            for (int p = 0; p < S * S; p++) {
                float rgb[3];
                for (int c = 0; c < 3; c++)
                    rgb[c] = images->data[(b * 3 + c) * S * S + p] * cfg.std[c] + cfg.mean[c];
                grey += fabsf(rgb[0] - rgb[1]) < 1e-3f && fabsf(rgb[1] - rgb[2]) < 1e-3f;
                ones += masks->data[b * S * S + p] == 1.0f;
            }
            g_test_message("zoomed out: %d of %d pixels grey, %d mask pixels", grey, S * S, ones);
            g_assert_cmpint(grey, >=, S * S * 6 / 10);
            g_assert_cmpint(grey, <=, S * S * 8 / 10);
            g_assert_cmpint(ones, >, 0);
            g_assert_cmpint(ones, <, S * S / 4);
        }
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(l);
    cfg.crop_min = 1.5f, cfg.crop_max = 1.0f;
    GError *err = NULL;
    g_assert_null(ps_loader_new(ds, &cfg, &err));
    g_assert_nonnull(strstr(err->message, "crop scales"));
    g_error_free(err);
    ps_dataset_free(ds);
}

/* Every sample of epoch 0 (images denormalised to 0..1, masks), batch by batch. */
static void epoch_samples(const ps_dataset *ds, const ps_loader_config *cfg, float *images, float *masks, int *count)
{
    ps_loader *l = loader_ok(ds, cfg);
    ps_tensor *im = ps_tensor_new(cfg->batch, 3, S, S), *mk = ps_tensor_new(cfg->batch, 1, S, S);
    ps_loader_start_epoch(l, 0);
    *count = 0;
    while (ps_loader_next(l, im, mk)) {
        for (int b = 0; b < im->n; b++, (*count)++) {
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < S * S; p++)
                    images[((size_t)*count * 3 + c) * S * S + p] =
                        im->data[(b * 3 + c) * S * S + p] * cfg->std[c] + cfg->mean[c];
            memcpy(masks + (size_t)*count * S * S, mk->data + b * S * S, S * S * sizeof(float));
        }
    }
    ps_tensor_free(im), ps_tensor_free(mk);
    ps_loader_free(l);
}

/* A dataset of the generated shapes painted red where the mask is and green elsewhere, so any
 * image pixel says whether it should be under the mask. */
static char *make_paired_dataset(const char *name)
{
    char *dir = make_dataset_dir(name);
    for (int k = 0; k < GEN_N; k++) {
        ps_image *im = gen_image(k), *m = gen_mask(k, im->w, im->h);
        for (int p = 0; p < im->w * im->h; p++) {
            im->data[p * 3] = m->data[p] ? 230 : 20;
            im->data[p * 3 + 1] = m->data[p] ? 60 : 150;
            im->data[p * 3 + 2] = 90;
        }
        save_png(dir, "images", gen_names[k], im);
        save_png(dir, "masks", gen_names[k], m);
        ps_image_free(im), ps_image_free(m);
    }
    return dir;
}

/* Pixels where the red image and the mask disagree (the bilinear rims only, if they go together). */
static int red_mask_disagreement(const float *image, const float *mask)
{
    const float *r = image, *g = image + S * S;
    int disagree = 0;
    for (int p = 0; p < S * S; p++)
        disagree += (mask[p] == 1.0f) != (r[p] > g[p] + 0.05f);
    return disagree;
}

/* --copy-paste: the pasted polyp comes with its mask (red stays under the mask), the sample's own
 * mask is kept (the union), no other draw changes, and p is the share of samples pasted into. */
static void test_loader_copy_paste(void)
{
    char *dir = make_paired_dataset("copy-paste");
    ps_dataset *ds = open_ok(dir, NULL);
    float *img = g_new(float, GEN_N * 3 * S * S), *msk = g_new(float, GEN_N * S * S);
    float *img0 = g_new(float, GEN_N * 3 * S * S), *msk0 = g_new(float, GEN_N * S * S);
    int pasted_always = 0, pasted_half = 0, samples = 0;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        ps_loader_config cfg = base_cfg;
        cfg.seed = seed;
        int n0, n;
        epoch_samples(ds, &cfg, img0, msk0, &n0);
        for (int half = 0; half < 2; half++) {
            cfg.copy_paste = half ? 0.5f : 1.0f;
            epoch_samples(ds, &cfg, img, msk, &n);
            g_assert_cmpint(n, ==, n0);
            for (int i = 0; i < n; i++) {
                const float *m = msk + (size_t)i * S * S, *m0 = msk0 + (size_t)i * S * S;
                int added = 0;
                for (int p = 0; p < S * S; p++) {
                    g_assert_true(m[p] == 1.0f || m0[p] == 0.0f); /* the sample's own polyp stays */
                    added += m[p] == 1.0f && m0[p] == 0.0f;
                }
                g_assert_cmpint(red_mask_disagreement(img + (size_t)i * 3 * S * S, m), <=, S * S / 20);
                *(half ? &pasted_half : &pasted_always) += added > 0;
            }
        }
        samples += n0;
    }
    g_test_message("pasted into %d of %d samples at p 1, %d at p 0.5", pasted_always, samples, pasted_half);
    g_assert_cmpint(pasted_always, >=, samples * 9 / 10); /* a donor's polyp may land on the sample's own */
    g_assert_cmpint(pasted_half, >=, samples / 4);
    g_assert_cmpint(pasted_half, <=, samples * 3 / 4);

    ps_loader_config cfg = base_cfg;
    cfg.copy_paste = 1.5f;
    GError *err = NULL;
    g_assert_null(ps_loader_new(ds, &cfg, &err));
    g_assert_nonnull(strstr(err->message, "copy-paste"));
    g_error_free(err);
    ps_dataset_free(ds);
    g_free(img), g_free(msk), g_free(img0), g_free(msk0), g_free(dir);
}

/* --rotate: image and mask turn together (a red polyp on green stays under its mask), the corners
 * go black, and nothing else changes; --hue: the tint changes, r + g + b and the mask do not. */
static void test_loader_rotate_and_hue(void)
{
    char *dir = make_paired_dataset("paired");
    ps_dataset *ds = open_ok(dir, NULL);
    float *img = g_new(float, GEN_N * 3 * S * S), *msk = g_new(float, GEN_N * S * S);
    float *img0 = g_new(float, GEN_N * 3 * S * S), *msk0 = g_new(float, GEN_N * S * S);
    ps_loader_config cfg = base_cfg;
    int n, n0, turned = 0, black_corners = 0;
    epoch_samples(ds, &cfg, img0, msk0, &n0);
    cfg.rotate_max = 40;
    epoch_samples(ds, &cfg, img, msk, &n);
    g_assert_cmpint(n, ==, n0);
    for (int i = 0; i < n; i++) {
        const float *r = img + (size_t)i * 3 * S * S, *g = r + S * S, *m = msk + (size_t)i * S * S;
        int disagree = red_mask_disagreement(r, m), polyp = 0;
        for (int p = 0; p < S * S; p++)
            polyp += m[p] == 1.0f;
        g_test_message("sample %d: %d polyp pixels, %d where image and mask disagree", i, polyp, disagree);
        g_assert_cmpint(polyp, >, 0);
        g_assert_cmpint(disagree, <=, S * S / 20); /* the bilinear rim of the polyp and of the corners */
        turned += memcmp(m, msk0 + (size_t)i * S * S, S * S * sizeof(float)) != 0; /* a small turn may keep it */
        g_assert_true(memcmp(r, img0 + (size_t)i * 3 * S * S, 3 * S * S * sizeof(float)) != 0);
        black_corners += fabsf(r[0] - g[0]) < 1e-4f && fabsf(r[S * S - 1] - g[S * S - 1]) < 1e-4f;
        g_assert_cmpfloat(fabsf(img0[(size_t)i * 3 * S * S] - img0[((size_t)i * 3 + 1) * S * S]), >, 0.05f);
    }
    g_assert_cmpint(turned, >=, n / 2);
    g_assert_cmpint(black_corners, >=, 1);

    /* hue, on the generated images: same masks; same r + g + b wherever no channel clipped */
    ps_dataset *gen = open_ok(gen_dir, NULL);
    cfg = base_cfg;
    epoch_samples(gen, &cfg, img0, msk0, &n0);
    cfg.hue_max = 90;
    epoch_samples(gen, &cfg, img, msk, &n);
    g_assert_true(memcmp(msk, msk0, (size_t)n * S * S * sizeof(float)) == 0);
    int compared = 0, tinted = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < S * S; p++) {
            const float *a = img + (size_t)i * 3 * S * S + p, *b = img0 + (size_t)i * 3 * S * S + p;
            int inside = 1;
            for (int c = 0; c < 3; c++) {
                inside &= a[c * S * S] > 0.5f / 255 && a[c * S * S] < 254.5f / 255;
                tinted += fabsf(a[c * S * S] - b[c * S * S]) > 10.0f / 255;
            }
            if (!inside)
                continue;
            compared++;
            g_assert_cmpfloat_with_epsilon(a[0] + a[S * S] + a[2 * S * S], b[0] + b[S * S] + b[2 * S * S], 1e-4);
        }
    g_assert_cmpint(compared, >, n * S * S / 2);
    g_assert_cmpint(tinted, >, n * S * S / 4);

    GError *err = NULL;
    cfg.hue_max = 181;
    g_assert_null(ps_loader_new(gen, &cfg, &err));
    g_assert_nonnull(strstr(err->message, "0..180 degrees"));
    g_error_free(err);
    ps_dataset_free(ds), ps_dataset_free(gen);
    g_free(img), g_free(msk), g_free(img0), g_free(msk0), g_free(dir);
}

static void test_loader_tail(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.shuffle = 0;
    ps_loader *l = loader_ok(ds, &cfg);
    g_assert_cmpint(ps_loader_batches_per_epoch(l), ==, 3);
    ps_tensor *images = ps_tensor_new(2, 3, S, S), *masks = ps_tensor_new(2, 1, S, S);
    for (int epoch = 0; epoch < 2; epoch++) {
        ps_loader_start_epoch(l, epoch);
        int sizes[3] = {0}, batches = 0;
        while (ps_loader_next(l, images, masks)) {
            g_assert_cmpint(masks->n, ==, images->n);
            sizes[batches++] = images->n;
        }
        g_assert_cmpint(batches, ==, 3);
        g_assert_cmpint(sizes[0], ==, 2);
        g_assert_cmpint(sizes[1], ==, 2);
        g_assert_cmpint(sizes[2], ==, 1);
    }
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(l);
    ps_dataset_free(ds);
}

/* (data: the copy-paste probability, whose donors and places must repeat too) */
static void test_loader_determinism(gconstpointer copy_paste)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.copy_paste = *(const float *)copy_paste;
    ps_loader_config one_thread = cfg, three_threads = cfg;
    one_thread.threads = 1;
    three_threads.threads = 3;
    ps_loader *a = loader_ok(ds, &one_thread), *b = loader_ok(ds, &three_threads);
    GArray *a1 = run_epoch(a, 1), *b1 = run_epoch(b, 1), *a2 = run_epoch(a, 2);
    g_assert_true(same(a1, b1));  /* same seed and epoch, whatever the threads */
    g_assert_false(same(a1, a2)); /* another epoch, other batches */

    ps_loader_config other_seed = cfg;
    other_seed.seed = 43;
    ps_loader *c = loader_ok(ds, &other_seed);
    GArray *c1 = run_epoch(c, 1);
    g_assert_false(same(a1, c1));
    g_array_unref(a1);
    g_array_unref(b1);
    g_array_unref(a2);
    g_array_unref(c1);
    ps_loader_free(a);
    ps_loader_free(b);
    ps_loader_free(c);
    ps_dataset_free(ds);
}

/* A run resumed at epoch 3 sees what an uninterrupted run sees, even if the latter abandoned an
 * epoch half-way. */
static void test_loader_resume(gconstpointer copy_paste)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.copy_paste = *(const float *)copy_paste;
    ps_loader *run = loader_ok(ds, &cfg);
    GArray *e0 = run_epoch(run, 0);
    ps_tensor *images = ps_tensor_new(2, 3, S, S), *masks = ps_tensor_new(2, 1, S, S);
    ps_loader_start_epoch(run, 1);
    g_assert_true(ps_loader_next(run, images, masks)); /* the next batch is now in preparation */
    GArray *e2 = run_epoch(run, 2), *e3 = run_epoch(run, 3);

    ps_loader *resumed = loader_ok(ds, &cfg);
    GArray *r3 = run_epoch(resumed, 3);
    g_assert_true(same(e3, r3));
    g_assert_false(same(e2, e3));
    g_assert_false(same(e0, e3));
    g_array_unref(e0);
    g_array_unref(e2);
    g_array_unref(e3);
    g_array_unref(r3);
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(run);
    ps_loader_free(resumed);
    ps_dataset_free(ds);
}

/* Without augmentation a sample is the whole image resized to S x S and normalised, exactly like
 * inference pre-processing. */
static void test_loader_plain(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.augment = 0;
    cfg.shuffle = 0;
    cfg.batch = GEN_N;
    ps_loader *l = loader_ok(ds, &cfg);
    ps_tensor *images = ps_tensor_new(GEN_N, 3, S, S), *masks = ps_tensor_new(GEN_N, 1, S, S);
    ps_loader_start_epoch(l, 0);
    g_assert_true(ps_loader_next(l, images, masks));
    g_assert_false(ps_loader_next(l, images, masks));

    uint8_t img[S * S * 3], msk[S * S];
    for (int i = 0; i < GEN_N; i++) {
        GError *err = NULL;
        ps_image *im = ps_image_load_rgb(ds->image_paths[i], &err);
        ps_image *m = ps_image_load_mask(ds->mask_paths[i], &err);
        g_assert_no_error(err);
        ps_resize_bilinear_u8(im->data, im->w, im->h, im->w * 3, 3, img, S, S, S * 3);
        ps_resize_bilinear_u8(m->data, m->w, m->h, m->w, 1, msk, S, S, S);
        for (int p = 0; p < S * S; p++) {
            for (int c = 0; c < 3; c++) {
                float want = (img[p * 3 + c] / 255.0f - cfg.mean[c]) / cfg.std[c];
                g_assert_cmpfloat(images->data[(i * 3 + c) * S * S + p], ==, want);
            }
            g_assert_cmpfloat(masks->data[i * S * S + p], ==, msk[p] >= 128 ? 1.0f : 0.0f);
        }
        ps_image_free(im);
        ps_image_free(m);
    }
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(l);
    ps_dataset_free(ds);
}

/* Multi-scale: each batch comes at one of the sides, and is exactly the batch a loader with only
 * that side makes (same cache, same draws): the side changes nothing else. */
static void test_loader_multi_scale(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config mixed = base_cfg, small = base_cfg;
    mixed.n_sizes = 2, mixed.sizes[0] = 16, mixed.sizes[1] = S;
    small.n_sizes = 1, small.sizes[0] = 16;
    ps_loader *lm = loader_ok(ds, &mixed), *ls = loader_ok(ds, &small), *lp = loader_ok(ds, &base_cfg);
    g_assert_cmpint(ps_loader_max_side(lm), ==, S);
    g_assert_cmpint(ps_loader_max_side(ls), ==, S); /* `size` still sets the cache */
    ps_tensor *im[3], *mk[3];
    for (int k = 0; k < 3; k++)
        im[k] = ps_tensor_new(2, 3, S, S), mk[k] = ps_tensor_new(2, 1, S, S);
    int seen[2] = {0, 0};
    for (int epoch = 0; epoch < 6; epoch++) {
        ps_loader_start_epoch(lm, epoch), ps_loader_start_epoch(ls, epoch), ps_loader_start_epoch(lp, epoch);
        while (ps_loader_next(lm, im[0], mk[0])) {
            g_assert_true(ps_loader_next(ls, im[1], mk[1]));
            g_assert_true(ps_loader_next(lp, im[2], mk[2]));
            g_assert_cmpint(im[1]->w, ==, 16);
            g_assert_cmpint(im[2]->w, ==, S);
            const int side = im[0]->w, k = side == 16 ? 1 : 2;
            g_assert_true(side == 16 || side == S);
            g_assert_true(im[0]->h == side && mk[0]->h == side && mk[0]->w == side);
            seen[k - 1]++;
            g_assert_cmpmem(im[0]->data, ps_numel(im[0]) * sizeof(float), im[k]->data, ps_numel(im[k]) * sizeof(float));
            g_assert_cmpmem(mk[0]->data, ps_numel(mk[0]) * sizeof(float), mk[k]->data, ps_numel(mk[k]) * sizeof(float));
        }
        g_assert_false(ps_loader_next(ls, im[1], mk[1]));
    }
    g_assert_cmpint(seen[0], >, 0); /* both sides drawn */
    g_assert_cmpint(seen[1], >, 0);
    for (int k = 0; k < 3; k++)
        ps_tensor_free(im[k]), ps_tensor_free(mk[k]);
    ps_loader_free(lm), ps_loader_free(ls), ps_loader_free(lp);

    GError *err = NULL;
    ps_loader_config bad = base_cfg;
    bad.n_sizes = 1, bad.sizes[0] = 0;
    g_assert_null(ps_loader_new(ds, &bad, &err));
    g_assert_nonnull(strstr(err->message, "sizes"));
    g_clear_error(&err);
    bad.n_sizes = PS_LOADER_MAX_SIZES + 1;
    g_assert_null(ps_loader_new(ds, &bad, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    ps_dataset_free(ds);
}

/* Freeing while the next batch is being prepared, or before any epoch, is clean. */
static void test_loader_free_mid_epoch(void)
{
    ps_dataset *ds = open_ok(gen_dir, NULL);
    ps_loader_config cfg = base_cfg;
    cfg.batch = 1;
    ps_loader *idle = loader_ok(ds, &cfg), *busy = loader_ok(ds, &cfg);
    ps_tensor *images = ps_tensor_new(1, 3, S, S), *masks = ps_tensor_new(1, 1, S, S);
    ps_loader_start_epoch(busy, 0);
    g_assert_true(ps_loader_next(busy, images, masks));
    ps_loader_free(busy);
    ps_loader_free(idle);
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_dataset_free(ds);
}

static void test_loader_errors(void)
{
    char *dir = make_dataset_dir("broken");
    ps_image *im = gen_image(0), *m = gen_mask(0, im->w, im->h);
    save_png(dir, "images", "good.png", im);
    save_png(dir, "masks", "good.png", m);
    save_png(dir, "masks", "bad.png", m);
    char *bad = g_build_filename(dir, "images", "bad.png", NULL);
    write_file(bad, "not an image");
    ps_dataset *ds = open_ok(dir, NULL);
    GError *err = NULL;
    g_assert_null(ps_loader_new(ds, &base_cfg, &err));
    g_assert_nonnull(err);
    g_test_message("expected error: %s", err->message);
    g_assert_nonnull(strstr(err->message, "bad.png"));
    g_clear_error(&err);

    ps_loader_config big_batch = base_cfg;
    big_batch.batch = 3; /* more than the 2 samples: a shuffled epoch would have no batch */
    g_assert_null(ps_loader_new(ds, &big_batch, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    ps_dataset_free(ds);
    ps_image_free(im);
    ps_image_free(m);
    g_free(bad);
    g_free(dir);
}

/* ------------------------------------------------------------------------------------------ */

static void test_real_data(void)
{
    char *root = tu_data_root_or_skip();
    if (!root)
        return;
    char *kvasir = g_build_filename(root, "kvasir-seg", "val", NULL);
    char *cvc = g_build_filename(root, "cvc-clinicdb", NULL);
    char *split = g_build_filename(cvc, "splits", "test.txt", NULL);
    ps_dataset *kv = open_ok(kvasir, NULL), *cv = open_ok(cvc, split);
    g_assert_cmpint(kv->n, ==, 200);
    g_assert_cmpint(cv->n, ==, 96);
    for (int d = 0; d < 2; d++) {
        const ps_dataset *ds = d ? cv : kv;
        GError *err = NULL;
        ps_image *im = ps_image_load_rgb(ds->image_paths[0], &err);
        g_assert_no_error(err);
        ps_image *m = ps_image_load_mask(ds->mask_paths[0], &err);
        g_assert_no_error(err);
        g_assert_cmpint(im->c, ==, 3);
        g_assert_cmpint(m->c, ==, 1);
        g_assert_cmpint(m->w, ==, im->w);
        g_assert_cmpint(m->h, ==, im->h);
        g_test_message("%s: %dx%d", ds->image_paths[0], im->w, im->h);
        ps_image_free(im);
        ps_image_free(m);
    }
    ps_dataset_free(kv);
    ps_dataset_free(cv);
    g_free(kvasir);
    g_free(cvc);
    g_free(split);
    g_free(root);
}

/* The loader on a few full-size Kvasir images (decoding, shrinking), with its throughput. */
static void test_real_loader(void)
{
    char *root = tu_data_root_or_skip();
    if (!root)
        return;
    char *kvasir = g_build_filename(root, "kvasir-seg", "val", NULL);
    ps_dataset *all = open_ok(kvasir, NULL);
    char *split = g_build_filename(tmp_root, "kvasir-8.txt", NULL);
    GString *names = g_string_new(NULL);
    for (int i = 0; i < 8; i++) {
        char *base = g_path_get_basename(all->image_paths[i]);
        g_string_append_printf(names, "%s\n", base);
        g_free(base);
    }
    write_file(split, names->str);
    ps_dataset *ds = open_ok(kvasir, split);
    ps_loader_config cfg = base_cfg;
    cfg.size = 256;
    cfg.batch = 8;
    cfg.threads = 1;
    ps_loader *l = loader_ok(ds, &cfg);
    ps_tensor *images = ps_tensor_new(8, 3, 256, 256), *masks = ps_tensor_new(8, 1, 256, 256);
    gint64 t0 = g_get_monotonic_time();
    int batches = 0;
    for (int epoch = 0; epoch < 10; epoch++) {
        ps_loader_start_epoch(l, epoch);
        while (ps_loader_next(l, images, masks))
            batches++;
    }
    double s = (g_get_monotonic_time() - t0) / 1e6;
    g_assert_cmpint(batches, ==, 10);
    g_test_message("8x256x256 augmented batches, 1 worker: %.1f batches/s", batches / s);
    double ones = 0;
    for (size_t p = 0; p < ps_numel(masks); p++)
        ones += masks->data[p];
    g_assert_cmpfloat(ones, >, 0); /* every image has a polyp */
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_loader_free(l);
    ps_dataset_free(ds);
    ps_dataset_free(all);
    g_string_free(names, TRUE);
    g_free(split);
    g_free(kvasir);
    g_free(root);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    GError *err = NULL;
    tmp_root = g_dir_make_tmp("polypseg-dataset-XXXXXX", &err);
    g_assert_no_error(err);
    make_generated_dataset();

    g_test_add_func("/dataset/list-sorted", test_list_sorted);
    g_test_add_func("/dataset/list-split", test_list_split);
    g_test_add_func("/dataset/append", test_append);
    g_test_add_func("/dataset/missing-files", test_missing_files);
    g_test_add_func("/dataset/empty", test_empty);
    g_test_add_func("/dataset/data-root", test_data_root);
    g_test_add_func("/loader/shapes", test_loader_shapes);
    g_test_add_func("/loader/unshuffled-tail", test_loader_tail);
    g_test_add_func("/loader/zoom-out", test_loader_zoom_out);
    static const float off = 0, always = 1;
    g_test_add_data_func("/loader/determinism", &off, test_loader_determinism);
    g_test_add_data_func("/loader/determinism-copy-paste", &always, test_loader_determinism);
    g_test_add_data_func("/loader/resume", &off, test_loader_resume);
    g_test_add_data_func("/loader/resume-copy-paste", &always, test_loader_resume);
    g_test_add_func("/loader/plain-equals-resize", test_loader_plain);
    g_test_add_func("/loader/multi-scale", test_loader_multi_scale);
    g_test_add_func("/loader/rotate-and-hue", test_loader_rotate_and_hue);
    g_test_add_func("/loader/copy-paste", test_loader_copy_paste);
    g_test_add_func("/loader/free-mid-epoch", test_loader_free_mid_epoch);
    g_test_add_func("/loader/errors", test_loader_errors);
    g_test_add_func("/data/real-lists", test_real_data);
    g_test_add_func("/data/real-loader", test_real_loader);
    int rc = g_test_run();

    tu_remove_tree(tmp_root);
    g_free(gen_dir);
    g_free(tmp_root);
    return rc;
}
