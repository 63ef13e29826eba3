#include "frameconvert.h"
#include <string.h>
#include "kernels.h"

void ps_frame_convert_init(PsFrameConvert *c, const GstVideoInfo *info, int size)
{
    const GstVideoFormatInfo *finfo = info->finfo;
    memset(c, 0, sizeof *c);
    c->size = size;
    c->yuv = GST_VIDEO_FORMAT_INFO_IS_YUV(finfo);
    ps_yuv_init(&c->matrix, info);
    if (c->yuv) { /* R = y (Y - off0) + rv (V - off2), ... (colour.h) as a matrix over Y, U, V */
        const PsYuvToRgb t = ps_yuv_to_rgb_coefficients(&c->matrix);
        const float m[9] = {t.y, 0.f, t.rv, t.y, t.gu, t.gv, t.y, t.bu, 0.f};
        memcpy(c->to_rgb, m, sizeof m);
        memcpy(c->offset, t.off, sizeof c->offset);
    } else {
        for (int k = 0; k < 3; k++)
            c->to_rgb[4 * k] = 1.f;
    }
    /* Component 0 (R or Y) is never subsampled; the others share one subsampling. */
    for (int k = 0; k < 2; k++) {
        int comp = k == 0 ? 0 : 1;
        /* the core's resize mapping, so RGB frames give the same input as polypseg-infer */
        c->ax[k] = ps_axis_map_new(GST_VIDEO_INFO_COMP_WIDTH(info, comp), size, 1);
        c->ay[k] = ps_axis_map_new(GST_VIDEO_INFO_COMP_HEIGHT(info, comp), size, 1);
    }
    for (int comp = 0; comp < 3; comp++)
        c->comp_axes[comp] = GST_VIDEO_FORMAT_INFO_W_SUB(finfo, comp) || GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comp);
    /* R, G and B bytes of one 4-byte pixel (RGBx, BGRA, ...): each corner is read as one word */
    c->packed4 = !c->yuv;
    for (int comp = 0; comp < 3; comp++) {
        c->shift[comp] = 8 * GST_VIDEO_INFO_COMP_POFFSET(info, comp);
        c->packed4 &= GST_VIDEO_INFO_COMP_PSTRIDE(info, comp) == 4 && GST_VIDEO_INFO_COMP_PLANE(info, comp) == 0 &&
                      GST_VIDEO_INFO_COMP_POFFSET(info, comp) < 4;
    }
#if G_BYTE_ORDER == G_BIG_ENDIAN /* the word's first byte is its highest */
    for (int comp = 0; comp < 3; comp++)
        c->shift[comp] = 24 - c->shift[comp];
#endif
    /* byte offsets in a row: of the pixel's first byte (packed4: one table for all), or of
     * the component's own sample */
    for (int comp = 0; comp < (c->packed4 ? 1 : 3); comp++) {
        const ps_axis_map *ax = &c->ax[c->comp_axes[comp]];
        const int ps = GST_VIDEO_INFO_COMP_PSTRIDE(info, comp);
        c->off0[comp] = g_new(int, size);
        c->off1[comp] = g_new(int, size);
        for (int x = 0; x < size; x++) {
            c->off0[comp][x] = ax->i0[x] * ps;
            c->off1[comp][x] = ax->i1[x] * ps;
        }
    }
}

void ps_frame_convert_clear(PsFrameConvert *c)
{
    for (int comp = 0; comp < 3; comp++) {
        g_clear_pointer(&c->off0[comp], g_free);
        g_clear_pointer(&c->off1[comp], g_free);
    }
    for (int k = 0; k < 2; k++) {
        ps_axis_map_free(&c->ax[k]);
        ps_axis_map_free(&c->ay[k]);
    }
}

void ps_frame_convert_row(const PsFrameConvert *c, const GstVideoFrame *frame, int y, float *const *planes,
                          const float *scale, const float *shift)
{
    const ps_kernels *k = ps_kernels_best();
    const guint8 *r0[3], *r1[3];
    float wy[3];
    for (int comp = 0; comp < 3; comp++) {
        const ps_axis_map *ay = &c->ay[c->comp_axes[comp]];
        const guint8 *data = GST_VIDEO_FRAME_COMP_DATA(frame, comp);
        int stride = GST_VIDEO_FRAME_COMP_STRIDE(frame, comp);
        r0[comp] = data + (size_t)ay->i0[y] * stride;
        r1[comp] = data + (size_t)ay->i1[y] * stride;
        wy[comp] = ay->w1[y];
    }
    if (c->packed4) { /* the pixel's first byte: component 0's data minus its offset */
        const int first = GST_VIDEO_FRAME_COMP_POFFSET(frame, 0);
        k->frame_row_packed4(r0[0] - first, r1[0] - first, c->off0[0], c->off1[0], c->ax[0].w1, wy[0], c->shift,
                             c->size, scale, shift, planes);
        return;
    }
    float samples[3][c->size]; /* at most 48 KiB: sizes stop at 4096 */
    const float *s[3] = {samples[0], samples[1], samples[2]};
    for (int comp = 0; comp < 3; comp++)
        k->frame_row_sample(r0[comp], r1[comp], c->off0[comp], c->off1[comp], c->ax[c->comp_axes[comp]].w1,
                            wy[comp], c->size, samples[comp]);
    k->frame_row_combine(s, c->size, c->to_rgb, c->offset, scale, shift, planes);
}
