"""End to end with the real training code: a 2-step tiny run -> publish_run -> zoo version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.registry.store import Zoo

MANIFEST = {
    "sample_type": "gold-on-carbon",
    "lr_pixel_size_nm": 14.2,
    "hr_pixel_size_nm": 7.1,
    "scale": 2,
    "patch_size": 32,
    "pairs": [{"name": "pair-000", "split": "train", "correlation": 0.9, "residual_px": 0.2,
               "patches_kept": 8, "patches_dropped": 0}],
    "patches": {"train": 8, "val": 0, "dropped": 0},
    "dataset_hash": "feedc0de",
    "simulated": True,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import tensorflow as tf

    from zoo.training.train import TrainingData, train

    rng = np.random.default_rng(0)
    lr = rng.standard_normal((8, 16, 16, 1)).astype(np.float32)
    hr = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)

    def train_ds(batch_size, seed):
        return tf.data.Dataset.from_tensor_slices((lr, hr)).repeat().shuffle(8, seed=seed).batch(batch_size)

    run_dir = tmp_path_factory.mktemp("run") / "run"
    data = TrainingData(dict(MANIFEST), train_ds, None, "synthetic")
    train(None, run_dir, sample_type="gold-on-carbon", preset="tiny", steps=2, data=data)
    (run_dir / "evaluation.json").write_text(json.dumps({"output": {"psnr": 21.5}}))
    return run_dir


@pytest.mark.slow
def test_a_real_run_publishes_a_servable_version(tiny_run, tmp_path):
    import tensorflow as tf

    from zoo.training.publish import publish_run
    from zoo.training.train import load_run

    name, version = publish_run(tiny_run, "gold-on-carbon", tmp_path / "models", label="stable")
    zoo = Zoo(tmp_path / "models")
    assert (name, version) == ("gold-on-carbon", 1) and zoo.verify(name, 1) == []
    card = zoo.card("gold-on-carbon@stable")
    assert card["training"]["steps"] == 2 and card["training"]["preset"] == "tiny"
    assert card["training"]["dataset_hash"] == "feedc0de"
    assert card["evaluation"] == {"output": {"psnr": 21.5}}
    assert card["tile"]["divisor"] == 8 and card["tile"]["overlap"] % 8 == 0
    # The overlap covers the exact receptive field the run recorded (the gradient probe can
    # under-read it: far-away gradients underflow in float32).
    from zoo.nets.generator import receptive_field_radius_lr
    from zoo.nets.presets import get_preset

    assert card["tile"]["overlap"] >= receptive_field_radius_lr(get_preset("tiny"))

    # The served function is the run's EMA generator, on a size it never saw.
    image = np.random.default_rng(1).standard_normal((1, 24, 40, 1)).astype(np.float32)
    served = tf.saved_model.load(str(zoo.version_dir(name, 1))).signatures["serving_default"]
    out = served(image=tf.constant(image))["enhanced"].numpy()
    expected = np.asarray(load_run(tiny_run).generator(image, training=False))
    np.testing.assert_allclose(out, expected, atol=1e-5)
