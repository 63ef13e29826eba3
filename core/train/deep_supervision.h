/* Deep supervision: a 1x1 head on each of the decoder outputs dec2, dec3 and dec4 (1/4, 1/8 and
 * 1/16 of the input side) predicts the mask there, trained with BCE + Dice against the mask
 * averaged down to that size, so the decoder's inner levels learn the mask directly. The heads
 * are trainable parameters of the model while it trains (PS_DEEPSUP_PREFIX "headK.*"), carried
 * by checkpoints, and dropped before the final save. */
#pragma once
#include "../lib/model.h"

typedef struct ps_deepsup ps_deepsup;

/* Adds the heads to m (initialised from `seed`), or finds them when m already carries all of
 * them in the right shapes (a resumed checkpoint). `weight` scales the mean of the heads'
 * losses. NULL (err set, m unchanged) when m has some heads but not all, or mis-shaped. */
ps_deepsup *ps_deepsup_new(ps_model *m, float weight, uint64_t seed, GError **err);
void ps_deepsup_free(ps_deepsup *d);
/* Makes the next forward pass in training graph g note the decoder outputs (through g's stage
 * hook, which it takes over). */
void ps_deepsup_watch(ps_deepsup *d, ps_graph *g);
/* After that forward pass: records the heads into g, adds their loss's gradient to their
 * logits (so ps_backward reaches the heads and the decoder) and returns the loss. */
double ps_deepsup_loss(ps_deepsup *d, ps_graph *g, const ps_tensor *masks);
/* After training: removes the heads from m. */
void ps_deepsup_detach(ps_deepsup *d, ps_model *m);
