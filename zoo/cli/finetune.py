"""`semzoo finetune`: adapt a zoo model to a new sample with a few calibration pairs."""

from __future__ import annotations

import contextlib
import enum
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import JsonOption, PixelSizeOption, SeedOption, ZooOption, default_zoo, progress_bar


class Freeze(str, enum.Enum):
    encoder = "encoder"
    none = "none"


def _table(title: str, table: dict):
    from rich.markup import escape
    from rich.table import Table

    from zoo.evaluation.tables import COLUMNS, ROW_LABELS, format_value

    columns = [c for c in COLUMNS if any(c in cols for cols in table.values())]
    out = Table(title=escape(title))  # region names like "pair-000 [columns 462:]" are not markup
    out.add_column("", justify="left", no_wrap=True)
    for column in columns:
        out.add_column(COLUMNS[column], justify="right")
    for row, cols in table.items():
        out.add_row(ROW_LABELS.get(row, row), *(format_value(c, cols.get(c)) for c in columns))
    return out


def finetune(
    calib: Annotated[Path, typer.Argument(help="Calibration folder: CALIB/lr and CALIB/hr with 1-10 "
                                                "TIFF pairs of the new sample, matched by file name, or "
                                                "CALIB/hr alone (the LR is then recorded from each image).")],
    parent: Annotated[str, typer.Option("--from", help="The zoo model to start from: NAME, "
                                        "NAME:VERSION or NAME@LABEL.")],
    name: Annotated[str, typer.Option("--name", help="Model to publish the fine-tuned version as (a "
                                      "new name, or one descending from the same model).")],
    zoo: ZooOption = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Most generator steps per "
                                                 "training; early stopping usually ends sooner "
                                                 "(default: 400 for the small preset).")] = None,
    freeze: Annotated[Freeze, typer.Option("--freeze", help="Keep the U-Net encoder fixed (few images), "
                                           "or fine-tune every weight.")] = Freeze.encoder,
    label: Annotated[Optional[str], typer.Option("--label", help="Label for the new version, e.g. "
                                                 "canary.")] = None,
    pixel_size: PixelSizeOption = None,
    hr_pixel_size: Annotated[Optional[float], typer.Option("--hr-pixel-size", min=0.0, help="HR pixel "
                                                           "size in nm; overrides the files' metadata.")] = None,
    seed: SeedOption = 0,
    noise_split: Annotated[bool, typer.Option("--noise-split/--no-noise-split", help="HR-only: split the "
                                              "HR's noise between input and target (see semzoo prepare).")] = True,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Change one training setting (repeatable), e.g. --set beta=0.05 for a weaker "
             "adversarial term; recorded in the card. Not the generator's shape or the "
             "validation schedule.")] = None,
    self_calibration: Annotated[bool, typer.Option(
        "--self", help="CALIB/hr holds the images to enhance themselves (fast scans, no finer image): "
                       "learn from each image's own 2x coarser record and publish a model for the "
                       "images' own pixel size (zero-shot internal learning).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Fine-tune a zoo model on a few calibration pairs of a new sample and publish it."""
    from rich.console import Console

    from zoo.nets.presets import TrainingConfig
    from zoo.training.finetune import finetune as run_finetune

    overrides = TrainingConfig.parse_settings(settings or [])

    zoo_root = zoo or default_zoo()
    with contextlib.ExitStack() as stack:
        bar = []

        def update(done: int, total: int) -> None:
            # Opened at the first progress report, so a refusal prints no empty bar.
            if not bar:
                bar.append(stack.enter_context(progress_bar("fine-tuning", total=total)))
            bar[0](done, total=total)

        result = run_finetune(
            calib, parent=parent, name=name, zoo_root=zoo_root, steps=steps, freeze=freeze.value,
            label=label, pixel_size_nm=pixel_size, hr_pixel_size_nm=hr_pixel_size, seed=seed,
            progress=update, noise_split=noise_split, settings=overrides,
            self_calibration=self_calibration,
        )
    err = Console(stderr=True)
    for warning in result.warnings:
        err.print(f"warning: {warning}", highlight=False)
    if json_output:
        typer.echo(json.dumps({"name": result.name, "version": result.version, "parent": result.parent,
                               "evaluation": result.card["evaluation"],
                               "wall_s": round(result.wall_s, 1), "cpu_s": round(result.cpu_s, 1)}, indent=2))
        return
    console = Console(width=max(100, Console().width))
    held = ", ".join(h for f in result.folds for h in f.held_out)
    console.print(_table(f"held-out: {held}", result.table))
    if len(result.folds) > 1:
        for fold in result.folds:
            console.print(_table(f"fold: {fold.name} (best at step {fold.best_step})", fold.table))
    console.print(result.card["evaluation"]["method"], highlight=False)
    if self_calibration:
        console.print(result.card["training"]["calibration"]["self"]["method"], highlight=False)
    labels = f" @{label}" if label else ""
    console.print(
        f"published {result.name}:{result.version}{labels} (parent {result.parent}, {result.steps} steps, "
        f"PSNR {result.psnr_gain_db:+.2f} dB vs the parent) in {zoo_root}; "
        f"{result.wall_s:.0f} s wall, {result.cpu_s:.0f} s CPU", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `finetune` to the root app."""
    app.command("finetune")(finetune)
