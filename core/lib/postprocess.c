#include "postprocess.h"
#include <stdlib.h>

void ps_prob_to_mask(const float *prob, int size, float threshold, uint8_t *mask, int w, int h)
{
    float *full = malloc((size_t)w * h * sizeof(float));
    if (!full)
        abort();
    ps_resize_bilinear_f32(prob, size, size, full, w, h);
    for (size_t i = 0; i < (size_t)w * h; i++)
        mask[i] = full[i] >= threshold ? 255 : 0;
    free(full);
}

static int on_boundary(const uint8_t *mask, int w, int h, int x, int y)
{
    if (!mask[(size_t)y * w + x])
        return 0;
    return x == 0 || y == 0 || x == w - 1 || y == h - 1 || !mask[(size_t)y * w + x - 1] ||
           !mask[(size_t)y * w + x + 1] || !mask[(size_t)(y - 1) * w + x] || !mask[(size_t)(y + 1) * w + x];
}

void ps_draw_overlay(ps_image *im, const uint8_t *mask, const uint8_t rgb[3], float alpha,
                     const uint8_t edge[3], int width)
{
    int w = im->w, h = im->h;
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (mask[i])
            for (int c = 0; c < 3; c++) {
                uint8_t *p = &im->data[3 * i + c];
                *p = (uint8_t)(*p * (1 - alpha) + rgb[c] * alpha + 0.5f);
            }
    /* Boundary pixels, grown inward-and-outward to the requested width. */
    int r = width / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!on_boundary(mask, w, h, x, y))
                continue;
            for (int dy = -r; dy <= width - 1 - r; dy++)
                for (int dx = -r; dx <= width - 1 - r; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < h && xx >= 0 && xx < w)
                        for (int c = 0; c < 3; c++)
                            im->data[3 * ((size_t)yy * w + xx) + c] = edge[c];
                }
        }
}
