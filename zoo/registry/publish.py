"""Publish a generator with its card as the next version of a zoo model; the card's evaluation.

The registry takes a generator, a card and a zoo root; reading a training run into a card is
training's part (:func:`zoo.training.publish.publish_run`, what ``semzoo publish`` calls).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.errors import UserError

ProgressCallback = Callable[[int, int], None]


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
