"""evaluate(): rows, grids, the no-data border, and write_report's files."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from zoo.errors import UserError
from zoo.evaluation.report import evaluate, no_data_mask, write_report
from zoo.evaluation.tables import aggregate_table

from .conftest import PIXEL_NM, render


@pytest.fixture
def triple(scene, rng):
    truth, shape = scene
    target = render(truth["particles"], shape, sigma_px=0.7) + 0.02 * rng.normal(size=shape)
    output = render(truth["particles"], shape, sigma_px=0.9) + 0.02 * rng.normal(size=shape)
    blurred = render(truth["particles"], shape, sigma_px=2.0).astype(np.float32)
    lr = cv2.resize(blurred, (shape[1] // 2, shape[0] // 2), interpolation=cv2.INTER_AREA)
    return lr + 0.02 * rng.normal(size=lr.shape), output, target, truth


def test_rows_columns_and_the_lanczos_input(triple):
    lr, output, target, truth = triple
    result = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth)
    assert result.rows == ["nearest", "bicubic", "input", "output", "target"]
    assert result.input_is_native
    assert math.isnan(result.table["target"]["psnr_db"])
    assert result.table["output"]["psnr_db"] > result.table["input"]["psnr_db"]
    assert result.table["target"]["undetected_gaps_percent"] == 0
    assert result.table["output"]["undetected_gaps_percent"] < result.table["input"]["undetected_gaps_percent"]
    # The LR-derived rows carry the LR's own FRC, at the LR pixel size.
    assert result.frc["input"] is result.frc["nearest"]
    assert result.frc["input"].limit_nm == pytest.approx(2 * math.sqrt(2) * 2 * PIXEL_NM)
    # An input already on the grid is the Lanczos baseline: same "input" row, no others.
    from zoo.evaluation.quality import baseline_upsample

    on_grid = evaluate(baseline_upsample(lr, "lanczos"), output, target, pixel_size_nm=PIXEL_NM, truth=truth)
    assert on_grid.rows == ["input", "output", "target"]
    assert on_grid.table["input"]["psnr_db"] == pytest.approx(result.table["input"]["psnr_db"], abs=1e-3)
    assert on_grid.table["input"]["gap_size_error_nm"] == pytest.approx(result.table["input"]["gap_size_error_nm"])
    json.dumps(result.to_dict())  # serialisable


def test_grid_mismatches_are_user_errors(triple):
    lr, output, target, truth = triple
    with pytest.raises(UserError, match="same grid"):
        evaluate(lr, output[:-2], target, pixel_size_nm=PIXEL_NM)
    with pytest.raises(UserError, match="1/2"):
        evaluate(lr[:-1], output, target, pixel_size_nm=PIXEL_NM)
    with pytest.raises(UserError, match="native LR"):
        evaluate(output, output, target, pixel_size_nm=PIXEL_NM, baselines=("bicubic",))
    with pytest.raises(UserError, match="pixel size"):
        evaluate(lr, output, target, pixel_size_nm=None)
    with pytest.raises(UserError, match="unknown particle"):
        evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth={"gaps": [{"a": 1, "b": 999}], "particles": truth["particles"]})


def test_no_data_border_is_left_out_of_psnr(triple):
    lr, output, target, truth = triple
    holed = target.copy()
    holed[:, :6] = 0.0  # as semzoo prepare marks pixels the HR does not cover
    mask = no_data_mask(holed)
    assert mask[:, :6].all() and mask.sum() == 6 * holed.shape[0]
    dotted = holed.copy()
    dotted[100, 100] = 0.0  # an interior zero is data
    np.testing.assert_array_equal(no_data_mask(dotted), mask)
    whole = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth)
    with_hole = evaluate(lr, output, holed, pixel_size_nm=PIXEL_NM, truth=truth)
    assert with_hole.no_data_pixels == mask.sum()
    assert with_hole.table["output"]["psnr_db"] == pytest.approx(whole.table["output"]["psnr_db"], abs=0.5)
    assert not no_data_mask(np.zeros((20, 20))).any()  # all zero: content, not a border


def test_write_report_and_aggregate(triple, tmp_path):
    lr, output, target, truth = triple
    a = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth, name="a")
    b = evaluate(lr, target, target, pixel_size_nm=PIXEL_NM, truth=truth, name="b")
    table = aggregate_table([a, b])
    # Pooled gap counts: both pairs have the same gaps, so the pooled error is the mean.
    assert table["output"]["gap_size_error_nm"] == pytest.approx(a.table["output"]["gap_size_error_nm"] / 2)
    assert table["output"]["ssim"] == pytest.approx((a.table["output"]["ssim"] + b.table["output"]["ssim"]) / 2)
    out = write_report([a, b], tmp_path / "rep")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fig1_closeups.png", "fig2_gap_profiles.png", "fig3_gap_sizes.png", "fig4_spectra.png",
                     "report.md", "results.json"]
    for png in out.glob("*.png"):
        img = cv2.imread(str(png))
        assert img is not None and img.shape[1] >= 1000 and img.std() > 10
    with pytest.raises(UserError, match="not empty"):
        write_report(a, out)
    assert len(list(out.iterdir())) == 6
    write_report(a, out, overwrite=True)
    assert "## Per pair" not in (out / "report.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_fig1_profiles_follow_the_truths_gaps_where_output_and_lanczos_differ(triple, tmp_path, monkeypatch):
    import zoo.client.closeups as closeups
    from zoo.evaluation.report import closeups_figure

    lr, output, target, truth = triple
    result = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth, name="a")
    assert len(result.gaps.lines) > 3
    seen = {}
    real = closeups.closeup_figure

    def spy(lanczos, enhanced, **kwargs):
        seen.update(kwargs, lanczos=lanczos, enhanced=enhanced)
        return real(lanczos, enhanced, **kwargs)

    monkeypatch.setattr(closeups, "closeup_figure", spy)
    closeups_figure(result, tmp_path / "fig1.png")
    lines = seen["lines"]
    assert len(lines) == 3 and all(line in result.gaps.lines for line in lines)
    diffs = {tuple(map(tuple, line)): closeups.line_difference(seen["lanczos"], seen["enhanced"], line)
             for line in result.gaps.lines}
    # the three truth gaps with the largest |output - Lanczos| along their line, in that order
    assert [diffs[tuple(map(tuple, line))] for line in lines] == sorted(diffs.values(), reverse=True)[:3]
    assert seen["truth"] is result.images["target"]
    assert (tmp_path / "fig1.png").stat().st_size <= closeups.MAX_BYTES


def test_a_specimen_without_gaps_still_gets_a_report(triple, tmp_path):
    lr, output, target, truth = triple
    result = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth={"particles": [], "gaps": [], "touching": []})
    assert math.isnan(result.table["output"]["undetected_gaps_percent"])
    assert math.isfinite(result.table["output"]["psnr_db"])
    out = write_report(result, tmp_path / "rep")
    assert cv2.imread(str(out / "fig2_gap_profiles.png")) is not None
    assert "| output |" in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["aggregate"]["output"]["undetected_gaps_percent"] is None


def test_undetected_gaps_by_true_width_pool_the_pairs_with_the_tables_denominators(triple, tmp_path):
    from zoo.evaluation.tables import pooled_gap_stats, undetected_by_width

    lr, output, target, truth = triple
    a = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth, name="a")
    b = evaluate(lr, target, target, pixel_size_nm=PIXEL_NM, truth=truth, name="b")
    table = undetected_by_width([a, b])
    assert table["edges_nm"] == [0.0, PIXEL_NM, 2 * PIXEL_NM, None]
    widths = sorted({g["width_nm"] for g in truth["gaps"]})
    assert min(widths) >= 2 * PIXEL_NM  # the scene's gaps are all wider than an input pixel
    for row, cells in table["rows"].items():
        assert [c["n_gaps"] for c in cells[:2]] == [0, 0] and cells[0]["percent"] is None
        pooled = pooled_gap_stats([a, b], row)
        assert (cells[2]["n_gaps"], cells[2]["n_undetected"]) == (pooled.n_gaps, pooled.n_undetected)
    assert table["rows"]["input"][2]["n_undetected"] > table["rows"]["output"][2]["n_undetected"]
    out = write_report([a, b], tmp_path / "rep")
    assert json.loads((out / "results.json").read_text())["undetected_by_width"] == table
    assert "## Undetected gaps by true width" in (out / "report.md").read_text()
    # Without truth the gaps come from the target and have no true width: no such table.
    found = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, name="c")
    assert undetected_by_width([found]) is None


def test_undetected_gaps_by_input_sampling_split_the_tables_counts(triple, tmp_path):
    from zoo.evaluation.gaps import gaps_with_input_sample
    from zoo.evaluation.tables import pooled_gap_stats, undetected_by_input_sampling

    lr, output, target, truth = triple
    # The registered frame's convention: HR pixel x lies at LR x_lr = (x - 0.5) / 2.
    with_lr = dict(truth, particles=[dict(p, x_lr=(p["x_hr"] - 0.5) / 2, y_lr=(p["y_hr"] - 0.5) / 2)
                                     for p in truth["particles"]])
    a = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=with_lr, name="a")
    lanczos = cv2.resize(lr, target.shape[::-1], interpolation=cv2.INTER_LANCZOS4)
    b = evaluate(lr, lanczos, target, pixel_size_nm=PIXEL_NM, truth=dict(with_lr, probe_fwhm_nm=3.0), name="b")
    expected = gaps_with_input_sample(a.gaps.gaps, with_lr["particles"], lr_pixel_size_nm=2 * PIXEL_NM)
    np.testing.assert_array_equal(a.gap_input_sampled, expected)
    # The scene's gaps are 1-3 LR pixels wide: each holds a grid point, but a clearance of one
    # probe FWHM (3 nm) from the edges leaves the narrow ones without: both kinds in the table.
    assert expected.all()
    assert 0 < b.gap_input_sampled.sum() < b.gap_input_sampled.size
    table = undetected_by_input_sampling([a, b])
    assert table["classes"] == ["an input sample in the gap", "no input sample in the gap"]
    for row, (with_sample, without) in table["rows"].items():
        pooled = pooled_gap_stats([a, b], row)
        assert with_sample["n_gaps"] + without["n_gaps"] == pooled.n_gaps
        assert with_sample["n_undetected"] + without["n_undetected"] == pooled.n_undetected
    assert table["rows"]["target"][0]["n_gaps"] == int(a.gap_input_sampled.sum() + b.gap_input_sampled.sum())
    out = write_report([a, b], tmp_path / "rep")
    assert json.loads((out / "results.json").read_text())["undetected_by_input_sampling"] == table
    assert "## Undetected gaps by input sampling" in (out / "report.md").read_text()
    # Truth without LR coordinates (the fixture's) gives no such table.
    plain = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=truth, name="c")
    assert plain.gap_input_sampled is None and undetected_by_input_sampling([a, plain]) is None


def test_invented_gaps_by_kind_of_contact_split_the_tables_counts(triple, tmp_path):
    from zoo.evaluation.tables import invented_by_contact, pooled_gap_stats

    lr, output, target, truth = triple
    kinds = ("neck", "facet")
    touching = [dict(t, kind=kinds[i % 2]) for i, t in enumerate(truth["touching"])]
    assert len(touching) >= 2
    # An output that shows every contact apart: the particles drawn 30% smaller.
    apart = render([dict(p, radius_nm=0.7 * p["radius_nm"]) for p in truth["particles"]], target.shape,
                   sigma_px=0.7)
    a = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, truth=dict(truth, touching=touching), name="a")
    b = evaluate(lr, apart, target, pixel_size_nm=PIXEL_NM, truth=dict(truth, touching=touching), name="b")
    table = invented_by_contact([a, b])
    assert set(table) == {"kind", "size", "overlap"} and set(table["kind"]) == set(kinds)
    for row in ("input", "output", "target"):
        pooled = pooled_gap_stats([a, b], row)
        for group in table.values():
            cells = [bins[row] for bins in group.values() if row in bins]
            assert sum(c["n_touching"] for c in cells) == pooled.n_touching
            assert sum(c["n_invented"] for c in cells) == pooled.n_invented
    assert pooled_gap_stats([b], "output").n_invented > 0  # the shrunk particles show gaps
    out = write_report([a, b], tmp_path / "rep")
    assert json.loads((out / "results.json").read_text())["invented_by_contact"] == table
    text = (out / "report.md").read_text()
    assert "## Invented gaps by kind of contact" in text and "kind: neck" in text
    # Without truth there are no contact kinds: no such table.
    found = evaluate(lr, output, target, pixel_size_nm=PIXEL_NM, name="c")
    assert invented_by_contact([found]) is None
