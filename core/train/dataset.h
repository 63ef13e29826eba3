/* Training/evaluation data: listing image/mask pairs, and a seeded augmenting batch loader
 * that decodes and augments on worker threads ahead of the compute. */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "../lib/image.h"
#include "../lib/tensor.h"

typedef struct ps_dataset {
    int n;
    char **image_paths; /* owned */
    char **mask_paths;  /* owned */
} ps_dataset;

/* `dir` holds images/ and masks/ with matching file names (Kvasir-SEG split folders, CVC-ClinicDB,
 * or any folder pair). With `split_file` (one file name per line), only those names, in that order;
 * without it, every file in images/ sorted by name. Errors name what is missing. */
ps_dataset *ps_dataset_open(const char *dir, const char *split_file, GError **err);
void ps_dataset_free(ps_dataset *ds);
/* Moves every pair of `other` to the end of `ds` and frees `other` (training on several sets). */
void ps_dataset_append(ps_dataset *ds, ps_dataset *other);

/* Root of the shared datasets: $POLYPSEG_DATA, else ../shared/datasets relative to `repo_root`
 * (NULL = current directory). Returns NULL if the folder does not exist. g_free() the result. */
char *ps_data_root(const char *repo_root);

#define PS_LOADER_MAX_SIZES 8

typedef struct ps_loader_config {
    int size;            /* output side (square), e.g. 256 */
    int batch;
    uint64_t seed;
    int augment;         /* flips, 90-degree rotations, random scale/crop, colour jitter */
    int shuffle;
    int threads;         /* worker threads for decoding/augmenting */
    float mean[3], std[3];
    /* Random crop side as a fraction of the image's (aspect kept): [crop_min, crop_max];
     * both 0 = the default 0.75..1. Above 1 the image is zoomed out, padded with black (as an
     * endoscope frame's surround). */
    float crop_min, crop_max;
    /* Multi-scale training: with n_sizes > 0 each batch is made at one of these sides, drawn
     * per batch from (seed, epoch, batch), instead of at `size`. Images are cached for the
     * largest of them and `size`. */
    int sizes[PS_LOADER_MAX_SIZES], n_sizes;
    /* Stronger augmentation, 0 = off (and then every other draw is as without it): each sample
     * also turns by an angle in [-rotate_max, rotate_max] degrees about its centre (corners
     * black, as an endoscope frame's surround), and its hue by one in [-hue_max, hue_max]
     * degrees (a rotation of the colours about the grey axis: brightness stays, tint changes,
     * as between endoscopes). */
    float rotate_max, hue_max;
    /* Copy-paste, 0 = off (and then every other draw is as without it): with this probability a
     * sample also gets the polyp of another training image (that whole image at the sample's
     * side, maybe mirrored) pasted at a random place, and the masks' union as its mask: more
     * polyps, in more places and surroundings, than the data has (Ghiasi et al. 2021). A draw
     * whose donor has no polyp pastes nothing, and a single-sample set never pastes. */
    float copy_paste;
} ps_loader_config;

/* Parses "MIN,MAX" (polypseg-train --crop-scale, as its weights' metadata records it) into a
 * config's crop range; FALSE unless 0 < MIN <= MAX <= 4. */
gboolean ps_crop_scale_parse(const char *s, float *crop_min, float *crop_max);

typedef struct ps_loader ps_loader;
/* Decodes every pair once up front (images cached at a moderate resolution), so epochs only
 * augment. Errors (an unreadable file) name the file. */
ps_loader *ps_loader_new(const ps_dataset *ds, const ps_loader_config *cfg, GError **err);
void ps_loader_free(ps_loader *l);
int ps_loader_batches_per_epoch(const ps_loader *l); /* floor(n / batch) when shuffling (drop last) */
/* The largest side a batch can have (`size`, or the largest of `sizes`): allocate for it. */
int ps_loader_max_side(const ps_loader *l);
/* Starts an epoch: order and augmentation depend only on (seed, epoch, sample), so a resumed
 * run sees exactly the same batches as an uninterrupted one. */
void ps_loader_start_epoch(ps_loader *l, int epoch);
/* Fills images (B,3,S,S, normalised) and masks (B,1,S,S, 0/1), S the batch's side (`size`, or
 * the one drawn from `sizes`), which it sets as their h and w: both must hold a full batch at
 * ps_loader_max_side(). Returns FALSE at epoch end. */
gboolean ps_loader_next(ps_loader *l, ps_tensor *images, ps_tensor *masks);
