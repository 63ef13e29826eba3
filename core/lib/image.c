#include "image.h"
#include "output_path.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* jpeglib.h needs size_t and FILE declared first. */
#include <jpeglib.h>
#include <jerror.h>

/* Far above any endoscopy frame; stops a forged header from asking for gigabytes. */
#define MAX_SIDE 16384

G_DEFINE_QUARK(ps-image-error-quark, ps_image_error)

enum { IMAGE_ERROR_FORMAT, IMAGE_ERROR_IO };

ps_image *ps_image_new(int w, int h, int c)
{
    g_return_val_if_fail(w > 0 && h > 0 && c > 0, NULL);
    ps_image *im = g_new0(ps_image, 1);
    im->w = w, im->h = h, im->c = c;
    im->data = g_malloc0_n((gsize)w * h, (gsize)c);
    return im;
}

void ps_image_free(ps_image *im)
{
    if (!im)
        return;
    g_free(im->data);
    g_free(im);
}

static gboolean check_size(const char *path, long w, long h, GError **err)
{
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: image size %ldx%ld is not supported "
                    "(each side must be 1..%d pixels)", path, w, h, MAX_SIDE);
        return FALSE;
    }
    return TRUE;
}

/* ---- JPEG ---- */

typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* libjpeg only warns about a truncated file (and pads it with grey); treat that as the error it
 * is. Other corrupt-data warnings are tolerated, as other decoders do, but not printed. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        jpeg_on_error(cinfo);
}

/* State the error handler changes lives in the caller's frame, so it is well defined after
 * longjmp (C only guarantees that for locals of the setjmp caller if they are volatile). */
static ps_image *decode_jpeg_with(struct jpeg_decompress_struct *cinfo, jpeg_err *jerr,
                                  const uint8_t *buf, size_t len, const char *path, GError **err)
{
    ps_image *volatile im = NULL;
    cinfo->err = jpeg_std_error(&jerr->pub);
    jerr->pub.error_exit = jpeg_on_error;
    jerr->pub.emit_message = jpeg_on_message;
    if (setjmp(jerr->jmp)) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: cannot decode JPEG: %s", path, jerr->msg);
        jpeg_destroy_decompress(cinfo);
        ps_image_free(im);
        return NULL;
    }
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, buf, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    if (!check_size(path, (long)cinfo->image_width, (long)cinfo->image_height, err)) {
        jpeg_destroy_decompress(cinfo);
        return NULL;
    }
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        /* print files, not video frames: libjpeg has no CMYK -> RGB, and a guess would be wrong */
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: CMYK JPEG is not supported; save it as RGB", path);
        jpeg_destroy_decompress(cinfo);
        return NULL;
    }
    cinfo->out_color_space = JCS_RGB; /* libjpeg-turbo also expands greyscale */
    jpeg_start_decompress(cinfo);
    im = ps_image_new((int)cinfo->output_width, (int)cinfo->output_height, 3);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = im->data + (size_t)cinfo->output_scanline * im->w * 3;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    jpeg_destroy_decompress(cinfo);
    return im;
}

static ps_image *decode_jpeg(const uint8_t *buf, size_t len, const char *path, GError **err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    return decode_jpeg_with(&cinfo, &jerr, buf, len, path, err);
}

/* ---- PNG ---- */

typedef struct png_ctx {
    const uint8_t *buf;
    size_t len, pos;
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    g_strlcpy(ctx->msg, msg, sizeof ctx->msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png G_GNUC_UNUSED, png_const_charp msg G_GNUC_UNUSED)
{
    /* Ancillary-chunk trouble (bad CRC, unknown profile): the pixels are still fine. */
}

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->len - ctx->pos)
        png_error(png, "file is truncated");
    memcpy(out, ctx->buf + ctx->pos, n);
    ctx->pos += n;
}

/* Every PNG flavour becomes 8-bit RGB: palette and low-bit grey expanded, 16-bit scaled, alpha
 * dropped, grey replicated; interlaced images are de-interlaced by libpng. */
static void png_request_rgb8(png_structp png, png_infop info)
{
    png_set_palette_to_rgb(png);
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_scale_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

/* `ctx` lives in the caller's frame for the same reason as in decode_jpeg_with. */
static ps_image *decode_png_with(png_ctx *ctx, const char *path, GError **err)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    ps_image *volatile im = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_IO, "%s: out of memory for the PNG decoder", path);
        png_destroy_read_struct(&png, NULL, NULL);
        return NULL;
    }
    if (setjmp(png_jmpbuf(png))) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: cannot decode PNG: %s", path, ctx->msg);
        png_destroy_read_struct(&png, &info, NULL);
        g_free(rows);
        ps_image_free(im);
        return NULL;
    }
    png_set_read_fn(png, ctx, png_read_mem);
    png_read_info(png, info);
    if (!check_size(path, (long)png_get_image_width(png, info), (long)png_get_image_height(png, info), err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return NULL;
    }
    png_request_rgb8(png, info);
    im = ps_image_new((int)png_get_image_width(png, info), (int)png_get_image_height(png, info), 3);
    if (png_get_rowbytes(png, info) != (size_t)im->w * 3)
        png_error(png, "unexpected row size after conversion to RGB");
    rows = g_new(png_bytep, im->h);
    for (int y = 0; y < im->h; y++)
        rows[y] = im->data + (size_t)y * im->w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    g_free(rows);
    return im;
}

static ps_image *decode_png(const uint8_t *buf, size_t len, const char *path, GError **err)
{
    png_ctx ctx = {.buf = buf, .len = len};
    return decode_png_with(&ctx, path, err);
}

/* ---- loading ---- */

ps_image *ps_image_load_rgb(const char *path, GError **err)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    char *buf;
    gsize len;
    GError *ioerr = NULL;
    if (!g_file_get_contents(path, &buf, &len, &ioerr)) {
        /* GLib's message already names the file. */
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_IO, "%s", ioerr->message);
        g_error_free(ioerr);
        return NULL;
    }
    const uint8_t *b = (const uint8_t *)buf;
    ps_image *im = NULL;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        im = decode_jpeg(b, len, path, err);
    else if (len >= 8 && memcmp(b, png_magic, 8) == 0)
        im = decode_png(b, len, path, err);
    else
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: not a JPEG or PNG file%s", path,
                    len == 0 ? " (empty)" : "");
    g_free(buf);
    return im;
}

ps_image *ps_image_load_mask(const char *path, GError **err)
{
    ps_image *rgb = ps_image_load_rgb(path, err);
    if (!rgb)
        return NULL;
    ps_image *m = ps_image_new(rgb->w, rgb->h, 1);
    size_t n = (size_t)rgb->w * rgb->h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgb->data + 3 * i;
        /* Integer luma x1000: weights sum to 1000, so grey g gives exactly 1000 g. */
        unsigned luma = 299u * p[0] + 587u * p[1] + 114u * p[2];
        m->data[i] = luma >= 128u * 1000u ? 255 : 0;
    }
    ps_image_free(rgb);
    return m;
}

/* ---- PNG writing ---- */

/* On failure copies libpng's reason into ctx->msg. */
static gboolean encode_png(FILE *fp, const ps_image *im, png_ctx *ctx)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        g_strlcpy(ctx->msg, "out of memory for the PNG encoder", sizeof ctx->msg);
        png_destroy_write_struct(&png, NULL);
        return FALSE;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        g_free(rows);
        return FALSE;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8,
                 im->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = g_new(png_bytep, im->h);
    for (int y = 0; y < im->h; y++)
        rows[y] = im->data + (size_t)y * im->w * im->c;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    g_free(rows);
    return TRUE;
}

/* Encodes into the open temporary file, flushes it to disk and closes it (always). */
static gboolean write_png_fd(int fd, const ps_image *im, png_ctx *ctx)
{
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        g_strlcpy(ctx->msg, g_strerror(errno), sizeof ctx->msg);
        close(fd);
        return FALSE;
    }
    gboolean ok = encode_png(fp, im, ctx);
    if (ok && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) {
        g_strlcpy(ctx->msg, g_strerror(errno), sizeof ctx->msg);
        ok = FALSE;
    }
    if (fclose(fp) != 0 && ok) {
        g_strlcpy(ctx->msg, g_strerror(errno), sizeof ctx->msg);
        ok = FALSE;
    }
    return ok;
}

gboolean ps_image_save_png(const char *path, const ps_image *im, GError **err)
{
    if (!im || (im->c != 1 && im->c != 3)) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_FORMAT, "%s: can only write 1- or 3-channel images", path);
        return FALSE;
    }
    if (!check_size(path, im->w, im->h, err))
        return FALSE;
    char *target = ps_output_target(path, err);
    if (!target)
        return FALSE;
    /* Temporary file in the same folder, renamed over the target once complete and synced. */
    char *tmp = g_strdup_printf("%s.tmp-XXXXXX", target);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_IO, "%s: cannot create a temporary file: %s", path,
                    g_strerror(errno));
        g_free(tmp);
        g_free(target);
        return FALSE;
    }
    png_ctx ctx = {0};
    gboolean ok = write_png_fd(fd, im, &ctx);
    if (ok && g_rename(tmp, target) != 0) {
        g_snprintf(ctx.msg, sizeof ctx.msg, "cannot rename %s over %s: %s", tmp, target, g_strerror(errno));
        ok = FALSE;
    }
    if (!ok) {
        g_set_error(err, PS_IMAGE_ERROR, IMAGE_ERROR_IO, "%s: writing PNG failed: %s", path, ctx.msg);
        g_unlink(tmp);
    }
    g_free(tmp);
    g_free(target);
    return ok;
}

/* ---- bilinear resizing ---- */

ps_axis_map ps_axis_map_new(int s, int d, int step)
{
    ps_axis_map m = {g_new(int, d), g_new(int, d), g_new(float, d)};
    for (int i = 0; i < d; i++) {
        double x = (i + 0.5) * s / d - 0.5;
        x = CLAMP(x, 0.0, (double)(s - 1));
        int x0 = (int)x;
        m.i0[i] = x0 * step;
        m.i1[i] = MIN(x0 + 1, s - 1) * step;
        m.w1[i] = (float)(x - x0);
    }
    return m;
}

void ps_axis_map_free(ps_axis_map *m)
{
    g_clear_pointer(&m->i0, g_free);
    g_clear_pointer(&m->i1, g_free);
    g_clear_pointer(&m->w1, g_free);
}

/* Rows interpolated horizontally, cached by parity: the two rows one output row needs are
 * y0 and y0 + 1 (or the same row), so they never evict each other, and consecutive output
 * rows mostly reuse them. */
typedef struct row_cache {
    float *buf[2];
    int row[2];
} row_cache;

static row_cache row_cache_new(size_t n)
{
    return (row_cache){{g_new(float, n), g_new(float, n)}, {-1, -1}};
}

static void row_cache_free(row_cache *rc)
{
    g_free(rc->buf[0]);
    g_free(rc->buf[1]);
}

static const float *row_u8(row_cache *rc, const uint8_t *src, int sstride, int y, const ps_axis_map *mx,
                           int dw, int c)
{
    float *out = rc->buf[y & 1];
    if (rc->row[y & 1] == y)
        return out;
    rc->row[y & 1] = y;
    const uint8_t *s = src + (size_t)y * sstride;
    for (int x = 0; x < dw; x++) {
        const uint8_t *a = s + mx->i0[x], *b = s + mx->i1[x];
        float w = mx->w1[x];
        for (int k = 0; k < c; k++)
            out[x * c + k] = a[k] + w * (b[k] - a[k]);
    }
    return out;
}

static const float *row_f32(row_cache *rc, const float *src, int sw, int y, const ps_axis_map *mx, int dw)
{
    float *out = rc->buf[y & 1];
    if (rc->row[y & 1] == y)
        return out;
    rc->row[y & 1] = y;
    const float *s = src + (size_t)y * sw;
    for (int x = 0; x < dw; x++) {
        float a = s[mx->i0[x]], b = s[mx->i1[x]];
        out[x] = a + mx->w1[x] * (b - a);
    }
    return out;
}

struct ps_resize_plan {
    int sw, sh, c, dw, dh;
    ps_axis_map mx, my;
    row_cache rc;
};

ps_resize_plan *ps_resize_plan_reuse(ps_resize_plan *reuse, int sw, int sh, int c, int dw, int dh)
{
    if (!(sw > 0 && sh > 0 && dw > 0 && dh > 0 && c > 0)) {
        g_critical("ps_resize_plan_reuse: sizes %dx%d -> %dx%d, %d channels", sw, sh, dw, dh, c);
        ps_resize_plan_free(reuse);
        return NULL;
    }
    if (reuse && reuse->sw == sw && reuse->sh == sh && reuse->c == c && reuse->dw == dw && reuse->dh == dh)
        return reuse;
    ps_resize_plan_free(reuse);
    ps_resize_plan *p = g_new(ps_resize_plan, 1);
    *p = (ps_resize_plan){sw, sh, c, dw, dh, ps_axis_map_new(sw, dw, c), ps_axis_map_new(sh, dh, 1),
                          row_cache_new((size_t)dw * c)};
    return p;
}

void ps_resize_plan_free(ps_resize_plan *p)
{
    if (!p)
        return;
    row_cache_free(&p->rc);
    ps_axis_map_free(&p->mx);
    ps_axis_map_free(&p->my);
    g_free(p);
}

void ps_resize_plan_run(ps_resize_plan *p, const uint8_t *src, int sstride, uint8_t *dst, int dstride)
{
    g_return_if_fail(p != NULL);
    const size_t n = (size_t)p->dw * p->c;
    p->rc.row[0] = p->rc.row[1] = -1; /* a new image */
    for (int y = 0; y < p->dh; y++) {
        const float *r0 = row_u8(&p->rc, src, sstride, p->my.i0[y], &p->mx, p->dw, p->c);
        const float *r1 = row_u8(&p->rc, src, sstride, p->my.i1[y], &p->mx, p->dw, p->c);
        float w = p->my.w1[y];
        uint8_t *d = dst + (size_t)y * dstride;
        for (size_t i = 0; i < n; i++) {
            float v = r0[i] + w * (r1[i] - r0[i]) + 0.5f;
            d[i] = (uint8_t)CLAMP(v, 0.0f, 255.0f);
        }
    }
}

void ps_resize_bilinear_u8(const uint8_t *src, int sw, int sh, int sstride, int c,
                           uint8_t *dst, int dw, int dh, int dstride)
{
    g_return_if_fail(sw > 0 && sh > 0 && dw > 0 && dh > 0 && c > 0);
    ps_resize_plan *p = ps_resize_plan_reuse(NULL, sw, sh, c, dw, dh);
    ps_resize_plan_run(p, src, sstride, dst, dstride);
    ps_resize_plan_free(p);
}

void ps_resize_bilinear_f32(const float *src, int sw, int sh, float *dst, int dw, int dh)
{
    g_return_if_fail(sw > 0 && sh > 0 && dw > 0 && dh > 0);
    ps_axis_map mx = ps_axis_map_new(sw, dw, 1), my = ps_axis_map_new(sh, dh, 1);
    row_cache rc = row_cache_new((size_t)dw);
    for (int y = 0; y < dh; y++) {
        const float *r0 = row_f32(&rc, src, sw, my.i0[y], &mx, dw);
        const float *r1 = row_f32(&rc, src, sw, my.i1[y], &mx, dw);
        float w = my.w1[y];
        float *d = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++)
            d[x] = r0[x] + w * (r1[x] - r0[x]);
    }
    row_cache_free(&rc);
    ps_axis_map_free(&mx);
    ps_axis_map_free(&my);
}
