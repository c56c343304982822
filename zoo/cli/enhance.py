"""`semzoo enhance`: super-resolve SEM images through TF Serving (or a server of its own)."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path
from typing import Annotated, Iterator, List

import typer

from zoo.cli.options import (
    DEFAULT_MEMORY_BUDGET_MB,
    CompareOption,
    ConsistentOption,
    ModelOption,
    OverwriteOption,
    PixelSizeOption,
    ServerOption,
    StrictOption,
    MemoryBudgetOption,
    TileSizeOption,
    ZooOption,
    default_zoo,
    progress_bar,
)


class OutputDtype(str, enum.Enum):
    input = "input"
    float32 = "float32"


def enhance(
    inputs: Annotated[List[Path], typer.Argument(help="SEM TIFF files and/or folders of them.", show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output TIFF (one input) or folder (several).")],
    model: ModelOption = None,
    server: ServerOption = None,
    zoo: ZooOption = None,
    pixel_size: PixelSizeOption = None,
    compare: CompareOption = False,
    overwrite: OverwriteOption = False,
    tile_size: TileSizeOption = None,
    memory_budget: MemoryBudgetOption = DEFAULT_MEMORY_BUDGET_MB,
    strict: StrictOption = False,
    consistent: ConsistentOption = False,
    dtype: Annotated[
        OutputDtype,
        typer.Option("--dtype", help="Output pixel type: the input's (overshoot beyond its range is clipped, "
                                     "the share recorded and warned about) or float32 (nothing clipped)."),
    ] = OutputDtype.input,
) -> None:
    """Enhance SEM images x2 with a zoo model; writes TIFFs with the new pixel size and provenance.

    A bare model NAME means its `stable` label when it has one, else its latest version.
    Without --model, each image gets a specimen model trained within 10% of its pixel size,
    else the zoo's general model (see the README, "Which model an image gets").

    Every output comes with NAME.consistency.tif: the output re-acquired onto the input's grid
    minus the input, in units of the input's noise (README, "Trust"). Where it contradicts the
    input over more of the image than the calibrated threshold, a warning says so (--strict:
    that output is not written; outputs of earlier inputs stay).

    Outputs have the input's pixel type; where the network overshoots an integer type's range
    the pixels are clipped, the share is recorded in the provenance and more than 0.1% is
    warned about. --dtype float32 writes float32 TIFFs on the input's intensity scale instead.
    """
    import warnings

    from zoo.client.consistency import warning_message
    from zoo.client.files import ModelSpec, clipping_warning, enhance_job, plan, read_checked

    spec = ModelSpec.parse(model) if model is not None else None
    jobs = plan(inputs, out, compare=compare, overwrite=overwrite)
    # Every input readable and with a pixel size before anything is written; what reading
    # had to adapt (RGB made gray, several pages) is said now, not lost.
    pixel_sizes = []
    for job in jobs:
        sem = read_checked(job, pixel_size)
        pixel_sizes.append(sem.pixel_size_nm)
        for message in sem.warnings:
            typer.echo(f"warning: {job.source}: {message}", err=True)
        del sem  # one image in memory at a time, however many inputs

    with enhance_session(zoo, server, spec, pixel_sizes, strict=strict, tile_size=tile_size,
                         memory_budget_mb=memory_budget) as (client, server_text):
        with progress_bar("enhancing", None) as update, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if strict:  # refuse before writing anything, not halfway through a folder
                for job, size in zip(jobs, pixel_sizes):
                    info = client.model_info() if client.model else client.choose_model(size)
                    client.check_pixel_size(info, size, strict=True)
            for job in jobs:  # the server is up and the model known: now outputs may appear
                job.output.parent.mkdir(parents=True, exist_ok=True)
            for i, job in enumerate(jobs, 1):
                name = f"[{i}/{len(jobs)}] {job.source.name}"
                update(0, description=name)
                result = enhance_job(
                    job, client, pixel_size_nm=pixel_size, server=server_text, overwrite=overwrite,
                    progress=lambda done, total, name=name: update(done, total=total, description=name),
                    consistent=consistent, strict=strict, dtype=dtype.value,
                )
                if result["consistency"]["flagged"]:
                    typer.echo(f"warning: {job.source}: {warning_message(result['consistency'])}", err=True)
                clipped = clipping_warning(result)
                if clipped:
                    typer.echo(f"warning: {job.source}: {clipped}", err=True)
                typer.echo(result_line(job, result))
        for warning in caught:
            typer.echo(f"warning: {warning.message}", err=True)


def result_line(job, result: dict) -> str:
    """``IN -> OUT (model vN, 14.2 nm -> 7.1 nm)``: what `semzoo enhance` prints per image."""
    return (
        f"{job.source} -> {job.output} ({result['model']} v{result['model_version']}, "
        f"{result['input_pixel_size_nm']:g} nm -> {result['input_pixel_size_nm'] / result['scale']:g} nm)"
    )


@contextlib.contextmanager
def enhance_session(zoo, server: str | None, spec, pixel_sizes: list[float] | None, *, strict: bool,
                    tile_size: int | None, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> Iterator[tuple]:
    """The EnhanceClient `semzoo enhance` and `semzoo watch` enhance through, and the server
    text their provenance records: ``--server`` targets, or an embedded server of the zoo
    serving the version(s) ``pixel_sizes`` need (None: every model of the zoo, for images yet
    to arrive), stopped on exit."""
    from zoo.client.client import EnhanceClient
    from zoo.errors import UserError

    zoo_dir = Path(zoo) if zoo is not None else default_zoo()
    embedded = None
    try:
        if server is None:
            embedded, targets, names, spec = _start_embedded(zoo_dir, spec, pixel_sizes)
        else:
            targets = [t.strip() for t in server.split(",") if t.strip()]
            names = _zoo_model_names(zoo_dir) if spec is None else [spec.name]
            if not names:
                raise UserError(f"the zoo at {zoo_dir} lists no models to choose from; name one with --model")
        label = spec.label if spec is not None else None
        if spec is not None and spec.version is None and label is None and not spec.latest and server is not None:
            label = _stable_if_served(targets, spec.name)
        server_text = "embedded (semzoo serve in-process)" if server is None else server
        with EnhanceClient(
            targets,
            spec.name if spec is not None else None,
            version=spec.version if spec is not None else None,
            label=label,
            candidates=names,
            strict=strict,
            tile_size=tile_size,
            memory_budget_mb=memory_budget_mb,
        ) as client:
            yield client, server_text
    finally:
        if embedded is not None:
            embedded.stop(grace=0)


def _zoo_model_names(zoo_dir: Path) -> list[str]:
    from zoo.registry.store import Zoo

    return Zoo(zoo_dir).models()


def _start_embedded(zoo_dir: Path, spec, pixel_sizes: list[float] | None):
    """Serve just the version(s) these images need, from the zoo, on a free loopback port.

    With no model named, that is, per image, :func:`zoo.client.model_choice.choose_model`'s
    pick (the client makes the same choice among the served ones); with ``pixel_sizes`` None
    (images not known yet), every model's version.
    """
    from zoo.client.files import ModelSpec
    from zoo.client.model_choice import choose_model
    from zoo.errors import UserError
    from zoo.registry.store import Zoo
    from zoo.server.server import serve_zoo_versions

    store = Zoo(zoo_dir)
    if spec is not None:
        name, version = store.resolve(str(spec))  # the zoo's rule: NAME -> @stable, else latest
        chosen = {name: version}
        spec = ModelSpec(name, version)
    else:
        names = store.models()
        if not names:
            raise UserError(f"the zoo at {zoo_dir} has no models; publish one or pass --zoo")
        resolved = dict(store.resolve(n) for n in names)
        cards = {n: store.card(n, v) for n, v in resolved.items()}
        needed = set(cards) if pixel_sizes is None else {choose_model(cards, p) for p in pixel_sizes}
        chosen = {n: resolved[n] for n in sorted(needed)}
    embedded = serve_zoo_versions(store.root, {name: [version] for name, version in chosen.items()})
    return embedded, [embedded.target], sorted(chosen), spec


def _stable_if_served(targets: list[str], name: str) -> str | None:
    """The zoo's rule for a bare NAME on a remote server: ``@stable`` if it knows it, else latest."""
    import grpc

    from zoo.client.client import EnhanceClient, ServerError

    with EnhanceClient(targets, name, label="stable", retries=2) as probe:
        try:
            probe.model_info()
            return "stable"
        except ServerError as exc:
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
                return None
            raise


def register(app: typer.Typer) -> None:
    """Add `semzoo enhance` to the root app."""
    app.command("enhance")(enhance)
