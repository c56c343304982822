"""The HR-only evaluation's scoring on constructed images: baselines, shift fit, perfect
candidates, the noise ceiling, and the checks on its inputs."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.errors import UserError
from zoo.evaluation import real_images as R


def band_limited(rng, shape=(96, 96), cutoff=0.12, amplitude=100.0, mean=120.0) -> np.ndarray:
    """White noise low-passed to ``cutoff`` cycles/px (smooth, every frequency below it present)."""
    spectrum = np.fft.fft2(rng.normal(size=shape))
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    image = np.real(np.fft.ifft2(spectrum * (np.hypot(fx, fy) < cutoff)))
    return (mean + amplitude * image / image.std()).astype(np.float32)


def hr_image(image, name="img", pixel_size_nm=5.0, dtype=np.float32) -> R.HrImage:
    return R.HrImage(name, Path(f"{name}.tif"), np.asarray(image, np.float32), np.dtype(dtype), pixel_size_nm, "user")


def test_lanczos_beats_nearest_on_a_smooth_band_limited_image(rng):
    result = R.evaluate_image(hr_image(band_limited(rng)))
    assert list(result.scores) == ["nearest", "bicubic", "lanczos"]
    psnr = {k: s.psnr_db for k, s in result.scores.items()}
    assert psnr["lanczos"] > psnr["nearest"] + 3
    assert psnr["bicubic"] > psnr["nearest"]
    # Half-pixel-centred x2 of a record taken at (0, 0) sits half a pixel off: the fit finds it.
    assert result.scores["lanczos"].shift_px == pytest.approx((-0.5, -0.5), abs=0.051)
    assert 0 < result.scores["nearest"].ssim < result.scores["lanczos"].ssim <= 1
    assert result.crop_reason == "centre" and result.crop["hr"].shape == (96, 96)


def test_the_shift_fit_recovers_a_known_sub_pixel_shift(rng):
    hr = band_limited(rng, cutoff=0.2)
    mask = R.scored_mask(hr.shape)
    candidate = R.shifted(hr, 0.5, -0.25)
    score, matched = R.score(candidate, hr, mask)
    assert score.shift_px == pytest.approx((-0.5, 0.25), abs=1e-6)
    assert score.psnr_db > 40
    assert score.gain == pytest.approx(1, abs=0.02) and score.offset == pytest.approx(0, abs=3)
    assert matched.shape == hr.shape


def test_noise_carried_along_scanned_lines_scores_on_them_but_not_on_the_unscanned_lines(rng):
    # Noise low-passed along the fast axis x, as a detector's bandwidth does: an unsampled pixel
    # on a scanned line shares it with the LR samples beside it.
    clean = band_limited(rng, shape=(128, 128), cutoff=0.1)
    noise = np.asarray(cv2.blur(rng.normal(0, 8, clean.shape).astype(np.float32), (5, 1)))
    hr = clean + noise
    honest = clean.copy()
    copier = clean.copy()
    copier[0::2] = hr[0::2]  # reproduces the scanned lines' noise, invents nothing elsewhere
    mask, lines = R.scored_mask(hr.shape), R.unscanned_lines_mask(hr.shape)
    assert not lines[0::2].any() and lines[1::2][8:-8, 8:-8].all()
    s_honest, _ = R.score(honest, hr, mask, lines)
    s_copier, _ = R.score(copier, hr, mask, lines)
    assert s_copier.psnr_db > s_honest.psnr_db + 1.5  # exact on 1/3 of the scored pixels: -1.76 dB MSE
    assert s_copier.psnr_lines_db == pytest.approx(s_honest.psnr_lines_db, abs=0.05)  # these do not
    assert R.score(honest, hr, mask)[0].psnr_lines_db != R.score(honest, hr, mask)[0].psnr_lines_db  # NaN unasked


def test_gain_and_offset_are_fitted_on_the_scored_pixels(rng):
    hr = band_limited(rng)
    score, _ = R.score(3 * hr + 50, hr, R.scored_mask(hr.shape))
    assert score.shift_px == (0, 0)
    assert score.gain == pytest.approx(1 / 3, rel=1e-5) and score.offset == pytest.approx(-50 / 3, rel=1e-4)
    assert score.psnr_db > 60 and score.ssim == pytest.approx(1, abs=1e-6)


def test_a_perfect_candidate_scores_at_least_60_db_and_json_has_no_infinity(rng):
    hr = hr_image(band_limited(rng))
    result = R.evaluate_image(hr, {"perfect:1": lambda lr, px: hr.image})
    assert result.scores["perfect:1"].psnr_db >= 60  # inf: OpenCV's identity warp is exact
    assert result.scores["perfect:1"].shift_px == (0, 0)
    if math.isfinite(result.scores["perfect:1"].psnr_db):
        result.scores["perfect:1"].psnr_db = math.inf  # check the JSON of an exact copy anyway
    from zoo.evaluation.real_image_report import results_json

    data = results_json([result], {"hr_only": ["x"]}, ["perfect:1"])
    assert data["per_image"][0]["candidates"]["perfect:1"]["psnr_db"] is None  # null, not Infinity
    assert data["aggregate"]["perfect:1"]["psnr_db"] is None
    assert data["aggregate"]["perfect:1"]["images_below_lanczos"] == 0


def test_the_noise_ceiling_of_an_image_with_known_noise(rng):
    sigma = 2.0
    noisy = band_limited(rng, shape=(128, 128), cutoff=0.03) + rng.normal(0, sigma, (128, 128))
    mask = R.scored_mask(noisy.shape)
    estimated, ceiling = R.noise_ceiling(noisy.astype(np.float32), mask)
    peak = float(noisy[mask].max() - noisy[mask].min())
    expected = 10 * math.log10(peak**2 / sigma**2)
    assert estimated == pytest.approx(sigma, rel=0.1)
    assert ceiling == pytest.approx(expected, rel=0.1)
    # No candidate beats the ceiling by much: even the noise-free truth scores about it.
    clean = band_limited(np.random.default_rng(12345), shape=(128, 128), cutoff=0.03)
    assert R.score(clean, noisy.astype(np.float32), mask)[0].psnr_db < ceiling + 1


def test_a_model_crop_goes_where_lanczos_and_the_model_differ_most(rng):
    hr = band_limited(rng, shape=(160, 200))
    x0, y0 = 120, 30

    def model(lr, px):  # Lanczos, but wrong inside one 40x40 block
        out = R.baselines(lr)["lanczos"].copy()
        out[y0:y0 + 40, x0:x0 + 40] += 80
        return out

    result = R.evaluate_image(hr_image(hr), {"m:1": model}, crop_px=64)
    cx, cy, size = result.crop_box
    assert size == 64 and cx <= x0 and cx + size >= x0 + 40 and cy <= y0 and cy + size >= y0 + 40
    assert set(result.crop) == {"hr", "lanczos", "m:1"} and "m:1" in result.crop_reason


def test_images_are_cropped_even_and_tiny_ones_refused(tmp_path, rng):
    from zoo.data.sem_tiff import write_sem

    write_sem(tmp_path / "odd.tif", rng.integers(0, 60000, (41, 37)).astype(np.uint16), 3.0)
    hr = R.read_hr(tmp_path / "odd.tif")
    assert hr.image.shape == (40, 36) and hr.image.dtype == np.float32 and hr.dtype == np.uint16
    assert hr.pixel_size_nm == pytest.approx(3.0)
    write_sem(tmp_path / "tiny.tif", np.zeros((31, 64), np.uint16), 3.0)
    with pytest.raises(UserError, match="at least 32x32"):
        R.read_hr(tmp_path / "tiny.tif")


def test_pngs_are_read_without_pixel_size_and_folders_listed_in_order(tmp_path, rng):
    import cv2

    folder = tmp_path / "hr"
    folder.mkdir()
    grey = rng.integers(0, 255, (48, 64)).astype(np.uint8)
    cv2.imwrite(str(folder / "b.png"), cv2.merge([grey, grey, grey]))
    cv2.imwrite(str(folder / "a.png"), grey)
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "notes.txt").write_text("x")
    assert [p.name for p in R.find_hr_images([folder])] == ["a.png", "b.png"]
    hr = R.read_hr(folder / "b.png")
    assert hr.pixel_size_nm is None and hr.pixel_size_source == "none"
    np.testing.assert_array_equal(hr.image, grey)
    assert R.read_hr(folder / "a.png", 4.0).pixel_size_nm == 4.0
    assert R.unique_names([folder / "a.png", tmp_path / "x" / "a.tif"]) == ["a", "a-2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no HR image"):
        R.find_hr_images([tmp_path / "empty"])
    with pytest.raises(UserError, match="does not exist"):
        R.find_hr_images([tmp_path / "nope"])
