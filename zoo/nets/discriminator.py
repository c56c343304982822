"""The discriminator: a VGG-style classifier of real vs enhanced HR patches (Fig. 1b).

de Haan et al., Sci. Rep. 9, 12050 (2019), Fig. 1b: blocks of two 3x3 convolutions with leaky
ReLUs, the second with stride 2; global average pooling; two fully connected layers; sigmoid,
so D(z) is the probability that ``z`` is a real HR image. Global pooling makes it accept any
patch size.

``d_head="patch"`` (not in the paper) replaces the pooling and the dense layers with their 1x1
convolution equivalents applied at every position of the last feature map, as in pix2pix's
PatchGAN: D then scores every (2**len(d_widths))-pixel cell of the patch separately, so a dim or
smeared particle in one corner is penalised there instead of being averaged away with the rest
of the patch. The least-squares losses (Eqs. 1 and 4) are means over those scores.
"""

from __future__ import annotations

import keras


def build_discriminator(config, *, name: str = "discriminator") -> keras.Model:
    """Build the discriminator for a :class:`~zoo.nets.presets.TrainingConfig`.

    Block k: conv 3x3 (stride 1) -> ``d_widths[k]``, conv 3x3 stride 2 -> ``d_widths[k]``, each
    followed by a leaky ReLU; then global average pooling, dense ``d_dense`` + leaky ReLU,
    dense 1 + sigmoid (kept in float32 under a mixed precision policy): output (N, 1).
    With ``config.d_head == "patch"`` the same head is applied per position by 1x1
    convolutions: output (N, H / 2**k, W / 2**k, 1) for k = ``len(d_widths)``.
    """
    slope = float(config.leaky_slope)
    inputs = keras.Input(shape=(None, None, 1), name="hr")
    x = inputs
    for k, width in enumerate(config.d_widths, start=1):
        x = keras.layers.Conv2D(int(width), 3, padding="same", name=f"block{k}_conv1")(x)
        x = keras.layers.LeakyReLU(negative_slope=slope, name=f"block{k}_lrelu1")(x)
        x = keras.layers.Conv2D(int(width), 3, strides=2, padding="same", name=f"block{k}_conv2")(x)
        x = keras.layers.LeakyReLU(negative_slope=slope, name=f"block{k}_lrelu2")(x)
    head = config.d_head
    if head == "patch":
        x = keras.layers.Conv2D(int(config.d_dense), 1, name="dense1")(x)
        x = keras.layers.LeakyReLU(negative_slope=slope, name="dense1_lrelu")(x)
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="real_probability", dtype="float32")(x)
    elif head == "global":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dense(int(config.d_dense), name="dense1")(x)
        x = keras.layers.LeakyReLU(negative_slope=slope, name="dense1_lrelu")(x)
        outputs = keras.layers.Dense(1, activation="sigmoid", name="real_probability", dtype="float32")(x)
    else:
        raise ValueError(f"unknown discriminator head {head!r}: use 'global' or 'patch'")
    return keras.Model(inputs, outputs, name=name)
