"""`semzoo publish`: a training run -> a new zoo version (SavedModel + card)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import ZooOption, default_zoo, progress_bar


def publish(
    run: Annotated[Path, typer.Argument(help="Training run directory (from `semzoo train`).")],
    name: Annotated[str, typer.Option("--name", help="Model name in the zoo, e.g. gold-on-carbon.")],
    zoo_dir: ZooOption = None,
    label: Annotated[
        Optional[str], typer.Option("--label", help="Point this label (e.g. stable, canary) at the new version.")
    ] = None,
    sample_type: Annotated[
        Optional[str],
        typer.Option("--sample-type", help="Sample type for the card (default: the run's)."),
    ] = None,
    evaluation: Annotated[
        Optional[Path],
        typer.Option("--evaluation", help="Evaluation JSON for the card, e.g. `semzoo evaluate`'s results.json (default: RUN/evaluation.json)."),
    ] = None,
    unfinished: Annotated[
        bool, typer.Option("--unfinished", help="Publish an interrupted run's last checkpoint.")
    ] = False,
) -> None:
    """Publish a training run's generator as the next version of a zoo model."""
    from zoo.training.publish import publish_run
    from zoo.registry.store import Zoo

    root = zoo_dir or default_zoo()
    with progress_bar(f"publishing {name}", total=4) as update:
        name, version = publish_run(
            run, name, root, label, sample_type=sample_type, evaluation=evaluation, allow_unfinished=unfinished, progress=update
        )
    card = Zoo(root).card(name, version)
    tile = card["tile"]
    typer.echo(
        f"published {name}:{version}{f' (label {label})' if label else ''} at {root / name / str(version)}\n"
        f"  {card['input_pixel_size_nm']:g} -> {card['output_pixel_size_nm']:g} nm, "
        f"tile {tile['size']} px, overlap {tile['overlap']} px; "
        "run `semzoo zoo config` to update serving/models.config"
    )


def register(app: typer.Typer) -> None:
    """Add `semzoo publish` to the root app."""
    app.command("publish")(publish)
