"""Physically plausible synthetic SEM image pairs with known ground truth.

No co-registered SEM pairs can be downloaded, so semzoo makes them the way de Haan et al.
(Sci. Rep. 9, 12050, 2019; Methods, "Sample preparation and imaging") acquired theirs: the
same specimen imaged at 10000x (LR, 14.2 nm pixels) over a field, then at 20000x (HR, 7.1 nm)
over its centre, with the same pixel count and dwell time. Each acquisition is simulated as
an SEM forms an image:

1. the specimen's secondary-electron (SE) yield, rendered on a fine grid by
   :mod:`zoo.data.specimens` (edge brightening, gold brighter than carbon);
2. blurred by a Gaussian probe (``probe_fwhm_nm``);
3. point-sampled at the scanned positions of the pixel centres, so the LR image is an
   *aliased* version of the HR one, as the paper says, not an area average; the scan
   positions carry the acquisition's geometry (scale, rotation, shift), a slow smooth drift,
   and per-line jitter (random + mains hum) of a fraction of a pixel;
4. shot noise: Poisson in the number of SEs for ``electrons_per_pixel`` primaries (the same
   dwell for LR and HR), with the detector's gain noise and a little read noise;
5. automatic brightness/contrast: mapped to uint16 with 0.1-0.5 % of the pixels saturated at
   each end, independently per image.

Between the two acquisitions the HR scan differs from the LR one by a small rotation
(< 1 deg), a scale error (< 1 %), a shift of a few LR pixels and each acquisition's own drift;
on hydrogel the beam also deforms the specimen locally (beam damage). The true mapping is
stored per pair (``truth["transform"]``) and evaluated by :func:`hr_to_lr_coords`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from zoo.data import acquisition, gold_on_carbon, specimens
from zoo.data.acquisition import hr_to_lr_coords, lr_to_hr_coords
from zoo.errors import UserError

SIMULATOR = "semzoo-simulate/1"
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


# ----------------------------------------------------------------------------------------------
# A pair
# ----------------------------------------------------------------------------------------------

# Independent random streams of a pair, so that switching one feature off (e.g. beam damage)
# leaves everything else bit-identical.
_STREAMS = ("geometry", "specimen", "texture", "lr_scan", "hr_scan", "damage", "lr_noise", "hr_noise", "lr_abc", "hr_abc")


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
) -> PairSignals:
    """Noise-free LR and HR signals of one pair (steps 1-3 of the module docstring).

    ``beam_damage=False`` leaves out the hydrogel's deformation between the acquisitions and
    changes nothing else.
    """
    spec = sample_spec(sample)
    width, height = check_size(size)
    probe = _check_positive("probe FWHM", probe_fwhm_nm) or spec.probe_fwhm_nm
    rngs = _streams(seed)
    transform = acquisition.random_transform(rngs["geometry"], spec, (width, height))
    blobs = acquisition.beam_damage(rngs["damage"], spec, transform)
    if beam_damage:
        transform["deformation"] = blobs
    lr_jitter = acquisition.line_jitter(rngs["lr_scan"], spec, height)
    hr_jitter = acquisition.line_jitter(rngs["hr_scan"], spec, height)
    lr_x, lr_y = acquisition.sample_positions(transform["lr"], lr_jitter)
    hr_x, hr_y = acquisition.sample_positions(transform["hr"], hr_jitter, transform["deformation"])

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
    blurred = [acquisition.probe_blur(layer, probe) for layer in layers]
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


def _r(v: float, digits: int) -> float:
    return round(float(v), digits)


def _gold_truth(signals: PairSignals) -> dict:
    """Particles whose centre lies in the HR field, with narrow gaps and contacts among them.
    Ids are positions in the ``particles`` list."""
    spec_obj: gold_on_carbon.GoldOnCarbon = signals.specimen
    t = signals.transform
    x_lr, y_lr = acquisition.specimen_to_scan(t["lr"], spec_obj.x_nm, spec_obj.y_nm)
    x_hr, y_hr = acquisition.specimen_to_scan(t["hr"], spec_obj.x_nm, spec_obj.y_nm)  # gold: no deformation
    width, height = t["hr"]["size"]
    inside = (x_hr >= -0.5) & (x_hr < width - 0.5) & (y_hr >= -0.5) & (y_hr < height - 0.5)
    keep = np.flatnonzero(inside)
    new_id = np.full(len(spec_obj), -1, dtype=np.int64)
    new_id[keep] = np.arange(keep.size)
    particles = [
        {
            "id": int(new_id[i]),
            "x_hr": _r(x_hr[i], 3),
            "y_hr": _r(y_hr[i], 3),
            "x_lr": _r(x_lr[i], 3),
            "y_lr": _r(y_lr[i], 3),
            "radius_nm": _r(spec_obj.radius_nm[i], 2),
        }
        for i in keep.tolist()
    ]
    gaps = [
        {"a": int(new_id[a]), "b": int(new_id[b]), "width_nm": _r(w, 2), "planted": bool(planted)}
        for (a, b), w, planted in zip(spec_obj.gaps.tolist(), spec_obj.gap_width_nm.tolist(), spec_obj.gap_planted.tolist())
        if inside[a] and inside[b]
    ]
    touching = [{"a": int(new_id[a]), "b": int(new_id[b])} for a, b in spec_obj.touching.tolist() if inside[a] and inside[b]]
    return {"particles": particles, "gaps": gaps, "touching": touching}


def _beam_damage_truth(transform: dict) -> list[dict]:
    hr = transform["hr"]
    out = []
    for b in transform["deformation"]:
        x, y = acquisition.specimen_to_scan(hr, b["x_nm"], b["y_nm"])
        peak = math.hypot(b["dx_nm"], b["dy_nm"]) + 0.6 * b["contraction"] * b["sigma_nm"]
        out.append(
            {
                "x_hr": _r(x, 2),
                "y_hr": _r(y, 2),
                "sigma_hr_px": _r(b["sigma_nm"] / hr["pixel_size_nm"], 2),
                "max_displacement_nm": _r(peak, 2),
            }
        )
    return out


def simulate_pair(
    sample: str,
    *,
    seed: int,
    size: Sequence[int] = (924, 780),
    name: str = "pair-000",
    probe_fwhm_nm: float | None = None,
    electrons_per_pixel: float | None = None,
    beam_damage: bool = True,
) -> SimulatedPair:
    """Simulate one LR/HR acquisition pair of ``sample`` (a key of :data:`SAMPLE_TYPES`).

    ``size`` = (width, height) of both images; the LR covers twice the HR field. The result is
    deterministic per ``seed``. See the module docstring for the imaging model.
    """
    spec = sample_spec(sample)
    dose = _check_positive("electrons per pixel", electrons_per_pixel) or spec.electrons_per_pixel
    signals = simulate_signals(sample, seed=seed, size=size, probe_fwhm_nm=probe_fwhm_nm, beam_damage=beam_damage)
    rngs = _streams(seed)
    lr, lr_info = acquisition.auto_brightness_contrast(rngs["lr_abc"], acquisition.detect(rngs["lr_noise"], signals.lr, dose, spec), spec)
    hr, hr_info = acquisition.auto_brightness_contrast(rngs["hr_abc"], acquisition.detect(rngs["hr_noise"], signals.hr, dose, spec), spec)
    for info, signal, role in ((lr_info, signals.lr, "lr"), (hr_info, signals.hr, "hr")):
        info["mean_se_per_pixel"] = _r(float(signal.mean()) * dose, 2)
        info["jitter_rms_px"] = _r(signals.jitter_rms_px[role], 4)
    truth = {
        "name": name,
        "seed": int(seed),
        "transform": signals.transform,
        "particles": [],
        "gaps": [],
        "touching": [],
        "beam_damage": _beam_damage_truth(signals.transform),
        "acquisition": {"lr": lr_info, "hr": hr_info},
    }
    if signals.specimen is not None:
        truth.update(_gold_truth(signals))
        truth["specimen"] = {
            "particles_in_lr_field": int(len(signals.specimen)),
            "particles_in_hr_field": len(truth["particles"]),
            "planted_gaps_in_hr_field": sum(g["planted"] for g in truth["gaps"]),
        }
    return SimulatedPair(
        lr=lr,
        hr=hr,
        lr_pixel_size_nm=spec.lr_pixel_size_nm,
        hr_pixel_size_nm=spec.hr_pixel_size_nm,
        truth=truth,
    )


# ----------------------------------------------------------------------------------------------
# A data set
# ----------------------------------------------------------------------------------------------


def preview_image(pair: SimulatedPair, crop_hr_px: int = 384) -> np.ndarray:
    """8-bit side-by-side of the same field: LR (pixels enlarged 2x, nearest) | HR."""
    height, width = pair.hr.shape
    c = int(min(crop_hr_px, width, height)) // 2 * 2
    x0, y0 = (width - c) // 2, (height - c) // 2
    hr = pair.hr[y0 : y0 + c, x0 : x0 + c]
    lx, ly = hr_to_lr_coords(pair.truth["transform"], x0 + (c - 1) / 2.0, y0 + (c - 1) / 2.0)
    h = c // 2
    lr_h, lr_w = pair.lr.shape
    lx0 = int(min(max(round(lx - (h - 1) / 2.0), 0), lr_w - h))
    ly0 = int(min(max(round(ly - (h - 1) / 2.0), 0), lr_h - h))
    lr = pair.lr[ly0 : ly0 + h, lx0 : lx0 + h]
    lr = cv2.resize(lr, (c, c), interpolation=cv2.INTER_NEAREST)

    def to8(img):
        lo, hi = np.percentile(img, [0.2, 99.8])
        return np.clip((img.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)

    gap = np.full((c, 6), 255, dtype=np.uint8)
    return np.hstack([to8(lr), gap, to8(hr)])


@contextlib.contextmanager
def _reuse_freed_memory():
    """Let glibc keep large freed blocks in the heap while a data set is simulated.

    Each pair allocates and frees a few arrays of hundreds of MB; by default glibc returns
    them to the kernel and the next pair faults every page back in, which on virtual machines
    costs as much as the simulation itself (measured: 5.4 s of system time for 4 pairs, 1.6 s
    with this). The defaults are restored and the heap trimmed afterwards. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        yield
        return
    m_trim, m_top_pad, m_mmap = -1, -2, -3  # glibc's mallopt parameter numbers
    changed = bool(mallopt(m_mmap, 1 << 30)) and bool(mallopt(m_trim, (1 << 31) - 1)) and bool(mallopt(m_top_pad, 256 << 20))
    try:
        yield
    finally:
        if changed:
            mallopt(m_mmap, 128 * 1024)  # glibc's defaults
            mallopt(m_trim, 128 * 1024)
            mallopt(m_top_pad, 128 * 1024)
            try:
                libc.malloc_trim(0)
            except AttributeError:
                pass


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_dataset_args(
    out_dir: str | os.PathLike,
    sample: str,
    *,
    pairs: int,
    seed: int,
    size: Sequence[int] = (924, 780),
    overwrite: bool = False,
    probe_fwhm_nm: float | None = None,
    electrons_per_pixel: float | None = None,
) -> dict:
    """Check :func:`simulate_dataset`'s arguments and the output folder without writing
    anything; UserError on the first problem. Returns the resolved plan."""
    spec = sample_spec(sample)
    width, height = check_size(size)
    if isinstance(pairs, bool) or not isinstance(pairs, (int, np.integer)) or pairs < 1:
        raise UserError(f"number of pairs must be at least 1, got {pairs!r}")
    if pairs > 100000:
        raise UserError(f"number of pairs {pairs} is too large (at most 100000)")
    probe = _check_positive("probe FWHM", probe_fwhm_nm) or spec.probe_fwhm_nm
    dose = _check_positive("electrons per pixel", electrons_per_pixel) or spec.electrons_per_pixel
    seeds = pair_seeds(seed, int(pairs))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    for sub in ("lr", "hr"):
        if (out / sub).exists() and not (out / sub).is_dir():
            raise UserError(f"{out / sub}: exists and is not a folder")
    names = [f"pair-{k:03d}" for k in range(int(pairs))]
    targets = [Path(sub) / f"{n}.tif" for n in names for sub in ("lr", "hr")] + [Path("preview.png"), Path("truth.json")]
    existing = [t for t in targets if (out / t).exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise UserError(f"{out / existing[0]}{more} already exist; pass --overwrite to replace them")
    return {
        "spec": spec,
        "size": (width, height),
        "probe_fwhm_nm": probe,
        "electrons_per_pixel": dose,
        "seeds": seeds,
        "out": out,
        "names": names,
        "targets": targets,
    }


def simulate_dataset(
    out_dir: str | os.PathLike,
    sample: str,
    *,
    pairs: int,
    seed: int,
    size: Sequence[int] = (924, 780),
    overwrite: bool = False,
    probe_fwhm_nm: float | None = None,
    electrons_per_pixel: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``pairs`` simulated pairs: OUT/lr/NAME.tif, OUT/hr/NAME.tif (uint16, pixel sizes
    in their metadata), OUT/truth.json and OUT/preview.png; names pair-000, pair-001, ...

    Every argument is checked and existing outputs are refused (unless ``overwrite``) before
    anything is written; the files are made in a hidden folder inside OUT and moved into place
    at the end, truth.json last, so an interrupted run leaves OUT as it was. Returns a summary.
    """
    from zoo.data.sem_tiff import write_sem

    plan = check_dataset_args(
        out_dir,
        sample,
        pairs=pairs,
        seed=seed,
        size=size,
        overwrite=overwrite,
        probe_fwhm_nm=probe_fwhm_nm,
        electrons_per_pixel=electrons_per_pixel,
    )
    spec, (width, height), probe, dose = plan["spec"], plan["size"], plan["probe_fwhm_nm"], plan["electrons_per_pixel"]
    out, names, targets, seeds = plan["out"], plan["names"], plan["targets"], plan["seeds"]
    started = time.perf_counter()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".simulate-", dir=out))
    done = False
    truth = {
        "simulator": SIMULATOR,
        "sample": spec.name,
        "description": spec.description,
        "seed": int(seed),
        "size": [width, height],
        "lr_pixel_size_nm": spec.lr_pixel_size_nm,
        "hr_pixel_size_nm": spec.hr_pixel_size_nm,
        "scale": spec.scale,
        "lr_magnification": spec.lr_magnification,
        "hr_magnification": spec.hr_magnification,
        "probe_fwhm_nm": probe,
        "electrons_per_pixel": dose,
        "specimen_grid_nm": spec.specimen_grid_nm,
        "conventions": (
            "pixel (row i, col j) has its centre at x=j, y=i; x_hr/y_hr are HR pixel coordinates, "
            "x_lr/y_lr LR pixel coordinates; gap width_nm is edge to edge along the line joining "
            "the centres; hr_to_lr_coords(transform, x_hr, y_hr) gives the true mapping"
        ),
        "pairs": {},
    }
    try:
        (work / "lr").mkdir()
        (work / "hr").mkdir()
        preview = None
        with _reuse_freed_memory():
            for k, (name, pair_seed) in enumerate(zip(names, seeds)):
                pair = simulate_pair(
                    spec.name, seed=pair_seed, size=(width, height), name=name, probe_fwhm_nm=probe, electrons_per_pixel=dose
                )
                for role, image, pixel in (("lr", pair.lr, pair.lr_pixel_size_nm), ("hr", pair.hr, pair.hr_pixel_size_nm)):
                    description = {
                        "simulated": True,
                        "simulator": SIMULATOR,
                        "sample": spec.name,
                        "pair": name,
                        "role": role,
                        "magnification": spec.lr_magnification if role == "lr" else spec.hr_magnification,
                        "seed": pair_seed,
                        "probe_fwhm_nm": probe,
                        "electrons_per_pixel": dose,
                    }
                    write_sem(work / role / f"{name}.tif", image, pixel, description)
                truth["pairs"][name] = pair.truth
                if preview is None:
                    preview = preview_image(pair)
                if progress is not None:
                    progress(k + 1, len(names))
        if not cv2.imwrite(str(work / "preview.png"), preview):
            raise OSError(f"could not write {work / 'preview.png'}")
        _write_json(work / "truth.json", truth)
        for sub in ("lr", "hr"):
            (out / sub).mkdir(exist_ok=True)
        for target in targets:  # truth.json is moved last: its presence means complete
            os.replace(work / target, out / target)
        done = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not done and created and not any(out.iterdir()):
            out.rmdir()
    seconds = time.perf_counter() - started
    return {
        "out": str(out),
        "sample": spec.name,
        "pairs": len(names),
        "size": [width, height],
        "lr_pixel_size_nm": spec.lr_pixel_size_nm,
        "hr_pixel_size_nm": spec.hr_pixel_size_nm,
        "seconds": seconds,
        "particles_in_hr_fields": sum(len(p["particles"]) for p in truth["pairs"].values()),
        "gaps_in_hr_fields": sum(len(p["gaps"]) for p in truth["pairs"].values()),
    }


__all__ = [
    "SAMPLE_TYPES",
    "SampleSpec",
    "SimulatedPair",
    "PairSignals",
    "simulate_pair",
    "simulate_signals",
    "simulate_dataset",
    "check_dataset_args",
    "hr_to_lr_coords",
    "lr_to_hr_coords",
    "parse_size",
    "pair_seeds",
]
