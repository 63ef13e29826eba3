/* polypseg-bench: inference latency (per stage, p50/p95/p99 per frame, FPS, CPU time per frame) for each model,
 * input size and thread count asked for, and training img/s; a table on stdout and, with
 * --json, one JSON object per configuration. scripts/bench_train.sh runs it beside the PyTorch
 * implementation of the same work. */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backward.h"
#include "kernels.h"
#include "loss.h"
#include "optim.h"
#include "preprocess.h"

#define MAX_STAGES 24

/* Per-stage times of the frames run so far: the hook adds the time since the previous mark. */
typedef struct stages {
    int n;
    const char *name[MAX_STAGES];
    double ms[MAX_STAGES];
    gint64 last;
} stages;

static void on_stage(void *user, const char *stage)
{
    stages *st = user;
    gint64 now = g_get_monotonic_time();
    int i = 0;
    while (i < st->n && strcmp(st->name[i], stage) != 0)
        i++;
    if (i == st->n && st->n < MAX_STAGES)
        st->name[st->n++] = stage;
    if (i < MAX_STAGES)
        st->ms[i] += (now - st->last) / 1e3;
    st->last = now;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double p)
{
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

typedef struct result {
    double p50, p95, p99, mean, fps;
    double cpu_p50; /* CPU time of the calling thread per frame (ms): with one thread, the frame's
                     * own work, little affected by other processes sharing the cores */
    stages st;
} result;

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Frames of random RGB at the model's size through the whole segmenter path. */
static result bench_inference(ps_model *m, int size, int threads, int tta, int frames, GRand *r)
{
    result res = {0};
    m->info.input_size = size;
    ps_segmenter *seg = ps_segmenter_new(m);
    ps_segmenter_set_threads(seg, threads);
    ps_segmenter_set_tta(seg, tta);
    uint8_t *frame = malloc((size_t)size * size * 3);
    for (long i = 0; i < (long)size * size * 3; i++)
        frame[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    for (int i = 0; i < 3; i++) /* warm-up: the arena grows, pages fault in */
        ps_segmenter_run(seg, frame, size, size, size * 3);
    double *lat = malloc(frames * sizeof *lat), *cpu = malloc(frames * sizeof *cpu);
    ps_segmenter_set_stage_hook(seg, on_stage, &res.st);
    gint64 t_all = g_get_monotonic_time();
    for (int i = 0; i < frames; i++) {
        gint64 t0 = g_get_monotonic_time();
        double c0 = thread_cpu_ms();
        res.st.last = t0;
        ps_segmenter_run(seg, frame, size, size, size * 3);
        lat[i] = (g_get_monotonic_time() - t0) / 1e3;
        cpu[i] = thread_cpu_ms() - c0;
    }
    double total_s = (g_get_monotonic_time() - t_all) / 1e6;
    qsort(lat, frames, sizeof *lat, cmp_double);
    res.p50 = percentile(lat, frames, 50);
    res.p95 = percentile(lat, frames, 95);
    res.p99 = percentile(lat, frames, 99);
    qsort(cpu, frames, sizeof *cpu, cmp_double);
    res.cpu_p50 = percentile(cpu, frames, 50);
    res.mean = total_s * 1e3 / frames;
    res.fps = frames / total_s;
    for (int i = 0; i < res.st.n; i++)
        res.st.ms[i] /= frames;
    free(lat);
    free(cpu);
    free(frame);
    ps_segmenter_free(seg);
    return res;
}

/* Training steps (forward, loss, backward, AdamW) on random data, one thread. */
static double bench_training(ps_model *m, int batch, int size, int steps, GRand *r)
{
    ps_tensor *x = ps_tensor_new(batch, 3, size, size), *t = ps_tensor_new(batch, 1, size, size);
    for (size_t i = 0; i < ps_numel(x); i++)
        x->data[i] = (float)g_rand_double_range(r, -2, 2);
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = (float)g_rand_int_range(r, 0, 2);
    ps_adamw opt;
    ps_adamw_init(&opt, m, 1e-3f, 1e-2f);
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    gint64 t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1)
            t0 = g_get_monotonic_time(); /* step 0 is the warm-up */
        ps_model_zero_grad(m);
        ps_graph_clear(&g);
        ps_tensor *logits = ps_model_forward(m, &g, x, NULL);
        logits->grad = ps_arena_calloc(arena, ps_numel(logits) * sizeof(float));
        ps_loss_bce_logits(logits, t, NULL, 1.0f);
        ps_loss_dice(logits, t, 1.0f);
        ps_backward(&g, logits);
        ps_adamw_step(&opt, m, 1e-3f);
    }
    double img_s = (double)steps * batch / ((g_get_monotonic_time() - t0) / 1e6);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_adamw_free(&opt);
    ps_tensor_free(x);
    ps_tensor_free(t);
    return img_s;
}

static void add_double(JsonBuilder *b, const char *key, double v)
{
    json_builder_set_member_name(b, key);
    json_builder_add_double_value(b, v);
}

static char *json_line(const char *arch, const char *weights, size_t params, int size, int threads, int tta, const result *res,
                       int batch, double train_img_s)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "impl");
    json_builder_add_string_value(b, "polypseg-c");
    json_builder_set_member_name(b, "kernels");
    json_builder_add_string_value(b, ps_kernels_best()->name);
    json_builder_set_member_name(b, "arch");
    json_builder_add_string_value(b, arch);
    json_builder_set_member_name(b, "weights"); /* null: seeded random weights */
    if (weights)
        json_builder_add_string_value(b, weights);
    else
        json_builder_add_null_value(b);
    json_builder_set_member_name(b, "params");
    json_builder_add_int_value(b, (gint64)params);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, size);
    json_builder_set_member_name(b, "threads");
    json_builder_add_int_value(b, threads);
    json_builder_set_member_name(b, "tta");
    json_builder_add_int_value(b, tta);
    add_double(b, "infer_ms_p50", res->p50);
    add_double(b, "infer_ms_p95", res->p95);
    add_double(b, "infer_ms_p99", res->p99);
    add_double(b, "infer_ms", res->mean);
    add_double(b, "fps", res->fps);
    add_double(b, "cpu_ms_p50", res->cpu_p50);
    json_builder_set_member_name(b, "stage_ms");
    json_builder_begin_object(b);
    for (int i = 0; i < res->st.n; i++)
        add_double(b, res->st.name[i], res->st.ms[i]);
    json_builder_end_object(b);
    if (train_img_s > 0) {
        json_builder_set_member_name(b, "batch");
        json_builder_add_int_value(b, batch);
        add_double(b, "train_img_per_s", train_img_s);
    }
    json_builder_end_object(b);
    JsonGenerator *gen = json_generator_new();
    JsonNode *root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    char *text = json_generator_to_data(gen, NULL);
    json_node_unref(root);
    g_object_unref(gen);
    g_object_unref(b);
    return text;
}

/* "1,2" -> {1, 2}; FALSE on anything that is not a list of positive integers. */
static gboolean parse_ints(const char *text, int *out, int max, int *n)
{
    char **parts = g_strsplit(text, ",", -1);
    *n = 0;
    gboolean ok = TRUE;
    for (char **p = parts; *p && ok; p++) {
        char *end;
        long v = strtol(*p, &end, 10);
        ok = *n < max && end != *p && *end == '\0' && v > 0 && v < 100000;
        if (ok)
            out[(*n)++] = (int)v;
    }
    g_strfreev(parts);
    return ok && *n > 0;
}

/* An architecture's seeded random model, or (from_file) the model of a weights file. */
static ps_model *open_model(const char *name, gboolean from_file, GError **err)
{
    return from_file ? ps_model_load(name, err) : ps_model_new(name, NULL, 0, 1, err);
}

int main(int argc, char **argv)
{
    char *archs = NULL, *sizes_s = g_strdup("256"), *threads_s = g_strdup("1");
    char *json = NULL, *weights = NULL;
    int batch = 8, steps = 5, frames = 200, tta = 1;
    GOptionEntry entries[] = {
        {"arch", 0, 0, G_OPTION_ARG_STRING, &archs, "Models, comma-separated (default microaunet)", "A[,B]"},
        {"weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Benchmark the model of this file, its architecture and trained weights (instead of --arch's seeded random ones; the speed is the same, this makes a side-by-side run with PyTorch use one model and weights)", "FILE"},
        {"size", 0, 0, G_OPTION_ARG_STRING, &sizes_s, "Input sides, comma-separated (default 256)", "PX[,PX]"},
        {"threads", 't', 0, G_OPTION_ARG_STRING, &threads_s, "Inference thread counts (default 1)", "N[,N]"},
        {"frames", 0, 0, G_OPTION_ARG_INT, &frames, "Timed inference frames per configuration (default 200)", "N"},
        {"steps", 0, 0, G_OPTION_ARG_INT, &steps, "Timed training steps per model and size (default 5; 0 = none)", "N"},
        {"tta", 0, 0, G_OPTION_ARG_INT, &tta, PS_TTA_HELP, "N"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Training batch (default 8)", "N"},
        {"json", 'j', 0, G_OPTION_ARG_FILENAME, &json, "Write one JSON object per configuration and line to FILE (- = stdout)", "FILE"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- benchmark inference latency and training speed");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(ctx,
        "Example:\n  polypseg-bench --arch microaunet,microaunet-w8 --size 256 --threads 1,2 --json out/bench.jsonl\n");
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "polypseg-bench: %s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (archs && weights) {
        fprintf(stderr, "polypseg-bench: --arch and --weights exclude each other (the file names its architecture)\n");
        return 2;
    }
    if (!archs)
        archs = g_strdup("microaunet");
    int sizes[16], n_sizes, threads[16], n_threads;
    if (!parse_ints(sizes_s, sizes, 16, &n_sizes) || !parse_ints(threads_s, threads, 16, &n_threads) ||
        batch < 1 || steps < 0 || frames < 1 || tta < 1 || tta > PS_TTA_MAX) {
        fprintf(stderr, "polypseg-bench: --size and --threads take comma-separated positive numbers; "
                        "--batch and --frames at least 1, --steps at least 0, --tta 1..%d\n", PS_TTA_MAX);
        return 2;
    }
    for (int i = 0; i < n_sizes; i++)
        if (sizes[i] % 32 || sizes[i] < PS_MIN_INPUT || sizes[i] > PS_MAX_INPUT) {
            fprintf(stderr, "polypseg-bench: --size %d: a multiple of 32 in %d..%d\n", sizes[i],
                    PS_MIN_INPUT, PS_MAX_INPUT);
            return 2;
        }
    FILE *jf = NULL;
    if (json && strcmp(json, "-") != 0 && !(jf = fopen(json, "w"))) {
        fprintf(stderr, "polypseg-bench: cannot write %s\n", json);
        return 1;
    }
    printf("kernels: %s\n", ps_kernels_best()->name);
    if (tta > 1)
        printf("test-time augmentation: %d views per frame\n", tta);
    printf("%-14s %5s %7s %8s %8s %8s %8s %8s  %s\n", "model", "size", "threads", "p50 ms", "p95 ms",
           "p99 ms", "FPS", "cpu ms", "train img/s");
    GRand *r = g_rand_new_with_seed(7);
    char **arch_list = weights ? g_strdupv((char *[]){weights, NULL}) : g_strsplit(archs, ",", -1);
    int rc = 0;
    for (char **a = arch_list; *a && rc == 0; a++) {
        ps_model *m = open_model(*a, weights != NULL, &err);
        if (!m) {
            fprintf(stderr, "polypseg-bench: %s\n", err->message);
            rc = 2;
            break;
        }
        for (int si = 0; si < n_sizes; si++) {
            double train = 0;
            if (steps > 0) { /* on a copy: the steps change the weights the inference runs use */
                ps_model *t = open_model(*a, weights != NULL, &err);
                if (!t) {
                    fprintf(stderr, "polypseg-bench: %s\n", err->message);
                    rc = 2;
                    break;
                }
                train = bench_training(t, batch, sizes[si], steps, r);
                ps_model_free(t);
            }
            for (int ti = 0; ti < n_threads; ti++) {
                result res = bench_inference(m, sizes[si], threads[ti], tta, frames, r);
                char train_s[32] = "";
                if (train > 0 && ti == 0)
                    g_snprintf(train_s, sizeof train_s, "%.1f (batch %d)", train, batch);
                printf("%-14s %5d %7d %8.2f %8.2f %8.2f %8.0f %8.2f  %s\n", m->info.arch, sizes[si], threads[ti], res.p50,
                       res.p95, res.p99, res.fps, res.cpu_p50, train_s);
                printf("  stages (ms):");
                for (int i = 0; i < res.st.n; i++)
                    printf(" %s %.3f", res.st.name[i], res.st.ms[i]);
                printf("\n");
                char *line = json_line(m->info.arch, weights, ps_model_count_trainable(m), sizes[si], threads[ti], tta, &res, batch,
                                       ti == 0 ? train : 0);
                if (json && !jf)
                    printf("%s\n", line);
                if (jf)
                    fprintf(jf, "%s\n", line);
                g_free(line);
                fflush(stdout);
            }
        }
        ps_model_free(m);
    }
    if (jf)
        fclose(jf);
    g_strfreev(arch_list);
    g_rand_free(r);
    g_free(archs);
    g_free(sizes_s);
    g_free(threads_s);
    g_free(json);
    g_free(weights);
    return rc;
}
