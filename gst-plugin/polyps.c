#include "polyps.h"
#include "geometry.h"

PsBox ps_polyp_box(const ps_region *g, int size, int width, int height)
{
    int x0 = ps_model_edge(g->x0, size, width), y0 = ps_model_edge(g->y0, size, height);
    /* Exclusive end: the frame pixel where the next model pixel starts, rounded up. */
    int x1 = (int)(((gint64)(g->x1 + 1) * width + size - 1) / size);
    int y1 = (int)(((gint64)(g->y1 + 1) * height + size - 1) / size);
    return (PsBox){(guint)x0, (guint)y0, (guint)MAX(MIN(x1, width) - x0, 1), (guint)MAX(MIN(y1, height) - y0, 1)};
}

GstStructure *ps_polyp_structure(const ps_region *g, int id, const PsBox *box, int size, int width,
                                 int height)
{
    GValue contour = G_VALUE_INIT;
    gst_value_array_init(&contour, g->n_points);
    for (int i = 0; i < g->n_points; i++) {
        GValue point = G_VALUE_INIT, v = G_VALUE_INIT;
        gst_value_array_init(&point, 2);
        g_value_init(&v, G_TYPE_INT);
        g_value_set_int(&v, ps_model_to_frame(g->points[2 * i], size, width));
        gst_value_array_append_value(&point, &v);
        g_value_set_int(&v, ps_model_to_frame(g->points[2 * i + 1], size, height));
        gst_value_array_append_and_take_value(&point, &v);
        gst_value_array_append_and_take_value(&contour, &point);
    }
    GstStructure *s = gst_structure_new("polyp", "id", G_TYPE_INT, id, "x", G_TYPE_UINT, box->x,
                                        "y", G_TYPE_UINT, box->y, "width", G_TYPE_UINT, box->w,
                                        "height", G_TYPE_UINT, box->h, "area", G_TYPE_DOUBLE,
                                        (double)g->area / ((double)size * size), "score",
                                        G_TYPE_DOUBLE, (double)g->score, NULL);
    gst_structure_take_value(s, "contour", &contour);
    return s;
}
