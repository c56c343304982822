"""read_sem on vendor files built in the tests: each vendor's pixel-size source and data bar."""

from __future__ import annotations

import codecs
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
    # SmartSEM's data zone overlays the frame and CZ_SEM states no height: found in the pixels.
    assert (sem.height, sem.databar_rows) == (32, 8)
    np.testing.assert_array_equal(sem.image, scan[:32].astype(np.uint8))
    assert any("drawn over the bottom 8 rows" in w for w in sem.warnings)


def test_zeiss_image_without_a_data_zone_keeps_every_row_and_says_so(tmp_path, rng):
    image = rng.integers(0, 4096, (40, 30)).astype(np.uint16)
    path = tmp_path / "zeiss.tif"
    zeiss_tiff(path, image, {"ap_image_pixel_size": "Image Pixel Size = 7.1 nm"})
    sem = read_sem(path)
    assert (sem.height, sem.databar_rows) == (40, 0)
    assert any("none was found in the pixels" in w for w in sem.warnings)


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


# Hitachi TM4000 / SU series: the [SemImageFile] text in tag 40092 (XPComment, UTF-16LE) and in
# a UTF-16LE sidecar with a BOM and CRLF line ends; the data bar drawn into the bottom rows.

HITACHI_TEXT = (
    "[SemImageFile]\r\nInstructName=TM4000\r\nSerialNumber=4000-12\r\nDate=2024/03/01\r\n"
    "ImageName=TM4000_0001.tif\r\nDataSize=1280x960\r\nPixelSize={pixel}\r\nMagnification=1500\r\n"
    "SignalName=BSE\r\nAcceleratingVoltage=15000 Volt\r\nMicronMarker=10000\r\n"
)


def hitachi_image(rng, shape=(960, 1280), bar_rows=60) -> np.ndarray:
    """A noisy uint8 scan with a black data bar drawn into its bottom rows, white text on it."""
    image = rng.integers(20, 230, shape).astype(np.uint8)
    bar = image[shape[0] - bar_rows:]
    bar[:] = 0
    for x in range(40, shape[1] // 2, 24):  # 'characters' below a blank top margin of the bar
        bar[6:22, x:x + 12] = 255
        bar[30:46, x + 4:x + 14] = 255
    return image


def utf16_sidecar(path, text: str) -> None:
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))


def test_hitachi_xpcomment_tag_and_the_data_bar_drawn_over_the_scan(tmp_path, rng):
    image = hitachi_image(rng)
    path = tmp_path / "TM4000_0001.tif"
    raw = HITACHI_TEXT.format(pixel="82.68").encode("utf-16-le") + b"\0\0"
    tifffile.imwrite(path, image, extratags=[(40092, "B", len(raw), raw, True)])
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_source) == ("Hitachi", "Hitachi tag 40092 (XPComment) PixelSize")
    assert sem.pixel_size_nm == pytest.approx(82.68)
    assert (sem.height, sem.width, sem.databar_rows) == (900, 1280, 60)
    np.testing.assert_array_equal(sem.image, image[:900])
    assert sem.metadata["SemImageFile"]["InstructName"] == "TM4000"
    assert any("drawn over the bottom 60 rows" in w for w in sem.warnings)


def test_hitachi_utf16_sidecar_with_bom_and_crlf(tmp_path, rng):
    image = hitachi_image(rng)
    path = tmp_path / "SU_0002.tif"
    tifffile.imwrite(path, image)
    utf16_sidecar(path.with_suffix(".txt"), HITACHI_TEXT.format(pixel="82.68").replace("TM4000", "SU8230 µ"))
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_source) == ("Hitachi", "Hitachi SU_0002.txt PixelSize")
    assert sem.pixel_size_nm == pytest.approx(82.68)
    assert sem.metadata["SemImageFile"]["InstructName"] == "SU8230 µ"
    assert (sem.height, sem.databar_rows) == (900, 60)


def test_hitachi_tag_wins_over_a_disagreeing_sidecar(tmp_path, rng):
    image = hitachi_image(rng, (96, 128), bar_rows=8)
    path = tmp_path / "both.tif"
    text = HITACHI_TEXT.format(pixel="82.68").replace("1280x960", "128x96")
    raw = text.encode("utf-16-le")
    tifffile.imwrite(path, image, extratags=[(40092, "B", len(raw), raw, True)])
    utf16_sidecar(path.with_suffix(".txt"), text.replace("82.68", "41.34"))
    sem = read_sem(path)
    assert sem.pixel_size_nm == pytest.approx(82.68)
    assert sem.pixel_size_source.startswith("Hitachi tag 40092")
    assert sem.metadata["sidecar"] == "both.txt"
    assert any("both.txt says 41.34 nm" in w and "using the TIFF's" in w for w in sem.warnings)


def test_hitachi_data_size_above_the_stored_height_crops_by_metadata(tmp_path, rng):
    image = hitachi_image(rng, (104, 128), bar_rows=8)
    path = tmp_path / "su.tif"
    raw = HITACHI_TEXT.format(pixel="5.0").replace("1280x960", "128x96").encode("utf-16-le")
    tifffile.imwrite(path, image, extratags=[(40092, "B", len(raw), raw, True)])
    sem = read_sem(path)
    assert (sem.height, sem.databar_rows) == (96, 8)
    assert not any("found in the pixels" in w for w in sem.warnings)


def test_a_windows_comment_in_xpcomment_is_not_hitachi(tmp_path, scan):
    path = tmp_path / "comment.tif"
    raw = "sample 3, good focus".encode("utf-16-le")
    tifffile.imwrite(path, scan, extratags=[(40092, "B", len(raw), raw, True)])
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_nm, sem.databar_rows) == ("unknown", None, 0)


# JEOL JSM-IT800: $KEY=value text (UTF-16LE) in the EXIF MakerNote, LZW pixels, 1280 wide, a
# 66-row data bar appended below the 960 image rows ($SM_PNU_HEIGHT).

JEOL_MAKERNOTE = (
    "$CM_FORMAT=JEOL/SEM\r\n$CM_INSTRUMENT=JSM-IT800\r\n$CM_MAG=100000\r\n$CM_PIXEL_SIZE=1.00nm/pixel\r\n"
    "$SM_PNU_HEIGHT=960\r\n$CM_ACCEL_VOLT=5.0\r\n$SM_WD=4.1\r\n"
)


def tiff_with_makernote(path, image, makernote: bytes, **kwargs) -> None:
    """A TIFF whose EXIF IFD (tag 34665) holds one MakerNote (37500, UNDEFINED).

    tifffile does not write EXIF IFDs: a placeholder LONG tag (34666, which sorts right after
    34665, so the IFD stays sorted) is written, then turned into tag 34665 pointing at an EXIF
    IFD appended to the file.
    """
    placeholder = 34666
    tifffile.imwrite(path, image, extratags=[(placeholder, "I", 1, 0, True)], **kwargs)
    with tifffile.TiffFile(path) as tif:
        entry, byteorder = tif.pages.first.tags[placeholder].offset, tif.byteorder
    with open(path, "r+b") as handle:
        end = handle.seek(0, 2)
        ifd = end + (end & 1)  # IFDs start on a word boundary
        handle.write(b"\0" * (ifd - end))
        handle.write(struct.pack(byteorder + "H", 1))
        handle.write(struct.pack(byteorder + "HHII", 37500, 7, len(makernote), ifd + 2 + 12 + 4))
        handle.write(struct.pack(byteorder + "I", 0))
        handle.write(makernote)
        handle.seek(entry)
        handle.write(struct.pack(byteorder + "HHII", 34665, 4, 1, ifd))


def jeol_it800_image(rng) -> np.ndarray:
    image = rng.integers(0, 256, (960 + 66, 1280)).astype(np.uint8)
    image[960:] = 32  # the data bar, appended below the scan
    return image


def test_jeol_it800_makernote_and_lzw(tmp_path, rng):
    image = jeol_it800_image(rng)
    path = tmp_path / "IT800_001.tif"
    tiff_with_makernote(path, image, JEOL_MAKERNOTE.encode("utf-16-le"), compression="lzw")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == 5  # LZW, as the JSM-IT800 writes it
        assert "MakerNote" in tif.pages.first.tags[34665].value
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_source) == ("JEOL", "JEOL EXIF MakerNote CM_PIXEL_SIZE")
    assert sem.pixel_size_nm == pytest.approx(1.0)
    assert (sem.height, sem.width, sem.databar_rows) == (960, 1280, 66)
    np.testing.assert_array_equal(sem.image, image[:960])
    assert sem.metadata["CM_INSTRUMENT"] == "JSM-IT800" and sem.metadata["CM_MAG"] == "100000"
    json.dumps(sem.metadata)


@pytest.mark.parametrize("separator", ["\x00", " ", "\n"])
def test_jeol_makernote_entries_however_separated(tmp_path, rng, separator):
    image = rng.integers(0, 256, (40, 32)).astype(np.uint8)
    note = separator.join(["$CM_MAG=5000", "$CM_PIXEL_SIZE=2.5nm/pixel", "$SM_PNU_HEIGHT=34"])
    path = tmp_path / "jeol.tif"
    tiff_with_makernote(path, image, note.encode("utf-16-le"))
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_nm, sem.databar_rows) == ("JEOL", pytest.approx(2.5), 6)


def test_jeol_makernote_rows_above_bar_beyond_the_image_crop_nothing(tmp_path, rng):
    image = rng.integers(0, 256, (40, 32)).astype(np.uint8)
    path = tmp_path / "jeol.tif"
    tiff_with_makernote(path, image, "$CM_PIXEL_SIZE=1.00nm/pixel\r\n$SM_PNU_HEIGHT=960\r\n".encode("utf-16-le"))
    sem = read_sem(path)
    assert (sem.vendor, sem.height, sem.databar_rows) == ("JEOL", 40, 0)
    assert any("960 rows" in w for w in sem.warnings)


def test_another_vendors_makernote_is_not_jeol(tmp_path, scan):
    path = tmp_path / "camera.tif"
    tiff_with_makernote(path, scan, b"Nikon\x00\x02\x10\x00\x00MM\x00*\x00\x00\x00\x08")
    sem = read_sem(path)
    assert (sem.vendor, sem.pixel_size_nm) == ("unknown", None)


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
