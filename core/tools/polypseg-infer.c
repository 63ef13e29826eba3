/* polypseg-infer: segments one image, writing the mask (and optionally an overlay) as PNG. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
#include "postprocess.h"
#include "preprocess.h"

int main(int argc, char **argv)
{
    char *weights = NULL, *input = NULL, *mask_out = NULL, *overlay_out = NULL;
    double threshold = 0.5;
    int tta = 1;
    GOptionEntry entries[] = {
        {"weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Model weights (default: installed microaunet-kvasir)", "FILE"},
        {"input", 'i', 0, G_OPTION_ARG_FILENAME, &input, "Image to segment, JPEG or PNG (required)", "IMG"},
        {"mask", 'm', 0, G_OPTION_ARG_FILENAME, &mask_out, "Mask PNG to write, at the input's size (required)", "OUT.png"},
        {"overlay", 'v', 0, G_OPTION_ARG_FILENAME, &overlay_out, "Also write the image with the polyp tinted and its boundary drawn", "OUT.png"},
        {"threshold", 't', 0, G_OPTION_ARG_DOUBLE, &threshold, "Probability threshold (default 0.5)", "T"},
        {"tta", 0, 0, G_OPTION_ARG_INT, &tta, PS_TTA_HELP, "N"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- segment polyps in an image");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "polypseg-infer: %s\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (!input || !mask_out || !(threshold >= 0 && threshold <= 1) || tta < 1 || tta > PS_TTA_MAX) {
        fprintf(stderr, "polypseg-infer: --input and --mask are required, threshold in [0,1], --tta 1..%d (see --help)\n",
                PS_TTA_MAX);
        return 2;
    }
    if (!weights) {
        /* Installed weights, else the source tree's (running from a checkout). */
        weights = g_build_filename(PS_WEIGHTS_DIR, "microaunet-kvasir.safetensors", NULL);
        if (!g_file_test(weights, G_FILE_TEST_EXISTS)) {
            g_free(weights);
            weights = g_build_filename(PS_SOURCE_WEIGHTS_DIR, "microaunet-kvasir.safetensors", NULL);
        }
    }

    ps_model *m = ps_model_load(weights, &err);
    ps_image *im = m ? ps_image_load_rgb(input, &err) : NULL;
    if (!im) {
        fprintf(stderr, "polypseg-infer: %s\n", err->message);
        return 1;
    }
    ps_segmenter *seg = ps_segmenter_new(m);
    ps_segmenter_set_tta(seg, tta);
    gint64 t0 = g_get_monotonic_time();
    const float *prob = ps_segmenter_run(seg, im->data, im->w, im->h, im->w * 3);
    double ms = (g_get_monotonic_time() - t0) / 1e3;
    ps_image *mask = ps_image_new(im->w, im->h, 1);
    ps_prob_to_mask(prob, ps_segmenter_size(seg), (float)threshold, mask->data, im->w, im->h);

    long polyp = 0;
    for (long i = 0; i < (long)im->w * im->h; i++)
        polyp += mask->data[i] != 0;
    int rc = 0;
    if (!ps_image_save_png(mask_out, mask, &err)) {
        fprintf(stderr, "polypseg-infer: %s\n", err->message);
        rc = 1;
    }
    if (rc == 0 && overlay_out) {
        static const uint8_t tint[3] = {0, 255, 0}, edge[3] = {255, 255, 0};
        ps_draw_overlay(im, mask->data, tint, 0.35f, edge, im->w >= 800 ? 3 : 2);
        if (!ps_image_save_png(overlay_out, im, &err)) {
            fprintf(stderr, "polypseg-infer: %s\n", err->message);
            rc = 1;
        }
    }
    if (rc == 0)
        printf("%s: %dx%d, polyp %.1f%% of the image, inference %.1f ms (first frame, buffer set-up included) -> %s%s%s\n", input, im->w, im->h,
               100.0 * polyp / ((double)im->w * im->h), ms, mask_out, overlay_out ? ", " : "",
               overlay_out ? overlay_out : "");
    ps_image_free(mask);
    ps_image_free(im);
    ps_segmenter_free(seg);
    ps_model_free(m);
    return rc;
}
