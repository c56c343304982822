"""``semzoo prepare``'s work: raw LR/HR pairs -> registered pairs, patch shards and a manifest.

For each pair matched by file name in RAW/lr and RAW/hr: read both with their pixel sizes,
register them (:func:`zoo.data.register.register_pair`, paper Methods), write the registered
images for inspection, cut and filter normalised patches (:mod:`zoo.data.patches`) into one
TFRecord shard per pair, then split the pairs into train/val (by pair, so no val pair ever
contributes a train patch) and write ``manifest.json``. Everything is built in a hidden
temporary directory beside DATA and renamed into place, so DATA is complete or absent.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from zoo.atomic import atomic_dir
from zoo.data import patches as P
from zoo.data.register import (
    DEFAULT_MIN_CORRELATION,
    SCALE,
    Registration,
    RegistrationError,
    check_pixel_sizes,
    register_pair,
)
from zoo.errors import UserError
from zoo.sim.truth import read_truth

TIFF_SUFFIXES = (".tif", ".tiff")
# LR pixel sizes of the pairs in one data set may differ by calibration noise, not magnification.
PIXEL_SIZE_AGREEMENT = 0.02


@dataclass
class PrepareResult:
    """What prepare did: the manifest it wrote, pairs that failed, warnings for the user."""

    out_dir: Path
    manifest: dict
    failed: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def match_pairs(raw_dir: str | os.PathLike) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """Pairs (name, lr_path, hr_path) matched by file stem in RAW/lr and RAW/hr; the unmatched."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise UserError(f"{raw}: no such directory")
    found = {}
    for side in ("lr", "hr"):
        folder = raw / side
        if not folder.is_dir():
            raise UserError(f"{raw}: expected sub-directories lr/ and hr/ with the image pairs "
                            f"(missing {side}/)")
        found[side] = {p.stem: p for p in sorted(folder.iterdir())
                       if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".")}
    names = sorted(set(found["lr"]) & set(found["hr"]))
    unmatched = sorted([found["lr"][n] for n in set(found["lr"]) - set(names)]
                       + [found["hr"][n] for n in set(found["hr"]) - set(names)])
    return [(n, found["lr"][n], found["hr"][n]) for n in names], unmatched


def is_hr_only(raw_dir: str | os.PathLike) -> bool:
    """True for a RAW folder that holds ``hr/`` and no ``lr/`` (an HR-only set)."""
    raw = Path(raw_dir)
    return (raw / "hr").is_dir() and not (raw / "lr").exists()


def _check_out_dir(out_dir: Path, raw: Path, overwrite: bool) -> None:
    out_abs, raw_abs = out_dir.resolve(), raw.resolve()
    if out_abs == raw_abs or out_abs in raw_abs.parents:
        raise UserError(f"{out_dir}: the output must not be the raw folder or contain it")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UserError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise UserError(f"{out_dir}: already exists and is not empty; pass --overwrite to replace it")
            if not (out_dir / P.MANIFEST_NAME).is_file():
                # --overwrite replaces an earlier data set, never an arbitrary folder (a typo).
                raise UserError(f"{out_dir}: not a semzoo data set (no {P.MANIFEST_NAME}); "
                                "refusing to replace it even with --overwrite")
    if not out_dir.parent.is_dir():
        raise UserError(f"{out_dir.parent}: no such directory")


def _to_8bit(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image[mask], [1, 99]) if mask.any() else (0.0, 1.0)
    return np.clip((image - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)


def write_overlay(path: Path, reg: Registration) -> None:
    """Red = LR (Lanczos x2), green = registered HR: aligned structures look yellow."""
    red = _to_8bit(reg.lr_upsampled, reg.valid_mask)
    green = _to_8bit(reg.hr_registered, reg.valid_mask)
    green[~reg.valid_mask] = 0
    if not cv2.imwrite(str(path), np.dstack([np.zeros_like(red), green, red])):  # OpenCV is BGR
        raise OSError(f"could not write {path}")


def _registered_truth(truth: dict, pairs: dict[str, dict], registered_pixel_size_nm: float) -> dict:
    """truth.json on the registered grids: ``truth``'s fields with ``pairs``, each already
    mapped by :func:`_registered_pair`."""
    out = {k: v for k, v in truth.items() if k != "pairs"}
    out["hr_pixel_size_nm"] = registered_pixel_size_nm
    out["source_hr_pixel_size_nm"] = truth.get("hr_pixel_size_nm")
    out["registered"] = True
    out["pairs"] = dict(pairs)
    return out


def _registered_pair(pair: dict, origin: tuple[int, int], shape: tuple[int, int]) -> dict:
    """One truth pair on its registered grid (LR crop origin ``origin`` = (x0, y0), grid
    ``shape`` = (h, w)): x_hr/y_hr become registered-grid coordinates (through the *true* HR->LR
    transform, so no registration error leaks into the truth), x_lr/y_lr coordinates in the
    native LR crop; particles outside the grid are dropped and the rest renumbered (gaps and
    contacts follow)."""
    try:
        from zoo.sim.scan import hr_to_lr_coords
    except ImportError:  # pragma: no cover - the simulator ships with semzoo
        hr_to_lr_coords = None
    (x0, y0), (h, w) = origin, shape
    particles = pair.get("particles", [])
    if particles and hr_to_lr_coords is not None and "transform" in pair:
        x_lr, y_lr = hr_to_lr_coords(pair["transform"], np.array([p["x_hr"] for p in particles], float),
                                     np.array([p["y_hr"] for p in particles], float))
    else:
        x_lr = np.array([p["x_lr"] for p in particles], float)
        y_lr = np.array([p["y_lr"] for p in particles], float)
    # Registered-grid pixel u sits at LR-crop coordinate (u + 0.5) / 2 - 0.5.
    u = SCALE * (x_lr - x0 + 0.5) - 0.5
    v = SCALE * (y_lr - y0 + 0.5) - 0.5
    # Ids are renumbered to positions in the kept list (as the simulator numbers them);
    # "source_id" keeps the original.
    kept, new_id = [], {}
    for p, ui, vi, xl, yl in zip(particles, np.atleast_1d(u), np.atleast_1d(v),
                                 np.atleast_1d(x_lr), np.atleast_1d(y_lr)):
        if 0 <= ui <= w - 1 and 0 <= vi <= h - 1:
            new_id[p["id"]] = len(kept)
            kept.append({**p, "id": len(kept), "source_id": p["id"],
                         "x_hr": round(float(ui), 3), "y_hr": round(float(vi), 3),
                         "x_lr": round(float(xl - x0), 3), "y_lr": round(float(yl - y0), 3)})

    def renumber(links):
        return [{**g, "a": new_id[g["a"]], "b": new_id[g["b"]]} for g in links
                if g["a"] in new_id and g["b"] in new_id]

    return {
        **{k: v for k, v in pair.items() if k not in ("particles", "gaps", "touching", "transform")},
        "source_transform": pair.get("transform"),
        "registered_grid": {"crop_origin_lr": [x0, y0], "width": w, "height": h,
                            "lr_crop_coordinate": "(u + 0.5) / 2 - 0.5"},
        "particles": kept,
        "gaps": renumber(pair.get("gaps", [])),
        "touching": renumber(pair.get("touching", [])),
    }


def _focus_patches(pair: dict | None, reg: Registration, cut: P.PatchSet, patch_size: int) -> float | None:
    """Give ``cut`` the gap/contact masks of the registered truth ``pair`` (:mod:`zoo.data.focus`);
    return the share of its patch pixels marked (either band), or None without a truth pair."""
    if pair is None:
        return None
    from zoo.data.focus import cut_focus, focus_map

    mask = focus_map(pair, reg.hr_registered.shape, reg.registered_pixel_size_nm)
    cut.focus = cut_focus(mask, cut.positions, patch_size)
    return float((cut.focus > 0).mean()) if cut.kept else 0.0


def _focus_manifest(records: list[dict]) -> dict:
    """The manifest's ``focus`` entry: present when every pair's shard holds the masks."""
    if not records or any("focus_fraction" not in r for r in records):
        return {}
    from zoo.data import focus as F

    kept = sum(r["patches_kept"] for r in records)
    share = sum(r["focus_fraction"] * r["patches_kept"] for r in records) / max(kept, 1)
    return {"focus": {"source": "truth.json", "max_gap_nm": F.DEFAULT_MAX_GAP_NM,
                      "band_width_fraction": F.BAND_WIDTH_FRACTION, "fraction": round(share, 5),
                      "meaning": f"{F.GAP} = the band between two adjacent particles whose gap is at "
                                 f"most max_gap_nm, {F.CONTACT} = the band across a contact, 0 = "
                                 "elsewhere (zoo.data.focus); fraction = share of patch pixels in a band"}}


def _read_pair(lr_path: Path, hr_path: Path, lr_override, hr_override):
    from zoo.data.sem_tiff import read_sem

    lr, hr = read_sem(lr_path, lr_override), read_sem(hr_path, hr_override)
    if lr.pixel_size_nm is None:
        raise UserError(f"{lr_path}: no pixel size in its metadata; pass --pixel-size NM (LR)")
    if hr.pixel_size_nm is None:
        raise UserError(f"{hr_path}: no pixel size in its metadata; pass --hr-pixel-size NM")
    return lr, hr


def _split(names: list[str], val_fraction: float, seed: int) -> set[str]:
    if len(names) < 2 or val_fraction == 0:
        return set()
    n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    order = np.random.default_rng(seed).permutation(len(names))
    return {sorted(names)[i] for i in order[:n_val]}


def prepare_dataset(
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    patch_size: int = P.PATCH_SIZE,
    stride: int | None = None,
    val_fraction: float = 0.1,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    min_patch_correlation: float = P.DEFAULT_MIN_PATCH_CORRELATION,
    lr_pixel_size_nm: float | None = None,
    hr_pixel_size_nm: float | None = None,
    sample_type: str | None = None,
    overwrite: bool = False,
    seed: int = 0,
    overlays: int = 2,
    progress: Callable[[int, int], None] | None = None,
    hr_only: dict | None = None,
) -> PrepareResult:
    """Register every pair of RAW, cut patches, write DATA (see the module docstring).

    A RAW with ``hr/`` and no ``lr/`` is an HR-only set: :func:`zoo.data.hr_only.prepare_hr_only`
    makes the LR side with the acquisition model (``lr_pixel_size_nm`` is ignored there;
    ``hr_pixel_size_nm`` overrides the files' pixel size) and ``hr_only`` passes its options.
    """
    raw, out_dir = Path(raw_dir), Path(out_dir)
    stride = P.check_patch_geometry(patch_size, stride)
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    _check_out_dir(out_dir, raw, overwrite)
    if is_hr_only(raw):
        from zoo.data.hr_only import prepare_hr_only

        return prepare_hr_only(raw, out_dir, patch_size=patch_size, stride=stride, val_fraction=val_fraction,
                               min_patch_correlation=min_patch_correlation,
                               hr_pixel_size_nm=hr_pixel_size_nm if hr_pixel_size_nm else lr_pixel_size_nm,
                               sample_type=sample_type, seed=seed, progress=progress, **(hr_only or {}))
    pairs, unmatched = match_pairs(raw)
    if not pairs:
        raise UserError(f"{raw}: no image pairs (TIFFs with the same name in lr/ and hr/)")
    warnings = [f"no partner for {p} (pairs are matched by file name)" for p in unmatched]
    truth = None
    if (raw / "truth.json").is_file():
        truth = read_truth(raw / "truth.json")
        if sample_type and truth.get("sample") and sample_type != truth["sample"]:
            warnings.append(f"--sample-type {sample_type} overrides truth.json's {truth['sample']}")
    sample = sample_type or (truth or {}).get("sample")

    with atomic_dir(out_dir, prefix=f".{out_dir.name}.partial-") as tmp:
        for sub in ("registered/lr", "registered/lr-native", "registered/hr", P.SHARD_DIR):
            (tmp / sub).mkdir(parents=True)
        records, failed, registered = [], [], {}
        reference_size = None
        for i, (name, lr_path, hr_path) in enumerate(pairs):
            lr, hr = _read_pair(lr_path, hr_path, lr_pixel_size_nm, hr_pixel_size_nm)
            check_pixel_sizes(lr.pixel_size_nm, hr.pixel_size_nm, name)
            if reference_size is None:
                reference_size = lr.pixel_size_nm
            elif abs(lr.pixel_size_nm / reference_size - 1) > PIXEL_SIZE_AGREEMENT:
                raise UserError(f"{lr_path}: LR pixel size {lr.pixel_size_nm:g} nm differs from "
                                f"{reference_size:g} nm of the first pair; one data set is one magnification")
            try:
                reg = register_pair(lr.image, hr.image, lr.pixel_size_nm, hr.pixel_size_nm,
                                    min_correlation=min_correlation, name=name)
            except RegistrationError as exc:
                failed.append({"name": name, "lr_file": str(lr_path), "hr_file": str(hr_path),
                               "reason": str(exc)})
                if progress:
                    progress(i + 1, len(pairs))
                continue
            _write_registered(tmp, name, reg, lr_path, hr_path, lr.image.dtype)
            if len(records) < overlays:
                write_overlay(tmp / "registered" / f"overlay-{name}.png", reg)
            cut = P.cut_patches(reg.lr_crop, reg.hr_registered, reg.valid_mask, patch_size=patch_size,
                                stride=stride, min_correlation=min_patch_correlation,
                                lr_upsampled=reg.lr_upsampled)
            source = (truth or {}).get("pairs", {}).get(name)
            if source is not None:
                registered[name] = _registered_pair(source, reg.crop_origin, reg.hr_registered.shape)
            focus = _focus_patches(registered.get(name), reg, cut, patch_size)
            shard = f"{P.SHARD_DIR}/{name}.tfrecord"
            records.append({
                "name": name, "split": None,
                "lr_file": str(lr_path.resolve()), "hr_file": str(hr_path.resolve()),
                "lr_pixel_size_nm": lr.pixel_size_nm, "hr_pixel_size_nm": hr.pixel_size_nm,
                **reg.summary(),
                "patches_kept": cut.kept, "patches_dropped": cut.dropped,
                "dropped_invalid": cut.dropped_invalid, "dropped_correlation": cut.dropped_correlation,
                **({} if focus is None else {"focus_fraction": round(focus, 5)}),
                "shard": shard, "shard_sha256": P.write_shard(tmp / shard, cut),
            })
            if progress:
                progress(i + 1, len(pairs))
        if not records:
            reasons = "; ".join(f["reason"] for f in failed[:3])
            raise UserError(f"none of the {len(pairs)} pairs could be registered ({reasons})")
        if truth is not None:
            (tmp / "registered" / "truth.json").write_text(
                json.dumps(_registered_truth(truth, registered, reference_size / SCALE), indent=1) + "\n")
        manifest = finish_manifest(
            tmp, raw, records, failed, unmatched, sample=sample, simulated=truth is not None,
            lr_pixel_size_nm=reference_size, patch_size=patch_size, stride=stride,
            val_fraction=val_fraction, seed=seed,
            extra={"min_correlation": min_correlation, "min_patch_correlation": min_patch_correlation,
                   **_focus_manifest(records)},
            no_patch_hint=f"--min-patch-correlation {min_patch_correlation}")
    return PrepareResult(out_dir=out_dir, manifest=manifest, failed=failed, warnings=warnings)


def finish_manifest(tmp: Path, raw: Path, records: list[dict], failed: list[dict], unmatched: list[Path], *,
                    sample: str | None, simulated: bool, lr_pixel_size_nm: float, patch_size: int,
                    stride: int, val_fraction: float, seed: int, extra: dict, no_patch_hint: str) -> dict:
    """Split the pairs into train/val (by pair), write ``manifest.json`` into ``tmp``; return it."""
    import zoo

    # Records of one source image (HR-only: several acquisitions of it) share their split.
    groups = sorted({r.get("split_group", r["name"]) for r in records if r["patches_kept"] > 0})
    val = _split(groups, val_fraction, seed)
    for r in records:
        r["split"] = "val" if r.get("split_group", r["name"]) in val else "train"
    if not any(r["split"] == "train" and r["patches_kept"] for r in records):
        raise UserError(f"{raw}: no patch passed the filters ({no_patch_hint}); nothing to train on")
    manifest = {
        "format": P.MANIFEST_FORMAT,
        "semzoo_version": zoo.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "raw_dir": str(raw.resolve()),
        "sample_type": sample,
        "simulated": simulated,
        "lr_pixel_size_nm": lr_pixel_size_nm,
        "hr_pixel_size_nm": lr_pixel_size_nm / SCALE,
        "scale": SCALE,
        "patch_size": patch_size,
        "lr_patch_size": patch_size // SCALE,
        "stride": stride,
        "normalisation": "per-image mean/std",
        **extra,
        "val_fraction": val_fraction,
        "seed": seed,
        "shard_format": "TFRecord of tf.train.Example: lr, hr = raw little-endian float32 "
                        "(p/2 x p/2, p x p), x, y (int64, registered grid), correlation (float); focus = "
                        "uint8 p x p gap/contact mask when the manifest has 'focus'",
        "pairs": records,
        "failed": failed,
        "unmatched": [str(p) for p in unmatched],
        "patches": {
            "train": sum(r["patches_kept"] for r in records if r["split"] == "train"),
            "val": sum(r["patches_kept"] for r in records if r["split"] == "val"),
            "dropped": sum(r["patches_dropped"] for r in records),
        },
        "dataset_hash": P.dataset_hash(records),
    }
    P.write_manifest(tmp, manifest)
    return manifest


def _write_registered(tmp: Path, name: str, reg: Registration, lr_path: Path, hr_path: Path,
                      lr_dtype: np.dtype) -> None:
    from zoo.data.sem_tiff import write_sem

    info = {"step": "semzoo prepare", "pair": name, "lr_source": str(lr_path), "hr_source": str(hr_path),
            "crop_origin_lr": list(reg.crop_origin), "correlation": round(reg.correlation_after, 4)}
    base = tmp / "registered"
    write_sem(base / "lr" / f"{name}.tif", reg.lr_upsampled, reg.registered_pixel_size_nm,
              {**info, "content": "LR crop, Lanczos x2 onto the registered grid"})
    # The native crop keeps the source's pixel type: it is what a user would feed to `enhance`.
    native = reg.lr_crop.astype(lr_dtype) if lr_dtype in (np.uint8, np.uint16) else reg.lr_crop
    write_sem(base / "lr-native" / f"{name}.tif", native, reg.lr_pixel_size_nm,
              {**info, "content": "native LR crop covering the HR field (network input)"})
    write_sem(base / "hr" / f"{name}.tif", reg.hr_registered, reg.registered_pixel_size_nm,
              {**info, "content": "HR resampled onto the registered grid (Lanczos-4); 0 = no HR data"})
