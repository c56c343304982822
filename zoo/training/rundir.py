"""The run directory of a training run: its files, their formats, and reading a run back.

::

    RUN/config.json      every hyperparameter, the data set's summary, versions (written first)
    RUN/manifest.json    a copy of the data set's manifest (the run is self-contained)
    RUN/checkpoints/     tf.train.Checkpoint: networks, EMA, optimizers, step, data iterator
    RUN/logs/            TensorBoard event files (train/ and validation/)
    RUN/history.json     per-validation metrics: {"step": [...], "g_loss": [...], ...}
    RUN/generator.keras  the final EMA generator (written last: a finished run has it)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import UserError

RUN_FORMAT = "semzoo-run/1"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
HISTORY_FILE = "history.json"
GENERATOR_FILE = "generator.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"


@dataclass
class Run:
    """A training run read back by :func:`load_run`.

    ``generator`` is the EMA generator (from generator.keras, or from the latest checkpoint
    for an unfinished run, then ``finished`` is False); ``config`` is config.json; ``manifest``
    the data set's manifest; ``history`` history.json.
    """

    generator: Any
    config: dict
    manifest: dict
    history: dict
    path: Path
    finished: bool = True


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: not a complete semzoo training run") from None
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None


def latest_checkpoint(run_dir: Path) -> str | None:
    import tensorflow as tf

    directory = Path(run_dir) / CHECKPOINT_DIR
    return tf.train.latest_checkpoint(str(directory)) if directory.is_dir() else None


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a training run: its EMA generator, config, data manifest and history.

    An unfinished run (interrupted, or stopped on a NaN loss) has no generator.keras; its
    generator is then rebuilt from config.json and given the EMA weights of the latest
    checkpoint.
    """
    import keras

    import zoo.nets.layers  # noqa: F401 - registers the custom layers for deserialisation

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no training run at {run_dir}")
    config = read_json(run_dir / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise UserError(f"{run_dir / CONFIG_FILE} is not a semzoo training run config")
    manifest_path = run_dir / MANIFEST_FILE
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    history_path = run_dir / HISTORY_FILE
    history = read_json(history_path) if history_path.is_file() else {}
    generator_path = run_dir / GENERATOR_FILE
    if generator_path.is_file():
        generator = keras.saving.load_model(generator_path, compile=False)
        return Run(generator, config, manifest, history, run_dir, finished=True)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UserError(f"{run_dir}: neither {GENERATOR_FILE} nor a checkpoint; the run never saved")
    from zoo.training.train import restore_generator

    return Run(restore_generator(config, checkpoint), config, manifest, history, run_dir, finished=False)
