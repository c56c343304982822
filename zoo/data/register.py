"""Co-registration of a low- and a high-magnification SEM image, in the paper's order.

de Haan et al., Sci. Rep. 9, 12050 (2019), Methods, "Image registration":

1. from the two pixel sizes, crop the centre of the LR image that covers the HR field (in whole LR
   pixels) and upsample it x2 with Lanczos (:func:`lanczos_upsample2x`) onto the *registered grid*;
2. correct rotation, scale and shift with an affine matrix found by correlation (phase correlation
   for the shift, then OpenCV's ECC with ``MOTION_AFFINE`` on a pyramid; log-polar phase
   correlation as a fallback for large rotations);
3. pyramid elastic registration: blocks shrinking level by level, a sub-pixel shift per block,
   outlier rejection, and a smooth displacement field.

Direction (train/serve parity): the network's input is the *unwarped* LR crop, so the LR is never
resampled except by the x2 Lanczos that the generator's first layer reproduces. The HR is resampled
onto the registered grid (``cv2.remap`` with ``INTER_LANCZOS4``: of OpenCV's interpolators it
attenuates the frequencies near the HR Nyquist limit least, and those fine details are exactly
what the network learns to produce; ``INTER_CUBIC`` would soften the target).

Coordinates follow the project's pixel-centre convention (pixel (i, j) has its centre at x=j,
y=i). Registered-grid pixel ``u`` lies at LR-crop coordinate ``(u + 0.5) / 2 - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from zoo.data.elastic import (
    elastic_refine,
    measure_block_shifts,
    smooth_for_correlation,
)
from zoo.errors import UserError

SCALE = 2
DEFAULT_MIN_CORRELATION = 0.5
# The paper magnifies x2 (10000x -> 20000x); a few percent of calibration slack is normal.
PIXEL_RATIO_TOLERANCE = 0.05
# ECC runs on a pyramid; the finest level is half resolution because the elastic stage that
# follows works at full resolution anyway.
_ECC_LEVELS = (4, 2)
# Block size (registered px) of the final shift measurement that estimates the residual: at
# 128 px (the patch size) the measurement noise is small (on the simulator the estimate is within
# ~0.03 px of the true median residual; 64-px blocks doubled it with noise).
RESIDUAL_BLOCK = 128


class RegistrationError(UserError):
    """A pair that cannot be registered (unrelated images, beam damage, too little overlap)."""


def lanczos_upsample2x(image: np.ndarray) -> np.ndarray:
    """Upsample a 2-D image x2 with OpenCV's Lanczos-4 kernel, as float32.

    This is *the* definition of the x2 upsampling in semzoo: the generator's first layer
    (``LanczosUpsample2x``) reproduces it exactly, so training inputs and served inputs agree.
    Output pixel ``u`` samples input coordinate ``(u + 0.5) / 2 - 0.5`` (half-pixel centres).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"lanczos_upsample2x expects a 2-D image, got shape {img.shape}")
    h, w = img.shape
    return cv2.resize(img, (SCALE * w, SCALE * h), interpolation=cv2.INTER_LANCZOS4)


def correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two equally shaped images over ``mask`` (all pixels if None)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a.ravel() - a.mean() if a.size else a.ravel()
    b = b.ravel() - b.mean() if b.size else b.ravel()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _normalised(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    std = float(img.std())
    return (img - float(img.mean())) / (std if std > 0 else 1.0)


def _h(affine: np.ndarray) -> np.ndarray:
    """2x3 -> 3x3 homogeneous."""
    return np.vstack([affine, [0.0, 0.0, 1.0]])


def _rescale_affine(affine: np.ndarray, factor: float) -> np.ndarray:
    """Express a grid->grid affine on images resized by ``factor`` (half-pixel centres)."""
    off = 0.5 * factor - 0.5
    s = np.array([[factor, 0, off], [0, factor, off], [0, 0, 1.0]])
    return (s @ _h(affine) @ np.linalg.inv(s))[:2]


def _grid_maps(affine: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    a = affine.astype(np.float32)
    return a[0, 0] * x + a[0, 1] * y + a[0, 2], a[1, 0] * x + a[1, 1] * y + a[1, 2]


def _inside(map_x: np.ndarray, map_y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def _warp(image: np.ndarray, map_x, map_y, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def _downscale(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape
    return cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))),
                      interpolation=cv2.INTER_AREA)


def _translation(ref: np.ndarray, moving: np.ndarray) -> tuple[float, float, float]:
    """Shift (dx, dy) with ref(x) ~ moving(x + d), and the phase-correlation peak response."""
    window = cv2.createHanningWindow(ref.shape[::-1], cv2.CV_32F)
    # Copies: OpenCV 5.0's phaseCorrelate applies the window to its inputs in place.
    (dx, dy), response = cv2.phaseCorrelate(ref.copy(), moving.copy(), window)
    return dx, dy, response


def _log_polar_rotation_scale(ref: np.ndarray, moving: np.ndarray) -> list[tuple[float, float]]:
    """Candidate (angle in degrees, scale) of ``moving`` relative to ``ref`` (Reddy & Chatterji).

    Rotation and scale become shifts of the log-polar magnitude spectrum; returns both angles of
    the 180-degree ambiguity.
    """
    n = 256
    h, w = ref.shape
    m = min(h, w)  # a centred square: resizing a rectangle to a square would skew the angles
    y0, x0 = (h - m) // 2, (w - m) // 2
    # Only frequencies below the LR Nyquist limit (0.25 cycles per registered pixel) are shared.
    radius = min(n / 2, 0.9 * 0.25 * m)
    spectra = []
    for img in (ref, moving):
        small = cv2.resize(img[y0:y0 + m, x0:x0 + m], (n, n), interpolation=cv2.INTER_AREA)
        small = small * cv2.createHanningWindow((n, n), cv2.CV_32F)
        mag = np.abs(np.fft.fftshift(np.fft.fft2(small))).astype(np.float32)
        yy, xx = np.mgrid[-n // 2:n // 2, -n // 2:n // 2]
        mag *= np.hypot(xx, yy).astype(np.float32)  # high-pass: the DC peak carries no angle
        spectra.append(cv2.warpPolar(np.log1p(mag), (n, n), (n / 2, n / 2), radius,
                                     cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR))
    (dr, da), _ = cv2.phaseCorrelate(spectra[0], spectra[1])
    angle = da * 360.0 / n
    scale = float(np.exp(dr * np.log(radius) / n))
    return [(angle, scale), (angle + 180.0, scale)]


def _ecc_affine(ref: np.ndarray, moving: np.ndarray, affine: np.ndarray,
                levels=_ECC_LEVELS) -> tuple[np.ndarray, float]:
    """Refine a registered->HR affine with ECC on a pyramid; returns (affine, ECC score)."""
    score = -1.0
    for factor in levels:
        r, m = _downscale(ref, factor), _downscale(moving, factor)
        warp = _rescale_affine(affine, 1.0 / factor).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            score, warp = cv2.findTransformECC(r, m, warp, cv2.MOTION_AFFINE, criteria, None, 1)
        except cv2.error:
            return affine, -1.0  # did not converge: the caller judges by correlation
        affine = _rescale_affine(warp.astype(np.float64), float(factor))
    return affine, float(score)


@dataclass
class Registration:
    """A registered LR/HR pair on the registered grid (the x2 grid of the native LR crop).

    ``map_x``/``map_y`` give, for every registered-grid pixel, the HR-image coordinates it was
    sampled from (affine + elastic displacement); ``affine`` is the 2x3 registered->HR affine
    alone. ``crop_origin`` is (x0, y0) of the LR crop in the full LR image, in LR pixels.
    Correlations are Pearson correlations of the LR-upsampled and HR images after a Gaussian
    blur of ``zoo.data.elastic.REGISTRATION_SIGMA`` (1.5) registered pixels, over ``valid_mask``.
    """

    name: str
    lr_crop: np.ndarray
    lr_upsampled: np.ndarray
    hr_registered: np.ndarray
    valid_mask: np.ndarray
    crop_origin: tuple[int, int]
    affine: np.ndarray
    map_x: np.ndarray
    map_y: np.ndarray
    correlation_before: float
    correlation_after: float
    residual_px: float
    residual_px_p95: float
    lr_pixel_size_nm: float
    hr_pixel_size_nm: float
    hr_shape: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def registered_pixel_size_nm(self) -> float:
        """Pixel size of the registered grid: half the LR pixel size."""
        return self.lr_pixel_size_nm / SCALE

    @property
    def displacement(self) -> np.ndarray:
        """Elastic part of the mapping, (H, W, 2) in HR pixels: map minus the affine."""
        ax, ay = _grid_maps(self.affine, self.map_x.shape)
        return np.stack([self.map_x - ax, self.map_y - ay], axis=-1)

    @property
    def valid_fraction(self) -> float:
        return float(self.valid_mask.mean())

    def registered_to_hr(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """HR-image coordinates of registered-grid points (bilinear in the maps)."""
        from scipy.ndimage import map_coordinates

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        coords = np.stack([y.ravel(), x.ravel()])
        hx = map_coordinates(self.map_x, coords, order=1, mode="nearest")
        hy = map_coordinates(self.map_y, coords, order=1, mode="nearest")
        return hx.reshape(x.shape).astype(np.float64), hy.reshape(y.shape).astype(np.float64)

    def registered_to_lr(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Full-LR-image coordinates of registered-grid points (exact, no registration)."""
        x0, y0 = self.crop_origin
        return (x0 + (np.asarray(x, float) + 0.5) / SCALE - 0.5,
                y0 + (np.asarray(y, float) + 0.5) / SCALE - 0.5)

    def lr_to_registered(self, x_lr, y_lr) -> tuple[np.ndarray, np.ndarray]:
        """Registered-grid coordinates of full-LR-image points (inverse of registered_to_lr)."""
        x0, y0 = self.crop_origin
        return (SCALE * (np.asarray(x_lr, float) - x0 + 0.5) - 0.5,
                SCALE * (np.asarray(y_lr, float) - y0 + 0.5) - 0.5)

    def summary(self) -> dict:
        """JSON-serialisable facts for the manifest."""
        return {
            "name": self.name,
            "crop_origin_lr": list(self.crop_origin),
            "crop_size_lr": [int(self.lr_crop.shape[1]), int(self.lr_crop.shape[0])],
            "registered_size": [int(self.hr_registered.shape[1]), int(self.hr_registered.shape[0])],
            "affine": [[round(float(v), 6) for v in row] for row in self.affine],
            "correlation_before": round(self.correlation_before, 4),
            "correlation": round(self.correlation_after, 4),
            "residual_px": _finite(self.residual_px),
            "residual_px_p95": _finite(self.residual_px_p95),
            "valid_fraction": round(self.valid_fraction, 4),
            "notes": list(self.notes),
        }


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def check_pixel_sizes(lr_pixel_size_nm: float, hr_pixel_size_nm: float, name: str = "pair") -> float:
    """Return the LR/HR pixel-size ratio; UserError unless it is 2 within the tolerance."""
    if not (lr_pixel_size_nm and hr_pixel_size_nm) or lr_pixel_size_nm <= 0 or hr_pixel_size_nm <= 0:
        raise UserError(f"{name}: pixel sizes must be positive (LR {lr_pixel_size_nm} nm, "
                        f"HR {hr_pixel_size_nm} nm)")
    ratio = lr_pixel_size_nm / hr_pixel_size_nm
    if abs(ratio / SCALE - 1) > PIXEL_RATIO_TOLERANCE:
        raise UserError(
            f"{name}: LR/HR pixel-size ratio is {ratio:.3f} ({lr_pixel_size_nm:g} nm / "
            f"{hr_pixel_size_nm:g} nm); semzoo needs x{SCALE} pairs (within "
            f"{PIXEL_RATIO_TOLERANCE:.0%}); check the files or --pixel-size/--hr-pixel-size")
    return ratio


def _crop_box(lr_shape, hr_shape, ratio, centre_lr=None) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the LR crop, in whole LR pixels, covering the HR field."""
    lh, lw = lr_shape
    hh, hw = hr_shape
    w = min(lw, max(8, round(hw / ratio)))
    h = min(lh, max(8, round(hh / ratio)))
    cx, cy = centre_lr if centre_lr is not None else ((lw - 1) / 2, (lh - 1) / 2)
    x0 = int(np.clip(round(cx - (w - 1) / 2), 0, lw - w))
    y0 = int(np.clip(round(cy - (h - 1) / 2), 0, lh - h))
    return x0, y0, w, h


def _nominal_affine(x0, y0, lr_shape, hr_shape, ratio) -> np.ndarray:
    """Registered->HR affine from pixel sizes alone: the HR field centred on the LR image."""
    lh, lw = lr_shape
    hh, hw = hr_shape
    lcx, lcy = (lw - 1) / 2, (lh - 1) / 2
    hcx, hcy = (hw - 1) / 2, (hh - 1) / 2
    k = ratio / SCALE  # HR pixels per registered pixel
    # x_hr = hc + ratio * (L(u) - lc), L(u) = x0 + (u + 0.5) / 2 - 0.5
    return np.array([[k, 0.0, hcx + ratio * (x0 + 0.25 - 0.5 - lcx)],
                     [0.0, k, hcy + ratio * (y0 + 0.25 - 0.5 - lcy)]])


def register_pair(
    lr: np.ndarray,
    hr: np.ndarray,
    lr_pixel_size_nm: float,
    hr_pixel_size_nm: float,
    *,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    name: str = "pair",
    elastic_blocks: tuple[int, ...] = (256, 128, 64, 32),
    progress: Callable[[int, int], None] | None = None,
) -> Registration:
    """Register an LR/HR pair (paper, Methods): centre crop + Lanczos x2, affine, elastic.

    Raises :class:`RegistrationError` (a UserError) when the correlation after registration is
    below ``min_correlation`` or the HR covers too little of the registered grid.
    """
    lr = np.asarray(lr, dtype=np.float32)
    hr = np.asarray(hr, dtype=np.float32)
    for label, img in (("LR", lr), ("HR", hr)):
        if img.ndim != 2 or min(img.shape) < 16:
            raise UserError(f"{name}: {label} image must be 2-D and at least 16x16, got {img.shape}")
    ratio = check_pixel_sizes(lr_pixel_size_nm, hr_pixel_size_nm, name)
    steps = 3 + len(elastic_blocks)
    report = progress or (lambda done, total: None)
    notes: list[str] = []

    # 1. Centre crop and Lanczos x2 onto the registered grid.
    x0, y0, cw, ch = _crop_box(lr.shape, hr.shape, ratio)
    mov = smooth_for_correlation(_normalised(hr))
    affine = _nominal_affine(x0, y0, lr.shape, hr.shape, ratio)

    def reference(x0, y0):
        crop = lr[y0:y0 + ch, x0:x0 + cw]
        up = lanczos_upsample2x(crop)
        return crop, up, smooth_for_correlation(_normalised(up))

    lr_crop, lr_up, ref = reference(x0, y0)
    shape = ref.shape
    mx, my = _grid_maps(affine, shape)
    inside = _inside(mx, my, hr.shape)
    corr_before = correlation(ref, _warp(mov, mx, my), inside)
    report(1, steps)

    # 2. Affine: phase-correlation shift at quarter resolution, then ECC on a pyramid.
    def affine_from(start: np.ndarray) -> tuple[np.ndarray, float]:
        f = 4
        wx, wy = _grid_maps(start, shape)
        dx, dy, _ = _translation(_downscale(ref, f), _downscale(_warp(mov, wx, wy), f))
        start = start.copy()
        start[:, 2] += start[:, :2] @ np.array([dx * f, dy * f])
        return _ecc_affine(ref, mov, start)

    candidates = [affine_from(affine)]
    if candidates[0][1] < min_correlation:
        # Large rotation or scale error: start from log-polar estimates instead (rare on SEMs).
        for angle, scale in _log_polar_rotation_scale(ref, _warp(mov, mx, my)):
            c = np.array(shape[::-1], float) / 2 - 0.5
            rot = cv2.getRotationMatrix2D(tuple(c), -angle, 1.0 / scale)
            candidates.append(affine_from((_h(affine) @ _h(rot))[:2]))
        notes.append("affine started from log-polar rotation/scale estimates")
    affine, _ = max(candidates, key=lambda c: c[1])
    report(2, steps)

    # Re-centre the LR crop on where the HR field actually lies (whole LR pixels), so the stage
    # shift between the two acquisitions does not leave an unmapped band on one side.
    inv = np.linalg.inv(_h(affine))
    hc = np.array([(hr.shape[1] - 1) / 2, (hr.shape[0] - 1) / 2, 1.0])
    ux, uy = (inv @ hc)[:2]
    centre_lr = (x0 + (ux + 0.5) / SCALE - 0.5, y0 + (uy + 0.5) / SCALE - 0.5)
    nx0, ny0, _, _ = _crop_box(lr.shape, hr.shape, ratio, centre_lr)
    if (nx0, ny0) != (x0, y0):
        shift = np.array([SCALE * (nx0 - x0), SCALE * (ny0 - y0)], float)
        affine = affine.copy()
        affine[:, 2] += affine[:, :2] @ shift
        x0, y0 = nx0, ny0
        lr_crop, lr_up, ref = reference(x0, y0)
    report(3, steps)

    # 3. Pyramid elastic registration at full resolution.
    mx, my = _grid_maps(affine, shape)
    mx, my = elastic_refine(ref, mov, mx, my, affine[:, :2], elastic_blocks,
                            progress=lambda d, t: report(3 + d, steps))
    valid = _inside(mx, my, hr.shape)
    if valid.mean() < 0.25:
        raise RegistrationError(
            f"pair {name}: the HR image covers only {valid.mean():.0%} of the LR crop after "
            "registration; are these two images of the same field?")
    warped = _warp(mov, mx, my)
    corr_after = correlation(ref, warped, valid)
    if not corr_after >= min_correlation:
        raise RegistrationError(
            f"pair {name}: correlation after registration is {corr_after:.2f} (before "
            f"{corr_before:.2f}), below the minimum {min_correlation:.2f}; wrong files, beam "
            "damage or too little overlap? (--min-correlation lowers the bar)")
    shifts = measure_block_shifts(ref, warped, valid, block=RESIDUAL_BLOCK, step=RESIDUAL_BLOCK)
    magnitudes = np.hypot(shifts[..., 0], shifts[..., 1])[np.isfinite(shifts[..., 0])]
    if magnitudes.size:
        residual, residual95 = float(np.median(magnitudes)), float(np.percentile(magnitudes, 95))
    else:
        residual = residual95 = float("nan")
        notes.append("no block was textured enough to estimate the residual")
    hr_registered = _warp(hr, mx, my, cv2.INTER_LANCZOS4)
    hr_registered[~valid] = 0.0
    return Registration(
        name=name, lr_crop=lr_crop, lr_upsampled=lr_up, hr_registered=hr_registered,
        valid_mask=valid, crop_origin=(x0, y0), affine=affine, map_x=mx, map_y=my,
        correlation_before=corr_before, correlation_after=corr_after,
        residual_px=residual, residual_px_p95=residual95, lr_pixel_size_nm=float(lr_pixel_size_nm),
        hr_pixel_size_nm=float(hr_pixel_size_nm), hr_shape=tuple(hr.shape), notes=notes,
    )
