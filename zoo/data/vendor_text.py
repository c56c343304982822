"""TESCAN, JEOL and Hitachi pixel sizes: vendor metadata that is plain text tifffile leaves alone.

- TESCAN writes its header into private TIFF tag 50431 as a chain of blocks
  (``uint32 size, uint16 type, text``; type 2 = MAIN, 3 = SEM, as Gwyddion's ``tescan.c``
  reads them) and, for PNG exports, the same text as an INI sidecar ``NAME-png.hdr``.
  ``[MAIN] PixelSizeX`` is in metres; ``ImageStripSize`` is the height of the info strip
  appended below the scan.
- Hitachi (S-4800, SU series) writes ``NAME.txt`` beside ``NAME.tif``: an ``[SemImageFile]``
  section with ``PixelSize`` in nm and ``DataSize=WxH``, the scan without the data bar.
- JEOL writes ``NAME.txt`` with ``$KEY value`` lines: ``$CM_FULL_SIZE W H`` (the scan),
  ``$CM_FIELD_OF_VIEW`` (newer software, with units), and the scale bar ``$$SM_MICRON_BAR``
  (its length in pixels) with ``$$SM_MICRON_MARKER`` (its length, e.g. ``5um``).

Only the keys these formats really contain are used; nothing is guessed from pixels.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from zoo.data.vendors import VendorInfo, parse_ini, positive, unit_to_nm

TESCAN_TAG = 50431
_TESCAN_BLOCKS = {2: "MAIN", 3: "SEM", 4: "GAMA", 5: "FIB"}
_SIDECAR_MAX_BYTES = 1 << 20  # real sidecars are a few kB; never slurp a stray huge file
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d.,;]*)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*[x*X, ]\s*(\d+)\s*$")


def _quantity_nm(text: str | None, default_unit: str | None = None) -> float | None:
    """'5um', '500 nm', '1.2 µm' -> nanometres; a bare number only with ``default_unit``."""
    if not text:
        return None
    match = _QUANTITY.match(text)
    if not match:
        return None
    value = positive(match.group(1))
    unit = match.group(2) or default_unit
    per_unit = unit_to_nm(unit) if unit else None
    return value * per_unit if value and per_unit else None


def _size(text: str | None) -> tuple[int, int] | None:
    """'1280x960' or '1280 960' -> (width, height)."""
    match = _SIZE.match(text or "")
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    return (width, height) if width > 0 and height > 0 else None


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older vendor software writes µ as 0xB5


# --- TESCAN --------------------------------------------------------------------------------


def _tescan_blocks(raw: bytes, byteorder: str) -> dict[str, dict[str, str]] | None:
    """Split tag 50431 into its text blocks; None if the chain is not well formed."""
    sections: dict[str, dict[str, str]] = {}
    pos = 0
    while pos + 6 <= len(raw):
        size, kind = struct.unpack_from(byteorder + "IH", raw, pos)
        if size < 2 or pos + 4 + size > len(raw):
            return None
        data = raw[pos + 6 : pos + 4 + size]
        pos += 4 + size
        if kind == 0:
            break
        if kind in _TESCAN_BLOCKS:
            sections[_TESCAN_BLOCKS[kind]] = parse_ini(_decode(data)).get("", {})
    return sections or None


def _tescan_sidecar(path: Path) -> Path | None:
    suffix = path.suffix.lstrip(".")
    for name in (f"{path.stem}-{suffix}.hdr", f"{path.stem}-{suffix.upper()}.HDR", f"{path.stem}.hdr"):
        candidate = path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def from_tescan(tif, path: Path, width: int, height: int) -> VendorInfo | None:
    """TESCAN MIRA/VEGA/LYRA: ``[MAIN] PixelSizeX`` (m), ``ImageStripSize`` (info-strip rows)."""
    sections = None
    tag = tif.pages.first.tags.get(TESCAN_TAG)
    if tag is not None:
        raw = tag.value if isinstance(tag.value, bytes) else bytes(tag.value)
        sections = _tescan_blocks(raw, tif.byteorder)
        if sections is None:  # some exports store the INI text itself
            sections = parse_ini(_decode(raw.replace(b"\x00", b"")))
            if "MAIN" not in sections:
                sections = {"MAIN": sections.get("", {})}
        source = "TESCAN tag 50431"
    else:
        sidecar = _tescan_sidecar(path)
        if sidecar is None:
            return None
        sections = parse_ini(_decode(sidecar.read_bytes()[:_SIDECAR_MAX_BYTES]))
        if "MAIN" not in sections:
            return None
        source = f"TESCAN {sidecar.name}"
    main = sections.get("MAIN", {})
    info = VendorInfo(vendor="TESCAN", metadata=sections)
    metres = positive(main.get("PixelSizeX"))
    if metres:
        info.pixel_size_nm = metres * 1e9
        info.pixel_size_source = f"{source} [MAIN] PixelSizeX"
    strip = positive(main.get("ImageStripSize"))
    if strip and int(strip) < height:
        info.scan_height = height - int(strip)
    return info


# --- JEOL and Hitachi sidecars ---------------------------------------------------------------


def _txt_sidecar(path: Path) -> Path | None:
    for suffix in (".txt", ".TXT", ".Txt"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def from_txt_sidecar(path: Path, width: int, height: int) -> VendorInfo | None:
    """Hitachi (``[SemImageFile]``) or JEOL (``$CM_...``) text file beside the image."""
    sidecar = _txt_sidecar(path)
    if sidecar is None:
        return None
    text = _decode(sidecar.read_bytes()[:_SIDECAR_MAX_BYTES])
    if re.search(r"^\s*\[(SemImageFile|TemImageFile)\]", text, re.MULTILINE):
        return _hitachi(parse_ini(text), sidecar, width, height)
    keys = _jeol_keys(text)
    if keys.get("CM_FORMAT", "").upper().startswith("JEOL") or {"SM_MICRON_BAR", "CM_FULL_SIZE"} & set(keys):
        return _jeol(keys, sidecar, width, height)
    return None


def _rescaled(pixel_nm: float, reference_width: int | None, width: int, info: VendorInfo, what: str) -> float:
    """A pixel size stated for a ``reference_width``-pixel scan, for the stored image's width."""
    if reference_width and reference_width != width:
        info.warnings.append(
            f"{what} describes a {reference_width}-pixel-wide scan but the image is {width} wide; "
            "pixel size rescaled to the stored image"
        )
        return pixel_nm * reference_width / width
    return pixel_nm


def _crop_to_scan(scan: tuple[int, int] | None, width: int, height: int) -> int | None:
    """Scan height when the stored image is the scan plus a data bar below it."""
    if scan and scan[0] == width and scan[1] < height:
        return scan[1]
    return None


def _hitachi(sections: dict, sidecar: Path, width: int, height: int) -> VendorInfo:
    fields = sections.get("SemImageFile") or sections.get("TemImageFile") or {}
    info = VendorInfo(vendor="Hitachi", metadata={"sidecar": sidecar.name, **sections})
    scan = _size(fields.get("DataSize"))
    pixel = _quantity_nm(fields.get("PixelSize"), default_unit="nm")  # Hitachi: nm per pixel
    if pixel:
        info.pixel_size_nm = _rescaled(pixel, scan[0] if scan else None, width, info, "DataSize")
        info.pixel_size_source = f"Hitachi {sidecar.name} PixelSize"
    info.scan_height = _crop_to_scan(scan, width, height)
    return info


def _jeol_keys(text: str) -> dict[str, str]:
    """``$CM_MAG 5000`` / ``$$SM_MICRON_BAR 160`` lines as {"CM_MAG": "5000", ...}."""
    keys: dict[str, str] = {}
    for raw in text.replace("\x00", "").splitlines():
        line = raw.strip()
        if not line.startswith("$"):
            continue
        key, _, value = line.lstrip("$").partition(" ")
        keys.setdefault(key.strip(), value.strip())
    return keys


def _jeol(keys: dict[str, str], sidecar: Path, width: int, height: int) -> VendorInfo:
    info = VendorInfo(vendor="JEOL", metadata={"sidecar": sidecar.name, **keys})
    scan = _size(keys.get("CM_FULL_SIZE")) or _size(keys.get("CM_IMAGE_SIZE"))
    reference_width = scan[0] if scan else None
    field = keys.get("CM_FIELD_OF_VIEW", "").split()
    field_width = _quantity_nm(field[0]) if field else None
    pixel = _quantity_nm(keys.get("CM_PIXEL_SIZE"))  # only with an explicit unit
    bar_px = positive(keys.get("SM_MICRON_BAR"))
    bar_nm = _quantity_nm(keys.get("SM_MICRON_MARKER"))
    if field_width:
        info.pixel_size_nm = field_width / (reference_width or width)
        info.pixel_size_nm = _rescaled(info.pixel_size_nm, reference_width, width, info, "CM_FULL_SIZE")
        info.pixel_size_source = f"JEOL {sidecar.name} CM_FIELD_OF_VIEW"
    elif pixel:
        info.pixel_size_nm = _rescaled(pixel, reference_width, width, info, "CM_FULL_SIZE")
        info.pixel_size_source = f"JEOL {sidecar.name} CM_PIXEL_SIZE"
    elif bar_px and bar_nm:
        # The scale bar is a whole number of pixels: about 0.5 px / 100+ px = 0.5 % precision.
        info.pixel_size_nm = _rescaled(bar_nm / bar_px, reference_width, width, info, "CM_FULL_SIZE")
        info.pixel_size_source = f"JEOL {sidecar.name} SM_MICRON_MARKER / SM_MICRON_BAR"
    info.scan_height = _crop_to_scan(scan, width, height)
    return info
