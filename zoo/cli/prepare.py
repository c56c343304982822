"""`semzoo prepare`: co-register raw LR/HR pairs (or record HR-only images) and cut the patches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import SeedOption, progress_bar
from zoo.errors import UserError


def prepare(
    raw: Annotated[Path, typer.Argument(help="Folder with lr/ and hr/ TIFFs paired by file name "
                                             "(+ truth.json when simulated), or with hr/ alone: the LR "
                                             "side is then made by the acquisition model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Data set folder to create (must not exist "
                                                          "or be empty, unless --overwrite).")],
    patch: Annotated[int, typer.Option("--patch", help="HR patch size in pixels (LR patches are half).")] = 128,
    stride: Annotated[Optional[int], typer.Option("--stride", help="HR pixels between patch origins "
                                                  "(default: the patch size, i.e. no overlap).")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Fraction of pairs held out "
                                                "for validation (at least 1 pair when there are 2+).")] = 0.1,
    min_correlation: Annotated[float, typer.Option("--min-correlation", help="Skip pairs whose LR/HR "
                                                   "correlation after registration is lower.")] = 0.5,
    min_patch_correlation: Annotated[float, typer.Option("--min-patch-correlation", help="Drop patches "
                                                         "whose LR/HR correlation is lower.")] = 0.5,
    pixel_size: Annotated[Optional[float], typer.Option("--pixel-size", min=0.0, help="LR pixel size "
                                                        "in nm; overrides the LR files' metadata (HR-only: "
                                                        "the HR images' size).")] = None,
    hr_pixel_size: Annotated[Optional[float], typer.Option("--hr-pixel-size", min=0.0, help="HR pixel "
                                                           "size in nm; overrides the HR files' metadata.")] = None,
    sample_type: Annotated[Optional[str], typer.Option("--sample-type", help="Sample type recorded in "
                                                       "the manifest (default: from truth.json).")] = None,
    records_per_image: Annotated[int, typer.Option("--records-per-image", min=1, help="HR-only: "
                                                   "acquisitions drawn per image (each its own scan and "
                                                   "noise split).")] = 1,
    noise_split: Annotated[bool, typer.Option("--noise-split/--no-noise-split", help="HR-only: split the "
                                              "HR's noise so input and target share none.")] = True,
    line_noise: Annotated[bool, typer.Option("--line-noise", help="HR-only: add scan-line noise (streaks "
                                             "along x, flicker) to half the HR fields before recording "
                                             "them; ranges in zoo.sim.acquisition.TRAINING_RANGES.")] = False,
    seed: SeedOption = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier data set at --out.")] = False,
) -> None:
    """Co-register raw LR/HR pairs and cut normalised training patches into a data set."""
    from rich.console import Console
    from rich.table import Table

    from zoo.data.hr_only import hr_images
    from zoo.data.prepare import is_hr_only, match_pairs, prepare_dataset

    hr_only = is_hr_only(raw)
    if line_noise and not hr_only:
        raise UserError(f"{raw}: --line-noise is for HR-only sets (hr/ without lr/); paired records keep their own")
    count = len(hr_images(raw)) * records_per_image if hr_only else len(match_pairs(raw)[0])
    with progress_bar("recording HR images" if hr_only else "registering pairs", total=max(1, count)) as update:
        result = prepare_dataset(
            raw, out, patch_size=patch, stride=stride, val_fraction=val_fraction,
            min_correlation=min_correlation, min_patch_correlation=min_patch_correlation,
            lr_pixel_size_nm=pixel_size, hr_pixel_size_nm=hr_pixel_size, sample_type=sample_type,
            overwrite=overwrite, seed=seed, progress=update,
            hr_only={"records_per_image": records_per_image, "noise_split": noise_split,
                     **({"line_noise": True} if line_noise else {})},
        )
    err = Console(stderr=True)
    for warning in result.warnings:
        err.print(f"warning: {warning}", highlight=False)
    table = Table(title=f"{out}: {result.manifest['patches']['train']} train / "
                        f"{result.manifest['patches']['val']} val patches, "
                        f"{result.manifest['patches']['dropped']} dropped")
    if hr_only:
        _hr_only_table(table, result.manifest)
        Console(width=max(100, Console().width)).print(table)
        return
    for column in ("pair", "correlation", "residual (HR px)", "kept", "dropped", "split"):
        table.add_column(column, justify="left" if column in ("pair", "split") else "right")
    for p in result.manifest["pairs"]:
        residual = "n/a" if p["residual_px"] is None or math.isnan(p["residual_px"]) else f"{p['residual_px']:.2f}"
        table.add_row(p["name"], f"{p['correlation']:.3f}", residual, str(p["patches_kept"]),
                      str(p["patches_dropped"]), p["split"])
    for f in result.failed:
        table.add_row(f["name"], "-", "-", "0", "-", "skipped")
    Console(width=max(100, Console().width)).print(table)
    for f in result.failed:
        err.print(f"skipped: {f['reason']}", highlight=False)


def _hr_only_table(table, manifest: dict) -> None:
    from zoo.sim.acquisition import ScanParams

    for column in ("record", "HR nm/px", "HR noise", "exact scan", "kept", "dropped", "split"):
        table.add_column(column, justify="left" if column in ("record", "split") else "right")
    for p in manifest["pairs"]:
        exact = ScanParams(**p["scan"]).is_exact_stepping_scan()
        table.add_row(p["name"], f"{p['hr_pixel_size_nm']:.3g}", f"{p['hr_noise_sigma']:.3g}", "yes" if exact else "no",
                      str(p["patches_kept"]), str(p["patches_dropped"]), p["split"])


def register(app: typer.Typer) -> None:
    """Add `prepare` to the root app."""
    app.command("prepare")(prepare)
