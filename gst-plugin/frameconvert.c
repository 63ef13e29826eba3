#include "frameconvert.h"
#include <string.h>

void ps_frame_convert_init(PsFrameConvert *c, const GstVideoInfo *info, int size)
{
    const GstVideoFormatInfo *finfo = info->finfo;
    c->size = size;
    c->yuv = GST_VIDEO_FORMAT_INFO_IS_YUV(finfo);
    ps_yuv_init(&c->matrix, info);
    c->to_rgb = ps_yuv_to_rgb_coefficients(&c->matrix);
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
    c->word0 = c->packed4 ? g_new(int, size) : NULL;
    c->word1 = c->packed4 ? g_new(int, size) : NULL;
    for (int x = 0; c->packed4 && x < size; x++) {
        c->word0[x] = c->ax[0].i0[x] * 4;
        c->word1[x] = c->ax[0].i1[x] * 4;
    }
}

void ps_frame_convert_clear(PsFrameConvert *c)
{
    g_clear_pointer(&c->word0, g_free);
    g_clear_pointer(&c->word1, g_free);
    for (int k = 0; k < 2; k++) {
        ps_axis_map_free(&c->ax[k]);
        ps_axis_map_free(&c->ay[k]);
    }
}

/* Output pixels are made BLOCK at a time: the corner samples are gathered first (the only
 * scattered reads), then the arithmetic runs over whole arrays, where the compiler vectorises
 * it. */
enum { BLOCK = 64 };

/* Bilinear samples of one component for output pixels x0 .. x0 + n - 1: horizontal lerps
 * first, then vertical, in float, in the same order as the core's resize so RGB frames round
 * identically. */
static void sample_block(const guint8 *r0, const guint8 *r1, int ps, const ps_axis_map *ax, float wy, int x0,
                         int n, float *restrict out)
{
    float a[BLOCK], b[BLOCK], c[BLOCK], d[BLOCK];
    for (int i = 0; i < n; i++) {
        int ia = ax->i0[x0 + i] * ps, ib = ax->i1[x0 + i] * ps;
        a[i] = r0[ia];
        b[i] = r0[ib];
        c[i] = r1[ia];
        d[i] = r1[ib];
    }
    const float *restrict w = ax->w1 + x0;
    for (int i = 0; i < n; i++) {
        float top = a[i] + w[i] * (b[i] - a[i]), bottom = c[i] + w[i] * (d[i] - c[i]);
        out[i] = top + wy * (bottom - top);
    }
}

/* Rounded and clamped like the core's resize (v + 0.5, then truncated). */
static inline guint8 to_u8(float v)
{
    v += 0.5f;
    return (guint8)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
}

/* 4-byte RGB pixels: the four corners of BLOCK output pixels read as words first, then each
 * component's bytes taken out of them and interpolated over whole arrays (vectorised), with the
 * float operations of sample_block. No clamp: a lerp of bytes with a weight in [0, 1] may pass
 * its ends by a rounding error at most, so v + 0.5 truncates into 0..255 all the same. */
static void convert_row_packed4(const PsFrameConvert *c, const guint8 *r0, const guint8 *r1, float wy, guint8 *out)
{
    guint32 a[BLOCK], b[BLOCK], d[BLOCK], e[BLOCK];
    for (int x0 = 0; x0 < c->size; x0 += BLOCK) {
        const int n = MIN(BLOCK, c->size - x0);
        const int *restrict i0 = c->word0 + x0, *restrict i1 = c->word1 + x0;
        for (int i = 0; i < n; i++) {
            memcpy(&a[i], r0 + i0[i], 4);
            memcpy(&b[i], r0 + i1[i], 4);
            memcpy(&d[i], r1 + i0[i], 4);
            memcpy(&e[i], r1 + i1[i], 4);
        }
        const float *restrict w = c->ax[0].w1 + x0;
        guint8 *restrict o = out + 3 * x0;
        for (int comp = 0; comp < 3; comp++) {
            const int sh = c->shift[comp];
            for (int i = 0; i < n; i++) {
                const float fa = (float)((a[i] >> sh) & 255), fb = (float)((b[i] >> sh) & 255);
                const float fd = (float)((d[i] >> sh) & 255), fe = (float)((e[i] >> sh) & 255);
                const float top = fa + w[i] * (fb - fa), bottom = fd + w[i] * (fe - fd);
                o[3 * i + comp] = (guint8)(int)(top + wy * (bottom - top) + 0.5f);
            }
        }
    }
}

void ps_frame_convert_row(const PsFrameConvert *c, const GstVideoFrame *frame, int y, guint8 *out)
{
    const guint8 *r0[3], *r1[3];
    int ps[3];
    float wy[3];
    const ps_axis_map *ax[3];
    for (int comp = 0; comp < 3; comp++) {
        const ps_axis_map *ay = &c->ay[c->comp_axes[comp]];
        const guint8 *data = GST_VIDEO_FRAME_COMP_DATA(frame, comp);
        int stride = GST_VIDEO_FRAME_COMP_STRIDE(frame, comp);
        r0[comp] = data + (size_t)ay->i0[y] * stride;
        r1[comp] = data + (size_t)ay->i1[y] * stride;
        ps[comp] = GST_VIDEO_FRAME_COMP_PSTRIDE(frame, comp);
        wy[comp] = ay->w1[y];
        ax[comp] = &c->ax[c->comp_axes[comp]];
    }
    if (c->packed4) { /* the pixel's first byte: component 0's data minus its offset */
        const int first = GST_VIDEO_FRAME_COMP_POFFSET(frame, 0);
        convert_row_packed4(c, r0[0] - first, r1[0] - first, wy[0], out);
        return;
    }
    float s[3][BLOCK];
    for (int x0 = 0; x0 < c->size; x0 += BLOCK) {
        int n = MIN(BLOCK, c->size - x0);
        for (int comp = 0; comp < 3; comp++)
            sample_block(r0[comp], r1[comp], ps[comp], ax[comp], wy[comp], x0, n, s[comp]);
        guint8 *o = out + 3 * x0;
        if (!c->yuv) {
            for (int i = 0; i < n; i++)
                for (int comp = 0; comp < 3; comp++)
                    o[3 * i + comp] = to_u8(s[comp][i]);
            continue;
        }
        const PsYuvToRgb *m = &c->to_rgb;
        for (int i = 0; i < n; i++) {
            float yy = m->y * (s[0][i] - m->off[0]), u = s[1][i] - m->off[1], v = s[2][i] - m->off[2];
            o[3 * i] = to_u8(yy + m->rv * v);
            o[3 * i + 1] = to_u8(yy + m->gu * u + m->gv * v);
            o[3 * i + 2] = to_u8(yy + m->bu * u);
        }
    }
}
