"""Co-registration (paper, Methods): Lanczos x2, affine, elastic, failures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.data.synthetic_pairs import make_pair, mapping_errors
from zoo.data.register import (
    Registration,
    RegistrationError,
    check_pixel_sizes,
    correlation,
    lanczos_upsample2x,
    register_pair,
)
from zoo.errors import UserError


def test_lanczos_upsample2x_is_opencv_lanczos4_on_float32(rng):
    image = rng.integers(0, 65535, (13, 21)).astype(np.uint16)
    up = lanczos_upsample2x(image)
    expected = cv2.resize(image.astype(np.float32), (42, 26), interpolation=cv2.INTER_LANCZOS4)
    assert up.dtype == np.float32 and up.shape == (26, 42)
    np.testing.assert_array_equal(up, expected)


def test_lanczos_upsample2x_samples_at_half_pixel_centres():
    # A linear ramp comes back (to Lanczos-4's +-0.015 ripple) away from the edges: output
    # pixel u samples input coordinate (u + 0.5) / 2 - 0.5, the registered grid's convention;
    # any other origin would show as a constant offset (0.25 for corner alignment).
    ramp = np.tile(np.arange(32, dtype=np.float32), (8, 1))
    up = lanczos_upsample2x(ramp)
    u = np.arange(8, 56)
    error = up[4, u] - ((u + 0.5) / 2 - 0.5)
    assert np.abs(error).max() < 0.02 and abs(error.mean()) < 1e-3


def test_lanczos_upsample2x_rejects_non_2d():
    with pytest.raises(ValueError):
        lanczos_upsample2x(np.zeros((4, 4, 3)))


def test_correlation_basics(rng):
    a = rng.standard_normal((20, 20))
    assert correlation(a, 3 * a + 1) == pytest.approx(1.0)
    assert correlation(a, -a) == pytest.approx(-1.0)
    assert correlation(a, np.ones_like(a)) == 0.0


def test_registration_recovers_known_affine_and_drift_to_subpixel(rng):
    lr, hr, truth = make_pair(rng, lr_size=(320, 256), angle_deg=0.7, scale=1.008,
                              shift=(4.3, -2.6), drift=0.8)
    reg = register_pair(lr, hr, 14.2, 7.1, name="synthetic")
    assert isinstance(reg, Registration)
    assert reg.lr_crop.shape == (128, 160) and reg.lr_upsampled.shape == (256, 320)
    assert reg.hr_registered.shape == reg.lr_upsampled.shape == reg.valid_mask.shape
    # The crop follows the HR field: the nominal origin (80, 64) moves with the true shift
    # (4.3, -2.6) plus the drift near the centre (+0.3, -0.8), in whole LR pixels.
    assert abs(reg.crop_origin[0] - 84.6) <= 1 and abs(reg.crop_origin[1] - 60.6) <= 1
    errors = mapping_errors(reg, truth)
    assert np.median(errors) < 0.2 and np.percentile(errors, 95) < 0.5
    assert reg.correlation_after > 0.95 > reg.correlation_before
    assert 0 <= reg.residual_px < 0.3
    # The affine alone misses the drift (up to 1.6 HR px); the displacement field carries it.
    assert np.abs(reg.displacement).max() > 0.8
    assert reg.valid_fraction > 0.9
    summary = reg.summary()
    assert summary["correlation"] == pytest.approx(reg.correlation_after, abs=1e-4)
    assert summary["crop_origin_lr"] == list(reg.crop_origin)


def test_registered_hr_matches_lr_in_content(rng):
    lr, hr, _ = make_pair(rng, lr_size=(256, 192), noise=0.0)
    reg = register_pair(lr, hr, 14.2, 7.1)
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), 2.0)  # noqa: E731 - compare LR-band content
    assert correlation(blur(reg.lr_upsampled), blur(reg.hr_registered), reg.valid_mask) > 0.97
    assert reg.hr_registered[~reg.valid_mask].max(initial=0) == 0


def test_large_rotation_falls_back_to_log_polar(rng):
    lr, hr, truth = make_pair(rng, lr_size=(320, 256), angle_deg=-25.0, scale=1.0, drift=0.3)
    reg = register_pair(lr, hr, 14.2, 7.1)
    assert any("log-polar" in note for note in reg.notes)
    assert np.median(mapping_errors(reg, truth)) < 0.3


def test_unrelated_images_raise_registration_error_naming_the_pair():
    lr, _, _ = make_pair(np.random.default_rng(1), lr_size=(256, 192))
    _, hr, _ = make_pair(np.random.default_rng(2), lr_size=(256, 192))
    with pytest.raises(RegistrationError, match=r"pair wrong-files: correlation after registration is -?0\.\d\d"):
        register_pair(lr, hr, 14.2, 7.1, name="wrong-files")
    assert issubclass(RegistrationError, UserError)


def test_pixel_size_ratio_must_be_two():
    assert check_pixel_sizes(14.2, 7.1) == pytest.approx(2.0)
    assert check_pixel_sizes(14.2, 7.0) == pytest.approx(2.0286, abs=1e-3)
    with pytest.raises(UserError, match="ratio is 3.000"):
        check_pixel_sizes(21.3, 7.1, "p")
    with pytest.raises(UserError, match="positive"):
        check_pixel_sizes(0, 7.1)


def test_tiny_or_non_2d_images_are_user_errors():
    with pytest.raises(UserError, match="at least 16x16"):
        register_pair(np.zeros((8, 8)), np.zeros((8, 8)), 14.2, 7.1)


def test_cross_validation_smooths_noise_but_keeps_a_local_deformation(rng):
    from zoo.data.elastic import cross_validated_sigma

    noise = rng.normal(0, 0.2, (12, 14, 2))
    assert cross_validated_sigma(noise + 0.5) >= 5  # a constant shift plus noise: smooth hard
    yy, xx = np.mgrid[0:12, 0:14]
    bump = 2.0 * np.exp(-((xx - 7) ** 2 + (yy - 6) ** 2) / (2 * 1.5**2))
    local = np.stack([bump, -bump], -1) + rng.normal(0, 0.02, (12, 14, 2))
    assert cross_validated_sigma(local) <= 1.0  # a beam-damage-sized bump: keep it


@pytest.mark.parametrize("sample", ["gold-on-carbon", "hydrogel"])
def test_simulated_pairs_register_within_half_a_pixel_of_the_truth(sample):
    """Issue 2 acceptance: median residual <= 0.5 HR px against the simulator's true mapping."""
    from zoo.sim.scan import hr_to_lr_coords
    from zoo.sim.simulate import simulate_pair

    pair = simulate_pair(sample, seed=3, size=(924, 780))
    reg = register_pair(pair.lr, pair.hr, pair.lr_pixel_size_nm, pair.hr_pixel_size_nm, name=sample)
    transform = pair.truth["transform"]
    errors = mapping_errors(reg, lambda x, y: hr_to_lr_coords(transform, x, y))
    median, p95 = np.median(errors), np.percentile(errors, 95)
    assert median <= 0.5 and p95 <= 1.0, (median, p95)
    # The registration's own residual estimate is honest: close to the true median.
    assert abs(reg.residual_px - median) < 0.15, (reg.residual_px, median)
    assert reg.correlation_after > 0.9


def test_small_simulated_pair_registers_within_half_a_pixel():
    from zoo.sim.scan import hr_to_lr_coords
    from zoo.sim.simulate import simulate_pair

    pair = simulate_pair("gold-on-carbon", seed=0, size=(384, 320))
    reg = register_pair(pair.lr, pair.hr, pair.lr_pixel_size_nm, pair.hr_pixel_size_nm)
    errors = mapping_errors(reg, lambda x, y: hr_to_lr_coords(pair.truth["transform"], x, y))
    assert np.median(errors) <= 0.5
