/* MicroAUNet and MALUNet: parameter counts, forward parity with the PyTorch fixtures, weight-file checks. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include "model.h"
#include "preprocess.h"
#include "test_util.h"

static void test_param_counts(void)
{
    ps_model *m = ps_model_new("microaunet", NULL, 0, 1, NULL);
    g_assert_cmpuint(ps_model_count_trainable(m), ==, 24881);
    ps_model_free(m);
    m = ps_model_new("microaunet-w8", NULL, 0, 1, NULL);
    g_assert_cmpuint(ps_model_count_trainable(m), ==, 84281);
    ps_model_free(m);
    m = ps_model_new("malunet", NULL, 0, 1, NULL);
    g_assert_cmpuint(ps_model_count_trainable(m), ==, 177943);
    ps_model_free(m);
}

static void test_unknown_arch(void)
{
    GError *err = NULL;
    g_assert_null(ps_model_new("resnet", NULL, 0, 1, &err));
    g_assert_nonnull(strstr(err->message, "resnet"));
    g_error_free(err);
}

/* Loads the fixture's weights through the normal loader and compares the logits. */
static void check_forward(gconstpointer data)
{
    const char *name = data;
    char *rel = g_strdup_printf("models/%s.safetensors", name);
    ps_st_file *f = tu_load_fixture(rel);
    ps_model *m = tu_model_from_fixture(f);
    ps_tensor *x = tu_tensor_from(f, "input");
    ps_tensor *want = tu_tensor_from(f, "output");
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 0);
    ps_tensor *feats[5];
    ps_tensor *y = ps_model_forward(m, &g, x, feats);
    /* Encoder features first: they say where a mismatch starts. */
    for (int k = 0; k < 5; k++) {
        char fname[16];
        g_snprintf(fname, sizeof fname, "feat.t%d", k + 1);
        if (!ps_st_find(f, fname))
            continue;
        ps_tensor *ft = tu_tensor_from(f, fname);
        g_assert_true(ps_tensor_same_shape(feats[k], ft));
        tu_assert_close(fname, feats[k]->data, ft->data, ps_numel(ft), 1e-4);
        ps_tensor_free(ft);
    }
    g_assert_true(ps_tensor_same_shape(y, want));
    tu_assert_close(name, y->data, want->data, ps_numel(y), 1e-4);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(x);
    ps_tensor_free(want);
    ps_model_free(m);
    ps_st_free(f);
    g_free(rel);
}

/* Every architecture saves and loads back (the file's metadata picks the builder) with the
 * same weights and the same logits. */
static void test_save_load_archs(void)
{
    char *dir = g_dir_make_tmp("polypseg-model-XXXXXX", NULL);
    char *path = g_build_filename(dir, "m.safetensors", NULL);
    ps_tensor *x = ps_tensor_new(1, 3, 128, 128);
    GRand *r = g_rand_new_with_seed(2);
    tu_fill_uniform(x->data, ps_numel(x), r, -2.f, 2.f);
    ps_arena *arena = ps_arena_new();
    for (int a = 0; ps_model_archs[a]; a++) {
        GError *err = NULL;
        ps_model *m = ps_model_new(ps_model_archs[a], NULL, 0, 7, &err);
        g_assert_no_error(err);
        g_assert_true(ps_model_save(m, path, NULL, &err));
        ps_model *back = ps_model_load(path, &err);
        g_assert_no_error(err);
        g_assert_cmpstr(back->info.arch, ==, ps_model_archs[a]);
        g_assert_cmpint(back->n_params, ==, m->n_params);
        ps_graph g;
        ps_graph_init(&g, arena, 0);
        ps_tensor *y0 = ps_model_forward(m, &g, x, NULL), *y1 = ps_model_forward(back, &g, x, NULL);
        g_assert_cmpmem(y0->data, ps_numel(y0) * 4, y1->data, ps_numel(y1) * 4);
        ps_graph_clear(&g);
        ps_graph_release(&g);
        ps_model_free(back);
        ps_model_free(m);
    }
    ps_arena_free(arena);
    g_rand_free(r);
    ps_tensor_free(x);
    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);
}

/* Writes a model, then variants of it with one thing wrong; each must be refused by name. */
static void test_weights_validation(void)
{
    char *dir = g_dir_make_tmp("polypseg-model-XXXXXX", NULL);
    char *good = g_build_filename(dir, "good.safetensors", NULL);
    char *bad = g_build_filename(dir, "bad.safetensors", NULL);
    ps_model *m = ps_model_new("microaunet", NULL, 0, 3, NULL);
    GError *err = NULL;
    g_assert_true(ps_model_save(m, good, NULL, &err));

    ps_model *back = ps_model_load(good, &err);
    g_assert_no_error(err);
    for (int i = 0; i < m->n_params; i++)
        g_assert_cmpmem(back->params[i].t->data, ps_numel(back->params[i].t) * 4, m->params[i].t->data,
                        ps_numel(m->params[i].t) * 4);
    g_assert_cmpstr(back->info.arch, ==, "microaunet");
    ps_model_free(back);

    ps_st_file *f = ps_st_read(good, &err);
    g_assert_no_error(err);
    /* what: a tensor change, or metadata key=value (normalisation and size that would otherwise
     * give a silently wrong model: NaN, a std that is 0 as a float, trailing junk) */
    struct { const char *what, *expect; } cases[] = {
        {"missing", "is missing"}, {"extra", "unexpected tensor"}, {"shape", "has shape"},
        {"arch", "unknown architecture"}, {"noarch", "architecture"}, {"mean=[nan,0.5,0.5]", "'mean'"},
        {"mean=[1e300,0.5,0.5]", "'mean'"}, {"std=[0.2,1e-300,0.2]", "'std'"}, {"std=[0.2,inf,0.2]", "'std'"},
        {"input_size=256abc", "input_size"}, {"input_size=99999999999999999999", "input_size"}};
    for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
        int n = f->n_tensors;
        ps_st_tensor *ts = g_new0(ps_st_tensor, n + 1);
        memcpy(ts, f->tensors, n * sizeof *ts);
        GHashTable *meta = g_hash_table_new(g_str_hash, g_str_equal);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, f->metadata);
        while (g_hash_table_iter_next(&it, &k, &v))
            g_hash_table_insert(meta, k, v);
        const char *what = cases[c].what;
        float extra = 1.0f;
        if (!strcmp(what, "missing"))
            memmove(&ts[5], &ts[6], (--n - 5) * sizeof *ts);
        else if (!strcmp(what, "extra"))
            ts[n++] = (ps_st_tensor){.name = "bogus.weight", .ndim = 1, .shape = {1}, .numel = 1, .data = &extra};
        else if (!strcmp(what, "shape"))
            ts[0].shape[1] = ts[0].shape[0], ts[0].shape[0] = 1; /* same count, wrong shape */
        else if (strchr(what, '=')) {
            char **kv = g_strsplit(what, "=", 2);
            g_hash_table_insert(meta, (gpointer)g_intern_string(kv[0]), (gpointer)g_intern_string(kv[1]));
            g_strfreev(kv);
        } else if (!strcmp(what, "arch"))
            g_hash_table_insert(meta, "architecture", "resnet");
        else
            g_hash_table_remove(meta, "architecture");
        g_assert_true(ps_st_write(bad, ts, n, meta, NULL));
        g_assert_null(ps_model_load(bad, &err));
        g_assert_nonnull(err);
        g_test_message("%s -> %s", what, err->message);
        g_assert_nonnull(strstr(err->message, "bad.safetensors"));
        g_assert_nonnull(strstr(err->message, cases[c].expect));
        g_clear_error(&err);
        g_free(ts);
        g_hash_table_unref(meta);
    }
    ps_st_free(f);
    ps_model_free(m);
    g_unlink(good);
    g_unlink(bad);
    g_rmdir(dir);
    g_free(good);
    g_free(bad);
    g_free(dir);
}

/* Any number of threads gives the same bits (each op splits its work so that no value's
 * arithmetic depends on the split), for every architecture, at a side that leaves partial
 * chunks and bands. */
static void test_threads_same_bits(void)
{
    const char *const archs[] = {"microaunet", "microaunet-w8", "malunet"};
    const int side = 160;
    GRand *r = g_rand_new_with_seed(5);
    uint8_t *rgb = g_malloc((size_t)side * side * 3);
    for (int i = 0; i < side * side * 3; i++)
        rgb[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    for (size_t a = 0; a < G_N_ELEMENTS(archs); a++) {
        ps_model *m = ps_model_new(archs[a], NULL, 0, 7, NULL);
        m->info.input_size = side;
        ps_segmenter *s = ps_segmenter_new(m);
        float *want = g_memdup2(ps_segmenter_run(s, rgb, side, side, side * 3), (gsize)side * side * sizeof(float));
        for (int threads = 2; threads <= 3; threads++) {
            ps_segmenter_set_threads(s, threads);
            const float *got = ps_segmenter_run(s, rgb, side, side, side * 3);
            if (memcmp(got, want, (size_t)side * side * sizeof(float)) != 0)
                g_test_fail_printf("%s: %d threads change the output", archs[a], threads);
        }
        g_free(want);
        ps_segmenter_free(s);
        ps_model_free(m);
    }
    g_free(rgb);
    g_rand_free(r);
}

/* A pool that got fewer workers than asked (here: thread stacks beyond an address-space limit,
 * in a child process) is kept and used, not rebuilt on every call with the same count. */
static void test_threads_fewer_than_asked(void)
{
    if (g_test_subprocess()) {
        ps_model *m = ps_model_new("microaunet", NULL, 0, 7, NULL);
        m->info.input_size = 128;
        ps_segmenter *s = ps_segmenter_new(m);
        uint8_t rgb[32 * 32 * 3] = {0};
        ps_segmenter_run(s, rgb, 32, 32, 32 * 3); /* the arena at its size before the limit */
        tu_limit_address_space(48); /* room for a few 8 MB thread stacks, not for 60 */
        ps_segmenter_set_threads(s, 60);
        const int got = ps_segmenter_threads(s);
        ps_pool *pool = ps_segmenter_pool(s);
        g_assert_cmpint(got, >=, 1);
        g_assert_cmpint(got, <, 60);
        ps_segmenter_set_threads(s, 60);
        g_assert_true(ps_segmenter_pool(s) == pool);
        ps_segmenter_run(s, rgb, 32, 32, 32 * 3);
        ps_segmenter_set_threads(s, 1); /* another count still applies */
        g_assert_cmpint(ps_segmenter_threads(s), ==, 1);
        ps_segmenter_free(s);
        ps_model_free(m);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
}

/* The view of an RGB square that view v shows, built without ps_view_source: views 4..7
 * transpose first; then 1, 3, 6, 7 mirror the columns (of the transposed image for 6 and 7)
 * and 2, 3, 5, 7 the rows. */
static void view_of(const uint8_t *rgb, int side, int v, uint8_t *out)
{
    const int transpose = v >= 4, hflip = v == 1 || v == 3 || v == 6 || v == 7,
              vflip = v == 2 || v == 3 || v == 5 || v == 7;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int sy = vflip ? side - 1 - y : y, sx = hflip ? side - 1 - x : x;
            if (transpose) {
                int t = sy;
                sy = sx, sx = t;
            }
            memcpy(out + ((size_t)y * side + x) * 3, rgb + ((size_t)sy * side + sx) * 3, 3);
        }
}

/* Test-time augmentation is the mean of the plain runs on each view, each mapped back; with all
 * eight views it commutes with transposing the input; tta 1 is the plain run bit for bit. */
static void test_tta(void)
{
    const int side = 128;
    const size_t n = (size_t)side * side;
    GRand *r = g_rand_new_with_seed(11);
    uint8_t *rgb = g_malloc(n * 3), *view = g_malloc(n * 3), *ramp = g_malloc(n * 3);
    for (size_t i = 0; i < n * 3; i++)
        rgb[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    ps_model *m = ps_model_new("microaunet", NULL, 0, 3, NULL);
    m->info.input_size = side;
    ps_segmenter *plain = ps_segmenter_new(m), *tta = ps_segmenter_new(m);
    /* each view's own probabilities, at their source positions, found through a coded image
     * whose pixels hold their own coordinates */
    for (size_t i = 0; i < n; i++)
        ramp[i * 3] = (uint8_t)(i % side), ramp[i * 3 + 1] = (uint8_t)(i / side), ramp[i * 3 + 2] = 0;
    float *views[PS_TTA_MAX];
    for (int v = 0; v < PS_TTA_MAX; v++) {
        view_of(rgb, side, v, view);
        const float *p = ps_segmenter_run(plain, view, side, side, side * 3);
        views[v] = g_new(float, n);
        view_of(ramp, side, v, view); /* view[i] holds the source coordinates of view pixel i */
        for (size_t i = 0; i < n; i++)
            views[v][(size_t)view[i * 3 + 1] * side + view[i * 3]] = p[i];
    }
    g_assert_cmpint(ps_segmenter_tta(tta), ==, 1);
    ps_segmenter_set_tta(tta, 1);
    g_assert_cmpmem(ps_segmenter_run(tta, rgb, side, side, side * 3), n * sizeof(float),
                    views[0], n * sizeof(float));
    const int counts[] = {2, 3, 4, 6, 8}; /* the first N views, whatever N */
    for (size_t k = 0; k < G_N_ELEMENTS(counts); k++) {
        ps_segmenter_set_tta(tta, counts[k]);
        g_assert_cmpint(ps_segmenter_tta(tta), ==, counts[k]);
        const float *got = ps_segmenter_run(tta, rgb, side, side, side * 3);
        double worst = 0, spread = 0;
        for (size_t i = 0; i < n; i++) {
            double mean = 0;
            for (int v = 0; v < counts[k]; v++)
                mean += views[v][i];
            mean /= counts[k];
            worst = MAX(worst, fabs(got[i] - mean));
            spread = MAX(spread, fabs(views[0][i] - mean));
        }
        g_test_message("tta %d: max error %.2g against the mean of the views (which moves the plain run by up to %.2g)",
                       counts[k], worst, spread);
        g_assert_cmpfloat(worst, <, 1e-6);
        g_assert_cmpfloat(spread, >, 1e-3); /* the views do differ: the check above is not vacuous */
    }
    /* all eight views: segmenting the transposed image gives the transposed map */
    float *direct = g_memdup2(ps_segmenter_run(tta, rgb, side, side, side * 3), n * sizeof(float));
    ps_segmenter_set_threads(tta, 2); /* the views' passes split by rows: the same bits */
    g_assert_cmpmem(ps_segmenter_run(tta, rgb, side, side, side * 3), n * sizeof(float), direct, n * sizeof(float));
    ps_segmenter_set_threads(tta, 1);
    view_of(rgb, side, 4, view);
    const float *transposed = ps_segmenter_run(tta, view, side, side, side * 3);
    double worst = 0;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            worst = MAX(worst, fabs(transposed[y * side + x] - direct[x * side + y]));
    g_assert_cmpfloat(worst, <, 1e-6);
    ps_segmenter_set_tta(tta, 0);
    g_assert_cmpint(ps_segmenter_tta(tta), ==, 1);
    ps_segmenter_set_tta(tta, 99);
    g_assert_cmpint(ps_segmenter_tta(tta), ==, PS_TTA_MAX);
    for (int v = 0; v < PS_TTA_MAX; v++)
        g_free(views[v]);
    g_free(direct);
    ps_segmenter_free(plain);
    ps_segmenter_free(tta);
    ps_model_free(m);
    g_free(rgb);
    g_free(view);
    g_free(ramp);
    g_rand_free(r);
}

/* ps_view_source is the view view_of builds, on odd and tiny sides too. */
static void test_view_source(void)
{
    for (int side = 1; side <= 9; side++) {
        uint8_t *coded = g_malloc((size_t)side * side * 3), *view = g_malloc((size_t)side * side * 3);
        for (int i = 0; i < side * side; i++)
            coded[i * 3] = (uint8_t)i, coded[i * 3 + 1] = coded[i * 3 + 2] = 0;
        for (int v = 0; v < PS_TTA_MAX; v++) {
            view_of(coded, side, v, view);
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                    g_assert_cmpint(ps_view_source(v, side, y, x), ==, view[(y * side + x) * 3]);
        }
        g_free(coded);
        g_free(view);
    }
}

/* Three threads on 160 rows split the views' passes into partial tiles: the same bits as one. */
static void test_tta_threads(void)
{
    const int side = 160;
    const size_t n = (size_t)side * side;
    GRand *r = g_rand_new_with_seed(5);
    uint8_t *rgb = g_malloc(n * 3);
    for (size_t i = 0; i < n * 3; i++)
        rgb[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    ps_model *m = ps_model_new("microaunet", NULL, 0, 3, NULL);
    m->info.input_size = side;
    ps_segmenter *s = ps_segmenter_new(m);
    for (int views = 2; views <= PS_TTA_MAX; views++) {
        ps_segmenter_set_tta(s, views);
        ps_segmenter_set_threads(s, 1);
        float *one = g_memdup2(ps_segmenter_run(s, rgb, side, side, side * 3), n * sizeof(float));
        ps_segmenter_set_threads(s, 3);
        g_assert_cmpmem(ps_segmenter_run(s, rgb, side, side, side * 3), n * sizeof(float), one, n * sizeof(float));
        g_free(one);
    }
    ps_segmenter_free(s);
    ps_model_free(m);
    g_free(rgb);
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/model/param-counts", test_param_counts);
    g_test_add_func("/model/unknown-arch", test_unknown_arch);
    g_test_add_data_func("/model/forward/microaunet-128", "microaunet_128", check_forward);
    g_test_add_data_func("/model/forward/microaunet-256", "microaunet_256", check_forward);
    g_test_add_data_func("/model/forward/microaunet-w8-128", "microaunet-w8_128", check_forward);
    g_test_add_data_func("/model/forward/malunet-128", "malunet_128", check_forward);
    g_test_add_func("/model/weights-validation", test_weights_validation);
    g_test_add_func("/model/save-load-archs", test_save_load_archs);
    g_test_add_func("/model/threads-same-bits", test_threads_same_bits);
    g_test_add_func("/model/threads-fewer-than-asked", test_threads_fewer_than_asked);
    g_test_add_func("/model/tta", test_tta);
    g_test_add_func("/model/tta-threads", test_tta_threads);
    g_test_add_func("/model/view-source", test_view_source);
    return g_test_run();
}
