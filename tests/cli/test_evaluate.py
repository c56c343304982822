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
    for name in ("report.md", "results.json", "fig1_closeups.png", "fig2_gap_profiles.png", "fig3_gap_sizes.png", "fig4_spectra.png"):
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


def test_a_folder_written_by_enhance_is_evaluated_without_its_consistency_maps(cli, data, tmp_path):
    folder, truth_file = data
    for sr in sorted((folder / "sr").glob("*.tif")):  # as `semzoo enhance` leaves them
        (folder / "sr" / f"{sr.stem}.consistency.tif").write_bytes(sr.read_bytes())
    result = cli("evaluate", "--input", folder / "lr", "--output", folder / "sr", "--target", folder / "hr",
                 "--truth", truth_file, "--report", tmp_path / "report", "--json")
    assert result.exit_code == 0, result.output
    assert [p["name"] for p in json.loads(result.stdout)["per_pair"]] == ["pair-000", "pair-001"]
    (folder / "sr" / "pair-000.tif").unlink()  # a map without its output is an output without an input
    result = cli("evaluate", "--input", folder / "lr", "--output", folder / "sr", "--target", folder / "hr",
                 "--report", tmp_path / "report2")
    assert result.exit_code != 0 and "pair-000.consistency (no input" in result.output


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


# -- HR-only mode: real images without pairs -----------------------------------------------------


@pytest.fixture(scope="module")
def hr_zoo(tmp_path_factory):
    """tiny:1 (x2, with a 5x5 conv so tiling shows) and quad:1, whose card says x4."""
    from tests.server.tiny_models import publish, save_tiny_model, tiny_card
    from zoo.registry.store import Zoo

    root = tmp_path_factory.mktemp("hr-zoo")
    publish(root, "tiny", conv=True, label="stable")  # 14.2 nm LR; tile 32, overlap 2
    card = {**tiny_card("quad"), "scale": 4, "output_pixel_size_nm": 14.2 / 4}
    Zoo(root).publish_version("quad", lambda tmp: save_tiny_model(tmp, card))
    return root


def _hr_folder(folder, rng, n=2, shape=(96, 112)):
    """Smooth uint16 'real' images at 7.1 nm/px (their LR has the tiny model's 14.2 nm)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        image = cv2.GaussianBlur(rng.normal(size=shape), (0, 0), 2.0)
        image = 30000 + 8000 * image / image.std() + 300 * rng.normal(size=shape)
        write_sem(folder / f"real-{k}.tif", np.clip(image, 0, 65535).astype(np.uint16), PIXEL_NM * 3.55)
    return folder


def test_hr_only_end_to_end_with_a_tiny_model(cli, hr_zoo, tmp_path, rng):
    from zoo.data.sem_tiff import read_sem
    from zoo.evaluation import real_images

    folder = _hr_folder(tmp_path / "hr", rng)
    single = _hr_folder(tmp_path / "more", rng, n=1, shape=(64, 80)) / "real-0.tif"
    report = tmp_path / "report"
    result = cli("evaluate", "--hr-only", folder, "--hr-only", single, "--model", "tiny", "--zoo", hr_zoo,
                 "--report", report)
    assert result.exit_code == 0, result.output
    assert "vs Lanczos" in result.output and "report.md" in result.output and "warning" not in result.output
    data = json.loads((report / "results.json").read_text())
    assert data["candidates"] == ["nearest", "bicubic", "lanczos", "tiny:1"] and data["models"] == ["tiny:1"]
    assert [r["name"] for r in data["per_image"]] == ["real-0", "real-1", "real-0-2"]
    assert data["images"] == 3 and data["inputs"]["models"] == ["tiny"]
    for row in data["per_image"]:
        assert row["pixel_size_nm"] == pytest.approx(7.1) and row["noise_ceiling_psnr_db"] > 20
        for s in row["candidates"].values():
            assert set(s) == {"psnr_db", "ssim", "psnr_lines_db", "shift_px", "gain", "offset"} and len(s["shift_px"]) == 2
            assert s["psnr_lines_db"] > 0  # the unscanned lines, scored on their own
        assert (report / row["figure"]).is_file()
    agg = data["aggregate"]
    assert agg["lanczos"]["psnr_db"] > agg["nearest"]["psnr_db"]
    assert agg["nearest"]["images_below_lanczos"] == 3
    assert agg["tiny:1"]["worst_psnr_vs_lanczos_db"] <= agg["tiny:1"]["psnr_vs_lanczos_db"]
    md = (report / "report.md").read_text()
    assert "every second pixel" in md and "| tiny:1 |" in md and "noise ceiling" in md
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) == 3 and sum(p.stat().st_size for p in pngs) < 2_000_000
    assert cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).ndim == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    # The model ran as `semzoo enhance` runs it: enhancing the LR file gives the same score.
    hr = real_images.read_hr(folder / "real-1.tif")
    lr_file = tmp_path / "lr.tif"
    write_sem(lr_file, real_images.lr_record(hr.image).astype(np.uint16), 14.2)
    assert cli("enhance", lr_file, "-o", tmp_path / "sr.tif", "--zoo", hr_zoo, "--model", "tiny:1").exit_code == 0
    enhanced = read_sem(tmp_path / "sr.tif").image
    score, _ = real_images.score(enhanced, hr.image, real_images.scored_mask(hr.image.shape))
    assert data["per_image"][1]["candidates"]["tiny:1"]["psnr_db"] == score.psnr_db


def test_hr_only_json_without_models(cli, tmp_path, rng):
    folder = _hr_folder(tmp_path / "hr", rng, n=1)
    report = tmp_path / "r"
    result = cli("evaluate", "--hr-only", folder, "--report", report, "--json", "--pixel-size", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the --pixel-size override's warning is on stderr
    assert "overrides the metadata" in result.stderr
    assert list(data["aggregate"]) == ["nearest", "bicubic", "lanczos"] and data["models"] == []
    assert data["per_image"][0]["pixel_size_nm"] == 3.0 and data["report"] == str(report)
    assert data["aggregate"]["lanczos"]["psnr_vs_lanczos_db"] == 0


def test_hr_only_refusals_are_one_line_errors_that_write_nothing(cli, hr_zoo, tmp_path, rng):
    folder = _hr_folder(tmp_path / "hr", rng, n=1)
    report = tmp_path / "rep"
    (tmp_path / "empty").mkdir()
    write_sem(tmp_path / "tiny.tif", np.zeros((24, 40), np.uint16), 7.1)
    cases = [
        (("--hr-only", folder, "--input", folder / "real-0.tif"), "drop --input"),
        (("--hr-only", folder, "--model", "nope", "--zoo", hr_zoo), "no model named 'nope'"),
        (("--hr-only", folder, "--model", "tiny:7", "--zoo", hr_zoo), "has no version 7"),
        (("--hr-only", folder, "--model", "quad", "--zoo", hr_zoo), "x4"),
        (("--hr-only", tmp_path / "empty"), "no HR image"),
        (("--hr-only", folder, "--hr-only", tmp_path / "tiny.tif"), "at least 32x32"),
        (("--input", folder / "real-0.tif"), "give --output, --target"),
    ]
    for args, message in cases:
        result = cli("evaluate", *args, "--report", report)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error:")
    assert not report.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    report.mkdir()
    (report / "keep.txt").write_text("mine")
    result = cli("evaluate", "--hr-only", folder, "--report", report)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert [p.name for p in report.iterdir()] == ["keep.txt"] and (report / "keep.txt").read_text() == "mine"
    result = cli("evaluate", "--hr-only", folder, "--report", report, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (report / "keep.txt").exists() and (report / "results.json").is_file()


def test_hr_only_a_model_that_does_not_load_is_a_clear_error(cli, hr_zoo, tmp_path, rng):
    import shutil

    zoo_copy = tmp_path / "zoo"
    shutil.copytree(hr_zoo / "tiny", zoo_copy / "tiny")
    (zoo_copy / "tiny" / "1" / "saved_model.pb").write_bytes(b"not a graph")
    folder = _hr_folder(tmp_path / "hr", rng, n=1)
    result = cli("evaluate", "--hr-only", folder, "--model", "tiny", "--zoo", zoo_copy, "--report", tmp_path / "r")
    assert result.exit_code == 2 and "cannot load tiny:1" in result.output, result.output
    assert not (tmp_path / "r").exists()
