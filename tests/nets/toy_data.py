"""Tiny synthetic training data for the nets/training/CLI tests: LR = HR texture downsampled x2.

``toy_data()`` is an in-memory :class:`zoo.training.train.TrainingData`; ``write_toy_data_dir``
writes the same patches as a real prepared data set (TFRecord shards + manifest.json via
zoo.data.patches), so the CLI runs exactly as on `semzoo prepare` output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HR = 32  # the tiny preset's HR patch size
SAMPLE = "gold-on-carbon"


def toy_patches(n: int, seed: int, hr: int = HR) -> tuple[np.ndarray, np.ndarray]:
    """(lr (n,hr/2,hr/2,1), hr (n,hr,hr,1)) float32: smooth blobs + fine texture, normalised."""
    import cv2

    rng = np.random.default_rng(seed)
    hrs, lrs = [], []
    for _ in range(n):
        z = cv2.GaussianBlur(rng.standard_normal((hr, hr)).astype(np.float32), (0, 0), 1.5)
        z = (z - z.mean()) / z.std()
        x = cv2.resize(z, (hr // 2, hr // 2), interpolation=cv2.INTER_AREA)
        x = (x - x.mean()) / x.std()
        hrs.append(z)
        lrs.append(x)
    return np.stack(lrs)[..., None], np.stack(hrs)[..., None]


def toy_manifest(n_train: int, n_val: int, hr: int = HR) -> dict:
    return {
        "sample_type": SAMPLE,
        "lr_pixel_size_nm": 14.2,
        "hr_pixel_size_nm": 7.1,
        "scale": 2,
        "patch_size": hr,
        "pairs": [
            {"name": "toy-train", "split": "train", "correlation": 0.9, "residual_px": 0.1,
             "patches_kept": n_train, "patches_dropped": 0, "shard": "shards/toy-train.tfrecord"},
            {"name": "toy-val", "split": "val", "correlation": 0.9, "residual_px": 0.1,
             "patches_kept": n_val, "patches_dropped": 0, "shard": "shards/toy-val.tfrecord"},
        ],
        "patches": {"train": n_train, "val": n_val, "dropped": 0},
        "dataset_hash": f"toy-{n_train}-{n_val}-{hr}",
        "simulated": True,
    }


def toy_data(n_train: int = 16, n_val: int = 4, *, nan_after: int | None = None):
    """In-memory TrainingData; with ``nan_after`` every batch from that index on holds a NaN."""
    import tensorflow as tf

    from zoo.training.train import TrainingData

    lr, hr = toy_patches(n_train, seed=1)
    vlr, vhr = toy_patches(n_val, seed=2)

    def train(batch_size: int, seed: int):
        ds = tf.data.Dataset.from_tensor_slices((lr, hr))
        ds = ds.shuffle(n_train, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.batch(batch_size, drop_remainder=True)
        if nan_after is not None:
            def poison(index, batch):
                hr = tf.where(index >= nan_after, batch[1] + float("nan"), batch[1])
                return batch[0], hr
            ds = ds.enumerate().map(lambda i, b: poison(i, b))
        return ds.prefetch(2)

    def val(batch_size: int):
        return tf.data.Dataset.from_tensor_slices((vlr, vhr)).batch(batch_size)

    return TrainingData(toy_manifest(n_train, n_val), train, val, "toy")


def write_toy_data_dir(data_dir: Path, n_train: int = 16, n_val: int = 4) -> Path:
    """A prepared data set on disk (shards + manifest), readable by zoo.data.patches."""
    from zoo.data import patches

    data_dir = Path(data_dir)
    (data_dir / "shards").mkdir(parents=True)
    manifest = toy_manifest(n_train, n_val)
    for pair, (n, seed) in zip(manifest["pairs"], ((n_train, 1), (n_val, 2))):
        lr, hr = toy_patches(n, seed)
        patch_set = patches.PatchSet(lr=lr[..., 0], hr=hr[..., 0], positions=np.zeros((n, 2), int),
                                     correlations=np.full(n, 0.9), dropped_invalid=0, dropped_correlation=0)
        pair["shard_sha256"] = patches.write_shard(data_dir / pair["shard"], patch_set)
    manifest["dataset_hash"] = patches.dataset_hash(manifest["pairs"])
    patches.write_manifest(data_dir, manifest)
    return data_dir
