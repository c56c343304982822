"""`semzoo watch IN -o OUT`: enhance each SEM TIFF as the acquisition software finishes writing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.options import (
    DEFAULT_MEMORY_BUDGET_MB,
    CompareOption,
    ConsistentOption,
    ModelOption,
    PixelSizeOption,
    ServerOption,
    StrictOption,
    MemoryBudgetOption,
    TileSizeOption,
    ZooOption,
)
from zoo.errors import UserError


def watch(
    in_dir: Annotated[Path, typer.Argument(metavar="IN", help="Folder the acquisition software writes SEM TIFFs into.",
                                           show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the enhanced TIFFs (created if needed).")],
    model: ModelOption = None,
    server: ServerOption = None,
    zoo: ZooOption = None,
    pixel_size: PixelSizeOption = None,
    compare: CompareOption = False,
    tile_size: TileSizeOption = None,
    memory_budget: MemoryBudgetOption = DEFAULT_MEMORY_BUDGET_MB,
    strict: StrictOption = False,
    consistent: ConsistentOption = False,
    poll: Annotated[
        bool,
        typer.Option("--poll", help="Notice new files by listing IN instead of file-system notifications "
                                    "(network shares; automatic on NFS/SMB mounts and where notifications fail)."),
    ] = False,
    once: Annotated[
        bool,
        typer.Option("--once", help="Enhance the files IN holds now (waiting for any still being written), then "
                                    "exit; exit 2 if one failed."),
    ] = False,
    settle: Annotated[
        float,
        typer.Option("--settle", min=0.05, help="Seconds a file's size and mtime must stay unchanged before it "
                                                "counts as written (it must also read as a complete TIFF)."),
    ] = 2.0,
) -> None:
    """Enhance each SEM TIFF in IN as soon as it is completely written, into OUT, until stopped.

    Files are enhanced as `semzoo enhance` does (same model choice, output names, provenance,
    consistency map), one line per file with its consistency check's headline numbers. A file
    counts as written when its size and mtime have been stable for --settle seconds and it
    reads as a complete TIFF. Files whose output OUT/NAME.tif exists are skipped, so a restart
    redoes nothing; a file that fails gets one error line and watching goes on. Ctrl-C or
    SIGTERM stops after the current file (a second Ctrl-C stops at once, writing nothing of it).
    """
    import signal
    import threading

    from zoo.cli.enhance import enhance_session
    from zoo.client.files import Job, ModelSpec, read_checked
    from zoo.client.watching import Arrivals

    spec = ModelSpec.parse(model) if model is not None else None
    if not in_dir.is_dir():
        raise UserError(f"{in_dir}: no such folder" if not in_dir.exists() else f"{in_dir}: not a folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} must be a folder")
    if out.resolve() == in_dir.resolve():
        raise UserError(f"output {out} is the watched folder itself; choose another -o")

    def output_of(path: Path) -> Path:
        return out / f"{path.stem}.tif"  # the name `semzoo enhance IN... -o OUT` gives it

    notes: dict[Path, list[str]] = {}

    def is_complete(path: Path) -> str | None:
        try:
            sem = read_checked(Job(path, output_of(path), None), pixel_size)
        except UserError as exc:
            return str(exc)
        notes[path] = list(sem.warnings)
        return None

    stop = threading.Event()
    stopped_by: list[int] = []

    def request_stop(signum, frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: now; enhance_job removes what it wrote
        stopped_by.append(signum)
        stop.set()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, request_stop)
        except ValueError:  # not the main thread: the caller stops us another way
            pass
    counts = {"enhanced": 0, "failed": 0, "skipped": 0}
    try:
        with enhance_session(zoo, server, spec, None, strict=strict,
                             tile_size=tile_size, memory_budget_mb=memory_budget) as (client, server_text):
            out.mkdir(parents=True, exist_ok=True)
            done_before = sum(1 for p in in_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff")
                              and not p.name.startswith(".") and output_of(p).exists())
            counts["skipped"] = done_before
            with Arrivals(in_dir, is_complete, settle_s=settle, poll=poll, watch=not once,
                          accept=lambda p: not output_of(p).exists()) as arrivals:
                typer.echo(
                    f"watching {in_dir} -> {out} ({arrivals.note}; {done_before} file(s) already enhanced, "
                    "skipped)" + ("" if once else "; Ctrl-C or SIGTERM stops after the current file"),
                    err=True,
                )
                while (arrival := arrivals.next(stop)) is not None:
                    outcome = _enhance_arrival(arrival, output_of(arrival.path), client, server_text,
                                               notes.pop(arrival.path, []), pixel_size=pixel_size,
                                               compare=compare, consistent=consistent, strict=strict)
                    counts[outcome] += 1
                    if stop.is_set():
                        break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    verb = "stopped" if stopped_by else "done"
    typer.echo(f"{verb}: {counts['enhanced']} enhanced, {counts['failed']} failed, "
               f"{counts['skipped']} skipped (output already there)", err=True)
    if signal.SIGINT in stopped_by:
        raise typer.Exit(130)
    if once and counts["failed"]:
        raise typer.Exit(UserError.exit_code)


def _enhance_arrival(arrival, output: Path, client, server_text: str, read_warnings: list[str], *,
                     pixel_size, compare: bool, consistent: bool, strict: bool) -> str:
    """Enhance one written file as `semzoo enhance` would; print its line; say how it went."""
    import time
    import warnings

    from zoo.cli.enhance import result_line
    from zoo.client.consistency import warning_message
    from zoo.client.files import enhance_job, plan

    source = arrival.path
    if arrival.error is not None:
        typer.echo(f"error: {_about(source, arrival.error)}", err=True)
        return "failed"
    if output.exists():  # appeared meanwhile (another watcher, a manual run)
        typer.echo(f"{source}: {output} exists; skipped", err=True)
        return "skipped"
    for message in read_warnings:
        typer.echo(f"warning: {source}: {message}", err=True)
    started = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            job = plan([source], output.parent, compare=compare, overwrite=False)[0]
            result = enhance_job(job, client, pixel_size_nm=pixel_size, server=server_text, overwrite=False,
                                 consistent=consistent, strict=strict)
    except UserError as exc:
        typer.echo(f"error: {_about(source, str(exc))}", err=True)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - one file's failure must not end the watch
        message = (str(exc).strip().splitlines() or [""])[0]
        typer.echo(f"error: {source}: internal error ({type(exc).__name__}: {message})", err=True)
        return "failed"
    for warning in caught:
        typer.echo(f"warning: {source}: {warning.message}", err=True)
    summary = result["consistency"]
    typer.echo(f"{result_line(job, result)}; {_consistency_headline(summary)}; {time.monotonic() - started:.1f} s")
    if summary["flagged"]:
        typer.echo(f"warning: {source}: {warning_message(summary)}", err=True)
    return "enhanced"


def _consistency_headline(summary: dict) -> str:
    """The consistency check's numbers in a few words (the model's own, before --consistent)."""
    judged = summary.get("before_projection", summary)
    verdict = "FLAGGED" if summary["flagged"] else "ok"
    return (f"consistency {verdict}: {judged['inconsistent_share']:.1%} inconsistent "
            f"(threshold {summary['threshold']:.1%}), mean |z| {judged['mean_abs_z']:.2f}")


def _about(path: Path, message: str) -> str:
    return message if message.startswith(str(path)) else f"{path}: {message}"


def register(app: typer.Typer) -> None:
    """Add `semzoo watch` to the root app."""
    app.command("watch")(watch)
