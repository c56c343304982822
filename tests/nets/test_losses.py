"""Paper Eqs. 1, 3 and 4 on tensors whose values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.nets import losses


def test_total_variation_is_mean_absolute_neighbour_difference():
    image = np.array([[0, 1, 3], [2, 2, 2]], np.float32)[None, :, :, None]
    # vertical |2-0|,|2-1|,|2-3| -> mean 4/3; horizontal |1-0|,|3-1|,|2-2|,|2-2| -> mean 3/4
    assert float(losses.total_variation(image)) == pytest.approx(4 / 3 + 3 / 4)
    assert float(losses.total_variation(np.full((2, 5, 4, 1), 7, np.float32))) == 0.0


def test_total_variation_is_anisotropic_not_euclidean():
    diagonal = np.array([[0, 1], [1, 2]], np.float32)[None, :, :, None]
    assert float(losses.total_variation(diagonal)) == pytest.approx(2.0)  # |dx| + |dy|, not sqrt


def test_generator_loss_terms_weights_and_shares(rng):
    hr = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    sr = hr + 0.5
    d = np.array([[0.25], [0.75]], np.float32)
    terms = losses.generator_loss(sr, hr, d, alpha=0.1, beta=2.0)
    tv = float(losses.total_variation(sr))
    adversarial = (0.75**2 + 0.25**2) / 2
    assert float(terms["l1"]) == pytest.approx(0.5)
    assert float(terms["tv"]) == pytest.approx(tv)
    assert float(terms["adversarial"]) == pytest.approx(adversarial)
    total = 0.5 + 0.1 * tv + 2.0 * adversarial
    assert float(terms["total"]) == pytest.approx(total, rel=1e-6)
    shares = [float(terms[k]) for k in ("share_l1", "share_tv", "share_adversarial")]
    assert sum(shares) == pytest.approx(1.0)
    assert shares[2] == pytest.approx(2.0 * adversarial / total, rel=1e-6)


def test_weighted_l1_is_the_weighted_mean_and_uniform_weights_give_the_plain_one(rng):
    hr = np.zeros((1, 2, 2, 1), np.float32)
    sr = np.array([1, 2, 3, 4], np.float32).reshape(1, 2, 2, 1)
    weights = np.array([1, 1, 1, 5], np.float32).reshape(1, 2, 2, 1)  # focus_weight 4 on one pixel
    assert float(losses.l1_loss(sr, hr, weights)) == pytest.approx((1 + 2 + 3 + 20) / 8)
    assert float(losses.l1_loss(sr, hr)) == pytest.approx(2.5)
    hr = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    sr = hr + rng.standard_normal(hr.shape).astype(np.float32)
    assert float(losses.l1_loss(sr, hr, np.full(hr.shape, 3, np.float32))) == pytest.approx(
        float(losses.l1_loss(sr, hr)), rel=1e-6)
    d = np.full((2, 1), 0.5, np.float32)
    focus = np.zeros(hr.shape, np.float32)
    focus[:, 2:4] = 1
    terms = losses.generator_loss(sr, hr, d, alpha=0.1, beta=1.0, weights=1 + 4 * focus)
    assert float(terms["l1"]) == pytest.approx(float(losses.l1_loss(sr, hr, 1 + 4 * focus)))
    assert float(terms["l1"]) != pytest.approx(float(losses.l1_loss(sr, hr)))


def test_mse_pixel_loss_is_the_weighted_mean_squared_error():
    hr = np.zeros((1, 2, 2, 1), np.float32)
    sr = np.array([1, 2, 3, 4], np.float32).reshape(1, 2, 2, 1)
    weights = np.array([1, 1, 1, 5], np.float32).reshape(1, 2, 2, 1)
    assert float(losses.l1_loss(sr, hr, squared=True)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert float(losses.l1_loss(sr, hr, weights, squared=True)) == pytest.approx((1 + 4 + 9 + 80) / 8)
    d = np.full((1, 1), 1.0, np.float32)  # adversarial term 0
    terms = losses.generator_loss(sr, hr, d, alpha=0.0, beta=1.0, pixel_loss="mse")
    assert float(terms["l1"]) == pytest.approx(7.5)
    assert float(terms["total"]) == pytest.approx(7.5)
    assert float(losses.generator_loss(sr, hr, d, alpha=0.0, beta=1.0)["l1"]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="pixel_loss"):
        losses.generator_loss(sr, hr, d, alpha=0.0, beta=1.0, pixel_loss="l2")


def test_focus_weights_weight_gap_and_contact_bands_apart():
    mask = np.array([0, 1, 2, 1], np.float32).reshape(1, 2, 2, 1)  # background, gap, contact, gap
    np.testing.assert_allclose(np.ravel(losses.focus_weights(mask, 8.0, 2.0)), [1, 9, 3, 9])
    np.testing.assert_allclose(np.ravel(losses.focus_weights(mask, 0.0, 0.0)), [1, 1, 1, 1])


def test_discriminator_loss_is_least_squares():
    assert float(losses.discriminator_loss(np.zeros((3, 1)), np.ones((3, 1)))) == 0.0  # perfect D
    assert float(losses.discriminator_loss(np.ones((2, 1)), np.zeros((2, 1)))) == pytest.approx(2.0)
    assert float(losses.discriminator_loss(np.full((4, 1), 0.5), np.full((4, 1), 0.5))) == pytest.approx(0.5)


def test_losses_are_float32_for_bfloat16_inputs():
    import tensorflow as tf

    x = tf.cast(tf.ones((1, 4, 4, 1)), tf.bfloat16)
    assert losses.total_variation(x).dtype == tf.float32
    assert losses.generator_loss(x, x, tf.cast(tf.ones((1, 1)), tf.bfloat16), alpha=1, beta=1)["total"].dtype == tf.float32
