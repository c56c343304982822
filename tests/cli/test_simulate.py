"""`semzoo simulate`: writes the data-set layout, refuses bad input with one line and no output."""

from __future__ import annotations

import json

import pytest

from zoo.data.sem_tiff import read_sem


def test_simulate_writes_pairs_truth_and_preview(cli, tmp_path):
    out = tmp_path / "raw"
    result = cli("simulate", out, "--pairs", "2", "--seed", "4", "--size", "96x64")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "lr").iterdir()) == ["pair-000.tif", "pair-001.tif"]
    assert sorted(p.name for p in (out / "hr").iterdir()) == ["pair-000.tif", "pair-001.tif"]
    assert (out / "preview.png").stat().st_size > 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["sample"] == "gold-on-carbon" and truth["seed"] == 4 and truth["size"] == [96, 64]
    lr = read_sem(out / "lr" / "pair-001.tif")
    assert lr.image.shape == (64, 96) and lr.pixel_size_nm == pytest.approx(14.2)
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("wrote 2 gold-on-carbon pair(s) of 96x64") and "s/pair" in summary


def test_simulate_hydrogel_options(cli, tmp_path):
    out = tmp_path / "gel"
    result = cli("simulate", out, "--sample", "hydrogel", "--size", "64x80", "--probe-fwhm", "10", "--dose", "100")
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "truth.json").read_text())
    assert truth["probe_fwhm_nm"] == 10.0 and truth["electrons_per_pixel"] == 100.0
    assert truth["lr_pixel_size_nm"] == 56.8 and list(truth["pairs"]) == ["pair-000"]
    assert read_sem(out / "hr" / "pair-000.tif").pixel_size_nm == pytest.approx(28.4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "12x"], "bad size"),
        (["--size", "32x32"], "out of range"),
        (["--size", "5000x100"], "out of range"),
        (["--pairs", "0"], "at least 1"),
        (["--sample", "copper"], "unknown sample type"),
        (["--probe-fwhm", "-2"], "probe FWHM"),
        (["--seed", "-3"], "seed"),
        (["--set", "median_diameter_nm=40"], "give --preset too"),
        (["--preset", "paper-calibrated", "--set", "colour=red"], "unknown specimen setting 'colour'"),
        (["--preset", "paper-calibrated", "--set", "median_diameter_nm=big"], "bad value 'big' for median_diameter_nm"),
        (["--preset", "paper-calibrated", "--set", "narrow_gap_nm=3"], "expected LO,HI"),
        (["--preset", "paper-calibrated", "--set", "median_diameter_nm"], "use KEY=VALUE"),
    ],
)
def test_simulate_refuses_bad_input_with_one_line_and_no_output(cli, tmp_path, args, message):
    out = tmp_path / "raw"
    result = cli("simulate", out, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists()


def test_simulate_refuses_to_overwrite_unless_asked(cli, tmp_path):
    out = tmp_path / "raw"
    assert cli("simulate", out, "--size", "64x64").exit_code == 0
    before = (out / "hr" / "pair-000.tif").read_bytes()
    result = cli("simulate", out, "--size", "64x64", "--seed", "1")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "hr" / "pair-000.tif").read_bytes() == before
    result = cli("simulate", out, "--size", "64x64", "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "hr" / "pair-000.tif").read_bytes() != before
    assert json.loads((out / "truth.json").read_text())["seed"] == 1


def test_simulate_help_has_one_line_summary(cli):
    result = cli("simulate", "--help")
    assert result.exit_code == 0
    assert "Simulate co-registered low/high-magnification SEM image pairs" in result.output
    for option in ("--sample", "--pairs", "--seed", "--size", "--overwrite", "--probe-fwhm", "--dose"):
        assert option in result.output


def test_simulate_set_changes_the_presets_specimen_and_records_it(cli, tmp_path):
    common = ["--preset", "paper-calibrated", "--size", "256x256", "--seed", "3"]
    assert cli("simulate", tmp_path / "plain", *common).exit_code == 0
    result = cli("simulate", tmp_path / "small", *common, "--set", "median_diameter_nm=30",
                 "--set", "narrow_gap_nm=3,12")
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "small" / "truth.json").read_text())
    assert truth["specimen_overrides"] == {"median_diameter_nm": 30.0, "narrow_gap_nm": [3.0, 12.0]}

    def median_radius(folder):
        pair = json.loads((tmp_path / folder / "truth.json").read_text())["pairs"]["pair-000"]
        return sorted(p["radius_nm"] for p in pair["particles"])[len(pair["particles"]) // 2]

    assert median_radius("small") < 0.6 * median_radius("plain")  # 30 nm against the preset's 90 nm
