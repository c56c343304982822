"""`semzoo finetune`: arguments reach the library, the table is printed, refusals exit 2.

The fine-tune itself (tiny preset, real training) is tested in tests/training/test_finetune.py;
here the library call is replaced by a recorder, except for the refusals, which stop before any
training.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.zoo_fixtures import make_tiny_zoo


def fake_result(**calls):
    from zoo.training.finetune import FinetuneResult, FoldResult

    table = {
        "lanczos": {"psnr_db": 20.0, "ssim": 0.5},
        "parent": {"psnr_db": 21.0, "ssim": 0.55, "undetected_gaps_percent": 40.0,
                   "gap_size_error_nm": 3.0, "invented_gaps_percent": math.nan},
        "finetuned": {"psnr_db": 22.5, "ssim": 0.6, "undetected_gaps_percent": 20.0,
                      "gap_size_error_nm": 2.0, "invented_gaps_percent": math.nan},
    }
    folds = [FoldResult(f"held out {n}", ["x"], [n], 4, 8, 0.3, 0.4, table) for n in ("a", "b [columns 96:]")]
    card = {"evaluation": {"method": "leave-one-out over pairs; the published model is retrained on every pair",
                           "table": table},
            "training": {"calibration": {"self": {"method": "trained on the images' own records"}}}}
    return FinetuneResult("new", 3, "tiny:1", card, folds, table, 4, "f" * 64, ["a warning"], 12.0, 20.0)


@pytest.fixture
def recorder(monkeypatch):
    import zoo.training.finetune as ft

    calls = []

    def fake(calib, **kwargs):
        calls.append((calib, kwargs))
        kwargs["progress"](5, 10)
        kwargs["progress"](10, 10)
        return fake_result()

    monkeypatch.setattr(ft, "finetune", fake)
    return calls


def test_arguments_reach_the_library(cli, recorder, tmp_path):
    result = cli("finetune", tmp_path / "calib", "--from", "gold-on-carbon@stable", "--name", "new",
                 "--zoo", tmp_path / "zoo", "--steps", "50", "--freeze", "none", "--label", "canary",
                 "--pixel-size", "56.8", "--hr-pixel-size", "28.4", "--seed", "31", "--no-noise-split",
                 "--set", "beta=0.05", "--set", "lr_schedule=cosine", "--self")
    assert result.exit_code == 0, result.output
    (calib, kwargs), = recorder
    assert calib == tmp_path / "calib"
    assert {k: v for k, v in kwargs.items() if k != "progress"} == {
        "parent": "gold-on-carbon@stable", "name": "new", "zoo_root": tmp_path / "zoo", "steps": 50,
        "freeze": "none", "label": "canary", "pixel_size_nm": 56.8, "hr_pixel_size_nm": 28.4, "seed": 31, "noise_split": False,
        "settings": {"beta": 0.05, "lr_schedule": "cosine"}, "self_calibration": True}
    out = result.output
    for text in ("Lanczos x2", "parent", "fine-tuned", "22.50", "0.600", "undetected gaps", "fold: held out b [columns 96:]",
                 "published new:3 @canary (parent tiny:1", "+1.50 dB", "warning: a warning", "leave-one-out",
                 "trained on the images' own records"):
        assert text in out, text


def test_defaults_and_json(cli, recorder, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMZOO_ZOO", str(tmp_path / "env-zoo"))
    result = cli("finetune", tmp_path / "calib", "--from", "m", "--name", "new", "--json")
    assert result.exit_code == 0, result.output
    (_, kwargs), = recorder
    assert (kwargs["zoo_root"], kwargs["steps"], kwargs["freeze"], kwargs["label"], kwargs["seed"], kwargs["noise_split"],
            kwargs["settings"], kwargs["self_calibration"]) == (tmp_path / "env-zoo", None, "encoder", None, 0, True, {}, False)
    doc = json.loads(result.stdout)  # stdout holds the JSON alone
    assert (doc["name"], doc["version"], doc["parent"]) == ("new", 3, "tiny:1")


def test_freeze_choices_are_checked(cli, recorder, tmp_path):
    result = cli("finetune", tmp_path, "--from", "m", "--name", "n", "--freeze", "decoder")
    assert result.exit_code == 2 and not recorder


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return make_tiny_zoo(tmp_path_factory.mktemp("zoo") / "models")


def test_refusals_are_one_line_errors(cli, tiny_zoo, tmp_path):
    (tmp_path / "calib" / "lr").mkdir(parents=True)
    (tmp_path / "calib" / "hr").mkdir()
    cases = [
        (("--from", "nope", "--name", "new"), "no model named 'nope'"),
        (("--from", "tiny", "--name", "new"), "no calibration images"),
        (("--from", "tiny", "--name", "New!"), "invalid model name"),
        (("--from", "tiny", "--name", "new", "--set", "bogus=1"), "unknown training setting 'bogus'"),
        (("--from", "tiny", "--name", "new", "--set", "beta"), "KEY=VALUE"),
        (("--from", "tiny", "--name", "new", "--set", "g_widths=8,8,8,8,8"), "keeps the parent's generator"),
        (("--from", "tiny", "--name", "new", "--set", "validate_every=3"), "its own validation schedule"),
        (("--from", "tiny", "--name", "new", "--set", "lr_schedule=wavy"), "lr_schedule must be one of"),
        (("--from", "tiny", "--name", "new", "--self"), "--self learns from the images to enhance alone"),
    ]
    for args, message in cases:
        result = cli("finetune", tmp_path / "calib", "--zoo", tiny_zoo, *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tiny_zoo.iterdir()) == ["tiny"]


def test_a_corrupt_truth_json_is_a_one_line_error(cli, tiny_zoo, tmp_path):
    from tests.cli.test_prepare import write_raw

    calib = write_raw(tmp_path / "calib", n=1)
    (calib / "truth.json").write_text('{"pairs": {"pair-000": ')  # cut short
    result = cli("finetune", calib, "--zoo", tiny_zoo, "--from", "tiny", "--name", "new")
    assert result.exit_code == 2, result.output
    assert "truth.json is not readable JSON" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert sorted(p.name for p in tiny_zoo.iterdir()) == ["tiny"]
