"""Power spectra and single-image FRC against answers known from construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.evaluation.spectra import (
    checkerboard_split,
    fourier_ring_correlation,
    frc_resolution,
    radial_power_spectrum,
)


def filtered_noise(rng, shape, transfer):
    """White noise multiplied in Fourier space by ``transfer(f)`` (f in cycles per pixel)."""
    f = np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :])
    return np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * transfer(f)).real


def test_white_noise_has_a_flat_spectrum_at_its_variance(rng):
    spectrum = radial_power_spectrum(3.0 * rng.normal(size=(128, 192)), pixel_size_nm=2.0)
    assert spectrum.frequency_per_nm[-1] == pytest.approx(0.25)  # Nyquist of 2 nm pixels
    assert spectrum.power.mean() == pytest.approx(9.0, rel=0.03)
    # No trend with frequency.
    half = spectrum.power.size // 2
    assert spectrum.power[:half].mean() == pytest.approx(spectrum.power[half:].mean(), rel=0.06)


def test_gaussian_blur_gives_a_gaussian_spectrum(rng):
    sigma_px, pixel_nm = 2.0, 5.0
    gaussian = lambda f: np.exp(-2 * np.pi**2 * sigma_px**2 * f**2)  # noqa: E731
    # Four realisations: one ring of one image is itself a noisy estimate of the power.
    spectra = [
        radial_power_spectrum(filtered_noise(rng, (256, 256), gaussian) + 7.0, pixel_size_nm=pixel_nm)
        for _ in range(4)
    ]
    power = np.mean([s.power for s in spectra], axis=0)
    f_px = spectra[0].frequency_per_nm * pixel_nm
    expected = np.exp(-4 * np.pi**2 * sigma_px**2 * f_px**2)
    band = (f_px > 0.04) & (f_px < 0.17)  # nearly two decades of power
    np.testing.assert_allclose(power[band], expected[band], rtol=0.2)
    assert power[band][-1] < 0.03 * power[band][0]


def test_window_suppresses_the_edge_cross(rng):
    # A smooth ramp has no fine structure, but its periodic continuation jumps at the edges.
    y, x = np.mgrid[0:128, 0:128].astype(float)
    ramp = x + 0.5 * y
    hann = radial_power_spectrum(ramp, pixel_size_nm=1.0)
    bare = radial_power_spectrum(ramp, pixel_size_nm=1.0, window=None)
    high = hann.frequency_per_nm > 0.2
    assert hann.power[high].max() < 1e-4 * bare.power[high].min()


def test_checkerboard_split_partitions_the_pixels(rng):
    img = rng.normal(size=(5, 6))
    even, odd = checkerboard_split(img)
    np.testing.assert_array_equal(even + odd, img)
    assert even[0, 0] == img[0, 0] and even[0, 1] == 0 and odd[0, 1] == img[0, 1]


@pytest.mark.parametrize("cutoff", [0.08, 0.15, 0.25])
def test_frc_resolution_of_a_band_limited_image(rng, cutoff):
    """Ideal low-pass noise (cut-off f0 cycles/px) plus weak noise: resolution ~ 1/f0."""
    pixel_nm = 3.0
    signal = filtered_noise(rng, (256, 256), lambda f: (f < cutoff).astype(float))
    signal /= signal.std()
    result = frc_resolution(signal + 0.1 * rng.normal(size=signal.shape), pixel_size_nm=pixel_nm)
    assert not result.at_limit
    # The Hann window smears the spectrum's sharp edge by ~2 rings (and the curve is smoothed
    # over 3): allow 3.5 rings of 1/256 cycles per pixel.
    f_found = pixel_nm / result.resolution_nm
    assert abs(f_found - cutoff) <= 3.5 / 256
    # Same answer as the two-image FRC of two independent noise realisations.
    two = fourier_ring_correlation(
        signal + 0.1 * rng.normal(size=signal.shape),
        signal + 0.1 * rng.normal(size=signal.shape),
        pixel_size_nm=pixel_nm,
    )
    f_two = two.frequency_per_nm[np.argmax(two.frc < 1 / 7)]
    assert result.resolution_nm == pytest.approx(1 / f_two, rel=0.06)


def test_frc_of_pure_noise_finds_no_resolution(rng):
    result = frc_resolution(rng.normal(size=(256, 256)), pixel_size_nm=1.0)
    # No correlated signal: below 1/7 from the first rings on (NaN or a size of the image itself).
    assert math.isnan(result.resolution_nm) or result.resolution_nm > 64
    assert abs(result.curve.frc[10:].mean()) < 0.03 and np.abs(result.curve.frc[10:]).mean() < 0.1


def test_frc_reports_its_limit_for_a_noise_free_sharp_image(rng):
    pixel_nm = 2.0
    signal = filtered_noise(rng, (128, 128), lambda f: (f < 0.45).astype(float))
    result = frc_resolution(signal, pixel_size_nm=pixel_nm)
    assert result.at_limit
    assert result.limit_nm == pytest.approx(2 * math.sqrt(2) * pixel_nm)
    assert result.resolution_nm == result.limit_nm


def test_frc_inputs_are_checked(rng):
    with pytest.raises(ValueError):
        frc_resolution(np.zeros((4, 4)), pixel_size_nm=1.0)
    with pytest.raises(ValueError):
        frc_resolution(rng.normal(size=(32, 32)), pixel_size_nm=0.0)
    with pytest.raises(ValueError):
        fourier_ring_correlation(np.zeros((16, 16)), np.zeros((16, 17)), pixel_size_nm=1.0)
