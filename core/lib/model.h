/* A model: named parameters (PyTorch state_dict names and shapes), its architecture
 * description, and a forward pass written against graph.h. */
#pragma once
#include <glib.h>
#include <stdint.h>
#include "graph.h"
#include "safetensors.h"

#define PS_MAX_CHANNELS 8
/* Input sides: multiples of 32 (five 2x poolings), at least 128 (the bridge reflect-pads the
 * 1/32 map by 3), at most 4096. */
#define PS_MIN_INPUT 128
#define PS_MAX_INPUT 4096
#define PS_MAX_WIDTH 256 /* largest channel count a weights file may ask for */

typedef struct ps_param {
    char *name;
    ps_tensor *t;       /* NCHW view used by the ops */
    int ndim;           /* the PyTorch shape, used for files */
    int64_t shape[4];
    int trainable;      /* 0 for batch-norm running statistics */
} ps_param;

typedef struct ps_model_info {
    char arch[32];                /* one of ps_model_archs */
    int n_channels;
    int channels[PS_MAX_CHANNELS];
    int input_size;               /* square side the model was trained at */
    float mean[3], std[3];        /* input normalisation of 0..1 RGB */
} ps_model_info;

typedef struct ps_model ps_model;
struct ps_model {
    ps_model_info info;
    ps_param *params;
    int n_params, cap_params;
    void *net; /* architecture-specific pointers into params */
    ps_tensor *(*forward)(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features);
    void (*free_net)(void *net);
};

GQuark ps_model_error_quark(void);
#define PS_MODEL_ERROR ps_model_error_quark()

/* Known architectures, NULL-terminated. */
extern const char *const ps_model_archs[];

/* New model with PyTorch-style initialised weights (seeded). channels NULL = the arch's default. */
ps_model *ps_model_new(const char *arch, const int *channels, int n_channels, uint64_t seed,
                       GError **err);
/* Builds the model the file's metadata names and loads its weights, rejecting (with a message
 * naming the file and tensor) missing, extra and mis-shaped tensors. Training checkpoints
 * (polypseg-train's .ckpt files) load too. */
ps_model *ps_model_load(const char *path, GError **err);
/* Name prefixes of a training checkpoint's tensors that are not the model's: the optimiser's
 * state, distillation's feature adapters and deep supervision's heads. */
#define PS_OPTIM_PREFIX "optim."
#define PS_DISTILL_PREFIX "distill."
#define PS_DEEPSUP_PREFIX "deepsup."
#define PS_TRAIN_ONLY_PREFIXES PS_OPTIM_PREFIX, PS_DISTILL_PREFIX, PS_DEEPSUP_PREFIX
/* The same from an already-read file; tensors named with one of ignore_prefixes (NULL-terminated;
 * the list may be NULL) are allowed beside the model's. */
ps_model *ps_model_from_file(const ps_st_file *f, const char *path, const char *const *ignore_prefixes,
                             GError **err);
/* Loads weights from an already-read file into an existing model (same checks); nothing is
 * changed when it fails. */
gboolean ps_model_set_weights(ps_model *m, const ps_st_file *f, const char *path,
                              const char *const *ignore_prefixes, GError **err);
/* Writes all parameters and buffers plus metadata (architecture, channels, input_size, mean,
 * std, and every key of `extra`, e.g. provenance) atomically. */
gboolean ps_model_save(const ps_model *m, const char *path, GHashTable *extra, GError **err);
void ps_model_free(ps_model *m);
/* The metadata ps_model_save writes (a new table, string -> string), and the tensor list
 * (names and data borrowed from the model; `ts` holds n_params entries). */
GHashTable *ps_model_metadata(const ps_model *m, GHashTable *extra);
void ps_model_tensors(const ps_model *m, ps_st_tensor *ts);

size_t ps_model_count_trainable(const ps_model *m);
ps_param *ps_model_find(ps_model *m, const char *name);
/* Logits (N,1,H,W) for a normalised input (N,3,H,W), H and W multiples of 32. When features
 * is non-NULL it receives the encoder features t1..t5 (for distillation). */
ps_tensor *ps_model_forward(ps_model *m, ps_graph *g, ps_tensor *x, ps_tensor **features);

/* Used by architecture builders: adds a parameter with its PyTorch shape (1..4 dims). */
ps_tensor *ps_model_add_param(ps_model *m, const char *name, int trainable, int ndim,
                              const int64_t *shape);
