"""read_sem on vendor files built in the tests: each vendor's pixel-size source and data bar."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tifffile

from zoo.data.sem_tiff import read_sem, require_pixel_size
from zoo.errors import UserError


@pytest.fixture
def scan(rng) -> np.ndarray:
    """A 40x30 uint16 'scan' whose bottom 8 rows play the data bar (all 65535)."""
    image = rng.integers(0, 4096, (40, 30)).astype(np.uint16)
    image[32:] = 65535
    return image


# --- FEI / Thermo Fisher ----------------------------------------------------------------------

FEI_TEXT = (
    "[User]\r\nDate=01/02/2024\r\nUser=tester\r\n\r\n"
    "[Beam]\r\nHV=5000\r\n\r\n"
    "[EBeam]\r\nHFW=2.13e-007\r\n\r\n"
    "[Scan]\r\nPixelWidth={pixel}\r\nPixelHeight={pixel}\r\n\r\n"
    "[Image]\r\nResolutionX=30\r\nResolutionY={rows}\r\n\r\n"
    "[PrivateFei]\r\nDatabarHeight=8\r\n"
)


@pytest.mark.parametrize("tag", [34682, 34680])  # FEI_HELIOS, FEI_SFEG
def test_fei_pixel_width_in_metres_and_databar_crop(tmp_path, scan, tag):
    path = tmp_path / "fei.tif"
    tifffile.imwrite(path, scan, extratags=[(tag, "s", 0, FEI_TEXT.format(pixel="7.1e-009", rows=32), True)])
    sem = read_sem(path)
    assert sem.vendor == "FEI"
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.pixel_size_source == "FEI [Scan] PixelWidth"
    assert (sem.height, sem.width, sem.databar_rows) == (32, 30, 8)
    np.testing.assert_array_equal(sem.image, scan[:32])
    assert sem.metadata["User"]["User"] == "tester"
    json.dumps(sem.metadata)


def test_fei_without_scan_section_uses_field_width(tmp_path, scan):
    text = "[EBeam]\r\nHFW=2.13e-007\r\n[Image]\r\nResolutionX=30\r\nResolutionY=32\r\n"
    path = tmp_path / "fib.tif"
    tifffile.imwrite(path, scan, extratags=[(34682, "s", 0, text, True)])
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(213 / 30)
    assert sem.pixel_size_source == "FEI [EBeam] HFW / [Image] ResolutionX"
    assert sem.databar_rows == 8


def test_fei_scan_height_larger_than_image_crops_nothing_and_warns(tmp_path, scan):
    path = tmp_path / "fei.tif"
    tifffile.imwrite(path, scan, extratags=[(34682, "s", 0, FEI_TEXT.format(pixel="7.1e-009", rows=99), True)])
    sem = read_sem(path)
    assert (sem.height, sem.databar_rows) == (40, 0)
    assert any("99 rows" in w for w in sem.warnings)


def test_fei_databar_leaving_one_row_is_an_error(tmp_path, scan):
    path = tmp_path / "fei.tif"
    tifffile.imwrite(path, scan, extratags=[(34682, "s", 0, FEI_TEXT.format(pixel="7.1e-009", rows=1), True)])
    with pytest.raises(UserError, match=r"fei\.tif: only 1 row"):
        read_sem(path)


# --- Zeiss SmartSEM ---------------------------------------------------------------------------


def zeiss_tiff(path, image, fields: dict[str, str]) -> None:
    """CZ_SEM tag 34118 as SmartSEM writes it: unnamed values, then KEY / 'Label = value unit'."""
    lines = ["0", "0", "0", "7.1e-009"]
    for key, line in fields.items():
        lines += [key.upper(), line]
    text = "\r\n".join(lines) + "\r\n"
    tifffile.imwrite(path, image, extratags=[(34118, "s", 0, text.encode("latin-1"), True)])


def test_zeiss_prefers_image_pixel_size_with_its_unit(tmp_path, scan):
    path = tmp_path / "zeiss.tif"
    zeiss_tiff(
        path,
        scan.astype(np.uint8),
        {
            "ap_image_pixel_size": "Image Pixel Size = 0.0142 µm",
            "ap_pixel_size": "Pixel Size = 7.1 nm",
            "ap_width": "Width = 213.0 nm",
        },
    )
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_source) == ("Zeiss", "Zeiss CZ_SEM ap_image_pixel_size")
    assert sem.pixel_size_nm == pytest.approx(14.2)
    assert sem.metadata["ap_image_pixel_size"] == ["Image Pixel Size", 0.0142, "µm"]
    assert sem.databar_rows == 0  # SmartSEM's data zone overlays the frame; no height to crop by
    assert any("data-zone" in w for w in sem.warnings)


def test_zeiss_field_width_over_image_width(tmp_path, scan):
    path = tmp_path / "zeiss.tif"
    zeiss_tiff(path, scan, {"ap_width": "Width = 0.213 µm", "ap_pixel_size": "Pixel Size = 1.8 nm"})
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(213 / 30)
    assert sem.pixel_size_source == "Zeiss CZ_SEM ap_width / image width"
    # 1.8 nm x 1024 / 30 px = 61 nm disagrees with the field width: say so.
    assert any("disagree" in w for w in sem.warnings)


def test_zeiss_display_pixel_size_is_rescaled_from_1024(tmp_path, scan):
    path = tmp_path / "zeiss.tif"
    zeiss_tiff(path, scan, {"ap_pixel_size": "Pixel Size = 2.5 nm"})
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(2.5 * 1024 / 30)
    assert sem.pixel_size_source == "Zeiss CZ_SEM ap_pixel_size x 1024 / image width"


# --- ImageJ and OME -----------------------------------------------------------------------------


@pytest.mark.parametrize("unit, per_unit", [("micron", 1000.0), ("\\u00B5m", 1000.0), ("nm", 1.0), ("mm", 1e6)])
def test_imagej_resolution_and_unit(tmp_path, scan, unit, per_unit):
    path = tmp_path / "ij.tif"
    size_in_unit = 7.1 / per_unit
    tifffile.imwrite(path, scan, imagej=True, resolution=(1 / size_in_unit, 1 / size_in_unit), metadata={"unit": unit})
    sem = read_sem(path)
    assert sem.vendor == "ImageJ"
    assert sem.pixel_size_nm == pytest.approx(7.1, rel=1e-5)
    assert sem.pixel_size_source.startswith("ImageJ resolution")


def test_imagej_with_non_length_unit_has_no_pixel_size(tmp_path, scan):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, scan, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "sec"})
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_nm, sem.pixel_size_source) == ("ImageJ", None, "none")
    assert any("'sec'" in w for w in sem.warnings)


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({"PhysicalSizeX": 7.1, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 7.1, "PhysicalSizeYUnit": "nm"}, 7.1),
        ({"PhysicalSizeX": 0.0142, "PhysicalSizeY": 0.0142}, 14.2),  # OME's default unit is µm
    ],
)
def test_ome_physical_size(tmp_path, scan, metadata, expected):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, scan, ome=True, metadata={"axes": "YX", **metadata})
    sem = read_sem(path)
    assert sem.vendor == "OME"
    assert sem.pixel_size_nm == pytest.approx(expected)
    assert sem.pixel_size_source.startswith("OME PhysicalSizeX")


# --- TESCAN -------------------------------------------------------------------------------------

TESCAN_MAIN = (
    b"AccFrames=4\r\nDescription=\r\nDevice=MIRA3 LMH\r\nImageStripSize=8\r\nMagnification=20000\r\n"
    b"PixelSizeX=7.1e-009\r\nPixelSizeY=7.1e-009\r\nUserName=tester\r\n"
)


def tescan_blocks(byteorder: str = "<") -> bytes:
    """Tag 50431 as TESCAN writes it: (uint32 size, uint16 type, text) blocks, type 0 ends."""
    sem = b"HV=5000\r\nWD=0.005\r\n"
    return (
        struct.pack(byteorder + "IH", len(TESCAN_MAIN) + 2, 2)
        + TESCAN_MAIN
        + struct.pack(byteorder + "IH", len(sem) + 2, 3)
        + sem
        + struct.pack(byteorder + "IH", 2, 0)
    )


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_tescan_tag_blocks(tmp_path, scan, byteorder):
    path = tmp_path / "tescan.tif"
    raw = tescan_blocks(byteorder)
    tifffile.imwrite(path, scan, byteorder=byteorder, extratags=[(50431, "B", len(raw), raw, True)])
    sem = read_sem(path)
    assert sem.vendor == "TESCAN"
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.pixel_size_source == "TESCAN tag 50431 [MAIN] PixelSizeX"
    assert (sem.height, sem.databar_rows) == (32, 8)
    np.testing.assert_array_equal(sem.image, scan[:32])
    assert sem.metadata["SEM"]["HV"] == "5000"


def test_tescan_tag_with_plain_ini_text(tmp_path, scan):
    path = tmp_path / "tescan.tif"
    raw = b"[MAIN]\r\n" + TESCAN_MAIN + b"[SEM]\r\nHV=5000\r\n\x00"
    tifffile.imwrite(path, scan, extratags=[(50431, "B", len(raw), raw, True)])
    sem = read_sem(path)
    assert (sem.vendor, sem.databar_rows) == ("TESCAN", 8)
    assert sem.pixel_size_nm == pytest.approx(7.1)


def test_tescan_hdr_sidecar(tmp_path, scan):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, scan)
    (tmp_path / "image-tif.hdr").write_bytes(b"[MAIN]\r\n" + TESCAN_MAIN + b"[SEM]\r\nHV=5000\r\n")
    sem = read_sem(path)
    assert sem.vendor == "TESCAN"
    assert sem.pixel_size_source == "TESCAN image-tif.hdr [MAIN] PixelSizeX"
    assert (sem.pixel_size_nm, sem.databar_rows) == (pytest.approx(7.1), 8)


# --- Hitachi and JEOL sidecars --------------------------------------------------------------------


def test_hitachi_txt_sidecar(tmp_path, scan):
    path = tmp_path / "S4800_001.tif"
    tifffile.imwrite(path, scan)
    path.with_suffix(".txt").write_text(
        "[SemImageFile]\r\nInstructName=S-4800\r\nSerialNumber=123189-06\r\nImageName=S4800_001.tif\r\n"
        "DataSize=30x32\r\nPixelSize=7.1\r\nMagnification=20000\r\n"
    )
    sem = read_sem(path)
    assert sem.vendor == "Hitachi"
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.pixel_size_source == "Hitachi S4800_001.txt PixelSize"
    assert (sem.height, sem.databar_rows) == (32, 8)
    assert sem.metadata["SemImageFile"]["SerialNumber"] == "123189-06"


def test_hitachi_sidecar_for_a_resampled_image_rescales(tmp_path, scan):
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, scan)
    path.with_suffix(".txt").write_text("[SemImageFile]\nDataSize=60x64\nPixelSize=3.55\n")
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.databar_rows == 0  # widths differ: no trustworthy scan height for this image
    assert any("rescaled" in w for w in sem.warnings)


JEOL_TEXT = (
    "$CM_FORMAT JEOL/SEM\n$CM_VERSION 1.0\n$CM_INSTRUMENT JSM-7800F\n$CM_MAG 20000\n"
    "$CM_FULL_SIZE 30 32\n$$SM_MICRON_BAR 141\n$$SM_MICRON_MARKER 1um\n$CM_ACCEL_VOLT 5.0\n"
)


def test_jeol_txt_sidecar_scale_bar(tmp_path, scan):
    path = tmp_path / "jeol.tif"
    tifffile.imwrite(path, scan)
    path.with_suffix(".txt").write_text(JEOL_TEXT)
    sem = read_sem(path)
    assert sem.vendor == "JEOL"
    assert sem.pixel_size_nm == pytest.approx(1000 / 141)
    assert sem.pixel_size_source == "JEOL jeol.txt SM_MICRON_MARKER / SM_MICRON_BAR"
    assert (sem.height, sem.databar_rows) == (32, 8)
    assert sem.metadata["CM_INSTRUMENT"] == "JSM-7800F"


def test_jeol_field_of_view_wins_and_latin1_micro_sign(tmp_path, scan):
    path = tmp_path / "jeol.tif"
    tifffile.imwrite(path, scan)
    text = JEOL_TEXT + "$CM_FIELD_OF_VIEW 0.213µm 0.227µm\n"
    path.with_suffix(".txt").write_bytes(text.encode("latin-1"))
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.pixel_size_source == "JEOL jeol.txt CM_FIELD_OF_VIEW"


def test_unrelated_txt_beside_a_plain_tiff_is_ignored(tmp_path, scan):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, scan)
    path.with_suffix(".txt").write_text("notes: sample 3, good focus\n")
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_nm, sem.pixel_size_source, sem.databar_rows) == ("unknown", None, "none", 0)
    with pytest.raises(UserError, match=r"plain\.tif: no pixel size in its metadata; pass --pixel-size NM"):
        require_pixel_size(sem)
    override = read_sem(path, pixel_size_nm=7.1)
    assert (override.pixel_size_nm, override.pixel_size_source, override.vendor) == (7.1, "user", "unknown")


def test_fei_image_resampled_after_acquisition(tmp_path, scan):
    text = "[Scan]\r\nPixelWidth=3.55e-009\r\n[Image]\r\nResolutionX=60\r\nResolutionY=64\r\n"
    path = tmp_path / "fei_half.tif"
    tifffile.imwrite(path, scan, extratags=[(34682, "s", 0, text, True)])
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(7.1)
    assert (sem.height, sem.databar_rows) == (40, 0)
    assert any("60 pixels wide but the image is 30" in w for w in sem.warnings)
