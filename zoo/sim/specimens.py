"""Synthetic specimens for :mod:`zoo.sim.simulate`: the fine grid, yield maps, hydrogel.

A specimen is rendered once, in specimen coordinates (nm), as additive :class:`YieldLayer` s
of secondary-electron (SE) yield on grids a few times finer than the high-resolution pixel
that cover the whole low-resolution field. The simulator (:mod:`zoo.sim.simulate`) blurs them
with the acquisition model's probe and point-samples them (:func:`sample_layers`) at the
scanned positions of each acquisition (:mod:`zoo.sim.scan`), as an SEM does.

The two specimens of de Haan et al. (Sci. Rep. 9, 12050, 2019), Methods:

* ``gold-on-carbon``: :mod:`zoo.sim.gold_on_carbon` (gold spheres with planted gaps on
  amorphous carbon);
* ``hydrogel``: :func:`render_hydrogel` here, a gold-coated porous polymer network made of
  two layers of random walls (pores of tens to hundreds of nm).

The yield model is the textbook one (Reimer, *Scanning Electron Microscopy*, ch. 4): SE yield
grows with the local surface tilt as ~sec(theta), so edges are bright; heavier and thicker
material yields more; what lies deep in pores yields less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Grid:
    """A regular grid in specimen coordinates: pixel (row i, col j) has its centre at
    ``(x0_nm + j * spacing_nm, y0_nm + i * spacing_nm)``."""

    x0_nm: float
    y0_nm: float
    spacing_nm: float
    width: int
    height: int

    @classmethod
    def covering(cls, xmin: float, xmax: float, ymin: float, ymax: float, spacing_nm: float) -> "Grid":
        """The grid with this spacing whose pixel centres cover the rectangle."""
        width = int(math.ceil((xmax - xmin) / spacing_nm)) + 1
        height = int(math.ceil((ymax - ymin) / spacing_nm)) + 1
        return cls(float(xmin), float(ymin), float(spacing_nm), width, height)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def to_px(self, x_nm, y_nm):
        """Specimen nm -> grid pixel coordinates (fractional)."""
        return (np.asarray(x_nm) - self.x0_nm) / self.spacing_nm, (np.asarray(y_nm) - self.y0_nm) / self.spacing_nm

    def coarsened(self, factor: int) -> "Grid":
        """A grid ``factor`` times coarser covering at least the same area."""
        s = self.spacing_nm * factor
        return Grid(self.x0_nm, self.y0_nm, s, -(-self.width // factor) + 1, -(-self.height // factor) + 1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std random field with correlation length ~``sigma_px`` (float32).

    Uniform numbers are used because they are drawn several times faster than normal ones;
    after the Gaussian blur (a sum of many of them) the field is Gaussian all the same.
    """
    field = rng.random(shape, dtype=np.float32)
    if sigma_px > 0.3:
        field = cv2.GaussianBlur(field, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    step = max(1, int(math.sqrt(field.size / 250_000)))  # statistics from ~250k pixels suffice
    sample = field[::step, ::step]
    mean, std = float(sample.mean()), float(sample.std())
    field -= np.float32(mean)
    if std > 0:
        field *= np.float32(1.0 / std)
    return field


def field_on(grid: Grid, coarse: np.ndarray) -> np.ndarray:
    """A smooth field computed on a coarser grid with the same origin, resampled onto ``grid``."""
    h, w = coarse.shape
    factor_x = (w - 1) / max(grid.width - 1, 1)
    factor_y = (h - 1) / max(grid.height - 1, 1)
    if abs(factor_x - factor_y) > 1e-3:  # keep the aspect: crop the coarse field
        factor = min(factor_x, factor_y)
        coarse = coarse[: int(round(factor * (grid.height - 1))) + 1, : int(round(factor * (grid.width - 1))) + 1]
    return cv2.resize(coarse, (grid.width, grid.height), interpolation=cv2.INTER_LINEAR)


@dataclass
class YieldLayer:
    """One additive part of a yield map: values at the pixel centres of ``grid``, bilinear in
    between. A specimen's yield is the sum of its layers; smooth parts live on coarse grids,
    so only the sharp particle edges need the fine one."""

    image: np.ndarray
    grid: Grid


def sample_layers(layers: list[YieldLayer], sx, sy) -> np.ndarray:
    """The summed layers at specimen points (nm): bilinear point sampling, float32, shaped
    like ``sx`` (any number of dimensions). Bilinear suffices on grids 2-4x finer than the HR
    pixel after the probe; the acquisition model, sampling an HR image at its own pitch,
    interpolates with Lanczos-4 instead (:func:`zoo.sim.acquisition.acquire`)."""
    sx = np.asarray(sx, dtype=np.float64)
    sy = np.asarray(sy, dtype=np.float64)
    out = np.zeros(sx.shape, dtype=np.float32)
    for layer in layers:
        gx, gy = layer.grid.to_px(sx, sy)
        out += sample_px(layer.image, gx, gy)
    return out


_REMAP_MAX = 32767


def sample_px(image: np.ndarray, gx, gy) -> np.ndarray:
    """``image`` at fractional pixel coordinates (bilinear, float32, shaped like ``gx``)."""
    gx = np.asarray(gx, dtype=np.float32)
    gy = np.asarray(gy, dtype=np.float32)
    shape = gx.shape
    if gx.ndim == 2 and max(shape) < _REMAP_MAX:
        return cv2.remap(image, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # cv2.remap takes 2-D maps below 32767 pixels a side: fold the points into a block.
    n = gx.size
    cols = max(1, min(n, 4096))
    rows = -(-n // cols)
    maps = []
    for g in (gx, gy):
        m = np.empty(rows * cols, dtype=np.float32)
        m[:n] = g.reshape(-1)
        m[n:] = 0.0
        maps.append(m.reshape(rows, cols))
    out = cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1)[:n].reshape(shape)


# ----------------------------------------------------------------------------------------------
# Hydrogel
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HydrogelParams:
    """A gold-coated porous polymer network: two layers of random fibre/wall networks, the
    deeper one seen through the pores of the top one (all lengths nm)."""

    pore_nm: float = 380.0  # correlation length of the fields whose zero lines are the walls
    small_pore_nm: float = 130.0
    small_pore_weight: float = 0.35
    wall_half_width_nm: float = 40.0  # half thickness of a wall/fibre at the top layer
    wall_width_variation: float = 0.35
    deep_scale: float = 0.8  # the deeper layer's pores and walls, relative to the top
    top_yield: float = 0.58  # gold-coated polymer, top layer
    deep_yield: float = 0.36  # one layer down: fewer SEs escape the pores
    pore_floor_yield: float = 0.24
    max_tilt_gain: float = 1.7
    grain_nm: float = 14.0  # sputtered-gold grain / surface roughness
    grain_contrast: float = 0.10
    undulation_nm: float = 900.0
    undulation_contrast: float = 0.08


def _zero_line_distance(rng, grid: Grid, p: HydrogelParams, scale: float) -> np.ndarray:
    """Approximate distance (nm) to the zero lines of a two-scale Gaussian random field."""
    g = grid.spacing_nm
    pore, small = p.pore_nm * scale, p.small_pore_nm * scale
    c_large = grid.coarsened(max(1, int(pore / g / 4)))
    c_small = grid.coarsened(max(1, int(small / g / 3)))
    large = smooth_noise(rng, c_large.shape, pore / c_large.spacing_nm)
    fine = smooth_noise(rng, c_small.shape, small / c_small.spacing_nm)
    field = cv2.addWeighted(field_on(grid, large), 1.0, field_on(grid, fine), p.small_pore_weight, 0.0)
    return np.abs(field) * np.float32(1.0 / max(_field_slope(field, g), 1e-9))


def _wall_network(rng, grid: Grid, p: HydrogelParams, scale: float):
    """Coverage (anti-aliased over a grid pixel) and sec(tilt) gain of one wall network.

    The walls run along the zero lines of two independent random fields, so they cross and
    enclose pores; each wall has a round cross-section of slowly varying half-width.
    """
    d = cv2.min(_zero_line_distance(rng, grid, p, scale), _zero_line_distance(rng, grid, p, scale))
    # The half-width varies slowly: everything that depends on it alone is made on a coarse
    # grid and interpolated, which keeps the per-pixel work to a few array passes.
    c_w = grid.coarsened(max(1, int(p.pore_nm / grid.spacing_nm / 2)))
    variation = np.clip(smooth_noise(rng, c_w.shape, 2.0), -2.0, 2.0)
    half = p.wall_half_width_nm * scale * np.maximum(1.0 + p.wall_width_variation * variation, 0.3)
    inv_half = field_on(grid, (1.0 / half).astype(np.float32))
    edge = field_on(grid, (half / grid.spacing_nm + 0.5).astype(np.float32))
    cover = cv2.addWeighted(edge, 1.0, d, -1.0 / grid.spacing_nm, 0.0)
    np.clip(cover, 0.0, 1.0, out=cover)
    # sec(tilt) across a round wall, 1 / sqrt(1 - (d / half)^2), through a 256-entry table.
    rel = cv2.convertScaleAbs(cv2.multiply(d, inv_half), alpha=255.0)  # uint8, saturates at 1
    k = np.arange(256) / 255.0
    table = np.minimum(1.0 / np.sqrt(np.maximum(1.0 - k * k, 1e-6)), p.max_tilt_gain).astype(np.float32)
    return cover, cv2.LUT(rel, table.reshape(1, 256))
def render_hydrogel(rng: np.random.Generator, grid: Grid, params: HydrogelParams | None = None) -> list[YieldLayer]:
    """The SE yield of a gold-coated porous hydrogel before the probe (one layer on ``grid``).

    Two random wall networks: the top one bright with sec(tilt) edge brightening across each
    round wall, the deeper one (seen through the pores) dimmer, pore floors dark; a gold grain
    and slow undulations modulate everything. Softer contrast than gold on carbon; pores of
    tens to hundreds of nm.
    """
    p = params or HydrogelParams()
    top_cover, top_gain = _wall_network(rng, grid, p, 1.0)
    deep_cover, deep_gain = _wall_network(rng, grid, p, p.deep_scale)
    floor = p.pore_floor_yield
    # out = floor + deep_cover * (deep_yield * deep_gain - floor), then the top layer over it.
    out = cv2.add(cv2.multiply(deep_cover, cv2.addWeighted(deep_gain, p.deep_yield, deep_gain, 0.0, -floor)), floor)
    out = cv2.add(out, cv2.multiply(top_cover, cv2.addWeighted(top_gain, p.top_yield, out, -1.0, 0.0)))
    grain = smooth_noise(rng, grid.shape, p.grain_nm / grid.spacing_nm / 2.0)
    c_und = grid.coarsened(max(1, int(p.undulation_nm / grid.spacing_nm / 4)))
    und = field_on(grid, smooth_noise(rng, c_und.shape, p.undulation_nm / c_und.spacing_nm))
    texture = cv2.addWeighted(grain, p.grain_contrast, und, p.undulation_contrast, 1.0)
    return [YieldLayer(cv2.multiply(out, texture), grid)]


def _field_slope(field: np.ndarray, spacing_nm: float) -> float:
    """Typical gradient magnitude of ``field`` per nm, so widths can be set in nm."""
    step = max(1, field.shape[0] // 256)
    sub = field[::step, ::step]
    gy, gx = np.gradient(sub, spacing_nm * step)
    return float(np.median(np.hypot(gx, gy)))
