"""How sharp must an image be to pass the gap criterion? The gap metric's resolution ceiling.

The paper's gap rule (:mod:`zoo.evaluation.gaps`) is very sensitive to blur: a valley must fall
below 60% of the lower adjacent peak. This module measures, on simulated pairs whose truth is
known, how many of the gaps the (noisy) target shows are still shown by

* ``noise-free``: the target's own noise-free signal (the same scan, no shot noise): what an
  ideal denoiser of the target could show;
* ``noise-free, blur sigma s``: that signal after a Gaussian blur of ``s`` target pixels: what an
  image whose remaining point spread is ``s`` shows;
* ``every 2nd sample, Lanczos``: the noise-free signal point-sampled at the input's pixel size
  (every second target sample) and Lanczos-upsampled back: the sampling loss alone, no noise.

It tells a team what a target such as "undetected gaps at most 1/3 of the Lanczos input's"
demands of a network in point-spread terms, and whether noise in the target inflates what the
target "shows". Used by ``tools/gap_metric_ceiling.py``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage

from zoo.evaluation.gaps import GapStats, analyse_gaps

DEFAULT_SIGMAS_PX = (0.25, 0.5, 0.75, 1.0)


def degraded_versions(clean: np.ndarray, sigmas_px: Sequence[float] = DEFAULT_SIGMAS_PX) -> dict[str, np.ndarray]:
    """The noise-free signal, its blurred versions and its every-2nd-sample Lanczos version."""
    clean = np.asarray(clean, dtype=np.float64)
    h, w = clean.shape
    out = {"noise-free": clean}
    for s in sigmas_px:
        out[f"noise-free, blur sigma {s:g} px"] = ndimage.gaussian_filter(clean, float(s), mode="reflect")
    # Samples at target pixels 0, 2, 4, ...; target pixel x lies at x / 2 of that grid (an
    # explicit map: cv2.resize's pixel-area convention would shift the result by half a pixel).
    sub = np.ascontiguousarray(clean[::2, ::2])
    to_sub = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    out["every 2nd sample, Lanczos"] = cv2.warpAffine(
        sub, to_sub, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    return out


def gap_metric_ceiling(
    sample: str,
    seeds: Sequence[int],
    *,
    size: Sequence[int] = (924, 780),
    sigmas_px: Sequence[float] = DEFAULT_SIGMAS_PX,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, GapStats]:
    """Pool :func:`analyse_gaps` over simulated pairs (the noisy target is the reference).

    Returns ``{image name: pooled GapStats}``. The first, ``"target"``, is the noisy target
    against all planted gaps (how many it resolves); the others count the gaps the target
    shows, as the evaluation's rows do.
    """
    from zoo.sim.simulate import simulate_pair, simulate_signals

    per_image: dict[str, list[GapStats]] = {}
    for k, seed in enumerate(seeds):
        if progress is not None:
            progress(k, len(seeds))
        pair = simulate_pair(sample, seed=int(seed), size=size)
        truth = pair.truth
        if not truth["gaps"]:
            raise ValueError(f"sample type {sample!r} has no planted gaps to measure")
        clean = simulate_signals(sample, seed=int(seed), size=size).hr
        images = {"target": pair.hr, **degraded_versions(clean, sigmas_px)}
        analysis = analyse_gaps(images, truth["gaps"], truth["particles"],
                                pixel_size_nm=pair.hr_pixel_size_nm, touching=truth["touching"])
        for name, stats in analysis.stats.items():
            per_image.setdefault(name, []).append(stats)
    if progress is not None:
        progress(len(seeds), len(seeds))
    return {name: GapStats.pooled(stats) for name, stats in per_image.items()}


def markdown_ceiling(rows: Mapping[str, GapStats], pixel_size_nm: float) -> str:
    """:func:`gap_metric_ceiling`'s rows as a markdown table; blur sigmas also as FWHM in nm."""
    lines = ["| image | undetected gaps | gap-size error | touching shown apart |",
             "|---|---:|---:|---:|"]
    for name, r in rows.items():
        label = "target (noisy), of all planted gaps" if name == "target" else name
        if "sigma" in name:
            sigma = float(name.rsplit("sigma", 1)[1].split()[0])
            label += f" (FWHM {2.3548 * sigma * pixel_size_nm:.1f} nm)"
        lines.append(f"| {label} | {100 * r.undetected_gap_fraction:.1f}% ({r.n_undetected}/{r.n_gaps}) | "
                     f"{r.gap_size_error_nm:.2f} nm | "
                     f"{100 * r.invented_gap_fraction:.1f}% ({r.n_invented}/{r.n_touching}) |")
    return "\n".join(lines)
