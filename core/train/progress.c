#include "progress.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 24

void ps_progress_init(ps_progress *p, const char *label, long total, long already_done)
{
    memset(p, 0, sizeof *p);
    g_strlcpy(p->label, label, sizeof p->label);
    p->total = total;
    p->start_done = already_done;
    p->start_us = g_get_monotonic_time();
    p->tty = isatty(STDERR_FILENO);
}

void ps_format_duration(double s, char *buf, size_t size)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, size, "%lds", t);
}

void ps_progress_update(ps_progress *p, long done, const char *extra)
{
    if (!p->tty)
        return;
    gint64 now = g_get_monotonic_time();
    if (done < p->total && now - p->last_draw_us < 100000) /* redraw at most 10 times a second */
        return;
    p->last_draw_us = now;
    char bar[BAR_WIDTH + 1], eta[32] = "?";
    int filled = p->total > 0 ? (int)(BAR_WIDTH * done / p->total) : 0;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    double elapsed = (now - p->start_us) / 1e6;
    long since = done - p->start_done;
    if (since > 0)
        ps_format_duration(elapsed / since * (p->total - done), eta, sizeof eta);
    fprintf(stderr, "\r\033[K%s [%s] %ld/%ld %s ETA %s", p->label, bar, done, p->total,
            extra ? extra : "", eta);
    fflush(stderr);
}

void ps_progress_finish(ps_progress *p)
{
    if (p->tty)
        fprintf(stderr, "\r\033[K");
}
