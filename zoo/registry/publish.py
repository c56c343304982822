"""Publish a training run into the zoo: card from the run's config + data manifest, export, publish.

``publish_run`` is what ``semzoo publish`` calls; notebooks call it directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.errors import UserError
from zoo.registry.card import Card, check_name, new_card

ProgressCallback = Callable[[int, int], None]
EVALUATION_FILE = "evaluation.json"


def _training_steps(config: Mapping[str, Any], history: Mapping[str, Any]) -> int:
    """Generator steps actually trained: from the history when it records them, else config."""
    for key in ("steps_done", "step", "steps"):
        value = history.get(key) if isinstance(history, Mapping) else None
        if isinstance(value, list) and value and isinstance(value[-1], (int, float)):
            return int(value[-1])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    value = config.get("steps")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def card_from_run(
    run,
    *,
    name: str,
    tile: Mapping[str, int],
    sample_type: str | None = None,
    evaluation: Mapping[str, Any] | None = None,
    parent: str | None = None,
) -> Card:
    """The card for a ``zoo.training.train.Run`` (config, data manifest, history)."""
    config: Mapping[str, Any] = run.config or {}
    manifest: Mapping[str, Any] = run.manifest or {}
    history: Mapping[str, Any] = getattr(run, "history", None) or {}
    lr = manifest.get("lr_pixel_size_nm")
    scale = manifest.get("scale", config.get("scale", 2))
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise UserError("the run's data manifest has no lr_pixel_size_nm: cannot write the card")
    hr = manifest.get("hr_pixel_size_nm")
    if isinstance(hr, (int, float)) and not math.isclose(lr / scale, hr, rel_tol=0.02):
        raise UserError(
            f"the run's pixel sizes {lr} -> {hr} nm do not match its scale factor {scale}"
        )
    patches = manifest.get("patches") or {}
    pairs = manifest.get("pairs") or []
    training = {
        "pairs": len(pairs) if isinstance(pairs, (list, dict)) else int(pairs),
        "patches": int(patches.get("train", 0)) + int(patches.get("val", 0))
        if isinstance(patches, Mapping)
        else int(patches),
        "simulated": bool(manifest.get("simulated", False)),
        "dataset_hash": manifest.get("dataset_hash"),
        "steps": _training_steps(config, history),
        "preset": config.get("preset"),
    }
    # Extras a reader of the card may want; absent keys are simply not recorded.
    generator_info = config.get("generator") if isinstance(config.get("generator"), Mapping) else {}
    for key, value in (("seed", config.get("seed")), ("parameters", generator_info.get("parameters"))):
        if value is not None:
            training[key] = value
    if manifest.get("hr_only"):
        # Learnt from HR images alone (zoo.data.hr_only): which images, which magnifications.
        # A pixel-size range makes the model a general one (zoo.client.model_choice).
        training["hr_only"] = True
        training["specimens"] = sorted({p.get("split_group", p.get("name")) for p in pairs if isinstance(p, Mapping)})
        training["noise_split_alpha"] = manifest.get("noise_split_alpha")
        training["sources"] = list(manifest.get("sources") or [])
        span = manifest.get("lr_pixel_size_range_nm")
        if span and span[1] > span[0] * 1.02:
            training["input_pixel_size_range_nm"] = [float(span[0]), float(span[1])]
    return new_card(
        name=name,
        sample_type=sample_type or config.get("sample_type") or manifest.get("sample_type"),
        input_pixel_size_nm=float(lr),
        scale=int(scale),
        tile=tile,
        training=training,
        evaluation=evaluation,
        # A run started from a zoo version (`semzoo train --init-from`) descends from it.
        parent=parent if parent is not None else config.get("initialised_from"),
    )


def read_evaluation(path: str | Path, *, required: bool = False) -> dict:
    """The card's evaluation table from a JSON file (empty when absent and not ``required``).

    A ``semzoo evaluate`` results.json is reduced to its aggregate table
    (``{"pairs": n, "table": {row: {metric: value}}}``) plus, where it has them, the tables of
    undetected gaps by true width and by input sampling (``undetected_by_width``,
    ``undetected_by_input_sampling``) and an HR-only report's image count; per-pair and
    per-image details stay in results.json. Any other JSON object is kept as is.
    """
    path = Path(path)
    if not path.is_file():
        if required:
            raise UserError(f"no evaluation file at {path}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    if isinstance(data.get("aggregate"), dict):  # results.json of `semzoo evaluate`
        evaluation = {"pairs": data.get("pairs"), "table": data["aggregate"]}
        for key in ("images", "undetected_by_width", "undetected_by_input_sampling"):
            if data.get(key) is not None:
                evaluation[key] = data[key]
        return evaluation
    return data


def publish_generator(
    generator,
    card: Mapping[str, Any],
    zoo_root: str | Path,
    *,
    label: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[str, int]:
    """Export ``generator`` with ``card`` and publish it as the next version of card['name']."""
    from zoo.registry.export import export_generator
    from zoo.registry.store import Zoo

    zoo = Zoo(zoo_root)
    version = zoo.publish_version(
        card["name"],
        lambda out: export_generator(generator, card, out),
        label=label,
        progress=progress,
    )
    return card["name"], version


def _known_radius(generator_info: Mapping) -> int | None:
    """The exact receptive-field radius a training run recorded (None for older runs)."""
    radius = generator_info.get("receptive_field_radius_lr")
    return int(radius) if radius is not None else None


def publish_run(
    run_dir: str | Path,
    name: str,
    zoo_root: str | Path | None = None,
    label: str | None = None,
    *,
    sample_type: str | None = None,
    evaluation: str | Path | None = None,
    allow_unfinished: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[str, int]:
    """Publish the generator of training run ``run_dir`` as a new version of ``name``.

    The card comes from the run's config.json and data manifest (pixel sizes, training
    summary) and ``evaluation`` (a JSON file, e.g. ``semzoo evaluate``'s results.json;
    default RUN/evaluation.json when present); the tile overlap is the generator's
    measured receptive field. An unfinished run (interrupted: no generator.keras yet) is
    refused unless ``allow_unfinished``. Returns ``(name, version)``.
    """
    from zoo.registry.export import tile_geometry
    from zoo.registry.store import check_label
    from zoo.training.train import load_run

    check_name(name)
    if label is not None:
        check_label(label)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no training run at {run_dir}")
    if zoo_root is None:
        from zoo.cli.options import default_zoo

        zoo_root = default_zoo()
    from zoo.nets.generator import DIVISOR

    run = load_run(run_dir)
    if not getattr(run, "finished", True) and not allow_unfinished:
        done = _training_steps(run.config or {}, run.history or {})
        raise UserError(
            f"{run_dir} is unfinished (stopped at step {done} of {(run.config or {}).get('steps')}): "
            "resume it with `semzoo train --resume`, or publish its last checkpoint with --unfinished"
        )
    generator_info = (run.config or {}).get("generator") or {}
    divisor = int(generator_info.get("divisor") or DIVISOR)
    card = card_from_run(
        run,
        name=name,
        tile=tile_geometry(run.generator, divisor=divisor, radius=_known_radius(generator_info)),
        sample_type=sample_type,
        evaluation=read_evaluation(evaluation, required=True)
        if evaluation is not None
        else read_evaluation(run_dir / EVALUATION_FILE),
    )
    return publish_generator(run.generator, card, zoo_root, label=label, progress=progress)
