"""The gap/contact masks of the gap-weighted loss: where they are drawn, how they travel in the
shards and through augmentation, and what prepare writes for a simulated set."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import patches as P
from zoo.data.focus import CONTACT, DEFAULT_MAX_GAP_NM, GAP, cut_focus, focus_map
from zoo.errors import UserError

PX = 7.1


def _pair(particles, gaps=(), touching=()):
    return {"particles": [{"id": i, "x_hr": x, "y_hr": y, "radius_nm": r} for i, (x, y, r) in enumerate(particles)],
            "gaps": list(gaps), "touching": list(touching)}


def test_a_narrow_gap_is_marked_between_the_edges_not_over_the_particles():
    # Two 71 nm particles (5 px radius) 12 px apart: edges at x = 25 and 27, a 14.2 nm gap.
    pair = _pair([(20, 30, 35.5), (32, 30, 35.5)], gaps=[{"a": 0, "b": 1, "width_nm": 14.2}])
    mask = focus_map(pair, (60, 60), PX)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, GAP}
    assert mask[30, 25:28].all()  # the gap itself and its edges
    assert mask[30, 23] and mask[30, 29]  # the 2 px end margin into each particle
    assert not mask[30, 20] and not mask[30, 32]  # the particles' centres are not the gap
    assert not mask[30, 18] and not mask[30, 35]
    # As wide as the smaller particle's radius (5 px) across the line of centres.
    assert mask[28:33, 26].all() and not mask[25, 26] and not mask[35, 26]


def test_wide_gaps_are_left_out_and_contacts_are_marked_at_the_crevice():
    wide = _pair([(20, 30, 35.5), (40, 30, 35.5)], gaps=[{"a": 0, "b": 1, "width_nm": 71.0}])
    assert not focus_map(wide, (60, 60), PX).any()
    assert focus_map(wide, (60, 60), PX, max_gap_nm=80).any()
    # Overlapping 5 px and 3 px particles 7 px apart: edges cross between x = 24 and 25.
    contact = _pair([(20, 30, 35.5), (27, 30, 21.3)], touching=[{"a": 0, "b": 1, "kind": "neck"}])
    mask = focus_map(contact, (60, 60), PX)
    assert mask[30, 24] == mask[30, 25] == CONTACT and not mask[30, 20] and not mask[30, 29]
    assert set(np.unique(mask)) == {0, CONTACT}
    # Where a gap's band and a contact's overlap, the contact wins.
    both = _pair([(20, 30, 35.5), (27, 30, 21.3), (34, 30, 21.3)],
                 gaps=[{"a": 1, "b": 2, "width_nm": 7.1}, {"a": 0, "b": 1, "width_nm": 0.0}],
                 touching=[{"a": 0, "b": 1}])
    mask = focus_map(both, (60, 60), PX)
    assert mask[30, 24] == mask[30, 25] == CONTACT and mask[30, 30] == mask[30, 31] == GAP
    # Along a diagonal, too.
    diagonal = _pair([(20, 20, 35.5), (28, 28, 35.5)], touching=[{"a": 0, "b": 1}])
    mask = focus_map(diagonal, (60, 60), PX)
    assert mask[24, 24] and not mask[24, 16] and not mask[16, 24]


def test_links_to_unknown_particles_are_skipped_and_the_pixel_size_checked():
    pair = _pair([(20, 30, 35.5)], gaps=[{"a": 0, "b": 7, "width_nm": 5.0}])
    assert not focus_map(pair, (60, 60), PX).any()
    with pytest.raises(ValueError, match="pixel size must be positive"):
        focus_map(pair, (60, 60), 0.0)
    assert DEFAULT_MAX_GAP_NM == 30.0


def test_cut_focus_takes_the_patches_at_their_positions():
    mask = np.zeros((64, 96), np.uint8)
    mask[40, 70] = 1
    out = cut_focus(mask, np.array([[64, 32], [0, 0]]), 32)
    assert out.shape == (2, 32, 32) and out[0, 8, 6] == 1 and out[0].sum() == 1 and not out[1].any()


def _focus_set(tmp_path, rng, with_focus=True, n=6, patch=32):
    """A data set whose focus mask is where the HR is bright, so alignment can be checked."""
    (tmp_path / P.SHARD_DIR).mkdir(parents=True)
    lr = rng.standard_normal((n, patch // 2, patch // 2)).astype(np.float32)
    hr = rng.standard_normal((n, patch, patch)).astype(np.float32)
    hr[:, 0, :5] += 10  # asymmetric, so every rotation/flip is distinguishable
    focus = ((hr > 1.0).astype(np.uint8) + (hr > 2.0)) if with_focus else None  # 0, GAP, CONTACT
    cut = P.PatchSet(lr, hr, np.zeros((n, 2), np.int64), np.ones(n, np.float32), 0, 0, focus=focus)
    record = {"name": "a", "split": "train", "patches_kept": n, "patches_dropped": 0,
              "shard": f"{P.SHARD_DIR}/a.tfrecord", "shard_sha256": P.write_shard(tmp_path / "shards/a.tfrecord", cut)}
    P.write_manifest(tmp_path, {
        "sample_type": None, "lr_pixel_size_nm": 14.2, "hr_pixel_size_nm": 7.1, "scale": 2,
        "patch_size": patch, "pairs": [record], "simulated": with_focus,
        "patches": {"train": n, "val": 0, "dropped": 0}, "dataset_hash": P.dataset_hash([record]),
        **({"focus": {"source": "test"}} if with_focus else {}),
    })
    return tmp_path


def test_focus_masks_travel_with_their_patches_through_the_augmentation(tmp_path, rng):
    data = _focus_set(tmp_path, rng)
    lr, hr = next(iter(P.training_dataset(data, batch_size=6)))  # plain batches still work
    assert hr.shape == (6, 32, 32, 1)
    rotated = 0
    for lr, hr, focus in P.training_dataset(data, batch_size=6, seed=3, focus=True).take(4):
        hr, focus = hr.numpy(), focus.numpy()
        assert focus.dtype == np.float32 and focus.shape == hr.shape
        np.testing.assert_array_equal(focus, (hr > 1.0).astype(np.float32) + (hr > 2.0))
        rotated += int((hr[:, 0, :5, 0] < 5).any(axis=1).sum())  # the mark moved off row 0
    assert rotated > 0


def test_focus_is_refused_for_a_set_without_masks(tmp_path, rng):
    data = _focus_set(tmp_path, rng, with_focus=False)
    with pytest.raises(UserError, match="no gap/contact masks in this data set"):
        P.training_dataset(data, batch_size=2, focus=True)


def test_focus_patches_must_match_the_hr_patches(tmp_path, rng):
    cut = P.PatchSet(np.zeros((2, 8, 8), np.float32), np.zeros((2, 16, 16), np.float32),
                     np.zeros((2, 2), np.int64), np.ones(2, np.float32), 0, 0,
                     focus=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        P.write_shard(tmp_path / "s.tfrecord", cut)
