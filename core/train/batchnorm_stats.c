#include "batchnorm_stats.h"
#include <glib.h>
#include <string.h>
#include "progress.h"

int ps_batchnorm_layers(const ps_model *m)
{
    int n = 0;
    for (int p = 0; p < m->n_params; p++)
        n += g_str_has_suffix(m->params[p].name, ".running_mean");
    return n;
}

ps_loader_config ps_batchnorm_loader_config(const ps_model *m, const char *crop_scale, int threads)
{
    ps_loader_config lc = {.size = m->info.input_size, .batch = 8, .seed = 1, .augment = 1, .shuffle = 0,
                           .threads = threads};
    if (!ps_crop_scale_parse(crop_scale, &lc.crop_min, &lc.crop_max))
        lc.crop_min = lc.crop_max = 0; /* the loader's default */
    memcpy(lc.mean, m->info.mean, sizeof lc.mean);
    memcpy(lc.std, m->info.std, sizeof lc.std);
    return lc;
}

int ps_recompute_batchnorm(ps_model *m, ps_loader *loader, int batch)
{
    const int size = m->info.input_size;
    ps_tensor *images = ps_tensor_new(batch, 3, size, size);
    ps_tensor *masks = ps_tensor_new(batch, 1, size, size);
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    ps_progress bar;
    ps_progress_init(&bar, "batch-norm statistics", ps_loader_batches_per_epoch(loader), 0);
    ps_loader_start_epoch(loader, 0);
    int k = 0;
    while (ps_loader_next(loader, images, masks)) {
        /* Momentum 1/k makes each running value the plain mean over the k batches so far. */
        g.bn_momentum = 1.0f / (float)++k;
        ps_graph_clear(&g);
        ps_model_forward(m, &g, images, NULL);
        ps_progress_update(&bar, k, "forward passes");
    }
    ps_progress_finish(&bar);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(images);
    ps_tensor_free(masks);
    return k;
}
