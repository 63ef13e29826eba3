/* One model result's polyps described in frame coordinates: the bounding box for the
 * GstVideoRegionOfInterestMeta and the "polyp" GstStructure shared by metas and messages. */
#pragma once
#include <gst/gst.h>
#include "contours.h"

typedef struct {
    guint x, y, w, h;
} PsBox;

/* The frame pixels a region's model pixels cover (model side `size`, frame w x h). */
PsBox ps_polyp_box(const ps_region *g, int size, int width, int height);
/* polyp, id=(int), x=(uint), y=(uint), width=(uint), height=(uint), area=(double) fraction of
 * the frame, score=(double) mean probability, contour=(array of <x, y> int arrays) in frame
 * coordinates, closed. */
GstStructure *ps_polyp_structure(const ps_region *g, int id, const PsBox *box, int size, int width,
                                 int height);
