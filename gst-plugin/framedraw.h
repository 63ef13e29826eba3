/* Drawing the result into the frame. Pixels are first marked on a frame-sized coverage map
 * (polyp tint or contour line), then every component plane is blended once from it, so
 * overlapping brush stamps never blend twice and subsampled chroma is handled in one place.
 * Everything is allocated per caps; drawing a frame allocates nothing. */
#pragma once
#include <gst/video/video.h>
#include "colour.h"

typedef struct {
    guint8 comp[3]; /* the colour as the frame's component values (R,G,B or Y,U,V) */
    guint alpha;    /* 0..256 */
} PsPaint;

typedef struct {
    int w, h, size;   /* frame, and side of the model-resolution mask */
    guint8 *cover;    /* w*h marks, all zero outside the dirty box */
    int *mx0, *mx1;   /* frame column -> the two model columns it interpolates */
    guint16 *mwx;     /* and the weight of the second, 0..256 */
    int *col_start;   /* model column m -> first frame column whose mx0 is >= m (size + 1) */
    int *my0, *my1;
    guint16 *mwy;
    guint32 *vrow;    /* one frame row interpolated vertically, per model column */
    int dx0, dy0, dx1, dy1; /* dirty box, inclusive; empty when dx0 > dx1 */
} PsCanvas;

void ps_canvas_init(PsCanvas *c, int width, int height, int size);
void ps_canvas_clear(PsCanvas *c);
/* Marks the frame pixels where the model-resolution mask (nonzero = polyp), upsampled
 * bilinearly and cut at one half, is set; only near the model-pixel box x0..x1, y0..y1.
 * Call before ps_canvas_polygon: it may cover line marks. */
void ps_canvas_fill_mask(PsCanvas *c, const guint8 *mask, int x0, int y0, int x1, int y1);
/* Marks the closed polygon (model-resolution x,y pairs, mapped to frame coordinates) with a
 * square brush `width` pixels wide. */
void ps_canvas_polygon(PsCanvas *c, const int *xy, int n, int width);
/* Blends the marked pixels into the frame (tint where the mask is, line on contours), then
 * clears the marks. */
void ps_canvas_paint(PsCanvas *c, GstVideoFrame *frame, const PsPaint *tint, const PsPaint *line);
/* ARGB colour at opacity (alpha byte x opacity) as the frame's component values: R,G,B, or
 * Y,U,V by the stream's matrix (NULL for RGB frames). */
PsPaint ps_paint_from_argb(guint32 argb, double opacity, const PsYuv *matrix);
