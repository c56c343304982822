"""Image-quality metrics after intensity matching, and the interpolation baselines.

de Haan et al. 2019 compare the network with plain upsampling of the low-resolution image. SEM
images from two acquisitions (or a network output mapped back to counts) differ in brightness and
contrast, which PSNR and SSIM punish although they say nothing about resolution; so every image
is first mapped onto the reference's intensities with a **least-squares affine fit**
(``a * image + b``, the fit that minimises the squared error PSNR measures) before scoring.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BASELINE_METHODS = {
    "nearest": cv2.INTER_NEAREST_EXACT,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}


def _pair(reference: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != img.shape:
        raise ValueError(f"need two 2-D images of one shape, got {ref.shape} and {img.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(img))):
        raise ValueError("images contain NaN or infinite values")
    return ref, img


def match_intensity(
    image: np.ndarray, reference: np.ndarray, *, mask: np.ndarray | None = None
) -> np.ndarray:
    """Map ``image`` onto ``reference``'s intensities with a least-squares affine fit.

    Returns ``a * image + b`` with ``a, b`` minimising ``sum((a * image + b - reference)**2)``
    over the pixels where ``mask`` is True (all by default), as float64. A constant image is
    mapped to the reference's mean.
    """
    ref, img = _pair(reference, image)
    a, mean_img, mean_ref = _affine_fit(img, ref, mask)
    return a * (img - mean_img) + mean_ref


def fit_intensity(
    image: np.ndarray, reference: np.ndarray, *, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """``(gain, offset)`` of :func:`match_intensity`'s fit: it returns ``gain * image + offset``."""
    ref, img = _pair(reference, image)
    a, mean_img, mean_ref = _affine_fit(img, ref, mask)
    return a, mean_ref - a * mean_img


def _affine_fit(img: np.ndarray, ref: np.ndarray, mask: np.ndarray | None) -> tuple[float, float, float]:
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != ref.shape or not m.any():
        raise ValueError("mask must have the images' shape and select at least one pixel")
    mean_img, mean_ref = float(img[m].mean()), float(ref[m].mean())
    x = img[m] - mean_img
    var = float(np.mean(x * x))
    a = float(np.mean(x * (ref[m] - mean_ref)) / var) if var > 0 else 0.0
    return a, mean_img, mean_ref


# The metrics take a keyword argument of the same name, which shadows the function inside them.
_affine_match = match_intensity


def _data_range(reference: np.ndarray, data_range: float | None) -> float:
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    if not data_range > 0:
        raise ValueError("the reference image is constant: give data_range explicitly")
    return float(data_range)


def peak_signal_noise_ratio(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    match_intensity: bool = True,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """PSNR in dB of ``image`` against ``reference``, after least-squares intensity matching.

    Parameters
    ----------
    reference, image : (H, W) array_like
    match_intensity : bool, optional
        Fit ``a * image + b`` to the reference first (see the module docstring).
    data_range : float, optional
        Peak-to-peak range of the reference (default: its max - min).
    mask : (H, W) bool array, optional
        Pixels to score (e.g. where the target has data); default all.

    Returns
    -------
    float
        ``10 log10(data_range**2 / MSE)``; ``inf`` for identical images.
    """
    ref, img = _pair(reference, image)
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    peak = _data_range(ref[m], data_range)
    if np.array_equal(ref[m], img[m]):
        return math.inf
    if match_intensity:
        img = _affine_match(img, ref, mask=m)
    mse = float(np.mean((ref[m] - img[m]) ** 2))
    return 10.0 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def structural_similarity(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    match_intensity: bool = True,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Mean SSIM of ``image`` against ``reference``, after least-squares intensity matching.

    SSIM as defined by Wang et al., IEEE TIP 13, 600 (2004): Gaussian weighting with sigma 1.5,
    K1 = 0.01, K2 = 0.03 (scikit-image's ``structural_similarity`` with those options). With a
    ``mask`` the SSIM map is averaged over the masked pixels whose Gaussian window (radius
    3.5 sigma) lies entirely inside the mask.
    """
    from scipy import ndimage
    from skimage.metrics import structural_similarity as _ssim

    ref, img = _pair(reference, image)
    m = np.ones(ref.shape, bool) if mask is None else np.asarray(mask, bool)
    peak = _data_range(ref[m], data_range)
    if match_intensity:
        img = _affine_match(img, ref, mask=m)
    mean_ssim, ssim_map = _ssim(
        ref,
        img,
        data_range=peak,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    if mask is None:
        return float(mean_ssim)
    inner = ndimage.binary_erosion(m, iterations=int(np.ceil(3.5 * 1.5)), border_value=1)
    if not inner.any():
        raise ValueError("the mask leaves no pixel whose SSIM window lies inside it")
    return float(ssim_map[inner].mean())


def baseline_upsample(lr: np.ndarray, method: str, *, scale: int = 2) -> np.ndarray:
    """Upsample ``lr`` by ``scale`` with OpenCV's ``nearest``, ``bicubic`` or ``lanczos``.

    Float32 in and out, half-pixel centres (output pixel ``u`` samples input coordinate
    ``(u + 0.5) / scale - 0.5``), so ``lanczos`` at ``scale=2`` is exactly
    ``zoo.data.register.lanczos_upsample2x``, the network's own first layer: the baseline the
    network has to beat is the input it was given.
    """
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown upsampling method {method!r}; choose from {sorted(BASELINE_METHODS)}")
    img = np.asarray(lr, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"baseline_upsample needs a 2-D image, got shape {img.shape}")
    h, w = img.shape
    return cv2.resize(img, (w * scale, h * scale), interpolation=BASELINE_METHODS[method])
