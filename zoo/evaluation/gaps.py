"""Gap analysis between adjacent particles, as in the paper.

de Haan et al., "Resolution enhancement in scanning electron microscopy using deep learning",
Sci. Rep. 9, 12050 (2019), Methods, "Gap analysis" (Figs. 2 and 3): along a line profile across
the gap between two adjacent particles,

* the **gap width** is the distance between the points where the intensity falls below 80% of
  the adjacent particles' peak intensity (here located with sub-sample precision by linear
  interpolation between the two samples that bracket each crossing), and
* a **gap is detected** only if the lowest point between the two particles falls below 60% of
  that peak.

The paper speaks of "the peak" of the adjacent particles without saying which one when they
differ; we use the *lower* of the two particle peaks, so a gap next to a dim particle is judged
against that particle (the more demanding choice: a shallow dip next to a bright particle does not
count as a gap). Intensities are used as they are (the paper's absolute percentages), unless a
``background`` level is given, in which case the percentages apply above it.

Comparisons between images (:func:`analyse_gaps`) first map every image onto the reference's
intensity scale with a least-squares affine fit (:func:`zoo.evaluation.quality.match_intensity`),
so the 80%/60% levels mean the same thing in the input, the output and the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

WIDTH_LEVEL = 0.8
DETECTION_LEVEL = 0.6
# Profiles in analyse_gaps are sampled every half pixel: finer than the pixel grid so that the
# lowest point of an oblique profile is not missed, while bilinear interpolation keeps each sample
# a local average of real pixels (no ringing from higher-order interpolation).
PROFILE_STEP_PX = 0.5
PROFILE_WIDTH_PX = 3
# Profiles run one pixel past each particle centre: with blur and sub-pixel centres a small
# particle's brightest point can lie just beyond its nominal centre.
PROFILE_EXTEND_PX = 1.0


@dataclass(frozen=True)
class GapProfile:
    """The analysis of one line profile across one gap (see :func:`analyse_gap_profile`).

    Positions are in samples along ``profile``; intensities are above ``background``.
    """

    profile: np.ndarray
    sample_spacing_nm: float
    detected: bool
    width_nm: float | None
    peak: float
    valley: float
    peak_positions: tuple[int, int]
    valley_position: int
    crossings: tuple[float, float] | None
    background: float = 0.0

    @property
    def valley_ratio(self) -> float:
        """Lowest point between the particles as a fraction of the (lower) peak."""
        return self.valley / self.peak if self.peak > 0 else math.nan


def analyse_gap_profile(
    profile: np.ndarray,
    *,
    pixel_size_nm: float,
    split: float | None = None,
    background: float = 0.0,
    width_level: float = WIDTH_LEVEL,
    detection_level: float = DETECTION_LEVEL,
) -> GapProfile:
    """Analyse a line profile that runs from one particle, across a gap, into the next.

    Implements the paper's gap criterion (de Haan et al. 2019, Methods, "Gap analysis").

    Parameters
    ----------
    profile : (N,) array_like
        Intensities along the line, starting inside particle A and ending inside particle B.
    pixel_size_nm : float
        Distance between consecutive profile samples in nm (the image pixel size times the
        sampling step of :func:`line_profile`).
    split : float, optional
        Sample position that separates particle A's side from particle B's side; each particle's
        peak is searched on its own side. Default: the middle of the profile.
    background : float, optional
        Intensity taken as zero for the percentages (default 0: the paper's absolute levels).
    width_level, detection_level : float, optional
        The paper's 80% (width) and 60% (detection) levels.

    Returns
    -------
    GapProfile
        ``detected`` and ``width_nm`` (None when undetected), with the peaks, the valley and the
        sub-sample positions of the two crossings.
    """
    values = np.asarray(profile, dtype=np.float64)
    if values.ndim != 1 or values.size < 3:
        raise ValueError(f"a gap profile needs at least 3 samples, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("the gap profile contains NaN or infinite values")
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm}")
    if not 0 < detection_level <= width_level < 1:
        raise ValueError("need 0 < detection_level <= width_level < 1")
    q = values - float(background)
    n = q.size
    centre = (n - 1) / 2 if split is None else float(split)
    s = int(round(min(max(centre, 1), n - 2)))
    ia = int(np.argmax(q[: s + 1]))
    ib = s + int(np.argmax(q[s:]))
    peak = float(min(q[ia], q[ib]))
    iv = ia + int(np.argmin(q[ia : ib + 1]))
    valley = float(q[iv])

    def result(detected: bool, width: float | None, crossings=None) -> GapProfile:
        return GapProfile(
            profile=values,
            sample_spacing_nm=float(pixel_size_nm),
            detected=detected,
            width_nm=width,
            peak=peak,
            valley=valley,
            peak_positions=(ia, ib),
            valley_position=iv,
            crossings=crossings,
            background=float(background),
        )

    if peak <= 0 or ib - ia < 2 or not valley < detection_level * peak:
        return result(False, None)
    level = width_level * peak
    # Walk inward from each peak to where the intensity first falls below the 80% level.
    k = ia + 1
    while q[k] >= level:
        k += 1
    left = (k - 1) + (q[k - 1] - level) / (q[k - 1] - q[k])
    k = ib - 1
    while q[k] >= level:
        k -= 1
    right = k + (level - q[k]) / (q[k + 1] - q[k])
    return result(True, float((right - left) * pixel_size_nm), (float(left), float(right)))


def measure_gap(
    profile: np.ndarray,
    *,
    pixel_size_nm: float,
    split: float | None = None,
    background: float = 0.0,
    width_level: float = WIDTH_LEVEL,
    detection_level: float = DETECTION_LEVEL,
) -> float | None:
    """Gap width in nm along ``profile``, or None when the gap is not detected.

    The paper's rule (de Haan et al. 2019, Methods, "Gap analysis"): the width is the distance
    between the points where the intensity falls below 80% of the adjacent particles' peak (the
    lower of the two peaks); the gap counts as detected only if the lowest point between the
    particles is below 60% of that peak. See :func:`analyse_gap_profile` for the parameters.

    Examples
    --------
    >>> x = np.arange(41.0)
    >>> p = np.exp(-((x - 10) / 6) ** 2) + np.exp(-((x - 30) / 6) ** 2)
    >>> round(measure_gap(p, pixel_size_nm=2.0), 1)
    28.7
    """
    return analyse_gap_profile(
        profile,
        pixel_size_nm=pixel_size_nm,
        split=split,
        background=background,
        width_level=width_level,
        detection_level=detection_level,
    ).width_nm


def line_profile(
    image: np.ndarray,
    p0: Sequence[float],
    p1: Sequence[float],
    *,
    width: int = PROFILE_WIDTH_PX,
    extend: float = 0.0,
    step: float = 1.0,
    order: int = 1,
) -> np.ndarray:
    """Sample ``image`` along the line from ``p0`` to ``p1`` with sub-pixel interpolation.

    Parameters
    ----------
    image : (H, W) array_like
    p0, p1 : (x, y)
        End points in pixel coordinates (pixel (i, j) has its centre at x=j, y=i).
    width : int, optional
        Number of parallel lines, one pixel apart, whose samples are averaged (as ImageJ's line
        width; default 3): reduces noise without blurring along the line.
    extend : float, optional
        Pixels added beyond both end points.
    step : float, optional
        Distance between samples in pixels; the profile's sample spacing in nm is
        ``step * pixel_size_nm``. Samples start at ``p0`` (minus ``extend``), so ``p0`` and, when
        the length is a multiple of ``step``, ``p1`` are sampled exactly.
    order : int, optional
        Spline order of :func:`scipy.ndimage.map_coordinates` (1 = bilinear).

    Returns
    -------
    (N,) ndarray of float64
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"line_profile needs a 2-D image, got shape {img.shape}")
    if width < 1 or step <= 0:
        raise ValueError("width must be >= 1 and step > 0")
    x0, y0 = (float(v) for v in p0)
    x1, y1 = (float(v) for v in p1)
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        raise ValueError("the two end points of a line profile coincide")
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    n = int(math.floor((length + 2 * extend) / step + 1e-9)) + 1
    t = -extend + step * np.arange(n)
    offsets = np.arange(width) - (width - 1) / 2
    xs = x0 + t[None, :] * ux - offsets[:, None] * uy
    ys = y0 + t[None, :] * uy + offsets[:, None] * ux
    samples = ndimage.map_coordinates(img, [ys.ravel(), xs.ravel()], order=order, mode="nearest")
    return samples.reshape(width, n).mean(axis=0)


# --------------------------------------------------------------------------------------------
# Many gaps in several images
# --------------------------------------------------------------------------------------------


@dataclass
class GapStats:
    """Summary of the gap analysis of one image (the columns of the paper's comparison).

    Denominators follow the paper, which counted the gaps visible in the high-resolution image:
    for every image but the reference, ``n_gaps`` is the number of gaps the reference shows and
    ``n_touching`` the number of touching pairs it shows touching. For the reference itself they
    are all gaps and touching pairs analysed, so with a truth.json its row says how many planted
    gaps the target resolves (and how many touching pairs it shows apart); without truth the
    gaps come from the target and its row is zero by construction.
    """

    n_gaps: int
    n_undetected: int
    n_compared: int
    gap_size_error_nm: float
    n_touching: int
    n_invented: int

    @classmethod
    def pooled(cls, stats: Iterable["GapStats"]) -> "GapStats":
        """The statistics of several images' gaps taken together: counts add up, the size error
        is averaged over all compared gaps."""
        stats = list(stats)
        weighted = [(s.gap_size_error_nm, s.n_compared) for s in stats
                    if s.n_compared and math.isfinite(s.gap_size_error_nm)]
        compared = sum(n for _, n in weighted)
        return cls(
            n_gaps=sum(s.n_gaps for s in stats),
            n_undetected=sum(s.n_undetected for s in stats),
            n_compared=sum(s.n_compared for s in stats),
            gap_size_error_nm=sum(v * n for v, n in weighted) / compared if compared else math.nan,
            n_touching=sum(s.n_touching for s in stats),
            n_invented=sum(s.n_invented for s in stats),
        )

    @property
    def undetected_gap_fraction(self) -> float:
        """Fraction of the gaps that this image does not show (paper: "% undetected gaps")."""
        return self.n_undetected / self.n_gaps if self.n_gaps else math.nan

    @property
    def invented_gap_fraction(self) -> float:
        """Fraction of touching pairs that this image shows apart: structure that is not there."""
        return self.n_invented / self.n_touching if self.n_touching else math.nan

    def to_dict(self) -> dict:
        return {
            "n_gaps": self.n_gaps,
            "n_undetected": self.n_undetected,
            "undetected_gap_fraction": _json_float(self.undetected_gap_fraction),
            "n_compared": self.n_compared,
            "gap_size_error_nm": _json_float(self.gap_size_error_nm),
            "n_touching": self.n_touching,
            "n_invented": self.n_invented,
            "invented_gap_fraction": _json_float(self.invented_gap_fraction),
        }


@dataclass
class GapAnalysis:
    """The result of :func:`analyse_gaps`.

    ``widths_nm[name][k]`` is image ``name``'s width of gap ``gaps[k]`` (NaN: not detected);
    ``touching_widths_nm[name][k]`` the same for the touching pair ``touching[k]`` (NaN: shown
    touching, as it should be). ``profiles`` keeps every profile analysis for figures.
    """

    reference: str
    pixel_size_nm: float
    gaps: list[dict]
    touching: list[dict]
    particles: dict
    widths_nm: dict[str, np.ndarray]
    touching_widths_nm: dict[str, np.ndarray]
    profiles: dict[str, list[GapProfile]]
    touching_profiles: dict[str, list[GapProfile]]
    stats: dict[str, GapStats]
    skipped: int = 0
    sample_spacing_nm: float = math.nan
    lines: list[tuple[tuple[float, float], tuple[float, float]]] = field(default_factory=list)

    def considered(self, name: str) -> np.ndarray:
        """Which gaps count in image ``name``'s row (:class:`GapStats`' denominator): those the
        reference shows, or all of them for the reference itself."""
        ref_shown = np.isfinite(self.widths_nm[self.reference])
        return np.ones_like(ref_shown) if name == self.reference else ref_shown

    def considered_touching(self, name: str) -> np.ndarray:
        """Which touching pairs count in image ``name``'s row: those the reference shows
        touching, or all of them for the reference itself."""
        ref_apart = np.isfinite(self.touching_widths_nm[self.reference])
        return np.ones_like(ref_apart) if name == self.reference else ~ref_apart

    def errors_nm(self, name: str) -> np.ndarray:
        """Signed gap-size errors (image - reference) over the gaps both detect (paper Fig. 3)."""
        diff = self.widths_nm[name] - self.widths_nm[self.reference]
        return diff[np.isfinite(diff)]


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def particle_table(particles: Iterable[Mapping]) -> dict:
    """``{id: (x, y, radius_nm)}`` from truth.json-style particle records."""
    table = {}
    for p in particles:
        try:
            table[p["id"]] = (float(p["x_hr"]), float(p["y_hr"]), float(p["radius_nm"]))
        except KeyError as exc:
            raise ValueError(f"particle {p!r} lacks {exc.args[0]!r} (truth.json schema)") from None
    return table


def _pair_geometry(table: dict, pair: Mapping, pixel_size_nm: float):
    try:
        xa, ya, ra = table[pair["a"]]
        xb, yb, rb = table[pair["b"]]
    except KeyError as exc:
        raise ValueError(f"gap {dict(pair)!r} names unknown particle {exc.args[0]!r}") from None
    ra, rb = ra / pixel_size_nm, rb / pixel_size_nm
    d = math.hypot(xb - xa, yb - ya)
    # Each particle's peak is searched on its own side of the expected gap centre.
    fraction = (ra + (d - ra - rb) / 2) / d if d > 0 else 0.5
    return (xa, ya), (xb, yb), d, min(max(fraction, 0.15), 0.85)


def analyse_gaps(
    images: Mapping[str, np.ndarray],
    gaps: Sequence[Mapping],
    particles: Sequence[Mapping],
    *,
    pixel_size_nm: float,
    touching: Sequence[Mapping] = (),
    reference: str = "target",
    match_intensity: bool = True,
    background: float = 0.0,
    profile_width: int = PROFILE_WIDTH_PX,
    progress: Callable[[int, int], None] | None = None,
) -> GapAnalysis:
    """Measure every gap (and every touching pair) in every image, as in the paper's Fig. 3.

    For each pair of particles the profile runs from particle centre to particle centre, one
    pixel further at both ends (``profile_width`` parallel lines averaged, sampled every half
    pixel), and is judged by
    :func:`analyse_gap_profile` (de Haan et al. 2019, Methods, "Gap analysis").

    Parameters
    ----------
    images : mapping name -> (H, W) array
        All on the same grid, e.g. ``{"input": ..., "output": ..., "target": ...}``.
    gaps, touching : sequences of ``{"a": id, "b": id, ...}``
        Particle pairs with a gap, and pairs whose surfaces touch (no gap): the truth.json
        schema, or :func:`find_gaps` on the target when there is no truth.
    particles : sequence of ``{"id", "x_hr", "y_hr", "radius_nm"}``
        Particle centres in pixel coordinates of ``images`` and radii in nm.
    pixel_size_nm : float
        Pixel size of ``images``.
    reference : str, optional
        The image whose gap sizes the others are compared with (the paper: the target).
    match_intensity : bool, optional
        Map each image onto the reference's intensities (least-squares affine fit) first, so the
        80%/60% levels are comparable between images.
    background : float, optional
        Zero level for the percentages, in the reference's intensities (default 0, as the paper).

    Returns
    -------
    GapAnalysis
        Per image: ``stats[name]`` with ``undetected_gap_fraction`` (of the gaps the reference
        shows, as the paper counted them; for the reference itself, of all gaps),
        ``gap_size_error_nm`` (mean |width - reference width| over gaps detected in both) and
        ``invented_gap_fraction`` (touching pairs shown apart, of those the reference shows
        touching; see :class:`GapStats`). Pairs whose profile leaves the image are skipped.
    """
    from zoo.evaluation.quality import match_intensity as _match

    if reference not in images:
        raise ValueError(f"reference image {reference!r} is not among {sorted(images)}")
    ref = np.asarray(images[reference], dtype=np.float64)
    prepared = {}
    for name, image in images.items():
        img = np.asarray(image, dtype=np.float64)
        if img.shape != ref.shape:
            raise ValueError(f"image {name!r} is {img.shape}, the reference is {ref.shape}")
        prepared[name] = _match(img, ref) if match_intensity and name != reference else img
    table = particle_table(particles)
    h, w = ref.shape
    margin = (profile_width - 1) / 2 + PROFILE_EXTEND_PX

    def inside(pt) -> bool:
        return margin <= pt[0] <= w - 1 - margin and margin <= pt[1] <= h - 1 - margin

    def measure(pairs: Sequence[Mapping], done0: int, total: int):
        kept, lines, profiles = [], [], {name: [] for name in prepared}
        for k, pair in enumerate(pairs):
            if progress is not None:
                progress(done0 + k, total)
            pa, pb, d, fraction = _pair_geometry(table, pair, pixel_size_nm)
            if d < 2 or not (inside(pa) and inside(pb)):
                continue
            kept.append(dict(pair))
            lines.append((pa, pb))
            for name, img in prepared.items():
                prof = line_profile(
                    img, pa, pb, width=profile_width, extend=PROFILE_EXTEND_PX, step=PROFILE_STEP_PX
                )
                split = (PROFILE_EXTEND_PX + fraction * d) / PROFILE_STEP_PX
                profiles[name].append(
                    analyse_gap_profile(
                        prof,
                        pixel_size_nm=pixel_size_nm * PROFILE_STEP_PX,
                        split=split,
                        background=background,
                    )
                )
        return kept, lines, profiles

    total = len(gaps) + len(touching)
    kept_gaps, gap_lines, gap_profiles = measure(gaps, 0, total)
    kept_touching, _, touching_profiles = measure(touching, len(gaps), total)
    if progress is not None:
        progress(total, total)

    def widths(profiles: list[GapProfile]) -> np.ndarray:
        return np.array([np.nan if p.width_nm is None else p.width_nm for p in profiles])

    widths_nm = {name: widths(p) for name, p in gap_profiles.items()}
    touching_widths = {name: widths(p) for name, p in touching_profiles.items()}
    analysis = GapAnalysis(
        reference=reference,
        pixel_size_nm=float(pixel_size_nm),
        gaps=kept_gaps,
        touching=kept_touching,
        particles=table,
        widths_nm=widths_nm,
        touching_widths_nm=touching_widths,
        profiles=gap_profiles,
        touching_profiles=touching_profiles,
        stats={},
        skipped=total - len(kept_gaps) - len(kept_touching),
        sample_spacing_nm=pixel_size_nm * PROFILE_STEP_PX,
        lines=gap_lines,
    )
    ref_shown = np.isfinite(widths_nm[reference])
    for name in prepared:
        shown = np.isfinite(widths_nm[name])
        apart = np.isfinite(touching_widths[name])
        both = shown & ref_shown
        err = np.abs(widths_nm[name][both] - widths_nm[reference][both])
        considered, touching_considered = analysis.considered(name), analysis.considered_touching(name)
        analysis.stats[name] = GapStats(
            n_gaps=int(considered.sum()),
            n_undetected=int(np.sum(considered & ~shown)),
            n_compared=int(both.sum()),
            gap_size_error_nm=float(err.mean()) if err.size else math.nan,
            n_touching=int(touching_considered.sum()),
            n_invented=int(np.sum(touching_considered & apart)),
        )
    return analysis


def input_sample_in_gap(a: Mapping, b: Mapping, *, lr_pixel_size_nm: float, clearance_nm: float = 0.0) -> bool | None:
    """Whether a sample point of the input (LR) grid lies in the gap between particles a and b.

    ``a`` and ``b`` are truth.json particle records with ``x_lr, y_lr`` (LR pixel coordinates,
    whose integer values are the LR sample points) and ``radius_nm``. A sample point is in the
    gap when it lies outside both particles' discs, between their centres along the line
    joining them, and within half an LR pixel of that line but no further from it than the
    particles' radii there (inside the two discs' convex hull, so a point beside two small
    particles does not count), and at least ``clearance_nm`` from both particles' edges (give
    the probe's FWHM: a Gaussian probe that far from an edge puts about 1% of itself on the
    particle): the input then holds a direct measurement of the gap's floor. Gaps without one
    can only be shown by an output that infers them from the particles' shapes, the same
    inference that would invent gaps between touching particles. None when a record lacks LR
    coordinates (truth from elsewhere).
    """
    try:
        ca = np.array([float(a["x_lr"]), float(a["y_lr"])])
        cb = np.array([float(b["x_lr"]), float(b["y_lr"])])
        ra = (float(a["radius_nm"]) + clearance_nm) / float(lr_pixel_size_nm)
        rb = (float(b["radius_nm"]) + clearance_nm) / float(lr_pixel_size_nm)
    except (KeyError, TypeError):
        return None
    d = float(np.hypot(*(cb - ca)))
    if d <= ra + rb:  # no room between the (cleared) discs
        return False
    u = (cb - ca) / d
    n = np.array([-u[1], u[0]])
    lo = np.floor(np.minimum(ca, cb)) - 1
    hi = np.ceil(np.maximum(ca, cb)) + 1
    xs, ys = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    along = (points - ca) @ u
    across = np.abs((points - ca) @ n)
    inside = ((np.hypot(*(points - ca).T) > ra) & (np.hypot(*(points - cb).T) > rb)
              & (along > 0) & (along < d) & (across <= np.minimum(0.5, ra + (rb - ra) * along / d)))
    return bool(inside.any())


def gaps_with_input_sample(gaps: Sequence[Mapping], particles: Iterable[Mapping], *,
                           lr_pixel_size_nm: float, clearance_nm: float = 0.0) -> np.ndarray | None:
    """:func:`input_sample_in_gap` for every gap (a bool array), or None if any record lacks
    LR coordinates."""
    records = {p["id"]: p for p in particles}
    flags = []
    for gap in gaps:
        try:
            flag = input_sample_in_gap(records[gap["a"]], records[gap["b"]], lr_pixel_size_nm=lr_pixel_size_nm,
                                       clearance_nm=clearance_nm)
        except KeyError:
            return None
        if flag is None:
            return None
        flags.append(flag)
    return np.array(flags, dtype=bool)
