"""`semzoo simulate`: synthetic LR/HR SEM pairs with ground truth (zoo.sim.dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import OverwriteOption, SeedOption, progress_bar


def simulate(
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder to write lr/, hr/, truth.json and preview.png into.")
    ],
    sample: Annotated[
        str,
        typer.Option("--sample", help="Sample type: gold-on-carbon (14.2 -> 7.1 nm) or hydrogel (56.8 -> 28.4 nm)."),
    ] = "gold-on-carbon",
    pairs: Annotated[int, typer.Option("--pairs", help="Number of LR/HR pairs to simulate.")] = 1,
    seed: SeedOption = 0,
    size: Annotated[
        str, typer.Option("--size", help="Width x height of both images in pixels (64 to 2048 each).")
    ] = "924x780",
    probe_fwhm: Annotated[
        Optional[float], typer.Option("--probe-fwhm", help="Probe FWHM in nm (default: the sample type's).")
    ] = None,
    dose: Annotated[
        Optional[float],
        typer.Option("--dose", help="Primary electrons per pixel, the same for LR and HR (default: per sample type)."),
    ] = None,
    preset: Annotated[
        Optional[str],
        typer.Option("--preset", help="Specimen variant: paper-calibrated (gold-on-carbon: the paper's randomly "
                     "chosen gaps, Lanczos missing ~14%, contact pairs of every kind) or hard-contacts (today's "
                     "set plus those contact pairs). Default: today's set."),
    ] = None,
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE", help="Change a field of the preset's specimen (repeatable), "
                     "e.g. --set median_diameter_nm=40 or --set narrow_gap_nm=3,15; recorded in truth.json."),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Simulate co-registered low/high-magnification SEM image pairs with known ground truth."""
    from zoo.sim.dataset import check_dataset_args, simulate_dataset
    from zoo.sim.presets import parse_specimen_settings
    from zoo.sim.samples import parse_size

    width, height = parse_size(size)
    overrides = parse_specimen_settings(sample, preset, settings)
    args = dict(
        pairs=pairs,
        seed=seed,
        size=(width, height),
        overwrite=overwrite,
        probe_fwhm_nm=probe_fwhm,
        electrons_per_pixel=dose,
        preset=preset,
    )
    check_dataset_args(out, sample, **args)  # refuse bad input before the progress bar appears
    with progress_bar(f"simulating {sample}", total=pairs) as update:
        summary = simulate_dataset(out, sample, progress=update, specimen_overrides=overrides or None, **args)
    per_pair = summary["seconds"] / summary["pairs"]
    extra = f", {summary['gaps_in_hr_fields']} narrow gaps" if summary["gaps_in_hr_fields"] else ""
    typer.echo(
        f"wrote {summary['pairs']} {summary['sample']} pair(s) of {width}x{height} "
        f"(LR {summary['lr_pixel_size_nm']:g} nm, HR {summary['hr_pixel_size_nm']:g} nm{extra}) to {out} "
        f"in {summary['seconds']:.1f} s ({per_pair:.2f} s/pair); truth: {out / 'truth.json'}, "
        f"preview: {out / 'preview.png'}"
    )


def register(app: typer.Typer) -> None:
    """Add ``semzoo simulate`` to the root app."""
    app.command("simulate")(simulate)
