#include "framedraw.h"
#include <string.h>
#include "colour.h"
#include "contours.h"
#include "image.h"
#include "geometry.h"

enum { COVER_NONE, COVER_TINT, COVER_LINE }; /* a line wins over the tint under it */

/* The core's resize mapping (model mask -> frame), its weights in 1/256 steps. */
static void axis_init(int frame, int size, int **i0, int **i1, guint16 **w)
{
    ps_axis_map m = ps_axis_map_new(size, frame, 1);
    *i0 = m.i0;
    *i1 = m.i1;
    *w = g_new(guint16, frame);
    for (int i = 0; i < frame; i++)
        (*w)[i] = (guint16)lround(m.w1[i] * 256);
    g_free(m.w1);
}

void ps_canvas_init(PsCanvas *c, int width, int height, int size)
{
    c->w = width;
    c->h = height;
    c->size = size;
    c->cover = g_malloc0((gsize)width * height);
    axis_init(width, size, &c->mx0, &c->mx1, &c->mwx);
    axis_init(height, size, &c->my0, &c->my1, &c->mwy);
    c->col_start = g_new(int, size + 1);
    for (int m = 0, x = 0; m <= size; m++) {
        while (x < width && c->mx0[x] < m)
            x++;
        c->col_start[m] = x;
    }
    c->dx0 = c->dy0 = G_MAXINT;
    c->dx1 = c->dy1 = -1;
}

void ps_canvas_clear(PsCanvas *c)
{
    g_clear_pointer(&c->cover, g_free);
    g_clear_pointer(&c->mx0, g_free);
    g_clear_pointer(&c->mx1, g_free);
    g_clear_pointer(&c->mwx, g_free);
    g_clear_pointer(&c->col_start, g_free);
    g_clear_pointer(&c->my0, g_free);
    g_clear_pointer(&c->my1, g_free);
    g_clear_pointer(&c->mwy, g_free);
}

static void grow_dirty(PsCanvas *c, int x0, int y0, int x1, int y1)
{
    c->dx0 = MIN(c->dx0, x0);
    c->dy0 = MIN(c->dy0, y0);
    c->dx1 = MAX(c->dx1, x1);
    c->dy1 = MAX(c->dy1, y1);
}

/* Frame pixels that can reach one half from the model box: those within one model pixel of it. */
static void mask_reach(const PsCanvas *c, int x0, int y0, int x1, int y1, int *fx0, int *fy0, int *fx1, int *fy1)
{
    int S = c->size;
    *fx0 = MAX(ps_model_edge(x0, S, c->w) - 1, 0);
    *fx1 = MIN(ps_model_edge(x1 + 1, S, c->w) + 1, c->w - 1);
    *fy0 = MAX(ps_model_edge(y0, S, c->h) - 1, 0);
    *fy1 = MIN(ps_model_edge(y1 + 1, S, c->h) + 1, c->h - 1);
}

void ps_canvas_add_mask_box(PsCanvas *c, int x0, int y0, int x1, int y1)
{
    int fx0, fy0, fx1, fy1;
    mask_reach(c, x0, y0, x1, y1, &fx0, &fy0, &fx1, &fy1);
    grow_dirty(c, fx0, fy0, fx1, fy1);
}

void ps_canvas_fill_mask(PsCanvas *c, const guint8 *mask, int x0, int y0, int x1, int y1, int row_begin, int row_end)
{
    int S = c->size, fx0, fy0, fx1, fy1;
    mask_reach(c, x0, y0, x1, y1, &fx0, &fy0, &fx1, &fy1);
    int mx0 = c->mx0[fx0], mx1 = c->mx0[fx1], vx1 = MIN(mx1 + 1, S - 1);
    guint32 vrow[vx1 + 1]; /* at most 16 KiB: sizes stop at 4096 */
    for (int y = MAX(fy0, row_begin); y <= MIN(fy1, row_end - 1); y++) {
        const guint8 *a = mask + (gsize)c->my0[y] * S, *b = mask + (gsize)c->my1[y] * S;
        guint32 wb = c->mwy[y], wa = 256 - wb;
        for (int m = mx0; m <= vx1; m++)
            vrow[m] = (a[m] ? wa : 0) + (b[m] ? wb : 0);
        guint8 *row = c->cover + (gsize)y * c->w;
        /* Frame columns between model columns m and m + 1 blend the two values, so where both
         * are on one side of one half, the whole run is (or is not) polyp. */
        for (int m = mx0; m <= mx1; m++) {
            int xa = MAX(c->col_start[m], fx0), xb = MIN(c->col_start[m + 1], fx1 + 1);
            guint32 va = vrow[m], vb = vrow[MIN(m + 1, S - 1)];
            if (xa >= xb || (va < 128 && vb < 128))
                continue;
            if (va >= 128 && vb >= 128) { /* one memset for the whole run of such columns */
                while (m < mx1 && vrow[m + 1] >= 128 && vrow[MIN(m + 2, S - 1)] >= 128)
                    m++;
                xb = MIN(c->col_start[m + 1], fx1 + 1);
                memset(row + xa, COVER_TINT, xb - xa);
                continue;
            }
            for (int x = xa; x < xb; x++)
                if (va * (256 - c->mwx[x]) + vb * c->mwx[x] >= 128 * 256)
                    row[x] = COVER_TINT;
        }
    }
}

static void stamp(PsCanvas *c, int x, int y, int width)
{
    int r = width / 2;
    int x0 = MAX(x - r, 0), x1 = MIN(x - r + width - 1, c->w - 1);
    int y0 = MAX(y - r, 0), y1 = MIN(y - r + width - 1, c->h - 1);
    if (x0 > x1 || y0 > y1)
        return;
    for (int yy = y0; yy <= y1; yy++)
        memset(c->cover + (gsize)yy * c->w + x0, COVER_LINE, x1 - x0 + 1);
    grow_dirty(c, x0, y0, x1, y1);
}

/* Bresenham from (x0,y0) to (x1,y1), the end point excluded (it starts the next edge). */
static void segment(PsCanvas *c, int x0, int y0, int x1, int y1, int width)
{
    int dx = ABS(x1 - x0), dy = -ABS(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    while (x0 != x1 || y0 != y1) {
        stamp(c, x0, y0, width);
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

void ps_canvas_polygon(PsCanvas *c, const int *xy, int n, int width)
{
    const int S = c->size;
    if (n == 1) {
        stamp(c, ps_model_to_frame(xy[0], S, c->w), ps_model_to_frame(xy[1], S, c->h), width);
        return;
    }
    /* each point mapped once; the first segment closes the polygon (marks do not depend on order) */
    int px = ps_model_to_frame(xy[2 * n - 2], S, c->w), py = ps_model_to_frame(xy[2 * n - 1], S, c->h);
    for (int i = 0; i < n; i++) {
        int x = ps_model_to_frame(xy[2 * i], S, c->w), y = ps_model_to_frame(xy[2 * i + 1], S, c->h);
        segment(c, px, py, x, y, width);
        px = x;
        py = y;
    }
}

/* End of the run of `mark` that starts at row[x] (first index in (x, end) holding another
 * value, or end), 8 bytes at a time. */
static inline int run_end_of(const guint8 *row, int x, int end, guint8 mark)
{
    const guint64 pattern = mark * 0x0101010101010101ull;
    for (guint64 v; x + 8 <= end; x += 8) {
        memcpy(&v, row + x, 8);
        if (v != pattern)
#if G_BYTE_ORDER == G_LITTLE_ENDIAN /* the first byte in memory is the lowest */
            return x + __builtin_ctzll(v ^ pattern) / 8;
#else
            return x + __builtin_clzll(v ^ pattern) / 8;
#endif
    }
    while (x < end && row[x] == mark)
        x++;
    return x;
}

/* Blend result per mark and component value: the table path paints by lookups. */
typedef guint8 PsLut[3][3][256]; /* [mark][component][value] */

static void lut_init(PsLut lut, const PsPaint *tint, const PsPaint *line)
{
    const PsPaint *paints[3] = {NULL, tint, line};
    for (int k = 1; k < 3; k++)
        for (int comp = 0; comp < 3; comp++) {
            guint a = paints[k]->alpha, col = paints[k]->comp[comp] * a + 128;
            for (int v = 0; v < 256; v++)
                lut[k][comp][v] = (guint8)((v * (256 - a) + col) >> 8);
        }
}

/* Pixels of 1, 2 or 4 bytes (a Y or U plane, NV12's UV pairs, RGBx / BGRA ...) blend a run of
 * one mark as bytes, 16 at a time, with the table's arithmetic, (v (256 - a) + c a + 128) >> 8
 * (at most 65408: 16-bit lanes); a byte of no listed component (padding or alpha) gets weight
 * 256 and offset 128, which leaves it as it was. The table path (3-byte RGB) stays the
 * reference: the element's tests compare RGB with every 4-byte format byte for byte, and every
 * sample of the YUV layouts with the formula. */
typedef struct {
    guint16 mul[16], add[16];
} PsBlend16;

/* Pixels of `bytes` bytes; off[i]: byte of comps[i] within the pixel. */
static void blend16_init(PsBlend16 *b, const PsPaint *p, const int *comps, const int *off, int n, int bytes)
{
    for (int j = 0; j < 16; j++) {
        b->mul[j] = 256;
        b->add[j] = 128;
        for (int i = 0; i < n; i++)
            if (off[i] == j % bytes) {
                b->mul[j] = (guint16)(256 - p->alpha);
                b->add[j] = (guint16)(p->comp[comps[i]] * p->alpha + 128);
            }
    }
}

/* The plugin is built for the base x86-64 (SSE2); the blend, a large share of a frame's painting,
 * is also compiled for AVX2 and AVX-512 and the loader picks the one this CPU runs (GCC's
 * target_clones). Integer arithmetic: every version gives the same bytes. The AVX-512 one made
 * the BGRx pipeline's painting about a third cheaper (perf: painter 1.08-1.18 -> 0.73-0.75 of
 * conv_pointwise's samples, `threads=1`). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_BLEND_VERSIONS __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define PS_BLEND_VERSIONS
#endif

/* n bytes from px, lane j % 16 (16 is a multiple of the pixel size). */
PS_BLEND_VERSIONS static void blend_bytes(guint8 *restrict px, size_t n, const PsBlend16 *restrict b)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int i = 0; i < 16; i++)
            px[j + i] = (guint8)((guint16)((guint16)(px[j + i] * b->mul[i]) + b->add[i]) >> 8);
    for (; j < n; j++)
        px[j] = (guint8)((guint16)((guint16)(px[j] * b->mul[j & 15]) + b->add[j & 15]) >> 8);
}

/* The bytes per pixel (4, 2 or 1) when the listed components share one plane of pixels that
 * size (RGBx's B, G and R; NV12's U and V; one plane of 1-byte samples: I420's Y, or U); *base
 * gets that plane, off[i] each component's byte in the pixel. 0 otherwise. */
static int packed_layout(GstVideoFrame *frame, const int *comps, int n, guint8 **base, int *off)
{
    const int bytes = GST_VIDEO_FRAME_COMP_PSTRIDE(frame, comps[0]);
    const guint plane = GST_VIDEO_FRAME_COMP_PLANE(frame, comps[0]);
    if (bytes != 1 && bytes != 2 && bytes != 4)
        return 0;
    *base = GST_VIDEO_FRAME_PLANE_DATA(frame, plane);
    for (int i = 0; i < n; i++) {
        const guint8 *data = GST_VIDEO_FRAME_COMP_DATA(frame, comps[i]);
        if (GST_VIDEO_FRAME_COMP_PSTRIDE(frame, comps[i]) != bytes ||
            GST_VIDEO_FRAME_COMP_PLANE(frame, comps[i]) != plane || data < *base || data - *base >= bytes)
            return 0;
        off[i] = (int)(data - *base);
    }
    return bytes;
}

/* Paints runs of one mark into a set of components of one resolution: in byte groups (all the
 * components in one plane, else one group per component), or by the table when a component's
 * pixels are none of 1, 2 or 4 bytes (3-byte RGB). */
typedef struct {
    int groups; /* 0: the table */
    guint8 *base[3];
    int bytes[3], stride[3];
    PsBlend16 blend[3][3]; /* [group][mark] */
    int n, comps[3];       /* the table path's components */
    PsLut lut;
} PsPainter;

static void painter_group(PsPainter *p, GstVideoFrame *frame, const int *comps, int n, const PsPaint *tint,
                          const PsPaint *line)
{
    int off[3], g = p->groups;
    if (!(p->bytes[g] = packed_layout(frame, comps, n, &p->base[g], off)))
        return;
    p->stride[g] = GST_VIDEO_FRAME_PLANE_STRIDE(frame, GST_VIDEO_FRAME_COMP_PLANE(frame, comps[0]));
    blend16_init(&p->blend[g][COVER_TINT], tint, comps, off, n, p->bytes[g]);
    blend16_init(&p->blend[g][COVER_LINE], line, comps, off, n, p->bytes[g]);
    p->groups++;
}

static void painter_init(PsPainter *p, GstVideoFrame *frame, const int *comps, int n, const PsPaint *tint,
                         const PsPaint *line)
{
    p->groups = 0;
    p->n = n;
    memcpy(p->comps, comps, n * sizeof *comps);
    painter_group(p, frame, comps, n, tint, line);
    if (p->groups)
        return;
    for (int i = 0; i < n; i++) {
        painter_group(p, frame, &comps[i], 1, tint, line);
        if (p->groups != i + 1) { /* this one fits no group: all by the table */
            p->groups = 0;
            lut_init(p->lut, tint, line);
            return;
        }
    }
}

/* Frame (or chroma) row `row`, samples x .. x + len - 1, all under `mark`. */
static void painter_run(const PsPainter *p, GstVideoFrame *frame, int row, int x, int len, int mark)
{
    for (int g = 0; g < p->groups; g++)
        blend_bytes(p->base[g] + (gsize)row * p->stride[g] + (gsize)x * p->bytes[g], (size_t)len * p->bytes[g],
                    &p->blend[g][mark]);
    for (int i = 0; !p->groups && i < p->n; i++) {
        const int comp = p->comps[i], ps = GST_VIDEO_FRAME_COMP_PSTRIDE(frame, comp);
        guint8 *px = (guint8 *)GST_VIDEO_FRAME_COMP_DATA(frame, comp) + (gsize)row * GST_VIDEO_FRAME_COMP_STRIDE(frame, comp) +
                     (gsize)x * ps;
        const guint8 *l = p->lut[mark][comp];
        for (int k = 0; k < len; k++, px += ps)
            *px = l[*px];
    }
}

/* Components at full resolution (all of RGB, Y of YUV): the runs of one mark of each row,
 * whose marks are then cleared. */
static void paint_full(PsCanvas *c, GstVideoFrame *frame, const int *comps, int n, const PsPaint *tint,
                       const PsPaint *line, int y_begin, int y_end)
{
    PsPainter p;
    painter_init(&p, frame, comps, n, tint, line);
    const int end = c->dx1 + 1;
    for (int y = y_begin; y < y_end; y++) {
        guint8 *marks = c->cover + (gsize)y * c->w;
        const int first = ps_next_nonzero(marks, c->dx0, end);
        int last = first; /* the marks to clear, first .. the end of the last run, when the row is done */
        for (int x = first; x < end; x = ps_next_nonzero(marks, x, end)) {
            const int run_end = run_end_of(marks, x, end, marks[x]);
            painter_run(&p, frame, y, x, run_end - x, marks[x]);
            last = x = run_end;
        }
        memset(marks + first, COVER_NONE, last - first);
    }
}

/* The subsampled components (U and V of I420/YV12/NV12/NV21 share one subsampling): each sample
 * takes the strongest mark of the pixels it covers. Per chroma row those marks are gathered
 * into a row of their own (a max over 2 x 2 bytes that vectorises), whose runs are then painted
 * like the full-resolution ones: both chroma planes of I420, or NV12's interleaved pairs in one
 * pass. */
static void paint_sub(const PsCanvas *c, GstVideoFrame *frame, const int *comps, int n, const PsPaint *tint,
                      const PsPaint *line, int y_begin, int y_end)
{
    const GstVideoFormatInfo *finfo = frame->info.finfo;
    const int ws = GST_VIDEO_FORMAT_INFO_W_SUB(finfo, comps[0]), hs = GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comps[0]);
    PsPainter p;
    painter_init(&p, frame, comps, n, tint, line);
    const int cx0 = c->dx0 >> ws, cx1 = c->dx1 >> ws, cw = cx1 - cx0 + 1;
    const int whole = MIN(cw, (c->w >> ws) - cx0); /* samples whose pixels all exist */
    guint8 marks[cw]; /* one chroma row's marks; at most a frame row */
    for (int cy = y_begin >> hs; cy <= (y_end - 1) >> hs; cy++) {
        const int y0 = MAX(cy << hs, c->dy0), y1 = MIN((cy + 1) << hs, c->dy1 + 1);
        memset(marks, COVER_NONE, cw);
        for (int y = y0; y < y1; y++) {
            const guint8 *row = c->cover + (gsize)y * c->w + ((gsize)cx0 << ws);
            int k = 0;
            if (ws == 1) /* the common case, kept simple enough to vectorise */
                for (; k < whole; k++)
                    marks[k] = MAX(marks[k], MAX(row[2 * k], row[2 * k + 1]));
            for (; k < cw; k++)
                for (int xx = k << ws; xx < MIN((k + 1) << ws, c->w - (cx0 << ws)); xx++)
                    marks[k] = MAX(marks[k], row[xx]);
        }
        for (int k = ps_next_nonzero(marks, 0, cw); k < cw; k = ps_next_nonzero(marks, k, cw)) {
            const int run_end = run_end_of(marks, k, cw, marks[k]);
            painter_run(&p, frame, cy, cx0 + k, run_end - k, marks[k]);
            k = run_end;
        }
    }
}

int ps_canvas_row_group(const GstVideoFrame *frame)
{
    int hs = 0;
    for (int comp = 0; comp < 3; comp++)
        hs = MAX(hs, (int)GST_VIDEO_FORMAT_INFO_H_SUB(frame->info.finfo, comp));
    return 1 << hs;
}

void ps_canvas_paint(PsCanvas *c, GstVideoFrame *frame, const PsPaint *tint, const PsPaint *line, int row_begin,
                     int row_end)
{
    int y_begin = MAX(row_begin, c->dy0), y_end = MIN(row_end, c->dy1 + 1);
    if (c->dx0 > c->dx1 || y_begin >= y_end)
        return;
    const GstVideoFormatInfo *finfo = frame->info.finfo;
    int full[3], n_full = 0, sub[3], n_sub = 0;
    for (int comp = 0; comp < 3; comp++) {
        if (GST_VIDEO_FORMAT_INFO_W_SUB(finfo, comp) || GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comp))
            sub[n_sub++] = comp;
        else
            full[n_full++] = comp;
    }
    if (n_sub)
        paint_sub(c, frame, sub, n_sub, tint, line, y_begin, y_end);
    paint_full(c, frame, full, n_full, tint, line, y_begin, y_end); /* clears the marks as it goes */
}

void ps_canvas_painted(PsCanvas *c)
{
    c->dx0 = c->dy0 = G_MAXINT;
    c->dx1 = c->dy1 = -1;
}

PsPaint ps_paint_from_argb(guint32 argb, double opacity, const PsYuv *matrix)
{
    PsPaint p;
    guint8 rgb[3] = {(argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff};
    p.alpha = (guint)lround(CLAMP(opacity, 0.0, 1.0) * ((argb >> 24) & 0xff) / 255.0 * 256);
    if (matrix) {
        ps_rgb_to_yuv(matrix, rgb, p.comp);
    } else {
        memcpy(p.comp, rgb, 3);
    }
    return p;
}
