"""Where a training run's patches come from: a prepared data set, or anything injected.

:func:`patch_data` wraps :mod:`zoo.data.patches` (the output of ``semzoo prepare``); tests and
notebooks may build a :class:`TrainingData` from in-memory arrays instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

SCALE = 2


@dataclass
class TrainingData:
    """Where a run's patches come from (injectable: tests pass a synthetic one).

    ``train(batch_size, seed)`` returns an endless, seeded ``tf.data.Dataset`` of ``(lr, hr)``
    batches (``train(batch_size, seed, focus=True)``: ``(lr, hr, focus)``, for a run with
    ``gap_weight`` or ``contact_weight`` > 0); ``val(batch_size)`` a finite one (or None: no validation); ``manifest`` is the data
    set's manifest (:func:`zoo.data.patches.load_manifest` schema).
    """

    manifest: dict
    train: Callable[[int, int], Any]
    val: Optional[Callable[[int], Any]]
    source: str


def patch_data(data_dir: str | os.PathLike) -> TrainingData:
    """The patches written by ``semzoo prepare`` in ``data_dir``."""
    from zoo.data import patches

    data_dir = Path(data_dir)
    manifest = patches.load_manifest(data_dir)
    has_val = any(p.get("split") == "val" and p.get("patches_kept", 0) > 0 for p in manifest["pairs"])

    def train_ds(batch_size: int, seed: int, focus: bool = False):
        return patches.training_dataset(data_dir, split="train", batch_size=batch_size, seed=seed,
                                        focus=focus)

    def val_ds(batch_size: int):
        return patches.training_dataset(data_dir, split="val", batch_size=batch_size,
                                        augment=False, shuffle=False, repeat=False)

    return TrainingData(manifest, train_ds, val_ds if has_val else None, str(data_dir.resolve()))


def manifest_summary(manifest: Mapping[str, Any]) -> dict:
    """The data set facts a run records in config.json (not the per-pair details)."""
    pairs = manifest.get("pairs") or []
    return {
        "sample_type": manifest.get("sample_type"),
        "lr_pixel_size_nm": manifest.get("lr_pixel_size_nm"),
        "hr_pixel_size_nm": manifest.get("hr_pixel_size_nm"),
        "scale": manifest.get("scale", SCALE),
        "patch_size": manifest.get("patch_size"),
        "patches": manifest.get("patches"),
        "pairs": {split: sorted(p.get("name", "?") for p in pairs if p.get("split") == split)
                  for split in ("train", "val")},
        "dataset_hash": manifest.get("dataset_hash"),
        "simulated": manifest.get("simulated"),
    }
