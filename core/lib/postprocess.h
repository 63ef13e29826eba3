/* Model output -> mask at the image's resolution, and the overlay drawn for people. */
#pragma once
#include <stdint.h>
#include "image.h"

/* Bilinearly resizes a size x size probability map to w x h and thresholds it: 255 = polyp. */
void ps_prob_to_mask(const float *prob, int size, float threshold, uint8_t *mask, int w, int h);
/* Tints polyp pixels of an RGB image with `rgb` at opacity alpha (0..1) and paints the mask's
 * boundary (polyp pixels with a non-polyp 4-neighbour, thickened to `width` px) in `edge`. */
void ps_draw_overlay(ps_image *im, const uint8_t *mask, const uint8_t rgb[3], float alpha,
                     const uint8_t edge[3], int width);
