/* Image -> model input, and model output -> probabilities. */
#pragma once
#include <stdint.h>
#include "model.h"

/* Bilinear-resizes an interleaved RGB image (stride in bytes) to the tensor's H x W, scales to
 * [0,1] and normalises with mean/std, writing sample `n` of the (N,3,H,W) tensor. `scratch`
 * holds at least H*W*3 bytes. Not the reference code's per-image min-max normalisation. */
void ps_preprocess_rgb(const uint8_t *rgb, int w, int h, int stride, const float mean[3],
                       const float std[3], ps_tensor *out, int n, uint8_t *scratch);

/* The reference of the normalisation kernel: count interleaved RGB pixels -> three planes,
 * d_c[i] = fmaf(rgb[3i + c], scale[c], -shift[c]), i.e. (v / 255 - mean) / std with
 * scale = 1 / (255 std) and shift = mean / std. */
void ps_normalise_rgb_ref(const uint8_t *rgb, int count, const float scale[3], const float shift[3], float *d0,
                          float *d1, float *d2);

/* The references of the frame-conversion kernels (kernels.h, frame_row_*: what each computes is
 * described there), plain loops compiled without contracted multiply-adds like the kernels. */
void ps_frame_row_packed4_ref(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                              const float *wx, float wy, const int *shift, int n, const float *scale,
                              const float *nshift, float *const *planes);
void ps_frame_row_sample_ref(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                             const float *wx, float wy, int n, float *out);
void ps_frame_row_combine_ref(const float *const *samples, int n, const float *matrix, const float *offset,
                              const float *scale, const float *nshift, float *const *planes);

/* Runs a model on single frames, reusing its buffers between calls. */
typedef struct ps_segmenter ps_segmenter;
ps_segmenter *ps_segmenter_new(ps_model *m);
void ps_segmenter_free(ps_segmenter *s);
/* Before a live stream: makes the buffers a frame takes now (a run on the blank input) rather
 * than on the first frame, after checking that about that much memory can be had (measured at
 * the smallest side, scaled by the area); FALSE with err set when it cannot, instead of the
 * abort an allocation failure mid-stream would be. */
gboolean ps_segmenter_prepare(ps_segmenter *s, GError **err);
int ps_segmenter_size(const ps_segmenter *s); /* side of the probability map */
/* Threads that share each frame's work (default 1: the caller only). The result does not
 * depend on it: every value is computed the same way whichever thread computes it. */
void ps_segmenter_set_threads(ps_segmenter *s, int threads);
int ps_segmenter_threads(const ps_segmenter *s);
/* Test-time augmentation: the probabilities become the mean over the first `views`
 * (1..PS_TTA_MAX) views of the square input, in the order of ps_view_source: 1 = off, 2 = + the
 * horizontal flip, 4 = every flip, 8 = every flip and quarter turn (the symmetric choices; other
 * counts are allowed and take the first N). Each view costs one more run of the model. Clamped
 * to 1..PS_TTA_MAX. */
#define PS_TTA_MAX 8
/* The option's help, shared by the tools and the element's property. */
#define PS_TTA_HELP                                                                                   \
    "Test-time augmentation: average the probabilities over the first N of 8 views (1 = off, 2 = + " \
    "the mirror image, 4 = every flip, 8 = every flip and quarter turn; 3, 5-7 take the first N); "  \
    "each view is one more run of the model"
void ps_segmenter_set_tta(ps_segmenter *s, int views);
int ps_segmenter_tta(const ps_segmenter *s);
/* Index in a size x size map of the pixel that view `view` (0..7) shows at (y, x): 0 itself,
 * 1 horizontal flip, 2 vertical flip, 3 both, 4 transpose, 5..7 the transpose flipped. */
int ps_view_source(int view, int size, int y, int x);
/* A whole size x size map seen through `view`: dst[y][x] = src[ps_view_source(view, size, y, x)]
 * (add = 0), or dst[y][x] += that (add = 1); row by row, in cache-friendly tiles. */
void ps_view_gather(int view, int size, const float *src, float *dst, int add);
/* The view that undoes `view` (5 and 6 are quarter turns, each the other's inverse; the others
 * are reflections): a map seen through `view` and then through its inverse is the map itself. */
int ps_view_inverse(int view);
/* The segmenter's thread pool (NULL on one thread), for the caller's own per-frame work. */
ps_pool *ps_segmenter_pool(ps_segmenter *s);
/* Calls on_stage(user, name) at the end of each stage of a frame: "preprocess", the model's
 * blocks, "postprocess" (for per-stage timing; NULL turns it off). With test-time augmentation
 * the blocks come again for each further view, after "tta-views" (that view's flipped copy of
 * the input) and before "tta-merge" (the view's sigmoid, added back into the result). */
void ps_segmenter_set_stage_hook(ps_segmenter *s, void (*on_stage)(void *user, const char *stage),
                                 void *user);
/* Probability map (size x size, row-major, sigmoid of the logits), valid until the next call. */
const float *ps_segmenter_run(ps_segmenter *s, const uint8_t *rgb, int w, int h, int stride);
/* The same in pieces, for a caller that makes the input row by row (the GStreamer element, on
 * several threads, while converting a frame, with the frame_row_* kernels): row y of each of
 * the model input's three planes, and the normalisation of a byte v into plane k,
 * fmaf(v, scale[k], -shift[k]) (planes, scale and shift are 3-arrays); any rows at once from
 * different threads. Then the model on the filled input. The result equals ps_segmenter_run's
 * for the same size x size image. */
void ps_segmenter_input_row(ps_segmenter *s, int y, float **planes, const float **scale, const float **shift);
const float *ps_segmenter_run_filled(ps_segmenter *s);
