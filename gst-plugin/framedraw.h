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
    int dx0, dy0, dx1, dy1; /* dirty box, inclusive; empty when dx0 > dx1 */
} PsCanvas;

void ps_canvas_init(PsCanvas *c, int width, int height, int size);
void ps_canvas_clear(PsCanvas *c);
/* Drawing is split into frame rows so that threads can share it: first, on one thread, every
 * polyp's box is added; then the mask is filled and (after the contours) painted in disjoint
 * row ranges that start at a multiple of ps_canvas_row_group() rows (the rows that share a
 * chroma row) and span a multiple of it except at the frame's end; then ps_canvas_painted()
 * starts the next frame. */
/* Grows the dirty box by the frame pixels the model-pixel box x0..x1, y0..y1 can tint. */
void ps_canvas_add_mask_box(PsCanvas *c, int x0, int y0, int x1, int y1);
/* Marks, in frame rows [row_begin, row_end), the frame pixels of that box where the
 * model-resolution mask (nonzero = polyp), upsampled bilinearly and cut at one half, is set.
 * Call before ps_canvas_polygon: it may cover line marks. */
void ps_canvas_fill_mask(PsCanvas *c, const guint8 *mask, int x0, int y0, int x1, int y1, int row_begin, int row_end);
/* Marks the closed polygon (model-resolution x,y pairs, mapped to frame coordinates) with a
 * square brush `width` pixels wide. */
void ps_canvas_polygon(PsCanvas *c, const int *xy, int n, int width);
/* Frame rows that share a chroma row: 1 for RGB and 4:4:4, 2 for 4:2:0. */
int ps_canvas_row_group(const GstVideoFrame *frame);
/* Blends the marked pixels of frame rows [row_begin, row_end) into the frame (tint where the
 * mask is, line on contours), then clears their marks. */
void ps_canvas_paint(PsCanvas *c, GstVideoFrame *frame, const PsPaint *tint, const PsPaint *line, int row_begin,
                     int row_end);
/* After every row is painted: the canvas is empty again. */
void ps_canvas_painted(PsCanvas *c);
/* ARGB colour at opacity (alpha byte x opacity) as the frame's component values: R,G,B, or
 * Y,U,V by the stream's matrix (NULL for RGB frames). */
PsPaint ps_paint_from_argb(guint32 argb, double opacity, const PsYuv *matrix);
