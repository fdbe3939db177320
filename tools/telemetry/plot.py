"""A PNG of a run: predicted vs measured throughput, and GPU utilization, over time.

Why pure Python (zlib + struct, a 5x7 bitmap font): people would rather look than read, and the
picture must work on a rented box or in CI without matplotlib and its native wheels. The chart is
deliberately plain: panels on one time axis (minutes since the capture began), the playbook's
lines drawn in (70% of predicted throughput; 60% GPU utilization), a legend, and axis ticks.

Why a ratio panel and log axes: a prediction can be off by 100x (a cold estimate of a tiny model is
overhead-bound), and on one linear axis the measured line then lies flat on zero. With a prediction
the chart adds measured / predicted on a log axis (1 and 0.7 drawn in), and the throughput panel
turns logarithmic when the two differ by more than :data:`LOG_AXIS_SPAN`. Predicted and measured are
always in one unit: a per-GPU log rate is not compared with a whole-job prediction unless the GPU
count is known (then the measured rate is whole-job too).
"""

from __future__ import annotations

import itertools
import math
import statistics
import struct
import zlib
from collections import defaultdict
from collections.abc import Sequence

from gpu_preflight.tools.common.errors import PreflightError

from .timeline import Timeline

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (30, 30, 30)
GRID: Color = (225, 225, 225)
BLUE: Color = (31, 100, 200)
ORANGE: Color = (230, 120, 20)
RED: Color = (200, 40, 40)
GPU_COLORS: tuple[Color, ...] = ((40, 150, 70), (120, 60, 170), (0, 150, 160), (150, 110, 40),
                                 (200, 80, 140), (90, 90, 90), (20, 80, 40), (160, 30, 90))
WIDTH, HEIGHT, SCALE = 960, 620, 2
LOG_AXIS_SPAN = 20.0
GREY: Color = (120, 120, 120)
FONT: dict[str, str] = {
    '0': "0e11131519110e", '1': "040c040404040e", '2': "0e11010204081f", '3': "1f02040201110e",
    '4': "02060a121f0202", '5': "1f101e0101110e", '6': "0608101e11110e", '7': "1f010204080808",
    '8': "0e11110e11110e", '9': "0e11110f01020c", 'A': "0e11111f111111", 'B': "1e11111e11111e",
    'C': "0e11101010110e", 'D': "1c12111111121c", 'E': "1f10101e10101f", 'F': "1f10101e101010",
    'G': "0e11101711110f", 'H': "1111111f111111", 'I': "0e04040404040e", 'J': "0702020202120c",
    'K': "11121418141211", 'L': "1010101010101f", 'M': "111b1515111111", 'N': "11111915131111",
    'O': "0e11111111110e", 'P': "1e11111e101010", 'Q': "0e11111115120d", 'R': "1e11111e141211",
    'S': "0f10100e01011e", 'T': "1f040404040404", 'U': "1111111111110e", 'V': "11111111110a04",
    'W': "1111111515150a", 'X': "11110a040a1111", 'Y': "1111110a040404", 'Z': "1f01020408101f",
    ' ': "00000000000000", '.': "00000000000c0c", ',': "000000000c0408", ':': "000c0c000c0c00",
    '/': "00010204081000", '%': "18190204081303", '-': "0000001f000000", '(': "02040808080402",
    ')': "08040202020408", '+': "0004041f040400", '=': "00001f001f0000", '<': "02040810080402",
    '>': "08040201020408", '$': "040f140e051e04", '_': "0000000000001f", '#': "0a0a1f0a1f0a0a",
    "'": "04040800000000", '?': "0e110102040004",
}  # 7 rows of 5 bits per glyph, hex; lower case is drawn as upper case


class Canvas:
    """An RGB raster with the few primitives a line chart needs."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.buf = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color: Color, size: int = 1) -> None:
        for dy in range(size):
            for dx in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    i = (py * self.width + px) * 3
                    self.buf[i : i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(max(y0, 0), min(y1, self.height)):
            start, stop = max(x0, 0), min(x1, self.width)
            if stop > start:
                self.buf[(y * self.width + start) * 3 : (y * self.width + stop) * 3] = bytes(color) * (stop - start)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1, dash: int = 0) -> None:
        """Bresenham; ``dash`` > 0 draws ``dash`` pixels on, ``dash`` off."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.dot(x0 - width // 2, y0 - width // 2, color, width)
            if x0 == x1 and y0 == y1:
                return
            e2, step = 2 * err, step + 1
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = SCALE) -> int:
        """Draw ``text`` with its top-left at (x, y); return the x after it."""
        for ch in text.upper():
            rows = FONT.get(ch, FONT["?"])
            for r in range(7):
                bits = int(rows[2 * r : 2 * r + 2], 16)
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        self.dot(x + c * scale, y + r * scale, color, scale)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        """The raster as PNG bytes (8-bit RGB, filter 0 on every row)."""
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.buf[y * stride : (y + 1) * stride]) for y in range(self.height))

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(
            b"IEND", b"")


def text_width(text: str, scale: int = SCALE) -> int:
    return len(text) * 6 * scale


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = [round(first, 10)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(first + len(ticks) * step, 10))
    return ticks


def fmt_tick(value: float) -> str:
    if 0 < abs(value) < 0.01:
        return f"{value:.0e}".replace("e-0", "e-")
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}K"
    return f"{value:g}"


Series = tuple[str, Color, list[tuple[float, float]], int]  # label, color, (x, y) points, dash


class Panel:
    """One chart area: ranges, the frame, ticks and a legend."""

    def __init__(self, canvas: Canvas, box: tuple[int, int, int, int], x_max: float, y_max: float,
                 title: str, y_label: str, *, log_min: float | None = None) -> None:
        """``log_min`` > 0: a logarithmic y axis from the decade below ``log_min`` to the one above ``y_max``."""
        self.c, (self.x0, self.y0, self.x1, self.y1) = canvas, box
        self.xt = nice_ticks(0.0, max(x_max, 1e-9))
        self.log = log_min is not None and log_min > 0
        if self.log:
            lo = math.floor(math.log10(log_min or 1.0))
            hi = max(math.ceil(math.log10(max(y_max, 1e-300))), lo + 1)
            self.yt = [10.0 ** k for k in range(lo, hi + 1)]
        else:  # a tick label is 14 px tall: at most one per 24 px, so a short panel is not a smear of digits
            self.yt = nice_ticks(0.0, max(y_max, 1e-9), max(2, min(5, (self.y1 - self.y0) // 24)))
        self.x_max, self.y_max, self.y_min = self.xt[-1], self.yt[-1], self.yt[0]
        self.title_end = canvas.text(self.x0 - 60, self.y0 - 30, f"{title} ({y_label}{', log' if self.log else ''})")
        for v in self.yt:
            y = self.py(v)
            canvas.line(self.x0, y, self.x1, y, GRID)
            label = fmt_tick(v)
            canvas.text(self.x0 - text_width(label) - 6, y - 7, label)
        for v in self.xt:
            x = self.px(v)
            canvas.line(x, self.y0, x, self.y1, GRID)
            label = fmt_tick(v)
            canvas.text(x - text_width(label) // 2, self.y1 + 10, label)
        canvas.line(self.x0, self.y1, self.x1, self.y1, BLACK)
        canvas.line(self.x0, self.y0, self.x0, self.y1, BLACK)

    def px(self, x: float) -> int:
        return self.x0 + round((self.x1 - self.x0) * x / self.x_max)

    def py(self, y: float) -> int:
        if self.log:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            frac = (math.log10(min(max(y, self.y_min), self.y_max)) - lo) / (hi - lo)
            return self.y1 - round((self.y1 - self.y0) * frac)
        return self.y1 - round((self.y1 - self.y0) * min(max(y, 0.0), self.y_max) / self.y_max)

    def draw(self, series: Sequence[Series]) -> None:
        for _, color, points, dash in series:
            pixels = [(self.px(x), self.py(y)) for x, y in points]
            for (ax, ay), (bx, by) in itertools.pairwise(pixels):
                self.c.line(ax, ay, bx, by, color, 2, dash)
            if len(pixels) <= 60 and not dash:
                for x, y in pixels:
                    self.c.dot(x - 2, y - 2, color, 5)
        # The legend sits in one row above the frame, right-aligned, so it never hides data; where it would
        # run into the panel's title (8 GPUs on an 800 px chart) its swatches and gaps shrink.
        swatch, gap = 26, 20
        if self.x1 - sum(text_width(s[0]) + swatch + 6 + gap for s in series) + gap < self.title_end + 12:
            swatch, gap = 12, 10
        x = self.x1 - sum(text_width(s[0]) + swatch + 6 + gap for s in series) + gap
        for label, color, _, dash in series:
            self.c.line(x, self.y0 - 23, x + swatch, self.y0 - 23, color, 3, dash)
            x = self.c.text(x + swatch + 6, self.y0 - 30, label, color) + gap


def throughput_points(timeline: Timeline, *, num_gpus: int | None = None,
                      tokens_per_step: int | None = None) -> tuple[str, list[tuple[float, float]]]:
    """(unit, [(minutes, value)]) from the log: tokens/s for the job when it can be had, else steps/s."""
    train = [p for p in timeline.logs if p.sample.kind == "train"]
    tokens = [(p.t_s / 60, p.sample.tokens_per_s * ((num_gpus or 1) if p.sample.tokens_per_s_scope == "device"
                                                   else 1)) for p in train if p.sample.tokens_per_s]
    if tokens:
        per_gpu = num_gpus is None and any(p.sample.tokens_per_s_scope == "device" for p in train)
        return ("tokens/s per GPU" if per_gpu else "tokens/s"), tokens
    steps = [(p.t_s / 60, 1.0 / p.sample.step_time_s) for p in train if p.sample.step_time_s]
    if tokens_per_step:
        return "tokens/s", [(x, y * tokens_per_step) for x, y in steps]
    return "steps/s", steps


def predicted_in_unit(unit: str, predicted_tokens_per_s: float | None, predicted_step_time_s: float | None,
                      tokens_per_step: int | None) -> float | None:
    """The prediction in the measured line's unit, or None when it cannot be put in that unit.

    >>> predicted_in_unit("steps/s", 8192.0, None, 4096)
    2.0
    """
    if unit == "tokens/s":
        if predicted_tokens_per_s:
            return predicted_tokens_per_s
        return tokens_per_step / predicted_step_time_s if tokens_per_step and predicted_step_time_s else None
    if unit == "steps/s":
        if predicted_step_time_s:
            return 1.0 / predicted_step_time_s
        return predicted_tokens_per_s / tokens_per_step if predicted_tokens_per_s and tokens_per_step else None
    return None  # tokens/s per GPU against a whole-job prediction: the GPU count is unknown


_predicted = predicted_in_unit  # the name tests/test_loop_heartbeat_truth.py imports


def _boxes(width: int, height: int, panels: int) -> list[tuple[int, int, int, int]]:
    """Panel frames stacked under the title: each gets a header row (title, legend) above and its
    tick labels below; the plot heights split what is left 13:10:10 (throughput widest), or 5:4 for two.

    >>> _boxes(960, 620, 3)
    [(110, 78, 930, 217), (110, 281, 930, 388), (110, 452, 930, 559)]
    """
    header, under, top, footer = 34, 30, 44, 30
    free = height - top - footer - panels * (header + under)
    weights = (13, 10, 10) if panels == 3 else (5, 4)
    boxes, y = [], top
    for w in weights:
        h = round(free * w / sum(weights))
        boxes.append((110, y + header, width - 30, y + header + h))
        y += header + h + under
    return boxes


def plot_png(timeline: Timeline, *, predicted_tokens_per_s: float | None = None,
             predicted_step_time_s: float | None = None, tokens_per_step: int | None = None,
             num_gpus: int | None = None, title: str = "run", width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The chart as PNG bytes (throughput, measured/predicted when predicted, GPU utilization); raises
    when there is nothing to draw. ``width`` x ``height`` pixels: 960 x 620 for a file people open,
    800 x 500 for an agent (7-10 KB on our test runs, readable at the 2x font)."""
    unit, measured = throughput_points(timeline, num_gpus=num_gpus, tokens_per_step=tokens_per_step)
    per_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for g in timeline.gpu:
        if g.sample.gpu_util_pct is not None:
            per_gpu[g.sample.gpu_index].append((g.t_s / 60, g.sample.gpu_util_pct))
    if not measured and not per_gpu:
        raise PreflightError("plot", "no throughput and no GPU utilization", "a training log or nvidia-smi capture")
    predicted = predicted_in_unit(unit, predicted_tokens_per_s, predicted_step_time_s, tokens_per_step)
    x_max = max([x for x, _ in measured] + [x for pts in per_gpu.values() for x, _ in pts] + [1e-3])
    canvas = Canvas(width, height)
    canvas.text(20, 12, title[: (width - 40) // 18], BLACK, 3)
    values = [y for _, y in measured if y > 0]
    ratios = [(x, y / predicted) for x, y in measured if y > 0] if predicted else []
    wide = bool(values and predicted and max(predicted, *values) / min(predicted, *values) > LOG_AXIS_SPAN)
    boxes = _boxes(width, height, 3 if ratios else 2)
    top = Panel(canvas, boxes[0], x_max, max([*values, predicted or 0.0, 0.0]) * 1.15, "throughput", unit,
                log_min=min([*values, predicted or 0.0]) if wide else None)
    series: list[Series] = [("measured", BLUE, measured, 0)]
    if predicted:
        series += [("predicted", ORANGE, [(0.0, predicted), (top.x_max, predicted)], 10),
                   ("70%", RED, [(0.0, 0.7 * predicted), (top.x_max, 0.7 * predicted)], 4)]
    elif predicted_tokens_per_s or predicted_step_time_s:
        note = ("prediction not drawn: per-GPU log, GPU count unknown" if unit.endswith("per GPU")
                else "prediction not drawn: tokens per step unknown")
        canvas.text(top.x0 + 10, top.y0 + 6, note, GREY)
    top.draw(series)
    if ratios:
        lo, hi = min(y for _, y in ratios), max(y for _, y in ratios)
        mid = Panel(canvas, boxes[1], x_max, max(hi, 1.0) * 1.15, "measured / predicted", "x",
                    log_min=min(lo, 0.7) if max(hi, 1.0) / min(lo, 0.7) > 5 else None)
        mid.draw([("ratio", BLUE, ratios, 0), ("1x", ORANGE, [(0.0, 1.0), (mid.x_max, 1.0)], 10),
                  ("0.7x", RED, [(0.0, 0.7), (mid.x_max, 0.7)], 4)])
        median = statistics.median(y for _, y in ratios)
        canvas.text(mid.x0 + 10, mid.y0 + 6, f"median {median:.3g}x", BLUE)
    gpu_box = boxes[-1]
    bottom = Panel(canvas, gpu_box, x_max, 100.0, "GPU utilization", "%")
    gpu_series: list[Series] = [(f"GPU {i}" if len(per_gpu) <= 3 else str(i), GPU_COLORS[n % len(GPU_COLORS)], pts, 0)
                                for n, (i, pts) in enumerate(sorted(per_gpu.items())[:8])]
    gpu_series.append(("60%", RED, [(0.0, 60.0), (bottom.x_max, 60.0)], 4))
    bottom.draw(gpu_series)
    if not per_gpu:
        note = "no GPU readings: add an nvidia-smi capture"
        canvas.text((width - text_width(note)) // 2, (gpu_box[1] + gpu_box[3]) // 2 - 7, note, GREY)
    label = "minutes since the capture began"
    canvas.text((width - text_width(label)) // 2, height - 26, label)
    return canvas.png()
