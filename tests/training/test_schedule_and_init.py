"""Learning-rate schedule and runs started from a zoo version (`semzoo train --init-from`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.nets.toy_data import SAMPLE, toy_data
from zoo.errors import UserError
from zoo.nets.presets import get_preset
from zoo.training import train as T


def test_cosine_schedule_runs_from_the_set_rates_to_the_final_fraction():
    config = get_preset("tiny").replace(steps=101, lr_schedule="cosine", lr_final_fraction=0.1,
                                        g_learning_rate=2e-4, d_learning_rate=1e-4)
    rates = [config.learning_rates(step) for step in range(config.steps)]
    assert rates[0] == pytest.approx((2e-4, 1e-4))
    assert rates[50] == pytest.approx((1.1e-4, 0.55e-4))  # half way: the mean of the two ends
    assert rates[-1] == pytest.approx((2e-5, 1e-5))
    g = np.array([r[0] for r in rates])
    assert np.all(np.diff(g) < 0)
    assert config.learning_rates(10_000) == pytest.approx((2e-5, 1e-5))  # clamped past the end
    constant = get_preset("tiny")
    assert {constant.learning_rates(s) for s in (0, 7, 10_000)} == {(1e-3, 1e-3)}


def test_warm_up_ramps_both_rates_linearly_then_hands_over_to_the_schedule():
    config = get_preset("tiny").replace(steps=100, lr_schedule="cosine", lr_final_fraction=0.1,
                                        lr_warmup_steps=10, g_learning_rate=2e-4, d_learning_rate=1e-4)
    plain = config.replace(lr_warmup_steps=0)
    for step in range(10):
        g, d = config.learning_rates(step)
        pg, pd = plain.learning_rates(step)
        assert (g, d) == pytest.approx(((step + 1) / 10 * pg, (step + 1) / 10 * pd))
    assert config.learning_rates(0)[0] == pytest.approx(2e-5)
    assert [config.learning_rates(s) for s in range(10, 100)] == [plain.learning_rates(s) for s in range(10, 100)]


def test_schedule_settings_are_checked():
    with pytest.raises(UserError, match="lr_schedule"):
        get_preset("tiny").replace(lr_schedule="linear")
    with pytest.raises(UserError, match="lr_final_fraction"):
        get_preset("tiny").replace(lr_final_fraction=0.0)
    with pytest.raises(UserError, match="lr_warmup_steps"):
        get_preset("tiny").replace(lr_warmup_steps=-1)


def _rate_probe(seen):
    import keras

    def record(step, logs):
        model = probe.model
        seen.append((float(model.g_optimizer.learning_rate.numpy()),
                     float(model.d_optimizer.learning_rate.numpy())))

    probe = keras.callbacks.LambdaCallback(on_train_batch_end=record)
    return probe


@pytest.mark.slow
def test_training_applies_the_schedule_at_every_step(tmp_path):
    seen = []
    overrides = {"lr_schedule": "cosine", "lr_final_fraction": 0.25}
    T.train(None, tmp_path / "run", sample_type=SAMPLE, preset="tiny", steps=5, seed=1,
            data=toy_data(), callbacks=[_rate_probe(seen)], overrides=overrides)
    config = get_preset("tiny").replace(steps=5, **overrides)
    np.testing.assert_allclose(seen, [config.learning_rates(s) for s in range(5)], rtol=1e-6)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert stored["lr_schedule"] == "cosine" and stored["lr_final_fraction"] == 0.25


@pytest.mark.slow
def test_a_run_initialised_from_weights_starts_from_them_with_a_warmed_up_discriminator(tmp_path):
    import keras

    from zoo.nets.generator import build_generator
    from zoo.training.publish import card_from_run

    keras.utils.set_random_seed(123)
    parent = build_generator(get_preset("tiny"))
    weights = parent.get_weights()
    start = {}

    class AtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            start["g"] = self.model.generator.get_weights()
            start["ema"] = self.model.ema_generator.get_weights()
            start["d"] = self.model.discriminator.get_weights()
            start["d_steps"] = int(self.model.d_optimizer.iterations.numpy())

    init = T.InitialGenerator(ref="parent-model:3", weights=weights, discriminator_warmup=3)
    run = T.train(None, tmp_path / "run", sample_type=SAMPLE, preset="tiny", steps=2, seed=1,
                  data=toy_data(), callbacks=[AtStart()], init_from=init)
    for got, want in zip(start["g"], weights):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(start["ema"], weights):
        np.testing.assert_array_equal(got, want)
    assert start["d_steps"] == 3  # the discriminator trained alone before the first G step
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["initialised_from"] == "parent-model:3"
    # Publishing records the version it descends from as the card's parent.
    card = card_from_run(T.load_run(tmp_path / "run"), name="child",
                         tile={"size": 256, "overlap": 64, "divisor": 8})
    assert card["parent"] == "parent-model:3"
    # A resumed continuation keeps the lineage.
    T.train(None, tmp_path / "run", sample_type=SAMPLE, preset="tiny", steps=3, resume=True,
            data=toy_data())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["initialised_from"] == "parent-model:3" and len(config["resumed"]) == 1
    # What the continuation changed is on record.
    assert config["resumed"][0]["changed"] == {"steps": {"from": 2, "to": 3}}
    assert run.history["steps_done"] == 2


@pytest.mark.slow
def test_initial_generator_reads_a_zoo_version_and_refuses_mismatches(tmp_path):
    from tests.zoo_fixtures import make_tiny_zoo, tiny_generator

    root = make_tiny_zoo(tmp_path / "models", seeds=[5])
    init = T.initial_generator(root, "tiny@stable", preset="tiny", lr_pixel_size_nm=14.2)
    assert init.ref == "tiny:1"
    want = tiny_generator(5).get_weights()
    assert len(init.weights) == len(want)
    for got, expected in zip(init.weights, want):
        np.testing.assert_allclose(got, expected, rtol=0, atol=0)
    with pytest.raises(UserError, match="'tiny' preset, not 'small'"):
        T.initial_generator(root, "tiny", preset="small")
    with pytest.raises(UserError, match="takes 14.2 nm pixels, the data set has 56.8 nm"):
        T.initial_generator(root, "tiny", preset="tiny", lr_pixel_size_nm=56.8)
    with pytest.raises(UserError, match="no model named 'other'"):
        T.initial_generator(root, "other", preset="tiny")
