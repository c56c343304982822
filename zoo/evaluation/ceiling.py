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

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy import ndimage

from zoo.evaluation.gaps import GapStats, analyse_gaps

DEFAULT_SIGMAS_PX = (0.25, 0.5, 0.75, 1.0)


@dataclass
class CeilingRow:
    """One degraded version of the target, pooled over the pairs (see :class:`GapStats`)."""

    name: str
    n_gaps: int = 0
    n_undetected: int = 0
    n_touching: int = 0
    n_invented: int = 0
    n_compared: int = 0
    error_sum_nm: float = 0.0

    def add(self, stats: GapStats) -> None:
        self.n_gaps += stats.n_gaps
        self.n_undetected += stats.n_undetected
        self.n_touching += stats.n_touching
        self.n_invented += stats.n_invented
        if stats.n_compared:
            self.n_compared += stats.n_compared
            self.error_sum_nm += stats.gap_size_error_nm * stats.n_compared

    @property
    def undetected_percent(self) -> float:
        return 100.0 * self.n_undetected / self.n_gaps if self.n_gaps else float("nan")

    @property
    def gap_error_nm(self) -> float:
        return self.error_sum_nm / self.n_compared if self.n_compared else float("nan")

    @property
    def invented_percent(self) -> float:
        return 100.0 * self.n_invented / self.n_touching if self.n_touching else float("nan")


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
) -> list[CeilingRow]:
    """Pool :func:`analyse_gaps` over simulated pairs (the noisy target is the reference).

    The first row is the noisy target against all planted gaps (how many it resolves); the
    others count the gaps the target shows, as the evaluation's rows do.
    """
    from zoo.data.simulate import simulate_pair, simulate_signals

    rows: dict[str, CeilingRow] = {}
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
            rows.setdefault(name, CeilingRow(name)).add(stats)
    if progress is not None:
        progress(len(seeds), len(seeds))
    return list(rows.values())


def markdown_ceiling(rows: Sequence[CeilingRow], pixel_size_nm: float) -> str:
    """The rows as a markdown table; blur sigmas also given as FWHM in nm."""
    lines = ["| image | undetected gaps | gap-size error | touching shown apart |",
             "|---|---:|---:|---:|"]
    for r in rows:
        label = "target (noisy), of all planted gaps" if r.name == "target" else r.name
        if "sigma" in r.name:
            sigma = float(r.name.rsplit("sigma", 1)[1].split()[0])
            label += f" (FWHM {2.3548 * sigma * pixel_size_nm:.1f} nm)"
        lines.append(f"| {label} | {r.undetected_percent:.1f}% ({r.n_undetected}/{r.n_gaps}) | "
                     f"{r.gap_error_nm:.2f} nm | {r.invented_percent:.1f}% ({r.n_invented}/{r.n_touching}) |")
    return "\n".join(lines)
