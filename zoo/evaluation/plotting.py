"""Small plotting toolkit on OpenCV's drawing primitives, for the evaluation report's PNGs.

matplotlib is not a dependency of semzoo (the serving and client machines must stay lean), and
the report needs only a few chart types: line plots (linear or log y), histograms, bar charts,
and image panels with a scale bar. Colours are the Okabe-Ito palette, readable by colour-blind
readers. Canvas coordinates are pixels, origin top-left; the canvas is RGB until it is saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (120, 120, 120)
LIGHT = (225, 225, 225)
# Okabe-Ito: orange, sky blue, bluish green, blue, vermillion, reddish purple.
PALETTE = {
    "orange": (230, 159, 0),
    "sky": (86, 180, 233),
    "green": (0, 158, 115),
    "blue": (0, 114, 178),
    "vermillion": (213, 94, 0),
    "purple": (204, 121, 167),
    "black": BLACK,
    "grey": GREY,
}
TEXT = 0.5
LABEL = 0.55
TITLE = 0.62


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:.6g}"


class Figure:
    """A white RGB canvas to draw on; :meth:`save` writes a PNG."""

    def __init__(self, width: int, height: int):
        self.canvas = np.full((height, width, 3), 255, np.uint8)

    @property
    def width(self) -> int:
        return self.canvas.shape[1]

    @property
    def height(self) -> int:
        return self.canvas.shape[0]

    def text(
        self,
        x: float,
        y: float,
        s: str,
        *,
        size: float = TEXT,
        color=BLACK,
        thickness: int = 1,
        ha: str = "left",
        va: str = "baseline",
    ) -> None:
        """Draw ``s`` anchored at (x, y): ``ha`` left/center/right, ``va`` baseline/center/top."""
        (w, h), base = cv2.getTextSize(s, FONT, size, thickness)
        dx = {"left": 0, "center": -w / 2, "right": -w}[ha]
        dy = {"baseline": 0, "center": h / 2, "top": h}[va]
        cv2.putText(
            self.canvas, s, (int(round(x + dx)), int(round(y + dy))), FONT, size, color, thickness, cv2.LINE_AA
        )

    def vertical_text(self, x: float, y: float, s: str, *, size: float = LABEL, color=BLACK) -> None:
        """Text rotated 90 degrees counter-clockwise, centred on (x, y) (a y-axis label)."""
        (w, h), base = cv2.getTextSize(s, FONT, size, 1)
        tile = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
        cv2.putText(tile, s, (2, h + 2), FONT, size, color, 1, cv2.LINE_AA)
        tile = cv2.rotate(tile, cv2.ROTATE_90_COUNTERCLOCKWISE)
        th, tw = tile.shape[:2]
        x0, y0 = int(round(x - tw / 2)), int(round(y - th / 2))
        x0, y0 = max(x0, 0), max(y0, 0)
        region = self.canvas[y0 : y0 + th, x0 : x0 + tw]
        np.minimum(region, tile[: region.shape[0], : region.shape[1]], out=region)

    def axes(self, rect: tuple[int, int, int, int], **kwargs) -> "Axes":
        """A plot whose frame (the data area) is ``rect`` = (x, y, width, height)."""
        return Axes(self, rect, **kwargs)

    def image(
        self,
        rect: tuple[int, int, int, int],
        image: np.ndarray,
        *,
        vmin: float,
        vmax: float,
        pixel_size_nm: float,
        title: str | None = None,
        scale_bar_nm: float | None = None,
    ) -> "ImagePanel":
        """Draw a grey-scale image into ``rect`` (nearest neighbour, pixels stay visible)."""
        return ImagePanel(self, rect, image, vmin, vmax, pixel_size_nm, title, scale_bar_nm)

    def save(self, path: Path) -> None:
        ok = cv2.imwrite(str(path), cv2.cvtColor(self.canvas, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not write {path}")


@dataclass
class _Series:
    label: str
    color: tuple
    kind: str  # "line" | "dashed" | "box"


@dataclass
class Axes:
    """A 2-D plot frame with ticks, labels and a legend."""

    figure: Figure
    rect: tuple[int, int, int, int]
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    logy: bool = False
    xticks: Sequence[tuple[float, str]] | None = None
    legend_items: list[_Series] = field(default_factory=list)

    def __post_init__(self):
        if self.logy:
            lo, hi = self.ylim
            self.ylim = (math.log10(lo), math.log10(hi))
        self._frame()

    # -- coordinates ---------------------------------------------------------------------
    def _y(self, y):
        y = np.asarray(y, dtype=float)
        if self.logy:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(np.where(y > 0, y, np.nan))
        return y

    def to_canvas(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, w, h = self.rect
        (a, b), (c, d) = self.xlim, self.ylim
        px = x0 + (np.asarray(x, dtype=float) - a) / (b - a) * w
        py = y0 + h - (self._y(y) - c) / (d - c) * h
        return px, py

    # -- frame ---------------------------------------------------------------------------
    def _frame(self) -> None:
        fig, (x0, y0, w, h) = self.figure, self.rect
        canvas = fig.canvas
        if self.logy:
            lo, hi = self.ylim
            yticks = [float(k) for k in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)]
            step = max(1, len(yticks) // 6)
            yticks = yticks[::step]
        else:
            yticks = nice_ticks(*self.ylim)
        for t in yticks:
            _, py = self.to_canvas(self.xlim[0], 10**t if self.logy else t)
            py = int(round(float(py)))
            if y0 <= py <= y0 + h:
                cv2.line(canvas, (x0, py), (x0 + w, py), LIGHT, 1)
                cv2.line(canvas, (x0 - 5, py), (x0, py), BLACK, 1)
                label = f"1e{int(t)}" if self.logy else format_tick(t)
                fig.text(x0 - 8, py, label, size=TEXT, ha="right", va="center")
        xticks = self.xticks or [(t, format_tick(t)) for t in nice_ticks(*self.xlim)]
        for t, label in xticks:
            px, _ = self.to_canvas(t, 10 ** self.ylim[0] if self.logy else self.ylim[0])
            px = int(round(float(px)))
            if x0 <= px <= x0 + w:
                if not self.xticks:
                    cv2.line(canvas, (px, y0), (px, y0 + h), LIGHT, 1)
                cv2.line(canvas, (px, y0 + h), (px, y0 + h + 5), BLACK, 1)
                fig.text(px, y0 + h + 20, label, size=TEXT, ha="center")
        cv2.rectangle(canvas, (x0, y0), (x0 + w, y0 + h), BLACK, 1)
        if self.xlabel:
            fig.text(x0 + w / 2, y0 + h + 44, self.xlabel, size=LABEL, ha="center")
        if self.ylabel:
            fig.vertical_text(x0 - 62, y0 + h / 2, self.ylabel, size=LABEL)
        if self.title:
            fig.text(x0 + w / 2, y0 - 12, self.title, size=TITLE, ha="center", thickness=1)

    def _clip(self):
        x0, y0, w, h = self.rect
        return x0, y0, x0 + w, y0 + h

    def _polyline(self, px, py, color, thickness, dashed=False) -> None:
        ok = np.isfinite(px) & np.isfinite(py)
        x_lo, y_lo, x_hi, y_hi = self._clip()
        px = np.clip(px, x_lo - 1, x_hi + 1)
        py = np.clip(py, y_lo - 1, y_hi + 1)
        pts = np.stack([px, py], axis=1)
        # Break the line at missing values.
        segments, current = [], []
        for good, p in zip(ok, pts):
            if good:
                current.append(p)
            elif current:
                segments.append(current)
                current = []
        if current:
            segments.append(current)
        for seg in segments:
            seg = np.round(np.array(seg) * 4).astype(np.int32)  # 2 fractional bits
            if dashed:
                self._dashed(seg, color, thickness)
            else:
                cv2.polylines(
                    self.figure.canvas, [seg], False, color, thickness, cv2.LINE_AA, shift=2
                )

    def _dashed(self, seg, color, thickness, dash=28, gap=20) -> None:
        # Walk the polyline and draw every other stretch (lengths in 1/4 pixels).
        pts = seg.astype(float)
        pos, on = 0.0, True
        for p, q in zip(pts[:-1], pts[1:]):
            length = float(np.hypot(*(q - p)))
            t = 0.0
            while t < length:
                step = min((dash if on else gap) - pos, length - t)
                if on:
                    a = p + (q - p) * (t / length)
                    b = p + (q - p) * ((t + step) / length)
                    cv2.line(
                        self.figure.canvas,
                        tuple(np.round(a).astype(int)),
                        tuple(np.round(b).astype(int)),
                        color,
                        thickness,
                        cv2.LINE_AA,
                        shift=2,
                    )
                t += step
                pos += step
                if pos >= (dash if on else gap) - 1e-9:
                    pos, on = 0.0, not on

    # -- drawing ------------------------------------------------------------------------
    def line(self, x, y, *, color, thickness: int = 2, dashed: bool = False, label: str | None = None):
        px, py = self.to_canvas(x, y)
        self._polyline(px, py, color, thickness, dashed)
        if label:
            self.legend_items.append(_Series(label, color, "dashed" if dashed else "line"))

    def hline(self, y: float, *, color=GREY, dashed: bool = True, label: str | None = None, thickness=1):
        self.line(list(self.xlim), [y, y], color=color, dashed=dashed, label=label, thickness=thickness)

    def vline(self, x: float, *, color=GREY, dashed: bool = True, label: str | None = None, thickness=1):
        lo, hi = self.ylim
        ys = [10**lo, 10**hi] if self.logy else [lo, hi]
        self.line([x, x], ys, color=color, dashed=dashed, label=label, thickness=thickness)

    def markers(self, x, y, *, color, size: int = 5, label: str | None = None):
        px, py = self.to_canvas(x, y)
        for a, b in zip(np.atleast_1d(px), np.atleast_1d(py)):
            if np.isfinite(a) and np.isfinite(b):
                cv2.circle(self.figure.canvas, (int(round(a)), int(round(b))), size, color, -1, cv2.LINE_AA)
        if label:
            self.legend_items.append(_Series(label, color, "box"))

    def bars(self, left, right, height, *, color, alpha: float = 0.55, label: str | None = None):
        """Filled bars from ``left`` to ``right`` (data x) up to ``height``; translucent."""
        canvas = self.figure.canvas
        x_lo, y_lo, x_hi, y_hi = self._clip()
        base = 10 ** self.ylim[0] if self.logy else max(self.ylim[0], 0.0)
        overlay = canvas.copy()
        for a, b, hgt in zip(left, right, height):
            if not hgt > base:
                continue
            (pa, pb), (p_top, p_base) = self.to_canvas([a, b], [hgt, base])
            p1 = (int(round(max(pa, x_lo))), int(round(max(p_top, y_lo))))
            p2 = (int(round(min(pb, x_hi))) - 1, int(round(min(p_base, y_hi))))
            cv2.rectangle(overlay, p1, p2, color, -1)
            cv2.rectangle(canvas, p1, p2, color, 1)
        cv2.addWeighted(overlay, alpha, canvas, 1 - alpha, 0, dst=canvas)
        if label:
            self.legend_items.append(_Series(label, color, "box"))

    def annotate(self, x, y, s: str, *, color=BLACK, size: float = TEXT, ha="left", va="baseline"):
        px, py = self.to_canvas(x, y)
        self.figure.text(float(px), float(py), s, color=color, size=size, ha=ha, va=va)

    def legend(self, *, loc: str = "upper right") -> None:
        """Draw the labelled series: inside a corner ("upper right", "lower left", ...), to the
        right of the frame ("outside right") or under the x-axis label ("below")."""
        if not self.legend_items:
            return
        fig = self.figure
        x0, y0, w, h = self.rect
        row = 22
        width = max(cv2.getTextSize(s.label, FONT, TEXT, 1)[0][0] for s in self.legend_items) + 50
        height = row * len(self.legend_items) + 8
        if loc == "outside right":
            lx, ly = x0 + w + 12, y0
        elif loc == "below":
            lx, ly = x0 + (w - width) // 2, y0 + h + 60
        else:
            lx = x0 + w - width - 8 if "right" in loc else x0 + 8
            ly = y0 + 8 if "upper" in loc else y0 + h - height - 8
        cv2.rectangle(fig.canvas, (lx, ly), (lx + width, ly + height), WHITE, -1)
        cv2.rectangle(fig.canvas, (lx, ly), (lx + width, ly + height), GREY, 1)
        for k, s in enumerate(self.legend_items):
            cy = ly + 4 + row * k + row // 2
            if s.kind == "box":
                cv2.rectangle(fig.canvas, (lx + 8, cy - 6), (lx + 32, cy + 6), s.color, -1)
            elif s.kind == "dashed":
                cv2.line(fig.canvas, (lx + 6, cy), (lx + 15, cy), s.color, 2, cv2.LINE_AA)
                cv2.line(fig.canvas, (lx + 22, cy), (lx + 32, cy), s.color, 2, cv2.LINE_AA)
            else:
                cv2.line(fig.canvas, (lx + 6, cy), (lx + 34, cy), s.color, 2, cv2.LINE_AA)
            fig.text(lx + 42, cy, s.label, size=TEXT, va="center")


def nice_length(target: float) -> float:
    """The largest 1/2/5 x 10^k not above ``target`` (for scale bars)."""
    if target <= 0:
        return 0.0
    mag = 10 ** math.floor(math.log10(target))
    return max(m * mag for m in (1, 2, 5) if m * mag <= target)


@dataclass
class ImagePanel:
    """An image drawn into a figure; :meth:`to_canvas` maps image pixel coordinates."""

    figure: Figure
    rect: tuple[int, int, int, int]
    image: np.ndarray
    vmin: float
    vmax: float
    pixel_size_nm: float
    title: str | None = None
    scale_bar_nm: float | None = None

    def __post_init__(self):
        x0, y0, w, h = self.rect
        img = np.asarray(self.image, dtype=np.float64)
        span = self.vmax - self.vmin if self.vmax > self.vmin else 1.0
        grey = np.clip((img - self.vmin) / span * 255, 0, 255).astype(np.uint8)
        interp = cv2.INTER_NEAREST if w >= img.shape[1] else cv2.INTER_AREA
        tile = cv2.resize(grey, (w, h), interpolation=interp)
        self.figure.canvas[y0 : y0 + h, x0 : x0 + w] = tile[:, :, None]
        cv2.rectangle(self.figure.canvas, (x0 - 1, y0 - 1), (x0 + w, y0 + h), BLACK, 1)
        if self.title:
            self.figure.text(x0 + w / 2, y0 - 10, self.title, size=LABEL, ha="center")
        self._scale_bar()

    @property
    def zoom(self) -> float:
        return self.rect[2] / self.image.shape[1]

    def to_canvas(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Image pixel coordinates (centre convention) -> canvas pixel coordinates."""
        x0, y0, w, h = self.rect
        sx, sy = w / self.image.shape[1], h / self.image.shape[0]
        return x0 + (np.asarray(x) + 0.5) * sx, y0 + (np.asarray(y) + 0.5) * sy

    def _scale_bar(self) -> None:
        x0, y0, w, h = self.rect
        field_nm = self.image.shape[1] * self.pixel_size_nm
        length_nm = self.scale_bar_nm or nice_length(field_nm / 4)
        if length_nm <= 0:
            return
        bar_px = length_nm / self.pixel_size_nm * self.zoom
        bx, by = x0 + 10, y0 + h - 12
        cv2.rectangle(self.figure.canvas, (bx - 1, by - 5), (int(bx + bar_px) + 1, by + 2), BLACK, -1)
        cv2.rectangle(self.figure.canvas, (bx, by - 4), (int(bx + bar_px), by + 1), WHITE, -1)
        label = f"{length_nm:g} nm"
        tx, ty = bx, by - 10
        (tw, th), _ = cv2.getTextSize(label, FONT, TEXT, 2)
        cv2.rectangle(self.figure.canvas, (tx - 2, ty - th - 3), (tx + tw + 2, ty + 4), BLACK, -1)
        self.figure.text(tx, ty, label, size=TEXT, color=WHITE)

    def line(self, p0, p1, *, color, thickness: int = 2) -> None:
        (ax, bx), (ay, by) = self.to_canvas([p0[0], p1[0]], [p0[1], p1[1]])
        cv2.line(
            self.figure.canvas,
            (int(round(ax)), int(round(ay))),
            (int(round(bx)), int(round(by))),
            color,
            thickness,
            cv2.LINE_AA,
        )


def panel_grid(n: int, *, width: int, gap: int) -> Sequence[int]:
    """Left edges of ``n`` panels of ``width`` separated by ``gap``."""
    return [k * (width + gap) for k in range(n)]
