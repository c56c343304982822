"""The simulator's sample types and argument checks (used by :mod:`zoo.sim.simulate` and :mod:`zoo.sim.dataset`).

A :class:`SampleSpec` fixes what the paper fixed per sample (de Haan et al., Sci. Rep. 9,
12050, 2019, Methods): the two pixel sizes (x2 magnification), and what a microscope user
would set or see: probe size, dose per pixel, the geometric errors between the two
acquisitions, scan noise, detector noise and the brightness/contrast automation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from zoo.sim import gold_on_carbon, specimens
from zoo.errors import UserError

MIN_SIZE = 64
MAX_SIZE = 2048  # the fine specimen grid is 8x the LR pixel count per side: ~3.4 GB at 2048


@dataclass(frozen=True)
class SampleSpec:
    """A sample type: pixel sizes, the imaging conditions, and the specimen model."""

    name: str
    description: str
    lr_pixel_size_nm: float
    hr_pixel_size_nm: float
    lr_magnification: int
    hr_magnification: int
    specimen_grid_nm: float  # fine grid the specimen is rendered on (HR pixel / 4 or / 2)
    probe_fwhm_nm: float
    electrons_per_pixel: float  # primaries per pixel (beam current x dwell), the same for LR and HR
    max_rotation_deg: float = 0.8
    max_scale_error: float = 0.008
    max_shift_lr_px: float = 4.0
    drift_hr_px: float = 0.6  # rms linear drift over one frame, per axis, in HR pixels
    distortion_hr_px: float = 0.25  # rms amplitude of each smooth non-rigid drift term
    jitter_px: float = 0.08  # rms random per-line offset, in the image's pixels
    hum_px: float = 0.07  # amplitude of the mains-hum line offset
    detector_gain_shape: float = 4.0  # gamma shape of one SE's detector pulse: excess noise 1 + 1/4
    read_noise: float = 1.0  # amplifier noise, in SE counts
    saturation_percent: tuple[float, float] = (0.1, 0.5)
    beam_damage_blobs: float = 0.0  # mean number of beam-damage deformations per pair
    beam_damage_nm: tuple[float, float] = (3.0, 30.0)
    specimen: object = None

    @property
    def scale(self) -> int:
        return int(round(self.lr_pixel_size_nm / self.hr_pixel_size_nm))


SAMPLE_TYPES: dict[str, SampleSpec] = {
    "gold-on-carbon": SampleSpec(
        name="gold-on-carbon",
        description="gold nanoparticles (5-150 nm) on a textured amorphous carbon film",
        lr_pixel_size_nm=14.2,
        hr_pixel_size_nm=7.1,
        lr_magnification=10000,
        hr_magnification=20000,
        specimen_grid_nm=7.1 / 4,
        probe_fwhm_nm=3.0,
        electrons_per_pixel=400.0,
        specimen=gold_on_carbon.GoldOnCarbonParams(),
    ),
    "hydrogel": SampleSpec(
        name="hydrogel",
        description="gold-coated porous hydrogel (polymer network, pores of tens to hundreds of nm)",
        lr_pixel_size_nm=56.8,
        hr_pixel_size_nm=28.4,
        lr_magnification=2500,
        hr_magnification=5000,
        specimen_grid_nm=28.4 / 2,
        probe_fwhm_nm=8.0,
        electrons_per_pixel=300.0,
        beam_damage_blobs=3.0,
        specimen=specimens.HydrogelParams(),
    ),
}


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------


def sample_spec(sample: str) -> SampleSpec:
    """The :class:`SampleSpec` of a sample type; UserError naming the known ones otherwise."""
    try:
        return SAMPLE_TYPES[sample]
    except (KeyError, TypeError):
        known = ", ".join(SAMPLE_TYPES)
        raise UserError(f"unknown sample type {sample!r}; choose one of: {known}") from None


def parse_size(text: str) -> tuple[int, int]:
    """``"924x780"`` -> (924, 780) = (width, height), checked against the allowed range."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UserError(f"bad size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 924x780")
    return check_size((int(parts[0]), int(parts[1])))


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """Validate (width, height): integers in [MIN_SIZE, MAX_SIZE]."""
    try:
        width, height = (int(v) for v in size)
        if any(int(v) != v for v in size):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"bad size {size!r}: expected (width, height) in pixels") from None
    for label, v in (("width", width), ("height", height)):
        if not MIN_SIZE <= v <= MAX_SIZE:
            raise UserError(f"image {label} {v} is out of range: use {MIN_SIZE} to {MAX_SIZE} pixels")
    return width, height


def _check_positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive number, got {value}")
    return value


def _seed_sequence(seed: int) -> np.random.SeedSequence:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def pair_seeds(seed: int, pairs: int) -> list[int]:
    """The per-pair seeds of a data set: independent streams spawned from ``seed``, so pair k
    is reproduced exactly by ``simulate_pair(sample, seed=pair_seeds(seed, n)[k])``."""
    children = _seed_sequence(seed).spawn(pairs)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]
