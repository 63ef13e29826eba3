#include <pthread.h>
#include "tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xaligned(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "polypseg: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

ps_tensor *ps_tensor_new(int n, int c, int h, int w)
{
    ps_tensor *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = xaligned(ps_numel(t) * sizeof(float));
    memset(t->data, 0, ps_numel(t) * sizeof(float));
    return t;
}

void ps_tensor_free(ps_tensor *t)
{
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

void ps_tensor_ensure_grad(ps_tensor *t)
{
    if (t->grad)
        return;
    t->grad = xaligned(ps_numel(t) * sizeof(float));
    memset(t->grad, 0, ps_numel(t) * sizeof(float));
}

int ps_tensor_same_shape(const ps_tensor *a, const ps_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

/* The arena is a list of large blocks; reset keeps the blocks so steady-state passes
 * allocate nothing. */
#define ARENA_BLOCK (64u << 20)

typedef struct block {
    struct block *next;
    size_t size, used;
    unsigned char *mem;
} block;

struct ps_arena {
    block *head;    /* first block */
    block *cur;     /* block being filled */
    size_t used;    /* bytes handed out since the last reset */
    int shared;     /* allocations lock mu (ps_arena_set_shared) */
    pthread_mutex_t mu;
};

ps_arena *ps_arena_new(void)
{
    ps_arena *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void ps_arena_free(ps_arena *a)
{
    if (!a)
        return;
    for (block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b->mem);
        free(b);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void ps_arena_reset(ps_arena *a)
{
    for (block *b = a->head; b; b = b->next)
        b->used = 0;
    a->cur = a->head;
    a->used = 0;
}

void ps_arena_set_shared(ps_arena *a, int shared)
{
    a->shared = shared;
}

static void *arena_alloc(ps_arena *a, size_t bytes);

void *ps_arena_alloc(ps_arena *a, size_t bytes)
{
    if (!a->shared)
        return arena_alloc(a, bytes);
    pthread_mutex_lock(&a->mu);
    void *p = arena_alloc(a, bytes);
    pthread_mutex_unlock(&a->mu);
    return p;
}

static void *arena_alloc(ps_arena *a, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    /* Walk forward to the first block with room; append a new one at the end if none. */
    while (a->cur && a->cur->size - a->cur->used < bytes)
        a->cur = a->cur->next;
    if (!a->cur) {
        block *b = calloc(1, sizeof *b);
        if (!b)
            abort();
        b->size = bytes > ARENA_BLOCK ? bytes : ARENA_BLOCK;
        b->mem = xaligned(b->size);
        block **tail = &a->head;
        while (*tail)
            tail = &(*tail)->next;
        *tail = b;
        a->cur = b;
    }
    void *p = a->cur->mem + a->cur->used;
    a->cur->used += bytes;
    a->used += bytes;
    return p;
}

void *ps_arena_calloc(ps_arena *a, size_t bytes)
{
    void *p = ps_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

ps_tensor *ps_arena_tensor(ps_arena *a, int n, int c, int h, int w)
{
    ps_tensor *t = ps_arena_calloc(a, sizeof *t);
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = ps_arena_alloc(a, ps_numel(t) * sizeof(float));
    return t;
}

size_t ps_arena_used(const ps_arena *a)
{
    return a->used;
}
