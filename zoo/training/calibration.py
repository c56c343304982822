"""A fine-tune's calibration set: checks, hash, registration, held-out folds, augmentation.

de Haan et al., Sci. Rep. 9, 12050 (2019), Discussion: a network trained on one sample adapts to
a new one by transfer learning on a few calibration images. CALIB holds 1-10 LR/HR pairs in
CALIB/lr and CALIB/hr (matched by name, as for ``semzoo prepare``). They go through exactly the
``prepare`` pipeline (:func:`zoo.data.prepare.prepare_dataset`: registration, normalisation,
patch filtering, TFRecord shards), with overlapping patches (stride = half a patch), so the
few images give as many distinct training views as possible.

Held-out data (:func:`folds`): with 4 or more pairs one pair is held out; with 2-3 pairs every
pair is held out once (leave-one-out); with a single pair the last quarter of its registered
grid (at least one patch, along the longer axis) is held out and the rest trains. Each fold is
a small data directory in the ``prepare`` format whose manifest marks the held-out pair(s)
``val`` and points at the shared shards, so :func:`zoo.data.patches.training_dataset` reads it.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.data import patches as P
from zoo.errors import UserError
from zoo.sim.truth import read_truth

MAX_PAIRS = 10
LEAVE_ONE_OUT_MAX_PAIRS = 3
# The LR pixel size may differ from the parent's (a new sample at another magnification is the
# point of transfer learning), but is worth a warning beyond calibration noise.
PIXEL_SIZE_AGREEMENT = 0.02
# Shared gain/offset jitter (normalised units) applied to LR and HR patches alike.
JITTER_GAIN = 0.1
JITTER_OFFSET = 0.1


@dataclass
class CalibrationPair:
    """One held-out image for evaluation: native LR crop, registered HR, truth (or None)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    pixel_size_nm: float
    truth: dict | None = None


@dataclass
class Fold:
    """A training/validation split of the calibration set, as a ``prepare``-format directory."""

    name: str
    data_dir: Path
    train: list[str]
    held_out: list[str]
    evaluation: list[CalibrationPair] = field(default_factory=list)
    val_patches: int = 0


HR_ONLY_RECORDS = 4  # acquisitions per HR-only calibration image


def calibration_hash(pairs: list[tuple[str, Path, Path]], lr_override: float | None,
                     hr_override: float | None) -> str:
    """sha256 over every pair's name and the sha256 of its two files (and pixel-size overrides)."""
    digest = hashlib.sha256()
    for name, lr, hr in sorted(pairs):
        lr_hash = P.file_sha256(lr) if lr is not None else "hr-only"
        digest.update(f"{name}\0{lr_hash}\0{P.file_sha256(hr)}\n".encode())
    digest.update(f"overrides\0{lr_override}\0{hr_override}\n".encode())
    return digest.hexdigest()


def check_pixel_sizes_against_parent(pairs, parent_card: dict, parent: str, lr_override: float | None,
                      hr_override: float | None) -> tuple[float, list[str]]:
    """LR pixel size of the set; UserError for a missing size or a ratio unlike the parent's scale.

    Returns ``(lr_pixel_size_nm, warnings)``; warns when the absolute size differs from the
    parent's input pixel size (expected for a new sample, but worth knowing).
    """
    from zoo.data.register import PIXEL_RATIO_TOLERANCE
    from zoo.data.sem_tiff import read_sem

    scale = int(parent_card["scale"])
    sizes = []
    for name, lr_path, hr_path in pairs:
        lr = read_sem(lr_path, lr_override).pixel_size_nm
        hr = read_sem(hr_path, hr_override).pixel_size_nm
        if lr is None:
            raise UserError(f"{lr_path}: no pixel size in its metadata; pass --pixel-size NM (LR)")
        if hr is None:
            raise UserError(f"{hr_path}: no pixel size in its metadata; pass --hr-pixel-size NM")
        ratio = lr / hr
        if abs(ratio / scale - 1) > PIXEL_RATIO_TOLERANCE:
            raise UserError(
                f"pair {name}: LR/HR pixel sizes {lr:g}/{hr:g} nm are a x{ratio:.3g} pair, but the "
                f"parent {parent} magnifies x{scale}; check the files or --pixel-size/--hr-pixel-size")
        sizes.append(lr)
    warnings = []
    parent_lr = float(parent_card["input_pixel_size_nm"])
    if abs(sizes[0] / parent_lr - 1) > PIXEL_SIZE_AGREEMENT:
        warnings.append(
            f"the calibration images have {sizes[0]:g} nm LR pixels, the parent {parent} was trained "
            f"at {parent_lr:g} nm; the fine-tuned model is for {sizes[0]:g} nm")
    return sizes[0], warnings


def check_hr_only_against_parent(pairs, parent_card: dict, parent: str,
                                 hr_override: float | None, *,
                                 self_calibration: bool = False) -> tuple[float, list[str]]:
    """HR-only calibration: every image needs a pixel size; the LR the acquisition model makes
    is ``scale`` times coarser. Returns ``(lr_pixel_size_nm, warnings)`` like
    :func:`check_pixel_sizes_against_parent` (a warning when the published model's input pixel
    size is not the parent's: the LR's, or with ``self_calibration`` the images' own)."""
    from zoo.data.sem_tiff import read_sem

    scale = int(parent_card["scale"])
    sizes = []
    for _name, _lr, hr_path in pairs:
        size = read_sem(hr_path, hr_override).pixel_size_nm
        if size is None:
            raise UserError(f"{hr_path}: no pixel size in its metadata; pass --pixel-size NM (of the HR images)")
        sizes.append(size * scale)
    if max(sizes) > min(sizes) * (1 + PIXEL_SIZE_AGREEMENT):
        raise UserError(f"the calibration images have pixel sizes {min(sizes) / scale:g}-{max(sizes) / scale:g} nm; "
                        "one calibration set is one magnification")
    warnings = []
    parent_lr = float(parent_card["input_pixel_size_nm"])
    span = (parent_card.get("training") or {}).get("input_pixel_size_range_nm")
    published = sizes[0] / scale if self_calibration else sizes[0]
    if not span and abs(published / parent_lr - 1) > PIXEL_SIZE_AGREEMENT:
        what = "are" if self_calibration else "record"
        warnings.append(
            f"the calibration images {what} {published:g} nm {'pixels' if self_calibration else 'LR pixels'}, "
            f"the parent {parent} was trained at {parent_lr:g} nm; the fine-tuned model is for {published:g} nm")
    return sizes[0], warnings


def prepare_calibration(calib_dir: Path, out_dir: Path, *, patch_size: int, lr_pixel_size_nm, hr_pixel_size_nm,
                        seed: int, progress: Callable[[int, int], None] | None = None,
                        noise_split: bool = True):
    """Register and cut the calibration pairs with ``prepare``'s pipeline; refuse failed pairs."""
    from zoo.data.prepare import prepare_dataset

    # HR-only: several acquisitions of each image (their own scan draws and noise splits).
    result = prepare_dataset(
        calib_dir, out_dir, patch_size=patch_size, stride=patch_size // 2, val_fraction=0.0,
        lr_pixel_size_nm=lr_pixel_size_nm, hr_pixel_size_nm=hr_pixel_size_nm, seed=seed,
        overlays=0, progress=progress, hr_only={"records_per_image": HR_ONLY_RECORDS, "noise_split": noise_split},
    )
    if result.failed:
        names = ", ".join(f["name"] for f in result.failed)
        first = result.failed[0]["reason"]
        raise UserError(f"calibration pair(s) failed registration: {names} ({first}); fix or remove them")
    empty = [p["name"] for p in result.manifest["pairs"] if not p["patches_kept"]]
    if empty:
        raise UserError(f"calibration pair(s) gave no usable patch (low LR/HR correlation): {', '.join(empty)}")
    return result


def _registered(data_dir: Path, name: str, truth: dict | None) -> CalibrationPair:
    from zoo.data.sem_tiff import read_sem

    lr = read_sem(data_dir / "registered" / "lr-native" / f"{name}.tif")
    hr = read_sem(data_dir / "registered" / "hr" / f"{name}.tif")
    return CalibrationPair(name, lr.image.astype(np.float32), hr.image.astype(np.float32),
                           float(hr.pixel_size_nm), (truth or {}).get("pairs", {}).get(name))


def _fold_dir(root: Path, fold: str, manifest: dict, pairs: list[dict]) -> Path:
    """A ``prepare``-format directory over existing shards (symlinked) with its own split."""
    out = root / fold
    (out / P.SHARD_DIR).mkdir(parents=True)
    records = []
    for pair in pairs:
        src = Path(pair.pop("source_shard"))
        os.symlink(src.resolve(), out / pair["shard"])
        records.append(pair)
    man = {**manifest, "pairs": records, "failed": [], "val_fraction": None,
           "patches": {"train": sum(p["patches_kept"] for p in records if p["split"] == "train"),
                       "val": sum(p["patches_kept"] for p in records if p["split"] == "val"),
                       "dropped": sum(p.get("patches_dropped", 0) for p in records)}}
    man["dataset_hash"] = P.dataset_hash(records)
    P.write_manifest(out, man)
    return out


def _shard_record(data_dir: Path, pair: dict, split: str) -> dict:
    return {**copy.deepcopy(pair), "split": split, "source_shard": str(data_dir / pair["shard"])}


def all_pairs_dir(data_dir: Path, root: Path) -> Path:
    """The whole calibration set as training data (no validation): for the published model."""
    manifest = P.load_manifest(data_dir)
    return _fold_dir(root, "all", manifest, [_shard_record(data_dir, p, "train") for p in manifest["pairs"]])


def folds(data_dir: Path, root: Path, *, seed: int) -> list[Fold]:
    """The held-out folds of a prepared calibration set (see the module docstring)."""
    manifest = P.load_manifest(data_dir)
    truth_path = data_dir / "registered" / "truth.json"
    truth = read_truth(truth_path) if truth_path.is_file() else None
    pairs = sorted(manifest["pairs"], key=lambda p: p["name"])
    names = [p["name"] for p in pairs]
    if len(pairs) == 1:
        return [_region_fold(data_dir, root, manifest, pairs[0], truth)]
    if len(pairs) <= LEAVE_ONE_OUT_MAX_PAIRS:
        held = names
    else:
        held = [names[int(np.random.default_rng(seed).integers(len(names)))]]
    out = []
    for k, name in enumerate(held):
        records = [_shard_record(data_dir, p, "val" if p["name"] == name else "train") for p in pairs]
        fold_dir = _fold_dir(root, f"fold-{k}", manifest, records)
        val = next(p["patches_kept"] for p in pairs if p["name"] == name)
        out.append(Fold(f"held out {name}", fold_dir, [n for n in names if n != name], [name],
                        [_registered(data_dir, name, truth)], val))
    return out


def _region_split(width: int, patch_size: int) -> int:
    """HR column where the held-out region starts: its last quarter, at least one patch wide."""
    held = max(patch_size, int(round(width / 4)))
    split = width - held
    return split - split % 2  # whole LR pixels


def _region_fold(data_dir: Path, root: Path, manifest: dict, pair: dict, truth: dict | None) -> Fold:
    """One pair: hold out the last quarter of its registered grid along the longer axis."""
    from zoo.evaluation.report import no_data_mask

    reg = _registered(data_dir, pair["name"], truth)
    lr, hr = reg.lr, reg.hr
    transpose = hr.shape[0] > hr.shape[1]  # split the longer axis
    if transpose:
        lr, hr = lr.T, hr.T
    patch = int(manifest["patch_size"])
    split = _region_split(hr.shape[1], patch)
    if split < patch:
        raise UserError(f"pair {pair['name']}: the registered image ({hr.shape[1]} px) is too small to hold "
                        f"out a region for validation and keep one to train on; add a pair")
    valid = ~no_data_mask(hr)
    regions = {"train": (slice(0, split // 2), slice(0, split)),
               "val": (slice(split // 2, None), slice(split, None))}
    out = root / "fold-0"
    (out / P.SHARD_DIR).mkdir(parents=True)
    records = []
    for split_name, (lr_cols, hr_cols) in regions.items():
        cut = P.cut_patches(lr[:, lr_cols], hr[:, hr_cols], valid[:, hr_cols], patch_size=patch,
                            stride=manifest.get("stride") or patch // 2,
                            min_correlation=manifest.get("min_patch_correlation", P.DEFAULT_MIN_PATCH_CORRELATION))
        if not cut.kept:
            raise UserError(f"pair {pair['name']}: no usable patch in the {split_name} region; add a pair")
        shard = f"{P.SHARD_DIR}/{pair['name']}-{split_name}.tfrecord"
        records.append({"name": f"{pair['name']}-{split_name}", "split": split_name, "shard": shard,
                        "patches_kept": cut.kept, "patches_dropped": cut.dropped,
                        "shard_sha256": P.write_shard(out / shard, cut)})
    man = {**manifest, "pairs": records, "val_fraction": None,
           "patches": {"train": records[0]["patches_kept"], "val": records[1]["patches_kept"],
                       "dropped": sum(r["patches_dropped"] for r in records)}}
    man["dataset_hash"] = P.dataset_hash(records)
    P.write_manifest(out, man)
    held_lr, held_hr = lr[:, split // 2:], hr[:, split:]
    held_truth = _shift_truth(reg.truth, split, transpose)
    if transpose:
        held_lr, held_hr = held_lr.T, held_hr.T
    region = f"{pair['name']} [{'rows' if transpose else 'columns'} {split}:]"
    evaluation = CalibrationPair(region, np.ascontiguousarray(held_lr), np.ascontiguousarray(held_hr),
                                 reg.pixel_size_nm, held_truth)
    return Fold(f"held out {region}", out, [f"{pair['name']} (rest)"], [region], [evaluation],
                records[1]["patches_kept"])


def _shift_truth(truth: dict | None, split: int, transpose: bool) -> dict | None:
    """Truth of the held-out region: particles moved to its coordinates (gaps need both ends)."""
    if not truth or not truth.get("particles"):
        return None
    axis = "y_hr" if transpose else "x_hr"
    kept = {p["id"]: {**p, axis: p[axis] - split} for p in truth["particles"] if p[axis] >= split}
    links = lambda key: [g for g in truth.get(key, []) if g["a"] in kept and g["b"] in kept]  # noqa: E731
    return {"particles": list(kept.values()), "gaps": links("gaps"), "touching": links("touching")}


def jittered(dataset, seed: int):
    """Shared random gain/offset per patch on LR and HR (small intensity jitter, stateless).

    The patches are normalised per image, so this mimics local contrast and brightness changes
    between acquisitions without changing what the network must map to what.
    """
    import tensorflow as tf

    def jitter(index, pair):
        lr, hr = pair
        key = tf.stack([tf.cast(seed, tf.int64) + 7919, index])
        n = tf.shape(lr)[0]
        gain = 1.0 + tf.random.stateless_uniform([n, 1, 1, 1], key, -JITTER_GAIN, JITTER_GAIN)
        offset = tf.random.stateless_uniform([n, 1, 1, 1], key + [0, 1 << 40], -JITTER_OFFSET, JITTER_OFFSET)
        return lr * gain + offset, hr * gain + offset

    return dataset.enumerate().map(jitter, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
