/* polypseg-average: the mean of every tensor, the inputs' provenance in the metadata, held-out
 * metrics with --val, and refusals that write nothing. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <json-glib/json-glib.h>
#include "image.h"
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

/* Two small image/mask pairs: a bright disc on a darker background. */
static char *make_val_folder(void)
{
    char *root = g_build_filename(tmpdir, "val", NULL);
    for (int i = 0; i < 2; i++) {
        ps_image *im = ps_image_new(96, 80, 3), *mk = ps_image_new(96, 80, 1);
        for (int y = 0; y < 80; y++)
            for (int x = 0; x < 96; x++) {
                int in = (x - 40 - 10 * i) * (x - 40 - 10 * i) + (y - 40) * (y - 40) < 400;
                mk->data[y * 96 + x] = in ? 255 : 0;
                for (int c = 0; c < 3; c++)
                    im->data[(y * 96 + x) * 3 + c] = (uint8_t)(in ? 200 - 30 * c : 80 + 10 * c);
            }
        char name[16];
        g_snprintf(name, sizeof name, "%d.png", i);
        char *di = g_build_filename(root, "images", NULL), *dm = g_build_filename(root, "masks", NULL);
        g_mkdir_with_parents(di, 0755);
        g_mkdir_with_parents(dm, 0755);
        char *pi = g_build_filename(di, name, NULL), *pm = g_build_filename(dm, name, NULL);
        g_assert_true(ps_image_save_png(pi, im, NULL));
        g_assert_true(ps_image_save_png(pm, mk, NULL));
        g_free(pi), g_free(pm), g_free(di), g_free(dm);
        ps_image_free(im);
        ps_image_free(mk);
    }
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

/* Mismatched models, a single input, a checkpoint-like file and a corrupt file are refused and
 * no output appears. */
static void test_refusals(void)
{
    char *a = save_model("microaunet", 5, "e.safetensors", "x");
    char *w8 = save_model("microaunet-w8", 6, "w8.safetensors", "x");
    char *corrupt = g_build_filename(tmpdir, "corrupt.safetensors", NULL);
    g_assert_true(g_file_set_contents(corrupt, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10, NULL));
    /* a file with one tensor more than the model has, and one marked as a training checkpoint */
    char *extra = g_build_filename(tmpdir, "extra.safetensors", NULL);
    char *ckpt = g_build_filename(tmpdir, "e.safetensors.ckpt", NULL);
    {
        ps_st_file *f = read_ok(a);
        ps_st_tensor *ts = g_new0(ps_st_tensor, f->n_tensors + 1);
        memcpy(ts, f->tensors, sizeof(ps_st_tensor) * f->n_tensors);
        float one = 1;
        ts[f->n_tensors] = (ps_st_tensor){.name = "optim.step", .ndim = 1, .shape = {1}, .numel = 1, .data = &one};
        g_assert_true(ps_st_write(extra, ts, f->n_tensors + 1, f->metadata, NULL));
        g_hash_table_insert(f->metadata, g_strdup("checkpoint_epoch"), g_strdup("3"));
        g_assert_true(ps_st_write(ckpt, f->tensors, f->n_tensors, f->metadata, NULL));
        g_free(ts);
        ps_st_free(f);
    }
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
    int rc = g_test_run();
    tu_remove_tree(tmpdir);
    return rc;
}
