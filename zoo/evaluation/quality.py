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


def match_intensity(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map ``image`` onto ``reference``'s intensities with a least-squares affine fit.

    Returns ``a * image + b`` with ``a, b`` minimising ``sum((a * image + b - reference)**2)``
    (float64). A constant image is mapped to the reference's mean.
    """
    ref, img = _pair(reference, image)
    x = img - img.mean()
    var = float(np.mean(x * x))
    a = float(np.mean(x * (ref - ref.mean())) / var) if var > 0 else 0.0
    return a * x + ref.mean()


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
) -> float:
    """PSNR in dB of ``image`` against ``reference``, after least-squares intensity matching.

    Parameters
    ----------
    reference, image : (H, W) array_like
    match_intensity : bool, optional
        Fit ``a * image + b`` to the reference first (see the module docstring).
    data_range : float, optional
        Peak-to-peak range of the reference (default: its max - min).

    Returns
    -------
    float
        ``10 log10(data_range**2 / MSE)``; ``inf`` for identical images.
    """
    ref, img = _pair(reference, image)
    peak = _data_range(ref, data_range)
    if np.array_equal(ref, img):
        return math.inf
    if match_intensity:
        img = _affine_match(img, ref)
    mse = float(np.mean((ref - img) ** 2))
    return 10.0 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def structural_similarity(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    match_intensity: bool = True,
    data_range: float | None = None,
) -> float:
    """Mean SSIM of ``image`` against ``reference``, after least-squares intensity matching.

    SSIM as defined by Wang et al., IEEE TIP 13, 600 (2004): Gaussian weighting with sigma 1.5,
    K1 = 0.01, K2 = 0.03 (scikit-image's ``structural_similarity`` with those options).
    """
    from skimage.metrics import structural_similarity as _ssim

    ref, img = _pair(reference, image)
    peak = _data_range(ref, data_range)
    if match_intensity:
        img = _affine_match(img, ref)
    return float(
        _ssim(
            ref,
            img,
            data_range=peak,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


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
