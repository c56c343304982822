"""The x2 resampling layers equal their references (OpenCV Lanczos-4, bilinear) on any size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from zoo.data.register import lanczos_upsample2x
from zoo.nets.layers import BilinearUpsample2x, LanczosUpsample2x, lanczos4_weights

SIZES = [(1, 1), (1, 6), (2, 3), (5, 4), (7, 7), (8, 8), (13, 21), (40, 24)]


def test_lanczos_weights_are_opencvs_normalised_kernel():
    for fraction in (0.0, 0.25, 0.5, 0.75):
        w = lanczos4_weights(fraction)
        assert w.shape == (8,) and w.dtype == np.float32
        assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(lanczos4_weights(0.25), lanczos4_weights(0.75)[::-1], atol=1e-7)
    assert lanczos4_weights(0.0)[3] == pytest.approx(1.0)  # on a tap: that tap only


@pytest.mark.parametrize("h, w", SIZES)
def test_lanczos_upsample2x_equals_cv2_including_borders(rng, h, w):
    image = (rng.standard_normal((h, w)) * 3 + 1).astype(np.float32)
    expected = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LANCZOS4)
    got = LanczosUpsample2x()(image[None, :, :, None]).numpy()[0, :, :, 0]
    assert got.shape == (2 * h, 2 * w)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * max(1.0, np.abs(expected).max()))


def test_lanczos_upsample2x_treats_batch_and_channels_independently(rng):
    images = rng.standard_normal((3, 6, 10, 2)).astype(np.float32)
    got = LanczosUpsample2x()(images).numpy()
    for n in range(3):
        for c in range(2):
            expected = cv2.resize(images[n, :, :, c], (20, 12), interpolation=cv2.INTER_LANCZOS4)
            np.testing.assert_allclose(got[n, :, :, c], expected, atol=2e-5)


def test_lanczos_layer_matches_the_data_pipelines_definition(rng):
    image = rng.standard_normal((24, 40)).astype(np.float32)
    got = LanczosUpsample2x()(image[None, :, :, None]).numpy()[0, :, :, 0]
    np.testing.assert_allclose(got, lanczos_upsample2x(image), atol=2e-5)


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5), (8, 6)])
def test_bilinear_upsample2x_equals_tf_image_resize_and_cv2(rng, h, w):
    import tensorflow as tf

    images = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    got = BilinearUpsample2x()(images).numpy()
    expected = tf.image.resize(images, (2 * h, 2 * w), method="bilinear").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    expected_cv2 = cv2.resize(images[0, :, :, 0], (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got[0, :, :, 0], expected_cv2, atol=1e-5)


def test_layers_trace_with_unknown_height_and_width(rng):
    import tensorflow as tf

    lanczos, bilinear = LanczosUpsample2x(), BilinearUpsample2x()
    fn = tf.function(lambda x: (lanczos(x), bilinear(x)),
                     input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32)])
    image = rng.standard_normal((1, 5, 9, 1)).astype(np.float32)
    a, b = fn(image)
    assert a.shape == (1, 10, 18, 1) and b.shape == (1, 10, 18, 1)
    np.testing.assert_allclose(a.numpy()[0, :, :, 0],
                               cv2.resize(image[0, :, :, 0], (18, 10), interpolation=cv2.INTER_LANCZOS4),
                               atol=2e-5)
