"""Radially averaged power spectra (paper Fig. 4) and single-image Fourier ring correlation.

* :func:`radial_power_spectrum`: de Haan et al. 2019 (Sci. Rep. 9, 12050), Fig. 4, compare the
  power spectra of input, output and target to show which spatial frequencies the network
  restores. The image's mean is removed and a 2-D Hann window applied first, because the
  implicit periodic continuation of the FFT otherwise puts the jump between opposite edges into
  every frequency as a cross of spurious power.
* :func:`frc_resolution`: single-image Fourier ring correlation (Koho et al., "Fourier ring
  correlation simplifies image restoration in fluorescence microscopy", Nat. Commun. 10, 3103,
  2019): the image is split into its two checkerboard sub-images (pixels with ``i + j`` even and
  odd), whose noise is independent, and the resolution is the inverse of the spatial frequency
  where their FRC falls below the fixed 1/7 threshold.

  The checkerboard sub-images sample a square lattice rotated by 45 degrees whose pixel size is
  ``sqrt(2)`` times the image's: that is the pixel-size correction applied here, and the FRC is
  meaningful up to that lattice's Nyquist frequency ``1 / (2 sqrt(2) pixel_size)``, so the finest
  resolution the method can report is ``2 sqrt(2)`` pixels. Both sub-images are kept on the
  original grid with the other half of the pixels set to zero; their spectra are then the image's
  spectrum plus one alias shifted by (1/2, 1/2) cycles per pixel, so below that limit the two
  share the signal exactly and the one-pixel offset between them costs no correlation. (Koho et
  al.'s own code, miplib, uses the 2x2 split into even/even and odd/odd pixels, whose diagonal
  offset does cost correlation, and corrects the result with an empirical calibration curve; the
  zero-filled checkerboard needs no such calibration, which the tests check against the
  two-image FRC of independent noise realisations.)

  Single-image FRC assumes the noise of neighbouring pixels is independent. In an interpolated
  image (the Lanczos input on the target grid) or a network output it is not, and the FRC then
  reports the band limit of the image rather than a noise-limited resolution; read it together
  with the power spectra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRC_THRESHOLD = 1 / 7


@dataclass(frozen=True)
class PowerSpectrum:
    """Radially averaged power spectrum: ``power[k]`` at ``frequency_per_nm[k]`` (ring centres).

    Normalised so that white noise of variance s**2 has ``power == s**2`` at every frequency.
    """

    frequency_per_nm: np.ndarray
    power: np.ndarray
    pixel_size_nm: float


@dataclass(frozen=True)
class FourierRingCorrelation:
    """FRC per ring (``frequency_per_nm``: ring centres) with the number of Fourier samples."""

    frequency_per_nm: np.ndarray
    frc: np.ndarray
    n_points: np.ndarray


@dataclass(frozen=True)
class FRCResult:
    """Single-image FRC resolution (see :func:`frc_resolution`).

    ``resolution_nm`` is NaN when the FRC is below the threshold from the first ring on (no
    correlated signal); ``at_limit`` is True when the FRC never falls below the threshold up to
    the checkerboard lattice's Nyquist frequency, in which case ``resolution_nm`` equals
    ``limit_nm`` and the true resolution is that or better.
    """

    resolution_nm: float
    limit_nm: float
    at_limit: bool
    threshold: float
    curve: FourierRingCorrelation


def _check(image: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f"need a 2-D image of at least 8x8 pixels, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise ValueError("the image contains NaN or infinite values")
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm}")
    return img


def _window(shape: tuple[int, int], window: str | None) -> np.ndarray:
    if window is None or window == "none":
        return np.ones(shape)
    if window == "hann":
        return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))
    raise ValueError(f"unknown window {window!r}; use 'hann' or None")


def _prepare(img: np.ndarray, window: str | None) -> tuple[np.ndarray, np.ndarray]:
    w = _window(img.shape, window)
    # The window-weighted mean leaves the windowed image with no DC, so no power leaks from it.
    mean = float((img * w).sum() / w.sum())
    return (img - mean) * w, w


def _rings(shape: tuple[int, int], pixel_size_nm: float) -> tuple[np.ndarray, float]:
    """Ring index of every FFT sample; rings are as wide as the coarser frequency spacing."""
    h, w = shape
    fy = np.fft.fftfreq(h, d=pixel_size_nm)
    fx = np.fft.fftfreq(w, d=pixel_size_nm)
    f = np.hypot(fy[:, None], fx[None, :])
    df = 1.0 / (min(h, w) * pixel_size_nm)
    return np.rint(f / df).astype(np.int64), df


def radial_power_spectrum(
    image: np.ndarray, *, pixel_size_nm: float, window: str | None = "hann"
) -> PowerSpectrum:
    """Radially averaged power spectrum of ``image`` up to its Nyquist frequency (paper Fig. 4).

    Parameters
    ----------
    image : (H, W) array_like
    pixel_size_nm : float
        Sets the frequency axis, in cycles per nm.
    window : {"hann", None}, optional
        Apodisation before the FFT (see the module docstring).

    Returns
    -------
    PowerSpectrum
        Rings 1 .. min(H, W) // 2 (the DC ring is left out), power per pixel.
    """
    img = _check(image, pixel_size_nm)
    windowed, w = _prepare(img, window)
    power2d = np.abs(np.fft.fft2(windowed)) ** 2 / float((w * w).sum())
    rings, df = _rings(img.shape, pixel_size_nm)
    n_rings = min(img.shape) // 2
    sums = np.bincount(rings.ravel(), weights=power2d.ravel(), minlength=n_rings + 1)
    counts = np.bincount(rings.ravel(), minlength=n_rings + 1)
    k = np.arange(1, n_rings + 1)
    return PowerSpectrum(
        frequency_per_nm=k * df,
        power=sums[k] / np.maximum(counts[k], 1),
        pixel_size_nm=float(pixel_size_nm),
    )


def _frc_from_spectra(f1: np.ndarray, f2: np.ndarray, rings: np.ndarray, n_rings: int):
    idx = rings.ravel()
    cross = np.bincount(idx, weights=(f1 * np.conj(f2)).real.ravel(), minlength=n_rings + 1)
    p1 = np.bincount(idx, weights=(np.abs(f1) ** 2).ravel(), minlength=n_rings + 1)
    p2 = np.bincount(idx, weights=(np.abs(f2) ** 2).ravel(), minlength=n_rings + 1)
    counts = np.bincount(idx, minlength=n_rings + 1)
    k = np.arange(1, n_rings + 1)
    denom = np.sqrt(p1[k] * p2[k])
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = np.where(denom > 0, cross[k] / denom, 0.0)
    return k, frc, counts[k]


def fourier_ring_correlation(
    image1: np.ndarray, image2: np.ndarray, *, pixel_size_nm: float, window: str | None = "hann"
) -> FourierRingCorrelation:
    """Fourier ring correlation of two images of the same field with independent noise.

    ``FRC(r) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the Fourier samples of ring
    ``r`` (Koho et al. 2019, Eq. 1), rings 1 .. min(H, W) // 2.
    """
    a = _check(image1, pixel_size_nm)
    b = _check(image2, pixel_size_nm)
    if a.shape != b.shape:
        raise ValueError(f"FRC needs two images of one shape, got {a.shape} and {b.shape}")
    wa, _ = _prepare(a, window)
    wb, _ = _prepare(b, window)
    rings, df = _rings(a.shape, pixel_size_nm)
    n_rings = min(a.shape) // 2
    k, frc, counts = _frc_from_spectra(np.fft.fft2(wa), np.fft.fft2(wb), rings, n_rings)
    return FourierRingCorrelation(frequency_per_nm=k * df, frc=frc, n_points=counts)


def checkerboard_split(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two checkerboard sub-images of ``image`` on its own grid, zeros elsewhere.

    ``even`` keeps the pixels with ``i + j`` even, ``odd`` those with ``i + j`` odd.
    """
    img = np.asarray(image, dtype=np.float64)
    i, j = np.indices(img.shape)
    even = (i + j) % 2 == 0
    return np.where(even, img, 0.0), np.where(even, 0.0, img)


def frc_resolution(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    threshold: float = FRC_THRESHOLD,
    window: str | None = "hann",
) -> FRCResult:
    """Resolution of a single image by checkerboard-split Fourier ring correlation.

    Koho et al., Nat. Commun. 10, 3103 (2019): the FRC of the image's two checkerboard
    sub-images (:func:`checkerboard_split`), evaluated up to the sub-lattice's Nyquist frequency
    ``1 / (2 sqrt(2) pixel_size_nm)`` (its pixel size is ``sqrt(2) * pixel_size_nm``), and
    smoothed over three neighbouring rings; the resolution is ``1 / f`` where the FRC first falls
    below ``threshold`` (fixed 1/7), located by linear interpolation between rings.

    Parameters
    ----------
    image : (H, W) array_like
    pixel_size_nm : float
    threshold : float, optional
    window : {"hann", None}, optional
        Applied to the whole image before the split.

    Returns
    -------
    FRCResult
    """
    img = _check(image, pixel_size_nm)
    windowed, _ = _prepare(img, window)
    even, odd = checkerboard_split(windowed)
    rings, df = _rings(img.shape, pixel_size_nm)
    limit_f = 1.0 / (2 * math.sqrt(2) * pixel_size_nm)
    n_rings = int(math.floor(limit_f / df))
    rings = np.where(rings <= n_rings, rings, 0)  # beyond the limit: ignored (ring 0 unused)
    k, frc, counts = _frc_from_spectra(np.fft.fft2(even), np.fft.fft2(odd), rings, n_rings)
    freq = k * df
    curve = FourierRingCorrelation(frequency_per_nm=freq, frc=frc, n_points=counts)
    # A 3-ring running mean: single rings at low frequency hold few samples and scatter.
    padded = np.concatenate([frc[:1], frc, frc[-1:]])
    smooth = np.convolve(padded, np.ones(3) / 3, mode="valid")
    below = np.flatnonzero(smooth < threshold)
    limit_nm = 1.0 / limit_f
    if below.size == 0:
        return FRCResult(limit_nm, limit_nm, True, threshold, curve)
    first = int(below[0])
    if first == 0:
        return FRCResult(math.nan, limit_nm, False, threshold, curve)
    y0, y1 = smooth[first - 1], smooth[first]
    f_cross = freq[first - 1] + (y0 - threshold) / (y0 - y1) * (freq[first] - freq[first - 1])
    return FRCResult(float(1.0 / f_cross), limit_nm, False, threshold, curve)
