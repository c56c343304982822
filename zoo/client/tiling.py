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

import math
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


# -- choosing the tiling -----------------------------------------------------------------------
# What one request costs the server, per output pixel: the activations of the bundled models'
# `small` U-Net (64 channels at full LR resolution, on the x2 grid after the Lanczos layer),
# measured as the peak RSS growth of one whole-image call: 595 B/px at 390x390 input, 695 B/px
# at 924x780 (docs/performance.md, "The default path"); rounded up for the request and response
# messages and the allocator's slack. A wider network (the `paper` preset) needs more: give a
# smaller budget.
SERVER_BYTES_PER_OUTPUT_PIXEL = 1024
# Server memory one image may take: 4 GiB holds a 1024 x 1024 input (a 2048 x 2048 output) as
# one request, so a 924 x 780 SEM frame goes whole.
DEFAULT_MEMORY_BUDGET_MB = 4096
# gRPC frames a message with a few bytes of its own; leave room for them and the other fields.
MESSAGE_MARGIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class TilePlan:
    """How an image is cut: LR ``tile`` edge for :class:`TileBlender`, ``batch`` tiles per
    request; ``whole`` when the image goes as one request (exactly the untiled result)."""

    tile: int
    batch: int
    whole: bool


def plan_tiles(
    height: int,
    width: int,
    *,
    scale: int,
    card_tile: dict,
    tile_size: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    bytes_per_output_pixel: float = SERVER_BYTES_PER_OUTPUT_PIXEL,
    max_message_bytes: int | None = None,
    batch_size: int = 4,
    concurrency: int = 2,
) -> TilePlan:
    """The tiling of an H x W LR image: the whole image when it fits, otherwise large tiles.

    A request of ``n`` output pixels costs the server ``n * bytes_per_output_pixel`` and its
    response ``4 n`` bytes on the wire (float32), which must stay under ``max_message_bytes``
    (the gRPC message limit). Without ``tile_size``:

    1. the whole image as one request when it fits both ``memory_budget_mb`` and the message
       limit (nothing else is in flight then);
    2. otherwise square tiles as large as ``concurrency`` requests in flight at once allow
       within the budget (and one within the message limit), a multiple of the card's
       ``divisor``, never below the card's tile ``size``.

    With ``tile_size`` (``--tile-size``): that edge, rounded up to the divisor, never below the
    card's tile. Either way ``batch`` is ``batch_size`` tiles per request, fewer when that
    many would exceed a request's share of the budget or the message limit (at least one).
    """
    size, divisor = int(card_tile["size"]), int(card_tile["divisor"])
    budget_px = memory_budget_mb * 2**20 / bytes_per_output_pixel
    message_px = float("inf") if max_message_bytes is None else (max_message_bytes - MESSAGE_MARGIN_BYTES) / 4
    out_px = height * width * scale * scale
    if tile_size is None and out_px <= min(budget_px, message_px):
        return TilePlan(tile=max(height, width, size), batch=1, whole=True)
    per_request_px = min(budget_px / max(1, concurrency), message_px)
    if tile_size is None:
        edge = int(math.sqrt(per_request_px)) // scale // divisor * divisor
    else:
        edge = int(tile_size) + -int(tile_size) % divisor
    edge = max(edge, size)
    batch = max(1, min(int(batch_size), int(per_request_px // (scale * edge) ** 2)))
    whole = height <= edge and width <= edge
    return TilePlan(tile=edge, batch=1 if whole else batch, whole=whole)
