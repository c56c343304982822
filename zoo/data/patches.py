"""Training data: normalised, filtered patch pairs in TFRecord shards, and the tf.data pipeline.

de Haan et al., Sci. Rep. 9, 12050 (2019), Methods: every image is normalised by its own mean
and standard deviation, the registered pairs are cut into 128x128 patches (HR; 64x64 native LR),
patches whose LR/HR correlation is below a threshold are dropped (the paper dropped 372 of 4542
hydrogel patches), and training augments with random 90-degree rotations and flips.

Storage: one TFRecord shard per registered pair (``shards/NAME.tfrecord``), each record a
``tf.train.Example`` with the raw little-endian float32 bytes of ``lr`` and ``hr`` plus the
patch's ``x``/``y`` on the registered grid and its ``correlation`` (and, for a simulated set,
``focus``: the uint8 gap/contact mask of :mod:`zoo.data.focus`, for the gap-weighted loss). TFRecord because tf.data
streams it natively (interleave, shuffle buffer) at any data-set size, with no custom reader;
one shard per pair makes the by-pair train/val split a choice of files, and the dataset hash
a hash of files. ``manifest.json`` beside the shards says what they hold (:func:`load_manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data.elastic import smooth_for_correlation
from zoo.data.register import SCALE, correlation, lanczos_upsample2x
from zoo.errors import UserError

PATCH_SIZE = 128
DEFAULT_MIN_PATCH_CORRELATION = 0.5
MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
MANIFEST_FORMAT = "semzoo-patches/1"
_REQUIRED_KEYS = ("lr_pixel_size_nm", "hr_pixel_size_nm", "scale", "patch_size", "pairs",
                  "patches", "dataset_hash", "simulated", "sample_type")


def normalise(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """``(image - mean) / std`` as float32, statistics over ``mask`` (paper, Methods).

    Returns the normalised image and the (mean, std) used; pixels outside ``mask`` are set to 0.
    """
    img = np.asarray(image, dtype=np.float32)
    values = img[mask] if mask is not None else img
    if values.size == 0:
        raise UserError("cannot normalise an image with no valid pixels")
    mean, std = float(values.mean()), float(values.std())
    out = (img - mean) / (std if std > 0 else 1.0)
    if mask is not None:
        out[~mask] = 0.0
    return out.astype(np.float32), mean, std


@dataclass
class PatchSet:
    """Patches cut from one registered pair.

    ``lr`` (n, p/2, p/2) native LR and ``hr`` (n, p, p) registered HR, both normalised;
    ``positions`` (n, 2) = (x, y) of each HR patch's top-left pixel on the registered grid
    (the LR patch starts at (x/2, y/2) in the LR crop); ``correlations`` (n,); ``focus``
    (n, p, p) uint8 or None: where the truth has narrow gaps or contacts (:mod:`zoo.data.focus`).
    """

    lr: np.ndarray
    hr: np.ndarray
    positions: np.ndarray
    correlations: np.ndarray
    dropped_invalid: int
    dropped_correlation: int
    focus: np.ndarray | None = None

    @property
    def kept(self) -> int:
        return int(len(self.lr))

    @property
    def dropped(self) -> int:
        return self.dropped_invalid + self.dropped_correlation


def check_patch_geometry(patch_size: int, stride: int | None) -> int:
    """Validate patch size and stride; return the stride (default: the patch size)."""
    if patch_size < 16 or patch_size % 16:
        raise UserError(f"--patch must be a multiple of 16 (the LR patch, half of it, must be a "
                        f"multiple of 8 for the generator), got {patch_size}")
    stride = patch_size if stride is None else int(stride)
    if stride <= 0 or stride % SCALE:
        raise UserError(f"--stride must be a positive even number of HR pixels (patches start on "
                        f"whole LR pixels), got {stride}")
    return stride


def _tile_starts(valid_line: np.ndarray, patch_size: int, stride: int) -> range:
    """Even patch origins along one axis, centred on the valid span of ``valid_line``."""
    size = len(valid_line)
    idx = np.flatnonzero(valid_line)
    lo, hi = (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, size)
    if hi - lo < patch_size:
        lo, hi = 0, size
    if size < patch_size:
        return range(0)
    n = (hi - lo - patch_size) // stride + 1
    span = (n - 1) * stride + patch_size
    start = lo + (hi - lo - span) // 2
    start = min(max(0, start - start % SCALE), size - span - (size - span) % SCALE)
    return range(start, start + n * stride, stride)


def cut_patches(
    lr_crop: np.ndarray,
    hr_registered: np.ndarray,
    valid_mask: np.ndarray | None = None,
    *,
    patch_size: int = PATCH_SIZE,
    stride: int | None = None,
    min_correlation: float = DEFAULT_MIN_PATCH_CORRELATION,
    lr_upsampled: np.ndarray | None = None,
) -> PatchSet:
    """Normalise both images and cut matching patches (paper, Methods).

    HR patches of ``patch_size`` on the registered grid at multiples of ``stride`` with the
    LR patch of half the size at half the position. A patch is dropped when it touches a pixel
    outside ``valid_mask`` (no HR data) or when the correlation of the Lanczos-upsampled LR and
    the HR over it (both Gaussian-smoothed as in registration) is below ``min_correlation``.
    """
    stride = check_patch_geometry(patch_size, stride)
    lr_crop = np.asarray(lr_crop, dtype=np.float32)
    hr = np.asarray(hr_registered, dtype=np.float32)
    if hr.shape != (SCALE * lr_crop.shape[0], SCALE * lr_crop.shape[1]):
        raise ValueError(f"HR {hr.shape} is not the x{SCALE} grid of the LR crop {lr_crop.shape}")
    valid = np.ones(hr.shape, bool) if valid_mask is None else np.asarray(valid_mask, bool)
    lr_norm, _, _ = normalise(lr_crop)
    hr_norm, _, _ = normalise(hr, valid)
    up = lanczos_upsample2x(lr_crop) if lr_upsampled is None else lr_upsampled
    up_s, hr_s = smooth_for_correlation(up), smooth_for_correlation(hr)
    half = patch_size // SCALE
    lrs, hrs, positions, corrs = [], [], [], []
    dropped_invalid = dropped_corr = 0
    h, w = hr.shape
    # Centre the tiling on the mapped part of the grid: the unmapped margins (shift, rotation)
    # then cost as few patch rows/columns as possible.
    row, col = valid[h // 2], valid[:, w // 2]
    for y in _tile_starts(col, patch_size, stride):
        for x in _tile_starts(row, patch_size, stride):
            window = (slice(y, y + patch_size), slice(x, x + patch_size))
            if not valid[window].all():
                dropped_invalid += 1
                continue
            c = correlation(up_s[window], hr_s[window])
            if not c >= min_correlation:
                dropped_corr += 1
                continue
            lrs.append(lr_norm[y // SCALE:y // SCALE + half, x // SCALE:x // SCALE + half])
            hrs.append(hr_norm[window])
            positions.append((x, y))
            corrs.append(c)
    return PatchSet(
        lr=np.array(lrs, np.float32).reshape(-1, half, half),
        hr=np.array(hrs, np.float32).reshape(-1, patch_size, patch_size),
        positions=np.array(positions, np.int64).reshape(-1, 2),
        correlations=np.array(corrs, np.float32),
        dropped_invalid=dropped_invalid,
        dropped_correlation=dropped_corr,
    )


# --- shards --------------------------------------------------------------------------------


def write_shard(path: str | os.PathLike, patches: PatchSet) -> str:
    """Write a PatchSet as a TFRecord shard; return its sha256."""
    import tensorflow as tf

    path = Path(path)
    focus = patches.focus
    if focus is not None and focus.shape != patches.hr.shape:
        raise ValueError(f"focus patches {focus.shape} do not match the HR patches {patches.hr.shape}")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, (lr, hr, (x, y), c) in enumerate(zip(patches.lr, patches.hr, patches.positions,
                                                    patches.correlations)):
            feature = {
                "lr": tf.train.Feature(bytes_list=tf.train.BytesList(value=[lr.astype("<f4").tobytes()])),
                "hr": tf.train.Feature(bytes_list=tf.train.BytesList(value=[hr.astype("<f4").tobytes()])),
                "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x)])),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y)])),
                "correlation": tf.train.Feature(float_list=tf.train.FloatList(value=[float(c)])),
            }
            if focus is not None:
                feature["focus"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[focus[i].astype(np.uint8).tobytes()]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return file_sha256(path)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_hash(pairs: list[dict]) -> str:
    """sha256 over every shard (name, split and the shard's own sha256, in name order)."""
    digest = hashlib.sha256()
    for pair in sorted(pairs, key=lambda p: p["name"]):
        digest.update(f"{pair['name']}\0{pair['split']}\0{pair.get('shard_sha256')}\n".encode())
    return digest.hexdigest()


def _parser(patch_size: int, focus: bool = False):
    import tensorflow as tf

    half = patch_size // SCALE
    spec = {"lr": tf.io.FixedLenFeature([], tf.string), "hr": tf.io.FixedLenFeature([], tf.string)}
    if focus:
        spec["focus"] = tf.io.FixedLenFeature([], tf.string)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        lr = tf.reshape(tf.io.decode_raw(ex["lr"], tf.float32, little_endian=True), (half, half, 1))
        hr = tf.reshape(tf.io.decode_raw(ex["hr"], tf.float32, little_endian=True),
                        (patch_size, patch_size, 1))
        if not focus:
            return lr, hr
        mask = tf.reshape(tf.io.decode_raw(ex["focus"], tf.uint8), (patch_size, patch_size, 1))
        return lr, hr, tf.cast(mask, tf.float32)

    return parse


def read_shard(path: str | os.PathLike, patch_size: int = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All (lr, hr) patches of one shard as numpy arrays (n, p/2, p/2, 1), (n, p, p, 1)."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(str(path)).map(_parser(patch_size))
    lrs, hrs = [], []
    for lr, hr in ds.as_numpy_iterator():
        lrs.append(lr)
        hrs.append(hr)
    half = patch_size // SCALE
    return (np.array(lrs, np.float32).reshape(-1, half, half, 1),
            np.array(hrs, np.float32).reshape(-1, patch_size, patch_size, 1))


# --- manifest and pipeline -----------------------------------------------------------------


def write_manifest(data_dir: str | os.PathLike, manifest: dict) -> Path:
    path = Path(data_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def load_manifest(data_dir: str | os.PathLike) -> dict:
    """Read DATA/manifest.json written by ``semzoo prepare``; UserError if it is not a data set."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{data_dir}: not a semzoo data set (no {MANIFEST_NAME}); "
                        "make one with `semzoo prepare RAW --out DATA`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable manifest ({exc})") from None
    missing = [k for k in _REQUIRED_KEYS if k not in manifest] if isinstance(manifest, dict) else ["all"]
    if missing:
        raise UserError(f"{path}: manifest lacks {', '.join(missing)}; re-run `semzoo prepare`")
    return manifest


def _augment(seed: int):
    import tensorflow as tf

    def augment(index, pair):
        # Stateless ops keyed by (seed, element index): the same augmentation on every run,
        # independent of thread scheduling; one draw shared by LR, HR (and the focus mask)
        # keeps them aligned.
        key = tf.stack([tf.cast(seed, tf.int64), index])
        k = tf.random.stateless_uniform([], key, minval=0, maxval=4, dtype=tf.int32)
        flip = tf.random.stateless_uniform([], key + [0, 1 << 40]) < 0.5

        def one(image):
            image = tf.image.rot90(image, k)
            return tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)

        return tuple(one(image) for image in pair)

    return augment


def training_dataset(
    data_dir: str | os.PathLike,
    *,
    split: str = "train",
    batch_size: int,
    augment: bool = True,
    shuffle: bool = True,
    repeat: bool = True,
    seed: int = 0,
    focus: bool = False,
):
    """A tf.data pipeline of ``(lr, hr)`` float32 batches: (B, p/2, p/2, 1), (B, p, p, 1).

    Reads the shards of ``split`` ("train" or "val"), shuffles, applies the same random
    90-degree rotation and flip to LR and HR (paper, Methods), batches and prefetches.
    Deterministic given ``seed``. With ``repeat`` the stream is endless and every batch full.
    With ``focus`` the batches are ``(lr, hr, focus)``, focus the (B, p, p, 1) 0/1 gap/contact
    mask that ``semzoo prepare`` stored for a simulated set (UserError when the set has none).
    """
    import tensorflow as tf

    if split not in ("train", "val"):
        raise UserError(f"split must be 'train' or 'val', got {split!r}")
    if batch_size < 1:
        raise UserError(f"batch size must be positive, got {batch_size}")
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    pairs = [p for p in manifest["pairs"] if p.get("split") == split and p.get("patches_kept", 0) > 0]
    if not pairs:
        raise UserError(f"{data_dir}: no {split} patches in this data set")
    files = [str(data_dir / p["shard"]) for p in sorted(pairs, key=lambda p: p["name"])]
    for f in files:
        if not Path(f).is_file():
            raise UserError(f"{f}: shard listed in the manifest is missing")
    if focus and not manifest.get("focus"):
        raise UserError(f"{data_dir}: no gap/contact masks in this data set (gap_weight and contact_weight need a set "
                        "prepared from simulated pairs with their truth.json); re-run `semzoo prepare`")
    count = sum(int(p["patches_kept"]) for p in pairs)
    if repeat and batch_size > count:
        raise UserError(f"{data_dir}: batch size {batch_size} exceeds the {count} {split} patches")
    autotune = tf.data.AUTOTUNE
    ds = tf.data.TFRecordDataset(files)
    ds = ds.map(_parser(int(manifest["patch_size"]), focus), num_parallel_calls=autotune, deterministic=True)
    ds = ds.cache()  # parse once; a data set of a few thousand patches fits in memory
    if shuffle:
        ds = ds.shuffle(min(count, 10_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if augment:
        ds = ds.enumerate().map(_augment(seed), num_parallel_calls=autotune, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    return ds.prefetch(autotune)
