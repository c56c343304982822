"""`semzoo prepare` end to end on tiny pairs, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.data.synthetic_pairs import make_pair
from zoo.data.patches import load_manifest, read_shard
from zoo.data.register import lanczos_upsample2x
from zoo.data.sem_tiff import read_sem, write_sem


def to_uint16(a):
    return np.clip((a - a.min()) / (a.max() - a.min()) * 60000, 0, 65535).astype(np.uint16)


def write_raw(root, n=3, size=(256, 192), lr_nm=14.2, hr_nm=7.1, unrelated=(), seed=0):
    """RAW/lr/pair-00i.tif + RAW/hr/pair-00i.tif; names in ``unrelated`` get someone else's HR."""
    (root / "lr").mkdir(parents=True)
    (root / "hr").mkdir()
    for i in range(n):
        name = f"pair-{i:03d}"
        lr, hr, _ = make_pair(np.random.default_rng(seed + i), lr_size=size)
        if name in unrelated:
            hr = make_pair(np.random.default_rng(seed + 100 + i), lr_size=size)[1]
        write_sem(root / "lr" / f"{name}.tif", to_uint16(lr), lr_nm)
        write_sem(root / "hr" / f"{name}.tif", to_uint16(hr), hr_nm)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One prepare run shared by the read-only checks below."""
    from typer.testing import CliRunner

    from zoo.cli.main import app

    root = tmp_path_factory.mktemp("prep")
    raw = write_raw(root / "raw")
    (raw / "lr" / "orphan.tif").write_bytes((raw / "lr" / "pair-000.tif").read_bytes())
    result = CliRunner().invoke(app, ["prepare", str(raw), "--out", str(root / "data"), "--patch", "64",
                                      "--stride", "32", "--sample-type", "gold-on-carbon"])
    return raw, root / "data", result


def test_prepare_writes_a_complete_data_set(prepared):
    raw, data, result = prepared
    assert result.exit_code == 0, result.output
    manifest = load_manifest(data)
    assert manifest["sample_type"] == "gold-on-carbon" and manifest["simulated"] is False
    assert "focus" not in manifest  # no truth, no gap masks
    assert manifest["lr_pixel_size_nm"] == 14.2 and manifest["hr_pixel_size_nm"] == 7.1
    assert manifest["scale"] == 2 and manifest["patch_size"] == 64 and manifest["stride"] == 32
    pairs = manifest["pairs"]
    assert [p["name"] for p in pairs] == ["pair-000", "pair-001", "pair-002"]
    assert [p["split"] for p in pairs].count("val") == 1  # 10% of 3 pairs, at least one
    for p in pairs:
        assert p["correlation"] > 0.9 and p["residual_px"] < 0.5
        assert p["patches_kept"] > 0 and p["patches_kept"] + p["patches_dropped"] > 0
        lr, hr = read_shard(data / p["shard"], patch_size=64)
        assert lr.shape == (p["patches_kept"], 32, 32, 1) and hr.shape == (p["patches_kept"], 64, 64, 1)
    assert manifest["patches"]["train"] + manifest["patches"]["val"] == sum(p["patches_kept"] for p in pairs)
    assert manifest["patches"]["val"] == sum(p["patches_kept"] for p in pairs if p["split"] == "val")
    assert len(manifest["dataset_hash"]) == 64
    assert manifest["unmatched"] == [str(raw / "lr" / "orphan.tif")]
    assert "orphan.tif" in result.output  # the warning names the unmatched file


def test_prepare_writes_registered_images_with_pixel_sizes(prepared):
    raw, data, _ = prepared
    reg = data / "registered"
    pairs = {p["name"]: p for p in load_manifest(data)["pairs"]}
    for name in ("pair-000", "pair-001", "pair-002"):
        lr, native, hr = (read_sem(reg / sub / f"{name}.tif") for sub in ("lr", "lr-native", "hr"))
        x0, y0 = pairs[name]["crop_origin_lr"]
        source = read_sem(raw / "lr" / f"{name}.tif").image
        np.testing.assert_array_equal(native.image, source[y0:y0 + native.height, x0:x0 + native.width])
        np.testing.assert_allclose(lr.image, lanczos_upsample2x(native.image), rtol=1e-6)
        assert native.pixel_size_nm == pytest.approx(14.2) and native.image.dtype == np.uint16
        assert lr.pixel_size_nm == pytest.approx(7.1) and hr.pixel_size_nm == pytest.approx(7.1)
        assert lr.image.shape == hr.image.shape == (2 * native.height, 2 * native.width)
    assert sorted(p.name for p in reg.glob("overlay-*.png")) == ["overlay-pair-000.png", "overlay-pair-001.png"]
    assert not list(data.parent.glob(".data.*"))  # no temporary directory left behind


def test_prepare_prints_a_summary_table(prepared):
    _, _, result = prepared
    for word in ("pair-000", "pair-002", "correlation", "residual", "kept", "dropped", "val", "train"):
        assert word in result.output


def test_prepare_is_deterministic(prepared, tmp_path, cli):
    raw, data, _ = prepared
    result = cli("prepare", raw, "--out", tmp_path / "again", "--patch", 64, "--stride", 32,
                 "--sample-type", "gold-on-carbon")
    assert result.exit_code == 0, result.output
    assert load_manifest(tmp_path / "again")["dataset_hash"] == load_manifest(data)["dataset_hash"]


def test_prepare_refuses_to_replace_existing_output_without_overwrite(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=2)
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli("prepare", raw, "--out", out, "--patch", 64)
    assert result.exit_code == 2 and "--overwrite" in result.output
    # --overwrite replaces an earlier data set, never a folder that is not one.
    result = cli("prepare", raw, "--out", out, "--patch", 64, "--overwrite")
    assert result.exit_code == 2 and "not a semzoo data set" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    assert cli("prepare", raw, "--out", out, "--patch", 64, "--stride", 32).exit_code == 0
    first = load_manifest(out)
    (out / "extra.txt").write_text("old")
    result = cli("prepare", raw, "--out", out, "--patch", 32, "--overwrite")
    assert result.exit_code == 0, result.output
    assert load_manifest(out)["patch_size"] == 32 and first["patch_size"] == 64
    assert not (out / "extra.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "raw"]  # no temp dirs left
    result = cli("prepare", raw, "--out", raw, "--overwrite")
    assert result.exit_code == 2 and "must not be the raw folder" in result.output


def test_prepare_accepts_an_empty_output_directory(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=1)
    (tmp_path / "data").mkdir()
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64, "--stride", 32)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "data")
    assert [p["split"] for p in manifest["pairs"]] == ["train"]  # a single pair cannot be split


def test_prepare_skips_and_reports_a_pair_that_cannot_be_registered(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=3, unrelated=("pair-001",))
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64, "--stride", 32)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "pair pair-001: correlation after registration" in result.output
    manifest = load_manifest(tmp_path / "data")
    assert [p["name"] for p in manifest["pairs"]] == ["pair-000", "pair-002"]
    assert [f["name"] for f in manifest["failed"]] == ["pair-001"]
    assert not (tmp_path / "data" / "registered" / "hr" / "pair-001.tif").exists()


def test_prepare_fails_cleanly_when_no_pair_registers(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=2, unrelated=("pair-000", "pair-001"))
    result = cli("prepare", raw, "--out", tmp_path / "data")
    assert result.exit_code == 2
    assert "none of the 2 pairs could be registered" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing written, no temp dir


def test_prepare_missing_pixel_size_names_the_file_and_the_option(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=1)
    lr = read_sem(raw / "lr" / "pair-000.tif").image
    (raw / "lr" / "pair-000.tif").unlink()
    write_sem(raw / "lr" / "pair-000.tif", lr, None)
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64)
    assert result.exit_code == 2
    assert "pair-000.tif" in result.output and "--pixel-size" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64, "--stride", 32, "--pixel-size", 14.2)
    assert result.exit_code == 0, result.output


def test_prepare_refuses_pixel_sizes_that_are_not_a_factor_two(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=1, hr_nm=4.7)
    result = cli("prepare", raw, "--out", tmp_path / "data")
    assert result.exit_code == 2 and "ratio is 3.021" in result.output
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64, "--stride", 32,
                 "--hr-pixel-size", 7.1)
    assert result.exit_code == 0, result.output


def test_prepare_refuses_a_folder_without_pairs(tmp_path, cli):
    (tmp_path / "raw" / "lr").mkdir(parents=True)
    (tmp_path / "raw" / "hr").mkdir()
    result = cli("prepare", tmp_path / "raw", "--out", tmp_path / "data")
    assert result.exit_code == 2 and "no image pairs" in result.output
    result = cli("prepare", tmp_path, "--out", tmp_path / "data")
    assert result.exit_code == 2 and "lr/ and hr/" in result.output
    result = cli("prepare", tmp_path / "nowhere", "--out", tmp_path / "data")
    assert result.exit_code == 2 and "no such directory" in result.output


def test_prepare_maps_truth_onto_the_registered_grid(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=1)
    particles = [{"id": 1, "x_hr": 0, "y_hr": 0, "x_lr": 100.0, "y_lr": 90.0, "radius_nm": 10},
                 {"id": 2, "x_hr": 0, "y_hr": 0, "x_lr": 110.5, "y_lr": 95.25, "radius_nm": 12},
                 {"id": 3, "x_hr": 0, "y_hr": 0, "x_lr": 3.0, "y_lr": 4.0, "radius_nm": 9}]  # outside
    truth = {"simulator": "test", "sample": "hydrogel", "seed": 0, "lr_pixel_size_nm": 14.2,
             "hr_pixel_size_nm": 7.1, "pairs": {"pair-000": {
                 "particles": particles, "gaps": [{"a": 1, "b": 2, "width_nm": 3.0}, {"a": 2, "b": 3, "width_nm": 4.0}],
                 "touching": [{"a": 1, "b": 3}]}}}
    (raw / "truth.json").write_text(json.dumps(truth))
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64, "--stride", 32)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "data")
    assert manifest["simulated"] is True and manifest["sample_type"] == "hydrogel"
    x0, y0 = manifest["pairs"][0]["crop_origin_lr"]
    mapped = json.loads((tmp_path / "data" / "registered" / "truth.json").read_text())
    pair = mapped["pairs"]["pair-000"]
    assert [(p["id"], p["source_id"]) for p in pair["particles"]] == [(0, 1), (1, 2)]
    assert pair["particles"][1]["x_hr"] == pytest.approx(2 * (110.5 - x0 + 0.5) - 0.5)
    assert pair["particles"][1]["y_hr"] == pytest.approx(2 * (95.25 - y0 + 0.5) - 0.5)
    assert pair["particles"][1]["x_lr"] == pytest.approx(110.5 - x0)
    assert pair["gaps"] == [{"a": 0, "b": 1, "width_nm": 3.0}] and pair["touching"] == []
    assert mapped["hr_pixel_size_nm"] == pytest.approx(7.1) and mapped["sample"] == "hydrogel"


def test_prepare_on_simulated_pairs_maps_the_truth(tmp_path, cli):
    from zoo.sim.dataset import simulate_dataset
    from zoo.sim.scan import hr_to_lr_coords

    simulate_dataset(tmp_path / "raw", "gold-on-carbon", pairs=2, seed=5, size=(320, 256))
    result = cli("prepare", tmp_path / "raw", "--out", tmp_path / "data", "--patch", 64, "--stride", 32)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "data")
    assert manifest["simulated"] is True and manifest["sample_type"] == "gold-on-carbon"
    assert all(p["residual_px"] < 0.5 and p["patches_kept"] > 0 for p in manifest["pairs"])
    raw_truth = json.loads((tmp_path / "raw" / "truth.json").read_text())
    truth = json.loads((tmp_path / "data" / "registered" / "truth.json").read_text())
    assert truth["sample"] == "gold-on-carbon" and set(truth["pairs"]) == {"pair-000", "pair-001"}
    for record in manifest["pairs"]:
        name, (x0, y0) = record["name"], record["crop_origin_lr"]
        source, mapped = raw_truth["pairs"][name], truth["pairs"][name]
        w, h = record["registered_size"]
        assert 0 < len(mapped["particles"]) <= len(source["particles"])
        for p in mapped["particles"]:
            original = source["particles"][p["source_id"]]
            x_lr, y_lr = hr_to_lr_coords(source["transform"], original["x_hr"], original["y_hr"])
            assert p["x_hr"] == pytest.approx(2 * (x_lr - x0 + 0.5) - 0.5, abs=2e-3)
            assert p["y_hr"] == pytest.approx(2 * (y_lr - y0 + 0.5) - 0.5, abs=2e-3)
            assert 0 <= p["x_hr"] <= w - 1 and 0 <= p["y_hr"] <= h - 1
        ids = {p["id"] for p in mapped["particles"]}
        assert ids == set(range(len(ids)))
        assert all(g["a"] in ids and g["b"] in ids for g in mapped["gaps"] + mapped["touching"])


@pytest.mark.slow
def test_prepare_stores_gap_masks_for_simulated_pairs_and_train_weights_them(tmp_path, cli):
    from zoo.data import patches as P
    from zoo.data.focus import cut_focus, focus_map
    from zoo.sim.dataset import simulate_dataset

    simulate_dataset(tmp_path / "raw", "gold-on-carbon", pairs=2, seed=5, size=(320, 256))
    result = cli("prepare", tmp_path / "raw", "--out", tmp_path / "data", "--patch", 32, "--val-fraction", 0)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "data")
    assert 0.01 < manifest["focus"]["fraction"] < 0.5 and manifest["focus"]["max_gap_nm"] == 30.0
    truth = json.loads((tmp_path / "data" / "registered" / "truth.json").read_text())
    import tensorflow as tf

    for record in manifest["pairs"]:
        w, h = record["registered_size"]
        expected = focus_map(truth["pairs"][record["name"]], (h, w), truth["hr_pixel_size_nm"])
        examples = [tf.train.Example.FromString(r.numpy())
                    for r in tf.data.TFRecordDataset(str(tmp_path / "data" / record["shard"]))]
        positions = np.array([[e.features.feature[k].int64_list.value[0] for k in "xy"] for e in examples])
        stored = np.stack([np.frombuffer(e.features.feature["focus"].bytes_list.value[0], np.uint8)
                           for e in examples]).reshape(-1, 32, 32)
        np.testing.assert_array_equal(stored, cut_focus(expected, positions, 32))
        assert record["focus_fraction"] == pytest.approx((stored > 0).mean(), abs=1e-5)
        assert {1, 2} <= set(np.unique(stored))  # gaps and contacts both marked
    batch = next(iter(P.training_dataset(tmp_path / "data", batch_size=8, focus=True)))
    assert len(batch) == 3 and set(np.unique(batch[2].numpy())) <= {0.0, 1.0, 2.0}

    result = cli("train", tmp_path / "data", "--out", tmp_path / "run", "--preset", "tiny", "--steps", 4,
                 "--set", "gap_weight=8", "--set", "contact_weight=2")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["gap_weight"] == 8.0 and config["training"]["contact_weight"] == 2.0


def test_cli_defaults_are_the_library_defaults():
    import inspect

    from zoo.cli.prepare import prepare
    from zoo.data.prepare import prepare_dataset

    cli_defaults = {k: v.default for k, v in inspect.signature(prepare).parameters.items()}
    lib_defaults = {k: v.default for k, v in inspect.signature(prepare_dataset).parameters.items()}
    for cli_name, lib_name in (("patch", "patch_size"), ("stride", "stride"), ("val_fraction", "val_fraction"),
                               ("min_correlation", "min_correlation"),
                               ("min_patch_correlation", "min_patch_correlation"), ("seed", "seed")):
        assert cli_defaults[cli_name] == lib_defaults[lib_name], cli_name


def test_prepare_refuses_mixed_magnifications_and_bad_options(tmp_path, cli):
    raw = write_raw(tmp_path / "raw", n=2)
    lr = read_sem(raw / "lr" / "pair-001.tif").image
    hr = read_sem(raw / "hr" / "pair-001.tif").image
    for side, image, nm in (("lr", lr, 28.4), ("hr", hr, 14.2)):
        (raw / side / "pair-001.tif").unlink()
        write_sem(raw / side / "pair-001.tif", image, nm)
    result = cli("prepare", raw, "--out", tmp_path / "data", "--patch", 64)
    assert result.exit_code == 2 and "one data set is one magnification" in result.output
    for option, value, message in (("--val-fraction", 1.5, "--val-fraction"), ("--stride", 31, "even"),
                                   ("--patch", 100, "multiple of 16")):
        result = cli("prepare", raw, "--out", tmp_path / "data", option, value)
        assert result.exit_code == 2 and message in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
