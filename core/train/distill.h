/* Progressive two-stage knowledge distillation (MicroAUNet's scheme as its paper intends it).
 * Stage 1 (imitation): the student's temperature-softened probabilities follow the teacher's
 * (binary KL) and its encoder features t1..t5, through learned 1x1 adapters, follow the
 * teacher's (MSE). Stage 2: the KL term alone, weighted towards the polyp's boundary band and the
 * pixels the teacher is confident about. The segmentation loss stays on in both stages. */
#pragma once
#include "../lib/model.h"

/* The adapters are trainable parameters of the student while it trains (PS_DISTILL_PREFIX
 * "adapterK.*"), so the optimiser and checkpoints carry them; they are dropped before the final
 * save. */
typedef struct ps_distill_opts {
    int stage1_epochs;     /* epochs of stage 1; the remaining ones are stage 2 */
    float temperature;     /* T: probabilities sigmoid(z / T) */
    float kd_weight;       /* stage 1: KL(teacher || student) */
    float feature_weight;  /* stage 1: adapted-feature MSE over the teacher feature's mean square,
                            * averaged over t1..t5 */
    float focus_weight;    /* stage 2: pixel-weighted KL */
    int boundary_radius;   /* stage 2: half-width of the boundary band, in input pixels */
    float boundary_gain;   /* stage 2: extra weight inside the band */
    float confidence_gain; /* stage 2: extra weight times the teacher's |2p - 1| */
    int teacher_views;     /* the teacher's probabilities averaged over the first N of the 8
                            * test-time-augmentation views (1 = off; see ps_segmenter_set_tta) */
} ps_distill_opts;

/* The documented defaults (polypseg-train --help shows them). */
ps_distill_opts ps_distill_defaults(int epochs);

typedef struct ps_distiller ps_distiller;

/* Checks that teacher and student fit together (five encoder features, one normalisation) and,
 * unless the student already carries all of them in the right shapes (a resumed checkpoint),
 * adds the adapters to it, initialised from `seed`. Owns the teacher from then on. NULL (err
 * set; the student unchanged, the teacher still the caller's) when they do not fit. */
ps_distiller *ps_distiller_new(ps_model *teacher, ps_model *student, const ps_distill_opts *o,
                               uint64_t seed, GError **err);
void ps_distiller_free(ps_distiller *d);

/* 1 or 2: the stage an epoch (0-based) belongs to. */
int ps_distiller_stage(const ps_distiller *d, int epoch);

/* After the student's forward pass in training graph `g` (logits with their gradient buffer,
 * features t1..t5): runs the teacher on `images`, adds the stage's distillation terms to the
 * gradients (the adapters are recorded into g, so ps_backward reaches them and the encoder) and
 * returns their value. Call before ps_backward. */
double ps_distiller_loss(ps_distiller *d, ps_graph *g, int stage, const ps_tensor *images,
                         const ps_tensor *masks, ps_tensor *logits, ps_tensor *const *features);

/* The teacher's logits for `images` (N,3,S,S): with `views` <= 1 its plain pass's (in g's
 * arena; scratch and out unused, may be NULL); otherwise, into `out` (N,1,S,S), the logit of its
 * probabilities averaged over the first `views` test-time-augmentation views (each view's map
 * turned back first), clamped to +-PS_TEACHER_LOGIT_MAX. `features` (may be NULL) receives the
 * plain view's encoder features t1..t5, which live in g's arena until it is next cleared.
 * `scratch` has the images' shape. */
#define PS_TEACHER_LOGIT_MAX 16.0f
ps_tensor *ps_teacher_logits(ps_model *teacher, ps_graph *g, ps_tensor *images, int views, ps_tensor *scratch,
                             ps_tensor *out, ps_tensor **features);

/* After training: removes the adapters from the student (which then saves as the plain
 * architecture); the distiller computes no stage-1 loss any more. */
void ps_distiller_detach(ps_distiller *d, ps_model *student);

