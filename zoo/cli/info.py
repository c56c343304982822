"""`semzoo info`: what semzoo sees in SEM TIFFs (vendor, size, pixel size and its source, data bar).

Every readable file is reported; unreadable ones get one ``error:`` line each on stderr after
the report, and the command then exits 2, so a script sees both the good results and the failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.options import JsonOption, PixelSizeOption
from zoo.errors import UserError

DEFAULT_MAX_PIXELS = 2**28  # keep in sync with zoo.data.sem_tiff (not imported: --help stays cheap)


def info(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="SEM TIFF files to describe.", show_default=False)],
    pixel_size: PixelSizeOption = None,
    json_output: JsonOption = False,
    max_pixels: Annotated[
        int,
        typer.Option("--max-pixels", min=4, help="Refuse images with more pixels than this (checked before reading)."),
    ] = DEFAULT_MAX_PIXELS,
) -> None:
    """Show vendor, size, dtype, pixel size (nm) and its source, and data-bar rows of SEM TIFFs."""
    from zoo.data.sem_tiff import read_sem

    reports: list[dict] = []
    errors: list[str] = []
    for path in files:
        try:
            reports.append(read_sem(path, pixel_size, max_pixels=max_pixels).summary())
        except UserError as exc:
            errors.append(str(exc))

    if json_output:
        typer.echo(json.dumps(reports, indent=2))
    elif reports:
        _print_table(reports)
    for message in errors:
        typer.echo(f"error: {message}", err=True)
    if errors:
        raise typer.Exit(UserError.exit_code)


def _print_table(reports: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("vendor")
    table.add_column("width", justify="right")
    table.add_column("height", justify="right")
    table.add_column("dtype")
    table.add_column("pixel nm", justify="right")
    table.add_column("pixel size from", overflow="fold")
    table.add_column("data bar", justify="right")
    for report in reports:
        size = report["pixel_size_nm"]
        table.add_row(
            report["path"],
            report["vendor"],
            str(report["width"]),
            str(report["height"]),
            report["dtype"],
            f"{size:.5g}" if size is not None else "unknown",
            report["pixel_size_source"],
            str(report["databar_rows"]),
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=200)
    console.print(table)
    for report in reports:
        for warning in report["warnings"]:
            console.print(f"warning: {report['path']}: {warning}", markup=False, highlight=False)
        if report["pixel_size_nm"] is None:
            console.print(
                f"note: {report['path']}: no pixel size in its metadata; commands that need one "
                "will ask for --pixel-size NM",
                markup=False,
                highlight=False,
            )


def register(app: typer.Typer) -> None:
    """Add ``semzoo info`` to the root app."""
    app.command("info")(info)
