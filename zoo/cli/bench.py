"""`semzoo bench`: direct vs served speed, concurrency and memory of a zoo model, as a markdown table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from zoo.cli.options import OverwriteOption, ZooOption, default_zoo, echo_devices, progress_bar

DEFAULT_MODEL = "gold-on-carbon"


def bench(
    model: Annotated[
        Optional[str],
        typer.Option("--model", help=f"NAME, NAME:VERSION or NAME@LABEL (default: {DEFAULT_MODEL}, or an "
                                     "untrained small-preset stand-in when the zoo has none)."),
    ] = None,
    zoo: ZooOption = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Also write the markdown table to this file.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes and few repetitions: checks the machinery in seconds.")
    ] = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Benchmark a zoo model: direct vs served images/s, concurrent clients, peak memory, Lanczos floor.

    Starts `semzoo serve` on a free loopback port for the duration. Direct and served calls
    alternate, so the served/direct ratios hold on a busy machine; absolute numbers do not.
    """
    import shlex
    import tempfile

    from zoo.benchmark import BenchSizes, run_benchmark, untrained_zoo
    from zoo.benchmark.report import to_markdown
    from zoo.client.files import ModelSpec
    from zoo.errors import UserError
    from zoo.registry.files import atomic_write_text
    from zoo.registry.store import Zoo

    if out is not None:
        if out.exists() and not overwrite:
            raise UserError(f"{out} exists; use --overwrite to replace it")
        if not out.parent.is_dir():
            raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    spec = ModelSpec.parse(model) if model is not None else None
    store = Zoo(zoo or default_zoo())
    notes = []
    with tempfile.TemporaryDirectory(prefix="semzoo-bench-zoo-") as scratch:
        if spec is None and DEFAULT_MODEL not in (store.models() if store.root.is_dir() else []):
            typer.echo(f"{store.root} has no {DEFAULT_MODEL} model: benchmarking an untrained small-preset "
                       "generator (same architecture and cost)", err=True)
            store = Zoo(scratch)
            name, version = untrained_zoo(store.root, preset="small", name=DEFAULT_MODEL)
            notes.append(f"model: untrained `small`-preset generator published as {name}:{version} into a "
                         "temporary zoo (speed does not depend on the weights)")
        else:
            if not store.root.is_dir():
                raise UserError(f"model zoo {store.root} does not exist (set --zoo or SEMZOO_ZOO)")
            name, version = store.resolve(str(spec) if spec is not None else DEFAULT_MODEL)
        problems = store.verify(name, version)
        if problems:
            raise UserError(f"{name}:{version} fails verification: {problems[0]}")
        sizes = BenchSizes.quick() if quick else BenchSizes()
        echo_devices()
        with progress_bar(f"bench {name}:{version}", None) as update:
            result = run_benchmark(store.root, name, version, sizes=sizes, progress=lambda d, t: update(d, total=t))
    result.notes += notes
    command = "semzoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    text = to_markdown(result, command=command or _command(model, zoo, out, quick))
    typer.echo(text)
    if out is not None:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}", err=True)


def _command(model, zoo, out, quick) -> str:
    parts = ["semzoo", "bench"]
    parts += ["--model", model] if model else []
    parts += ["--zoo", str(zoo)] if zoo else []
    parts += ["--out", str(out)] if out else []
    parts += ["--quick"] if quick else []
    return " ".join(parts)


def register(app: typer.Typer) -> None:
    """Add `semzoo bench` to the root app."""
    app.command("bench")(bench)
