"""Which model an image gets without --model (zoo.client.model_choice)."""

from __future__ import annotations

import pytest

from zoo.client.model_choice import choose_model, pixel_size_mismatch, pixel_size_range


def card(px, span=None):
    training = {"input_pixel_size_range_nm": list(span)} if span else {}
    return {"input_pixel_size_nm": px, "training": training}


CARDS = {"gold-on-carbon": card(14.2), "hydrogel": card(56.8), "general": card(40.0, (14.2, 130.0))}


@pytest.mark.parametrize("pixel_size, expected", [
    (14.2, "gold-on-carbon"), (15.0, "gold-on-carbon"),  # within 10 %: the specimen model
    (16.5, "general"), (7.3, "general"), (30.0, "general"), (500.0, "general"),  # no specimen model meant for it
    (55.0, "hydrogel"),
])
def test_specimen_models_within_tolerance_else_general(pixel_size, expected):
    assert choose_model(CARDS, pixel_size) == expected


def test_without_a_general_model_the_closest_model_as_before():
    cards = {k: v for k, v in CARDS.items() if k != "general"}
    assert choose_model(cards, 7.3) == "gold-on-carbon" and choose_model(cards, 40.0) == "hydrogel"


def test_of_several_general_models_the_one_whose_range_holds_the_pixel_size():
    cards = {"fine": card(5.0, (2.0, 10.0)), "coarse": card(50.0, (20.0, 100.0))}
    assert choose_model(cards, 3.0) == "fine" and choose_model(cards, 60.0) == "coarse"
    assert choose_model(cards, 12.0) == "fine"  # nearer in log pixel size: 12/10 < 20/12


def test_mismatch_is_zero_inside_a_general_models_range():
    general = CARDS["general"]
    assert pixel_size_range(general) == (14.2, 130.0) and pixel_size_range(CARDS["hydrogel"]) is None
    assert pixel_size_mismatch(general, 50.0) == 0.0
    assert pixel_size_mismatch(general, 7.1) == pytest.approx(0.5)
    assert pixel_size_mismatch(CARDS["gold-on-carbon"], 7.1) == pytest.approx(0.5)
