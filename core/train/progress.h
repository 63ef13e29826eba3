/* A progress bar with ETA on a terminal (stderr); on a pipe or file it stays silent and the
 * caller logs plain lines instead. */
#pragma once
#include <glib.h>

typedef struct ps_progress {
    char label[32];
    long total;
    gint64 start_us, last_draw_us;
    long start_done; /* work already done when timing started (resumed runs) */
    gboolean tty;
} ps_progress;

void ps_progress_init(ps_progress *p, const char *label, long total, long already_done);
/* `extra` (may be NULL) is shown after the counts, e.g. "loss 0.41 lr 9.8e-04 45 img/s". */
void ps_progress_update(ps_progress *p, long done, const char *extra);
void ps_progress_finish(ps_progress *p);
/* "1h02m", "4m05s", "12s" */
void ps_format_duration(double seconds, char *buf, size_t size);
