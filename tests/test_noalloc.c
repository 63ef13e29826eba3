/* A frame allocates nothing: the model's buffers come from the segmenter's arena, sized by the
 * first frame, and the region tracing reuses its own. malloc and its relatives are interposed in this executable (glibc's own entry
 * points do the work) and counted while frames run, on one and two threads, with and without
 * test-time augmentation, for both architectures. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "contours.h"
#include "model.h"
#include "preprocess.h"
#include "test_util.h"

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t k, size_t n);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);

static atomic_int counting;
static atomic_long allocations;

static void note(void)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add(&allocations, 1);
}

void *malloc(size_t n)
{
    note();
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    note();
    return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    note();
    return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n)
{
    note();
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    note();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    note();
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static long count_allocations(void (*fn)(void *), void *ctx)
{
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
    fn(ctx);
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}

static void allocate_once(void *ctx)
{
    (void)ctx;
    void *volatile p = g_malloc(16); /* through GLib, as the library's own allocations go */
    void *q = NULL;
    g_assert_cmpint(posix_memalign(&q, 64, 128), ==, 0);
    g_free(p);
    free(q);
}

/* The counter sees allocations, from GLib and from posix_memalign (the arena's), or the test
 * below could not fail. */
static void test_counter_counts(void)
{
    g_assert_cmpint(count_allocations(allocate_once, NULL), ==, 2);
}

typedef struct frames {
    ps_segmenter *seg;
    ps_regions *regions;
    guint8 *mask;
    const guint8 *rgb;
    int w, h, n;
} frames;

/* What the element does with a frame: the model, then the regions of its mask. */
static void run_frames(void *ctx)
{
    frames *f = ctx;
    const int S = ps_segmenter_size(f->seg);
    for (int i = 0; i < f->n; i++) {
        const float *prob = ps_segmenter_run(f->seg, f->rgb, f->w, f->h, f->w * 3);
        for (int k = 0; k < S * S; k++)
            f->mask[k] = prob[k] >= 0.5f;
        ps_regions_find(f->regions, f->mask, prob, 4);
    }
}

static void test_no_allocation_per_frame(gconstpointer arch)
{
    GError *err = NULL;
    ps_model *m = ps_model_new(arch, NULL, 0, 1, &err);
    g_assert_no_error(err);
    ps_segmenter *seg = ps_segmenter_new(m);
    const int S = ps_segmenter_size(seg), w = 300, h = 200;
    ps_regions *regions = ps_regions_new(S, S);
    guint8 *mask = g_malloc((gsize)S * S);
    guint8 *rgb = g_malloc((gsize)w * h * 3);
    GRand *r = g_rand_new_with_seed(3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (guint8)g_rand_int_range(r, 0, 256);
    static const int settings[][2] = {{1, 1}, {2, 1}, {1, 8}, {2, 8}}; /* threads, views */
    for (size_t k = 0; k < G_N_ELEMENTS(settings); k++) {
        ps_segmenter_set_threads(seg, settings[k][0]);
        ps_segmenter_set_tta(seg, settings[k][1]);
        frames warm = {seg, regions, mask, rgb, w, h, 2}, timed = {seg, regions, mask, rgb, w, h, 10};
        run_frames(&warm); /* the first frame of a setting sizes the buffers */
        long n = count_allocations(run_frames, &timed);
        if (n != 0)
            g_test_fail_printf("%s, %d thread(s), %d view(s): %ld allocations in 10 frames", (const char *)arch,
                               settings[k][0], settings[k][1], n);
    }
    g_rand_free(r);
    g_free(rgb);
    g_free(mask);
    ps_regions_free(regions);
    ps_segmenter_free(seg);
    ps_model_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/noalloc/counter-counts", test_counter_counts);
    g_test_add_data_func("/noalloc/microaunet", "microaunet", test_no_allocation_per_frame);
    g_test_add_data_func("/noalloc/malunet", "malunet", test_no_allocation_per_frame);
    return g_test_run();
}
