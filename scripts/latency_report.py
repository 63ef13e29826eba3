#!/usr/bin/env python3
"""Per-frame latency of one element from GStreamer's latency tracer, as a table and a PNG
histogram (the element benchmark, scripts/bench_element.sh, runs the pipelines).

Usage:
    python3 scripts/latency_report.py OUT.png OUT.md ELEMENT RUN [RUN ...]
RUN is LABEL=LOG,FRAMES,SECONDS[,CPU_SECONDS]: the tracer log of a run
(GST_TRACERS="latency(flags=element)" GST_DEBUG=GST_TRACER:7), how many frames it pushed, its wall
time and, optionally, the CPU time the whole run took (user + system). ELEMENT is the element's
name in the pipeline. The table has FPS (frames / wall time), the element's p50/p95/p99/max
latency in ms, and with CPU times the CPU ms per frame and the FPS they allow at best on the
cores this process may use (cores x 1000 / CPU ms: every core busy, nothing waiting).
Standard library only (pngplot.py draws the PNG).
"""
import os
import re
import sys

from pngplot import (BOTTOM, COLORS, LEFT, RIGHT, TOP, H, W, Canvas, draw_grid, draw_legend,
                     nice_ticks)


def latencies_ms(path, element):
    pat = re.compile(r"element-latency, .*element=\(string\)" + re.escape(element)
                     + r", src=\(string\)\w+, time=\(guint64\)(\d+)")
    with open(path, encoding="utf-8", errors="replace") as f:
        values = [int(m.group(1)) / 1e6 for m in map(pat.search, f) if m]
    if not values:
        sys.exit(f"error: {path}: no element-latency record for '{element}' "
                 "(was the pipeline run with the latency tracer?)")
    return sorted(values)


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * (len(sorted_values) - 1) + 0.5))]


def histogram(out, runs, element):
    c = Canvas(W, H)
    x0, y0, x1, y1 = LEFT, TOP, W - RIGHT, H - BOTTOM
    hi = max(max(pct(v, 99.5) for _, v, _, _ in runs) * 1.05, 1e-3)  # the last bar holds all slower frames
    bins = 60
    width = hi / bins
    counts = []
    for _, v, _, _ in runs:
        h = [0] * bins
        for x in v:
            h[min(bins - 1, int(x / width))] += 1
        counts.append([k / len(v) * 100 for k in h])  # percent of frames
    top = max(max(h) for h in counts)
    xt, xs = nice_ticks(0, hi)
    yt, ys = nice_ticks(0, top)
    sx = lambda v: round(x0 + v / xt[-1] * (x1 - x0))
    sy = lambda v: round(y1 - v / yt[-1] * (y1 - y0))
    label = f"{element} latency per frame (ms, last bar: {hi:.1f} ms and slower)"
    draw_grid(c, (x0, y0, x1, y1), (xt, xs), (yt, ys), sx, sy, label, "% of frames")
    for i, h in enumerate(counts):  # outlined bars, one colour per run
        col = COLORS[i % len(COLORS)]
        for b, v in enumerate(h):
            if v > 0:
                xa, xb = sx(b * width), sx((b + 1) * width)
                c.line(xa, sy(v), xb, sy(v), col)
                c.rect(xa, sy(v), xa + 1, y1, col)
                c.rect(xb - 1, sy(v), xb, y1, col)
    entries = [f"{lab}: p50 {pct(v, 50):.2f} p99 {pct(v, 99):.2f} ms" for lab, v, _, _ in runs]
    draw_legend(c, entries, x1, y0)
    c.save_png(out)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    out_png, out_md, element = sys.argv[1:4]
    runs, cpus = [], []
    for spec in sys.argv[4:]:
        label, _, rest = spec.partition("=")
        try:
            fields = rest.split(",")
            if len(fields) not in (3, 4):
                raise ValueError
            log, frames, seconds = fields[0], int(fields[1]), float(fields[2])
            cpus.append(float(fields[3]) if len(fields) == 4 else None)
        except ValueError:
            sys.exit(f"error: bad RUN '{spec}' (want LABEL=LOG,FRAMES,SECONDS[,CPU_SECONDS])")
        runs.append((label, latencies_ms(log, element), frames, seconds))
    with_cpu = all(c is not None for c in cpus)
    cores = len(os.sched_getaffinity(0))
    head = "| run | frames | FPS | p50 ms | p95 ms | p99 ms | max ms |"
    rule = "|---|---|---|---|---|---|---|"
    if with_cpu:
        head += f" CPU ms/frame | FPS the CPU allows ({cores} cores) |"
        rule += "---|---|"
    rows = [head, rule]
    for (label, v, frames, seconds), cpu in zip(runs, cpus):
        row = (f"| {label} | {frames} | {frames / seconds:.0f} | {pct(v, 50):.2f} | {pct(v, 95):.2f} "
               f"| {pct(v, 99):.2f} | {v[-1]:.2f} |")
        if with_cpu:
            cpu_ms = cpu / frames * 1000
            row += f" {cpu_ms:.2f} | {cores * 1000 / cpu_ms:.0f} |" if cpu_ms > 0 else " 0 | - |"
        rows.append(row)
    with open(out_md, "w") as f:
        f.write("\n".join(rows) + "\n")
    histogram(out_png, runs, element)
    print("\n".join(rows))
    print(f"wrote {out_md} and {out_png}")


if __name__ == "__main__":
    main()
