/* Every optimised kernel set this CPU runs, against the scalar references in ops.c, on random
 * shapes (including sizes that are not multiples of any vector width or block). */
#include <math.h>
#include <string.h>
#include "kernels.h"
#include "ops.h"
#include "preprocess.h"
#include "threadpool.h"
#include "backward.h"
#include "backward_ops.h"
#include "test_util.h"
#include "../core/lib/kernel_util.h"

/* Max abs error relative to max(1, |ref|) per element: the approximations' contract. */
static double max_err_vs(const float *got, const float *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(d <= e))
            e = isnan(d) ? INFINITY : d;
    }
    return e;
}

static void check(const char *set, const char *what, double err, double tol)
{
    g_test_message("%s %s: max error %.3g (tolerance %.1g)", set, what, err, tol);
    if (!(err <= tol))
        g_test_fail_printf("%s %s: max error %.3g exceeds %.1g", set, what, err, tol);
}

/* t with a gradient of random start values (backward kernels add into it). */
static ps_tensor *with_grad(ps_tensor *t, GRand *r)
{
    ps_tensor_ensure_grad(t);
    tu_fill_uniform(t->grad, ps_numel(t), r, -1, 1);
    return t;
}

static void test_unary(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(11);
    const size_t n = 100003;
    ps_tensor *x = ps_tensor_new(1, 1, 1, n), *want = ps_tensor_new(1, 1, 1, n), *got = ps_tensor_new(1, 1, 1, n);
    tu_fill_uniform(x->data, n, r, -12, 12);
    /* the edges: zero, tiny, huge, both signs */
    const float special[] = {0.f, -0.f, 1e-30f, -1e-30f, 1e-7f, 3.9f, -3.9f, 40.f, -40.f, 100.f, -100.f, 1e30f, -1e30f};
    for (size_t i = 0; i < G_N_ELEMENTS(special); i++)
        x->data[i] = special[i];
    ps_gelu_ref(x, want);
    k->gelu(x->data, got->data, n);
    check(k->name, "gelu", max_err_vs(got->data, want->data, n), 1.2e-6);
    /* GELU keeps the sign of its input (Phi stays in [0, 1]), on a fine grid of the tail too */
    for (size_t i = 0; i < n; i++)
        if ((x->data[i] < 0 && got->data[i] > 0) || (x->data[i] > 0 && got->data[i] < 0))
            g_test_fail_printf("%s gelu(%g) = %g has the wrong sign", k->name, x->data[i], got->data[i]);
    { /* Phi in [0, 1] on a fine grid over both tails and the switch to +-1 at |v| = 5.14: GELU
       * lies between 0 and v */
        enum { M = 40001 };
        float *v = g_new(float, M), *gv = g_new(float, M);
        for (int i = 0; i < M; i++)
            v[i] = -8.f + 16.f * i / (M - 1);
        k->gelu(v, gv, M);
        for (int i = 0; i < M; i++)
            if (gv[i] < MIN(v[i], 0.f) || gv[i] > MAX(v[i], 0.f))
                g_test_fail_printf("%s gelu(%g) = %g is not between 0 and the input", k->name, v[i], gv[i]);
        g_free(v), g_free(gv);
    }
    ps_sigmoid_ref(x, want);
    k->sigmoid(x->data, got->data, n);
    check(k->name, "sigmoid", max_err_vs(got->data, want->data, n), 2e-6);
    ps_tensor *b = ps_tensor_new(1, 1, 1, n), *sum = ps_tensor_new(1, 1, 1, n);
    tu_fill_uniform(b->data, n, r, -3, 3);
    ps_add_ref(x, b, sum);
    ps_gelu_ref(sum, want);
    k->add_gelu(x->data, b->data, got->data, n);
    check(k->name, "add_gelu", max_err_vs(got->data, want->data, n), 1.2e-6);
    ps_mul_ref(x, b, want);
    k->mul(x->data, b->data, got->data, n);
    check(k->name, "mul", max_err_vs(got->data, want->data, n), 0); /* one rounding either way */
    k->add(x->data, b->data, got->data, n);
    check(k->name, "add", max_err_vs(got->data, sum->data, n), 0);
    /* every short length: each vector width's tail (16-, 8-wide and scalar remainders) alone,
     * on the out-of-place buffers' starts; values past m must stay untouched */
    for (size_t m = 1; m <= 40; m++) {
        ps_tensor *xm = ps_tensor_new(1, 1, 1, m), *bm = ps_tensor_new(1, 1, 1, m), *wm = ps_tensor_new(1, 1, 1, m);
        ps_tensor *sm = ps_tensor_new(1, 1, 1, m);
        memcpy(xm->data, x->data + 1000, m * sizeof(float));
        memcpy(bm->data, b->data + 1000, m * sizeof(float));
        float gm[41];
        gm[m] = 12345.f;
        char label[32];
        ps_gelu_ref(xm, wm);
        k->gelu(xm->data, gm, m);
        g_snprintf(label, sizeof label, "gelu n=%zu", m);
        check(k->name, label, max_err_vs(gm, wm->data, m), 1.2e-6);
        ps_sigmoid_ref(xm, wm);
        k->sigmoid(xm->data, gm, m);
        g_snprintf(label, sizeof label, "sigmoid n=%zu", m);
        check(k->name, label, max_err_vs(gm, wm->data, m), 2e-6);
        ps_add_ref(xm, bm, sm);
        ps_gelu_ref(sm, wm);
        k->add_gelu(xm->data, bm->data, gm, m);
        g_snprintf(label, sizeof label, "add_gelu n=%zu", m);
        check(k->name, label, max_err_vs(gm, wm->data, m), 1.2e-6);
        k->add(xm->data, bm->data, gm, m);
        g_snprintf(label, sizeof label, "add n=%zu", m);
        check(k->name, label, max_err_vs(gm, sm->data, m), 0);
        ps_mul_ref(xm, bm, wm);
        k->mul(xm->data, bm->data, gm, m);
        g_snprintf(label, sizeof label, "mul n=%zu", m);
        check(k->name, label, max_err_vs(gm, wm->data, m), 0);
        if (gm[m] != 12345.f)
            g_test_fail_printf("%s: a kernel of length %zu wrote past its end", k->name, m);
        ps_tensor_free(xm), ps_tensor_free(bm), ps_tensor_free(wm), ps_tensor_free(sm);
    }
    ps_tensor_free(b), ps_tensor_free(sum);
    ps_tensor_free(x);
    ps_tensor_free(want);
    ps_tensor_free(got);
    g_rand_free(r);
}

/* The input normalisation, bit for bit against the reference (both are one fmaf per value), on
 * a count that no vector width divides. */
static void test_normalise_rgb(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(12);
    const int n = 1003;
    uint8_t *rgb = g_malloc(3 * n);
    for (int i = 0; i < 3 * n; i++)
        rgb[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    rgb[0] = 0, rgb[1] = 255, rgb[2] = 128;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float scale[3], shift[3];
    for (int c = 0; c < 3; c++)
        scale[c] = 1.0f / (255.0f * std[c]), shift[c] = mean[c] / std[c];
    float *want = g_new(float, 3 * n), *got = g_new(float, 3 * n);
    ps_normalise_rgb_ref(rgb, n, scale, shift, want, want + n, want + 2 * n);
    k->normalise_rgb(rgb, n, scale, shift, got, got + n, got + 2 * n);
    g_assert_cmpmem(got, 3 * n * sizeof(float), want, 3 * n * sizeof(float));
    /* and it is the normalisation: (v / 255 - mean) / std within float rounding */
    for (int c = 0; c < 3; c++)
        g_assert_cmpfloat(fabs(want[c * n + 1] - ((double)rgb[3 + c] / 255 - mean[c]) / std[c]), <, 1e-6);
    g_free(rgb), g_free(want), g_free(got);
    g_rand_free(r);
}

/* The frame-conversion kernels against their references, bit for bit (no contracted
 * multiply-adds on either side), on random rows, offsets, weights and lengths that are not
 * multiples of the kernels' blocks; and the references against their definitions where the
 * answer is known: at zero weights a pixel's own byte comes through, normalised. */
static void test_frame_rows(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(31);
    const float scale[3] = {0.0171f, 0.0175f, 0.0174f}, nshift[3] = {2.118f, 2.036f, 1.804f};
    for (int round = 0; round < 40; round++) {
        const int w = g_rand_int_range(r, 2, 700), n = g_rand_int_range(r, 1, 300), ps = 4 - round % 4;
        uint8_t *row0 = g_malloc((size_t)w * 4), *row1 = g_malloc((size_t)w * 4);
        for (int i = 0; i < w * 4; i++)
            row0[i] = (uint8_t)g_rand_int(r), row1[i] = (uint8_t)g_rand_int(r);
        int *off0 = g_new(int, n), *off1 = g_new(int, n);
        float *wx = g_new(float, n), wy = round < 2 ? 0.f : (float)g_rand_double(r);
        for (int i = 0; i < n; i++) {
            const int x = g_rand_int_range(r, 0, w);
            off0[i] = x * ps;
            off1[i] = MIN(x + 1, w - 1) * ps;
            wx[i] = round < 2 ? 0.f : (float)g_rand_double(r);
        }
        float *want = g_new(float, 3 * n), *got = g_new(float, 3 * n);
        float *const wp[3] = {want, want + n, want + 2 * n}, *const gp[3] = {got, got + n, got + 2 * n};
        if (ps == 4) { /* three of the word's four bytes, in a random order */
            int shift[4] = {0, 8, 16, 24};
            for (int i = 3; i > 0; i--) {
                int j = g_rand_int_range(r, 0, i + 1), t = shift[i];
                shift[i] = shift[j], shift[j] = t;
            }
            ps_frame_row_packed4_ref(row0, row1, off0, off1, wx, wy, shift, n, scale, nshift, wp);
            k->frame_row_packed4(row0, row1, off0, off1, wx, wy, shift, n, scale, nshift, gp);
            g_assert_cmpmem(got, 3 * n * sizeof(float), want, 3 * n * sizeof(float));
            for (int i = 0; i < n && round < 2; i++)
                for (int c = 0; c < 3; c++) {
                    uint32_t word;
                    memcpy(&word, row0 + off0[i], 4);
                    g_assert_cmpfloat(want[c * n + i], ==, fmaf((float)((word >> shift[c]) & 255), scale[c], -nshift[c]));
                }
        }
        float *samples = g_new(float, 3 * n), *want_s = g_new(float, n);
        for (int c = 0; c < 3; c++) { /* three components: byte c of each pixel */
            ps_frame_row_sample_ref(row0 + c, row1 + c, off0, off1, wx, wy, n, want_s);
            k->frame_row_sample(row0 + c, row1 + c, off0, off1, wx, wy, n, samples + c * n);
            g_assert_cmpmem(samples + c * n, n * sizeof(float), want_s, n * sizeof(float));
            for (int i = 0; i < n && round < 2; i++)
                g_assert_cmpfloat(want_s[i], ==, row0[off0[i] + c]);
        }
        const float *const sp[3] = {samples, samples + n, samples + 2 * n};
        /* a BT.601 limited-range YUV -> RGB matrix (the element's form), and the identity */
        const float yuv[9] = {1.164f, 0.f, 1.596f, 1.164f, -0.392f, -0.813f, 1.164f, 2.017f, 0.f},
                    yuv_off[3] = {16.f, 128.f, 128.f}, id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, id_off[3] = {0, 0, 0};
        const int identity = round % 2;
        ps_frame_row_combine_ref(sp, n, identity ? id : yuv, identity ? id_off : yuv_off, scale, nshift, wp);
        k->frame_row_combine(sp, n, identity ? id : yuv, identity ? id_off : yuv_off, scale, nshift, gp);
        g_assert_cmpmem(got, 3 * n * sizeof(float), want, 3 * n * sizeof(float));
        for (int i = 0; i < n && identity; i++) /* the identity rounds each sample to its byte */
            for (int c = 0; c < 3; c++)
                g_assert_cmpfloat(want[c * n + i], ==, fmaf(floorf(samples[c * n + i] + 0.5f), scale[c], -nshift[c]));
        g_free(samples), g_free(want_s), g_free(want), g_free(got);
        g_free(off0), g_free(off1), g_free(wx), g_free(row0), g_free(row1);
    }
    g_rand_free(r);
}

static void relu_in_place(ps_tensor *t)
{
    for (size_t i = 0; i < ps_numel(t); i++)
        t->data[i] = t->data[i] > 0.f ? t->data[i] : 0.f;
}

static void test_pointwise(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(12);
    for (int trial = 0; trial < 40; trial++) {
        int cin = g_rand_int_range(r, 1, 70), cout = g_rand_int_range(r, 1, 70);
        if (trial < 17)
            cout = trial + 1; /* every height of a partial output-channel tile, on every instruction set */
        int h = g_rand_int_range(r, 1, 40), w = g_rand_int_range(r, 1, 40);
        int with_bias = trial % 2;
        ps_tensor *x = ps_tensor_new(1, cin, h, w), *wt = ps_tensor_new(cout, cin, 1, 1);
        ps_tensor *b = ps_tensor_new(cout, 1, 1, 1);
        ps_tensor *want = ps_tensor_new(1, cout, h, w), *got = ps_tensor_new(1, cout, h, w);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
        tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
        tu_fill_uniform(b->data, ps_numel(b), r, -1, 1);
        ps_conv2d_params p = {1, 0, 0, 1, 1};
        ps_conv2d_ref(x, wt, with_bias ? b : NULL, &p, want);
        int relu = trial % 4 >= 2;
        /* a residual in a third of the trials, added before the ReLU */
        float *add = NULL;
        if (trial % 3 == 0) {
            add = g_new(float, ps_numel(want));
            tu_fill_uniform(add, ps_numel(want), r, -1, 1);
            for (size_t i = 0; i < ps_numel(want); i++)
                want->data[i] += add[i];
        }
        if (relu)
            relu_in_place(want);
        k->conv_pointwise(x->data, wt->data, with_bias ? b->data : NULL, add, got->data, cin, cout, (size_t)h * w,
                          (size_t)h * w, relu);
        char label[96];
        g_snprintf(label, sizeof label, "pointwise %d->%d %dx%d relu %d add %d", cin, cout, h, w, relu, add != NULL);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        /* channels split in two calls (as threads split them) give the same bits */
        const size_t plane = (size_t)h * w;
        const int split = g_rand_int_range(r, 0, cout + 1);
        float *parts = g_new(float, ps_numel(got));
        k->conv_pointwise(x->data, wt->data, with_bias ? b->data : NULL, add, parts, cin, split, plane, plane, relu);
        k->conv_pointwise(x->data, wt->data + (size_t)split * cin, with_bias ? b->data + split : NULL,
                          add ? add + split * plane : NULL, parts + split * plane, cin, cout - split, plane, plane,
                          relu);
        if (memcmp(parts, got->data, ps_numel(got) * sizeof(float)) != 0)
            g_test_fail_printf("%s: split at channel %d changes the result", label, split);
        /* and so do positions split anywhere (the graph splits them at multiples of 32) */
        const size_t at = (size_t)g_rand_int_range(r, 0, (int)plane + 1);
        memset(parts, 0, ps_numel(got) * sizeof(float));
        k->conv_pointwise(x->data, wt->data, with_bias ? b->data : NULL, add, parts, cin, cout, at, plane, relu);
        k->conv_pointwise(x->data + at, wt->data, with_bias ? b->data : NULL, add ? add + at : NULL, parts + at, cin,
                          cout, plane - at, plane, relu);
        if (memcmp(parts, got->data, ps_numel(got) * sizeof(float)) != 0)
            g_test_fail_printf("%s: split at position %zu changes the result", label, at);
        g_free(parts);
        g_free(add);
        ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(b), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

static void test_depthwise(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(13);
    for (int trial = 0; trial < 60; trial++) {
        int c = g_rand_int_range(r, 1, 20), h = g_rand_int_range(r, 1, 45), w = g_rand_int_range(r, 1, 45);
        int d = g_rand_int_range(r, 1, 8); /* up to MALUNet's 7 */
        int with_bias = trial % 2, ks = trial % 3 ? 3 : 1; /* every third a 1x1 (LDGA's) */
        ps_tensor *x = ps_tensor_new(1, c, h, w), *wt = ps_tensor_new(c, 1, ks, ks), *b = ps_tensor_new(c, 1, 1, 1);
        ps_tensor *want = ps_tensor_new(1, c, h, w), *got = ps_tensor_new(1, c, h, w);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
        tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
        tu_fill_uniform(b->data, ps_numel(b), r, -1, 1);
        ps_conv2d_params p = {1, ks == 3 ? d : 0, ks == 3 ? d : 0, d, c};
        ps_conv2d_ref(x, wt, with_bias ? b : NULL, &p, want);
        int relu = trial % 4 >= 2;
        if (relu)
            relu_in_place(want);
        if (ks == 3) { /* in two bands of rows, the later first (as threads split them) */
            const int split = g_rand_int_range(r, 0, h + 1);
            for (size_t i = 0; i < ps_numel(got); i++)
                got->data[i] = -1234.f; /* rows outside a band must keep this */
            k->conv_depthwise3x3(x->data, wt->data, with_bias ? b->data : NULL, got->data, c, h, w, d, relu, split, h);
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < split * w; i++)
                    if (got->data[(size_t)ch * h * w + i] != -1234.f)
                        g_test_fail_printf("depthwise band [%d, %d) wrote row %d of channel %d", split, h, i / w, ch);
            k->conv_depthwise3x3(x->data, wt->data, with_bias ? b->data : NULL, got->data, c, h, w, d, relu, 0, split);
        } else
            k->conv_depthwise1x1(x->data, wt->data, with_bias ? b->data : NULL, got->data, c, (size_t)h * w, relu);
        char label[96];
        g_snprintf(label, sizeof label, "depthwise %dx%d c%d %dx%d dilation %d relu %d", ks, ks, c, h, w, d, relu);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(b), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

/* One 'valid' conv against the reference, then output rows [r0, ho) alone, from the band of
 * input rows under them (as threads split them), one output channel at a time: the same bits. */
static void conv_valid_case(const ps_kernels *k, GRand *r, int cin, int cout, int ks, int d, int h, int w,
                            int with_bias)
{
    const int ho = h - d * (ks - 1), wo = w - d * (ks - 1);
    ps_tensor *x = ps_tensor_new(1, cin, h, w), *wt = ps_tensor_new(cout, cin, ks, ks), *b = ps_tensor_new(cout, 1, 1, 1);
    ps_tensor *want = ps_tensor_new(1, cout, ho, wo), *got = ps_tensor_new(1, cout, ho, wo);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
    tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
    tu_fill_uniform(b->data, cout, r, -1, 1);
    ps_conv2d_params p = {1, 0, 0, d, 1};
    ps_conv2d_ref(x, wt, with_bias ? b : NULL, &p, want);
    k->conv_valid(x->data, (size_t)h * w, wt->data, with_bias ? b->data : NULL, got->data, cin, cout, h, w, ks, d);
    char label[96];
    g_snprintf(label, sizeof label, "valid %d->%d k%d d%d %dx%d", cin, cout, ks, d, h, w);
    tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
    const int r0 = g_rand_int_range(r, 0, ho), span = d * (ks - 1);
    for (int co = 0; co < cout; co++) {
        float *band = g_new(float, (size_t)(ho - r0) * wo);
        k->conv_valid(x->data + (size_t)r0 * w, (size_t)h * w, wt->data + (size_t)co * cin * ks * ks,
                      with_bias ? b->data + co : NULL, band, cin, 1, ho - r0 + span, w, ks, d);
        if (memcmp(band, got->data + ((size_t)co * ho + r0) * wo, (size_t)(ho - r0) * wo * sizeof(float)) != 0)
            g_test_fail_printf("%s: rows from %d of channel %d differ from the whole", label, r0, co);
        g_free(band);
    }
    ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(b), ps_tensor_free(want), ps_tensor_free(got);
}

static void test_conv_valid(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(18);
    for (int trial = 0; trial < 30; trial++) {
        int cin = g_rand_int_range(r, 1, 6), cout = g_rand_int_range(r, 1, 6), ks = g_rand_int_range(r, 1, 8);
        int d = g_rand_int_range(r, 1, 4), h = ks * d + g_rand_int_range(r, 0, 30), w = ks * d + g_rand_int_range(r, 0, 30);
        conv_valid_case(k, r, cin, cout, ks, d, h, w, trial % 2);
    }
    /* wide outputs: the 4-vector column groups of the widest sets and their remainders */
    const int wides[] = {63, 64, 65, 79, 128, 131};
    for (int i = 0; i < (int)G_N_ELEMENTS(wides); i++) {
        const int ks = i % 2 ? 7 : 3, d = 1 + i % 2;
        conv_valid_case(k, r, 2 + i % 3, 1 + i % 4, ks, d, 3 + i + d * (ks - 1), wides[i] + d * (ks - 1), 1);
    }
    g_rand_free(r);
}

static void test_groupnorm(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(14);
    for (int trial = 0; trial < 30; trial++) {
        int groups = g_rand_int_range(r, 1, 5), c = groups * g_rand_int_range(r, 1, 5);
        int h = g_rand_int_range(r, 1, 40), w = g_rand_int_range(r, 1, 40);
        int affine = trial % 2;
        ps_tensor *x = ps_tensor_new(1, c, h, w), *gm = ps_tensor_new(c, 1, 1, 1), *bt = ps_tensor_new(c, 1, 1, 1);
        ps_tensor *want = ps_tensor_new(1, c, h, w), *got = ps_tensor_new(1, c, h, w);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 5);
        tu_fill_uniform(gm->data, c, r, 0.5f, 2);
        tu_fill_uniform(bt->data, c, r, -1, 1);
        ps_groupnorm_ref(x, groups, affine ? gm : NULL, affine ? bt : NULL, 1e-5f, want);
        const int cpg = c / groups;
        const size_t plane = (size_t)h * w;
        for (int gi = 0; gi < groups; gi++)
            k->groupnorm_group(x->data + gi * cpg * plane, got->data + gi * cpg * plane,
                               affine ? gm->data + gi * cpg : NULL, affine ? bt->data + gi * cpg : NULL,
                               cpg, plane, 1e-5f);
        char label[96];
        g_snprintf(label, sizeof label, "groupnorm c%d/%d %dx%d", c, groups, h, w);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(gm), ps_tensor_free(bt), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

/* The bilinear x2 kernel against ps_upsample2x_ref, whole planes and bands of rows, on widths
 * from 1 to 70 (the vector blocks, the row's end one at a time, and rows narrower than a block). */
static void test_upsample2x(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(37);
    for (int trial = 0; trial < 60; trial++) {
        const int h = g_rand_int_range(r, 1, 20), w = trial < 50 ? 1 + trial : g_rand_int_range(r, 1, 71);
        ps_tensor *x = ps_tensor_new(1, 1, h, w), *want = ps_tensor_new(1, 1, 2 * h, 2 * w);
        ps_tensor *got = ps_tensor_new(1, 1, 2 * h, 2 * w);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 3);
        ps_upsample2x_ref(x, want);
        ps_lin_tap *rows = g_new(ps_lin_tap, 2 * h), *cols = g_new(ps_lin_tap, 2 * w);
        ps_lin_taps(rows, h, 2 * h);
        ps_lin_taps(cols, w, 2 * w);
        const int band = g_rand_int_range(r, 1, 2 * h + 1); /* output rows per call */
        for (int r0 = 0; r0 < 2 * h; r0 += band)
            k->upsample2x(x->data, h, w, rows + r0, MIN(band, 2 * h - r0), cols, 2 * w, got->data + (size_t)r0 * 2 * w);
        char label[64];
        g_snprintf(label, sizeof label, "upsample2x %dx%d, bands of %d", h, w, band);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-6);
        g_free(rows), g_free(cols);
        ps_tensor_free(x), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

/* Channel mean and max, 1-40 channels, 1-300 positions: against the definition (a double sum,
 * an exact max), and against ps_channel_mean_max_run bit for bit (the same body, here built for
 * the set: no flag of the set's may change its bits). */
static void test_channel_mean_max(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(41);
    for (int trial = 0; trial < 60; trial++) {
        const int c = g_rand_int_range(r, 1, 41);
        const size_t len = (size_t)g_rand_int_range(r, 1, 301), plane = len + (size_t)g_rand_int_range(r, 0, 20);
        float *x = g_new(float, (size_t)c * plane), *want = g_new(float, 2 * len), *got = g_new(float, 2 * len);
        tu_fill_uniform(x, (size_t)c * plane, r, -3, 3);
        ps_channel_mean_max_run(x, plane, c, len, want, want + len);
        k->channel_mean_max(x, plane, c, len, got, got + len);
        if (memcmp(got, want, 2 * len * sizeof(float)))
            g_test_fail_printf("%s channel mean/max, %d channels of %zu: not the reference's bits", k->name, c, len);
        for (size_t i = 0; i < len; i++) {
            double sum = 0;
            float max = x[i];
            for (int ch = 0; ch < c; ch++) {
                sum += x[(size_t)ch * plane + i];
                max = MAX(max, x[(size_t)ch * plane + i]);
            }
            if (fabs(got[i] - sum / c) > 1e-5 || got[len + i] != max)
                g_test_fail_printf("%s channel mean/max at %zu of %d channels: %g, %g; want %g, %g", k->name, i, c,
                                   got[i], got[len + i], sum / c, max);
        }
        g_free(x), g_free(want), g_free(got);
    }
    g_rand_free(r);
}

/* GroupNorm statistics against a two-pass sum in double, on maps from 1 value to 300k: centred,
 * far from 0 with a small spread (mean 1000, spread 0.01: a shift near 0 would leave no digit of
 * the variance), and built to fool a sample of the map: 1000.3 +- 0.01 except 1000 at the 64
 * values i n / 64, among them the 16 the kernels' shift is taken from (white-box: its second
 * pass must catch this), and 1000 except 1000.5 on every 64th value. */
static void test_groupnorm_stats(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(31);
    static const size_t sizes[] = {1, 2, 7, 63, 64, 65, 1000, 4096, 65536, 70001, 300000};
    float *x = g_new(float, 300000);
    for (size_t si = 0; si < G_N_ELEMENTS(sizes); si++)
        for (int kind = 0; kind < 4; kind++) {
            const size_t n = sizes[si];
            if (kind == 0)
                tu_fill_uniform(x, n, r, -3, 5);
            else if (kind == 1)
                tu_fill_uniform(x, n, r, 999.99f, 1000.01f);
            else if (kind == 2) {
                tu_fill_uniform(x, n, r, 1000.29f, 1000.31f);
                for (size_t i = 0; i < 64; i++)
                    x[i * n / 64] = 1000.f;
            } else
                for (size_t i = 0; i < n; i++)
                    x[i] = i % 64 ? 1000.f : 1000.5f;
            double m = 0, v = 0;
            for (size_t i = 0; i < n; i++)
                m += x[i];
            m /= n;
            for (size_t i = 0; i < n; i++)
                v += (x[i] - m) * (x[i] - m);
            v /= n;
            float mean, invstd;
            k->groupnorm_stats(x, n, 1e-5f, &mean, &invstd);
            const double want = 1 / sqrt(v + 1e-5);
            if (fabs(mean - m) > 1e-6 * fmax(1, fabs(m)) || fabs(invstd - want) > 2e-5 * want)
                g_test_fail_printf("%s groupnorm stats, %zu values of kind %d: mean %.9g invstd %.9g, want %.9g %.9g",
                                   k->name, n, kind, mean, invstd, m, want);
        }
    g_free(x);
    g_rand_free(r);
}

/* The decoder step on one plane against the references in the model's order: GroupNorm's affine,
 * bilinear x2 (or none), exact GELU, + skip; and the GroupNorm statistics alone. */
static void test_decoder_step(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(29);
    for (int trial = 0; trial < 40; trial++) {
        const int h = g_rand_int_range(r, 1, 24), w = g_rand_int_range(r, 1, 24), up = trial % 3 != 0;
        const int ho = up ? 2 * h : h, wo = up ? 2 * w : w;
        const float scale = (float)g_rand_double_range(r, -2, 2), shift = (float)g_rand_double_range(r, -1, 1);
        ps_tensor *x = ps_tensor_new(1, 1, h, w), *skip = ps_tensor_new(1, 1, ho, wo);
        ps_tensor *up2 = ps_tensor_new(1, 1, ho, wo), *want = ps_tensor_new(1, 1, ho, wo), *got = ps_tensor_new(1, 1, ho, wo);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 3);
        tu_fill_uniform(skip->data, ps_numel(skip), r, -1, 1);
        ps_tensor *affine = ps_tensor_new(1, 1, h, w);
        for (size_t i = 0; i < ps_numel(x); i++)
            affine->data[i] = x->data[i] * scale + shift;
        if (up)
            ps_upsample2x_ref(affine, up2);
        else
            memcpy(up2->data, affine->data, ps_numel(affine) * sizeof(float));
        ps_gelu_ref(up2, want);
        ps_add_ref(want, skip, want);
        ps_lin_tap rows[48], cols[48];
        ps_lin_taps(rows, h, ho);
        ps_lin_taps(cols, w, wo);
        k->affine_up2_gelu_add(x->data, h, w, up ? rows : NULL, ho, cols, wo, scale, shift, skip->data, got->data);
        char label[96];
        g_snprintf(label, sizeof label, "decoder step %dx%d%s", h, w, up ? " up2" : "");
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        float mean, invstd;
        k->groupnorm_stats(x->data, ps_numel(x), 1e-5f, &mean, &invstd);
        double m = 0, v = 0;
        for (size_t i = 0; i < ps_numel(x); i++)
            m += x->data[i];
        m /= ps_numel(x);
        for (size_t i = 0; i < ps_numel(x); i++)
            v += (x->data[i] - m) * (x->data[i] - m);
        v /= ps_numel(x);
        g_assert_cmpfloat(fabs(mean - m), <=, 1e-6);
        g_assert_cmpfloat(fabs(invstd - 1 / sqrt(v + 1e-5)), <=, 1e-5 / sqrt(v + 1e-5));
        ps_tensor_free(x), ps_tensor_free(skip), ps_tensor_free(up2), ps_tensor_free(want), ps_tensor_free(got),
            ps_tensor_free(affine);
    }
    g_rand_free(r);
}

/* The encoder step on one plane against the references: affine (both signs of scale), 2x2
 * max-pool (odd sides drop the last row/column), exact GELU. */
static void test_encoder_step(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(37);
    for (int trial = 0; trial < 40; trial++) {
        const int h = g_rand_int_range(r, 2, 30), w = g_rand_int_range(r, 2, 30);
        const float scale = trial == 0 ? 0.f : (float)g_rand_double_range(r, -2, 2);
        const float shift = (float)g_rand_double_range(r, -1, 1);
        ps_tensor *x = ps_tensor_new(1, 1, h, w), *affine = ps_tensor_new(1, 1, h, w);
        ps_tensor *pooled = ps_tensor_new(1, 1, h / 2, w / 2), *want = ps_tensor_new(1, 1, h / 2, w / 2);
        ps_tensor *got = ps_tensor_new(1, 1, h / 2, w / 2);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 3);
        for (size_t i = 0; i < ps_numel(x); i++)
            affine->data[i] = x->data[i] * scale + shift;
        ps_maxpool2x2_ref(affine, pooled);
        ps_gelu_ref(pooled, want);
        k->affine_pool2_gelu(x->data, h, w, scale, shift, got->data);
        char label[96];
        g_snprintf(label, sizeof label, "encoder step %dx%d scale %.2f", h, w, scale);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(affine), ps_tensor_free(pooled), ps_tensor_free(want), ps_tensor_free(got);
    }
    g_rand_free(r);
}

/* LSCAB's output: the kernel per ISA and the graph's fused inference pass against the separate
 * broadcasting ops training records. */
static void test_attend_residual(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(43);
    ps_tensor *t = ps_tensor_new(2, 5, 11, 14), *ca = ps_tensor_new(2, 5, 1, 1), *sa = ps_tensor_new(2, 1, 11, 14);
    ps_tensor *alpha = ps_tensor_new(1, 1, 1, 1), *beta = ps_tensor_new(1, 1, 1, 1);
    tu_fill_uniform(t->data, ps_numel(t), r, -2, 2);
    tu_fill_uniform(ca->data, ps_numel(ca), r, 0, 1);
    tu_fill_uniform(sa->data, ps_numel(sa), r, 0, 1);
    alpha->data[0] = 0.7f;
    beta->data[0] = -0.3f;
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    ps_tensor *want = ps_g_attend_residual(&g, t, ca, sa, alpha, beta); /* training: separate ops */
    g_assert_cmpint(g.n_nodes, ==, 5);
    ps_tensor *got = ps_tensor_new(2, 5, 11, 14);
    const size_t plane = 11 * 14;
    for (int u = 0; u < 10; u++)
        k->attend_residual(t->data + u * plane, sa->data + u / 5 * plane, 0.7f * ca->data[u], -0.3f,
                           got->data + u * plane, plane);
    tu_assert_close("attend_residual kernel", got->data, want->data, ps_numel(want), 1e-6);
    ps_graph_release(&g);
    ps_graph_init(&g, arena, 0);
    ps_tensor *fused = ps_g_attend_residual(&g, t, ca, sa, alpha, beta);
    tu_assert_close("attend_residual in the graph", fused->data, want->data, ps_numel(want), 1e-6);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(t), ps_tensor_free(ca), ps_tensor_free(sa), ps_tensor_free(alpha), ps_tensor_free(beta),
        ps_tensor_free(got);
    g_rand_free(r);
}

/* An inference graph (index 0) and a training graph (1), each on its own arena: fused ops
 * against the separate ops training records. */
typedef struct {
    ps_arena *arena[2];
    ps_graph g[2];
} graph_pair;

static void graph_pair_init(graph_pair *p)
{
    for (int training = 0; training < 2; training++) {
        p->arena[training] = ps_arena_new();
        ps_graph_init(&p->g[training], p->arena[training], training);
    }
}

static void graph_pair_free(graph_pair *p)
{
    for (int training = 0; training < 2; training++) {
        ps_graph_release(&p->g[training]);
        ps_arena_free(p->arena[training]);
    }
}

/* An inference graph on its own arena whose ops share `threads` threads (1: no pool). */
typedef struct {
    ps_arena *arena;
    ps_graph g;
} threaded_graph;

static void threaded_graph_init(threaded_graph *t, int threads)
{
    t->arena = ps_arena_new();
    ps_graph_init(&t->g, t->arena, 0);
    t->g.pool = threads > 1 ? ps_pool_new(threads) : NULL;
}

static void threaded_graph_free(threaded_graph *t)
{
    ps_pool_free(t->g.pool);
    ps_graph_release(&t->g);
    ps_arena_free(t->arena);
}

/* The graph's decoder step: the fused inference pass equals the separate ops training records. */
static void test_graph_decoder_step(void)
{
    GRand *r = g_rand_new_with_seed(31);
    for (int up = 0; up < 2; up++) {
        ps_tensor *x = ps_tensor_new(2, 8, 9, 13), *gm = ps_tensor_new(8, 1, 1, 1), *bt = ps_tensor_new(8, 1, 1, 1);
        ps_tensor *skip = ps_tensor_new(2, 8, up ? 18 : 9, up ? 26 : 13);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 4);
        tu_fill_uniform(gm->data, 8, r, -1.5f, 1.5f);
        tu_fill_uniform(bt->data, 8, r, -1, 1);
        tu_fill_uniform(skip->data, ps_numel(skip), r, -1, 1);
        ps_tensor *out[2];
        graph_pair gp;
        graph_pair_init(&gp);
        for (int training = 0; training < 2; training++)
            out[training] = ps_g_groupnorm_up2_gelu_add(&gp.g[training], x, 4, gm, bt, 1e-5f, up, skip);
        g_assert_cmpint(gp.g[1].n_nodes, ==, up ? 4 : 3); /* training: each op recorded */
        g_assert_cmpint(gp.g[0].n_nodes, ==, 0);
        tu_assert_close(up ? "fused decoder step, x2" : "fused decoder step", out[0]->data, out[1]->data,
                        ps_numel(out[1]), 1e-5);
        graph_pair_free(&gp);
        ps_tensor_free(x), ps_tensor_free(gm), ps_tensor_free(bt), ps_tensor_free(skip);
    }
    g_rand_free(r);
}

/* Gradients of t[0..2] (an op's input, weight and bias, each given random start gradients by
 * with_grad) from the graph's backward against a reference backward from the same start: take
 * the start values before ps_backward, then swap them back in, run the reference, and compare. */
typedef struct {
    ps_tensor *t[3];
    float *start[3], *graph[3];
} grad_check;

static void grad_check_start(grad_check *gc, ps_tensor *x, ps_tensor *w, ps_tensor *b)
{
    ps_tensor *t[3] = {x, w, b};
    for (int i = 0; i < 3; i++) {
        gc->t[i] = t[i];
        gc->start[i] = g_memdup2(t[i]->grad, ps_numel(t[i]) * sizeof(float));
    }
}

/* After ps_backward: the reference is to run next, from the start values. */
static void grad_check_swap(grad_check *gc)
{
    for (int i = 0; i < 3; i++) {
        gc->graph[i] = gc->t[i]->grad;
        gc->t[i]->grad = gc->start[i]; /* the tensors own (and free) these now */
    }
}

static void grad_check_compare(grad_check *gc, const char *what)
{
    static const char *const names[3] = {"input", "weight", "bias"};
    for (int i = 0; i < 3; i++) {
        char label[96];
        g_snprintf(label, sizeof label, "%s backward, %s gradient", what, names[i]);
        tu_assert_close(label, gc->graph[i], gc->t[i]->grad, ps_numel(gc->t[i]), 1e-5);
        g_free(gc->graph[i]);
    }
}

/* A depthwise 1x1 conv (per-channel scale and bias, LDGA's) through the training graph's
 * backward against ps_conv2d_backward, batch of two. */
static void test_graph_depthwise1x1_backward(void)
{
    GRand *r = g_rand_new_with_seed(35);
    const int c = 6;
    ps_tensor *x = with_grad(ps_tensor_new(2, c, 13, 21), r), *w = with_grad(ps_tensor_new(c, 1, 1, 1), r);
    ps_tensor *b = with_grad(ps_tensor_new(c, 1, 1, 1), r);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
    tu_fill_uniform(w->data, c, r, -1, 1);
    tu_fill_uniform(b->data, c, r, -1, 1);
    grad_check gc;
    grad_check_start(&gc, x, w, b);
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    ps_tensor *y = ps_g_conv2d(&g, x, w, b, 1, 0, 1, c);
    y->grad = ps_arena_alloc(arena, ps_numel(y) * sizeof(float));
    tu_fill_uniform(y->grad, ps_numel(y), r, -1, 1);
    ps_backward(&g, y);
    grad_check_swap(&gc);
    ps_conv2d_params p = {1, 0, 0, 1, c};
    ps_conv2d_backward(x, w, b, &p, y);
    grad_check_compare(&gc, "depthwise 1x1");
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(x), ps_tensor_free(w), ps_tensor_free(b);
    g_rand_free(r);
}

/* The graph's ops done in bands of rows shared by the threads (channel mean/max, reflect padding)
 * equal their references bit for bit, with 1 to 3 threads; the bilinear x2 (the upsample2x
 * kernel, whose multiply-adds may be fused) is within 1e-6 of its reference and gives the same
 * bits whatever the threads. */
static void test_graph_banded_ops(void)
{
    GRand *r = g_rand_new_with_seed(34);
    const int shapes[][4] = {{2, 3, 17, 9}, {1, 1, 40, 33}, {1, 2, 5, 5}, {1, 4, 37, 64}};
    for (size_t k = 0; k < G_N_ELEMENTS(shapes); k++) {
        ps_tensor *x = ps_tensor_new(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]);
        ps_tensor *up = ps_tensor_new(x->n, x->c, 2 * x->h, 2 * x->w), *mm = ps_tensor_new(x->n, 2, x->h, x->w);
        ps_tensor *pad = ps_tensor_new(x->n, x->c, x->h + 6, x->w + 6), *avg = ps_tensor_new(x->n, x->c, 1, 1);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 3);
        ps_global_avgpool_ref(x, avg);
        ps_upsample2x_ref(x, up);
        ps_channel_mean_max_ref(x, mm);
        ps_reflect_pad_ref(x, 3, pad);
        float *up_one_thread = g_new(float, ps_numel(up));
        for (int threads = 1; threads <= 3; threads++) {
            threaded_graph tg;
            threaded_graph_init(&tg, threads);
            ps_graph *g = &tg.g;
            const ps_tensor *want[2] = {mm, pad};
            ps_tensor *got[2] = {ps_g_channel_mean_max(g, x), ps_g_reflect_pad(g, x, 3)};
            for (int o = 0; o < 2; o++)
                g_assert_cmpmem(got[o]->data, ps_numel(got[o]) * sizeof(float), want[o]->data,
                                ps_numel(want[o]) * sizeof(float));
            const ps_tensor *gup = ps_g_upsample2x(g, x);
            tu_assert_close("bilinear x2", gup->data, up->data, ps_numel(up), 1e-6);
            if (threads == 1)
                memcpy(up_one_thread, gup->data, ps_numel(up) * sizeof(float));
            g_assert_cmpmem(gup->data, ps_numel(up) * sizeof(float), up_one_thread, ps_numel(up) * sizeof(float));
            /* the plane means: the kernels' lane sums against the reference's double sums */
            tu_assert_close("global average pool", ps_g_global_avgpool(g, x)->data, avg->data, ps_numel(avg), 1e-6);
            threaded_graph_free(&tg);
        }
        g_free(up_one_thread);
        ps_tensor_free(x), ps_tensor_free(up), ps_tensor_free(mm), ps_tensor_free(pad), ps_tensor_free(avg);
    }
    g_rand_free(r);
}

/* The fused inference ops: LDGA's gate against the scalar references (within 1e-5 of the
 * output's scale) and bit for bit against the graph's separate ops (the same kernels on the same
 * runs); the DSD pass against the separate ops; for 1-3 threads, on shapes whose last run of
 * positions is partial. */
static void test_graph_fused_gate_dsd(void)
{
    GRand *r = g_rand_new_with_seed(35);
    /* the last two are big enough (8192 values and more) for the DSD pass to split over threads */
    const int shapes[][4] = {{2, 5, 17, 9}, {1, 3, 40, 33}, {1, 1, 6, 7}, {1, 8, 37, 64}, {2, 6, 40, 20}};
    for (size_t k = 0; k < G_N_ELEMENTS(shapes); k++) {
        const int c = shapes[k][1], cout = c + 2;
        ps_tensor *x = ps_tensor_new(shapes[k][0], c, shapes[k][2], shapes[k][3]);
        ps_tensor *wg = ps_tensor_new(1, c, 1, 1), *w = ps_tensor_new(cout, c, 1, 1), *b = ps_tensor_new(cout, 1, 1, 1);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 3);
        tu_fill_uniform(wg->data, c, r, -1, 1);
        tu_fill_uniform(w->data, ps_numel(w), r, -1, 1);
        tu_fill_uniform(b->data, cout, r, -0.5f, 0.5f);
        ps_tensor *wdw = ps_tensor_new(c, 1, 3, 3), *bdw = ps_tensor_new(c, 1, 1, 1);
        tu_fill_uniform(wdw->data, ps_numel(wdw), r, -1, 1);
        tu_fill_uniform(bdw->data, c, r, -0.5f, 0.5f);
        /* the gate's reference: x * sigmoid(conv(x, wg)) */
        const ps_conv2d_params p = {1, 0, 0, 1, 1};
        ps_tensor *logit = ps_tensor_new(x->n, 1, x->h, x->w), *gate = ps_tensor_new(x->n, 1, x->h, x->w);
        ps_tensor *gated = ps_tensor_new(x->n, c, x->h, x->w);
        ps_conv2d_ref(x, wg, NULL, &p, logit);
        ps_sigmoid_ref(logit, gate);
        ps_mul_ref(x, gate, gated);
        float *dsd_one_thread[4] = {NULL};
        for (int threads = 1; threads <= 3; threads++) {
            threaded_graph tg;
            threaded_graph_init(&tg, threads);
            ps_graph *g = &tg.g;
            ps_tensor *fg = ps_g_gate(g, x, wg);
            tu_assert_close("gate", fg->data, gated->data, ps_numel(gated), 1e-5);
            ps_tensor *sg = ps_g_mul(g, x, ps_g_sigmoid(g, ps_g_conv2d(g, x, wg, NULL, 1, 0, 1, 1)));
            g_assert_cmpmem(fg->data, ps_numel(fg) * sizeof(float), sg->data, ps_numel(sg) * sizeof(float));
            /* the depthwise 3x3 + pointwise pass (DSD), dilation 1 and 2, with and without the GELU,
             * against the separate graph ops: bands start at any position, so within 1e-6 */
            for (int d = 1; d <= 2; d++)
                for (int gelu = 0; gelu <= 1; gelu++) {
                    ps_tensor *dd = ps_g_depthwise_pointwise_relu(g, x, wdw, bdw, d, w, b, gelu, NULL);
                    /* and the same bits for any thread count */
                    float **first = &dsd_one_thread[(d - 1) * 2 + gelu];
                    if (threads == 1)
                        *first = g_memdup2(dd->data, ps_numel(dd) * sizeof(float));
                    else
                        g_assert_cmpmem(dd->data, ps_numel(dd) * sizeof(float), *first, ps_numel(dd) * sizeof(float));
                    ps_tensor *sd = ps_g_conv2d_relu(g, x, wdw, bdw, 1, d, d, c);
                    sd = gelu ? ps_g_gelu(g, ps_g_conv2d_relu(g, sd, w, b, 1, 0, 1, 1))
                              : ps_g_conv2d_relu(g, sd, w, b, 1, 0, 1, 1);
                    char label[80];
                    g_snprintf(label, sizeof label, "depthwise + pointwise, d %d, gelu %d", d, gelu);
                    tu_assert_close(label, dd->data, sd->data, ps_numel(sd), 1e-6);
                    /* with the DWD's residual: GELU(DSD + add) in the same pass, the bits of the
                     * pass without it followed by the add + GELU op */
                    if (!gelu) {
                        ps_tensor *add = ps_arena_tensor(g->arena, x->n, cout, x->h, x->w);
                        tu_fill_uniform(add->data, ps_numel(add), r, -2, 2);
                        ps_tensor *fused = ps_g_depthwise_pointwise_relu(g, x, wdw, bdw, d, w, b, 0, add);
                        ps_tensor *apart = ps_g_add_gelu(g, dd, add);
                        g_assert_cmpmem(fused->data, ps_numel(fused) * sizeof(float), apart->data,
                                        ps_numel(apart) * sizeof(float));
                    }
                    /* and against the scalar references chained: conv, ReLU, conv, ReLU (, GELU) */
                    if (threads == 1) {
                        const ps_conv2d_params pd = {1, d, d, d, c}, pp = {1, 0, 0, 1, 1};
                        ps_tensor *t1 = ps_tensor_new(x->n, c, x->h, x->w), *t2 = ps_tensor_new(x->n, cout, x->h, x->w);
                        ps_conv2d_ref(x, wdw, bdw, &pd, t1);
                        ps_relu_ref(t1, t1);
                        ps_conv2d_ref(t1, w, b, &pp, t2);
                        ps_relu_ref(t2, t2);
                        if (gelu)
                            ps_gelu_ref(t2, t2);
                        g_strlcat(label, " vs references", sizeof label);
                        tu_assert_close(label, dd->data, t2->data, ps_numel(t2), 1e-5);
                        ps_tensor_free(t1), ps_tensor_free(t2);
                    }
                }
            threaded_graph_free(&tg);
        }
        ps_tensor_free(x), ps_tensor_free(wg), ps_tensor_free(w), ps_tensor_free(b), ps_tensor_free(logit);
        ps_tensor_free(gate), ps_tensor_free(gated);
        ps_tensor_free(wdw), ps_tensor_free(bdw);
        for (int i = 0; i < 4; i++)
            g_free(dsd_one_thread[i]);
    }
    g_rand_free(r);
}

/* LSCAB's fused spatial attention against the separate graph ops (channel mean/max, reflect
 * padding, 7x7 conv, sigmoid, attend): the same kernels on the same rows, so bit for bit, for
 * 1-3 threads and two images, on maps from the deepest (8x8) to ones that split. */
static void test_graph_fused_spatial_attend(void)
{
    GRand *r = g_rand_new_with_seed(36);
    const int shapes[][4] = {{1, 32, 8, 8}, {2, 5, 17, 23}, {1, 4, 64, 64}, {2, 3, 40, 33}};
    for (size_t k = 0; k < G_N_ELEMENTS(shapes); k++) {
        ps_tensor *t = ps_tensor_new(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]);
        ps_tensor *w = ps_tensor_new(1, 2, 7, 7), *ca = ps_tensor_new(t->n, t->c, 1, 1);
        ps_tensor *alpha = ps_tensor_new(1, 1, 1, 1), *beta = ps_tensor_new(1, 1, 1, 1);
        tu_fill_uniform(t->data, ps_numel(t), r, -2, 3);
        tu_fill_uniform(w->data, ps_numel(w), r, -0.3f, 0.3f);
        tu_fill_uniform(ca->data, ps_numel(ca), r, 0, 1);
        alpha->data[0] = 0.7f, beta->data[0] = -0.4f;
        /* the scalar references chained: sa = sigmoid(conv7x7(reflect_pad3(mean/max over channels))),
         * y = (alpha ca + beta sa) t + t */
        ps_tensor *mm = ps_tensor_new(t->n, 2, t->h, t->w), *pad = ps_tensor_new(t->n, 2, t->h + 6, t->w + 6);
        ps_tensor *sa_ref = ps_tensor_new(t->n, 1, t->h, t->w), *ref = ps_tensor_new(t->n, t->c, t->h, t->w);
        const ps_conv2d_params pv = {1, 0, 0, 1, 1};
        ps_channel_mean_max_ref(t, mm);
        ps_reflect_pad_ref(mm, 3, pad);
        ps_conv2d_ref(pad, w, NULL, &pv, sa_ref);
        ps_sigmoid_ref(sa_ref, sa_ref);
        const size_t plane = (size_t)t->h * t->w;
        for (int n = 0; n < t->n; n++)
            for (int ch = 0; ch < t->c; ch++)
                for (size_t i = 0; i < plane; i++) {
                    const size_t at = ((size_t)n * t->c + ch) * plane + i;
                    const double a = (double)alpha->data[0] * ca->data[n * t->c + ch] +
                                     (double)beta->data[0] * sa_ref->data[(size_t)n * plane + i];
                    ref->data[at] = (float)(a * t->data[at] + t->data[at]);
                }
        for (int threads = 1; threads <= 3; threads++) {
            threaded_graph tg;
            threaded_graph_init(&tg, threads);
            ps_graph *g = &tg.g;
            ps_tensor *fused = ps_g_spatial_attend(g, t, w, ca, alpha, beta);
            ps_tensor *sa = ps_g_reflect_pad(g, ps_g_channel_mean_max(g, t), 3);
            sa = ps_g_sigmoid(g, ps_g_conv2d(g, sa, w, NULL, 1, 0, 1, 1));
            ps_tensor *want = ps_g_attend_residual(g, t, ca, sa, alpha, beta);
            g_assert_cmpmem(fused->data, ps_numel(fused) * sizeof(float), want->data, ps_numel(want) * sizeof(float));
            tu_assert_close("spatial attention vs references", fused->data, ref->data, ps_numel(ref), 1e-5);
            threaded_graph_free(&tg);
        }
        ps_tensor_free(mm), ps_tensor_free(pad), ps_tensor_free(sa_ref), ps_tensor_free(ref);
        ps_tensor_free(t), ps_tensor_free(w), ps_tensor_free(ca), ps_tensor_free(alpha), ps_tensor_free(beta);
    }
    g_rand_free(r);
}

/* Training-mode batch-norm in the graph (the kernels' sums) against ps_batchnorm_train_ref and
 * ps_batchnorm_train_backward: output, saved and running statistics, and every gradient. */
static void test_graph_batchnorm_train(void)
{
    GRand *r = g_rand_new_with_seed(33);
    const int c = 5;
    ps_tensor *x = with_grad(ps_tensor_new(3, c, 17, 23), r), *gm = with_grad(ps_tensor_new(c, 1, 1, 1), r);
    ps_tensor *bt = with_grad(ps_tensor_new(c, 1, 1, 1), r);
    ps_tensor *mean[2], *var[2];
    tu_fill_uniform(x->data, ps_numel(x), r, -1, 7);
    tu_fill_uniform(gm->data, c, r, -1.5f, 1.5f);
    tu_fill_uniform(bt->data, c, r, -1, 1);
    for (int i = 0; i < 2; i++) {
        mean[i] = ps_tensor_new(c, 1, 1, 1), var[i] = ps_tensor_new(c, 1, 1, 1);
        for (int k = 0; k < c; k++)
            mean[i]->data[k] = 0.1f * k, var[i]->data[k] = 1.f + k;
    }
    float save_mean[5], save_invstd[5];
    ps_tensor *want = ps_tensor_new(3, c, 17, 23);
    ps_batchnorm_train_ref(x, gm, bt, mean[0], var[0], 0.1f, 1e-5f, want, save_mean, save_invstd);
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    g.bn_momentum = 0.1f;
    ps_tensor *got = ps_g_batchnorm(&g, x, gm, bt, mean[1], var[1], 1e-5f);
    tu_assert_close("batch-norm (training) output", got->data, want->data, ps_numel(want), 1e-5);
    tu_assert_close("saved mean", g.nodes[0].save_mean, save_mean, c, 1e-6);
    tu_assert_close("saved 1/std", g.nodes[0].save_invstd, save_invstd, c, 1e-6);
    tu_assert_close("running mean", mean[1]->data, mean[0]->data, c, 1e-6);
    tu_assert_close("running var", var[1]->data, var[0]->data, c, 1e-6);
    /* backward: the graph's, then the reference's from the same start gradients */
    grad_check gc;
    grad_check_start(&gc, x, gm, bt);
    got->grad = ps_arena_alloc(arena, ps_numel(got) * sizeof(float));
    tu_fill_uniform(got->grad, ps_numel(got), r, -1, 1);
    ps_backward(&g, got);
    grad_check_swap(&gc);
    want->grad = got->grad;
    ps_batchnorm_train_backward(x, gm, bt, save_mean, save_invstd, want);
    want->grad = NULL;
    grad_check_compare(&gc, "batch-norm");
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(x), ps_tensor_free(gm), ps_tensor_free(bt), ps_tensor_free(want);
    for (int i = 0; i < 2; i++)
        ps_tensor_free(mean[i]), ps_tensor_free(var[i]);
    g_rand_free(r);
}

/* GroupNorm folded into the next pointwise conv, with or without a residual added as it stores
 * and a depthwise 1x1 before the norm (inference, one image), against the separate ops (training
 * records them). The fold cancels the mean inside the conv's sum, so its error grows with
 * |mean| / spread like the rounding of the input itself: 1e-5 up to 20x, the ops' 1e-4 at 100x. */
static void test_graph_groupnorm_pointwise(void)
{
    GRand *r = g_rand_new_with_seed(43);
    const float offsets[] = {0.f, 3.f, -20.f, 100.f, 0.5f, -4.f, 20.f};
    for (size_t o = 0; o < G_N_ELEMENTS(offsets); o++) {
        const int pre = o >= 4; /* the depthwise 1x1 (scales of either sign, one channel all zero) */
        const int cin = 12, cout = 8 + (int)o;
        ps_tensor *x = ps_tensor_new(1, cin, 19, 23), *gm = ps_tensor_new(cin, 1, 1, 1), *bt = ps_tensor_new(cin, 1, 1, 1);
        ps_tensor *w = ps_tensor_new(cout, cin, 1, 1), *b = ps_tensor_new(cout, 1, 1, 1);
        tu_fill_uniform(x->data, ps_numel(x), r, offsets[o] - 1, offsets[o] + 1);
        tu_fill_uniform(gm->data, cin, r, -1.5f, 1.5f);
        tu_fill_uniform(bt->data, cin, r, -1, 1);
        tu_fill_uniform(w->data, ps_numel(w), r, -1, 1);
        tu_fill_uniform(b->data, cout, r, -1, 1);
        ps_tensor *res = ps_tensor_new(1, cout, 19, 23); /* a residual in the last two cases */
        tu_fill_uniform(res->data, ps_numel(res), r, -2, 2);
        ps_tensor *out[2];
        graph_pair gp;
        graph_pair_init(&gp);
        ps_tensor *dw = ps_tensor_new(cin, 1, 1, 1), *db = ps_tensor_new(cin, 1, 1, 1);
        tu_fill_uniform(dw->data, cin, r, -2, 2);
        tu_fill_uniform(db->data, cin, r, -1, 1);
        dw->data[5] = 0;
        for (int training = 0; training < 2; training++)
            out[training] = ps_g_groupnorm_pointwise(&gp.g[training], x, pre ? dw : NULL, pre && o != 5 ? db : NULL, 4,
                                                     gm, o % 2 ? bt : NULL, 1e-5f, w, o % 2 ? NULL : b,
                                                     o >= 2 ? res : NULL);
        g_assert_cmpint(gp.g[1].n_nodes, ==, (o >= 2 ? 3 : 2) + pre);
        g_assert_cmpint(gp.g[0].n_nodes, ==, 0);
        char label[64];
        g_snprintf(label, sizeof label, "%sgroupnorm + pointwise, offset %g", pre ? "dw1x1 + " : "", offsets[o]);
        tu_assert_close(label, out[0]->data, out[1]->data, ps_numel(out[1]), fabsf(offsets[o]) > 20 ? 1e-4 : 1e-5);
        graph_pair_free(&gp);
        ps_tensor_free(x), ps_tensor_free(gm), ps_tensor_free(bt), ps_tensor_free(w), ps_tensor_free(b);
        ps_tensor_free(res), ps_tensor_free(dw), ps_tensor_free(db);
    }
    g_rand_free(r);
}

/* The graph's encoder step, likewise (negative GroupNorm scales included). */
static void test_graph_encoder_step(void)
{
    GRand *r = g_rand_new_with_seed(41);
    ps_tensor *x = ps_tensor_new(2, 8, 17, 22), *gm = ps_tensor_new(8, 1, 1, 1), *bt = ps_tensor_new(8, 1, 1, 1);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 4);
    tu_fill_uniform(gm->data, 8, r, -1.5f, 1.5f);
    tu_fill_uniform(bt->data, 8, r, -1, 1);
    ps_tensor *out[2];
    graph_pair gp;
    graph_pair_init(&gp);
    for (int training = 0; training < 2; training++)
        out[training] = ps_g_groupnorm_maxpool_gelu(&gp.g[training], x, 4, gm, bt, 1e-5f);
    g_assert_cmpint(gp.g[1].n_nodes, ==, 3);
    g_assert_cmpint(out[0]->h, ==, 8);
    tu_assert_close("fused encoder step", out[0]->data, out[1]->data, ps_numel(out[1]), 1e-5);
    graph_pair_free(&gp);
    ps_tensor_free(x), ps_tensor_free(gm), ps_tensor_free(bt);
    g_rand_free(r);
}

/* The graph's residual add + GELU (inference) against the references, 1-3 threads. */
static void test_graph_add_gelu(void)
{
    GRand *r = g_rand_new_with_seed(37);
    const int shapes[][4] = {{2, 5, 17, 9}, {1, 8, 37, 64}, {1, 1, 1, 3}};
    for (size_t k = 0; k < G_N_ELEMENTS(shapes); k++) {
        ps_tensor *a = ps_tensor_new(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]);
        ps_tensor *b = ps_tensor_new(a->n, a->c, a->h, a->w), *want = ps_tensor_new(a->n, a->c, a->h, a->w);
        tu_fill_uniform(a->data, ps_numel(a), r, -4, 4);
        tu_fill_uniform(b->data, ps_numel(b), r, -4, 4);
        ps_add_ref(a, b, want);
        ps_gelu_ref(want, want);
        for (int threads = 1; threads <= 3; threads++) {
            threaded_graph tg;
            threaded_graph_init(&tg, threads);
            check("graph", "add + gelu", max_err_vs(ps_g_add_gelu(&tg.g, a, b)->data, want->data, ps_numel(want)), 1.2e-6);
            threaded_graph_free(&tg);
        }
        ps_tensor_free(a), ps_tensor_free(b), ps_tensor_free(want);
    }
    g_rand_free(r);
}

/* Batch-norm's lane sums against double sums, on lengths around every vector width and far
 * from zero (where float lanes would lose the most). */
static void test_sums(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(38);
    const size_t lengths[] = {1, 2, 7, 15, 16, 17, 31, 63, 64, 65, 1000, 100003};
    for (size_t li = 0; li < G_N_ELEMENTS(lengths); li++) {
        const size_t n = lengths[li];
        float *x = g_new(float, n), *dy = g_new(float, n);
        tu_fill_uniform(x, n, r, 99, 101);
        tu_fill_uniform(dy, n, r, -1, 1);
        double sx = 0;
        for (size_t i = 0; i < n; i++)
            sx += x[i];
        const float mean = (float)(sx / n);
        double sq = 0, sdy = 0, sdyx = 0;
        for (size_t i = 0; i < n; i++) {
            const double dev = (double)x[i] - mean;
            sq += dev * dev, sdy += dy[i], sdyx += dy[i] * dev;
        }
        double got_sdy, got_sdyx;
        k->sum_dotdev(dy, x, n, mean, &got_sdy, &got_sdyx);
        char label[48];
        g_snprintf(label, sizeof label, "sum n=%zu", n);
        check(k->name, label, fabs(k->sum(x, n) - sx) / fmax(1, fabs(sx)), 1e-6);
        g_snprintf(label, sizeof label, "sum_sqdev n=%zu", n);
        check(k->name, label, fabs(k->sum_sqdev(x, n, mean) - sq) / fmax(1, sq), 1e-6);
        g_snprintf(label, sizeof label, "sum_dotdev n=%zu", n);
        check(k->name, label, fmax(fabs(got_sdy - sdy), fabs(got_sdyx - sdyx)) / fmax(1, (double)n), 1e-6);
        g_free(x), g_free(dy);
    }
    g_rand_free(r);
}

/* An element-wise backward kernel against its reference, both adding into the same start
 * gradient; x uniform in [lo, hi], every zero_every-th x exactly 0 (0: none). */
static void unary_backward_case(const ps_kernels *k, const char *what, guint32 seed, float lo, float hi,
                                int zero_every, void (*ref)(const ps_tensor *, const ps_tensor *),
                                void (*kernel)(const float *, const float *, float *, size_t), double tol)
{
    GRand *r = g_rand_new_with_seed(seed);
    /* one long run, then every short length (each vector width's tail alone) */
    for (int i = 0; i <= 40; i++) {
        const int n = i ? i : 50001;
        ps_tensor *x = with_grad(ps_tensor_new(1, 1, 1, n), r), *y = with_grad(ps_tensor_new(1, 1, 1, n), r);
        tu_fill_uniform(x->data, n, r, lo, hi);
        for (int j = 0; zero_every && j < n; j += zero_every)
            x->data[j] = 0.f;
        float *got = g_new(float, n + 1);
        memcpy(got, x->grad, n * sizeof(float));
        got[n] = 12345.f;
        ref(x, y);
        kernel(x->data, y->grad, got, n);
        char label[64];
        g_snprintf(label, sizeof label, "%s n=%d", what, n);
        check(k->name, label, max_err_vs(got, x->grad, n), tol);
        if (got[n] != 12345.f)
            g_test_fail_printf("%s %s: wrote past its end", k->name, label);
        g_free(got);
        ps_tensor_free(x), ps_tensor_free(y);
    }
    g_rand_free(r);
}

static void test_gelu_backward(gconstpointer data)
{
    const ps_kernels *k = data;
    unary_backward_case(k, "gelu backward", 16, -12, 12, 0, ps_gelu_backward, k->gelu_backward, 2e-6);
}

/* exactly, with exact zeros among the inputs (no gradient there) */
static void test_relu_backward(gconstpointer data)
{
    const ps_kernels *k = data;
    unary_backward_case(k, "relu backward", 18, -1, 1, 7, ps_relu_backward, k->relu_backward, 0);
}

/* GroupNorm backward, group by group, against ps_groupnorm_backward (gx, gamma's and beta's
 * gradients, all added into the same random start values), with and without the affine. */
static void test_groupnorm_backward(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(20);
    for (int trial = 0; trial < 20; trial++) {
        const int groups = g_rand_int_range(r, 1, 5), c = groups * g_rand_int_range(r, 1, 5), cpg = c / groups;
        const int n = g_rand_int_range(r, 1, 3), h = g_rand_int_range(r, 1, 40), w = g_rand_int_range(r, 1, 40);
        const int affine = trial % 2, want_gx = trial % 5 != 3; /* gx not wanted: NULL */
        const size_t plane = (size_t)h * w;
        ps_tensor *x = with_grad(ps_tensor_new(n, c, h, w), r), *y = with_grad(ps_tensor_new(n, c, h, w), r);
        ps_tensor *gm = with_grad(ps_tensor_new(c, 1, 1, 1), r), *bt = with_grad(ps_tensor_new(c, 1, 1, 1), r);
        tu_fill_uniform(x->data, ps_numel(x), r, -3, 5);
        tu_fill_uniform(gm->data, c, r, 0.5f, 2);
        float *gx = g_memdup2(x->grad, ps_numel(x) * sizeof(float));
        float *ggm = g_memdup2(gm->grad, c * sizeof(float)), *gbt = g_memdup2(bt->grad, c * sizeof(float));
        ps_groupnorm_backward(x, groups, affine ? gm : NULL, affine ? bt : NULL, 1e-5f, y);
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++) {
                const size_t off = ((size_t)b * c + g * cpg) * plane;
                k->groupnorm_backward_group(x->data + off, y->grad + off, want_gx ? gx + off : NULL,
                                            affine ? gm->data + g * cpg : NULL, affine ? ggm + g * cpg : NULL,
                                            affine ? gbt + g * cpg : NULL, cpg, plane, 1e-5f);
            }
        char label[96];
        g_snprintf(label, sizeof label, "groupnorm backward n%d c%d/%d %dx%d gx", n, c, groups, h, w);
        if (want_gx) /* else only gamma's and beta's gradients, which must not change */
            check(k->name, label, max_err_vs(gx, x->grad, ps_numel(x)), 2e-5);
        check(k->name, "groupnorm backward gamma", max_err_vs(ggm, gm->grad, c), 2e-5);
        check(k->name, "groupnorm backward beta", max_err_vs(gbt, bt->grad, c), 2e-5);
        g_free(gx), g_free(ggm), g_free(gbt);
        ps_tensor_free(x), ps_tensor_free(y), ps_tensor_free(gm), ps_tensor_free(bt);
    }
    g_rand_free(r);
}

/* Max-pool backward against ps_maxpool2x2_backward on odd and even sides, with ties (values
 * drawn from a few levels) so the first maximum must win. */
static void test_maxpool_backward(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(19);
    const int shapes[][3] = {{3, 64, 48}, {2, 33, 17}, {1, 2, 2}, {4, 9, 130}};
    for (size_t s = 0; s < G_N_ELEMENTS(shapes); s++) {
        const int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], ho = h / 2, wo = w / 2;
        ps_tensor *x = with_grad(ps_tensor_new(2, c, h, w), r), *y = with_grad(ps_tensor_new(2, c, ho, wo), r);
        for (size_t i = 0; i < ps_numel(x); i++)
            x->data[i] = (float)g_rand_int_range(r, -2, 3); /* ties in most windows */
        float *got = g_memdup2(x->grad, ps_numel(x) * sizeof(float));
        ps_maxpool2x2_backward(x, y);
        for (int pl = 0; pl < 2 * c; pl++)
            k->maxpool2x2_backward(x->data + (size_t)pl * h * w, w, y->grad + (size_t)pl * ho * wo, ho, wo,
                                   got + (size_t)pl * h * w);
        check(k->name, "maxpool backward", max_err_vs(got, x->grad, ps_numel(x)), 0);
        g_free(got);
        ps_tensor_free(x), ps_tensor_free(y);
    }
    g_rand_free(r);
}

/* Kernel backward of a conv against ps_conv2d_backward, both adding into the same start values. */
static void conv_backward_case(const ps_kernels *k, GRand *r, int cin, int cout, int h, int w, int dil,
                               int depthwise, int want_gx, int want_gw)
{
    ps_tensor *x = ps_tensor_new(1, cin, h, w);
    ps_tensor *wt = depthwise ? ps_tensor_new(cin, 1, 3, 3) : ps_tensor_new(cout, cin, 1, 1);
    ps_tensor *y = with_grad(ps_tensor_new(1, cout, h, w), r);
    tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
    tu_fill_uniform(wt->data, ps_numel(wt), r, -1, 1);
    if (want_gx)
        with_grad(x, r);
    with_grad(wt, r);
    float *gx = want_gx ? g_memdup2(x->grad, ps_numel(x) * sizeof(float)) : NULL;
    float *gw = want_gw ? g_memdup2(wt->grad, ps_numel(wt) * sizeof(float)) : NULL;
    ps_conv2d_params p = depthwise ? (ps_conv2d_params){1, dil, dil, dil, cin} : (ps_conv2d_params){1, 0, 0, 1, 1};
    ps_conv2d_backward(x, wt, NULL, &p, y);
    if (depthwise)
        k->conv_depthwise3x3_backward(x->data, wt->data, y->grad, gx, gw, cin, h, w, dil);
    else
        k->conv_pointwise_backward(x->data, wt->data, y->grad, gx, gw, cin, cout, (size_t)h * w);
    char label[128];
    g_snprintf(label, sizeof label, "%s backward %d->%d %dx%d d%d gx", depthwise ? "depthwise" : "pointwise",
               cin, cout, h, w, dil);
    if (want_gx)
        tu_assert_close(label, gx, x->grad, ps_numel(x), 1e-5);
    label[strlen(label) - 1] = 'w';
    if (want_gw)
        tu_assert_close(label, gw, wt->grad, ps_numel(wt), 1e-5);
    g_free(gx), g_free(gw);
    ps_tensor_free(x), ps_tensor_free(wt), ps_tensor_free(y);
}

static void test_conv_backward(gconstpointer data)
{
    const ps_kernels *k = data;
    GRand *r = g_rand_new_with_seed(17);
    for (int trial = 0; trial < 40; trial++) {
        int h = g_rand_int_range(r, 1, 40), w = g_rand_int_range(r, 1, 40);
        int cin = g_rand_int_range(r, 1, 40), cout = g_rand_int_range(r, 1, 40);
        if (trial < 16) /* every weight-gradient tile shape, 1..4 x 1..4 channels, on every set */
            cin = 4 + trial % 4 + 1, cout = 4 + trial / 4 + 1;
        /* gx or gw not wanted (NULL) in some trials, never both */
        const int want_gx = trial % 3 != 0, want_gw = !want_gx || trial % 4 != 1;
        conv_backward_case(k, r, cin, cout, h, w, 1, 0, want_gx, want_gw);
        conv_backward_case(k, r, cin % 12 + 1, cin % 12 + 1, h, w, g_rand_int_range(r, 1, 8), 1, want_gx, want_gw);
    }
    /* planes past the pointwise backward's 2048-position block: later blocks' offsets */
    const int big[][2] = {{1, 2049}, {45, 46}, {50, 61}, {64, 64}};
    for (size_t i = 0; i < G_N_ELEMENTS(big); i++)
        conv_backward_case(k, r, 3 + (int)i, 5 - (int)i, big[i][0], big[i][1], 1, 0, 1, i != 2);
    g_rand_free(r);
}

/* ps_g_conv2d(_relu) = (relu of) the reference conv for every shape class: the kernel paths
 * (depthwise 1x1 included),
 * dense zero-padded convs (MALUNet's 3x3 'same', dilated, odd padding: the 'valid' kernel on a
 * padded copy) and the reference fallback (a strided conv, and a 'valid' conv whose kernel fuses
 * no ReLU). */
static void test_conv_paths(void)
{
    static const struct {
        int cin, cout, k, stride, pad, dil, groups, relu;
    } cases[] = {{5, 7, 1, 1, 0, 1, 1, 1}, {6, 6, 3, 1, 2, 2, 6, 1}, {2, 3, 7, 1, 0, 1, 1, 1}, {3, 4, 3, 2, 1, 1, 1, 1},
                 {3, 8, 3, 1, 1, 1, 1, 0}, {5, 4, 3, 1, 2, 2, 1, 0},  {2, 3, 5, 1, 1, 1, 1, 0}, {3, 8, 3, 1, 1, 1, 1, 1},
                 {6, 6, 1, 1, 0, 1, 6, 0}, {6, 6, 1, 1, 0, 1, 6, 1}};
    GRand *r = g_rand_new_with_seed(19);
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 0);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        const int cin = cases[i].cin, cout = cases[i].cout, k = cases[i].k;
        ps_tensor *x = ps_tensor_new(2, cin, 19, 23), *w = ps_tensor_new(cout, cin / cases[i].groups, k, k);
        ps_tensor *b = ps_tensor_new(cout, 1, 1, 1);
        tu_fill_uniform(x->data, ps_numel(x), r, -2, 2);
        tu_fill_uniform(w->data, ps_numel(w), r, -1, 1);
        tu_fill_uniform(b->data, cout, r, -1, 1);
        ps_tensor *(*conv)(ps_graph *, ps_tensor *, ps_tensor *, ps_tensor *, int, int, int, int) =
            cases[i].relu ? ps_g_conv2d_relu : ps_g_conv2d;
        ps_tensor *got = conv(&g, x, w, b, cases[i].stride, cases[i].pad, cases[i].dil, cases[i].groups);
        ps_tensor *want = ps_tensor_new(got->n, got->c, got->h, got->w);
        ps_conv2d_params p = {cases[i].stride, cases[i].pad, cases[i].pad, cases[i].dil, cases[i].groups};
        ps_conv2d_ref(x, w, b, &p, want);
        if (cases[i].relu)
            relu_in_place(want);
        char label[64];
        g_snprintf(label, sizeof label, "conv%s case %u", cases[i].relu ? "+relu" : "", i);
        tu_assert_close(label, got->data, want->data, ps_numel(want), 1e-5);
        ps_tensor_free(x), ps_tensor_free(w), ps_tensor_free(b), ps_tensor_free(want);
    }
    ps_graph_release(&g);
    ps_arena_free(arena);
    g_rand_free(r);
}

/* Every index of [0, n) is visited exactly once, for sizes below, at and above the threads,
 * whichever thread claims which part. */
static void count_range(void *ctx, int begin, int end)
{
    int *hits = ctx;
    for (int i = begin; i < end; i++)
        __atomic_add_fetch(&hits[i], 1, __ATOMIC_RELAXED);
}

static void test_pool_covers(void)
{
    /* up to 40 threads on this 2-core machine: workers descheduled mid-job, late for a job or
     * a job behind, and more threads than the 32 parts a job has at most */
    static const int thread_counts[] = {1, 2, 3, 4, 8, 40};
    for (size_t t = 0; t < G_N_ELEMENTS(thread_counts); t++) {
        const int threads = thread_counts[t];
        ps_pool *p = ps_pool_new(threads);
        g_assert_cmpint(ps_pool_threads(p), ==, threads);
        for (int n = 0; n < 40; n++)
            for (int rep = 0; rep < (threads > 4 ? 10 : 50); rep++) { /* back-to-back jobs, as ops run */
                int hits[40] = {0};
                ps_pool_for(p, n, count_range, hits);
                for (int i = 0; i < n; i++)
                    g_assert_cmpint(hits[i], ==, 1);
            }
        /* a job of few parts then one of many, over and over: a worker still in the small job
         * must not claim a part of the large one */
        for (int rep = 0; rep < 4000; rep++) {
            const int n = rep % 2 ? 2 : 37;
            int hits[40] = {0};
            ps_pool_for(p, n, count_range, hits);
            for (int i = 0; i < n; i++)
                if (hits[i] != 1)
                    g_error("%d threads, job %d of %d indices: index %d run %d times", threads, rep, n, i, hits[i]);
        }
        ps_pool_free(p);
    }
    g_assert_cmpint(ps_pool_threads(NULL), ==, 1);
}

/* A whole frame gives the same probabilities, bit for bit, on 1, 2 and 3 threads (arch). */
static void test_threads_same_result(gconstpointer arch)
{
    GError *err = NULL;
    ps_model *m = ps_model_new(arch, NULL, 0, 5, &err);
    g_assert_no_error(err);
    m->info.input_size = 128;
    GRand *r = g_rand_new_with_seed(15);
    uint8_t rgb[160 * 120 * 3];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    ps_segmenter *one = ps_segmenter_new(m), *many = ps_segmenter_new(m);
    const float *want = ps_segmenter_run(one, rgb, 160, 120, 160 * 3);
    for (int threads = 2; threads <= 3; threads++) {
        ps_segmenter_set_threads(many, threads);
        g_assert_cmpint(ps_segmenter_threads(many), ==, threads);
        const float *got = ps_segmenter_run(many, rgb, 160, 120, 160 * 3);
        g_assert_cmpmem(got, 128 * 128 * sizeof(float), want, 128 * 128 * sizeof(float));
    }
    ps_segmenter_free(one);
    ps_segmenter_free(many);
    ps_model_free(m);
    g_rand_free(r);
}

static void test_best_is_runnable(void)
{
    const ps_kernels *best = ps_kernels_best();
    g_assert_nonnull(best);
    g_test_message("kernel set in use: %s", best->name);
    g_assert_true(ps_kernels_for(PS_ISA_SCALAR) != NULL); /* the portable set always runs */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kernels/best", test_best_is_runnable);
    g_test_add_func("/graph/conv-paths", test_conv_paths);
    g_test_add_func("/graph/decoder-step", test_graph_decoder_step);
    g_test_add_func("/graph/encoder-step", test_graph_encoder_step);
    g_test_add_func("/graph/groupnorm-pointwise", test_graph_groupnorm_pointwise);
    g_test_add_func("/graph/batchnorm-train", test_graph_batchnorm_train);
    g_test_add_func("/graph/banded-ops", test_graph_banded_ops);
    g_test_add_func("/graph/fused-gate-dsd", test_graph_fused_gate_dsd);
    g_test_add_func("/graph/fused-spatial-attend", test_graph_fused_spatial_attend);
    g_test_add_func("/graph/depthwise1x1-backward", test_graph_depthwise1x1_backward);
    g_test_add_func("/graph/add-gelu", test_graph_add_gelu);
    g_test_add_func("/pool/covers-every-index", test_pool_covers);
    g_test_add_data_func("/pool/threads-same-result", "microaunet", test_threads_same_result);
    g_test_add_data_func("/pool/threads-same-result-malunet", "malunet", test_threads_same_result);
    for (int isa = 0; isa < PS_ISA_COUNT; isa++) {
        const ps_kernels *k = ps_kernels_for(isa);
        if (!k)
            continue; /* this CPU cannot run the set; the test says which ran */
        char *p;
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/unary", k->name), k, test_unary), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/normalise-rgb", k->name), k, test_normalise_rgb), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/frame-rows", k->name), k, test_frame_rows), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/pointwise", k->name), k, test_pointwise), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/depthwise3x3", k->name), k, test_depthwise), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/groupnorm", k->name), k, test_groupnorm), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/groupnorm-stats", k->name), k, test_groupnorm_stats), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/conv-valid", k->name), k, test_conv_valid), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/decoder-step", k->name), k, test_decoder_step), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/upsample2x", k->name), k, test_upsample2x), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/channel-mean-max", k->name), k, test_channel_mean_max), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/encoder-step", k->name), k, test_encoder_step), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/attend-residual", k->name), k, test_attend_residual), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/sums", k->name), k, test_sums), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/gelu-backward", k->name), k, test_gelu_backward), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/relu-backward", k->name), k, test_relu_backward), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/maxpool-backward", k->name), k, test_maxpool_backward), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/groupnorm-backward", k->name), k, test_groupnorm_backward), g_free(p);
        g_test_add_data_func(p = g_strdup_printf("/kernels/%s/conv-backward", k->name), k, test_conv_backward), g_free(p);
    }
    return g_test_run();
}
