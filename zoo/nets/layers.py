"""Exportable x2 upsampling layers with dynamic H, W.

Keras 3's ``UpSampling2D(interpolation="bilinear")`` does not trace inside an exported
``tf.function`` whose H, W are ``None`` (OperatorNotAllowedInGraphError), so both x2 resamplers
here are built from ops that take their sizes from ``tf.shape`` at run time: a gather with
clamped indices (OpenCV's replicated border), fixed-weight sums for the two output phases, and
an interleave of the phases by reshape.

Pixel-centre convention (DESIGN.md): output pixel ``u`` samples input coordinate
``(u + 0.5) / 2 - 0.5``, so output ``2i`` samples ``i - 0.25`` and ``2i + 1`` samples ``i + 0.25``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


def lanczos4_weights(fraction: float) -> np.ndarray:
    """OpenCV's 8 Lanczos-4 weights for sub-pixel offset ``fraction`` in [0, 1), summing to 1.

    Taps are at ``floor(x) - 3 ... floor(x) + 4``. Mirrors ``interpolateLanczos4`` in OpenCV's
    imgproc/resize.cpp (computed in double, normalised, stored as float32), so that the
    convolution below reproduces ``cv2.resize(..., INTER_LANCZOS4)`` to float rounding.
    """
    s45 = math.sqrt(0.5)
    cs = [(1, 0), (-s45, -s45), (0, 1), (s45, -s45), (-1, 0), (s45, s45), (0, -1), (-s45, s45)]
    y0 = -(fraction + 3) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    coeffs = np.empty(8, np.float32)
    for i in range(8):
        dist = fraction + 3 - i
        if abs(dist) >= 1e-6:
            y = -dist * math.pi * 0.25
            coeffs[i] = (cs[i][0] * s0 + cs[i][1] * c0) / (y * y)
        else:  # the sample sits on a tap: OpenCV uses a huge weight that normalises to 1
            coeffs[i] = 1e30
    return (coeffs * np.float32(1.0 / coeffs.sum(dtype=np.float32))).astype(np.float32)


def _lanczos_phase_kernel() -> np.ndarray:
    """(9, 2) weights over source taps i-4 ... i+4 for output phases 2i (col 0) and 2i+1 (col 1)."""
    kernel = np.zeros((9, 2), np.float32)
    # Output 2i samples i - 0.25: floor = i - 1, fraction 0.75, taps i-4 ... i+3.
    kernel[0:8, 0] = lanczos4_weights(0.75)
    # Output 2i+1 samples i + 0.25: floor = i, fraction 0.25, taps i-3 ... i+4.
    kernel[1:9, 1] = lanczos4_weights(0.25)
    return kernel


def _clamped_pad(x: tf.Tensor, pad: int, axis: int) -> tf.Tensor:
    """Pad ``x`` by ``pad`` samples on both sides of ``axis``, replicating the edge (OpenCV's
    resize clamps source indices at the border)."""
    n = tf.shape(x)[axis]
    index = tf.clip_by_value(tf.range(-pad, n + pad), 0, n - 1)
    return tf.gather(x, index, axis=axis)


@keras.saving.register_keras_serializable(package="semzoo")
class LanczosUpsample2x(keras.layers.Layer):
    """x2 upsampling identical to ``cv2.resize(x, (2w, 2h), interpolation=cv2.INTER_LANCZOS4)``.

    The generator's first layer (paper, Fig. 1a: the network refines a Lanczos-upsampled input).
    It reproduces :func:`zoo.data.register.lanczos_upsample2x` to float32 rounding, borders
    included, for any H, W (also ``None`` in an exported function), so training and serving
    see the same input. Separable: two 9-tap 1-D convolutions with two phase kernels each,
    interleaved by reshape. Each channel is resampled independently. Always computes in
    float32 (exactness matters more than the few FLOPs bfloat16 would save).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        kernel = _lanczos_phase_kernel()
        self._kernel_w = tf.constant(kernel.reshape(1, 9, 1, 2))
        self._kernel_h = tf.constant(kernel.reshape(9, 1, 1, 2))

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        # Channels into the batch: (N, H, W, C) -> (N*C, H, W, 1).
        x = tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (n * c, h, w, 1))
        # Along W: (N*C, H, W, 2 phases) -> interleave phases -> (N*C, H, 2W, 1).
        x = tf.nn.conv2d(_clamped_pad(x, 4, 2), self._kernel_w, strides=1, padding="VALID")
        x = tf.reshape(x, (n * c, h, 2 * w, 1))
        # Along H: (N*C, H, 2W, 2) -> (N*C, H, 2, 2W) -> (N*C, 2H, 2W).
        x = tf.nn.conv2d(_clamped_pad(x, 4, 1), self._kernel_h, strides=1, padding="VALID")
        x = tf.reshape(tf.transpose(x, (0, 1, 3, 2)), (n, c, 2 * h, 2 * w))
        return tf.transpose(x, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, c)


@keras.saving.register_keras_serializable(package="semzoo")
class BilinearUpsample2x(keras.layers.Layer):
    """x2 bilinear upsampling (half-pixel centres, replicated border), exportable with dynamic H, W.

    Equal to ``tf.image.resize(x, (2H, 2W), "bilinear")`` and ``cv2.INTER_LINEAR``: output 2i is
    ``0.25 x[i-1] + 0.75 x[i]``, output 2i+1 is ``0.75 x[i] + 0.25 x[i+1]``. Used in the U-Net's
    up-sampling path (paper, Fig. 1a).
    """

    def call(self, inputs):
        x = inputs
        for axis in (2, 1):
            n = tf.shape(x)[axis]
            idx = tf.range(n)
            prev = tf.gather(x, tf.maximum(idx - 1, 0), axis=axis)
            nxt = tf.gather(x, tf.minimum(idx + 1, n - 1), axis=axis)
            even = 0.25 * prev + 0.75 * x
            odd = 0.75 * x + 0.25 * nxt
            shape = tf.unstack(tf.shape(x))
            shape[axis] = 2 * n
            x = tf.reshape(tf.stack([even, odd], axis=axis + 1), tf.stack(shape))
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, c)
