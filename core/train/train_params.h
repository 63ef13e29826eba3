/* Parameters a model carries only while it trains (distillation's feature adapters, deep
 * supervision's heads): 1x1 convs added under a name prefix, so the optimiser and checkpoints
 * carry them, and dropped before the final save. */
#pragma once
#include "../lib/model.h"

/* 1x1 convs k = 0..n-1, weight (out[k], in[k], 1, 1) and bias (out[k]), named stem followed by
 * k + first and ".weight" / ".bias". Found when m already carries all of them in these shapes (a
 * resumed checkpoint); otherwise added, each weight uniform in +-bound[k] from a generator seeded
 * with `seed`, biases zero. w[k] and b[k] receive them. FALSE (err set, naming them as `what`;
 * m unchanged) when only some are present or one has another shape. */
gboolean ps_train_convs_1x1(ps_model *m, const char *stem, int first, int n, const int *in, const int *out,
                            const double *bound, guint32 seed, const char *what, ps_tensor **w, ps_tensor **b,
                            GError **err);

/* Removes every parameter named with `prefix` from m. */
void ps_model_drop_params(ps_model *m, const char *prefix);
