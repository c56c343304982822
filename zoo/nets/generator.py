"""The generator: the paper's adapted U-Net on the Lanczos-upsampled input (Fig. 1a).

de Haan et al., Sci. Rep. 9, 12050 (2019), Fig. 1a and Methods: the native low-resolution image
is upsampled x2 with Lanczos interpolation; a U-Net with four down-sampling and four
up-sampling blocks (each two 3x3 convolutions followed by leaky ReLUs), linked by skip
connections, computes a residual that is added to the upsampled image.

Shapes: input (N, H, W, 1) normalised native LR with H, W multiples of :data:`DIVISOR`;
output (N, 2H, 2W, 1). Fully convolutional: any such H, W works, including ``None`` in an
exported function (the exporter pads to ``DIVISOR`` and crops back).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from zoo.nets.layers import BilinearUpsample2x, LanczosUpsample2x

__all__ = [
    "DIVISOR",
    "LanczosUpsample2x",
    "BilinearUpsample2x",
    "build_generator",
    "receptive_field_radius_lr",
    "recommended_tile_overlap",
]

#: Input (LR-side) H and W must be multiples of this: four 2x2 poolings on the x2 grid.
DIVISOR = 8
SCALE = 2
LEVELS = 4


def _conv(filters: int, name: str, slope: float, dtype=None):
    return [
        keras.layers.Conv2D(filters, 3, padding="same", name=name, dtype=dtype),
        keras.layers.LeakyReLU(negative_slope=slope, name=f"{name}_lrelu", dtype=dtype),
    ]


def _apply(x, layers):
    for layer in layers:
        x = layer(x)
    return x


def build_generator(config, *, name: str = "generator") -> keras.Model:
    """Build the U-Net generator for a :class:`~zoo.nets.presets.TrainingConfig`.

    Level widths ``config.g_widths = (w0, ..., w4)``: level 0 is the full x2 grid, level k is
    1/2^k of it. Input block at level 0: conv 1 -> w0, conv w0 -> w0. Down block k (1..4):
    2x2 average pooling, conv w(k-1) -> w(k-1), conv w(k-1) -> wk. Up block k (4..1): bilinear x2,
    concatenation with the level-(k-1) skip, conv -> wk, conv wk -> w(k-1). A linear 3x3 conv
    w0 -> 1 gives the residual, added to the Lanczos-upsampled input (Fig. 1a).
    """
    widths = tuple(int(w) for w in config.g_widths)
    slope = float(config.leaky_slope)
    inputs = keras.Input(shape=(None, None, 1), name="lr")
    upsampled = LanczosUpsample2x(name="lanczos_upsample2x")(inputs)

    x = _apply(upsampled, _conv(widths[0], "in_conv1", slope) + _conv(widths[0], "in_conv2", slope))
    skips = [x]
    for k in range(1, LEVELS + 1):
        x = keras.layers.AveragePooling2D(2, name=f"down{k}_pool")(x)
        x = _apply(x, _conv(widths[k - 1], f"down{k}_conv1", slope) + _conv(widths[k], f"down{k}_conv2", slope))
        skips.append(x)
    for k in range(LEVELS, 0, -1):
        x = BilinearUpsample2x(name=f"up{k}_upsample")(x)
        x = keras.layers.Concatenate(name=f"up{k}_concat")([x, skips[k - 1]])
        x = _apply(x, _conv(widths[k], f"up{k}_conv1", slope) + _conv(widths[k - 1], f"up{k}_conv2", slope))
    # Residual and sum in float32: under a mixed policy the output must keep full precision.
    residual = keras.layers.Conv2D(1, 3, padding="same", name="residual", dtype="float32")(x)
    outputs = keras.layers.Add(name="enhanced", dtype="float32")([upsampled, residual])
    return keras.Model(inputs, outputs, name=name)


def receptive_field_radius_lr(config) -> int:
    """How far (in native LR pixels, one side) an output pixel can see into the input.

    Exact for this topology: propagates, along one axis, the interval of LR input pixels that
    each feature depends on through every layer (Lanczos: 8 taps; 3x3 conv: +-1; 2x2 pooling:
    its 2 inputs; bilinear x2: its 2 neighbours; concatenation: union), then takes the largest
    reach of any output pixel beyond its own LR pixel. The support of every layer is separable,
    so the 2-D receptive field is the square of this. Tiles overlapping by at least this much,
    starting on multiples of :data:`DIVISOR`, give the same output as the whole image (tested).
    """
    del config  # the topology, not the widths, sets the receptive field
    n = 64 * DIVISOR  # LR length; only pixels far from the ends are counted
    lr = np.arange(n)

    def conv(lo, hi):
        return np.minimum(np.minimum(np.roll(lo, 1), lo), np.roll(lo, -1)), \
            np.maximum(np.maximum(np.roll(hi, 1), hi), np.roll(hi, -1))

    def pool(lo, hi):
        return np.minimum(lo[0::2], lo[1::2]), np.maximum(hi[0::2], hi[1::2])

    def up(lo, hi):  # output 2i reads i-1, i; output 2i+1 reads i, i+1
        out_lo = np.empty(2 * len(lo), lo.dtype)
        out_hi = np.empty(2 * len(hi), hi.dtype)
        out_lo[0::2], out_hi[0::2] = np.minimum(np.roll(lo, 1), lo), np.maximum(np.roll(hi, 1), hi)
        out_lo[1::2], out_hi[1::2] = np.minimum(lo, np.roll(lo, -1)), np.maximum(hi, np.roll(hi, -1))
        return out_lo, out_hi

    # Lanczos x2: output 2i uses i-4 ... i+3, output 2i+1 uses i-3 ... i+4.
    lo = np.repeat(lr, 2) - np.tile([4, 3], n)
    hi = np.repeat(lr, 2) + np.tile([3, 4], n)
    lo, hi = conv(*conv(lo, hi))
    skips = [(lo, hi)]
    for _ in range(LEVELS):
        lo, hi = conv(*conv(*pool(lo, hi)))
        skips.append((lo, hi))
    for k in range(LEVELS, 0, -1):
        lo, hi = up(lo, hi)
        lo, hi = np.minimum(lo, skips[k - 1][0]), np.maximum(hi, skips[k - 1][1])
        lo, hi = conv(*conv(lo, hi))
    lo, hi = conv(lo, hi)
    own = np.repeat(lr, 2)
    interior = slice(n // 2, n // 2 + 2 * DIVISOR)  # one full period of the pooling phases
    return int(max((own - lo)[interior].max(), (hi - own)[interior].max()))


def recommended_tile_overlap(config) -> int:
    """Tile overlap (LR pixels) for the model card: the receptive field, rounded up to DIVISOR."""
    radius = receptive_field_radius_lr(config)
    return DIVISOR * math.ceil(radius / DIVISOR)
