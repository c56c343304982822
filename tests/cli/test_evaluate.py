"""`semzoo evaluate`: files and folders, truth or none, the report, and its refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from zoo.data.sem_tiff import write_sem
from tests.evaluation.conftest import PIXEL_NM, render, scene  # noqa: F401 (fixture)


def _write_pair(folder, name, truth, shape, rng, *, lr_native=True):
    """input (LR), output and target TIFFs for one synthetic scene (uint16, like SEM files)."""
    target = render(truth["particles"], shape, sigma_px=0.7) + 0.02 * rng.normal(size=shape)
    output = render(truth["particles"], shape, sigma_px=0.9) + 0.02 * rng.normal(size=shape)
    blurred = render(truth["particles"], shape, sigma_px=2.0).astype(np.float32)
    if lr_native:
        lr = cv2.resize(blurred, (shape[1] // 2, shape[0] // 2), interpolation=cv2.INTER_AREA)
        lr_px = 2 * PIXEL_NM
    else:
        lr, lr_px = blurred, PIXEL_NM
    lr = lr + 0.02 * rng.normal(size=lr.shape)
    to16 = lambda a: np.clip(a * 20000 + 3000, 0, 65535).astype(np.uint16)  # noqa: E731
    paths = {}
    for role, img, px in (("lr", lr, lr_px), ("sr", output, PIXEL_NM), ("hr", target, PIXEL_NM)):
        (folder / role).mkdir(parents=True, exist_ok=True)
        paths[role] = write_sem(folder / role / f"{name}.tif", to16(img), px)
    return paths


@pytest.fixture
def data(tmp_path, scene, rng):  # noqa: F811
    truth, shape = scene
    for name in ("pair-000", "pair-001"):
        _write_pair(tmp_path / "data", name, truth, shape, rng)
    truth_file = tmp_path / "data" / "truth.json"
    truth_file.write_text(json.dumps({"pairs": {"pair-000": truth, "pair-001": truth}}))
    return tmp_path / "data", truth_file


def test_evaluate_folders_with_truth_writes_a_report(cli, data, tmp_path):
    folder, truth_file = data
    report = tmp_path / "report"
    result = cli(
        "evaluate", "--input", folder / "lr", "--output", folder / "sr", "--target", folder / "hr",
        "--truth", truth_file, "--report", report,
    )
    assert result.exit_code == 0, result.output
    for name in ("report.md", "results.json", "fig2_gap_profiles.png", "fig3_gap_sizes.png", "fig4_spectra.png"):
        assert (report / name).stat().st_size > 0, name
    assert cv2.imread(str(report / "fig4_spectra.png")) is not None
    numbers = json.loads((report / "results.json").read_text())
    assert numbers["pairs"] == 2
    assert list(numbers["aggregate"]) == ["nearest", "bicubic", "input", "output", "target"]
    assert numbers["gaps"]["target"]["n_gaps"] == 2 * 16
    assert numbers["aggregate"]["target"]["undetected_gaps_percent"] == 0
    # The sharper "output" shows more gaps and scores higher than the blurred input.
    agg = numbers["aggregate"]
    assert agg["output"]["psnr_db"] > agg["input"]["psnr_db"]
    assert agg["output"]["undetected_gaps_percent"] < agg["input"]["undetected_gaps_percent"]
    md = (report / "report.md").read_text()
    assert "| output |" in md and "## Per pair" in md and "fig3_gap_sizes.png" in md
    assert "undetected" in result.output and "report.md" in result.output
    assert "input (Lanczos x2)" in result.output


def test_evaluate_single_files_without_truth_json(cli, tmp_path, scene, rng):  # noqa: F811
    truth, shape = scene
    paths = _write_pair(tmp_path, "one", truth, shape, rng, lr_native=False)
    report = tmp_path / "r"
    result = cli(
        "evaluate", "-i", paths["lr"], "-o", paths["sr"], "-t", paths["hr"], "--report", report, "--json"
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    assert list(numbers["aggregate"]) == ["input", "output", "target"]  # no LR: no baselines
    assert numbers["per_pair"][0]["gap_source"] == "found in the target"
    assert numbers["gaps"]["target"]["n_gaps"] > 0
    assert numbers["report"] == str(report)


def test_refuses_a_non_empty_report_unless_overwrite(cli, data, tmp_path):
    folder, truth_file = data
    report = tmp_path / "report"
    report.mkdir()
    (report / "keep.txt").write_text("mine")
    args = ["evaluate", "-i", folder / "lr" / "pair-000.tif", "-o", folder / "sr" / "pair-000.tif",
            "-t", folder / "hr" / "pair-000.tif", "--truth", truth_file, "--report", report]
    result = cli(*args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (report / "keep.txt").read_text() == "mine"
    result = cli(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (report / "keep.txt").exists() and (report / "report.md").exists()


def test_refusals_are_one_line_errors(cli, data, tmp_path, rng):
    folder, truth_file = data
    lr, sr, hr = (folder / d / "pair-000.tif" for d in ("lr", "sr", "hr"))
    report = tmp_path / "rep"
    # Output and target on different grids.
    write_sem(tmp_path / "small.tif", np.zeros((50, 60), np.uint16), PIXEL_NM)
    result = cli("evaluate", "-i", lr, "-o", tmp_path / "small.tif", "-t", hr, "--report", report)
    assert result.exit_code == 2 and "same grid" in result.output
    # An input that is neither the target's size nor half of it.
    result = cli("evaluate", "-i", tmp_path / "small.tif", "-o", sr, "-t", hr, "--report", report)
    assert result.exit_code == 2 and "1/2 of its size" in result.output
    # Files mixed with folders; a missing file; a truth.json without the pair.
    result = cli("evaluate", "-i", folder / "lr", "-o", sr, "-t", hr, "--report", report)
    assert result.exit_code == 2 and "three files or three folders" in result.output
    result = cli("evaluate", "-i", lr, "-o", tmp_path / "nope.tif", "-t", hr, "--report", report)
    assert result.exit_code == 2 and "does not exist" in result.output
    bad_truth = tmp_path / "t.json"
    bad_truth.write_text(json.dumps({"pairs": {"a": {}, "b": {}}}))
    result = cli("evaluate", "-i", lr, "-o", sr, "-t", hr, "--truth", bad_truth, "--report", report)
    assert result.exit_code == 2 and "no pair named 'pair-000'" in result.output
    # A target without a pixel size needs --pixel-size.
    write_sem(tmp_path / "hr_nopx.tif", cv2.imread(str(hr), cv2.IMREAD_UNCHANGED), None)
    result = cli("evaluate", "-i", lr, "-o", sr, "-t", tmp_path / "hr_nopx.tif", "--report", report)
    assert result.exit_code == 2 and "--pixel-size" in result.output
    # Folders whose outputs lack a target.
    (folder / "sr" / "extra.tif").write_bytes((folder / "sr" / "pair-000.tif").read_bytes())
    result = cli("evaluate", "-i", folder / "lr", "-o", folder / "sr", "-t", folder / "hr", "--report", report)
    assert result.exit_code == 2 and "extra" in result.output
    assert not report.exists()  # nothing written by any refusal
    for line in result.output.strip().splitlines():
        assert line.startswith("error:")


def test_load_truth_gives_every_pair_the_files_probe(tmp_path):
    from zoo.cli.evaluate import load_truth

    path = tmp_path / "truth.json"
    path.write_text(json.dumps({"probe_fwhm_nm": 3.0, "pairs": {"a": {"gaps": []}, "b": {"probe_fwhm_nm": 2.0}}}))
    pairs = load_truth(path)
    assert pairs["a"]["probe_fwhm_nm"] == 3.0 and pairs["b"]["probe_fwhm_nm"] == 2.0
    path.write_text(json.dumps({"pairs": {"a": {"gaps": []}}}))
    assert "probe_fwhm_nm" not in load_truth(path)["a"]
