"""PSNR/SSIM after intensity matching, and the interpolation baselines."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from zoo.evaluation.quality import (
    baseline_upsample,
    match_intensity,
    peak_signal_noise_ratio,
    structural_similarity,
)


@pytest.fixture
def pair(rng):
    reference = ndimage.gaussian_filter(rng.normal(size=(64, 80)), 2.0)
    reference = (reference - reference.min()) / np.ptp(reference)
    noisy = reference + 0.05 * rng.normal(size=reference.shape)
    return reference, noisy


def test_match_intensity_is_the_least_squares_affine_fit(pair):
    reference, noisy = pair
    matched = match_intensity(7.0 * noisy - 3.0, reference)
    a, b = np.polyfit((7.0 * noisy - 3.0).ravel(), reference.ravel(), 1)
    np.testing.assert_allclose(matched, a * (7.0 * noisy - 3.0) + b, atol=1e-10)
    np.testing.assert_allclose(match_intensity(5 * reference + 1, reference), reference, atol=1e-10)


def test_an_affine_scaled_copy_scores_like_the_original(pair):
    reference, noisy = pair
    scaled = 250.0 * noisy + 1000.0  # another detector gain and offset
    assert peak_signal_noise_ratio(reference, scaled) == pytest.approx(
        peak_signal_noise_ratio(reference, noisy), abs=0.05
    )
    assert structural_similarity(reference, scaled) == pytest.approx(
        structural_similarity(reference, noisy), abs=0.005
    )
    # Without matching the gain and offset ruin both scores.
    assert peak_signal_noise_ratio(reference, scaled, match_intensity=False) < 0
    assert structural_similarity(reference, scaled, match_intensity=False) < 0.1


def test_psnr_matches_its_definition(pair):
    reference, noisy = pair
    mse = np.mean((match_intensity(noisy, reference) - reference) ** 2)
    assert peak_signal_noise_ratio(reference, noisy) == pytest.approx(10 * np.log10(1 / mse))
    assert peak_signal_noise_ratio(reference, noisy, data_range=2.0) == pytest.approx(
        10 * np.log10(4 / mse)
    )
    assert math.isinf(peak_signal_noise_ratio(reference, reference))
    assert structural_similarity(reference, reference) == pytest.approx(1.0)


def test_more_noise_scores_worse(pair, rng):
    reference, noisy = pair
    noisier = reference + 0.2 * rng.normal(size=reference.shape)
    assert peak_signal_noise_ratio(reference, noisier) < peak_signal_noise_ratio(reference, noisy) - 5
    assert structural_similarity(reference, noisier) < structural_similarity(reference, noisy)


def test_shapes_must_agree(pair):
    reference, _ = pair
    with pytest.raises(ValueError):
        peak_signal_noise_ratio(reference, reference[:-1])
    with pytest.raises(ValueError):
        peak_signal_noise_ratio(np.zeros((8, 8)), np.ones((8, 8)))


def test_baselines_upsample_x2_with_half_pixel_centres(rng):
    lr = rng.normal(size=(10, 12)).astype(np.float32)
    nearest = baseline_upsample(lr, "nearest")
    assert nearest.shape == (20, 24) and nearest.dtype == np.float32
    np.testing.assert_array_equal(nearest[::2, ::2], lr)
    np.testing.assert_array_equal(nearest[1::2, 1::2], lr)
    lanczos = baseline_upsample(lr, "lanczos")
    np.testing.assert_array_equal(lanczos, cv2.resize(lr, (24, 20), interpolation=cv2.INTER_LANCZOS4))
    assert np.array_equal(
        baseline_upsample(lr, "bicubic"), cv2.resize(lr, (24, 20), interpolation=cv2.INTER_CUBIC)
    )
    # Half-pixel centres: a smooth cosine is reproduced at u -> (u + 0.5) / 2 - 0.5.
    x = np.arange(32, dtype=np.float32)
    lr_cos = np.tile(np.cos(2 * np.pi * x / 16), (4, 1)).astype(np.float32)
    up = baseline_upsample(lr_cos, "lanczos")[4]
    u = np.arange(64)
    expected = np.cos(2 * np.pi * ((u + 0.5) / 2 - 0.5) / 16)
    np.testing.assert_allclose(up[8:-8], expected[8:-8], atol=0.02)
    with pytest.raises(ValueError):
        baseline_upsample(lr, "bilinear-ish")


def test_a_mask_leaves_pixels_without_data_out(pair, rng):
    reference, noisy = pair
    mask = np.ones(reference.shape, bool)
    mask[:, :12] = False
    broken = noisy.copy()
    broken[:, :12] = 50.0  # garbage where the reference has no data
    cropped_ref, cropped = reference[:, 12:], noisy[:, 12:]
    assert peak_signal_noise_ratio(reference, broken, mask=mask) == pytest.approx(
        peak_signal_noise_ratio(cropped_ref, cropped, data_range=np.ptp(reference[mask]))
    )
    assert peak_signal_noise_ratio(reference, broken) < peak_signal_noise_ratio(reference, broken, mask=mask) - 5
    inside = structural_similarity(reference, broken, mask=mask)
    assert inside == pytest.approx(structural_similarity(cropped_ref, cropped, data_range=np.ptp(reference[mask])), abs=0.02)
    assert structural_similarity(reference, broken) < inside
