/**
 * SECTION:element-polypseg
 *
 * Segments colonoscopy polyps in every frame with the MicroAUNet model of libpolypseg, in
 * place: tints the polyp pixels, draws each polyp's outer boundary, and attaches one
 * GstVideoRegionOfInterestMeta per polyp (type "polyp", params structure "polyp" with id,
 * box, area, score and contour) plus a GstPolypSegMeta carrying the model-resolution mask.
 *
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=BGRx ! polypseg ! videoconvert ! autovideosink
 * ]|
 */
#include "gstpolypseg.h"
#include <math.h>
#include "gstpolypsegmeta.h"
#include "polyps.h"

GST_DEBUG_CATEGORY_STATIC (gst_polyp_seg_debug);
#define GST_CAT_DEFAULT gst_polyp_seg_debug

#define DEFAULT_THRESHOLD 0.5
#define DEFAULT_DRAW_OVERLAY TRUE
#define DEFAULT_OVERLAY_COLOR 0xff00ff00
#define DEFAULT_OVERLAY_ALPHA 0.35
#define DEFAULT_DRAW_CONTOURS TRUE
#define DEFAULT_CONTOUR_COLOR 0xffffff00
#define DEFAULT_CONTOUR_WIDTH 3
#define DEFAULT_MIN_AREA 0.001
#define DEFAULT_INFERENCE_INTERVAL 1
#define DEFAULT_THREADS 0 /* one per core: 1.3x the frames and a third less latency at 1080p on two cores */
#define DEFAULT_POST_MESSAGES FALSE
#define DEFAULT_TTA 1

enum
{
  PROP_0,
  PROP_WEIGHTS,
  PROP_THRESHOLD,
  PROP_DRAW_OVERLAY,
  PROP_OVERLAY_COLOR,
  PROP_OVERLAY_ALPHA,
  PROP_DRAW_CONTOURS,
  PROP_CONTOUR_COLOR,
  PROP_CONTOUR_WIDTH,
  PROP_MIN_AREA,
  PROP_INFERENCE_INTERVAL,
  PROP_POST_MESSAGES,
  PROP_THREADS,
  PROP_TTA,
};

/* Every 8-bit format whose first three components are R,G,B or Y,U,V. */
#define POLYPSEG_CAPS GST_VIDEO_CAPS_MAKE ("{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, " \
    "ARGB, ABGR, I420, YV12, NV12, NV21 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (POLYPSEG_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (POLYPSEG_CAPS));

static gchar *default_weights = NULL;

#define gst_polyp_seg_parent_class parent_class
G_DEFINE_TYPE (GstPolypSeg, gst_polyp_seg, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (polypseg, "polypseg", GST_RANK_NONE, GST_TYPE_POLYP_SEG);

void
gst_polyp_seg_set_default_weights (const gchar * path)
{
  g_free (default_weights);
  default_weights = g_strdup (path);
}

static guint n_cpus; /* for threads = 0; counted once, in class_init */
static GQuark polyp_quark; /* the ROI type "polyp" */

static void
gst_polyp_seg_read_settings (GstPolypSeg * self, PsSettings * s)
{
  GST_OBJECT_LOCK (self);
  *s = self->props;
  GST_OBJECT_UNLOCK (self);
  if (s->threads == 0)
    s->threads = n_cpus;
}

static void
gst_polyp_seg_init (GstPolypSeg * self)
{
  self->weights = g_strdup (default_weights);
  self->props.threshold = DEFAULT_THRESHOLD;
  self->props.draw_overlay = DEFAULT_DRAW_OVERLAY;
  self->props.overlay_color = DEFAULT_OVERLAY_COLOR;
  self->props.overlay_alpha = DEFAULT_OVERLAY_ALPHA;
  self->props.draw_contours = DEFAULT_DRAW_CONTOURS;
  self->props.contour_color = DEFAULT_CONTOUR_COLOR;
  self->props.contour_width = DEFAULT_CONTOUR_WIDTH;
  self->props.min_area = DEFAULT_MIN_AREA;
  self->props.inference_interval = DEFAULT_INFERENCE_INTERVAL;
  self->props.post_messages = DEFAULT_POST_MESSAGES;
  self->props.threads = DEFAULT_THREADS;
  self->props.tta = DEFAULT_TTA;
  self->result_polyps = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  self->result_boxes = g_array_new (FALSE, FALSE, sizeof (PsBox));
  /* Late frames are dropped before they cost an inference. A synchronous in-place filter
   * holds no frames back, so it adds no latency: the base class's query is right. */
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_polyp_seg_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstPolypSeg *self = GST_POLYP_SEG (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_WEIGHTS:
      /* The model is loaded in start(): a new file takes effect on the next one. */
      if (GST_STATE (self) > GST_STATE_READY)
        GST_WARNING_OBJECT (self, "weights can only be changed in the NULL or READY state");
      else {
        g_free (self->weights);
        self->weights = g_value_dup_string (value);
      }
      break;
    case PROP_THRESHOLD:
      self->props.threshold = g_value_get_double (value);
      break;
    case PROP_DRAW_OVERLAY:
      self->props.draw_overlay = g_value_get_boolean (value);
      break;
    case PROP_OVERLAY_COLOR:
      self->props.overlay_color = g_value_get_uint (value);
      break;
    case PROP_OVERLAY_ALPHA:
      self->props.overlay_alpha = g_value_get_double (value);
      break;
    case PROP_DRAW_CONTOURS:
      self->props.draw_contours = g_value_get_boolean (value);
      break;
    case PROP_CONTOUR_COLOR:
      self->props.contour_color = g_value_get_uint (value);
      break;
    case PROP_CONTOUR_WIDTH:
      self->props.contour_width = g_value_get_uint (value);
      break;
    case PROP_MIN_AREA:
      self->props.min_area = g_value_get_double (value);
      break;
    case PROP_INFERENCE_INTERVAL:
      self->props.inference_interval = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      self->props.post_messages = g_value_get_boolean (value);
      break;
    case PROP_THREADS:
      self->props.threads = g_value_get_uint (value);
      break;
    case PROP_TTA:
      self->props.tta = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_polyp_seg_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstPolypSeg *self = GST_POLYP_SEG (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_WEIGHTS:
      g_value_set_string (value, self->weights);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->props.threshold);
      break;
    case PROP_DRAW_OVERLAY:
      g_value_set_boolean (value, self->props.draw_overlay);
      break;
    case PROP_OVERLAY_COLOR:
      g_value_set_uint (value, self->props.overlay_color);
      break;
    case PROP_OVERLAY_ALPHA:
      g_value_set_double (value, self->props.overlay_alpha);
      break;
    case PROP_DRAW_CONTOURS:
      g_value_set_boolean (value, self->props.draw_contours);
      break;
    case PROP_CONTOUR_COLOR:
      g_value_set_uint (value, self->props.contour_color);
      break;
    case PROP_CONTOUR_WIDTH:
      g_value_set_uint (value, self->props.contour_width);
      break;
    case PROP_MIN_AREA:
      g_value_set_double (value, self->props.min_area);
      break;
    case PROP_INFERENCE_INTERVAL:
      g_value_set_uint (value, self->props.inference_interval);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->props.post_messages);
      break;
    case PROP_THREADS:
      g_value_set_uint (value, self->props.threads);
      break;
    case PROP_TTA:
      g_value_set_uint (value, self->props.tta);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_polyp_seg_free_caps_state (GstPolypSeg * self)
{
  ps_frame_convert_clear (&self->convert); /* both safe to call twice */
  ps_canvas_clear (&self->canvas);
}

static void
gst_polyp_seg_reset_result (GstPolypSeg * self)
{
  self->prob = NULL;
  self->since_inference = 0;
  self->result_valid = FALSE;
  g_clear_pointer (&self->result_mask, g_bytes_unref);
  g_ptr_array_set_size (self->result_polyps, 0);
  g_array_set_size (self->result_boxes, 0);
}

/* Loads the model; on any failure posts the error and leaves nothing allocated. */
static gboolean
gst_polyp_seg_start (GstBaseTransform * trans)
{
  GstPolypSeg *self = GST_POLYP_SEG (trans);
  GError *err = NULL;
  gchar *path;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->weights);
  GST_OBJECT_UNLOCK (self);

  if (!path || !*path) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No model weights file set."),
        ("set the 'weights' property to a .safetensors file"));
    g_free (path);
    return FALSE;
  }
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("Model weights file \"%s\" does not exist.", path), (NULL));
    g_free (path);
    return FALSE;
  }
  self->model = ps_model_load (path, &err);
  if (!self->model) {
    /* The core's message names the file and what is wrong in it. */
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Could not load model weights: %s",
            err->message), ("weights: %s", path));
    g_error_free (err);
    g_free (path);
    return FALSE;
  }
  self->size = self->model->info.input_size;
  self->segmenter = ps_segmenter_new (self->model);
  /* the frame buffers now: an error here rather than an abort on the first frame, and no
   * allocation in the first frame's latency */
  if (!ps_segmenter_prepare (self->segmenter, &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("Not enough memory for the model: %s",
            err->message), ("weights: %s", path));
    g_error_free (err);
    g_clear_pointer (&self->segmenter, ps_segmenter_free);
    g_clear_pointer (&self->model, ps_model_free);
    g_free (path);
    return FALSE;
  }
  self->mask = g_malloc ((gsize) self->size * self->size);
  self->regions = ps_regions_new (self->size, self->size);
  gst_polyp_seg_reset_result (self);
  GST_INFO_OBJECT (self, "loaded %s: %s, input %dx%d", path, self->model->info.arch,
      self->size, self->size);
  g_free (path);
  return TRUE;
}

static gboolean
gst_polyp_seg_stop (GstBaseTransform * trans)
{
  GstPolypSeg *self = GST_POLYP_SEG (trans);

  gst_polyp_seg_reset_result (self);
  gst_polyp_seg_free_caps_state (self);
  g_clear_pointer (&self->regions, ps_regions_free);
  g_clear_pointer (&self->mask, g_free);
  g_clear_pointer (&self->segmenter, ps_segmenter_free);
  g_clear_pointer (&self->model, ps_model_free);
  return TRUE;
}

/* New caps (also mid-stream): sampling and drawing tables for this format and size. */
static gboolean
gst_polyp_seg_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstPolypSeg *self = GST_POLYP_SEG (filter);

  if (!self->model)
    return FALSE;
  gst_polyp_seg_free_caps_state (self);
  ps_frame_convert_init (&self->convert, in_info, self->size);
  ps_canvas_init (&self->canvas, GST_VIDEO_INFO_WIDTH (in_info),
      GST_VIDEO_INFO_HEIGHT (in_info), self->size);
  /* Boxes and contours are in frame coordinates, and the picture may have changed. */
  gst_polyp_seg_reset_result (self);
  GST_DEBUG_OBJECT (self, "configured for %s %dx%d",
      GST_VIDEO_INFO_NAME (in_info), GST_VIDEO_INFO_WIDTH (in_info),
      GST_VIDEO_INFO_HEIGHT (in_info));
  return TRUE;
}

/* After a seek, or in a new stream (concat, gapless playback, input-selector with the same
 * caps), the next frame is unrelated to the last result. */
static gboolean
gst_polyp_seg_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstPolypSeg *self = GST_POLYP_SEG (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP
      || GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START)
    self->prob = NULL;
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* Threshold, drop small regions, trace them: the result every frame until the next one. */
static void
gst_polyp_seg_update_result (GstPolypSeg * self, gdouble threshold, gint min_pixels)
{
  GstVideoInfo *info = &GST_VIDEO_FILTER (self)->in_info;
  gint w = GST_VIDEO_INFO_WIDTH (info), h = GST_VIDEO_INFO_HEIGHT (info);
  gsize n = (gsize) self->size * self->size;
  gint count;

  for (gsize i = 0; i < n; i++)
    self->mask[i] = self->prob[i] >= threshold ? 255 : 0;
  count = ps_regions_find (self->regions, self->mask, self->prob, min_pixels);

  g_clear_pointer (&self->result_mask, g_bytes_unref);
  self->result_mask = g_bytes_new (self->mask, n);
  g_ptr_array_set_size (self->result_polyps, 0);
  g_array_set_size (self->result_boxes, count);
  for (gint i = 0; i < count; i++) {
    const ps_region *g = ps_regions_get (self->regions, i);
    PsBox *box = &g_array_index (self->result_boxes, PsBox, i);

    *box = ps_polyp_box (g, self->size, w, h);
    g_ptr_array_add (self->result_polyps, ps_polyp_structure (g, i, box, self->size, w, h));
  }
  self->result_valid = TRUE;
  self->result_threshold = threshold;
  self->result_min_pixels = min_pixels;
  GST_LOG_OBJECT (self, "%d polyps at threshold %.3f", count, threshold);
}

/* Drawing shared by the inference threads, over frame rows (framedraw.h). */
typedef struct
{
  GstPolypSeg *self;
  GstVideoFrame *frame;
  PsPaint tint, line;
  gint group, first_row;        /* rows per part unit, and the first unit's row */
} DrawJob;

static void
fill_rows (void *ctx, int begin, int end)
{
  DrawJob *job = ctx;
  GstPolypSeg *self = job->self;
  gint row_begin = job->first_row + begin * job->group, row_end = job->first_row + end * job->group;

  for (guint i = 0; i < self->result_boxes->len; i++) {
    const ps_region *g = ps_regions_get (self->regions, i);

    ps_canvas_fill_mask (&self->canvas, self->mask, g->x0, g->y0, g->x1, g->y1, row_begin, row_end);
  }
}

static void
paint_rows (void *ctx, int begin, int end)
{
  DrawJob *job = ctx;
  gint row_begin = job->first_row + begin * job->group, row_end = job->first_row + end * job->group;

  ps_canvas_paint (&job->self->canvas, job->frame, &job->tint, &job->line, row_begin, row_end);
}

/* Row units (of `group` rows, aligned) that cover the canvas's dirty rows. */
static gint
dirty_units (DrawJob * job)
{
  const PsCanvas *c = &job->self->canvas;

  job->first_row = c->dy0 / job->group * job->group;
  return (c->dy1 - job->first_row) / job->group + 1;
}

static void
gst_polyp_seg_draw (GstPolypSeg * self, GstVideoFrame * frame, const PsSettings * s)
{
  gint count = self->result_boxes->len;

  if (count == 0 || (!s->draw_overlay && !s->draw_contours))
    return;
  ps_pool *pool = ps_segmenter_pool (self->segmenter);
  const PsYuv *matrix = self->convert.yuv ? &self->convert.matrix : NULL;
  DrawJob job = { self, frame, ps_paint_from_argb (s->overlay_color, s->overlay_alpha, matrix),
    ps_paint_from_argb (s->contour_color, 1.0, matrix), ps_canvas_row_group (frame), 0
  };
  /* Every tint before any line: lines are drawn over the tint, never under it. */
  if (s->draw_overlay) {
    for (gint i = 0; i < count; i++) {
      const ps_region *g = ps_regions_get (self->regions, i);

      ps_canvas_add_mask_box (&self->canvas, g->x0, g->y0, g->x1, g->y1);
    }
    ps_pool_for (pool, dirty_units (&job), fill_rows, &job);
  }
  for (gint i = 0; i < count && s->draw_contours; i++) {
    const ps_region *g = ps_regions_get (self->regions, i);

    ps_canvas_polygon (&self->canvas, g->points, g->n_points, s->contour_width);
  }
  ps_pool_for (pool, dirty_units (&job), paint_rows, &job);
  ps_canvas_painted (&self->canvas);
}

static void
gst_polyp_seg_attach_metas (GstPolypSeg * self, GstBuffer * buffer)
{
  for (guint i = 0; i < self->result_boxes->len; i++) {
    const PsBox *box = &g_array_index (self->result_boxes, PsBox, i);
    GstVideoRegionOfInterestMeta *roi =
        gst_buffer_add_video_region_of_interest_meta_id (buffer, polyp_quark, box->x, box->y,
        box->w, box->h);

    roi->id = (gint) i;
    gst_video_region_of_interest_meta_add_param (roi,
        gst_structure_copy (g_ptr_array_index (self->result_polyps, i)));
  }
  gst_buffer_add_polyp_seg_meta (buffer, self->size, self->size, self->result_mask);
}

static void
gst_polyp_seg_post_message (GstPolypSeg * self, GstBuffer * buffer, gboolean inferred)
{
  GstSegment *segment = &GST_BASE_TRANSFORM (self)->segment;
  GstClockTime ts = GST_BUFFER_PTS (buffer), stream_time = GST_CLOCK_TIME_NONE,
      running_time = GST_CLOCK_TIME_NONE;
  GValue polyps = G_VALUE_INIT;
  GstStructure *s;

  if (segment->format == GST_FORMAT_TIME && GST_CLOCK_TIME_IS_VALID (ts)) {
    stream_time = gst_segment_to_stream_time (segment, GST_FORMAT_TIME, ts);
    running_time = gst_segment_to_running_time (segment, GST_FORMAT_TIME, ts);
  }
  gst_value_array_init (&polyps, self->result_polyps->len);
  for (guint i = 0; i < self->result_polyps->len; i++) {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, GST_TYPE_STRUCTURE);
    gst_value_set_structure (&v, g_ptr_array_index (self->result_polyps, i));
    gst_value_array_append_and_take_value (&polyps, &v);
  }
  s = gst_structure_new ("polypseg", "timestamp", G_TYPE_UINT64, ts,
      "stream-time", G_TYPE_UINT64, stream_time, "running-time", G_TYPE_UINT64, running_time,
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buffer),
      "inferred", G_TYPE_BOOLEAN, inferred,
      "n-polyps", G_TYPE_UINT, self->result_polyps->len, NULL);
  gst_structure_take_value (s, "polyps", &polyps);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

/* The frame -> model input conversion, split by output rows over the segmenter's threads: each
 * row is sampled, rounded and normalised straight into the model input's planes (one pass). */
typedef struct
{
  const PsFrameConvert *convert;
  const GstVideoFrame *frame;
  ps_segmenter *segmenter;
} ConvertJob;

static void
convert_rows (void *ctx, int begin, int end)
{
  ConvertJob *job = ctx;
  float *planes[3];
  const float *scale, *shift;

  for (gint y = begin; y < end; y++) {
    ps_segmenter_input_row (job->segmenter, y, planes, &scale, &shift);
    ps_frame_convert_row (job->convert, job->frame, y, planes, scale, shift);
  }
}

static GstFlowReturn
gst_polyp_seg_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstPolypSeg *self = GST_POLYP_SEG (filter);
  PsSettings s;
  gboolean infer;
  gint min_pixels;

  gst_polyp_seg_read_settings (self, &s);
  /* a discontinuity (lost frames, a jump) also ends what the last result shows */
  infer = !self->prob || self->since_inference >= s.inference_interval
      || GST_BUFFER_FLAG_IS_SET (frame->buffer, GST_BUFFER_FLAG_DISCONT);
  if (infer) {
    gint64 t0 = g_get_monotonic_time ();

    ps_segmenter_set_threads (self->segmenter, (gint) s.threads);
    ps_segmenter_set_tta (self->segmenter, (gint) s.tta);
    ConvertJob job = { &self->convert, frame, self->segmenter };
    ps_pool_for (ps_segmenter_pool (self->segmenter), self->size, convert_rows, &job);
    self->prob = ps_segmenter_run_filled (self->segmenter);
    self->since_inference = 0;
    self->result_valid = FALSE;
    GST_LOG_OBJECT (self, "inference %.1f ms", (g_get_monotonic_time () - t0) / 1e3);
  }
  self->since_inference++;

  min_pixels = MAX ((gint) ceil (s.min_area * self->size * self->size), 1);
  if (!self->result_valid || s.threshold != self->result_threshold
      || min_pixels != self->result_min_pixels)
    gst_polyp_seg_update_result (self, s.threshold, min_pixels);

  gst_polyp_seg_draw (self, frame, &s);
  gst_polyp_seg_attach_metas (self, frame->buffer);
  if (s.post_messages)
    gst_polyp_seg_post_message (self, frame->buffer, infer);
  return GST_FLOW_OK;
}

static void
gst_polyp_seg_finalize (GObject * object)
{
  GstPolypSeg *self = GST_POLYP_SEG (object);

  g_free (self->weights);
  g_clear_pointer (&self->result_mask, g_bytes_unref);
  g_ptr_array_unref (self->result_polyps);
  g_array_unref (self->result_boxes);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_polyp_seg_class_init (GstPolypSegClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags live = rw | GST_PARAM_MUTABLE_PLAYING;

  GST_DEBUG_CATEGORY_INIT (gst_polyp_seg_debug, "polypseg", 0, "colonoscopy polyp segmentation");
  n_cpus = g_get_num_processors ();
  polyp_quark = g_quark_from_static_string ("polyp");

  gobject_class->set_property = gst_polyp_seg_set_property;
  gobject_class->get_property = gst_polyp_seg_get_property;
  gobject_class->finalize = gst_polyp_seg_finalize;

  g_object_class_install_property (gobject_class, PROP_WEIGHTS,
      g_param_spec_string ("weights", "Weights",
          "Model weights (.safetensors, or a polypseg-train checkpoint); loaded when the "
          "element starts", default_weights, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Probability from which a pixel counts as polyp", 0.0, 1.0, DEFAULT_THRESHOLD, live));
  g_object_class_install_property (gobject_class, PROP_DRAW_OVERLAY,
      g_param_spec_boolean ("draw-overlay", "Draw overlay", "Tint the polyp pixels",
          DEFAULT_DRAW_OVERLAY, live));
  g_object_class_install_property (gobject_class, PROP_OVERLAY_COLOR,
      g_param_spec_uint ("overlay-color", "Overlay color",
          "Tint colour as 0xAARRGGBB, its alpha multiplying overlay-alpha (default 0xff00ff00, green)", 0, G_MAXUINT32,
          DEFAULT_OVERLAY_COLOR, live));
  g_object_class_install_property (gobject_class, PROP_OVERLAY_ALPHA,
      g_param_spec_double ("overlay-alpha", "Overlay alpha",
          "Opacity of the tint (0 = invisible, 1 = opaque)", 0.0, 1.0, DEFAULT_OVERLAY_ALPHA,
          live));
  g_object_class_install_property (gobject_class, PROP_DRAW_CONTOURS,
      g_param_spec_boolean ("draw-contours", "Draw contours",
          "Draw the outer boundary of each polyp", DEFAULT_DRAW_CONTOURS, live));
  g_object_class_install_property (gobject_class, PROP_CONTOUR_COLOR,
      g_param_spec_uint ("contour-color", "Contour color",
          "Contour colour as 0xAARRGGBB, alpha = opacity (default 0xffffff00, yellow)", 0, G_MAXUINT32,
          DEFAULT_CONTOUR_COLOR, live));
  g_object_class_install_property (gobject_class, PROP_CONTOUR_WIDTH,
      g_param_spec_uint ("contour-width", "Contour width", "Contour line width in pixels",
          1, 32, DEFAULT_CONTOUR_WIDTH, live));
  g_object_class_install_property (gobject_class, PROP_MIN_AREA,
      g_param_spec_double ("min-area", "Minimum area",
          "Smallest polyp kept, as a fraction of the frame; smaller regions are ignored",
          0.0, 1.0, DEFAULT_MIN_AREA, live));
  g_object_class_install_property (gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint ("inference-interval", "Inference interval",
          "Run the model on every Nth frame and reuse its result in between", 1, 1000,
          DEFAULT_INFERENCE_INTERVAL, live));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a \"polypseg\" element message per frame with its polyps",
          DEFAULT_POST_MESSAGES, live));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_uint ("threads", "Threads",
          "Threads that share each frame's conversion, inference and drawing (0 = one per CPU "
          "core); the result is the same for any number", 0, 64, DEFAULT_THREADS, live));
  g_object_class_install_property (gobject_class, PROP_TTA,
      g_param_spec_uint ("tta", "Test-time augmentation",
          PS_TTA_HELP, 1, PS_TTA_MAX, DEFAULT_TTA, live));

  gst_element_class_set_static_metadata (element_class, "Polyp segmentation",
      "Filter/Analyzer/Video",
      "Segments colonoscopy polyps, draws their overlay and contours, and attaches "
      "region-of-interest and mask metadata", "polypseg developers");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_polyp_seg_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_polyp_seg_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_polyp_seg_sink_event);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_polyp_seg_set_info);
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_polyp_seg_transform_frame_ip);
}
