/* 1,000 frames through polypseg with messages and metas on, every frame inferred, with two caps
 * changes on the way: run under valgrind by meson (test gst-leak-valgrind: no definite leak,
 * no memory error), and directly (test gst-leak: resident memory does not grow between frame
 * 100 and frame 1,000). POLYPSEG_LEAK_FRAMES overrides the count, POLYPSEG_NO_RSS_CHECK=1 skips
 * the memory check (set under valgrind, whose own memory use is what it would measure). */
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gstpolypsegmeta.h"
#include "model.h"
#include "preprocess.h"
#include "test_util.h"

#define MODEL_SIZE 128
/* Allowed resident-memory growth from frame 100 to the last: a leak of one mask (16 KiB) a
 * frame would add 14 MiB, one of a polyp structure with its contour well over 1 MiB. */
#define RSS_SLACK_KIB 1024

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* A w x h 4-byte frame (BGRx and RGBx alike): a gradient with a bright disc moving with i. */
static GstBuffer *frame(int w, int h, int i)
{
    GstBuffer *buf = gst_buffer_new_allocate(NULL, (gsize)w * h * 4, NULL);
    GstMapInfo map;
    g_assert_true(gst_buffer_map(buf, &map, GST_MAP_WRITE));
    int cx = (i * 3) % w, cy = h / 2 + (i % 20) - 10, r = h / 5;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            guint8 *p = map.data + 4 * ((gsize)y * w + x);
            int in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
            p[0] = in ? 90 : (guint8)(x * 255 / w);
            p[1] = in ? 200 : (guint8)(y * 255 / h);
            p[2] = in ? 240 : 60;
            p[3] = 255;
        }
    gst_buffer_unmap(buf, &map);
    GST_BUFFER_PTS(buf) = (GstClockTime)i * GST_SECOND / 30;
    GST_BUFFER_DURATION(buf) = GST_SECOND / 30;
    return buf;
}

/* The random model's 75th-percentile probability on frame 0: a threshold giving real regions. */
static double pick_threshold(const char *weights)
{
    GError *err = NULL;
    ps_model *m = ps_model_load(weights, &err);
    g_assert_no_error(err);
    ps_segmenter *s = ps_segmenter_new(m);
    GstBuffer *buf = frame(160, 120, 0);
    GstMapInfo map;
    guint8 *rgb = g_malloc(160 * 120 * 3);
    g_assert_true(gst_buffer_map(buf, &map, GST_MAP_READ));
    for (int i = 0; i < 160 * 120; i++) { /* BGRx -> RGB */
        rgb[3 * i] = map.data[4 * i + 2];
        rgb[3 * i + 1] = map.data[4 * i + 1];
        rgb[3 * i + 2] = map.data[4 * i];
    }
    gst_buffer_unmap(buf, &map);
    const int n = MODEL_SIZE * MODEL_SIZE;
    double t = tu_quantile(ps_segmenter_run(s, rgb, 160, 120, 160 * 3), n, 0.75);
    g_free(rgb);
    gst_buffer_unref(buf);
    ps_segmenter_free(s);
    ps_model_free(m);
    return t;
}

static void set_caps(GstHarness *hs, const char *format, int w, int h)
{
    char *caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format, w, h);
    gst_harness_set_src_caps_str(hs, caps);
    g_free(caps);
}

static void test_thousand_frames(void)
{
    const char *env = g_getenv("POLYPSEG_LEAK_FRAMES");
    const int frames = env ? atoi(env) : 1000;
    const gboolean check_rss = g_strcmp0(g_getenv("POLYPSEG_NO_RSS_CHECK"), "1") != 0;
    /* Frame size per phase: the caps change at frames / 2 and 3 * frames / 4. */
    static const struct {
        const char *format;
        int w, h;
    } phases[] = {{"BGRx", 160, 120}, {"RGBx", 128, 96}, {"BGRx", 160, 120}};

    char *dir = g_dir_make_tmp("polypseg-leak-XXXXXX", NULL);
    char *weights = g_build_filename(dir, "random.safetensors", NULL);
    GError *err = NULL;
    ps_model *m = ps_model_new("microaunet", NULL, 0, 5, &err);
    g_assert_no_error(err);
    m->info.input_size = MODEL_SIZE;
    g_assert_true(ps_model_save(m, weights, NULL, &err));
    ps_model_free(m);
    double threshold = pick_threshold(weights);

    GstElement *e = gst_element_factory_make("polypseg", NULL);
    g_assert_nonnull(e);
    g_object_set(e, "weights", weights, "post-messages", TRUE, "threshold", threshold, "min-area", 0.0, NULL);
    GstBus *bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    GstHarness *hs = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);

    long rss_100 = -1, polyps = 0, with_polyps = 0;
    int phase = -1;
    for (int i = 0; i < frames; i++) {
        int want = i < frames / 2 ? 0 : i < frames * 3 / 4 ? 1 : 2;
        if (want != phase) {
            phase = want;
            set_caps(hs, phases[phase].format, phases[phase].w, phases[phase].h);
            if (phase == 2) /* the last quarter with test-time augmentation: its view buffers too */
                g_object_set(hs->element, "tta", 2, NULL);
        }
        g_assert_cmpint(gst_harness_push(hs, frame(phases[phase].w, phases[phase].h, i)), ==, GST_FLOW_OK);
        GstBuffer *out = gst_harness_pull(hs);
        g_assert_nonnull(out);
        GstPolypSegMeta *mm = gst_buffer_get_polyp_seg_meta(out);
        g_assert_nonnull(mm);
        g_assert_cmpuint(g_bytes_get_size(mm->mask), ==, MODEL_SIZE * MODEL_SIZE);
        guint n_roi = gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
        /* Reading a ROI's params, as an application does. */
        gpointer state = NULL;
        GstMeta *meta;
        while ((meta = gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
            g_assert_nonnull(gst_video_region_of_interest_meta_get_param((GstVideoRegionOfInterestMeta *)meta, "polyp"));
        gst_buffer_unref(out);

        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT);
        g_assert_nonnull(msg);
        guint n;
        g_assert_true(gst_structure_get_uint(gst_message_get_structure(msg), "n-polyps", &n));
        g_assert_cmpuint(n, ==, n_roi);
        gst_message_unref(msg);
        polyps += n;
        with_polyps += n > 0;
        /* Drop everything else the element or harness posted. */
        while ((msg = gst_bus_pop(bus)))
            gst_message_unref(msg);
        if (i + 1 == MIN(100, frames))
            rss_100 = rss_kib();
    }
    long rss_end = rss_kib();
    g_test_message("%d frames, %ld with polyps, %ld polyps in all; VmRSS %ld KiB after frame 100, %ld KiB at the end",
                   frames, with_polyps, polyps, rss_100, rss_end);
    g_assert_cmpint(with_polyps, >, frames / 4);
    if (check_rss && frames >= 1000 && rss_100 > 0 && rss_end > 0)
        g_assert_cmpint(rss_end - rss_100, <=, RSS_SLACK_KIB);

    gst_element_set_bus(hs->element, NULL);
    gst_bus_set_flushing(bus, TRUE);
    gst_object_unref(bus);
    gst_harness_teardown(hs);
    tu_remove_tree(dir);
    g_free(weights);
    g_free(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    gst_init(&argc, &argv);
    g_test_add_func("/polypseg/1000-frames", test_thousand_frames);
    int rc = g_test_run();
    gst_deinit();
    return rc;
}
