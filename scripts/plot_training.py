#!/usr/bin/env python3
"""Plot training loss vs epoch from JSON-lines trainer logs into a PNG.

Usage:
    python3 scripts/plot_training.py OUT.png LOG.jsonl[:LABEL] [LOG2.jsonl[:LABEL2] ...]
                                     [--title TEXT] [--ymax Y]

Each log holds one JSON object per epoch, e.g.
    {"epoch":12,"loss":0.5123,"img_per_s":24.1,"seconds":410.2}
Only "epoch" and "loss" are used. Blank or malformed lines are skipped with a
warning; a log without any usable line is an error. LABEL defaults to the
file's stem. --ymax clips the y axis (useful when the first epochs dwarf the
rest). Standard library only (pngplot.py draws and encodes the PNG).
"""
import argparse
import json
import math
import os
import sys

from pngplot import (BOTTOM, COLORS, LEFT, RIGHT, TOP, H, W, Canvas, draw_grid, draw_legend,
                     nice_ticks)


def read_log(spec):
    path, label = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, _, label = spec.rpartition(":")
    label = label or os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        sys.exit(f"error: cannot read {path}: {e}")
    points = {}
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or "epoch" not in obj or "loss" not in obj:
                raise ValueError("not an object with 'epoch' and 'loss'")
            ep, loss = obj["epoch"], obj["loss"]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (ep, loss)):
                raise ValueError("non-numeric epoch/loss")
            if not (math.isfinite(ep) and math.isfinite(loss)):
                raise ValueError("non-finite epoch/loss")
        except (ValueError, TypeError) as e:
            what = "blank line" if not line.strip() else f"malformed line ({e})"
            print(f"warning: {path}:{n}: skipping {what}", file=sys.stderr)
            continue
        points[ep] = loss                        # a repeated epoch keeps the last value
    if not points:
        sys.exit(f"error: {path}: no usable line with numeric 'epoch' and 'loss'")
    return label, sorted(points.items())


def plot(out, series, title=None, ymax=None):
    c = Canvas(W, H)
    x0, y0, x1, y1 = LEFT, TOP, W - RIGHT, H - BOTTOM     # plot-area corners
    eps = [e for _, pts in series for e, _ in pts]
    losses = [v for _, pts in series for _, v in pts]
    xt, xs = nice_ticks(min(eps), max(eps), min_step=1)   # epochs are integers
    hi = min(max(losses), ymax) if ymax is not None else max(losses)
    yt, ys = nice_ticks(min(min(losses), hi), hi)
    sx = lambda e: round(x0 + (e - xt[0]) / (xt[-1] - xt[0]) * (x1 - x0))
    sy = lambda v: round(y1 - (v - yt[0]) / (yt[-1] - yt[0]) * (y1 - y0))
    draw_grid(c, (x0, y0, x1, y1), (xt, xs), (yt, ys), sx, sy, "epoch", "training loss", title)
    clip = (x0 + 2, y0, x1, y1 - 1)
    for i, (_, pts) in enumerate(series):        # curves
        col = COLORS[i % len(COLORS)]
        xy = [(sx(e), sy(v)) for e, v in pts]
        for (ax, ay), (bx, by) in zip(xy, xy[1:]):
            c.line(ax, ay, bx, by, col, clip)
        if len(xy) == 1:                         # a lone point: small square marker
            c.rect(xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 3, xy[0][1] + 3, col)
    entries = [f"{lab}: {pts[-1][1]:.4f} (ep {pts[-1][0]:g})" for lab, pts in series]
    draw_legend(c, entries, x1, y0)
    c.save_png(out)


def main():
    ap = argparse.ArgumentParser(description="Plot training loss vs epoch to a PNG.")
    ap.add_argument("out", help="output PNG path")
    ap.add_argument("logs", nargs="+", metavar="LOG.jsonl[:LABEL]")
    ap.add_argument("--title", help="chart title")
    ap.add_argument("--ymax", type=float, help="upper limit of the loss axis")
    args = ap.parse_args()
    series = [read_log(spec) for spec in args.logs]
    plot(args.out, series, args.title, args.ymax)
    print(f"wrote {args.out} ({len(series)} curve(s))")


if __name__ == "__main__":
    main()
