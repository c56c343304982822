"""Read SEM TIFFs with their pixel size in nm; write TIFFs that keep it (and their provenance).

:func:`read_sem` returns the scan as a 2-D array in its original dtype with the vendor's data
bar cropped off (using the scan height the metadata states; only for vendors that draw the bar
over the scan and state no height, by the bar's own signature, :mod:`zoo.data.databar`),
the pixel size in nanometres and where it came from (:mod:`zoo.data.vendors`,
:mod:`zoo.data.vendor_text`); other pixel layouts become gray as :mod:`zoo.data.sem_pixels`
says, each conversion noted in ``SemImage.warnings``.
:func:`write_sem` writes an ImageJ-format TIFF (Fiji opens it with the right scale in nm) that
also stores a JSON provenance record :func:`read_sem` reads back.

The pixel size is what the paper's pairs are defined by (de Haan et al. 2019, Methods: LR at
14.2 nm / HR at 7.1 nm for gold-on-carbon), so a wrong or silently missing one is an error
the user must see: :func:`require_pixel_size`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from zoo.atomic import atomic_file
from zoo.data import vendors
from zoo.data.databar import drawn_databar_rows
from zoo.data.sem_pixels import check_pixels, to_gray
from zoo.errors import UserError

DEFAULT_MAX_PIXELS = 2**28
WRITE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


@dataclass
class SemImage:
    """One SEM image as semzoo sees it.

    ``image`` is 2-D (rows, columns) in the file's dtype with the data bar removed;
    ``databar_rows`` says how many rows were cut from the bottom. ``pixel_size_source``
    names the metadata field the size came from, "user" for an override, "none" if unknown.
    """

    image: np.ndarray
    pixel_size_nm: float | None
    pixel_size_source: str
    vendor: str
    databar_rows: int
    metadata: dict
    path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def summary(self) -> dict[str, Any]:
        """The JSON-ready description ``semzoo info --json`` prints (no pixel data)."""
        return {
            "path": str(self.path),
            "vendor": self.vendor,
            "width": self.width,
            "height": self.height,
            "dtype": str(self.image.dtype),
            "pixel_size_nm": self.pixel_size_nm,
            "pixel_size_source": self.pixel_size_source,
            "databar_rows": self.databar_rows,
            "warnings": list(self.warnings),
        }


def require_pixel_size(sem: SemImage) -> float:
    """The image's pixel size in nm, or a UserError telling the user how to supply it."""
    if sem.pixel_size_nm is None:
        raise UserError(f"{sem.path}: no pixel size in its metadata; pass --pixel-size NM")
    return float(sem.pixel_size_nm)


def _checked_pixel_size(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}: pixel size must be a number of nanometres, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"{what}: pixel size must be a positive number of nanometres, got {value!r}")
    return number


# --- reading -------------------------------------------------------------------------------


def read_sem(
    path: str | os.PathLike,
    pixel_size_nm: float | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SemImage:
    """Read the first image of an SEM TIFF with its pixel size, data bar removed.

    Parameters
    ----------
    path
        The TIFF file.
    pixel_size_nm
        Overrides whatever the metadata says (source "user").
    max_pixels
        Pixel budget: the declared width x height is checked against it before any pixel
        data is read (tifffile has no cap of its own, and a forged header can ask for TBs).

    Raises
    ------
    UserError
        Missing, empty, non-TIFF, truncated or corrupt files, images smaller than 2x2, over
        budget, of an unsupported pixel type, or float images holding NaN/Inf.
    """
    path = Path(path)
    if pixel_size_nm is not None:
        pixel_size_nm = _checked_pixel_size(pixel_size_nm, str(path))
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    warnings: list[str] = []
    with _tifffile_log(warnings):
        info, image = _read_first_page(path, max_pixels, warnings)
    image = check_pixels(image, path)
    databar_rows = 0
    if info.scan_height is not None:
        if info.scan_height < image.shape[0]:
            databar_rows = image.shape[0] - info.scan_height
            image = image[: info.scan_height]
        elif info.scan_height > image.shape[0]:
            warnings.append(
                f"metadata says the scan has {info.scan_height} rows but the image has "
                f"{image.shape[0]}; nothing cropped"
            )
    elif info.databar_drawn_over:
        databar_rows = drawn_databar_rows(image)
        if databar_rows:
            image = image[: image.shape[0] - databar_rows]
            warnings.append(
                f"{info.vendor}: data bar drawn over the bottom {databar_rows} rows (found in the pixels: "
                "its metadata states no height); cropped"
            )
        else:
            warnings.append(
                f"{info.vendor}: the metadata states no data-bar height and none was found in the pixels; "
                "if the image shows one, its rows are kept"
            )
    if image.shape[0] < 2:
        raise UserError(f"{path}: only {image.shape[0]} row(s) left above the data bar")

    size, source = info.pixel_size_nm, info.pixel_size_source
    if size is None:
        source = "none"
    if pixel_size_nm is not None:
        if size is not None and abs(pixel_size_nm / size - 1) > 0.01:
            warnings.append(f"--pixel-size {pixel_size_nm:g} nm overrides the metadata's {size:.6g} nm")
        size, source = pixel_size_nm, "user"
    return SemImage(
        image=np.ascontiguousarray(image),
        pixel_size_nm=float(size) if size is not None else None,
        pixel_size_source=source,
        vendor=info.vendor,
        databar_rows=databar_rows,
        metadata=vendors.jsonable(info.metadata),
        path=path,
        warnings=warnings,
    )


@contextlib.contextmanager
def _tifffile_log(warnings: list[str]):
    """Collect what tifffile logs about odd files into ``warnings`` instead of stderr."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage().strip().splitlines()
            warnings.append(f"tifffile: {message[0] if message else record.levelname}")

    logger = logging.getLogger("tifffile")
    handler = Collect(level=logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _read_first_page(path: Path, max_pixels: int, warnings: list[str]):
    """Vendor info and the gray pixels of the first page, checking the budget first."""
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for bad headers
        raise UserError(f"{path}: not a readable TIFF image ({_reason(exc)})") from None
    with tif:
        try:
            page = tif.pages.first
            n_pages = len(tif.pages)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{path}: corrupt TIFF structure ({_reason(exc)})") from None
        width, height = int(page.imagewidth), int(page.imagelength)
        if width < 2 or height < 2:
            raise UserError(f"{path}: image is {width}x{height} pixels; need at least 2x2")
        if width * height > max_pixels:
            raise UserError(
                f"{path}: image is {width}x{height} = {width * height} pixels, over the pixel "
                f"budget of {max_pixels}"
            )
        info = vendors.identify(tif, path, width, height)
        warnings.extend(info.warnings)
        if n_pages > 1:
            warnings.append(f"file has {n_pages} pages; reading the first")
        _check_not_truncated(tif, page, path)
        try:
            data = page.asarray()
        except Exception as exc:  # noqa: BLE001 - codec errors, short reads
            if "imagecodecs" in str(exc):  # LZW etc. without semzoo's imagecodecs dependency
                raise UserError(
                    f"{path}: {page.compression.name}-compressed; reading it needs the imagecodecs "
                    "package (pip install imagecodecs)"
                ) from None
            raise UserError(f"{path}: pixel data unreadable, truncated or corrupt ({_reason(exc)})") from None
        image = to_gray(data, page, path, warnings)
    return info, image


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_not_truncated(tif, page, path: Path) -> None:
    """Refuse a page whose strips/tiles point past the end of the file (a cut-off copy)."""
    size = tif.filehandle.size
    for offset, count in zip(page.dataoffsets, page.databytecounts):
        if count and offset + count > size:
            raise UserError(
                f"{path}: truncated: pixel data ends at byte {offset + count} but the file has {size} bytes"
            )
    if not any(page.databytecounts):
        raise UserError(f"{path}: the image holds no pixel data")


# --- writing -------------------------------------------------------------------------------


def provenance(pixel_size_nm: float | None, description: Any = None) -> dict[str, Any]:
    """The record :func:`write_sem` stores: semzoo's version, the time, the pixel size and
    whatever the caller describes (model, version, source file, ...)."""
    import zoo

    return {
        "software": "semzoo",
        "version": zoo.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pixel_size_nm": pixel_size_nm,
        "description": vendors.jsonable(description),
    }


def write_sem(
    path: str | os.PathLike,
    image: np.ndarray,
    pixel_size_nm: float | None,
    description: Any = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a 2-D uint8/uint16/float32 image as an ImageJ TIFF scaled in nm; return the path.

    Fiji reads the scale from the resolution tags and ``unit=nm``; the provenance JSON
    (:func:`provenance`, with ``description`` as given: a dict or a string) sits in the
    ImageJ ``Info`` property (Fiji: Image > Show Info) and :func:`read_sem` reads it back.
    float64 input is stored as float32. The file is written under a temporary name in the
    same directory and renamed into place, so a failure leaves nothing behind; an existing
    ``path`` is refused unless ``overwrite``.
    """
    path = Path(path)
    image = np.asarray(image)
    if pixel_size_nm is not None:
        pixel_size_nm = _checked_pixel_size(pixel_size_nm, str(path))
    if image.ndim != 2:
        raise UserError(f"{path}: can only write a 2-D gray image, got shape {image.shape}")
    if min(image.shape) < 2:
        raise UserError(f"{path}: image is {image.shape[1]}x{image.shape[0]} pixels; need at least 2x2")
    if image.dtype == np.float64:
        image = image.astype(np.float32)
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    if image.dtype not in WRITE_DTYPES:
        raise UserError(f"{path}: cannot write pixel type {image.dtype} (uint8, uint16 or float32)")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise UserError(f"{path}: image holds NaN or infinite values; nothing written")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such directory")
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists; pass --overwrite to replace it")

    record = {vendors.SEMZOO_KEY: provenance(pixel_size_nm, description)}
    record[vendors.SEMZOO_KEY].update(width=int(image.shape[1]), height=int(image.shape[0]))
    options: dict[str, Any] = {
        "imagej": True,
        "photometric": "minisblack",
        "software": f"semzoo {record[vendors.SEMZOO_KEY]['version']}",
        "metadata": {"Info": json.dumps(record, sort_keys=True)},
    }
    if pixel_size_nm is not None:
        # ImageJ: XResolution = pixels per unit, unit from the description.
        options["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        options["metadata"]["unit"] = "nm"

    with atomic_file(path, suffix=".partial", overwrite=overwrite,
                     exists_message=f"{path}: already exists; pass --overwrite to replace it") as tmp:
        tifffile.imwrite(tmp, image, **options)
    return path
