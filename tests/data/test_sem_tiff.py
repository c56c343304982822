"""read_sem / write_sem: vendor pixel sizes, data-bar crop, round trips and every bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tifffile

from zoo.data.sem_tiff import SemImage, read_sem, require_pixel_size, write_sem
from zoo.errors import UserError


# --- round trips of semzoo's own files -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_write_read_round_trip(tmp_path, rng, dtype):
    if dtype == np.float32:
        image = rng.normal(100.0, 20.0, (24, 36)).astype(np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, (24, 36), endpoint=True).astype(dtype)
    out = write_sem(tmp_path / "a.tif", image, 7.1, {"model": "gold", "version": 3})
    assert out == tmp_path / "a.tif"
    sem = read_sem(out)
    assert sem.image.dtype == image.dtype
    np.testing.assert_array_equal(sem.image, image)
    assert sem.pixel_size_nm == 7.1
    assert (sem.vendor, sem.pixel_size_source, sem.databar_rows) == ("semzoo", "semzoo metadata", 0)
    assert sem.metadata["description"] == {"model": "gold", "version": 3}
    assert sem.metadata["software"] == "semzoo"
    assert sem.warnings == []


def test_written_file_has_imagej_scale_in_nm(tmp_path, rng):
    image = rng.integers(0, 4000, (20, 30)).astype(np.uint16)
    path = write_sem(tmp_path / "b.tif", image, 14.2, "enhanced by gold-on-carbon:2")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "nm"
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(14.2, rel=1e-6)  # ImageJ: pixels per unit
        num, den = tif.pages.first.tags["YResolution"].value
        assert den / num == pytest.approx(14.2, rel=1e-6)
        record = json.loads(tif.imagej_metadata["Info"])["semzoo"]
    assert record["description"] == "enhanced by gold-on-carbon:2"
    assert record["pixel_size_nm"] == 14.2


def test_write_refuses_existing_file_unless_overwrite(tmp_path, rng):
    path = tmp_path / "c.tif"
    first = rng.integers(0, 255, (8, 8)).astype(np.uint8)
    write_sem(path, first, 5.0)
    before = path.read_bytes()
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        write_sem(path, first + 1, 5.0)
    assert path.read_bytes() == before
    write_sem(path, first + 1, 6.0, overwrite=True)
    sem = read_sem(path)
    np.testing.assert_array_equal(sem.image, first + 1)
    assert sem.pixel_size_nm == 6.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]  # no temp files left


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 4, 3), np.uint8), "2-D"),
        (np.zeros((1, 9), np.uint16), "at least 2x2"),
        (np.zeros((5, 5), np.int32), "cannot write pixel type int32"),
        (np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), "NaN"),
    ],
)
def test_write_rejects_bad_images_and_writes_nothing(tmp_path, image, message):
    with pytest.raises(UserError, match=message):
        write_sem(tmp_path / "bad.tif", image, 7.1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [0.0, -3.0, float("nan"), float("inf")])
def test_write_rejects_bad_pixel_size(tmp_path, size):
    with pytest.raises(UserError, match="pixel size"):
        write_sem(tmp_path / "bad.tif", np.zeros((4, 4), np.uint8), size)
    assert list(tmp_path.iterdir()) == []


def test_write_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        (tmp_path / next(p.name for p in tmp_path.iterdir())).write_bytes(b"II*\x00half")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", explode)
    with pytest.raises(OSError, match="disk full"):
        write_sem(tmp_path / "d.tif", np.zeros((4, 4), np.uint8), 7.1)
    assert list(tmp_path.iterdir()) == []


def test_write_float64_is_stored_as_float32(tmp_path, rng):
    image = rng.normal(size=(6, 7))
    sem = read_sem(write_sem(tmp_path / "f.tif", image, 2.5))
    assert sem.image.dtype == np.float32
    np.testing.assert_allclose(sem.image, image.astype(np.float32))


def test_write_without_pixel_size_reads_back_as_unknown(tmp_path):
    sem = read_sem(write_sem(tmp_path / "n.tif", np.zeros((4, 4), np.uint8), None))
    assert sem.pixel_size_nm is None and sem.pixel_size_source == "none"
    with pytest.raises(UserError, match=r"n\.tif: no pixel size in its metadata; pass --pixel-size NM"):
        require_pixel_size(sem)


def test_pixel_size_argument_overrides_metadata(tmp_path):
    path = write_sem(tmp_path / "o.tif", np.zeros((4, 4), np.uint8), 7.1)
    sem = read_sem(path, pixel_size_nm=3.5)
    assert (sem.pixel_size_nm, sem.pixel_size_source) == (3.5, "user")
    assert require_pixel_size(sem) == 3.5
    assert any("overrides" in w for w in sem.warnings)


# --- the real vendor samples ----------------------------------------------------------------


def test_real_fei_helios_sample(sem_samples):
    sem = read_sem(sem_samples / "FEI-Helios-Ebeam-16bits.tif")
    assert sem.vendor == "FEI"
    assert sem.image.dtype == np.uint16
    assert (sem.width, sem.height, sem.databar_rows) == (512, 442, 29)
    assert sem.pixel_size_nm == pytest.approx(3372.4)
    assert sem.pixel_size_source == "FEI [Scan] PixelWidth"
    assert sem.metadata["Image"]["ResolutionY"] == 442
    json.dumps(sem.metadata)


def test_real_zeiss_sample(sem_samples):
    sem = read_sem(sem_samples / "test_tiff_Zeiss_SEM_512pix.tif")
    assert sem.vendor == "Zeiss"
    assert sem.image.dtype == np.uint8
    # 384 rows stored; SmartSEM drew its data zone over rows 350-383 (found in the pixels).
    assert (sem.width, sem.height, sem.databar_rows) == (512, 350, 34)
    # The file was stored at 512 px of a 5.965 um field; its "Pixel Size" 5.825 nm is
    # SmartSEM's 1024-pixel reference frame, so one stored pixel is 5.965 um / 512.
    assert sem.pixel_size_nm == pytest.approx(5965 / 512)
    assert sem.metadata["ap_pixel_size"] == ["Pixel Size", 5.825, "nm"]
    json.dumps(sem.metadata)
    assert isinstance(sem, SemImage)


# --- pixel types -----------------------------------------------------------------------------


def test_rgb_is_converted_to_gray_with_a_warning(tmp_path, rng):
    rgb = rng.integers(0, 256, (10, 12, 3)).astype(np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    sem = read_sem(path)
    expected = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    assert sem.image.dtype == np.uint8 and sem.image.shape == (10, 12)
    np.testing.assert_array_equal(sem.image, expected)
    assert any("RGB image converted to gray" in w for w in sem.warnings)


def test_rgba_and_planar_rgb(tmp_path, rng):
    gray = rng.integers(0, 65535, (10, 12)).astype(np.uint16)
    rgba = np.stack([gray, gray, gray, np.full_like(gray, 65535)], axis=-1)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    sem = read_sem(path)
    np.testing.assert_array_equal(sem.image, gray)  # equal channels: no rounding at all
    assert any("equal channels" in w for w in sem.warnings)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.stack([gray, gray, gray]), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_sem(planar).image, gray)


def test_gray_ramp_palette_keeps_indices_and_colour_palette_becomes_gray(tmp_path, rng):
    indices = rng.integers(0, 256, (8, 9)).astype(np.uint8)
    ramp = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    ramp[:, 7] = (65535, 0, 0)  # one annotation colour, as Zeiss SmartSEM has
    path = tmp_path / "ramp.tif"
    tifffile.imwrite(path, indices, photometric="palette", colormap=ramp)
    sem = read_sem(path)
    np.testing.assert_array_equal(sem.image, indices)
    assert any("annotation colours" in w for w in sem.warnings) == bool((indices == 7).any())

    colours = rng.integers(0, 65536, (3, 256)).astype(np.uint16)
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, indices, photometric="palette", colormap=colours)
    sem = read_sem(path)
    rgb = colours.T[indices].astype(float)
    np.testing.assert_allclose(sem.image, rgb @ np.array([0.299, 0.587, 0.114]) / 257, atol=1.0)
    assert any("mapped through its palette" in w for w in sem.warnings)


def test_multi_page_reads_first_page_with_warning(tmp_path, rng):
    stack = rng.integers(0, 255, (3, 6, 7)).astype(np.uint8)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as writer:
        for page in stack:
            writer.write(page)
    sem = read_sem(path)
    np.testing.assert_array_equal(sem.image, stack[0])
    assert any("3 pages" in w for w in sem.warnings)


def test_float_images_accepted_unless_not_finite(tmp_path, rng):
    image = rng.normal(size=(5, 6)).astype(np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, image)
    np.testing.assert_array_equal(read_sem(path).image, image)
    image[2, 3] = np.inf
    image[0, 0] = np.nan
    tifffile.imwrite(path, image)
    with pytest.raises(UserError, match=r"f\.tif: 2 pixels are NaN or infinite"):
        read_sem(path)


def test_bilevel_image_is_refused(tmp_path):
    path = tmp_path / "bits.tif"
    tifffile.imwrite(path, np.eye(8, dtype=bool))
    with pytest.raises(UserError, match=r"bits\.tif: unsupported pixel type bool"):
        read_sem(path)


# --- bad files: one clear line naming the file --------------------------------------------------


def _tiny_tiff(tmp_path, rng):
    path = tmp_path / "ok.tif"
    tifffile.imwrite(path, rng.integers(0, 255, (16, 16)).astype(np.uint8))
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "not a file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, I am a text file\n"), "not a readable TIFF"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100)), "not a readable TIFF"),
        (lambda p: p.write_bytes(b"II*\x00" + b"\xff" * 60), "not a readable TIFF|corrupt"),
        (lambda p: tifffile.imwrite(p, np.zeros((1, 1), np.uint8)), "1x1 pixels; need at least 2x2"),
        (lambda p: tifffile.imwrite(p, np.zeros((1, 50), np.uint16)), "50x1 pixels; need at least 2x2"),
    ],
    ids=["missing", "directory", "empty", "text", "png", "garbage-ifd", "one-pixel", "one-row"],
)
def test_bad_files_raise_one_line_user_error(tmp_path, capsys, make, message):
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(UserError, match=message) as caught:
        read_sem(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert capsys.readouterr().err == ""  # tifffile's log chatter does not reach the terminal


def test_truncated_file_is_refused(tmp_path, rng):
    path = _tiny_tiff(tmp_path, rng)
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) - 100])  # pixel data (written after the IFD) cut short
    with pytest.raises(UserError, match=r"cut\.tif: truncated|cut\.tif: not a readable TIFF|corrupt") as caught:
        read_sem(cut)
    assert "\n" not in str(caught.value)


def test_truncated_compressed_data_is_refused(tmp_path, rng):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, rng.integers(0, 255, (64, 64)).astype(np.uint8), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.dataoffsets[0]
        count = tif.pages.first.databytecounts[0]
    data = bytearray(path.read_bytes())
    data[offset : offset + count] = bytes(count)  # zeroed zlib stream: undecodable
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"z\.tif: pixel data unreadable"):
        read_sem(path)


def forged_tiff(path, width: int, height: int) -> None:
    """A 200-byte little-endian TIFF whose IFD claims a width x height 8-bit image."""
    entries = [
        (256, 4, 1, width),  # ImageWidth (LONG)
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(64))


def test_pixel_budget_is_checked_before_pixel_data_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.tif"
    forged_tiff(path, 60000, 60000)  # 3.6 Gpx declared in a 200-byte file
    assert path.stat().st_size < 300

    def must_not_read(*args, **kwargs):
        raise AssertionError("pixel data was read before the budget check")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", must_not_read)
    with pytest.raises(UserError, match=r"huge\.tif: image is 60000x60000 = 3600000000 pixels, over the pixel budget of 268435456"):
        read_sem(path)


def test_pixel_budget_is_configurable(tmp_path, rng):
    path = _tiny_tiff(tmp_path, rng)
    with pytest.raises(UserError, match="over the pixel budget of 255"):
        read_sem(path, max_pixels=255)
    assert read_sem(path, max_pixels=256).image.shape == (16, 16)


def test_forged_header_within_budget_but_missing_data_is_truncated(tmp_path):
    path = tmp_path / "short.tif"
    forged_tiff(path, 100, 100)  # claims 10000 bytes, holds 64
    with pytest.raises(UserError, match=r"short\.tif: truncated"):
        read_sem(path)


@pytest.mark.parametrize("size", [0, -1.0, float("nan"), "abc"])
def test_bad_pixel_size_override(tmp_path, rng, size):
    path = _tiny_tiff(tmp_path, rng)
    with pytest.raises(UserError, match="pixel size"):
        read_sem(path, pixel_size_nm=size)


def test_semzoo_file_rescaled_and_resaved_in_fiji_uses_the_new_calibration(tmp_path, rng):
    path = write_sem(tmp_path / "a.tif", rng.integers(0, 255, (20, 30)).astype(np.uint8), 7.1)
    with tifffile.TiffFile(path) as tif:
        info = tif.imagej_metadata["Info"]
        half = tif.asarray()[::2, ::2]
    # What Fiji writes after Image > Scale 0.5 and Save: the Info property travels along.
    tifffile.imwrite(path, half, imagej=True, resolution=(1 / 14.2, 1 / 14.2), metadata={"unit": "nm", "Info": info})
    sem = read_sem(path)
    assert sem.vendor == "semzoo"
    assert sem.pixel_size_nm == pytest.approx(14.2, rel=1e-6)
    assert sem.pixel_size_source == "ImageJ resolution (nm)"
    assert any("15x10 but semzoo wrote it as 30x20" in w for w in sem.warnings)
    assert any("differs from semzoo's record" in w for w in sem.warnings)


def test_write_refuses_a_directory_and_accepts_big_endian(tmp_path):
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        write_sem(tmp_path / "d.tif", np.zeros((4, 4), np.uint8), 7.1, overwrite=True)
    image = np.arange(12, dtype=">u2").reshape(3, 4)
    sem = read_sem(write_sem(tmp_path / "be.tif", image, 7.1))
    np.testing.assert_array_equal(sem.image, image)
    assert sem.image.dtype == np.uint16


def test_min_is_white_is_inverted(tmp_path, rng):
    image = rng.integers(0, 65535, (6, 7)).astype(np.uint16)
    path = tmp_path / "white.tif"
    tifffile.imwrite(path, image, photometric="miniswhite")
    sem = read_sem(path)
    np.testing.assert_array_equal(sem.image, 65535 - image)
    assert any("min-is-white" in w for w in sem.warnings)


def test_description_with_paths_and_numpy_values_is_stored_as_json(tmp_path):
    description = {"source": tmp_path / "in.tif", "psnr": np.float32(31.5), "tile": (128, 128), "model": "gold:3"}
    sem = read_sem(write_sem(tmp_path / "p.tif", np.zeros((4, 4), np.uint8), 7.1, description))
    assert sem.metadata["description"] == {
        "source": str(tmp_path / "in.tif"),
        "psnr": 31.5,
        "tile": [128, 128],
        "model": "gold:3",
    }
    assert (sem.metadata["width"], sem.metadata["height"]) == (4, 4)
