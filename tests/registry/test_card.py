"""The card schema: validation names the bad field, JSON round trip, headline metrics."""

from __future__ import annotations

import copy
import json

import pytest

from zoo.errors import UserError
from zoo.registry.card import (
    card_from_json,
    card_to_json,
    check_name,
    key_metrics,
    new_card,
    read_card,
    validate_card,
    write_card,
)

VERSIONS = {"semzoo": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1"}


def good_card(**overrides) -> dict:
    fields = dict(
        name="gold-on-carbon",
        sample_type="gold-on-carbon",
        input_pixel_size_nm=14.2,
        scale=2,
        tile={"size": 256, "overlap": 40, "divisor": 16},
        training={"pairs": 40, "patches": 3000, "simulated": True, "dataset_hash": "ab12",
                  "steps": 4000, "preset": "small"},
        evaluation={"psnr": {"lanczos": 24.0, "output": 26.5}},
        created="2026-11-24T19:50:11Z",
        versions=VERSIONS,
    )
    fields.update(overrides)
    return new_card(**fields)


def test_new_card_fills_derived_fields():
    card = good_card()
    assert card["output_pixel_size_nm"] == pytest.approx(7.1)
    assert card["normalisation"] == {"method": "per-image mean/std"}
    assert card["signatures"]["serving_default"] == {"inputs": ["image"], "outputs": ["enhanced"]}
    assert card["signatures"]["card"] == {"inputs": ["batch"], "outputs": ["card"]}
    assert card["files"] == {} and card["parent"] is None
    assert "version" not in card  # the number is the directory's name, never the card's


def test_new_card_records_software_versions_and_utc_time():
    card = new_card(
        name="m", sample_type=None, input_pixel_size_nm=10, scale=2,
        tile={"size": 64, "overlap": 8, "divisor": 8},
        training={"pairs": 1, "patches": 1, "simulated": False, "dataset_hash": None,
                  "steps": 1, "preset": None},
    )
    import keras
    import tensorflow as tf

    assert card["versions"]["tensorflow"] == tf.__version__
    assert card["versions"]["keras"] == keras.__version__
    assert card["created"].endswith("Z")


@pytest.mark.parametrize(
    "field, mutate",
    [
        ("name", lambda c: c.update(name="Gold/../x")),
        ("sample_type", lambda c: c.update(sample_type=3)),
        ("input_pixel_size_nm", lambda c: c.update(input_pixel_size_nm=-1.0)),
        ("input_pixel_size_nm", lambda c: c.update(input_pixel_size_nm=float("nan"))),
        ("output_pixel_size_nm", lambda c: c.update(output_pixel_size_nm=7.5)),
        ("scale", lambda c: c.update(scale=0)),
        ("normalisation", lambda c: c.update(normalisation={"method": "min/max"})),
        ("tile", lambda c: c["tile"].pop("overlap")),
        ("tile.size", lambda c: c["tile"].update(size=250)),
        ("tile.overlap", lambda c: c["tile"].update(overlap=128)),
        ("tile.divisor", lambda c: c["tile"].update(divisor=0)),
        ("signatures", lambda c: c["signatures"]["serving_default"].update(outputs=["output_0"])),
        ("training.steps", lambda c: c["training"].pop("steps")),
        ("training.pairs", lambda c: c["training"].update(pairs=-2)),
        ("training.simulated", lambda c: c["training"].update(simulated="yes")),
        ("evaluation", lambda c: c.update(evaluation=[1, 2])),
        ("parent", lambda c: c.update(parent="gold-on-carbon")),
        ("parent", lambda c: c.update(parent="../x:1")),
        ("created", lambda c: c.update(created="yesterday")),
        ("created", lambda c: c.update(created="2026-11-24T19:50:11+02:00")),
        ("versions", lambda c: c["versions"].pop("keras")),
        ("files", lambda c: c.update(files={"../etc/passwd": "0" * 64})),
        ("files", lambda c: c.update(files={"saved_model.pb": "not-a-digest"})),
        ("files", lambda c: c.update(files={"assets.extra/card.json": "0" * 64})),
        ("schema", lambda c: c.update(schema=2)),
        ("version", lambda c: c.update(version=3)),
        ("scale", lambda c: c.pop("scale")),
    ],
)
def test_validation_names_the_bad_field(field, mutate):
    card = copy.deepcopy(good_card())
    mutate(card)
    with pytest.raises(UserError, match=rf"invalid model card: {field}\b"):
        validate_card(card)


def test_valid_parent_and_files_pass():
    card = good_card(parent="gold-on-carbon:3")
    card["files"] = {"saved_model.pb": "a" * 64, "variables/variables.index": "b" * 64}
    assert validate_card(card) is card


def test_json_round_trip_is_stable(tmp_path):
    card = good_card()
    text = card_to_json(card)
    assert card_from_json(text) == card
    assert card_to_json(card_from_json(text)) == text  # byte-stable: sorted keys, trailing \n
    write_card(tmp_path, card)
    assert (tmp_path / "assets.extra/card.json").read_text() == text
    assert (tmp_path / "assets/card.json").read_text() == text
    assert read_card(tmp_path) == card


def test_bad_json_and_missing_card_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not JSON"):
        card_from_json("{nope", source="x.json")
    with pytest.raises(UserError, match="expected a JSON object"):
        card_from_json("[1]")
    with pytest.raises(UserError, match="no model card"):
        read_card(tmp_path)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "A", "-x", "x-", "x y", "ünï", "a\\b", ".tmp"])
def test_check_name_rejects_path_tricks(bad):
    with pytest.raises(UserError, match="invalid model name"):
        check_name(bad)


def test_key_metrics_prefer_the_models_row_and_a_summary():
    evaluation = {
        "psnr": {"lanczos": 24.0, "output": 26.5},
        "gaps": {"input": {"undetected_gap_fraction": 0.14}, "output": {"undetected_gap_fraction": 0.04}},
        "notes": "text is ignored",
    }
    assert key_metrics(evaluation) == {"undetected_gap_fraction": 0.04}
    evaluation["output"] = {"psnr": 26.5, "ssim": 0.81}
    assert key_metrics(evaluation) == {"undetected_gap_fraction": 0.04, "psnr": 26.5, "ssim": 0.81}
    assert key_metrics({"summary": {"psnr_db": 26.5, "label": "x"}}) == {"psnr_db": 26.5}
    assert key_metrics({}) == {}
    # An HR-only table names its rows after the models: the card's own version's row wins.
    hr_only = {"table": {"bicubic": {"psnr_db": 32.8}, "general:2": {"psnr_db": 33.4}, "general:3": {"psnr_db": 33.5}}}
    assert key_metrics(hr_only, own="general:3") == {"psnr_db": 33.5}
    assert key_metrics(hr_only) == {"psnr_db": 32.8}  # without knowing its name: the first row
    assert json.dumps(key_metrics(evaluation))  # JSON-serialisable for `zoo list --json`
