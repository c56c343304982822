"""The simulator's physics and contracts (zoo.data.simulate, zoo.data.specimens), on small images."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from zoo.data import acquisition, gold_on_carbon, specimens
from zoo.data import simulate as sim
from zoo.errors import UserError

SMALL = (128, 96)


@pytest.fixture(scope="module")
def gold_pair():
    return sim.simulate_pair("gold-on-carbon", seed=11, size=(256, 192))


def test_sample_types_follow_the_contract():
    gold, gel = sim.SAMPLE_TYPES["gold-on-carbon"], sim.SAMPLE_TYPES["hydrogel"]
    assert (gold.lr_pixel_size_nm, gold.hr_pixel_size_nm) == (14.2, 7.1)
    assert (gel.lr_pixel_size_nm, gel.hr_pixel_size_nm) == (56.8, 28.4)
    assert gold.scale == gel.scale == 2
    assert gold.specimen_grid_nm == pytest.approx(7.1 / 4)


@pytest.mark.parametrize("sample", ["gold-on-carbon", "hydrogel"])
def test_pair_has_the_right_sizes_dtype_and_pixel_sizes(sample):
    pair = sim.simulate_pair(sample, seed=1, size=SMALL, name="pair-007")
    spec = sim.SAMPLE_TYPES[sample]
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
    x, y = sim.hr_to_lr_coords(t, np.array([0.0, w - 1.0]), np.array([0.0, h - 1.0]))
    assert np.hypot(x[1] - x[0], y[1] - y[0]) == pytest.approx(math.hypot(w - 1, h - 1) / 2, rel=0.015)
    cx, cy = sim.hr_to_lr_coords(t, (w - 1) / 2, (h - 1) / 2)
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
    seeds = sim.pair_seeds(3, 5)
    assert seeds == sim.pair_seeds(3, 5)
    assert seeds[:2] == sim.pair_seeds(3, 2)  # pair k does not depend on how many are made
    assert len(set(seeds)) == 5 and seeds != sim.pair_seeds(4, 5)


def test_truth_coordinates_follow_the_true_mapping(gold_pair):
    t = gold_pair.truth["transform"]
    parts = gold_pair.truth["particles"]
    assert len(parts) > 50
    assert [p["id"] for p in parts] == list(range(len(parts)))  # ids index the list
    x_hr = np.array([p["x_hr"] for p in parts])
    y_hr = np.array([p["y_hr"] for p in parts])
    x_lr, y_lr = sim.hr_to_lr_coords(t, x_hr, y_hr)
    np.testing.assert_allclose(x_lr, [p["x_lr"] for p in parts], atol=2e-3)
    np.testing.assert_allclose(y_lr, [p["y_lr"] for p in parts], atol=2e-3)
    back_x, back_y = sim.lr_to_hr_coords(t, x_lr, y_lr)
    np.testing.assert_allclose(back_x, x_hr, atol=1e-6)
    np.testing.assert_allclose(back_y, y_hr, atol=1e-6)
    # The mapping is not a pure similarity: drift bends it by a fraction of a pixel.
    grid_y, grid_x = np.mgrid[0:192:16, 0:256:16].astype(float)
    lx, ly = sim.hr_to_lr_coords(t, grid_x.ravel(), grid_y.ravel())
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

    d = distances(lambda x, y: sim.hr_to_lr_coords(t, x, y))
    assert np.median(d) < 0.35 and np.mean(d < 1.0) > 0.85
    # A mapping one pixel off is visibly worse: the test can tell.
    shifted = distances(lambda x, y: tuple(v + 1.0 for v in sim.hr_to_lr_coords(t, x, y)))
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
    blurred = acquisition.probe_blur(layer, 3.0)
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
    x0, y0 = sim.hr_to_lr_coords(t, 0.0, 0.0)
    lr = signals.lr[int(math.ceil(y0)) + 2 : int(y0) + 90, int(math.ceil(x0)) + 2 : int(x0) + 122]
    binned = cv2.resize(signals.hr, (128, 96), interpolation=cv2.INTER_AREA)[2:90, 2:122]

    def high_fraction(img):
        f = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
        fy = np.fft.fftshift(np.fft.fftfreq(img.shape[0]))[:, None]
        fx = np.fft.fftshift(np.fft.fftfreq(img.shape[1]))[None, :]
        return f[np.hypot(fx, fy) > 0.3].sum() / f.sum()

    assert high_fraction(lr) > 1.5 * high_fraction(binned)


def test_shot_noise_is_poisson_and_scales_with_dose():
    spec = sim.SAMPLE_TYPES["gold-on-carbon"]
    signal = np.full((200, 200), 0.4, dtype=np.float32)
    excess = 1.0 + 1.0 / spec.detector_gain_shape
    rel = {}
    for dose in (50.0, 800.0):
        counts = acquisition.detect(np.random.default_rng(0), signal, dose, spec)
        mean = 0.4 * dose
        assert counts.mean() == pytest.approx(mean, rel=0.02)
        assert counts.var() == pytest.approx(mean * excess + spec.read_noise**2, rel=0.05)
        rel[dose] = counts.std() / counts.mean()
    assert rel[50.0] / rel[800.0] == pytest.approx(4.0, rel=0.08)  # SNR grows as sqrt(dose)


def test_images_carry_poisson_noise_for_their_dose():
    # Undo the recorded brightness/contrast, subtract the noise-free signal: what is left
    # has the variance of the detected SE counts, mean * (1 + 1/shape) + read noise.
    spec = sim.SAMPLE_TYPES["gold-on-carbon"]
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
    sx, sy = acquisition.scan_to_specimen(hr_scan, xx, yy)
    dx, dy = acquisition.deformation(blobs, sx, sy)
    moved = np.hypot(dx, dy)
    diff = np.abs(damaged.hr - intact.hr)
    still = moved < 1e-3
    if still.any():
        assert diff[still].max() < 1e-3 * damaged.hr.mean()
    assert diff[moved > 5.0].mean() > 0.01 * damaged.hr.mean()
    # The true mapping carries the deformation: HR -> LR moves by the displacement (in LR px).
    i = np.unravel_index(np.argmax(moved), moved.shape)
    with_d = np.array(sim.hr_to_lr_coords(damaged.transform, xx[i], yy[i]))
    without = np.array(sim.hr_to_lr_coords(intact.transform, xx[i], yy[i]))
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
        sim.parse_size(text)


def test_parse_size_and_bad_arguments():
    assert sim.parse_size("924x780") == (924, 780)
    assert sim.parse_size("64X2048") == (64, 2048)
    with pytest.raises(UserError, match="unknown sample type"):
        sim.simulate_pair("gold", seed=0, size=SMALL)
    with pytest.raises(UserError, match="seed"):
        sim.simulate_pair("hydrogel", seed=-1, size=SMALL)
    with pytest.raises(UserError, match="probe"):
        sim.simulate_pair("hydrogel", seed=0, size=SMALL, probe_fwhm_nm=0.0)


def test_simulate_dataset_writes_the_layout(tmp_path):
    from zoo.data.sem_tiff import read_sem

    out = tmp_path / "raw"
    seen = []
    summary = sim.simulate_dataset(
        out, "gold-on-carbon", pairs=2, seed=9, size=(96, 64), progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 2), (2, 2)] and summary["pairs"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["hr", "lr", "preview.png", "truth.json"]
    truth = json.loads((out / "truth.json").read_text())
    assert list(truth["pairs"]) == ["pair-000", "pair-001"]
    assert truth["lr_pixel_size_nm"] == 14.2 and truth["hr_pixel_size_nm"] == 7.1 and truth["seed"] == 9
    for name, pair_truth in truth["pairs"].items():
        lr, hr = read_sem(out / "lr" / f"{name}.tif"), read_sem(out / "hr" / f"{name}.tif")
        assert lr.pixel_size_nm == pytest.approx(14.2) and hr.pixel_size_nm == pytest.approx(7.1)
        assert lr.image.dtype == np.uint16 and lr.image.shape == (64, 96)
        again = sim.simulate_pair("gold-on-carbon", seed=pair_truth["seed"], size=(96, 64), name=name)
        np.testing.assert_array_equal(again.hr, hr.image)  # a pair is reproducible from its seed
    preview = cv2.imread(str(out / "preview.png"), cv2.IMREAD_UNCHANGED)
    assert preview.dtype == np.uint8 and preview.ndim == 2 and preview.shape[1] > preview.shape[0]

    with pytest.raises(UserError, match="already exist"):
        sim.simulate_dataset(out, "gold-on-carbon", pairs=1, seed=1, size=(96, 64))
    before = (out / "lr" / "pair-000.tif").read_bytes()
    sim.simulate_dataset(out, "gold-on-carbon", pairs=1, seed=1, size=(96, 64), overwrite=True)
    assert (out / "lr" / "pair-000.tif").read_bytes() != before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work folder left


def test_simulate_dataset_refuses_bad_input_before_writing(tmp_path):
    out = tmp_path / "raw"
    for kwargs in (
        dict(sample="gold", pairs=1, size=(96, 64)),
        dict(sample="hydrogel", pairs=0, size=(96, 64)),
        dict(sample="hydrogel", pairs=1, size=(32, 64)),
        dict(sample="hydrogel", pairs=1, size=(96, 64), electrons_per_pixel=-1),
    ):
        sample = kwargs.pop("sample")
        with pytest.raises(UserError):
            sim.simulate_dataset(out, sample, seed=0, **kwargs)
        assert not out.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        sim.simulate_dataset(tmp_path / "file", "hydrogel", pairs=1, seed=0, size=(96, 64))


def test_interrupted_dataset_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "raw"
    calls = []

    def fail(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.simulate_dataset(out, "hydrogel", pairs=2, seed=0, size=(64, 64), progress=fail)
    assert calls == [1] and not out.exists()


def test_scan_line_jitter_is_a_fraction_of_a_pixel_with_mains_hum():
    spec = sim.SAMPLE_TYPES["gold-on-carbon"]
    jitter = acquisition.line_jitter(np.random.default_rng(3), spec, 4096)
    expected = math.sqrt(spec.jitter_px**2 + spec.hum_px**2 / 2)
    assert np.std(jitter) == pytest.approx(expected, rel=0.1) and np.abs(jitter).max() < 0.6
    power = np.abs(np.fft.rfft(jitter)) ** 2
    assert power[1:].max() > 20 * np.median(power[1:])  # the hum is one sharp line
    # Jitter moves the sampled positions, line by line, but is not part of the true mapping.
    scan = sim.simulate_pair("gold-on-carbon", seed=0, size=(64, 64)).truth["transform"]["hr"]
    steady = acquisition.sample_positions(scan, np.zeros(64))
    shaken = acquisition.sample_positions(scan, jitter[:64])
    shift = (shaken[0] - steady[0]) / scan["pixel_size_nm"]
    np.testing.assert_allclose(shift[:, 0], jitter[:64], atol=0.01)
