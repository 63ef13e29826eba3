#pragma once
#include <glib.h>

/* Where a file written as "a temporary file renamed over `path`" must go: `path` itself, or the
 * file its symbolic link(s) end at, so that writing through a link replaces the linked file, not
 * the link. Refuses (NULL, err set) a target that exists and is not a regular file (a folder,
 * device or FIFO): a rename would replace it, or fail with an unclear message. g_free the result. */
char *ps_output_target(const char *path, GError **err);

/* Removes the temporary files (`<target>.tmp-XXXXXX`) that a writer of `path` killed before its
 * rename left behind; returns how many. Only for a writer that owns `path` (a training run and
 * its checkpoint), never one that may run beside another writer of the same file. */
int ps_remove_stale_temporaries(const char *path);
