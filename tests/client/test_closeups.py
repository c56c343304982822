"""The --compare / report figure: it shows where output and Lanczos differ, and gaps' profiles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zoo.client import closeups


def _background(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(50, 2, shape).astype(np.float32)


def test_regions_are_where_the_output_differs_most_in_that_order():
    lanczos = _background((600, 900))
    enhanced = lanczos.copy()
    # three patches of difference, strongest first; plus weak difference everywhere
    enhanced += np.random.default_rng(1).normal(0, 0.5, enhanced.shape).astype(np.float32)
    centres = [(450, 700, 30.0), (100, 150, 20.0), (300, 420, 10.0)]
    for y, x, amp in centres:
        enhanced[y - 20:y + 20, x - 20:x + 20] += amp
    regions = closeups.difference_regions(lanczos, enhanced, size=128, count=3)
    assert len(regions) == 3
    for (y, x, _), (y0, x0, size) in zip(centres, regions):
        assert size == 128
        assert y0 <= y - 20 and y + 20 <= y0 + size and x0 <= x - 20 and x + 20 <= x0 + size
    # never overlapping
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            assert abs(a[0] - b[0]) >= 128 or abs(a[1] - b[1]) >= 128


def _pair(image, centre, radius, gap, axis, value):
    y, x = centre
    off = radius + gap / 2
    for s in (-1, 1):
        c = (int(round(x + s * off)), y) if axis == 1 else (x, int(round(y + s * off)))
        cv2.circle(image, c, radius, value, -1)


def test_gap_lines_cross_the_gaps_lanczos_fills_in():
    enhanced = _background((400, 400), seed=2)
    gaps = [((100, 100), 1), ((250, 300), 0), ((320, 80), 1)]  # (y, x) centre, axis across the gap
    for centre, axis in gaps:
        _pair(enhanced, centre, 9, 4, axis, 200.0)
    # bright regions elsewhere without a gap nearby, where both images agree
    cv2.circle(enhanced, (300, 100), 12, 200.0, -1)
    lanczos = cv2.GaussianBlur(enhanced, (0, 0), 3.0)  # the gaps blur shut
    lanczos[280:320, 80:120] = enhanced[280:320, 80:120]  # the lone disc: identical in both
    lines = closeups.gap_lines(lanczos, enhanced, count=3)
    assert len(lines) == 3
    found = []
    for (x0, y0), (x1, y1) in lines:
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        axis = 1 if y0 == y1 else 0
        match = [g for g in gaps if abs(g[0][0] - cy) <= 3 and abs(g[0][1] - cx) <= 3]
        assert match, ((x0, y0), (x1, y1))
        assert match[0][1] == axis  # the profile runs across the gap, from particle to particle
        assert max(abs(x1 - x0), abs(y1 - y0)) >= 2 * 4
        found.append(match[0])
    assert len(set(map(str, found))) == 3


def test_profile_samples_bilinearly_along_the_line():
    ramp = np.tile(np.arange(20, dtype=np.float32), (10, 1))
    dist, values = closeups.profile(ramp, ((2.0, 5.0), (12.0, 5.0)), step=0.5)
    assert dist[0] == 0 and dist[-1] == pytest.approx(10)
    np.testing.assert_allclose(values, 2 + dist, atol=1e-4)


def _field(h, w, seed=0):
    rng = np.random.default_rng(seed)
    lr = rng.normal(60, 8, (h // 2, w // 2)).astype(np.float32)
    for _ in range(4000):
        x, y = rng.integers(0, w // 2, 2)
        cv2.circle(lr, (int(x), int(y)), int(rng.integers(1, 4)), 200, -1)
    lanczos = cv2.resize(lr, (w, h), interpolation=cv2.INTER_LANCZOS4)
    enhanced = lanczos + rng.normal(0, 6, lanczos.shape).astype(np.float32)
    return lr, lanczos, enhanced


def test_a_full_field_figure_fits_in_2_mb_and_shows_the_crops_at_full_resolution():
    lr, lanczos, enhanced = _field(1625, 3705)
    z = np.random.default_rng(3).normal(0, 1, lr.shape).astype(np.float32)
    canvas, info = closeups.closeup_figure(lanczos, enhanced, left="Lanczos", right="model",
                                           pixel_size_nm=7.1, consistency=z)
    ok, data = cv2.imencode(".png", canvas)
    assert ok and data.size <= closeups.MAX_BYTES and info["png_bytes"] <= closeups.MAX_BYTES
    assert canvas.shape[1] == closeups.WIDTH and canvas.ndim == 2
    assert len(info["regions"]) == 3 and len(info["lines"]) >= 1
    # the first crop is drawn pixel for pixel (x ZOOM): find it in the canvas
    y0, x0, size = info["regions"][0]
    lo, hi = np.percentile(enhanced, [0.5, 99.5])
    expected = closeups._grey(lanczos[y0:y0 + size, x0:x0 + size], lo, hi)
    expected = cv2.resize(expected, (size * closeups.ZOOM,) * 2, interpolation=cv2.INTER_NEAREST)
    rows = np.where((canvas[:, 10:10 + expected.shape[1]][:, :] == expected[40]).all(axis=1))[0]
    assert rows.size  # an unlabelled row of the Lanczos crop appears unchanged


def test_the_overview_shrinks_until_the_png_fits():
    _, lanczos, enhanced = _field(800, 1600, seed=4)
    _, big = closeups.closeup_figure(lanczos, enhanced, left="a", right="b")
    _, small = closeups.closeup_figure(lanczos, enhanced, left="a", right="b",
                                       max_bytes=big["png_bytes"] - 50_000)
    assert small["overview_scale"] < big["overview_scale"]
    assert small["png_bytes"] <= big["png_bytes"] - 50_000


def test_truth_adds_its_crops_and_profiles_along_the_given_lines():
    _, lanczos, enhanced = _field(400, 600, seed=5)
    line = ((100.0, 100.0), (116.0, 100.0))
    canvas, info = closeups.closeup_figure(lanczos, enhanced, left="a", right="b",
                                           truth=enhanced + 1, lines=[line])
    assert info["lines"] == [line]
    without, _ = closeups.closeup_figure(lanczos, enhanced, left="a", right="b", lines=[line])
    assert canvas.shape == without.shape and not np.array_equal(canvas, without)
