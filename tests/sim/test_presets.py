"""Specimen presets (zoo.sim.presets): the paper-calibrated set's gap selection, and the default unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zoo.errors import UserError
from zoo.sim import gold_on_carbon
from zoo.sim.presets import PAPER_CALIBRATED, apply_preset
from zoo.sim.samples import sample_spec

EXTENT = (0.0, 3000.0, 0.0, 3000.0)


def _blocked(spec, a, b) -> bool:
    """Whether a third particle's disc crosses the gap's stretch of the centre line."""
    ca = np.array([spec.x_nm[a], spec.y_nm[a]])
    cb = np.array([spec.x_nm[b], spec.y_nm[b]])
    u = (cb - ca) / np.linalg.norm(cb - ca)
    t = np.linspace(0, 1, 200)[:, None]
    line = (ca + spec.radius_nm[a] * u) + t * ((cb - spec.radius_nm[b] * u) - (ca + spec.radius_nm[a] * u))
    for o in np.setdiff1d(np.arange(len(spec)), [a, b]):
        if (np.hypot(*(line - [spec.x_nm[o], spec.y_nm[o]]).T) < spec.radius_nm[o] - 1e-6).any():
            return True
    return False


def test_paper_gaps_are_a_random_share_of_all_adjacent_gaps_not_only_planted_ones():
    every = replace(PAPER_CALIBRATED, gap_sample_fraction=1.0)
    full = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(1), EXTENT, every)
    half = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(1), EXTENT, PAPER_CALIBRATED)
    # Same specimen, same candidate gaps (the selection draws come after the geometry).
    np.testing.assert_array_equal(full.radius_nm, half.radius_nm)
    cand = {tuple(g) for g in full.gaps.tolist()}
    chosen = [tuple(g) for g in half.gaps.tolist()]
    assert set(chosen) <= cand
    assert 0.4 < len(chosen) / len(cand) < 0.6
    # Random, not by width: the chosen gaps' widths are distributed as all candidates'.
    assert abs(np.median(half.gap_width_nm) - np.median(full.gap_width_nm)) < 2.0
    # Not only planted narrow ones: incidental gaps and gaps wider than the planted range.
    assert (~half.gap_planted).mean() > 0.3
    assert (half.gap_width_nm > PAPER_CALIBRATED.narrow_gap_nm[1]).mean() > 0.3
    assert half.gap_width_nm.min() > 0 and half.gap_width_nm.max() <= PAPER_CALIBRATED.record_gap_max_nm
    # Between adjacent particles: no third particle crosses a gap.
    for a, b in chosen[:40]:
        assert not _blocked(half, a, b)
    other = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(2), EXTENT, PAPER_CALIBRATED)
    assert {tuple(g) for g in other.gaps.tolist()} != set(chosen)


def test_paper_specimen_has_larger_particles_and_fewer_planted_gaps_than_the_default():
    default = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(1), EXTENT)
    paper = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(1), EXTENT, PAPER_CALIBRATED)
    assert np.median(paper.radius_nm) > 1.5 * np.median(default.radius_nm)
    assert paper.gap_planted.mean() < default.gap_planted.mean()
    assert default.contacts is None and paper.contacts is not None


def test_default_specimen_and_truth_are_unchanged_without_a_preset():
    spec = gold_on_carbon.make_gold_on_carbon(np.random.default_rng(5), (0.0, 1500.0, 0.0, 1500.0))
    xy = np.arange(len(spec), dtype=float)
    records = gold_on_carbon.truth_records(spec, spec.x_nm, spec.y_nm, xy, xy, (1500, 1500))
    assert all(set(t) == {"a", "b"} for t in records["touching"])
    assert apply_preset(sample_spec("gold-on-carbon"), None) is sample_spec("gold-on-carbon")


def test_unknown_preset_or_sample_is_refused():
    with pytest.raises(UserError, match="unknown preset"):
        apply_preset(sample_spec("gold-on-carbon"), "paper")
    with pytest.raises(UserError, match="not hydrogel"):
        apply_preset(sample_spec("hydrogel"), "paper-calibrated")
    with pytest.raises(UserError, match="bad specimen override"):
        apply_preset(sample_spec("gold-on-carbon"), "paper-calibrated", no_such_field=1.0)


def test_simulate_cli_refuses_a_bad_preset_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from zoo.cli.main import app

    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "out"), "--preset", "nope"])
    assert result.exit_code == 2
    assert "unknown preset" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_preset_data_set_records_its_preset_and_contact_kinds(tmp_path):
    import json

    from zoo.data.sem_tiff import read_sem
    from zoo.sim.dataset import simulate_dataset

    out = tmp_path / "paper"
    simulate_dataset(out, "gold-on-carbon", pairs=1, seed=3, size=(128, 128), preset="paper-calibrated",
                     specimen_overrides={"median_diameter_nm": 40.0})
    truth = json.loads((out / "truth.json").read_text())
    assert truth["preset"] == "paper-calibrated" and truth["specimen_overrides"] == {"median_diameter_nm": 40.0}
    pair = truth["pairs"]["pair-000"]
    assert pair["preset"] == "paper-calibrated"
    assert pair["touching"] and all("kind" in t for t in pair["touching"])
    assert '"preset": "paper-calibrated"' in json.dumps(read_sem(out / "hr" / "pair-000.tif").metadata)
    with pytest.raises(UserError, match="bad specimen override"):
        simulate_dataset(tmp_path / "bad", "gold-on-carbon", pairs=1, seed=3, size=(64, 64),
                         preset="paper-calibrated", specimen_overrides={"nope": 1})
    assert not (tmp_path / "bad").exists()
