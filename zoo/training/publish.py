"""Publish a training run into the zoo: the card from the run's record, export, publish.

``publish_run`` is what ``semzoo publish`` calls; notebooks call it directly. It lives with
training because it reads the run directory (:mod:`zoo.training.rundir`); the registry only
takes a generator, a card and a zoo root (:func:`zoo.registry.publish.publish_generator`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from zoo.errors import UserError
from zoo.registry.card import Card, check_name, new_card
from zoo.registry.publish import ProgressCallback, publish_generator, read_evaluation
from zoo.training.rundir import EVALUATION_FILE, Run, load_run

__all__ = ["card_from_run", "publish_run"]


LOSS_KEYS = ("alpha", "beta", "gap_weight", "contact_weight", "pixel_loss")


def card_from_run(
    run: Run,
    *,
    name: str,
    tile: Mapping[str, int],
    sample_type: str | None = None,
    evaluation: Mapping[str, Any] | None = None,
    parent: str | None = None,
) -> Card:
    """The card for a training run: its config.json, data manifest and step count.

    ``run`` is what :func:`zoo.training.rundir.load_run` (which checks every key read here) or
    ``train`` returns. ``parent`` defaults to the zoo version the run was initialised from.
    """
    config, manifest = run.config, run.manifest
    lr, hr, scale = manifest["lr_pixel_size_nm"], manifest["hr_pixel_size_nm"], config["scale"]
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise UserError(f"the run's data manifest has lr_pixel_size_nm {lr!r}: cannot write the card")
    if not math.isclose(lr / scale, hr, rel_tol=0.02):
        raise UserError(
            f"the run's pixel sizes {lr} -> {hr} nm do not match its scale factor {scale}"
        )
    training = {
        "pairs": len(manifest["pairs"]),
        "patches": int(manifest["patches"]["train"]) + int(manifest["patches"]["val"]),
        "simulated": bool(manifest["simulated"]),
        "dataset_hash": manifest["dataset_hash"],
        "steps": int(run.steps_done),
        "preset": config["preset"],
        "seed": config["seed"],
        "parameters": config["generator"]["parameters"],
    }
    # The generator loss it was trained with (paper Eq. 1 weights; a fine-tune of it starts there).
    loss = {key: config["training"][key] for key in LOSS_KEYS if key in config.get("training", {})}
    if loss:
        training["loss"] = loss
    if manifest.get("hr_only"):  # an optional flag of the manifest format (zoo.data.hr_only)
        # Learnt from HR images alone: which images, which magnifications. A pixel-size range
        # makes the model a general one (zoo.client.model_choice).
        training["hr_only"] = True
        training["specimens"] = sorted({p["split_group"] for p in manifest["pairs"]})
        training["noise_split_alpha"] = manifest["noise_split_alpha"]
        training["sources"] = list(manifest["sources"])
        low, high = manifest["lr_pixel_size_range_nm"]
        if high > low * 1.02:
            training["input_pixel_size_range_nm"] = [float(low), float(high)]
    return new_card(
        name=name,
        sample_type=sample_type or config["sample_type"],
        input_pixel_size_nm=float(lr),
        scale=int(scale),
        tile=tile,
        training=training,
        evaluation=evaluation,
        # A run started from a zoo version (`semzoo train --init-from`) descends from it; the
        # key is in config.json only then.
        parent=parent if parent is not None else config.get("initialised_from"),
    )


def publish_run(
    run_dir: str | Path,
    name: str,
    zoo_root: str | Path,
    label: str | None = None,
    *,
    sample_type: str | None = None,
    evaluation: str | Path | None = None,
    allow_unfinished: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[str, int]:
    """Publish the generator of training run ``run_dir`` as a new version of ``name`` in ``zoo_root``.

    The card comes from the run's config.json and data manifest (pixel sizes, training
    summary) and ``evaluation`` (a JSON file, e.g. ``semzoo evaluate``'s results.json;
    default RUN/evaluation.json when present); the tile geometry from the divisor and
    receptive-field radius the run recorded. An unfinished run (interrupted: no
    generator.keras yet) is refused unless ``allow_unfinished``. Returns ``(name, version)``.
    """
    from zoo.registry.export import tile_geometry
    from zoo.registry.store import check_label

    check_name(name)
    if label is not None:
        check_label(label)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no training run at {run_dir}")
    run = load_run(run_dir)
    if not run.finished and not allow_unfinished:
        raise UserError(
            f"{run_dir} is unfinished (stopped at step {run.steps_done} of {run.config['training']['steps']}): "
            "resume it with `semzoo train --resume`, or publish its last checkpoint with --unfinished"
        )
    generator_info = run.config["generator"]
    card = card_from_run(
        run,
        name=name,
        tile=tile_geometry(run.generator, divisor=int(generator_info["divisor"]),
                           radius=int(generator_info["receptive_field_radius_lr"])),
        sample_type=sample_type,
        evaluation=read_evaluation(evaluation, required=True)
        if evaluation is not None
        else read_evaluation(run_dir / EVALUATION_FILE),
    )
    return publish_generator(run.generator, card, zoo_root, label=label, progress=progress)
