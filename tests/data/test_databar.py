"""zoo.data.databar: a data bar drawn over the bottom rows is found by its signature, nothing else is."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data.databar import drawn_databar_rows, modal_share


@pytest.fixture
def noisy(rng) -> np.ndarray:
    return rng.integers(0, 65536, (200, 160)).astype(np.uint16)


def with_bar(image: np.ndarray, rows: int, background=0, text=65535) -> np.ndarray:
    image = image.copy()
    image[-rows:] = background
    if rows > 5:
        image[-rows + 3:-2, 10:60:4] = text  # text below a blank edge row
    return image


def test_modal_share():
    assert modal_share(np.array([3, 3, 1, 3])) == 0.75
    assert modal_share(np.arange(10.0)) == 0.1


def test_a_bar_with_an_edge_is_found(noisy):
    assert drawn_databar_rows(with_bar(noisy, 20)) == 20


def test_the_last_rows_may_be_scan_lines_again(noisy):
    image = with_bar(noisy, 20)
    image[-1] = noisy[-1]
    assert drawn_databar_rows(image) == 20


@pytest.mark.parametrize("case", ["plain", "no edge", "too tall", "too short", "flat image"])
def test_nothing_else_is_a_bar(noisy, case):
    image = {
        "plain": noisy,
        "no edge": with_bar(noisy, 20, text=65535),
        "too tall": with_bar(noisy, 60),  # over a quarter of the image
        "too short": with_bar(noisy, 3),
        "flat image": np.full_like(noisy, 7),
    }[case]
    if case == "no edge":
        image[-20, ::3] = noisy[-20, ::3]  # the top row of the band is not one value across
    assert drawn_databar_rows(image) == 0
