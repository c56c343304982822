"""Pixel types semzoo accepts, and how other layouts become one 2-D gray image.

8/16-bit integer and float gray pass through unchanged; RGB(A) screenshots become BT.601 luma;
palette images keep their indices when the palette is a gray ramp (Zeiss SmartSEM) and are
mapped through the palette otherwise; min-is-white images are inverted. Every conversion is
reported in ``warnings`` so the user knows the image is not the detector signal as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from zoo.errors import UserError

# ITU-R BT.601 luma weights: the usual gray conversion of screenshots.
_LUMA = np.array([0.299, 0.587, 0.114])


def to_gray(data: np.ndarray, page, path: Path, warnings: list[str]) -> np.ndarray:
    """The 2-D gray image of one page: palette indices, RGB(A) -> luma, extra samples dropped."""
    photometric = int(page.photometric)
    if photometric == tifffile.PHOTOMETRIC.PALETTE:
        return palette_to_gray(data, page, warnings)
    data = np.asarray(data)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE and data.ndim == 2 and data.dtype.kind in "uif":
        return _invert(data, warnings)
    if data.ndim == 2:
        return data
    axes = page.axes  # e.g. "YX", "YXS", "SYX"
    if data.ndim == 3 and "S" in axes and len(axes) == 3:
        data = np.moveaxis(data, axes.index("S"), -1)
    if data.ndim != 3:
        raise UserError(f"{path}: expected a 2-D image, the first page has shape {data.shape}")
    samples = data.shape[-1]
    if photometric == tifffile.PHOTOMETRIC.RGB and samples >= 3:
        rgb = data[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            warnings.append("RGB image with equal channels; using one channel as gray")
            return rgb[..., 0]
        warnings.append("RGB image converted to gray (ITU-R BT.601 luma)")
        return luma(rgb)
    warnings.append(f"image has {samples} samples per pixel; using the first as gray")
    return data[..., 0]


def _invert(data: np.ndarray, warnings: list[str]) -> np.ndarray:
    """Min-is-white: 0 is white. Flip so that larger means more signal, like every other file."""
    warnings.append("min-is-white image inverted so that bright is high")
    if np.issubdtype(data.dtype, np.integer):
        top = np.iinfo(data.dtype).max if data.dtype.kind == "u" else int(data.max())
        return (top - data.astype(np.int64)).astype(data.dtype)
    return (data.max() - data).astype(data.dtype)


def luma(rgb: np.ndarray) -> np.ndarray:
    gray = rgb.astype(np.float64) @ _LUMA
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(gray), info.min, info.max).astype(rgb.dtype)
    return gray.astype(rgb.dtype)


def palette_to_gray(indices: np.ndarray, page, warnings: list[str]) -> np.ndarray:
    """Palette images: when the palette is a gray ramp the indices *are* the intensities.

    Zeiss SmartSEM writes a 256-entry gray ramp with a few entries replaced by annotation
    colours (data bar text, crosshairs); those pixels keep their raw index. A palette that
    is not a gray ramp is a colour picture: map it through the palette, then to luma.
    """
    colormap = page.colormap
    if colormap is None:
        return indices
    colormap = np.asarray(colormap).astype(np.int64)
    n = colormap.shape[1]
    ramp = np.rint(np.arange(n) * (65535 / max(n - 1, 1))).astype(np.int64)
    is_ramp = (np.abs(colormap - ramp) <= 1).all(axis=0)  # per entry: R=G=B=index
    if is_ramp.mean() >= 0.8:
        used = np.bincount(indices.ravel(), minlength=n)[:n]
        odd = int(used[~is_ramp].sum())
        if odd:
            warnings.append(
                f"{odd} pixels use annotation colours of the gray palette; kept as raw indices"
            )
        return indices
    warnings.append("palette image mapped through its palette to gray (ITU-R BT.601 luma)")
    rgb = colormap.T[np.clip(indices, 0, n - 1)]  # 16-bit palette values
    return np.rint(luma(rgb.astype(np.float64)) / 257.0).astype(np.uint8)


def check_pixels(image: np.ndarray, path: Path) -> np.ndarray:
    dtype = image.dtype
    if dtype == np.bool_ or dtype.kind not in "uif" or dtype.itemsize > 8:
        raise UserError(f"{path}: unsupported pixel type {dtype} (need 8/16-bit integer or float gray)")
    if not dtype.isnative:
        image = image.astype(dtype.newbyteorder("="))
    if dtype == np.float16:
        image = image.astype(np.float32)
    if dtype.kind == "f" and not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise UserError(f"{path}: {bad} pixels are NaN or infinite")
    return image
