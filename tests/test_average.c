/* polypseg-average: the mean of every tensor, the inputs' provenance in the metadata, held-out
 * metrics with --val, and refusals that write nothing. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <json-glib/json-glib.h>
#include "image.h"
#include "../core/train/batchnorm_stats.h"
#include "test_util.h"

static char *tmpdir;

/* A fresh model of `arch` with seeded random weights saved as tmpdir/NAME, recording `dataset`. */
static char *save_model(const char *arch, uint64_t seed, const char *name, const char *dataset)
{
    GError *err = NULL;
    ps_model *m = ps_model_new(arch, NULL, 0, seed, &err);
    g_assert_no_error(err);
    GHashTable *extra = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(extra, "dataset", (gpointer)dataset);
    g_hash_table_insert(extra, "command", "made by test_average");
    char *path = g_build_filename(tmpdir, name, NULL);
    g_assert_true(ps_model_save(m, path, extra, &err));
    g_assert_no_error(err);
    g_hash_table_unref(extra);
    ps_model_free(m);
    return path;
}

/* Runs polypseg-average with `args`; returns the exit code, stdout in *out (may be NULL). */
static int run_average(const char *args, char **out)
{
    char *exe = g_build_filename(g_getenv("POLYPSEG_BUILD"), "core", "polypseg-average", NULL);
    char *cmd = g_strdup_printf("%s %s", exe, args), *so = NULL, *se = NULL;
    int status;
    GError *err = NULL;
    g_assert_true(g_spawn_command_line_sync(cmd, &so, &se, &status, &err));
    g_assert_no_error(err);
    if (g_test_verbose() && se && *se)
        g_printerr("%s", se);
    if (out)
        *out = so;
    else
        g_free(so);
    g_free(se), g_free(cmd), g_free(exe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *sha256_of(const char *path)
{
    char *bytes = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &bytes, &len, NULL));
    char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)bytes, len);
    g_free(bytes);
    return sum;
}

static ps_st_file *read_ok(const char *path)
{
    GError *err = NULL;
    ps_st_file *f = ps_st_read(path, &err);
    g_assert_no_error(err);
    return f;
}

static void test_mean_and_provenance(void)
{
    char *a = save_model("microaunet", 1, "a.safetensors", "kvasir-seg/train");
    char *b = save_model("microaunet", 2, "b.safetensors", "cvc-clinicdb + kvasir-seg/train");
    char *out = g_build_filename(tmpdir, "ab.safetensors", NULL);
    char *args = g_strdup_printf("-o %s %s %s", out, a, b), *so = NULL;
    g_assert_cmpint(run_average(args, &so), ==, 0);
    g_assert_nonnull(strstr(so, "the mean of 2 files"));

    ps_st_file *fa = read_ok(a), *fb = read_ok(b), *fo = read_ok(out);
    g_assert_cmpint(fo->n_tensors, ==, fa->n_tensors);
    for (int t = 0; t < fo->n_tensors; t++) {
        const ps_st_tensor *o = &fo->tensors[t], *ta = ps_st_find(fa, o->name), *tb = ps_st_find(fb, o->name);
        g_assert_nonnull(ta);
        g_assert_nonnull(tb);
        g_assert_cmpuint(o->numel, ==, ta->numel);
        for (size_t k = 0; k < o->numel; k++)
            g_assert_cmpfloat(o->data[k], ==, (float)(((double)ta->data[k] + tb->data[k]) / 2));
    }
    /* the result loads as a model of the inputs' architecture */
    GError *err = NULL;
    ps_model *m = ps_model_load(out, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(m->info.arch, ==, "microaunet");
    ps_model_free(m);

    g_assert_cmpstr(ps_st_meta(fo, "dataset"), ==, "kvasir-seg/train + cvc-clinicdb");
    g_assert_nonnull(strstr(ps_st_meta(fo, "command"), "polypseg-average"));
    JsonParser *parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, ps_st_meta(fo, "average_of"), -1, NULL));
    JsonArray *list = json_node_get_array(json_parser_get_root(parser));
    g_assert_cmpint(json_array_get_length(list), ==, 2);
    const char *paths[] = {a, b};
    for (guint i = 0; i < 2; i++) {
        JsonObject *in = json_array_get_object_element(list, i);
        char *sum = sha256_of(paths[i]);
        g_assert_cmpstr(json_object_get_string_member(in, "file"), ==, paths[i]);
        g_assert_cmpstr(json_object_get_string_member(in, "sha256"), ==, sum);
        g_assert_cmpstr(json_object_get_string_member(in, "command"), ==, "made by test_average");
        g_free(sum);
    }
    g_object_unref(parser);
    ps_st_free(fa), ps_st_free(fb), ps_st_free(fo);

    /* the mean of one file taken three times is that file's tensors, bit for bit */
    g_free(args);
    args = g_strdup_printf("-o %s %s %s %s", out, a, a, a);
    g_assert_cmpint(run_average(args, NULL), ==, 0);
    fa = read_ok(a), fo = read_ok(out);
    for (int t = 0; t < fo->n_tensors; t++) {
        const ps_st_tensor *o = &fo->tensors[t], *ta = ps_st_find(fa, o->name);
        g_assert_cmpint(memcmp(o->data, ta->data, o->numel * sizeof(float)), ==, 0);
    }
    ps_st_free(fa), ps_st_free(fo);
    g_free(so), g_free(args), g_free(out), g_free(a), g_free(b);
}

/* Two small image/mask pairs. */
static char *make_val_folder(void)
{
    char *root = g_build_filename(tmpdir, "val", NULL);
    tu_write_disc_dataset(root, 2, 96, 80, 5);
    return root;
}

static void test_val_metrics(void)
{
    char *a = save_model("microaunet", 3, "c.safetensors", "x"), *b = save_model("microaunet", 4, "d.safetensors", "x");
    char *val = make_val_folder(), *out = g_build_filename(tmpdir, "cd.safetensors", NULL);
    char *args = g_strdup_printf("-o %s --val %s --dataset-name named %s %s", out, val, a, b), *so = NULL;
    g_assert_cmpint(run_average(args, &so), ==, 0);
    g_assert_nonnull(strstr(so, "held-out"));
    ps_st_file *fo = read_ok(out);
    g_assert_cmpstr(ps_st_meta(fo, "dataset"), ==, "named");
    JsonParser *parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, ps_st_meta(fo, "metrics"), -1, NULL));
    JsonObject *mo = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpint(json_object_get_int_member(mo, "images"), ==, 2);
    double dice = json_object_get_double_member(mo, "mean_dice");
    g_assert_true(dice >= 0 && dice <= 1);
    g_object_unref(parser);
    ps_st_free(fo);
    g_free(so), g_free(args), g_free(out), g_free(val), g_free(a), g_free(b);
}

/* A copy of the weights file `src` as tmpdir/NAME with one more one-value tensor `extra`,
 * marked as a training checkpoint (epoch 3) or not. */
static char *with_extra_tensor(const char *src, const char *name, const char *extra, gboolean checkpoint)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    ps_st_file *f = read_ok(src);
    ps_st_tensor *ts = g_new0(ps_st_tensor, f->n_tensors + 1);
    memcpy(ts, f->tensors, sizeof(ps_st_tensor) * f->n_tensors);
    float one = 1;
    ts[f->n_tensors] = (ps_st_tensor){.name = (char *)extra, .ndim = 1, .shape = {1}, .numel = 1, .data = &one};
    if (checkpoint)
        g_hash_table_insert(f->metadata, g_strdup("checkpoint_epoch"), g_strdup("3"));
    g_assert_true(ps_st_write(path, ts, f->n_tensors + 1, f->metadata, NULL));
    g_free(ts);
    ps_st_free(f);
    return path;
}

/* A training checkpoint (polypseg-train --snapshot-every) averages as its model: its optimiser
 * state is left out of the result. */
static void test_checkpoints(void)
{
    char *a = save_model("microaunet", 7, "g.safetensors", "x"), *b = save_model("microaunet", 8, "h.safetensors", "x");
    char *ckpt = with_extra_tensor(b, "h.ckpt", "optim.m.decoder", TRUE);
    char *plain = g_build_filename(tmpdir, "gh.safetensors", NULL), *mixed = g_build_filename(tmpdir, "gh-ckpt.safetensors", NULL);
    char *args = g_strdup_printf("-o %s %s %s", plain, a, b), *args2 = g_strdup_printf("-o %s %s %s", mixed, a, ckpt);
    g_assert_cmpint(run_average(args, NULL), ==, 0);
    g_assert_cmpint(run_average(args2, NULL), ==, 0);
    ps_st_file *fp = read_ok(plain), *fm = read_ok(mixed);
    g_assert_cmpint(fm->n_tensors, ==, fp->n_tensors);
    g_assert_null(ps_st_find(fm, "optim.m.decoder"));
    g_assert_nonnull(strstr(ps_st_meta(fm, "average_of"), "\"checkpoint_epoch\":\"3\""));
    for (int t = 0; t < fp->n_tensors; t++) {
        const ps_st_tensor *tm = ps_st_find(fm, fp->tensors[t].name);
        g_assert_nonnull(tm);
        g_assert_cmpmem(tm->data, tm->numel * 4, fp->tensors[t].data, fp->tensors[t].numel * 4);
    }
    ps_st_free(fp), ps_st_free(fm);
    g_free(a), g_free(b), g_free(ckpt), g_free(plain), g_free(mixed), g_free(args), g_free(args2);
}

/* ---- batch-norm statistics re-estimated for an averaged model ---- */

static ps_model *random_model_at(uint64_t seed, int size)
{
    GError *err = NULL;
    ps_model *m = ps_model_new("microaunet", NULL, 0, seed, &err);
    g_assert_no_error(err);
    m->info.input_size = size;
    return m;
}

/* ps_recompute_batchnorm over `ds` in batches of 2, with or without augmentation. */
static int recompute(ps_model *m, const ps_dataset *ds, gboolean augment)
{
    ps_loader_config lc = ps_batchnorm_loader_config(m, NULL, 1);
    lc.batch = 2;
    lc.augment = augment;
    GError *err = NULL;
    ps_loader *l = ps_loader_new(ds, &lc, &err);
    g_assert_no_error(err);
    int batches = ps_recompute_batchnorm(m, l, lc.batch);
    ps_loader_free(l);
    return batches;
}

static ps_dataset *open_ok(const char *dir, const char *split)
{
    GError *err = NULL;
    ps_dataset *ds = ps_dataset_open(dir, split, &err);
    g_assert_no_error(err);
    return ds;
}

/* Each running value ends as the mean over the batches of that batch's statistics: over two
 * batches it is the mean of what each batch alone gives, it differs from the initial value,
 * and no trainable tensor changes. */
static void test_batchnorm_mean_over_batches(void)
{
    { /* the augmentation's crops follow the training run's recorded --crop-scale */
        ps_model *m = random_model_at(1, 128);
        ps_loader_config lc = ps_batchnorm_loader_config(m, "0.5,1.25", 1);
        g_assert_cmpfloat(lc.crop_min, ==, 0.5f);
        g_assert_cmpfloat(lc.crop_max, ==, 1.25f);
        lc = ps_batchnorm_loader_config(m, "bogus", 1);
        g_assert_cmpfloat(lc.crop_min, ==, 0.f); /* the loader's default */
        g_assert_true(lc.augment && !lc.shuffle && lc.size == 128);
        g_assert_cmpint(ps_batchnorm_layers(m), ==, 2 * (1 + 2 * 10));
        ps_model_free(m);
    }
    char *dir = g_build_filename(tmpdir, "bn", NULL), *split = g_build_filename(tmpdir, "bn-second.txt", NULL);
    tu_write_disc_dataset(dir, 4, 96, 80, 21);
    g_assert_true(g_file_set_contents(split, "2.png\n3.png\n", -1, NULL));
    ps_dataset *all = open_ok(dir, NULL), *first = open_ok(dir, NULL), *second = open_ok(dir, split);
    first->n = 2; /* the listing keeps ownership of every path */
    ps_model *m0 = random_model_at(3, 128), *ma = random_model_at(3, 128), *mb = random_model_at(3, 128), *mab = random_model_at(3, 128);
    g_assert_cmpint(recompute(ma, first, FALSE), ==, 1);
    g_assert_cmpint(recompute(mb, second, FALSE), ==, 1);
    g_assert_cmpint(recompute(mab, all, FALSE), ==, 2);
    int stats = 0;
    for (int p = 0; p < m0->n_params; p++) {
        const ps_param *p0 = &m0->params[p];
        const float *a = ma->params[p].t->data, *b = mb->params[p].t->data, *ab = mab->params[p].t->data;
        size_t n = ps_numel(p0->t);
        if (p0->trainable) {
            g_assert_cmpmem(ab, n * 4, p0->t->data, n * 4);
            continue;
        }
        stats++;
        gboolean changed = FALSE;
        for (size_t k = 0; k < n; k++) {
            const float want = 0.5f * a[k] + 0.5f * b[k];
            if (fabsf(ab[k] - want) > 1e-5f * fmaxf(1, fabsf(want)))
                g_test_fail_printf("%s[%zu]: %g over both batches, %g and %g alone", p0->name, k, ab[k], a[k], b[k]);
            changed |= ab[k] != p0->t->data[k];
        }
        if (!changed)
            g_test_fail_printf("%s: unchanged", p0->name);
    }
    /* mean and var of the 2 BNs of each DSD: the stem, and 2 in each of the 10 DWDs */
    g_assert_cmpint(stats, ==, 2 * 2 * (1 + 2 * 10));
    ps_model_free(m0), ps_model_free(ma), ps_model_free(mb), ps_model_free(mab);
    ps_dataset_free(all), ps_dataset_free(first), ps_dataset_free(second);
    g_free(dir), g_free(split);
}

/* Re-estimated on one (augmented) batch, every running mean is that batch's mean of the layer's
 * input, and every running variance its unbiased variance, as the training pass over the same
 * batch computes them. */
static void test_batchnorm_matches_batch(void)
{
    char *dir = g_build_filename(tmpdir, "bn1", NULL);
    tu_write_disc_dataset(dir, 2, 96, 80, 22);
    ps_dataset *ds = open_ok(dir, NULL);
    ps_model *m = random_model_at(5, 128);
    g_assert_cmpint(recompute(m, ds, TRUE), ==, 1);
    /* the same batch again: order and augmentation depend only on the seed */
    ps_loader_config lc = ps_batchnorm_loader_config(m, NULL, 1);
    lc.batch = 2;
    GError *err = NULL;
    ps_loader *l = ps_loader_new(ds, &lc, &err);
    g_assert_no_error(err);
    ps_tensor *images = ps_tensor_new(2, 3, 128, 128), *masks = ps_tensor_new(2, 1, 128, 128);
    ps_loader_start_epoch(l, 0);
    g_assert_true(ps_loader_next(l, images, masks));
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    g.bn_momentum = 0; /* leave the running values as they are */
    ps_model_forward(m, &g, images, NULL);
    int layers = 0;
    for (int i = 0; i < g.n_nodes; i++) {
        const ps_node *nd = &g.nodes[i];
        if (nd->op != PS_OP_BATCHNORM_TRAIN)
            continue;
        /* the layer's running statistics: the parameters named like its gamma, ".weight" ->
         * ".running_mean" / ".running_var" */
        const ps_param *gamma = NULL;
        for (int p = 0; p < m->n_params && !gamma; p++)
            if (m->params[p].t == nd->in[1])
                gamma = &m->params[p];
        g_assert_nonnull(gamma);
        char *prefix = g_strndup(gamma->name, strlen(gamma->name) - strlen(".weight"));
        char *mean_name = g_strconcat(prefix, ".running_mean", NULL), *var_name = g_strconcat(prefix, ".running_var", NULL);
        const float *mean = ps_model_find(m, mean_name)->t->data, *var = ps_model_find(m, var_name)->t->data;
        const ps_tensor *x = nd->in[0];
        const double count = (double)x->n * x->h * x->w;
        for (int c = 0; c < x->c; c++) {
            const double invstd = nd->save_invstd[c];
            const double biased = 1 / (invstd * invstd) - nd->eps;
            const double want = biased * count / (count - 1);
            g_assert_cmpfloat(mean[c], ==, nd->save_mean[c]);
            if (fabs(var[c] - want) > 1e-3 * want + 1e-6)
                g_test_fail_printf("%s[%d]: %g, the batch's unbiased variance is %g", var_name, c, var[c], want);
        }
        layers++;
        g_free(prefix), g_free(mean_name), g_free(var_name);
    }
    g_assert_cmpint(layers, ==, 2 * (1 + 2 * 10));
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(images), ps_tensor_free(masks);
    ps_loader_free(l);
    ps_model_free(m);
    ps_dataset_free(ds);
    g_free(dir);
}

/* polypseg-average --bn-data: trainable tensors are the plain mean, the running statistics
 * are re-estimated, and the metadata says on what. */
static void test_bn_data_option(void)
{
    char *a = save_model("microaunet", 9, "i.safetensors", "x"), *b = save_model("microaunet", 10, "j.safetensors", "x");
    char *dir = g_build_filename(tmpdir, "bn-cli", NULL);
    tu_write_disc_dataset(dir, 3, 96, 80, 23);
    char *plain = g_build_filename(tmpdir, "ij.safetensors", NULL), *bn = g_build_filename(tmpdir, "ij-bn.safetensors", NULL);
    char *args = g_strdup_printf("-o %s %s %s", plain, a, b);
    char *args2 = g_strdup_printf("-o %s --bn-data %s --bn-add-data %s %s %s", bn, dir, dir, a, b), *so = NULL;
    g_assert_cmpint(run_average(args, NULL), ==, 0);
    g_assert_cmpint(run_average(args2, &so), ==, 0);
    g_assert_nonnull(strstr(so, "re-estimated on 6 images"));
    ps_st_file *fp = read_ok(plain), *fb = read_ok(bn);
    g_assert_nonnull(strstr(ps_st_meta(fb, "batchnorm_statistics"), "6 images"));
    int differ = 0;
    for (int t = 0; t < fp->n_tensors; t++) {
        const ps_st_tensor *tp = &fp->tensors[t], *tb = ps_st_find(fb, tp->name);
        const gboolean stat = g_str_has_suffix(tp->name, "running_mean") || g_str_has_suffix(tp->name, "running_var");
        const gboolean same = memcmp(tp->data, tb->data, tp->numel * 4) == 0;
        if (!stat)
            g_assert_true(same);
        differ += stat && !same;
    }
    g_assert_cmpint(differ, ==, 2 * 2 * (1 + 2 * 10));
    /* a model without batch-norm layers is refused (exit 2), and writes nothing */
    char *ma = save_model("malunet", 11, "mal-a.safetensors", "x"), *mb = save_model("malunet", 12, "mal-b.safetensors", "x");
    char *malout = g_build_filename(tmpdir, "mal-bn.safetensors", NULL);
    char *args4 = g_strdup_printf("-o %s --bn-data %s %s %s", malout, dir, ma, mb);
    GError *lerr = NULL;
    ps_model *mal = ps_model_load(ma, &lerr);
    g_assert_no_error(lerr);
    g_assert_cmpint(ps_batchnorm_layers(mal), ==, 0); /* MALUNet normalises with GroupNorm only */
    g_assert_cmpint(run_average(args4, NULL), ==, 2);
    g_assert_false(g_file_test(malout, G_FILE_TEST_EXISTS));
    ps_model_free(mal);
    g_free(ma), g_free(mb), g_free(malout), g_free(args4);
    /* a folder without images is refused and writes nothing */
    char *none = g_build_filename(tmpdir, "no-such-folder", NULL), *out = g_build_filename(tmpdir, "bn-refused.safetensors", NULL);
    char *args3 = g_strdup_printf("-o %s --bn-data %s %s %s", out, none, a, b);
    g_assert_cmpint(run_average(args3, NULL), ==, 1);
    g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
    ps_st_free(fp), ps_st_free(fb);
    g_free(a), g_free(b), g_free(dir), g_free(plain), g_free(bn), g_free(args), g_free(args2), g_free(so);
    g_free(none), g_free(out), g_free(args3);
}

/* Mismatched models, a single input, a checkpoint-like file and a corrupt file are refused and
 * no output appears. */
static void test_refusals(void)
{
    char *a = save_model("microaunet", 5, "e.safetensors", "x");
    char *w8 = save_model("microaunet-w8", 6, "w8.safetensors", "x");
    char *corrupt = g_build_filename(tmpdir, "corrupt.safetensors", NULL);
    g_assert_true(g_file_set_contents(corrupt, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10, NULL));
    /* optimiser state in a file not marked as a checkpoint, and a checkpoint with a tensor that
     * is neither the model's nor training state */
    char *extra = with_extra_tensor(a, "extra.safetensors", "optim.step", FALSE);
    char *ckpt = with_extra_tensor(a, "e.safetensors.ckpt", "stray", TRUE);
    char *out = g_build_filename(tmpdir, "refused.safetensors", NULL);
    struct { const char *label; char *args; int code; } cases[] = {
        {"other architecture", g_strdup_printf("-o %s %s %s", out, a, w8), 1},
        {"one input", g_strdup_printf("-o %s %s", out, a), 2},
        {"no --out", g_strdup_printf("%s %s", a, a), 2},
        {"extra tensor", g_strdup_printf("-o %s %s %s", out, a, extra), 1},
        {"checkpoint", g_strdup_printf("-o %s %s %s", out, a, ckpt), 1},
        {"corrupt file", g_strdup_printf("-o %s %s %s", out, a, corrupt), 1},
        {"missing file", g_strdup_printf("-o %s %s %s/none.safetensors", out, a, tmpdir), 1},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        int code = run_average(cases[i].args, NULL);
        if (code != cases[i].code)
            g_test_fail_printf("%s: exit %d, expected %d", cases[i].label, code, cases[i].code);
        if (g_file_test(out, G_FILE_TEST_EXISTS))
            g_test_fail_printf("%s: an output was written", cases[i].label);
        g_free(cases[i].args);
    }
    g_free(out), g_free(extra), g_free(ckpt), g_free(corrupt), g_free(w8), g_free(a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("polypseg-average-XXXXXX", NULL);
    g_test_add_func("/average/mean-and-provenance", test_mean_and_provenance);
    g_test_add_func("/average/val-metrics", test_val_metrics);
    g_test_add_func("/average/refusals", test_refusals);
    g_test_add_func("/average/checkpoints", test_checkpoints);
    g_test_add_func("/average/batchnorm-mean-over-batches", test_batchnorm_mean_over_batches);
    g_test_add_func("/average/batchnorm-matches-batch", test_batchnorm_matches_batch);
    g_test_add_func("/average/bn-data-option", test_bn_data_option);
    int rc = g_test_run();
    tu_remove_tree(tmpdir);
    return rc;
}
