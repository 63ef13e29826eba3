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
rest). Standard library only: the text is drawn with a built-in 5x7 bitmap
font and the PNG is encoded by hand (zlib + struct).
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

W, H = 900, 500
LEFT, RIGHT, TOP, BOTTOM = 84, 24, 44, 62        # plot-area margins (px)
SCALE = 2                                        # font scale: 5x7 -> 10x14
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14),
          (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207)]

# 5x7 font: char followed by 7 rows, 2 hex digits each (bit 4 = leftmost pixel).
_FONT_DATA = """
0 0E11131519110E 1 040C040404040E 2 0E11010204081F 3 1F02040201110E 4 02060A121F0202
5 1F101E0101110E 6 0608101E11110E 7 1F010204080808 8 0E11110E11110E 9 0E11110F01020C
A 0E1111111F1111 B 1E11111E11111E C 0E11101010110E D 1C12111111121C E 1F10101E10101F
F 1F10101E101010 G 0E11101711110F H 1111111F111111 I 0E04040404040E J 0702020202120C
K 11121418141211 L 1010101010101F M 111B1515111111 N 11111915131111 O 0E11111111110E
P 1E11111E101010 Q 0E11111115120D R 1E11111E141211 S 0F10100E01011E T 1F040404040404
U 1111111111110E V 11111111110A04 W 1111111515150A X 11110A040A1111 Y 1111110A040404
Z 1F01020408101F a 00000E010F110F b 1010161911111E c 00000E1010110E d 01010D1311110F
e 00000E111F100E f 0609081C080808 g 000F11110F010E h 10101619111111 i 04000C0404040E
j 0200060202120C k 10101214181412 l 0C04040404040E m 00001A15151111 n 00001619111111
o 00000E1111110E p 00001E111E1010 q 00000D130F0101 r 00001619101010 s 00000E100E011E
t 08081C08080906 u 0000111111130D v 00001111110A04 w 0000111115150A x 0000110A040A11
y 000011110F010E z 00001F0204081F . 00000000000C0C - 0000001F000000 : 000C0C000C0C00
/ 00010204081000 ( 02040808080402 ) 08040202020408 = 00001F001F0000 + 0004041F040400
_ 0000000000001F , 000000000C0408 % 18190204081303 [ 0E08080808080E ] 0E02020202020E
? 0E110102040004 ! 04040404040004 # 0A0A1F0A1F0A0A * 0004150E150400 @ 0E11171517100E
"""


def _parse_font(data):
    toks = data.split()                          # alternating: char, 14 hex digits
    font = {ch: [int(h[k:k + 2], 16) for k in range(0, 14, 2)]
            for ch, h in zip(toks[::2], toks[1::2])}
    font[" "] = [0] * 7
    return font


FONT = _parse_font(_FONT_DATA)


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):            # filled, inclusive corners
        for y in range(max(y0, 0), min(y1, self.h - 1) + 1):
            for x in range(max(x0, 0), min(x1, self.w - 1) + 1):
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, clip=None):
        """Bresenham line drawn with a 2x2 brush (2 px wide, no antialiasing)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for bx, by in ((0, 0), (1, 0), (0, 1), (1, 1)):
                x, y = x0 + bx, y0 + by
                if clip is None or (clip[0] <= x <= clip[2] and clip[1] <= y <= clip[3]):
                    self.set(x, y, c)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x, y, s, c=BLACK, vertical=False):
        """Draw s with its top-left at (x, y); vertical = rotated 90 deg CCW
        (reads bottom to top, (x, y) is then the bottom-left corner)."""
        for n, ch in enumerate(s):
            rows = FONT.get(ch, FONT["?"])
            for gy, bits in enumerate(rows):
                for gx in range(5):
                    if bits & (0x10 >> gx):
                        u, v = (n * 6 + gx) * SCALE, gy * SCALE
                        for a in range(SCALE):
                            for b in range(SCALE):
                                if vertical:
                                    self.set(x + v + b, y - u - a, c)
                                else:
                                    self.set(x + u + a, y + v + b, c)

    def save_png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w])
                       for y in range(self.h))   # filter type 0 on every row

        def chunk(kind, data):
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)  # 8-bit RGB
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                    + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s):
    return len(s) * 6 * SCALE - SCALE


def nice_ticks(lo, hi, target=6, min_step=0.0):
    """Ticks at a 1/2/5 x 10^k step covering [lo, hi]; returns (ticks, step)."""
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = max(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw), min_step)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    if first == last:
        last += 1
    return [k * step for k in range(first, last + 1)], step


def fmt_tick(v, step):
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:.{decimals}f}"


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
    for t in xt:                                 # grid, ticks, tick labels
        px, lab = sx(t), fmt_tick(t, xs)
        c.rect(px, y0, px, y1, GRID)
        c.rect(px, y1, px + 1, y1 + 6, BLACK)
        c.text(px - text_width(lab) // 2, y1 + 10, lab)
    for t in yt:
        py, lab = sy(t), fmt_tick(t, ys)
        c.rect(x0, py, x1, py, GRID)
        c.rect(x0 - 6, py - 1, x0, py, BLACK)
        c.text(x0 - 10 - text_width(lab), py - 7, lab)
    c.rect(x0, y0, x0 + 1, y1 + 1, BLACK)        # axes
    c.rect(x0, y1, x1, y1 + 1, BLACK)
    c.text((x0 + x1 - text_width("epoch")) // 2, H - 22, "epoch")
    c.text(6, (y0 + y1 + text_width("training loss")) // 2, "training loss", vertical=True)
    if title:
        c.text((W - text_width(title)) // 2, 12, title)
    clip = (x0 + 2, y0, x1, y1 - 1)
    for i, (_, pts) in enumerate(series):        # curves
        col = COLORS[i % len(COLORS)]
        xy = [(sx(e), sy(v)) for e, v in pts]
        for (ax, ay), (bx, by) in zip(xy, xy[1:]):
            c.line(ax, ay, bx, by, col, clip)
        if len(xy) == 1:                         # a lone point: small square marker
            c.rect(xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 3, xy[0][1] + 3, col)
    entries = [f"{lab}: {pts[-1][1]:.4f} (ep {pts[-1][0]:g})" for lab, pts in series]
    lw = max(text_width(s) for s in entries) + 48     # legend box, top right
    lh = 20 * len(entries) + 8
    lx, ly = x1 - lw - 10, y0 + 10
    c.rect(lx, ly, lx + lw, ly + lh, BLACK)
    c.rect(lx + 1, ly + 1, lx + lw - 1, ly + lh - 1, WHITE)
    for i, s in enumerate(entries):
        ey = ly + 6 + 20 * i
        c.rect(lx + 8, ey + 6, lx + 32, ey + 7, COLORS[i % len(COLORS)])
        c.text(lx + 40, ey, s)
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
