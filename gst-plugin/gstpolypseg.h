/* polypseg: segments colonoscopy polyps in every frame, draws them in place and attaches the
 * results as metadata. */
#pragma once
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>
#include "contours.h"
#include "framedraw.h"
#include "frameconvert.h"
#include "model.h"
#include "preprocess.h"

G_BEGIN_DECLS

/* The properties one frame needs, copied once per frame under the object lock. */
typedef struct {
  gdouble threshold, min_area, overlay_alpha;
  gboolean draw_overlay, draw_contours, post_messages;
  guint overlay_color, contour_color, contour_width, inference_interval;
  guint threads;                /* 0: one per CPU core */
  guint tta;                    /* test-time augmentation views, 1 = off */
} PsSettings;

#define GST_TYPE_POLYP_SEG (gst_polyp_seg_get_type ())
G_DECLARE_FINAL_TYPE (GstPolypSeg, gst_polyp_seg, GST, POLYP_SEG, GstVideoFilter)

struct _GstPolypSeg {
  GstVideoFilter parent;

  /* Properties, under the object lock; all but weights change while playing. */
  gchar *weights;
  PsSettings props;

  /* Streaming state: made in start(), sized per caps in set_info(), then used by the
   * streaming thread only. */
  ps_model *model;
  ps_segmenter *segmenter;
  gint size;                    /* side of the model input and of the mask */
  guint8 *mask;                 /* thresholded probabilities, small regions removed */
  ps_regions *regions;
  const gfloat *prob;           /* last model output (the segmenter's), NULL: run on next frame */
  guint since_inference;        /* frames since the model last ran */
  PsFrameConvert convert;
  PsCanvas canvas;

  /* The current result, rebuilt when the model runs or threshold / min-area change. */
  gboolean result_valid;
  gdouble result_threshold;
  gint result_min_pixels;
  GBytes *result_mask;
  GPtrArray *result_polyps;     /* GstStructure "polyp" per region */
  GArray *result_boxes;         /* PsBox per region, frame coordinates */
};

/* The default of the weights property; set by plugin_init before the element is registered. */
void gst_polyp_seg_set_default_weights (const gchar * path);

GST_ELEMENT_REGISTER_DECLARE (polypseg);

G_END_DECLS
