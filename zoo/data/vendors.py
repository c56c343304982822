"""Pixel size and scan height from the metadata SEM vendors put in (or beside) their TIFFs.

Each ``from_*`` function looks at an open :class:`tifffile.TiffFile` (never at pixel data) and
returns a :class:`VendorInfo` when the file is that vendor's, else ``None``. tifffile's own
parsers decode FEI/Thermo Fisher (``fei_metadata``), Zeiss (``sem_metadata``, tag 34118),
ImageJ (``imagej_metadata``) and OME-XML; TESCAN, JEOL and Hitachi, which tifffile does not
decode, are parsed from their text (in tags or sidecars) in :mod:`zoo.data.vendor_text`. :func:`identify`
tries them in a fixed order, most specific first.

Plain TIFF resolution tags (XResolution with a cm/inch unit) are deliberately not read: SEM
software and image editors leave a screen or print DPI there, and a confidently wrong pixel
size is worse than none.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

SEMZOO_KEY = "semzoo"  # top-level key of the JSON semzoo writes into its TIFFs

# Length units vendors use, in nanometres. ImageJ writes "micron" or an escaped "\u00B5m".
_NM_PER_UNIT = {
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "µm": 1e3,  # MICRO SIGN
    "μm": 1e3,  # GREEK SMALL LETTER MU
    "micron": 1e3,
    "microns": 1e3,
    "nm": 1.0,
    "pm": 1e-3,
    "a": 0.1,
    "å": 0.1,  # LATIN CAPITAL LETTER A WITH RING ABOVE, lower-cased
    "Å": 0.1,  # ANGSTROM SIGN, lower-cased
    "angstrom": 0.1,
}


@dataclass
class VendorInfo:
    """What a vendor's metadata says about the scan; all sizes already in nanometres."""

    vendor: str
    pixel_size_nm: float | None = None
    pixel_size_source: str = "none"
    scan_height: int | None = None  # rows of the scan proper; rows below it are the data bar
    # The vendor draws its data bar over the bottom rows of the scan and states no height for
    # it (Zeiss, Hitachi with DataSize = the image): read_sem looks for it (zoo.data.databar).
    databar_drawn_over: bool = False
    metadata: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def unit_to_nm(unit: str) -> float | None:
    """Nanometres per ``unit`` ('nm', 'µm', 'micron', 'm', ...), or None when unknown."""
    text = str(unit).strip()
    if "\\u" in text:  # ImageJ escapes non-ASCII units: unit=\u00B5m
        try:
            text = text.encode("ascii", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            return None
    return _NM_PER_UNIT.get(text.lower())


def positive(value: Any) -> float | None:
    """``value`` as a finite float > 0, else None (vendors write 0 or '' for 'unknown')."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of parsed metadata (tuples, numpy scalars, bytes, enums)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """``[Section]`` / ``key=value`` text (TESCAN, Hitachi) as {section: {key: value}}.

    Keys before any section land in section ``""``. Values stay strings: callers convert
    the few they use, with their units.
    """
    result: dict[str, dict[str, str]] = {"": {}}
    section = result[""]
    for raw in text.replace("\x00", "").splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = result.setdefault(line[1:-1].strip(), {})
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            section[key.strip()] = value.strip()
    if not result[""]:
        del result[""]
    return result


# --- semzoo's own files ------------------------------------------------------------------


def semzoo_record(tif) -> dict | None:
    """The provenance JSON semzoo stored in the ImageJ ``Info`` property, or None."""
    meta = tif.imagej_metadata if tif.is_imagej else None
    info = (meta or {}).get("Info")
    if not isinstance(info, str) or SEMZOO_KEY not in info:
        return None
    try:
        record = json.loads(info)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get(SEMZOO_KEY), dict):
        return record[SEMZOO_KEY]
    return None


def from_semzoo(tif, width: int, height: int) -> VendorInfo | None:
    record = semzoo_record(tif)
    if record is None:
        return None
    size = positive(record.get("pixel_size_nm"))
    info = VendorInfo(
        vendor="semzoo",
        pixel_size_nm=size,
        pixel_size_source="semzoo metadata" if size else "none",
        metadata=record,
    )
    # Fiji keeps the Info property when a user crops, scales and re-saves the image; then the
    # ImageJ calibration is the current one and the record describes the file as first written.
    written = (record.get("width"), record.get("height"))
    if None not in written and written != (width, height):
        info.warnings.append(
            f"image is {width}x{height} but semzoo wrote it as {written[0]}x{written[1]}; edited since"
        )
    calibrated = from_imagej(tif, width, height)
    current = calibrated.pixel_size_nm if calibrated else None
    if current and (not size or abs(current / size - 1) > 0.01):
        if size:
            info.warnings.append(
                f"ImageJ calibration ({current:.6g} nm) differs from semzoo's record ({size:.6g} nm); "
                "using the ImageJ calibration"
            )
        info.pixel_size_nm = current
        info.pixel_size_source = calibrated.pixel_size_source
    return info


# --- FEI / Thermo Fisher -------------------------------------------------------------------


def from_fei(tif, width: int, height: int) -> VendorInfo | None:
    """FEI/Thermo Fisher xT and Helios: the ``[User]...[Scan]...`` INI text in tag 34680/34682.

    ``[Scan] PixelWidth`` is in metres (``[EScan]``/``[IScan]`` repeat it per beam);
    ``[Image] ResolutionY`` is the scan height, the data bar being appended below it.
    """
    if not tif.is_fei:
        return None
    meta = tif.fei_metadata or {}
    info = VendorInfo(vendor="FEI", metadata=jsonable(meta))
    for section in ("Scan", "EScan", "IScan"):
        metres = positive((meta.get(section) or {}).get("PixelWidth"))
        if metres:
            info.pixel_size_nm = metres * 1e9
            info.pixel_size_source = f"FEI [{section}] PixelWidth"
            break
    else:
        # Some FIB images carry only the field width: pixel = HFW / ResolutionX.
        for section in ("EBeam", "IBeam", "IRBeam"):
            hfw = positive((meta.get(section) or {}).get("HFW"))
            columns = positive((meta.get("Image") or {}).get("ResolutionX"))
            if hfw and columns:
                info.pixel_size_nm = hfw / columns * 1e9
                info.pixel_size_source = f"FEI [{section}] HFW / [Image] ResolutionX"
                break
    columns = positive((meta.get("Image") or {}).get("ResolutionX"))
    rows = positive((meta.get("Image") or {}).get("ResolutionY"))
    if columns and int(columns) != width:
        # Resampled after acquisition: the pixel is no longer the scan's, and the data bar's
        # height in this image is unknown.
        if info.pixel_size_nm:
            info.pixel_size_nm *= columns / width
        info.warnings.append(
            f"FEI scan was {int(columns)} pixels wide but the image is {width}; pixel size "
            "rescaled to the image, data bar not cropped"
        )
    elif rows:
        info.scan_height = int(rows)
    return info


# --- Zeiss SmartSEM ------------------------------------------------------------------------

# SmartSEM's "Pixel Size" (ap_pixel_size) refers to a 1024-pixel-wide frame whatever the store
# resolution; "Image Pixel Size" (newer versions) refers to the stored image itself.
_ZEISS_REFERENCE_WIDTH = 1024


def _zeiss_length_nm(entry: Any) -> float | None:
    """A CZ_SEM ``(label, value, unit)`` tuple as nanometres, or None."""
    if not isinstance(entry, (tuple, list)) or len(entry) < 3:
        return None
    value = positive(entry[1])
    per_unit = unit_to_nm(entry[2])
    return value * per_unit if value and per_unit else None


def from_zeiss(tif, width: int, height: int) -> VendorInfo | None:
    """Zeiss SmartSEM: the CZ_SEM tag (34118) decoded by tifffile into ``(label, value, unit)``.

    Preference: ``ap_image_pixel_size`` (the stored image's pixel); else the field width
    ``ap_width`` divided by the image width; else ``ap_pixel_size`` rescaled from SmartSEM's
    1024-pixel reference frame (as hyperspy/rosettasciio does). Each value carries its own unit.
    """
    if not tif.is_sem:
        return None
    meta = tif.sem_metadata or {}
    info = VendorInfo(vendor="Zeiss", metadata=jsonable(meta))
    image_pixel = _zeiss_length_nm(meta.get("ap_image_pixel_size"))
    field_width = _zeiss_length_nm(meta.get("ap_width"))
    display_pixel = _zeiss_length_nm(meta.get("ap_pixel_size"))
    if image_pixel:
        info.pixel_size_nm = image_pixel
        info.pixel_size_source = "Zeiss CZ_SEM ap_image_pixel_size"
    elif field_width:
        info.pixel_size_nm = field_width / width
        info.pixel_size_source = "Zeiss CZ_SEM ap_width / image width"
    elif display_pixel:
        info.pixel_size_nm = display_pixel * _ZEISS_REFERENCE_WIDTH / width
        info.pixel_size_source = "Zeiss CZ_SEM ap_pixel_size x 1024 / image width"
    # SmartSEM draws its data zone over the bottom of the frame (the field height covers every
    # row) and CZ_SEM states no height for it.
    info.databar_drawn_over = True
    if display_pixel and info.pixel_size_nm and not image_pixel:
        expected = display_pixel * _ZEISS_REFERENCE_WIDTH / width
        if abs(expected / info.pixel_size_nm - 1) > 0.01:
            info.warnings.append(
                f"Zeiss field width and pixel size disagree ({info.pixel_size_nm:.4g} nm vs "
                f"{expected:.4g} nm per pixel); using the field width"
            )
    return info


# --- ImageJ and OME ------------------------------------------------------------------------


def _resolution_pixel_size(page) -> float | None:
    """Length per pixel from XResolution (pixels per unit), in that unit."""
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, tuple) and len(value) == 2:
        if not value[0] or not value[1]:
            return None
        return positive(value[1] / value[0])
    per = positive(value)
    return 1.0 / per if per else None


def from_imagej(tif, width: int, height: int) -> VendorInfo | None:
    """ImageJ/Fiji: ``unit=`` in the description + XResolution (pixels per unit)."""
    if not tif.is_imagej:
        return None
    meta = tif.imagej_metadata or {}
    info = VendorInfo(vendor="ImageJ", metadata=jsonable({k: v for k, v in meta.items() if k != "Info"}))
    per_unit = unit_to_nm(meta.get("unit", "")) if meta.get("unit") else None
    size = _resolution_pixel_size(tif.pages.first)
    if per_unit and size:
        info.pixel_size_nm = size * per_unit
        info.pixel_size_source = f"ImageJ resolution ({meta['unit']})"
    elif meta.get("unit"):
        info.warnings.append(f"ImageJ unit {meta['unit']!r} is not a length semzoo knows")
    return info


def from_ome(tif, width: int, height: int) -> VendorInfo | None:
    """OME-TIFF: ``Pixels/@PhysicalSizeX`` with ``PhysicalSizeXUnit`` (default µm)."""
    if not tif.is_ome:
        return None
    xml = tif.ome_metadata or ""
    info = VendorInfo(vendor="OME", metadata={"ome_xml_chars": len(xml)})
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        info.warnings.append("OME-XML could not be parsed; no pixel size from it")
        return info
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return info
    keep = ("PhysicalSizeX", "PhysicalSizeXUnit", "PhysicalSizeY", "PhysicalSizeYUnit", "SizeX", "SizeY", "Type")
    info.metadata.update({k: pixels.get(k) for k in keep if pixels.get(k) is not None})
    size = positive(pixels.get("PhysicalSizeX"))
    unit = pixels.get("PhysicalSizeXUnit", "µm")  # the OME schema's default unit
    per_unit = unit_to_nm(unit)
    if size and per_unit:
        info.pixel_size_nm = size * per_unit
        info.pixel_size_source = f"OME PhysicalSizeX ({unit})"
    elif size:
        info.warnings.append(f"OME PhysicalSizeXUnit {unit!r} is not a length semzoo knows")
    return info


Reader = Callable[[Any, int, int], "VendorInfo | None"]

# Order matters: semzoo's files are ImageJ files, and vendor tags beat generic containers.
TAG_READERS: tuple[Reader, ...] = (from_semzoo, from_fei, from_zeiss)
CONTAINER_READERS: tuple[Reader, ...] = (from_ome, from_imagej)


def identify(tif, path: Path, width: int, height: int) -> VendorInfo:
    """The first vendor whose metadata this file carries; vendor "unknown" otherwise.

    Order: semzoo's own record, FEI, Zeiss, TESCAN, Hitachi (XPComment), JEOL (EXIF
    MakerNote): tags in the file, each vendor's own tag before its sidecar; then JEOL/Hitachi
    ``.txt`` sidecars beside it; then the generic OME and ImageJ containers.
    """
    from zoo.data import vendor_text  # TESCAN, JEOL, Hitachi: the formats tifffile leaves alone

    for reader in TAG_READERS:
        info = reader(tif, width, height)
        if info is not None:
            return info
    for text_reader in (vendor_text.from_tescan, vendor_text.from_hitachi_tag, vendor_text.from_jeol_makernote):
        info = text_reader(tif, path, width, height)
        if info is not None:
            return info
    info = vendor_text.from_txt_sidecar(path, width, height)
    if info is not None:
        return info
    for reader in CONTAINER_READERS:
        info = reader(tif, width, height)
        if info is not None:
            return info
    return VendorInfo(vendor="unknown")
