/* Polyp regions of a binary mask: 8-connected components, small ones dropped, and each kept
 * one's outer boundary traced as a polygon (Suzuki-Abe border following). The GStreamer
 * element calls this on every new model result, so memory is allocated up front; the region
 * arrays grow (and stay grown) only for a mask of more components than any before it. */
#pragma once
#include <stdint.h>
#include <string.h>

typedef struct ps_region {
    int area;           /* pixels */
    int x0, y0, x1, y1; /* bounding box, inclusive */
    float score;        /* mean probability over the region; 0 when no map was given */
    /* Outer boundary, closed (the last point joins the first), counter-clockwise on screen,
     * through the centres of boundary pixels; collinear points are left out, so a rectangle
     * has 4. A one-pixel region has 1 point. x,y pairs valid until the next find. */
    int n_points;
    const int *points;
} ps_region;

typedef struct ps_regions ps_regions;

/* For w x h masks (positive sides); abort()s on out-of-memory. */
ps_regions *ps_regions_new(int w, int h);
void ps_regions_free(ps_regions *r);
/* Finds the regions of `mask` (nonzero = foreground), in raster order of their top-left pixel.
 * Regions of fewer than min_area pixels are cleared from the mask, so afterwards it holds
 * exactly the regions returned. prob (w x h, may be NULL) gives each region's score. Returns
 * the number of regions. */
int ps_regions_find(ps_regions *r, uint8_t *mask, const float *prob, int min_area);
int ps_regions_count(const ps_regions *r);
const ps_region *ps_regions_get(const ps_regions *r, int i);
/* Label map of the last find (w x h): region i has label i + 1, background and dropped
 * regions are <= 0. */
const int32_t *ps_regions_labels(const ps_regions *r);
/* First index in row[x..end) holding a nonzero byte, or end; zero stretches are skipped 8
 * bytes at a time (for mask scans here and in the element's drawing; inline for their loops). */
static inline int ps_next_nonzero(const uint8_t *row, int x, int end)
{
    while (x < end && (x & 7)) {
        if (row[x])
            return x;
        x++;
    }
    for (uint64_t v; x + 8 <= end; x += 8) {
        memcpy(&v, row + x, 8);
        if (v)
            break;
    }
    while (x < end && !row[x])
        x++;
    return x;
}
