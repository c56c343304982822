"""Tile grid and seam blending: every pixel covered, weights sum to one, tiled == untiled."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from zoo.client.tiling import TileBlender, axis_starts, ramp


@pytest.mark.parametrize("length", [1, 7, 32, 33, 100, 257, 1000])
@pytest.mark.parametrize("tile, overlap, divisor", [(32, 10, 1), (64, 20, 8), (256, 80, 16)])
def test_axis_starts_cover_with_overlap_and_aligned_origins(length, tile, overlap, divisor):
    starts = axis_starts(length, tile, overlap, divisor)
    assert starts[0][0] == 0 and sum(starts[-1]) == length
    for (s0, n0), (s1, _n1) in zip(starts, starts[1:]):
        assert s1 % divisor == 0 and s1 > s0
        assert s0 + n0 - s1 >= overlap  # neighbours share at least the overlap
    assert all(n <= max(tile + divisor - 1, length if len(starts) == 1 else 0) for _s, n in starts)


def test_axis_starts_use_few_tiles():
    assert axis_starts(100, 32, 10) == [(0, 32), (17, 32), (34, 32), (51, 32), (68, 32)]
    assert axis_starts(100, 32, 10, 8) == [(0, 32), (16, 32), (32, 32), (48, 32), (64, 36)]
    with pytest.raises(ValueError, match="no room"):
        axis_starts(100, 16, 16)


def test_ramps_of_neighbours_sum_to_one():
    context, blend = 3, 4
    rising = ramp(20, context, blend, rising_at_start=True, falling_at_end=False)
    falling = ramp(20, context, blend, rising_at_start=False, falling_at_end=True)
    assert (rising[:context] == 0).all() and (rising[context + blend:] == 1).all()
    overlap = 2 * context + blend
    np.testing.assert_allclose(rising[:overlap] + falling[-overlap:], 1.0)


def _model(image: np.ndarray) -> np.ndarray:
    """A x2 model with receptive-field radius 2: 5x5 conv, then nearest-neighbour x2."""
    kernel = np.random.default_rng(3).standard_normal((5, 5))
    return np.kron(ndimage.convolve(image, kernel, mode="constant"), np.ones((2, 2)))


@pytest.mark.parametrize("shape", [(70, 90), (33, 200), (16, 16)])
def test_tiled_equals_untiled_away_from_border(rng, shape):
    image = rng.standard_normal(shape)
    blender = TileBlender(*shape, scale=2, tile=24, context=2)
    for t in blender.tiles:
        blender.add(t, _model(image[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]))
    tiled, whole = blender.result(), _model(image)
    assert tiled.shape == (2 * shape[0], 2 * shape[1]) and tiled.dtype == np.float32
    # Only the outer border (where the whole image itself is zero-padded) may differ -- and
    # it does not either: the window is 1 along the image border.
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_too_little_context_shows_seams(rng):
    """The test above can fail: with context 0 the conv's padding leaks into the result."""
    image = rng.standard_normal((70, 90))
    blender = TileBlender(70, 90, scale=2, tile=24, context=0, blend=0)
    for t in blender.tiles:
        blender.add(t, _model(image[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]))
    assert np.abs(blender.result() - _model(image)).max() > 1e-2


CARD_TILE = {"size": 288, "overlap": 72, "divisor": 8}


def test_plan_sends_a_sem_frame_whole_within_the_default_budget():
    from zoo.client.tiling import plan_tiles

    plan = plan_tiles(780, 924, scale=2, card_tile=CARD_TILE, max_message_bytes=512 * 2**20)
    assert plan.whole and plan.batch == 1 and plan.tile == 924
    assert TileBlender(780, 924, scale=2, tile=plan.tile, context=72, divisor=8).tiles[0].shape == (780, 924)


def test_plan_splits_what_exceeds_the_budget_or_the_message_limit():
    from zoo.client.tiling import SERVER_BYTES_PER_OUTPUT_PIXEL, plan_tiles

    big = plan_tiles(4096, 4096, scale=2, card_tile=CARD_TILE, memory_budget_mb=4096, concurrency=2)
    # two requests in flight share the 4 GiB: 2 GiB each
    assert not big.whole and big.tile % 8 == 0
    assert 2 * (2 * big.tile) ** 2 * SERVER_BYTES_PER_OUTPUT_PIXEL <= 4096 * 2**20
    assert 2 * (2 * (big.tile + 8)) ** 2 * SERVER_BYTES_PER_OUTPUT_PIXEL > 4096 * 2**20  # the largest that fits
    assert big.batch == 1
    limited = plan_tiles(780, 924, scale=2, card_tile=CARD_TILE, max_message_bytes=8 * 2**20)
    assert not limited.whole and 4 * (2 * limited.tile) ** 2 <= 8 * 2**20
    floor = plan_tiles(780, 924, scale=2, card_tile=CARD_TILE, memory_budget_mb=1)
    assert (floor.tile, floor.batch) == (288, 1)  # never below the card's tile


def test_plan_with_a_tile_size_keeps_it_and_fits_the_batch_to_the_budget():
    from zoo.client.tiling import plan_tiles

    plan = plan_tiles(2000, 2000, scale=2, card_tile=CARD_TILE, tile_size=300, batch_size=4)
    assert (plan.tile, plan.batch, plan.whole) == (304, 4, False)  # rounded up to the divisor
    assert plan_tiles(2000, 2000, scale=2, card_tile=CARD_TILE, tile_size=100).tile == 288
    squeezed = plan_tiles(2000, 2000, scale=2, card_tile=CARD_TILE, tile_size=1024, batch_size=4,
                          memory_budget_mb=4096)
    assert squeezed.batch == 1  # four 1024 px tiles would take 16 GiB
    assert plan_tiles(200, 200, scale=2, card_tile=CARD_TILE, tile_size=512).whole
