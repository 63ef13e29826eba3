/* The frame-conversion kernels of one instruction set (kernels_frame.c, compiled once per set
 * like kernels_impl.c, which puts them in its ps_kernels table): declared here for both files,
 * so the compiler checks the definitions against the table's entries (kernels.h says what each
 * computes). Include with PS_KERNEL_SET defined. */
#pragma once
#include <stdint.h>

#define PS_KERNEL_CAT2(a, b) a##b
#define PS_KERNEL_CAT(a, b) PS_KERNEL_CAT2(a, b)
#define PS_FRAME_KERNEL(name) PS_KERNEL_CAT(name##_, PS_KERNEL_SET)

void PS_FRAME_KERNEL(frame_row_packed4)(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                                        const float *wx, float wy, const int *shift, int n, const float *scale,
                                        const float *nshift, float *const *planes);
void PS_FRAME_KERNEL(frame_row_sample)(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                                       const float *wx, float wy, int n, float *out);
void PS_FRAME_KERNEL(frame_row_combine)(const float *const *samples, int n, const float *matrix,
                                        const float *offset, const float *scale, const float *nshift,
                                        float *const *planes);
