"""Tiny PNG charts with the standard library only: an RGB canvas with lines, rectangles and a
built-in 5x7 bitmap font, a hand-written PNG encoder (zlib + struct), and axis-tick helpers.
Used by plot_training.py and latency_report.py.
"""
import math
import struct
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


def draw_grid(c, box, xticks, yticks, sx, sy, xlabel, ylabel, title=None):
    """Grid lines, tick marks, tick labels, the two axes and their labels of the plot area
    box = (x0, y0, x1, y1), and the title above; xticks / yticks are (ticks, step) from
    nice_ticks, sx / sy map values to pixels."""
    x0, y0, x1, y1 = box
    c.text((x0 + x1 - text_width(xlabel)) // 2, c.h - 22, xlabel)
    c.text(6, (y0 + y1 + text_width(ylabel)) // 2, ylabel, vertical=True)
    if title:
        c.text((c.w - text_width(title)) // 2, 12, title)
    for t in xticks[0]:
        px, lab = sx(t), fmt_tick(t, xticks[1])
        c.rect(px, y0, px, y1, GRID)
        c.rect(px, y1, px + 1, y1 + 6, BLACK)
        c.text(px - text_width(lab) // 2, y1 + 10, lab)
    for t in yticks[0]:
        py, lab = sy(t), fmt_tick(t, yticks[1])
        c.rect(x0, py, x1, py, GRID)
        c.rect(x0 - 6, py - 1, x0, py, BLACK)
        c.text(x0 - 10 - text_width(lab), py - 7, lab)
    c.rect(x0, y0, x0 + 1, y1 + 1, BLACK)
    c.rect(x0, y1, x1, y1 + 1, BLACK)


def draw_legend(c, entries, right, top):
    """A boxed legend at the top right: one colour swatch (COLORS order) and text per entry."""
    lw = max(text_width(s) for s in entries) + 48
    lh = 20 * len(entries) + 8
    lx, ly = right - lw - 10, top + 10
    c.rect(lx, ly, lx + lw, ly + lh, BLACK)
    c.rect(lx + 1, ly + 1, lx + lw - 1, ly + lh - 1, WHITE)
    for i, s in enumerate(entries):
        ey = ly + 6 + 20 * i
        c.rect(lx + 8, ey + 6, lx + 32, ey + 7, COLORS[i % len(COLORS)])
        c.text(lx + 40, ey, s)
