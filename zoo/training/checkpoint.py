"""The SRGAN a run trains and its checkpoint: build it, name what a checkpoint holds, restore it.

Shared by :mod:`zoo.training.train` (which writes checkpoints) and :mod:`zoo.training.rundir`
(which reads an unfinished run back from its latest one), so neither imports the other.
"""

from __future__ import annotations

from typing import Any, Mapping


def build_srgan(config, *, seed: int = 0):
    """Generator, discriminator and SRGAN for a TrainingConfig, compiled with the paper's Adam."""
    import keras

    from zoo.nets.discriminator import build_discriminator
    from zoo.nets.gan import SRGAN
    from zoo.nets.generator import build_generator

    def adam(rate):
        return keras.optimizers.Adam(rate, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2)

    model = SRGAN(build_generator(config), build_discriminator(config), alpha=config.alpha,
                  beta=config.beta, d_every=config.d_every, ema_decay=config.ema_decay, seed=seed,
                  gap_weight=config.gap_weight, contact_weight=config.contact_weight,
                  pixel_loss=config.pixel_loss)
    model.build((None, None, None, 1))
    model.compile(g_optimizer=adam(config.g_learning_rate), d_optimizer=adam(config.d_learning_rate))
    return model


def training_checkpoint(model, iterator=None):
    """The tf.train.Checkpoint of a run: networks, EMA, optimizers, step counter (and data iterator)."""
    import tensorflow as tf

    objects = {"model": model, "g_optimizer": model.g_optimizer, "d_optimizer": model.d_optimizer}
    if iterator is not None:
        objects["data_iterator"] = iterator
    return tf.train.Checkpoint(**objects)


def restore_checkpoint(training: Mapping[str, Any], checkpoint: str) -> tuple[Any, int]:
    """The float32 EMA generator saved in ``checkpoint`` and the generator steps it has taken.

    ``training`` is config.json's ``training`` entry (the run's TrainingConfig).
    """
    from zoo.nets.presets import TrainingConfig

    model = build_srgan(TrainingConfig.from_dict(training))
    training_checkpoint(model).restore(checkpoint).expect_partial()
    return model.averaged_generator(), int(model.step_counter.numpy())


def restore_generator(run_config: Mapping[str, Any], checkpoint: str):
    """The float32 EMA generator saved in ``checkpoint`` of a run with config.json ``run_config``."""
    return restore_checkpoint(run_config["training"], checkpoint)[0]
