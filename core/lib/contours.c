#include "contours.h"
#include <stdlib.h>
#include <string.h>

struct ps_regions {
    int w, h;
    int32_t *labels; /* > 0 kept region, -1 dropped, 0 background or not yet visited */
    int32_t *queue;  /* flood-fill queue: one region's pixels end up contiguous in it */
    ps_region *regions;
    int *first_point; /* per region, index of its first point in `points` */
    int n_regions, cap_regions;
    int *points; /* x,y pairs of every region's boundary */
    int n_points, cap_points;
};

static void *xrealloc(void *p, size_t bytes)
{
    p = realloc(p, bytes ? bytes : 1);
    if (!p)
        abort();
    return p;
}

ps_regions *ps_regions_new(int w, int h)
{
    ps_regions *r = calloc(1, sizeof *r);
    if (!r || w > 0xffff || h > 0xffff) /* queue entries pack x and y in 16 bits each */
        abort();
    r->w = w;
    r->h = h;
    r->labels = xrealloc(NULL, (size_t)w * h * sizeof *r->labels);
    r->queue = xrealloc(NULL, (size_t)w * h * sizeof *r->queue);
    /* Starting sizes that cover ordinary masks; both grow when a mask needs more. */
    r->cap_regions = 64;
    r->regions = xrealloc(NULL, r->cap_regions * sizeof *r->regions);
    r->first_point = xrealloc(NULL, r->cap_regions * sizeof *r->first_point);
    r->cap_points = 4 * (w + h);
    r->points = xrealloc(NULL, r->cap_points * 2 * sizeof *r->points);
    return r;
}

void ps_regions_free(ps_regions *r)
{
    if (!r)
        return;
    free(r->labels);
    free(r->queue);
    free(r->regions);
    free(r->first_point);
    free(r->points);
    free(r);
}

int ps_regions_count(const ps_regions *r)
{
    return r->n_regions;
}

const ps_region *ps_regions_get(const ps_regions *r, int i)
{
    return i >= 0 && i < r->n_regions ? &r->regions[i] : NULL;
}

const int32_t *ps_regions_labels(const ps_regions *r)
{
    return r->labels;
}

/* Neighbour directions, clockwise on screen (y grows downwards), starting east. */
static const int DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int DY[8] = {0, 1, 1, 1, 0, -1, -1, -1};

/* Queue entries hold a pixel's coordinates, y << 16 | x (ps_regions_new takes sides up to
 * 65535), so no division recovers them. */
static inline int32_t pack_xy(int x, int y)
{
    return (int32_t)((uint32_t)y << 16 | (uint32_t)x);
}

static inline int unpack_x(int32_t q)
{
    return q & 0xffff;
}

static inline int unpack_y(int32_t q)
{
    return (int)((uint32_t)q >> 16);
}

/* Labels the region containing pixel (x0, y0) by breadth-first flood fill; returns its pixel
 * count, leaving the pixels in queue[0..count). */
static int flood(ps_regions *r, const uint8_t *mask, int x0, int y0, int32_t label)
{
    int w = r->w, h = r->h, head = 0, tail = 0;
    r->labels[y0 * w + x0] = label;
    r->queue[tail++] = pack_xy(x0, y0);
    while (head < tail) {
        int32_t p = r->queue[head++];
        int x = unpack_x(p), y = unpack_y(p);
        for (int d = 0; d < 8; d++) {
            int xx = x + DX[d], yy = y + DY[d];
            if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                continue;
            int q = yy * w + xx;
            if (mask[q] && !r->labels[q]) {
                r->labels[q] = label;
                r->queue[tail++] = pack_xy(xx, yy);
            }
        }
    }
    return tail;
}

static int inside(const ps_regions *r, int x, int y, int32_t label)
{
    return x >= 0 && y >= 0 && x < r->w && y < r->h && r->labels[y * r->w + x] == label;
}

static void push_point(ps_regions *r, int x, int y)
{
    if (r->n_points == r->cap_points) {
        r->cap_points *= 2;
        r->points = xrealloc(r->points, (size_t)r->cap_points * 2 * sizeof *r->points);
    }
    r->points[2 * r->n_points] = x;
    r->points[2 * r->n_points + 1] = y;
    r->n_points++;
}

static int direction_to(int x, int y, int tx, int ty)
{
    for (int d = 0; d < 8; d++)
        if (x + DX[d] == tx && y + DY[d] == ty)
            return d;
    return 0; /* not reached: callers pass neighbours */
}

/* Suzuki-Abe outer border following from the region's top-left pixel (whose west neighbour
 * is outside the region): the first step looks clockwise from the west for the pixel the
 * border returns from, then each step searches counter-clockwise around the current pixel,
 * starting just after the previous one. Stops on coming back to the start pixel from that
 * first-found pixel, which is exact even where the border passes a pixel more than once. */
static void trace_outer(ps_regions *r, int sx, int sy, int32_t label)
{
    int d1 = -1;
    for (int k = 0; k < 8; k++) {
        int d = (4 + k) % 8;
        if (inside(r, sx + DX[d], sy + DY[d], label)) {
            d1 = d;
            break;
        }
    }
    push_point(r, sx, sy);
    if (d1 < 0)
        return; /* a single pixel */
    int x1 = sx + DX[d1], y1 = sy + DY[d1];
    int px = x1, py = y1, cx = sx, cy = sy;
    for (;;) {
        int back = direction_to(cx, cy, px, py), nx = px, ny = py;
        for (int k = 1; k <= 8; k++) {
            int d = (back - k + 8) % 8;
            if (inside(r, cx + DX[d], cy + DY[d], label)) {
                nx = cx + DX[d];
                ny = cy + DY[d];
                break;
            }
        }
        if (nx == sx && ny == sy && cx == x1 && cy == y1)
            return;
        px = cx;
        py = cy;
        cx = nx;
        cy = ny;
        push_point(r, cx, cy);
    }
}

/* Drops points where the border keeps going the same way; the polygon is unchanged. */
static int simplify(int *pts, int n)
{
    if (n < 3)
        return n;
    int prev_x = pts[2 * (n - 1)], prev_y = pts[2 * (n - 1) + 1];
    int first_x = pts[0], first_y = pts[1], out = 0;
    for (int i = 0; i < n; i++) {
        int x = pts[2 * i], y = pts[2 * i + 1];
        int nx = i + 1 < n ? pts[2 * (i + 1)] : first_x, ny = i + 1 < n ? pts[2 * (i + 1) + 1] : first_y;
        if (x - prev_x != nx - x || y - prev_y != ny - y) {
            pts[2 * out] = x;
            pts[2 * out + 1] = y;
            out++;
        }
        prev_x = x;
        prev_y = y;
    }
    return out;
}

int ps_regions_find(ps_regions *r, uint8_t *mask, const float *prob, int min_area)
{
    int w = r->w, h = r->h;
    memset(r->labels, 0, (size_t)w * h * sizeof *r->labels);
    r->n_regions = 0;
    r->n_points = 0;
    for (int p = 0; p < w * h; p++) {
        if (!mask[p] || r->labels[p])
            continue;
        int32_t label = r->n_regions + 1;
        int area = flood(r, mask, p % w, p / w, label);
        if (area < min_area) {
            for (int i = 0; i < area; i++) {
                const int q = unpack_y(r->queue[i]) * w + unpack_x(r->queue[i]);
                r->labels[q] = -1;
                mask[q] = 0;
            }
            continue;
        }
        if (r->n_regions == r->cap_regions) {
            r->cap_regions *= 2;
            r->regions = xrealloc(r->regions, (size_t)r->cap_regions * sizeof *r->regions);
            r->first_point = xrealloc(r->first_point, (size_t)r->cap_regions * sizeof *r->first_point);
        }
        ps_region *g = &r->regions[r->n_regions];
        g->area = area;
        g->x0 = g->x1 = p % w;
        g->y0 = g->y1 = p / w;
        double sum = 0;
        for (int i = 0; i < area; i++) {
            int x = unpack_x(r->queue[i]), y = unpack_y(r->queue[i]);
            if (x < g->x0) g->x0 = x;
            if (x > g->x1) g->x1 = x;
            if (y > g->y1) g->y1 = y;
            if (prob)
                sum += prob[y * w + x];
        }
        g->score = (float)(sum / area);
        int first = r->n_points;
        trace_outer(r, p % w, p / w, label);
        g->n_points = simplify(r->points + 2 * first, r->n_points - first);
        r->n_points = first + g->n_points;
        r->first_point[r->n_regions] = first;
        r->n_regions++;
    }
    /* Pointers only now: `points` may have moved while it grew. */
    for (int i = 0; i < r->n_regions; i++)
        r->regions[i].points = r->points + 2 * r->first_point[i];
    return r->n_regions;
}
