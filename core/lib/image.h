/* 8-bit images: JPEG (libjpeg-turbo) and PNG (libpng) decode/encode, and bilinear resizing. */
#pragma once
#include <glib.h>
#include <stdint.h>

typedef struct ps_image {
    int w, h, c;   /* c = 1 (grey) or 3 (RGB), interleaved rows, stride = w*c */
    uint8_t *data; /* owned */
} ps_image;

GQuark ps_image_error_quark(void);
#define PS_IMAGE_ERROR ps_image_error_quark()

ps_image *ps_image_new(int w, int h, int c); /* zeroed */
void ps_image_free(ps_image *im);
/* Decodes JPEG or PNG (chosen by the file's magic bytes, not its name) to RGB (c=3); grey,
 * palette, 16-bit and alpha inputs are converted. Errors name the file and what is wrong. */
ps_image *ps_image_load_rgb(const char *path, GError **err);
/* Loads a ground-truth mask: grey value (luma of RGB) >= 128 -> 255, else 0; c = 1. */
ps_image *ps_image_load_mask(const char *path, GError **err);
/* PNG, c = 1 or 3, written atomically (temporary file + rename). */
gboolean ps_image_save_png(const char *path, const ps_image *im, GError **err);

/* Bilinear resize with half-pixel centres (align_corners=False, like cv2.INTER_LINEAR /
 * torch interpolate(mode="bilinear")), any channel count; src stride in bytes. */
void ps_resize_bilinear_u8(const uint8_t *src, int sw, int sh, int sstride, int c,
                           uint8_t *dst, int dw, int dh, int dstride);
/* The same resize made once for a stream of same-sized images (its tables and row buffers), so
 * running it allocates nothing. `reuse` (may be NULL) is returned when it has these sizes,
 * otherwise freed and replaced; NULL (and a critical warning) for a size below 1. */
typedef struct ps_resize_plan ps_resize_plan;
ps_resize_plan *ps_resize_plan_reuse(ps_resize_plan *reuse, int sw, int sh, int c, int dw, int dh);
void ps_resize_plan_run(ps_resize_plan *p, const uint8_t *src, int sstride, uint8_t *dst, int dstride);
void ps_resize_plan_free(ps_resize_plan *p); /* NULL is fine */
/* The mapping both resizes use, for one axis from s source to d output samples: for each output
 * index the two source indices (multiplied by `step`) and the weight of the second, from
 * src = (dst + 0.5) * s/d - 0.5 clamped to [0, s-1]. Other code resampling the same way (the
 * GStreamer element) builds its tables from it. */
typedef struct ps_axis_map {
    int *i0, *i1;
    float *w1;
} ps_axis_map;
ps_axis_map ps_axis_map_new(int s, int d, int step);
void ps_axis_map_free(ps_axis_map *m); /* safe to call twice */

/* The same resize for a float plane (one channel). */
void ps_resize_bilinear_f32(const float *src, int sw, int sh, float *dst, int dw, int dh);
