#!/usr/bin/env python3
"""Plot the test-time augmentation trade-off: mean Dice against milliseconds per frame.

Usage:
    python3 scripts/plot_tta.py OUT.png POINTS.jsonl [--title TEXT]

POINTS.jsonl holds one JSON object per line:
    {"series": "microaunet-kvasir on kvasir-seg/val", "views": 2, "ms": 5.6, "dice": 0.82}
(scripts/tta_tradeoff.sh writes it). One curve per series, a marker and the view count at
each point. Standard library only (pngplot.py draws and encodes the PNG).
"""
import argparse
import json
import math
import sys

from pngplot import BOTTOM, COLORS, LEFT, RIGHT, TOP, H, W, Canvas, draw_grid, draw_legend, nice_ticks


def read_points(path):
    series = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    p = json.loads(line)
                    values = [p["views"], p["ms"], p["dice"]]
                    if not isinstance(p["series"], str) or not all(
                            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                            for v in values):
                        raise ValueError("series must be text; views, ms and dice finite numbers")
                except (ValueError, KeyError, TypeError) as e:
                    sys.exit(f"error: {path}:{n}: {e}")
                series.setdefault(p["series"], []).append((p["ms"], p["dice"], p["views"]))
    except OSError as e:
        sys.exit(f"error: cannot read {path}: {e}")
    if not series:
        sys.exit(f"error: {path}: no points")
    return [(name, sorted(pts)) for name, pts in series.items()]


def plot(out, series, title):
    c = Canvas(W, H)
    x0, y0, x1, y1 = LEFT, TOP, W - RIGHT, H - BOTTOM
    ms = [m for _, pts in series for m, _, _ in pts]
    dice = [d for _, pts in series for _, d, _ in pts]
    xt, xs = nice_ticks(0, max(ms))
    span = max(dice) - min(dice)
    yt, ys = nice_ticks(min(dice) - 0.6 * span, max(dice) + 0.005)  # room below for the legend
    sx = lambda v: round(x0 + (v - xt[0]) / (xt[-1] - xt[0]) * (x1 - x0))
    sy = lambda v: round(y1 - (v - yt[0]) / (yt[-1] - yt[0]) * (y1 - y0))
    draw_grid(c, (x0, y0, x1, y1), (xt, xs), (yt, ys), sx, sy,
              "ms per frame, two threads (labels: views)", "mean Dice", title)
    for i, (_, pts) in enumerate(series):
        col = COLORS[i % len(COLORS)]
        xy = [(sx(m), sy(d), v) for m, d, v in pts]
        for (ax, ay, _), (bx, by, _) in zip(xy, xy[1:]):
            c.line(ax, ay, bx, by, col)
        for px, py, v in xy:
            c.rect(px - 3, py - 3, px + 3, py + 3, col)
            c.text(px + 6, py - 18, str(v), col)
    draw_legend(c, [f"{name}: {pts[0][1]:.3f} to {max(d for _, d, _ in pts):.3f}" for name, pts in series],
                x1, y1 - 20 * len(series) - 30)
    c.save_png(out)


def main():
    ap = argparse.ArgumentParser(description="Plot mean Dice against ms per frame for test-time augmentation.")
    ap.add_argument("out", help="output PNG path")
    ap.add_argument("points", help="JSON-lines file of points")
    ap.add_argument("--title", help="chart title")
    args = ap.parse_args()
    series = read_points(args.points)
    plot(args.out, series, args.title)
    print(f"wrote {args.out} ({len(series)} curve(s))")


if __name__ == "__main__":
    main()
