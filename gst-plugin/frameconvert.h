/* A video frame of any format the element accepts -> the model's normalised input, resized
 * while converting: each output pixel is sampled bilinearly (half-pixel centres, like the
 * core's resize) from each component plane at that plane's own resolution, YUV is turned into
 * RGB with the stream's matrix, and the byte that results is normalised straight into the
 * model's input planes (the core's frame_row_* kernels). The full frame is never converted.
 * For RGB formats the input equals the one ps_segmenter_run makes from the same image, bit
 * for bit. */
#pragma once
#include <gst/video/video.h>
#include "colour.h"
#include "image.h"

typedef struct {
    int size;         /* side of the output */
    gboolean yuv;
    PsYuv matrix;
    float to_rgb[9], offset[3]; /* sampled components -> RGB (the identity for RGB formats) */
    gboolean packed4; /* R, G, B are bytes of one 4-byte pixel: shift[] finds each in a word */
    int shift[3];
    int *off0[3], *off1[3]; /* per component and output column, the byte offsets of its two samples in a row */
    int comp_axes[3];       /* per component: which of the axis pairs below (by its subsampling) */
    ps_axis_map ax[2], ay[2]; /* per subsampling: sample indices and weights */
} PsFrameConvert;

/* Builds the sampling tables for frames of `info` (once per caps). */
void ps_frame_convert_init(PsFrameConvert *c, const GstVideoInfo *info, int size);
void ps_frame_convert_clear(PsFrameConvert *c);
/* Output row y into planes[k] (k = R, G, B; size floats each), a byte v normalised as
 * fmaf(v, scale[k], -shift[k]) (ps_segmenter_input_row gives all three). Allocates nothing.
 * Row by row, so several threads can convert one frame straight into the model input. */
void ps_frame_convert_row(const PsFrameConvert *c, const GstVideoFrame *frame, int y, float *const *planes,
                          const float *scale, const float *shift);
