"""Training patches (paper, Methods): normalisation, cutting, filtering, shards, tf.data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zoo.data import patches as P
from zoo.data.register import lanczos_upsample2x
from zoo.errors import UserError


def texture(rng, shape, sigma=1.5):
    return cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma) * 50 + 300


def test_normalise_uses_the_image_own_mean_and_std(rng):
    image = rng.normal(1000, 40, (50, 60)).astype(np.uint16)
    out, mean, std = P.normalise(image)
    assert out.dtype == np.float32
    assert mean == pytest.approx(image.mean(), rel=1e-6) and std == pytest.approx(image.std(), rel=1e-4)
    assert out.mean() == pytest.approx(0, abs=1e-5) and out.std() == pytest.approx(1, abs=1e-4)


def test_normalise_with_mask_ignores_and_zeroes_unmapped_pixels(rng):
    image = rng.normal(10, 2, (40, 40)).astype(np.float32)
    mask = np.ones(image.shape, bool)
    mask[:, :10] = False
    image[~mask] = 1e6  # unmapped pixels must not pull the statistics
    out, mean, std = P.normalise(image, mask)
    assert out[mask].mean() == pytest.approx(0, abs=1e-5) and out[mask].std() == pytest.approx(1, abs=1e-4)
    assert np.all(out[~mask] == 0)


def test_cut_patches_counts_and_correspondence(rng):
    lr = texture(rng, (96, 128))  # registered grid 192 x 256
    hr = lanczos_upsample2x(lr) * 1.7 + 20  # a perfectly registered HR, other intensity scale
    valid = np.ones(hr.shape, bool)
    valid[:, 250:] = False  # an unmapped strip on the right
    hr[140:, :64] = texture(rng, (52, 64), 1.0)  # unrelated content bottom-left
    cut = P.cut_patches(lr, hr, valid, patch_size=64, stride=64, min_correlation=0.5)
    # The valid middle row spans x 0..249: 3 columns of 64 centred on it start at x = 28
    # ((250 - 192) // 2 = 29, rounded down to a whole LR pixel); rows y = 0, 64, 128; the
    # bottom row's left patch overlaps the unrelated block.
    expected = {(x, y) for y in (0, 64, 128) for x in (28, 92, 156)}
    assert {tuple(int(v) for v in p) for p in cut.positions} == expected - {(28, 128)}
    assert cut.kept == 8 and cut.dropped_correlation == 1 and cut.dropped_invalid == 0
    assert cut.lr.shape == (8, 32, 32) and cut.hr.shape == (8, 64, 64)
    assert np.all(cut.correlations >= 0.5)
    lr_norm, _, _ = P.normalise(lr)
    hr_norm, _, _ = P.normalise(hr, valid)
    for (x, y), lp, hp in zip(cut.positions, cut.lr, cut.hr):
        np.testing.assert_array_equal(lp, lr_norm[y // 2:y // 2 + 32, x // 2:x // 2 + 32])
        np.testing.assert_array_equal(hp, hr_norm[y:y + 64, x:x + 64])


def test_cut_patches_drops_patches_touching_unmapped_pixels(rng):
    lr = texture(rng, (64, 64))
    hr = lanczos_upsample2x(lr)
    valid = np.ones(hr.shape, bool)
    valid[70, 70] = False  # one hole
    cut = P.cut_patches(lr, hr, valid, patch_size=32, stride=32)
    assert cut.kept == 15 and cut.dropped_invalid == 1 and cut.dropped == 1
    overlapping = P.cut_patches(lr, hr, valid, patch_size=32, stride=16)
    assert overlapping.kept + overlapping.dropped == 7 * 7 and overlapping.dropped_invalid == 4


@pytest.mark.parametrize("patch, stride, message", [(100, None, "multiple of 16"), (64, 33, "even"),
                                                    (64, 0, "positive")])
def test_patch_geometry_is_checked(patch, stride, message):
    with pytest.raises(UserError, match=message):
        P.check_patch_geometry(patch, stride)


def make_dataset(tmp_path, rng, pairs=(("a", "train", 6), ("b", "train", 5), ("c", "val", 3)), patch=32):
    """A data set whose every HR patch is exactly the Lanczos x2 of its LR patch."""
    records = []
    (tmp_path / P.SHARD_DIR).mkdir(parents=True)
    for name, split, n in pairs:
        lr = np.stack([texture(rng, (patch // 2, patch // 2), 1.0) for _ in range(n)])
        lr[:, 0, :3] += 400  # an asymmetric mark so every rotation/flip is distinguishable
        hr = np.stack([lanczos_upsample2x(x) for x in lr])
        cut = P.PatchSet(lr, hr, np.zeros((n, 2), np.int64), np.ones(n, np.float32), 0, 0)
        shard = f"{P.SHARD_DIR}/{name}.tfrecord"
        records.append({"name": name, "split": split, "patches_kept": n, "patches_dropped": 0,
                        "correlation": 1.0, "residual_px": 0.0, "shard": shard,
                        "shard_sha256": P.write_shard(tmp_path / shard, cut)})
    P.write_manifest(tmp_path, {
        "sample_type": None, "lr_pixel_size_nm": 14.2, "hr_pixel_size_nm": 7.1, "scale": 2,
        "patch_size": patch, "pairs": records, "simulated": False,
        "patches": {"train": sum(r["patches_kept"] for r in records if r["split"] == "train"),
                    "val": sum(r["patches_kept"] for r in records if r["split"] == "val"), "dropped": 0},
        "dataset_hash": P.dataset_hash(records),
    })
    return tmp_path


def test_shard_round_trip_and_hash(tmp_path, rng):
    lr = rng.standard_normal((3, 16, 16)).astype(np.float32)
    hr = rng.standard_normal((3, 32, 32)).astype(np.float32)
    cut = P.PatchSet(lr, hr, np.zeros((3, 2), np.int64), np.ones(3, np.float32), 0, 0)
    sha = P.write_shard(tmp_path / "s.tfrecord", cut)
    assert sha == P.file_sha256(tmp_path / "s.tfrecord") and len(sha) == 64
    back_lr, back_hr = P.read_shard(tmp_path / "s.tfrecord", patch_size=32)
    np.testing.assert_array_equal(back_lr[..., 0], lr)
    np.testing.assert_array_equal(back_hr[..., 0], hr)
    one = [{"name": "s", "split": "train", "shard_sha256": sha}]
    assert P.dataset_hash(one) != P.dataset_hash([{**one[0], "split": "val"}])
    assert P.dataset_hash(one) != P.dataset_hash([{**one[0], "shard_sha256": "0" * 64}])


def test_training_dataset_shapes_dtypes_and_split(tmp_path, rng):
    data = make_dataset(tmp_path, rng)
    lr, hr = next(iter(P.training_dataset(data, batch_size=4)))
    assert lr.shape == (4, 16, 16, 1) and hr.shape == (4, 32, 32, 1)
    assert lr.dtype.name == hr.dtype.name == "float32"
    val = list(P.training_dataset(data, split="val", batch_size=2, repeat=False, augment=False, shuffle=False))
    assert [int(b[0].shape[0]) for b in val] == [2, 1]  # only pair c's 3 patches
    train = list(P.training_dataset(data, batch_size=4, repeat=False, augment=False, shuffle=False))
    assert sum(int(b[0].shape[0]) for b in train) == 11


def test_augmentation_transforms_lr_and_hr_identically(tmp_path, rng):
    data = make_dataset(tmp_path, rng)
    plain = {tuple(np.round(x.numpy()[..., 0].ravel()[:8], 3)) for x in
             next(iter(P.training_dataset(data, batch_size=11, augment=False, repeat=False)))[0]}
    seen_transformed = 0
    for lr, hr in P.training_dataset(data, batch_size=11, seed=7).take(4):
        lr, hr = lr.numpy()[..., 0], hr.numpy()[..., 0]
        for l_patch, h_patch in zip(lr, hr):
            # HR was the Lanczos x2 of LR; rotations and flips commute with it, so the pair
            # stays consistent only if both got the same transform.
            np.testing.assert_allclose(lanczos_upsample2x(l_patch), h_patch, atol=2e-3)
            seen_transformed += tuple(np.round(l_patch.ravel()[:8], 3)) not in plain
    assert seen_transformed > 10  # augmentation really happened


def test_training_dataset_is_deterministic_given_seed(tmp_path, rng):
    data = make_dataset(tmp_path, rng)
    take = lambda seed: [b[1].numpy() for b in P.training_dataset(data, batch_size=3, seed=seed).take(5)]  # noqa: E731
    first, again, other = take(1), take(1), take(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_training_dataset_errors(tmp_path, rng):
    with pytest.raises(UserError, match="not a semzoo data set"):
        P.training_dataset(tmp_path, batch_size=2)
    data = make_dataset(tmp_path / "d", rng, pairs=(("a", "train", 3),))
    with pytest.raises(UserError, match="no val patches"):
        P.training_dataset(data, split="val", batch_size=2)
    with pytest.raises(UserError, match="batch size 8 exceeds the 3 train patches"):
        P.training_dataset(data, batch_size=8)
    (data / "manifest.json").write_text("{}")
    with pytest.raises(UserError, match="manifest lacks"):
        P.load_manifest(data)
