#include "test_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <glib/gstdio.h>
#include "../core/train/dataset.h"
#include "../core/lib/image.h"

char *tu_fixture_path(const char *rel)
{
    const char *dir = g_getenv("POLYPSEG_FIXTURES");
    return g_build_filename(dir ? dir : "tests/fixtures", rel, NULL);
}

ps_st_file *tu_load_fixture(const char *rel)
{
    char *path = tu_fixture_path(rel);
    GError *err = NULL;
    ps_st_file *f = ps_st_read(path, &err);
    if (!f)
        g_error("fixture %s: %s (regenerate with scripts/make_fixtures.sh)", path,
                err ? err->message : "?");
    g_free(path);
    return f;
}

ps_tensor *tu_tensor_from_as(const ps_st_file *f, const char *name, int n, int c, int h, int w)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    if (!t)
        g_error("fixture has no tensor '%s'", name);
    ps_tensor *out = ps_tensor_new(n, c, h, w);
    if (ps_numel(out) != t->numel)
        g_error("fixture tensor '%s' has %zu values, expected %zu", name, t->numel, ps_numel(out));
    memcpy(out->data, t->data, t->numel * sizeof(float));
    return out;
}

ps_tensor *tu_tensor_from(const ps_st_file *f, const char *name)
{
    const ps_st_tensor *t = ps_st_find(f, name);
    if (!t)
        g_error("fixture has no tensor '%s'", name);
    if (t->ndim > 4)
        g_error("fixture tensor '%s' has %d dims", name, t->ndim);
    int d[4] = {1, 1, 1, 1};
    for (int i = 0; i < t->ndim; i++)
        d[4 - t->ndim + i] = (int)t->shape[i];
    return tu_tensor_from_as(f, name, d[0], d[1], d[2], d[3]);
}

double tu_rel_err(const float *a, const float *b, size_t n)
{
    double maxdiff = 0, scale = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxdiff)) /* also catches NaN */
            maxdiff = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > scale)
            scale = fabs(b[i]);
    }
    return maxdiff / scale;
}

void tu_assert_close(const char *label, const float *got, const float *want, size_t n, double tol)
{
    double e = tu_rel_err(got, want, n);
    g_test_message("%s: relative max error %.3g (tolerance %.1g)", label, e, tol);
    if (!(e <= tol))
        g_test_fail_printf("%s: relative max error %.3g exceeds %.1g", label, e, tol);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double tu_quantile(const float *v, int n, double q)
{
    float *s = g_memdup2(v, (gsize)n * sizeof(float));
    qsort(s, n, sizeof(float), cmp_float);
    int k = (int)(q * n);
    double r = s[k < n ? k : n - 1];
    g_free(s);
    return r;
}

void tu_fill_uniform(float *x, size_t n, GRand *r, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)g_rand_double_range(r, lo, hi);
}

char *tu_data_root_or_skip(void)
{
    const char *repo = g_getenv("POLYPSEG_REPO");
    char *root = ps_data_root(repo);
    if (root)
        return root;
    if (g_strcmp0(g_getenv("CI"), "true") == 0) {
        g_test_fail_printf("datasets not found ($POLYPSEG_DATA or %s/../shared/datasets); CI must have them",
                           repo ? repo : ".");
        return NULL;
    }
    g_test_skip("datasets not found: set POLYPSEG_DATA or put them in ../shared/datasets");
    return NULL;
}

ps_model *tu_model_from_fixture(const ps_st_file *f)
{
    const char *arch = ps_st_meta(f, "arch"), *list = ps_st_meta(f, "channels");
    int channels[PS_MAX_CHANNELS], n = 0;
    /* "[a,b,...]": a fixture may use other widths than the architecture's default. */
    char **parts = g_strsplit_set(list ? list : "", "[], ", -1);
    for (char **p = parts; *p && n < PS_MAX_CHANNELS; p++)
        if (**p)
            channels[n++] = atoi(*p);
    g_strfreev(parts);
    GError *err = NULL;
    ps_model *m = ps_model_new(arch ? arch : "microaunet", n ? channels : NULL, n, 0, &err);
    g_assert_no_error(err);
    for (int i = 0; i < m->n_params; i++) {
        const ps_st_tensor *t = ps_st_find(f, m->params[i].name);
        if (!t || t->numel != ps_numel(m->params[i].t))
            g_error("fixture lacks parameter %s or its size differs", m->params[i].name);
        memcpy(m->params[i].t->data, t->data, t->numel * sizeof(float));
    }
    return m;
}

void tu_remove_tree(const char *path)
{
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
        GDir *d = g_dir_open(path, 0, NULL);
        const char *name;
        while (d && (name = g_dir_read_name(d))) {
            char *child = g_build_filename(path, name, NULL);
            tu_remove_tree(child);
            g_free(child);
        }
        if (d)
            g_dir_close(d);
    }
    g_remove(path);
}

void tu_write_disc_dataset(const char *dir, int n, int w, int h, guint32 seed)
{
    char *img_dir = g_build_filename(dir, "images", NULL), *mask_dir = g_build_filename(dir, "masks", NULL);
    g_mkdir_with_parents(img_dir, 0755);
    g_mkdir_with_parents(mask_dir, 0755);
    GRand *r = g_rand_new_with_seed(seed);
    for (int i = 0; i < n; i++) {
        ps_image *im = ps_image_new(w, h, 3), *mk = ps_image_new(w, h, 1);
        int cx = g_rand_int_range(r, w / 4, 3 * w / 4), cy = g_rand_int_range(r, h / 4, 3 * h / 4);
        int rad = g_rand_int_range(r, h / 8, h / 4);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                gboolean in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad;
                mk->data[y * w + x] = in ? 255 : 0;
                for (int c = 0; c < 3; c++)
                    im->data[(y * w + x) * 3 + c] = (uint8_t)((in ? 180 : 90) + g_rand_int_range(r, 0, 40) - c * 20);
            }
        char name[16];
        g_snprintf(name, sizeof name, "%d.png", i);
        char *pi = g_build_filename(img_dir, name, NULL), *pm = g_build_filename(mask_dir, name, NULL);
        g_assert_true(ps_image_save_png(pi, im, NULL));
        g_assert_true(ps_image_save_png(pm, mk, NULL));
        g_free(pi), g_free(pm);
        ps_image_free(im);
        ps_image_free(mk);
    }
    g_rand_free(r);
    g_free(img_dir), g_free(mask_dir);
}

void tu_limit_address_space(long extra_mb)
{
    char *status = NULL;
    g_assert_true(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
    const char *vm = strstr(status, "VmSize:");
    g_assert_nonnull(vm);
    const rlim_t bytes = (rlim_t)(atol(vm + strlen("VmSize:")) + extra_mb * 1024) * 1024;
    g_free(status);
    struct rlimit lim = {bytes, bytes};
    g_assert_cmpint(setrlimit(RLIMIT_AS, &lim), ==, 0);
}
