"""Data consistency: does an enhanced image, re-acquired onto its input's grid, agree with the input?

The map. The output is re-acquired through *the* acquisition model (:func:`zoo.sim.acquisition.acquire`,
the one the simulator and HR-only training use) onto the input's grid, and compared with the
input in units of the input's noise:

    z = (gain * A(output) + offset - input) / sigma

- ``A`` is the scan that produced the input, seen from the output's grid. The served models
  take OpenCV's Lanczos x``scale`` of the input (:func:`zoo.data.register.lanczos_upsample2x`,
  half-pixel centres), so input pixel ``i`` sits at output coordinate ``scale * i + (scale - 1) / 2``
  (2i + 0.5 for x2): ``A`` is by default the exact stepping scan at that phase
  (:func:`registered_scan`), i.e. Lanczos-4 interpolation of the output at those points, with
  no noise added. A probe or dwell travel can be given (a :class:`~zoo.sim.acquisition.ScanParams`).
- ``sigma`` is the input's own noise, estimated from the image itself, per pixel as a function
  of intensity (:func:`noise_sigma_map`; SEM shot noise grows with the signal): the median
  absolute deviation of the residual against the mean of the 4 edge neighbours (as
  :func:`zoo.sim.acquisition.estimate_noise_sigma`; robust: edges and particles are outliers
  the median ignores) in 16 intensity bins, floored at the quantisation step's 1/sqrt(12) for
  integer images.
- ``gain, offset``: the client already maps the output back to the input's intensity scale
  (``out * std + mean``), so this fit should come out close to identity; it only absorbs a small
  global bias of the model (the gain is kept within 0.5-2: an inverted output is wrong, not
  rescaled). It is fitted robustly (least squares, then iteratively reweighted
  with Tukey's biweight at 4.685 times the larger of sigma and the residuals' MAD scale), so
  that a wrong blob -- the thing the map must show -- gets weight 0 instead of pulling the fit.

For an output that equals the noise-free truth, ``z`` is the input's noise over its std: close
to N(0, 1). Where the model invented or removed structure the input's pixels contradict, |z|
is large.

The warning. Pixel-wise |z| > 3 misses structure that keeps the local means (rings whose rims
average out), so the statistic the warning uses is the share of input pixels in a
*disagreeing neighbourhood*: the mean of z^2 over the 5 x 5 window around the pixel exceeds
:data:`LOCAL_CHI2_LEVEL` (for white N(0, 1) noise that mean is 1 with std sqrt(2/25) = 0.28:
2.0 is a 3.5-sigma excursion; scan-line-correlated noise spreads it a little). An output is flagged when that
share exceeds :data:`WARNING_SHARE` (calibrated by ``tools/calibrate_consistency.py`` on the
bundled models' simulated specimens and on real micrographs; README "Trust").

The projection (``consistent=True``). :func:`project_consistent` corrects the output so that
it agrees with the input within ``tolerance`` sigma: iterative back-projection,

    x <- x - U(soft(gain * A(x) + offset - input, tolerance * sigma)) / gain,

with ``U`` the models' own Lanczos x``scale`` and ``soft`` the soft threshold. With the
tolerance at 0 this is the consistency-enforcing step of Bahat & Michaeli, "Explorable Super
Resolution" (CVPR 2020, the Consistency Enforcing Module: the output's re-acquisition equals
the input, and the reconstruction error provably does not grow); a
noisy SEM input is matched within its noise instead, so the correction only moves pixels
whose re-acquisition is more than ``tolerance`` sigma off, and only by the excess (the
Euclidean projection onto ``{x : |A x - y| <= tolerance sigma}`` if ``U`` were ``A``'s
pseudo-inverse; the iterations make up for the difference).

Streaming. The re-acquisition runs over strips of input rows with a halo of output rows, so
the temporaries are a strip's, not a copy of the whole output; strips give the same map as the
whole image (a test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from zoo.sim.acquisition import FWHM_PER_SIGMA, ScanParams, acquire, estimate_noise_sigma

# Local statistic of the warning: mean of z^2 over a LOCAL_WINDOW x LOCAL_WINDOW window.
LOCAL_WINDOW = 5
LOCAL_CHI2_LEVEL = 2.0
# The share of input pixels in a disagreeing neighbourhood above which `semzoo enhance` warns
# (and --strict refuses). Calibrated by tools/calibrate_consistency.py: the log-midpoint of the
# largest share of the bundled models on their own simulated specimens (1.1%) and the smallest
# of a real image where the output is > 1 dB below Lanczos (4.3%); README "Trust".
WARNING_SHARE = 0.022
# Pixels this close to the input's border do not count in the summary (the tiles' and the
# interpolation's border handling, not the model, decides them).
SUMMARY_BORDER = 4
# `--consistent`: agree with the input within this many noise sigma (measured: README "Trust").
PROJECTION_TOLERANCE = 1.0
DEFAULT_STRIP_ROWS = 256
NOISE_BINS = 16
_TUKEY_C = 4.685
GAIN_RANGE = (0.5, 2.0)
_MAD_TO_SIGMA = 1.4826


def registered_scan(scale: int = 2, **extra) -> ScanParams:
    """The scan that recorded the input, in the output's pixels: input pixel i at output
    coordinate ``scale * i + (scale - 1) / 2`` (the served models' Lanczos grid)."""
    phase = (scale - 1) / 2.0
    return ScanParams(scale=scale, phase_x=phase, phase_y=phase, **extra)


def input_noise_sigma(image: np.ndarray) -> float:
    """The input's noise std (:func:`estimate_noise_sigma`), never below what quantisation
    alone gives an integer image (1/sqrt(12) grey levels) nor zero."""
    image = np.asarray(image)
    sigma = estimate_noise_sigma(image.astype(np.float32)) if min(image.shape) >= 3 else 0.0
    return max(float(sigma), _sigma_floor(image))


def _sigma_floor(image: np.ndarray) -> float:
    return 1.0 / math.sqrt(12.0) if image.dtype.kind in "ui" else 1e-6 * max(float(np.ptp(image)), 1e-6)


def noise_sigma_map(image: np.ndarray, *, bins: int = NOISE_BINS) -> np.ndarray:
    """The input's noise std per pixel (float32, the input's shape), as a function of intensity.

    SEM noise is mostly shot noise, larger where the signal is brighter, so one global sigma
    over-counts bright particles and under-counts the dark background. The residual against
    the mean of the 4 edge neighbours (as :func:`estimate_noise_sigma`) is binned by that mean
    into ``bins`` intensity quantiles; each bin's sigma is its residual's MAD / 0.6745 /
    sqrt(1.25) (robust: edges are outliers the median ignores), kept at least half the median
    bin's and the quantisation floor of :func:`input_noise_sigma`, and interpolated linearly in
    intensity between the bins' median intensities.
    """
    img = np.asarray(image, np.float32)
    floor = _sigma_floor(np.asarray(image))
    if min(img.shape) < 3:
        return np.full(img.shape, floor, np.float32)
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    local = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    residual = (img - local)[1:-1, 1:-1].ravel()
    level = local[1:-1, 1:-1].ravel()
    edges = np.unique(np.quantile(level, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, max(len(edges) - 2, 0))
    centres, sigmas = [], []
    for k in range(max(len(edges) - 1, 1)):
        r = residual[which == k]
        if r.size < 16:
            continue
        centres.append(float(np.median(level[which == k])))
        sigmas.append(float(np.median(np.abs(r - np.median(r)))) * _MAD_TO_SIGMA / math.sqrt(1.25))
    if not sigmas:
        return np.full(img.shape, floor, np.float32)
    sigmas = np.maximum(np.array(sigmas), max(0.5 * float(np.median(sigmas)), floor))
    centres, first = np.unique(np.array(centres), return_index=True)
    return np.interp(local, centres, sigmas[first]).astype(np.float32)


def _halo_rows(scan: ScanParams) -> int:
    """Input rows of context a strip needs: Lanczos-4's 4 px and the probe (the dwell box runs
    along rows, so it needs none)."""
    reach = 4.0 + abs(scan.phase_y) + 1.0
    if scan.probe_fwhm_px > 0:
        reach += math.ceil(3.0 * scan.probe_fwhm_px / FWHM_PER_SIGMA) + 1
    return int(math.ceil(reach / scan.scale)) + 1


def reacquire(output: np.ndarray, input_shape: tuple[int, int], scan: ScanParams | None = None, *,
              strip_rows: int | None = DEFAULT_STRIP_ROWS) -> np.ndarray:
    """The output re-acquired onto the input's grid (float32, ``input_shape``), noise-free.

    Computed over strips of ``strip_rows`` input rows (None: the whole image at once); scans
    whose points depend on time (jitter, drift) are always computed whole.
    """
    output = np.asarray(output)
    scan = scan or registered_scan(2)
    s = scan.scale
    h, w = input_shape
    if output.shape != (h * s, w * s):
        raise ValueError(f"output {output.shape} is not x{s} of the input {input_shape}")
    rng = np.random.default_rng(0)  # unused: no noise is added, no jitter in strips
    timed = scan.jitter_px > 0 or scan.drift_x_px != 0 or scan.drift_y_px != 0
    if strip_rows is None or timed or strip_rows >= h:
        return acquire(output, scan, rng, noise_sigma=0.0)
    halo = _halo_rows(scan)
    result = np.empty((h, w), np.float32)
    for r0 in range(0, h, strip_rows):
        r1 = min(h, r0 + strip_rows)
        a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
        piece = acquire(output[a0 * s:a1 * s], scan, rng, noise_sigma=0.0)
        result[r0:r1] = piece[r0 - a0:r1 - a0]
    return result


def fit_gain_offset(reacquired: np.ndarray, image: np.ndarray, sigma: float, *, iterations: int = 8) -> tuple[float, float]:
    """Robust ``image ~ gain * reacquired + offset`` (least squares, then Tukey-biweight IRLS)."""
    x = np.asarray(reacquired, np.float64).ravel()
    y = np.asarray(image, np.float64).ravel()
    weights = np.ones_like(x)
    gain, offset = 1.0, 0.0
    for _ in range(iterations + 1):
        total = weights.sum()
        if total <= 0:
            break
        mx, my = (weights * x).sum() / total, (weights * y).sum() / total
        var = (weights * (x - mx) ** 2).sum()
        gain = float((weights * (x - mx) * (y - my)).sum() / var) if var > 0 else 1.0
        offset = float(my - gain * mx)
        residual = y - gain * x - offset
        scale = max(sigma, _MAD_TO_SIGMA * float(np.median(np.abs(residual - np.median(residual)))))
        u = residual / (_TUKEY_C * scale)
        weights = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        # Far from identity the output is wrong, not mis-scaled (an inverted image would fit
        # perfectly with gain -1): keep the gain in range and let the map show the rest.
        gain = float(np.clip(gain, *GAIN_RANGE))
        offset = float(np.median(y - gain * x))
    return gain, offset


def local_chi2(z: np.ndarray, window: int = LOCAL_WINDOW) -> np.ndarray:
    """Mean of z^2 over the ``window`` x ``window`` neighbourhood of each pixel."""
    z2 = np.asarray(z, np.float32) ** 2
    return cv2.blur(z2, (window, window), borderType=cv2.BORDER_REFLECT)


@dataclass
class ConsistencyMap:
    """The data-consistency map of one output (``z`` on the input's grid) and its summary."""

    z: np.ndarray
    noise_sigma: float
    gain: float
    offset: float
    scan: ScanParams
    threshold: float = WARNING_SHARE
    stats: dict = field(default_factory=dict)
    # The model's own output's map, when this one describes a back-projected output.
    before_projection: "ConsistencyMap | None" = None

    @property
    def inconsistent_share(self) -> float:
        """Share of input pixels in a disagreeing neighbourhood of this map."""
        return float(self.stats["inconsistent_share"])

    @property
    def judged(self) -> "ConsistencyMap":
        """The map the warning judges: the model's output's (a projection agrees by construction)."""
        return self.before_projection or self

    @property
    def flagged(self) -> bool:
        """True when the model's output contradicts the input over more than the threshold."""
        return self.judged.inconsistent_share > self.threshold

    def summary(self) -> dict:
        """What the output's provenance records."""
        before = {} if self.before_projection is None else {
            "projected": True, "before_projection": {k: v for k, v in self.before_projection.summary().items()
                                                     if k not in ("method", "scan")},
        }
        return {
            "method": "output re-acquired onto the input's grid (zoo.sim.acquisition), minus the input, "
                      "in units of the input's noise",
            **self.stats,
            "threshold": self.threshold,
            "flagged": self.flagged,
            "noise_sigma": round(self.noise_sigma, 6),
            "noise_model": f"per pixel, by intensity ({NOISE_BINS} bins); noise_sigma is the median",
            "gain": round(self.gain, 6),
            "offset": round(self.offset, 6),
            "scan": self.scan.as_dict(),
            **before,
        }

    def message(self) -> str:
        """The one-line warning (without the ``warning:`` prefix)."""
        return warning_message(self.summary())


def warning_message(summary: dict) -> str:
    """The one-line warning for a map's :meth:`ConsistencyMap.summary` (no ``warning:`` prefix)."""
    judged = summary.get("before_projection", summary)
    corrected = " (--consistent corrected it to agree within the noise; what it invented at finer scale remains)" \
        if "before_projection" in summary else ""
    return (
        f"consistency check: in {judged['inconsistent_share']:.1%} of the image (threshold {summary['threshold']:.1%}) "
        f"the model's output, re-acquired, contradicts the input beyond its noise "
        f"({judged['share_beyond_3_sigma']:.1%} of pixels beyond 3 sigma){corrected}: it may have invented "
        "structure; try another model (--model) or fine-tune one on your images (semzoo finetune)"
    )


def summarise(z: np.ndarray, *, border: int = SUMMARY_BORDER) -> dict:
    """Share beyond 3 sigma, mean |z| and the share in disagreeing neighbourhoods (border excluded)."""
    chi2 = local_chi2(z)
    h, w = z.shape
    b = border if min(h, w) > 4 * border else 0
    inner = (slice(b, h - b), slice(b, w - b))
    az = np.abs(z[inner])
    return {
        "share_beyond_3_sigma": round(float((az > 3).mean()), 6),
        "mean_abs_z": round(float(az.mean()), 4),
        "inconsistent_share": round(float((chi2[inner] > LOCAL_CHI2_LEVEL).mean()), 6),
        "local_window_px": LOCAL_WINDOW,
        "local_chi2_level": LOCAL_CHI2_LEVEL,
    }


def _sigma_per_pixel(image: np.ndarray, noise_sigma) -> np.ndarray:
    """The noise model: :func:`noise_sigma_map`, or a given constant (or map) ``noise_sigma``."""
    if noise_sigma is None:
        return noise_sigma_map(image)
    sigma = np.broadcast_to(np.asarray(noise_sigma, np.float32), image.shape)
    if not np.all(sigma > 0):
        raise ValueError("noise sigma must be positive")
    return sigma


def consistency_map(image: np.ndarray, output: np.ndarray, *, scale: int = 2, scan: ScanParams | None = None,
                    noise_sigma: float | None = None, threshold: float | None = None,
                    strip_rows: int | None = DEFAULT_STRIP_ROWS) -> ConsistencyMap:
    """The data-consistency map of ``output`` (x``scale``) against its ``image`` (see the module docstring)."""
    image = np.asarray(image)
    scan = scan or registered_scan(scale)
    sigma_px = _sigma_per_pixel(image, noise_sigma)
    sigma = float(np.median(sigma_px))
    again = reacquire(output, image.shape, scan, strip_rows=strip_rows)
    gain, offset = fit_gain_offset(again, image, sigma)
    z = again
    z *= np.float32(gain)
    z += np.float32(offset)
    z -= image.astype(np.float32)
    z /= sigma_px
    threshold = WARNING_SHARE if threshold is None else float(threshold)
    return ConsistencyMap(z, sigma, gain, offset, scan, threshold, summarise(z))


def project_consistent(image: np.ndarray, output: np.ndarray, *, scale: int = 2, scan: ScanParams | None = None,
                       tolerance: float | None = None, iterations: int = 10, noise_sigma: float | None = None) -> np.ndarray:
    """``output`` corrected to agree with ``image`` within ``tolerance`` noise sigma (float32).

    Iterative soft back-projection (module docstring; Bahat & Michaeli, CVPR 2020). The gain
    and offset are fitted once, on the uncorrected output, so a wrong region cannot shift them.
    """
    image = np.asarray(image)
    scan = scan or registered_scan(scale)
    tolerance = PROJECTION_TOLERANCE if tolerance is None else float(tolerance)
    sigma_px = _sigma_per_pixel(image, noise_sigma)
    sigma = float(np.median(sigma_px))
    y = image.astype(np.float32)
    x = np.array(output, np.float32)
    gain, offset = fit_gain_offset(reacquire(x, y.shape, scan), y, sigma)
    h, w = x.shape
    limit = np.float32(tolerance) * sigma_px
    for _ in range(iterations):
        d = reacquire(x, y.shape, scan) * np.float32(gain) + np.float32(offset) - y
        excess = np.sign(d) * np.maximum(np.abs(d) - limit, 0)
        if not np.any(np.abs(excess) > 1e-3 * sigma):
            break
        x -= cv2.resize(excess.astype(np.float32), (w, h), interpolation=cv2.INTER_LANCZOS4) / np.float32(gain)
    return x


def write_consistency_tif(path, cmap: ConsistencyMap, pixel_size_nm: float | None, description: dict, *,
                          overwrite: bool):
    """Write the map as a float32 ImageJ TIFF on the input's grid (atomic: :func:`write_sem`)."""
    from zoo.data.sem_tiff import write_sem

    return write_sem(path, cmap.z.astype(np.float32, copy=False), pixel_size_nm,
                     {**description, "consistency": cmap.summary()}, overwrite=overwrite)

