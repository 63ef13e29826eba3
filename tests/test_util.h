/* Helpers shared by the GLib-test (TAP) unit tests. */
#pragma once
#include <glib.h>
#include "../core/lib/tensor.h"
#include "../core/lib/model.h"
#include "../core/lib/safetensors.h"

/* Path inside tests/fixtures ($POLYPSEG_FIXTURES); g_free() it. */
char *tu_fixture_path(const char *rel);
/* Loads a fixture safetensors file, failing the test (g_error) if it cannot. */
ps_st_file *tu_load_fixture(const char *rel);
/* Copies a fixture tensor (1..4 dims, right-aligned into NCHW: shape [a,b] -> (1,1,a,b)
 * unless `as` gives the shape) into a new heap tensor. */
ps_tensor *tu_tensor_from(const ps_st_file *f, const char *name);
ps_tensor *tu_tensor_from_as(const ps_st_file *f, const char *name, int n, int c, int h, int w);
/* max |a-b| / max |b| (floored at 1e-6): error relative to the reference's own scale. */
double tu_rel_err(const float *a, const float *b, size_t n);
/* Asserts tu_rel_err <= tol, printing the label and error. */
void tu_assert_close(const char *label, const float *got, const float *want, size_t n, double tol);
/* The value with a fraction q (0..1) of the n values below it (a sorted copy is made). */
double tu_quantile(const float *v, int n, double q);
/* Fills with uniform values in [lo, hi) from a seeded generator. */
void tu_fill_uniform(float *x, size_t n, GRand *r, float lo, float hi);
/* Dataset root, or NULL. In CI (CI=true) a missing dataset fails the test loudly; on a user's
 * machine the test is skipped with a message saying where the data was looked for. */
char *tu_data_root_or_skip(void);
/* Model of the fixture's metadata "arch" with every parameter copied from the same-named
 * fixture tensor (fixtures also hold inputs/outputs, so the strict loader is not used here). */
ps_model *tu_model_from_fixture(const ps_st_file *f);
/* Removes a file or a folder with everything in it (symbolic links are not followed). */
void tu_remove_tree(const char *path);
/* Writes n image/mask pairs DIR/images/I.png and DIR/masks/I.png (I = 0..n-1), w x h: a
 * brighter noisy disc (the "polyp") of seeded position and size on a darker noisy background. */
void tu_write_disc_dataset(const char *dir, int n, int w, int h, guint32 seed);
/* Caps this process's address space at its current size plus extra_mb (RLIMIT_AS), so that
 * allocations past that fail as when memory runs out: for a test's child process
 * (g_test_trap_subprocess), which the limit then stays with. */
void tu_limit_address_space(long extra_mb);
