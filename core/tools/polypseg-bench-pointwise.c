/* Our pointwise-conv kernel against OpenBLAS's sgemm on the pointwise shapes of MicroAUNet's
 * encoder (issue 4: "OpenBLAS sgemm where it wins"). A pointwise conv of one image is the
 * matrix product y (cout x n) = w (cout x cin) . x (cin x n) plus a bias (and a ReLU or a
 * residual in the model). Timed: our kernel (with the bias); sgemm alone, without it (a lower
 * bound of a BLAS layer); and sgemm onto rows first filled with the bias (beta = 1), the
 * cheapest complete BLAS layer. All on one thread; each shape is timed in alternating rounds
 * and the fastest round counts (the host is shared). Prints a table, or JSON lines (--json). */
#include <cblas.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "model.h"

typedef struct {
    int cin, cout;
    size_t n;
    float *x, *w, *b, *y;
} shape;

typedef void (*runner)(const shape *s);

static const ps_kernels *kernels;

static void run_ours(const shape *s)
{
    kernels->conv_pointwise(s->x, s->w, s->b, NULL, s->y, s->cin, s->cout, s->n, s->n, 0);
}

static void run_sgemm(const shape *s)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, (int)s->n, s->cin, 1.0f, s->w, s->cin, s->x,
                (int)s->n, 0.0f, s->y, (int)s->n);
}

static void run_sgemm_bias(const shape *s)
{
    for (int o = 0; o < s->cout; o++) {
        float *row = s->y + (size_t)o * s->n;
        for (size_t i = 0; i < s->n; i++)
            row[i] = s->b[o];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, (int)s->n, s->cin, 1.0f, s->w, s->cin, s->x,
                (int)s->n, 1.0f, s->y, (int)s->n);
}

/* Microseconds per call: `reps` calls timed together. */
static double time_us(runner run, const shape *s, int reps)
{
    gint64 t0 = g_get_monotonic_time();
    for (int i = 0; i < reps; i++)
        run(s);
    return (double)(g_get_monotonic_time() - t0) / reps;
}

/* 64-byte aligned, as the model's arena tensors are. */
static float *random_floats(size_t n, GRand *r)
{
    float *p = g_aligned_alloc(n, sizeof *p, 64);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)g_rand_double_range(r, -1, 1);
    return p;
}

/* The encoder's pointwise shapes at input side `size` for channels c[0..5]: enc1's 3 -> c0 at
 * full resolution, then at each level's resolution a DWD's c -> c, an LDGA's c -> next c and its
 * gate's c -> 1. */
static int encoder_shapes(const int *c, int size, shape *out)
{
    int k = 0;
    out[k++] = (shape){.cin = 3, .cout = c[0], .n = (size_t)size * size};
    for (int level = 0; level < 5; level++) {
        const size_t side = (size_t)size >> (level + 1), n = side * side;
        out[k++] = (shape){.cin = c[level], .cout = c[level], .n = n};
        out[k++] = (shape){.cin = c[level], .cout = c[level + 1], .n = n};
        out[k++] = (shape){.cin = c[level], .cout = 1, .n = n};
    }
    return k;
}

int main(int argc, char **argv)
{
    int size = 256, rounds = 7;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        {"size", 0, 0, G_OPTION_ARG_INT, &size, "Model input side (default 256)", "PX"},
        {"rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Alternating timing rounds per shape; the fastest counts (default 7)", "N"},
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "One JSON line per shape instead of the table", NULL},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- our pointwise kernel against OpenBLAS sgemm");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || size < 64 || size % 32 || rounds < 1) {
        fprintf(stderr, "polypseg-bench-pointwise: %s\n", err ? err->message : "size: a multiple of 32 from 64; rounds >= 1");
        return 2;
    }
    g_option_context_free(ctx);
    kernels = ps_kernels_best();
    openblas_set_num_threads(1);
    static const char *const archs[] = {"microaunet", "microaunet-w8"};
    GRand *r = g_rand_new_with_seed(1);
    if (!json)
        printf("kernels %s, OpenBLAS %s, one thread, input %d\n%-14s %5s %5s %7s %9s %9s %6s %11s %6s\n",
               kernels->name, openblas_get_config(), size, "model", "cin", "cout", "n", "ours us", "sgemm us", "ratio",
               "+ bias us", "ratio");
    for (size_t a = 0; a < G_N_ELEMENTS(archs); a++) {
        ps_model *m = ps_model_new(archs[a], NULL, 0, 1, NULL); /* for its channel counts */
        shape shapes[16];
        const int count = encoder_shapes(m->info.channels, size, shapes);
        ps_model_free(m);
        for (int i = 0; i < count; i++) {
            shape *s = &shapes[i];
            s->x = random_floats((size_t)s->cin * s->n, r);
            s->w = random_floats((size_t)s->cin * s->cout, r);
            s->b = random_floats((size_t)s->cout, r);
            s->y = g_aligned_alloc((size_t)s->cout * s->n, sizeof(float), 64);
            /* about a millisecond per timing, so the microsecond clock resolves it */
            const int reps = (int)(2e7 / ((double)s->n * (s->cin + 4) * (s->cout + 1))) + 3;
            double ours = 1e30, blas = 1e30, blas_bias = 1e30;
            run_ours(s), run_sgemm(s), run_sgemm_bias(s); /* warm-up */
            for (int round = 0; round < rounds; round++) {
                ours = MIN(ours, time_us(run_ours, s, reps));
                blas = MIN(blas, time_us(run_sgemm, s, reps));
                blas_bias = MIN(blas_bias, time_us(run_sgemm_bias, s, reps));
            }
            if (json)
                printf("{\"arch\":\"%s\",\"size\":%d,\"cin\":%d,\"cout\":%d,\"n\":%zu,\"ours_us\":%.3f,"
                       "\"sgemm_us\":%.3f,\"sgemm_bias_us\":%.3f}\n",
                       archs[a], size, s->cin, s->cout, s->n, ours, blas, blas_bias);
            else
                printf("%-14s %5d %5d %7zu %9.2f %9.2f %5.2fx %11.2f %5.2fx\n", archs[a], s->cin, s->cout, s->n,
                       ours, blas, blas / ours, blas_bias, blas_bias / ours);
            g_aligned_free(s->x), g_aligned_free(s->w), g_aligned_free(s->b), g_aligned_free(s->y);
        }
    }
    if (!json)
        printf("ratio: sgemm time / ours (above 1: ours is faster); sgemm alone lacks the bias ours adds\n");
    g_rand_free(r);
    return 0;
}
