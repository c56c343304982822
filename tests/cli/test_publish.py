"""`semzoo publish RUN --name NAME`: card from the run, export, atomic publish, labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.zoo_fixtures import tiny_generator
from zoo.registry.card import read_card
from zoo.registry.store import Zoo

MANIFEST = {
    "sample_type": "gold-on-carbon",
    "lr_pixel_size_nm": 14.2,
    "hr_pixel_size_nm": 7.1,
    "scale": 2,
    "patch_size": 128,
    "pairs": [{"name": f"pair-{i:03d}", "split": "train" if i else "val"} for i in range(5)],
    "patches": {"train": 300, "val": 60, "dropped": 12},
    "dataset_hash": "3f2a9c",
    "simulated": True,
}


@pytest.fixture(scope="module")
def generator():
    return tiny_generator(seed=0)


@pytest.fixture
def fake_runs(monkeypatch, generator):
    """Stands in for zoo.training.rundir.load_run (no training needed); records the run
    directories it was given."""
    import zoo.training.publish as publish_module
    from zoo.training.rundir import Run

    calls: list[Path] = []

    def load_run(run_dir):
        calls.append(Path(run_dir))
        config = json.loads((Path(run_dir) / "config.json").read_text())
        finished = not (Path(run_dir) / "UNFINISHED").exists()
        history = {"step": [600, 1200], **({"steps_done": 1200} if finished else {})}
        return Run(generator, config, dict(MANIFEST), history, Path(run_dir), finished=finished,
                   steps_done=1200)

    monkeypatch.setattr(publish_module, "load_run", load_run)
    return calls


@pytest.fixture
def quick_tiles(monkeypatch):
    """Skip the receptive-field measurement (tested in tests/registry) where it is not the point."""
    monkeypatch.setattr("zoo.registry.export.tile_geometry",
                        lambda generator, **kwargs: {"size": 64, "overlap": 16, "divisor": 8})


def make_run(tmp_path: Path, evaluation: dict | None = None, **config) -> Path:
    from zoo.nets.generator import receptive_field_radius_lr
    from zoo.nets.presets import get_preset

    run = tmp_path / "run"
    run.mkdir()
    run_config = {"format": "semzoo-run/2", "preset": "tiny", "sample_type": "gold-on-carbon",
                  "seed": 3, "scale": 2, "training": {"steps": 2000},
                  "generator": {"divisor": 8, "parameters": 22713,
                                "receptive_field_radius_lr": receptive_field_radius_lr(get_preset("tiny"))},
                  **config}
    (run / "config.json").write_text(json.dumps(run_config))
    if evaluation is not None:
        (run / "evaluation.json").write_text(json.dumps(evaluation))
    return run


def test_publish_builds_the_card_from_the_run(cli, tmp_path, fake_runs):
    run = make_run(tmp_path, evaluation={"output": {"psnr": 26.0}},
                   training={"steps": 2000, "alpha": 0.08, "beta": 0.05, "gap_weight": 24.0,
                             "contact_weight": 2.0, "g_learning_rate": 2e-4})
    zoo_root = tmp_path / "models"
    result = cli("publish", run, "--name", "gold-on-carbon", "--zoo", zoo_root, "--label", "stable")
    assert result.exit_code == 0, result.output
    assert fake_runs == [run]
    assert "published gold-on-carbon:1 (label stable)" in result.output
    zoo = Zoo(zoo_root)
    assert zoo.versions("gold-on-carbon") == [1] and zoo.labels("gold-on-carbon") == {"stable": 1}
    assert zoo.verify("gold-on-carbon", 1) == []
    card = read_card(zoo.version_dir("gold-on-carbon", 1))
    assert card["sample_type"] == "gold-on-carbon"
    assert card["input_pixel_size_nm"] == 14.2 and card["output_pixel_size_nm"] == pytest.approx(7.1)
    assert card["training"] == {"pairs": 5, "patches": 360, "simulated": True, "dataset_hash": "3f2a9c",
                                "steps": 1200, "preset": "tiny", "seed": 3, "parameters": 22713,
                                "loss": {"alpha": 0.08, "beta": 0.05, "gap_weight": 24.0, "contact_weight": 2.0}}
    assert card["evaluation"] == {"output": {"psnr": 26.0}}
    assert card["parent"] is None
    assert card["tile"]["overlap"] >= 1 and card["tile"]["size"] % card["tile"]["divisor"] == 0


def test_second_publish_is_the_next_version_and_sample_type_overrides(cli, tmp_path, fake_runs, quick_tiles):
    run = make_run(tmp_path)
    zoo_root = tmp_path / "models"
    assert cli("publish", run, "--name", "m", "--zoo", zoo_root).exit_code == 0
    result = cli("publish", run, "--name", "m", "--zoo", zoo_root, "--sample-type", "hydrogel")
    assert result.exit_code == 0, result.output
    zoo = Zoo(zoo_root)
    assert zoo.versions("m") == [1, 2] and zoo.labels("m") == {}
    assert zoo.card("m", 2)["sample_type"] == "hydrogel"
    assert zoo.card("m", 1)["evaluation"] == {}  # no evaluation.json: an empty table
    assert zoo.card("m", 1)["tile"] == {"size": 64, "overlap": 16, "divisor": 8}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "../escape"], "invalid model name"),
        (["--name", "ok", "--label", "7"], "invalid label"),
    ],
)
def test_bad_names_publish_nothing(cli, tmp_path, fake_runs, args, message):
    run = make_run(tmp_path)
    result = cli("publish", run, *args, "--zoo", tmp_path / "models")
    assert result.exit_code == 2 and message in result.output
    assert fake_runs == [] and not (tmp_path / "models").exists()


def test_missing_run_and_bad_manifest_are_user_errors(cli, tmp_path, fake_runs, monkeypatch):
    result = cli("publish", tmp_path / "nope", "--name", "m", "--zoo", tmp_path / "models")
    assert result.exit_code == 2 and "no training run" in result.output
    run = make_run(tmp_path)
    monkeypatch.setitem(MANIFEST, "hr_pixel_size_nm", 5.0)
    result = cli("publish", run, "--name", "m", "--zoo", tmp_path / "models")
    assert result.exit_code == 2 and "do not match its scale factor" in result.output
    assert Zoo(tmp_path / "models").models() == []


def test_publish_run_library_call(tmp_path, fake_runs, quick_tiles):
    from zoo.training.publish import publish_run

    run = make_run(tmp_path)
    assert publish_run(run, "lib", tmp_path / "models", label="canary") == ("lib", 1)
    assert Zoo(tmp_path / "models").resolve("lib@canary") == ("lib", 1)


def test_unfinished_run_needs_the_flag(cli, tmp_path, fake_runs, quick_tiles):
    run = make_run(tmp_path)
    (run / "UNFINISHED").touch()
    result = cli("publish", run, "--name", "m", "--zoo", tmp_path / "models")
    assert result.exit_code == 2
    assert "is unfinished (stopped at step 1200 of 2000)" in result.output
    assert Zoo(tmp_path / "models").models() == []
    result = cli("publish", run, "--name", "m", "--zoo", tmp_path / "models", "--unfinished")
    assert result.exit_code == 0, result.output
    assert Zoo(tmp_path / "models").versions("m") == [1]


def test_evaluation_from_semzoo_evaluate_results(cli, tmp_path, fake_runs, quick_tiles):
    run = make_run(tmp_path, evaluation={"ignored": 1})
    results = tmp_path / "report" / "results.json"
    results.parent.mkdir()
    aggregate = {"input": {"psnr_db": 24.1, "undetected_gaps_percent": 13.9, "gap_size_error_nm": 3.8},
                 "output": {"psnr_db": 26.3, "undetected_gaps_percent": 3.7, "gap_size_error_nm": 2.1}}
    results.write_text(json.dumps({"pairs": 4, "aggregate": aggregate, "per_pair": [{"big": 1}]}))
    result = cli("publish", run, "--name", "m", "--zoo", tmp_path / "models", "--evaluation", results)
    assert result.exit_code == 0, result.output
    card = Zoo(tmp_path / "models").card("m", 1)
    assert card["evaluation"] == {"pairs": 4, "table": aggregate}
    listed = json.loads(cli("zoo", "list", "--zoo", tmp_path / "models", "--json").output)
    assert listed[0]["key_metrics"] == {"undetected_gaps_percent": 3.7, "gap_size_error_nm": 2.1, "psnr_db": 26.3}
    result = cli("publish", run, "--name", "m", "--zoo", tmp_path / "models", "--evaluation", tmp_path / "no.json")
    assert result.exit_code == 2 and "no evaluation file" in result.output
