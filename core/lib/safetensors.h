/* safetensors reader and writer (F32 tensors only).
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the data block. */
#pragma once
#include <glib.h>
#include <stdint.h>

#define PS_ST_MAX_DIMS 8

typedef struct ps_st_tensor {
    char *name;
    int ndim;
    int64_t shape[PS_ST_MAX_DIMS];
    size_t numel;
    float *data; /* owned */
} ps_st_tensor;

typedef struct ps_st_file {
    ps_st_tensor *tensors;
    int n_tensors;
    GHashTable *metadata; /* char* -> char*, owned; empty when absent */
} ps_st_file;

GQuark ps_st_error_quark(void);
#define PS_ST_ERROR ps_st_error_quark()

/* Reads and fully validates a file. On failure returns NULL and sets *err (domain PS_ST_ERROR)
 * to a message naming the file and, where it applies, the tensor: header length past the end of
 * the file or absurd (> 100 MB), invalid JSON, entry not an object, dtype other than F32, bad
 * shape, offsets out of the data block / wrong size / overlapping, duplicate names, non-finite
 * values, metadata values that are not strings. Never reads out of bounds. */
ps_st_file *ps_st_read(const char *path, GError **err);
void ps_st_free(ps_st_file *f);
const ps_st_tensor *ps_st_find(const ps_st_file *f, const char *name);
const char *ps_st_meta(const ps_st_file *f, const char *key); /* NULL when absent */

/* Writes tensors in the given order plus string metadata (may be NULL) atomically: a temporary
 * file in the same folder, fsync, then rename over `path`, so a crash never leaves a partial file. */
gboolean ps_st_write(const char *path, const ps_st_tensor *tensors, int n_tensors,
                     GHashTable *metadata, GError **err);
