"""A figure a person can read: the full field small, full-resolution crops where the output
differs most from Lanczos, line profiles across gaps (de Haan et al. 2019, Fig. 2), and the
consistency map. Used by ``semzoo enhance --compare`` and by ``semzoo evaluate``'s report.

numpy and OpenCV only (the client stays lean). The PNG is 8-bit grey (annotations in black and
white, profiles told apart by line style), which keeps a figure of noisy micrographs well under
:data:`MAX_BYTES`; the overview shrinks further if it would not fit.

How the figure chooses what to show (deterministic, so a figure can be tested):

- **Regions** (:func:`difference_regions`): the mean of |output - Lanczos| over a crop-sized
  window; the window with the largest mean, then the largest that does not overlap a chosen one,
  and so on (up to 3).
- **Gaps without truth** (:func:`gap_lines`): on the output, lightly smoothed (Gaussian,
  sigma 1 px), a pixel is a gap candidate along x or y when it is darker than the brightest pixel
  within 1..6 px on *both* sides and both of those are bright (above the output's 70th
  percentile): a minimum between two bright regions. Its score is that depth (the darker side's
  maximum minus the pixel) times |output - Lanczos| there (smoothed, sigma 2 px), so gaps where
  the two disagree win. The best candidates at least 12 px apart are shown (up to 3), each with
  a profile across it, along the axis of its deeper dip, ending 2 px beyond the bright maxima.
- **Gaps with truth** (``semzoo evaluate``): the truth's measured gap lines, the ones where
  output and Lanczos differ most.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MAX_BYTES = 2_000_000
CROP_PX = 128  # output px per crop, drawn at ZOOM
ZOOM = 2
PROFILE_CROP_PX = 48
PROFILE_ZOOM = 4
WIDTH = 1400
GAP_SEARCH_PX = 6
GAP_BRIGHT_PERCENTILE = 70
GAP_MIN_DISTANCE_PX = 12
FONT_SCALE = 0.5

Line = tuple[tuple[float, float], tuple[float, float]]  # ((x0, y0), (x1, y1)) in output px


def difference_regions(lanczos: np.ndarray, enhanced: np.ndarray, *, size: int = CROP_PX,
                       count: int = 3) -> list[tuple[int, int, int]]:
    """Up to ``count`` non-overlapping (y0, x0, size) windows with the largest mean |difference|."""
    import cv2

    h, w = enhanced.shape
    size = int(min(size, h, w))
    diff = np.abs(np.asarray(enhanced, np.float32) - np.asarray(lanczos, np.float32))
    # mean over the window whose top-left corner is (y, x), for every corner that fits
    integral = cv2.integral(diff)
    means = (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
             + integral[:-size, :-size])[: h - size + 1, : w - size + 1]
    means = means.astype(np.float64)
    boxes = []
    for _ in range(count):
        if not np.isfinite(means).any() or np.nanmax(means) == -np.inf:
            break
        y0, x0 = np.unravel_index(int(np.argmax(means)), means.shape)
        if means[y0, x0] == -np.inf:
            break
        boxes.append((int(y0), int(x0), size))
        # corners whose window would overlap this one
        means[max(0, y0 - size + 1): y0 + size, max(0, x0 - size + 1): x0 + size] = -np.inf
    return boxes


def gap_lines(lanczos: np.ndarray, enhanced: np.ndarray, *, count: int = 3) -> list[Line]:
    """Profile lines across the strongest gaps where output and Lanczos differ (module doc)."""
    import cv2

    out = cv2.GaussianBlur(np.asarray(enhanced, np.float32), (0, 0), 1.0)
    diff = cv2.GaussianBlur(np.abs(np.asarray(enhanced, np.float32) - np.asarray(lanczos, np.float32)),
                            (0, 0), 2.0)
    bright = float(np.percentile(out, GAP_BRIGHT_PERCENTILE))
    h, w = out.shape
    r = GAP_SEARCH_PX
    best_depth = np.zeros((2, h, w), np.float32)
    reach = np.zeros((2, 2, h, w), np.int32)  # axis, side -> distance of that side's maximum
    padded = np.pad(out, r, mode="edge")
    for axis in (0, 1):
        side_max = []
        for sign in (-1, 1):
            stack = []
            for s in range(1, r + 1):
                dy, dx = (sign * s, 0) if axis == 0 else (0, sign * s)
                stack.append(padded[r + dy: r + dy + h, r + dx: r + dx + w])
            stack = np.stack(stack)
            side_max.append(stack.max(axis=0))
            reach[axis, (sign + 1) // 2] = stack.argmax(axis=0) + 1
        darker_side = np.minimum(side_max[0], side_max[1])
        depth = np.where(darker_side > bright, darker_side - out, 0)
        best_depth[axis] = np.maximum(depth, 0)
    axis_of = best_depth.argmax(axis=0)
    score = best_depth.max(axis=0) * diff
    score[:r, :], score[-r:, :], score[:, :r], score[:, -r:] = 0, 0, 0, 0
    lines: list[Line] = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[y, x] <= 0:
            break
        axis = int(axis_of[y, x])
        before, after = int(reach[axis, 0, y, x]) + 2, int(reach[axis, 1, y, x]) + 2
        if axis == 0:
            lines.append(((float(x), float(y - before)), (float(x), float(y + after))))
        else:
            lines.append(((float(x - before), float(y)), (float(x + after), float(y))))
        d = GAP_MIN_DISTANCE_PX
        score[max(0, y - d): y + d + 1, max(0, x - d): x + d + 1] = 0
    return lines


def profile(image: np.ndarray, line: Line, *, step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image`` along ``line`` every ``step`` px: (distance px, values)."""
    import cv2

    (x0, y0), (x1, y1) = line
    length = math.hypot(x1 - x0, y1 - y0)
    t = np.linspace(0.0, 1.0, max(2, int(round(length / step)) + 1), dtype=np.float32)
    xs = (x0 + t * (x1 - x0)).astype(np.float32)[None, :]
    ys = (y0 + t * (y1 - y0)).astype(np.float32)[None, :]
    values = cv2.remap(np.asarray(image, np.float32), xs, ys, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)[0]
    return t * length, values


def line_difference(lanczos: np.ndarray, enhanced: np.ndarray, line: Line) -> float:
    """Mean |output - Lanczos| along a line (how the evaluate report ranks truth gaps)."""
    _, a = profile(lanczos, line)
    _, b = profile(enhanced, line)
    return float(np.mean(np.abs(a - b)))


# -- drawing ---------------------------------------------------------------------------------------
def _grey(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.asarray(image, np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def _text(canvas, x, y, text, *, colour=0, scale=FONT_SCALE, outline=False):
    import cv2

    if outline:
        cv2.putText(canvas, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255 - colour, 3,
                    cv2.LINE_AA)
    cv2.putText(canvas, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _dashed(canvas, points: np.ndarray, *, colour: int, dash: int, thickness: int = 1):
    import cv2

    for k in range(len(points) - 1):
        if dash and (k // dash) % 2:
            continue
        cv2.line(canvas, tuple(map(int, points[k])), tuple(map(int, points[k + 1])), colour, thickness,
                 cv2.LINE_AA)


def _plot(canvas, box, curves, *, xlabel: str, title: str):
    """Line plot in ``box`` (x, y, w, h): curves = [(label, x, y, dash)], dash 0 = solid."""
    import cv2

    x, y, w, h = box
    left, bottom = 46, 30
    px, py, pw, ph = x + left, y + 18, w - left - 8, h - bottom - 18
    cv2.rectangle(canvas, (px, py), (px + pw, py + ph), 0, 1)
    _text(canvas, x + 4, y + 12, title)
    xs_all = np.concatenate([c[1] for c in curves])
    ys_all = np.concatenate([c[2] for c in curves])
    x_lo, x_hi = float(xs_all.min()), float(xs_all.max()) or 1.0
    y_lo, y_hi = float(ys_all.min()), float(ys_all.max())
    pad = 0.08 * (y_hi - y_lo or 1.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    to_px = lambda xv, yv: np.stack([px + (xv - x_lo) / (x_hi - x_lo or 1) * pw,  # noqa: E731
                                     py + ph - (yv - y_lo) / (y_hi - y_lo or 1) * ph], axis=1)
    for k, (label, cx, cy, dash) in enumerate(curves):
        dense = np.linspace(float(np.min(cx)), float(np.max(cx)), max(2, pw // 3))  # even dashes
        cx, cy = dense, np.interp(dense, np.asarray(cx), np.asarray(cy))
        _dashed(canvas, to_px(np.asarray(cx), np.asarray(cy)), colour=0 if not dash else 90, dash=dash,
                thickness=2 if not dash else 1)
        ly = py + 12 + 14 * k
        sample = np.array([[px + pw - 120 + i, ly - 4] for i in range(0, 21, 2)])
        _dashed(canvas, sample, colour=0 if not dash else 90, dash=dash and 2, thickness=2 if not dash else 1)
        _text(canvas, px + pw - 95, ly, label, scale=0.4)
    for value in (x_lo, (x_lo + x_hi) / 2, x_hi):
        tx = px + (value - x_lo) / (x_hi - x_lo or 1) * pw
        _text(canvas, tx - 10, py + ph + 14, f"{value:.0f}", scale=0.4)
    _text(canvas, px + pw / 2 - 60, py + ph + 27, xlabel, scale=0.4)
    for value in (y_lo + pad, y_hi - pad):
        ty = py + ph - (value - y_lo) / (y_hi - y_lo or 1) * ph
        _text(canvas, x + 2, ty + 4, f"{value:.3g}", scale=0.35)


def closeup_figure(
    lanczos: np.ndarray,
    enhanced: np.ndarray,
    *,
    left: str,
    right: str,
    pixel_size_nm: float | None = None,
    consistency: np.ndarray | None = None,
    consistency_label: str = "consistency z (grey: agrees; +-5 sigma)",
    truth: np.ndarray | None = None,
    lines: Sequence[Line] | None = None,
    title: str = "",
    max_bytes: int = MAX_BYTES,
) -> tuple[np.ndarray, dict]:
    """The figure as an 8-bit grey image, and what it shows: ``{"regions": [(y0, x0, size)],
    "lines": [...], "overview_scale": f}`` (output-grid px). ``lanczos`` is the input resized
    onto the output grid; ``lines`` default to :func:`gap_lines`; ``truth`` adds its crops and
    profiles. Encoded, the PNG is <= ``max_bytes`` (the overview shrinks until it fits)."""
    import cv2

    lanczos = np.asarray(lanczos, np.float32)
    enhanced = np.asarray(enhanced, np.float32)
    lo, hi = np.percentile(enhanced, [0.5, 99.5])
    lo, hi = float(lo), float(hi) if hi > lo else float(lo) + 1.0
    regions = difference_regions(lanczos, enhanced)
    lines = list(lines) if lines is not None else gap_lines(lanczos, enhanced)
    columns = [("Lanczos", lanczos), ("output", enhanced)] + ([("truth", truth)] if truth is not None else [])
    nm = f" ({pixel_size_nm:g} nm/px)" if pixel_size_nm else ""
    for overview_w in (WIDTH // 2 - 30, 520, 420, 320, 240):
        scale = min(overview_w / enhanced.shape[1], 420 / enhanced.shape[0], 1.0)
        ov_h, ov_w = max(1, int(enhanced.shape[0] * scale)), max(1, int(enhanced.shape[1] * scale))
        crop_disp = CROP_PX * ZOOM
        prof_disp = PROFILE_CROP_PX * PROFILE_ZOOM
        row_h = max(crop_disp, 1) + 30
        prow_h = prof_disp + 30
        height = 60 + ov_h + 40 + len(regions) * row_h + len(lines) * prow_h + 10
        canvas = np.full((height, WIDTH), 255, np.uint8)
        _text(canvas, 10, 22, title or f"{left}  vs  {right}", scale=0.6)
        _text(canvas, 10, 44, "overview (output): boxes = crops where output differs most from Lanczos, "
                              "G = gap profiles below", scale=0.42)
        top = 56
        small = cv2.resize(enhanced, (ov_w, ov_h), interpolation=cv2.INTER_AREA)
        canvas[top: top + ov_h, 10: 10 + ov_w] = _grey(small, lo, hi)
        for k, (y0, x0, size) in enumerate(regions):
            p0 = (10 + int(x0 * scale), top + int(y0 * scale))
            p1 = (10 + int((x0 + size) * scale), top + int((y0 + size) * scale))
            cv2.rectangle(canvas, p0, p1, 255, 3)
            cv2.rectangle(canvas, p0, p1, 0, 1)
            _text(canvas, p0[0] + 3, p0[1] + 14, str(k + 1), outline=True, colour=0)
        for k, ((x0, y0), (x1, y1)) in enumerate(lines):
            cx, cy = 10 + (x0 + x1) / 2 * scale, top + (y0 + y1) / 2 * scale
            cv2.circle(canvas, (int(cx), int(cy)), 6, 255, 2)
            _text(canvas, cx + 7, cy - 5, f"G{k + 1}", outline=True, colour=0, scale=0.4)
        if consistency is not None:
            z = cv2.resize(np.asarray(consistency, np.float32), (ov_w, ov_h), interpolation=cv2.INTER_AREA)
            cx0 = 10 + ov_w + 30
            canvas[top: top + ov_h, cx0: cx0 + ov_w] = np.clip(127.5 + z * (127.5 / 5.0), 0, 255).astype(np.uint8)
            _text(canvas, cx0, top - 2, consistency_label, scale=0.4)
        y = top + ov_h + 40
        for k, (y0, x0, size) in enumerate(regions):
            _text(canvas, 10, y - 8, f"{k + 1}: {size}x{size} output px at x={x0}, y={y0}, shown x{ZOOM}{nm}; "
                                     f"mean |output - Lanczos| = {np.abs(enhanced[y0:y0+size, x0:x0+size] - lanczos[y0:y0+size, x0:x0+size]).mean():.3g}",
                  scale=0.42)
            for c, (label, image) in enumerate(columns):
                crop = image[y0: y0 + size, x0: x0 + size]
                big = cv2.resize(_grey(crop, lo, hi), (size * ZOOM, size * ZOOM), interpolation=cv2.INTER_NEAREST)
                cx0 = 10 + c * (crop_disp + 12)
                canvas[y: y + big.shape[0], cx0: cx0 + big.shape[1]] = big
                _text(canvas, cx0 + 4, y + 16, label, outline=True, colour=255)
            y += row_h
        for k, line in enumerate(lines):
            (x0, y0), (x1, y1) = line
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            half = PROFILE_CROP_PX // 2
            bx = int(min(max(round(cx) - half, 0), max(enhanced.shape[1] - PROFILE_CROP_PX, 0)))
            by = int(min(max(round(cy) - half, 0), max(enhanced.shape[0] - PROFILE_CROP_PX, 0)))
            _text(canvas, 10, y - 8, f"G{k + 1}: profile from ({x0:.0f}, {y0:.0f}) to ({x1:.0f}, {y1:.0f}), "
                                     f"crops x{PROFILE_ZOOM}", scale=0.42)
            curves = []
            for c, (label, image) in enumerate(columns):
                crop = image[by: by + PROFILE_CROP_PX, bx: bx + PROFILE_CROP_PX]
                big = cv2.resize(_grey(crop, lo, hi), (crop.shape[1] * PROFILE_ZOOM, crop.shape[0] * PROFILE_ZOOM),
                                 interpolation=cv2.INTER_NEAREST)
                cx0 = 10 + c * (prof_disp + 12)
                canvas[y: y + big.shape[0], cx0: cx0 + big.shape[1]] = big
                a = ((x0 - bx + 0.5) * PROFILE_ZOOM, (y0 - by + 0.5) * PROFILE_ZOOM)
                b = ((x1 - bx + 0.5) * PROFILE_ZOOM, (y1 - by + 0.5) * PROFILE_ZOOM)
                cv2.line(canvas, (int(cx0 + a[0]), int(y + a[1])), (int(cx0 + b[0]), int(y + b[1])), 255, 3)
                cv2.line(canvas, (int(cx0 + a[0]), int(y + a[1])), (int(cx0 + b[0]), int(y + b[1])), 0, 1)
                _text(canvas, cx0 + 4, y + 16, label, outline=True, colour=255)
                dist, values = profile(image, line)
                curves.append((label, dist * (pixel_size_nm or 1.0), values,
                               {"Lanczos": 4, "output": 0, "truth": 1}[label]))
            plot_x = 10 + len(columns) * (prof_disp + 12) + 10
            _plot(canvas, (plot_x, y - 4, WIDTH - plot_x - 10, prof_disp + 8), curves,
                  xlabel="distance (nm)" if pixel_size_nm else "distance (output px)",
                  title=f"G{k + 1}: intensity along the line")
            y += prow_h
        ok, data = cv2.imencode(".png", canvas, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and data.size <= max_bytes:
            break
    return canvas, {"regions": regions, "lines": lines, "overview_scale": scale,
                    "png_bytes": int(data.size)}


def enhance_compare_figure(source: np.ndarray, enhanced: np.ndarray, *, left: str, right: str,
                           pixel_size_nm: float | None = None, consistency: np.ndarray | None = None,
                           consistency_label: str = "") -> np.ndarray:
    """``semzoo enhance --compare``: :func:`closeup_figure` of the input's Lanczos x2 (OpenCV's
    Lanczos4, onto the output grid) against the output; returns the grey canvas."""
    import cv2

    h, w = enhanced.shape
    lanczos = cv2.resize(np.asarray(source, np.float32), (w, h), interpolation=cv2.INTER_LANCZOS4)
    canvas, _ = closeup_figure(lanczos, enhanced, left=left, right=right, pixel_size_nm=pixel_size_nm,
                               consistency=consistency,
                               consistency_label=consistency_label or "consistency z (grey: agrees; +-5 sigma)")
    return canvas
