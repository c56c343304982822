"""A training run: SRGAN on prepared patches, with checkpoints, resume, validation and logs.

de Haan et al., Sci. Rep. 9, 12050 (2019), Methods: Adam, 48,000 generator iterations (the
``paper`` preset), the discriminator updated every fourth iteration (see :mod:`zoo.nets.gan`).

The loop drives Keras' own compiled train function (``SRGAN.make_train_function``) over a
``tf.data`` iterator that this module owns, rather than calling ``fit``: the iterator's position
goes into the checkpoint with the networks, the EMA weights, both optimizers and the step
counter, so ``resume=True`` continues exactly where an uninterrupted run would be. An "epoch"
here is ``validate_every`` generator steps; Keras callbacks (TensorBoard) see the usual
on_epoch/on_batch events; TensorBoard event files come from
:class:`zoo.training.callbacks.ScalarLogger`. The run directory layout is in :mod:`zoo.training.rundir`.
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.atomic import atomic_file
from zoo.errors import UserError
from zoo.training.checkpoint import build_srgan, restore_generator, training_checkpoint
from zoo.training.data import TrainingData, manifest_summary, patch_data
from zoo.training.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    GENERATOR_FILE,
    HISTORY_FILE,
    LOG_DIR,
    MANIFEST_FILE,
    RUN_FORMAT,
    Run,
    latest_checkpoint,
    load_run,
    read_config,
    read_json,
    write_json,
)

__all__ = [
    "InitialGenerator",
    "Run",
    "TrainingData",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_srgan",
    "load_run",
    "patch_data",
    "restore_generator",
    "train",
]

ProgressCallback = Callable[[int, int], None]
SCALE = 2
# Settings that shape the networks or their inputs: fixed for the life of a run.
ARCHITECTURE_KEYS = ("g_widths", "d_widths", "d_dense", "d_head", "patch_size", "leaky_slope")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint of the last finished step was saved first."""

    def __init__(self, step: int, run_dir: Path):
        super().__init__(f"training interrupted at step {step}; checkpoint saved in {run_dir}")
        self.step = step
        self.run_dir = run_dir


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the run's last good checkpoint is kept."""


@dataclass(frozen=True)
class InitialGenerator:
    """Generator weights that start a new run instead of a random initialisation.

    ``ref`` names where they come from (a zoo ``"name:version"``; recorded in config.json as
    ``initialised_from`` and, on publishing, as the card's parent); ``weights`` are in
    ``generator.get_weights()`` order of the run's preset. The discriminator starts fresh (the
    zoo keeps only generators) and is first trained alone for ``discriminator_warmup`` steps
    against the loaded generator, so its first gradients to G are informed rather than noise.
    """

    ref: str
    weights: list = field(repr=False)
    discriminator_warmup: int = 200


def start_from_weights(model, iterator, weights: list, discriminator_warmup: int) -> None:
    """Put ``weights`` into the SRGAN's generator and its EMA twin, then train the (fresh)
    discriminator alone for ``discriminator_warmup`` batches of ``iterator`` against them.

    Used by ``init_from`` and by fine-tuning (:mod:`zoo.training.finetune_run`).
    """
    import tensorflow as tf

    model.generator.set_weights(weights)
    model.ema_generator.set_weights(weights)
    step = tf.function(model.train_discriminator)
    for _ in range(int(discriminator_warmup)):
        batch = next(iterator)  # (lr, hr) or (lr, hr, focus)
        step(batch[0], batch[1])


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _finite(logs: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in logs.values())


# D(real) and D(fake) both within this of 0 or of 1 over an epoch: the discriminator's sigmoid is
# saturated, its gradient to the generator is ~0 and the adversarial term does nothing.
SATURATION_MARGIN = 0.01


def discriminator_saturated(logs: Mapping[str, float]) -> bool:
    """True when the epoch's mean D(real) and D(fake) are both above 0.99 or both below 0.01.

    Seen on this CPU with a fresh discriminator and a high D learning rate: it scored real,
    enhanced, interpolated and noise images alike at 0.999, and stayed there.
    """
    real, fake = logs.get("d_real"), logs.get("d_fake")
    if real is None or fake is None:
        return False
    return min(real, fake) > 1.0 - SATURATION_MARGIN or max(real, fake) < SATURATION_MARGIN


def _resolve_config(run_dir: Path, resume: bool, preset: str, steps: int | None,
                    overrides: Mapping[str, Any] | None, manifest: Mapping[str, Any]):
    from zoo.nets.presets import TrainingConfig, get_preset

    if resume:
        config = TrainingConfig.from_dict(read_config(run_dir)["training"])
    else:
        config = get_preset(preset)
    changes = dict(overrides or {})
    fixed = sorted(k for k in changes if k in ARCHITECTURE_KEYS and changes[k] != getattr(config, k))
    if resume and fixed:
        raise UserError(f"{', '.join(fixed)} cannot change when resuming (the checkpoint holds "
                        "networks of the run's own shape); start a new run")
    if steps is not None:
        changes["steps"] = int(steps)
    if manifest.get("patch_size"):
        changes.setdefault("patch_size", int(manifest["patch_size"]))
    return config.replace(**changes) if changes else config


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise UserError(f"{run_dir}: nothing to resume (no {CONFIG_FILE}); start a run without --resume")
        if latest_checkpoint(run_dir) is None:
            raise UserError(f"{run_dir}: nothing to resume (no checkpoint in {CHECKPOINT_DIR}/)")
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"{run_dir} already exists; pass --resume to continue it or choose a new --out")


def train(
    data_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    sample_type: str | None,
    preset: str = "small",
    steps: int | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
    data: TrainingData | None = None,
    callbacks: list | None = None,
    setup: Callable[[Any, Any], None] | None = None,
    init_from: InitialGenerator | None = None,
) -> Run:
    """Train the SRGAN (paper Eqs. 1-4) on prepared patches; write the run directory ``out_dir``.

    Parameters
    ----------
    data_dir : path
        Output of ``semzoo prepare`` (manifest.json + shards); ignored when ``data`` is given.
    out_dir : path
        The run directory; must not exist (or be empty) unless ``resume``.
    sample_type : str or None
        Recorded in config.json; must match the data set's sample_type when it has one.
    preset : "paper" | "small" | "tiny"
        Hyperparameters (:mod:`zoo.nets.presets`); on resume the run's own config is used.
    steps : int, optional
        Total generator steps (overrides the preset; on resume, may extend the run).
    resume : bool
        Continue from the latest checkpoint: networks, EMA, optimizers, step counter and data
        iterator position are restored, so the result equals an uninterrupted run.
    seed : int
        Seeds weight initialisation, data shuffling/augmentation and the SRGAN's noise.
    progress : callable(done, total), optional
    overrides : mapping, optional
        TrainingConfig fields to change (e.g. learning rates).
    data : TrainingData, optional
        Use these patches instead of ``data_dir``'s.
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks; ``on_train_batch_end(step, logs)`` gets the 1-based step count. A
        callback that sets ``model.stop_training = True`` (Keras' convention, e.g. in
        ``on_epoch_end`` after a validation) ends the run after that step.
    setup : callable(model, train_iterator), optional
        Called once on a new run, after the compiled SRGAN and the training iterator exist and
        before the first step (e.g. fine-tuning loads a parent's weights and freezes layers).
    init_from : InitialGenerator, optional
        Start a new run from these generator weights (e.g. a zoo version, to continue its
        training with another schedule); runs before ``setup``. Ignored on resume (the
        checkpoint holds the weights); config.json keeps ``initialised_from``.

    Returns
    -------
    Run
        With the final EMA generator (also saved as RUN/generator.keras).

    Raises
    ------
    UserError
        Bad input (no data, existing run without ``resume``, nothing to resume, ...).
    TrainingDiverged
        A loss became NaN/inf; the last good checkpoint is kept for ``resume``.
    TrainingInterrupted
        Ctrl-C; a checkpoint of the last finished step was saved first.
    """
    run_dir = Path(out_dir)
    _check_run_dir(run_dir, resume)
    if data is None:
        if data_dir is None:
            raise UserError("no training data: give a data directory made by `semzoo prepare`")
        data = patch_data(data_dir)
    manifest = dict(data.manifest)
    data_type = manifest.get("sample_type")
    if sample_type and data_type and sample_type != data_type:
        raise UserError(f"--sample-type {sample_type} does not match the data set's sample type {data_type}")
    sample_type = sample_type or data_type
    if resume:
        stored = read_config(run_dir)
        if stored["data"].get("dataset_hash") != manifest.get("dataset_hash"):
            raise UserError(f"{run_dir} was trained on a different data set (dataset_hash differs)")
        seed = int(stored["seed"])
    config = _resolve_config(run_dir, resume, preset, steps, overrides, manifest)

    import keras

    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        return _run(data, config, run_dir, resume, seed, sample_type, manifest, progress,
                    callbacks or [], setup, init_from)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _run(data, config, run_dir, resume, seed, sample_type, manifest, progress, callbacks,
         setup=None, init_from=None) -> Run:
    import keras
    import tensorflow as tf

    from zoo.nets.generator import DIVISOR, receptive_field_radius_lr, recommended_tile_overlap

    keras.utils.set_random_seed(seed)
    model = build_srgan(config, seed=seed)
    weighted = config.gap_weight > 0 or config.contact_weight > 0
    focus = {"focus": True} if weighted else {}  # (lr, hr, focus) batches
    train_iterator = iter(data.train(config.batch_size, seed, **focus))
    val_dataset = data.val(config.batch_size) if data.val is not None else None
    if init_from is not None and not resume:
        start_from_weights(model, train_iterator, init_from.weights, init_from.discriminator_warmup)
    if setup is not None and not resume:
        setup(model, train_iterator)

    if not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / MANIFEST_FILE, manifest)
        history: dict = {}
    else:
        history_path = run_dir / HISTORY_FILE
        history = read_json(history_path) if history_path.is_file() else {}
    run_config = {
        "format": RUN_FORMAT,
        "preset": config.name,
        "sample_type": sample_type,
        "seed": seed,
        "scale": SCALE,
        "training": config.to_dict(),
        "data": {"source": data.source, **manifest_summary(manifest)},
        "generator": {
            "divisor": DIVISOR,
            "parameters": int(model.generator.count_params()),
            "receptive_field_radius_lr": receptive_field_radius_lr(config),
            "recommended_tile_overlap_lr": recommended_tile_overlap(config),
        },
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "semzoo": __import__("zoo").__version__},
        "created": _now(),
    }
    if init_from is not None:
        run_config["initialised_from"] = init_from.ref
    checkpoint = training_checkpoint(model, train_iterator)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / CHECKPOINT_DIR),
                                         max_to_keep=config.keep_checkpoints)
    if resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        # Learning rates may have been overridden for the continuation (e.g. after a NaN stop).
        model.g_optimizer.learning_rate.assign(config.g_learning_rate)
        model.d_optimizer.learning_rate.assign(config.d_learning_rate)
        # Keep when the run began; note each continuation.
        stored = read_config(run_dir)
        run_config["created"] = stored.get("created", run_config["created"])
        if stored.get("initialised_from"):
            run_config["initialised_from"] = stored["initialised_from"]
        entry = {"at": _now(), "from_step": int(model.step_counter.numpy())}
        before = stored.get("training", {})
        changed = {k: v for k, v in config.to_dict().items() if before.get(k, v) != v}
        if changed:  # settings changed for the continuation (e.g. --steps, a lower learning rate)
            entry["changed"] = {k: {"from": before.get(k), "to": v} for k, v in changed.items()}
        run_config["resumed"] = [*stored.get("resumed", []), entry]
    write_json(run_dir / CONFIG_FILE, run_config)

    return _loop(model, config, run_dir, manager, train_iterator, val_dataset, history,
                 run_config, manifest, progress, callbacks)


def _validate(model, val_dataset, config) -> dict:
    if val_dataset is None:
        return {}
    steps = config.validation_steps
    size = int(val_dataset.cardinality())
    if 0 <= size < steps:  # a small validation split: all of it, without Keras' out-of-data warning
        steps = None
    with warnings.catch_warnings():
        # Validation reads up to `steps` batches; a shorter split simply ends early.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        logs = model.evaluate(val_dataset, steps=steps, verbose=0, return_dict=True)
    return {f"val_{k}": float(v) for k, v in logs.items()}


def _loop(model, config, run_dir, manager, iterator, val_dataset, history, run_config, manifest,
          progress, extra_callbacks) -> Run:
    import keras

    step = int(model.step_counter.numpy())
    total = int(config.steps)
    from zoo.training.callbacks import ScalarLogger

    tensorboard = ScalarLogger(run_dir / LOG_DIR, every=config.log_every)
    callbacks = keras.callbacks.CallbackList([tensorboard, *extra_callbacks], model=model,
                                             add_history=False, add_progbar=False)
    model.make_train_function()
    callbacks.on_train_begin()
    if progress:
        progress(step, total)
    last_saved = step  # a resumed run starts at its checkpoint; a new one has nothing to save
    logs: dict = {}
    current_rates = None  # set before the first step (the schedule is a function of the step)
    try:
        while step < total:
            epoch = step // config.validate_every
            if step % config.validate_every == 0:
                model.reset_metrics()
                callbacks.on_epoch_begin(epoch)
            callbacks.on_train_batch_begin(step)
            rates = config.learning_rates(step)
            if rates != current_rates:
                model.g_optimizer.learning_rate.assign(rates[0])
                model.d_optimizer.learning_rate.assign(rates[1])
                current_rates = rates
            logs = {k: float(v) for k, v in model.train_function(iterator).items()}
            if not _finite(logs):
                bad = [k for k, v in logs.items() if not math.isfinite(v)]
                bad = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
                write_json(run_dir / HISTORY_FILE, history)
                kept = manager.latest_checkpoint
                where = f"the last good checkpoint ({Path(kept).name}) is kept" if kept else "no checkpoint was saved yet"
                raise TrainingDiverged(
                    f"training diverged at step {step + 1}: the loss became NaN/inf ({bad}); {where} in "
                    f"{run_dir / CHECKPOINT_DIR}; lower the learning rates and resume")
            step += 1
            callbacks.on_train_batch_end(step, logs)
            if step % config.checkpoint_every == 0:
                manager.save(checkpoint_number=step)
                last_saved = step
            if step % config.validate_every == 0 or step == total:
                epoch_logs = {**logs, **_validate(model, val_dataset, config)}
                callbacks.on_epoch_end(epoch, epoch_logs)
                if config.beta > 0 and discriminator_saturated(logs):
                    history.setdefault("discriminator_saturated_at", []).append(step)
                history.setdefault("step", []).append(step)
                for key, value in epoch_logs.items():
                    history.setdefault(key, []).append(value)
                write_json(run_dir / HISTORY_FILE, history)
            if progress:
                progress(step, total)
            if getattr(model, "stop_training", False):
                history["stopped_early_at"] = step
                break
    except KeyboardInterrupt:
        # Ctrl-C may land after the compiled step ran but before `step += 1`: the model's own
        # counter says how many steps the saved weights (and data iterator) have taken.
        step = int(model.step_counter.numpy())
        if step != last_saved:
            manager.save(checkpoint_number=step)
        write_json(run_dir / HISTORY_FILE, history)
        raise TrainingInterrupted(step, run_dir) from None
    if step != last_saved:
        manager.save(checkpoint_number=step)
    callbacks.on_train_end(logs)

    generator = model.averaged_generator()
    with atomic_file(run_dir / GENERATOR_FILE, suffix=".keras") as tmp:  # Keras goes by the extension
        generator.save(tmp)
    history["steps_done"] = step  # only a finished run has it (see zoo.training.rundir)
    write_json(run_dir / HISTORY_FILE, history)
    return Run(generator, run_config, manifest, history, run_dir, finished=True, steps_done=step)


def initial_generator(zoo_root: str | os.PathLike, spec: str, *, preset: str,
                      lr_pixel_size_nm: float | None = None) -> InitialGenerator:
    """The generator of zoo version ``spec`` (``NAME[:VERSION|@LABEL]``) to start a run from.

    Refused (UserError) when the version was trained with another preset (other widths) or for
    another input pixel size than the data set's (more than 2% apart).
    """
    from zoo.nets.presets import get_preset
    from zoo.registry.store import Zoo
    from zoo.training.finetune_run import parent_generator

    zoo = Zoo(zoo_root)
    name, version = zoo.resolve(spec)
    card = zoo.card(name, version)
    card_preset = (card.get("training") or {}).get("preset")
    if card_preset != preset:
        raise UserError(f"{name}:{version} was trained with the {card_preset!r} preset, not {preset!r}: "
                        f"pass --preset {card_preset}")
    model_px = float(card["input_pixel_size_nm"])
    if lr_pixel_size_nm and not math.isclose(model_px, float(lr_pixel_size_nm), rel_tol=0.02):
        raise UserError(f"{name}:{version} takes {model_px:g} nm pixels, the data set has "
                        f"{float(lr_pixel_size_nm):g} nm")
    generator = parent_generator(get_preset(preset), zoo.version_dir(name, version))
    return InitialGenerator(ref=f"{name}:{version}", weights=generator.get_weights())
