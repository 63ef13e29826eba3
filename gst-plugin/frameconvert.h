/* A video frame of any format the element accepts -> the model's square RGB input, resized
 * while converting: each output pixel is sampled bilinearly (half-pixel centres, like the
 * core's resize) from each component plane at that plane's own resolution, then YUV is turned
 * into RGB with the stream's matrix. The full frame is never converted. For RGB formats the
 * result equals ps_resize_bilinear_u8 of the frame, bit for bit. */
#pragma once
#include <gst/video/video.h>
#include "colour.h"
#include "image.h"

typedef struct {
    int size;         /* side of the output */
    gboolean yuv;
    PsYuv matrix;
    PsYuvToRgb to_rgb;
    int comp_axes[3]; /* per component: which of the axis pairs below (by its subsampling) */
    gboolean packed4; /* R, G, B are bytes of one 4-byte pixel: shift[] finds each in a word */
    int shift[3];
    int *word0, *word1; /* per output column, the byte offsets of the two pixels it reads */
    ps_axis_map ax[2], ay[2]; /* per subsampling: sample indices and weights */
} PsFrameConvert;

/* Builds the sampling tables for frames of `info` (once per caps). */
void ps_frame_convert_init(PsFrameConvert *c, const GstVideoInfo *info, int size);
void ps_frame_convert_clear(PsFrameConvert *c);
/* Output row y (size pixels of interleaved RGB at out); allocates nothing. Row by row, so a
 * frame can be converted by several threads straight into the model input
 * (ps_segmenter_fill_row). */
void ps_frame_convert_row(const PsFrameConvert *c, const GstVideoFrame *frame, int y, guint8 *out);
