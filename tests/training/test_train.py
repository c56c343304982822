"""Training runs: run directory, identical resume after Ctrl-C, NaN stop, refusals, load_run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.nets.toy_data import SAMPLE, toy_data
from zoo.errors import UserError
from zoo.training import train as T

STEPS = 8  # tiny preset: checkpoint every 4, validate every 8


def _train(out, **kwargs):
    kwargs.setdefault("data", toy_data())
    kwargs.setdefault("steps", STEPS)
    return T.train(None, out, sample_type=SAMPLE, preset="tiny", seed=7, **kwargs)


def _all_weights(run_dir):
    """Every variable of the latest checkpoint: networks, EMA, optimizers, step, seeds."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(T.latest_checkpoint(run_dir))
    names = sorted(n for n in reader.get_variable_to_shape_map() if "data_iterator" not in n
                   and "save_counter" not in n and "_CHECKPOINTABLE_OBJECT_GRAPH" not in n)
    return {n: reader.get_tensor(n) for n in names}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted tiny run of STEPS steps."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    steps = []
    import keras

    probe = keras.callbacks.LambdaCallback(on_train_batch_end=lambda step, logs: steps.append(step))
    progress = []
    run = _train(out, callbacks=[probe], progress=lambda done, total: progress.append((done, total)))
    return out, run, steps, progress


@pytest.mark.slow
def test_run_directory_holds_config_history_logs_checkpoints_and_ema_generator(straight_run):
    import keras

    from zoo.training.callbacks import read_scalars

    out, run, steps, progress = straight_run
    assert steps == list(range(1, STEPS + 1))
    assert progress[0] == (0, STEPS) and progress[-1] == (STEPS, STEPS)
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "tiny" and config["sample_type"] == SAMPLE and config["seed"] == 7
    assert config["training"]["steps"] == STEPS and config["scale"] == 2
    assert config["training"]["d_every"] == 4 and config["training"]["alpha"] > 0
    assert config["data"]["dataset_hash"] == toy_data().manifest["dataset_hash"]
    assert config["generator"]["divisor"] == 8
    assert config["generator"]["recommended_tile_overlap_lr"] % 8 == 0
    assert json.loads((out / "manifest.json").read_text()) == toy_data().manifest
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [8] and history["steps_done"] == STEPS
    assert {"g_loss", "d_loss", "l1", "share_adversarial", "val_l1", "val_psnr", "val_ssim"} <= set(history)
    assert sorted(p.name for p in (out / "checkpoints").glob("*.index")) == ["ckpt-4.index", "ckpt-8.index"]
    train_scalars = read_scalars(out / "logs" / "train")
    assert [s for s, _ in train_scalars["g_loss"]] == list(range(1, STEPS + 1))
    val_scalars = read_scalars(out / "logs" / "validation")
    assert val_scalars["psnr"][0][0] == STEPS
    assert val_scalars["psnr"][0][1] == pytest.approx(history["val_psnr"][0], rel=1e-6)
    # generator.keras is the EMA generator, in float32, and load_run reads it back.
    saved = keras.saving.load_model(out / "generator.keras", compile=False)
    loaded = T.load_run(out)
    assert loaded.finished and loaded.config == config and loaded.history == history
    x = np.random.default_rng(0).standard_normal((1, 16, 24, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.generator(x).numpy(), run.generator(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(saved(x).numpy(), run.generator(x).numpy(), atol=1e-6)
    checkpoint = _all_weights(out)
    ema = [v for k, v in sorted(checkpoint.items()) if "ema_generator" in k]
    assert ema, "EMA weights are not in the checkpoint"


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues_identically(straight_run, tmp_path):
    import keras

    straight_dir, straight, _, _ = straight_run
    out = tmp_path / "interrupted"

    def interrupt(step, logs):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(T.TrainingInterrupted) as stop:
        _train(out, callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=interrupt)])
    assert stop.value.step == 3 and isinstance(stop.value, KeyboardInterrupt)
    assert T.latest_checkpoint(out).endswith("ckpt-3")
    assert not (out / "generator.keras").exists()
    unfinished = T.load_run(out)
    assert not unfinished.finished and unfinished.generator is not None
    # Its step count is the checkpoint's; history.json has steps_done only once a run finished.
    assert unfinished.steps_done == 3 and "steps_done" not in unfinished.history

    created = json.loads((out / "config.json").read_text())["created"]
    resumed = _train(out, resume=True)
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(resumed.generator(x).numpy(), straight.generator(x).numpy(), atol=1e-5)
    a, b = _all_weights(straight_dir), _all_weights(out)
    assert a.keys() == b.keys()
    for name in a:  # networks, EMA, both optimizers' moments, step counters, seed state
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, err_msg=name)
    history = json.loads((out / "history.json").read_text())
    assert history["steps_done"] == STEPS
    config = json.loads((out / "config.json").read_text())
    assert config["resumed"][0]["from_step"] == 3
    assert config["created"] == created


@pytest.mark.slow
def test_ctrl_c_inside_a_step_checkpoints_the_step_that_ran(straight_run, tmp_path):
    """Ctrl-C that arrives while the compiled step runs: the step finished in TensorFlow, so the
    checkpoint must carry its number (not one less) and resume must not repeat it."""
    import keras

    straight_dir, straight, _, _ = straight_run
    out = tmp_path / "interrupted"

    class InterruptInsideStep(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            model, run_step = self.model, self.model.train_function
            calls = []

            def step_then_ctrl_c(iterator):
                result = run_step(iterator)
                calls.append(1)
                if len(calls) == 3:
                    raise KeyboardInterrupt
                return result

            model.train_function = step_then_ctrl_c

    with pytest.raises(T.TrainingInterrupted) as stop:
        _train(out, callbacks=[InterruptInsideStep()])
    assert stop.value.step == 3
    assert T.latest_checkpoint(out).endswith("ckpt-3")
    resumed = _train(out, resume=True)
    assert resumed.history["steps_done"] == STEPS
    x = np.random.default_rng(2).standard_normal((1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(resumed.generator(x).numpy(), straight.generator(x).numpy(), atol=1e-5)


@pytest.mark.slow
def test_nan_loss_stops_clearly_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "diverged"
    with pytest.raises(T.TrainingDiverged, match=r"step 6.*NaN.*ckpt-4") as stop:
        _train(out, data=toy_data(nan_after=5))
    assert isinstance(stop.value, UserError)
    assert T.latest_checkpoint(out).endswith("ckpt-4")
    assert not (out / "generator.keras").exists()
    run = T.load_run(out)
    assert not run.finished and run.steps_done == 4
    weights = np.concatenate([w.ravel() for w in run.generator.get_weights()])
    assert np.isfinite(weights).all()


def test_refuses_existing_run_without_resume_and_resume_without_checkpoint(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "something.txt").write_text("keep me")
    with pytest.raises(UserError, match="already exists.*--resume"):
        _train(existing)
    assert (existing / "something.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="nothing to resume"):
        _train(tmp_path / "missing", resume=True)
    (tmp_path / "no-ckpt").mkdir()
    (tmp_path / "no-ckpt" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no checkpoint"):
        _train(tmp_path / "no-ckpt", resume=True)


def test_refuses_a_sample_type_that_contradicts_the_data(tmp_path):
    with pytest.raises(UserError, match="hydrogel.*gold-on-carbon"):
        T.train(None, tmp_path / "run", sample_type="hydrogel", preset="tiny", data=toy_data())
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="unknown preset"):
        T.train(None, tmp_path / "run", sample_type=None, preset="huge", data=toy_data())
    with pytest.raises(UserError, match="unknown training configuration keys: lr"):
        T.train(None, tmp_path / "run", sample_type=None, preset="tiny", data=toy_data(), overrides={"lr": 1})
    assert not (tmp_path / "run").exists()


def test_gap_and_contact_weights_need_a_data_set_with_gap_masks(tmp_path):
    from tests.nets.toy_data import write_toy_data_dir

    data = write_toy_data_dir(tmp_path / "data")
    with pytest.raises(UserError, match="no gap/contact masks in this data set"):
        T.train(data, tmp_path / "run", sample_type=SAMPLE, preset="tiny", overrides={"contact_weight": 4.0})
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="gap_weight must be >= 0"):
        T.train(data, tmp_path / "run", sample_type=SAMPLE, preset="tiny", overrides={"gap_weight": -1.0})


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="no training run"):
        T.load_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a semzoo training run"):
        T.load_run(tmp_path)


def test_presets_round_trip_through_json():
    from zoo.nets.presets import TrainingConfig, get_preset

    for name in ("paper", "small", "tiny"):
        config = get_preset(name)
        assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(UserError, match="batch_size"):
        get_preset("tiny").replace(batch_size=0)


@pytest.mark.slow
def test_resume_takes_new_rates_but_refuses_a_new_network_shape(straight_run):
    straight_dir, _, _, _ = straight_run
    before = {p.name: p.stat().st_mtime_ns for p in straight_dir.iterdir()}
    with pytest.raises(UserError, match="g_widths cannot change when resuming"):
        _train(straight_dir, resume=True, overrides={"g_widths": (4, 8, 8, 16, 32)})
    with pytest.raises(UserError, match="d_head cannot change when resuming"):
        _train(straight_dir, resume=True, overrides={"d_head": "patch"})
    assert {p.name: p.stat().st_mtime_ns for p in straight_dir.iterdir()} == before


def test_discriminator_saturated_needs_both_scores_at_one_end():
    assert T.discriminator_saturated({"d_real": 0.999, "d_fake": 0.995})
    assert T.discriminator_saturated({"d_real": 0.002, "d_fake": 0.0})
    assert not T.discriminator_saturated({"d_real": 0.999, "d_fake": 0.2})  # winning, not stuck
    assert not T.discriminator_saturated({"d_real": 0.5, "d_fake": 0.5})
    assert not T.discriminator_saturated({"l1": 0.1})


@pytest.mark.slow
def test_a_saturated_discriminator_is_recorded_per_epoch(straight_run, tmp_path):
    import keras

    assert "discriminator_saturated_at" not in straight_run[1].history

    def saturate(logs=None):
        # A final bias of +50 puts the sigmoid at 1 for every input; its gradient vanishes.
        probability = model_ref[0].discriminator.get_layer("real_probability")
        probability.bias.assign(np.full(probability.bias.shape, 50.0, dtype="float32"))

    model_ref = []
    grab = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: (model_ref.append(grab.model), saturate()))
    run = _train(tmp_path / "run", callbacks=[grab], overrides={"validate_every": 4})
    assert run.history["step"] == [4, 8]
    assert run.history["discriminator_saturated_at"] == [4, 8]
