"""The simulator's pairs, scans and detection (zoo.sim.simulate, zoo.sim.scan, zoo.sim.samples), on small images."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from zoo.sim import acquisition, samples, scan, specimens
from zoo.sim import simulate as sim
from zoo.errors import UserError

SMALL = (128, 96)


@pytest.fixture(scope="module")
def gold_pair():
    return sim.simulate_pair("gold-on-carbon", seed=11, size=(256, 192))


def test_sample_types_follow_the_contract():
    gold, gel = samples.SAMPLE_TYPES["gold-on-carbon"], samples.SAMPLE_TYPES["hydrogel"]
    assert (gold.lr_pixel_size_nm, gold.hr_pixel_size_nm) == (14.2, 7.1)
    assert (gel.lr_pixel_size_nm, gel.hr_pixel_size_nm) == (56.8, 28.4)
    assert gold.scale == gel.scale == 2
    assert gold.specimen_grid_nm == pytest.approx(7.1 / 4)


@pytest.mark.parametrize("sample", ["gold-on-carbon", "hydrogel"])
def test_pair_has_the_right_sizes_dtype_and_pixel_sizes(sample):
    pair = sim.simulate_pair(sample, seed=1, size=SMALL, name="pair-007")
    spec = samples.SAMPLE_TYPES[sample]
    assert pair.lr.shape == pair.hr.shape == (96, 128)  # size is width x height
    assert pair.lr.dtype == pair.hr.dtype == np.uint16
    assert (pair.lr_pixel_size_nm, pair.hr_pixel_size_nm) == (spec.lr_pixel_size_nm, spec.hr_pixel_size_nm)
    assert pair.truth["name"] == "pair-007"
    json.dumps(pair.truth)  # JSON-serialisable as it goes into truth.json
    for image, role in ((pair.lr, "lr"), (pair.hr, "hr")):
        # Automatic brightness/contrast: a few pixels saturate at each end, the rest in range.
        info = pair.truth["acquisition"][role]
        black, white = np.mean(image == 0) * 100, np.mean(image == 65535) * 100
        assert 0.05 <= black <= 0.8 and 0.05 <= white <= 0.8
        assert info["saturated_black_percent"] == pytest.approx(black, abs=1e-3)
        assert np.unique(image).size > 1000  # a continuous signal, not a handful of levels


def test_geometry_between_the_acquisitions_is_within_the_stated_bounds():
    for seed in range(4):
        t = sim.simulate_pair("gold-on-carbon", seed=seed, size=(64, 64)).truth["transform"]
        assert abs(t["rotation_deg"]) < 1.0
        assert abs(t["scale_error"]) < 0.01
        assert all(abs(v) <= 4.0 for v in t["shift_lr_px"])
        assert t["hr"]["pixel_size_nm"] == pytest.approx(7.1 * (1 + t["scale_error"]))
    # The HR field is the centre of the LR field and half its size.
    w, h = 924, 780
    t = sim.simulate_pair("gold-on-carbon", seed=0, size=(64, 64)).truth["transform"]
    t["hr"]["size"] = t["lr"]["size"] = [w, h]  # geometry only: evaluate it at full size
    x, y = scan.hr_to_lr_coords(t, np.array([0.0, w - 1.0]), np.array([0.0, h - 1.0]))
    assert np.hypot(x[1] - x[0], y[1] - y[0]) == pytest.approx(math.hypot(w - 1, h - 1) / 2, rel=0.015)
    cx, cy = scan.hr_to_lr_coords(t, (w - 1) / 2, (h - 1) / 2)
    assert abs(cx - (w - 1) / 2) < 6 and abs(cy - (h - 1) / 2) < 6


def test_same_seed_same_bytes_other_seed_other_images():
    a = sim.simulate_pair("gold-on-carbon", seed=5, size=SMALL)
    b = sim.simulate_pair("gold-on-carbon", seed=5, size=SMALL)
    c = sim.simulate_pair("gold-on-carbon", seed=6, size=SMALL)
    assert a.lr.tobytes() == b.lr.tobytes() and a.hr.tobytes() == b.hr.tobytes()
    assert json.dumps(a.truth) == json.dumps(b.truth)
    assert a.lr.tobytes() != c.lr.tobytes() and a.hr.tobytes() != c.hr.tobytes()
    g1 = sim.simulate_pair("hydrogel", seed=5, size=SMALL)
    g2 = sim.simulate_pair("hydrogel", seed=5, size=SMALL)
    assert g1.hr.tobytes() == g2.hr.tobytes()


def test_pair_seeds_are_deterministic_and_distinct():
    seeds = samples.pair_seeds(3, 5)
    assert seeds == samples.pair_seeds(3, 5)
    assert seeds[:2] == samples.pair_seeds(3, 2)  # pair k does not depend on how many are made
    assert len(set(seeds)) == 5 and seeds != samples.pair_seeds(4, 5)


def test_truth_coordinates_follow_the_true_mapping(gold_pair):
    t = gold_pair.truth["transform"]
    parts = gold_pair.truth["particles"]
    assert len(parts) > 50
    assert [p["id"] for p in parts] == list(range(len(parts)))  # ids index the list
    x_hr = np.array([p["x_hr"] for p in parts])
    y_hr = np.array([p["y_hr"] for p in parts])
    x_lr, y_lr = scan.hr_to_lr_coords(t, x_hr, y_hr)
    np.testing.assert_allclose(x_lr, [p["x_lr"] for p in parts], atol=2e-3)
    np.testing.assert_allclose(y_lr, [p["y_lr"] for p in parts], atol=2e-3)
    back_x, back_y = scan.lr_to_hr_coords(t, x_lr, y_lr)
    np.testing.assert_allclose(back_x, x_hr, atol=1e-6)
    np.testing.assert_allclose(back_y, y_hr, atol=1e-6)
    # The mapping is not a pure similarity: drift bends it by a fraction of a pixel.
    grid_y, grid_x = np.mgrid[0:192:16, 0:256:16].astype(float)
    lx, ly = scan.hr_to_lr_coords(t, grid_x.ravel(), grid_y.ravel())
    design = np.column_stack([grid_x.ravel(), grid_y.ravel(), np.ones(grid_x.size)])
    fit = [v - design @ np.linalg.lstsq(design, v)[0] for v in (lx, ly)]
    residual = np.concatenate(fit)
    assert 0.005 < np.abs(residual).max() < 2.0


def _blob_centres(image: np.ndarray, min_area: int) -> np.ndarray:
    """Intensity-weighted centres of bright blobs (x, y)."""
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.8)
    level = np.percentile(smooth, 50) + 0.45 * (np.percentile(smooth, 99.7) - np.percentile(smooth, 50))
    labels, n = ndimage.label(smooth > level)
    index = np.arange(1, n + 1)
    area = ndimage.sum(np.ones_like(smooth), labels, index)
    weights = np.maximum(smooth - level, 0)
    cy, cx = np.array(ndimage.center_of_mass(weights, labels, index)).T
    keep = area >= min_area
    return np.column_stack([cx[keep], cy[keep]])


def test_true_transform_maps_particles_seen_in_hr_onto_those_seen_in_lr(gold_pair):
    hr_blobs = _blob_centres(gold_pair.hr, min_area=12)
    lr_blobs = _blob_centres(gold_pair.lr, min_area=3)
    # Isolated particles only: in LR, neighbours closer than a few pixels merge into one blob.
    gap = np.hypot(*(hr_blobs[:, None, :] - hr_blobs[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(gap, np.inf)
    hr_blobs = hr_blobs[gap.min(axis=1) > 14]
    assert len(hr_blobs) > 15 and len(lr_blobs) > 20
    t = gold_pair.truth["transform"]

    def distances(mapping):
        x, y = mapping(hr_blobs[:, 0], hr_blobs[:, 1])
        d = np.hypot(x[:, None] - lr_blobs[None, :, 0], y[:, None] - lr_blobs[None, :, 1]).min(axis=1)
        inside = (x > 2) & (x < 253) & (y > 2) & (y < 189)
        return d[inside]

    d = distances(lambda x, y: scan.hr_to_lr_coords(t, x, y))
    assert np.median(d) < 0.35 and np.mean(d < 1.0) > 0.85
    # A mapping one pixel off is visibly worse: the test can tell.
    shifted = distances(lambda x, y: tuple(v + 1.0 for v in scan.hr_to_lr_coords(t, x, y)))
    assert np.median(shifted) > 0.8


def test_point_sampling_aliases_a_fine_grating():
    # A grating of period 1.25 LR pixels (17.75 nm), probe 3 nm: point sampling at 14.2 nm
    # folds it to a period of 5 pixels at nearly full amplitude; an area average over the
    # pixel would keep only sinc(0.8) = 23 % of it.
    g = 7.1 / 4
    grid = specimens.Grid(0.0, 0.0, g, 4000, 8)
    x = np.arange(grid.width) * g
    grating = (1.0 + np.cos(2 * np.pi * x / 17.75)).astype(np.float32)
    layer = specimens.YieldLayer(np.tile(grating, (grid.height, 1)), grid)
    blurred = sim.probe_blur_layer(layer, 3.0)
    px = np.arange(400) * 14.2 + 100.0
    lr = specimens.sample_layers([blurred], px, np.full_like(px, 7.0))
    spectrum = np.abs(np.fft.rfft(lr - lr.mean())) / (lr.size / 2)
    freqs = np.fft.rfftfreq(lr.size)
    alias = spectrum[np.argmin(np.abs(freqs - 0.2))]
    assert alias > 0.8  # the grating's amplitude is 1
    assert spectrum[np.argmin(np.abs(freqs - 0.2)) - 3] < 0.05


def test_lr_signal_is_point_sampled_not_area_averaged():
    # The noise-free LR holds more power near its Nyquist frequency than an area average of
    # the same field (2x2 bins of the noise-free HR) would: the aliasing the paper describes.
    signals = sim.simulate_signals("gold-on-carbon", seed=3, size=(256, 192))
    t = signals.transform
    x0, y0 = scan.hr_to_lr_coords(t, 0.0, 0.0)
    lr = signals.lr[int(math.ceil(y0)) + 2 : int(y0) + 90, int(math.ceil(x0)) + 2 : int(x0) + 122]
    binned = cv2.resize(signals.hr, (128, 96), interpolation=cv2.INTER_AREA)[2:90, 2:122]

    def high_fraction(img):
        f = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
        fy = np.fft.fftshift(np.fft.fftfreq(img.shape[0]))[:, None]
        fx = np.fft.fftshift(np.fft.fftfreq(img.shape[1]))[None, :]
        return f[np.hypot(fx, fy) > 0.3].sum() / f.sum()

    assert high_fraction(lr) > 1.5 * high_fraction(binned)


def test_images_carry_poisson_noise_for_their_dose():
    # Undo the recorded brightness/contrast, subtract the noise-free signal: what is left
    # has the variance of the detected SE counts, mean * (1 + 1/shape) + read noise.
    spec = samples.SAMPLE_TYPES["gold-on-carbon"]
    signals = sim.simulate_signals("gold-on-carbon", seed=2, size=SMALL)
    ratios = {}
    for dose in (50.0, 1600.0):
        pair = sim.simulate_pair("gold-on-carbon", seed=2, size=SMALL, electrons_per_pixel=dose)
        for role, image, signal in (("lr", pair.lr, signals.lr), ("hr", pair.hr, signals.hr)):
            info = pair.truth["acquisition"][role]
            lo, hi = info["black_level_counts"], info["white_level_counts"]
            counts = image.astype(float) * (hi - lo) / 65535.0 + lo
            expected = signal.astype(float) * dose
            ok = (image > 0) & (image < 65535)
            residual = counts[ok] - expected[ok]
            assert abs(residual.mean()) < 0.05 * np.sqrt(expected[ok].mean()) + 0.5
            predicted = expected[ok].mean() * (1 + 1 / spec.detector_gain_shape) + spec.read_noise**2
            ratios[dose, role] = residual.var() / predicted
    for value in ratios.values():
        assert value == pytest.approx(1.0, abs=0.08)


def _seed_with_damage():
    for seed in range(20):
        t = sim.simulate_pair("hydrogel", seed=seed, size=(64, 64)).truth["transform"]
        if t["deformation"]:
            return seed
    raise AssertionError("no seed with beam damage")


def test_hydrogel_beam_damage_deforms_only_between_the_acquisitions():
    seed = _seed_with_damage()
    size = (192, 160)
    damaged = sim.simulate_signals("hydrogel", seed=seed, size=size)
    intact = sim.simulate_signals("hydrogel", seed=seed, size=size, beam_damage=False)
    blobs = damaged.transform["deformation"]
    assert blobs and intact.transform["deformation"] == []
    # The LR acquisition came first: it is untouched by the damage.
    assert damaged.lr.tobytes() == intact.lr.tobytes()
    # The HR differs exactly where the material moved.
    hr_scan = damaged.transform["hr"]
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]].astype(float)
    sx, sy = scan.scan_to_specimen(hr_scan, xx, yy)
    dx, dy = scan.deformation(blobs, sx, sy)
    moved = np.hypot(dx, dy)
    diff = np.abs(damaged.hr - intact.hr)
    still = moved < 1e-3
    if still.any():
        assert diff[still].max() < 1e-3 * damaged.hr.mean()
    assert diff[moved > 5.0].mean() > 0.01 * damaged.hr.mean()
    # The true mapping carries the deformation: HR -> LR moves by the displacement (in LR px).
    i = np.unravel_index(np.argmax(moved), moved.shape)
    with_d = np.array(scan.hr_to_lr_coords(damaged.transform, xx[i], yy[i]))
    without = np.array(scan.hr_to_lr_coords(intact.transform, xx[i], yy[i]))
    assert np.linalg.norm(with_d - without) == pytest.approx(moved[i] / 56.8, rel=0.1)


def test_gold_pairs_record_gaps_and_contacts_inside_the_hr_field(gold_pair):
    truth = gold_pair.truth
    n = len(truth["particles"])
    assert truth["gaps"] and truth["touching"] is not None
    assert sum(g["planted"] for g in truth["gaps"]) > 10
    for g in truth["gaps"]:
        assert 0 <= g["a"] < n and 0 <= g["b"] < n and 0 < g["width_nm"] <= 30.0
    for p in truth["particles"]:
        assert -0.5 <= p["x_hr"] < 255.5 and -0.5 <= p["y_hr"] < 191.5
        assert 2.5 <= p["radius_nm"] <= 75.0
    assert truth["beam_damage"] == [] and truth["transform"]["deformation"] == []


@pytest.mark.parametrize("text", ["12x", "x12", "924", "924x780x2", "abcxdef", "63x100", "100x3000", "-100x100"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(UserError):
        samples.parse_size(text)


def test_parse_size_and_bad_arguments():
    assert samples.parse_size("924x780") == (924, 780)
    assert samples.parse_size("64X2048") == (64, 2048)
    with pytest.raises(UserError, match="unknown sample type"):
        sim.simulate_pair("gold", seed=0, size=SMALL)
    with pytest.raises(UserError, match="seed"):
        sim.simulate_pair("hydrogel", seed=-1, size=SMALL)
    with pytest.raises(UserError, match="probe"):
        sim.simulate_pair("hydrogel", seed=0, size=SMALL, probe_fwhm_nm=0.0)


def test_scan_line_jitter_is_a_fraction_of_a_pixel_with_mains_hum():
    spec = samples.SAMPLE_TYPES["gold-on-carbon"]
    jitter = acquisition.line_jitter(np.random.default_rng(3), 4096, spec.jitter_px, hum_px=spec.hum_px)
    expected = math.sqrt(spec.jitter_px**2 + spec.hum_px**2 / 2)
    assert np.std(jitter) == pytest.approx(expected, rel=0.1) and np.abs(jitter).max() < 0.6
    power = np.abs(np.fft.rfft(jitter)) ** 2
    assert power[1:].max() > 20 * np.median(power[1:])  # the hum is one sharp line
    # Jitter moves the sampled positions, line by line, but is not part of the true mapping.
    hr_scan = sim.simulate_pair("gold-on-carbon", seed=0, size=(64, 64)).truth["transform"]["hr"]
    steady = scan.sample_positions(hr_scan, np.zeros(64))
    shaken = scan.sample_positions(hr_scan, jitter[:64])
    shift = (shaken[0] - steady[0]) / hr_scan["pixel_size_nm"]
    np.testing.assert_allclose(shift[:, 0], jitter[:64], atol=0.01)


def test_the_simulators_probe_is_the_acquisition_models():
    # One probe: the simulator blurs a specimen layer with acquisition.probe_blur, in grid pixels.
    grid = specimens.Grid(0.0, 0.0, 7.1 / 4, 64, 48)
    image = np.random.default_rng(0).random(grid.shape, dtype=np.float32)
    layer = specimens.YieldLayer(image, grid)
    for fwhm_nm in (3.0, 4.3, 12.0):
        blurred = sim.probe_blur_layer(layer, fwhm_nm)
        np.testing.assert_array_equal(blurred.image, acquisition.probe_blur(image, fwhm_nm / grid.spacing_nm))
    assert sim.probe_blur_layer(layer, 0.5).image is image  # sigma < 0.2 grid pixels: no blur


def test_the_simulators_drift_is_the_acquisition_models_plus_smooth_terms():
    hr_scan = sim.simulate_pair("gold-on-carbon", seed=0, size=(64, 64)).truth["transform"]["hr"]
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    linear = dict(hr_scan, drift_terms=[])
    dx, dy = scan.drift(linear, x, y)
    ex, ey = acquisition.linear_drift(x, y, hr_scan["size"], hr_scan["drift_velocity_nm"])
    np.testing.assert_array_equal(dx, ex)
    np.testing.assert_array_equal(dy, ey)
