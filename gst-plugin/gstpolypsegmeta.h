/* GstPolypSegMeta: the polypseg element's segmentation mask, on every buffer it outputs.
 *
 * Applications need only this header: the meta's API type is registered by the plugin when it
 * loads, so the getter below finds it by name instead of linking to the plugin.
 *
 *   GstPolypSegMeta *meta = gst_buffer_get_polyp_seg_meta (buffer);
 *   if (meta) {
 *     const guint8 *mask = gst_polyp_seg_meta_get_mask (meta);
 *     // meta->width x meta->height bytes, row-major: 255 = polyp, 0 = background
 *   }
 */
#pragma once
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_POLYP_SEG_META_API_NAME "GstPolypSegMetaAPI"

typedef struct _GstPolypSegMeta {
  GstMeta meta;
  /* The model's resolution. The mask covers the whole frame (stretched to it), so it stays
   * valid when the frame is scaled downstream. */
  guint width;
  guint height;
  /* width * height bytes, GRAY8, rows packed: 255 where a kept polyp is, 0 elsewhere
   * (after the element's threshold and min-area). Shared between buffers: read only. */
  GBytes *mask;
} GstPolypSegMeta;

static inline GstPolypSegMeta *
gst_buffer_get_polyp_seg_meta (GstBuffer * buffer)
{
  /* the plugin registers the API; look it up until then, and only once after (every thread
   * that races here stores the same value) */
  static GType api;
  if (!api)
    api = g_type_from_name (GST_POLYP_SEG_META_API_NAME);
  return api ? (GstPolypSegMeta *) gst_buffer_get_meta (buffer, api) : NULL;
}

static inline const guint8 *
gst_polyp_seg_meta_get_mask (const GstPolypSegMeta * meta)
{
  return (const guint8 *) g_bytes_get_data (meta->mask, NULL);
}

#ifdef GST_POLYPSEG_COMPILATION
/* Inside the plugin only. */
GType gst_polyp_seg_meta_api_get_type (void);
const GstMetaInfo *gst_polyp_seg_meta_get_info (void);
/* Adds the meta holding a reference to `mask` (width * height bytes). */
GstPolypSegMeta *gst_buffer_add_polyp_seg_meta (GstBuffer * buffer, guint width, guint height,
    GBytes * mask);
#endif

G_END_DECLS
