/* Image decoding/encoding (PNG flavours and JPEG made here with libpng/libjpeg), error handling,
 * mask thresholding and bilinear resizing. */
#include <glib/gstdio.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jpeglib.h>
#include "../core/lib/image.h"
#include "../core/lib/preprocess.h"
#include "test_util.h"

static char *tmpdir;

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static ps_image *random_image(int w, int h, int c, guint32 seed)
{
    GRand *r = g_rand_new_with_seed(seed);
    ps_image *im = ps_image_new(w, h, c);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        im->data[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    g_rand_free(r);
    return im;
}

static ps_image *load_ok(const char *path)
{
    GError *err = NULL;
    ps_image *im = ps_image_load_rgb(path, &err);
    g_assert_no_error(err);
    g_assert_nonnull(im);
    g_assert_cmpint(im->c, ==, 3);
    return im;
}

/* Loading must fail with a message naming the file and containing `word`. */
static void expect_load_error(const char *path, const char *word)
{
    GError *err = NULL;
    ps_image *im = ps_image_load_rgb(path, &err);
    g_assert_null(im);
    g_assert_nonnull(err);
    g_assert_true(err->domain == PS_IMAGE_ERROR);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, path));
    if (word)
        g_assert_nonnull(strstr(err->message, word));
    g_clear_error(&err);
    im = ps_image_load_mask(path, &err);
    g_assert_null(im);
    g_assert_nonnull(err);
    g_error_free(err);
}

static int count_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    int n = 0;
    while (g_dir_read_name(d))
        n++;
    g_dir_close(d);
    return n;
}

/* ---- files made directly with libpng / libjpeg ---- */

typedef struct png_spec {
    int w, h, depth, color, interlace;
    const uint8_t *rows; /* packed rows as PNG stores them (16-bit samples big-endian) */
    const png_color *palette;
    int n_palette;
} png_spec;

static void write_png_raw(const char *path, const png_spec *s)
{
    FILE *fp = fopen(path, "wb");
    g_assert_nonnull(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    g_assert_nonnull(info);
    if (setjmp(png_jmpbuf(png)))
        g_error("libpng failed writing %s", path);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette)
        png_set_PLTE(png, info, s->palette, s->n_palette);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->h; y++)
            png_write_row(png, s->rows + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    g_assert_cmpint(fclose(fp), ==, 0);
}

static void write_jpeg_raw(const char *path, int w, int h, int comps, const uint8_t *pixels, int quality)
{
    FILE *fp = fopen(path, "wb");
    g_assert_nonnull(fp);
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, fp);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = comps;
    cinfo.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)pixels + (size_t)cinfo.next_scanline * w * comps;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    g_assert_cmpint(fclose(fp), ==, 0);
}

/* 64x48 with four flat quadrants: red, green, blue, grey. */
static const uint8_t quadrant_rgb[4][3] = {{220, 30, 30}, {30, 200, 40}, {20, 40, 210}, {128, 128, 128}};

static uint8_t *quadrant_pixels(int w, int h)
{
    uint8_t *p = g_new(uint8_t, (size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(p + ((size_t)y * w + x) * 3, quadrant_rgb[(y >= h / 2) * 2 + (x >= w / 2)], 3);
    return p;
}

static char *make_jpeg(const char *name)
{
    uint8_t *p = quadrant_pixels(64, 48);
    char *path = tmp_path(name);
    write_jpeg_raw(path, 64, 48, 3, p, 95);
    g_free(p);
    return path;
}

static char *make_noise_png(const char *name)
{
    ps_image *im = random_image(40, 30, 3, 5);
    char *path = tmp_path(name);
    GError *err = NULL;
    g_assert_true(ps_image_save_png(path, im, &err));
    ps_image_free(im);
    return path;
}

/* ---- PNG ---- */

static void test_png_round_trip_rgb(void)
{
    ps_image *im = random_image(37, 23, 3, 1);
    char *path = tmp_path("rgb.png");
    GError *err = NULL;
    g_assert_true(ps_image_save_png(path, im, &err));
    g_assert_no_error(err);
    ps_image *back = load_ok(path);
    g_assert_cmpint(back->w, ==, 37);
    g_assert_cmpint(back->h, ==, 23);
    g_assert_cmpmem(back->data, 37 * 23 * 3, im->data, 37 * 23 * 3);
    ps_image_free(back);
    ps_image_free(im);
    g_free(path);
}

static void test_png_round_trip_grey(void)
{
    ps_image *im = random_image(19, 11, 1, 2);
    char *path = tmp_path("grey.png");
    GError *err = NULL;
    g_assert_true(ps_image_save_png(path, im, &err));
    ps_image *back = load_ok(path);
    g_assert_cmpint(back->w, ==, 19);
    g_assert_cmpint(back->h, ==, 11);
    for (int i = 0; i < 19 * 11; i++)
        for (int k = 0; k < 3; k++)
            g_assert_cmpint(back->data[3 * i + k], ==, im->data[i]);
    ps_image *mask = ps_image_load_mask(path, &err);
    g_assert_no_error(err);
    g_assert_cmpint(mask->c, ==, 1);
    for (int i = 0; i < 19 * 11; i++)
        g_assert_cmpint(mask->data[i], ==, im->data[i] >= 128 ? 255 : 0);
    ps_image_free(mask);
    ps_image_free(back);
    ps_image_free(im);
    g_free(path);
}

/* 8-bit grey, 1-bit grey, grey+alpha: each pixel becomes (g, g, g). */
static void test_png_grey_variants(void)
{
    const int w = 9, h = 3;
    uint8_t grey[27], ga[54], bits[6];
    for (int i = 0; i < w * h; i++) {
        grey[i] = (uint8_t)(i * 9);
        ga[2 * i] = grey[i];
        ga[2 * i + 1] = (uint8_t)(255 - i); /* alpha, dropped */
    }
    /* 1-bit rows: 9 pixels -> 2 bytes, pattern 1,0,1,0,... */
    for (int y = 0; y < h; y++)
        bits[2 * y] = 0xaa, bits[2 * y + 1] = 0x80;
    const png_spec specs[] = {
        {w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, grey, NULL, 0},
        {w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, NULL, 0},
        {w, h, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, bits, NULL, 0},
    };
    char *path = tmp_path("grey-variant.png");
    for (size_t s = 0; s < G_N_ELEMENTS(specs); s++) {
        write_png_raw(path, &specs[s]);
        ps_image *im = load_ok(path);
        g_assert_cmpint(im->w, ==, w);
        g_assert_cmpint(im->h, ==, h);
        for (int i = 0; i < w * h; i++) {
            int want = specs[s].depth == 1 ? ((i % w) % 2 == 0 ? 255 : 0) : grey[i];
            for (int k = 0; k < 3; k++)
                g_assert_cmpint(im->data[3 * i + k], ==, want);
        }
        ps_image_free(im);
    }
    g_free(path);
}

static void test_png_palette(void)
{
    static const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 128, 255}, {10, 20, 30}};
    const int w = 5, h = 2;
    uint8_t idx[10], packed[4];
    for (int i = 0; i < w * h; i++)
        idx[i] = (uint8_t)((i * 3) % 4);
    /* The same indices at 2 bits per pixel: 5 pixels -> 2 bytes per row. */
    for (int y = 0; y < h; y++) {
        uint8_t *row = packed + 2 * y;
        row[0] = row[1] = 0;
        for (int x = 0; x < w; x++)
            row[x / 4] |= (uint8_t)(idx[y * w + x] << (6 - 2 * (x % 4)));
    }
    const png_spec specs[] = {
        {w, h, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, pal, 4},
        {w, h, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, packed, pal, 4},
    };
    char *path = tmp_path("palette.png");
    for (size_t s = 0; s < G_N_ELEMENTS(specs); s++) {
        write_png_raw(path, &specs[s]);
        ps_image *im = load_ok(path);
        for (int i = 0; i < w * h; i++) {
            const png_color *c = &pal[idx[i]];
            g_assert_cmpint(im->data[3 * i], ==, c->red);
            g_assert_cmpint(im->data[3 * i + 1], ==, c->green);
            g_assert_cmpint(im->data[3 * i + 2], ==, c->blue);
        }
        ps_image_free(im);
    }
    g_free(path);
}

/* 16-bit RGB and grey: scaled to 8 bits (within one level of v / 257). */
static void test_png_16bit(void)
{
    const int w = 6, h = 4, n = w * h;
    uint16_t v[72];
    uint8_t be[144];
    for (int i = 0; i < 3 * n; i++) {
        v[i] = (uint16_t)(i * 911 + 17);
        be[2 * i] = (uint8_t)(v[i] >> 8);
        be[2 * i + 1] = (uint8_t)v[i];
    }
    const png_spec rgb = {w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, be, NULL, 0};
    const png_spec grey = {w, h, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, be, NULL, 0};
    char *path = tmp_path("16bit.png");
    write_png_raw(path, &rgb);
    ps_image *im = load_ok(path);
    for (int i = 0; i < 3 * n; i++)
        g_assert_cmpfloat(fabs(im->data[i] - v[i] / 257.0), <=, 1.0);
    ps_image_free(im);
    write_png_raw(path, &grey);
    im = load_ok(path);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            g_assert_cmpfloat(fabs(im->data[3 * i + k] - v[i] / 257.0), <=, 1.0);
    ps_image_free(im);
    g_free(path);
}

static void test_png_rgba_and_interlaced(void)
{
    const int w = 13, h = 9, n = w * h;
    ps_image *ref = random_image(w, h, 3, 3);
    uint8_t *rgba = g_new(uint8_t, 4 * n);
    for (int i = 0; i < n; i++) {
        memcpy(rgba + 4 * i, ref->data + 3 * i, 3);
        rgba[4 * i + 3] = (uint8_t)(i * 7); /* alpha, dropped */
    }
    const png_spec specs[] = {
        {w, h, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba, NULL, 0},
        {w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, ref->data, NULL, 0},
        {w, h, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, rgba, NULL, 0},
    };
    char *path = tmp_path("rgba.png");
    for (size_t s = 0; s < G_N_ELEMENTS(specs); s++) {
        write_png_raw(path, &specs[s]);
        ps_image *im = load_ok(path);
        g_assert_cmpmem(im->data, 3 * n, ref->data, 3 * n);
        ps_image_free(im);
    }
    g_free(path);
    g_free(rgba);
    ps_image_free(ref);
}

/* ---- JPEG ---- */

static void test_jpeg_decode(void)
{
    char *path = make_jpeg("quadrants.jpg");
    ps_image *im = load_ok(path);
    g_assert_cmpint(im->w, ==, 64);
    g_assert_cmpint(im->h, ==, 48);
    /* Quadrant centres, away from the chroma-subsampled edges. */
    const int cx[2] = {16, 48}, cy[2] = {12, 36};
    for (int q = 0; q < 4; q++) {
        const uint8_t *p = im->data + ((size_t)cy[q / 2] * 64 + cx[q % 2]) * 3;
        for (int k = 0; k < 3; k++)
            g_assert_cmpint(abs(p[k] - quadrant_rgb[q][k]), <=, 12);
    }
    ps_image_free(im);
    g_free(path);
}

static void test_jpeg_grey(void)
{
    uint8_t p[32 * 16];
    for (int i = 0; i < 32 * 16; i++)
        p[i] = (uint8_t)((i % 32) < 16 ? 40 : 200);
    char *path = tmp_path("grey.jpg");
    write_jpeg_raw(path, 32, 16, 1, p, 95);
    ps_image *im = load_ok(path);
    g_assert_cmpint(im->w, ==, 32);
    g_assert_cmpint(im->h, ==, 16);
    for (int i = 0; i < 32 * 16; i++) {
        g_assert_cmpint(im->data[3 * i], ==, im->data[3 * i + 1]);
        g_assert_cmpint(im->data[3 * i], ==, im->data[3 * i + 2]);
    }
    g_assert_cmpint(abs(im->data[3 * (8 * 32 + 4)] - 40), <=, 6);
    g_assert_cmpint(abs(im->data[3 * (8 * 32 + 28)] - 200), <=, 6);
    ps_image_free(im);
    g_free(path);
}

/* A CMYK JPEG (print, not video) is refused by name rather than with libjpeg's "Unsupported
 * color conversion request". */
static void test_jpeg_cmyk_refused(void)
{
    uint8_t p[8 * 8 * 4];
    for (int i = 0; i < (int)sizeof p; i++)
        p[i] = (uint8_t)(i * 7);
    char *path = tmp_path("cmyk.jpg");
    write_jpeg_raw(path, 8, 8, 4, p, 90);
    GError *err = NULL;
    g_assert_null(ps_image_load_rgb(path, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, "CMYK"));
    g_clear_error(&err);
    g_free(path);
}

/* ---- errors ---- */

/* Plain stdio, no fsync: the truncation and fuzz tests write hundreds of files. */
static void write_prefix(const char *path, const char *buf, gsize len)
{
    FILE *fp = fopen(path, "wb");
    g_assert_nonnull(fp);
    g_assert_cmpuint(fwrite(buf, 1, len, fp), ==, len);
    g_assert_cmpint(fclose(fp), ==, 0);
}

/* Every prefix from `first` bytes on (the magic bytes complete), sparsely in the middle. */
static void check_truncations(const char *src, gsize first, const char *word)
{
    char *buf;
    gsize len;
    g_assert_true(g_file_get_contents(src, &buf, &len, NULL));
    char *path = tmp_path("truncated");
    for (gsize cut = first; cut < len; cut += (cut < 40 || cut > len - 20) ? 1 : 37) {
        write_prefix(path, buf, cut);
        expect_load_error(path, word);
    }
    g_free(path);
    g_free(buf);
}

static void test_truncated_png(void)
{
    char *src = make_noise_png("full.png");
    check_truncations(src, 8, "truncated");
    g_free(src);
}

static void test_truncated_jpeg(void)
{
    char *src = make_jpeg("full.jpg");
    check_truncations(src, 3, "Premature end");
    g_free(src);
}

static void test_corrupt_files(void)
{
    char *path = tmp_path("corrupt");
    write_prefix(path, "", 0);
    expect_load_error(path, "not a JPEG or PNG");
    write_prefix(path, "hello, world\n", 13);
    expect_load_error(path, "not a JPEG or PNG");
    /* Right magic bytes, garbage after them. */
    write_prefix(path, "\xff\xd8\xff\x01garbage garbage garbage", 27);
    expect_load_error(path, "JPEG");
    write_prefix(path, "\x89PNG\r\n\x1a\ngarbage garbage garbage", 27);
    expect_load_error(path, "PNG");

    /* A PNG whose IHDR was damaged fails its CRC. */
    char *src = make_noise_png("crc.png"), *buf;
    gsize len;
    g_assert_true(g_file_get_contents(src, &buf, &len, NULL));
    buf[18] ^= 0x40;
    write_prefix(path, buf, len);
    expect_load_error(path, "PNG");
    g_free(buf);
    g_free(src);

    char *missing = tmp_path("missing.png");
    expect_load_error(missing, NULL);
    g_free(missing);
    g_free(path);
}

static void test_absurd_size(void)
{
    const int w = 20000, h = 2;
    uint8_t *rows = g_new0(uint8_t, (size_t)w * h * 3);
    const png_spec spec = {w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, rows, NULL, 0};
    char *path = tmp_path("wide.png");
    write_png_raw(path, &spec);
    expect_load_error(path, "20000x2");
    g_free(path);
    path = tmp_path("wide.jpg");
    write_jpeg_raw(path, w, h, 3, rows, 50);
    expect_load_error(path, "20000x2");
    g_free(path);
    g_free(rows);
}

/* Random byte flips: a decoded image or an error naming the file, never a crash. */
static void fuzz_file(const char *src, guint32 seed)
{
    char *buf;
    gsize len;
    g_assert_true(g_file_get_contents(src, &buf, &len, NULL));
    char *copy = g_malloc(len), *path = tmp_path("fuzz");
    GRand *r = g_rand_new_with_seed(seed);
    int decoded = 0;
    for (int iter = 0; iter < 200; iter++) {
        memcpy(copy, buf, len);
        for (int k = g_rand_int_range(r, 1, 5); k > 0; k--)
            copy[g_rand_int_range(r, 2, (gint32)len)] = (char)g_rand_int_range(r, 0, 256);
        write_prefix(path, copy, len);
        GError *err = NULL;
        ps_image *im = ps_image_load_rgb(path, &err);
        if (im) {
            decoded++;
            g_assert_true(im->w > 0 && im->h > 0 && im->c == 3);
            ps_image_free(im);
        } else {
            g_assert_nonnull(strstr(err->message, path));
            g_error_free(err);
        }
    }
    g_test_message("%s: %d of 200 damaged files still decoded", src, decoded);
    g_rand_free(r);
    g_free(path);
    g_free(copy);
    g_free(buf);
}

static void test_fuzz(void)
{
    char *png = make_noise_png("fuzz-src.png"), *jpg = make_jpeg("fuzz-src.jpg");
    fuzz_file(png, 11);
    fuzz_file(jpg, 12);
    g_free(png);
    g_free(jpg);
}

/* ---- mask ---- */

static void test_mask_threshold(void)
{
    /* Luma 0.299 R + 0.587 G + 0.114 B against 128. */
    static const struct { uint8_t rgb[3], want; } px[] = {
        {{128, 128, 128}, 255}, {{127, 127, 127}, 0},   {{255, 0, 0}, 0},     {{0, 255, 0}, 255},
        {{0, 0, 255}, 0},       {{100, 150, 120}, 255}, {{255, 255, 255}, 255}, {{0, 0, 0}, 0},
        {{255, 0, 255}, 0},     {{129, 128, 127}, 255},
    };
    const int n = G_N_ELEMENTS(px);
    ps_image *im = ps_image_new(n, 1, 3);
    for (int i = 0; i < n; i++)
        memcpy(im->data + 3 * i, px[i].rgb, 3);
    char *path = tmp_path("mask.png");
    GError *err = NULL;
    g_assert_true(ps_image_save_png(path, im, &err));
    ps_image *m = ps_image_load_mask(path, &err);
    g_assert_no_error(err);
    g_assert_cmpint(m->c, ==, 1);
    g_assert_cmpint(m->w, ==, n);
    for (int i = 0; i < n; i++)
        g_assert_cmpint(m->data[i], ==, px[i].want);
    ps_image_free(m);
    ps_image_free(im);
    g_free(path);
}

/* ---- writing ---- */

static void test_save_errors_and_replace(void)
{
    ps_image *a = random_image(8, 8, 3, 7), *b = random_image(5, 4, 1, 8);
    GError *err = NULL;
    char *bad = g_build_filename(tmpdir, "no-such-dir", "x.png", NULL);
    g_assert_false(ps_image_save_png(bad, a, &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, bad));
    g_clear_error(&err);
    g_free(bad);

    char *dir = tmp_path("save");
    char *path = g_build_filename(dir, "out.png", NULL);
    /* The target is a folder: the rename fails and the temporary file is removed. */
    g_assert_cmpint(g_mkdir_with_parents(path, 0755), ==, 0);
    g_assert_false(ps_image_save_png(path, a, &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, path));
    g_clear_error(&err);
    g_assert_cmpint(count_entries(dir), ==, 1);
    g_assert_cmpint(g_rmdir(path), ==, 0);

    g_assert_true(ps_image_save_png(path, a, &err));
    g_assert_true(ps_image_save_png(path, b, &err)); /* replaces */
    g_assert_no_error(err);
    g_assert_cmpint(count_entries(dir), ==, 1);
    ps_image *back = load_ok(path);
    g_assert_cmpint(back->w, ==, 5);
    g_assert_cmpint(back->h, ==, 4);
    ps_image_free(back);

    ps_image two = {4, 4, 2, a->data};
    g_assert_false(ps_image_save_png(path, &two, &err));
    g_assert_nonnull(strstr(err->message, "channel"));
    g_clear_error(&err);
    g_assert_cmpint(count_entries(dir), ==, 1);

    g_free(path);
    g_free(dir);
    ps_image_free(a);
    ps_image_free(b);
}

/* Writing through a symbolic link replaces the file it ends at and keeps the link (a rename
 * over the link would have replaced the link); a FIFO (as a device would be) is refused, not replaced. */
static void test_save_through_links(void)
{
    ps_image *a = random_image(6, 5, 3, 9), *b = random_image(3, 2, 1, 10);
    GError *err = NULL;
    char *dir = tmp_path("links"), *sub = g_build_filename(dir, "sub", NULL);
    g_assert_cmpint(g_mkdir_with_parents(sub, 0755), ==, 0);
    char *file = g_build_filename(dir, "real.png", NULL), *link1 = g_build_filename(sub, "link1.png", NULL),
         *link2 = g_build_filename(dir, "link2.png", NULL);
    g_assert_true(ps_image_save_png(file, a, &err));
    g_assert_cmpint(symlink("../real.png", link1), ==, 0); /* relative to the link's folder */
    g_assert_cmpint(symlink("sub/link1.png", link2), ==, 0); /* a chain of two */
    g_assert_true(ps_image_save_png(link2, b, &err));
    g_assert_no_error(err);
    GStatBuf st;
    g_assert_cmpint(g_lstat(link2, &st), ==, 0);
    g_assert_true(S_ISLNK(st.st_mode));
    g_assert_cmpint(g_lstat(link1, &st), ==, 0);
    g_assert_true(S_ISLNK(st.st_mode));
    ps_image *back = load_ok(file);
    g_assert_cmpint(back->w, ==, 3);
    ps_image_free(back);

    char *dangling = g_build_filename(dir, "dangling.png", NULL), *made = g_build_filename(dir, "made.png", NULL);
    g_assert_cmpint(symlink("made.png", dangling), ==, 0);
    g_assert_true(ps_image_save_png(dangling, a, &err)); /* creates the file the link names */
    back = load_ok(made);
    g_assert_cmpint(back->w, ==, 6);
    ps_image_free(back);

    char *fifo = g_build_filename(dir, "fifo.png", NULL);
    g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
    const int before = count_entries(dir);
    g_assert_false(ps_image_save_png(fifo, a, &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, "not a regular file"));
    g_clear_error(&err);
    g_assert_cmpint(g_lstat(fifo, &st), ==, 0);
    g_assert_true(S_ISFIFO(st.st_mode));
    g_assert_cmpint(count_entries(dir), ==, before); /* no temporary file left */

    g_free(fifo), g_free(dangling), g_free(made), g_free(file), g_free(link1), g_free(link2), g_free(sub), g_free(dir);
    ps_image_free(a);
    ps_image_free(b);
}

/* ---- resize ---- */

/* The definition in double precision: half-pixel centres, clamped, separable. */
static double ref_sample(const double *src, int sw, int sh, int stride, int c, int k, int dw, int dh,
                         int x, int y)
{
    double fx = CLAMP((x + 0.5) * sw / dw - 0.5, 0, sw - 1);
    double fy = CLAMP((y + 0.5) * sh / dh - 0.5, 0, sh - 1);
    int x0 = (int)fx, y0 = (int)fy, x1 = MIN(x0 + 1, sw - 1), y1 = MIN(y0 + 1, sh - 1);
    double ax = fx - x0, ay = fy - y0;
#define S(yy, xx) src[(size_t)(yy) * stride + (size_t)(xx) * c + k]
    return (1 - ay) * ((1 - ax) * S(y0, x0) + ax * S(y0, x1)) + ay * ((1 - ax) * S(y1, x0) + ax * S(y1, x1));
#undef S
}

static void test_resize_hand_computed(void)
{
    /* 2x2 -> 4x4: source x for the outputs is -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1). */
    const float up_src[4] = {0, 100, 200, 40};
    const float up_want[16] = {0,   25,     75,    100, 50,  58.75f, 76.25f, 85,
                               150, 126.25f, 78.75f, 55, 200, 160,    80,     40};
    float up[16];
    ps_resize_bilinear_f32(up_src, 2, 2, up, 4, 4);
    for (int i = 0; i < 16; i++)
        g_assert_cmpfloat(fabsf(up[i] - up_want[i]), <=, 1e-5);
    uint8_t up_src8[4] = {0, 100, 200, 40}, up8[16];
    const uint8_t up8_want[16] = {0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
    ps_resize_bilinear_u8(up_src8, 2, 2, 2, 1, up8, 4, 4, 4);
    g_assert_cmpmem(up8, 16, up8_want, 16);

    /* 4x4 -> 2x2: source coordinates 0.5 and 2.5, so each output averages a 2x2 block. */
    const uint8_t down_src[16] = {0, 255, 0, 255, 255, 0, 255, 0, 10, 20, 30, 40, 50, 60, 70, 90};
    const uint8_t down_want[4] = {128, 128, 35, 58}; /* 127.5, 127.5, 35, 57.5 rounded */
    uint8_t down[4];
    ps_resize_bilinear_u8(down_src, 4, 4, 4, 1, down, 2, 2, 2);
    g_assert_cmpmem(down, 4, down_want, 4);
    float down_srcf[16], downf[4];
    for (int i = 0; i < 16; i++)
        down_srcf[i] = down_src[i];
    ps_resize_bilinear_f32(down_srcf, 4, 4, downf, 2, 2);
    const float downf_want[4] = {127.5f, 127.5f, 35, 57.5f};
    for (int i = 0; i < 4; i++)
        g_assert_cmpfloat(fabsf(downf[i] - downf_want[i]), <=, 1e-5);
}

static void test_resize_identity(void)
{
    const int w = 17, h = 9, c = 3, stride = w * c + 5;
    GRand *r = g_rand_new_with_seed(4);
    uint8_t *src = g_new(uint8_t, (size_t)stride * h), *dst = g_new(uint8_t, (size_t)stride * h);
    for (int i = 0; i < stride * h; i++)
        src[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    memset(dst, 0xab, (size_t)stride * h);
    ps_resize_bilinear_u8(src, w, h, stride, c, dst, w, h, stride);
    for (int y = 0; y < h; y++) {
        g_assert_cmpmem(dst + y * stride, w * c, src + y * stride, w * c);
        for (int i = w * c; i < stride; i++) /* row padding untouched */
            g_assert_cmpint(dst[y * stride + i], ==, 0xab);
    }
    float *fs = g_new(float, w * h), *fd = g_new(float, w * h);
    for (int i = 0; i < w * h; i++)
        fs[i] = (float)g_rand_double_range(r, -5, 5);
    ps_resize_bilinear_f32(fs, w, h, fd, w, h);
    g_assert_cmpmem(fd, w * h * sizeof(float), fs, w * h * sizeof(float));
    g_free(fs);
    g_free(fd);
    g_free(src);
    g_free(dst);
    g_rand_free(r);
}

static void test_resize_constant(void)
{
    static const int sizes[][4] = {{7, 5, 13, 3}, {1, 1, 6, 4}, {30, 20, 1, 1}, {5, 8, 5, 3}};
    for (size_t s = 0; s < G_N_ELEMENTS(sizes); s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
        uint8_t *src = g_new(uint8_t, sw * sh * 3), *dst = g_new(uint8_t, dw * dh * 3);
        for (int i = 0; i < sw * sh * 3; i++)
            src[i] = (uint8_t)(77 + i % 3 * 50);
        ps_resize_bilinear_u8(src, sw, sh, sw * 3, 3, dst, dw, dh, dw * 3);
        for (int i = 0; i < dw * dh * 3; i++)
            g_assert_cmpint(dst[i], ==, 77 + i % 3 * 50);
        float *fs = g_new(float, sw * sh), *fd = g_new(float, dw * dh);
        for (int i = 0; i < sw * sh; i++)
            fs[i] = 0.3f;
        ps_resize_bilinear_f32(fs, sw, sh, fd, dw, dh);
        for (int i = 0; i < dw * dh; i++)
            g_assert_cmpfloat(fabsf(fd[i] - 0.3f), <=, 1e-6);
        g_free(fs);
        g_free(fd);
        g_free(src);
        g_free(dst);
    }
}

/* Random images, up and down, against the double-precision definition. */
static void test_resize_matches_definition(void)
{
    static const int sizes[][4] = {{31, 17, 64, 40}, {64, 40, 23, 11}, {50, 3, 7, 9}, {5, 5, 8, 8}};
    GRand *r = g_rand_new_with_seed(9);
    for (size_t s = 0; s < G_N_ELEMENTS(sizes); s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3], c = 3;
        int sstride = sw * c + 3, dstride = dw * c + 1;
        uint8_t *src = g_new(uint8_t, (size_t)sstride * sh), *dst = g_new(uint8_t, (size_t)dstride * dh);
        double *srcd = g_new(double, (size_t)sstride * sh);
        float *fs = g_new(float, sw * sh), *fd = g_new(float, dw * dh);
        for (int i = 0; i < sstride * sh; i++)
            srcd[i] = src[i] = (uint8_t)g_rand_int_range(r, 0, 256);
        ps_resize_bilinear_u8(src, sw, sh, sstride, c, dst, dw, dh, dstride);
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                for (int k = 0; k < c; k++) {
                    double want = ref_sample(srcd, sw, sh, sstride, c, k, dw, dh, x, y);
                    g_assert_cmpfloat(fabs(dst[y * dstride + x * c + k] - want), <=, 0.5 + 1e-3);
                }
        double *fsd = g_new(double, sw * sh);
        for (int i = 0; i < sw * sh; i++)
            fsd[i] = fs[i] = (float)g_rand_double_range(r, -1, 1);
        ps_resize_bilinear_f32(fs, sw, sh, fd, dw, dh);
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                g_assert_cmpfloat(fabs(fd[y * dw + x] - ref_sample(fsd, sw, sh, sw, 1, 0, dw, dh, x, y)),
                                  <=, 1e-5);
        g_free(fsd);
        g_free(fs);
        g_free(fd);
        g_free(srcd);
        g_free(src);
        g_free(dst);
    }
    g_rand_free(r);
}

/* A video frame to network size: reports the time (the plugin does this per frame). */
static void test_resize_frame_speed(void)
{
    ps_image *frame = random_image(1920, 1080, 3, 10);
    uint8_t *dst = g_new(uint8_t, 352 * 352 * 3);
    gint64 t0 = g_get_monotonic_time();
    for (int i = 0; i < 10; i++)
        ps_resize_bilinear_u8(frame->data, 1920, 1080, 1920 * 3, 3, dst, 352, 352, 352 * 3);
    g_test_message("1920x1080 -> 352x352 RGB: %.2f ms per frame",
                   (g_get_monotonic_time() - t0) / 10 / 1000.0);
    g_free(dst);
    ps_image_free(frame);
}

/* Pre-processing an image already at the model's size skips the resize (a copy), with any
 * stride: a tight and a padded copy of the same pixels give the same tensor, and the
 * normalisation matches (v / 255 - mean) / std. */
static void test_preprocess_model_size(void)
{
    const int S = 64, padded = 3 * S + 5;
    uint8_t *tight = g_malloc(3 * S * S), *loose = g_malloc0((size_t)padded * S), *scratch = g_malloc(3 * S * S);
    GRand *r = g_rand_new_with_seed(3);
    for (int i = 0; i < 3 * S * S; i++)
        tight[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    for (int y = 0; y < S; y++)
        memcpy(loose + (size_t)y * padded, tight + (size_t)y * 3 * S, 3 * S);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    ps_tensor *a = ps_tensor_new(1, 3, S, S), *b = ps_tensor_new(1, 3, S, S);
    ps_preprocess_rgb(tight, S, S, 3 * S, mean, std, a, 0, scratch);
    ps_preprocess_rgb(loose, S, S, padded, mean, std, b, 0, scratch);
    g_assert_cmpmem(a->data, ps_numel(a) * sizeof(float), b->data, ps_numel(b) * sizeof(float));
    for (int c = 0; c < 3; c++)
        g_assert_cmpfloat_with_epsilon(a->data[c * S * S + 7], (tight[3 * 7 + c] / 255.0 - mean[c]) / std[c], 1e-5);
    ps_tensor_free(a), ps_tensor_free(b);
    g_free(tight), g_free(loose), g_free(scratch);
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    GError *err = NULL;
    tmpdir = g_dir_make_tmp("polypseg-image-XXXXXX", &err);
    g_assert_no_error(err);

    g_test_add_func("/image/png/round-trip-rgb", test_png_round_trip_rgb);
    g_test_add_func("/image/png/round-trip-grey", test_png_round_trip_grey);
    g_test_add_func("/image/png/grey-variants", test_png_grey_variants);
    g_test_add_func("/image/png/palette", test_png_palette);
    g_test_add_func("/image/png/16-bit", test_png_16bit);
    g_test_add_func("/image/png/rgba-and-interlaced", test_png_rgba_and_interlaced);
    g_test_add_func("/image/jpeg/decode", test_jpeg_decode);
    g_test_add_func("/image/jpeg/grey", test_jpeg_grey);
    g_test_add_func("/image/jpeg/cmyk-refused", test_jpeg_cmyk_refused);
    g_test_add_func("/image/errors/truncated-png", test_truncated_png);
    g_test_add_func("/image/errors/truncated-jpeg", test_truncated_jpeg);
    g_test_add_func("/image/errors/corrupt", test_corrupt_files);
    g_test_add_func("/image/errors/absurd-size", test_absurd_size);
    g_test_add_func("/image/errors/fuzz", test_fuzz);
    g_test_add_func("/image/mask/threshold", test_mask_threshold);
    g_test_add_func("/image/save/errors-and-replace", test_save_errors_and_replace);
    g_test_add_func("/image/save/through-links", test_save_through_links);
    g_test_add_func("/image/resize/hand-computed", test_resize_hand_computed);
    g_test_add_func("/image/resize/identity", test_resize_identity);
    g_test_add_func("/image/preprocess/model-size", test_preprocess_model_size);
    g_test_add_func("/image/resize/constant", test_resize_constant);
    g_test_add_func("/image/resize/matches-definition", test_resize_matches_definition);
    g_test_add_func("/image/resize/frame-speed", test_resize_frame_speed);
    int rc = g_test_run();

    tu_remove_tree(tmpdir);
    g_free(tmpdir);
    return rc;
}
