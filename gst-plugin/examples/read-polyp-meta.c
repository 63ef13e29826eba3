/* read-polyp-meta: how an application reads what the polypseg element attaches to each buffer
 * (the GstPolypSegMeta mask and one GstVideoRegionOfInterestMeta per polyp). It needs only the
 * public header gstpolypsegmeta.h and GStreamer; nothing links to the plugin.
 *
 *   read-polyp-meta [PIPELINE-DESCRIPTION...]
 *
 * Builds the pipeline (default: a 320x240 test pattern, 5 frames, through polypseg), puts a
 * buffer probe on the source pad of its first polypseg element and prints, per frame, the
 * number of polyps, each one's box, area, score and contour length, and the mask's size. */
#include <gst/gst.h>
#include <gst/video/video.h>
#include "gstpolypsegmeta.h"

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  guint *frame = user_data;
  GstPolypSegMeta *mask_meta = gst_buffer_get_polyp_seg_meta (buf);
  gpointer state = NULL;
  GstMeta *meta;

  g_print ("frame %u  pts %" GST_TIME_FORMAT ": %u polyp(s)", (*frame)++,
      GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
      gst_buffer_get_n_meta (buf, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE));

  /* The mask: width x height bytes at the model's resolution, stretched over the frame. */
  if (mask_meta) {
    const guint8 *mask = gst_polyp_seg_meta_get_mask (mask_meta);
    gsize polyp = 0, n = (gsize) mask_meta->width * mask_meta->height;

    for (gsize i = 0; i < n; i++)
      polyp += mask[i] != 0;
    g_print (", mask %ux%u with %" G_GSIZE_FORMAT " polyp pixels (%.1f%%)\n", mask_meta->width,
        mask_meta->height, polyp, 100.0 * polyp / n);
  } else {
    g_print (", no mask meta\n");
  }

  /* The polyps: region-of-interest metas of type "polyp", in frame pixels. */
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *s;
    gdouble area = 0, score = 0;
    const GValue *contour;

    if (roi->roi_type != g_quark_from_static_string ("polyp"))
      continue;
    s = gst_video_region_of_interest_meta_get_param (roi, "polyp");
    g_print ("  polyp %d: box %u,%u %ux%u", roi->id, roi->x, roi->y, roi->w, roi->h);
    if (s && gst_structure_get_double (s, "area", &area)
        && gst_structure_get_double (s, "score", &score)) {
      contour = gst_structure_get_value (s, "contour");
      g_print ("  area %.4f of the frame  score %.3f  contour %u points", area, score,
          contour ? gst_value_array_get_size (contour) : 0);
      if (contour && gst_value_array_get_size (contour) > 0) {
        const GValue *p = gst_value_array_get_value (contour, 0);

        g_print (" from (%d,%d)", g_value_get_int (gst_value_array_get_value (p, 0)),
            g_value_get_int (gst_value_array_get_value (p, 1)));
      }
    }
    g_print ("\n");
  }
  return GST_PAD_PROBE_OK;
}

/* The first element made by the polypseg factory, searched recursively. */
static GstElement *
find_polypseg (GstElement * pipeline)
{
  GstElementFactory *factory = gst_element_factory_find ("polypseg");
  GstElement *found = NULL;

  if (!factory)
    return NULL;
  if (GST_IS_BIN (pipeline)) {
    GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
    GValue item = G_VALUE_INIT;

    while (!found && gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
      GstElement *e = g_value_get_object (&item);

      if (gst_element_get_factory (e) == factory)
        found = gst_object_ref (e);
      g_value_reset (&item);
    }
    g_value_unset (&item);
    gst_iterator_free (it);
  }
  gst_object_unref (factory);
  return found;
}

int
main (int argc, char **argv)
{
  const gchar *default_desc[] = { "videotestsrc", "num-buffers=5", "pattern=ball", "!",
    "video/x-raw,format=BGRx,width=320,height=240", "!", "polypseg", "!", "fakesink", NULL
  };
  GError *err = NULL;
  GstElement *pipeline, *seg;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  guint frame = 0;
  int rc = 0;

  gst_init (&argc, &argv);
  if (argc > 1 && (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h"))) {
    g_print ("Usage: %s [PIPELINE-DESCRIPTION...]\nPrints the polypseg metas of every frame "
        "leaving the pipeline's polypseg element.\nDefault: %s\n", argv[0],
        "videotestsrc num-buffers=5 pattern=ball ! video/x-raw,format=BGRx,width=320,height=240"
        " ! polypseg ! fakesink");
    return 0;
  }
  pipeline = gst_parse_launchv_full (argc > 1 ? (const gchar **) argv + 1 : default_desc, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!pipeline) {
    g_printerr ("read-polyp-meta: could not build the pipeline: %s\n", err->message);
    return 2;
  }
  seg = find_polypseg (pipeline);
  if (!seg) {
    g_printerr ("read-polyp-meta: the pipeline has no polypseg element\n");
    gst_object_unref (pipeline);
    return 2;
  }
  pad = gst_element_get_static_pad (seg, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &frame, NULL);
  gst_object_unref (pad);
  gst_object_unref (seg);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    g_printerr ("read-polyp-meta: error from %s: %s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
        err->message);
    g_clear_error (&err);
    g_free (debug);
    rc = 1;
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return rc;
}
