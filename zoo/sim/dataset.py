"""A simulated data set on disk: ``semzoo simulate``'s folder of LR/HR TIFF pairs with truth.

OUT/lr/NAME.tif and OUT/hr/NAME.tif (uint16, pixel sizes in their metadata), OUT/truth.json
(every pair's truth, :func:`zoo.sim.simulate.simulate_pair`) and OUT/preview.png, written
atomically. The pairs themselves are made by :mod:`zoo.sim.simulate`.
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
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from zoo.atomic import write_text_atomic
from zoo.errors import UserError
from zoo.sim.presets import apply_preset
from zoo.sim.samples import _check_positive, check_size, pair_seeds, sample_spec
from zoo.sim.scan import hr_to_lr_coords
from zoo.sim.simulate import SIMULATOR, SimulatedPair, simulate_pair


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
    with this; again for issue 17, `semzoo simulate --pairs 8` at 924x780 on 2 cores: 1.4-1.5 s
    system, 11.2-12.0 s wall with it, 5.1-5.9 s and 16.5-16.7 s without, for a peak RSS of
    724-758 MB against 680-695 MB). The defaults are restored and the heap trimmed afterwards.
    No-op off glibc.
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
    # dumps: json.dump's encoder is pure Python
    write_text_atomic(path, json.dumps(data, separators=(",", ":")) + "\n", suffix=".partial")


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
    preset: str | None = None,
) -> dict:
    """Check :func:`simulate_dataset`'s arguments and the output folder without writing
    anything; UserError on the first problem. Returns the resolved plan."""
    spec = apply_preset(sample_spec(sample), preset)
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
    preset: str | None = None,
    specimen_overrides: dict | None = None,
) -> dict:
    """Write ``pairs`` simulated pairs: OUT/lr/NAME.tif, OUT/hr/NAME.tif (uint16, pixel sizes
    in their metadata), OUT/truth.json and OUT/preview.png; names pair-000, pair-001, ...

    Every argument is checked and existing outputs are refused (unless ``overwrite``) before
    anything is written; the files are made in a hidden folder inside OUT and moved into place
    at the end, truth.json last, so an interrupted run leaves OUT as it was. ``preset`` names a
    specimen variant (:mod:`zoo.sim.presets`; None: today's sets, unchanged) and
    ``specimen_overrides`` changes its fields (experiments; recorded in truth.json). Returns a
    summary.
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
        preset=preset,
    )
    if specimen_overrides:
        apply_preset(plan["spec"], preset, **specimen_overrides)  # refuse bad fields before writing
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
    if preset is not None:
        truth["preset"] = preset
    if specimen_overrides:
        truth["specimen_overrides"] = dict(specimen_overrides)
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
                    preset=preset,
                    specimen_overrides=specimen_overrides,
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
                    if preset is not None:
                        description["preset"] = preset
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
