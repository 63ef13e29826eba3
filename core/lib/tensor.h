/* float32 NCHW tensors and a bump arena for per-pass scratch memory. */
#pragma once
#include <stddef.h>

typedef struct ps_tensor {
    int n, c, h, w;
    float *data;
    float *grad; /* gradient of the loss w.r.t. data (same shape); NULL unless training */
} ps_tensor;

static inline size_t ps_numel(const ps_tensor *t)
{
    return (size_t)t->n * t->c * t->h * t->w;
}

/* Heap tensor, zero-filled; abort()s on out-of-memory. */
ps_tensor *ps_tensor_new(int n, int c, int h, int w);
void ps_tensor_free(ps_tensor *t);
/* Allocate (zeroed) t->grad if it is NULL. */
void ps_tensor_ensure_grad(ps_tensor *t);
int ps_tensor_same_shape(const ps_tensor *a, const ps_tensor *b);

/* Bump allocator: every tensor of one forward/backward pass comes from it, reset between passes. */
typedef struct ps_arena ps_arena;
ps_arena *ps_arena_new(void);
void ps_arena_free(ps_arena *a);
void ps_arena_reset(ps_arena *a);
void *ps_arena_alloc(ps_arena *a, size_t bytes); /* 64-byte aligned, NOT zeroed */
/* While shared, allocations take a lock, so several threads may allocate; set and cleared by
 * the thread that hands the work out, before and after. */
void ps_arena_set_shared(ps_arena *a, int shared);
void *ps_arena_calloc(ps_arena *a, size_t bytes); /* zeroed */
/* Tensor header and data from the arena; data not zeroed, grad NULL. */
ps_tensor *ps_arena_tensor(ps_arena *a, int n, int c, int h, int w);
size_t ps_arena_used(const ps_arena *a);
