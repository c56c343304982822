"""`semzoo info`: table, --json, --pixel-size, and bad files among good ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from zoo.cli import info as info_cli
from zoo.data import sem_tiff
from zoo.data.sem_tiff import write_sem

KEYS = {"path", "vendor", "width", "height", "dtype", "pixel_size_nm", "pixel_size_source", "databar_rows"}


@pytest.fixture
def files(tmp_path, rng):
    scaled = write_sem(tmp_path / "scaled.tif", rng.integers(0, 60000, (20, 30)).astype(np.uint16), 7.1)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, rng.random((12, 10)).astype(np.float32))
    return scaled, plain


def test_json_lists_every_file(cli, files):
    scaled, plain = files
    result = cli("info", "--json", scaled, plain)
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [r["path"] for r in reports] == [str(scaled), str(plain)]
    assert all(KEYS <= set(r) for r in reports)
    assert reports[0] | {"warnings": []} == {
        "path": str(scaled),
        "vendor": "semzoo",
        "width": 30,
        "height": 20,
        "dtype": "uint16",
        "pixel_size_nm": 7.1,
        "pixel_size_source": "semzoo metadata",
        "databar_rows": 0,
        "warnings": [],
    }
    assert (reports[1]["vendor"], reports[1]["pixel_size_nm"], reports[1]["dtype"]) == ("unknown", None, "float32")


def test_pixel_size_option_overrides(cli, files):
    scaled, plain = files
    result = cli("info", "--json", "--pixel-size", "3.5", scaled, plain)
    assert result.exit_code == 0, result.output
    assert [(r["pixel_size_nm"], r["pixel_size_source"]) for r in json.loads(result.stdout)] == [(3.5, "user")] * 2


def test_table_shows_vendor_size_and_source(cli, files):
    scaled, plain = files
    result = cli("info", scaled, plain)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    row = next(line for line in lines if "scaled.tif" in line)
    for cell in ("semzoo", "30", "20", "uint16", "7.1", "semzoo metadata"):
        assert cell in row
    row = next(line for line in lines if "plain.tif" in line and "│" in line)
    assert "unknown" in row and "none" in row
    assert "plain.tif: no pixel size in its metadata" in result.stdout


def test_bad_files_are_named_after_the_good_ones_and_exit_2(cli, files, tmp_path):
    scaled, _ = files
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.tif"
    result = cli("info", "--json", empty, scaled, missing)
    assert result.exit_code == 2
    assert [r["path"] for r in json.loads(result.stdout)] == [str(scaled)]
    assert result.stderr.splitlines() == [f"error: {empty}: empty file", f"error: {missing}: no such file"]


def test_max_pixels_option(cli, files):
    scaled, _ = files
    result = cli("info", "--max-pixels", "100", scaled)
    assert result.exit_code == 2
    assert "over the pixel budget of 100" in result.stderr


def test_no_files_is_a_usage_error(cli):
    result = cli("info")
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_default_budget_matches_the_library():
    assert info_cli.DEFAULT_MAX_PIXELS == sem_tiff.DEFAULT_MAX_PIXELS


def test_real_samples(cli, sem_samples):
    result = cli(
        "info", "--json", sem_samples / "FEI-Helios-Ebeam-16bits.tif", sem_samples / "test_tiff_Zeiss_SEM_512pix.tif"
    )
    assert result.exit_code == 0, result.output
    fei, zeiss = json.loads(result.stdout)
    assert (fei["vendor"], fei["width"], fei["height"], fei["databar_rows"]) == ("FEI", 512, 442, 29)
    assert fei["pixel_size_nm"] == pytest.approx(3372.4)
    assert (zeiss["vendor"], zeiss["width"], zeiss["height"], zeiss["dtype"]) == ("Zeiss", 512, 350, "uint8")
    assert zeiss["databar_rows"] == 34  # the data zone SmartSEM drew over the bottom rows
    assert zeiss["pixel_size_nm"] == pytest.approx(5965 / 512)
