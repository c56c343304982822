"""Contact pairs of every kind (zoo.sim.touching): geometry, rendering and their truth records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.sim import gold_on_carbon, specimens, touching


def _flat_length(inside: np.ndarray, step: float) -> float:
    return float(inside.sum()) * step


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.2])
def test_sphere_and_facet_centre_distances_follow_the_overlap(overlap):
    assert touching.centre_distance("sphere", 10.0, 30.0, overlap) == pytest.approx(40.0 - overlap * 10.0)
    c = math.cos(math.pi / 6)
    assert touching.centre_distance("facet", 10.0, 30.0, overlap) == pytest.approx(40 * c - overlap * 10 * c)


def test_facet_pair_touches_along_a_flat_side_and_spheres_at_a_point():
    ra, rb = 20.0, 30.0
    step = 0.05
    ys = np.arange(-40.0, 40.0, step)
    d = touching.centre_distance("facet", ra, rb, 0.0)
    aa = ra * math.cos(math.pi / 6)
    # Just either side of the contact plane each hexagon shows its side (= its circumradius);
    # the contact, where both do, is as long as the shorter side.
    inside = []
    for x, r in ((aa - 0.01, ra), (aa + 0.01, rb)):
        sd, *_ = touching.pair_shape("facet", ra, rb, d, 0.0, xs=np.full_like(ys, x), ys=ys)
        assert _flat_length(sd <= 0, step) == pytest.approx(r, abs=0.2)
        inside.append(sd <= 0)
    assert _flat_length(inside[0] & inside[1], step) == pytest.approx(min(ra, rb), abs=0.2)
    ds = touching.centre_distance("sphere", ra, rb, 0.0)
    sd, *_ = touching.pair_shape("sphere", ra, rb, ds, 0.0, xs=np.full_like(ys, ra), ys=ys)
    assert _flat_length(sd <= 0, step) < 0.5


def test_neck_fills_the_notch_beside_the_contact_and_is_absent_without_one():
    ra = rb = 20.0
    d = touching.centre_distance("neck", ra, rb, 0.05)
    beside = (np.array([d / 2]), np.array([5.0]))  # outside both discs, next to the contact
    sd_sphere, sa, sb, *_ = touching.pair_shape("sphere", ra, rb, d, 0.0, xs=beside[0], ys=beside[1])
    assert sd_sphere[0] > 0 and sa[0] > 0 and sb[0] > 0
    sd_neck, *_ = touching.pair_shape("neck", ra, rb, d, 0.0, neck_nm=8.0, xs=beside[0], ys=beside[1])
    assert sd_neck[0] < 0
    far = (np.array([-ra - 1.0]), np.array([0.0]))  # beyond particle a: the neck changes nothing there
    assert touching.pair_shape("neck", ra, rb, d, 0.0, neck_nm=8.0, xs=far[0], ys=far[1])[0][0] == pytest.approx(1.0)


def test_crevice_darkens_next_to_the_neighbour_only():
    cp = touching.ContactParams()
    f = touching.crevice_factor(np.array([-1.0, 0.0, 5.0, 1e3]), 20.0, cp)
    assert f[0] == f[1] == pytest.approx(1 - cp.crevice_shadow)
    assert f[1] < f[2] < f[3] and f[3] == pytest.approx(1.0)


def _specimen_with_pairs(seed=0, **contact):
    p = gold_on_carbon.GoldOnCarbonParams(cluster_density_per_um2=0.0, isolated_density_per_um2=2.0,
                                          contacts=touching.ContactParams(**contact))
    return gold_on_carbon.make_gold_on_carbon(np.random.default_rng(seed), (0.0, 1500.0, 0.0, 1500.0), p)


def test_planted_pairs_touch_with_their_overlap_keep_clear_and_are_recorded():
    spec = _specimen_with_pairs(pairs_per_um2=20.0)
    c = spec.contacts
    assert len(c) >= 20 and set(c.kind) == set(touching.KINDS)
    pos = np.stack([spec.x_nm, spec.y_nm], axis=1)
    for k in range(len(c)):
        a, b = c.a[k], c.b[k]
        d = np.hypot(*(pos[a] - pos[b]))
        assert d == pytest.approx(touching.centre_distance(c.kind[k], spec.radius_nm[a], spec.radius_nm[b],
                                                           c.overlap[k]))
        others = np.setdiff1d(np.arange(len(spec)), [a, b])
        mid = (pos[a] + pos[b]) / 2
        edge = np.hypot(*(pos[others] - mid).T) - spec.radius_nm[others]
        assert edge.min() > d / 2 + max(spec.radius_nm[a], spec.radius_nm[b]) + c.params.clearance_nm - 1e-6
    assert 2 * spec.radius_nm[c.a].min() >= 5.0 and 2 * spec.radius_nm[c.a].max() <= 120.0
    assert c.overlap.min() >= 0.0 and c.overlap.max() <= 0.2
    pairs = {tuple(t) for t in spec.touching.tolist()}
    assert all((a, b) in pairs for a, b in zip(c.a.tolist(), c.b.tolist()))
    member = set(c.a.tolist()) | set(c.b.tolist())
    assert not any(a in member or b in member for a, b in spec.gaps.tolist())
    xy = np.arange(len(spec), dtype=float)
    records = gold_on_carbon.truth_records(spec, spec.x_nm, spec.y_nm, xy, xy, (1500, 1500))["touching"]
    kinds = {r["kind"] for r in records}
    assert kinds <= {"sphere", "neck", "facet", "aggregate"} and {"sphere", "neck", "facet"} <= kinds
    assert all("overlap_fraction" in r for r in records if r["kind"] != "aggregate")


@pytest.mark.parametrize("kind", ["facet", "neck", "sphere"])
def test_rendered_area_matches_the_kind(kind):
    spec = _specimen_with_pairs(seed=3, pairs_per_um2=4.0, kinds=(kind,), neck_fraction=(0.5, 0.5),
                                diameter_nm=(60.0, 80.0))
    spec = gold_on_carbon.GoldOnCarbon(spec.x_nm, spec.y_nm, spec.radius_nm, spec.touching, spec.gaps,
                                       spec.gap_width_nm, spec.gap_planted, spec.params, spec.contacts)
    g = 0.5
    grid = specimens.Grid.covering(0.0, 1500.0, 0.0, 1500.0, g)
    layers = gold_on_carbon.render_gold_on_carbon(spec, grid, np.random.default_rng(0))
    c = spec.contacts
    k = 0
    a, b = c.a[k], c.b[k]
    ra, rb = spec.radius_nm[a], spec.radius_nm[b]
    box = max(ra, rb) * 3
    x0, y0 = (spec.x_nm[a] + spec.x_nm[b]) / 2, (spec.y_nm[a] + spec.y_nm[b]) / 2
    j = slice(int((x0 - box) / g), int((x0 + box) / g))
    i = slice(int((y0 - box) / g), int((y0 + box) / g))
    area = np.count_nonzero(np.abs(layers[1].image[i, j]) > 1e-6) * g * g
    d = np.hypot(spec.x_nm[a] - spec.x_nm[b], spec.y_nm[a] - spec.y_nm[b])
    if kind == "facet":
        expected = 1.5 * math.sqrt(3) * (ra**2 + rb**2)  # two hexagons, minus their overlap
        expected -= c.overlap[k] * min(ra, rb) * math.cos(math.pi / 6) * min(ra, rb)
        assert area == pytest.approx(expected, rel=0.04)
    else:
        # Two discs minus their lens; the neck adds its fillet on top.
        r1, r2 = ra, rb
        lens = (r1**2 * math.acos((d**2 + r1**2 - r2**2) / (2 * d * r1))
                + r2**2 * math.acos((d**2 + r2**2 - r1**2) / (2 * d * r2))
                - 0.5 * math.sqrt(max((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0.0)))
        discs = math.pi * (ra**2 + rb**2) - lens
        if kind == "sphere":
            assert area == pytest.approx(discs, rel=0.03)
        else:
            assert area > discs * 1.005


def test_rendered_contact_is_darker_than_the_free_edge_at_the_same_tilt():
    spec = _specimen_with_pairs(seed=5, pairs_per_um2=4.0, kinds=("sphere",), diameter_nm=(80.0, 100.0),
                                overlap_fraction=(0.0, 0.01))
    g = 0.5
    grid = specimens.Grid.covering(0.0, 1500.0, 0.0, 1500.0, g)
    layer = gold_on_carbon.render_gold_on_carbon(spec, grid, np.random.default_rng(0))[1].image
    c = spec.contacts
    darker = 0
    for k in range(len(c)):
        a, b = c.a[k], c.b[k]
        ca = np.array([spec.x_nm[a], spec.y_nm[a]])
        u = np.array([spec.x_nm[b], spec.y_nm[b]]) - ca
        u /= np.linalg.norm(u)
        r = spec.radius_nm[a] - 3.0  # 3 nm inside particle a's edge, towards b and away from it
        near, far = (grid.to_px(*(ca + s * r * u)) for s in (1.0, -1.0))
        darker += layer[int(round(near[1])), int(round(near[0]))] < 0.6 * layer[int(round(far[1])), int(round(far[0]))]
    assert len(c) >= 3 and darker == len(c)
