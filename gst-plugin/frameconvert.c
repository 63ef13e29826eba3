#include "frameconvert.h"

void ps_frame_convert_init(PsFrameConvert *c, const GstVideoInfo *info, int size)
{
    const GstVideoFormatInfo *finfo = info->finfo;
    c->size = size;
    c->yuv = GST_VIDEO_FORMAT_INFO_IS_YUV(finfo);
    ps_yuv_init(&c->matrix, info);
    /* Component 0 (R or Y) is never subsampled; the others share one subsampling. */
    for (int k = 0; k < 2; k++) {
        int comp = k == 0 ? 0 : 1;
        /* the core's resize mapping, so RGB frames give the same input as polypseg-infer */
        c->ax[k] = ps_axis_map_new(GST_VIDEO_INFO_COMP_WIDTH(info, comp), size, 1);
        c->ay[k] = ps_axis_map_new(GST_VIDEO_INFO_COMP_HEIGHT(info, comp), size, 1);
    }
    for (int comp = 0; comp < 3; comp++)
        c->comp_axes[comp] = GST_VIDEO_FORMAT_INFO_W_SUB(finfo, comp) || GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comp);
}

void ps_frame_convert_clear(PsFrameConvert *c)
{
    for (int k = 0; k < 2; k++) {
        ps_axis_map_free(&c->ax[k]);
        ps_axis_map_free(&c->ay[k]);
    }
}

/* Bilinear sample of one component: horizontal lerps first, then vertical, in float, in the
 * same order as the core so the results round identically. */
static inline float sample(const guint8 *r0, const guint8 *r1, int ps, const ps_axis_map *ax, int x,
                           float wy)
{
    int a = ax->i0[x] * ps, b = ax->i1[x] * ps;
    float w = ax->w1[x];
    float top = r0[a] + w * (r0[b] - r0[a]), bottom = r1[a] + w * (r1[b] - r1[a]);
    return top + wy * (bottom - top);
}

void ps_frame_convert_row(const PsFrameConvert *c, const GstVideoFrame *frame, int y, guint8 *out)
{
    int n = c->size;
    const guint8 *data[3];
    int stride[3], ps[3];
    for (int comp = 0; comp < 3; comp++) {
        data[comp] = GST_VIDEO_FRAME_COMP_DATA(frame, comp);
        stride[comp] = GST_VIDEO_FRAME_COMP_STRIDE(frame, comp);
        ps[comp] = GST_VIDEO_FRAME_COMP_PSTRIDE(frame, comp);
    }
    const guint8 *r0[3], *r1[3];
    float wy[3];
    const ps_axis_map *ax[3];
    for (int comp = 0; comp < 3; comp++) {
        const ps_axis_map *ay = &c->ay[c->comp_axes[comp]];
        r0[comp] = data[comp] + (size_t)ay->i0[y] * stride[comp];
        r1[comp] = data[comp] + (size_t)ay->i1[y] * stride[comp];
        wy[comp] = ay->w1[y];
        ax[comp] = &c->ax[c->comp_axes[comp]];
    }
    if (!c->yuv) {
        for (int x = 0; x < n; x++)
            for (int comp = 0; comp < 3; comp++) {
                float v = sample(r0[comp], r1[comp], ps[comp], ax[comp], x, wy[comp]) + 0.5f;
                out[3 * x + comp] = (guint8)CLAMP(v, 0.0f, 255.0f);
            }
    } else {
        for (int x = 0; x < n; x++) {
            float yy = sample(r0[0], r1[0], ps[0], ax[0], x, wy[0]);
            float u = sample(r0[1], r1[1], ps[1], ax[1], x, wy[1]);
            float v = sample(r0[2], r1[2], ps[2], ax[2], x, wy[2]);
            ps_yuv_to_rgb(&c->matrix, yy, u, v, out + 3 * x);
        }
    }
}

void ps_frame_convert_run(const PsFrameConvert *c, const GstVideoFrame *frame, guint8 *rgb)
{
    for (int y = 0; y < c->size; y++)
        ps_frame_convert_row(c, frame, y, rgb + (size_t)y * c->size * 3);
}
