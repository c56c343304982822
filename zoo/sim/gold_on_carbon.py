"""The gold-on-carbon resolution specimen: exact geometry and its SE yield map.

Gold spheres 5-150 nm in diameter (log-normal sizes) lie on an amorphous carbon film, mostly
in aggregates grown from a Thomas-like cluster process; many neighbours are placed at narrow
planted gaps (3-20 nm, the range that decides between 7.1 and 14.2 nm pixels) or touching.
:func:`make_gold_on_carbon` returns the exact geometry (for truth.json),
:func:`render_gold_on_carbon` its yield as :class:`~zoo.sim.specimens.YieldLayer` s: carbon
grain, sec(theta)-brightened spheres (small ones glowing whole: the edge effect), a weak
detector-side shading, and the SE2 halo of electrons backscattered by the gold. With
``contacts`` set (the presets of :mod:`zoo.sim.presets`) isolated contact pairs of every kind
(:mod:`zoo.sim.touching`) join the aggregates; without it nothing changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from zoo.sim.specimens import Grid, YieldLayer, field_on, sample_px, smooth_noise
from zoo.sim.touching import (
    ContactPairs, ContactParams, add_contact_pairs, render_contact_pairs, with_contacts,
)


# ----------------------------------------------------------------------------------------------
# Gold on carbon: geometry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldOnCarbonParams:
    """Geometry and yields of the gold-on-carbon resolution specimen (all lengths nm)."""

    median_diameter_nm: float = 26.0
    sigma_log_diameter: float = 0.62  # log-normal width: ~90% of particles within 9-65 nm
    min_diameter_nm: float = 5.0
    max_diameter_nm: float = 150.0
    cluster_density_per_um2: float = 7.0  # aggregates (parents of the cluster process)
    mean_cluster_size: float = 13.0  # particles per aggregate, 1 + Poisson
    isolated_density_per_um2: float = 40.0  # particles not in an aggregate
    p_touching: float = 0.12  # share of aggregate members placed touching/overlapping their anchor
    p_narrow_gap: float = 0.48  # share placed at a narrow planted gap
    narrow_gap_nm: tuple[float, float] = (3.0, 20.0)  # planted gap widths, log-uniform
    wide_gap_nm: tuple[float, float] = (20.0, 90.0)  # the rest of an aggregate's spacing
    max_overlap_fraction: float = 0.2  # overlap depth of touching spheres, share of the smaller radius
    min_gap_nm: float = 3.0  # neighbours closer than this that were not planted touching are removed
    record_gap_max_nm: float = 30.0  # narrow gaps recorded in the truth (planted or incidental)
    # The paper-calibrated preset (zoo.sim.presets): isolated contact pairs of every kind
    # (zoo.sim.touching), and a random share of the adjacent gaps kept in the truth.
    contacts: ContactParams | None = None
    gap_sample_fraction: float = 1.0
    # Secondary-electron yields (electrons out per electron in, SE + BSE-generated SE).
    carbon_yield: float = 0.36
    carbon_grain_nm: float = 2.2  # correlation length of the amorphous-carbon texture
    carbon_grain_contrast: float = 0.22  # relative std of the fine texture
    carbon_undulation_nm: float = 60.0  # film thickness variations
    carbon_undulation_contrast: float = 0.05
    gold_yield: float = 0.95
    small_particle_boost: float = 0.45  # edge effect: particles below ~escape range glow as a whole
    small_particle_radius_nm: float = 6.0
    max_tilt_gain: float = 1.9  # sec(theta) cap at grazing incidence (~58 deg)
    detector_azimuth_deg: float = -55.0  # in-plane direction to the detector (image y points down)
    detector_contrast: float = 0.12
    se2_halo_sigma_nm: float = 28.0  # BSE exit range around gold, in carbon
    se2_halo_yield: float = 0.07
    se2_halo_thickness_nm: float = 12.0  # gold thickness that saturates the BSE halo


@dataclass
class GoldOnCarbon:
    """The exact geometry of one gold-on-carbon specimen.

    ``x_nm``, ``y_nm``, ``radius_nm``: sphere centres (projected) and radii; spheres rest on
    the carbon film, so their top is at height 2R. ``touching`` (k, 2) lists index pairs whose
    projected discs touch or overlap; ``gaps`` (m, 2) lists neighbour pairs with a narrow, clear
    gap of ``gap_width_nm`` (edge to edge along the line joining the centres), ``gap_planted``
    saying whether it was placed on purpose.
    """

    x_nm: np.ndarray
    y_nm: np.ndarray
    radius_nm: np.ndarray
    touching: np.ndarray
    gaps: np.ndarray
    gap_width_nm: np.ndarray
    gap_planted: np.ndarray
    params: GoldOnCarbonParams
    contacts: ContactPairs | None = None

    def __len__(self) -> int:
        return int(self.x_nm.size)


def _diameters(rng: np.random.Generator, n: int, p: GoldOnCarbonParams) -> np.ndarray:
    d = np.exp(math.log(p.median_diameter_nm) + p.sigma_log_diameter * rng.standard_normal(n))
    bad = (d < p.min_diameter_nm) | (d > p.max_diameter_nm)
    while bad.any():  # truncated log-normal: redraw outliers
        d[bad] = np.exp(math.log(p.median_diameter_nm) + p.sigma_log_diameter * rng.standard_normal(int(bad.sum())))
        bad = (d < p.min_diameter_nm) | (d > p.max_diameter_nm)
    return d


def make_gold_on_carbon(
    rng: np.random.Generator,
    extent_nm: tuple[float, float, float, float],
    params: GoldOnCarbonParams | None = None,
) -> GoldOnCarbon:
    """Place gold spheres over ``extent_nm`` = (xmin, xmax, ymin, ymax).

    Aggregates grow around Poisson-distributed parents (a Neyman-Scott cluster process whose
    children are placed by aggregation rather than independently): each new member sits next to
    a random earlier member of its aggregate, touching it (``p_touching``), at a narrow planted
    gap (``p_narrow_gap``, log-uniform in ``narrow_gap_nm``) or further away. Isolated particles
    are added as a Poisson process. Then every pair closer than ``min_gap_nm`` that was not
    planted touching is resolved by removing the later particle, so every remaining edge-to-edge
    distance is either a planted contact (<= 0) or >= ``min_gap_nm``.
    """
    p = params or GoldOnCarbonParams()
    xmin, xmax, ymin, ymax = extent_nm
    area_um2 = (xmax - xmin) * (ymax - ymin) * 1e-6
    n_clusters = int(rng.poisson(p.cluster_density_per_um2 * area_um2))
    n_isolated = int(rng.poisson(p.isolated_density_per_um2 * area_um2))
    sizes = np.concatenate(
        [1 + rng.poisson(p.mean_cluster_size - 1.0, n_clusters), np.ones(n_isolated, dtype=np.int64)]
    ).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n = int(sizes.sum())
    radius = _diameters(rng, n, p) / 2.0
    pos = np.empty((n, 2))
    pos[starts, 0] = rng.uniform(xmin, xmax, sizes.size)
    pos[starts, 1] = rng.uniform(ymin, ymax, sizes.size)
    anchor = np.full(n, -1, dtype=np.int64)
    planted = np.full(n, np.nan)  # gap to the anchor as placed (<= 0: touching)

    lo, hi = np.log(p.narrow_gap_nm[0]), np.log(p.narrow_gap_nm[1])
    for k in range(1, int(sizes.max(initial=1))):
        active = np.flatnonzero(sizes > k)
        if active.size == 0:
            break
        new = starts[active] + k
        anc = starts[active] + (rng.random(active.size) * k).astype(np.int64)
        kind = rng.random(active.size)
        gap = rng.uniform(*p.wide_gap_nm, active.size)
        narrow = kind < p.p_narrow_gap + p.p_touching
        gap[narrow] = np.exp(rng.uniform(lo, hi, int(narrow.sum())))
        touch = kind < p.p_touching
        overlap = rng.uniform(0.0, p.max_overlap_fraction, int(touch.sum()))
        gap[touch] = -overlap * np.minimum(radius[anc[touch]], radius[new[touch]])
        phi = rng.uniform(0.0, 2 * np.pi, active.size)
        dist = radius[anc] + gap + radius[new]
        pos[new, 0] = pos[anc, 0] + dist * np.cos(phi)
        pos[new, 1] = pos[anc, 1] + dist * np.sin(phi)
        anchor[new] = anc
        planted[new] = gap

    inside = (pos[:, 0] >= xmin) & (pos[:, 0] <= xmax) & (pos[:, 1] >= ymin) & (pos[:, 1] <= ymax)
    keep = _resolve_conflicts(pos, radius, anchor, p.min_gap_nm) & inside
    index = np.cumsum(keep) - 1  # old index -> new index
    pos, radius, planted = pos[keep], radius[keep], planted[keep]
    anchor = np.where(anchor[keep] >= 0, anchor[keep], 0)
    anchor_kept = keep[anchor] & np.isfinite(planted)
    new_anchor = np.where(anchor_kept, index[anchor], -1)

    contacts = None
    if p.contacts is not None:
        n_before = pos.shape[0]
        pos, radius, contacts = add_contact_pairs(rng, pos, radius, extent_nm, p.contacts)
        new_anchor = np.concatenate([new_anchor, np.full(pos.shape[0] - n_before, -1, dtype=np.int64)])
        planted = np.concatenate([planted, np.full(pos.shape[0] - n_before, np.nan)])

    touching, gaps, widths, planted_flags = _neighbour_relations(pos, radius, new_anchor, planted, p)
    if contacts is not None:
        touching, gaps, widths, planted_flags = with_contacts(rng, contacts, pos.shape[0], touching, gaps, widths,
                                                              planted_flags, p.gap_sample_fraction)
    return GoldOnCarbon(
        x_nm=pos[:, 0].copy(),
        y_nm=pos[:, 1].copy(),
        radius_nm=radius,
        touching=touching,
        gaps=gaps,
        gap_width_nm=widths,
        gap_planted=planted_flags,
        params=p,
        contacts=contacts,
    )


def _close_pairs(pos: np.ndarray, radius: np.ndarray, reach_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) whose edge-to-edge distance is below ``reach_nm``, and that distance."""
    if pos.shape[0] < 2:
        return np.empty((0, 2), dtype=np.int64), np.empty(0)
    tree = cKDTree(pos)
    pairs = tree.query_pairs(2 * float(radius.max()) + reach_nm, output_type="ndarray")
    if pairs.size == 0:
        return np.empty((0, 2), dtype=np.int64), np.empty(0)
    d = np.hypot(*(pos[pairs[:, 0]] - pos[pairs[:, 1]]).T)
    gap = d - radius[pairs[:, 0]] - radius[pairs[:, 1]]
    close = gap < reach_nm
    return pairs[close], gap[close]


def _resolve_conflicts(pos, radius, anchor, min_gap_nm) -> np.ndarray:
    """Keep-mask after removing, greedily, the later particle of every pair that is closer than
    ``min_gap_nm`` without being a planted contact/gap with its anchor."""
    pairs, gap = _close_pairs(pos, radius, min_gap_nm)
    i, j = pairs[:, 0], pairs[:, 1]
    planted_pair = (anchor[j] == i) | (anchor[i] == j)
    conflict = ~planted_pair
    keep = np.ones(pos.shape[0], dtype=bool)
    if conflict.any():
        ci, cj = i[conflict], j[conflict]
        order = np.argsort(cj, kind="stable")
        for a, b in zip(ci[order].tolist(), cj[order].tolist()):
            if keep[a] and keep[b]:
                keep[b] = False
    return keep


def _neighbour_relations(pos, radius, anchor, planted, p: GoldOnCarbonParams):
    """Touching pairs, and narrow gaps whose centre line is not blocked by a third particle."""
    pairs, gap = _close_pairs(pos, radius, p.record_gap_max_nm)
    touching = pairs[gap <= 0.0]
    narrow = (gap > 0.0) & (gap <= p.record_gap_max_nm)
    cand, width = pairs[narrow], gap[narrow]
    if cand.shape[0] == 0:
        return touching, np.empty((0, 2), dtype=np.int64), np.empty(0), np.empty(0, dtype=bool)
    a, b = cand[:, 0], cand[:, 1]
    u = pos[b] - pos[a]
    u /= np.hypot(u[:, 0], u[:, 1])[:, None]
    ea = pos[a] + radius[a][:, None] * u  # the two edge points the gap runs between
    eb = pos[b] - radius[b][:, None] * u
    mid = (ea + eb) / 2
    # Every (gap, particle) pair close enough to block the gap's centre line, in one query.
    found = cKDTree(mid).sparse_distance_matrix(
        cKDTree(pos), p.record_gap_max_nm / 2 + float(radius.max()) + 1e-6, output_type="ndarray"
    )
    g, o = found["i"].astype(np.int64), found["j"].astype(np.int64)
    other = (o != a[g]) & (o != b[g])
    g, o = g[other], o[other]
    seg = eb[g] - ea[g]
    t = np.clip(np.einsum("ij,ij->i", pos[o] - ea[g], seg) / np.einsum("ij,ij->i", seg, seg), 0.0, 1.0)
    closest = ea[g] + t[:, None] * seg
    blocked = np.hypot(*(pos[o] - closest).T) < radius[o]
    clear = np.ones(cand.shape[0], dtype=bool)
    clear[g[blocked]] = False
    # Planted = placed on purpose at a narrow gap from its anchor (the wide placements of an
    # aggregate can also end up below record_gap_max_nm, but were not aimed at the range).
    was_planted = (width <= p.narrow_gap_nm[1] + 1e-9) & (
        ((anchor[b] == a) & (np.abs(planted[b] - width) < 1e-6))
        | ((anchor[a] == b) & (np.abs(planted[a] - width) < 1e-6))
    )
    return touching, cand[clear], width[clear], was_planted[clear]


# ----------------------------------------------------------------------------------------------
# Gold on carbon: yield map
# ----------------------------------------------------------------------------------------------


def carbon_support_yield(rng: np.random.Generator, grid: Grid, p: GoldOnCarbonParams) -> YieldLayer:
    """SE yield of the amorphous carbon film, on ``grid``: a fine grain (``carbon_grain_nm``)
    on slow thickness undulations, both low-contrast."""
    grain = smooth_noise(rng, grid.shape, p.carbon_grain_nm / grid.spacing_nm)
    coarse = grid.coarsened(16)
    undulation = smooth_noise(rng, coarse.shape, p.carbon_undulation_nm / coarse.spacing_nm)
    undulation = field_on(grid, undulation)
    a = p.carbon_yield * p.carbon_grain_contrast
    b = p.carbon_yield * p.carbon_undulation_contrast
    field = cv2.addWeighted(grain, a, undulation, b, p.carbon_yield)
    return YieldLayer(field, grid)


def _particle_footprints(spec: GoldOnCarbon, grid: Grid, which: np.ndarray):
    """Flat grid indices, coverage, height and SE yield of every grid pixel within half a pixel
    of the selected particles' discs (coverage = anti-aliased, linear over one pixel)."""
    p = spec.params
    cx, cy = grid.to_px(spec.x_nm[which], spec.y_nm[which])
    radius_all = spec.radius_nm[which]
    rho = radius_all / grid.spacing_nm
    half = np.ceil(rho + 1.0).astype(np.int64)
    az = math.radians(p.detector_azimuth_deg)
    det_x, det_y = np.float32(math.cos(az)), np.float32(math.sin(az))
    out_idx, out_c, out_h, out_y = [], [], [], []
    for b in np.unique(half):
        sel = np.flatnonzero(half == b)
        steps = np.arange(2 * int(b) + 1)
        ix = np.rint(cx[sel]).astype(np.int64)[:, None] - b + steps  # (n, side)
        iy = np.rint(cy[sel]).astype(np.int64)[:, None] - b + steps
        dx = (ix - cx[sel][:, None]).astype(np.float32)
        dy = (iy - cy[sel][:, None]).astype(np.float32)
        r = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)  # (n, side, side)
        rr = rho[sel].astype(np.float32)[:, None, None]
        cover = np.clip(rr - r + np.float32(0.5), 0.0, 1.0)
        in_x = (ix >= 0) & (ix < grid.width)
        in_y = (iy >= 0) & (iy < grid.height)
        mask = (cover > 0) & in_y[:, :, None] & in_x[:, None, :]
        n_i, i_i, j_i = np.nonzero(mask)
        rho_e = rr[n_i, 0, 0]
        rel = np.minimum(r[mask] / rho_e, np.float32(1.0))  # projected radius / sphere radius
        radius_nm = radius_all[sel][n_i].astype(np.float32)
        cos_t = np.sqrt(np.maximum(np.float32(1.0) - rel * rel, np.float32(0.0)))
        tilt_gain = np.minimum(np.float32(1.0) / np.maximum(cos_t, np.float32(1e-3)), np.float32(p.max_tilt_gain))
        # In-plane part of the surface normal towards the detector: sin(theta) cos(dphi).
        facing = np.clip((dx[n_i, j_i] * det_x + dy[n_i, i_i] * det_y) / rho_e, -1.0, 1.0)
        boost = 1.0 + np.float32(p.small_particle_boost) * np.exp(-radius_nm / np.float32(p.small_particle_radius_nm))
        y = np.float32(p.gold_yield) * boost * tilt_gain * (1.0 + np.float32(p.detector_contrast) * facing)
        out_idx.append(iy[n_i, i_i] * grid.width + ix[n_i, j_i])
        out_c.append(cover[mask])
        out_h.append(radius_nm * (1.0 + cos_t))  # spheres rest on the film: top at 2R
        out_y.append(y.astype(np.float32))
    if not out_idx:
        empty = np.empty(0, dtype=np.float32)
        return np.empty(0, dtype=np.int64), empty, empty, empty
    return np.concatenate(out_idx), np.concatenate(out_c), np.concatenate(out_h), np.concatenate(out_y)


def render_gold_on_carbon(spec: GoldOnCarbon, grid: Grid, rng: np.random.Generator) -> list[YieldLayer]:
    """The SE yield of a gold-on-carbon specimen before the probe, as layers on three grids.

    * carbon film on a grid 2x coarser than ``grid`` (its grain is no finer than that);
    * particles on ``grid``: each sphere's yield is ``gold_yield * sec(theta)`` (capped), raised
      for small particles and slightly on the detector side; stored as the difference to the
      carbon under it, times the anti-aliased coverage. Where projected discs overlap (touching
      pairs) the higher surface wins and coverage is the largest of them, so a contact shows
      no carbon between the spheres;
    * the SE2 halo of electrons backscattered by the gold, on a grid 8x coarser.
    """
    carbon = carbon_support_yield(rng, grid.coarsened(2), spec.params)
    particles = np.zeros(grid.shape, dtype=np.float32)
    flat = particles.reshape(-1)
    n = len(spec)
    in_contact = np.zeros(n, dtype=bool)
    in_contact[spec.touching.reshape(-1)] = True
    shaped = spec.contacts.shaped(n) if spec.contacts is not None else np.zeros(n, dtype=bool)
    # Discs that touch nobody have disjoint footprints (gaps >= min_gap_nm > one grid pixel),
    # so they are written directly; only contact groups need the z-buffer.
    for contact in (False, True):
        group = np.flatnonzero((in_contact == contact) & ~shaped)
        if group.size == 0:
            continue
        idx, c, h, y = _particle_footprints(spec, grid, group)
        if contact:
            order = np.lexsort((h, idx))
            idx, c, y = idx[order], c[order], y[order]
            last = np.flatnonzero(np.r_[idx[1:] != idx[:-1], True])  # highest surface per pixel
            first = np.r_[0, last[:-1] + 1]
            c = np.maximum.reduceat(c, first)
            idx, y = idx[last], y[last]
        rows, cols = np.divmod(idx, grid.width)
        under = sample_px(carbon.image, cols * 0.5, rows * 0.5)  # the carbon grid is 2x coarser, same origin
        flat[idx] = c * (y - under)
    if spec.contacts is not None:
        render_contact_pairs(spec, grid, flat, carbon.image)
    return [carbon, YieldLayer(particles, grid), gold_se2_halo(spec, grid.coarsened(8))]


def gold_se2_halo(spec: GoldOnCarbon, grid: Grid) -> YieldLayer:
    """SE2 yield from electrons backscattered by the gold, on a coarse ``grid``: a soft glow
    of ``se2_halo_sigma_nm`` around particles and aggregates."""
    p = spec.params
    out = np.zeros(grid.shape, dtype=np.float32)
    if len(spec):
        gx, gy = grid.to_px(spec.x_nm, spec.y_nm)
        ix = np.clip(np.rint(gx).astype(np.int64), 0, grid.width - 1)
        iy = np.clip(np.rint(gy).astype(np.int64), 0, grid.height - 1)
        volume = 4.0 / 3.0 * np.pi * spec.radius_nm**3
        np.add.at(out, (iy, ix), (volume / grid.spacing_nm**2).astype(np.float32))  # mean thickness, nm
        out = cv2.GaussianBlur(out, (0, 0), p.se2_halo_sigma_nm / grid.spacing_nm, borderType=cv2.BORDER_CONSTANT)
    return YieldLayer((p.se2_halo_yield * (1.0 - np.exp(-out / p.se2_halo_thickness_nm))).astype(np.float32), grid)


def truth_records(spec: GoldOnCarbon, x_hr, y_hr, x_lr, y_lr, hr_size) -> dict:
    """truth.json's ``particles``, ``gaps`` and ``touching`` for the particles whose centre lies
    in the HR image (``hr_size`` = (width, height)); ``x_hr``... are every particle's pixel
    coordinates in the two images. Ids are positions in the ``particles`` list."""
    width, height = hr_size
    inside = (x_hr >= -0.5) & (x_hr < width - 0.5) & (y_hr >= -0.5) & (y_hr < height - 0.5)
    keep = np.flatnonzero(inside)
    new_id = np.full(len(spec), -1, dtype=np.int64)
    new_id[keep] = np.arange(keep.size)
    particles = [
        {
            "id": int(new_id[i]),
            "x_hr": round(float(x_hr[i]), 3),
            "y_hr": round(float(y_hr[i]), 3),
            "x_lr": round(float(x_lr[i]), 3),
            "y_lr": round(float(y_lr[i]), 3),
            "radius_nm": round(float(spec.radius_nm[i]), 2),
        }
        for i in keep.tolist()
    ]
    gaps = [
        {"a": int(new_id[a]), "b": int(new_id[b]), "width_nm": round(w, 2), "planted": bool(planted)}
        for (a, b), w, planted in zip(spec.gaps.tolist(), spec.gap_width_nm.tolist(), spec.gap_planted.tolist())
        if inside[a] and inside[b]
    ]
    touching = [
        {"a": int(new_id[a]), "b": int(new_id[b])} for a, b in spec.touching.tolist() if inside[a] and inside[b]
    ]
    if spec.contacts is not None:  # the kind of every contact (the aggregates' are spheres)
        c = spec.contacts
        kinds = {(int(a), int(b)): c.record(k) for k, (a, b) in enumerate(zip(c.a.tolist(), c.b.tolist()))}
        pairs = [(a, b) for a, b in spec.touching.tolist() if inside[a] and inside[b]]
        touching = [{**t, **kinds.get((a, b), {"kind": "aggregate"})} for t, (a, b) in zip(touching, pairs)]
    return {"particles": particles, "gaps": gaps, "touching": touching}
