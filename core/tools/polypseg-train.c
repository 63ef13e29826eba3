/* polypseg-train: trains a segmentation model on an images/ + masks/ dataset.
 * Checkpoints every epoch (atomically), resumes exactly, stops cleanly on Ctrl-C. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backward.h"
#include "checkpoint.h"
#include "dataset.h"
#include "deep_supervision.h"
#include "distill.h"
#include "ema.h"
#include "evaluate.h"
#include "loss.h"
#include "optim.h"
#include "progress.h"
#include "output_path.h"
#include "preprocess.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = sig; /* finish the step, write a checkpoint, exit with 128 + sig */
}

typedef struct opts {
    char **add_data;
    char *crop_scale;
    char *multi_scale; /* --multi-scale as typed; parsed into sides[] */
    int sides[PS_LOADER_MAX_SIZES], n_sides;
    char *arch, *data, *split, *val, *val_split, *out, *checkpoint, *log, *dataset_name, *init, *teacher;
    int epochs, batch, size, threads, warmup, limit, snapshot_every;
    ps_distill_opts kd; /* with --teacher */
    char *teacher_sha256; /* of the teacher file: a resumed run must distil from the same one */
    double lr, wd, min_lr, fn_weight, structure_gain, deep_sup, lovasz, rotate, hue, ema, focal, copy_paste;
    gint64 seed;
    gboolean resume;
    float crop_min, crop_max; /* parsed from crop_scale */
} opts;

/* Checked before training, not only when the file is written at the end: an output that can
 * never be written (a folder, a missing folder) would cost the whole run. */
static gboolean writable_target(const char *path)
{
    GError *err = NULL;
    char *target = ps_output_target(path, &err), *dir = target ? g_path_get_dirname(target) : NULL;
    gboolean ok = target && g_file_test(dir, G_FILE_TEST_IS_DIR);
    if (!target)
        fprintf(stderr, "polypseg-train: %s\n", err->message);
    else if (!ok)
        fprintf(stderr, "polypseg-train: %s: the folder %s does not exist\n", path, dir);
    g_clear_error(&err);
    g_free(dir);
    g_free(target);
    return ok;
}

/* "0.75,1,1.25" -> the sides round(size * factor / 32) * 32; FALSE if any is out of range. */
static gboolean parse_multi_scale(const char *list, int size, int *sides, int *n)
{
    char **parts = g_strsplit(list, ",", -1);
    gboolean ok = parts[0] != NULL && g_strv_length(parts) <= PS_LOADER_MAX_SIZES;
    *n = 0;
    for (char **p = parts; ok && *p; p++) {
        char *end = NULL;
        double f = g_ascii_strtod(*p, &end);
        long side = f > 0 && f <= 64 ? lround(size * f / 32) * 32 : 0; /* beyond 64x is out of range anyway */
        ok = end != *p && *end == '\0' && side >= PS_MIN_INPUT && side <= PS_MAX_INPUT;
        sides[(*n)++] = (int)side;
    }
    g_strfreev(parts);
    return ok;
}

static gboolean parse(opts *o, int *argc, char ***argv)
{
    *o = (opts){.crop_scale = g_strdup("0.75,1"), .arch = g_strdup("microaunet"), .epochs = 100, .batch = 8, .size = 256,
                .threads = (int)g_get_num_processors(), .warmup = 1, .lr = 1e-3, .wd = 1e-2, .min_lr = -1 /* unset */, .fn_weight = 0.5, .seed = 1,
                .kd = ps_distill_defaults(0)};
    o->kd.stage1_epochs = INT_MIN; /* unset: half of the epochs */
    double kd_t = o->kd.temperature, kd_w = o->kd.kd_weight, kd_f = o->kd.feature_weight,
           kd_focus = o->kd.focus_weight, kd_bg = o->kd.boundary_gain, kd_cg = o->kd.confidence_gain;
    GOptionEntry entries[] = {
        {"arch", 0, 0, G_OPTION_ARG_STRING, &o->arch, "Architecture: microaunet (default), microaunet-w8 or malunet (the distillation teacher)", "NAME"},
        {"data", 0, 0, G_OPTION_ARG_FILENAME, &o->data, "Training folder with images/ and masks/ (required)", "DIR"},
        {"split", 0, 0, G_OPTION_ARG_FILENAME, &o->split, "Only the file names listed in FILE", "FILE"},
        {"add-data", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &o->add_data, "Also train on every pair of this folder (repeatable; e.g. Kvasir-SEG beside CVC-ClinicDB)", "DIR"},
        {"val", 0, 0, G_OPTION_ARG_FILENAME, &o->val, "Held-out folder evaluated after training (metrics go into the weights' metadata)", "DIR"},
        {"val-split", 0, 0, G_OPTION_ARG_FILENAME, &o->val_split, "Split file for --val", "FILE"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &o->out, "Final weights (safetensors; required)", "FILE"},
        {"checkpoint", 0, 0, G_OPTION_ARG_FILENAME, &o->checkpoint, "Checkpoint file (default: OUT.ckpt)", "FILE"},
        {"resume", 0, 0, G_OPTION_ARG_NONE, &o->resume, "Continue from the checkpoint", NULL},
        {"init", 0, 0, G_OPTION_ARG_FILENAME, &o->init, "Start from these weights (fine-tuning) instead of a random initialisation", "FILE"},
        {"log", 0, 0, G_OPTION_ARG_FILENAME, &o->log, "Append one JSON line per epoch to FILE", "FILE"},
        {"dataset-name", 0, 0, G_OPTION_ARG_STRING, &o->dataset_name, "Dataset name recorded in the weights (default: the --data path)", "NAME"},
        {"epochs", 'e', 0, G_OPTION_ARG_INT, &o->epochs, "Epochs (default 100)", "N"},
        {"batch", 'b', 0, G_OPTION_ARG_INT, &o->batch, "Batch size (default 8)", "N"},
        {"size", 0, 0, G_OPTION_ARG_INT, &o->size, "Input side, multiple of 32 (default 256)", "PX"},
        {"lr", 0, 0, G_OPTION_ARG_DOUBLE, &o->lr, "Peak learning rate (default 1e-3)", "LR"},
        {"min-lr", 0, 0, G_OPTION_ARG_DOUBLE, &o->min_lr, "Final learning rate of the cosine schedule (default 1e-5, or --lr when that is lower)", "LR"},
        {"weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &o->wd, "AdamW weight decay (default 1e-2)", "WD"},
        {"warmup-epochs", 0, 0, G_OPTION_ARG_INT, &o->warmup, "Linear warm-up epochs (default 1)", "N"},
        {"fn-weight", 0, 0, G_OPTION_ARG_DOUBLE, &o->fn_weight, "Weight B of the missed polyp pixels in the overlap loss, false alarms getting 1 - B (Tversky's beta): 0.5 = the Dice loss (default); above 0.5 trades precision for recall, a lower FNR", "B"},
        {"structure-loss", 0, 0, G_OPTION_ARG_DOUBLE, &o->structure_gain, "Weight each pixel of the BCE and overlap losses by 1 + G |local mask mean - mask| (PraNet's structure loss: boundaries and small polyps count up to 1 + G; window 31 px at --size 352, scaled with the size); 0 = off (default)", "G"},
        {"focal", 0, 0, G_OPTION_ARG_DOUBLE, &o->focal, "Focal loss in place of the BCE term: -(1 - pt)^G log pt, pt the probability of the pixel's true class (Lin et al.; 2 is usual), so confident right pixels count less and the hard ones (boundaries, faint polyps) more (the main output's; deep-supervision heads keep BCE); 0 = plain BCE (default)", "G"},
        {"lovasz", 0, 0, G_OPTION_ARG_DOUBLE, &o->lovasz, "Add W times the Lovasz hinge loss (Berman et al.: a convex surrogate of 1 - IoU per image, sharpening the mask's overlap; best as a short fine-tune after BCE + Dice); 0 = off (default)", "W"},
        {"deep-supervision", 0, 0, G_OPTION_ARG_DOUBLE, &o->deep_sup, "Weight of deep supervision: 1x1 heads on the decoder's outputs at 1/4, 1/8 and 1/16 of the input predict the mask there, with BCE + Dice against the mask averaged down (the heads are dropped from the final file); 0 = off (default)", "W"},
        {"crop-scale", 0, 0, G_OPTION_ARG_STRING, &o->crop_scale, "Random crop side as a fraction of the image's, MIN,MAX (default 0.75,1; above 1 zooms out onto black)", "MIN,MAX"},
        {"rotate", 0, 0, G_OPTION_ARG_DOUBLE, &o->rotate, "Also turn each sample by a random angle within +-DEG degrees about its centre, corners black (on top of the flips and quarter turns); 0 = off (default)", "DEG"},
        {"hue", 0, 0, G_OPTION_ARG_DOUBLE, &o->hue, "Also turn each sample's hue by a random angle within +-DEG degrees (colours rotated about the grey axis, as between endoscopes); 0 = off (default)", "DEG"},
        {"copy-paste", 0, 0, G_OPTION_ARG_DOUBLE, &o->copy_paste, "With probability P also paste another training image's polyp into each sample, at a random place, its mask added to the sample's (copy-paste augmentation: more polyps in more surroundings); 0 = off (default)", "P"},
        {"multi-scale", 0, 0, G_OPTION_ARG_STRING, &o->multi_scale, "Multi-scale training: each batch at one of these multiples of --size, drawn per batch, each side rounded to a multiple of 32 (e.g. 0.75,1,1.25: PraNet's rates; inference stays at --size). Default: off", "LIST"},
        {"ema", 0, 0, G_OPTION_ARG_DOUBLE, &o->ema, "Write the exponential moving average of the weights instead of the last step's: after each step average = D x average + (1 - D) x weights, batch-norm statistics included (D = 0.999 spans about the last 1000 steps; TensorFlow's warm-up min(D, (1 + step) / (10 + step)) keeps early steps from lingering); 0 = off (default)", "D"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &o->seed, "Seed for initialisation, order and augmentation (default 1)", "N"},
        {"threads", 't', 0, G_OPTION_ARG_INT, &o->threads, "Data-loading worker threads (default: one per core; compute runs beside them)", "N"},
        {"snapshot-every", 0, 0, G_OPTION_ARG_INT, &o->snapshot_every, "Also keep the checkpoint of every Nth epoch as OUT-epochE.ckpt (for weight averaging with polypseg-average, as in SWA)", "N"},
        {"limit", 0, 0, G_OPTION_ARG_INT, &o->limit, "Use only the first N images (quick checks)", "N"},
        {NULL}};
    GOptionEntry kd_entries[] = {
        {"teacher", 0, 0, G_OPTION_ARG_FILENAME, &o->teacher, "Distil from these trained weights (e.g. a malunet); off by default", "W"},
        {"stage1-epochs", 0, 0, G_OPTION_ARG_INT, &o->kd.stage1_epochs, "Epochs of stage 1 (imitation: KL + adapted-feature MSE); the rest are stage 2 (boundary- and confidence-weighted KL). Default: half, rounded up", "N"},
        {"kd-temperature", 0, 0, G_OPTION_ARG_DOUBLE, &kd_t, "Temperature T of the softened probabilities sigmoid(z/T) (default 2)", "T"},
        {"kd-weight", 0, 0, G_OPTION_ARG_DOUBLE, &kd_w, "Stage 1: weight of the binary KL, times T^2 (default 1)", "W"},
        {"feature-weight", 0, 0, G_OPTION_ARG_DOUBLE, &kd_f, "Stage 1: weight of the MSE between the adapted student features t1..t5 and the teacher's, relative to the teacher feature's mean square and averaged over the five (default 1; 0 = off)", "W"},
        {"focus-weight", 0, 0, G_OPTION_ARG_DOUBLE, &kd_focus, "Stage 2: weight of the pixel-weighted KL (default 1)", "W"},
        {"boundary-radius", 0, 0, G_OPTION_ARG_INT, &o->kd.boundary_radius, "Stage 2: half-width in pixels of the band around the true boundary (default 5)", "PX"},
        {"boundary-gain", 0, 0, G_OPTION_ARG_DOUBLE, &kd_bg, "Stage 2: extra pixel weight inside the boundary band (default 2)", "G"},
        {"confidence-gain", 0, 0, G_OPTION_ARG_DOUBLE, &kd_cg, "Stage 2: extra pixel weight times the teacher's confidence |2p-1| (default 1)", "G"},
        {"teacher-tta", 0, 0, G_OPTION_ARG_INT, &o->kd.teacher_views, "Distil from the teacher's probabilities averaged over the first N of 8 views, as polypseg-eval --tta N (default 1 = the plain image); with the student's own weights as the teacher this is self-distillation from its test-time augmentation. Costs N teacher runs per batch", "N"},
        {NULL}};
    GOptionContext *ctx = g_option_context_new("- train a polyp segmentation model");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GOptionGroup *kd_group = g_option_group_new("distillation", "Knowledge distillation from a teacher (two stages):",
                                                "Show the distillation options", NULL, NULL);
    g_option_group_add_entries(kd_group, kd_entries);
    g_option_context_add_group(ctx, kd_group);
    g_option_context_set_description(ctx,
        "Example:\n  polypseg-train --data ../shared/datasets/kvasir-seg/train "
        "--val ../shared/datasets/kvasir-seg/val --epochs 100 -o weights/microaunet-kvasir.safetensors\n");
    GError *err = NULL;
    gboolean ok = g_option_context_parse(ctx, argc, argv, &err);
    if (ok && o->min_lr == -1) /* unset: a --lr under the default end needs no --min-lr of its own */
        o->min_lr = MIN(1e-5, o->lr);
    if (!ok)
        fprintf(stderr, "polypseg-train: %s\n", err->message);
    else if (!o->data || !o->out) {
        fprintf(stderr, "polypseg-train: --data and --out are required (see --help)\n");
        ok = FALSE;
    } else if (!ps_crop_scale_parse(o->crop_scale, &o->crop_min, &o->crop_max)) {
        fprintf(stderr, "polypseg-train: --crop-scale wants MIN,MAX with 0 < MIN <= MAX <= 4, e.g. 0.75,1.25\n");
        ok = FALSE;
    } else if (o->multi_scale && !parse_multi_scale(o->multi_scale, o->size, o->sides, &o->n_sides)) {
        fprintf(stderr, "polypseg-train: --multi-scale wants 1 to %d comma-separated factors of --size that give "
                        "sides of %d..%d, e.g. 0.75,1,1.25\n", PS_LOADER_MAX_SIZES, PS_MIN_INPUT, PS_MAX_INPUT);
        ok = FALSE;
    } else if (o->epochs < 1 || o->batch < 1 || o->size < PS_MIN_INPUT || o->size > PS_MAX_INPUT ||
               o->size % 32 || o->threads < 1 || !(o->lr > 0 && o->lr <= 1) || !(o->fn_weight > 0 && o->fn_weight < 1) ||
               !(o->structure_gain >= 0 && o->structure_gain <= 100) || !(o->wd >= 0 && o->wd <= 1) ||
               !(o->deep_sup >= 0 && o->deep_sup <= 100) || !(o->lovasz >= 0 && o->lovasz <= 100) || !(o->focal >= 0 && o->focal <= 10) || !(o->copy_paste >= 0 && o->copy_paste <= 1) ||
               !(o->rotate >= 0 && o->rotate <= 180) || !(o->hue >= 0 && o->hue <= 180) || !(o->ema >= 0 && (float)o->ema < 1) /* as a float, which the average uses */ || !(o->min_lr >= 0 && o->min_lr <= o->lr) ||
               o->warmup < 0 || o->snapshot_every < 0 || o->limit < 0) {
        fprintf(stderr, "polypseg-train: bad value: epochs, batch and threads >= 1, size a multiple of "
                        "32 in %d..%d, 0 < lr <= 1, 0 <= min-lr <= lr, weight-decay 0..1, 0 < fn-weight < 1, "
                        "structure-loss, lovasz and deep-supervision 0..100, focal 0..10, copy-paste 0..1, rotate and hue 0..180, 0 <= ema < 1, warmup-epochs, snapshot-every and limit >= 0\n",
                PS_MIN_INPUT, PS_MAX_INPUT);
        ok = FALSE;
    }
    if (ok) {
        o->kd.temperature = (float)kd_t;
        o->kd.kd_weight = (float)kd_w;
        o->kd.feature_weight = (float)kd_f;
        o->kd.focus_weight = (float)kd_focus;
        o->kd.boundary_gain = (float)kd_bg;
        o->kd.confidence_gain = (float)kd_cg;
        if (o->kd.stage1_epochs == INT_MIN)
            o->kd.stage1_epochs = ps_distill_defaults(o->epochs).stage1_epochs;
        const double nonneg[] = {kd_w, kd_f, kd_focus, kd_bg, kd_cg};
        /* bounded so that each stays a finite, non-zero float and the losses finite */
        gboolean bad = !(kd_t >= 0.01 && kd_t <= 100) || o->kd.boundary_radius < 0 || o->kd.stage1_epochs < 0 ||
                       o->kd.stage1_epochs > o->epochs || o->kd.teacher_views < 1 ||
                       o->kd.teacher_views > PS_TTA_MAX;
        for (size_t i = 0; i < G_N_ELEMENTS(nonneg); i++)
            bad |= !(nonneg[i] >= 0 && nonneg[i] <= 1000);
        if (bad) {
            fprintf(stderr, "polypseg-train: bad distillation value: temperature 0.01..100, weights and gains 0..1000, "
                            "boundary-radius >= 0, 0 <= stage1-epochs <= epochs, teacher-tta 1..%d\n", PS_TTA_MAX);
            ok = FALSE;
        } else if (o->kd.teacher_views > 1 && !o->teacher) {
            fprintf(stderr, "polypseg-train: --teacher-tta needs --teacher (the weights whose views to average)\n");
            ok = FALSE;
        }
    }
    g_clear_error(&err);
    g_option_context_free(ctx);
    if (ok && !o->checkpoint)
        o->checkpoint = g_strconcat(o->out, ".ckpt", NULL);
    const char *outputs[] = {o->out, o->checkpoint};
    for (size_t i = 0; ok && i < G_N_ELEMENTS(outputs); i++)
        ok = writable_target(outputs[i]);
    return ok;
}

/* The structure loss's window half-width: PraNet's 31 px window at 352, in proportion. */
static int structure_radius(int size)
{
    return (15 * size + 176) / 352;
}

/* The configuration a resumed run must share with the run that wrote the checkpoint. */
static GHashTable *run_config(const opts *o, const char *command, double train_seconds)
{
    GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    g_hash_table_insert(t, g_strdup("dataset"), g_strdup(o->dataset_name ? o->dataset_name : o->data));
    g_hash_table_insert(t, g_strdup("split"), g_strdup(o->split ? o->split : "all"));
    g_hash_table_insert(t, g_strdup("init"), g_strdup(o->init ? o->init : "random"));
    g_hash_table_insert(t, g_strdup("epochs"), g_strdup_printf("%d", o->epochs));
    g_hash_table_insert(t, g_strdup("batch"), g_strdup_printf("%d", o->batch));
    g_hash_table_insert(t, g_strdup("size"), g_strdup_printf("%d", o->size));
    g_hash_table_insert(t, g_strdup("limit"), g_strdup_printf("%d", o->limit));
    g_hash_table_insert(t, g_strdup("data"), g_strdup(o->data));
    if (o->add_data) {
        char *joined = g_strjoinv(" ", o->add_data);
        g_hash_table_insert(t, g_strdup("add_data"), joined);
    }
    g_hash_table_insert(t, g_strdup("min_lr"), g_strdup(g_ascii_dtostr(buf, sizeof buf, o->min_lr)));
    g_hash_table_insert(t, g_strdup("seed"), g_strdup_printf("%" G_GINT64_FORMAT, o->seed));
    g_hash_table_insert(t, g_strdup("lr"), g_strdup(g_ascii_dtostr(buf, sizeof buf, o->lr)));
    g_hash_table_insert(t, g_strdup("crop_scale"), g_strdup_printf("%g,%g", o->crop_min, o->crop_max));
    if (o->rotate > 0 || o->hue > 0 || (float)o->copy_paste > 0) { /* as the loader uses it (a float) */
        GString *extra = g_string_new(NULL);
        if (o->rotate > 0 || o->hue > 0)
            g_string_append_printf(extra, "rotate +-%g deg, hue +-%g deg", (float)o->rotate, (float)o->hue);
        if ((float)o->copy_paste > 0)
            g_string_append_printf(extra, "%scopy-paste p %g", extra->len ? ", " : "", (float)o->copy_paste);
        g_hash_table_insert(t, g_strdup("augment_extra"), g_string_free(extra, FALSE));
    }
    if (o->n_sides > 0) {
        GString *sides = g_string_new("batch sides");
        for (int i = 0; i < o->n_sides; i++)
            g_string_append_printf(sides, "%s %d", i ? "," : "", o->sides[i]);
        g_hash_table_insert(t, g_strdup("multi_scale"), g_string_free(sides, FALSE));
    }
    /* the weight as the loss uses it (a float); six digits, as readable as the option was typed */
    char *overlap = (float)o->fn_weight == 0.5f ? g_strdup("dice")
                                                : g_strdup_printf("tversky(fn weight %g)", (float)o->fn_weight);
    char *pixelwise = (float)o->focal == 0 ? g_strdup("bce_with_logits") /* as the loss uses it (a float) */ : g_strdup_printf("focal(gamma %g)", (float)o->focal);
    g_hash_table_insert(t, g_strdup("loss"), o->structure_gain == 0 ? g_strdup_printf("%s + %s", pixelwise, overlap)
                        : g_strdup_printf("(%s + %s) weighted 1 + %g |mean(mask, %d px window) - mask|", pixelwise,
                                          overlap, (float)o->structure_gain, 2 * structure_radius(o->size) + 1));
    g_free(overlap);
    g_free(pixelwise);
    if (o->lovasz > 0)
        g_hash_table_insert(t, g_strdup("lovasz"), g_strdup_printf("+ %g x lovasz_hinge (per image)", (float)o->lovasz));
    if (o->ema > 0) /* as the average uses it (a float) */
        g_hash_table_insert(t, g_strdup("ema"), g_strdup_printf("the weights' moving average, decay %g per step "
                                                                "(warm-up (1 + step) / (10 + step))", (float)o->ema));
    if (o->deep_sup > 0)
        g_hash_table_insert(t, g_strdup("deep_supervision"),
                            g_strdup_printf("%g x mean over 1x1 heads on dec2, dec3, dec4 of (bce + dice) against the "
                                            "mask averaged down", (float)o->deep_sup));
    if (o->teacher) {
        const ps_distill_opts *k = &o->kd;
        char *tta = k->teacher_views > 1 ? g_strdup_printf("; teacher over %d views", k->teacher_views) : g_strdup("");
        g_hash_table_insert(t, g_strdup("teacher"), g_strdup(o->teacher));
        g_hash_table_insert(t, g_strdup("teacher_sha256"), g_strdup(o->teacher_sha256));
        g_hash_table_insert(t, g_strdup("distillation"), g_strdup_printf(
            "stage 1 epochs %d: kl(T=%g) x %g + relative adapted-feature mse x %g; then stage 2: kl(T=%g) x %g weighted "
            "1 + %g in a %d px boundary band + %g |2p_teacher - 1|%s", k->stage1_epochs, k->temperature,
            k->kd_weight, k->feature_weight, k->temperature, k->focus_weight, k->boundary_gain,
            k->boundary_radius, k->confidence_gain, tta));
        g_free(tta);
    }
    g_hash_table_insert(t, g_strdup("optimizer"), g_strdup_printf("adamw wd=%g, cosine, warm-up %d epochs",
                                                                  o->wd, o->warmup));
    g_hash_table_insert(t, g_strdup("command"), g_strdup(command));
    g_hash_table_insert(t, g_strdup("train_seconds"), g_strdup_printf("%.0f", train_seconds));
    return t;
}

/* Where --snapshot-every keeps epoch E's checkpoint: OUT (less .safetensors) + "-epochE.ckpt". */
static char *snapshot_path(const char *out, int epoch)
{
    const size_t base = g_str_has_suffix(out, ".safetensors") ? strlen(out) - strlen(".safetensors") : strlen(out);
    return g_strdup_printf("%.*s-epoch%d.ckpt", (int)base, out, epoch);
}

static const char *setting_or_none(GHashTable *config, const char *key)
{
    const char *v = g_hash_table_lookup(config, key);
    return v ? v : "(none)";
}

int main(int argc, char **argv)
{
    char *command = g_strjoinv(" ", argv);
    opts o;
    if (!parse(&o, &argc, &argv))
        return 2;
    /* a run killed while writing (kill -9, power loss) leaves its temporary file, full size */
    const int stale = ps_remove_stale_temporaries(o.checkpoint) + ps_remove_stale_temporaries(o.out);
    if (stale)
        printf("removed %d unfinished temporary file%s of an interrupted run beside %s\n", stale, stale > 1 ? "s" : "",
               o.checkpoint);
    GError *err = NULL;
    ps_dataset *ds = ps_dataset_open(o.data, o.split, &err);
    if (!ds) {
        fprintf(stderr, "polypseg-train: %s\n", err->message);
        return 1;
    }
    for (char **dir = o.add_data; dir && *dir; dir++) {
        ps_dataset *more = ps_dataset_open(*dir, NULL, &err);
        if (!more) {
            fprintf(stderr, "polypseg-train: --add-data: %s\n", err->message);
            return 1;
        }
        ps_dataset_append(ds, more);
    }
    if (o.limit > 0 && o.limit < ds->n)
        ds->n = o.limit; /* the listing keeps ownership of every path */
    if (ds->n < o.batch) {
        fprintf(stderr, "polypseg-train: %d images is fewer than one batch of %d\n", ds->n, o.batch);
        return 1;
    }
    /* Opened now so that a typo fails before hours of training, not after. */
    ps_dataset *vds = NULL;
    if (o.val && !(vds = ps_dataset_open(o.val, o.val_split, &err))) {
        fprintf(stderr, "polypseg-train: --val: %s\n", err->message);
        return 1;
    }

    if (o.teacher) {
        gchar *bytes = NULL;
        gsize len = 0;
        if (!g_file_get_contents(o.teacher, &bytes, &len, &err)) {
            fprintf(stderr, "polypseg-train: --teacher: %s\n", err->message);
            return 2;
        }
        o.teacher_sha256 = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)bytes, len);
        g_free(bytes);
    }
    ps_adamw opt = {0};
    ps_ema *ema = NULL;
    ps_train_pos pos = {0, 0};
    ps_model *m;
    double prior_seconds = 0;
    if (o.resume && g_file_test(o.checkpoint, G_FILE_TEST_EXISTS)) {
        GHashTable *meta = NULL;
        m = ps_checkpoint_load(o.checkpoint, &opt, (float)o.lr, (float)o.wd, &pos, &meta, &ema, &err);
        if (!m) {
            fprintf(stderr, "polypseg-train: cannot resume: %s\n", err->message);
            return 1;
        }
        /* Everything that shapes the run must match, or the resumed run is not the same run. */
        const char *keys[] = {"seed", "batch", "epochs", "lr", "min_lr", "size", "limit", "data",
                              "add_data", "split", "crop_scale", "multi_scale", "loss", "optimizer", "dataset", "init",
                              "teacher", "teacher_sha256", "distillation", "deep_supervision", "lovasz", "augment_extra", "ema"};
        GHashTable *now = run_config(&o, command, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
            if (g_strcmp0(g_hash_table_lookup(meta, keys[i]), g_hash_table_lookup(now, keys[i]))) {
                fprintf(stderr, "polypseg-train: %s was written with %s=%s, this run has %s; "
                                "resume with the same settings\n", o.checkpoint, keys[i],
                        setting_or_none(meta, keys[i]), setting_or_none(now, keys[i]));
                return 1;
            }
        }
        if (strcmp(m->info.arch, o.arch) != 0) {
            fprintf(stderr, "polypseg-train: %s holds %s, not %s\n", o.checkpoint, m->info.arch, o.arch);
            return 1;
        }
        if ((o.ema > 0) != (ema != NULL)) {
            fprintf(stderr, "polypseg-train: %s %s the weights' moving average that --ema %s; the checkpoint is damaged\n",
                    o.checkpoint, ema ? "holds" : "lacks", ema ? "is off for" : "asks");
            return 1;
        }
        const char *secs = g_hash_table_lookup(meta, "train_seconds");
        prior_seconds = secs ? g_ascii_strtod(secs, NULL) : 0;
        g_hash_table_unref(now);
        g_hash_table_unref(meta);
        printf("resuming from %s at epoch %d, batch %d\n", o.checkpoint, pos.epoch + 1, pos.batch);
    } else {
        m = o.init ? ps_model_load(o.init, &err) : ps_model_new(o.arch, NULL, 0, (uint64_t)o.seed, &err);
        if (!m) {
            fprintf(stderr, "polypseg-train: %s\n", err->message);
            return 2;
        }
        if (strcmp(m->info.arch, o.arch) != 0) {
            fprintf(stderr, "polypseg-train: --init %s holds %s, not %s\n", o.init, m->info.arch, o.arch);
            return 2;
        }
    }
    m->info.input_size = o.size;
    const size_t student_params = ps_model_count_trainable(m);
    ps_distiller *kd = NULL;
    if (o.teacher) {
        ps_model *teacher = ps_model_load(o.teacher, &err);
        if (!teacher || !(kd = ps_distiller_new(teacher, m, &o.kd, (uint64_t)o.seed, &err))) {
            fprintf(stderr, "polypseg-train: --teacher: %s\n", err->message);
            return 2;
        }
        printf("distilling from %s (%s, %zu parameters): stage 1 for %d epochs, then stage 2\n", o.teacher,
               teacher->info.arch, ps_model_count_trainable(teacher), o.kd.stage1_epochs);
    }
    ps_deepsup *deepsup = NULL;
    if (o.deep_sup > 0 && !(deepsup = ps_deepsup_new(m, (float)o.deep_sup, (uint64_t)o.seed, &err))) {
        fprintf(stderr, "polypseg-train: --deep-supervision: %s\n", err->message);
        return 2;
    }
    if (!opt.m) /* a new run: after the adapters and heads, so that they train too */
        ps_adamw_init(&opt, m, (float)o.lr, (float)o.wd);
    if (opt.n != m->n_params) { /* the checkpoint lacked what this run trains */
        fprintf(stderr, "polypseg-train: %s has optimiser state for %d tensors, this run trains %d\n",
                o.checkpoint, opt.n, m->n_params);
        return 1;
    }
    /* a new run; a resumed one brought its average, of the same tensors as the optimiser state
     * checked above (both were read with the model) */
    if (o.ema > 0 && !ema)
        ema = ps_ema_new(m, (float)o.ema);

    ps_loader_config lc = {.size = o.size, .batch = o.batch, .seed = (uint64_t)o.seed, .augment = 1,
                           .shuffle = 1, .threads = o.threads, .crop_min = o.crop_min,
                           .crop_max = o.crop_max, .n_sizes = o.n_sides, .rotate_max = (float)o.rotate,
                           .hue_max = (float)o.hue, .copy_paste = (float)o.copy_paste};
    memcpy(lc.sizes, o.sides, sizeof lc.sizes);
    memcpy(lc.mean, m->info.mean, sizeof lc.mean);
    memcpy(lc.std, m->info.std, sizeof lc.std);
    printf("%s: %zu parameters; decoding %d images from %s%s ...\n", m->info.arch, student_params, ds->n, o.data, o.add_data ? " and --add-data" : "");
    fflush(stdout);
    ps_loader *loader = ps_loader_new(ds, &lc, &err);
    if (!loader) {
        fprintf(stderr, "polypseg-train: %s\n", err->message);
        return 1;
    }
    int per_epoch = ps_loader_batches_per_epoch(loader);
    long total_steps = (long)per_epoch * o.epochs, warmup = (long)per_epoch * o.warmup;
    if (pos.epoch > o.epochs || pos.batch >= per_epoch || (pos.epoch == o.epochs && pos.batch > 0)) {
        fprintf(stderr, "polypseg-train: %s is at epoch %d batch %d, outside this run's %d epochs of %d batches; "
                        "the checkpoint is damaged\n", o.checkpoint, pos.epoch + 1, pos.batch, o.epochs, per_epoch);
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const int max_side = ps_loader_max_side(loader); /* each batch sets the tensors' side */
    ps_tensor *images = ps_tensor_new(o.batch, 3, max_side, max_side);
    ps_tensor *masks = ps_tensor_new(o.batch, 1, max_side, max_side);
    ps_tensor *pixel_weights = o.structure_gain > 0 ? ps_tensor_new(o.batch, 1, max_side, max_side) : NULL;
    ps_arena *arena = ps_arena_new();
    ps_graph g;
    ps_graph_init(&g, arena, 1);
    FILE *log = o.log ? fopen(o.log, "a") : NULL;
    if (o.log && !log)
        fprintf(stderr, "polypseg-train: cannot open log %s; continuing without it\n", o.log);

    gint64 t_start = g_get_monotonic_time();
    ps_progress bar;
    ps_progress_init(&bar, "train", total_steps, opt.step);
    int exit_code = 0;
    for (int epoch = pos.epoch; epoch < o.epochs; epoch++) {
        ps_loader_start_epoch(loader, epoch);
        double loss_sum = 0;
        int seen = 0, b = 0;
        gint64 t_epoch = g_get_monotonic_time();
        for (; ps_loader_next(loader, images, masks); b++) {
            if (epoch == pos.epoch && b < pos.batch)
                continue; /* done before the interruption */
            float lr = ps_cosine_lr(opt.step, total_steps, warmup, (float)o.lr, (float)o.min_lr);
            ps_model_zero_grad(m);
            ps_graph_clear(&g);
            ps_tensor *features[5];
            if (deepsup)
                ps_deepsup_watch(deepsup, &g);
            ps_tensor *logits = ps_model_forward(m, &g, images, features);
            logits->grad = ps_arena_calloc(arena, ps_numel(logits) * sizeof(float));
            if (pixel_weights) {
                pixel_weights->n = masks->n, pixel_weights->h = masks->h, pixel_weights->w = masks->w;
                ps_structure_weights(masks, structure_radius(masks->w), (float)o.structure_gain, pixel_weights);
            }
            double loss = ((float)o.focal > 0 ? ps_loss_focal_logits(logits, masks, pixel_weights, (float)o.focal, 1.0f)
                                       : ps_loss_bce_logits(logits, masks, pixel_weights, 1.0f)) +
                          ps_loss_tversky(logits, masks, pixel_weights, (float)o.fn_weight, 1.0f);
            if (o.lovasz > 0)
                loss += o.lovasz * ps_loss_lovasz_hinge(logits, masks, (float)o.lovasz);
            if (kd)
                loss += ps_distiller_loss(kd, &g, ps_distiller_stage(kd, epoch), images, masks, logits, features);
            if (deepsup)
                loss += ps_deepsup_loss(deepsup, &g, masks);
            ps_backward(&g, logits);
            ps_adamw_step(&opt, m, lr);
            if (ema)
                ps_ema_update(ema, m, opt.step);
            loss_sum += loss;
            seen++;
            double ips = seen * o.batch / ((g_get_monotonic_time() - t_epoch) / 1e6);
            char extra[96];
            snprintf(extra, sizeof extra, "epoch %d/%d%s loss %.4f lr %.2e %.1f img/s", epoch + 1, o.epochs,
                     !kd ? "" : ps_distiller_stage(kd, epoch) == 1 ? " (stage 1)" : " (stage 2)", loss_sum / seen,
                     lr, ips);
            ps_progress_update(&bar, opt.step, extra);
            if (stop_requested)
                break;
        }
        double secs = (g_get_monotonic_time() - t_epoch) / 1e6;
        double train_seconds = prior_seconds + (g_get_monotonic_time() - t_start) / 1e6;
        ps_train_pos at = stop_requested ? (ps_train_pos){epoch, b + 1} : (ps_train_pos){epoch + 1, 0};
        if (stop_requested && b + 1 >= per_epoch)
            at = (ps_train_pos){epoch + 1, 0};
        GHashTable *cfg = run_config(&o, command, train_seconds);
        /* The epoch's snapshot first: once the checkpoint moves past an epoch, --resume after a
         * kill would never write that epoch's snapshot. */
        char *snapshot = o.snapshot_every > 0 && at.batch == 0 && at.epoch % o.snapshot_every == 0
                             ? snapshot_path(o.out, at.epoch) : NULL;
        if (snapshot)
            ps_remove_stale_temporaries(snapshot);
        gboolean saved = !snapshot || ps_checkpoint_save(snapshot, m, &opt, ema, at, cfg, &err);
        saved = saved && ps_checkpoint_save(o.checkpoint, m, &opt, ema, at, cfg, &err);
        g_free(snapshot);
        g_hash_table_unref(cfg);
        ps_progress_finish(&bar);
        if (!saved) {
            fprintf(stderr, "polypseg-train: checkpoint not written: %s\n", err->message);
            exit_code = 1;
            break;
        }
        printf("epoch %d/%d loss %.4f %.1f img/s %.1fs\n", epoch + 1, o.epochs,
               seen ? loss_sum / seen : 0.0, seen * o.batch / secs, secs);
        fflush(stdout);
        if (log) {
            fprintf(log, "{\"epoch\":%d,\"stage\":%d,\"loss\":%.6f,\"img_per_s\":%.2f,\"seconds\":%.2f}\n",
                    epoch + 1, kd ? ps_distiller_stage(kd, epoch) : 0, seen ? loss_sum / seen : 0.0,
                    seen * o.batch / secs, train_seconds);
            fflush(log);
        }
        if (stop_requested) {
            printf("stopped: checkpoint %s holds epoch %d batch %d; continue with --resume\n",
                   o.checkpoint, at.epoch + 1, at.batch);
            exit_code = 128 + stop_requested;
            break;
        }
    }
    /* From here on Ctrl-C / SIGTERM act as usual again. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (exit_code == 0) {
        if (ema)
            ps_ema_apply(ema, m); /* before the adapters and heads go: it covers them too */
        if (kd)
            ps_distiller_detach(kd, m); /* the adapters only served training */
        if (deepsup)
            ps_deepsup_detach(deepsup, m); /* and so did the heads */
        double train_seconds = prior_seconds + (g_get_monotonic_time() - t_start) / 1e6;
        GHashTable *meta = run_config(&o, command, train_seconds);
        if (vds) {
            char *metrics = ps_evaluate_summary(m, vds, o.val, o.val_split, &err);
            if (!metrics) {
                /* The weights are still worth keeping; they just carry no metrics. */
                fprintf(stderr, "polypseg-train: evaluation failed (weights saved without metrics): %s\n",
                        err->message);
                g_clear_error(&err);
            } else {
                printf("held-out %s: %s\n", o.val, metrics);
                g_hash_table_insert(meta, g_strdup("metrics"), metrics);
            }
        }
        if (!ps_model_save(m, o.out, meta, &err)) {
            fprintf(stderr, "polypseg-train: %s\n(the trained model is in the checkpoint: `--resume --checkpoint %s "
                            "--out NEW` with this run's other options writes it to NEW)\n", err->message, o.checkpoint);
            exit_code = 1;
        } else {
            char dur[32];
            ps_format_duration(train_seconds, dur, sizeof dur);
            printf("wrote %s (%d epochs, %s training)\n", o.out, o.epochs, dur);
        }
        g_hash_table_unref(meta);
    }
    if (log)
        fclose(log);
    ps_graph_release(&g);
    ps_arena_free(arena);
    ps_tensor_free(images);
    ps_tensor_free(masks);
    ps_tensor_free(pixel_weights);
    ps_loader_free(loader);
    ps_adamw_free(&opt);
    ps_ema_free(ema);
    ps_model_free(m);
    ps_distiller_free(kd);
    ps_deepsup_free(deepsup);
    ps_dataset_free(ds);
    ps_dataset_free(vds);
    g_free(command);
    return exit_code;
}
