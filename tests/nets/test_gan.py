"""SRGAN's custom train step: D every 4th step, G every step, EMA, metrics, strategies, precision."""

from __future__ import annotations

import numpy as np
import pytest

from tests.nets.toy_data import toy_data
from zoo.nets.presets import get_preset


def _srgan(seed=0, **changes):
    import keras

    from zoo.training.train import build_srgan

    keras.utils.set_random_seed(seed)
    return build_srgan(get_preset("tiny").replace(**changes), seed=seed)


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def _changed(before, model):
    return [not np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights)]


@pytest.mark.slow
def test_d_updates_every_fourth_step_g_every_step_ema_follows_and_losses_fall():
    model = _srgan()
    iterator = iter(toy_data().train(4, 0))
    model.make_train_function()
    d_updates, d_iterations = [], []
    for step in range(9):
        g_before, d_before = _weights(model.generator), _weights(model.discriminator)
        ema_before = _weights(model.ema_generator)
        logs = model.train_function(iterator)
        assert all(_changed(g_before, model.generator)), f"generator not updated at step {step}"
        assert all(_changed(ema_before, model.ema_generator)), f"EMA not updated at step {step}"
        d_changed = _changed(d_before, model.discriminator)
        assert all(d_changed) or not any(d_changed)
        d_updates.append(all(d_changed))
        d_iterations.append(int(model.d_optimizer.iterations.numpy()))
        if step == 0:
            first = {k: float(logs[k]) for k in ("l1", "g_loss")}
        assert np.isfinite(float(logs["g_loss"]))
        if step == 1:
            # EMA with the warm-up decay min(0.9, (1 + t) / (10 + t)) at t = 1: 2/11
            decay = 2 / 11
            for ema, old, new in zip(model.ema_generator.weights, ema_before, model.generator.weights):
                np.testing.assert_allclose(ema.numpy(), decay * old + (1 - decay) * new.numpy(), atol=1e-6)
    assert d_updates == [s % 4 == 0 for s in range(9)]
    assert d_iterations == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert int(model.step_counter.numpy()) == 9
    assert int(model.g_optimizer.iterations.numpy()) == 9
    averaged = model.averaged_generator()
    for a, b in zip(averaged.weights, model.ema_generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not model.ema_generator.trainable_weights

    # Keep training the same model on the toy set: the losses fall.
    history = []
    for _ in range(40):
        model.reset_metrics()
        history.append({k: float(v) for k, v in model.train_function(iterator).items()})
    last = {k: np.mean([h[k] for h in history[-5:]]) for k in ("l1", "g_loss")}
    assert last["l1"] < 0.85 * first["l1"]
    assert last["g_loss"] < first["g_loss"]
    shares = [history[-1][k] for k in ("share_l1", "share_tv", "share_adversarial")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    assert {"d_loss", "d_real", "d_fake", "tv", "adversarial"} <= set(history[-1])


def test_validation_reports_l1_psnr_ssim_of_the_ema_generator():
    model = _srgan()
    logs = model.evaluate(toy_data().val(4), verbose=0, return_dict=True)
    assert set(logs) == {"l1", "psnr", "ssim"}
    lr, hr = next(iter(toy_data().val(4)))
    expected = np.mean(np.abs(model.ema_generator(lr).numpy() - hr.numpy()))
    assert logs["l1"] == pytest.approx(expected, rel=1e-5)
    assert 10 < logs["psnr"] < 60 and 0 < logs["ssim"] <= 1


def test_compile_config_round_trip_and_steps_per_execution_check():
    import keras

    from zoo.nets.gan import SRGAN

    model = _srgan()
    config = model.get_compile_config()
    clone = SRGAN.from_config(model.get_config())
    clone.build((None, None, None, 1))
    clone.compile_from_config(config)
    assert clone.g_optimizer.learning_rate.numpy() == pytest.approx(model.g_optimizer.learning_rate.numpy())
    assert clone.d_optimizer.learning_rate.numpy() == pytest.approx(get_preset("tiny").d_learning_rate)
    assert clone.d_every == 4 and clone.beta == model.beta
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), steps_per_execution=2)


@pytest.mark.slow
def test_fit_under_mirrored_strategy_and_mixed_bfloat16():
    import keras
    import tensorflow as tf

    from zoo.training.train import build_srgan

    data = toy_data()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with strategy.scope():
            model = build_srgan(get_preset("tiny"))
        assert model.generator.get_layer("down1_conv1").compute_dtype == "bfloat16"
        history = model.fit(data.train(4, 0), steps_per_epoch=5, epochs=1, verbose=0, shuffle=False,
                            validation_data=data.val(4))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert int(model.d_optimizer.iterations.numpy()) == 2  # steps 0 and 4
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert "val_psnr" in history.history and "share_adversarial" in history.history
    averaged = model.averaged_generator()
    assert averaged.get_layer("down1_conv1").compute_dtype == "float32"
    out = averaged(np.zeros((1, 8, 16, 1), np.float32))
    assert out.dtype == tf.float32 and tuple(out.shape) == (1, 16, 32, 1)


@pytest.mark.slow
def test_label_noise_is_seeded_and_changes_the_discriminator_targets():
    import keras

    from zoo.nets.gan import SRGAN

    lr, hr = next(iter(toy_data().val(4)))
    base = _srgan(seed=0)

    def d_loss(label_noise, seed):
        model = SRGAN(base.generator, base.discriminator, label_noise=label_noise, seed=seed)
        model.build((None, None, None, 1))
        model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
        weights = [w.numpy() for w in model.discriminator.weights]
        loss = float(model._discriminator_step(lr, hr)[0])
        for w, value in zip(model.discriminator.weights, weights):
            w.assign(value)  # undo the update so each call starts from the same D
        return loss

    clean, noisy, again, other_seed = d_loss(0.0, 1), d_loss(0.2, 1), d_loss(0.2, 1), d_loss(0.2, 2)
    assert noisy == pytest.approx(again, rel=1e-6)
    assert noisy != pytest.approx(clean, rel=1e-3)
    assert noisy != pytest.approx(other_seed, rel=1e-3)


def test_patch_discriminator_scores_every_cell_and_the_paper_head_one_per_patch():
    from zoo.nets.discriminator import build_discriminator

    tiny = get_preset("tiny")  # 2 stride-2 blocks: one score per 4x4-pixel cell
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 32, 48, 1)).astype("float32")
    assert tuple(build_discriminator(tiny)(z).shape) == (3, 1)
    patch = build_discriminator(tiny.replace(d_head="patch"))
    scores = np.asarray(patch(z))
    assert scores.shape == (3, 8, 12, 1)
    assert np.all((scores > 0) & (scores < 1))
    # Each score sees only its neighbourhood: changing one corner of the patch leaves the scores
    # of the far corner as they were.
    changed = z.copy()
    changed[:, :8, :8] += 3.0
    after = np.asarray(patch(changed))
    assert not np.allclose(after[:, 0, 0], scores[:, 0, 0])
    np.testing.assert_array_equal(after[:, -2:, -4:], scores[:, -2:, -4:])


def test_patch_head_losses_are_eq1_and_eq4_averaged_over_cells_and_d_still_every_fourth_step():
    import tensorflow as tf

    from zoo.nets import losses

    model = _srgan(d_head="patch")
    lr, hr = next(iter(toy_data().val(4)))
    enhanced = model.generator(lr, training=False)
    d_real, d_fake = model.discriminator(hr), model.discriminator(enhanced)
    assert tuple(d_real.shape) == (4, 8, 8, 1)
    expected = float(losses.discriminator_loss(d_fake, d_real))
    assert float(model._discriminator_step(lr, tf.cast(hr, tf.float32))[0]) == pytest.approx(expected, rel=1e-5)

    model = _srgan(d_head="patch")
    iterator = iter(toy_data().train(4, 0))
    model.make_train_function()
    updates = []
    for _ in range(5):
        before = _weights(model.discriminator)
        logs = model.train_function(iterator)
        updates.append(all(_changed(before, model.discriminator)))
        assert 0 < float(logs["d_fake"]) < 1 and np.isfinite(float(logs["g_loss"]))
    assert updates == [True, False, False, False, True]


def test_d_head_is_checked_and_settable():
    from zoo.errors import UserError
    from zoo.nets.presets import TrainingConfig

    assert TrainingConfig.parse_settings(["d_head=patch"]) == {"d_head": "patch"}
    with pytest.raises(UserError, match="d_head must be one of global, patch, got 'pixel'"):
        get_preset("tiny").replace(d_head="pixel")


def test_pixel_loss_mse_is_checked_settable_and_drives_the_generator_step():
    import tensorflow as tf

    from zoo.errors import UserError
    from zoo.nets.presets import TrainingConfig

    assert TrainingConfig.parse_settings(["pixel_loss=mse"]) == {"pixel_loss": "mse"}
    with pytest.raises(UserError, match="pixel_loss must be one of l1, mse, got 'l2'"):
        get_preset("tiny").replace(pixel_loss="l2")
    lr, hr = next(iter(toy_data().train(4, 0)))
    for kind in ("l1", "mse"):
        model = _srgan(pixel_loss=kind)
        assert model.get_config()["pixel_loss"] == kind
        error = tf.cast(model.generator(lr, training=True), tf.float32) - tf.cast(hr, tf.float32)
        expected = float(tf.reduce_mean(tf.square(error) if kind == "mse" else tf.abs(error)))
        logs = model._train_step((lr, hr), update_discriminator=False)
        assert float(logs["l1"]) == pytest.approx(expected, rel=1e-4)
