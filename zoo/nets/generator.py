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

    Counted layer by layer on the x2 grid at level k (1 pixel = 2^k HR pixels): each 3x3 conv
    reaches 1 pixel, a 2x2 pooling 1 finer pixel, a bilinear x2 1 coarser pixel; the Lanczos-4
    input layer adds 4 LR pixels. Tiles overlapping by at least this much, with offsets that are
    multiples of :data:`DIVISOR`, give the same output as the whole image (tested).
    """
    del config  # the topology, not the widths, sets the receptive field
    hr = 2  # input block: two convs at level 0
    for k in range(1, LEVELS + 1):
        hr += 2 ** (k - 1)  # pooling
        hr += 2 * 2**k  # two convs at level k
    for k in range(LEVELS, 0, -1):
        hr += 2**k  # bilinear from level k
        hr += 2 * 2 ** (k - 1)  # two convs at level k-1
    hr += 1  # residual conv
    return math.ceil(hr / SCALE) + 4


def recommended_tile_overlap(config) -> int:
    """Tile overlap (LR pixels) for the model card: the receptive field, rounded up to DIVISOR."""
    radius = receptive_field_radius_lr(config)
    return DIVISOR * math.ceil(radius / DIVISOR)
