"""The simulator's scans: where on the specimen (nm) each pixel of an acquisition looks, and the true LR/HR mapping.

Used by :mod:`zoo.sim.simulate` (see its docstring for the whole imaging model). A *scan* is
a JSON-able dict describing one acquisition: pixel (x, y) sees the specimen point (nm)

    centre + pixel_size * R(rotation) * ((x, y) - (size - 1) / 2) + drift(x, y)

with ``drift = drift_velocity * t + sum_k (ax, ay)_k sin(2 pi (fx_k x / W + fy_k y / H) + phase_k)``
and ``t = (y + x / W) / H`` the fraction of the frame time at which the pixel is visited: a
slow, smooth, non-rigid drift. Per-line jitter is added to x when sampling, but is not part of
the mapping. A pair's ``transform`` holds its two scans and the beam-damage deformation of the
material between them; :func:`hr_to_lr_coords` evaluates it.

How it relates to the acquisition model (:mod:`zoo.sim.acquisition`). Its linear drift and
frame time are the model's (:func:`~zoo.sim.acquisition.linear_drift`), in nm per frame, and its
per-line jitter is the model's :func:`~zoo.sim.acquisition.line_jitter`; the model's scan over a
finer image (:func:`~zoo.sim.acquisition.sample_points`) is the special case of this one
without rotation, scale error or non-rigid terms, in HR pixels instead of nm. Here the specimen
is continuous, so the geometry maps pixels to nm and the true mapping between two scans
follows; there the pitch and phase are relative to the HR grid.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from zoo.sim.acquisition import linear_drift
from zoo.sim.samples import SampleSpec


# ----------------------------------------------------------------------------------------------
# Scan geometry and the true mapping
# ----------------------------------------------------------------------------------------------


def drift(scan: dict, x, y):
    """The slow drift (nm) of a scan at pixel (x, y): the acquisition model's
    :func:`~zoo.sim.acquisition.linear_drift` (linear in the time the pixel is visited), plus
    smooth non-rigid terms."""
    width, height = scan["size"]
    dx, dy = linear_drift(x, y, (width, height), scan["drift_velocity_nm"])
    for ax, ay, fx, fy, phase in scan["drift_terms"]:
        s = np.sin(2.0 * np.pi * (fx * x / width + fy * y / height) + phase)
        dx = dx + ax * s
        dy = dy + ay * s
    return dx, dy


def scan_to_specimen(scan: dict, x, y):
    """Pixel coordinates of one acquisition -> specimen coordinates (nm) the beam was at."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    width, height = scan["size"]
    p = scan["pixel_size_nm"]
    th = math.radians(scan["rotation_deg"])
    c, s = math.cos(th), math.sin(th)
    u = x - (width - 1) / 2.0
    v = y - (height - 1) / 2.0
    dx, dy = drift(scan, x, y)
    cx, cy = scan["centre_nm"]
    return cx + p * (c * u - s * v) + dx, cy + p * (s * u + c * v) + dy


def specimen_to_scan(scan: dict, sx, sy, iterations: int = 8):
    """Inverse of :func:`scan_to_specimen` (fixed-point iteration; the drift is smooth and
    small, so it converges to rounding error in a few steps)."""
    sx = np.asarray(sx, dtype=np.float64)
    sy = np.asarray(sy, dtype=np.float64)
    width, height = scan["size"]
    p = scan["pixel_size_nm"]
    th = math.radians(scan["rotation_deg"])
    c, s = math.cos(th), math.sin(th)
    cx, cy = scan["centre_nm"]
    x = np.zeros_like(sx)
    y = np.zeros_like(sy)
    dx = dy = 0.0
    for _ in range(iterations):
        ax, ay = sx - cx - dx, sy - cy - dy
        x = (c * ax + s * ay) / p + (width - 1) / 2.0
        y = (-s * ax + c * ay) / p + (height - 1) / 2.0
        dx, dy = drift(scan, x, y)
    return x, y


def deformation(blobs: Sequence[dict], mx, my):
    """Beam-damage displacement (nm) of the material at (mx, my) between the LR and the HR
    acquisition: Gaussian blobs, each a shift plus a local contraction towards its centre."""
    dx = np.zeros_like(mx)
    dy = np.zeros_like(my)
    for b in blobs:
        rx, ry = mx - b["x_nm"], my - b["y_nm"]
        w = np.exp(-(rx * rx + ry * ry) / (2.0 * b["sigma_nm"] ** 2))
        dx = dx + w * (b["dx_nm"] - b["contraction"] * rx)
        dy = dy + w * (b["dy_nm"] - b["contraction"] * ry)
    return dx, dy


def undeform(blobs: Sequence[dict], sx, sy, iterations: int = 6):
    """Where the material now at (sx, sy) was during the LR acquisition (fixed-point
    iteration: the deformation's gradient is a few percent, so six steps reach ~1e-9 nm).
    Points beyond 6 sigma of every blob (displacement < 1e-7 of its size) are left as they are."""
    sx = np.asarray(sx, dtype=np.float64)
    sy = np.asarray(sy, dtype=np.float64)
    if not blobs:
        return sx, sy
    near = np.zeros(sx.shape, dtype=bool)
    for b in blobs:
        reach = 6.0 * b["sigma_nm"]
        near |= (np.abs(sx - b["x_nm"]) < reach) & (np.abs(sy - b["y_nm"]) < reach)
    px, py = sx[near], sy[near]
    mx, my = px, py
    for _ in range(iterations):
        dx, dy = deformation(blobs, mx, my)
        mx, my = px - dx, py - dy
    out_x, out_y = sx.copy(), sy.copy()
    out_x[near], out_y[near] = mx, my
    return out_x, out_y


def hr_to_lr_coords(transform: dict, x_hr, y_hr):
    """The true mapping of a pair: HR pixel coordinates -> LR pixel coordinates of the same
    material point (pixel centres at integer coordinates; arrays broadcast).

    It composes the HR scan (scale, rotation, shift, drift), the beam-damage deformation
    between the acquisitions (hydrogel) and the inverse LR scan. Per-line jitter is excluded:
    it is random per line, like shot noise, not part of a smooth mapping.
    """
    sx, sy = scan_to_specimen(transform["hr"], x_hr, y_hr)
    mx, my = undeform(transform.get("deformation", []), sx, sy)
    x, y = specimen_to_scan(transform["lr"], mx, my)
    if np.ndim(x) == 0:
        return float(x), float(y)
    return x, y


def lr_to_hr_coords(transform: dict, x_lr, y_lr):
    """Inverse of :func:`hr_to_lr_coords`: LR pixel coordinates -> HR pixel coordinates."""
    mx, my = scan_to_specimen(transform["lr"], x_lr, y_lr)
    dx, dy = deformation(transform.get("deformation", []), mx, my)
    x, y = specimen_to_scan(transform["hr"], mx + dx, my + dy)
    if np.ndim(x) == 0:
        return float(x), float(y)
    return x, y


def random_scan(rng, spec: SampleSpec, size, pixel_size_nm, rotation_deg, centre_nm) -> dict:
    """One acquisition's scan: the given geometry plus a random slow drift (linear in time,
    ``drift_hr_px`` rms per frame) and three smooth non-rigid terms (``distortion_hr_px`` rms,
    below 1 cycle per width and 2 per height), the same in nm for both magnifications since
    both frames take the same time."""
    drift_nm = spec.drift_hr_px * spec.hr_pixel_size_nm
    distortion_nm = spec.distortion_hr_px * spec.hr_pixel_size_nm
    terms = []
    for _ in range(3):
        ax, ay = rng.normal(0.0, distortion_nm, 2)
        terms.append(
            # [ax, ay, fx (cycles per width), fy (cycles per height), phase]
            [float(ax), float(ay)]
            + [float(rng.uniform(lo, hi)) for lo, hi in ((0.0, 1.0), (0.3, 2.0), (0.0, 2 * np.pi))]
        )
    return {
        "size": [int(size[0]), int(size[1])],
        "pixel_size_nm": float(pixel_size_nm),
        "rotation_deg": float(rotation_deg),
        "centre_nm": [float(centre_nm[0]), float(centre_nm[1])],
        "drift_velocity_nm": [float(v) for v in rng.normal(0.0, drift_nm, 2)],
        "drift_terms": terms,
    }


def random_transform(rng, spec: SampleSpec, size) -> dict:
    """The two scans of a pair. The specimen frame is the LR scan's (centre at 0, no rotation)."""
    lr = random_scan(rng, spec, size, spec.lr_pixel_size_nm, 0.0, (0.0, 0.0))
    rotation = rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg)
    scale_error = rng.uniform(-spec.max_scale_error, spec.max_scale_error)
    shift = rng.uniform(-spec.max_shift_lr_px, spec.max_shift_lr_px, 2) * spec.lr_pixel_size_nm
    hr = random_scan(rng, spec, size, spec.hr_pixel_size_nm * (1.0 + scale_error), rotation, shift)
    transform = {
        "model": "scan-v1",
        "description": (
            "pixel (x, y) of a scan sees specimen point centre + pixel_size * R(rotation) * "
            "((x, y) - (size - 1) / 2) + drift(x, y); drift = drift_velocity * t + sum over "
            "drift_terms [ax, ay, fx, fy, phase] of (ax, ay) * sin(2 pi (fx x / W + fy y / H) + phase), "
            "t = (y + x / W) / H; deformation: material displacement between LR and HR acquisitions"
        ),
        "lr": lr,
        "hr": hr,
        "deformation": [],
        "rotation_deg": float(rotation),
        "scale_error": float(scale_error),
        "shift_lr_px": [float(v) for v in shift / spec.lr_pixel_size_nm],
    }
    return transform


def beam_damage(rng, spec: SampleSpec, transform: dict) -> list[dict]:
    """Local deformations of the specimen inside the HR field between the two acquisitions."""
    n = int(rng.poisson(spec.beam_damage_blobs)) if spec.beam_damage_blobs > 0 else 0
    hr = transform["hr"]
    width, height = hr["size"]
    blobs = []
    for _ in range(n):
        x, y = rng.uniform(0.1 * width, 0.9 * width), rng.uniform(0.1 * height, 0.9 * height)
        cx, cy = scan_to_specimen(hr, x, y)
        sigma = rng.uniform(8.0, 30.0) * hr["pixel_size_nm"]
        shift = math.exp(rng.uniform(*np.log(spec.beam_damage_nm)))
        angle = rng.uniform(0, 2 * np.pi)
        # Contraction strain: its largest displacement (at r = sigma) is ~0.6 * c * sigma.
        contraction = rng.uniform(0.2, 1.0) * shift / (0.6 * sigma)
        blobs.append(
            {
                "x_nm": float(cx),
                "y_nm": float(cy),
                "sigma_nm": float(sigma),
                "dx_nm": float(shift * math.cos(angle)),
                "dy_nm": float(shift * math.sin(angle)),
                "contraction": float(contraction),
            }
        )
    return blobs


def beam_damage_records(transform: dict) -> list[dict]:
    """truth.json's ``beam_damage``: each deformation blob in HR pixels, with its largest
    displacement in nm."""
    hr = transform["hr"]
    out = []
    for b in transform["deformation"]:
        x, y = specimen_to_scan(hr, b["x_nm"], b["y_nm"])
        peak = math.hypot(b["dx_nm"], b["dy_nm"]) + 0.6 * b["contraction"] * b["sigma_nm"]
        out.append(
            {
                "x_hr": round(float(x), 2),
                "y_hr": round(float(y), 2),
                "sigma_hr_px": round(b["sigma_nm"] / hr["pixel_size_nm"], 2),
                "max_displacement_nm": round(peak, 2),
            }
        )
    return out


def sample_positions(scan: dict, jitter: np.ndarray, blobs: Sequence[dict] = ()):
    """Specimen (material) coordinates, nm, that each pixel of a scan samples: its position on
    the scan shifted along x by its line's ``jitter`` (pixels), mapped to nm, and traced back
    through the beam damage ``blobs`` to the material there during the LR acquisition."""
    width, height = scan["size"]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x += jitter[:, None]
    sx, sy = scan_to_specimen(scan, x, y)
    return undeform(blobs, sx, sy)
