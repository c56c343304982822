"""The data-consistency map and the back-projection (zoo.client.consistency, issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.client.consistency import (
    consistency_map,
    fit_gain_offset,
    input_noise_sigma,
    project_consistent,
    reacquire,
    registered_scan,
)
from zoo.data.register import lanczos_upsample2x
from zoo.sim.acquisition import ScanParams


def smooth_truth(rng, shape=(160, 192), blobs=40):
    """A band-limited specimen on the output grid: Gaussian blobs of 4-8 px sigma."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full(shape, 100.0)
    for _ in range(blobs):
        cy, cx, s, a = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 8), rng.uniform(20, 60)
        img += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    return img.astype(np.float32)


def test_the_registered_grid_is_the_served_models_lanczos_grid():
    # A ramp on the output grid, re-acquired: input pixel i sits at output coordinate 2i + 0.5.
    out = np.tile(np.arange(64, dtype=np.float32), (48, 1))
    again = reacquire(out, (24, 32), registered_scan(2), strip_rows=None)
    np.testing.assert_allclose(again[10, 4:28], 2 * np.arange(4, 28) + 0.5, atol=1e-3)
    # Re-acquiring the models' own Lanczos x2 of a smooth input gives the input back.
    j, i = np.mgrid[0:24, 0:32].astype(np.float32)
    lr = 3 * i + 5 * j + 0.1 * i * j
    np.testing.assert_allclose(reacquire(lanczos_upsample2x(lr), lr.shape)[5:-5, 5:-5], lr[5:-5, 5:-5], atol=1e-3)
    # The default scan is noise-free: twice the same answer.
    rng = np.random.default_rng(1)
    out = rng.normal(size=(48, 64)).astype(np.float32)
    np.testing.assert_array_equal(reacquire(out, (24, 32)), reacquire(out, (24, 32)))


def test_map_of_the_noise_free_truth_is_standard_normal():
    rng = np.random.default_rng(2)
    truth = smooth_truth(rng)
    sigma = 3.0
    image = reacquire(truth, (80, 96)) + rng.normal(0, sigma, (80, 96)).astype(np.float32)
    cmap = consistency_map(image, truth)
    z = cmap.z[4:-4, 4:-4]
    assert abs(z.mean()) < 0.1 and z.std() == pytest.approx(1.0, abs=0.12)
    assert cmap.noise_sigma == pytest.approx(sigma, rel=0.12)
    assert cmap.gain == pytest.approx(1.0, abs=0.02)
    assert cmap.stats["share_beyond_3_sigma"] < 0.01 and not cmap.flagged
    assert cmap.stats["mean_abs_z"] == pytest.approx(np.sqrt(2 / np.pi), abs=0.1)


def test_a_planted_wrong_blob_is_flagged_where_it_is_and_does_not_pull_the_fit():
    rng = np.random.default_rng(3)
    truth = smooth_truth(rng)
    sigma = 3.0
    image = reacquire(truth, (80, 96)) + rng.normal(0, sigma, (80, 96)).astype(np.float32)
    y, x = np.mgrid[0:160, 0:192]
    blob = ((y - 100) ** 2 + (x - 60) ** 2 < 20 ** 2).astype(np.float32)  # r = 20 output px
    cmap = consistency_map(image, truth + 15 * sigma * blob)
    assert cmap.gain == pytest.approx(1.0, abs=0.02) and abs(cmap.offset) < sigma
    beyond = np.abs(cmap.z) > 3
    inside = ((np.mgrid[0:80, 0:96][0] - 50) ** 2 + (np.mgrid[0:80, 0:96][1] - 30) ** 2) < 8 ** 2
    assert beyond[inside].mean() > 0.95 and beyond[~inside].mean() < 0.03
    assert cmap.flagged and "consistency check" in cmap.message() and "semzoo finetune" in cmap.message()


def test_streamed_map_equals_the_whole_image_map():
    rng = np.random.default_rng(4)
    out = rng.normal(size=(2 * 45, 2 * 38)).astype(np.float32)
    for scan in (registered_scan(2), ScanParams(scale=2, phase_x=0.5, phase_y=0.5, probe_fwhm_px=1.2,
                                                 dwell_travel_px=0.7)):
        whole = reacquire(out, (45, 38), scan, strip_rows=None)
        for rows in (1, 7, 16, 44):
            np.testing.assert_allclose(reacquire(out, (45, 38), scan, strip_rows=rows), whole, atol=1e-5)


def test_gain_offset_fit_is_robust_and_kept_near_identity():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 100, 5000)
    y = 1.05 * x + 3 + rng.normal(0, 1, x.size)
    y[:500] += 80  # 10% wrong pixels
    gain, offset = fit_gain_offset(x, y, 1.0)
    assert gain == pytest.approx(1.05, abs=0.01) and offset == pytest.approx(3, abs=0.5)
    gain, _ = fit_gain_offset(x, -x, 1.0)  # an inverted output is not "rescaled"
    assert gain == 0.5


def test_noise_sigma_is_floored_for_flat_and_integer_images():
    assert input_noise_sigma(np.full((20, 20), 7, np.uint8)) == pytest.approx(1 / np.sqrt(12))
    assert input_noise_sigma(np.zeros((20, 20), np.float32)) > 0


def test_projection_agrees_with_the_input_within_noise_and_reduces_the_error():
    rng = np.random.default_rng(6)
    truth = smooth_truth(rng)
    sigma = 3.0
    image = reacquire(truth, (80, 96)) + rng.normal(0, sigma, (80, 96)).astype(np.float32)
    y, x = np.mgrid[0:160, 0:192]
    wrong = truth + 15 * sigma * ((y - 100) ** 2 + (x - 60) ** 2 < 20 ** 2)
    fixed = project_consistent(image, wrong, tolerance=1.0)
    after = consistency_map(image, fixed, noise_sigma=sigma)
    assert after.stats["share_beyond_3_sigma"] < 0.005
    inner = (slice(16, -16), slice(16, -16))
    assert np.mean((fixed - truth)[inner] ** 2) < 0.2 * np.mean((wrong - truth)[inner] ** 2)
    # An output that already agrees within the tolerance everywhere is left as it is.
    np.testing.assert_array_equal(project_consistent(image, truth, tolerance=10.0), truth)


def test_enhance_with_consistency_returns_the_map_and_records_its_summary(served, rng):
    from zoo.client.client import EnhanceClient

    image = (1000 + 5 * rng.normal(size=(30, 40))).astype(np.float32)
    image[10:20, 10:20] += 200 * (np.indices((10, 10)).sum(0) % 2)  # nearest x2 of it is not band-limited
    with EnhanceClient(served.target, "tiny", version=1) as client:
        result = client.enhance(image, 14.2, consistency=True)
        out, pixel, cmap = result.image, result.pixel_size_nm, result.consistency_map
        assert out.shape == (60, 80) and pixel == pytest.approx(7.1) and cmap.z.shape == image.shape
        assert result.consistency["share_beyond_3_sigma"] == cmap.stats["share_beyond_3_sigma"]
        assert result.facts()["consistency"] == result.consistency
        fixed = client.enhance(image, 14.2, consistency=True, consistent=True)
        projected = fixed.consistency_map
        assert projected.before_projection is not None
        assert projected.stats["mean_abs_z"] < cmap.stats["mean_abs_z"]
        assert fixed.consistency["projected"] is True and "projected" not in result.consistency
        assert client.enhance(image, 14.2).consistency_map is None  # unchanged without it


def test_noise_sigma_follows_the_intensity_as_shot_noise_does():
    from zoo.client.consistency import noise_sigma_map

    rng = np.random.default_rng(7)
    image = np.full((64, 64), 100.0)
    image[:, 32:] = 400.0
    image += rng.normal(0, 1, image.shape) * np.sqrt(image) * 0.5  # sigma 5 dark, 10 bright
    sigma = noise_sigma_map(image.astype(np.float32))
    assert np.median(sigma[:, 4:28]) == pytest.approx(5, rel=0.15)
    assert np.median(sigma[:, 36:60]) == pytest.approx(10, rel=0.15)
