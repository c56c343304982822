"""read_sem / write_sem: vendor pixel sizes, data-bar crop, round trips and every bad input."""

from __future__ import annotations

import json

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
    assert (sem.width, sem.height) == (512, 384)
    # The file was stored at 512 px of a 5.965 um field; its "Pixel Size" 5.825 nm is
    # SmartSEM's 1024-pixel reference frame, so one stored pixel is 5.965 um / 512.
    assert sem.pixel_size_nm == pytest.approx(5965 / 512)
    assert sem.metadata["ap_pixel_size"] == ["Pixel Size", 5.825, "nm"]
    json.dumps(sem.metadata)
    assert isinstance(sem, SemImage)
