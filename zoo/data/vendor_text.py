"""TESCAN, JEOL and Hitachi pixel sizes: vendor metadata that is plain text tifffile leaves alone.

- TESCAN writes its header into private TIFF tag 50431 as a chain of blocks
  (``uint32 size, uint16 type, text``; type 2 = MAIN, 3 = SEM, as Gwyddion's ``tescan.c``
  reads them) and, for PNG exports, the same text as an INI sidecar ``NAME-png.hdr``.
  ``[MAIN] PixelSizeX`` is in metres; ``ImageStripSize`` is the height of the info strip
  appended below the scan.
- Hitachi (S-4800, TM4000, SU series) writes ``NAME.txt`` beside ``NAME.tif``: an
  ``[SemImageFile]`` section with ``PixelSize`` in nm and ``DataSize=WxH``, the scan without
  the data bar (newer software: UTF-16LE with a BOM, CRLF). The TM4000 and SU series also put
  the same text into the TIFF itself, in tag 40092 (Windows XPComment, UTF-16LE); the tag is
  the file's own record and wins over the sidecar (which may belong to another export of the
  same stem); when both give a pixel size and they disagree, a warning says so. Where
  ``DataSize`` is the whole stored image, the data bar is drawn over its bottom rows and no
  key states its height (``VendorInfo.databar_drawn_over``; :mod:`zoo.data.databar`).
- JEOL writes ``NAME.txt`` with ``$KEY value`` lines: ``$CM_FULL_SIZE W H`` (the scan),
  ``$CM_FIELD_OF_VIEW`` (newer software, with units), and the scale bar ``$$SM_MICRON_BAR``
  (its length in pixels) with ``$$SM_MICRON_MARKER`` (its length, e.g. ``5um``). The JSM-IT800
  and other recent JEOL software write ``$KEY=value`` entries as UTF-16LE text into the EXIF
  MakerNote instead (tag 34665 -> MakerNote): ``$CM_PIXEL_SIZE=1.00nm/pixel``, ``$CM_MAG=``,
  and ``$SM_PNU_HEIGHT=`` (the image rows above the data bar, which is appended below them).

Only the keys these formats really contain are used; nothing is guessed from pixels.
"""

from __future__ import annotations

import codecs
import re
import struct
from pathlib import Path

from zoo.data.vendors import VendorInfo, parse_ini, positive, unit_to_nm

TESCAN_TAG = 50431
HITACHI_TAG = 40092  # XPComment: Windows' UTF-16LE comment tag
EXIF_TAG = 34665  # the EXIF IFD; tifffile reads it into a dict (with "MakerNote")
_TESCAN_BLOCKS = {2: "MAIN", 3: "SEM", 4: "GAMA", 5: "FIB"}
_SIDECAR_MAX_BYTES = 1 << 20  # real sidecars are a few kB; never slurp a stray huge file
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d.,;]*)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*[x*X, ]\s*(\d+)\s*$")


def _quantity_nm(text: str | None, default_unit: str | None = None) -> float | None:
    """'5um', '500 nm', '1.2 µm', '1.00nm/pixel' -> nanometres; a bare number only with
    ``default_unit``."""
    if not text:
        return None
    match = _QUANTITY.match(text)
    if not match:
        return None
    value = positive(match.group(1))
    unit = re.sub(r"/(pixel|pix|px)$", "", match.group(2), flags=re.IGNORECASE) or default_unit
    per_unit = unit_to_nm(unit) if unit else None
    return value * per_unit if value and per_unit else None


def _size(text: str | None) -> tuple[int, int] | None:
    """'1280x960' or '1280 960' -> (width, height)."""
    match = _SIZE.match(text or "")
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    return (width, height) if width > 0 and height > 0 else None


def _looks_utf16le(raw: bytes) -> bool:
    """ASCII-range text in UTF-16LE without a BOM: (nearly) every odd byte is NUL."""
    odd, even = raw[1::2], raw[0::2]
    return len(raw) >= 4 and odd.count(0) >= 0.9 * len(odd) and even.count(0) < 0.5 * len(even)


def _decode(raw: bytes) -> str:
    """Vendor text: UTF-16 with a BOM or LE without (Hitachi's and JEOL's newer software),
    UTF-8 (a BOM dropped), else latin-1 (older vendor software writes µ as 0xB5)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace")
    if _looks_utf16le(raw):
        return raw[: len(raw) // 2 * 2].decode("utf-16-le", errors="replace")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _tag_bytes(value) -> bytes | None:
    """A BYTE/UNDEFINED tag value as bytes (tifffile gives bytes or a tuple of ints)."""
    if isinstance(value, bytes):
        return value
    try:
        return bytes(value)
    except (TypeError, ValueError):
        return None


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
        sections = parse_ini(_read_text(sidecar))
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


# --- Hitachi and JEOL: tags in the TIFF, sidecars beside it ---------------------------------


def _txt_sidecar(path: Path) -> Path | None:
    for suffix in (".txt", ".TXT", ".Txt"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _read_text(path: Path) -> str:
    return _decode(path.read_bytes()[:_SIDECAR_MAX_BYTES])


_HITACHI_SECTION = re.compile(r"^\s*\[(SemImageFile|TemImageFile)\]", re.MULTILINE)


def _hitachi_fields(sections: dict) -> dict:
    return sections.get("SemImageFile") or sections.get("TemImageFile") or {}


def from_hitachi_tag(tif, path: Path, width: int, height: int) -> VendorInfo | None:
    """Hitachi TM4000 / SU series: the ``[SemImageFile]`` text in tag 40092 (XPComment).

    XPComment is a generic Windows tag: only text with Hitachi's section and a ``PixelSize``
    counts. A Hitachi ``NAME.txt`` beside the file is read too, to compare: the tag wins.
    """
    tag = tif.pages.first.tags.get(HITACHI_TAG)
    raw = _tag_bytes(tag.value) if tag is not None else None
    if not raw:
        return None
    if not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raw = codecs.BOM_UTF16_LE + raw  # XP tags are UTF-16LE by definition
    sections = parse_ini(_decode(raw))
    if "PixelSize" not in _hitachi_fields(sections):
        return None
    info = _hitachi(sections, f"tag {HITACHI_TAG} (XPComment)", {"tag": HITACHI_TAG}, width, height)
    sidecar = _txt_sidecar(path)
    text = _read_text(sidecar) if sidecar is not None else ""
    if _HITACHI_SECTION.search(text):
        other = _hitachi(parse_ini(text), sidecar.name, {}, width, height)
        info.metadata["sidecar"] = sidecar.name
        if info.pixel_size_nm and other.pixel_size_nm and abs(other.pixel_size_nm / info.pixel_size_nm - 1) > 0.01:
            info.warnings.append(
                f"Hitachi: {sidecar.name} says {other.pixel_size_nm:.6g} nm per pixel but the TIFF's own "
                f"tag {HITACHI_TAG} says {info.pixel_size_nm:.6g} nm; using the TIFF's"
            )
    return info


def from_jeol_makernote(tif, path: Path, width: int, height: int) -> VendorInfo | None:
    """JEOL JSM-IT800 and other recent JEOL: ``$KEY=value`` text in the EXIF MakerNote."""
    try:
        tag = tif.pages.first.tags.get(EXIF_TAG)
        exif = tag.value if tag is not None else None
    except Exception:  # noqa: BLE001 - a broken EXIF IFD is no pixel size, not an unreadable image
        return None
    raw = _tag_bytes(exif.get("MakerNote")) if isinstance(exif, dict) and exif.get("MakerNote") else None
    if not raw:
        return None
    keys = _jeol_keys(_decode(raw).replace("\x00", "\n"))
    if not {"CM_PIXEL_SIZE", "CM_MAG", "SM_PNU_HEIGHT", "CM_FULL_SIZE"} & set(keys):
        return None
    return _jeol(keys, "EXIF MakerNote", {"exif": "MakerNote"}, width, height)


def from_txt_sidecar(path: Path, width: int, height: int) -> VendorInfo | None:
    """Hitachi (``[SemImageFile]``) or JEOL (``$CM_...``) text file beside the image."""
    sidecar = _txt_sidecar(path)
    if sidecar is None:
        return None
    text = _read_text(sidecar)
    if _HITACHI_SECTION.search(text):
        return _hitachi(parse_ini(text), sidecar.name, {"sidecar": sidecar.name}, width, height)
    keys = _jeol_keys(text)
    if keys.get("CM_FORMAT", "").upper().startswith("JEOL") or {"SM_MICRON_BAR", "CM_FULL_SIZE"} & set(keys):
        return _jeol(keys, sidecar.name, {"sidecar": sidecar.name}, width, height)
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


def _hitachi(sections: dict, where: str, origin: dict, width: int, height: int) -> VendorInfo:
    fields = _hitachi_fields(sections)
    info = VendorInfo(vendor="Hitachi", metadata={**origin, **sections})
    scan = _size(fields.get("DataSize"))
    pixel = _quantity_nm(fields.get("PixelSize"), default_unit="nm")  # Hitachi: nm per pixel
    if pixel:
        info.pixel_size_nm = _rescaled(pixel, scan[0] if scan else None, width, info, "DataSize")
        info.pixel_size_source = f"Hitachi {where} PixelSize"
    info.scan_height = _crop_to_scan(scan, width, height)
    # DataSize the whole image (or absent): the data bar, if saved, is drawn into the scan's rows.
    info.databar_drawn_over = info.scan_height is None and (scan is None or scan == (width, height))
    return info


_JEOL_ENTRY = re.compile(r"^\$+([A-Za-z][A-Za-z0-9_]*)\s*(?:=|\s)\s*(.*)$")


def _jeol_keys(text: str) -> dict[str, str]:
    """``$CM_MAG 5000`` / ``$$SM_MICRON_BAR 160`` / ``$CM_MAG=5000`` entries as {"CM_MAG": "5000", ...}.

    One entry per line; ``$KEY=value`` entries may also follow each other on one line.
    """
    keys: dict[str, str] = {}
    lines = re.split(r"[\r\n]+|\s+(?=\$+[A-Za-z][A-Za-z0-9_]*=)", text.replace("\x00", ""))
    for raw in lines:
        match = _JEOL_ENTRY.match(raw.strip())
        if match:
            keys.setdefault(match.group(1), match.group(2).strip())
    return keys


def _jeol(keys: dict[str, str], where: str, origin: dict, width: int, height: int) -> VendorInfo:
    info = VendorInfo(vendor="JEOL", metadata={**origin, **keys})
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
        info.pixel_size_source = f"JEOL {where} CM_FIELD_OF_VIEW"
    elif pixel:
        info.pixel_size_nm = _rescaled(pixel, reference_width, width, info, "CM_FULL_SIZE")
        info.pixel_size_source = f"JEOL {where} CM_PIXEL_SIZE"
    elif bar_px and bar_nm:
        # The scale bar is a whole number of pixels: about 0.5 px / 100+ px = 0.5 % precision.
        info.pixel_size_nm = _rescaled(bar_nm / bar_px, reference_width, width, info, "CM_FULL_SIZE")
        info.pixel_size_source = f"JEOL {where} SM_MICRON_MARKER / SM_MICRON_BAR"
    info.scan_height = _crop_to_scan(scan, width, height)
    rows_above_bar = positive(keys.get("SM_PNU_HEIGHT"))  # read_sem crops to it, or warns if too many
    if info.scan_height is None and rows_above_bar and rows_above_bar == int(rows_above_bar):
        info.scan_height = int(rows_above_bar)
    return info
