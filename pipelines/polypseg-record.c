/* polypseg-record: runs a gst-launch-1.0 style pipeline to its end and writes every "polypseg"
 * element message (post-messages=true) as one JSON line, so a recording gets a sidecar file
 * with the polyps of each frame. gst-launch-1.0 cannot write messages to a file; this can, and
 * it finishes the file properly on Ctrl-C: the first SIGINT/SIGTERM sends end-of-stream so
 * muxers (mp4mux) write their index, a second one aborts.
 *
 *   polypseg-record --jsonl out.jsonl -- videotestsrc num-buffers=30 ! videoconvert \
 *     ! polypseg post-messages=true ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 *
 * --frames N stops the stream after N frames have left the polypseg element (exactly, whatever
 * the source). Without --jsonl nothing is written: the scripts in pipelines/ then use it as
 * a gst-launch-1.0 -e that can count frames. --commit PART=FINAL renames each file the
 * pipeline wrote as PART to FINAL when the run succeeds (and removes it when it fails), so a
 * failed recording never replaces a good one; --expect-frames N fails a run that ends early
 * (a stream of image files ends at a corrupt one).
 *
 * Exit status: 0 at end of stream (also after Ctrl-C), 1 on a pipeline or write error,
 * 2 on bad usage or a pipeline that cannot be built, 130 when aborted by a second Ctrl-C. */
#include <gst/gst.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct
{
  GMainLoop *loop;
  GstElement *pipeline;
  FILE *out;
  const gchar *out_name;
  JsonGenerator *gen;
  guint64 frames, with_polyps;
  gint interrupts;
  guint64 max_frames, passed; /* max_frames 0: count only */
  gint rc;
  gboolean write_failed;
} Recorder;

static JsonNode *value_to_json (const GValue * v);

/* The structure's fields, in order, added to `obj`; returns it as a node. */
static JsonNode *
structure_to_json (const GstStructure * s, JsonObject * obj)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  for (gint i = 0; i < gst_structure_n_fields (s); i++) {
    const gchar *name = gst_structure_nth_field_name (s, i);

    json_object_set_member (obj, name, value_to_json (gst_structure_get_value (s, name)));
  }
  json_node_take_object (node, obj);
  return node;
}

/* Numbers, booleans and strings as themselves, GstValueArray/List as arrays, structures as
 * objects; an unset clock time (G_MAXUINT64, GST_CLOCK_TIME_NONE) as null; anything else as
 * GStreamer's serialisation string. */
static JsonNode *
value_to_json (const GValue * v)
{
  JsonNode *node;
  GType t = G_VALUE_TYPE (v);

  if (t == G_TYPE_BOOLEAN) {
    node = json_node_new (JSON_NODE_VALUE);
    json_node_set_boolean (node, g_value_get_boolean (v));
  } else if (t == G_TYPE_INT || t == G_TYPE_UINT || t == G_TYPE_INT64 || t == G_TYPE_LONG) {
    GValue i64 = G_VALUE_INIT;

    g_value_init (&i64, G_TYPE_INT64);
    g_value_transform (v, &i64);
    node = json_node_new (JSON_NODE_VALUE);
    json_node_set_int (node, g_value_get_int64 (&i64));
  } else if (t == G_TYPE_UINT64 || t == G_TYPE_ULONG) {
    guint64 u = t == G_TYPE_UINT64 ? g_value_get_uint64 (v) : g_value_get_ulong (v);

    node = json_node_new (u == G_MAXUINT64 ? JSON_NODE_NULL : JSON_NODE_VALUE);
    if (u != G_MAXUINT64)
      json_node_set_int (node, (gint64) u);
  } else if (t == G_TYPE_DOUBLE || t == G_TYPE_FLOAT) {
    node = json_node_new (JSON_NODE_VALUE);
    json_node_set_double (node, t == G_TYPE_DOUBLE ? g_value_get_double (v) : g_value_get_float (v));
  } else if (t == G_TYPE_STRING) {
    node = json_node_new (g_value_get_string (v) ? JSON_NODE_VALUE : JSON_NODE_NULL);
    if (g_value_get_string (v))
      json_node_set_string (node, g_value_get_string (v));
  } else if (t == GST_TYPE_ARRAY || t == GST_TYPE_LIST) {
    JsonArray *arr = json_array_new ();
    gboolean is_array = t == GST_TYPE_ARRAY;
    guint n = is_array ? gst_value_array_get_size (v) : gst_value_list_get_size (v);

    for (guint i = 0; i < n; i++)
      json_array_add_element (arr, value_to_json (is_array ? gst_value_array_get_value (v, i)
              : gst_value_list_get_value (v, i)));
    node = json_node_new (JSON_NODE_ARRAY);
    json_node_take_array (node, arr);
  } else if (t == GST_TYPE_STRUCTURE) {
    node = structure_to_json (gst_value_get_structure (v), json_object_new ());
  } else {
    gchar *s = gst_value_serialize (v);

    node = json_node_new (s ? JSON_NODE_VALUE : JSON_NODE_NULL);
    if (s)
      json_node_set_string (node, s);
    g_free (s);
  }
  return node;
}

/* One line: {"frame": n, then the message's fields in order}. */
static void
write_frame (Recorder * r, const GstStructure * s)
{
  JsonObject *line;
  JsonNode *root;
  guint n_polyps = 0;
  gchar *text;

  /* With --frames, the element also posted for the frame the probe then stopped. */
  if (r->max_frames && r->frames >= r->max_frames)
    return;
  line = json_object_new ();

  json_object_set_int_member (line, "frame", (gint64) r->frames);
  root = structure_to_json (s, line);
  json_generator_set_root (r->gen, root);
  text = json_generator_to_data (r->gen, NULL);
  if (r->out && !r->write_failed && (fputs (text, r->out) < 0 || fputc ('\n', r->out) < 0
          || fflush (r->out) != 0)) {
    g_printerr ("polypseg-record: cannot write %s: %s\n", r->out_name, g_strerror (errno));
    r->write_failed = TRUE;
  }
  g_free (text);
  json_node_unref (root);

  r->frames++;
  if (gst_structure_get_uint (s, "n-polyps", &n_polyps) && n_polyps > 0)
    r->with_polyps++;
}

/* An ERROR or WARNING message as one line naming its element; errors add the debug detail. */
static void
print_problem (GstMessage * msg)
{
  GError *err = NULL;
  gchar *debug = NULL, *name = gst_object_get_path_string (GST_MESSAGE_SRC (msg));
  gboolean error = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR;

  if (error)
    gst_message_parse_error (msg, &err, &debug);
  else
    gst_message_parse_warning (msg, &err, &debug);
  g_printerr ("polypseg-record: %s from %s: %s\n", error ? "error" : "warning", name, err->message);
  if (error && debug)
    g_printerr ("  (%s)\n", debug);
  g_error_free (err);
  g_free (debug);
  g_free (name);
}

static gboolean
on_message (GstBus * bus, GstMessage * msg, gpointer data)
{
  Recorder *r = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);

      if (s && gst_structure_has_name (s, "polypseg"))
        write_frame (r, s);
      break;
    }
    case GST_MESSAGE_ERROR:
      print_problem (msg);
      r->rc = 1;
      g_main_loop_quit (r->loop);
      break;
    case GST_MESSAGE_WARNING:
      print_problem (msg);
      break;
    case GST_MESSAGE_EOS:
      g_main_loop_quit (r->loop);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

/* --frames: lets max_frames buffers leave the polypseg element, then ends the stream there:
 * end-of-stream downstream, and GST_FLOW_EOS upstream so the source stops too. */
static GstPadProbeReturn
on_polypseg_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Recorder *r = data;

  if (r->max_frames == 0 || r->passed < r->max_frames) {
    r->passed++;
    return GST_PAD_PROBE_OK;
  }
  if (r->passed++ == r->max_frames)
    gst_pad_push_event (pad, gst_event_new_eos ());
  gst_buffer_unref (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_PAD_PROBE_INFO_FLOW_RETURN (info) = GST_FLOW_EOS;
  return GST_PAD_PROBE_HANDLED;
}

/* --commit: each PART renamed to FINAL after a successful run; after a failure removed, or
 * kept as PART (and named) when a second Ctrl-C aborted, as the user asked to stop. Returns the
 * exit status. */
static gint
commit_outputs (gchar ** commits, gint rc)
{
  for (gint i = 0; commits && commits[i]; i++) {
    gchar **pf = g_strsplit (commits[i], "=", 2);

    if (rc == 0 && g_rename (pf[0], pf[1]) != 0) {
      g_printerr ("polypseg-record: cannot rename %s to %s: %s\n", pf[0], pf[1], g_strerror (errno));
      rc = 1;
    } else if (rc == 130) {
      g_printerr ("polypseg-record: unfinished output left in %s\n", pf[0]);
    } else if (rc != 0) {
      g_unlink (pf[0]);
    }
    g_strfreev (pf);
  }
  return rc;
}

/* The first element the polypseg factory made, searched recursively; NULL if none. */
static GstElement *
find_polypseg (GstElement * pipeline)
{
  GstElementFactory *factory = gst_element_factory_find ("polypseg");
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  GstElement *found = NULL;

  if (!factory)
    return NULL;
  it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  while (!found && gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);

    if (gst_element_get_factory (e) == factory)
      found = gst_object_ref (e);
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
  gst_object_unref (factory);
  return found;
}

/* First signal: end-of-stream, so the muxer finishes the file; second: give up. */
static gboolean
on_signal (gpointer data)
{
  Recorder *r = data;

  if (r->interrupts++ == 0) {
    g_printerr ("polypseg-record: interrupted: finishing the recording "
        "(interrupt again to abort; the file is then left unfinished)\n");
    gst_element_send_event (r->pipeline, gst_event_new_eos ());
  } else {
    g_printerr ("polypseg-record: aborted\n");
    r->rc = 130;
    g_main_loop_quit (r->loop);
  }
  return G_SOURCE_CONTINUE;
}

/* Prints the first error the pipeline posted while refusing to start. */
static void
print_start_error (GstBus * bus)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

  if (!msg) {
    g_printerr ("polypseg-record: the pipeline could not start\n");
    return;
  }
  print_problem (msg);
  gst_message_unref (msg);
}

int
main (int argc, char **argv)
{
  gchar *jsonl = NULL, **pipeline_argv = NULL, **commits = NULL;
  gboolean quiet = FALSE;
  gint64 expect_frames = 0;
  gint64 max_frames = -1;
  GOptionEntry entries[] = {
    {"jsonl", 'o', 0, G_OPTION_ARG_FILENAME, &jsonl,
        "Write the polypseg messages as JSON lines to FILE (- = standard output)", "FILE"},
    {"frames", 'n', 0, G_OPTION_ARG_INT64, &max_frames,
        "Stop after N frames have left the polypseg element", "N"},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No summary at the end", NULL},
    {"commit", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &commits,
        "When the run succeeds, rename PART (written by the pipeline) to FINAL; when it fails, "
        "remove PART (repeatable)", "PART=FINAL"},
    {"expect-frames", 0, 0, G_OPTION_ARG_INT64, &expect_frames,
        "Fail (exit 1) when fewer than N frames leave the polypseg element before the stream ends "
        "(not when --frames or Ctrl-C ends it first)", "N"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &pipeline_argv, NULL, NULL},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("[--] PIPELINE-DESCRIPTION...");
  GError *err = NULL;
  Recorder r = { 0 };
  GstBus *bus;
  gint rc;

  g_option_context_set_summary (ctx,
      "Runs a gst-launch-1.0 style pipeline until end of stream and writes every \"polypseg\"\n"
      "element message (set post-messages=true on the polypseg element) as one JSON line:\n"
      "{\"frame\": n, \"timestamp\": ns, \"stream-time\", \"running-time\", \"duration\", \"inferred\",\n"
      " \"n-polyps\", \"polyps\": [{\"id\", \"x\", \"y\", \"width\", \"height\", \"area\", \"score\",\n"
      " \"contour\": [[x, y], ...]}, ...]}  (times in nanoseconds, null when unknown).\n"
      "Without --jsonl, nothing is written (--frames still applies).\n"
      "Ctrl-C ends the stream cleanly (the MP4 is finalised); a second Ctrl-C aborts.");
  g_option_context_set_description (ctx,
      "Example:\n  polypseg-record -o out.jsonl -- videotestsrc num-buffers=30 ! videoconvert \\\n"
      "    ! polypseg post-messages=true ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4\n\n"
      "Exit status: 0 at end of stream (also after Ctrl-C), 1 on a pipeline or write error,\n"
      "2 on bad usage or a pipeline that cannot be built, 130 when aborted.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("polypseg-record: %s (see --help)\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!pipeline_argv || !pipeline_argv[0]) {
    g_printerr ("polypseg-record: no pipeline description given (see --help)\n");
    return 2;
  }
  if (max_frames == 0 || max_frames < -1) {
    g_printerr ("polypseg-record: --frames wants a positive number (see --help)\n");
    return 2;
  }
  if (expect_frames < 0) {
    g_printerr ("polypseg-record: --expect-frames wants a number >= 0 (see --help)\n");
    return 2;
  }
  for (gint i = 0; commits && commits[i]; i++) {
    const gchar *eq = strchr (commits[i], '=');

    if (!eq || eq == commits[i] || !eq[1]) {
      g_printerr ("polypseg-record: --commit wants PART=FINAL, not '%s' (see --help)\n", commits[i]);
      return 2;
    }
  }

  r.pipeline = gst_parse_launchv_full ((const gchar **) pipeline_argv, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!r.pipeline) {
    g_printerr ("polypseg-record: could not build the pipeline: %s\n", err->message);
    return 2;
  }
  if (!GST_IS_PIPELINE (r.pipeline)) {
    GstElement *p = gst_pipeline_new (NULL);

    gst_bin_add (GST_BIN (p), r.pipeline);
    r.pipeline = p;
  }

  if (max_frames > 0 || expect_frames > 0) {
    GstElement *seg = find_polypseg (r.pipeline);
    GstPad *pad;

    if (!seg) {
      g_printerr ("polypseg-record: --frames and --expect-frames need a polypseg element in the pipeline\n");
      gst_object_unref (r.pipeline);
      return 2;
    }
    r.max_frames = max_frames > 0 ? (guint64) max_frames : 0;
    pad = gst_element_get_static_pad (seg, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_polypseg_buffer, &r, NULL);
    gst_object_unref (pad);
    gst_object_unref (seg);
  }

  r.out_name = !jsonl ? NULL : strcmp (jsonl, "-") == 0 ? "standard output" : jsonl;
  for (gint i = 0; jsonl && commits && commits[i]; i++) /* name the file it becomes */
    if (strncmp (commits[i], jsonl, strlen (jsonl)) == 0 && commits[i][strlen (jsonl)] == '=')
      r.out_name = commits[i] + strlen (jsonl) + 1;
  r.out = !jsonl ? NULL : strcmp (jsonl, "-") == 0 ? stdout : fopen (jsonl, "w");
  if (jsonl && !r.out) {
    g_printerr ("polypseg-record: cannot create %s: %s\n", jsonl, g_strerror (errno));
    gst_object_unref (r.pipeline);
    return 2;
  }
  r.gen = json_generator_new ();
  r.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (r.pipeline);
  gst_bus_add_watch (bus, on_message, &r);
  g_unix_signal_add (SIGINT, on_signal, &r);
  g_unix_signal_add (SIGTERM, on_signal, &r);

  if (gst_element_set_state (r.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    print_start_error (bus);
    r.rc = 1;
  } else {
    g_main_loop_run (r.loop);
  }
  /* Every frame's message was posted before the sink's EOS, so all are written by now. */
  gst_element_set_state (r.pipeline, GST_STATE_NULL);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);

  if (r.out && r.out != stdout && fclose (r.out) != 0 && !r.write_failed) {
    g_printerr ("polypseg-record: cannot write %s: %s\n", r.out_name, g_strerror (errno));
    r.write_failed = TRUE;
  }
  if (r.write_failed && r.rc == 0)
    r.rc = 1;
  if (r.rc == 0 && expect_frames > 0 && r.interrupts == 0
      && r.passed < (r.max_frames ? MIN ((guint64) expect_frames, r.max_frames) : (guint64) expect_frames)) {
    g_printerr ("polypseg-record: only %" G_GUINT64_FORMAT " of the %" G_GINT64_FORMAT " frames expected "
        "came through (a stream of image files ends at a corrupt or unreadable one)\n", r.passed,
        expect_frames);
    r.rc = 1;
  }
  if (jsonl && r.rc == 0 && r.frames == 0)
    g_printerr ("polypseg-record: warning: no polypseg messages (is post-messages=true set on "
        "the polypseg element?)\n");
  if (jsonl && !quiet && r.rc == 0)
    g_printerr ("polypseg-record: %" G_GUINT64_FORMAT " frames (%" G_GUINT64_FORMAT
        " with polyps) -> %s\n", r.frames, r.with_polyps, r.out_name);
  gst_object_unref (r.pipeline);
  r.pipeline = NULL;
  rc = commit_outputs (commits, r.rc); /* after the pipeline closed its files */
  g_object_unref (r.gen);
  g_main_loop_unref (r.loop);
  g_strfreev (pipeline_argv);
  g_strfreev (commits);
  g_free (jsonl);
  return rc;
}
