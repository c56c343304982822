"""Loss functions of the paper (de Haan et al., Sci. Rep. 9, 12050, 2019, Methods, Eqs. 1-4).

All functions take float tensors (N, H, W, 1) or discriminator outputs (N, 1) and return scalar
float32 tensors (means over the batch), so they work unchanged under a mixed precision policy
and inside ``tf.distribute`` replicas (where Keras scales per-replica losses).
"""

from __future__ import annotations

import tensorflow as tf

from zoo.nets.presets import PIXEL_LOSSES


def _f32(x):
    return tf.cast(x, tf.float32)


def total_variation(images) -> tf.Tensor:
    """Anisotropic total variation, paper Eq. 3, as a mean per pixel.

    .. math:: TV(G(x)) = \\sum_{i,j} |G(x)_{i+1,j} - G(x)_{i,j}| + |G(x)_{i,j+1} - G(x)_{i,j}|

    Averaged over the differences (and the batch) instead of summed, so that its weight does
    not depend on the patch size.

    Parameters
    ----------
    images : tensor (N, H, W, C)

    Returns
    -------
    tensor, scalar float32
    """
    images = _f32(images)
    dy = tf.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
    dx = tf.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
    return tf.reduce_mean(dy) + tf.reduce_mean(dx)


def focus_weights(focus, gap_weight: float, contact_weight: float) -> tf.Tensor:
    """Per-pixel L1 weights from a :mod:`zoo.data.focus` mask: 1 + ``gap_weight`` on the gap
    bands (``GAP``), 1 + ``contact_weight`` on the contact bands (``CONTACT``), 1 elsewhere."""
    from zoo.data.focus import CONTACT, GAP

    focus = _f32(focus)
    return (1.0 + gap_weight * tf.cast(tf.equal(focus, float(GAP)), tf.float32)
            + contact_weight * tf.cast(tf.equal(focus, float(CONTACT)), tf.float32))


def l1_loss(enhanced, target, weights=None, *, squared: bool = False) -> tf.Tensor:
    """Mean absolute error between the network output G(x) and the registered HR z (Eq. 1).

    With ``weights`` (broadcastable to the images, >= 0) the weighted mean
    sum(w |G(x) - z|) / sum(w): the gap-weighted L1 of :mod:`zoo.data.focus`, on the same scale
    as the plain one (all weights equal gives the plain mean). ``squared`` takes the (weighted)
    mean of the squared error instead (``TrainingConfig.pixel_loss == "mse"``).
    """
    difference = _f32(enhanced) - _f32(target)
    error = tf.square(difference) if squared else tf.abs(difference)
    if weights is None:
        return tf.reduce_mean(error)
    weights = tf.broadcast_to(_f32(weights), tf.shape(error))
    return tf.reduce_sum(weights * error) / tf.maximum(tf.reduce_sum(weights), 1e-12)


def adversarial_loss(d_of_enhanced) -> tf.Tensor:
    """The generator's least-squares adversarial term (1 - D(G(x)))^2 of Eq. 1, batch mean."""
    return tf.reduce_mean(tf.square(1.0 - _f32(d_of_enhanced)))


def generator_loss(enhanced, target, d_of_enhanced, *, alpha: float, beta: float, weights=None,
                   pixel_loss: str = "l1") -> dict:
    """Generator loss, paper Eq. 1, with its terms.

    .. math:: L_G = L_1(G(x), z) + \\alpha \\, TV(G(x)) + \\beta \\, (1 - D(G(x)))^2

    Parameters
    ----------
    enhanced : tensor (N, H, W, 1)
        The generator's output G(x).
    target : tensor (N, H, W, 1)
        The registered high-resolution image z.
    d_of_enhanced : tensor (N, 1)
        The discriminator's output D(G(x)) in [0, 1].
    alpha, beta : float
        Weights of total variation (Eq. 3) and of the adversarial term.
    weights : tensor (N, H, W, 1), optional
        Per-pixel L1 weights (see :func:`l1_loss`); ``l1`` is then the weighted term.
    pixel_loss : "l1" or "mse"
        The pixel term: the paper's L1, or the mean squared error (returned as ``l1`` too).

    Returns
    -------
    dict
        ``total``, the unweighted terms ``l1``, ``tv``, ``adversarial``, and each weighted
        term's share of the total (``share_l1``, ``share_tv``, ``share_adversarial``; the paper
        reports ~14%, ~2% and ~84%).
    """
    if pixel_loss not in PIXEL_LOSSES:
        raise ValueError(f"pixel_loss must be 'l1' or 'mse', got {pixel_loss!r}")
    l1 = l1_loss(enhanced, target, weights, squared=pixel_loss == "mse")
    tv = total_variation(enhanced)
    adv = adversarial_loss(d_of_enhanced)
    weighted_tv = alpha * tv
    weighted_adv = beta * adv
    total = l1 + weighted_tv + weighted_adv
    safe = tf.maximum(total, 1e-12)
    return {
        "total": total,
        "l1": l1,
        "tv": tv,
        "adversarial": adv,
        "share_l1": l1 / safe,
        "share_tv": weighted_tv / safe,
        "share_adversarial": weighted_adv / safe,
    }


def discriminator_loss(d_of_enhanced, d_of_target) -> tf.Tensor:
    """Least-squares discriminator loss, paper Eq. 4, batch mean.

    .. math:: L_D = D(G(x))^2 + (1 - D(z))^2

    Parameters
    ----------
    d_of_enhanced : tensor (N, 1)
        D(G(x)), the discriminator on enhanced images (target 0).
    d_of_target : tensor (N, 1)
        D(z), the discriminator on registered HR images (target 1).
    """
    return tf.reduce_mean(tf.square(_f32(d_of_enhanced))) + tf.reduce_mean(tf.square(1.0 - _f32(d_of_target)))
