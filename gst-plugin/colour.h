/* The stream's Y'CbCr matrix and range: reading YUV frames into the model's RGB, and turning
 * the ARGB drawing colours into the frame's component values. */
#pragma once
#include <math.h>
#include <gst/video/video.h>

typedef struct {
    double kr, kb;
    double off[3], scale[3]; /* code value = off + scale * (Y' in 0..1, or Cb/Cr in -0.5..0.5) */
} PsYuv;

static inline void ps_yuv_init(PsYuv *m, const GstVideoInfo *info)
{
    /* BT.601 when the caps leave the matrix unknown (or say RGB). */
    if (!gst_video_color_matrix_get_Kr_Kb(info->colorimetry.matrix, &m->kr, &m->kb)) {
        m->kr = 0.299;
        m->kb = 0.114;
    }
    gint off[GST_VIDEO_MAX_COMPONENTS], scale[GST_VIDEO_MAX_COMPONENTS];
    gst_video_color_range_offsets(info->colorimetry.range, info->finfo, off, scale);
    for (int c = 0; c < 3; c++) {
        m->off[c] = off[c];
        m->scale[c] = scale[c];
    }
}

static inline guint8 ps_clamp_u8(double v)
{
    return v <= 0 ? 0 : v >= 255 ? 255 : (guint8)(v + 0.5);
}

/* Code values -> 0..255 RGB as one linear map, for reading frames:
 * R = y (Y - off0) + rv (V - off2), G = y (Y - off0) + gu (U - off1) + gv (V - off2),
 * B = y (Y - off0) + bu (U - off1). */
typedef struct {
    float off[3], y, rv, gu, gv, bu;
} PsYuvToRgb;

static inline PsYuvToRgb ps_yuv_to_rgb_coefficients(const PsYuv *m)
{
    /* R' = Y' + 2 (1 - kr) Pr, B' = Y' + 2 (1 - kb) Pb, G' = (Y' - kr R' - kb B') / (1 - kr - kb) */
    double kg = 1 - m->kr - m->kb;
    PsYuvToRgb t = {
        {(float)m->off[0], (float)m->off[1], (float)m->off[2]},
        (float)(255 / m->scale[0]),
        (float)(255 * 2 * (1 - m->kr) / m->scale[2]),
        (float)(-255 * 2 * m->kb * (1 - m->kb) / (kg * m->scale[1])),
        (float)(-255 * 2 * m->kr * (1 - m->kr) / (kg * m->scale[2])),
        (float)(255 * 2 * (1 - m->kb) / m->scale[1]),
    };
    return t;
}

static inline void ps_rgb_to_yuv(const PsYuv *m, const guint8 rgb[3], guint8 yuv[3])
{
    double r = rgb[0] / 255.0, g = rgb[1] / 255.0, b = rgb[2] / 255.0;
    double yn = m->kr * r + (1 - m->kr - m->kb) * g + m->kb * b;
    yuv[0] = ps_clamp_u8(m->off[0] + m->scale[0] * yn);
    yuv[1] = ps_clamp_u8(m->off[1] + m->scale[1] * (b - yn) / (2 * (1 - m->kb)));
    yuv[2] = ps_clamp_u8(m->off[2] + m->scale[2] * (r - yn) / (2 * (1 - m->kr)));
}
