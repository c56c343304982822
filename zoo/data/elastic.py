"""Pyramid elastic registration: block shifts, outlier rejection, a smooth displacement field.

Step 3 of the paper's registration (de Haan et al., Sci. Rep. 9, 12050, 2019, Methods): after
the affine, the remaining non-rigid drift between the two scans is measured block by block with
blocks shrinking level by level (256 -> 128 -> 64 -> 32 px), and accumulated into a smooth
displacement field. Each block's sub-pixel shift comes from OpenCV's windowed phase correlation;
the estimate is iterated (warp, re-measure) so the centroid bias of the peak fit vanishes as the
residual shift goes to zero.

Small blocks on noisy SEM images measure noise as much as drift: smoothing them too little
fits the noise (on the simulator, a fixed light smoothing made the 32-px level *worsen* the
true residual from 0.06 to 0.2 px), too much misses local deformation (beam damage). So each
level's smoothing is chosen by checkerboard cross-validation of the block shifts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

# Gaussian blur (registered pixels) applied to both images before any correlation: it removes
# the HR detail above the LR Nyquist limit (the LR cannot match it) and most shot noise.
REGISTRATION_SIGMA = 1.5
# A block whose phase-correlation peak is weaker than this is noise, not a match.
MIN_RESPONSE = 0.05
# A block shift further than this (pixels) from the median of its neighbours is an outlier.
MAX_NEIGHBOUR_DEVIATION = 1.0
MIN_BLOCK_VALID = 0.95


def smooth_for_correlation(image: np.ndarray, sigma: float = REGISTRATION_SIGMA) -> np.ndarray:
    """Gaussian-blurred float32 copy used for every correlation measurement."""
    return cv2.GaussianBlur(np.asarray(image, dtype=np.float32), (0, 0), sigma,
                            borderType=cv2.BORDER_REFLECT)


@dataclass
class BlockShifts:
    """Shifts (dx, dy) per block with ref(x) ~ moving(x + d); NaN where rejected."""

    centres_x: np.ndarray
    centres_y: np.ndarray
    shifts: np.ndarray  # (ny, nx, 2)
    block: int
    step: int

    def __getitem__(self, item):  # convenient: shifts[..., 0]
        return self.shifts[item]


def _starts(size: int, block: int, step: int) -> np.ndarray:
    last = size - block
    starts = np.arange(0, last + 1, step)
    if starts[-1] != last:  # cover the far edge too
        starts = np.append(starts, last)
    return starts


def _block_sums(integral: np.ndarray, ys: np.ndarray, xs: np.ndarray, block: int) -> np.ndarray:
    y0, x0 = ys[:, None], xs[None, :]
    return (integral[y0 + block, x0 + block] - integral[y0, x0 + block]
            - integral[y0 + block, x0] + integral[y0, x0]).astype(np.float64)


def measure_block_shifts(ref: np.ndarray, moving: np.ndarray, valid: np.ndarray, *,
                         block: int, step: int | None = None) -> BlockShifts:
    """Sub-pixel shift of every block of ``moving`` relative to ``ref`` (phase correlation)."""
    h, w = ref.shape
    block = int(min(block, h, w))
    step = int(step or block // 2)
    ys, xs = _starts(h, block, step), _starts(w, block, step)
    # Per-block valid fraction and texture from integral images (one pass, not one per block).
    area = float(block * block)
    valid_frac = _block_sums(cv2.integral(valid.astype(np.uint8)), ys, xs, block) / area
    sums, squares = cv2.integral2(ref.astype(np.float64))[:2]
    mean = _block_sums(sums, ys, xs, block) / area
    variance = _block_sums(squares, ys, xs, block) / area - mean ** 2
    usable = (valid_frac >= MIN_BLOCK_VALID) & (variance > 1e-6)  # featureless: any shift fits
    window = cv2.createHanningWindow((block, block), cv2.CV_32F)
    shifts = np.full((len(ys), len(xs), 2), np.nan, dtype=np.float64)
    limit = block / 4
    for i, j in zip(*np.nonzero(usable)):
        y, x = ys[i], xs[j]
        # Copies: OpenCV 5.0's phaseCorrelate applies the window to its inputs in place.
        (dx, dy), response = cv2.phaseCorrelate(
            ref[y:y + block, x:x + block].copy(), moving[y:y + block, x:x + block].copy(), window)
        if response >= MIN_RESPONSE and abs(dx) < limit and abs(dy) < limit:
            shifts[i, j] = dx, dy
    return BlockShifts(xs + (block - 1) / 2, ys + (block - 1) / 2, shifts, block, step)


def _reject_outliers(shifts: np.ndarray) -> np.ndarray:
    """NaN out shifts that disagree with the median of their 3x3 neighbourhood."""
    ny, nx, _ = shifts.shape
    padded = np.pad(shifts, ((1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    neighbours = np.stack([padded[1 + di:1 + di + ny, 1 + dj:1 + dj + nx]
                           for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)], axis=2)
    count = np.isfinite(neighbours[..., 0]).sum(axis=2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods
        median = np.nanmedian(neighbours, axis=2)
    deviation = np.hypot(*(shifts - median).transpose(2, 0, 1))
    out = shifts.copy()
    out[(count >= 2) & (deviation > MAX_NEIGHBOUR_DEVIATION)] = np.nan
    return out


def _smooth_fill(shifts: np.ndarray, sigma: float = 1.0) -> np.ndarray | None:
    """Normalised Gaussian convolution: smooths inliers and fills rejected blocks."""
    weight = np.isfinite(shifts[..., 0]).astype(np.float32)
    if weight.sum() < 3:
        return None
    values = np.nan_to_num(shifts).astype(np.float32)
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)  # noqa: E731
    norm = blur(weight)
    filled = np.zeros_like(values)
    for c in range(2):
        filled[..., c] = np.where(norm > 1e-3, blur(values[..., c] * weight) / np.maximum(norm, 1e-3), 0)
    return filled


SIGMA_CANDIDATES = (0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, np.inf)


def _constant_fill(shifts: np.ndarray) -> np.ndarray | None:
    finite = np.isfinite(shifts[..., 0])
    if finite.sum() < 3:
        return None
    return np.broadcast_to(np.median(shifts[finite], axis=0), shifts.shape).astype(np.float32)


def _fill(shifts: np.ndarray, sigma: float) -> np.ndarray | None:
    return _constant_fill(shifts) if np.isinf(sigma) else _smooth_fill(shifts, sigma)


def cross_validated_sigma(shifts: np.ndarray, candidates=SIGMA_CANDIDATES) -> float:
    """The smoothing (grid cells) that best predicts held-out block shifts.

    Blocks are split like a checkerboard; each half is smoothed and compared with the other
    half's measurements. Non-overlapping blocks see independent noise, so this picks strong
    smoothing when the block shifts are mostly measurement noise (a smooth drift) and little
    when neighbouring blocks agree on a local deformation.
    """
    ny, nx, _ = shifts.shape
    parity = (np.add.outer(np.arange(ny), np.arange(nx)) % 2).astype(bool)
    finite = np.isfinite(shifts[..., 0])
    best, best_err = np.inf, np.inf
    for sigma in candidates:
        err, count = 0.0, 0
        for held in (parity, ~parity):
            train = shifts.copy()
            train[held] = np.nan
            pred = _fill(train, sigma)
            test = held & finite
            if pred is None or not test.any():
                continue
            err += float(((pred[test] - shifts[test]) ** 2).sum())
            count += int(test.sum())
        if count and err / count < best_err:
            best, best_err = sigma, err / count
    return best


def _dense(grid: BlockShifts, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Interpolate per-block values (ny, nx, 2) to every pixel (H, W, 2), cubic, edges held."""
    h, w = shape
    # Block centres are (nearly) uniformly spaced; map pixel coordinates to fractional indices.
    gx = np.interp(np.arange(w), grid.centres_x, np.arange(len(grid.centres_x))).astype(np.float32)
    gy = np.interp(np.arange(h), grid.centres_y, np.arange(len(grid.centres_y))).astype(np.float32)
    map_x = np.broadcast_to(gx[None, :], (h, w)).copy()
    map_y = np.broadcast_to(gy[:, None], (h, w)).copy()
    return cv2.remap(values.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)


def elastic_refine(ref: np.ndarray, moving: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                   jacobian: np.ndarray, blocks=(256, 128, 64, 32), *, iterations: int = 2,
                   progress: Callable[[int, int], None] | None = None):
    """Refine registered->moving maps with the block-shift pyramid; returns new (map_x, map_y).

    ``ref`` and ``moving`` are the smoothed, normalised images; ``jacobian`` (2x2) turns a shift
    on the registered grid into a shift in the moving image (the affine's linear part). At each
    level the block shifts are outlier-filtered, smoothed as much as cross-validation says the
    data warrant (:func:`cross_validated_sigma`), interpolated to every pixel and added to the
    maps; each level runs ``iterations`` times (warp, re-measure).
    """
    h, w = ref.shape
    mh, mw = moving.shape
    map_x, map_y = map_x.copy(), map_y.copy()
    jac = np.asarray(jacobian, dtype=np.float32)
    for level, block in enumerate(blocks):
        if block > min(h, w):
            continue
        for _ in range(iterations):
            warped = cv2.remap(moving, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            valid = (map_x >= 0) & (map_x <= mw - 1) & (map_y >= 0) & (map_y <= mh - 1)
            # Non-overlapping blocks: independent noise, which the cross-validation relies on.
            grid = measure_block_shifts(ref, warped, valid, block=block, step=block)
            inliers = _reject_outliers(grid.shifts)
            filled = _fill(inliers, cross_validated_sigma(inliers))
            if filled is None:
                break
            d = _dense(grid, filled, (h, w))
            map_x += jac[0, 0] * d[..., 0] + jac[0, 1] * d[..., 1]
            map_y += jac[1, 0] * d[..., 0] + jac[1, 1] * d[..., 1]
        if progress:
            progress(level + 1, len(blocks))
    return map_x, map_y
