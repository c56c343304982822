"""The acquisition model (zoo.sim.acquisition): its statistics on images made here."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from zoo.sim import acquisition as A


def ramp(h=96, w=128):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return 3.0 * x + 0.5 * y + 10.0


def test_the_exact_stepping_scan_is_every_second_pixel_with_its_noise():
    rng = np.random.default_rng(0)
    hr = rng.normal(100, 7, (64, 80)).astype(np.float32)
    for phase in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        params = A.ScanParams(phase_x=phase[0], phase_y=phase[1])
        assert params.is_exact_stepping_scan()
        record = A.acquire(hr, params, rng)
        np.testing.assert_array_equal(record, hr[phase[1]::2, phase[0]::2])
        # The pixels an evaluation scores are exactly the ones not recorded.
        mask = A.unsampled_mask(hr.shape, 2, phase)
        assert mask.sum() == hr.size * 3 // 4 and not mask[phase[1]::2, phase[0]::2].any()


def test_sampling_phase_moves_the_sample_points():
    hr = ramp()
    record = A.acquire(hr, A.ScanParams(phase_x=0.5, phase_y=1.25), np.random.default_rng(1), noise_sigma=0.0)
    j, i = np.mgrid[0:record.shape[0], 0:record.shape[1]]
    expected = 3.0 * (0.5 + 2 * i) + 0.5 * (1.25 + 2 * j) + 10.0
    inner = (slice(3, -3), slice(3, -3))  # Lanczos reflects at the border
    np.testing.assert_allclose(record[inner], expected[inner], atol=0.05)


def test_drift_and_jitter_displace_points_as_documented():
    params = A.ScanParams(jitter_px=0.3, drift_x_px=2.0, drift_y_px=-1.0)
    jitter = np.random.default_rng(2).normal(0, 0.3, 10)
    x, y = A.sample_points((10, 12), params, jitter)
    np.testing.assert_allclose(x[:, 0], 2 * 0 + jitter + 2.0 * np.arange(10) / 10)
    np.testing.assert_allclose(y[-1, -1], 2 * 9 - 1.0 * (9 + 11 / 12) / 10)


@pytest.mark.parametrize("dose", [1.0, 0.5, 0.25])
def test_noise_variance_follows_the_dose(dose):
    rng = np.random.default_rng(3)
    sigma = 4.0
    hr = rng.normal(200, sigma, (256, 256)).astype(np.float32)
    # Off-grid phase and a probe: blur and interpolation average noise down; the model adds it back.
    params = A.ScanParams(phase_x=0.5, phase_y=0.3, probe_fwhm_px=1.0, dose_ratio=dose)
    record = A.acquire(hr, params, rng, noise_sigma=sigma)
    assert record.var() == pytest.approx(sigma**2 / dose, rel=0.08)


def test_shot_noise_is_poisson_and_scales_with_dose():
    gain_shape, read_noise = 4.0, 1.0  # the simulator's detector (zoo.sim.samples.SampleSpec)
    signal = np.full((200, 200), 0.4, dtype=np.float32)
    excess = 1.0 + 1.0 / gain_shape
    rel = {}
    for dose in (50.0, 800.0):
        counts = A.detect(np.random.default_rng(0), signal, dose, gain_shape=gain_shape, read_noise=read_noise)
        mean = 0.4 * dose
        assert counts.dtype == np.float32 and counts.mean() == pytest.approx(mean, rel=0.02)
        assert counts.var() == pytest.approx(mean * excess + read_noise**2, rel=0.05)
        rel[dose] = counts.std() / counts.mean()
    assert rel[50.0] / rel[800.0] == pytest.approx(4.0, rel=0.08)  # SNR grows as sqrt(dose)


def test_line_jitter_is_random_per_line_with_optional_mains_hum():
    # Without hum: exactly the per-line normal draws acquire() has always used.
    jitter = A.line_jitter(np.random.default_rng(1), 4000, 0.2)
    np.testing.assert_array_equal(jitter, np.random.default_rng(1).normal(0.0, 0.2, 4000))
    assert not A.line_jitter(np.random.default_rng(1), 50, 0.0).any()
    hum = A.line_jitter(np.random.default_rng(2), 4000, 0.0, hum_px=0.1)
    assert np.abs(hum).max() == pytest.approx(0.1, rel=0.01)
    assert np.std(hum) == pytest.approx(0.1 / math.sqrt(2), rel=0.05)


def test_linear_drift_grows_with_the_time_of_the_visit():
    size = (12, 10)  # width, height
    x, y = np.array([0.0, 11.0, 0.0]), np.array([0.0, 0.0, 9.0])
    t = np.array([0.0, 11 / 12 / 10, 9 / 10])  # line after line, x along each line
    np.testing.assert_allclose(A.frame_time(x, y, size), t)
    dx, dy = A.linear_drift(x, y, size, (2.0, -1.0))
    np.testing.assert_allclose(dx, 2.0 * t)
    np.testing.assert_allclose(dy, -1.0 * t)


def test_probe_blur_has_the_fwhm_asked_for():
    hr = np.zeros((64, 64), np.float32)
    hr[:, 32] = 1.0  # a line: its record's profile is the probe's
    fwhm = 5.0
    blurred = A.probe_blur(hr, fwhm)
    np.testing.assert_array_equal(blurred, A._blurred(hr, A.ScanParams(probe_fwhm_px=fwhm)))
    profile = blurred[32]
    above = np.flatnonzero(profile >= profile.max() / 2)
    # Half-maximum width, interpolated between samples on either side.
    left, right = above[0], above[-1]
    half = profile.max() / 2
    lx = left - (profile[left] - half) / (profile[left] - profile[left - 1])
    rx = right + (profile[right] - half) / (profile[right] - profile[right + 1])
    assert rx - lx == pytest.approx(fwhm, rel=0.05)


def test_dwell_travel_blurs_along_the_fast_axis_only():
    hr = np.zeros((32, 32), np.float32)
    hr[16, 16] = 1.0
    out = A._blurred(hr, A.ScanParams(dwell_travel_px=3.0))
    np.testing.assert_allclose(out[16, 15:18], [1 / 3] * 3, atol=1e-6)
    assert out[15, 16] == 0 and out[17, 16] == 0
    assert A._box_kernel(1.5).sum() == pytest.approx(1.0)


def test_noise_estimate_is_robust_to_structure():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:200, 0:200]
    structure = 80.0 * ((x - 100) ** 2 + (y - 100) ** 2 < 60**2) + 0.3 * x
    for sigma in (1.0, 5.0):
        image = structure + rng.normal(0, sigma, structure.shape)
        assert A.estimate_noise_sigma(image) == pytest.approx(sigma, rel=0.1)


def test_split_noise_gives_uncorrelated_halves_with_the_documented_variances():
    rng = np.random.default_rng(5)
    sigma, alpha = 3.0, 0.5
    clean = np.full((300, 300), 50.0, np.float32)
    hr = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    a, b = A.split_noise(hr, rng, alpha=alpha, noise_sigma=sigma)
    na, nb = (a - clean).ravel(), (b - clean).ravel()
    assert abs(np.corrcoef(na, nb)[0, 1]) < 0.02
    # Without splitting, input (= HR) and target (= HR) share all of their noise.
    assert np.corrcoef((hr - clean).ravel(), (hr - clean).ravel())[0, 1] == pytest.approx(1.0)
    assert na.std() == pytest.approx(sigma * math.sqrt(1 + alpha**2), rel=0.03)
    assert nb.std() == pytest.approx(sigma * math.sqrt(1 + 1 / alpha**2), rel=0.03)
    assert abs(((a + b) / 2 - hr).mean()) < 0.05  # the mean of the split is unbiased


def test_drawn_parameters_stay_in_their_ranges_and_include_the_exact_scan():
    rng = np.random.default_rng(6)
    draws = [A.draw_scan_params(rng) for _ in range(400)]
    exact = sum(p.is_exact_stepping_scan() for p in draws) / len(draws)
    assert 0.25 < exact < 0.45
    r = A.TRAINING_RANGES
    for p in draws:
        assert 0 <= p.phase_x < 2 and 0 <= p.phase_y < 2
        assert p.probe_fwhm_px == 0 or r["probe_fwhm_px"][0] <= p.probe_fwhm_px <= r["probe_fwhm_px"][1]
        assert p.dose_ratio == 1 or r["dose_ratio"][0] <= p.dose_ratio <= r["dose_ratio"][1]


def test_refuses_what_it_cannot_record():
    with pytest.raises(ValueError, match="2-D"):
        A.acquire(np.zeros((4, 4, 3)), A.ScanParams(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="dose_ratio"):
        A.acquire(np.zeros((8, 8)), A.ScanParams(dose_ratio=1.5), np.random.default_rng(0))


def test_magnified_view_is_oversampled_with_the_hrs_pixel_noise():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:160, :200].astype(np.float32)
    clean = 100 + 40 * np.sin(x / 5.0) * np.cos(y / 7.0)
    hr = clean + rng.normal(0, 4.0, clean.shape).astype(np.float32)
    view = A.magnified_view(hr, 2.0, rng)
    assert view.shape == (320, 400)
    # The detector's per-pixel noise is the HR's (same dwell), not the resampling's averaged-down one.
    assert A.estimate_noise_sigma(view) == pytest.approx(A.estimate_noise_sigma(hr), rel=0.1)
    assert A.estimate_noise_sigma(cv2.resize(hr, (400, 320), interpolation=cv2.INTER_LANCZOS4)) < 3.0
    # The signal is the HR's, on a grid twice as fine: every second pixel of the view is the HR.
    assert np.corrcoef(view[1::2, 1::2][4:-4, 4:-4].ravel(), hr[4:-4, 4:-4].ravel())[0, 1] > 0.9
    with pytest.raises(ValueError):
        A.magnified_view(hr, 1.0, rng)


def _row_difference_acf(image, lag):
    d = np.diff(np.asarray(image, np.float64), axis=0)
    return float(np.mean(d[:, :-lag] * d[:, lag:]) / np.mean(d * d))


def test_line_noise_is_correlated_along_lines_and_independent_between_them():
    rng = np.random.default_rng(5)
    white = rng.normal(0, 1.0, (300, 400)).astype(np.float32)
    assert np.array_equal(A.line_noise(white, rng, 0.0), white)
    # Flicker (infinite length): one offset per line, of the rms asked for.
    flicker = A.line_noise(white, rng, 1.0) - white
    assert np.ptp(flicker, axis=1).max() < 1e-5 and flicker[:, 0].std() == pytest.approx(1.0, rel=0.12)
    # Equal white and flicker variance: the row differences' correlation along x is flat at 1/2.
    noisy = A.line_noise(white, rng, 1.0)
    assert [_row_difference_acf(noisy, k) for k in (1, 8, 64)] == pytest.approx([0.5] * 3, abs=0.08)
    # A finite length: the streaks have the rms asked for and decorrelate along x over about it.
    streaks = A.line_noise(np.zeros((300, 4000), np.float32), rng, 2.0, length_px=10.0)
    assert streaks.std() == pytest.approx(2.0, rel=0.05)
    along_x = [float(np.mean(streaks[:, :-k] * streaks[:, k:]) / streaks.var()) for k in (1, 10, 60)]
    assert along_x[0] > 0.99 and 0.6 < along_x[1] < 0.9 and abs(along_x[2]) < 0.05  # exp(-k^2 / 4L^2)
    between_lines = float(np.mean(streaks[:-1] * streaks[1:]) / streaks.var())
    assert abs(between_lines) < 0.03
    with pytest.raises(ValueError):
        A.line_noise(white, rng, -1.0)


def test_line_flicker_estimate_finds_the_offsets_and_not_the_structure():
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:400, 0:500]
    structure = 80.0 * ((x - 250) ** 2 + (y - 200) ** 2 < 120**2) + 0.3 * y  # edges and a vertical ramp
    for sigma in (1.0, 5.0):
        image = structure + rng.normal(0, sigma, structure.shape)
        assert A.estimate_line_flicker(image) < 0.1 * sigma
        for share in (0.3, 1.0):
            flickering = A.line_noise(image.astype(np.float32), rng, share * sigma)
            assert A.estimate_line_flicker(flickering) == pytest.approx(share * sigma, rel=0.2)
    # Integer-valued micrographs (8-bit): the estimate is not stuck at 0 by the quantisation.
    quantised = np.round(A.line_noise((structure + rng.normal(0, 3.0, structure.shape)).astype(np.float32),
                                      rng, 1.5))
    assert A.estimate_line_flicker(quantised) == pytest.approx(1.5, rel=0.2)


def test_drawn_line_noise_stays_in_its_ranges():
    rng = np.random.default_rng(7)
    draws = [A.draw_line_noise(rng) for _ in range(400)]
    drawn = [d for d in draws if d is not None]
    assert 0.4 < len(drawn) / len(draws) < 0.6
    lo, hi = A.TRAINING_RANGES["line_noise_rms"]
    assert all(lo <= rms <= hi for rms, _ in drawn)
    lo, hi = A.TRAINING_RANGES["line_noise_length_px"]
    lengths = np.array([length for _, length in drawn])
    assert lengths.min() >= lo and lengths.max() <= hi and np.median(lengths) == pytest.approx(np.sqrt(lo * hi), rel=0.35)
