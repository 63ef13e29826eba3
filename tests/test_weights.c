/* The shipped weights still score what weights/README.md says: every row of its "Held-out
 * scores" table is re-evaluated on the shared data, and a mean Dice more than 0.01 below the
 * documented figure fails. */
#include <stdlib.h>
#include <string.h>
#include "evaluate.h"
#include "test_util.h"

typedef struct row {
    char *file, *data, *split;
    double mean_dice;
} row;

/* Rows look like: | microaunet-kvasir.safetensors | kvasir-seg/val | - | 200 | 0.7712 | ...
 * (or | malunet-...) */
static GPtrArray *read_rows(void)
{
    char *path = g_build_filename(g_getenv("POLYPSEG_REPO"), "weights", "README.md", NULL);
    char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    GPtrArray *rows = g_ptr_array_new();
    gchar **lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (!g_str_has_prefix(lines[i], "| microaunet") && !g_str_has_prefix(lines[i], "| malunet"))
            continue;
        gchar **cells = g_strsplit(lines[i], "|", -1);
        if (g_strv_length(cells) < 7)
            g_error("malformed score row in %s: %s", path, lines[i]);
        row *r = g_new0(row, 1);
        r->file = g_strstrip(g_strdup(cells[1]));
        r->data = g_strstrip(g_strdup(cells[2]));
        r->split = g_strstrip(g_strdup(cells[3]));
        char *cell = g_strstrip(cells[5]), *end = NULL;
        r->mean_dice = g_ascii_strtod(cell, &end);
        if (end == cell || *end || r->mean_dice <= 0 || r->mean_dice > 1)
            g_error("%s: mean Dice cell '%s' is not a number in (0, 1]", path, cell);
        g_ptr_array_add(rows, r);
        g_strfreev(cells);
    }
    g_strfreev(lines);
    g_free(text);
    g_free(path);
    return rows;
}

static void test_documented_scores(void)
{
    char *root = tu_data_root_or_skip();
    if (!root)
        return;
    GPtrArray *rows = read_rows();
    /* Each shipped file must be scored on its own dataset's held-out split. */
    const char *own[][2] = {{"microaunet-kvasir.safetensors", "kvasir-seg/val"},
                            {"microaunet-cvc.safetensors", "cvc-clinicdb"},
                            {"microaunet-cvc-256.safetensors", "cvc-clinicdb"},
                            {"malunet-kvasir.safetensors", "kvasir-seg/val"},
                            {"malunet-cvc.safetensors", "cvc-clinicdb"}};
    for (size_t k = 0; k < G_N_ELEMENTS(own); k++) {
        gboolean found = FALSE;
        for (guint i = 0; i < rows->len; i++) {
            row *r = rows->pdata[i];
            found |= !strcmp(r->file, own[k][0]) && !strcmp(r->data, own[k][1]);
        }
        if (!found)
            g_test_fail_printf("weights/README.md has no score of %s on %s", own[k][0], own[k][1]);
    }
    for (guint i = 0; i < rows->len; i++) {
        row *r = rows->pdata[i];
        char *weights = g_build_filename(g_getenv("POLYPSEG_REPO"), "weights", r->file, NULL);
        char *data = g_build_filename(root, r->data, NULL);
        char *split = strcmp(r->split, "-") ? g_build_filename(data, r->split, NULL) : NULL;
        GError *err = NULL;
        ps_model *m = ps_model_load(weights, &err);
        g_assert_no_error(err);
        ps_dataset *ds = ps_dataset_open(data, split, &err);
        g_assert_no_error(err);
        ps_metric_values v;
        g_assert_true(ps_evaluate(m, ds, 0.5f, 1, &v, NULL, NULL, NULL, &err));
        g_assert_no_error(err);
        g_test_message("%s on %s %s: mean Dice %.4f (documented %.4f), %d images", r->file, r->data,
                       r->split, v.mean_dice, r->mean_dice, v.images);
        if (v.mean_dice < r->mean_dice - 0.01)
            g_test_fail_printf("%s on %s: mean Dice %.4f is more than 0.01 below the documented %.4f",
                               r->file, r->data, v.mean_dice, r->mean_dice);
        ps_dataset_free(ds);
        ps_model_free(m);
        g_free(split);
        g_free(data);
        g_free(weights);
    }
    g_free(root);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/weights/documented-scores", test_documented_scores);
    return g_test_run();
}
