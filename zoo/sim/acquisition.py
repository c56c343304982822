"""The acquisition model: what a scan at a given pixel pitch records from a finer image or specimen.

One definition of each piece of an SEM acquisition's physics, used by the specimen simulator
(:mod:`zoo.sim.simulate`), HR-only data preparation and fine-tuning (:mod:`zoo.data.hr_only`),
the real-image evaluation and the client's consistency map (:mod:`zoo.client.consistency`):

- the probe: a Gaussian of a given FWHM (:func:`probe_blur`);
- the beam's travel during the dwell: a box along the fast axis x (:func:`_box_kernel`);
- the time a pixel is visited and the drift linear in it (:func:`frame_time`, :func:`linear_drift`);
- scan-line jitter: a random offset per line, plus mains hum (:func:`line_jitter`);
- scan-line noise: intensity noise correlated along each line, independent between lines, a
  per-line offset (flicker) in the limit (:func:`line_noise`; flicker is measured with
  :func:`estimate_line_flicker`);
- shot noise at a dose: Poisson secondary electrons with the detector's gain and read noise
  (:func:`detect`), from a noise-free yield.

The simulator renders a continuous specimen (its yield on a grid finer than the HR pixel, in
nm) and samples it at scan positions that :mod:`zoo.sim.scan` maps from pixels to nm (pitch,
rotation, shift, this drift plus smooth non-rigid terms, this jitter), after this probe, then
detects with :func:`detect`. Its beam steps (no dwell travel). The rest of this module records a
finer *image*, an HR micrograph that already carries its probe and its dose's noise
(:func:`acquire`).

A stepping scan at pitch ``scale`` (in HR pixels) visits the points

    x_i = phase_x + scale * i + jitter_j + drift_x * (j + i / W) / H,
    y_j = phase_y + scale * j +            drift_y * (j + i / W) / H

(HR pixel coordinates, pixel centres at integers; ``jitter_j`` a per-line offset, the drift
linear in the time the pixel is visited). Each recorded value is the HR image seen through

1. an extra Gaussian probe of FWHM ``probe_fwhm_px`` (a larger probe at the lower
   magnification; 0 = the HR's own probe),
2. a box of ``dwell_travel_px`` along the fast-scan axis x (the beam keeps moving while it
   dwells on one pixel; 0 = a stepping beam),

then sampled at (x_i, y_j) with Lanczos-4 interpolation (exact at integer points; the simulator
samples its finer specimen grid bilinearly instead), plus

3. Gaussian noise that brings the record's noise to what a dwell of ``dose_ratio`` times the
   HR's dose gives: the HR's noise variance sigma^2 / dose_ratio, minus what the sample already
   carries (the blur and the interpolation average the HR's noise down, so this adds back the
   difference). The HR noise is estimated from the image itself (:func:`estimate_noise_sigma`).
   This is :func:`detect`'s shot noise in its Gaussian limit, white at the HR's typical level:
   relative to the signal, its variance grows as 1 / dose.

With every parameter at its neutral value and an integer phase the record is exactly
``hr[phase_y::scale, phase_x::scale]``: a scan at twice the pitch with the same dwell records
every second pixel, with the HR's own noise (:func:`stepping_scan_record`). That case lies
inside :data:`TRAINING_RANGES`, the documented ranges training draws its parameters from
(:func:`draw_scan_params`).

Noise sharing. Such an input and its HR target share noise wherever the record sampled (or
averaged) HR pixels, and a network can learn to copy it. :func:`split_noise` splits the HR's
noise into two independent parts (Recorrupted-to-Recorrupted, Pang et al., CVPR 2021): the
input is recorded from ``hr + alpha * z``, the target is ``hr - z / alpha`` (``z`` Gaussian
with the HR's noise variance), whose noises are uncorrelated for any geometry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

# Gaussian std of the median absolute deviation: sigma = MAD / 0.6745.
_MAD_TO_SIGMA = 1.0 / 0.6744897501960817


@dataclass(frozen=True)
class ScanParams:
    """One lower-magnification acquisition of an HR field (see the module docstring)."""

    scale: int = 2
    phase_x: float = 0.0  # HR pixels
    phase_y: float = 0.0
    probe_fwhm_px: float = 0.0  # extra Gaussian probe, HR pixels
    dwell_travel_px: float = 0.0  # box length along x, HR pixels
    dose_ratio: float = 1.0  # LR dose per pixel / HR dose per pixel, (0, 1]
    jitter_px: float = 0.0  # rms per-line x offset, HR pixels
    drift_x_px: float = 0.0  # drift over the whole frame, HR pixels
    drift_y_px: float = 0.0

    def is_exact_stepping_scan(self) -> bool:
        """True when the record is every ``scale``-th pixel of the HR, HR noise and all."""
        neutral = replace(self, phase_x=0.0, phase_y=0.0) == ScanParams(scale=self.scale)
        return neutral and float(self.phase_x).is_integer() and float(self.phase_y).is_integer()

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# The ranges training draws from (:func:`draw_scan_params`): with probability ``exact`` the
# record is the exact stepping scan at integer phase; otherwise every parameter is drawn
# independently, each left neutral with probability ``neutral``.
TRAINING_RANGES = {
    "exact": 0.35,
    "neutral": 0.4,
    "phase_px": (0.0, 2.0),  # uniform over one LR pixel (in HR pixels, for scale 2)
    "probe_fwhm_px": (0.3, 1.6),
    "dwell_travel_px": (0.2, 1.2),
    "dose_ratio": (0.5, 1.0),
    "jitter_px": (0.02, 0.2),
    "drift_px": (-1.0, 1.0),
    # Scan-line noise (:func:`line_noise`), added to the HR field before it is recorded when
    # HR-only data asks for it (``semzoo prepare --line-noise``): drawn with probability
    # ``line_noise``, its rms in units of the HR's white-noise std and its correlation length
    # along x log-uniform, in HR pixels. Real 50 kX InLens micrographs (GaAs nanomembranes,
    # 2.23 nm/px) show row differences whose correlation along x is 0.42-0.46 at 1 px and falls
    # to 0.15 at 64 px (0.03-0.1 along y): about 0.9 sigma of noise 30-60 px long.
    "line_noise": 0.5,
    "line_noise_rms": (0.2, 1.0),
    "line_noise_length_px": (4.0, 128.0),
}


def draw_line_noise(rng: np.random.Generator, ranges: dict | None = None) -> tuple[float, float] | None:
    """(rms in HR noise stds, correlation length in px) from :data:`TRAINING_RANGES`, or None
    (no line noise, with probability 1 - ``line_noise``)."""
    r = {**TRAINING_RANGES, **(ranges or {})}
    if rng.uniform() >= r["line_noise"]:
        return None
    lo, hi = r["line_noise_length_px"]
    return float(rng.uniform(*r["line_noise_rms"])), float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_scan_params(rng: np.random.Generator, scale: int = 2, ranges: dict | None = None) -> ScanParams:
    """Scan parameters drawn from :data:`TRAINING_RANGES` (or ``ranges``)."""
    r = {**TRAINING_RANGES, **(ranges or {})}
    if rng.uniform() < r["exact"]:
        return ScanParams(scale=scale, phase_x=float(rng.integers(scale)), phase_y=float(rng.integers(scale)))

    def draw(key, neutral_value):
        lo, hi = r[key]
        return neutral_value if rng.uniform() < r["neutral"] else float(rng.uniform(lo, hi))

    phase_hi = r["phase_px"][1] * scale / 2.0
    return ScanParams(
        scale=scale,
        phase_x=float(rng.uniform(0.0, phase_hi)),
        phase_y=float(rng.uniform(0.0, phase_hi)),
        probe_fwhm_px=draw("probe_fwhm_px", 0.0),
        dwell_travel_px=draw("dwell_travel_px", 0.0),
        dose_ratio=draw("dose_ratio", 1.0),
        jitter_px=draw("jitter_px", 0.0),
        drift_x_px=draw("drift_px", 0.0),
        drift_y_px=draw("drift_px", 0.0),
    )


def estimate_noise_sigma(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust estimate of an image's white-noise std from its finest scale.

    The residual ``r = I - (mean of the 4 edge neighbours)`` removes smooth structure; for white
    noise of std sigma, ``var(r) = sigma^2 (1 + 1/4)``. Its median absolute deviation (over
    ``mask`` where given; edges, where structure dominates, are outliers the median ignores)
    gives ``sigma = MAD / 0.6745 / sqrt(1.25)``. Structure at the finest scale biases it up a
    little; scan-line-correlated noise biases it down.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 3:
        raise ValueError("estimate_noise_sigma needs a 2-D image of at least 3x3 pixels")
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    residual = (img - cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    if mask is not None:
        residual = residual[np.asarray(mask, bool)[1:-1, 1:-1]]
    residual = residual.ravel().astype(np.float64)
    if residual.size == 0:
        return 0.0
    mad = np.median(np.abs(residual - np.median(residual)))
    return float(mad * _MAD_TO_SIGMA / math.sqrt(1.25))


def estimate_line_flicker(image: np.ndarray) -> float:
    """Robust estimate of the rms per-line intensity offset (line flicker) of an image.

    Row ``j`` of an image with flicker is ``s_j(x) + n_j(x) + o_j`` (signal, white noise, the
    line's offset). The mean along x of the row difference ``r_j - r_{j-1}``, each value
    clipped to 3 noise stds of a difference about the row's median (so the few edges that
    cross the line barely count; a median alone is useless on integer-valued micrographs, where
    it is mostly exactly 0), estimates ``o_j - o_{j-1}``; for independent offsets its variance
    is ``2 rms^2``, from which its own noise (``2 sigma^2 / W`` for W pixels per line) is
    subtracted. The spread over lines is a MAD, so lines crossing a horizontal edge do not
    count either. 0 for an image with no flicker (up to that noise floor).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        raise ValueError("estimate_line_flicker needs a 2-D image of at least 3x3 pixels")
    sigma = estimate_noise_sigma(image)
    diff = np.diff(img, axis=0)
    centre = np.median(diff, axis=1, keepdims=True)
    reach = 3.0 * math.sqrt(2.0) * max(sigma, 1e-12)
    d = np.mean(np.clip(diff, centre - reach, centre + reach), axis=1)
    spread = float(np.median(np.abs(d - np.median(d)))) * _MAD_TO_SIGMA
    floor = 2.0 * sigma**2 / img.shape[1]
    return float(math.sqrt(max(spread**2 - floor, 0.0) / 2.0))


def line_noise(image: np.ndarray, rng: np.random.Generator, rms: float, length_px: float = math.inf) -> np.ndarray:
    """The image (float32) plus scan-line noise: per line (row) an independent Gaussian
    process along the fast axis x of std ``rms`` and correlation length ``length_px`` (white
    noise Gaussian-filtered with that std, in pixels, then rescaled to ``rms``); the default
    infinite length is line flicker, one intensity offset per line. This is the streaky noise
    of a detector or brightness that wanders on time scales between a pixel's dwell and a
    line's: correlated along a line, independent between lines (real micrographs show it as
    row differences correlated along x but not along y). ``rms`` = 0 returns it unchanged."""
    img = np.asarray(image, dtype=np.float32)
    if rms < 0 or not length_px > 0:
        raise ValueError(f"line noise needs rms >= 0 and length_px > 0, got {rms}, {length_px}")
    if rms == 0:
        return img.copy()
    h, w = img.shape
    if math.isinf(length_px) or length_px >= 4 * w:
        return img + rng.normal(0.0, rms, (h, 1)).astype(np.float32)
    pad = int(math.ceil(3 * length_px))
    white = rng.standard_normal((h, w + 2 * pad), dtype=np.float32)
    smooth = cv2.GaussianBlur(white, (2 * pad + 1, 1), sigmaX=float(length_px), sigmaY=0,
                              borderType=cv2.BORDER_REFLECT)[:, pad:pad + w]
    # Unit variance: a Gaussian filter of std L keeps 1 / (2 sqrt(pi) L) of white noise's variance.
    gain = math.sqrt(2.0 * math.sqrt(math.pi) * length_px) if length_px >= 1 else 1.0 / float(smooth.std())
    return img + (np.float32(rms * gain) * smooth).astype(np.float32)


def stepping_scan_record(hr: np.ndarray, scale: int = 2, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The exact record of a stepping scan at ``scale`` times the pitch with the HR's dwell:
    every ``scale``-th pixel starting at integer ``phase`` = (x, y). Pixels of the HR not in
    it are the ones a real-image evaluation scores (:func:`unsampled_mask`)."""
    px, py = phase
    return np.ascontiguousarray(np.asarray(hr)[py::scale, px::scale])


def unsampled_mask(hr_shape: tuple[int, int], scale: int = 2, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """True at the HR pixels :func:`stepping_scan_record` did not take."""
    mask = np.ones(hr_shape, bool)
    mask[phase[1]::scale, phase[0]::scale] = False
    return mask


def record_size(hr_shape: tuple[int, int], scale: int) -> tuple[int, int]:
    """(height, width) of the record of an HR field: the whole LR pixels that fit it."""
    return hr_shape[0] // scale, hr_shape[1] // scale


def probe_blur(image: np.ndarray, fwhm_px: float) -> np.ndarray:
    """``image`` seen through a Gaussian probe of FWHM ``fwhm_px`` (in the image's pixels), float32.

    The one definition of the probe: the simulator blurs a specimen's yield on its fine grid
    with it (:func:`zoo.sim.simulate.probe_blur_layer`), :func:`acquire` an HR image (the extra
    probe of a lower magnification). The kernel reaches +-3 sigma (99.7 % of the weight; OpenCV's
    default +-4 costs more time on the simulator's largest array), mirrored at the borders.
    """
    img = np.asarray(image, dtype=np.float32)
    sigma = fwhm_px / FWHM_PER_SIGMA
    ksize = 2 * max(1, int(math.ceil(3.0 * sigma))) + 1
    return cv2.GaussianBlur(img, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)


def _blurred(hr: np.ndarray, params: ScanParams) -> np.ndarray:
    img = np.asarray(hr, dtype=np.float32)
    if params.probe_fwhm_px > 0:
        img = probe_blur(img, params.probe_fwhm_px)
    if params.dwell_travel_px > 0:
        img = cv2.filter2D(img, -1, _box_kernel(params.dwell_travel_px)[None, :], borderType=cv2.BORDER_REFLECT)
    return img


def _box_kernel(length: float) -> np.ndarray:
    """A centred box of (fractional) ``length`` pixels, normalised: the dwell's travel."""
    half = length / 2.0
    n = int(math.ceil(half - 0.5))
    taps = np.arange(-n, n + 1, dtype=np.float64)
    weights = np.clip(np.minimum(taps + 0.5, half) - np.maximum(taps - 0.5, -half), 0.0, None)
    return (weights / weights.sum()).astype(np.float32)


def frame_time(x, y, size: tuple[int, int]):
    """The fraction of the frame time at which a scan of ``size`` = (width, height) pixels
    visits pixel (x, y): line after line, along each line in x, ``t = (y + x / W) / H``."""
    width, height = size
    return (y + x / width) / height


def linear_drift(x, y, size: tuple[int, int], drift_per_frame):
    """The drift (dx, dy) at pixel (x, y) of a scan of ``size``: the stage or beam moving at
    a constant velocity, ``drift_per_frame`` (in any unit: HR pixels here, nm in
    :func:`zoo.sim.scan.drift`) over the whole frame, times :func:`frame_time`."""
    t = frame_time(x, y, size)
    return drift_per_frame[0] * t, drift_per_frame[1] * t


# Mains hum: a sine in the line offsets whose period, in lines, depends on the line time.
HUM_LINES_PER_PERIOD = (7.0, 40.0)


def line_jitter(rng: np.random.Generator, lines: int, rms_px: float, *, hum_px: float = 0.0) -> np.ndarray:
    """Per-line offsets along the fast axis x (pixels): random beam-deflection noise of std
    ``rms_px`` per line plus, where ``hum_px`` > 0, mains hum of that amplitude (a sine with a
    period drawn from :data:`HUM_LINES_PER_PERIOD` lines and a random phase)."""
    hum = None
    if hum_px > 0:
        lines_per_period = rng.uniform(*HUM_LINES_PER_PERIOD)
        hum = hum_px * np.sin(2 * np.pi * np.arange(lines) / lines_per_period + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0.0, rms_px, lines) if rms_px > 0 else np.zeros(lines)
    return jitter if hum is None else jitter + hum


def sample_points(shape_lr: tuple[int, int], params: ScanParams, jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HR coordinates (x, y) of every point the scan visits, (H_lr, W_lr) each: the pitch and
    phase, the line's jitter and the :func:`linear_drift` at the time of the visit."""
    h, w = shape_lr
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = linear_drift(i, j, (w, h), (params.drift_x_px, params.drift_y_px))
    x = params.phase_x + params.scale * i + jitter[:, None] + dx
    y = params.phase_y + params.scale * j + dy
    return x, y


def detect(rng: np.random.Generator, expected_yield: np.ndarray, electrons_per_pixel: float, *,
           gain_shape: float, read_noise: float) -> np.ndarray:
    """Shot noise at a dose: the detected signal (float32, in SE counts) of ``electrons_per_pixel``
    primaries per pixel on a specimen of ``expected_yield`` SEs per primary (noise-free, any
    shape). Poisson SE counts; each SE's detector pulse of mean 1 and variance 1/``gain_shape``
    (the sum taken as Gaussian, exact in mean and variance); Gaussian read noise of
    ``read_noise`` counts. Variance = mean * (1 + 1/gain_shape) + read_noise**2.

    The simulator's detector (from a specimen). :func:`acquire` starts from an HR image that
    already carries its dose's noise and adds the Gaussian limit of the difference: at
    ``dose_ratio`` times the dose the shot-noise variance relative to the signal is 1/dose_ratio
    times larger.
    """
    counts = rng.poisson(np.maximum(expected_yield, 0.0).astype(np.float64) * electrons_per_pixel).astype(np.float32)
    spread = np.sqrt(counts * np.float32(1.0 / gain_shape) + np.float32(read_noise**2))
    return counts + spread * rng.standard_normal(np.shape(expected_yield), dtype=np.float32)


def _noise_gain(params: ScanParams) -> float:
    """How much of the HR's white-noise std survives blur + Lanczos sampling at this phase
    (the L2 norm of the combined kernel, measured on a delta grid)."""
    size = 33
    delta = np.zeros((size, size), np.float32)
    delta[size // 2, size // 2] = 1.0
    kernel = _blurred(delta, replace(params, dose_ratio=1.0))
    fx, fy = params.phase_x % 1.0, params.phase_y % 1.0
    # The Lanczos-4 weights at this sub-pixel offset, applied to the blurred delta's translates.
    grid = np.arange(-4, 5, dtype=np.float32)
    mx, my = np.meshgrid(size // 2 + grid + fx, size // 2 + grid + fy)
    taps = cv2.remap(kernel, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LANCZOS4,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return float(np.sqrt(np.sum(taps.astype(np.float64) ** 2)))


def acquire(hr: np.ndarray, params: ScanParams, rng: np.random.Generator, *,
            noise_sigma: float | None = None) -> np.ndarray:
    """The record (float32, ``hr.shape // scale``) of a scan with ``params`` over the HR field.

    ``noise_sigma`` is the HR's noise std (estimated with :func:`estimate_noise_sigma` when not
    given); it sets the noise added for ``dose_ratio`` < 1 and for what blur and interpolation
    averaged away.
    """
    hr = np.asarray(hr)
    if hr.ndim != 2:
        raise ValueError(f"acquire needs a 2-D image, got shape {hr.shape}")
    if params.scale < 1 or not 0 < params.dose_ratio <= 1:
        raise ValueError(f"scale must be >= 1 and dose_ratio in (0, 1], got {params.scale}, {params.dose_ratio}")
    if params.is_exact_stepping_scan():
        return stepping_scan_record(hr, params.scale, (int(params.phase_x), int(params.phase_y))).astype(np.float32)
    shape_lr = record_size(hr.shape, params.scale)
    jitter = line_jitter(rng, shape_lr[0], params.jitter_px)
    x, y = sample_points(shape_lr, params, jitter)
    record = cv2.remap(_blurred(hr, params), x.astype(np.float32), y.astype(np.float32), cv2.INTER_LANCZOS4,
                       borderMode=cv2.BORDER_REFLECT)
    sigma = estimate_noise_sigma(hr) if noise_sigma is None else float(noise_sigma)
    kept = _noise_gain(params)
    missing = sigma**2 / params.dose_ratio - (kept * sigma) ** 2
    if missing > 0:
        record = record + rng.normal(0.0, math.sqrt(missing), record.shape).astype(np.float32)
    return record.astype(np.float32)


def split_noise(hr: np.ndarray, rng: np.random.Generator, *, alpha: float = 0.5,
                noise_sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(for_input, for_target): the HR with its noise split into two uncorrelated parts.

    ``hr + alpha z`` and ``hr - z / alpha`` with ``z ~ N(0, sigma^2)``: for white Gaussian noise
    of std sigma their noises are uncorrelated (cov = sigma^2 - sigma^2 = 0), so a network fed
    a record of the first cannot learn the second's noise, and their mean is unbiased
    (Pang et al., "Recorrupted-to-Recorrupted", CVPR 2021, eq. 6). The input's noise std grows
    by sqrt(1 + alpha^2), the target's to sigma sqrt(1 + 1/alpha^2).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    img = np.asarray(hr, dtype=np.float32)
    sigma = estimate_noise_sigma(img) if noise_sigma is None else float(noise_sigma)
    z = rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return img + np.float32(alpha) * z, img - z / np.float32(alpha)


def magnified_view(hr: np.ndarray, factor: float, rng: np.random.Generator, *,
                   noise_sigma: float | None = None) -> np.ndarray:
    """What a scan at ``factor`` times the HR's magnification records of the same field, at best.

    The finer scan cannot resolve more than the HR did (its probe, now ``factor`` pixels wide
    or more, is what limits it), so the signal is the HR Lanczos-resampled onto the finer grid;
    the noise is the detector's white noise per pixel at the same dwell: the HR's noise std,
    of which the resampling has averaged part away and which is added back to that level.
    The view is an oversampled image (probe larger than the pixel), the regime of
    high-magnification micrographs (e.g. 2 nm pixels at 50 kX) that training images recorded
    at coarser pixels lack. ``factor`` > 1; the view is ``round(factor * shape)``.
    """
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    img = np.asarray(hr, dtype=np.float32)
    sigma = estimate_noise_sigma(img) if noise_sigma is None else float(noise_sigma)
    h, w = img.shape
    size = (int(round(w * factor)), int(round(h * factor)))
    view = cv2.resize(img, size, interpolation=cv2.INTER_LANCZOS4)
    left = sigma**2 - estimate_noise_sigma(view) ** 2
    if left > 0:
        view = view + rng.normal(0.0, math.sqrt(left), view.shape).astype(np.float32)
    return view.astype(np.float32)
