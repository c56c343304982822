"""Where a simulated pair's truth has narrow gaps or contacts: a mask for a gap-weighted loss.

The quality the zoo is judged by for particle samples (de Haan et al. 2019, Figs. 3-4) is decided
in a small share of the pixels: the space between two adjacent particles, where a gap the 20000x
image shows must come out dark and a contact it shows closed must stay bright. A plain L1 over a
128x128 patch weights those few hundred pixels like the carbon background around them. With the
simulator's truth (particle centres and radii on the registered grid, the gaps between adjacent
particles and the touching pairs, :mod:`zoo.data.prepare` maps them) :func:`focus_map` marks,
for every gap up to ``max_gap_nm`` (:data:`GAP`) and every contact (:data:`CONTACT`), the band
along the line of centres from one particle's edge to the other's, as wide as a fraction of the
smaller particle. Training with ``gap_weight`` / ``contact_weight`` > 0
(:func:`zoo.nets.losses.focus_weights`) weights the L1 there by ``1 + weight``: equal weights
make a missed gap and an invented one cost the same; a larger gap weight trades invented gaps
for found ones.
"""

from __future__ import annotations

import math

import numpy as np

#: Mask values: the band of a narrow gap, of a contact (a contact wins where bands overlap).
GAP, CONTACT = 1, 2
#: Gaps wider than this are left out of the mask: any reconstruction shows them.
DEFAULT_MAX_GAP_NM = 30.0
#: The band's width as a share of the smaller particle's diameter (the chord where the edges are
#: closest), and its least width in pixels.
BAND_WIDTH_FRACTION = 0.5
MIN_BAND_PX = 3
#: Pixels added at both ends of the band (the edge blur of the 20000x image).
END_MARGIN_PX = 2.0

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel band ends


def _band(mask: np.ndarray, p: np.ndarray, q: np.ndarray, width_px: float, value: int) -> None:
    """Fill the rectangle from ``p`` to ``q`` (x, y), ``width_px`` across, with flat ends."""
    import cv2

    along = q - p
    normal = np.array([-along[1], along[0]]) / max(float(np.hypot(*along)), 1e-9)
    half = 0.5 * max(float(MIN_BAND_PX), width_px) * normal
    corners = np.array([p + half, q + half, q - half, p - half])
    cv2.fillConvexPoly(mask, np.round(corners * (1 << _SHIFT)).astype(np.int32), value, lineType=cv2.LINE_8,
                       shift=_SHIFT)


def focus_map(pair: dict, shape: tuple[int, int], pixel_size_nm: float, *,
              max_gap_nm: float = DEFAULT_MAX_GAP_NM) -> np.ndarray:
    """uint8 mask (0, :data:`GAP`, :data:`CONTACT`) on the grid of ``pair``'s ``x_hr``/``y_hr`` coordinates.

    ``pair`` is one pair of a truth.json (``particles`` with ``x_hr``, ``y_hr``, ``radius_nm``;
    ``gaps`` with ``a``, ``b``, ``width_nm``; ``touching`` with ``a``, ``b``), ``shape`` the
    grid's (height, width) and ``pixel_size_nm`` its pixel size. Links that name a particle the
    pair does not have are skipped.
    """
    if pixel_size_nm <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm}")
    mask = np.zeros(shape, np.uint8)
    particles = {int(p["id"]): p for p in pair.get("particles", [])}
    links = [(g, GAP) for g in pair.get("gaps", []) if float(g.get("width_nm", math.inf)) <= max_gap_nm]
    links += [(t, CONTACT) for t in pair.get("touching", [])]
    for link, value in links:
        a, b = particles.get(int(link["a"])), particles.get(int(link["b"]))
        if a is None or b is None:
            continue
        ca = np.array([a["x_hr"], a["y_hr"]], float)
        cb = np.array([b["x_hr"], b["y_hr"]], float)
        ra, rb = float(a["radius_nm"]) / pixel_size_nm, float(b["radius_nm"]) / pixel_size_nm
        d = float(np.hypot(*(cb - ca)))
        if d == 0:
            continue
        u = (cb - ca) / d
        # Edge to edge along the line of centres; for overlapping particles the edges cross,
        # and the band is centred where they meet (the crevice of a contact).
        lo, hi = sorted((ra, d - rb))
        _band(mask, ca + u * (lo - END_MARGIN_PX), ca + u * (hi + END_MARGIN_PX),
              BAND_WIDTH_FRACTION * 2 * min(ra, rb), value)
    return mask


def cut_focus(mask: np.ndarray, positions: np.ndarray, patch_size: int) -> np.ndarray:
    """The (n, p, p) uint8 patches of ``mask`` at the (x, y) top-left ``positions`` of a PatchSet."""
    out = np.zeros((len(positions), patch_size, patch_size), np.uint8)
    for i, (x, y) in enumerate(np.asarray(positions, np.int64).reshape(-1, 2)):
        out[i] = mask[y:y + patch_size, x:x + patch_size]
    return out
