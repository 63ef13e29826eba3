#include "contours.h"
#include <stdlib.h>
#include <string.h>

/* Components are found on runs (horizontal stretches of foreground in one row) joined by
 * union-find, not pixel by pixel: a mask of a few large polyps has a few hundred runs, so the
 * work goes with the boundary rather than the area, and unset bytes are skipped 8 at a time. */
typedef struct run {
    int x0, x1, y; /* inclusive */
    int32_t parent; /* union-find: a run's root is the first run of its component in raster order */
} run;

typedef struct component {
    double sum;   /* of the probabilities */
    int32_t root; /* first run */
    int region;   /* index among the regions kept, -1 if dropped */
} component;

struct ps_regions {
    int w, h;
    int32_t *labels; /* > 0 kept region, -1 dropped, 0 background */
    run *runs;       /* every run of the mask, in raster order */
    int32_t *component_of; /* per run: its component's index */
    component *comps;      /* per component (the first n_regions: per region, their roots) */
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
    if (!r || w <= 0 || h <= 0)
        abort();
    r->w = w;
    r->h = h;
    r->labels = xrealloc(NULL, (size_t)w * h * sizeof *r->labels);
    const size_t max_runs = (size_t)h * ((w + 1) / 2); /* a run and a gap at least */
    r->runs = xrealloc(NULL, max_runs * sizeof *r->runs);
    r->component_of = xrealloc(NULL, max_runs * sizeof *r->component_of);
    /* Starting sizes that cover ordinary masks; both grow when a mask needs more. */
    r->cap_regions = 64;
    r->regions = xrealloc(NULL, r->cap_regions * sizeof *r->regions);
    r->first_point = xrealloc(NULL, r->cap_regions * sizeof *r->first_point);
    r->comps = xrealloc(NULL, r->cap_regions * sizeof *r->comps);
    r->cap_points = 4 * (w + h);
    r->points = xrealloc(NULL, r->cap_points * 2 * sizeof *r->points);
    return r;
}

void ps_regions_free(ps_regions *r)
{
    if (!r)
        return;
    free(r->labels);
    free(r->runs);
    free(r->component_of);
    free(r->comps);
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

static int next_unset(const uint8_t *row, int x, int end)
{
    while (x < end && row[x])
        x++;
    return x;
}

static int32_t root_of(run *runs, int32_t i)
{
    while (runs[i].parent != i) {
        runs[i].parent = runs[runs[i].parent].parent; /* path halving */
        i = runs[i].parent;
    }
    return i;
}

/* Joins the components of runs a and b; the root stays the earlier run. */
static void join(run *runs, int32_t a, int32_t b)
{
    a = root_of(runs, a);
    b = root_of(runs, b);
    if (a < b)
        runs[b].parent = a;
    else if (b < a)
        runs[a].parent = b;
}

/* The mask's runs, each joined to the runs of the row above it touches (8-connected: they
 * overlap, or meet at a corner). Returns the number of runs. */
static int find_runs(ps_regions *r, const uint8_t *mask)
{
    const int w = r->w;
    int n = 0, above = 0, above_end = 0; /* runs [above, above_end) are the previous row's */
    for (int y = 0; y < r->h; y++) {
        const uint8_t *row = mask + (size_t)y * w;
        const int first = n;
        for (int x = ps_next_nonzero(row, 0, w); x < w; x = ps_next_nonzero(row, x, w)) {
            const int end = next_unset(row, x, w);
            run *u = &r->runs[n];
            *u = (run){x, end - 1, y, n};
            while (above < above_end && r->runs[above].x1 < x - 1) /* ends before this run's reach */
                above++;
            for (int k = above; k < above_end && r->runs[k].x0 <= end; k++)
                join(r->runs, k, n);
            n++;
            x = end;
        }
        above = first;
        above_end = n;
    }
    return n;
}

/* Room for one more component. */
static void grow_components(ps_regions *r, int n)
{
    if (n < r->cap_regions)
        return;
    r->cap_regions *= 2;
    r->regions = xrealloc(r->regions, (size_t)r->cap_regions * sizeof *r->regions);
    r->first_point = xrealloc(r->first_point, (size_t)r->cap_regions * sizeof *r->first_point);
    r->comps = xrealloc(r->comps, (size_t)r->cap_regions * sizeof *r->comps);
}

int ps_regions_find(ps_regions *r, uint8_t *mask, const float *prob, int min_area)
{
    const int w = r->w, n_runs = find_runs(r, mask);
    /* Every component, in raster order of its first pixel (its root run comes first), with its
     * area, box and probability sum. */
    int n = 0;
    for (int i = 0; i < n_runs; i++) {
        const run *u = &r->runs[i];
        const int32_t root = root_of(r->runs, i);
        if (root == i) {
            grow_components(r, n);
            r->component_of[i] = n;
            r->regions[n] = (ps_region){.x0 = u->x0, .y0 = u->y, .x1 = u->x1, .y1 = u->y};
            r->comps[n++] = (component){0, i, -1};
        }
        const int k = r->component_of[i] = r->component_of[root]; /* the root is an earlier run */
        ps_region *g = &r->regions[k];
        g->area += u->x1 - u->x0 + 1;
        g->x0 = u->x0 < g->x0 ? u->x0 : g->x0;
        g->x1 = u->x1 > g->x1 ? u->x1 : g->x1;
        g->y1 = u->y;
        for (int x = u->x0; prob && x <= u->x1; x++)
            r->comps[k].sum += prob[(size_t)u->y * w + x];
    }
    /* The regions: components of min_area pixels or more, in the same order. */
    int kept = 0;
    for (int k = 0; k < n; k++) {
        ps_region *g = &r->regions[k];
        if (g->area < min_area)
            continue;
        g->score = prob ? (float)(r->comps[k].sum / g->area) : 0.f;
        r->comps[k].region = kept;
        r->comps[kept].root = r->comps[k].root; /* kept <= k: entry k is read already */
        r->regions[kept++] = *g;
    }
    /* The label map, each pixel written once: row by row, the gaps 0 and each run its
     * region's label, or -1 (cleared from the mask) when its component was dropped. */
    for (int y = 0, i = 0; y < r->h; y++) {
        int32_t *labels = r->labels + (size_t)y * w;
        int x = 0;
        for (; i < n_runs && r->runs[i].y == y; i++) {
            const run *u = &r->runs[i];
            const int region = r->comps[r->component_of[i]].region;
            const int32_t label = region >= 0 ? region + 1 : -1;
            for (; x < u->x0; x++)
                labels[x] = 0;
            for (; x <= u->x1; x++)
                labels[x] = label;
            if (region < 0)
                memset(mask + (size_t)y * w + u->x0, 0, (size_t)(u->x1 - u->x0 + 1));
        }
        for (; x < w; x++)
            labels[x] = 0;
    }
    /* Each region's outer border, from its first pixel. */
    r->n_regions = kept;
    r->n_points = 0;
    for (int k = 0; k < kept; k++) {
        ps_region *g = &r->regions[k];
        const run *start = &r->runs[r->comps[k].root];
        const int first = r->n_points;
        trace_outer(r, start->x0, start->y, k + 1);
        g->n_points = simplify(r->points + 2 * first, r->n_points - first);
        r->n_points = first + g->n_points;
        r->first_point[k] = first;
    }
    /* Pointers only now: `points` may have moved while it grew. */
    for (int k = 0; k < r->n_regions; k++)
        r->regions[k].points = r->points + 2 * r->first_point[k];
    return r->n_regions;
}
