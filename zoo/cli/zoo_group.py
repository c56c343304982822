"""`semzoo zoo ...`: list, show and label zoo models; write TF Serving's models.config and the
models' pages (docs/models/NAME.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import JsonOption, OverwriteOption, ZooOption, default_zoo

zoo_app = typer.Typer(
    name="zoo",
    help="Inspect and manage the model zoo (versions, labels, TF Serving config).",
    no_args_is_help=True,
)


def _zoo(zoo_dir: Path | None):
    from zoo.registry.store import Zoo

    return Zoo(zoo_dir or default_zoo())


def _summary(zoo, name: str, verify: bool) -> dict:
    from zoo.errors import UserError
    from zoo.registry.card import key_metrics

    versions = zoo.versions(name)
    labels = zoo.labels(name)
    row: dict = {"model": name, "versions": versions, "labels": labels, "problems": {}}
    try:
        _, default = zoo.resolve(name)
        card = zoo.card(name, default)
        row.update(
            default_version=default,
            sample_type=card["sample_type"],
            input_pixel_size_nm=card["input_pixel_size_nm"],
            output_pixel_size_nm=card["output_pixel_size_nm"],
            key_metrics=key_metrics(card["evaluation"], own=f"{name}:{default}"),
        )
    except UserError as exc:
        row["problems"]["card"] = [str(exc)]
    if verify:
        for version in versions:
            problems = zoo.verify(name, version)
            if problems:
                row["problems"][str(version)] = problems
    return row


def _console():
    from rich.console import Console

    console = Console()
    # Piped or captured output has no terminal width; don't squeeze tables into 80 columns.
    return console if console.is_terminal else Console(width=160)


@zoo_app.command("list")
def list_models(
    zoo_dir: ZooOption = None,
    as_json: JsonOption = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Check every version's sha256s against its card.")
    ] = True,
) -> None:
    """List the zoo's models: versions, labels, pixel sizes, key metrics and problems."""
    zoo = _zoo(zoo_dir)
    rows = [_summary(zoo, name, verify) for name in zoo.models()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        _fail_on_problems(rows)
        return
    if not rows:
        typer.echo(f"the zoo at {zoo.root} has no models yet (publish one with `semzoo publish`)")
        return
    from rich.table import Table

    table = Table(title=f"model zoo at {zoo.root}")
    for column in ("model", "versions", "labels", "sample type", "pixel size (nm)", "key metrics", "problems"):
        table.add_column(column)
    for row in rows:
        size = (
            f"{row['input_pixel_size_nm']:g} -> {row['output_pixel_size_nm']:g}"
            if "input_pixel_size_nm" in row
            else "?"
        )
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in row.get("key_metrics", {}).items()) or "-"
        problems = "; ".join(
            f"{where if where == 'card' else 'v' + where}: {p[0]}" + (f" (+{len(p) - 1} more)" if len(p) > 1 else "")
            for where, p in row["problems"].items()
        )
        table.add_row(
            row["model"],
            " ".join(map(str, row["versions"])),
            ", ".join(f"{k}={v}" for k, v in row["labels"].items()) or "-",
            row.get("sample_type") or "-",
            size,
            metrics,
            f"[red]{problems}[/red]" if problems else "ok" if verify else "not checked",
        )
    _console().print(table)
    _fail_on_problems(rows)


def _fail_on_problems(rows: list[dict]) -> None:
    from zoo.errors import UserError

    bad = [f"{row['model']}" for row in rows if row["problems"]]
    if bad:
        raise UserError(f"the zoo has problems in {', '.join(bad)} (see the problems column)")


@zoo_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION, NAME:latest or NAME@LABEL.")],
    zoo_dir: ZooOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model version's card (NAME alone means its 'stable' label, else the latest)."""
    zoo = _zoo(zoo_dir)
    name, version = zoo.resolve(model)
    card = zoo.card(name, version)
    if as_json:
        typer.echo(json.dumps({"version": version, "card": card}, indent=2, sort_keys=True))
        return
    from rich.pretty import Pretty
    from rich.table import Table

    labels = [label for label, v in zoo.labels(name).items() if v == version]
    table = Table(title=f"{name}:{version}" + (f" ({', '.join(labels)})" if labels else ""), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    tile, training = card["tile"], card["training"]
    rows = [
        ("sample type", card["sample_type"] or "-"),
        ("pixel size", f"{card['input_pixel_size_nm']:g} nm -> {card['output_pixel_size_nm']:g} nm (x{card['scale']})"),
        ("normalisation", card["normalisation"]["method"]),
        ("tile", f"{tile['size']} px, overlap {tile['overlap']} px, divisor {tile['divisor']}"),
        ("training", ", ".join(f"{k} {training[k]}" for k in sorted(training))),
        ("parent", card["parent"] or "-"),
        ("created", card["created"]),
        ("made with", ", ".join(f"{k} {v}" for k, v in sorted(card["versions"].items()))),
        ("files", f"{len(card['files'])} (sha256 in the card)"),
        ("path", str(zoo.version_dir(name, version))),
    ]
    for field, value in rows:
        table.add_row(field, str(value))
    table.add_row("evaluation", Pretty(card["evaluation"]) if card["evaluation"] else "-")
    _console().print(table)


@zoo_app.command("label")
def label(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number the label should point at.")],
    label_name: Annotated[str, typer.Argument(metavar="LABEL", help="Label, e.g. stable or canary.")],
    zoo_dir: ZooOption = None,
) -> None:
    """Point a label (stable, canary, ...) of a model at one of its versions."""
    zoo = _zoo(zoo_dir)
    previous = zoo.labels(model).get(label_name)
    zoo.set_label(model, version, label_name)
    moved = f" (was {previous})" if previous is not None and previous != version else ""
    typer.echo(f"{model}@{label_name} -> {version}{moved}; run `semzoo zoo config` to update serving/models.config")


@zoo_app.command("config")
def config(
    zoo_dir: ZooOption = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="models.config to write ('-' for stdout; default: serving/ beside the zoo)."),
    ] = None,
    base_path: Annotated[
        str, typer.Option("--base-path", help="Where the zoo is mounted for TF Serving (models are BASE/NAME).")
    ] = "/models",
    overwrite: OverwriteOption = False,
) -> None:
    """Write TF Serving's models.config (version policy + labels) from the zoo."""
    from zoo.errors import UserError
    from zoo.registry.tfs_config import HEADER, models_config_text, write_models_config

    zoo = _zoo(zoo_dir)
    if out is not None and str(out) == "-":
        typer.echo(models_config_text(zoo, base_path=base_path), nl=False)
        return
    target = out or zoo.root.resolve().parent / "serving" / "models.config"
    # A config this command wrote is regenerated freely; anything else needs --overwrite.
    if target.is_file() and not overwrite and not target.read_text(errors="replace").startswith(HEADER):
        raise UserError(f"{target} exists and was not generated by semzoo; use --overwrite to replace it")
    write_models_config(zoo, target, base_path=base_path)
    typer.echo(f"wrote {target} ({len(zoo.models())} models)")


@zoo_app.command("docs")
def docs(
    zoo_dir: ZooOption = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Folder for NAME.md (default: docs/models beside the zoo).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 2 if a page differs from what the cards render.")
    ] = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Write docs/models/NAME.md for every model, rendered from its versions' cards."""
    from zoo.errors import UserError
    from zoo.registry.model_doc import stale_model_docs, write_model_docs

    zoo = _zoo(zoo_dir)
    target = out or zoo.root.resolve().parent / "docs" / "models"
    if check:
        stale = stale_model_docs(zoo, target)
        if stale:
            raise UserError(f"stale in {target}: {', '.join(stale)}; run `semzoo zoo docs`")
        typer.echo(f"{target} matches the cards ({len(zoo.models())} models)")
        return
    written = write_model_docs(zoo, target, overwrite=overwrite)
    typer.echo(f"wrote {len(written)} model pages into {target}")


@zoo_app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION, NAME:latest or NAME@LABEL.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The package to write (FILE.zip).")],
    fmt: Annotated[
        str, typer.Option("--format", help="Package format: bioimageio (a bioimage.io 0.5 model zip).")
    ] = "bioimageio",
    sample_image: Annotated[
        Optional[Path],
        typer.Option("--sample-image", help="SEM TIFF for the test tensors and cover (default: a seeded stand-in)."),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="Also run bioimageio.core's test_model on the package before writing it.")
    ] = False,
    zoo_dir: ZooOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Export a model version as a package for other runtimes (bioimage.io: deepImageJ, napari)."""
    from zoo.cli.options import progress_bar
    from zoo.registry.bioimageio import export_zoo_version

    with progress_bar(f"exporting {model}") as update:
        result = export_zoo_version(_zoo(zoo_dir), model, out, fmt=fmt, sample_image=sample_image,
                                    test=test, overwrite=overwrite, progress=update)
    checks = [c for c in (result["validation"], result["test"]) if c] or [
        "not validated (pip install 'semzoo[bioimageio]' to check it with bioimageio.spec)"]
    typer.echo(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {result['model']} as a "
               f"bioimage.io {result['format_version']} model); " + "; ".join(checks))


def register(app: typer.Typer) -> None:
    """Add the `semzoo zoo` command group to the root app."""
    app.add_typer(zoo_app, name="zoo")
