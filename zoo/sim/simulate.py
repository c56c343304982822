"""Physically plausible synthetic SEM image pairs with known ground truth.

No co-registered SEM pairs can be downloaded, so semzoo makes them the way de Haan et al.
(Sci. Rep. 9, 12050, 2019; Methods, "Sample preparation and imaging") acquired theirs: the
same specimen imaged at 10000x (LR, 14.2 nm pixels) over a field, then at 20000x (HR, 7.1 nm)
over its centre, with the same pixel count and dwell time. Each acquisition is simulated as
an SEM forms an image:

1. the specimen's secondary-electron (SE) yield, rendered on a grid a few times finer than
   the HR pixel by :mod:`zoo.sim.gold_on_carbon` or :mod:`zoo.sim.specimens` (hydrogel):
   edge brightening, gold brighter than carbon;
2. blurred by a Gaussian probe (``probe_fwhm_nm``; :func:`probe_blur_layer`);
3. point-sampled at the scanned positions of the pixel centres, so the LR image is an
   *aliased* version of the HR one, as the paper says, not an area average; the scan
   positions (:mod:`zoo.sim.scan`) carry the acquisition's geometry (scale, rotation, shift), a
   slow smooth drift, and per-line jitter (random + mains hum) of a fraction of a pixel; the
   beam steps from pixel to pixel (no travel during the dwell);
4. shot noise: Poisson in the number of SEs for ``electrons_per_pixel`` primaries (the same
   dwell for LR and HR), with the detector's gain noise and a little read noise;
5. automatic brightness/contrast: mapped to uint16 with 0.1-0.5 % of the pixels saturated at
   each end, independently per image.

Between the two acquisitions the HR scan differs from the LR one by a small rotation
(< 1 deg), a scale error (< 1 %), a shift of a few LR pixels and each acquisition's own drift;
on hydrogel the beam also deforms the specimen locally (beam damage). The true mapping is
stored per pair (``truth["transform"]``) and evaluated by :func:`zoo.sim.scan.hr_to_lr_coords`.

Steps 2-4 use the acquisition model (:mod:`zoo.sim.acquisition`): its probe
(:func:`~zoo.sim.acquisition.probe_blur`), linear drift and line jitter
(:func:`~zoo.sim.acquisition.linear_drift`, :func:`~zoo.sim.acquisition.line_jitter`, through
:mod:`zoo.sim.scan`) are the functions that HR-only training and the consistency map record a
finer image with, and its shot noise (:func:`~zoo.sim.acquisition.detect`) is the one whose
Gaussian limit :func:`~zoo.sim.acquisition.acquire` adds. What differs is the input: here a
continuous specimen, rendered finer than the HR pixel and point-sampled bilinearly at positions
in nm; there an HR image, Lanczos-resampled at positions in its pixels, that already carries its
probe and its noise.

Module map: :mod:`zoo.sim.samples` (sample types, argument checks), the specimen modules
(step 1), :mod:`zoo.sim.scan` (the scan geometry and the true mapping, step 3),
:mod:`zoo.sim.acquisition` (steps 2-4), here the pair (and step 5), and :mod:`zoo.sim.dataset`
the data set on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from zoo.sim import acquisition, gold_on_carbon, scan, specimens
from zoo.sim.acquisition import FWHM_PER_SIGMA
from zoo.sim.presets import apply_preset
from zoo.sim.samples import SampleSpec, _check_positive, _seed_sequence, check_size, sample_spec

SIMULATOR = "semzoo-simulate/1"


@dataclass
class SimulatedPair:
    """One simulated acquisition pair: uint16 LR and HR images with the same pixel dimensions
    (the LR covering twice the field) and the pair's truth (the schema of one entry of
    truth.json's ``pairs``)."""

    lr: np.ndarray
    hr: np.ndarray
    lr_pixel_size_nm: float
    hr_pixel_size_nm: float
    truth: dict


@dataclass
class PairSignals:
    """The noise-free signal of a pair: the expected SE yield per primary electron at every
    pixel (float32), before shot noise and brightness/contrast, and what made it."""

    lr: np.ndarray
    hr: np.ndarray
    transform: dict
    spec: SampleSpec
    probe_fwhm_nm: float
    specimen: object  # gold_on_carbon.GoldOnCarbon, or None for hydrogel
    grid: specimens.Grid
    jitter_rms_px: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Imaging: the simulator's side of the acquisition model (zoo.sim.acquisition)
# ----------------------------------------------------------------------------------------------


def probe_blur_layer(layer: specimens.YieldLayer, fwhm_nm: float) -> specimens.YieldLayer:
    """The yield seen through the Gaussian probe of ``fwhm_nm``: the acquisition model's
    :func:`~zoo.sim.acquisition.probe_blur` on the layer's grid (skipped where the probe is far
    below the grid spacing: sigma < 0.2 grid pixels moves a neighbour's weight by < 1e-5)."""
    fwhm_px = fwhm_nm / layer.grid.spacing_nm
    if fwhm_px / FWHM_PER_SIGMA < 0.2:
        return layer
    return specimens.YieldLayer(acquisition.probe_blur(layer.image, fwhm_px), layer.grid)


def auto_brightness_contrast(rng: np.random.Generator, detected: np.ndarray, spec: SampleSpec):
    """uint16 image as a microscope's ABC makes it: black and white levels set so that
    0.1-0.5 % of the pixels saturate at each end. Returns (image, info)."""
    low_pct, high_pct = rng.uniform(*spec.saturation_percent, 2)
    lo, hi = np.percentile(detected, [low_pct, 100.0 - high_pct])
    if hi <= lo:
        hi = lo + 1.0
    scaled = (detected - lo) * (65535.0 / (hi - lo))
    image = np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)
    info = {
        "black_level_counts": round(float(lo), 3),
        "white_level_counts": round(float(hi), 3),
        "saturated_black_percent": round(float(100.0 * np.mean(image == 0)), 4),
        "saturated_white_percent": round(float(100.0 * np.mean(image == 65535)), 4),
    }
    return image, info


# ----------------------------------------------------------------------------------------------
# A pair
# ----------------------------------------------------------------------------------------------

# Independent random streams of a pair, so that switching one feature off (e.g. beam damage)
# leaves everything else bit-identical.
_STREAMS = (
    "geometry", "specimen", "texture", "lr_scan", "hr_scan", "damage", "lr_noise", "hr_noise", "lr_abc", "hr_abc"
)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = _seed_sequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def simulate_signals(
    sample: str,
    *,
    seed: int,
    size: Sequence[int] = (924, 780),
    probe_fwhm_nm: float | None = None,
    beam_damage: bool = True,
    preset: str | None = None,
    specimen_overrides: dict | None = None,
) -> PairSignals:
    """Noise-free LR and HR signals of one pair (steps 1-3 of the module docstring).

    ``beam_damage=False`` leaves out the hydrogel's deformation between the acquisitions and
    changes nothing else. ``preset`` names a specimen variant (:mod:`zoo.sim.presets`),
    ``specimen_overrides`` changes its fields (the calibration search).
    """
    spec = apply_preset(sample_spec(sample), preset, **(specimen_overrides or {}))
    width, height = check_size(size)
    probe = _check_positive("probe FWHM", probe_fwhm_nm) or spec.probe_fwhm_nm
    rngs = _streams(seed)
    transform = scan.random_transform(rngs["geometry"], spec, (width, height))
    blobs = scan.beam_damage(rngs["damage"], spec, transform)
    if beam_damage:
        transform["deformation"] = blobs
    lr_jitter = acquisition.line_jitter(rngs["lr_scan"], height, spec.jitter_px, hum_px=spec.hum_px)
    hr_jitter = acquisition.line_jitter(rngs["hr_scan"], height, spec.jitter_px, hum_px=spec.hum_px)
    lr_x, lr_y = scan.sample_positions(transform["lr"], lr_jitter)
    hr_x, hr_y = scan.sample_positions(transform["hr"], hr_jitter, transform["deformation"])

    g = spec.specimen_grid_nm
    margin = 3.0 * probe + 4.0 * g
    xmin = min(lr_x.min(), hr_x.min()) - margin
    xmax = max(lr_x.max(), hr_x.max()) + margin
    ymin = min(lr_y.min(), hr_y.min()) - margin
    ymax = max(lr_y.max(), hr_y.max()) + margin
    grid = specimens.Grid.covering(xmin, xmax, ymin, ymax, g)

    if isinstance(spec.specimen, gold_on_carbon.GoldOnCarbonParams):
        reach = spec.specimen.max_diameter_nm / 2.0
        specimen = gold_on_carbon.make_gold_on_carbon(
            rngs["specimen"], (xmin - reach, xmax + reach, ymin - reach, ymax + reach), spec.specimen
        )
        layers = gold_on_carbon.render_gold_on_carbon(specimen, grid, rngs["texture"])
    else:
        specimen = None
        layers = specimens.render_hydrogel(rngs["texture"], grid, spec.specimen)
    blurred = [probe_blur_layer(layer, probe) for layer in layers]
    del layers
    lr = specimens.sample_layers(blurred, lr_x, lr_y)
    hr = specimens.sample_layers(blurred, hr_x, hr_y)
    return PairSignals(
        lr=lr,
        hr=hr,
        transform=transform,
        spec=spec,
        probe_fwhm_nm=probe,
        specimen=specimen,
        grid=grid,
        jitter_rms_px={"lr": float(np.std(lr_jitter)), "hr": float(np.std(hr_jitter))},
    )


def _gold_truth(signals: PairSignals) -> dict:
    """Particles whose centre lies in the HR field, with their narrow gaps and contacts."""
    t = signals.transform
    spec_obj = signals.specimen
    x_lr, y_lr = scan.specimen_to_scan(t["lr"], spec_obj.x_nm, spec_obj.y_nm)
    x_hr, y_hr = scan.specimen_to_scan(t["hr"], spec_obj.x_nm, spec_obj.y_nm)  # gold: no deformation
    return gold_on_carbon.truth_records(spec_obj, x_hr, y_hr, x_lr, y_lr, t["hr"]["size"])


def simulate_pair(
    sample: str,
    *,
    seed: int,
    size: Sequence[int] = (924, 780),
    name: str = "pair-000",
    probe_fwhm_nm: float | None = None,
    electrons_per_pixel: float | None = None,
    beam_damage: bool = True,
    preset: str | None = None,
    specimen_overrides: dict | None = None,
) -> SimulatedPair:
    """Simulate one LR/HR acquisition pair of ``sample`` (a key of :data:`zoo.sim.samples.SAMPLE_TYPES`).

    ``size`` = (width, height) of both images; the LR covers twice the HR field. The result is
    deterministic per ``seed``. See the module docstring for the imaging model; ``preset`` and
    ``specimen_overrides`` as in :func:`simulate_signals`.
    """
    spec = apply_preset(sample_spec(sample), preset, **(specimen_overrides or {}))
    dose = _check_positive("electrons per pixel", electrons_per_pixel) or spec.electrons_per_pixel
    signals = simulate_signals(sample, seed=seed, size=size, probe_fwhm_nm=probe_fwhm_nm, beam_damage=beam_damage,
                               preset=preset, specimen_overrides=specimen_overrides)
    rngs = _streams(seed)
    detector = dict(gain_shape=spec.detector_gain_shape, read_noise=spec.read_noise)
    lr_counts = acquisition.detect(rngs["lr_noise"], signals.lr, dose, **detector)
    hr_counts = acquisition.detect(rngs["hr_noise"], signals.hr, dose, **detector)
    lr, lr_info = auto_brightness_contrast(rngs["lr_abc"], lr_counts, spec)
    hr, hr_info = auto_brightness_contrast(rngs["hr_abc"], hr_counts, spec)
    for info, signal, role in ((lr_info, signals.lr, "lr"), (hr_info, signals.hr, "hr")):
        info["mean_se_per_pixel"] = round(float(signal.mean()) * dose, 2)
        info["jitter_rms_px"] = round(signals.jitter_rms_px[role], 4)
    truth = {
        "name": name,
        "seed": int(seed),
        "transform": signals.transform,
        "particles": [],
        "gaps": [],
        "touching": [],
        "beam_damage": scan.beam_damage_records(signals.transform),
        "acquisition": {"lr": lr_info, "hr": hr_info},
    }
    if signals.specimen is not None:
        truth.update(_gold_truth(signals))
        truth["specimen"] = {
            "particles_in_lr_field": int(len(signals.specimen)),
            "particles_in_hr_field": len(truth["particles"]),
            "planted_gaps_in_hr_field": sum(g["planted"] for g in truth["gaps"]),
        }
        if preset is not None:
            truth["preset"] = preset
            if specimen_overrides:
                truth["specimen_overrides"] = dict(specimen_overrides)
    return SimulatedPair(
        lr=lr,
        hr=hr,
        lr_pixel_size_nm=spec.lr_pixel_size_nm,
        hr_pixel_size_nm=spec.hr_pixel_size_nm,
        truth=truth,
    )


__all__ = [
    "SIMULATOR",
    "SimulatedPair",
    "PairSignals",
    "simulate_pair",
    "simulate_signals",
    "probe_blur_layer",
    "auto_brightness_contrast",
]
