"""Touching gold particles of every kind: spheres in contact, sintered necks and flat facets.

The aggregates of :mod:`zoo.sim.gold_on_carbon` plant their contacts between spheres of the
aggregate's size distribution (median 26 nm) at overlaps up to 20% of the smaller radius; every
contact there is two discs meeting in a sharp notch. Real gold-on-carbon (and the independent
simulation of issue 14, where the bundled model showed touching particles apart three times as
often as the target) also has contacts whose outline differs: particles that sintered into a
*neck* (the notch filled by a concave fillet) and faceted particles touching along a *facet*
(two polygons sharing a straight edge). This module plants isolated contact pairs of three kinds
over the whole size range (each diameter log-uniform in ``diameter_nm``, 5-120 nm, overlap
uniform in ``overlap_fraction``, 0-20%):

* ``sphere``: two spheres, centres ``ra + rb - o * min(ra, rb)`` apart (rendered by the
  specimen's own z-buffer of spheres);
* ``neck``: the same two spheres joined by a fillet: the union's signed distance is the
  polynomial smooth minimum of the two discs' (Quilez' ``smin``), whose blend radius ``k`` (nm)
  is ``neck_fraction`` of the smaller radius; the fillet's surface is a saddle, given a tilt gain
  between flat and grazing (``neck_tilt_gain``);
* ``facet``: two regular ``facet_sides``-gons (circumradius = the particle's radius) with one
  side of each facing the other, apothems ``aa + ab - o * min(aa, ab)`` apart: a flat contact
  as long as the shorter side.

Each pair keeps ``clearance_nm`` from every other particle, so it forms no gap with them (the
gap truth measures edges of spheres) and its rendering touches no other footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

KINDS = ("sphere", "neck", "facet")


@dataclass(frozen=True)
class ContactParams:
    """Isolated contact pairs planted in a gold-on-carbon specimen (lengths in nm)."""

    pairs_per_um2: float = 8.0
    diameter_nm: tuple[float, float] = (5.0, 120.0)  # each particle, log-uniform
    overlap_fraction: tuple[float, float] = (0.0, 0.2)  # of the smaller radius (or apothem)
    kinds: tuple[str, ...] = KINDS  # drawn with equal probability
    neck_fraction: tuple[float, float] = (0.2, 0.5)  # fillet blend radius / smaller radius
    neck_tilt_gain: float = 1.4  # sec(theta) of the fillet's saddle surface
    # SE shadowing in the crevice: a surface point that faces the neighbour close by loses up to
    # crevice_shadow of its SEs to it, decaying over crevice_fraction of the smaller radius
    # (at least crevice_min_nm) from the groove where the two meet. Chosen so that the 20000x
    # target shows 1.5% of the pairs apart (tools/calibrate_paper_set.py; the independent
    # simulation of issue 14: 1.7%).
    crevice_shadow: float = 0.75
    crevice_fraction: float = 0.35
    crevice_min_nm: float = 2.0
    facet_sides: int = 6
    clearance_nm: float = 32.0  # free carbon around a pair's bounding circle
    attempts: int = 30  # random positions tried per pair before it is dropped


@dataclass
class ContactPairs:
    """The planted pairs: particle indices ``a``, ``b`` into the specimen, their ``kind``, the
    ``overlap`` fraction, the neck's blend radius ``neck_nm`` (0 unless a neck) and the
    in-plane direction ``angle`` from a to b (radians)."""

    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    overlap: np.ndarray
    neck_nm: np.ndarray
    angle: np.ndarray
    params: ContactParams

    def __len__(self) -> int:
        return int(self.a.size)

    def shaped(self, n: int) -> np.ndarray:
        """(n,) bool: the particles rendered here (every planted pair), not by the specimen's
        z-buffer of spheres."""
        out = np.zeros(n, dtype=bool)
        out[self.a] = True
        out[self.b] = True
        return out

    def record(self, i: int) -> dict:
        """truth.json's extra keys for pair ``i``."""
        rec = {"kind": str(self.kind[i]), "overlap_fraction": round(float(self.overlap[i]), 4)}
        if self.kind[i] == "neck":
            rec["neck_nm"] = round(float(self.neck_nm[i]), 2)
        if self.kind[i] == "facet":
            rec["facet_sides"] = int(self.params.facet_sides)
        return rec


def centre_distance(kind: str, ra: float, rb: float, overlap: float, sides: int = 6) -> float:
    """Centre-to-centre distance of a contact pair of ``kind`` (radii = circumradii)."""
    if kind == "facet":
        c = math.cos(math.pi / sides)
        aa, ab = ra * c, rb * c
        return aa + ab - overlap * min(aa, ab)
    return ra + rb - overlap * min(ra, rb)


def add_contact_pairs(rng: np.random.Generator, pos: np.ndarray, radius: np.ndarray, extent_nm, cp: ContactParams):
    """Place contact pairs in the free space of ``extent_nm`` among the particles ``pos``,
    ``radius``. Returns (pos, radius, ContactPairs) with the new particles appended."""
    xmin, xmax, ymin, ymax = extent_nm
    area_um2 = (xmax - xmin) * (ymax - ymin) * 1e-6
    n_pairs = int(rng.poisson(cp.pairs_per_um2 * area_um2))
    lo, hi = np.log(cp.diameter_nm[0]), np.log(cp.diameter_nm[1])
    d = np.exp(rng.uniform(lo, hi, (n_pairs, 2))) / 2.0  # radii
    kind = np.asarray(cp.kinds)[rng.integers(0, len(cp.kinds), n_pairs)]
    overlap = rng.uniform(*cp.overlap_fraction, n_pairs)
    neck = np.where(kind == "neck", rng.uniform(*cp.neck_fraction, n_pairs) * d.min(axis=1), 0.0)
    angle = rng.uniform(0.0, 2 * np.pi, n_pairs)
    tree = cKDTree(pos) if pos.shape[0] else None
    reach = float(radius.max()) if radius.size else 0.0
    new_pos, new_r, kept = [], [], []
    placed_mid, placed_r = [], []
    for k in range(n_pairs):
        ra, rb = float(d[k, 0]), float(d[k, 1])
        dist = centre_distance(str(kind[k]), ra, rb, float(overlap[k]), cp.facet_sides)
        u = np.array([math.cos(angle[k]), math.sin(angle[k])])
        bound = dist / 2 + max(ra, rb) + neck[k]
        for _ in range(cp.attempts):
            mid = np.array([rng.uniform(xmin + bound, xmax - bound), rng.uniform(ymin + bound, ymax - bound)])
            free = True
            if tree is not None:
                near = tree.query_ball_point(mid, bound + cp.clearance_nm + reach)
                if near:
                    gaps = np.hypot(*(pos[near] - mid).T) - radius[near] - bound
                    free = bool(gaps.min() >= cp.clearance_nm)
            if free and placed_mid:
                pm = np.asarray(placed_mid)
                free = bool((np.hypot(*(pm - mid).T) - np.asarray(placed_r) - bound).min() >= cp.clearance_nm)
            if free:
                new_pos += [mid - u * dist / 2, mid + u * dist / 2]
                new_r += [ra, rb]
                placed_mid.append(mid)
                placed_r.append(bound)
                kept.append(k)
                break
    kept = np.asarray(kept, dtype=np.int64)
    n0 = pos.shape[0]
    if kept.size:
        pos = np.vstack([pos, np.asarray(new_pos)])
        radius = np.concatenate([radius, np.asarray(new_r)])
    pairs = ContactPairs(
        a=n0 + 2 * np.arange(kept.size, dtype=np.int64),
        b=n0 + 2 * np.arange(kept.size, dtype=np.int64) + 1,
        kind=kind[kept],
        overlap=overlap[kept],
        neck_nm=neck[kept],
        angle=angle[kept],
        params=cp,
    )
    return pos, radius, pairs


def with_contacts(rng, contacts: ContactPairs, n: int, touching, gaps, widths, planted, fraction: float):
    """The relations with the contact pairs as touching (their radii are not their edges, so no
    gap involves them) and a random ``fraction`` of the other gaps kept (the paper's randomly
    selected gaps)."""
    member = np.zeros(n, dtype=bool)
    member[contacts.a] = member[contacts.b] = True
    touching = np.vstack([touching[~member[touching].any(axis=1)].reshape(-1, 2),
                          np.stack([contacts.a, contacts.b], axis=1)]).astype(np.int64)
    keep = ~member[gaps].any(axis=1) if gaps.size else np.zeros(0, dtype=bool)
    keep &= rng.random(keep.size) < fraction
    return touching, gaps[keep], widths[keep], planted[keep]


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two signed distances with blend radius ``k`` (a fillet)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k / 4.0


def _polygon_distance(dx, dy, apothem, sides, theta0):
    """Signed distance (approximately: exact along the side normals) to a regular polygon whose
    first side normal points at ``theta0``, and the polygonal 'radius' max(p . n_k)."""
    t = theta0 + 2 * np.pi * np.arange(sides) / sides
    proj = dx[..., None] * np.cos(t) + dy[..., None] * np.sin(t)
    m = proj.max(axis=-1)
    return m - apothem, m


def pair_shape(kind: str, ra: float, rb: float, dist: float, angle: float, *, neck_nm: float = 0.0,
               sides: int = 6, xs: np.ndarray, ys: np.ndarray):
    """The outline of one pair on sample points ``xs, ys`` (nm, relative to particle a's centre):
    (signed distance of the union in nm, negative inside; sd_a, sd_b: each particle's own;
    rel_a, rel_b: each particle's normalised radius, <= 1 inside it, for its tilt gain)."""
    ux, uy = math.cos(angle), math.sin(angle)
    bx, by = xs - dist * ux, ys - dist * uy
    if kind == "facet":
        c = math.cos(math.pi / sides)
        sa, ma = _polygon_distance(xs, ys, ra * c, sides, angle)
        sb, mb = _polygon_distance(bx, by, rb * c, sides, angle + math.pi)
        return np.minimum(sa, sb), sa, sb, ma / (ra * c), mb / (rb * c)
    rr_a, rr_b = np.hypot(xs, ys), np.hypot(bx, by)
    sa, sb = rr_a - ra, rr_b - rb
    sd = smooth_min(sa, sb, neck_nm) if kind == "neck" else np.minimum(sa, sb)
    return sd, sa, sb, rr_a / ra, rr_b / rb


def crevice_factor(sd_other_nm: np.ndarray, small_radius_nm: float, cp: ContactParams) -> np.ndarray:
    """The share of SEs that escape at a point ``sd_other_nm`` from the groove where the two
    particles meet (the neighbour absorbs the rest): 1 - shadow * exp(-distance / length)."""
    length = max(cp.crevice_min_nm, cp.crevice_fraction * small_radius_nm)
    return 1.0 - cp.crevice_shadow * np.exp(-np.maximum(sd_other_nm, 0.0) / length)


def render_contact_pairs(spec, grid, flat: np.ndarray, carbon_image: np.ndarray) -> None:
    """Write the neck and facet pairs of ``spec.contacts`` into the particle layer ``flat``
    (the flattened yield difference to carbon on ``grid``, as
    :func:`zoo.sim.gold_on_carbon.render_gold_on_carbon` stores spheres): anti-aliased coverage
    from the union's signed distance, the higher particle's sec(theta) yield where both cover a
    pixel, the neck's saddle yield in the fillet."""
    from zoo.sim.specimens import sample_px

    pairs = spec.contacts
    p = spec.params
    cp = pairs.params
    az = math.radians(p.detector_azimuth_deg)
    det = np.array([math.cos(az), math.sin(az)])
    g = grid.spacing_nm
    for i in range(len(pairs)):
        a, b = int(pairs.a[i]), int(pairs.b[i])
        ra, rb = float(spec.radius_nm[a]), float(spec.radius_nm[b])
        ax, ay = float(spec.x_nm[a]), float(spec.y_nm[a])
        dist = math.hypot(spec.x_nm[b] - ax, spec.y_nm[b] - ay)
        bound = dist + max(ra, rb) + float(pairs.neck_nm[i]) + 2 * g
        cx, cy = grid.to_px(np.array([ax - bound, ax + bound]), np.array([ay - bound, ay + bound]))
        j0, j1 = max(int(math.floor(cx[0])), 0), min(int(math.ceil(cx[1])), grid.width - 1)
        i0, i1 = max(int(math.floor(cy[0])), 0), min(int(math.ceil(cy[1])), grid.height - 1)
        if j1 < j0 or i1 < i0:
            continue
        cols, rows = np.meshgrid(np.arange(j0, j1 + 1), np.arange(i0, i1 + 1))
        xs = grid.x0_nm + cols * g - ax
        ys = grid.y0_nm + rows * g - ay
        kind = str(pairs.kind[i])
        sd, sd_a, sd_b, rel_a, rel_b = pair_shape(kind, ra, rb, dist, float(pairs.angle[i]), neck_nm=float(pairs.neck_nm[i]),
                                      sides=cp.facet_sides, xs=xs, ys=ys)

        cover = np.clip(0.5 - sd / g, 0.0, 1.0)
        if not (cover > 0).any():
            continue
        ha = np.where(rel_a <= 1, ra * (1 + np.sqrt(np.clip(1 - rel_a**2, 0, 1))), -1.0)
        hb = np.where(rel_b <= 1, rb * (1 + np.sqrt(np.clip(1 - rel_b**2, 0, 1))), -1.0)
        on_b = (hb > ha) | ((ha < 0) & (rel_b < rel_a))
        rel = np.where(on_b, rel_b, rel_a)
        r_nm = np.where(on_b, rb, ra)
        cos_t = np.sqrt(np.clip(1 - np.minimum(rel, 1.0) ** 2, 0.0, 1.0))
        tilt = np.minimum(1.0 / np.maximum(cos_t, 1e-3), p.max_tilt_gain)
        tilt = np.where((ha < 0) & (hb < 0) & (kind == "neck"), cp.neck_tilt_gain, tilt)  # the fillet
        fx = np.where(on_b, xs - dist * math.cos(pairs.angle[i]), xs)
        fy = np.where(on_b, ys - dist * math.sin(pairs.angle[i]), ys)
        facing = np.clip((fx * det[0] + fy * det[1]) / r_nm, -1.0, 1.0)
        boost = 1.0 + p.small_particle_boost * np.exp(-r_nm / p.small_particle_radius_nm)
        y = p.gold_yield * boost * tilt * (1.0 + p.detector_contrast * facing)
        # The groove runs along the neighbour's outline and, where the two overlap, along the
        # curve where their surfaces meet: distance to it = the neighbour's signed distance
        # outside it, the height above the neighbour's surface over it.
        sd_other = np.where(on_b, sd_a, sd_b)
        groove = np.where(sd_other > 0, sd_other, np.abs(ha - hb))
        y = y * crevice_factor(groove, min(ra, rb), cp)
        m = cover > 0
        under = sample_px(carbon_image, cols[m] * 0.5, rows[m] * 0.5)
        flat[rows[m] * grid.width + cols[m]] = (cover[m] * (y[m] - under)).astype(np.float32)
