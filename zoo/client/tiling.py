"""Tile an image of any size for a fully convolutional x``scale`` model and blend the outputs.

A tile's output is wrong near the tile's edges (the network sees zero/mirror padding there
instead of the neighbouring pixels) for ``context`` LR pixels -- the card's ``tile.overlap``,
the generator's receptive-field radius. So neighbouring tiles overlap by
``2 * context + blend`` LR pixels, and each tile's output is weighted by a window that is

- 0 within ``context`` of an edge shared with a neighbour (never use a wrong pixel),
- a raised cosine rising over the next ``blend`` pixels (seams fade smoothly), and
- 1 elsewhere, including along the image's outer border (nothing to blend with there).

Two neighbours' ramps cover the same ``blend`` pixels and sum to one, so away from the image
border the blended result equals what the untiled image would give (within float noise).

Tile origins are multiples of ``divisor`` (the card's ``tile.divisor``): the U-Net pools by
that factor, so only then does a tile see the same pooling grid as the whole image.

Memory: the weights are separable, w(y, x) = wy(y) * wx(x), and so is their sum over a tile
grid, so the blender keeps one float32 accumulator of the output's size plus two 1-D sums,
and tiles are added as they arrive (streaming), in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile in LR pixels: rows y0:y0+h, columns x0:x0+w; (row, col) in the tile grid."""

    y0: int
    x0: int
    h: int
    w: int
    row: int
    col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.h, self.w


def axis_starts(length: int, tile: int, overlap: int, divisor: int = 1) -> list[tuple[int, int]]:
    """(start, size) of the tiles along one axis: every start a multiple of ``divisor``,
    neighbours overlapping by at least ``overlap``, the last tile ending at ``length``."""
    if length <= tile:
        return [(0, length)]
    step = (tile - overlap) // divisor * divisor
    if step <= 0:
        raise ValueError(
            f"tile size {tile} leaves no room to advance with overlap {overlap} and divisor {divisor}"
        )
    # As few tiles as the overlap allows, spread evenly (no sliver of a last tile), origins
    # rounded down to the divisor; the last one ends at the border, so it may be up to
    # divisor-1 pixels longer than the others.
    units, per_step = (length - tile) // divisor, step // divisor  # in multiples of the divisor
    if units == 0:
        return [(0, length)]
    n = -(-units // per_step) + 1
    starts = [(i * units // (n - 1)) * divisor for i in range(n)]
    return [(s, tile if s != starts[-1] else length - s) for s in starts]


def ramp(n: int, context: int, blend: int, *, rising_at_start: bool, falling_at_end: bool) -> np.ndarray:
    """1-D window of length ``n``: 0 for ``context``, raised cosine over ``blend``, then 1."""
    w = np.ones(n, np.float64)
    if blend > 0:
        t = (np.arange(n) + 0.5 - context) / blend
        edge = np.where(t <= 0, 0.0, np.where(t >= 1, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0, 1))))
    else:
        edge = (np.arange(n) >= context).astype(np.float64)
    if rising_at_start:
        w *= edge
    if falling_at_end:
        w *= edge[::-1]
    return w


class TileBlender:
    """Tile grid of an H x W LR image and streaming accumulation of the x``scale`` outputs.

    ``blend`` defaults to ``context // 4`` (at least 2 px): wide enough to hide float-noise
    seams, narrow enough not to cost many more tiles.

    >>> blender = TileBlender(300, 500, scale=2, tile=128, context=8)
    >>> for t in blender.tiles:
    ...     blender.add(t, model(image[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]))
    >>> out = blender.result()   # (600, 1000) float32
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        scale: int = 2,
        tile: int,
        context: int,
        blend: int | None = None,
        divisor: int = 1,
    ):
        if height < 1 or width < 1:
            raise ValueError(f"empty image ({height} x {width})")
        self.height, self.width, self.scale = height, width, scale
        self.context = context
        self.blend = max(2, context // 4) if blend is None else blend
        overlap = 2 * context + self.blend
        self.rows = axis_starts(height, tile, overlap, divisor)
        self.cols = axis_starts(width, tile, overlap, divisor)
        self.tiles = [
            Tile(y0, x0, h, w, r, c)
            for r, (y0, h) in enumerate(self.rows)
            for c, (x0, w) in enumerate(self.cols)
        ]
        self._wy = [self._window(i, self.rows) for i in range(len(self.rows))]
        self._wx = [self._window(i, self.cols) for i in range(len(self.cols))]
        self._sum_y = np.zeros(height * scale, np.float64)
        self._sum_x = np.zeros(width * scale, np.float64)
        for (y0, h), wy in zip(self.rows, self._wy):
            self._sum_y[y0 * scale:(y0 + h) * scale] += wy
        for (x0, w), wx in zip(self.cols, self._wx):
            self._sum_x[x0 * scale:(x0 + w) * scale] += wx
        if (self._sum_y <= 0).any() or (self._sum_x <= 0).any():
            raise ValueError("tile grid leaves pixels uncovered (tile too small for its context?)")
        self._acc = np.zeros((height * scale, width * scale), np.float32)

    def _window(self, index: int, axis: list[tuple[int, int]]) -> np.ndarray:
        _start, size = axis[index]
        s = self.scale
        return ramp(
            size * s, self.context * s, self.blend * s,
            rising_at_start=index > 0, falling_at_end=index < len(axis) - 1,
        )

    def add(self, tile: Tile, output: np.ndarray) -> None:
        """Accumulate one tile's model output ((scale*h, scale*w), or with size-1 axes)."""
        s = self.scale
        output = np.asarray(output, np.float32).reshape(tile.h * s, tile.w * s)
        weights = np.outer(self._wy[tile.row], self._wx[tile.col]).astype(np.float32)
        y, x = tile.y0 * s, tile.x0 * s
        self._acc[y:y + tile.h * s, x:x + tile.w * s] += output * weights

    def result(self) -> np.ndarray:
        """The blended (scale*H, scale*W) float32 image (normalised in place; call once)."""
        self._acc /= self._sum_y[:, None].astype(np.float32)
        self._acc /= self._sum_x[None, :].astype(np.float32)
        return self._acc
