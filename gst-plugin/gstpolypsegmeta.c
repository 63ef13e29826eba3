#include "gstpolypsegmeta.h"
#include <gst/video/video.h>

GType
gst_polyp_seg_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_SIZE_STR,
    GST_META_TAG_VIDEO_ORIENTATION_STR, NULL
  };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register (GST_POLYP_SEG_META_API_NAME, tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
gst_polyp_seg_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  GstPolypSegMeta *m = (GstPolypSegMeta *) meta;

  m->width = m->height = 0;
  m->mask = NULL;
  return TRUE;
}

static void
gst_polyp_seg_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstPolypSegMeta *m = (GstPolypSegMeta *) meta;

  g_clear_pointer (&m->mask, g_bytes_unref);
}

static gboolean
gst_polyp_seg_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  GstPolypSegMeta *m = (GstPolypSegMeta *) meta;

  if (GST_META_TRANSFORM_IS_COPY (type)) {
    /* Part of the memory only: no frame, so no mask for it. */
    if (((GstMetaTransformCopy *) data)->region)
      return TRUE;
  } else if (!GST_VIDEO_META_TRANSFORM_IS_SCALE (type)) {
    return FALSE;
  }
  /* Copies and scaled frames alike keep the same mask: it spans the whole frame. */
  return gst_buffer_add_polyp_seg_meta (dest, m->width, m->height, m->mask) != NULL;
}

const GstMetaInfo *
gst_polyp_seg_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (gst_polyp_seg_meta_api_get_type (),
        "GstPolypSegMeta", sizeof (GstPolypSegMeta), gst_polyp_seg_meta_init,
        gst_polyp_seg_meta_free, gst_polyp_seg_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstPolypSegMeta *
gst_buffer_add_polyp_seg_meta (GstBuffer * buffer, guint width, guint height, GBytes * mask)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (mask != NULL && g_bytes_get_size (mask) == (gsize) width * height, NULL);

  GstPolypSegMeta *m = (GstPolypSegMeta *) gst_buffer_add_meta (buffer,
      gst_polyp_seg_meta_get_info (), NULL);
  m->width = width;
  m->height = height;
  m->mask = g_bytes_ref (mask);
  return m;
}
