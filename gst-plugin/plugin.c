/* The polypseg plugin: the element and its mask meta. */
#include <gst/gst.h>
#include "gstpolypseg.h"
#include "gstpolypsegmeta.h"

#define DEFAULT_WEIGHTS_FILE "microaunet-kvasir.safetensors"

/* Installed weights, unless this plugin file is the one in the build tree: then the source
 * tree's, so GST_PLUGIN_PATH=build/gst-plugin works without installing. */
static gchar *
default_weights_path (GstPlugin * plugin)
{
  const gchar *file = gst_plugin_get_filename (plugin);
  gboolean uninstalled = FALSE;

  if (file) {
    gchar *abs = g_canonicalize_filename (file, NULL);
    gchar *dir = g_path_get_dirname (abs);
    gchar *build = g_canonicalize_filename (PS_PLUGIN_BUILD_DIR, NULL);

    uninstalled = g_strcmp0 (dir, build) == 0;
    g_free (build);
    g_free (dir);
    g_free (abs);
  }
  return g_build_filename (uninstalled ? PS_SOURCE_WEIGHTS_DIR : PS_WEIGHTS_DIR,
      DEFAULT_WEIGHTS_FILE, NULL);
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  gchar *weights = default_weights_path (plugin);

  gst_polyp_seg_set_default_weights (weights);
  g_free (weights);
  gst_polyp_seg_meta_get_info ();
  return GST_ELEMENT_REGISTER (polypseg, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, polypseg,
    "Colonoscopy polyp segmentation", plugin_init, VERSION, "MIT/X11", "polypseg",
    "polypseg")
