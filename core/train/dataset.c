#include "dataset.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Listing image/mask pairs
 * ------------------------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names from a split file: one per line, surrounding white space (and CR) stripped, blank lines
 * skipped. */
static GPtrArray *names_from_split(const char *split_file, GError **err)
{
    char *text = NULL;
    if (!g_file_get_contents(split_file, &text, NULL, err))
        return NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    char **lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *name = g_strstrip(*l);
        if (*name)
            g_ptr_array_add(names, g_strdup(name));
    }
    g_strfreev(lines);
    g_free(text);
    return names;
}

/* Every regular file of `dir`, sorted by name; hidden files (".DS_Store" and the like) are not
 * images and are skipped. */
static GPtrArray *names_from_dir(const char *dir, GError **err)
{
    GDir *d = g_dir_open(dir, 0, err);
    if (!d)
        return NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d))) {
        char *path = g_build_filename(dir, name, NULL);
        if (name[0] != '.' && g_file_test(path, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(names, g_strdup(name));
        g_free(path);
    }
    g_dir_close(d);
    qsort(names->pdata, names->len, sizeof(char *), cmp_names);
    return names;
}

ps_dataset *ps_dataset_open(const char *dir, const char *split_file, GError **err)
{
    char *images_dir = g_build_filename(dir, "images", NULL);
    char *masks_dir = g_build_filename(dir, "masks", NULL);
    ps_dataset *ds = NULL;
    GPtrArray *names = split_file ? names_from_split(split_file, err) : names_from_dir(images_dir, err);
    if (!names)
        goto out;
    if (names->len == 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "empty dataset: no images in %s",
                    split_file ? split_file : images_dir);
        goto out;
    }
    ds = g_new0(ps_dataset, 1);
    ds->n = (int)names->len;
    /* NULL-terminated so g_strfreev frees them, also when the listing stops half-way */
    ds->image_paths = g_new0(char *, ds->n + 1);
    ds->mask_paths = g_new0(char *, ds->n + 1);
    for (int i = 0; i < ds->n; i++) {
        const char *name = names->pdata[i];
        char *image = g_build_filename(images_dir, name, NULL);
        char *mask = g_build_filename(masks_dir, name, NULL);
        ds->image_paths[i] = image;
        ds->mask_paths[i] = mask;
        const char *missing = !g_file_test(image, G_FILE_TEST_IS_REGULAR) ? image
                              : !g_file_test(mask, G_FILE_TEST_IS_REGULAR) ? mask
                                                                           : NULL;
        if (missing) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s not found (%s of pair '%s')",
                        missing, missing == image ? "image" : "mask", name);
            ps_dataset_free(ds);
            ds = NULL;
            goto out;
        }
    }
out:
    if (names)
        g_ptr_array_unref(names);
    g_free(images_dir);
    g_free(masks_dir);
    return ds;
}

void ps_dataset_append(ps_dataset *ds, ps_dataset *other)
{
    int n = ds->n + other->n;
    ds->image_paths = g_renew(char *, ds->image_paths, n + 1);
    ds->mask_paths = g_renew(char *, ds->mask_paths, n + 1);
    memcpy(ds->image_paths + ds->n, other->image_paths, (other->n + 1) * sizeof(char *));
    memcpy(ds->mask_paths + ds->n, other->mask_paths, (other->n + 1) * sizeof(char *));
    ds->n = n;
    g_free(other->image_paths); /* the strings moved to ds */
    g_free(other->mask_paths);
    g_free(other);
}

void ps_dataset_free(ps_dataset *ds)
{
    if (!ds)
        return;
    g_strfreev(ds->image_paths);
    g_strfreev(ds->mask_paths);
    g_free(ds);
}

char *ps_data_root(const char *repo_root)
{
    const char *env = g_getenv("POLYPSEG_DATA");
    if (env && *env && g_file_test(env, G_FILE_TEST_IS_DIR))
        return g_strdup(env);
    char *path = g_build_filename(repo_root ? repo_root : ".", "..", "shared", "datasets", NULL);
    char *root = NULL;
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        /* resolve "..": the path is printed in logs and stored in run configs */
        char *real = realpath(path, NULL);
        root = g_strdup(real ? real : path);
        free(real);
    }
    g_free(path);
    return root;
}

/* ---------------------------------------------------------------------------------------------
 * Seeded randomness: splitmix64. Every stream is derived by hashing (seed, epoch, sample) so
 * that nothing depends on which thread runs what, or on the epochs run before.
 * ------------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash2(uint64_t a, uint64_t b)
{
    uint64_t s = a;
    s = splitmix64(&s) ^ b;
    return splitmix64(&s);
}

/* The shuffle and the batch sides use sample indices no real sample has. */
#define SHUFFLE_STREAM UINT64_MAX
#define SIDE_STREAM(batch) (UINT64_MAX - 1 - (uint64_t)(batch))
/* copy-paste draws from a stream of its own, so turning it on changes no other draw */
#define PASTE_STREAM(sample) ((1ull << 62) + (uint64_t)(sample))

static uint64_t stream_seed(uint64_t seed, int epoch, uint64_t sample)
{
    return hash2(hash2(seed, (uint64_t)(uint32_t)epoch), sample);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

static double uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * uniform01(s);
}

static int uniform_int(uint64_t *s, int k) /* [0, k) */
{
    return (int)(uniform01(s) * k);
}

/* ---------------------------------------------------------------------------------------------
 * Loader. One set of worker threads runs "jobs" of independent tasks: first decoding every pair
 * (task = sample), then, one batch at a time, augmenting (task = slot in the batch). The batch
 * being prepared goes into an internal buffer while the caller computes on the previous one;
 * ps_loader_next copies it out and immediately starts the following batch.
 *
 * Threading is plain pthreads (not GMutex, which is a raw futex on Linux) so that helgrind and
 * ThreadSanitizer understand the synchronisation.
 * ------------------------------------------------------------------------------------------- */

typedef enum { JOB_DECODE, JOB_BATCH } job_kind;

typedef struct sample {
    ps_image *image; /* RGB, shorter side about 1.25 * the largest batch side (never enlarged) */
    ps_image *mask;  /* 0/255 */
} sample;

struct ps_loader {
    ps_loader_config cfg;
    const ps_dataset *ds; /* only while decoding */
    int n;
    sample *samples;

    /* Epoch state: written by the caller only while no job runs. */
    int epoch;
    int *order;      /* sample index per position in the epoch */
    int batches;     /* per epoch */
    int next_batch;  /* batch that ps_loader_next hands out next; == batches: epoch over */
    int job_batch;   /* batch in the buffer (or being prepared) */
    int job_count;   /* samples in it */
    int job_side;    /* its side */
    int max_side;    /* the largest side of any batch: the buffers' */
    float *buf_images, *buf_masks;

    /* Job queue, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    job_kind kind;
    int task_next, task_count, task_done;
    int quit;
    GError *decode_err;  /* from the lowest failing sample, so the message is deterministic */
    int decode_err_task;

    pthread_t *threads;
    int nthreads;
};

static void decode_task(ps_loader *l, int i, GError **err);
static void batch_task(ps_loader *l, int slot);

static void *worker_main(void *arg)
{
    ps_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && l->task_next >= l->task_count)
            pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->quit)
            break;
        int task = l->task_next++;
        job_kind kind = l->kind;
        pthread_mutex_unlock(&l->mu);

        GError *err = NULL;
        if (kind == JOB_DECODE)
            decode_task(l, task, &err);
        else
            batch_task(l, task);

        pthread_mutex_lock(&l->mu);
        if (err && (!l->decode_err || task < l->decode_err_task)) {
            g_clear_error(&l->decode_err);
            l->decode_err = err;
            l->decode_err_task = task;
        } else if (err) {
            g_error_free(err);
        }
        if (++l->task_done == l->task_count)
            pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void start_job(ps_loader *l, job_kind kind, int count)
{
    pthread_mutex_lock(&l->mu);
    l->kind = kind;
    l->task_next = 0;
    l->task_done = 0;
    l->task_count = count;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
}

static void wait_job(ps_loader *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->task_done < l->task_count)
        pthread_cond_wait(&l->done_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* Cache size: shorter side target = round(1.25 * size), which leaves room for the random crop
 * (down to 0.75 of the shorter side) without losing much detail; smaller images stay as they are. */
static ps_image *shrink(ps_image *im, int size)
{
    int target = (int)lround(1.25 * size);
    int shorter = MIN(im->w, im->h);
    if (shorter <= target)
        return im;
    double k = (double)target / shorter;
    int w = im->w == shorter ? target : MAX(1, (int)lround(im->w * k));
    int h = im->h == shorter ? target : MAX(1, (int)lround(im->h * k));
    ps_image *out = ps_image_new(w, h, im->c);
    ps_resize_bilinear_u8(im->data, im->w, im->h, im->w * im->c, im->c, out->data, w, h, w * im->c);
    ps_image_free(im);
    return out;
}

static void decode_task(ps_loader *l, int i, GError **err)
{
    const char *ipath = l->ds->image_paths[i], *mpath = l->ds->mask_paths[i];
    ps_image *image = ps_image_load_rgb(ipath, err);
    if (!image)
        return;
    ps_image *mask = ps_image_load_mask(mpath, err);
    if (!mask) {
        ps_image_free(image);
        return;
    }
    if (mask->w != image->w || mask->h != image->h) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "mask %s is %dx%d but image %s is %dx%d",
                    mpath, mask->w, mask->h, ipath, image->w, image->h);
        ps_image_free(image);
        ps_image_free(mask);
        return;
    }
    image = shrink(image, l->max_side);
    mask = shrink(mask, l->max_side);
    /* interpolation blurs the edge: binarise again */
    for (size_t p = 0; p < (size_t)mask->w * mask->h; p++)
        mask->data[p] = mask->data[p] >= 128 ? 255 : 0;
    l->samples[i] = (sample){image, mask};
}

/* Per-sample augmentation parameters, all drawn from the sample's own stream. */
typedef struct augment {
    int x0, y0, cw, ch;      /* crop window in the cached image (cw < 0: whole image) */
    int rot, hflip, vflip;   /* quarter turns, flips */
    float bright, contrast, sat;
    float cos_a, sin_a;      /* the free rotation (identity: 1, 0) */
    int hue_on;              /* --hue: apply the colour matrix below */
    float hue[9];            /* 3x3 colour matrix of the hue turn */
} augment;

/* Rotation of RGB by `radians` about the grey axis (1,1,1)/sqrt(3) (Rodrigues' formula): keeps
 * r + g + b, turns the chroma, so a reddish mucosa becomes orange or purple. */
static void hue_matrix(double radians, float m[9])
{
    const double c = cos(radians), k = (1 - c) / 3, q = sin(radians) / sqrt(3.0);
    const double rows[9] = {c + k, k - q, k + q, k + q, c + k, k - q, k - q, k + q, c + k};
    for (int i = 0; i < 9; i++)
        m[i] = (float)rows[i];
}

static augment draw_augment(const ps_loader *l, const sample *s, int index)
{
    augment a = {.cw = -1 /* whole image */, .bright = 1, .contrast = 1, .sat = 1, .cos_a = 1};
    if (!l->cfg.augment)
        return a;
    const ps_image *im = s->image;
    uint64_t rng = stream_seed(l->cfg.seed, l->epoch, (uint64_t)index);
    /* The window keeps the image's aspect ratio: inference squeezes the whole frame to a
     * square, so training sees the same distortion. */
    const int zero = l->cfg.crop_min == 0 && l->cfg.crop_max == 0;
    double scale = uniform(&rng, zero ? 0.75 : l->cfg.crop_min, zero ? 1.0 : l->cfg.crop_max);
    a.cw = MAX(1, (int)lround(scale * im->w));
    a.ch = MAX(1, (int)lround(scale * im->h));
    /* a window larger than the image starts before it (negative offset): the image lands at a
     * random place inside it */
    a.x0 = a.cw <= im->w ? uniform_int(&rng, im->w - a.cw + 1) : -uniform_int(&rng, a.cw - im->w + 1);
    a.y0 = a.ch <= im->h ? uniform_int(&rng, im->h - a.ch + 1) : -uniform_int(&rng, a.ch - im->h + 1);
    a.hflip = uniform01(&rng) < 0.5;
    a.vflip = uniform01(&rng) < 0.5;
    a.rot = uniform_int(&rng, 4);
    a.bright = (float)uniform(&rng, 0.8, 1.2);
    a.contrast = (float)uniform(&rng, 0.8, 1.2);
    a.sat = (float)uniform(&rng, 0.8, 1.2);
    /* drawn last and only when on, so runs without them see exactly the draws they always did */
    if (l->cfg.rotate_max > 0) {
        const double angle = uniform(&rng, -l->cfg.rotate_max, l->cfg.rotate_max) * G_PI / 180;
        a.cos_a = (float)cos(angle), a.sin_a = (float)sin(angle);
    }
    if ((a.hue_on = l->cfg.hue_max > 0))
        hue_matrix(uniform(&rng, -l->cfg.hue_max, l->cfg.hue_max) * G_PI / 180, a.hue);
    return a;
}

/* Source pixel (in the S x S resized crop) of output pixel (y, x): flips, then quarter turns. */
static int source_index(const augment *a, int S, int y, int x)
{
    int u = a->hflip ? S - 1 - x : x, v = a->vflip ? S - 1 - y : y;
    switch (a->rot) {
    case 1: return u * S + (S - 1 - v);
    case 2: return (S - 1 - v) * S + (S - 1 - u);
    case 3: return (S - 1 - u) * S + v;
    default: return v * S + u;
    }
}

static float clamp255(float v)
{
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

static float luma(const float *rgb)
{
    return 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
}

/* Colour jitter in the usual order (brightness, contrast around the mean grey, saturation
 * around each pixel's grey), clamping after each step. */
static void jitter(const augment *a, float mean_grey, float *rgb)
{
    for (int c = 0; c < 3; c++)
        rgb[c] = clamp255(rgb[c] * a->bright);
    for (int c = 0; c < 3; c++)
        rgb[c] = clamp255((rgb[c] - mean_grey) * a->contrast + mean_grey);
    float grey = luma(rgb);
    for (int c = 0; c < 3; c++)
        rgb[c] = clamp255(grey + (rgb[c] - grey) * a->sat);
    if (a->hue_on) {
        const float r = rgb[0], g = rgb[1], b = rgb[2];
        for (int c = 0; c < 3; c++)
            rgb[c] = clamp255(a->hue[3 * c] * r + a->hue[3 * c + 1] * g + a->hue[3 * c + 2] * b);
    }
}

/* The window (x0, y0, cw, ch) of an image with c channels, turned by the sample's free rotation
 * about its centre and resampled to S x S in one bilinear pass (half-pixel centres, as
 * ps_resize_bilinear_u8), black wherever the turned square leaves the window or the image. */
static void turned_window(const augment *a, const ps_image *im, int x0, int y0, int cw, int ch, int S,
                          uint8_t *dst)
{
    const int c = im->c, xa = MAX(0, x0), xb = MIN(im->w, x0 + cw), ya = MAX(0, y0), yb = MIN(im->h, y0 + ch);
    const float kx = (float)cw / S, ky = (float)ch / S, half = S * 0.5f;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            /* inverse map: the point of the unturned square that lands on (x, y), then the window's */
            const float dx = x + 0.5f - half, dy = y + 0.5f - half;
            const float sx = (a->cos_a * dx + a->sin_a * dy + half) * kx - 0.5f + x0;
            const float sy = (-a->sin_a * dx + a->cos_a * dy + half) * ky - 0.5f + y0;
            const int ix = (int)floorf(sx), iy = (int)floorf(sy);
            const float fx = sx - ix, fy = sy - iy;
            for (int k = 0; k < c; k++) {
                float v = 0;
                for (int j = 0; j < 4; j++) {
                    const int xx = ix + (j & 1), yy = iy + (j >> 1);
                    if (xx >= xa && xx < xb && yy >= ya && yy < yb)
                        v += ((j & 1) ? fx : 1 - fx) * ((j >> 1) ? fy : 1 - fy) *
                             im->data[((size_t)yy * im->w + xx) * c + k];
                }
                dst[((size_t)y * S + x) * c + k] = (uint8_t)lrintf(v);
            }
        }
}

/* Mean grey after the brightness step, the pivot of the contrast step. */
static float mean_grey_after_brightness(const augment *a, const uint8_t *img, int npix)
{
    double sum = 0;
    for (int p = 0; p < npix; p++) {
        float rgb[3];
        for (int c = 0; c < 3; c++)
            rgb[c] = clamp255(img[p * 3 + c] * a->bright);
        sum += luma(rgb);
    }
    return (float)(sum / npix);
}

/* The window (x0, y0, cw, ch) of an image with c channels, black where it leaves the image. */
static uint8_t *padded_window(const ps_image *im, int x0, int y0, int cw, int ch)
{
    const int c = im->c;
    uint8_t *win = g_malloc0((size_t)cw * ch * c);
    for (int y = MAX(0, y0); y < MIN(im->h, y0 + ch); y++) {
        int xa = MAX(0, x0), xb = MIN(im->w, x0 + cw);
        if (xa < xb)
            memcpy(win + ((size_t)(y - y0) * cw + (xa - x0)) * c, im->data + ((size_t)y * im->w + xa) * c,
                   (size_t)(xb - xa) * c);
    }
    return win;
}

/* Copy-paste: maybe pastes the polyp of another sample (its whole image resized to S x S, maybe
 * mirrored) into the sample's S x S image and mask, at a random place where its bounding box
 * fits. After the crop, zoom-out and free turn (so it may land on black surround), before the
 * flips, quarter turns and colour jitter, which apply to it too. */
static void paste_polyp(const ps_loader *l, int index, int S, uint8_t *img, uint8_t *msk)
{
    uint64_t rng = stream_seed(l->cfg.seed, l->epoch, PASTE_STREAM(index));
    if (l->n < 2 || !(uniform01(&rng) < l->cfg.copy_paste))
        return;
    int donor = uniform_int(&rng, l->n - 1);
    donor += donor >= index; /* any sample but this one */
    const int mirror = uniform01(&rng) < 0.5;
    const ps_image *dim = l->samples[donor].image, *dmk = l->samples[donor].mask;
    uint8_t *di = g_malloc((size_t)S * S * 3), *dm = g_malloc((size_t)S * S);
    ps_resize_bilinear_u8(dim->data, dim->w, dim->h, dim->w * 3, 3, di, S, S, S * 3);
    ps_resize_bilinear_u8(dmk->data, dmk->w, dmk->h, dmk->w, 1, dm, S, S, S);
    int x0 = S, y0 = S, x1 = -1, y1 = -1; /* the donor polyp's bounding box */
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (dm[y * S + x] >= 128)
                x0 = MIN(x0, x), x1 = MAX(x1, x), y0 = MIN(y0, y), y1 = MAX(y1, y);
    if (x1 >= 0) {
        const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
        const int ox = uniform_int(&rng, S - bw + 1), oy = uniform_int(&rng, S - bh + 1);
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++) {
                const int sx = mirror ? x1 - x : x0 + x, src = (y0 + y) * S + sx, dst = (oy + y) * S + ox + x;
                if (dm[src] < 128)
                    continue;
                memcpy(img + (size_t)dst * 3, di + (size_t)src * 3, 3);
                msk[dst] = 255;
            }
    }
    g_free(di);
    g_free(dm);
}

static void batch_task(ps_loader *l, int slot)
{
    const int S = l->job_side, npix = S * S;
    int index = l->order[l->job_batch * l->cfg.batch + slot];
    const sample *s = &l->samples[index];
    const ps_image *im = s->image, *mk = s->mask;
    augment a = draw_augment(l, s, index);

    /* crop (or the whole image) resized to S x S, turned in the same pass when --rotate is on */
    int x0 = a.x0, y0 = a.y0, cw = a.cw < 0 ? im->w : a.cw, ch = a.cw < 0 ? im->h : a.ch;
    uint8_t *img = g_malloc((size_t)npix * 3), *msk = g_malloc((size_t)npix);
    if (a.sin_a != 0) {
        turned_window(&a, im, x0, y0, cw, ch, S, img);
        turned_window(&a, mk, x0, y0, cw, ch, S, msk);
    } else if (x0 >= 0 && y0 >= 0 && x0 + cw <= im->w && y0 + ch <= im->h) {
        ps_resize_bilinear_u8(im->data + ((size_t)y0 * im->w + x0) * 3, cw, ch, im->w * 3, 3,
                              img, S, S, S * 3);
        ps_resize_bilinear_u8(mk->data + (size_t)y0 * mk->w + x0, cw, ch, mk->w, 1, msk, S, S, S);
    } else { /* zoomed out */
        uint8_t *wi = padded_window(im, x0, y0, cw, ch), *wm = padded_window(mk, x0, y0, cw, ch);
        ps_resize_bilinear_u8(wi, cw, ch, cw * 3, 3, img, S, S, S * 3);
        ps_resize_bilinear_u8(wm, cw, ch, cw, 1, msk, S, S, S);
        g_free(wi);
        g_free(wm);
    }

    if (l->cfg.augment && l->cfg.copy_paste > 0)
        paste_polyp(l, index, S, img, msk);

    float *out = l->buf_images + (size_t)slot * 3 * npix;
    float *out_mask = l->buf_masks + (size_t)slot * npix;
    const float *mean = l->cfg.mean, *std = l->cfg.std;
    float mean_grey = l->cfg.augment ? mean_grey_after_brightness(&a, img, npix) : 0;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            int src = source_index(&a, S, y, x), dst = y * S + x;
            float rgb[3] = {img[src * 3], img[src * 3 + 1], img[src * 3 + 2]};
            if (l->cfg.augment)
                jitter(&a, mean_grey, rgb);
            for (int c = 0; c < 3; c++)
                out[c * npix + dst] = (rgb[c] / 255.0f - mean[c]) / std[c];
            out_mask[dst] = msk[src] >= 128 ? 1.0f : 0.0f; /* bilinear value >= 0.5 */
        }
    }
    g_free(img);
    g_free(msk);
}

static gboolean check_config(const ps_loader_config *cfg, int n, GError **err)
{
    const char *bad = NULL;
    if (cfg->size < 1)
        bad = "size must be >= 1";
    else if (cfg->batch < 1)
        bad = "batch must be >= 1";
    else if (!(cfg->std[0] > 0 && cfg->std[1] > 0 && cfg->std[2] > 0))
        bad = "std must be > 0";
    else if (!(cfg->crop_min == 0 && cfg->crop_max == 0) &&
             !(cfg->crop_min > 0 && cfg->crop_min <= cfg->crop_max && cfg->crop_max <= 4))
        bad = "crop scales must satisfy 0 < min <= max <= 4";
    else if (!(cfg->rotate_max >= 0 && cfg->rotate_max <= 180) || !(cfg->hue_max >= 0 && cfg->hue_max <= 180))
        bad = "rotation and hue ranges must be 0..180 degrees";
    else if (!(cfg->copy_paste >= 0 && cfg->copy_paste <= 1))
        bad = "copy-paste is a probability, 0..1";
    else if (cfg->n_sizes < 0 || cfg->n_sizes > PS_LOADER_MAX_SIZES)
        bad = "between 0 and " G_STRINGIFY(PS_LOADER_MAX_SIZES) " batch sides (sizes)";
    else if (cfg->shuffle && n < cfg->batch)
        bad = "fewer samples than one batch, and shuffled epochs drop incomplete batches";
    for (int i = 0; !bad && i < cfg->n_sizes; i++)
        if (cfg->sizes[i] < 1)
            bad = "sizes must be >= 1";
    if (bad)
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL, "data loader: %s (%d samples, batch %d, size %d)",
                    bad, n, cfg->batch, cfg->size);
    return bad == NULL;
}

ps_loader *ps_loader_new(const ps_dataset *ds, const ps_loader_config *cfg, GError **err)
{
    if (!check_config(cfg, ds->n, err))
        return NULL;
    ps_loader *l = g_new0(ps_loader, 1);
    l->cfg = *cfg;
    l->n = ds->n;
    l->samples = g_new0(sample, l->n);
    l->order = g_new(int, l->n);
    l->batches = cfg->shuffle ? l->n / cfg->batch : (l->n + cfg->batch - 1) / cfg->batch;
    l->next_batch = l->batches; /* no epoch started yet */
    l->max_side = cfg->size;
    for (int i = 0; i < cfg->n_sizes; i++)
        l->max_side = MAX(l->max_side, cfg->sizes[i]);
    size_t npix = (size_t)l->max_side * l->max_side;
    l->buf_images = g_try_malloc(sizeof(float) * cfg->batch * 3 * npix);
    l->buf_masks = g_try_malloc(sizeof(float) * cfg->batch * npix);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    const int wanted = MAX(1, cfg->threads);
    l->threads = g_new(pthread_t, wanted);
    if (!l->buf_images || !l->buf_masks) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOMEM,
                    "data loader: out of memory for a batch of %d at %dx%d (%.1f GB); use a smaller --batch or --size",
                    cfg->batch, l->max_side, l->max_side, 4.0 * cfg->batch * npix * sizeof(float) / 1e9);
        ps_loader_free(l);
        return NULL;
    }
    /* run with the workers the system gives (as the thread pool does); none is an error */
    int rc = 0;
    while (l->nthreads < wanted && (rc = pthread_create(&l->threads[l->nthreads], NULL, worker_main, l)) == 0)
        l->nthreads++;
    if (l->nthreads == 0) {
        g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_NOMEM, "data loader: cannot start a worker thread: %s",
                    g_strerror(rc));
        ps_loader_free(l);
        return NULL;
    }

    l->ds = ds;
    start_job(l, JOB_DECODE, l->n);
    wait_job(l);
    l->ds = NULL;
    if (l->decode_err) {
        g_propagate_error(err, l->decode_err);
        l->decode_err = NULL;
        ps_loader_free(l);
        return NULL;
    }
    return l;
}

void ps_loader_free(ps_loader *l)
{
    if (!l)
        return;
    /* workers finish the task in hand and leave the rest of the job */
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nthreads; t++)
        pthread_join(l->threads[t], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    for (int i = 0; i < l->n; i++) {
        ps_image_free(l->samples[i].image);
        ps_image_free(l->samples[i].mask);
    }
    g_free(l->samples);
    g_free(l->order);
    g_free(l->buf_images);
    g_free(l->buf_masks);
    g_free(l->threads);
    g_free(l);
}

gboolean ps_crop_scale_parse(const char *s, float *crop_min, float *crop_max)
{
    double lo, hi;
    if (!s || sscanf(s, "%lf,%lf", &lo, &hi) != 2 || !(lo > 0) || lo > hi || hi > 4)
        return FALSE;
    *crop_min = (float)lo, *crop_max = (float)hi;
    return TRUE;
}

int ps_loader_batches_per_epoch(const ps_loader *l)
{
    return l->batches;
}

int ps_loader_max_side(const ps_loader *l)
{
    return l->max_side;
}

static int side_of_batch(const ps_loader *l, int b)
{
    if (l->cfg.n_sizes == 0)
        return l->cfg.size;
    uint64_t rng = stream_seed(l->cfg.seed, l->epoch, SIDE_STREAM(b));
    return l->cfg.sizes[uniform_int(&rng, l->cfg.n_sizes)];
}

static void start_batch(ps_loader *l, int b)
{
    l->job_batch = b;
    l->job_count = MIN(l->cfg.batch, l->n - b * l->cfg.batch);
    l->job_side = side_of_batch(l, b);
    start_job(l, JOB_BATCH, l->job_count);
}

void ps_loader_start_epoch(ps_loader *l, int epoch)
{
    wait_job(l); /* a batch of the previous epoch may still be in preparation */
    l->epoch = epoch;
    for (int i = 0; i < l->n; i++)
        l->order[i] = i;
    if (l->cfg.shuffle) {
        uint64_t rng = stream_seed(l->cfg.seed, epoch, SHUFFLE_STREAM);
        for (int i = l->n - 1; i > 0; i--) {
            int j = uniform_int(&rng, i + 1);
            int t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->next_batch = 0;
    if (l->batches > 0)
        start_batch(l, 0);
}

/* `images` and `masks` must be allocated for a full batch: (batch,3,S,S) and (batch,1,S,S).
 * ->n is set to the number of samples delivered, which is smaller than batch only for the last
 * batch of an unshuffled epoch; the rest of the tensor is left as it was. */
gboolean ps_loader_next(ps_loader *l, ps_tensor *images, ps_tensor *masks)
{
    g_return_val_if_fail(images->c == 3 && masks->c == 1, FALSE);
    if (l->next_batch >= l->batches)
        return FALSE;
    wait_job(l);
    const int S = l->job_side;
    size_t npix = (size_t)S * S, count = (size_t)l->job_count;
    memcpy(images->data, l->buf_images, sizeof(float) * count * 3 * npix);
    memcpy(masks->data, l->buf_masks, sizeof(float) * count * npix);
    images->n = masks->n = l->job_count;
    images->h = images->w = masks->h = masks->w = S;
    if (++l->next_batch < l->batches)
        start_batch(l, l->next_batch);
    return TRUE;
}
