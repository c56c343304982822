"""The run directory's record read without guessing: each key checked, one-line refusals."""

from __future__ import annotations

import json

import pytest

from tests.nets.toy_data import toy_manifest
from zoo.errors import UserError
from zoo.training import rundir


def _config(**changes) -> dict:
    config = {"format": rundir.RUN_FORMAT, "preset": "tiny", "sample_type": None, "seed": 0,
              "scale": 2, "training": {"steps": 8}, "data": {"dataset_hash": "x"},
              "generator": {"divisor": 8, "parameters": 1, "receptive_field_radius_lr": 40}}
    config.update(changes)
    return {k: v for k, v in config.items() if v is not ...}


def _write(run, config=None, manifest=None):
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(config if config is not None else _config()))
    (run / "manifest.json").write_text(json.dumps(manifest if manifest is not None else toy_manifest(4, 2)))
    return run


def test_a_complete_record_reads_back_and_the_older_layout_explicitly(tmp_path):
    run = _write(tmp_path / "run")
    assert rundir.read_config(run)["training"]["steps"] == 8  # sample_type null is recorded, not absent
    assert rundir.read_manifest(run)["patches"] == {"train": 4, "val": 2, "dropped": 0}
    # semzoo-run/1 also held a top-level copy of training.steps; it is read, the copy ignored.
    _write(run, _config(format=rundir.OLDER_RUN_FORMAT, steps=8))
    assert rundir.read_config(run)["training"]["steps"] == 8


@pytest.mark.parametrize("config, message", [
    (_config(format="semzoo-run/0"), "is not a semzoo training run config (format 'semzoo-run/0'"),
    ([1, 2], "is not a semzoo training run config (format None"),
    (_config(generator={"divisor": 8}), "lacks generator.parameters, generator.receptive_field_radius_lr: "
                                        "not a complete semzoo-run/2 run"),
    (_config(training=..., seed=...), "lacks seed, training: not a complete"),
])
def test_a_malformed_config_is_refused_in_one_line(tmp_path, config, message):
    run = _write(tmp_path / "run", config)
    with pytest.raises(UserError) as error:
        rundir.read_config(run)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_manifest_without_what_a_card_records_is_refused(tmp_path):
    manifest = toy_manifest(4, 2)
    del manifest["dataset_hash"]
    manifest["patches"] = 6
    run = _write(tmp_path / "run", manifest=manifest)
    with pytest.raises(UserError, match=r"manifest.json lacks patches.train, patches.val, dataset_hash: "):
        rundir.read_manifest(run)
    hr_only = {**toy_manifest(4, 2), "hr_only": True, "noise_split_alpha": None}
    _write(run, manifest=hr_only)
    with pytest.raises(UserError, match=r"lacks lr_pixel_size_range_nm, sources: "):
        rundir.read_manifest(run)
    (run / "manifest.json").unlink()
    with pytest.raises(UserError, match="manifest.json is missing"):
        rundir.read_manifest(run)


def test_a_generator_without_a_finished_history_is_refused(tmp_path):
    run = _write(tmp_path / "run")
    (run / "generator.keras").write_bytes(b"not read")
    (run / "history.json").write_text(json.dumps({"step": [4], "val_l1": [0.2]}))
    with pytest.raises(UserError, match="history.json lacks steps_done"):
        rundir.load_run(run)
