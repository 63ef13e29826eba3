/* polypseg-bench: inference ms/frame and training img/s of our C core, one JSON line.
 * scripts/bench_train.sh runs it beside the PyTorch implementation of the same step. */
#include <stdio.h>
#include <stdlib.h>
#include "backward.h"
#include "loss.h"
#include "optim.h"
#include "preprocess.h"

int main(int argc, char **argv)
{
    char *arch = g_strdup("microaunet");
    int batch = 8, size = 256, steps = 5, frames = 20, threads = 1;
    GOptionEntry entries[] = {
        {"arch", 0, 0, G_OPTION_ARG_STRING, &arch, "microaunet (default) or microaunet-w8", "NAME"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Training batch (default 8)", "N"},
        {"size", 0, 0, G_OPTION_ARG_INT, &size, "Input side (default 256)", "PX"},
        {"steps", 0, 0, G_OPTION_ARG_INT, &steps, "Timed training steps (default 5, after 1 warm-up)", "N"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &threads, "Inference threads (default 1)", "N"},
        {"frames", 0, 0, G_OPTION_ARG_INT, &frames, "Timed inference frames (default 20, after 2 warm-up)", "N"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- benchmark inference and training speed");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "polypseg-bench: %s\n", err->message);
        return 2;
    }
    if (size % 32 || size < PS_MIN_INPUT || size > PS_MAX_INPUT || batch < 1 || steps < 1 || frames < 1) {
        fprintf(stderr, "polypseg-bench: --size must be a multiple of 32 in %d..%d; --batch, --steps "
                        "and --frames at least 1\n", PS_MIN_INPUT, PS_MAX_INPUT);
        return 2;
    }
    g_option_context_free(ctx);
    ps_model *m = ps_model_new(arch, NULL, 0, 1, &err);
    if (!m) {
        fprintf(stderr, "polypseg-bench: %s\n", err->message);
        return 2;
    }
    m->info.input_size = size;
    GRand *r = g_rand_new_with_seed(7);

    /* Inference: one frame of random RGB through the whole pre-processing + model path. */
    ps_segmenter *seg = ps_segmenter_new(m);
    ps_segmenter_set_threads(seg, threads);
    uint8_t *frame = malloc((size_t)size * size * 3);
    for (long i = 0; i < (long)size * size * 3; i++)
        frame[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    for (int i = 0; i < 2; i++)
        ps_segmenter_run(seg, frame, size, size, size * 3);
    gint64 t0 = g_get_monotonic_time();
    for (int i = 0; i < frames; i++)
        ps_segmenter_run(seg, frame, size, size, size * 3);
    double infer_ms = (g_get_monotonic_time() - t0) / 1e3 / frames;

    /* Training: forward, loss, backward and AdamW on random data. */
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
    for (int s = 0; s <= steps; s++) {
        if (s == 1)
            t0 = g_get_monotonic_time();
        ps_model_zero_grad(m);
        ps_graph_clear(&g);
        ps_tensor *logits = ps_model_forward(m, &g, x, NULL);
        logits->grad = ps_arena_calloc(arena, ps_numel(logits) * sizeof(float));
        ps_loss_bce_logits(logits, t, 1.0f);
        ps_loss_dice(logits, t, 1.0f);
        ps_backward(&g, logits);
        ps_adamw_step(&opt, m, 1e-3f);
    }
    double img_s = (double)steps * batch / ((g_get_monotonic_time() - t0) / 1e6);
    printf("{\"impl\":\"polypseg-c\",\"arch\":\"%s\",\"params\":%zu,\"batch\":%d,\"size\":%d,"
           "\"train_img_per_s\":%.2f,\"threads\":%d,\"infer_ms\":%.2f,\"train_arena_mb\":%.1f}\n",
           arch, ps_model_count_trainable(m), batch, size, img_s, threads, infer_ms, ps_arena_used(arena) / 1048576.0);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_adamw_free(&opt);
    ps_tensor_free(x);
    ps_tensor_free(t);
    free(frame);
    ps_segmenter_free(seg);
    ps_model_free(m);
    g_rand_free(r);
    g_free(arch);
    return 0;
}
