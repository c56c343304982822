"""One fine-tuning training run: a parent's generator, a frozen encoder, a warmed-up fresh D.

Drives :func:`zoo.training.train.train` (the same SRGAN, losses and loop as a full training,
paper Eqs. 1-4) with a ``setup`` hook that loads the parent's weights into the generator and its
EMA twin and freezes the encoder, a callback that validates the EMA generator on the held-out
patches and stops early, a learning rate :data:`LR_FACTOR` times the preset's and a weak
adversarial term (:data:`FINETUNE_BETA`). The zoo keeps
only generators, so the discriminator starts fresh and is first trained alone for
:func:`warmup_steps` steps against the parent's outputs: its first gradients to the generator
are then informed rather than noise.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping

from zoo.training import calibration as C

LR_FACTOR = 0.5  # generator learning rate relative to the preset's (measured: 0.5 > 0.25 on hydrogel)
# Weight of the adversarial term while fine-tuning (the presets' 6.0 is the paper's for 48,000
# steps on many pairs). Measured on 2 real GaAs images from general:2, 400 steps: +2.06 dB over
# Lanczos on the 4 other images with 0.05 against +1.69 with 6.0; on 5 simulated hydrogel
# pairs from gold-on-carbon:1, 21.65 against 21.49 dB (README "Fine-tuning"). `--set beta=` changes it.
FINETUNE_BETA = 0.05
PATIENCE = 3  # validations without improvement before stopping
VALIDATIONS = 10  # validations per run (every steps / VALIDATIONS steps)
# Work units for the progress bar: one registration costs about this many training steps.
REGISTRATION_UNITS = 10


def warmup_steps(steps: int) -> int:
    """Discriminator-only steps before fine-tuning: a tenth of the budget, at least 4."""
    return max(4, steps // 10)


def _encoder_layers(generator) -> list:
    # zoo.nets.generator names the input block in_conv* and the contracting path down*.
    return [layer for layer in generator.layers if layer.name.startswith(("in_conv", "down"))]


def _setup(parent_weights: list, freeze: str, warmup: int):
    """train()'s setup hook: parent weights into G and its EMA twin, warm up D, freeze."""

    def setup(model, iterator) -> None:
        from zoo.training.train import start_from_weights

        # The warm-up trains D alone, so freezing G's encoder before or after it is the same.
        start_from_weights(model, iterator, parent_weights, warmup)
        if freeze == "encoder":
            for layer in _encoder_layers(model.generator):
                layer.trainable = False

    return setup


def _early_stopping(val_data, patience: int):
    """A Keras callback: validation L1 of the EMA generator; keeps the best weights, stops late ones."""
    import keras

    class BestOnValidation(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            with warnings.catch_warnings():
                # A finite validation set of unknown length simply ends (as in train's _validate).
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                scores = self.model.evaluate(val_data, verbose=0, return_dict=True)
            self.parent_l1 = self.best = float(scores["l1"])
            self.best_step, self.wait = 0, 0
            self.history: list[tuple[int, float]] = []  # (step, validation L1) of each validation
            self.best_weights = [w.numpy() for w in self.model.ema_generator.weights]

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_l1")
            if value is None:
                return
            self.history.append((int(self.model.step_counter.numpy()), float(value)))
            if value < self.best:
                self.best, self.wait = float(value), 0
                self.best_step = int(self.model.step_counter.numpy())
                self.best_weights = [w.numpy() for w in self.model.ema_generator.weights]
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

    return BestOnValidation()


# Settings `semzoo finetune --set` may not change: the generator's shape is the parent's, and the
# schedule of validations and checkpoints is the fine-tune's own (--steps sets the budget).
PARENT_SHAPE_KEYS = ("g_widths", "patch_size", "leaky_slope")
SCHEDULE_KEYS = ("steps", "validate_every", "validation_steps", "checkpoint_every", "keep_checkpoints", "log_every")


def check_settings(settings: Mapping[str, Any], preset) -> dict:
    """The ``--set`` changes of a fine-tune, or a one-line UserError for a key or value it cannot take."""
    from zoo.errors import UserError

    shape = sorted(k for k in settings if k in PARENT_SHAPE_KEYS)
    if shape:
        raise UserError(f"--set {', '.join(shape)}: a fine-tune keeps the parent's generator as it is "
                        "(train a new model with `semzoo train --set` to change it)")
    schedule = sorted(k for k in settings if k in SCHEDULE_KEYS)
    if schedule:
        raise UserError(f"--set {', '.join(schedule)}: the fine-tune sets its own validation schedule "
                        "(use --steps for the budget)")
    preset.replace(**settings)  # the preset's own checks of the values (UserError)
    return dict(settings)


def _config_overrides(preset, steps: int, val_patches: int | None, settings: Mapping[str, Any] | None = None) -> dict:
    every = max(1, steps // VALIDATIONS)
    overrides = {
        "g_learning_rate": preset.g_learning_rate * LR_FACTOR,
        "beta": FINETUNE_BETA,
        "validate_every": every if val_patches else steps,
        "checkpoint_every": steps,  # one checkpoint at the end (the run dir is temporary)
        "keep_checkpoints": 1,
        "log_every": max(1, every),
    }
    if val_patches:
        overrides["validation_steps"] = max(1, math.ceil(val_patches / preset.batch_size))
    overrides.update(settings or {})  # the user's --set wins (e.g. beta=6 for the paper's weight)
    return overrides


def _training_data(data_dir: Path, with_val: bool):
    from zoo.training.data import TrainingData, patch_data

    base = patch_data(data_dir)
    return TrainingData(
        base.manifest,
        lambda batch_size, seed: C.jittered(base.train(batch_size, seed), seed),
        base.val if with_val else None,
        base.source,
    )


class Meter:
    """Progress in work units (training steps; a registration counts REGISTRATION_UNITS)."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done, self.base = progress, total, 0, 0

    def at(self, done: int) -> None:
        self.done = self.base + done
        if self.progress:
            self.progress(min(self.done, self.total), self.total)

    def stage(self) -> None:
        self.base = self.done

    def finish(self) -> None:
        self.total = self.done
        self.at(self.done - self.base)


def parent_generator(preset, version_dir: Path):
    """The generator of a zoo version, rebuilt from its card's preset with the version's weights."""
    from zoo.nets.generator import build_generator
    from zoo.registry.export import load_generator_weights

    generator = build_generator(preset)
    load_generator_weights(version_dir, generator)
    return generator


def train_from_parent(data_dir, run_dir, preset, steps, freeze, seed, parent_weights, sample_type,
                      val_patches, meter, warmup, settings=None):
    """One fine-tuning run through zoo.training.train; returns (Run, early-stopping callback)."""
    from zoo.training.train import train

    meter.stage()
    data = _training_data(data_dir, with_val=bool(val_patches))
    callbacks = [_early_stopping(data.val(preset.batch_size), PATIENCE)] if val_patches else []
    run = train(None, run_dir, sample_type=sample_type, preset=preset.name, steps=steps, seed=seed,
                progress=lambda done, total: meter.at(done), data=data, callbacks=callbacks,
                overrides=_config_overrides(preset, steps, val_patches, settings),
                setup=_setup(parent_weights, freeze, warmup))
    if callbacks:
        return run, callbacks[0]
    return run, None
