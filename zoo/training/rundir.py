"""The run directory of a training run: its files, their formats, and reading a run back.

::

    RUN/config.json      every hyperparameter, the data set's summary, versions (written first)
    RUN/manifest.json    a copy of the data set's manifest (the run is self-contained)
    RUN/checkpoints/     tf.train.Checkpoint: networks, EMA, optimizers, step, data iterator
    RUN/logs/            TensorBoard event files (train/ and validation/)
    RUN/history.json     per-validation metrics: {"step": [...], "g_loss": [...], ...}, and
                         "steps_done" once the run has finished
    RUN/generator.keras  the final EMA generator (written last: a finished run has it)
    RUN/evaluation.json  optional: the card's evaluation table for `semzoo publish`

Each fact is written once: the planned generator steps are config.json's ``training.steps``;
the steps a finished run took are history.json's ``steps_done``; the steps an unfinished run took
are its latest checkpoint's step counter (read from the checkpoint, which is what the generator
is restored from). config.json's ``format`` names the layout; :func:`load_run` reads
``semzoo-run/2`` and the one older layout, ``semzoo-run/1``, which differs only in two ways:
config.json also held ``steps`` (a copy of ``training.steps``, ignored), and history.json's
``steps_done`` was rewritten at every validation (so it is read only for a finished run, as for
``semzoo-run/2``). A run that lacks what publishing needs is refused with the missing keys named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_file
from zoo.errors import UserError

RUN_FORMAT = "semzoo-run/2"
OLDER_RUN_FORMAT = "semzoo-run/1"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
HISTORY_FILE = "history.json"
GENERATOR_FILE = "generator.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
EVALUATION_FILE = "evaluation.json"

# What a run must record: config.json (dotted keys), and its copy of the data set's manifest.
CONFIG_KEYS = ("preset", "sample_type", "seed", "scale", "training", "training.steps", "data",
               "generator", "generator.divisor", "generator.parameters",
               "generator.receptive_field_radius_lr")
MANIFEST_KEYS = ("lr_pixel_size_nm", "hr_pixel_size_nm", "scale", "pairs", "patches",
                 "patches.train", "patches.val", "dataset_hash", "simulated")
# An HR-only data set (zoo.data.hr_only) records also which images and magnifications it holds.
HR_ONLY_MANIFEST_KEYS = ("lr_pixel_size_range_nm", "noise_split_alpha", "sources")


@dataclass
class Run:
    """A training run read back by :func:`load_run` (or returned by ``train``).

    ``generator`` is the EMA generator (from generator.keras, or from the latest checkpoint
    for an unfinished run, then ``finished`` is False); ``config`` is config.json; ``manifest``
    the data set's manifest; ``history`` history.json; ``steps_done`` the generator steps the
    generator has taken (history.json's ``steps_done``, or the checkpoint's step counter).
    """

    generator: Any
    config: dict
    manifest: dict
    history: dict
    path: Path
    finished: bool = True
    steps_done: int | None = None


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, allow_nan=True)
        f.write("\n")


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


def _missing(data: Any, keys: tuple[str, ...]) -> list[str]:
    """The dotted ``keys`` absent from ``data`` (a value of null is present; a key under an absent
    parent is not listed again)."""
    missing: list[str] = []
    for key in keys:
        node, parts = data, key.split(".")
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                if not any(key.startswith(m + ".") for m in missing):
                    missing.append(key)
                break
            node = node[part]
    return missing


def read_config(run_dir: Path) -> dict:
    """RUN/config.json, checked: a ``semzoo-run/2`` (or ``/1``) config with every key it must have."""
    path = Path(run_dir) / CONFIG_FILE
    config = read_json(path)
    if not isinstance(config, dict) or config.get("format") not in (RUN_FORMAT, OLDER_RUN_FORMAT):
        found = config.get("format") if isinstance(config, dict) else None
        raise UserError(f"{path} is not a semzoo training run config (format {found!r}, "
                        f"expected {RUN_FORMAT!r})")
    missing = _missing(config, CONFIG_KEYS)
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: not a complete {config['format']} run")
    return config


def read_manifest(run_dir: Path) -> dict:
    """RUN/manifest.json, checked for the data set facts a card records."""
    path = Path(run_dir) / MANIFEST_FILE
    manifest = read_json(path)
    keys = MANIFEST_KEYS + (HR_ONLY_MANIFEST_KEYS if isinstance(manifest, dict) and manifest.get("hr_only") else ())
    missing = _missing(manifest, keys) if isinstance(manifest, dict) else ["everything"]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: not a semzoo data set manifest")
    return manifest


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a training run: its EMA generator, config, data manifest, history and step count.

    An unfinished run (interrupted, or stopped on a NaN loss) has no generator.keras; its
    generator is then rebuilt from config.json and given the EMA weights of the latest
    checkpoint, whose step counter says how far it got. UserError (one line, naming the file and
    what it lacks) for anything that is not a complete run of a known format.
    """
    import keras

    import zoo.nets.layers  # noqa: F401 - registers the custom layers for deserialisation

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no training run at {run_dir}")
    config = read_config(run_dir)
    manifest = read_manifest(run_dir)
    history_path = run_dir / HISTORY_FILE
    generator_path = run_dir / GENERATOR_FILE
    if generator_path.is_file():
        history = read_json(history_path)
        steps_done = history.get("steps_done") if isinstance(history, dict) else None
        if isinstance(steps_done, bool) or not isinstance(steps_done, int):
            raise UserError(f"{history_path} lacks steps_done (an integer): the run's {GENERATOR_FILE} "
                            "was not written by a finished semzoo training run")
        generator = keras.saving.load_model(generator_path, compile=False)
        return Run(generator, config, manifest, history, run_dir, finished=True, steps_done=steps_done)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UserError(f"{run_dir}: neither {GENERATOR_FILE} nor a checkpoint; the run never saved")
    from zoo.training.checkpoint import restore_checkpoint

    # Interrupted before its first validation (killed, not Ctrl-C): no history yet.
    history = read_json(history_path) if history_path.is_file() else {}
    generator, steps_done = restore_checkpoint(config["training"], checkpoint)
    return Run(generator, config, manifest, history, run_dir, finished=False, steps_done=steps_done)
