/* The polypseg element through GstHarness, loaded from the build tree's plugin (meson sets
 * GST_PLUGIN_PATH_1_0 and a private registry). Models are made here: a seeded random one, and
 * two whose output is constant (every pixel polyp / none), because the shipped weights may not
 * be trained yet; the real-frame test uses weights/microaunet-cvc.safetensors when it loads. */
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>
#include "contours.h"
#include "frameconvert.h"
#include "framedraw.h"
#include "gstpolypsegmeta.h"
#include "image.h"
#include "model.h"
#include "preprocess.h"
#include "test_util.h"

#define MODEL_SIZE 128

static struct {
    char *dir, *random, *all, *none, *corrupt, *empty;
    ps_image *picture; /* synthetic 160x120 RGB: gradient with a bright disc */
} fx;

static const char *const formats[] = {"RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA",
                                      "ARGB", "ABGR", "I420", "YV12", "NV12", "NV21", NULL};

/* ---- fixtures ---- */

static char *save_model(const char *name, int constant)
{
    GError *err = NULL;
    ps_model *m = ps_model_new("microaunet", NULL, 0, 11, &err);
    g_assert_no_error(err);
    m->info.input_size = MODEL_SIZE;
    if (constant) {
        ps_tensor *w = ps_model_find(m, "final.weight")->t, *b = ps_model_find(m, "final.bias")->t;
        memset(w->data, 0, ps_numel(w) * sizeof(float));
        b->data[0] = constant > 0 ? 20.0f : -20.0f;
    }
    char *path = g_build_filename(fx.dir, name, NULL);
    g_assert_true(ps_model_save(m, path, NULL, &err));
    ps_model_free(m);
    return path;
}

static void fixtures_init(void)
{
    fx.dir = g_dir_make_tmp("polypseg-gst-XXXXXX", NULL);
    g_assert_nonnull(fx.dir);
    fx.random = save_model("random.safetensors", 0);
    fx.all = save_model("all.safetensors", 1);
    fx.none = save_model("none.safetensors", -1);
    /* A real weights file cut short, as an interrupted copy leaves it. */
    char *data;
    gsize len;
    g_assert_true(g_file_get_contents(fx.random, &data, &len, NULL));
    fx.corrupt = g_build_filename(fx.dir, "truncated.safetensors", NULL);
    g_assert_true(g_file_set_contents(fx.corrupt, data, (gssize)(len * 3 / 5), NULL));
    g_free(data);
    fx.empty = g_build_filename(fx.dir, "empty.safetensors", NULL);
    g_assert_true(g_file_set_contents(fx.empty, "", 0, NULL));
    fx.picture = ps_image_new(160, 120, 3);
    for (int y = 0; y < 120; y++)
        for (int x = 0; x < 160; x++) {
            uint8_t *p = fx.picture->data + 3 * (y * 160 + x);
            int inside = (x - 100) * (x - 100) + (y - 50) * (y - 50) < 25 * 25;
            p[0] = inside ? 240 : (uint8_t)(x * 255 / 159);
            p[1] = inside ? 200 : (uint8_t)(y * 255 / 119);
            p[2] = inside ? 90 : 60;
        }
}

static void fixtures_clear(void)
{
    tu_remove_tree(fx.dir);
    g_free(fx.dir);
    g_free(fx.random);
    g_free(fx.all);
    g_free(fx.none);
    g_free(fx.corrupt);
    g_free(fx.empty);
    ps_image_free(fx.picture);
}

/* ---- frames ---- */

static void info_for(GstVideoInfo *info, const char *format, int w, int h)
{
    g_assert_true(gst_video_info_set_format(info, gst_video_format_from_string(format), w, h));
    info->fps_n = 30;
    info->fps_d = 1;
}

static char *caps_for(const char *format, int w, int h)
{
    GstVideoInfo info;
    info_for(&info, format, w, h);
    GstCaps *caps = gst_video_info_to_caps(&info);
    char *s = gst_caps_to_string(caps);
    gst_caps_unref(caps);
    return s;
}

/* Converts between frames with GStreamer's own converter (independent of the element's). */
static void convert(const GstVideoInfo *from, GstBuffer *in, const GstVideoInfo *to, GstBuffer *out)
{
    GstVideoFrame fi, fo;
    g_assert_true(gst_video_frame_map(&fi, (GstVideoInfo *)from, in, GST_MAP_READ));
    g_assert_true(gst_video_frame_map(&fo, (GstVideoInfo *)to, out, GST_MAP_WRITE));
    GstVideoConverter *c = gst_video_converter_new((GstVideoInfo *)from, (GstVideoInfo *)to, NULL);
    gst_video_converter_frame(c, &fi, &fo);
    gst_video_converter_free(c);
    gst_video_frame_unmap(&fo);
    gst_video_frame_unmap(&fi);
}

static GstBuffer *rgb_buffer(const ps_image *im, GstVideoInfo *info)
{
    info_for(info, "RGB", im->w, im->h);
    GstBuffer *buf = gst_buffer_new_allocate(NULL, info->size, NULL);
    gst_buffer_memset(buf, 0, 0, info->size); /* row padding too: buffers are compared whole */
    GstVideoFrame f;
    g_assert_true(gst_video_frame_map(&f, info, buf, GST_MAP_WRITE));
    for (int y = 0; y < im->h; y++)
        memcpy((guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&f, 0) + y * GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0),
               im->data + (size_t)y * im->w * 3, (size_t)im->w * 3);
    gst_video_frame_unmap(&f);
    return buf;
}

/* The picture in `format`. */
static GstBuffer *frame_of(const ps_image *im, const char *format)
{
    GstVideoInfo rgb, info;
    GstBuffer *src = rgb_buffer(im, &rgb);
    info_for(&info, format, im->w, im->h);
    GstBuffer *buf = gst_buffer_new_allocate(NULL, info.size, NULL);
    gst_buffer_memset(buf, 0, 0, info.size);
    convert(&rgb, src, &info, buf);
    gst_buffer_unref(src);
    return buf;
}

/* Back to packed RGB, for checking colours whatever the format. */
static guint8 *to_rgb(GstBuffer *buf, const char *format, int w, int h)
{
    GstVideoInfo info, rgb;
    info_for(&info, format, w, h);
    info_for(&rgb, "RGB", w, h);
    GstBuffer *out = gst_buffer_new_allocate(NULL, rgb.size, NULL);
    convert(&info, buf, &rgb, out);
    guint8 *data = g_malloc((size_t)w * h * 3);
    GstVideoFrame f;
    g_assert_true(gst_video_frame_map(&f, &rgb, out, GST_MAP_READ));
    for (int y = 0; y < h; y++)
        memcpy(data + (size_t)y * w * 3,
               (guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&f, 0) + y * GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0),
               (size_t)w * 3);
    gst_video_frame_unmap(&f);
    gst_buffer_unref(out);
    return data;
}

static gboolean same_bytes(GstBuffer *a, GstBuffer *b)
{
    GstMapInfo ma, mb;
    g_assert_true(gst_buffer_map(a, &ma, GST_MAP_READ));
    g_assert_true(gst_buffer_map(b, &mb, GST_MAP_READ));
    gboolean same = ma.size == mb.size && memcmp(ma.data, mb.data, ma.size) == 0;
    gst_buffer_unmap(a, &ma);
    gst_buffer_unmap(b, &mb);
    return same;
}

/* ---- harness ---- */

/* Drops the bus: left-over messages hold references to the element, which holds the bus. */
static void drop_bus(GstElement *e, GstBus *bus)
{
    gst_element_set_bus(e, NULL);
    gst_bus_set_flushing(bus, TRUE);
    gst_object_unref(bus);
}

static GstElement *element_with(const char *weights)
{
    GstElement *e = gst_element_factory_make("polypseg", NULL);
    g_assert_nonnull(e);
    g_object_set(e, "weights", weights, NULL);
    return e;
}

/* The element (properties already set) in a harness, with `caps` on its input. */
static GstHarness *harness_for(GstElement *e, const char *format, int w, int h)
{
    GstHarness *hs = gst_harness_new_with_element(e, "sink", "src");
    char *caps = caps_for(format, w, h);
    gst_harness_set_src_caps_str(hs, caps);
    g_free(caps);
    gst_object_unref(e);
    return hs;
}

/* Pushes `in` (kept: the harness gets a copy) and returns what came out. */
static GstBuffer *run(GstHarness *hs, GstBuffer *in, GstClockTime pts)
{
    GstBuffer *copy = gst_buffer_copy_deep(in);
    GST_BUFFER_PTS(copy) = pts;
    GST_BUFFER_DURATION(copy) = GST_SECOND / 30;
    g_assert_cmpint(gst_harness_push(hs, copy), ==, GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(hs);
    g_assert_nonnull(out);
    return out;
}

static GstPolypSegMeta *mask_meta(GstBuffer *buf)
{
    GstPolypSegMeta *m = gst_buffer_get_polyp_seg_meta(buf);
    g_assert_nonnull(m);
    g_assert_cmpuint(m->width, ==, MODEL_SIZE);
    g_assert_cmpuint(m->height, ==, MODEL_SIZE);
    g_assert_cmpuint(g_bytes_get_size(m->mask), ==, MODEL_SIZE * MODEL_SIZE);
    return m;
}

static int count_rois(GstBuffer *buf)
{
    return gst_buffer_get_n_meta(buf, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
}

static GstVideoRegionOfInterestMeta *roi_n(GstBuffer *buf, int n)
{
    gpointer state = NULL;
    GstMeta *meta;
    int i = 0;
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
        if (i++ == n)
            return (GstVideoRegionOfInterestMeta *)meta;
    return NULL;
}

static int point_coord(const GValue *contour, int i, int xy)
{
    const GValue *p = gst_value_array_get_value(contour, i);
    g_assert_true(GST_VALUE_HOLDS_ARRAY(p));
    g_assert_cmpuint(gst_value_array_get_size(p), ==, 2);
    return g_value_get_int(gst_value_array_get_value(p, xy));
}

/* ROI metas against the mask meta: one per 8-connected region of the mask, in raster order,
 * with the box, area, score and contour that region gives, and sane values on their own. */
static void check_rois(GstBuffer *buf, int w, int h, double threshold, double min_area)
{
    GstPolypSegMeta *pm = gst_buffer_get_polyp_seg_meta(buf);
    g_assert_nonnull(pm);
    const int S = (int)pm->width;
    g_assert_cmpuint(pm->height, ==, (guint)S);
    guint8 *mask = g_memdup2(gst_polyp_seg_meta_get_mask(pm), S * S);
    long polyp = 0;
    for (int i = 0; i < S * S; i++) {
        g_assert_true(mask[i] == 0 || mask[i] == 255);
        polyp += mask[i] != 0;
    }
    ps_regions *r = ps_regions_new(S, S);
    int n = ps_regions_find(r, mask, NULL, 1);
    g_assert_cmpint(count_rois(buf), ==, n);
    double total = 0;
    for (int i = 0; i < n; i++) {
        GstVideoRegionOfInterestMeta *roi = roi_n(buf, i);
        const ps_region *g = ps_regions_get(r, i);
        g_assert_cmpstr(g_quark_to_string(roi->roi_type), ==, "polyp");
        g_assert_cmpint(roi->id, ==, i);
        /* Independently of the element's own box code: the box covers the frame pixels of the
         * region's model pixels, and less than one frame pixel more on each side. */
        const double fx0 = (double)g->x0 * w / S, fx1 = MIN((double)(g->x1 + 1) * w / S, w);
        const double fy0 = (double)g->y0 * h / S, fy1 = MIN((double)(g->y1 + 1) * h / S, h);
        g_assert_true(roi->x <= fx0 && roi->x > fx0 - 1 && roi->x + roi->w >= fx1 && roi->x + roi->w < fx1 + 1);
        g_assert_true(roi->y <= fy0 && roi->y > fy0 - 1 && roi->y + roi->h >= fy1 && roi->y + roi->h < fy1 + 1);
        g_assert_cmpuint(roi->x + roi->w, <=, (guint)w);
        g_assert_cmpuint(roi->y + roi->h, <=, (guint)h);
        GstStructure *s = gst_video_region_of_interest_meta_get_param(roi, "polyp");
        g_assert_nonnull(s);
        int id;
        guint bx, by, bw, bh;
        double area, score;
        g_assert_true(gst_structure_get(s, "id", G_TYPE_INT, &id, "x", G_TYPE_UINT, &bx, "y", G_TYPE_UINT, &by,
                                        "width", G_TYPE_UINT, &bw, "height", G_TYPE_UINT, &bh, "area",
                                        G_TYPE_DOUBLE, &area, "score", G_TYPE_DOUBLE, &score, NULL));
        g_assert_cmpint(id, ==, i);
        g_assert_true(bx == roi->x && by == roi->y && bw == roi->w && bh == roi->h);
        g_assert_cmpfloat_with_epsilon(area, (double)g->area / (S * S), 1e-12);
        g_assert_cmpfloat(area, >=, min_area);
        g_assert_cmpfloat(score, >=, threshold);
        g_assert_cmpfloat(score, <=, 1.0);
        total += area;
        const GValue *contour = gst_structure_get_value(s, "contour");
        g_assert_true(GST_VALUE_HOLDS_ARRAY(contour));
        guint np = gst_value_array_get_size(contour);
        g_assert_cmpuint(np, ==, (guint)g->n_points);
        for (guint k = 0; k < np; k++) {
            int x = point_coord(contour, k, 0), y = point_coord(contour, k, 1);
            g_assert_cmpint(x, >=, (int)roi->x);
            g_assert_cmpint(x, <, (int)(roi->x + roi->w));
            g_assert_cmpint(y, >=, (int)roi->y);
            g_assert_cmpint(y, <, (int)(roi->y + roi->h));
            /* On a polyp pixel of the mask (within one model pixel when the frame is smaller). */
            int mx = (int)((x + 0.5) * S / w), my = (int)((y + 0.5) * S / h), near = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = CLAMP(mx + dx, 0, S - 1), yy = CLAMP(my + dy, 0, S - 1);
                    near |= ps_regions_labels(r)[yy * S + xx] == i + 1;
                }
            g_assert_true(near);
        }
    }
    g_assert_cmpfloat_with_epsilon(total, (double)polyp / (S * S), 1e-9);
    ps_regions_free(r);
    g_free(mask);
}

/* Model pixel under frame pixel (x, y), nearest. */
static int model_at(const guint8 *mask, int x, int y, int w, int h)
{
    int mx = (int)((x + 0.5) * MODEL_SIZE / w), my = (int)((y + 0.5) * MODEL_SIZE / h);
    return mask[my * MODEL_SIZE + mx] != 0;
}

/* Whether the model pixels within `r` of the one under (x, y) include polyp (want = 1) or
 * background (want = 0); the outside of the image counts as background. */
static gboolean near_value(const guint8 *mask, int x, int y, int w, int h, int r, int want)
{
    int mx = (int)((x + 0.5) * MODEL_SIZE / w), my = (int)((y + 0.5) * MODEL_SIZE / h);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int xx = mx + dx, yy = my + dy;
            int v = xx < 0 || yy < 0 || xx >= MODEL_SIZE || yy >= MODEL_SIZE ? 0 : mask[yy * MODEL_SIZE + xx] != 0;
            if (v == want)
                return TRUE;
        }
    return FALSE;
}

/* The probability such that a fraction q of the picture's model pixels lie below it, for the
 * random model: gives it a mask with real regions whatever its untrained output range. */
static double quantile_threshold(const ps_image *im, double q)
{
    GError *err = NULL;
    ps_model *m = ps_model_load(fx.random, &err);
    g_assert_no_error(err);
    ps_segmenter *s = ps_segmenter_new(m);
    const int n = MODEL_SIZE * MODEL_SIZE;
    double t = tu_quantile(ps_segmenter_run(s, im->data, im->w, im->h, im->w * 3), n, q);
    ps_segmenter_free(s);
    ps_model_free(m);
    return t;
}

/* ---- tests ---- */

/* Every format negotiates at an odd size; the all-polyp model tints every pixel with the
 * overlay colour, the no-polyp one leaves the frame as it was. */
static void test_formats(void)
{
    const int w = 161, h = 97;
    ps_image *im = ps_image_new(w, h, 3);
    ps_resize_bilinear_u8(fx.picture->data, 160, 120, 160 * 3, 3, im->data, w, h, w * 3);
    for (int f = 0; formats[f]; f++) {
        g_test_message("format %s", formats[f]);
        GstBuffer *in = frame_of(im, formats[f]);

        GstElement *e = element_with(fx.all);
        g_object_set(e, "overlay-color", 0xffe01010, "overlay-alpha", 1.0, "draw-contours", FALSE, NULL);
        GstHarness *hs = harness_for(e, formats[f], w, h);
        GstBuffer *out = run(hs, in, 0);
        GstCaps *caps = gst_pad_get_current_caps(hs->sinkpad);
        char *want = caps_for(formats[f], w, h);
        GstCaps *want_caps = gst_caps_from_string(want);
        g_assert_true(gst_caps_is_equal(caps, want_caps));
        gst_caps_unref(want_caps);
        gst_caps_unref(caps);
        g_free(want);
        g_assert_cmpint(count_rois(out), ==, 1);
        GstVideoRegionOfInterestMeta *roi = roi_n(out, 0);
        g_assert_true(roi->x == 0 && roi->y == 0 && roi->w == (guint)w && roi->h == (guint)h);
        const GValue *contour = gst_structure_get_value(gst_video_region_of_interest_meta_get_param(roi, "polyp"), "contour");
        g_assert_cmpuint(gst_value_array_get_size(contour), ==, 4); /* the frame's corners */
        check_rois(out, w, h, 0.5, 0);
        guint8 *rgb = to_rgb(out, formats[f], w, h);
        for (int i = 0; i < w * h; i++)
            if (ABS(rgb[3 * i] - 0xe0) > 4 || ABS(rgb[3 * i + 1] - 0x10) > 4 || ABS(rgb[3 * i + 2] - 0x10) > 4)
                g_error("%s: pixel %d is %d,%d,%d, not the overlay colour", formats[f], i, rgb[3 * i],
                        rgb[3 * i + 1], rgb[3 * i + 2]);
        g_free(rgb);
        gst_buffer_unref(out);
        gst_harness_teardown(hs);

        hs = harness_for(element_with(fx.none), formats[f], w, h);
        out = run(hs, in, 0);
        g_assert_cmpint(count_rois(out), ==, 0);
        const guint8 *mask = gst_polyp_seg_meta_get_mask(mask_meta(out));
        for (int i = 0; i < MODEL_SIZE * MODEL_SIZE; i++)
            g_assert_cmpint(mask[i], ==, 0);
        g_assert_true(same_bytes(in, out));
        gst_buffer_unref(out);
        gst_harness_teardown(hs);
        gst_buffer_unref(in);
    }
    ps_image_free(im);
}

/* The element's frame -> model input matches the core's resize exactly for RGB formats, and
 * closely for YUV ones (chroma subsampling and rounding). */
static void test_frame_convert(void)
{
    const int w = 161, h = 97, S = MODEL_SIZE;
    ps_image *im = ps_image_new(w, h, 3);
    ps_resize_bilinear_u8(fx.picture->data, 160, 120, 160 * 3, 3, im->data, w, h, w * 3);
    guint8 *want = g_malloc(S * S * 3), *got = g_malloc(S * S * 3);
    ps_resize_bilinear_u8(im->data, w, h, w * 3, 3, want, S, S, S * 3);
    for (int f = 0; formats[f]; f++) {
        GstVideoInfo info;
        info_for(&info, formats[f], w, h);
        GstBuffer *buf = frame_of(im, formats[f]);
        GstVideoFrame frame;
        g_assert_true(gst_video_frame_map(&frame, &info, buf, GST_MAP_READ));
        PsFrameConvert c;
        ps_frame_convert_init(&c, &info, S);
        const float unit[3] = {1.f, 1.f, 1.f}, zero[3] = {0.f, 0.f, 0.f}; /* the bytes themselves */
        float *rgb_planes = g_new(float, 3 * S);
        for (int y = 0; y < S; y++) {
            float *planes[3] = {rgb_planes, rgb_planes + S, rgb_planes + 2 * S};
            ps_frame_convert_row(&c, &frame, y, planes, unit, zero);
            for (int x = 0; x < S; x++)
                for (int k = 0; k < 3; k++) {
                    g_assert_true(planes[k][x] == (float)(guint8)planes[k][x]);
                    got[((size_t)y * S + x) * 3 + k] = (guint8)planes[k][x];
                }
        }
        g_free(rgb_planes);
        ps_frame_convert_clear(&c);
        gst_video_frame_unmap(&frame);
        gst_buffer_unref(buf);
        double sum = 0;
        for (int i = 0; i < S * S * 3; i++)
            sum += ABS(got[i] - want[i]);
        g_test_message("%s: mean |difference| to the core's resize %.3f", formats[f], sum / (S * S * 3));
        if (GST_VIDEO_FORMAT_INFO_IS_RGB(info.finfo))
            g_assert_cmpmem(got, S * S * 3, want, S * S * 3);
        else
            g_assert_cmpfloat(sum / (S * S * 3), <, 3.0);
    }
    g_free(got);
    g_free(want);
    ps_image_free(im);
}

/* The canvas painter against the blend formula itself, on random marks in a box painted in two
 * row ranges: every sample of every component (BGRx's B, G, R; Y, U and V of the YUV layouts)
 * whose pixels hold a mark becomes (v (256 - a) + c a + 128) >> 8 with the strongest of those
 * marks' paints (a subsampled U or V covers up to 2 x 2 pixels; 251 x 97 leaves a last column
 * and row of one), every other byte of those planes (unmarked samples, BGRx's padding) stays. */
static void test_canvas_blend_formula(void)
{
    const int w = 251, h = 97;
    const char *const fmts[] = {"I420", "BGRx", "NV12", "NV21", "YV12"};
    GRand *r = g_rand_new_with_seed(17);
    const PsPaint tint = {{200, 40, 90}, 115}, line = {{10, 250, 128}, 256};
    for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++) {
        GstVideoInfo info;
        gst_video_info_set_format(&info, gst_video_format_from_string(fmts[f]), w, h);
        GstBuffer *buf = gst_buffer_new_allocate(NULL, info.size, NULL);
        GstMapInfo map;
        g_assert_true(gst_buffer_map(buf, &map, GST_MAP_WRITE));
        for (gsize i = 0; i < map.size; i++)
            map.data[i] = (guint8)g_rand_int_range(r, 0, 256);
        guint8 *before = g_memdup2(map.data, map.size);
        gst_buffer_unmap(buf, &map);

        PsCanvas c;
        ps_canvas_init(&c, w, h, 32);
        c.dx0 = 7, c.dy0 = 3, c.dx1 = 240, c.dy1 = 90; /* marks only inside the dirty box */
        for (int y = c.dy0; y <= c.dy1; y++)
            for (int x = c.dx0; x <= c.dx1; x++) {
                int v = g_rand_int_range(r, 0, 10); /* runs of every length, both marks */
                c.cover[y * w + x] = v < 4 ? 0 : v < 8 ? 1 : 2;
            }
        guint8 *marks = g_memdup2(c.cover, (gsize)w * h);
        GstVideoFrame vf;
        g_assert_true(gst_video_frame_map(&vf, &info, buf, GST_MAP_READWRITE));
        /* in two row ranges, the later first, as threads may paint them; the first leaves the
         * rows above it, pixels and marks, as they were */
        const int split = 2 * 23;
        ps_canvas_paint(&c, &vf, &tint, &line, split, h);
        for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&vf); p++) {
            const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&vf, p), rows = p == 0 ? split : split / 2;
            const guint8 *now = GST_VIDEO_FRAME_PLANE_DATA(&vf, p), *was = before + GST_VIDEO_INFO_PLANE_OFFSET(&info, p);
            if (memcmp(now, was, (size_t)rows * stride) != 0)
                g_error("%s: painting rows %d.. changed plane %u above them", fmts[f], split, p);
        }
        g_assert_cmpmem(c.cover, (gsize)split * w, marks, (gsize)split * w);
        ps_canvas_paint(&c, &vf, &tint, &line, 0, split);
        ps_canvas_painted(&c);
        const gboolean yuv = GST_VIDEO_INFO_IS_YUV(&info);
        for (int k = 0; k < 3; k++) {
            const guint8 *plane = GST_VIDEO_FRAME_COMP_DATA(&vf, k);
            const gsize off = plane - (const guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&vf, GST_VIDEO_FRAME_COMP_PLANE(&vf, k)) +
                              GST_VIDEO_INFO_PLANE_OFFSET(&info, GST_VIDEO_FRAME_COMP_PLANE(&vf, k));
            const int stride = GST_VIDEO_FRAME_COMP_STRIDE(&vf, k), ps = GST_VIDEO_FRAME_COMP_PSTRIDE(&vf, k);
            const int ws = GST_VIDEO_FORMAT_INFO_W_SUB(info.finfo, k), hs = GST_VIDEO_FORMAT_INFO_H_SUB(info.finfo, k);
            for (int y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT(&vf, k); y++)
                for (int x = 0; x < GST_VIDEO_FRAME_COMP_WIDTH(&vf, k); x++) {
                    const gsize at = (gsize)y * stride + (gsize)x * ps;
                    int mark = 0; /* the strongest of the pixels the sample covers */
                    for (int py = y << hs; py < MIN((y + 1) << hs, h); py++)
                        for (int px = x << ws; px < MIN((x + 1) << ws, w); px++)
                            mark = MAX(mark, marks[py * w + px]);
                    const int v = before[off + at];
                    const PsPaint *p = mark == 1 ? &tint : &line;
                    const int want = mark ? (v * (256 - (int)p->alpha) + p->comp[k] * (int)p->alpha + 128) >> 8 : v;
                    if (plane[at] != want)
                        g_error("%s component %d at (%d,%d), mark %d: %d, the formula gives %d", fmts[f], k, x, y,
                                mark, plane[at], want);
                }
        }
        if (!yuv) /* BGRx's padding byte untouched */
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    const gsize at = (gsize)y * GST_VIDEO_INFO_PLANE_STRIDE(&info, 0) + (gsize)x * 4 + 3;
                    g_assert_cmpint(((guint8 *)GST_VIDEO_FRAME_PLANE_DATA(&vf, 0))[at], ==, before[at]);
                }
        for (int i = 0; i < w * h; i++) /* and the marks are cleared */
            g_assert_cmpint(c.cover[i], ==, 0);
        gst_video_frame_unmap(&vf);
        ps_canvas_clear(&c);
        g_free(marks);
        g_free(before);
        gst_buffer_unref(buf);
    }
    g_rand_free(r);
}

/* Translucent tint and contours: every 4-byte RGB format (blended 16 bytes at a time) paints
 * exactly the bytes the 3-byte RGB one (per-pixel table lookups, the reference) paints, and an
 * alpha byte stays as it was. 251 wide: runs end at every offset of a 16-byte block. */
static void test_packed_paint_matches_reference(void)
{
    const int w = 251, h = 97;
    ps_image *im = ps_image_new(w, h, 3);
    ps_resize_bilinear_u8(fx.picture->data, 160, 120, 160 * 3, 3, im->data, w, h, w * 3);
    const double threshold = quantile_threshold(im, 0.6);
    guint8 *want = NULL;
    const char *const fmts[] = {"RGB", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR"};
    for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++) {
        GstElement *e = element_with(fx.random);
        g_object_set(e, "threshold", threshold, "overlay-color", 0xff20d060, "overlay-alpha", 0.45,
                     "contour-color", 0xc0f0e010, "contour-width", 2, "min-area", 0.0, NULL);
        GstHarness *hs = harness_for(e, fmts[f], w, h);
        GstBuffer *in = frame_of(im, fmts[f]), *out = run(hs, in, 0);
        g_assert_cmpint(count_rois(out), >, 0);
        guint8 *rgb = to_rgb(out, fmts[f], w, h);
        if (!want) {
            want = rgb;
            guint8 *before = to_rgb(in, fmts[f], w, h);
            g_assert_cmpint(memcmp(before, want, (size_t)w * h * 3), !=, 0); /* something was painted */
            g_free(before);
        } else {
            for (int i = 0; i < w * h * 3; i++)
                if (rgb[i] != want[i])
                    g_error("%s: byte %d of the RGB picture is %d, the table path gives %d", fmts[f], i, rgb[i],
                            want[i]);
            g_free(rgb);
        }
        if (strchr(fmts[f], 'A')) { /* alpha untouched: the input's is opaque */
            GstVideoInfo info;
            info_for(&info, fmts[f], w, h);
            GstVideoFrame vf;
            g_assert_true(gst_video_frame_map(&vf, &info, out, GST_MAP_READ));
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    g_assert_cmpint(((guint8 *)GST_VIDEO_FRAME_COMP_DATA(&vf, 3))[y * GST_VIDEO_FRAME_COMP_STRIDE(&vf, 3) + x * 4], ==, 255);
            gst_video_frame_unmap(&vf);
        }
        gst_buffer_unref(in);
        gst_buffer_unref(out);
        gst_harness_teardown(hs);
    }
    g_free(want);
    ps_image_free(im);
}

/* With an opaque tint and no contours, pixels change exactly where the upsampled mask says
 * polyp; with contours only, changes stay near the mask's boundary. */
static void test_pixels_follow_mask(void)
{
    const int w = 160, h = 120;
    double threshold = quantile_threshold(fx.picture, 0.7);
    GstBuffer *in = frame_of(fx.picture, "RGB");
    guint8 *before = to_rgb(in, "RGB", w, h);

    GstElement *e = element_with(fx.random);
    g_object_set(e, "threshold", threshold, "overlay-color", 0xffff00ff, "overlay-alpha", 1.0,
                 "draw-contours", FALSE, "min-area", 0.0, NULL);
    GstHarness *hs = harness_for(e, "RGB", w, h);
    GstBuffer *out = run(hs, in, 0);
    check_rois(out, w, h, threshold, 0);
    g_assert_cmpint(count_rois(out), >, 0);
    const guint8 *mask = gst_polyp_seg_meta_get_mask(mask_meta(out));
    guint8 *after = to_rgb(out, "RGB", w, h);
    long changed = 0, interior = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const guint8 *a = after + 3 * (y * w + x), *b = before + 3 * (y * w + x);
            gboolean is_tint = a[0] == 255 && a[1] == 0 && a[2] == 255;
            changed += memcmp(a, b, 3) != 0;
            if (memcmp(a, b, 3) && !near_value(mask, x, y, w, h, 1, 1))
                g_error("pixel (%d,%d) changed far from any polyp", x, y);
            if (!near_value(mask, x, y, w, h, 1, 0)) {
                interior++;
                if (!is_tint)
                    g_error("pixel (%d,%d) inside a polyp is not tinted", x, y);
            }
            if (is_tint && !model_at(mask, x, y, w, h) && !near_value(mask, x, y, w, h, 1, 1))
                g_error("pixel (%d,%d) tinted outside the mask", x, y);
        }
    g_assert_cmpint(interior, >, 0);
    g_assert_cmpint(changed, >=, interior);
    g_free(after);
    gst_buffer_unref(out);

    /* Contours only: every changed pixel is the contour colour, near both polyp and background. */
    g_object_set(hs->element, "draw-overlay", FALSE, "draw-contours", TRUE, "contour-color", 0xff00ffff,
                 "contour-width", 3, NULL);
    out = run(hs, in, GST_SECOND / 30);
    mask = gst_polyp_seg_meta_get_mask(mask_meta(out));
    after = to_rgb(out, "RGB", w, h);
    changed = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const guint8 *a = after + 3 * (y * w + x), *b = before + 3 * (y * w + x);
            if (!memcmp(a, b, 3))
                continue;
            changed++;
            g_assert_true(a[0] == 0 && a[1] == 255 && a[2] == 255);
            /* Within the brush (about one model pixel) and a rounding of a boundary pixel,
             * which has background next to it. */
            if (!near_value(mask, x, y, w, h, 2, 1) || !near_value(mask, x, y, w, h, 3, 0))
                g_error("contour pixel (%d,%d) is not on a polyp boundary", x, y);
        }
    g_assert_cmpint(changed, >, 0);
    g_free(after);
    gst_buffer_unref(out);
    gst_harness_teardown(hs);
    g_free(before);
    gst_buffer_unref(in);
}

/* A real CVC-ClinicDB frame: the mask meta is exactly the core's thresholded prediction, and
 * every ROI matches a region of it. Uses the shipped CVC weights when they load. */
static void test_real_frame(void)
{
    char *root = tu_data_root_or_skip();
    if (!root)
        return;
    GError *err = NULL;
    char *path = g_build_filename(root, "cvc-clinicdb", "images", "1.png", NULL);
    ps_image *im = ps_image_load_rgb(path, &err);
    g_assert_no_error(err);
    char *repo = g_strdup(g_getenv("POLYPSEG_REPO"));
    char *shipped = g_build_filename(repo ? repo : ".", "weights", "microaunet-cvc.safetensors", NULL);
    ps_model *m = ps_model_load(shipped, NULL);
    const char *weights = m ? shipped : fx.random;
    if (!m) {
        g_test_message("%s does not load (not trained yet?): using a random model", shipped);
        m = ps_model_load(fx.random, &err);
        g_assert_no_error(err);
    }
    double threshold = weights == fx.random ? quantile_threshold(im, 0.8) : 0.5;

    GstBuffer *in = rgb_buffer(im, &(GstVideoInfo){0});
    GstElement *e = element_with(weights);
    g_object_set(e, "threshold", threshold, "min-area", 0.0, NULL);
    GstHarness *hs = harness_for(e, "RGB", im->w, im->h);
    GstBuffer *out = run(hs, in, 0);
    GstPolypSegMeta *pm = gst_buffer_get_polyp_seg_meta(out);
    g_assert_nonnull(pm);
    int S = m->info.input_size;
    g_assert_cmpuint(pm->width, ==, (guint)S);
    ps_segmenter *seg = ps_segmenter_new(m);
    const float *prob = ps_segmenter_run(seg, im->data, im->w, im->h, im->w * 3);
    const guint8 *mask = gst_polyp_seg_meta_get_mask(pm);
    long polyp = 0;
    for (int i = 0; i < S * S; i++) {
        g_assert_cmpint(mask[i], ==, prob[i] >= threshold ? 255 : 0);
        polyp += mask[i] != 0;
    }
    check_rois(out, im->w, im->h, threshold, 0);
    /* Accuracy is the evaluator's business; logged against the ground truth for people. */
    char *gt_path = g_build_filename(root, "cvc-clinicdb", "masks", "1.png", NULL);
    ps_image *gt = ps_image_load_mask(gt_path, &err);
    g_assert_no_error(err);
    long both = 0, truth = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int t = gt->data[(y * gt->h / S) * gt->w + x * gt->w / S] != 0;
            truth += t;
            both += t && mask[y * S + x];
        }
    g_test_message("%s on %s: %ld polyp pixels, %d ROIs, Dice with the ground truth %.3f", weights, path,
                   polyp, count_rois(out), 2.0 * both / MAX(polyp + truth, 1));
    ps_image_free(gt);
    g_free(gt_path);
    g_assert_cmpint(count_rois(out) > 0, ==, polyp > 0);

    /* min-area just above the smallest region's area drops exactly the regions below it. */
    const int all = count_rois(out);
    g_assert_cmpint(all, >, 0);
    double *areas = g_new(double, (gsize)MAX(all, 1)), smallest = 1;
    for (int i = 0; i < all; i++) {
        g_assert_true(gst_structure_get_double(gst_video_region_of_interest_meta_get_param(roi_n(out, i), "polyp"),
                                               "area", &areas[i]));
        smallest = MIN(smallest, areas[i]);
    }
    gst_buffer_unref(out);
    const double min_area = smallest + 0.5 / (S * S); /* half a model pixel more */
    int kept = 0;
    for (int i = 0; i < all; i++)
        kept += areas[i] >= min_area;
    g_object_set(hs->element, "min-area", min_area, NULL);
    out = run(hs, in, GST_SECOND / 30);
    g_test_message("min-area %.5f: %d of %d regions kept", min_area, count_rois(out), all);
    g_assert_cmpint(count_rois(out), ==, kept);
    g_assert_cmpint(count_rois(out), <, all);
    check_rois(out, im->w, im->h, threshold, min_area);
    gst_buffer_unref(out);
    g_free(areas);

    gst_harness_teardown(hs);
    ps_segmenter_free(seg);
    ps_model_free(m);
    gst_buffer_unref(in);
    g_free(shipped);
    g_free(repo);
    ps_image_free(im);
    g_free(path);
    g_free(root);
}

/* post-messages: one "polypseg" element message per frame, with times and the polyps. */
static void test_messages(void)
{
    const int w = 160, h = 120;
    GstBuffer *in = frame_of(fx.picture, "BGRx");
    GstElement *e = element_with(fx.random);
    GstBus *bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    g_object_set(e, "post-messages", TRUE, "threshold", quantile_threshold(fx.picture, 0.7),
                 "inference-interval", 2, NULL);
    GstHarness *hs = harness_for(e, "BGRx", w, h);
    for (int i = 0; i < 3; i++) {
        GstClockTime pts = i * GST_SECOND / 30;
        GstBuffer *out = run(hs, in, pts);
        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT);
        g_assert_nonnull(msg);
        const GstStructure *s = gst_message_get_structure(msg);
        g_assert_true(gst_structure_has_name(s, "polypseg"));
        guint64 ts, stream_time, running_time;
        guint n;
        gboolean inferred;
        g_assert_true(gst_structure_get(s, "timestamp", G_TYPE_UINT64, &ts, "stream-time", G_TYPE_UINT64,
                                        &stream_time, "running-time", G_TYPE_UINT64, &running_time, "n-polyps",
                                        G_TYPE_UINT, &n, "inferred", G_TYPE_BOOLEAN, &inferred, NULL));
        g_assert_cmpuint(ts, ==, pts);
        g_assert_cmpuint(stream_time, ==, pts);
        g_assert_cmpuint(running_time, ==, pts);
        g_assert_cmpint(inferred, ==, i != 1);
        g_assert_cmpuint(n, ==, (guint)count_rois(out));
        g_assert_cmpuint(n, >, 0);
        const GValue *polyps = gst_structure_get_value(s, "polyps");
        g_assert_cmpuint(gst_value_array_get_size(polyps), ==, n);
        for (guint k = 0; k < n; k++) {
            const GstStructure *p = gst_value_get_structure(gst_value_array_get_value(polyps, k));
            g_assert_true(gst_structure_is_equal(p, gst_video_region_of_interest_meta_get_param(roi_n(out, k), "polyp")));
        }
        gst_message_unref(msg);
        gst_buffer_unref(out);
    }
    g_assert_null(gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT));
    /* Off again while playing. */
    g_object_set(hs->element, "post-messages", FALSE, NULL);
    gst_buffer_unref(run(hs, in, GST_SECOND));
    g_assert_null(gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT));
    drop_bus(hs->element, bus);
    gst_harness_teardown(hs);
    gst_buffer_unref(in);
}

/* Threshold, drawing and min-area change between frames while PLAYING; weights do not. */
static void test_properties_while_playing(void)
{
    const int w = 160, h = 120;
    GstBuffer *in = frame_of(fx.picture, "I420");
    double t70 = quantile_threshold(fx.picture, 0.7);
    GstElement *e = element_with(fx.random);
    g_object_set(e, "threshold", t70, "inference-interval", 1000, NULL);
    GstHarness *hs = harness_for(e, "I420", w, h);
    GstBuffer *out = run(hs, in, 0);
    g_assert_cmpint(count_rois(out), >, 0);
    g_assert_false(same_bytes(in, out));
    gst_buffer_unref(out);

    /* The same model result (interval 1000) re-thresholded. */
    g_object_set(hs->element, "threshold", 0.0, NULL);
    out = run(hs, in, 1);
    g_assert_cmpint(count_rois(out), ==, 1);
    g_assert_cmpuint(roi_n(out, 0)->w, ==, w);
    gst_buffer_unref(out);
    g_object_set(hs->element, "threshold", 1.0, NULL);
    out = run(hs, in, 2);
    g_assert_cmpint(count_rois(out), ==, 0);
    g_assert_true(same_bytes(in, out));
    gst_buffer_unref(out);

    g_object_set(hs->element, "threshold", 0.0, "draw-overlay", FALSE, "draw-contours", FALSE, NULL);
    out = run(hs, in, 3);
    g_assert_cmpint(count_rois(out), ==, 1);
    g_assert_true(same_bytes(in, out));
    gst_buffer_unref(out);

    g_object_set(hs->element, "draw-overlay", TRUE, "overlay-color", 0xff2040ff, "overlay-alpha", 1.0, NULL);
    out = run(hs, in, 4);
    guint8 *rgb = to_rgb(out, "I420", w, h);
    for (int i = 0; i < w * h; i++)
        g_assert_true(ABS(rgb[3 * i] - 0x20) <= 4 && ABS(rgb[3 * i + 1] - 0x40) <= 4 && ABS(rgb[3 * i + 2] - 0xff) <= 4);
    g_free(rgb);
    gst_buffer_unref(out);

    /* No region at the 70% quantile covers the whole frame. */
    g_object_set(hs->element, "min-area", 1.0, "threshold", t70, NULL);
    out = run(hs, in, 5);
    g_assert_cmpint(count_rois(out), ==, 0);
    gst_buffer_unref(out);

    char *before;
    g_object_set(hs->element, "weights", fx.none, NULL);
    g_object_get(hs->element, "weights", &before, NULL);
    g_assert_cmpstr(before, ==, fx.random);
    g_free(before);
    gst_harness_teardown(hs);
    gst_buffer_unref(in);
}

/* Caps change mid-stream, format and size: boxes and masks follow the new frames. */
static void test_renegotiation(void)
{
    static const struct {
        const char *format;
        int w, h;
    } steps[] = {{"RGB", 160, 120}, {"I420", 320, 240}, {"NV12", 64, 48}, {"BGRx", 161, 97}, {"RGB", 160, 120}};
    GstElement *e = element_with(fx.all);
    GstHarness *hs = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
        char *caps = caps_for(steps[i].format, steps[i].w, steps[i].h);
        gst_harness_set_src_caps_str(hs, caps);
        g_free(caps);
        ps_image *im = ps_image_new(steps[i].w, steps[i].h, 3);
        ps_resize_bilinear_u8(fx.picture->data, 160, 120, 160 * 3, 3, im->data, im->w, im->h, im->w * 3);
        GstBuffer *in = frame_of(im, steps[i].format);
        GstBuffer *out = run(hs, in, i * GST_SECOND);
        g_assert_cmpuint(gst_buffer_get_size(out), ==, gst_buffer_get_size(in));
        g_assert_cmpint(count_rois(out), ==, 1);
        GstVideoRegionOfInterestMeta *roi = roi_n(out, 0);
        g_assert_true(roi->w == (guint)steps[i].w && roi->h == (guint)steps[i].h);
        check_rois(out, steps[i].w, steps[i].h, 0.5, 0);
        g_assert_false(same_bytes(in, out));
        gst_buffer_unref(out);
        gst_buffer_unref(in);
        ps_image_free(im);
    }
    gst_harness_teardown(hs);
}

/* inference-interval N: the model runs on frames 0, N, 2N...; the frames between share its
 * result (the same mask bytes) even when their picture differs. */
static void test_inference_interval(void)
{
    const int w = 160, h = 120;
    GstBuffer *pictures[2] = {frame_of(fx.picture, "RGB"), NULL};
    ps_image *dark = ps_image_new(w, h, 3);
    pictures[1] = frame_of(dark, "RGB");
    GstElement *e = element_with(fx.random);
    g_object_set(e, "inference-interval", 3, "threshold", quantile_threshold(fx.picture, 0.7), NULL);
    GstHarness *hs = harness_for(e, "RGB", w, h);
    GBytes *first = NULL;
    for (int i = 0; i < 7; i++) {
        GstBuffer *out = run(hs, pictures[i % 2], i);
        GBytes *mask = mask_meta(out)->mask;
        if (i % 3 == 0) {
            if (first)
                g_assert_true(mask != first);
            g_clear_pointer(&first, g_bytes_unref);
            first = g_bytes_ref(mask);
        } else {
            g_assert_true(mask == first);
        }
        gst_buffer_unref(out);
    }
    /* a new stream (concat, gapless playback) and a discontinuity each end the shared result at
     * once: frame 7 would otherwise share frame 6's */
    g_assert_true(gst_harness_push_event(hs, gst_event_new_stream_start("second")));
    GstBuffer *after_start = run(hs, pictures[1], 7), *shared = run(hs, pictures[0], 8);
    g_assert_true(mask_meta(after_start)->mask != first);
    g_assert_true(mask_meta(shared)->mask == mask_meta(after_start)->mask);
    GstBuffer *discont = gst_buffer_copy(pictures[0]);
    GST_BUFFER_FLAG_SET(discont, GST_BUFFER_FLAG_DISCONT);
    GstBuffer *after_gap = run(hs, discont, 9);
    g_assert_true(mask_meta(after_gap)->mask != mask_meta(after_start)->mask);
    gst_buffer_unref(discont), gst_buffer_unref(after_gap), gst_buffer_unref(shared), gst_buffer_unref(after_start);

    g_object_set(hs->element, "inference-interval", 1, NULL);
    GstBuffer *a = run(hs, pictures[0], 10), *b = run(hs, pictures[0], 11);
    g_assert_true(mask_meta(a)->mask != mask_meta(b)->mask);
    g_assert_true(g_bytes_equal(mask_meta(a)->mask, mask_meta(b)->mask));
    gst_buffer_unref(a);
    gst_buffer_unref(b);
    g_bytes_unref(first);
    gst_harness_teardown(hs);
    ps_image_free(dark);
    gst_buffer_unref(pictures[0]);
    gst_buffer_unref(pictures[1]);
}

/* threads, changed while playing (0 = one per core), shares the work without changing a pixel
 * or a mask byte. */
static void test_threads(void)
{
    const char *const fmts[] = {"BGRx", "I420"}; /* I420: rows drawn in pairs that share chroma */
    for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++) {
        GstBuffer *in = frame_of(fx.picture, fmts[f]);
        GstElement *e = element_with(fx.random);
        g_object_set(e, "threshold", quantile_threshold(fx.picture, 0.7), NULL);
        guint threads;
        g_object_get(e, "threads", &threads, NULL);
        g_assert_cmpuint(threads, ==, 0); /* the default: one per core */
        g_object_set(e, "threads", 1, NULL);
        GstHarness *hs = harness_for(e, fmts[f], 160, 120);
        GstBuffer *want = run(hs, in, 0);
        g_assert_cmpint(count_rois(want), >, 0);
        g_assert_false(same_bytes(in, want)); /* drawn on */
        const guint settings[] = {2, 3, 0, 1};
        for (guint i = 0; i < G_N_ELEMENTS(settings); i++) {
            g_object_set(hs->element, "threads", settings[i], NULL);
            GstBuffer *got = run(hs, in, i + 1);
            g_assert_true(same_bytes(want, got));
            g_assert_true(g_bytes_equal(mask_meta(want)->mask, mask_meta(got)->mask));
            g_assert_cmpint(count_rois(got), ==, count_rois(want));
            gst_buffer_unref(got);
        }
        gst_buffer_unref(want);
        gst_harness_teardown(hs);
        gst_buffer_unref(in);
    }
}

/* tta, changed while playing: the mask is the core segmenter's at the same number of views. */
static void test_tta(void)
{
    GError *err = NULL;
    ps_model *m = ps_model_load(fx.random, &err);
    g_assert_no_error(err);
    ps_segmenter *seg = ps_segmenter_new(m);
    const int S = m->info.input_size;
    const double threshold = quantile_threshold(fx.picture, 0.7);
    GstBuffer *in = rgb_buffer(fx.picture, &(GstVideoInfo){0});
    GstElement *e = element_with(fx.random);
    g_object_set(e, "threshold", threshold, "min-area", 0.0, NULL);
    guint tta;
    g_object_get(e, "tta", &tta, NULL);
    g_assert_cmpuint(tta, ==, 1);
    GstHarness *hs = harness_for(e, "RGB", fx.picture->w, fx.picture->h);
    const guint settings[] = {1, 2, 8};
    long changed = 0;
    guint8 *first = NULL;
    for (guint i = 0; i < G_N_ELEMENTS(settings); i++) {
        g_object_set(hs->element, "tta", settings[i], NULL);
        GstBuffer *out = run(hs, in, i);
        ps_segmenter_set_tta(seg, (int)settings[i]);
        const float *prob = ps_segmenter_run(seg, fx.picture->data, fx.picture->w, fx.picture->h, fx.picture->w * 3);
        const guint8 *mask = gst_polyp_seg_meta_get_mask(mask_meta(out));
        for (int p = 0; p < S * S; p++)
            g_assert_cmpint(mask[p], ==, prob[p] >= threshold ? 255 : 0);
        if (!first)
            first = g_memdup2(mask, (gsize)S * S);
        else
            for (int p = 0; p < S * S; p++)
                changed += mask[p] != first[p];
        gst_buffer_unref(out);
    }
    g_test_message("%ld mask pixels differ from tta=1's over the other settings", changed);
    g_assert_cmpint(changed, >, 0); /* the views are averaged, not ignored */
    g_free(first);
    gst_harness_teardown(hs);
    gst_buffer_unref(in);
    ps_segmenter_free(seg);
    ps_model_free(m);
}

/* The mask meta survives copies and downstream scaling (with the ROI metas scaled). */
static void test_meta_survives_scaling(void)
{
    char *launch = g_strdup_printf("polypseg weights=\"%s\" ! videoscale ! capsfilter caps=video/x-raw,width=80,height=60", fx.all);
    GstHarness *hs = gst_harness_new_parse(launch);
    g_free(launch);
    char *caps = caps_for("RGB", 160, 120);
    gst_harness_set_src_caps_str(hs, caps);
    g_free(caps);
    GstBuffer *in = frame_of(fx.picture, "RGB");
    GstBuffer *out = run(hs, in, 0);
    g_assert_cmpuint(gst_buffer_get_size(out), ==, 80 * 60 * 3);
    GstPolypSegMeta *m = mask_meta(out);
    const guint8 *mask = gst_polyp_seg_meta_get_mask(m);
    for (int i = 0; i < MODEL_SIZE * MODEL_SIZE; i++)
        g_assert_cmpint(mask[i], ==, 255);
    g_assert_cmpint(count_rois(out), ==, 1);
    g_assert_true(roi_n(out, 0)->w == 80 && roi_n(out, 0)->h == 60);
    GstBuffer *copy = gst_buffer_copy(out);
    g_assert_true(mask_meta(copy)->mask == m->mask);
    gst_buffer_unref(copy);
    gst_buffer_unref(out);
    gst_buffer_unref(in);
    gst_harness_teardown(hs);
}

/* Missing, corrupt or empty weights: the change to PAUSED fails with an error naming the file. */
static void test_bad_weights(void)
{
    char *missing = g_build_filename(fx.dir, "missing.safetensors", NULL);
    const char *paths[] = {missing, fx.corrupt, fx.empty};
    const int codes[] = {GST_RESOURCE_ERROR_NOT_FOUND, GST_RESOURCE_ERROR_READ, GST_RESOURCE_ERROR_READ};
    for (int i = 0; i < 3; i++) {
        GstElement *e = element_with(paths[i]);
        GstBus *bus = gst_bus_new();
        gst_element_set_bus(e, bus);
        g_assert_cmpint(gst_element_set_state(e, GST_STATE_PAUSED), ==, GST_STATE_CHANGE_FAILURE);
        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        g_assert_nonnull(msg);
        GError *err = NULL;
        char *debug = NULL;
        gst_message_parse_error(msg, &err, &debug);
        g_test_message("%s: %s (%s)", paths[i], err->message, debug ? debug : "");
        g_assert_true(g_error_matches(err, GST_RESOURCE_ERROR, codes[i]));
        g_assert_nonnull(strstr(err->message, paths[i]));
        g_error_free(err);
        g_free(debug);
        gst_message_unref(msg);
        g_assert_cmpint(gst_element_set_state(e, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
        drop_bus(e, bus);
        gst_object_unref(e);
    }
    g_free(missing);
}

/* A model whose frame buffers cannot be had (input 4096, under an address-space limit in a
 * child process): the change to PAUSED fails with a RESOURCE error saying so, instead of an
 * abort on the first frame. */
static void test_weights_too_big_for_memory(void)
{
    if (g_test_subprocess()) {
        GError *err = NULL;
        ps_model *m = ps_model_load(fx.random, &err);
        g_assert_no_error(err);
        m->info.input_size = 4096;
        char *path = g_build_filename(fx.dir, "huge-input.safetensors", NULL);
        g_assert_true(ps_model_save(m, path, NULL, &err));
        ps_model_free(m);
        tu_limit_address_space(1024); /* the model needs about 3 GB */
        GstElement *e = element_with(path);
        GstBus *bus = gst_bus_new();
        gst_element_set_bus(e, bus);
        g_assert_cmpint(gst_element_set_state(e, GST_STATE_PAUSED), ==, GST_STATE_CHANGE_FAILURE);
        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        g_assert_nonnull(msg);
        gst_message_parse_error(msg, &err, NULL);
        g_test_message("%s", err->message);
        g_assert_true(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT));
        g_assert_nonnull(strstr(err->message, "4096x4096"));
        g_error_free(err);
        gst_message_unref(msg);
        g_assert_cmpint(gst_element_set_state(e, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
        drop_bus(e, bus);
        gst_object_unref(e);
        g_free(path);
        return;
    }
    g_test_trap_subprocess(NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
}

/* QoS on by default, and no latency added. */
static void test_qos_and_latency(void)
{
    GstElement *e = element_with(fx.random);
    gboolean qos;
    g_object_get(e, "qos", &qos, NULL);
    g_assert_true(qos);
    GstHarness *hs = harness_for(e, "RGB", 160, 120);
    gst_harness_set_upstream_latency(hs, 10 * GST_MSECOND);
    GstQuery *q = gst_query_new_latency();
    g_assert_true(gst_pad_peer_query(hs->sinkpad, q));
    GstClockTime min, max;
    gboolean live;
    gst_query_parse_latency(q, &live, &min, &max);
    g_assert_cmpuint(min, ==, 10 * GST_MSECOND);
    gst_query_unref(q);
    gst_harness_teardown(hs);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    gst_init(&argc, &argv);
    fixtures_init();
    g_test_add_func("/polypseg/formats", test_formats);
    g_test_add_func("/polypseg/frame-convert", test_frame_convert);
    g_test_add_func("/polypseg/pixels-follow-mask", test_pixels_follow_mask);
    g_test_add_func("/polypseg/packed-paint-matches-reference", test_packed_paint_matches_reference);
    g_test_add_func("/polypseg/canvas-blend-formula", test_canvas_blend_formula);
    g_test_add_func("/polypseg/real-frame", test_real_frame);
    g_test_add_func("/polypseg/messages", test_messages);
    g_test_add_func("/polypseg/properties-while-playing", test_properties_while_playing);
    g_test_add_func("/polypseg/renegotiation", test_renegotiation);
    g_test_add_func("/polypseg/inference-interval", test_inference_interval);
    g_test_add_func("/polypseg/threads", test_threads);
    g_test_add_func("/polypseg/tta", test_tta);
    g_test_add_func("/polypseg/meta-survives-scaling", test_meta_survives_scaling);
    g_test_add_func("/polypseg/bad-weights", test_bad_weights);
    g_test_add_func("/polypseg/weights-too-big-for-memory", test_weights_too_big_for_memory);
    g_test_add_func("/polypseg/qos-and-latency", test_qos_and_latency);
    int rc = g_test_run();
    fixtures_clear();
    gst_deinit();
    return rc;
}
