"""HR-only data: ``semzoo prepare RAW`` where RAW holds only ``hr/`` (real micrographs).

No lower-magnification record of the same field exists, so the LR side is made: each HR image
is recorded by the acquisition model (:func:`zoo.sim.acquisition.acquire`) with scan
parameters drawn from :data:`zoo.sim.acquisition.TRAINING_RANGES` (the exact every-second-pixel
stepping scan among them). The geometry is known, so nothing is registered: the target is the
HR resampled (Lanczos-4) onto the grid on which the served model's Lanczos x2 puts the record,
i.e. registered pixel ``k`` is HR coordinate ``phase + k - 0.5`` (OpenCV's x2 resize puts LR
pixel ``i`` at output ``2 i + 0.5``).

Noise. Recorded from the HR itself, the input would share the target's noise (exactly, at
the sampled pixels of the stepping scan) and a network learns to copy it. By default the HR's
noise is split first (:func:`zoo.sim.acquisition.split_noise`, alpha 0.5): the record is made
from ``hr + alpha z``, the target is ``hr - z / alpha``, uncorrelated in their noise.
``noise_split=False`` keeps the shared noise (for the ablation in docs/experiments.md).
``line_noise=True`` (``semzoo prepare --line-noise``) adds scan-line noise to half the HR
fields first (:func:`zoo.sim.acquisition.line_noise`, ranges in ``TRAINING_RANGES``): streaks
correlated along x that real micrographs have and many training images lack.

Several records per image (``records_per_image``, each with its own scan draw and noise split)
multiply a small real set; they share their image's train/val split, so no val image ever
contributes a train patch. Pixel sizes may differ between the images (a ``general`` set spans
magnifications); the manifest keeps each record's and their range. ``RAW/sources.json``, when
present (a list of objects, e.g. ``{"images": "...", "source": "...", "licence": "MIT"}``), is
carried into the manifest and from there into the model card: credits for real images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from zoo.atomic import atomic_dir
from zoo.data import patches as P
from zoo.data.register import SCALE, lanczos_upsample2x
from zoo.errors import UserError
from zoo.sim import acquisition as acq

DEFAULT_NOISE_ALPHA = 0.5


def hr_images(raw: Path) -> list[Path]:
    """The TIFF files of RAW/hr, sorted."""
    from zoo.data.prepare import TIFF_SUFFIXES

    folder = raw / "hr"
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith("."))


def read_sources(raw: Path) -> list[dict]:
    """RAW/sources.json (credits of the images), checked; [] when absent."""
    import json

    path = raw / "sources.json"
    if not path.is_file():
        return []
    try:
        sources = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise UserError(f"{path}: expected a JSON list of objects (one per image source)")
    return sources


def read_hr(path: Path, pixel_size_nm: float | None, patch_size: int):
    """One HR image with its pixel size; UserError without a pixel size or smaller than a patch."""
    from zoo.data.sem_tiff import read_sem

    sem = read_sem(path, pixel_size_nm)
    if sem.pixel_size_nm is None:
        raise UserError(f"{path}: no pixel size in its metadata; pass --pixel-size NM (of the HR images)")
    h, w = sem.image.shape
    if min(h, w) < patch_size:
        raise UserError(f"{path}: {w}x{h} px is smaller than one {patch_size}-px training patch")
    return sem


def make_record(hr: np.ndarray, rng: np.random.Generator, *, scale: int = SCALE, noise_split: bool = True,
                alpha: float = DEFAULT_NOISE_ALPHA, params: acq.ScanParams | None = None,
                line_noise: bool = False):
    """(record, target on the registered grid, valid mask, params, info) for one HR image.

    The record is ``hr.shape // scale``; the target ``scale`` times that, Lanczos-resampled
    from the (noise-split) HR at the record's phase, valid where it maps inside the HR.
    ``line_noise``: first add scan-line noise drawn by :func:`zoo.sim.acquisition.draw_line_noise`
    to the HR field (input and target then share it, as a record shares the lines it sampled).
    """
    img = np.asarray(hr, dtype=np.float32)
    sigma = acq.estimate_noise_sigma(img)
    params = params or acq.draw_scan_params(rng, scale)
    streaks = acq.draw_line_noise(rng) if line_noise else None
    if streaks is not None and sigma > 0:
        img = acq.line_noise(img, rng, streaks[0] * sigma, streaks[1])
    if noise_split and sigma > 0:
        for_input, for_target = acq.split_noise(img, rng, alpha=alpha, noise_sigma=sigma)
        input_sigma = sigma * float(np.sqrt(1 + alpha**2))
    else:
        for_input = for_target = img
        input_sigma = sigma
    record = acq.acquire(for_input, params, rng, noise_sigma=input_sigma)
    h, w = record.shape
    # Registered pixel k <-> record coordinate (k + 0.5) / scale - 0.5 <-> HR phase + k + 0.5 - scale / 2.
    offset = 0.5 - scale / 2.0
    gx = np.arange(scale * w, dtype=np.float32) + np.float32(params.phase_x + offset)
    gy = np.arange(scale * h, dtype=np.float32) + np.float32(params.phase_y + offset)
    mx, my = np.meshgrid(gx, gy)
    target = cv2.remap(for_target, mx, my, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
    # Lanczos-4 reads 3-4 pixels either side: outside [0, size - 1] minus that margin, no data.
    margin = 0.0 if float(params.phase_x + offset).is_integer() and float(params.phase_y + offset).is_integer() else 3.0
    valid = ((mx >= margin) & (mx <= img.shape[1] - 1 - margin)
             & (my >= margin) & (my <= img.shape[0] - 1 - margin))
    info = {"scan": params.as_dict(), "hr_noise_sigma": round(sigma, 6),
            "noise_split_alpha": alpha if noise_split else None}
    if line_noise:
        info["line_noise"] = (None if streaks is None or sigma <= 0 else
                              {"rms_sigma": round(streaks[0], 4), "length_px": round(streaks[1], 2)})
    return record, target.astype(np.float32), valid, params, info


def prepare_hr_only(
    raw: Path, out_dir: Path, *, patch_size: int, stride: int, val_fraction: float,
    min_patch_correlation: float, hr_pixel_size_nm: float | None, sample_type: str | None, seed: int,
    progress: Callable[[int, int], None] | None = None, records_per_image: int = 1,
    noise_split: bool = True, alpha: float = DEFAULT_NOISE_ALPHA, line_noise: bool = False,
):
    """Record, cut and write an HR-only RAW into DATA (see the module docstring)."""
    from zoo.data.prepare import PrepareResult, finish_manifest
    from zoo.data.sem_tiff import write_sem

    if records_per_image < 1:
        raise UserError(f"--records-per-image must be >= 1, got {records_per_image}")
    files = hr_images(raw)
    if not files:
        raise UserError(f"{raw}/hr: no TIFF images")
    images = [(p, read_hr(p, hr_pixel_size_nm, patch_size)) for p in files]  # refuse before writing
    sources = read_sources(raw)
    with atomic_dir(out_dir, prefix=f".{out_dir.name}.partial-") as tmp:
        for sub in ("registered/lr", "registered/lr-native", "registered/hr", P.SHARD_DIR):
            (tmp / sub).mkdir(parents=True)
        records = []
        total = len(images) * records_per_image
        for i, (path, sem) in enumerate(images):
            for r in range(records_per_image):
                name = path.stem if records_per_image == 1 else f"{path.stem}-r{r}"
                rng = np.random.default_rng([seed, i, r])
                record, target, valid, params, info = make_record(
                    sem.image, rng, noise_split=noise_split, alpha=alpha, line_noise=line_noise)
                up = lanczos_upsample2x(record)
                cut = P.cut_patches(record, target, valid, patch_size=patch_size, stride=stride,
                                    min_correlation=min_patch_correlation, lr_upsampled=up)
                lr_size = sem.pixel_size_nm * SCALE
                meta = {"step": "semzoo prepare (HR-only)", "hr_source": str(path), **info}
                write_sem(tmp / "registered" / "lr-native" / f"{name}.tif", record, lr_size,
                          {**meta, "content": "record made by the acquisition model (network input)"})
                write_sem(tmp / "registered" / "lr" / f"{name}.tif", up, sem.pixel_size_nm,
                          {**meta, "content": "record, Lanczos x2 onto the registered grid"})
                write_sem(tmp / "registered" / "hr" / f"{name}.tif", np.where(valid, target, 0).astype(np.float32),
                          sem.pixel_size_nm, {**meta, "content": "HR target on the registered grid; 0 = no data"})
                shard = f"{P.SHARD_DIR}/{name}.tfrecord"
                records.append({
                    "name": name, "split": None, "split_group": path.stem,
                    "lr_file": None, "hr_file": str(path.resolve()),
                    "lr_pixel_size_nm": lr_size, "hr_pixel_size_nm": sem.pixel_size_nm,
                    "hr_pixel_size_source": sem.pixel_size_source,
                    **info,
                    "patches_kept": cut.kept, "patches_dropped": cut.dropped,
                    "dropped_invalid": cut.dropped_invalid, "dropped_correlation": cut.dropped_correlation,
                    "shard": shard, "shard_sha256": P.write_shard(tmp / shard, cut),
                })
                if progress:
                    progress(i * records_per_image + r + 1, total)
        sizes = [rec["lr_pixel_size_nm"] for rec in records]
        manifest = finish_manifest(
            tmp, raw, records, [], [], sample=sample_type, simulated=False,
            lr_pixel_size_nm=float(np.exp(np.mean(np.log(sizes)))), patch_size=patch_size, stride=stride,
            val_fraction=val_fraction, seed=seed,
            extra={"hr_only": True, "lr_pixel_size_range_nm": [min(sizes), max(sizes)],
                   "acquisition_model": "zoo.sim.acquisition", "training_ranges": acq.TRAINING_RANGES,
                   "noise_split": noise_split, "noise_split_alpha": alpha if noise_split else None,
                   "line_noise": line_noise, "records_per_image": records_per_image, "min_patch_correlation": min_patch_correlation,
                   "sources": sources},
            no_patch_hint=f"--min-patch-correlation {min_patch_correlation}")
    return PrepareResult(out_dir=out_dir, manifest=manifest)
