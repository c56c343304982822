"""Particles and candidate gaps found in a target image, for evaluation without a truth.json.

de Haan et al. 2019 (Methods, "Gap analysis") picked gaps between adjacent gold particles in the
high-resolution images. Without the simulator's truth, :func:`find_gaps` does the same
automatically: bright round particles are found in the target (:func:`find_particles`), near
neighbours are paired (:func:`neighbour_pairs`), and each pair is classed as a gap or as touching
by the paper's own rule applied to the target (:func:`zoo.evaluation.gaps.analyse_gaps`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from zoo.evaluation.gaps import analyse_gaps, particle_table


def find_particles(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    min_radius_nm: float | None = None,
    smooth_sigma_px: float = 1.0,
    threshold: float | None = None,
) -> list[dict]:
    """Find bright round particles (e.g. gold on carbon) and their centres and radii.

    The image is smoothed, thresholded (Otsu unless ``threshold`` is given), and particle centres
    are the local maxima of the distance transform of the foreground, so particles that touch or
    are separated by a gap narrower than the blur still come out as separate particles; the
    distance-transform value at a centre is the particle's radius.

    Returns
    -------
    list of dict
        ``{"id", "x_hr", "y_hr", "radius_nm"}`` (the truth.json schema; x/y in pixels of
        ``image``).
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu

    img = np.asarray(image, dtype=np.float64)
    smooth = ndimage.gaussian_filter(img, smooth_sigma_px) if smooth_sigma_px > 0 else img
    if threshold is None:
        if np.ptp(smooth) == 0:
            return []
        threshold = float(threshold_otsu(smooth))
    mask = smooth > threshold
    dist = ndimage.distance_transform_edt(mask)
    min_radius_px = 2.0 if min_radius_nm is None else min_radius_nm / pixel_size_nm
    peaks = peak_local_max(
        dist,
        min_distance=max(1, int(round(min_radius_px))),
        threshold_abs=min_radius_px,
        exclude_border=False,
    )
    return [
        {"id": k, "x_hr": float(x), "y_hr": float(y), "radius_nm": float(dist[y, x] * pixel_size_nm)}
        for k, (y, x) in enumerate(peaks)
    ]


def neighbour_pairs(
    particles: Sequence[Mapping], *, pixel_size_nm: float, max_gap_nm: float
) -> list[tuple]:
    """Pairs of particles whose surfaces are at most ``max_gap_nm`` apart, with nothing between.

    A pair is dropped when a third particle lies on the line joining the two centres.
    """
    from scipy.spatial import cKDTree

    table = particle_table(particles)
    ids = list(table)
    if len(ids) < 2:
        return []
    xy = np.array([table[i][:2] for i in ids])
    r = np.array([table[i][2] for i in ids]) / pixel_size_nm
    reach = 2 * r.max() + max_gap_nm / pixel_size_nm
    pairs = []
    for a, b in sorted(cKDTree(xy).query_pairs(reach)):
        d = float(np.hypot(*(xy[b] - xy[a])))
        if d - r[a] - r[b] > max_gap_nm / pixel_size_nm:
            continue
        seg = xy[b] - xy[a]
        t = np.clip(((xy - xy[a]) @ seg) / (d * d), 0, 1)
        dist = np.hypot(*(xy - (xy[a] + t[:, None] * seg)).T)
        blocked = (dist < 0.8 * r) & (t > 0) & (t < 1)
        blocked[[a, b]] = False
        if not blocked.any():
            pairs.append((ids[a], ids[b]))
    return pairs


def find_gaps(
    target: np.ndarray,
    *,
    pixel_size_nm: float,
    max_gap_nm: float | None = None,
    min_radius_nm: float | None = None,
    background: float = 0.0,
) -> dict:
    """Particles, gaps and touching pairs found in the target, when there is no truth.

    Neighbouring particles (surfaces at most ``max_gap_nm`` apart; default 5 pixels) are measured
    in the target with the paper's rule: where the target shows a gap it is a gap, otherwise the
    pair counts as touching (an image that shows it apart invents a gap the target does not have).

    Returns
    -------
    dict
        ``{"particles": [...], "gaps": [{"a", "b", "width_nm"}...], "touching": [{"a", "b"}...]}``,
        the schema of one pair in truth.json.
    """
    max_gap_nm = 5 * pixel_size_nm if max_gap_nm is None else max_gap_nm
    particles = find_particles(target, pixel_size_nm=pixel_size_nm, min_radius_nm=min_radius_nm)
    pairs = [
        {"a": a, "b": b}
        for a, b in neighbour_pairs(particles, pixel_size_nm=pixel_size_nm, max_gap_nm=max_gap_nm)
    ]
    analysis = analyse_gaps(
        {"target": target},
        pairs,
        particles,
        pixel_size_nm=pixel_size_nm,
        reference="target",
        background=background,
    )
    gaps, touching = [], []
    for pair, width in zip(analysis.gaps, analysis.widths_nm["target"]):
        if np.isfinite(width):
            gaps.append({**pair, "width_nm": float(width)})
        else:
            touching.append(pair)
    return {"particles": particles, "gaps": gaps, "touching": touching}
