/* Training checkpoints: the model's tensors plus the optimiser's moments ("optim.m.<name>",
 * "optim.v.<name>"), the weights' moving average when there is one ("optim.ema.<name>") and the
 * training position, in one safetensors file written atomically. */
#pragma once
#include "ema.h"
#include "optim.h"

typedef struct ps_train_pos {
    int epoch;  /* epochs fully completed */
    int batch;  /* batches done in epoch `epoch` when stopped mid-epoch (0 otherwise) */
} ps_train_pos;

/* `meta` (may be NULL) adds keys, e.g. the run's configuration; `ema` may be NULL. */
gboolean ps_checkpoint_save(const char *path, const ps_model *m, const ps_adamw *opt, const ps_ema *ema,
                            ps_train_pos pos, GHashTable *meta, GError **err);
/* Builds the model from the checkpoint and restores the optimiser (initialised here) and
 * position. *meta_out (may be NULL) receives a copy of the metadata; *ema_out (may be NULL)
 * the moving average, or NULL when the checkpoint has none. */
ps_model *ps_checkpoint_load(const char *path, ps_adamw *opt, float lr, float weight_decay,
                             ps_train_pos *pos, GHashTable **meta_out, ps_ema **ema_out, GError **err);
