"""`semzoo evaluate`: the paper's evaluation of super-resolved images, as a table and a report."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from zoo.cli.options import JsonOption, OverwriteOption, PixelSizeOption, ZooOption, default_zoo, progress_bar
from zoo.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")
# Pixel sizes of input and target should differ by the scale (native LR) or not at all; a few
# percent is calibration slack, as in registration.
PIXEL_RATIO_TOLERANCE = 0.05


def _tiffs(folder: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in TIFF_SUFFIXES and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


def _without_side_files(outputs: dict[str, Path]) -> dict[str, Path]:
    """The outputs minus the data-consistency maps `semzoo enhance` writes beside them."""
    from zoo.client.files import consistency_path

    side = {consistency_path(path).name for path in outputs.values()}
    return {name: path for name, path in outputs.items() if path.name not in side}


def match_files(input: Path, output: Path, target: Path) -> list[tuple[str, Path, Path, Path]]:
    """(name, input, output, target) for three files, or for three folders matched by file name.

    Every output needs an input and a target of the same name (extension aside); targets and
    inputs without an output are not evaluated.
    """
    paths = {"--input": input, "--output": output, "--target": target}
    for option, path in paths.items():
        if not path.exists():
            raise UserError(f"{option} {path} does not exist")
    kinds = {path.is_dir() for path in paths.values()}
    if len(kinds) != 1:
        raise UserError("--input, --output and --target must be three files or three folders")
    if not input.is_dir():
        return [(target.stem, input, output, target)]
    inputs, outputs, targets = _tiffs(input), _tiffs(output), _tiffs(target)
    outputs = _without_side_files(outputs)
    if not outputs:
        raise UserError(f"no TIFF files in {output}")
    missing = [
        f"{name} (no {what} in {folder})"
        for name in outputs
        for what, files, folder in (("input", inputs, input), ("target", targets, target))
        if name not in files
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"outputs without a matching file: {shown}")
    return [(name, inputs[name], outputs[name], targets[name]) for name in outputs]


def load_truth(path: Path) -> dict:
    """The ``pairs`` of the truth file at ``path`` (:func:`zoo.sim.truth.read_truth`), each
    given the file's ``probe_fwhm_nm`` unless it has its own."""
    from zoo.sim.truth import read_truth, with_file_probe

    return with_file_probe(read_truth(path, label=f"--truth {path}"))["pairs"]


def _truth_for(pairs: dict, name: str, single: bool, path: Path) -> dict:
    if name in pairs:
        return pairs[name]
    if single and len(pairs) == 1:
        return next(iter(pairs.values()))
    raise UserError(f"--truth {path} has no pair named {name!r}")


def _check_ratio(name: str, inp, tgt, native: bool, warnings: list[str]) -> None:
    if inp.pixel_size_nm is None or tgt is None:
        return
    expected = tgt * (2 if native else 1)
    if abs(inp.pixel_size_nm / expected - 1) > PIXEL_RATIO_TOLERANCE:
        warnings.append(
            f"{name}: input pixel size {inp.pixel_size_nm:g} nm, expected {expected:g} nm for "
            f"{'a native LR of' if native else 'an input on the grid of'} a {tgt:g} nm target"
        )


def evaluate(
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="The network's input: a TIFF or a "
                                                  "folder of TIFFs, native LR (half the target's size) or "
                                                  "already on the target's grid.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The network's output (TIFF or "
                                                   "folder), on the target's grid.")] = None,
    target: Annotated[Optional[Path], typer.Option("--target", "-t", help="The high-resolution target (TIFF "
                                                   "or folder), e.g. DATA/registered/hr from semzoo "
                                                   "prepare.")] = None,
    report: Annotated[Path, typer.Option("--report", "-r", help="Report folder to create (report.md, "
                                         "figures, results.json); must not exist or be empty, "
                                         "unless --overwrite.")] = ...,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="truth.json with the planted gaps "
                                                  "(coordinates on the target's grid); without it "
                                                  "particles and gaps are found in the target.")] = None,
    hr_only: Annotated[Optional[List[Path]], typer.Option("--hr-only", help="Real HR images (TIFF/PNG files "
                                                          "or folders; repeatable): evaluate without pairs, "
                                                          "LR = every second pixel.", show_default=False)] = None,
    model: Annotated[Optional[List[str]], typer.Option("--model", help="With --hr-only: a zoo model to score "
                                                       "(NAME, NAME:VERSION or NAME@LABEL; repeatable).",
                                                       show_default=False)] = None,
    zoo: ZooOption = None,
    pixel_size: PixelSizeOption = None,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Compare super-resolved images with their targets: PSNR/SSIM, gap analysis, spectra, FRC.

    Paired mode: --input, --output and --target (files or folders matched by name).

    HR-only mode, for real images without pairs: --hr-only HR... [--model NAME]...
    Each image's LR is every second pixel (what a scan at twice the pitch
    records). Nearest, bicubic, Lanczos and each --model (run as `semzoo
    enhance` runs it) upsample it x2 and are scored on the HR pixels the LR
    did not sample, after a sub-pixel shift and a gain/offset fit: PSNR, SSIM
    and shift per image, the image's noise ceiling, and per model the mean
    and worst PSNR against Lanczos.
    """
    if hr_only:
        given = [o for o, v in (("--input", input), ("--output", output), ("--target", target),
                                ("--truth", truth)) if v is not None]
        if given:
            raise UserError(f"--hr-only evaluates real images without pairs; drop {', '.join(given)}")
        _evaluate_hr_only(hr_only, model or [], zoo, report, pixel_size, overwrite, json_output)
        return
    missing = [o for o, v in (("--input", input), ("--output", output), ("--target", target)) if v is None]
    if missing:
        raise UserError(f"give {', '.join(missing)} (paired mode), or --hr-only for real images without pairs")
    if model:
        raise UserError("--model is for --hr-only; in paired mode --output holds the model's results")
    from rich.console import Console

    from zoo.data.sem_tiff import read_sem, require_pixel_size
    from zoo.evaluation.report import evaluate as run_evaluation, write_report
    from zoo.evaluation.tables import aggregate_table, results_json

    pairs = match_files(input, output, target)
    if report.exists() and not report.is_dir():
        raise UserError(f"--report {report} exists and is not a folder")
    if report.is_dir() and any(report.iterdir()) and not overwrite:
        raise UserError(f"--report {report} exists and is not empty; pass --overwrite to replace it")
    truth_pairs = load_truth(truth) if truth is not None else None

    warnings: list[str] = []
    results = []
    bar = contextlib.nullcontext(lambda *a, **k: None) if json_output else progress_bar(
        "evaluating", total=len(pairs)
    )
    with bar as update:
        for k, (name, inp_path, out_path, tgt_path) in enumerate(pairs):
            update(k, description=f"evaluating {name}")
            tgt = read_sem(tgt_path, pixel_size)
            out = read_sem(out_path)
            inp = read_sem(inp_path)
            for sem in (tgt, out, inp):
                warnings += [f"{sem.path.name}: {w}" for w in sem.warnings]
            grid_nm = require_pixel_size(tgt)
            if out.pixel_size_nm is not None and abs(out.pixel_size_nm / grid_nm - 1) > PIXEL_RATIO_TOLERANCE:
                warnings.append(f"{name}: output pixel size {out.pixel_size_nm:g} nm, target {grid_nm:g} nm")
            _check_ratio(name, inp, grid_nm, inp.image.shape != tgt.image.shape, warnings)
            pair_truth = _truth_for(truth_pairs, name, len(pairs) == 1, truth) if truth_pairs is not None else None
            try:
                result = run_evaluation(
                    inp.image, out.image, tgt.image, pixel_size_nm=grid_nm, truth=pair_truth, name=name
                )
            except UserError as exc:
                raise UserError(f"{name}: {exc}") from None
            result.sources = {"input": str(inp_path), "output": str(out_path), "target": str(tgt_path)}
            if truth is not None:
                result.sources["truth"] = str(truth)
            results.append(result)
        update(len(pairs), description="writing the report")
        write_report(results, report, overwrite=overwrite)

    err = Console(stderr=True)
    for warning in warnings:
        err.print(f"warning: {warning}", highlight=False)
    if json_output:
        typer.echo(json.dumps({**results_json(results), "report": str(report)}, indent=2))
        return
    _print_table(aggregate_table(results), results, report)


def _print_table(table: dict, results: list, report: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from zoo.evaluation.tables import COLUMNS, ROW_LABELS, format_value, frc_at_limit, pooled_gap_stats

    ref = pooled_gap_stats(results, "target")
    title = (
        f"{len(results)} pair(s) at {results[0].pixel_size_nm:g} nm/pixel; {ref.n_gaps} gaps, "
        f"{ref.n_touching} touching pairs ({results[0].gap_source})"
    )
    rich_table = Table(title=title)
    rich_table.add_column("", justify="left", no_wrap=True)
    for header in COLUMNS.values():
        rich_table.add_column(header, justify="right")
    for row, cols in table.items():
        rich_table.add_row(
            ROW_LABELS[row],
            *(
                format_value(c, cols[c], at_limit=(c == "frc_resolution_nm" and frc_at_limit(results, row)))
                for c in COLUMNS
            ),
        )
    console = Console(width=max(120, Console().width))
    console.print(rich_table)
    console.print(f"report: {report / 'report.md'}", highlight=False)


def _evaluate_hr_only(hr_paths, models, zoo, report, pixel_size, overwrite, json_output) -> None:
    from rich.console import Console

    from zoo.evaluation.real_images import plan_hr_only, run_hr_only

    zoo_dir = Path(zoo) if zoo is not None else default_zoo()
    plan = plan_hr_only(hr_paths, models, zoo_dir, report, pixel_size_nm=pixel_size, overwrite=overwrite)
    bar = contextlib.nullcontext(lambda *a, **k: None) if json_output else progress_bar(
        "evaluating", total=len(plan.paths)
    )
    with bar as update:
        _, data = run_hr_only(plan, progress=lambda done, total: update(done, total=total))
    err = Console(stderr=True)
    for warning in data["warnings"]:
        err.print(f"warning: {warning}", highlight=False)
    if json_output:
        typer.echo(json.dumps({**data, "report": str(report)}, indent=2))
        return
    _print_hr_only_tables(data, report)


def _print_hr_only_tables(data: dict, report: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from zoo.evaluation.real_image_report import label

    def f(value, fmt):
        return "inf" if value is None else format(value, fmt)

    table = Table(title=f"{data['images']} real image(s); LR = every second pixel; scored on the pixels it did not sample")
    for header in ("", "mean PSNR (dB)", "mean SSIM", "vs Lanczos mean (dB)", "vs Lanczos worst (dB)", "below Lanczos",
                   "unscanned lines vs Lanczos (dB)"):
        table.add_column(header, justify="left" if not header else "right", no_wrap=not header)
    for key, a in data["aggregate"].items():
        table.add_row(label(key), f(a["psnr_db"], ".2f"), f(a["ssim"], ".4f"), f(a["psnr_vs_lanczos_db"], "+.2f"),
                      f(a["worst_psnr_vs_lanczos_db"], "+.2f"), f"{a['images_below_lanczos']}/{data['images']}",
                      f(a["psnr_lines_vs_lanczos_db"], "+.2f"))
    per_image = Table(title="per image: PSNR (dB) and the noise ceiling")
    keys = list(data["aggregate"])
    for header in ("image", "nm/px", "ceiling", *map(label, keys)):
        per_image.add_column(header, justify="left" if header == "image" else "right")
    for r in data["per_image"]:
        px = "?" if r["pixel_size_nm"] is None else f"{r['pixel_size_nm']:g}"
        per_image.add_row(r["name"], px, f(r["noise_ceiling_psnr_db"], ".2f"),
                          *(f(r["candidates"][k]["psnr_db"], ".2f") for k in keys))
    console = Console(width=max(120, Console().width))
    console.print(table)
    console.print(per_image)
    console.print(f"report: {report / 'report.md'}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the root app."""
    app.command("evaluate")(evaluate)
