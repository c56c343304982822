"""`semzoo train`: arguments reach the library, refusals exit 2, Ctrl-C exits 130 with a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.nets.toy_data import SAMPLE, write_toy_data_dir


@pytest.fixture
def fake_train(monkeypatch):
    """Stands in for zoo.training.train.train; records its arguments."""
    import zoo.training.train as train_module

    calls = []

    def fake(data_dir, out_dir, **kwargs):
        calls.append({"data_dir": data_dir, "out_dir": out_dir, **kwargs})
        if kwargs["progress"]:
            kwargs["progress"](0, 5)
            kwargs["progress"](5, 5)
        if fake.raise_:
            raise fake.raise_
        history = {"steps_done": 5, "val_l1": [0.3], "val_psnr": [31.25], "val_ssim": [0.8],
                   **fake.extra_history}
        return train_module.Run(None, {}, {}, history, Path(out_dir))

    fake.raise_ = None
    fake.extra_history = {}
    monkeypatch.setattr(train_module, "train", fake)
    fake.calls = calls
    return fake


def test_arguments_reach_the_training_function(cli, fake_train, tmp_path):
    result = cli("train", tmp_path / "data", "--out", tmp_path / "run", "--sample-type", SAMPLE,
                 "--preset", "tiny", "--steps", "5", "--seed", "3")
    assert result.exit_code == 0, result.output
    (call,) = fake_train.calls
    assert call["data_dir"] == tmp_path / "data" and call["out_dir"] == tmp_path / "run"
    assert call["sample_type"] == SAMPLE and call["preset"] == "tiny"
    assert call["steps"] == 5 and call["seed"] == 3 and call["resume"] is False
    assert call["overrides"] is None and call["init_from"] is None
    assert "5 generator steps" in result.output and "psnr 31.25" in result.output
    assert "devices: CPU:0" in result.stderr  # one line naming what the run computes on, off stdout
    assert "devices:" not in result.stdout


def test_defaults_are_the_small_preset_and_the_presets_steps(cli, fake_train, tmp_path):
    result = cli("train", tmp_path / "data", "--out", tmp_path / "run", "--resume")
    assert result.exit_code == 0, result.output
    (call,) = fake_train.calls
    assert call["preset"] == "small" and call["steps"] is None and call["resume"] is True
    assert call["sample_type"] is None


def test_ctrl_c_exits_130_and_says_how_to_resume(cli, fake_train, tmp_path):
    from zoo.training.train import TrainingInterrupted

    fake_train.raise_ = TrainingInterrupted(3, tmp_path / "run")
    result = cli("train", tmp_path / "data", "--out", tmp_path / "run")
    assert result.exit_code == 130
    assert "interrupted at step 3" in result.output and "--resume" in result.output


def test_rejects_unknown_preset_and_non_positive_steps(cli, fake_train, tmp_path):
    assert cli("train", tmp_path, "--out", tmp_path / "r", "--preset", "huge").exit_code == 2
    assert cli("train", tmp_path, "--out", tmp_path / "r", "--steps", "0").exit_code == 2
    assert not fake_train.calls


def test_missing_data_set_is_a_one_line_error(cli, tmp_path):
    result = cli("train", tmp_path / "nothing", "--out", tmp_path / "run", "--preset", "tiny")
    assert result.exit_code == 2
    assert result.output.startswith("error:") and "semzoo prepare" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_trains_on_a_prepared_data_set_and_refuses_to_clobber_it(cli, tmp_path):
    data = write_toy_data_dir(tmp_path / "data")
    run = tmp_path / "run"
    result = cli("train", data, "--out", run, "--sample-type", SAMPLE, "--preset", "tiny", "--steps", "4")
    assert result.exit_code == 0, result.output
    assert (run / "generator.keras").is_file() and (run / "checkpoints").is_dir()
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["source"] == str(data.resolve()) and config["data"]["patch_size"] == 32

    again = cli("train", data, "--out", run, "--preset", "tiny")
    assert again.exit_code == 2 and "already exists" in again.output and "--resume" in again.output
    nothing = cli("train", data, "--out", tmp_path / "other", "--resume")
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.output
    wrong = cli("train", data, "--out", tmp_path / "other", "--sample-type", "hydrogel")
    assert wrong.exit_code == 2 and "does not match" in wrong.output


def test_init_from_passes_the_zoo_version_and_refuses_resume(cli, fake_train, tmp_path):
    from tests.zoo_fixtures import make_tiny_zoo

    root = make_tiny_zoo(tmp_path / "models", seeds=[4])
    data = write_toy_data_dir(tmp_path / "data")
    result = cli("train", data, "--out", tmp_path / "run", "--preset", "tiny",
                 "--init-from", "tiny@stable", "--zoo", root)
    assert result.exit_code == 0, result.output
    (call,) = fake_train.calls
    assert call["init_from"].ref == "tiny:1" and call["init_from"].weights

    refused = cli("train", data, "--out", tmp_path / "run", "--resume", "--init-from", "tiny",
                  "--zoo", root)
    assert refused.exit_code == 2 and refused.output.startswith("error:")
    assert "--init-from starts a new run" in refused.output
    unknown = cli("train", data, "--out", tmp_path / "run2", "--preset", "tiny",
                  "--init-from", "nope", "--zoo", root)
    assert unknown.exit_code == 2 and "no model named 'nope'" in unknown.output
    other_preset = cli("train", data, "--out", tmp_path / "run2", "--init-from", "tiny", "--zoo", root)
    assert other_preset.exit_code == 2 and "pass --preset tiny" in other_preset.output
    assert len(fake_train.calls) == 1 and not (tmp_path / "run2").exists()


def test_set_options_become_typed_overrides(cli, fake_train, tmp_path):
    result = cli("train", tmp_path / "data", "--out", tmp_path / "run", "--set", "beta=1",
                 "--set", "lr_schedule=cosine", "--set", "d_widths=8,16")
    assert result.exit_code == 0, result.output
    (call,) = fake_train.calls
    assert call["overrides"] == {"beta": 1.0, "lr_schedule": "cosine", "d_widths": (8, 16)}
    for bad, message in (("beta", "use KEY=VALUE"), ("colour=red", "unknown training setting 'colour'"),
                         ("steps=many", "bad value 'many' for steps")):
        refused = cli("train", tmp_path / "data", "--out", tmp_path / "run", "--set", bad)
        assert refused.exit_code == 2 and refused.output.startswith("error:") and message in refused.output
    assert len(fake_train.calls) == 1


def test_a_saturated_discriminator_is_reported_after_training(cli, fake_train, tmp_path):
    args = ("train", tmp_path / "data", "--out", tmp_path / "run", "--sample-type", SAMPLE, "--preset", "tiny")
    result = cli(*args)
    assert result.exit_code == 0 and "warning" not in result.output
    fake_train.extra_history = {"step": [250, 500, 750], "discriminator_saturated_at": [500, 750]}
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert ("warning: the discriminator was saturated (D(real) and D(fake) both near 0 or 1) in 2 of 3 "
            "epochs, first at step 500") in result.output
