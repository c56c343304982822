"""The paper's gap analysis on constructed profiles and a constructed particle image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.evaluation.gaps import analyse_gap_profile, analyse_gaps, line_profile, measure_gap
from zoo.evaluation.particles import find_gaps, find_particles

from .conftest import PIXEL_NM, render


def plateaus(gap_samples: float, *, depth: float, n: int = 81, edge: float = 3.0) -> np.ndarray:
    """Two bright plateaus (value 1) with linear edges of ``edge`` samples around a dip.

    The dip's floor sits at ``depth``; the plateaus' inner edges are ``gap_samples`` apart at the
    floor. Exact 80% crossing distance: gap + 2 * edge * (0.8 - depth) / (1 - depth).
    """
    x = np.arange(n, dtype=float)
    c = (n - 1) / 2
    d = np.abs(x - c) - gap_samples / 2  # distance from the floor's edge
    return np.clip(depth + (1 - depth) * d / edge, depth, 1.0)


@pytest.mark.parametrize("gap", [2.0, 5.0, 9.0])
@pytest.mark.parametrize("depth", [0.0, 0.3, 0.55])
def test_width_is_the_distance_between_the_80_percent_crossings(gap, depth):
    profile = plateaus(gap, depth=depth)
    expected = gap + 2 * 3.0 * (0.8 - depth) / (1 - depth)
    assert measure_gap(profile, pixel_size_nm=1.0) == pytest.approx(expected, abs=1e-9)
    # Units: the sample spacing scales the width.
    assert measure_gap(profile, pixel_size_nm=2.5) == pytest.approx(2.5 * expected, abs=1e-9)


def test_two_gaussians_at_known_separation():
    s, sep = 4.0, 24.0
    x = np.arange(0, 60, 0.25)
    a, b = 18.0, 18.0 + sep
    profile = np.exp(-0.5 * ((x - a) / s) ** 2) + np.exp(-0.5 * ((x - b) / s) ** 2)
    # Solve exactly for the inner 80% crossing (the other Gaussian adds a little there).
    from scipy.optimize import brentq

    peak = profile.max()
    left = brentq(lambda t: np.exp(-0.5 * ((t - a) / s) ** 2) + np.exp(-0.5 * ((t - b) / s) ** 2) - 0.8 * peak, a, a + sep / 2)
    expected = 2 * (a + sep / 2 - left)
    assert measure_gap(profile, pixel_size_nm=0.25) == pytest.approx(expected, abs=0.01)


def test_detection_follows_the_60_percent_rule():
    assert measure_gap(plateaus(4, depth=0.58), pixel_size_nm=1.0) is not None
    assert measure_gap(plateaus(4, depth=0.62), pixel_size_nm=1.0) is None
    # Two Gaussians (sigma s) dip at the midpoint to 2*exp(-(sep/2s)^2/2): 0.83 of the peak at
    # sep = 13 (no gap), 0.40 at sep = 18 (a gap).
    x = np.arange(0, 80, 0.5)
    s = 5.0
    for sep, detected in ((13.0, False), (18.0, True)):
        p = np.exp(-0.5 * ((x - 30) / s) ** 2) + np.exp(-0.5 * ((x - 30 - sep) / s) ** 2)
        assert (measure_gap(p, pixel_size_nm=0.5) is not None) == detected


def test_the_lower_peak_sets_the_levels():
    profile = plateaus(6, depth=0.5)
    profile[: profile.size // 2] *= 2.0  # particle A twice as bright, valley stays 0.5
    result = analyse_gap_profile(profile, pixel_size_nm=1.0)
    assert result.peak == pytest.approx(1.0)
    assert result.detected  # 0.5 < 0.6 * 1.0, though it would not be against A's peak 2.0


def test_background_level_makes_the_percentages_relative():
    profile = plateaus(4, depth=0.4) * 0.5 + 0.5  # dip to 0.7 on a 0.5 pedestal
    assert measure_gap(profile, pixel_size_nm=1.0) is None  # 0.7 is not below 0.6 of 1.0
    # Above the pedestal: dip 0.2 of peak 0.5 is a gap; the 80% level is 0.8 in plateau units.
    expected = 4 + 2 * 3.0 * (0.8 - 0.4) / (1 - 0.4)
    assert measure_gap(profile, pixel_size_nm=1.0, background=0.5) == pytest.approx(expected)


def test_bad_profiles_raise():
    with pytest.raises(ValueError):
        measure_gap(np.array([1.0, 0.0]), pixel_size_nm=1.0)
    with pytest.raises(ValueError):
        measure_gap(np.array([1.0, np.nan, 1.0]), pixel_size_nm=1.0)
    assert measure_gap(np.zeros(10), pixel_size_nm=1.0) is None


def test_line_profile_samples_sub_pixel_and_averages_parallel_lines():
    y, x = np.mgrid[0:40, 0:50].astype(float)
    ramp = 2.0 * x + 0.5 * y
    prof = line_profile(ramp, (5.0, 10.0), (25.0, 10.0), step=0.5)
    assert prof.size == 41
    np.testing.assert_allclose(prof, 2.0 * np.arange(5.0, 25.01, 0.5) + 5.0, atol=1e-9)
    # Oblique line with width: averaging symmetric parallel lines keeps a linear ramp's values.
    p = line_profile(ramp, (10.0, 10.0), (20.0, 20.0), width=5, extend=2.0)
    t = -2.0 + np.arange(p.size)
    expected = 2.0 * (10 + t / np.sqrt(2)) + 0.5 * (10 + t / np.sqrt(2))
    np.testing.assert_allclose(p, expected, atol=1e-9)
    with pytest.raises(ValueError):
        line_profile(ramp, (1, 1), (1, 1))


def test_analyse_gaps_on_planted_particles(scene):
    truth, shape = scene
    target = render(truth["particles"], shape, sigma_px=0.6)
    blurred = render(truth["particles"], shape, sigma_px=3.5)  # a "Lanczos input": misses narrow gaps
    # An "output" that carves a 2-px-wide dark line between the first touching pair.
    t0 = truth["touching"][0]
    pa = truth["particles"][t0["a"]]
    pb = truth["particles"][t0["b"]]
    mx, my = (pa["x_hr"] + pb["x_hr"]) / 2, (pa["y_hr"] + pb["y_hr"]) / 2
    dx, dy = pb["x_hr"] - pa["x_hr"], pb["y_hr"] - pa["y_hr"]
    n = np.hypot(dx, dy)
    ox, oy = -dy / n * 9, dx / n * 9
    carve = [(mx - ox, my - oy, mx + ox, my + oy, 1.0)]
    inventive = render(truth["particles"], shape, sigma_px=0.6, carve=carve)
    # Another intensity scale: the analysis matches intensities to the target first.
    images = {"input": 3.0 * blurred + 100.0, "output": inventive, "target": target}

    result = analyse_gaps(
        images,
        truth["gaps"],
        truth["particles"],
        touching=truth["touching"],
        pixel_size_nm=PIXEL_NM,
    )
    n_gaps, n_touching = len(truth["gaps"]), len(truth["touching"])
    assert result.skipped == 0
    target_stats = result.stats["target"]
    assert target_stats.n_gaps == n_gaps and target_stats.n_touching == n_touching
    assert target_stats.undetected_gap_fraction == 0
    assert target_stats.invented_gap_fraction == 0
    assert target_stats.gap_size_error_nm == 0
    # The target's measured widths follow the planted ones (blur sigma 0.6 px, so within ~1.5 px).
    planted = np.array([g["width_nm"] for g in truth["gaps"]])
    np.testing.assert_allclose(result.widths_nm["target"], planted, atol=1.5 * PIXEL_NM)
    # The blurred input misses the narrow gaps (2 and 3 px) but keeps the wider ones (4, 6 px).
    inp = result.stats["input"]
    missed = ~np.isfinite(result.widths_nm["input"])
    np.testing.assert_array_equal(missed, planted <= 3 * PIXEL_NM)
    assert inp.undetected_gap_fraction == pytest.approx(0.5)
    assert inp.invented_gap_fraction == 0
    assert inp.n_compared == n_gaps - inp.n_undetected
    assert inp.gap_size_error_nm > 0
    assert result.errors_nm("input").size == inp.n_compared
    # The inventive output shows exactly one touching pair apart.
    out = result.stats["output"]
    assert out.n_invented == 1
    assert out.invented_gap_fraction == pytest.approx(1 / n_touching)
    assert out.undetected_gap_fraction == 0 and out.gap_size_error_nm < 0.5
    assert math.isfinite(result.touching_widths_nm["output"][0])


def test_pairs_off_the_image_are_skipped(scene):
    truth, shape = scene
    target = render(truth["particles"], shape, sigma_px=0.6)
    gaps = truth["gaps"] + [{"a": 0, "b": 999}]
    particles = truth["particles"] + [{"id": 999, "x_hr": -30.0, "y_hr": 5.0, "radius_nm": 10.0}]
    result = analyse_gaps({"target": target}, gaps, particles, pixel_size_nm=PIXEL_NM)
    assert result.skipped == 1 and result.stats["target"].n_gaps == len(truth["gaps"])
    with pytest.raises(ValueError, match="unknown particle"):
        analyse_gaps({"target": target}, [{"a": 0, "b": 12345}], particles, pixel_size_nm=PIXEL_NM)
    with pytest.raises(ValueError, match="reference"):
        analyse_gaps({"output": target}, [], particles, pixel_size_nm=PIXEL_NM)


def test_without_truth_particles_and_gaps_are_found_in_the_target(scene):
    truth, shape = scene
    target = render(truth["particles"], shape, sigma_px=0.6)
    found = find_particles(target, pixel_size_nm=PIXEL_NM, min_radius_nm=3 * PIXEL_NM)
    centres = np.array([[p["x_hr"], p["y_hr"]] for p in truth["particles"]])
    # Every planted particle is found within 2 px; touching pairs may merge but still split in two.
    for p in found:
        assert np.hypot(*(centres - [p["x_hr"], p["y_hr"]]).T).min() <= 2.5
    assert len(found) >= 0.9 * len(centres)
    detected = find_gaps(
        target, pixel_size_nm=PIXEL_NM, min_radius_nm=3 * PIXEL_NM, max_gap_nm=6.5 * PIXEL_NM
    )
    # Every planted gap and touching pair is found, and nothing else (neighbouring rows are >= 7 px apart).
    assert len(detected["gaps"]) == len(truth["gaps"])
    assert len(detected["touching"]) == len(truth["touching"])
    widths = np.sort([g["width_nm"] for g in detected["gaps"]])
    planted = np.sort([g["width_nm"] for g in truth["gaps"]])
    np.testing.assert_allclose(widths, planted, atol=1.5 * PIXEL_NM)


def test_denominators_are_the_gaps_the_target_shows(scene):
    """As in the paper, other images are judged on the gaps the target resolves; the target
    itself is judged against the truth."""
    truth, shape = scene
    soft_target = render(truth["particles"], shape, sigma_px=3.0)  # misses the 2 and 3 px gaps
    sharp = render(truth["particles"], shape, sigma_px=0.6)
    result = analyse_gaps(
        {"output": sharp, "target": soft_target},
        truth["gaps"],
        truth["particles"],
        touching=truth["touching"],
        pixel_size_nm=PIXEL_NM,
    )
    n = len(truth["gaps"])
    assert result.stats["target"].n_gaps == n
    assert result.stats["target"].undetected_gap_fraction == pytest.approx(0.5)
    out = result.stats["output"]
    assert out.n_gaps == n // 2 and out.n_undetected == 0 and out.n_compared == n // 2
    assert out.n_touching == len(truth["touching"]) and out.n_invented == 0


LR_NM = 14.2


def _particle(pid, x_lr, y_lr, radius_px):
    return {"id": pid, "x_lr": x_lr, "y_lr": y_lr, "radius_nm": radius_px * LR_NM}


@pytest.mark.parametrize(
    ("a", "b", "clearance_nm", "expected"),
    [
        # Edges at x = 10.8 and 12.2 on row 5: LR samples 11 and 12 lie in the gap.
        ((10.0, 5.0, 0.8), (13.0, 5.0, 0.8), 0.0, True),
        # Edges at 10.8 and 10.9: the gap falls between the samples 10 and 11.
        ((10.0, 5.0, 0.8), (11.7, 5.0, 0.8), 0.0, False),
        # A sample 0.45 px beside the line: counts between large particles ...
        ((10.0, 5.45, 0.8), (12.0, 5.45, 0.8), 0.0, True),
        # ... but not beside two particles of radius 0.2 px (outside their convex hull) ...
        ((10.0, 5.45, 0.2), (12.0, 5.45, 0.2), 0.0, False),
        # ... while 0.1 px beside their line it does.
        ((10.0, 5.1, 0.2), (12.0, 5.1, 0.2), 0.0, True),
        # Sample 11 is 0.2 px (2.84 nm) from both edges: in the gap only for a clearance below that.
        ((10.0, 5.0, 0.8), (12.0, 5.0, 0.8), 2.0, True),
        ((10.0, 5.0, 0.8), (12.0, 5.0, 0.8), 3.0, False),
        # Overlapping discs have no gap to sample.
        ((10.0, 5.0, 1.0), (11.5, 5.0, 1.0), 0.0, False),
        # Oblique: centres (10, 5) and (13, 8), radius 1 px: the samples (11, 6) and (12, 7) lie
        # on the line, 1.41 px from the nearer centre: in the gap.
        ((10.0, 5.0, 1.0), (13.0, 8.0, 1.0), 0.0, True),
    ],
)
def test_input_sample_in_gap_on_constructed_geometry(a, b, clearance_nm, expected):
    from zoo.evaluation.gaps import input_sample_in_gap

    pa, pb = _particle(0, *a), _particle(1, *b)
    assert input_sample_in_gap(pa, pb, lr_pixel_size_nm=LR_NM, clearance_nm=clearance_nm) is expected
    assert input_sample_in_gap(pb, pa, lr_pixel_size_nm=LR_NM, clearance_nm=clearance_nm) is expected


def test_gaps_with_input_sample_needs_lr_coordinates():
    from zoo.evaluation.gaps import gaps_with_input_sample

    particles = [_particle(0, 10.0, 5.0, 0.8), _particle(1, 13.0, 5.0, 0.8), _particle(2, 11.7, 5.0, 0.8)]
    gaps = [{"a": 0, "b": 1}, {"a": 2, "b": 0}]
    np.testing.assert_array_equal(gaps_with_input_sample(gaps, particles, lr_pixel_size_nm=LR_NM), [True, False])
    no_lr = [{"id": p["id"], "x_hr": 1.0, "y_hr": 1.0, "radius_nm": p["radius_nm"]} for p in particles]
    assert gaps_with_input_sample(gaps, no_lr, lr_pixel_size_nm=LR_NM) is None
    assert gaps_with_input_sample([{"a": 0, "b": 9}], particles, lr_pixel_size_nm=LR_NM) is None
