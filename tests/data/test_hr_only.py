"""HR-only data (issue 12): `semzoo prepare` and `semzoo finetune` on RAW/hr alone, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from zoo.data.patches import load_manifest, read_shard
from zoo.data.sem_tiff import read_sem, write_sem
from zoo.sim.acquisition import TRAINING_RANGES, ScanParams


def specimen(rng, shape=(160, 192)):
    """Blobs on a ramp with shot-like noise, uint16: a stand-in micrograph."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = 2000 + 10 * x
    for cx, cy, r in zip(rng.uniform(0, w, 25), rng.uniform(0, h, 25), rng.uniform(3, 9, 25)):
        image += 20000 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r**2))
    return np.clip(image + rng.normal(0, 300, shape), 0, 65535).astype(np.uint16)


def write_hr_only(root, n=3, pixel_size_nm=7.1, shape=(160, 192), seed=0):
    (root / "hr").mkdir(parents=True)
    for i in range(n):
        write_sem(root / "hr" / f"img-{i}.tif", specimen(np.random.default_rng(seed + i), shape), pixel_size_nm)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from typer.testing import CliRunner

    from zoo.cli.main import app

    base = tmp_path_factory.mktemp("hr-only")
    raw = write_hr_only(base / "raw")
    (raw / "sources.json").write_text(json.dumps([{"images": "img-*", "source": "made by the test", "licence": "CC0"}]))
    result = CliRunner().invoke(app, ["prepare", str(raw), "-o", str(base / "data"), "--patch", "64",
                                      "--records-per-image", "2", "--val-fraction", "0.34"])
    return base, result


def test_prepare_records_an_lr_side_for_every_hr_image(prepared):
    base, result = prepared
    assert result.exit_code == 0, result.output
    manifest = load_manifest(base / "data")
    assert manifest["hr_only"] and manifest["noise_split"] and manifest["records_per_image"] == 2
    assert manifest["lr_pixel_size_nm"] == pytest.approx(14.2) and manifest["hr_pixel_size_nm"] == pytest.approx(7.1)
    assert manifest["sources"][0]["licence"] == "CC0"
    names = sorted(p["name"] for p in manifest["pairs"])
    assert names == [f"img-{i}-r{r}" for i in range(3) for r in range(2)]
    # Both records of an image share its split: no val image gives a train patch.
    splits = {p["split_group"]: {q["split"] for q in manifest["pairs"] if q["split_group"] == p["split_group"]}
              for p in manifest["pairs"]}
    assert all(len(s) == 1 for s in splits.values()) and sum(s == {"val"} for s in splits.values()) == 1
    lr, hr = read_shard(base / "data" / manifest["pairs"][0]["shard"], 64)
    assert lr.shape[1:3] == (32, 32) and hr.shape[1:3] == (64, 64) and len(lr) > 0
    record = read_sem(base / "data" / "registered" / "lr-native" / "img-0-r0.tif")
    assert record.image.shape == (80, 96) and record.pixel_size_nm == pytest.approx(14.2)
    assert "record" in result.output and "img-0-r0" in result.output


def test_the_target_lies_on_the_grid_the_served_models_lanczos_uses():
    """Registered pixel k is HR coordinate phase + k - 0.5: exact on a ramp, for any phase."""
    from zoo.data.hr_only import make_record

    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    hr = 2.0 * x + 0.5 * y
    for params in (ScanParams(), ScanParams(phase_x=1.0, phase_y=0.0), ScanParams(phase_x=0.7, phase_y=1.3)):
        record, target, valid, _, _ = make_record(hr, np.random.default_rng(0), noise_split=False, params=params)
        gy, gx = np.mgrid[0:target.shape[0], 0:target.shape[1]].astype(np.float32)
        expected = 2.0 * (params.phase_x + gx - 0.5) + 0.5 * (params.phase_y + gy - 0.5)
        np.testing.assert_allclose(target[valid], expected[valid], atol=0.02)
        assert valid.mean() > 0.85
        j, i = np.mgrid[0:record.shape[0], 0:record.shape[1]]
        inner = (slice(3, -3), slice(3, -3))
        np.testing.assert_allclose(record[inner], (2.0 * (params.phase_x + 2 * i) + 0.5 * (params.phase_y + 2 * j))[inner],
                                   atol=0.05)


def test_noise_split_leaves_input_and_target_no_shared_noise():
    from zoo.data.hr_only import make_record

    rng = np.random.default_rng(1)
    clean = np.full((128, 128), 100.0, np.float32)
    hr = clean + rng.normal(0, 5, clean.shape).astype(np.float32)

    def shared(split):
        record, target, _, _, _ = make_record(hr, np.random.default_rng(2), noise_split=split,
                                              params=ScanParams(), alpha=0.5)
        # The exact stepping scan's points are HR pixels; compare with the target's at them.
        at_points = target[1::2, 1::2][:-2, :-2]  # grid k = 2i + 1 <-> HR 2i + 0.5 ... nearest
        return np.corrcoef((record[:-2, :-2] - 100).ravel(), (at_points - 100).ravel())[0, 1]

    assert shared(False) > 0.2 and abs(shared(True)) < 0.05


def test_prepare_refuses_images_without_a_pixel_size_or_smaller_than_a_patch(tmp_path, cli):
    raw = tmp_path / "raw"
    (raw / "hr").mkdir(parents=True)
    write_sem(raw / "hr" / "a.tif", specimen(np.random.default_rng(0)), None)
    result = cli("prepare", raw, "-o", tmp_path / "data")
    assert result.exit_code == 2 and "no pixel size" in result.output and "--pixel-size" in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output and not (tmp_path / "data").exists()
    assert cli("prepare", raw, "-o", tmp_path / "data", "--pixel-size", "7.1").exit_code == 0

    small = tmp_path / "small"
    (small / "hr").mkdir(parents=True)
    write_sem(small / "hr" / "s.tif", specimen(np.random.default_rng(0), (100, 90)), 7.1)
    result = cli("prepare", small, "-o", tmp_path / "data2")
    assert result.exit_code == 2 and "smaller than one 128-px training patch" in result.output
    assert not (tmp_path / "data2").exists() and not list(tmp_path.glob(".data2*"))


@pytest.mark.slow
def test_hr_only_finetune_end_to_end(tmp_path):
    """CALIB/hr alone: the LR side is recorded, the fine-tune publishes with its lineage."""
    from tests.zoo_fixtures import make_tiny_zoo
    from zoo.registry.store import Zoo
    from zoo.training.finetune import finetune

    root = make_tiny_zoo(tmp_path / "models")
    calib = write_hr_only(tmp_path / "calib", n=2, pixel_size_nm=7.1, shape=(96, 128))
    result = finetune(calib, parent="tiny@stable", name="tiny-real", zoo_root=root, steps=6, seed=0,
                      freeze="none")
    card = Zoo(root).card("tiny-real", result.version)
    assert card["parent"] == result.parent and card["input_pixel_size_nm"] == pytest.approx(14.2)
    assert card["training"]["hr_only"] and "input_pixel_size_range_nm" not in card["training"]
    assert set(result.table) >= {"lanczos", "parent", "finetuned"}


@pytest.mark.slow
def test_self_calibration_publishes_a_model_for_the_images_own_pixel_size(tmp_path):
    """finetune --self: trained 28.4 -> 14.2 nm on the 14.2 nm images, published for 14.2 nm input."""
    from tests.zoo_fixtures import make_tiny_zoo
    from zoo.registry.card import validate_card
    from zoo.registry.store import Zoo
    from zoo.training.finetune import finetune

    root = make_tiny_zoo(tmp_path / "models")
    parent_input = Zoo(root).card("tiny", 1)["input_pixel_size_nm"]
    calib = write_hr_only(tmp_path / "scans", n=2, pixel_size_nm=parent_input, shape=(96, 128))
    result = finetune(calib, parent="tiny@stable", name="tiny-self", zoo_root=root, steps=6, seed=0,
                      freeze="none", self_calibration=True)
    card = validate_card(Zoo(root).card("tiny-self", result.version))
    assert card["input_pixel_size_nm"] == pytest.approx(parent_input)
    assert card["output_pixel_size_nm"] == pytest.approx(parent_input / 2)
    self_cal = card["training"]["calibration"]["self"]
    assert self_cal["trained_input_pixel_size_nm"] == pytest.approx(2 * parent_input)
    assert result.warnings == []  # the images' own pixel size is the parent's: nothing to warn about
    # Without --self the same images make a model for their 2x coarser record, and say so.
    plain = finetune(calib, parent="tiny@stable", name="tiny-plain", zoo_root=root, steps=6, seed=0,
                     freeze="none")
    assert Zoo(root).card("tiny-plain", plain.version)["input_pixel_size_nm"] == pytest.approx(2 * parent_input)
    assert any("the fine-tuned model is for" in w for w in plain.warnings)


def test_self_calibrated_card_moves_the_pixel_sizes_and_keeps_the_rest():
    from zoo.training.finetune import self_calibrated_card

    card = {"scale": 2, "input_pixel_size_nm": 8.9, "output_pixel_size_nm": 4.45,
            "training": {"calibration": {"pairs": ["a", "b"]}}, "evaluation": {"table": {}}}
    out = self_calibrated_card(card)
    assert (out["input_pixel_size_nm"], out["output_pixel_size_nm"]) == (4.45, 2.225)
    assert out["training"]["calibration"]["pairs"] == ["a", "b"]
    assert out["training"]["calibration"]["self"]["trained_input_pixel_size_nm"] == 8.9
    assert "8.9 -> 4.45 nm" in out["training"]["calibration"]["self"]["method"]
    assert card["input_pixel_size_nm"] == 8.9 and "self" not in card["training"]["calibration"]  # a copy


def test_calibration_can_skip_the_noise_split_for_an_ablation(tmp_path):
    """finetune --no-noise-split reaches prepare: the target then carries the input's own noise."""
    from zoo.training.calibration import prepare_calibration

    calib = write_hr_only(tmp_path / "calib", n=1, pixel_size_nm=7.1, shape=(96, 128))
    for split in (True, False):
        out = tmp_path / f"data-{split}"
        result = prepare_calibration(calib, out, patch_size=64, lr_pixel_size_nm=None, hr_pixel_size_nm=None,
                                     seed=0, noise_split=split)
        assert result.manifest["noise_split"] is split
        assert all((p["noise_split_alpha"] is not None) is split for p in result.manifest["pairs"])


def test_line_noise_is_shared_by_input_and_target_at_the_lines_the_record_sampled():
    from zoo.data.hr_only import make_record

    rng = np.random.default_rng(3)
    hr = (100 + rng.normal(0, 2, (256, 256))).astype(np.float32)

    def shared(record, target):
        # Record pixel i is HR 2i, between registered target pixels 2i and 2i + 1.
        at_points = 0.25 * (target[::2, ::2] + target[1::2, ::2] + target[::2, 1::2] + target[1::2, 1::2])
        return np.corrcoef((record - record.mean()).ravel(), (at_points - at_points.mean()).ravel())[0, 1]

    # The noise split leaves input and target no white noise in common: what they share is the streaks.
    made = [make_record(hr, np.random.default_rng(s), params=ScanParams(), line_noise=True) for s in range(12)]
    with_streaks = [shared(m[0], m[1]) for m in made if m[4]["line_noise"] is not None]
    without = [shared(m[0], m[1]) for m in made if m[4]["line_noise"] is None]
    assert with_streaks and without
    assert min(with_streaks) > 0.03 and np.median(with_streaks) > 0.08 and max(abs(c) for c in without) < 0.02
    for m in made:
        if m[4]["line_noise"] is not None:
            lo, hi = TRAINING_RANGES["line_noise_rms"]
            assert lo <= m[4]["line_noise"]["rms_sigma"] <= hi
    # Without the option no field is touched and the info says nothing of it.
    record, target, _, _, info = make_record(hr, np.random.default_rng(0), noise_split=False, params=ScanParams())
    assert "line_noise" not in info and np.array_equal(record, hr[::2, ::2])


def test_prepare_line_noise_is_recorded_and_refused_for_pairs(tmp_path, cli):
    raw = write_hr_only(tmp_path / "raw", n=2)
    assert cli("prepare", raw, "-o", tmp_path / "data", "--patch", "64", "--records-per-image", "3",
               "--line-noise").exit_code == 0
    manifest = load_manifest(tmp_path / "data")
    assert manifest["line_noise"] is True and {"line_noise"} <= set(manifest["pairs"][0])
    assert any(p["line_noise"] for p in manifest["pairs"])
    paired = tmp_path / "paired"
    (paired / "lr").mkdir(parents=True)
    shutil.copytree(raw / "hr", paired / "hr")
    result = cli("prepare", paired, "-o", tmp_path / "data2", "--line-noise")
    assert result.exit_code == 2 and "--line-noise is for HR-only sets" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "data2").exists()
