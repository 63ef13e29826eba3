#include "output_path.h"
#include <glib/gstdio.h>
#include <string.h>

#define MAX_LINKS 40 /* as the kernel's limit on a path's symbolic links */

char *ps_output_target(const char *path, GError **err)
{
    char *target = g_strdup(path);
    for (int links = 0;; links++) {
        GStatBuf st;
        if (g_lstat(target, &st) != 0) /* a new file: written where it was asked for */
            return target;
        if (S_ISREG(st.st_mode))
            return target;
        if (!S_ISLNK(st.st_mode)) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "%s: not a regular file (a folder, device or FIFO); give the path of a file to write", path);
            g_free(target);
            return NULL;
        }
        char *link = links < MAX_LINKS ? g_file_read_link(target, NULL) : NULL;
        if (!link) {
            g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_LOOP, "%s: cannot follow its symbolic link%s", path,
                        links < MAX_LINKS ? "" : "s (too many levels)");
            g_free(target);
            return NULL;
        }
        char *dir = g_path_get_dirname(target);
        char *next = g_path_is_absolute(link) ? g_strdup(link) : g_build_filename(dir, link, NULL);
        g_free(dir);
        g_free(link);
        g_free(target);
        target = next;
    }
}

int ps_remove_stale_temporaries(const char *path)
{
    char *target = ps_output_target(path, NULL);
    if (!target)
        return 0;
    char *dir = g_path_get_dirname(target), *base = g_path_get_basename(target);
    char *prefix = g_strconcat(base, ".tmp-", NULL);
    const size_t plen = strlen(prefix);
    int removed = 0;
    GDir *d = g_dir_open(dir, 0, NULL);
    for (const char *name; d && (name = g_dir_read_name(d));) {
        if (strncmp(name, prefix, plen) != 0 || strlen(name) != plen + 6) /* g_mkstemp's XXXXXX */
            continue;
        char *p = g_build_filename(dir, name, NULL);
        GStatBuf st;
        if (g_lstat(p, &st) == 0 && S_ISREG(st.st_mode) && g_unlink(p) == 0)
            removed++;
        g_free(p);
    }
    if (d)
        g_dir_close(d);
    g_free(prefix), g_free(base), g_free(dir), g_free(target);
    return removed;
}
