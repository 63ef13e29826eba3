#include "preprocess.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "image.h"
#include "kernels.h"

/* The normalisation (v / 255 - mean) / std of each channel as v * scale - shift. */
typedef struct norm {
    float scale[3], shift[3];
} norm;

static norm norm_of(const float mean[3], const float std[3])
{
    norm n;
    for (int c = 0; c < 3; c++) {
        n.scale[c] = 1.0f / (255.0f * std[c]);
        n.shift[c] = mean[c] / std[c];
    }
    return n;
}

void ps_normalise_rgb_ref(const uint8_t *rgb, int count, const float scale[3], const float shift[3], float *d0,
                          float *d1, float *d2)
{
    for (int i = 0; i < count; i++) {
        d0[i] = fmaf((float)rgb[3 * i], scale[0], -shift[0]);
        d1[i] = fmaf((float)rgb[3 * i + 1], scale[1], -shift[1]);
        d2[i] = fmaf((float)rgb[3 * i + 2], scale[2], -shift[2]);
    }
}

/* v + 0.5 clamped to 0..255 and truncated, as the core's resize stores a byte */
static float round_byte(float v)
{
    return (float)(uint8_t)CLAMP(v + 0.5f, 0.0f, 255.0f);
}

static float lerp_corners(float a, float b, float c, float d, float wx, float wy)
{
    const float top = a + wx * (b - a), bottom = c + wx * (d - c);
    return top + wy * (bottom - top);
}

void ps_frame_row_packed4_ref(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                              const float *wx, float wy, const int *shift, int n, const float *scale,
                              const float *nshift, float *const *planes)
{
    for (int i = 0; i < n; i++) {
        uint32_t a, b, c, d;
        memcpy(&a, row0 + off0[i], 4);
        memcpy(&b, row0 + off1[i], 4);
        memcpy(&c, row1 + off0[i], 4);
        memcpy(&d, row1 + off1[i], 4);
        for (int k = 0; k < 3; k++) {
            const int sh = shift[k];
            const float v = lerp_corners((a >> sh) & 255, (b >> sh) & 255, (c >> sh) & 255, (d >> sh) & 255, wx[i], wy);
            planes[k][i] = fmaf(round_byte(v), scale[k], -nshift[k]);
        }
    }
}

void ps_frame_row_sample_ref(const uint8_t *row0, const uint8_t *row1, const int *off0, const int *off1,
                             const float *wx, float wy, int n, float *out)
{
    for (int i = 0; i < n; i++)
        out[i] = lerp_corners(row0[off0[i]], row0[off1[i]], row1[off0[i]], row1[off1[i]], wx[i], wy);
}

void ps_frame_row_combine_ref(const float *const *samples, int n, const float *matrix, const float *offset,
                              const float *scale, const float *nshift, float *const *planes)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            float v = matrix[3 * k] * (samples[0][i] - offset[0]);
            v += matrix[3 * k + 1] * (samples[1][i] - offset[1]);
            v += matrix[3 * k + 2] * (samples[2][i] - offset[2]);
            planes[k][i] = fmaf(round_byte(v), scale[k], -nshift[k]);
        }
}

/* `count` interleaved RGB pixels -> the same positions of the three normalised planes (`plane`
 * floats apart) starting at dst. */
static void normalise_pixels(const uint8_t *rgb, int count, const norm *nm, float *dst, size_t plane)
{
    ps_kernels_best()->normalise_rgb(rgb, count, nm->scale, nm->shift, dst, dst + plane, dst + 2 * plane);
}

/* rgb at ow x oh: as it is when it already is (any stride), else resized into scratch (stride
 * ow * 3) by *plan, made or remade for these sizes; *stride is updated. */
static const uint8_t *at_size(const uint8_t *rgb, int w, int h, int *stride, int ow, int oh, uint8_t *scratch,
                              ps_resize_plan **plan)
{
    if (w == ow && h == oh)
        return rgb;
    *plan = ps_resize_plan_reuse(*plan, w, h, 3, ow, oh);
    ps_resize_plan_run(*plan, rgb, *stride, scratch, ow * 3);
    *stride = ow * 3;
    return scratch;
}

/* Rows [begin, end) of interleaved RGB, w pixels each -> the normalised planes at dst (planes of
 * `plane` values). */
static void normalise_rows(const uint8_t *rgb, int stride, int begin, int end, int w, size_t plane,
                           const norm *nm, float *dst)
{
    for (int y = begin; y < end; y++)
        normalise_pixels(rgb + (size_t)y * stride, w, nm, dst + (size_t)y * w, plane);
}

void ps_preprocess_rgb(const uint8_t *rgb, int w, int h, int stride, const float mean[3],
                       const float std[3], ps_tensor *out, int n, uint8_t *scratch)
{
    const norm nm = norm_of(mean, std);
    const size_t plane = (size_t)out->h * out->w;
    ps_resize_plan *plan = NULL; /* one image: a plan for it alone */
    rgb = at_size(rgb, w, h, &stride, out->w, out->h, scratch, &plan);
    normalise_rows(rgb, stride, 0, out->h, out->w, plane, &nm, out->data + (size_t)n * 3 * plane);
    ps_resize_plan_free(plan);
}

struct ps_segmenter {
    ps_model *model;
    ps_arena *arena;
    ps_graph graph;
    ps_tensor *input;
    uint8_t *scratch;
    ps_resize_plan *resize; /* frames of the last size seen -> the input size */
    float *prob;
    norm nm; /* the model's normalisation */
    int views;            /* test-time augmentation: views averaged (1 = off) */
    ps_tensor *view;      /* the input seen through one view */
    float *view_prob;     /* that view's probabilities */
    int threads_asked;    /* the last ps_segmenter_set_threads count (the pool may have fewer) */
};

/* A segmenter running m at size x size (the model's own size, or a probe's). */
static ps_segmenter *segmenter_new_at(ps_model *m, int size)
{
    ps_segmenter *s = calloc(1, sizeof *s);
    s->model = m;
    s->arena = ps_arena_new();
    ps_graph_init(&s->graph, s->arena, 0);
    s->threads_asked = 1;
    s->input = ps_tensor_new(1, 3, size, size);
    s->scratch = malloc((size_t)size * size * 3);
    s->prob = malloc((size_t)size * size * sizeof(float));
    s->nm = norm_of(m->info.mean, m->info.std);
    s->views = 1;
    if (!s->scratch || !s->prob)
        abort();
    return s;
}

ps_segmenter *ps_segmenter_new(ps_model *m)
{
    return segmenter_new_at(m, m->info.input_size);
}

static const float *forward(ps_segmenter *s);

gboolean ps_segmenter_prepare(ps_segmenter *s, GError **err)
{
    const int size = s->input->w;
    if (ps_arena_used(s->arena) == 0) {
        /* The buffers a frame takes grow with its area: measured at the smallest side, scaled. */
        ps_segmenter *probe = segmenter_new_at(s->model, PS_MIN_INPUT);
        forward(probe);
        const double area = (double)size * size / ((double)PS_MIN_INPUT * PS_MIN_INPUT);
        const double need = (double)ps_arena_used(probe->arena) * area;
        ps_segmenter_free(probe);
        void *trial = need < (double)SIZE_MAX ? g_try_malloc((size_t)need) : NULL;
        if (!trial) {
            g_set_error(err, PS_MODEL_ERROR, 7,
                        "%s at %dx%d needs about %.2f GB for each frame's buffers, which cannot be allocated",
                        s->model->info.arch, size, size, need / 1e9);
            return FALSE;
        }
        g_free(trial);
    }
    forward(s); /* on the blank input: the buffers are made now, not on the first frame */
    return TRUE;
}

void ps_segmenter_free(ps_segmenter *s)
{
    if (!s)
        return;
    ps_graph_release(&s->graph);
    ps_pool_free(s->graph.pool);
    ps_arena_free(s->arena);
    ps_tensor_free(s->input);
    ps_tensor_free(s->view);
    free(s->view_prob);
    free(s->scratch);
    ps_resize_plan_free(s->resize);
    free(s->prob);
    free(s);
}

int ps_segmenter_size(const ps_segmenter *s)
{
    return s->model->info.input_size;
}

void ps_segmenter_set_threads(ps_segmenter *s, int threads)
{
    threads = threads < 1 ? 1 : threads;
    /* against the count asked for: a pool that got fewer workers (a process limit) keeps them,
     * rather than being rebuilt on every call */
    if (threads == s->threads_asked)
        return;
    ps_pool_free(s->graph.pool);
    s->graph.pool = threads > 1 ? ps_pool_new(threads) : NULL;
    s->threads_asked = threads;
}

void ps_segmenter_set_tta(ps_segmenter *s, int views)
{
    views = views < 1 ? 1 : views > PS_TTA_MAX ? PS_TTA_MAX : views;
    s->views = views;
    if (views > 1 && !s->view) {
        const int size = s->input->w;
        s->view = ps_tensor_new(1, 3, size, size);
        s->view_prob = malloc((size_t)size * size * sizeof(float));
        if (!s->view_prob)
            abort();
    }
}

int ps_segmenter_tta(const ps_segmenter *s)
{
    return s->views;
}

int ps_segmenter_threads(const ps_segmenter *s)
{
    return ps_pool_threads(s->graph.pool);
}

ps_pool *ps_segmenter_pool(ps_segmenter *s)
{
    return s->graph.pool;
}

void ps_segmenter_set_stage_hook(ps_segmenter *s, void (*on_stage)(void *user, const char *stage),
                                 void *user)
{
    s->graph.on_stage = on_stage;
    s->graph.stage_user = user;
}

/* The sigmoid of the logits, in runs of rows shared by the threads. */
typedef struct {
    const float *logits;
    float *prob;
    int w;
} sigmoid_job;

static void sigmoid_rows(void *ctx, int begin, int end)
{
    const sigmoid_job *j = ctx;
    ps_kernels_best()->sigmoid(j->logits + (size_t)begin * j->w, j->prob + (size_t)begin * j->w,
                               (size_t)(end - begin) * j->w);
}

/* Probabilities of the model on `input` into prob. */
static void run_model(ps_segmenter *s, ps_tensor *input, float *prob)
{
    ps_graph_clear(&s->graph);
    ps_tensor *logits = ps_model_forward(s->model, &s->graph, input, NULL);
    sigmoid_job j = {logits->data, prob, logits->w};
    ps_pool_for(s->graph.pool, logits->h, sigmoid_rows, &j);
}

/* Row y of a view reads its sources at start, start + step, ...: views 0-3 walk a row of the
 * square forwards or backwards, views 4-7 a column. */
static void view_row(int view, int size, int y, ptrdiff_t *start, ptrdiff_t *step)
{
    const int t = size - 1;
    const ptrdiff_t S = size;
    switch (view) {
    case 1: *start = y * S + t, *step = -1; break;
    case 2: *start = (t - y) * S, *step = 1; break;
    case 3: *start = (t - y) * S + t, *step = -1; break;
    case 4: *start = y, *step = S; break;
    case 5: *start = t - y, *step = S; break;
    case 6: *start = t * S + y, *step = -S; break;
    case 7: *start = t * S + (t - y), *step = -S; break;
    default: *start = y * S, *step = 1; break;
    }
}

int ps_view_source(int view, int size, int y, int x)
{
    ptrdiff_t start, step;
    view_row(view, size, y, &start, &step);
    return (int)(start + x * step);
}

/* Rows [begin, end) of dst, a size x size map, get (add = 0) or gain (add = 1) src seen through
 * `view`: dst[y][x] (+)= src[ps_view_source(view, size, y, x)]. Views 0-3 read source rows
 * forwards or backwards; views 4-7 read columns, in tiles of TILE rows so that each column of
 * the tile takes TILE consecutive floats of one source row and the cache lines get reused.
 * Inlined with a constant `add`, so no loop tests it. */
enum { TILE = 16 };

static inline void gather_view(int view, int size, const float *restrict src, float *restrict dst, int begin,
                               int end, int add)
{
    for (int y0 = begin; y0 < end; y0 += TILE) {
        const int rows = MIN(TILE, end - y0);
        ptrdiff_t start[TILE], step = 1;
        for (int r = 0; r < rows; r++)
            view_row(view, size, y0 + r, &start[r], &step);
        float *out = dst + (size_t)y0 * size;
        if (step == 1 || step == -1)
            for (int r = 0; r < rows; r++) {
                const float *in = src + start[r];
                float *o = out + (size_t)r * size;
                if (step == 1)
                    for (int x = 0; x < size; x++)
                        o[x] = add ? o[x] + in[x] : in[x];
                else
                    for (int x = 0; x < size; x++)
                        o[x] = add ? o[x] + in[-x] : in[-x];
            }
        else
            for (int x = 0; x < size; x++)
                for (int r = 0; r < rows; r++) {
                    const float v = src[start[r] + x * step];
                    out[(size_t)r * size + x] = add ? out[(size_t)r * size + x] + v : v;
                }
    }
}

void ps_view_gather(int view, int size, const float *src, float *dst, int add)
{
    if (add) /* constant flags, so the inlined loops test neither */
        gather_view(view, size, src, dst, 0, size, 1);
    else
        gather_view(view, size, src, dst, 0, size, 0);
}

int ps_view_inverse(int view)
{
    return view == 5 ? 6 : view == 6 ? 5 : view;
}

typedef struct {
    ps_segmenter *s;
    int view;
} view_job;

/* The input through one view, rows [begin, end) of every channel. */
static void view_input_rows(void *ctx, int begin, int end)
{
    const view_job *j = ctx;
    const int size = j->s->input->w;
    const size_t plane = (size_t)size * size;
    for (int c = 0; c < 3; c++)
        gather_view(j->view, size, j->s->input->data + c * plane, j->s->view->data + c * plane, begin, end, 0);
}

/* That view's probabilities turned back and added into the result: each position gains one
 * value per view, in view order whatever the threads. */
static void add_view_rows(void *ctx, int begin, int end)
{
    const view_job *j = ctx;
    gather_view(ps_view_inverse(j->view), j->s->input->w, j->s->view_prob, j->s->prob, begin, end, 1);
}

static void scale_rows(void *ctx, int begin, int end)
{
    const view_job *j = ctx;
    const int size = j->s->input->w;
    const float k = 1.0f / (float)j->s->views;
    for (size_t i = (size_t)begin * size; i < (size_t)end * size; i++)
        j->s->prob[i] *= k;
}

static const float *forward(ps_segmenter *s)
{
    ps_g_stage(&s->graph, "preprocess");
    run_model(s, s->input, s->prob);
    const int size = s->input->w;
    for (int v = 1; v < s->views; v++) {
        view_job j = {s, v};
        ps_pool_for(s->graph.pool, size, view_input_rows, &j);
        ps_g_stage(&s->graph, "tta-views");
        run_model(s, s->view, s->view_prob);
        ps_pool_for(s->graph.pool, size, add_view_rows, &j);
        ps_g_stage(&s->graph, "tta-merge");
    }
    if (s->views > 1)
        ps_pool_for(s->graph.pool, size, scale_rows, &(view_job){s, 0});
    ps_g_stage(&s->graph, "postprocess");
    return s->prob;
}

/* Model-sized interleaved RGB -> the normalised input, in runs of rows shared by the threads. */
typedef struct {
    ps_segmenter *s;
    const uint8_t *rgb;
    int stride;
} fill_job;

static void fill_rows(void *ctx, int begin, int end)
{
    const fill_job *j = ctx;
    const ps_tensor *in = j->s->input;
    normalise_rows(j->rgb, j->stride, begin, end, in->w, (size_t)in->h * in->w, &j->s->nm, in->data);
}

const float *ps_segmenter_run(ps_segmenter *s, const uint8_t *rgb, int w, int h, int stride)
{
    rgb = at_size(rgb, w, h, &stride, s->input->w, s->input->h, s->scratch, &s->resize);
    fill_job j = {s, rgb, stride};
    ps_pool_for(s->graph.pool, s->input->h, fill_rows, &j);
    return forward(s);
}

void ps_segmenter_input_row(ps_segmenter *s, int y, float **planes, const float **scale, const float **shift)
{
    const int size = s->input->w;
    for (int k = 0; k < 3; k++)
        planes[k] = s->input->data + ((size_t)k * size + y) * size;
    *scale = s->nm.scale;
    *shift = s->nm.shift;
}

const float *ps_segmenter_run_filled(ps_segmenter *s)
{
    return forward(s);
}
