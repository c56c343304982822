"""Physically plausible synthetic SEM image pairs with known ground truth.

No co-registered SEM pairs can be downloaded, so semzoo makes them the way de Haan et al.
(Sci. Rep. 9, 12050, 2019; Methods, "Sample preparation and imaging") acquired theirs: the
same specimen imaged at 10000x (LR, 14.2 nm pixels) over a field, then at 20000x (HR, 7.1 nm)
over its centre, with the same pixel count and dwell time. Each acquisition is simulated as
an SEM forms an image:

1. the specimen's secondary-electron (SE) yield, rendered on a grid a few times finer than
   the HR pixel by :mod:`zoo.data.gold_on_carbon` or :mod:`zoo.data.specimens` (hydrogel):
   edge brightening, gold brighter than carbon;
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

Module map: :mod:`zoo.data.samples` (sample types, argument checks), :mod:`zoo.data.acquisition`
(steps 2-5 and the scan geometry), the specimen modules (step 1), and here the pair and the
data set on disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
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
from zoo.data.samples import (
    MAX_SIZE,
    MIN_SIZE,
    SAMPLE_TYPES,
    SampleSpec,
    _check_positive,
    _seed_sequence,
    check_size,
    pair_seeds,
    parse_size,
    sample_spec,
)
from zoo.errors import UserError

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


def _gold_truth(signals: PairSignals) -> dict:
    """Particles whose centre lies in the HR field, with their narrow gaps and contacts."""
    t = signals.transform
    spec_obj = signals.specimen
    x_lr, y_lr = acquisition.specimen_to_scan(t["lr"], spec_obj.x_nm, spec_obj.y_nm)
    x_hr, y_hr = acquisition.specimen_to_scan(t["hr"], spec_obj.x_nm, spec_obj.y_nm)  # gold: no deformation
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
) -> SimulatedPair:
    """Simulate one LR/HR acquisition pair of ``sample`` (a key of :data:`SAMPLE_TYPES`).

    ``size`` = (width, height) of both images; the LR covers twice the HR field. The result is
    deterministic per ``seed``. See the module docstring for the imaging model.
    """
    spec = sample_spec(sample)
    dose = _check_positive("electrons per pixel", electrons_per_pixel) or spec.electrons_per_pixel
    signals = simulate_signals(sample, seed=seed, size=size, probe_fwhm_nm=probe_fwhm_nm, beam_damage=beam_damage)
    rngs = _streams(seed)
    lr_counts = acquisition.detect(rngs["lr_noise"], signals.lr, dose, spec)
    hr_counts = acquisition.detect(rngs["hr_noise"], signals.hr, dose, spec)
    lr, lr_info = acquisition.auto_brightness_contrast(rngs["lr_abc"], lr_counts, spec)
    hr, hr_info = acquisition.auto_brightness_contrast(rngs["hr_abc"], hr_counts, spec)
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
        "beam_damage": acquisition.beam_damage_records(signals.transform),
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
    changed = all(mallopt(*o) for o in ((m_mmap, 1 << 30), (m_trim, (1 << 31) - 1), (m_top_pad, 256 << 20)))
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
        fh.write(json.dumps(data, separators=(",", ":")))  # dumps: json.dump's encoder is pure Python
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
    targets = [Path(sub) / f"{n}.tif" for n in names for sub in ("lr", "hr")]
    targets += [Path("preview.png"), Path("truth.json")]
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
                    spec.name,
                    seed=pair_seed,
                    size=(width, height),
                    name=name,
                    probe_fwhm_nm=probe,
                    electrons_per_pixel=dose,
                )
                images = (("lr", pair.lr, pair.lr_pixel_size_nm), ("hr", pair.hr, pair.hr_pixel_size_nm))
                for role, image, pixel in images:
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
    "check_size",
    "sample_spec",
    "MIN_SIZE",
    "MAX_SIZE",
    "pair_seeds",
]
