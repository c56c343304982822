"""The gold-on-carbon specimen (zoo.sim.gold_on_carbon): planted gaps, contacts and sizes as rendered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.sim import gold_on_carbon, specimens


def _sub_specimen(spec: gold_on_carbon.GoldOnCarbon, keep: np.ndarray) -> gold_on_carbon.GoldOnCarbon:
    empty = np.empty((0, 2), dtype=np.int64)
    return gold_on_carbon.GoldOnCarbon(
        spec.x_nm[keep], spec.y_nm[keep], spec.radius_nm[keep], empty, empty, np.empty(0), np.empty(0, bool),
        spec.params,
    )


def test_planted_gap_widths_agree_with_the_rendered_specimen():
    rng = np.random.default_rng(4)
    spec = gold_on_carbon.make_gold_on_carbon(rng, (0.0, 2500.0, 0.0, 2500.0))
    assert spec.gap_planted.sum() >= 8
    p = spec.params
    assert np.all((spec.gap_width_nm >= p.min_gap_nm) & (spec.gap_width_nm <= p.record_gap_max_nm))
    planted = spec.gap_width_nm[spec.gap_planted]
    assert planted.min() >= 3.0 and planted.max() <= 20.0
    checked = 0
    for (a, b), width in zip(spec.gaps[spec.gap_planted][:10], planted[:10]):
        ca = np.array([spec.x_nm[a], spec.y_nm[a]])
        cb = np.array([spec.x_nm[b], spec.y_nm[b]])
        u = (cb - ca) / np.linalg.norm(cb - ca)
        ea, eb = ca + spec.radius_nm[a] * u, cb - spec.radius_nm[b] * u
        mid = (ea + eb) / 2
        near = np.hypot(spec.x_nm - mid[0], spec.y_nm - mid[1]) < spec.radius_nm + 60
        # On a very fine grid and on the simulator's own grid (HR pixel / 4); an edge is where
        # the profile crosses half-way between the carbon in the gap and that side's bright rim.
        for g, tol in ((0.25, 0.4), (7.1 / 4, 7.1 / 4)):
            grid = specimens.Grid.covering(mid[0] - 40, mid[0] + 40, mid[1] - 40, mid[1] + 40, g)
            layers = gold_on_carbon.render_gold_on_carbon(_sub_specimen(spec, near), grid, np.random.default_rng(0))
            s = np.arange(-(width / 2 + 8), width / 2 + 8, 0.02)
            profile = specimens.sample_layers(layers[:2], mid[0] + s * u[0], mid[1] + s * u[1])
            centre = s.size // 2
            carbon = profile[np.abs(s) <= max(width / 2 - 2 * g, 0.01)].mean()
            left, right = profile[:centre], profile[centre:]
            if width < 3 * g:  # a gap under 3 grid pixels shows as a dip, not as carbon
                assert profile[centre] < 0.8 * min(left.max(), right.max())
                continue
            assert max(carbon, profile[centre]) < 0.6 < min(left.max(), right.max()), "gap shows carbon, sides gold"
            lo = np.flatnonzero(left >= (carbon + left.max()) / 2)[-1]
            hi = centre + np.flatnonzero(right >= (carbon + right.max()) / 2)[0]
            assert s[hi] - s[lo] == pytest.approx(width, abs=tol)
        checked += 1
    assert checked >= 8


def test_touching_pairs_show_no_carbon_between_them():
    spec = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(7), (0.0, 2500.0, 0.0, 2500.0))
    assert len(spec.touching) >= 3
    for a, b in spec.touching[:5]:
        d = math.hypot(spec.x_nm[b] - spec.x_nm[a], spec.y_nm[b] - spec.y_nm[a])
        assert d <= spec.radius_nm[a] + spec.radius_nm[b] + 1e-9
        # The contact point, rendered, is gold.
        t = spec.radius_nm[a] / (spec.radius_nm[a] + spec.radius_nm[b])
        cx = spec.x_nm[a] + t * (spec.x_nm[b] - spec.x_nm[a])
        cy = spec.y_nm[a] + t * (spec.y_nm[b] - spec.y_nm[a])
        grid = specimens.Grid.covering(cx - 20, cx + 20, cy - 20, cy + 20, 7.1 / 4)
        near = np.hypot(spec.x_nm - cx, spec.y_nm - cy) < spec.radius_nm + 30
        layers = gold_on_carbon.render_gold_on_carbon(_sub_specimen(spec, near), grid, np.random.default_rng(0))
        assert specimens.sample_layers(layers[:2], np.array([cx]), np.array([cy]))[0] > 0.7


def test_no_unplanted_neighbours_closer_than_the_minimum_gap():
    spec = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(8), (0.0, 3000.0, 0.0, 3000.0))
    xy = np.column_stack([spec.x_nm, spec.y_nm])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    gap = d - spec.radius_nm[:, None] - spec.radius_nm[None, :]
    np.fill_diagonal(gap, np.inf)
    close = np.argwhere(np.triu(gap < spec.params.min_gap_nm))
    assert {tuple(p) for p in close.tolist()} == {tuple(sorted(p)) for p in spec.touching.tolist()}
    diam = 2 * spec.radius_nm
    assert diam.min() >= 5.0 and diam.max() <= 150.0
    assert 15.0 < np.median(diam) < 35.0  # log-normal around ~24 nm
